import XCTest

/// One writer of the push / delete / collect stress tests: pushes images whose layers are
/// partly shared with the other writers, deletes one of its images now and then, moves its
/// `latest-wN` tag. Run several at once beside collections with a short or zero grace.
///
/// ```swift
/// let alive = try await StressWriter(writer: 0, shared: shared, client: registry.client).write(rounds: 25)
/// ```
public struct StressWriter: Sendable {
    /// An image whose manifest PUT answered 201 and that the writer did not delete.
    public struct Pushed: Hashable, Sendable {
        public let repository: String
        public let manifest: [UInt8]

        public var digest: String { Fixtures.digest(manifest) }
    }

    public let writer: Int
    /// Layers every writer uses (`round` picks two of them per image).
    public let shared: [[UInt8]]
    public let client: TestHTTPClient
    /// The size of the layer each image has alone.
    public var ownLayerSize = 5000

    public init(writer: Int, shared: [[UInt8]], client: TestHTTPClient) {
        self.writer = writer
        self.shared = shared
        self.client = client
    }

    /// Writes `rounds` rounds, then more while `keepGoing` says so (at most
    /// `maximumRounds` in all): work that must overlap something of unknown length, such as
    /// a number of collections, lasts as long as that takes.
    /// - Returns: what it pushed (201) and did not delete.
    public func write(
        rounds: Int, thenWhile keepGoing: @Sendable () async -> Bool = { false }, maximumRounds: Int = 500
    ) async throws -> [Pushed] {
        var alive: [Pushed] = []
        let repository = "stress/writer\(writer % 2)"
        for round in 0..<max(rounds, maximumRounds) {
            if round >= rounds, await !keepGoing() { break }
            let own = Fixtures.bytes(ownLayerSize, seed: UInt64(writer * 10_000 + round))
            let config = Fixtures.json(["writer": writer, "round": round])
            let layers = [shared[round % shared.count], shared[(round + writer) % shared.count], own]
            let manifest = Fixtures.imageManifest(config: config, layers: layers)
            var created = false
            for _ in 0..<50 where !created {
                for blob in [config] + layers {
                    let head = try await client.send(.HEAD, "/v2/\(repository)/blobs/\(Fixtures.digest(blob))")
                    if head.status != .ok { try await client.pushBlob(repository, blob) }
                }
                // Tagged at once: with grace 0 an untagged manifest is collectable the moment it lands.
                let put = try await client.putManifest(repository, "w\(writer)-r\(round)", manifest)
                if put.status == .created {
                    created = true
                } else {
                    // A collection unlinked a layer between the HEADs and the PUT: again.
                    XCTAssertEqual(put.errorCodes, ["MANIFEST_BLOB_UNKNOWN"], put.text)
                }
            }
            XCTAssertTrue(created, "writer \(writer) round \(round): the manifest was eventually accepted")
            let pushed = Pushed(repository: repository, manifest: manifest)
            alive.append(pushed)
            if round % 3 == 2, let victim = alive.dropLast().randomElement() {
                let deleted = try await client.send(.DELETE, "/v2/\(victim.repository)/manifests/\(victim.digest)")
                if deleted.status == .accepted { alive.removeAll { $0.digest == victim.digest } }
            }
            if round % 4 == 3 {
                // Move this writer's "latest" onto the newest image.
                _ = try await client.putManifest(repository, "latest-w\(writer)", manifest)
            }
        }
        return alive
    }
}
