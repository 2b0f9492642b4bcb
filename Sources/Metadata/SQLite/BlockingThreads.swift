import CLinux
import Glibc

/// Threads of their own for work that blocks on purpose: SQLite commits waiting for
/// their fsync. A caller suspends (`run`) while one of these threads does the work, so
/// neither Swift's cooperative threads (as many as cores) nor NIO's threads ever wait
/// on a disk. Threads start as work arrives, up to `limit`, and then stay.
///
/// Not `NIOThreadPool`: its queue lives in an enum payload whose pointer carries tag
/// bits, which the leak sanitizer cannot follow, so every fuzz run that wrote once
/// reported the pool as leaked.
final class BlockingThreads: @unchecked Sendable {
    /// What `top -H` and profilers call these threads (at most 15 bytes are kept); without
    /// it each would carry the name of whichever thread started it.
    private let name: String
    // Everything below is guarded by `condition`.
    private let condition = ThreadCondition()
    private var jobs: [@Sendable () -> Void] = []
    private var waiting = 0
    private var started = 0
    private let limit: Int

    init(limit: Int, name: String) {
        self.limit = limit
        self.name = name
    }

    /// Runs `body` on one of the threads and returns what it returned (or threw).
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            submit { continuation.resume(with: Result { try body() }) }
        }
    }

    private func submit(_ job: @escaping @Sendable () -> Void) {
        condition.lock()
        jobs.append(job)
        let startsThread = waiting == 0 && started < limit
        if startsThread { started += 1 }
        // One job, one thread: waking every idle thread for it (a broadcast) cost each
        // write up to fifteen needless wake-ups and went back to sleep, ~15% more CPU
        // per small push than the thread pool this replaced.
        condition.signal()
        condition.unlock()
        if startsThread { startThread() }
    }

    private func startThread() {
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(
            &thread, nil,
            { context in
                Unmanaged<BlockingThreads>.fromOpaque(context!).takeRetainedValue().work()
                return nil
            }, context)
        precondition(result == 0, "cannot start a metadata writer thread: error \(result)")
        pthread_detach(thread)
    }

    private func work() {
        registryd_name_this_thread(name)
        while true {
            condition.lock()
            while jobs.isEmpty {
                waiting += 1
                condition.wait()
                waiting -= 1
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job()
        }
    }
}
