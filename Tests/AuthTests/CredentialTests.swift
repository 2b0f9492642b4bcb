import Foundation
import Metadata
import OCI
import RegistryTesting
import Synchronization
import XCTest

@testable import Auth

/// Passwords, the verified-credential cache, throttling, and the push rules.
final class CredentialTests: XCTestCase {
    var directory: String!
    var store: SQLiteMetadataStore!

    override func setUp() async throws {
        directory = NSTemporaryDirectory() + "/registryd-auth-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        store = try SQLiteMetadataStore(path: directory + "/registry.db")
    }

    override func tearDown() async throws {
        store = nil
        try? FileManager.default.removeItem(atPath: directory)
    }

    func testBcryptHashesVerifyAndHtpasswdImportsOnlyBcrypt() {
        let hash = PasswordHasher(cost: 4).hash("s3cret-pass")
        XCTAssertTrue(PasswordHasher.verify("s3cret-pass", against: hash))
        XCTAssertFalse(PasswordHasher.verify("wrong", against: hash))
        XCTAssertFalse(PasswordHasher.verify("x", against: "plaintext"))
        let text = """
            # users from distribution
            alice:\(hash)
            md5user:$apr1$abc$0123456789012345678901
            Bad_Name:\(hash)

            """
        let parsed = PasswordHasher.parseHtpasswd(text)
        XCTAssertEqual(parsed.users.map(\.name), ["alice"])
        XCTAssertEqual(parsed.rejected, ["md5user", "Bad_Name"])
    }

    func testThrottleWaitsLongerAfterEachFailureAndForgetsOnSuccess() {
        let clock = TestClock()
        let throttle = LoginThrottle(freeFailures: 3, maximumDelay: 60, window: 600, now: { clock.time })
        for _ in 0..<3 { throttle.recordFailure(for: "1.2.3.4") }
        XCTAssertEqual(throttle.retryAfter(for: "1.2.3.4"), 1)
        XCTAssertNil(throttle.retryAfter(for: "5.6.7.8"), "per address")
        throttle.recordFailure(for: "1.2.3.4")
        XCTAssertEqual(throttle.retryAfter(for: "1.2.3.4"), 2)
        clock.time += 2
        XCTAssertNil(throttle.retryAfter(for: "1.2.3.4"))
        throttle.recordSuccess(for: "1.2.3.4")
        throttle.recordFailure(for: "1.2.3.4")
        XCTAssertNil(throttle.retryAfter(for: "1.2.3.4"))
    }

    func testTheThrottleWithItsRealSettings() {
        // The defaults docs/AUTH.md states: 5 free failures, 1 s doubling up to 5 minutes,
        // forgotten once 15 minutes pass without a failure.
        let clock = TestClock()
        let throttle = LoginThrottle(now: { clock.time })
        for _ in 0..<5 { throttle.recordFailure(for: "a") }
        XCTAssertEqual(throttle.retryAfter(for: "a"), 1)
        clock.time += 899
        XCTAssertNil(throttle.retryAfter(for: "a"), "the wait is over")
        throttle.recordFailure(for: "a")
        XCTAssertEqual(throttle.retryAfter(for: "a"), 2, "a failure within 15 minutes of the last still counts")
        clock.time += 901
        XCTAssertNil(throttle.retryAfter(for: "a"))
        throttle.recordFailure(for: "a")
        XCTAssertNil(throttle.retryAfter(for: "a"), "15 minutes without a failure forgot the earlier ones")
        for _ in 0..<40 { throttle.recordFailure(for: "b") }
        XCTAssertEqual(throttle.retryAfter(for: "b"), 300, "never longer than five minutes")
    }

    func testVerifiedCredentialsExpireFromTheCacheAfterAMinute() async throws {
        try await store.createUser(name: "alice", passwordHash: PasswordHasher(cost: 4).hash("password-1"), isStaff: false)
        let counting = CountingAccounts(store)
        let clock = TestClock()
        let verifier = CredentialVerifier(accounts: counting, now: { clock.time })
        await assertEqual(
            await verifier.verify(name: "alice", password: "password-1", from: "a"),
            .authenticated(Principal(name: "alice", isStaff: false)))
        clock.time += 59
        XCTAssertNotNil(verifier.recentlyVerified(name: "alice", password: "password-1", from: "a"))
        await assertEqual(
            await verifier.verify(name: "alice", password: "password-1", from: "a"),
            .authenticated(Principal(name: "alice", isStaff: false)))
        XCTAssertEqual(counting.lookups, 1, "within the minute: from the cache")
        clock.time += 2
        XCTAssertNil(
            verifier.recentlyVerified(name: "alice", password: "password-1", from: "a"), "past the minute the immediate path must ask again"
        )
        await assertEqual(
            await verifier.verify(name: "alice", password: "password-1", from: "a"),
            .authenticated(Principal(name: "alice", isStaff: false)))
        XCTAssertEqual(counting.lookups, 2, "past the minute: checked again")
    }

    func testVerifiedCredentialsAreCachedUntilAnyAccountChanges() async throws {
        try await store.createUser(name: "alice", passwordHash: PasswordHasher(cost: 4).hash("password-1"), isStaff: false)
        let counting = CountingAccounts(store)
        let verifier = CredentialVerifier(accounts: counting)
        await assertEqual(
            await verifier.verify(name: "alice", password: "password-1", from: "a"),
            .authenticated(Principal(name: "alice", isStaff: false)))
        await assertEqual(
            await verifier.verify(name: "alice", password: "password-1", from: "a"),
            .authenticated(Principal(name: "alice", isStaff: false)))
        XCTAssertEqual(counting.lookups, 1, "the second check is answered from the cache")
        await assertTrue(try await store.setStaff(true, forUser: "alice"))
        await assertEqual(
            await verifier.verify(name: "alice", password: "password-1", from: "a"), .authenticated(Principal(name: "alice", isStaff: true))
        )
        XCTAssertEqual(counting.lookups, 2)
        await assertTrue(try await store.deleteUser(named: "alice"))
        await assertEqual(await verifier.verify(name: "alice", password: "password-1", from: "a"), .rejected)
    }

    func testAnAccountChangeCostsARowReadNotAnotherBcrypt() async throws {
        // Several instances bump the account generation often; a credential checked
        // against the hash still stored must stay verified without bcrypt.
        let hasher = PasswordHasher(cost: 4)
        try await store.createUser(name: "alice", passwordHash: hasher.hash("password-1"), isStaff: false)
        try await store.createUser(name: "bob", passwordHash: hasher.hash("password-b"), isStaff: false)
        let checks = Mutex(0)
        let verifier = CredentialVerifier(
            accounts: store,
            checkPassword: { password, hash in
                checks.withLock { $0 += 1 }
                return PasswordHasher.verify(password, against: hash)
            })
        let alice = CredentialVerifier.Outcome.authenticated(Principal(name: "alice", isStaff: false))
        await assertEqual(await verifier.verify(name: "alice", password: "password-1", from: "a"), alice)
        XCTAssertEqual(checks.withLock { $0 }, 1)
        await assertTrue(try await store.setStaff(true, forUser: "bob"), "a change to another account")
        XCTAssertNil(verifier.recentlyVerified(name: "alice", password: "password-1", from: "a"), "memory alone is not enough now")
        await assertEqual(await verifier.verify(name: "alice", password: "password-1", from: "a"), alice)
        XCTAssertEqual(checks.withLock { $0 }, 1, "the row still holds the checked hash: no second bcrypt")
        XCTAssertNotNil(verifier.recentlyVerified(name: "alice", password: "password-1", from: "a"), "confirmed at the new generation")

        await assertTrue(try await store.setPasswordHash(hasher.hash("password-2"), forUser: "alice"))
        await assertEqual(await verifier.verify(name: "alice", password: "password-1", from: "a"), .rejected)
        await assertEqual(await verifier.verify(name: "alice", password: "password-2", from: "a"), alice)
        await assertTrue(try await store.setDisabled(true, forUser: "alice"))
        await assertEqual(await verifier.verify(name: "alice", password: "password-2", from: "a"), .rejected)
    }

    func testStaffPushRules() async throws {
        let repository = try RepositoryName(parsing: "team/app")
        let rules = AccessRules(mode: .staffPush, accounts: store)
        await assertEqual(try await rules.actions(for: nil, on: repository), [])
        await assertEqual(try await rules.actions(for: Principal(name: "u", isStaff: false), on: repository), [.pull])
        await assertEqual(try await rules.actions(for: Principal(name: "s", isStaff: true), on: repository), [.pull, .push, .delete])
    }

    func testNamespaceRoles() async throws {
        for name in ["owner", "helper", "reader", "stranger"] {
            try await store.createUser(name: name, passwordHash: PasswordHasher(cost: 4).hash("password-1"), isStaff: false)
        }
        try await store.grant(.owner, on: "team", to: "owner")
        try await store.grant(.collaborator, on: "team", to: "helper")
        try await store.grant(.consumer, on: "team", to: "reader")
        let rules = AccessRules(mode: .namespaces, accounts: store)
        let repository = try RepositoryName(parsing: "team/app")
        func actions(_ user: String) async throws -> Set<RepositoryAction> {
            try await rules.actions(for: Principal(name: user, isStaff: false), on: repository)
        }
        await assertEqual(try await actions("owner"), [.pull, .push, .delete])
        await assertEqual(try await actions("helper"), [.pull, .push])
        await assertEqual(try await actions("reader"), [.pull])
        await assertEqual(try await actions("stranger"), [])
        await assertEqual(
            try await rules.actions(for: Principal(name: "stranger", isStaff: false), on: RepositoryName(parsing: "stranger/own")),
            [.pull, .push, .delete])
    }
}

/// A settable clock for the throttle.
final class TestClock: @unchecked Sendable {
    // Only touched from the test's own thread.
    var time: Double = 1000
}

/// Counts user look-ups, to see the credential cache at work.
final class CountingAccounts: AccountStore, @unchecked Sendable {
    // The counter is only touched from the test's own thread.
    private let store: SQLiteMetadataStore
    private(set) var lookups = 0

    init(_ store: SQLiteMetadataStore) { self.store = store }

    var accountGeneration: Int { store.accountGeneration }
    func user(named name: String) async throws -> StoredUser? { lookups += 1; return try await store.user(named: name) }
    func createUser(name: String, passwordHash: String, isStaff: Bool) async throws(AccountStoreError) {
        try await store.createUser(name: name, passwordHash: passwordHash, isStaff: isStaff)
    }
    func users() async throws -> [StoredUser] { try await store.users() }
    func setPasswordHash(_ hash: String, forUser name: String) async throws -> Bool { try await store.setPasswordHash(hash, forUser: name) }
    func setStaff(_ isStaff: Bool, forUser name: String) async throws -> Bool { try await store.setStaff(isStaff, forUser: name) }
    func setDisabled(_ isDisabled: Bool, forUser name: String) async throws -> Bool {
        try await store.setDisabled(isDisabled, forUser: name)
    }
    func deleteUser(named name: String) async throws -> Bool { try await store.deleteUser(named: name) }
    func role(of user: String, in namespace: String) async throws -> NamespaceRole? { try await store.role(of: user, in: namespace) }
    func grant(_ role: NamespaceRole, on namespace: String, to user: String) async throws(AccountStoreError) {
        try await store.grant(role, on: namespace, to: user)
    }
    func revoke(namespace: String, from user: String) async throws -> Bool { try await store.revoke(namespace: namespace, from: user) }
    func namespaceExists(_ namespace: String) async throws -> Bool { try await store.namespaceExists(namespace) }
    func namespaces() async throws -> [NamespaceMembers] { try await store.namespaces() }
    func isPublic(_ repository: RepositoryName) async throws -> Bool { try await store.isPublic(repository) }
    func setPublic(_ isPublic: Bool, repository: RepositoryName) async throws -> Bool {
        try await store.setPublic(isPublic, repository: repository)
    }
}
