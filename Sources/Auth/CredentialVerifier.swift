import CLibcrypto
import Metadata
import OCI
import Synchronization

/// Checks a user name and password, fast after the first time.
///
/// bcrypt costs tens of milliseconds on purpose; checking it on every request is
/// why distribution's small requests are slow with auth on. A verified pair is
/// remembered (keyed by name and a SHA-256 of the password, never the password) for
/// `cacheLifetime` seconds, and forgotten at once when any account changes
/// (`AccountStore.accountGeneration`): a new password, a disabled or deleted user.
public final class CredentialVerifier: Sendable {
    public enum Outcome: Sendable, Equatable {
        case authenticated(Principal)
        case rejected
        /// Too many failures from this address: wait this many seconds.
        case throttled(retryAfter: Int)
    }

    private let accounts: any AccountStore
    private let throttle: LoginThrottle
    private let cacheLifetime: Double
    private let now: @Sendable () -> Double
    private let cache = Mutex<Cache>(Cache())

    private struct Cache {
        var generation = -1
        var entries: [CacheKey: (principal: Principal, expires: Double)] = [:]
    }

    private struct CacheKey: Hashable {
        let name: String
        let passwordDigest: Digest
    }

    /// `now`: seconds on a monotonic clock (tests pass their own).
    public init(
        accounts: any AccountStore, throttle: LoginThrottle = LoginThrottle(), cacheLifetime: Double = 60,
        now: @escaping @Sendable () -> Double = MonotonicClock.seconds
    ) {
        self.accounts = accounts
        self.throttle = throttle
        self.cacheLifetime = cacheLifetime
        self.now = now
    }

    /// The principal when these credentials were verified recently against the current
    /// accounts, from memory alone (no bcrypt, no database); `nil` otherwise, and for a
    /// throttled address: then `verify` decides.
    public func recentlyVerified(name: String, password: String, from address: String) -> Principal? {
        guard throttle.retryAfter(for: address) == nil else { return nil }
        let key = CacheKey(name: name, passwordDigest: Digest.of(Array(password.utf8)))
        return cachedPrincipal(key, generation: accounts.accountGeneration, now: now())
    }

    public func verify(name: String, password: String, from address: String) async -> Outcome {
        if let wait = throttle.retryAfter(for: address) { return .throttled(retryAfter: wait) }
        let key = CacheKey(name: name, passwordDigest: Digest.of(Array(password.utf8)))
        let now = self.now()
        let generation = accounts.accountGeneration
        if let principal = cachedPrincipal(key, generation: generation, now: now) { return .authenticated(principal) }

        guard let user = try? await accounts.user(named: name), !user.isDisabled,
            PasswordHasher.verify(password, against: user.passwordHash)
        else {
            throttle.recordFailure(for: address)
            return .rejected
        }
        throttle.recordSuccess(for: address)
        let principal = Principal(name: user.name, isStaff: user.isStaff)
        cache.withLock { cache in
            // Only remember what was checked against the current accounts.
            guard cache.generation == generation else { return }
            if cache.entries.count > 10_000 { cache.entries.removeAll() }
            cache.entries[key] = (principal, now + cacheLifetime)
        }
        return .authenticated(principal)
    }

    private func cachedPrincipal(_ key: CacheKey, generation: Int, now: Double) -> Principal? {
        cache.withLock { cache in
            if cache.generation != generation {
                cache.entries.removeAll()
                cache.generation = generation
                return nil
            }
            guard let entry = cache.entries[key], entry.expires > now else { return nil }
            return entry.principal
        }
    }
}
