import Glibc

/// A pthread mutex with a condition variable, for threads that block on purpose
/// (the SQLite writer and its waiting callers).
///
/// Foundation's `NSLock`/`NSCondition` do the same but would pull full Foundation,
/// CoreFoundation and ICU into the daemon for two lock calls; `Mutex` cannot wait.
final class ThreadCondition: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }

    /// Unlocks, sleeps until `signal` or `broadcast`, locks again. Callers re-check their condition.
    func wait() { pthread_cond_wait(condition, mutex) }
    /// Wakes every waiter: for a change each of them must look at.
    func broadcast() { pthread_cond_broadcast(condition) }
    /// Wakes one waiter: for work any one of them can take.
    func signal() { pthread_cond_signal(condition) }

    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }
}
