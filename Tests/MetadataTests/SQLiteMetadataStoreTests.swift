import Foundation
import OCI
import RegistryTesting
import Synchronization
import XCTest

@testable import Metadata

/// The metadata rules the API relies on, straight against SQLite.
final class SQLiteMetadataStoreTests: XCTestCase {
    var directory: String!
    var store: SQLiteMetadataStore!
    let repository = try! RepositoryName(parsing: "team/app")

    override func setUp() async throws {
        directory = NSTemporaryDirectory() + "/registryd-meta-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        store = try SQLiteMetadataStore(path: directory + "/registry.db")
    }

    override func tearDown() async throws {
        store = nil
        try? FileManager.default.removeItem(atPath: directory)
    }

    func manifest(_ content: String, blobs: [Digest] = [], children: [Digest] = [], subject: Digest? = nil) -> NewManifest {
        NewManifest(
            digest: Digest.of(Array(content.utf8)), mediaType: MediaType.ociManifest, content: Array(content.utf8),
            artifactType: nil, annotationsJSON: nil, requiredBlobs: blobs, foreignBlobs: [], childManifests: children,
            allowMissingChildren: false, subject: subject)
    }

    func testConcurrentWritesCommitTogetherAndAFailedOneChangesNothing() async throws {
        // Writes from many threads at once share commits; each succeeds or fails alone.
        let store = self.store!
        let manifests = (0..<48).map { index in
            manifest("m\(index)", blobs: [Digest.of([UInt8(index), index % 3 == 0 ? 9 : 7])])
        }
        let outcomes = await withTaskGroup(of: (Int, Bool).self) { group in
            for index in 0..<48 {
                group.addTask {
                    let repository = try! RepositoryName(parsing: "group/r\(index)")
                    let blob = Digest.of([UInt8(index), 7])
                    do {
                        if index % 3 == 0 {
                            // Refers to a blob never linked: refused, and its tag must not appear.
                            try await store.putManifest(manifests[index], in: repository, tags: [try Tag(parsing: "v1")], actor: nil)
                        } else {
                            try await store.linkBlob(blob, size: 2, to: repository)
                            try await store.putManifest(manifests[index], in: repository, tags: [try Tag(parsing: "v1")], actor: nil)
                        }
                        return (index, true)
                    } catch {
                        return (index, false)
                    }
                }
            }
            return await group.reduce(into: [Int: Bool]()) { $0[$1.0] = $1.1 }
        }
        let reopened = try SQLiteMetadataStore(path: directory + "/registry.db")
        for index in 0..<48 {
            let repository = try RepositoryName(parsing: "group/r\(index)")
            let succeeded = outcomes[index]
            XCTAssertEqual(succeeded, index % 3 != 0, "write \(index)")
            let tags = try await reopened.tags(in: repository, after: nil, limit: 10)
            if index % 3 == 0 {
                XCTAssertNil(tags, "the refused manifest left nothing behind in \(repository)")
            } else {
                XCTAssertEqual(tags, ["v1"], "\(repository)")
                await assertEqual(try await reopened.blobSize(Digest.of([UInt8(index), 7]), in: repository), 2)
            }
        }
    }

    func testReopeningAppliesNoMigrationTwiceAndKeepsData() async throws {
        let blob = Digest.of([1])
        try await store.linkBlob(blob, size: 1, to: repository)
        store = nil
        let reopened = try SQLiteMetadataStore(path: directory + "/registry.db")
        await assertEqual(try await reopened.blobSize(blob, in: repository), 1)
        await assertEqual(try await reopened.schemaVersion(), SQLiteMetadataStore.latestSchemaVersion)
        XCTAssertEqual(
            SQLiteMetadataStore.latestSchemaVersion, 7, "a new migration needs its predecessor's fixture (Fixtures/make-schema-fixtures.py)"
        )
    }

    /// Databases as every earlier schema version left them (`Fixtures/schema-N.db`, made by
    /// `Fixtures/make-schema-fixtures.py`), migrated to the newest: every fact stays.
    func testEveryEarlierSchemaMigratesToTheNewestKeepingItsData() async throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path
        let config = try Digest(parsing: "sha256:" + String(repeating: "1", count: 64))
        let layer = try Digest(parsing: "sha256:" + String(repeating: "2", count: 64))
        let pinned = try Digest(parsing: "sha256:" + String(repeating: "4", count: 64))
        for version in 1..<SQLiteMetadataStore.latestSchemaVersion {
            let path = directory + "/schema-\(version).db"
            try FileManager.default.copyItem(atPath: fixtures + "/schema-\(version).db", toPath: path)
            let migrated = try SQLiteMetadataStore(path: path)
            await assertEqual(try await migrated.schemaVersion(), SQLiteMetadataStore.latestSchemaVersion, "from \(version)")
            await assertEqual(try await migrated.blobSize(config, in: repository), 2, "from \(version)")
            await assertEqual(try await migrated.blobSize(layer, in: repository), 3, "from \(version)")
            let manifest = try await unwrap(try await migrated.manifest(.tag(try Tag(parsing: "v1")), in: repository), "from \(version)")
            XCTAssertEqual(manifest.digest.description, "sha256:" + String(repeating: "3", count: 64))
            await assertEqual(try await migrated.tags(in: repository, after: nil, limit: 10), ["v1"])
            await assertEqual(
                try await migrated.upload(try UploadID(parsing: "0b5f1a7e-1111-4222-8333-944455556666"))?.size, 7, "from \(version)")
            let ages = try migrated.database.read { connection in
                try connection.first(
                    "SELECT b.created_at_ms, rb.created_at_ms FROM blobs b JOIN repository_blobs rb ON rb.digest = b.digest WHERE b.digest = ?",
                    [.text(config.description)]
                ) { [$0.integer(0), $0.integer(1)] }
            }
            XCTAssertEqual(ages, [1_700_000_000_000, 1_700_000_001_000], "collection ages in milliseconds, from \(version)")
            await assertEqual(try await migrated.tagHistory(in: repository, tag: nil, limit: 10).map(\.actor), ["admin"], "from \(version)")
            if version >= 2 {
                await assertEqual(try await migrated.user(named: "admin")?.isStaff, true, "from \(version)")
                await assertEqual(try await migrated.role(of: "admin", in: "team"), .owner, "from \(version)")
            }
            if version >= 3 {
                await assertEqual(try await migrated.auditEntries(limit: 10).map(\.method), ["user.create"], "from \(version)")
            }
            if version >= 4 {
                await assertFalse(try await migrated.isPinned(pinned), "a counted pin belonged to a process that is gone")
            }
        }
    }

    func testAnUploadRowWithAnUnknownAlgorithmIsDamagedNotSha256() async throws {
        let session = UploadSession(id: .generate(), repository: repository, principal: nil, algorithm: .sha512, createdAt: 1)
        try await store.createUpload(session)
        try await store.database.write { try $0.query("UPDATE upload_sessions SET digest_algorithm = 'md5'") }
        await assertThrows(try await store.upload(session.id)) {
            guard case MetadataError.damagedRow(let message) = $0 else { return XCTFail("\($0)") }
            XCTAssertTrue(message.contains("md5"), message)
        }
        await assertThrows(try await store.uploads(limit: 10), "the listing reads rows the same way")
    }
}
