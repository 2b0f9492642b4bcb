import Foundation
import HTTPTransport
import RegistryTesting
import XCTest

/// Request bodies trickled below the minimum rate are cut off with 408 (docs/THREATS.md:
/// slowloris on bodies); uploads cut off that way resume from their last acknowledged size.
final class SlowBodyTests: XCTestCase {
    /// 1,000 bytes/s averaged over each second of waiting: a test-sized version of the
    /// default 1 KiB/s over 60 s.
    let rate = MinimumBodyRate(bytesPerSecond: 1000, window: .seconds(1))

    /// The head of a PATCH of `length` bytes at `from`, its body to follow.
    private func patchHead(_ location: String, from: Int, length: Int) -> String {
        "PATCH \(location) HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            + "Content-Range: \(from)-\(from + length - 1)\r\nContent-Length: \(length)\r\n\r\n"
    }

    func testATrickledUploadIsCutOffWith408AndResumesFromItsLastAcknowledgedSize() async throws {
        let registry = try await TestRegistry.start(minimumBodyRate: rate)
        let blob = Fixtures.bytes(5000, seed: 41)
        let location = try await registry.client.startUpload("team/slow")
        let first = try await registry.client.send(
            .PATCH, location, headers: [("Content-Range", "0-1999")], body: .bytes(Array(blob[..<2000])))
        XCTAssertEqual(first.status, .accepted, first.text)

        // 10 bytes every 100 ms: 100 bytes/s, a tenth of the minimum.
        let (head, after) = try await registry.client.trickle(
            patchHead(location, from: 2000, length: 3000),
            body: Array(blob[2000...]), piece: 10, every: .milliseconds(100))
        XCTAssertTrue(head.hasPrefix("HTTP/1.1 408"), head)
        XCTAssertTrue(head.lowercased().contains("connection: close"), head)
        XCTAssertGreaterThanOrEqual(after, .seconds(1), "not before a whole window of waiting")
        XCTAssertLessThan(after, .seconds(5), "within a window and its checks")

        // The upload is where it was acknowledged last, and goes on from there.
        try await registry.client.resumeUpload(location, of: blob, acknowledged: 2000, in: "team/slow")
        await registry.stop()
    }

    func testABodySentSteadilyAboveTheMinimumIsNeverCutOff() async throws {
        let registry = try await TestRegistry.start(minimumBodyRate: rate)
        // 400 bytes every 100 ms (4,000 bytes/s) for three seconds: three windows.
        let blob = Fixtures.bytes(12_000, seed: 42)
        let location = try await registry.client.startUpload("team/steady")
        let (head, _) = try await registry.client.trickle(
            patchHead(location, from: 0, length: 12_000),
            body: blob, piece: 400, every: .milliseconds(100))
        XCTAssertTrue(head.hasPrefix("HTTP/1.1 202"), head)
        let put = try await registry.client.send(.PUT, "\(location)?digest=\(Fixtures.digest(blob))")
        XCTAssertEqual(put.status, .created, put.text)
        await registry.stop()
    }

    func testAManifestTrickledBelowTheMinimumIsCutOffToo() async throws {
        let registry = try await TestRegistry.start(minimumBodyRate: rate)
        let manifest = Fixtures.json(["schemaVersion": 2, "padding": String(repeating: "x", count: 3000)])
        let (head, _) = try await registry.client.trickle(
            "PUT /v2/team/slow/manifests/v1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: \(manifest.count)\r\n\r\n",
            body: manifest, piece: 10, every: .milliseconds(100))
        XCTAssertTrue(head.hasPrefix("HTTP/1.1 408"), head)
        let tags = try await registry.client.send(.GET, "/v2/team/slow/tags/list")
        XCTAssertEqual(tags.status, .notFound, "nothing was stored")
        await registry.stop()
    }

    func testWithTheRuleOffASlowBodyIsWaitedFor() async throws {
        let registry = try await TestRegistry.start(minimumBodyRate: MinimumBodyRate(bytesPerSecond: 0, window: .seconds(1)))
        let blob = Fixtures.bytes(200, seed: 43)
        let location = try await registry.client.startUpload("team/patient")
        // 10 bytes every 100 ms for two seconds: cut off after a second with the rule on.
        let (head, after) = try await registry.client.trickle(
            patchHead(location, from: 0, length: 200),
            body: blob, piece: 10, every: .milliseconds(100))
        XCTAssertTrue(head.hasPrefix("HTTP/1.1 202"), head)
        XCTAssertGreaterThanOrEqual(after, .seconds(2))
        await registry.stop()
    }
}
