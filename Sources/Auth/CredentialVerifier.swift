import Metadata
import OCI
import Synchronization

/// Checks a user name and password, fast after the first time.
///
/// bcrypt costs tens of milliseconds on purpose; checking it on every request is
/// why distribution's small requests are slow with auth on. A verified pair is
/// remembered (keyed by name and a SHA-256 of the password, never the password) for
/// `cacheLifetime` seconds, and trusted from memory alone only while no account has
/// changed (`AccountStore.accountGeneration`): after a change (a new password, a
/// disabled or deleted user, here or, on PostgreSQL, on another instance) the next
/// request reads the user's row again. If the row still holds the hash the password
/// was checked against, and the user is still enabled, the pair stays verified without
/// another bcrypt: several instances bump the generation often (see `ChangeFeed`), and
/// each bump must cost one indexed read, not one bcrypt per user.
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
        var entries: [CacheKey: Entry] = [:]
    }

    private struct Entry {
        let principal: Principal
        /// The stored hash the password was checked against.
        let passwordHash: String
        let expires: Double
        /// The account generation the entry was last confirmed at.
        let generation: Int
    }

    private struct CacheKey: Hashable {
        let name: String
        let passwordDigest: Digest
    }

    /// The bcrypt check (`PasswordHasher.verify`); tests count its calls.
    private let checkPassword: @Sendable (_ password: String, _ hash: String) -> Bool

    /// `now`: seconds on a monotonic clock (tests pass their own).
    public init(
        accounts: any AccountStore, throttle: LoginThrottle = LoginThrottle(), cacheLifetime: Double = 60,
        now: @escaping @Sendable () -> Double = MonotonicClock.seconds,
        checkPassword: @escaping @Sendable (_ password: String, _ hash: String) -> Bool = { PasswordHasher.verify($0, against: $1) }
    ) {
        self.accounts = accounts
        self.throttle = throttle
        self.cacheLifetime = cacheLifetime
        self.now = now
        self.checkPassword = checkPassword
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

        guard let user = try? await accounts.user(named: name), !user.isDisabled else {
            throttle.recordFailure(for: address)
            return .rejected
        }
        // Checked before against this very hash: still right, without bcrypt.
        let known = cache.withLock { cache -> Entry? in
            guard let entry = cache.entries[key], entry.expires > now, entry.passwordHash == user.passwordHash else { return nil }
            return entry
        }
        guard known != nil || checkPassword(password, user.passwordHash) else {
            throttle.recordFailure(for: address)
            return .rejected
        }
        throttle.recordSuccess(for: address)
        let principal = Principal(name: user.name, isStaff: user.isStaff)
        cache.withLock { cache in
            if cache.entries.count > 10_000 { cache.entries.removeAll() }
            // A confirmed entry keeps its expiry: the lifetime bounds how long one bcrypt counts.
            cache.entries[key] = Entry(
                principal: principal, passwordHash: user.passwordHash, expires: known?.expires ?? now + cacheLifetime,
                generation: generation)
        }
        return .authenticated(principal)
    }

    /// The remembered principal, if its entry was confirmed at `generation` and has not expired.
    private func cachedPrincipal(_ key: CacheKey, generation: Int, now: Double) -> Principal? {
        cache.withLock { cache in
            guard let entry = cache.entries[key], entry.expires > now, entry.generation == generation else { return nil }
            return entry.principal
        }
    }
}
