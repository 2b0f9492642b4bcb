import FoundationEssentials
import Glibc
import Logging
import Synchronization

/// The log level every handler reads on each message, so SIGHUP can change it live.
enum LiveLogLevel {
    private static let rawLevel = Atomic<Int>(Logger.Level.allCases.firstIndex(of: .info)!)

    static var current: Logger.Level {
        get { Logger.Level.allCases[rawLevel.load(ordering: .relaxed)] }
        set { rawLevel.store(Logger.Level.allCases.firstIndex(of: newValue)!, ordering: .relaxed) }
    }

    /// Standard-error logging at the live level.
    static func bootstrap() {
        // Each line's timestamp goes through localtime(3); with TZ unset glibc stats
        // /etc/localtime for every call. Naming the zone once keeps the access log off
        // the file system (same zone, same output).
        if getenv("TZ") == nil { setenv("TZ", ":/etc/localtime", 1) }
        LoggingSystem.bootstrap { label in Handler(label: label) }
    }

    /// Lines as swift-log's `StreamLogHandler` formats them
    /// (`<time> <level> <label>: [<metadata>] [<source>] <message>`), written through
    /// `LogOutput` in batches.
    struct Handler: LogHandler {
        let label: String
        var metadata: Logger.Metadata = [:]

        var logLevel: Logger.Level {
            get { LiveLogLevel.current }
            set {}  // One level for the whole process, set by the settings.
        }

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            // The access log comes through here once per request, on the event loops: a line
            // without metadata skips the merge and goes to the output as it is, in pieces.
            var pretty = ""
            if !metadata.isEmpty || event.metadata != nil || event.error != nil {
                var merged = metadata
                if let explicit = event.metadata { merged.merge(explicit) { _, explicit in explicit } }
                if let error = event.error {
                    merged["error.message"] = "\(error)"
                    merged["error.type"] = "\(String(reflecting: type(of: error)))"
                }
                if !merged.isEmpty { pretty = " " + merged.sorted { $0.key < $1.key }.map { "\($0)=\($1)" }.joined(separator: " ") }
            }
            LogOutput.standardError.write(
                level: event.level, label: label, metadata: pretty, source: event.source, message: event.message.description)
        }
    }
}
