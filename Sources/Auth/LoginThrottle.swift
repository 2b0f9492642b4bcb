import Synchronization

/// Slows down password guessing per source address: after `freeFailures` failed
/// logins, each further attempt must wait, doubling up to `maximumDelay`; a success
/// clears the address. Answers are "go ahead" or "retry after N seconds" (429).
public final class LoginThrottle: Sendable {
    public let freeFailures: Int
    public let maximumDelay: Double
    /// Failures older than this are forgotten.
    public let window: Double
    private let state = Mutex<[String: Record]>([:])
    private let now: @Sendable () -> Double

    struct Record {
        var failures: Int
        var lastFailure: Double
    }

    public init(
        freeFailures: Int = 5, maximumDelay: Double = 300, window: Double = 900,
        now: @escaping @Sendable () -> Double = MonotonicClock.seconds
    ) {
        self.freeFailures = freeFailures
        self.maximumDelay = maximumDelay
        self.window = window
        self.now = now
    }

    /// `nil` when `address` may try now; otherwise the seconds it must wait.
    public func retryAfter(for address: String) -> Int? {
        let time = now()
        return state.withLock { records in
            guard let record = records[address] else { return nil }
            if time - record.lastFailure > window {
                records[address] = nil
                return nil
            }
            guard record.failures >= freeFailures else { return nil }
            let delay = min(maximumDelay, Double(1 << min(record.failures - freeFailures, 20)))
            let remaining = record.lastFailure + delay - time
            return remaining > 0 ? Int(remaining.rounded(.up)) : nil
        }
    }

    public func recordFailure(for address: String) {
        let time = now()
        state.withLock { records in
            // Bound the table: an attacker cycling addresses must not grow it forever.
            if records.count > 100_000 { records = records.filter { time - $0.value.lastFailure <= window } }
            var record = records[address] ?? Record(failures: 0, lastFailure: time)
            record.failures += 1
            record.lastFailure = time
            records[address] = record
        }
    }

    public func recordSuccess(for address: String) {
        _ = state.withLock { $0.removeValue(forKey: address) }
    }
}

/// Seconds since the process started, on the monotonic clock.
public enum MonotonicClock {
    private static let start = ContinuousClock.now

    public static func seconds() -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }
}
