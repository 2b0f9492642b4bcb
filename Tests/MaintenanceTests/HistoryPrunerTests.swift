import Foundation
import Maintenance
import OCI
import RegistryTesting
import XCTest

@testable import Metadata

/// Tag history and the audit log keep their retention and no more, so a busy registry's
/// database stops growing once the oldest rows age out (the soak run showed it growing
/// without bound before).
final class HistoryPrunerTests: XCTestCase {
    var directory: String!
    var store: SQLiteMetadataStore!
    let repository = try! RepositoryName(parsing: "team/app")

    override func setUp() async throws {
        directory = try makeTemporaryDirectory(prefix: "registryd-history")
        store = try SQLiteMetadataStore(path: directory + "/registry.db")
    }

    override func tearDown() async throws {
        store = nil
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Seven moves of one tag and seven audit records; the first four of each made
    /// `age` seconds ago, the rest now.
    func recordHistory(agingTheFirstFourBy age: Int64) async throws {
        let tag = try Tag(parsing: "latest")
        for index in 0..<7 {
            let content = Array("manifest \(index)".utf8)
            let manifest = NewManifest(
                digest: Digest.of(content), mediaType: MediaType.ociManifest, content: content, artifactType: nil, annotationsJSON: nil,
                requiredBlobs: [], foreignBlobs: [], childManifests: [], allowMissingChildren: false, subject: nil)
            try await store.putManifest(manifest, in: repository, tags: [tag], actor: "pusher\(index)")
            try await store.recordAudit(actor: "uid 0 (root)", method: "user.create", params: #"{"name":"user\#(index)"}"#)
        }
        try await store.database.write { connection in
            try connection.query(
                "UPDATE tag_history SET at = at - ? WHERE id IN (SELECT id FROM tag_history ORDER BY id LIMIT 4)", [.integer(age)])
            try connection.query(
                "UPDATE audit_log SET at = at - ? WHERE id IN (SELECT id FROM audit_log ORDER BY id LIMIT 4)", [.integer(age)])
        }
    }

    func testRowsPastTheirRetentionGoInBatchesAndNewerOnesStay() async throws {
        try await recordHistory(agingTheFirstFourBy: 10_000)
        let pruner = HistoryPruner(metadata: store, retention: .init(tagHistory: 5_000, audit: 5_000), batch: 3)
        let report = try await pruner.prune(now: UnixTime.seconds())
        XCTAssertEqual(report, HistoryPruner.Report(tagMoves: 4, auditEntries: 4), "two batches of three drain four old rows")
        let moves = try await store.tagHistory(in: repository, tag: nil, limit: 100)
        XCTAssertEqual(moves.map(\.actor), ["pusher6", "pusher5", "pusher4"])
        await assertEqual(try await store.auditEntries(limit: 100).compactMap(\.params), [6, 5, 4].map { #"{"name":"user\#($0)"}"# })
        await assertEqual(try await pruner.prune(now: UnixTime.seconds()), HistoryPruner.Report(), "nothing more is old enough")
        // The tag itself is not history: it still points at the last push.
        await assertEqual(try await store.tags(in: repository, after: nil, limit: 10), ["latest"])
    }

    func testEachKindKeepsItsOwnRetentionAndForeverKeepsEverything() async throws {
        try await recordHistory(agingTheFirstFourBy: 10_000)
        let onlyTags = HistoryPruner(metadata: store, retention: .init(tagHistory: 5_000, audit: nil))
        await assertEqual(try await onlyTags.prune(now: UnixTime.seconds()), HistoryPruner.Report(tagMoves: 4, auditEntries: 0))
        await assertEqual(try await store.auditEntries(limit: 100).count, 7)
        let longAudit = HistoryPruner(metadata: store, retention: .init(tagHistory: 5_000, audit: 20_000))
        await assertEqual(
            try await longAudit.prune(now: UnixTime.seconds()).auditEntries, 0, "ten thousand seconds is within twenty thousand")
    }

    func testPruningRunsHourlyOrAtHalfTheShortestRetention() async {
        XCTAssertEqual(HistoryPruner.Retention(tagHistory: 90 * 86_400, audit: 365 * 86_400).interval, 3600)
        XCTAssertEqual(HistoryPruner.Retention(tagHistory: 600, audit: 365 * 86_400).interval, 300)
        XCTAssertEqual(HistoryPruner.Retention(tagHistory: nil, audit: 120).interval, 60)
        XCTAssertNil(HistoryPruner.Retention(tagHistory: nil, audit: nil).interval)
    }
}
