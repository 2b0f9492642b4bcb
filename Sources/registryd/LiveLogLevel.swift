import Foundation
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
        LoggingSystem.bootstrap { label in Handler(base: StreamLogHandler.standardError(label: label)) }
    }

    struct Handler: LogHandler {
        var base: StreamLogHandler

        var logLevel: Logger.Level {
            get { LiveLogLevel.current }
            set {}  // One level for the whole process, set by the settings.
        }

        var metadata: Logger.Metadata {
            get { base.metadata }
            set { base.metadata = newValue }
        }

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { base[metadataKey: key] }
            set { base[metadataKey: key] = newValue }
        }

        func log(event: LogEvent) {
            base.log(event: event)
        }
    }
}
