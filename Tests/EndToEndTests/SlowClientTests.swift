import Foundation
import NIOCore
import NIOPosix
import OCI
import RegistryTesting
import XCTest

/// Clients far slower than the registry: a reader taking its time over a large blob, and
/// hundreds of slowloris connections beside a normal push and pull (docs/THREATS.md).
final class SlowClientTests: XCTestCase {
    /// Resident memory of this process (the registry runs in it), in bytes.
    private func residentBytes() throws -> Int {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = try XCTUnwrap(status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") })
        return try XCTUnwrap(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])) * 1024
    }

    /// GETs `path` and reads the answer at about `bytesPerSecond` (unbounded when `nil`),
    /// hashing as it goes. - Returns: the body's digest, its length, and the most this
    /// process's resident memory grew meanwhile.
    private func read(_ path: String, port: Int, bytesPerSecond: Int?) async throws -> (digest: String, length: Int, growth: Int) {
        let before = try residentBytes()
        var peak = before
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        let hasher = ContentHasher(algorithm: .sha256)
        var length = 0
        var headSeen = false
        var pending: [UInt8] = []
        let started = ContinuousClock.now
        try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "GET \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
            for try await buffer in inbound {
                if headSeen {
                    hasher.update(buffer)
                    length += buffer.readableBytes
                } else {
                    pending += buffer.readableBytesView
                    if let end = pending.firstRange(of: Array("\r\n\r\n".utf8)) {
                        headSeen = true
                        let body = Array(pending[end.upperBound...])
                        hasher.update(body)
                        length += body.count
                        pending = []
                    }
                }
                if let bytesPerSecond {
                    // Ahead of the rate: wait until the schedule catches up.
                    let due = started + .milliseconds(length * 1000 / bytesPerSecond)
                    if due > .now { try await Task.sleep(until: due) }
                }
                peak = max(peak, try residentBytes())
            }
        }
        return (hasher.finalize().description, length, peak - before)
    }

    func testASlowReaderOfALargeBlobIsNotCutOffAndHoldsNoMoreMemoryThanAFastOne() async throws {
        // The idle timeout is one second: a reader that keeps reading is not idle. On S3
        // the blob is streamed from the bucket, so the registry itself must hold back.
        for (driver, kind) in [("filesystem", TestRegistry.DriverKind.filesystem), ("s3", .s3(try s3TestConfiguration()))] {
            let registry = try await TestRegistry.start(driver: kind, idleTimeout: .seconds(1))
            let blob = Fixtures.bytes(48 << 20, seed: 51)
            let digest = try await registry.client.pushBlob("team/big", blob)
            let path = "/v2/team/big/blobs/\(digest)"

            let fast = try await read(path, port: registry.port, bytesPerSecond: nil)
            XCTAssertEqual(fast.digest, digest, "\(driver)")
            // 48 MiB at 12 MiB/s: four seconds, four idle timeouts.
            let slow = try await read(path, port: registry.port, bytesPerSecond: 12 << 20)
            XCTAssertEqual(slow.length, blob.count, "\(driver): the slow reader got everything")
            XCTAssertEqual(slow.digest, digest, "\(driver)")
            // Back-pressure: the registry reads the blob no faster than the client takes it,
            // so a slow reader costs a few buffers, never the blob (48 MiB).
            XCTAssertLessThan(slow.growth, 16 << 20, "\(driver): memory grew \(slow.growth >> 20) MiB while a slow reader read")
            XCTAssertLessThan(
                slow.growth, fast.growth + (8 << 20), "\(driver): slow \(slow.growth >> 10) KiB, fast \(fast.growth >> 10) KiB")
            print("\(driver): memory grew \(fast.growth >> 10) KiB during a fast read, \(slow.growth >> 10) KiB during a slow one")
            await registry.stop()
        }
    }

    func testFiveHundredSlowlorisConnectionsDoNotSlowAPodmanPushAndPull() async throws {
        try ContainerTools.require(["podman", "unshare"])
        let registry = try await TestRegistry.start()
        let tools = try ContainerTools(registry: registry.address)
        defer { tools.cleanUp() }
        // 64 MiB: a push and pull of a couple of seconds, long against the machine's hiccups.
        let layout = try await tools.makeImage("image", layers: 8, layerSize: 8 << 20, seed: 61)
        let imageID = try await tools.podman("pull", "-q", "oci:\(layout):latest").trimmingCharacters(in: .whitespacesAndNewlines)

        /// A push of the image under a new name, and a pull of it into empty storage.
        var round = 0
        func pushAndPull() async throws -> Duration {
            round += 1
            let reference = "localhost:\(registry.port)/team/app:r\(round)"
            try await tools.podman("tag", imageID, reference)
            let puller = try ContainerTools(registry: registry.address)
            defer { puller.cleanUp() }
            let started = ContinuousClock.now
            try await tools.podman("push", "--tls-verify=false", reference)
            try await puller.podman("pull", "--tls-verify=false", reference)
            return ContinuousClock.now - started
        }
        // Its time on the idle registry: the slower of two runs, so one lucky run does
        // not set the bar.
        let idle = max(try await pushAndPull(), try await pushAndPull())

        // 250 heads that never end and 250 bodies that never do (manifest PUTs whose
        // handlers wait for the rest), one byte a second each.
        let heads = try await SlowClients.open(250, port: registry.port) { index in
            "GET /v2/team/app/tags/list HTTP/1.1\r\nHost: x\r\nX-Slow-\(index): "
        }
        defer { heads.close() }
        let bodies = try await SlowClients.open(250, port: registry.port) { index in
            "PUT /v2/team/slow\(index)/manifests/v1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 100000\r\n\r\n{"
        }
        defer { bodies.close() }
        try await Task.sleep(for: .seconds(1))
        XCTAssertEqual(heads.openCount + bodies.openCount, 500, "all 500 hold their connections")

        let beside = try await pushAndPull()
        XCTAssertLessThanOrEqual(beside, idle * 2, "push and pull beside 500 slowloris connections: \(beside), idle: \(idle)")
        XCTAssertEqual(heads.openCount + bodies.openCount, 500, "the slow ones are still there: they were beside it all along")
        print("podman push + pull: idle \(idle), beside 500 slowloris connections \(beside)")
        await registry.stop()
    }
}
