import Foundation
import OCI
import RegistryTesting
import XCTest

@testable import Metadata

/// What every metadata backend promises, run against each (SQLite, PostgreSQL) as the
/// storage drivers share `StorageDriverContract`. A backend's class overrides `makeStore`
/// (and `closeStore`); this base class only skips.
class MetadataStoreContract: XCTestCase {
    var store: (any MetadataBackend)!
    let repository = try! RepositoryName(parsing: "team/app")

    /// Overridden by each backend's test class: a new, empty store.
    func makeStore(instance: String) async throws -> any MetadataBackend { throw XCTSkip("abstract contract") }
    /// Overridden to remove what `makeStore` made.
    func removeStores() async throws {}

    override func setUp() async throws {
        store = try await makeStore(instance: "contract-1")
    }

    override func tearDown() async throws {
        await store?.close()
        store = nil
        try await removeStores()
    }

    func manifest(_ content: String, blobs: [Digest] = [], children: [Digest] = [], subject: Digest? = nil) -> NewManifest {
        NewManifest(
            digest: Digest.of(Array(content.utf8)), mediaType: MediaType.ociManifest, content: Array(content.utf8),
            artifactType: nil, annotationsJSON: nil, requiredBlobs: blobs, foreignBlobs: [], childManifests: children,
            allowMissingChildren: false, subject: subject)
    }

    func testConcurrentWritesEachSucceedOrFailAloneAndAFailedOneChangesNothing() async throws {
        let store = self.store!
        let manifests = (0..<32).map { index in manifest("m\(index)", blobs: [Digest.of([UInt8(index), index % 3 == 0 ? 9 : 7])]) }
        let outcomes = await withTaskGroup(of: (Int, Bool).self) { group in
            for index in 0..<32 {
                group.addTask {
                    let repository = try! RepositoryName(parsing: "group/r\(index)")
                    do {
                        if index % 3 != 0 { try await store.linkBlob(Digest.of([UInt8(index), 7]), size: 2, to: repository) }
                        // index % 3 == 0 refers to a blob never linked: refused, its tag must not appear.
                        try await store.putManifest(manifests[index], in: repository, tags: [try Tag(parsing: "v1")], actor: nil)
                        return (index, true)
                    } catch {
                        return (index, false)
                    }
                }
            }
            return await group.reduce(into: [Int: Bool]()) { $0[$1.0] = $1.1 }
        }
        for index in 0..<32 {
            let repository = try RepositoryName(parsing: "group/r\(index)")
            XCTAssertEqual(outcomes[index], index % 3 != 0, "write \(index)")
            let tags = try await store.tags(in: repository, after: nil, limit: 10)
            XCTAssertEqual(tags, index % 3 == 0 ? nil : ["v1"], "\(repository)")
        }
    }

    func testRepositoriesAndTagsAreListedInByteOrderPageByPage() async throws {
        let names = ["a/b", "a-b/c", "B/x", "a/B", "a_b/c"]
        for name in names {
            try await store.linkBlob(Digest.of(Array(name.utf8)), size: 1, to: RepositoryName(parsing: name.lowercased()))
        }
        let expected = Set(names.map { $0.lowercased() }).sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        var listed: [String] = []
        var last: String?
        while true {
            let page = try await store.repositoryNames(after: last, limit: 2).map(\.value)
            listed += page
            guard page.count == 2 else { break }
            last = page.last
        }
        XCTAssertEqual(listed, expected)
        let target = manifest("tagged")
        let tags = ["v1.10", "v1.9", "V2", "latest", "v1_0", "v1-0"]
        try await store.putManifest(target, in: repository, tags: try tags.map { try Tag(parsing: $0) }, actor: nil)
        let listedTags = try await unwrap(try await store.tags(in: repository, after: "v1-0", limit: 10))
        XCTAssertEqual(listedTags, tags.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }.filter { $0 > "v1-0" })
    }

    func testAccountsRolesAndVisibility() async throws {
        let before = store.accountGeneration
        try await store.createUser(name: "alice", passwordHash: "hash-1", isStaff: false)
        XCTAssertGreaterThan(store.accountGeneration, before, "a change is visible to caches at once")
        await assertThrows(try await store.createUser(name: "alice", passwordHash: "x", isStaff: true)) {
            XCTAssertEqual($0 as? AccountStoreError, .userExists("alice"))
        }
        await assertTrue(try await store.setPasswordHash("hash-2", forUser: "alice"))
        await assertTrue(try await store.setStaff(true, forUser: "alice"))
        await assertFalse(try await store.setStaff(true, forUser: "nobody"))
        let alice = try await unwrap(try await store.user(named: "alice"))
        XCTAssertEqual(alice.passwordHash, "hash-2")
        XCTAssertTrue(alice.isStaff)
        XCTAssertFalse(alice.isDisabled)
        await assertThrows(try await store.grant(.owner, on: "team", to: "nobody")) {
            XCTAssertEqual($0 as? AccountStoreError, .userUnknown("nobody"))
        }
        try await store.grant(.collaborator, on: "team", to: "alice")
        try await store.grant(.owner, on: "team", to: "alice")
        await assertEqual(try await store.role(of: "alice", in: "team"), .owner)
        await assertTrue(try await store.namespaceExists("team"))
        await assertEqual(try await store.namespaces(), [NamespaceMembers(namespace: "team", members: ["alice": .owner])])
        await assertTrue(try await store.revoke(namespace: "team", from: "alice"))
        await assertEqual(try await store.namespaces(), [NamespaceMembers(namespace: "team", members: [:])])
        await assertFalse(try await store.setPublic(true, repository: repository), "an unknown repository")
        try await store.linkBlob(Digest.of([1]), size: 1, to: repository)
        await assertTrue(try await store.setPublic(true, repository: repository))
        await assertTrue(try await store.isPublic(repository))
        await assertTrue(try await store.setDisabled(true, forUser: "alice"))
        await assertEqual(try await store.user(named: "alice")?.isDisabled, true)
        await assertTrue(try await store.deleteUser(named: "alice"))
        await assertNil(try await store.user(named: "alice"))
        await assertEqual(try await store.users(), [])
    }

    func testAPinnedBlobIsNeverMarkedAndAMarkedOneIsNeverPinned() async throws {
        let blob = Digest.of([3, 3])
        let upload = UploadID.generate()
        await assertTrue(try await store.pinBlob(blob, size: 2, for: upload))
        await assertTrue(try await store.isPinned(blob))
        let cutoff = UnixTime.milliseconds() + 1_000
        await assertFalse(try await store.markForDeletion(blob, olderThan: cutoff), "pinned")
        try await store.unpinBlob(for: upload)
        await assertFalse(try await store.isPinned(blob))
        await assertEqual(try await store.collectableBlobs(olderThan: cutoff, limit: 10).map(\.digest), [blob])
        await assertTrue(try await store.markForDeletion(blob, olderThan: cutoff))
        await assertFalse(try await store.pinBlob(blob, size: 2, for: .generate()), "being deleted: the upload waits")
        await assertThrows(try await store.linkBlob(blob, size: 2, to: repository)) {
            XCTAssertEqual($0 as? MetadataError, .blobBeingDeleted(blob))
        }
        await assertEqual(try await store.blobsMarkedForDeletion(limit: 10), [blob])
        try await store.finishDeletion(blob)
        await assertFalse(try await store.hasBlobRow(blob))
        await assertTrue(try await store.pinBlob(blob, size: 2, for: .generate()), "gone: a new upload starts afresh")
    }

    func testPinsRaceMarksAndExactlyOneSideWins() async throws {
        // The collection's mark and an upload's pin of the same blob, many times at once:
        // after each round either the blob is marked and unpinned, or pinned and unmarked.
        let store = self.store!
        for round in 0..<20 {
            let blob = Digest.of([7, UInt8(round)])
            try await store.linkBlob(blob, size: 2, to: repository)
            await assertTrue(try await store.unlinkBlob(blob, from: repository))
            let cutoff = UnixTime.milliseconds() + 1_000
            async let pinned = store.pinBlob(blob, size: 2, for: .generate())
            async let marked = store.markForDeletion(blob, olderThan: cutoff)
            let (pin, mark) = try await (pinned, marked)
            XCTAssertNotEqual(pin, mark, "round \(round): exactly one of pin (\(pin)) and mark (\(mark)) succeeds")
            if mark { try await store.finishDeletion(blob) }
        }
    }

    func testACollectionKeepsWhatManifestsAndTagsHold() async throws {
        let layer = Digest.of([4])
        try await store.linkBlob(layer, size: 1, to: repository)
        let tagged = manifest("tagged", blobs: [layer]), untagged = manifest("untagged", blobs: [layer])
        try await store.putManifest(tagged, in: repository, tags: [try Tag(parsing: "v1")], actor: nil)
        try await store.putManifest(untagged, in: repository, tags: [], actor: nil)
        let cutoff = UnixTime.milliseconds() + 1_000
        let candidates = try await store.untaggedManifests(olderThan: cutoff, limit: 10)
        XCTAssertEqual(candidates.map(\.digest), [untagged.digest.description])
        await assertTrue(try await store.deleteManifestIfCollectable(candidates[0], olderThan: cutoff))
        await assertEqual(try await store.staleLinks(olderThan: cutoff, limit: 10), [], "the tagged manifest still uses the layer")
        await assertEqual(try await store.collectableBlobs(olderThan: cutoff, limit: 10), [])
        await assertTrue(try await store.deleteManifest(tagged.digest, in: repository, actor: "gc-test"))
        let stale = try await store.staleLinks(olderThan: cutoff, limit: 10)
        XCTAssertEqual(stale, [StaleLink(repository: repository.value, digest: layer.description)])
        await assertTrue(try await store.deleteLinkIfStale(stale[0], olderThan: cutoff))
        await assertEqual(try await store.collectableBlobs(olderThan: cutoff, limit: 10).map(\.digest), [layer])
        await assertEqual(try await store.tagHistory(in: repository, tag: nil, limit: 10).map(\.actor), ["gc-test", nil])
    }

    func testAuditAndHistoryArePrunedOldestFirst() async throws {
        try await store.recordAudit(actor: "root", method: "user.create", params: #"{"name":"a"}"#)
        try await store.recordAudit(actor: "root", method: "user.delete", params: nil)
        await assertEqual(try await store.auditEntries(limit: 10).map(\.method), ["user.delete", "user.create"])
        await assertEqual(try await store.pruneAudit(before: UnixTime.seconds() + 10, limit: 1), 1)
        await assertEqual(try await store.auditEntries(limit: 10).count, 1)
        try await store.putManifest(manifest("h"), in: repository, tags: [try Tag(parsing: "t")], actor: "a")
        await assertEqual(try await store.pruneTagHistory(before: UnixTime.seconds() + 10, limit: 100), 1)
    }

    func testRepositoryDeletionReturnsItsUploadsAndSummaryCountsBlobs() async throws {
        let layer = Digest.of([8, 8])
        try await store.linkBlob(layer, size: 100, to: repository)
        try await store.putManifest(manifest("s", blobs: [layer]), in: repository, tags: [try Tag(parsing: "v1")], actor: nil)
        let session = UploadSession(id: .generate(), repository: repository, principal: nil, algorithm: .sha256, createdAt: 1)
        try await store.createUpload(session)
        await assertEqual(try await store.uploadCount(principal: nil), 1)
        await assertEqual(try await store.uploads(limit: 10).map(\.session.id), [session.id])
        let summary = try await unwrap(try await store.repositorySummary(repository))
        XCTAssertEqual(summary.tags.map(\.tag), ["v1"])
        XCTAssertEqual(summary.blobBytes, 100)
        XCTAssertEqual(summary.manifests.count, 1)
        await assertEqual(try await store.statistics().manifests, 1)
        await assertEqual(try await store.deleteRepository(repository), [session.id])
        await assertNil(try await store.repositorySummary(repository))
        await assertNil(try await store.deleteRepository(repository))
    }

    func testTheHeartbeatListsThisInstance() async throws {
        try await store.renewInstanceLease()
        let instances = try await store.liveInstances()
        XCTAssertEqual(instances.map(\.id), ["contract-1"])
        XCTAssertEqual(instances.first?.pid, Int64(ProcessInfo.processInfo.processIdentifier))
        XCTAssertGreaterThan(instances.first?.leaseExpiresAtMilliseconds ?? 0, UnixTime.milliseconds())
    }

    func testManifestNeedsItsBlobsLinkedInTheSameRepository() async throws {
        let blob = Digest.of([1])
        await assertThrows(try await store.putManifest(manifest("m", blobs: [blob]), in: repository, tags: [], actor: nil)) {
            XCTAssertEqual($0 as? PutManifestError, .blobUnknown(blob))
        }
        try await store.linkBlob(blob, size: 1, to: RepositoryName(parsing: "other"))
        await assertThrows(try await store.putManifest(manifest("m", blobs: [blob]), in: repository, tags: [], actor: nil))
        try await store.linkBlob(blob, size: 1, to: repository)
        await assertNoThrow(try await store.putManifest(manifest("m", blobs: [blob]), in: repository, tags: [], actor: nil))
    }

    func testIndexNeedsItsChildren() async throws {
        let child = manifest("child")
        await assertThrows(try await store.putManifest(manifest("index", children: [child.digest]), in: repository, tags: [], actor: nil)) {
            XCTAssertEqual($0 as? PutManifestError, .manifestUnknown(child.digest))
        }
        try await store.putManifest(child, in: repository, tags: [], actor: nil)
        await assertNoThrow(try await store.putManifest(manifest("index", children: [child.digest]), in: repository, tags: [], actor: nil))
    }

    func testTagMovesAreRecordedWithActor() async throws {
        let first = manifest("one"), second = manifest("two")
        let tag = try Tag(parsing: "latest")
        try await store.putManifest(first, in: repository, tags: [tag], actor: "alice")
        try await store.putManifest(first, in: repository, tags: [tag], actor: "alice")
        try await store.putManifest(second, in: repository, tags: [tag], actor: "bob")
        await assertTrue(try await store.deleteTag(tag, in: repository, actor: "carol"))
        let history = try await store.tagHistory(tag, in: repository)
        XCTAssertEqual(history.map(\.actor), ["carol", "bob", "alice"], "re-pushing the same digest is not a move")
        XCTAssertEqual(history[1].oldDigest, first.digest.description)
        XCTAssertEqual(history[1].newDigest, second.digest.description)
        XCTAssertNil(history[0].newDigest)
        XCTAssertNil(history[2].oldDigest)
    }

    func testCachedAnswersNeverOutliveAWrite() async throws {
        // The hot reads are cached in memory; every write must make them current again,
        // including answers that were "nothing there".
        let tag = try Tag(parsing: "v1")
        await assertNil(try await store.tags(in: repository, after: nil, limit: 10))
        await assertNil(try await store.manifest(.tag(tag), in: repository))
        await assertFalse(try await store.isPublic(repository))
        let blob = Digest.of([9])
        await assertNil(try await store.blobSize(blob, in: repository))

        let first = manifest("first"), second = manifest("second")
        try await store.putManifest(first, in: repository, tags: [tag], actor: nil)
        await assertEqual(try await store.tags(in: repository, after: nil, limit: 10), ["v1"])
        await assertEqual(try await store.manifest(.tag(tag), in: repository)?.digest, first.digest)
        await assertEqual(
            try await store.manifest(.tag(tag), in: repository)?.digest, first.digest, "a second read (from the cache) agrees")
        try await store.putManifest(second, in: repository, tags: [tag], actor: nil)
        await assertEqual(try await store.manifest(.tag(tag), in: repository)?.digest, second.digest, "the tag moved")
        await assertTrue(try await store.setPublic(true, repository: repository))
        await assertTrue(try await store.isPublic(repository))
        try await store.linkBlob(blob, size: 1, to: repository)
        await assertEqual(try await store.blobSize(blob, in: repository), 1)
        await assertTrue(try await store.deleteTag(tag, in: repository, actor: nil))
        await assertNil(try await store.manifest(.tag(tag), in: repository))
        await assertEqual(try await store.tags(in: repository, after: nil, limit: 10), [])
    }

    func testMountRequiresTheSourceToHoldTheBlob() async throws {
        let blob = Digest.of([5])
        let source = try RepositoryName(parsing: "source")
        await assertNil(try await store.mountBlob(blob, from: source, to: repository))
        try await store.linkBlob(blob, size: 1, to: source)
        await assertEqual(try await store.mountBlob(blob, from: source, to: repository), 1)
        await assertEqual(try await store.blobSize(blob, in: repository), 1)
        await assertEqual(try await store.repositoriesLinking(blob, limit: 10).map(\.value), ["source", "team/app"])
    }

    func testUploadSessionsPersistTheirSize() async throws {
        let session = UploadSession(id: .generate(), repository: repository, principal: "alice", algorithm: .sha512, createdAt: 1)
        try await store.createUpload(session)
        try await store.setUploadSize(session.id, size: 42)
        let loaded = try await unwrap(try await store.upload(session.id))
        XCTAssertEqual(loaded.size, 42)
        XCTAssertEqual(loaded.principal, "alice")
        XCTAssertEqual(loaded.algorithm, .sha512)
        try await store.deleteUpload(session.id)
        await assertNil(try await store.upload(session.id))
    }

    func testReferrersAreFoundBySubjectAndFilteredByType() async throws {
        let subject = Digest.of([9])
        var signed = manifest("sig", subject: subject)
        signed = NewManifest(
            digest: signed.digest, mediaType: signed.mediaType, content: signed.content, artifactType: "application/vnd.sig",
            annotationsJSON: #"{"a":"b"}"#, requiredBlobs: [], foreignBlobs: [], childManifests: [], allowMissingChildren: false,
            subject: subject)
        try await store.putManifest(signed, in: repository, tags: [], actor: nil)
        try await store.putManifest(manifest("unrelated"), in: repository, tags: [], actor: nil)
        await assertEqual(try await store.referrers(of: subject, in: repository, artifactType: nil).map(\.digest), [signed.digest])
        await assertEqual(try await store.referrers(of: subject, in: repository, artifactType: "application/vnd.other"), [])
        await assertEqual(
            try await store.referrers(of: subject, in: repository, artifactType: "application/vnd.sig").first?.annotationsJSON,
            #"{"a":"b"}"#)
    }
}
