import Foundation
import Logging
import OCI
import RegistryTesting
import XCTest

@testable import Metadata

/// What only the PostgreSQL backend has: migrations under a lock, instances that share
/// one database and keep each other's caches current.
final class PostgresBackendTests: XCTestCase {
    private var location: PostgresLocation!
    private var stores: [PostgresMetadataStore] = []
    let repository = try! RepositoryName(parsing: "team/app")

    override func setUp() async throws {
        location = try await TestPostgres.makeDatabase()
    }

    override func tearDown() async throws {
        for store in stores { await store.close() }
        stores = []
        try await TestPostgres.dropDatabase(location)
    }

    private func open(_ instance: String) async throws -> PostgresMetadataStore {
        let store = try await PostgresMetadataStore(location: location, instance: instance)
        stores.append(store)
        return store
    }

    func testAnEmptyDatabaseIsMigratedToTheNewestVersion() async throws {
        let store = try await open("a")
        await assertEqual(try await store.schemaVersion(), PostgresMetadataStore.latestSchemaVersion)
        XCTAssertGreaterThanOrEqual(PostgresMetadataStore.latestSchemaVersion, 2)
    }

    func testAnUpgradeFromThePreviousVersionKeepsTheData() async throws {
        // The database as the previous version left it: its migrations, and rows it wrote.
        let previous = PostgresMetadataStore.latestSchemaVersion - 1
        let database = PostgresDatabase(location: location, poolSize: 2, logger: Logger(label: "test"))
        let applied = try await PostgresMigrations.apply(to: database.client, upTo: previous, logger: Logger(label: "test"))
        XCTAssertEqual(applied, Array(1...previous))
        let blob = Digest.of([1, 2, 3])
        for statement in [
            "INSERT INTO repositories (name, is_public, created_at) VALUES ('team/app', true, 1)",
            "INSERT INTO blobs (digest, size, created_at_ms) VALUES ('\(blob)', 3, 1000)",
            "INSERT INTO repository_blobs (repository_id, digest, created_at_ms) SELECT id, '\(blob)', 1000 FROM repositories",
            "INSERT INTO users (name, password_hash, is_staff, created_at, updated_at) VALUES ('alice', 'h', true, 1, 1)",
            "INSERT INTO instances (id, started_at_ms, lease_expires_at_ms) VALUES ('a', 1, 2)",
        ] {
            try await TestPostgres.administer(location, statement)
        }
        await database.close()

        let upgraded = try await open("a")
        await assertEqual(try await upgraded.schemaVersion(), PostgresMetadataStore.latestSchemaVersion)
        await assertEqual(try await upgraded.blobSize(blob, in: repository), 3)
        await assertTrue(try await upgraded.isPublic(repository))
        await assertEqual(try await upgraded.user(named: "alice")?.isStaff, true)
        let instances = try await upgraded.liveInstances()
        XCTAssertEqual(instances.map(\.id), ["a"])
        XCTAssertEqual(
            instances.first?.pid, Int64(ProcessInfo.processInfo.processIdentifier), "the new version's heartbeat columns are filled")
    }

    func testInstancesStartingAtTheSameMomentMigrateOnce() async throws {
        let location = self.location!
        let opened = try await withThrowingTaskGroup(of: PostgresMetadataStore.self) { group in
            for index in 0..<4 {
                group.addTask { try await PostgresMetadataStore(location: location, instance: "node-\(index)") }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        stores += opened
        for store in opened { await assertEqual(try await store.schemaVersion(), PostgresMetadataStore.latestSchemaVersion) }
        let applied = try await opened[0].database.read { connection in
            try await connection.rows("SELECT version FROM schema_migrations ORDER BY version") { try $0.decode(Int64.self) }
        }
        XCTAssertEqual(applied, (1...PostgresMetadataStore.latestSchemaVersion).map(Int64.init))
        await assertEqual(try await opened[0].liveInstances().map(\.id), ["node-0", "node-1", "node-2", "node-3"])
    }

    func testADatabaseFromANewerVersionIsRefusedWithAClearMessage() async throws {
        _ = try await open("a")
        try await TestPostgres.administer(location, "INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)")
        do {
            _ = try await open("b")
            XCTFail("a newer schema must be refused")
        } catch let error as MetadataError {
            XCTAssertEqual(error, .newerSchema(found: 999, known: PostgresMetadataStore.latestSchemaVersion))
            XCTAssertTrue("\(error)".contains("newer than this registryd knows"), "\(error)")
        }
    }

    func testAWriteThroughOneInstanceReachesTheOthersCacheWithinASecond() async throws {
        let a = try await open("a"), b = try await open("b")
        let tag = try Tag(parsing: "v1")
        let content = Array(#"{"schemaVersion":2}"#.utf8)
        let manifest = NewManifest(
            digest: Digest.of(content), mediaType: MediaType.ociManifest, content: content, artifactType: nil, annotationsJSON: nil,
            requiredBlobs: [], foreignBlobs: [], childManifests: [], allowMissingChildren: false, subject: nil)
        try await a.putManifest(manifest, in: repository, tags: [tag], actor: nil)
        // b reads it into its cache (again if the notification of the put, or the periodic
        // refresh, dropped it in between).
        var cached = false
        for _ in 0..<50 where !cached {
            await assertEqual(try await b.manifest(.tag(tag), in: repository)?.digest, manifest.digest)
            cached = isCached(b.cachedManifest(.tag(tag), in: repository))
        }
        XCTAssertTrue(cached, "b answers from its cache")

        let started = ContinuousClock.now
        await assertTrue(try await a.deleteManifest(manifest.digest, in: repository, actor: nil))
        while isCached(b.cachedManifest(.tag(tag), in: repository)), ContinuousClock.now - started < .seconds(1) {
            try await Task.sleep(for: .milliseconds(5))
        }
        XCTAssertFalse(isCached(b.cachedManifest(.tag(tag), in: repository)), "dropped by the notification")
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(1))
        await assertNil(try await b.manifest(.tag(tag), in: repository), "b reads the delete")
    }

    func testOnlyChangesToAccountsMakeCredentialCachesStartOver() async throws {
        // Credential caches start over on a change of users or namespaces (or a drop of
        // everything), not on every push; the cluster tests show a password change
        // refused on another instance within a second.
        for table in ["users", "namespaces", "namespace_members"] {
            XCTAssertTrue(ChangeFeed.Change.table(table).touchesAccounts, table)
        }
        for table in ["repositories", "blobs", "repository_blobs", "manifests", "manifest_references", "tags"] {
            XCTAssertFalse(ChangeFeed.Change.table(table).touchesAccounts, table)
        }
        XCTAssertTrue(ChangeFeed.Change.everything.touchesAccounts)

        // Every table the triggers announce is one of those two kinds, and only those
        // tables announce anything.
        _ = try await open("a")  // migrates the database
        let announced = try await TestPostgres.administerRows(
            location, "SELECT DISTINCT event_object_table FROM information_schema.triggers WHERE trigger_name = 'announce_change'")
        XCTAssertEqual(
            Set(announced),
            [
                "users", "namespaces", "namespace_members", "repositories", "blobs", "repository_blobs", "manifests", "manifest_references",
                "tags",
            ])
    }

    func testWithoutNotificationsNoCachedAnswerOutlivesTheRefreshInterval() async throws {
        let a = try await open("a")
        let blob = Digest.of([5])
        try await a.linkBlob(blob, size: 1, to: repository)
        await assertEqual(try await a.blobSize(blob, in: repository), 1)
        // A change made behind the backend's back sends no notification at all.
        try await TestPostgres.administer(location, "DELETE FROM repository_blobs")
        let started = ContinuousClock.now
        while isCached(a.cachedBlobSize(blob, in: repository)), ContinuousClock.now - started < .seconds(2) {
            try await Task.sleep(for: .milliseconds(10))
        }
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(1), "the cached answer went within a second")
        await assertNil(try await a.blobSize(blob, in: repository))
    }

    func testOneCollectionAtATimeAcrossInstancesAndALostHolderReleasesTheLock() async throws {
        let a = try await open("a"), b = try await open("b")
        let release = AsyncStream<Void>.makeStream()
        let started = AsyncStream<Void>.makeStream()
        let holder = Task {
            try await a.whileHoldingCollectionLock {
                started.continuation.yield()
                for await _ in release.stream { break }
                return "a collected"
            }
        }
        for await _ in started.stream { break }
        let refused = try await b.whileHoldingCollectionLock { "b collected" }
        XCTAssertNil(refused, "a holds the lock")
        let claim = try await b.collectionRunningElsewhere()
        XCTAssertEqual(claim?.instance, "a", "b sees a's run")
        await assertNil(try await a.collectionRunningElsewhere(), "a's own run is not elsewhere for a")
        release.continuation.yield()
        await assertEqual(try await holder.value, "a collected")
        await assertEqual(try await b.whileHoldingCollectionLock { "b collected" }, "b collected")
        await assertNil(try await b.collectionRunningElsewhere(), "a finished: its claim no longer counts")

        // A holder whose connection dies (its process killed) blocks no one.
        let stuck = Task { try await a.whileHoldingCollectionLock { try await Task.sleep(for: .seconds(30)) } }
        var seen = false
        for _ in 0..<100 where !seen {
            seen = try await b.collectionRunningElsewhere() != nil
            if !seen { try await Task.sleep(for: .milliseconds(20)) }
        }
        XCTAssertTrue(seen)
        try await TestPostgres.administer(
            try TestPostgres.serverLocation(),
            """
            SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 AND granted
              AND database = (SELECT oid FROM pg_database WHERE datname = '\(location.database)')
            """)
        var taken: String?
        for _ in 0..<100 where taken == nil {
            taken = try await b.whileHoldingCollectionLock { "b after a died" }
            if taken == nil { try await Task.sleep(for: .milliseconds(20)) }
        }
        XCTAssertEqual(taken, "b after a died")
        stuck.cancel()
    }

    func testAnUnreachableDatabaseIsUnavailableNotAnInternalError() async throws {
        let nowhere = try PostgresLocation(parsing: "postgres://registryd@127.0.0.1:1/none?sslmode=disable")
        do {
            _ = try await PostgresMetadataStore(location: nowhere, instance: "x")
            XCTFail("nothing listens on port 1")
        } catch let error as MetadataError {
            guard case .unavailable = error else { return XCTFail("\(error)") }
        }
    }

    func testTLSIsUsedAsSSLModeSaysAndVerifyFullChecksTheServer() async throws {
        let authority = try XCTUnwrap(try TestPostgres.settings()["POSTGRES_CA"], "scripts/postgres.sh writes POSTGRES_CA")
        func located(_ options: String) throws -> PostgresLocation {
            try PostgresLocation(parsing: "postgres://\(location.user)@\(location.host):\(location.port)/\(location.database)?\(options)")
                .withPassword(configured: location.password, environment: [:])
        }
        /// Whether a connection of the store's pool is encrypted, as PostgreSQL reports it.
        func encrypted(_ store: PostgresMetadataStore) async throws -> Bool? {
            try await store.database.read { connection in
                try await connection.first("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") { try $0.decode(Bool.self) }
            }
        }
        let blob = Digest.of([7])
        for (name, options, wantsTLS) in [
            ("plain", "sslmode=disable", false), ("required", "sslmode=require", true),
            ("verified", "sslmode=verify-full&sslrootcert=\(authority)", true),
        ] {
            let store = try await PostgresMetadataStore(location: try located(options), instance: name)
            stores.append(store)
            try await store.linkBlob(blob, size: 1, to: repository)
            await assertEqual(try await store.blobSize(blob, in: repository), 1, name)
            await assertEqual(try await encrypted(store), wantsTLS, name)
            await store.close()
            stores.removeLast()
        }
        XCTAssertEqual(try located("sslmode=verify-full&sslrootcert=\(authority)").description.contains(authority), true)

        // The same server checked against the system's trust store, which does not know
        // the private CA: refused.
        do {
            _ = try await PostgresMetadataStore(location: try located("sslmode=verify-full"), instance: "refused")
            XCTFail("verify-full without the private CA must not connect")
        } catch let error as MetadataError {
            guard case .unavailable = error else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".lowercased().contains("certificate"), "\(error)")
        }
        // A CA file that cannot be read is a configuration error, said before connecting.
        do {
            _ = try await PostgresMetadataStore(location: try located("sslmode=verify-full&sslrootcert=/nonexistent/ca.crt"), instance: "x")
            XCTFail("an unreadable sslrootcert must be refused")
        } catch let error as MetadataError {
            guard case .backend = error else { return XCTFail("\(error)") }
        }
    }

    /// Whether a cache peek found an answer (`.some`, even a cached "none").
    private func isCached<T>(_ peek: T??) -> Bool {
        if case .some = peek { return true }
        return false
    }
}
