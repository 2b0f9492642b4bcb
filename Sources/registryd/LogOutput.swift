import CLinux
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
/// request more. Here a line is appended to a buffer; a writer thread sends what
/// gathered at most `delay` later in one write. Lines at `warning` and above are written
/// at once, with everything gathered before them, so a failure is on its way before the
/// process may end.
///
/// Each thread appends to a buffer of its own (one of `shardCount`, handed out in turn):
/// with one shared buffer the two event loops took turns at its lock and its bytes, and
/// every line moved those cache lines from one core to the other. A batch holds each
/// buffer's lines in turn, so within one batch (at most `delay`) lines of different
/// threads are grouped by thread; one thread's lines keep their order.
///
/// The threads that log (event loops among them) never wait for standard error: a
/// log file on a disk busy writing back gigabytes can block a write for tens of
/// milliseconds. When a thread's buffer holds `pendingLimit` bytes not yet written,
/// its further `info` and `debug` lines are dropped and counted, and the count is
/// logged once the writer caught up.
final class LogOutput: Sendable {
    static let standardError = LogOutput(descriptor: STDERR_FILENO)

    /// How long a line may wait for company before it is written, in seconds.
    private let delay = 0.05
    /// Past this many bytes waiting, the writer does not wait for more.
    private let batchLimit = 64 * 1024
    /// Past this many bytes waiting in one thread's buffer, its routine lines are dropped.
    private let pendingLimit = 4 << 20
    /// Buffers; more threads than this share them (two event loops, the acceptor, the
    /// task and file I/O pools: few of them log often).
    private static let shardCount = 8

    private let descriptor: Int32
    private let shards: [Shard]
    private let writing = Mutex(())
    private let writerWoken = Atomic(false)
    private let linesWaiting = DispatchSemaphore(value: 0)

    /// One thread's buffer. A class of its own, padded, so that two threads' buffers
    /// never share a cache line.
    private final class Shard: Sendable {
        let pending = Mutex(Pending())
        private let padding: (Int, Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0, 0)
    }

    private struct Pending {
        var bytes: [UInt8] = []
        /// Routine lines dropped since the last batch.
        var dropped = 0
        /// The formatted second, reused for every line in it (localtime and strftime
        /// per line would cost more than the rest of the line).
        var second = -1
        var timestamp = ""

        mutating func append(_ text: String) {
            var text = text
            // A native string's UTF-8 as it is: one copy, no per-character walk.
            text.withUTF8 { bytes.append(contentsOf: $0) }
        }
    }

    /// The calling thread's shard number plus one (0: none yet), kept in thread-specific data.
    private static let shardKey: pthread_key_t = {
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0, "cannot create the log's thread key")
        return key
    }()
    private static let shardsHandedOut = Atomic(0)

    private init(descriptor: Int32) {
        self.descriptor = descriptor
        self.shards = (0..<Self.shardCount).map { _ in Shard() }
        // A plain pthread (Foundation's Thread would pull all of Foundation in), never joined.
        var thread = pthread_t()
        let started = pthread_create(
            &thread, nil,
            { context in
                let output = Unmanaged<LogOutput>.fromOpaque(context!).takeUnretainedValue()
                registryd_name_this_thread("log-writer")
                output.writeBatches()
                return nil
            }, Unmanaged.passUnretained(self).toOpaque())
        precondition(started == 0, "cannot start the log writer thread: error \(started)")
    }

    /// The calling thread's buffer.
    private var shard: Shard {
        if let stored = pthread_getspecific(Self.shardKey) { return shards[Int(bitPattern: stored) - 1] }
        let number = Self.shardsHandedOut.wrappingAdd(1, ordering: .relaxed).oldValue % Self.shardCount
        pthread_setspecific(Self.shardKey, UnsafeRawPointer(bitPattern: number + 1))
        return shards[number]
    }

    /// Appends one line as swift-log's stream handler writes it:
    /// `<time> <level> <label>:<metadata> [<source>] <message>`, where `metadata` is empty
    /// or starts with a space. Copied in pieces: no line is built first.
    func write(level: Logger.Level, label: String, metadata: String, source: String, message: String) {
        let now = time(nil)
        let urgent = level >= .warning
        let appended = shard.pending.withLock { pending in
            if !urgent && pending.bytes.count >= pendingLimit {
                pending.dropped += 1
                return false
            }
            if now != pending.second {
                pending.second = now
                pending.timestamp = Self.format(now)
            }
            pending.append(pending.timestamp)
            pending.bytes.append(UInt8(ascii: " "))
            pending.append(level.rawValue)
            pending.bytes.append(UInt8(ascii: " "))
            pending.append(label)
            pending.bytes.append(UInt8(ascii: ":"))
            pending.append(metadata)
            pending.append(" [")
            pending.append(source)
            pending.append("] ")
            pending.append(message)
            pending.bytes.append(UInt8(ascii: "\n"))
            return true
        }
        if urgent {
            flush()
        } else if appended && !writerWoken.load(ordering: .relaxed)
            && writerWoken.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged
        {
            linesWaiting.signal()
        }
    }

    /// Writes everything gathered so far, now.
    func flush() {
        writing.withLock { _ in
            var dropped = 0
            var timestamp = ""
            for shard in shards {
                let batch = shard.pending.withLock { pending in
                    defer {
                        pending.bytes = []
                        pending.dropped = 0
                    }
                    dropped += pending.dropped
                    if pending.second >= 0 { timestamp = pending.timestamp }
                    return pending.bytes
                }
                write(batch)
            }
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
            if shards.reduce(0, { $0 + $1.pending.withLock { $0.bytes.count } }) < batchLimit {
                usleep(useconds_t(delay * 1_000_000))
            }
            writerWoken.store(false, ordering: .relaxed)
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
