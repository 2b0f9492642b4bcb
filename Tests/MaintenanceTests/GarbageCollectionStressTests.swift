import Foundation
import Maintenance
import Metadata
import OCI
import RegistryTesting
import Storage
import Synchronization
import XCTest

/// Several writers push images that share layers, delete manifests and move tags
/// while collections run back to back with a grace period of a quarter second. Afterwards every
/// manifest whose PUT returned 201 and was not deleted pulls completely with verified
/// digests, and the bytes of everything unreferenced are gone.
class GarbageCollectionStressTests: XCTestCase {
    /// Where the metadata lives (`GarbageCollectionStressTestsOnPostgres` runs it on PostgreSQL).
    class var metadataKind: TestRegistry.MetadataKind { .sqlite }

    /// Rounds per writer; `REGISTRYD_GC_STRESS_ROUNDS` runs longer on demand.
    let rounds = Int(ProcessInfo.processInfo.environment["REGISTRYD_GC_STRESS_ROUNDS"] ?? "") ?? 25
    let writers = 4

    func testConcurrentPushesNeverLoseABlobToCollection() async throws {
        let registry = try await TestRegistry.start(metadata: Self.metadataKind)
        let collector = GarbageCollector(metadata: registry.metadata, blobs: registry.blobs)
        let shared = (0..<3).map { Fixtures.bytes(20_000, seed: 1000 + UInt64($0)) }
        let stop = ManagedAtomicFlag()

        let collections = Task {
            var runs = 0
            while !stop.isSet {
                // A quarter second: long enough for a writer to go from its blob pushes
                // to its manifest PUT (with grace 0 a collection unlinks the layers in
                // between, by design, and the writer would retry forever), short enough
                // that blobs unlinked moments ago are collected while others push them again.
                _ = try await collector.run(GarbageCollector.Options(deleteUntagged: true, grace: .milliseconds(250), uploadTTL: 3600))
                runs += 1
                try await Task.sleep(for: .milliseconds(2))
            }
            return runs
        }

        let rounds = self.rounds
        let client = registry.client
        let survivors = try await withThrowingTaskGroup(of: [StressWriter.Pushed].self) { group in
            for writer in 0..<writers {
                group.addTask { try await StressWriter(writer: writer, shared: shared, client: client).write(rounds: rounds) }
            }
            var all = Set<StressWriter.Pushed>()
            for try await pushed in group { all.formUnion(pushed) }
            return all
        }
        stop.set()
        let runs = try await collections.value
        XCTAssertGreaterThan(runs, 5, "collections ran alongside the pushes")
        XCTAssertFalse(survivors.isEmpty)

        // Every manifest that was acknowledged and not deleted pulls completely.
        for pushed in survivors {
            let manifest = try await registry.client.send(
                .GET, "/v2/\(pushed.repository)/manifests/\(pushed.digest)", headers: [("Accept", "*/*")])
            XCTAssertEqual(manifest.status, .ok, "\(pushed)")
            guard manifest.status == .ok else { continue }
            let document = try manifest.json()
            let config = try XCTUnwrap(document["config"] as? [String: Any])
            let layers = try XCTUnwrap(document["layers"] as? [[String: Any]])
            for descriptor in [config] + layers {
                let digest = try XCTUnwrap(descriptor["digest"] as? String)
                let blob = try await registry.client.send(.GET, "/v2/\(pushed.repository)/blobs/\(digest)")
                XCTAssertEqual(blob.status, .ok, "\(pushed.repository) \(digest)")
                XCTAssertEqual(Fixtures.digest(blob.body), digest, "bytes verify")
            }
        }

        // One more collection with nothing running, dropping untagged manifests too:
        // afterwards the only bytes left are those of tagged images.
        _ = try await collector.run(GarbageCollector.Options(deleteUntagged: true, grace: .zero))
        var referenced = Set<String>()
        for name in try await registry.metadata.repositoryNames(after: nil, limit: 1000) {
            for tag in try await registry.metadata.tags(in: name, after: nil, limit: 1000) ?? [] {
                let manifest = try await registry.client.send(.GET, "/v2/\(name.value)/manifests/\(tag)", headers: [("Accept", "*/*")])
                let document = try manifest.json()
                referenced.insert((document["config"] as? [String: Any])?["digest"] as? String ?? "")
                for layer in document["layers"] as? [[String: Any]] ?? [] { referenced.insert(layer["digest"] as? String ?? "") }
            }
        }
        let stored = Set(try await registry.blobs.driver.list(under: StoragePath(["blobs"])).map { "\($0.segments[1]):\($0.segments[3])" })
        XCTAssertEqual(stored, referenced, "the bytes of everything no tagged image needs are gone")
        let verification = try await StorageVerifier(metadata: registry.metadata, blobs: registry.blobs).verify(sample: nil, repair: false)
        XCTAssertTrue(verification.isClean, "storage verify: \(verification)")
        await registry.stop()
    }
}

/// The same stress on PostgreSQL: SERIALIZABLE transactions and their retries instead of
/// SQLite's single writer must keep every acknowledged image whole.
final class GarbageCollectionStressTestsOnPostgres: GarbageCollectionStressTests {
    override class var metadataKind: TestRegistry.MetadataKind { .postgres }

    func testTheStressRunsOnPostgres() async throws {
        let registry = try await TestRegistry.start(metadata: Self.metadataKind)
        XCTAssertTrue(registry.metadata is PostgresMetadataStore)
        await registry.stop()
    }
}

/// A set-once flag shared between tasks.
final class ManagedAtomicFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .acquiring) }
    func set() { flag.store(true, ordering: .releasing) }
}
