import Dispatch
import FoundationEssentials
import Glibc
import Logging
import Synchronization

/// Standard error for log lines, written in batches.
///
/// The access log writes one line per request. Written one by one (as swift-log's
/// `StreamLogHandler` does: lock the `FILE`, write(2), flush) that is a system call per
/// request, and the two event loops contend for the stream's lock: a futex wake per
/// request more. Here a line is appended to a buffer under a short lock; a writer
/// thread sends what gathered at most `delay` later in one write. Lines at `warning`
/// and above are written at once, with everything gathered before them, so a failure
/// is on its way before the process may end. Order is kept: one lock covers taking a
/// batch and writing it.
///
/// The threads that log (event loops among them) never wait for standard error: a
/// log file on a disk busy writing back gigabytes can block a write for tens of
/// milliseconds. When the writer falls `pendingLimit` bytes behind, further `info` and
/// `debug` lines are dropped and counted, and the count is logged once it caught up.
final class LogOutput: Sendable {
    static let standardError = LogOutput(descriptor: STDERR_FILENO)

    /// How long a line may wait for company before it is written, in seconds.
    private let delay = 0.05
    /// Past this many bytes waiting, the writer does not wait for more.
    private let batchLimit = 64 * 1024
    /// Past this many bytes waiting, routine lines are dropped (and counted).
    private let pendingLimit = 8 << 20

    private let descriptor: Int32
    private let pending = Mutex(Pending())
    private let writing = Mutex(())
    private let linesWaiting = DispatchSemaphore(value: 0)

    private struct Pending {
        var bytes: [UInt8] = []
        var writerWoken = false
        /// Routine lines dropped since the last batch.
        var dropped = 0
        /// The formatted second, reused for every line in it (localtime and strftime
        /// per line would cost more than the rest of the line).
        var second = -1
        var timestamp = ""
    }

    private init(descriptor: Int32) {
        self.descriptor = descriptor
        // A plain pthread (Foundation's Thread would pull all of Foundation in), never joined.
        var thread = pthread_t()
        let started = pthread_create(
            &thread, nil,
            { context in
                let output = Unmanaged<LogOutput>.fromOpaque(context!).takeUnretainedValue()
                output.writeBatches()
                return nil
            }, Unmanaged.passUnretained(self).toOpaque())
        precondition(started == 0, "cannot start the log writer thread: error \(started)")
    }

    /// Appends one line as swift-log's stream handler writes it:
    /// `<time> <level> <label>:<metadata> [<source>] <message>`, where `metadata` is empty
    /// or starts with a space. Copied in pieces: no line is built first.
    func write(level: Logger.Level, label: String, metadata: String, source: String, message: String) {
        let now = time(nil)
        let urgent = level >= .warning
        var wake = false
        pending.withLock { pending in
            if !urgent && pending.bytes.count >= pendingLimit {
                pending.dropped += 1
                return
            }
            if now != pending.second {
                pending.second = now
                pending.timestamp = Self.format(now)
            }
            pending.bytes.append(contentsOf: pending.timestamp.utf8)
            pending.bytes.append(UInt8(ascii: " "))
            pending.bytes.append(contentsOf: level.rawValue.utf8)
            pending.bytes.append(UInt8(ascii: " "))
            pending.bytes.append(contentsOf: label.utf8)
            pending.bytes.append(UInt8(ascii: ":"))
            pending.bytes.append(contentsOf: metadata.utf8)
            pending.bytes.append(contentsOf: " [".utf8)
            pending.bytes.append(contentsOf: source.utf8)
            pending.bytes.append(contentsOf: "] ".utf8)
            pending.bytes.append(contentsOf: message.utf8)
            pending.bytes.append(UInt8(ascii: "\n"))
            if !pending.writerWoken && !urgent {
                pending.writerWoken = true
                wake = true
            }
        }
        if urgent {
            flush()
        } else if wake {
            linesWaiting.signal()
        }
    }

    /// Writes everything gathered so far, now.
    func flush() {
        writing.withLock { _ in
            let (batch, dropped, timestamp) = pending.withLock { pending in
                defer {
                    pending.bytes = []
                    pending.bytes.reserveCapacity(4096)
                    pending.dropped = 0
                }
                return (pending.bytes, pending.dropped, pending.timestamp)
            }
            write(batch)
            if dropped > 0 {
                write(
                    Array(
                        "\(timestamp) warning registryd: [registryd] \(dropped) log lines dropped: standard error could not keep up\n".utf8)
                )
            }
        }
    }

    private func writeBatches() {
        while true {
            linesWaiting.wait()
            if pending.withLock({ $0.bytes.count < batchLimit }) {
                usleep(useconds_t(delay * 1_000_000))
            }
            pending.withLock { $0.writerWoken = false }
            flush()
        }
    }

    private func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = Glibc.write(descriptor, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 && errno == EINTR { continue }
                // Standard error is gone or broken: nothing better to do with a log line.
                guard written > 0 else { return }
                offset += written
            }
        }
    }

    /// `2026-11-29T10:52:04+0000`, as swift-log's stream handler writes it.
    private static func format(_ second: Int) -> String {
        var seconds = time_t(second)
        var parts = tm()
        localtime_r(&seconds, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let length = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
        return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
