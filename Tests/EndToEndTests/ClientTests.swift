import Foundation
import Maintenance
import NIOHTTP1
import OCI
import RegistryTesting
import Storage
import XCTest

/// End-to-end flows with the real clients against the real server on loopback, on the
/// filesystem driver here and on the S3 driver in `S3ClientTests`.
class ClientTests: XCTestCase {
    var registry: TestRegistry!
    var tools: ContainerTools!

    override func setUp() async throws {
        try ContainerTools.require(["podman", "skopeo", "buildah", "unshare"])
        registry = try await startRegistry()
        tools = try ContainerTools(registry: registry.address)
    }

    /// The registry under test; subclasses pick another storage driver.
    func startRegistry() async throws -> TestRegistry {
        try await TestRegistry.start()
    }

    override func tearDown() async throws {
        await registry?.stop()
        tools?.cleanUp()
        registry = nil  // XCTest keeps test case objects until the run ends
        tools = nil
    }

    /// The digest the registry serves for a tag.
    func servedDigest(_ repository: String, _ reference: String) async throws -> String {
        let response = try await registry.client.send(.HEAD, "/v2/\(repository)/manifests/\(reference)", headers: [("Accept", "*/*")])
        XCTAssertEqual(response.status, .ok)
        return try XCTUnwrap(response.header("Docker-Content-Digest"))
    }

    func testPodmanPushListsTheTagAndPullsBackTheSameDigest() async throws {
        let layout = try await tools.makeImage("image")
        let imageID = try await tools.podman("pull", "-q", "oci:\(layout):latest").trimmingCharacters(in: .whitespacesAndNewlines)
        let reference = "localhost:\(registry.port)/test/this:mytag1.8"
        try await tools.podman("tag", imageID, reference)
        let digestFile = tools.workDirectory + "/pushed.digest"
        try await tools.podman("push", "--tls-verify=false", "--digestfile", digestFile, reference)

        let tags = try await registry.client.send(.GET, "/v2/test/this/tags/list")
        XCTAssertEqual(tags.text, #"{"name":"test/this","tags":["mytag1.8"]}"#)

        let pushed = try String(contentsOfFile: digestFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let served = try await servedDigest("test/this", "mytag1.8")
        XCTAssertEqual(served, pushed)

        // A fresh podman storage, so the image can only come from the registry.
        let puller = try ContainerTools(registry: registry.address)
        defer { puller.cleanUp() }
        try await puller.podman("pull", "--tls-verify=false", reference)
        let pulled = try await puller.podman("image", "inspect", "--format", "{{.Digest}}", reference)
        XCTAssertEqual(pulled.trimmingCharacters(in: .whitespacesAndNewlines), pushed)
    }

    func testSecondPushToAnotherRepositoryMountsEveryLayer() async throws {
        let layout = try await tools.makeImage("image", layers: 4)
        let imageID = try await tools.podman("pull", "-q", "oci:\(layout):latest").trimmingCharacters(in: .whitespacesAndNewlines)
        try await tools.podman("tag", imageID, "localhost:\(registry.port)/team/first:v1", "localhost:\(registry.port)/team/second:v1")
        try await tools.podman("push", "--tls-verify=false", "localhost:\(registry.port)/team/first:v1")
        registry.recorder.reset()
        try await tools.podman("push", "--tls-verify=false", "localhost:\(registry.port)/team/second:v1")

        let requests = registry.recorder.requests
        let trace = requests.map { "\($0.method) \($0.uri) \($0.status.code)" }
        let manifest = try await registry.client.send(.GET, "/v2/team/second/manifests/v1", headers: [("Accept", "*/*")])
        let layers = Set(try XCTUnwrap(try manifest.json()["layers"] as? [[String: Any]]).compactMap { $0["digest"] as? String })
        XCTAssertEqual(layers.count, 4)
        func digestParameter(_ name: String, _ uri: String) -> String? {
            URLComponents(string: uri)?.queryItems?.first { $0.name == name }?.value
        }
        let mounted = Set(requests.filter { $0.method == .POST && $0.status == .created }.compactMap { digestParameter("mount", $0.uri) })
        let uploaded = Set(
            requests.filter { $0.method == .PUT && $0.uri.contains("/blobs/uploads/") }.compactMap { digestParameter("digest", $0.uri) })
        XCTAssertEqual(mounted.intersection(layers), layers, "every layer is mounted: \(trace)")
        XCTAssertTrue(uploaded.isDisjoint(with: layers), "no layer bytes are sent again: \(trace)")
        let first = try await servedDigest("team/first", "v1")
        let second = try await servedDigest("team/second", "v1")
        XCTAssertEqual(first, second)
    }

    func testSkopeoCopyAllOfAnOCIIndexRoundTripsWithIdenticalDigests() async throws {
        let layout = try await tools.makeImage("multi", platforms: "linux/amd64,linux/arm64", seed: 2)
        let index = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: layout + "/index.json"))) as? [String: Any]
        let sourceDigest = try XCTUnwrap(((index?["manifests"] as? [[String: Any]])?.first)?["digest"] as? String)

        try await tools.skopeo(
            "copy", "--all", "--dest-tls-verify=false", "oci:\(layout):latest", "docker://\(registry.address)/test/multi:v1")
        let served = try await servedDigest("test/multi", "v1")
        XCTAssertEqual(served, sourceDigest, "the index is stored byte-exact")

        let copyBack = tools.workDirectory + "/copy-back"
        try await tools.skopeo(
            "copy", "--all", "--src-tls-verify=false", "docker://\(registry.address)/test/multi:v1", "oci:\(copyBack):v1")
        let roundTripped =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: copyBack + "/index.json"))) as? [String: Any]
        XCTAssertEqual(((roundTripped?["manifests"] as? [[String: Any]])?.first)?["digest"] as? String, sourceDigest)

        for platform in ["amd64", "arm64"] {
            let raw = try await tools.skopeo(
                "inspect", "--tls-verify=false", "--override-arch", platform, "--format", "{{.Architecture}}",
                "docker://\(registry.address)/test/multi:v1")
            XCTAssertEqual(raw.trimmingCharacters(in: .whitespacesAndNewlines), platform)
        }
    }

    func testSkopeoCopyAllOfADockerManifestListRoundTripsWithIdenticalDigests() async throws {
        let layout = try await tools.makeImage("multi", platforms: "linux/amd64,linux/arm64", seed: 3)
        try await tools.skopeo(
            "copy", "--all", "--dest-tls-verify=false", "oci:\(layout):latest", "docker://\(registry.address)/src/multi:v1")
        // Convert to Docker schema 2 on the way: the registry now holds a manifest list.
        try await tools.skopeo(
            "copy", "--all", "--format", "v2s2", "--src-tls-verify=false", "--dest-tls-verify=false",
            "docker://\(registry.address)/src/multi:v1", "docker://\(registry.address)/docker/list:v1")
        let raw = try await tools.skopeo("inspect", "--raw", "--tls-verify=false", "docker://\(registry.address)/docker/list:v1")
        let list = try JSONSerialization.jsonObject(with: Data(raw.utf8)) as? [String: Any]
        XCTAssertEqual(list?["mediaType"] as? String, MediaType.dockerManifestList)
        let listDigest = try await servedDigest("docker/list", "v1")

        // Through a directory and back into another repository: same bytes, same digest.
        let directory = tools.workDirectory + "/list-dir"
        try await tools.skopeo("copy", "--all", "--src-tls-verify=false", "docker://\(registry.address)/docker/list:v1", "dir:\(directory)")
        try await tools.skopeo(
            "copy", "--all", "--dest-tls-verify=false", "dir:\(directory)", "docker://\(registry.address)/docker/again:v1")
        let againDigest = try await servedDigest("docker/again", "v1")
        XCTAssertEqual(againDigest, listDigest)
        XCTAssertEqual(Digest.of(Array(raw.utf8)).description, listDigest)
    }

    func testBuildahPushThenPodmanPullHasTheSameDigest() async throws {
        let container = try await tools.buildah("from", "scratch").trimmingCharacters(in: .whitespacesAndNewlines)
        let payload = tools.workDirectory + "/payload.bin"
        try Data(Fixtures.bytes(300_000)).write(to: URL(fileURLWithPath: payload))
        try await tools.buildah("copy", container, payload, "/payload.bin")
        try await tools.buildah("config", "--cmd", "/payload.bin", container)
        try await tools.buildah("commit", "-q", container, "built-image")
        let digestFile = tools.workDirectory + "/buildah.digest"
        let destination = "docker://\(registry.address)/built/image:v1"
        try await tools.buildah("push", "--tls-verify=false", "--digestfile", digestFile, "built-image", destination)
        let pushed = try String(contentsOfFile: digestFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)

        // A fresh podman storage, so the image can only come from the registry.
        let puller = try ContainerTools(registry: registry.address)
        defer { puller.cleanUp() }
        let reference = "\(registry.address)/built/image:v1"
        try await puller.podman("pull", "--tls-verify=false", reference)
        let pulled = try await puller.podman("image", "inspect", "--format", "{{.Digest}}", reference)
        XCTAssertEqual(pulled.trimmingCharacters(in: .whitespacesAndNewlines), pushed)
        let served = try await servedDigest("built/image", "v1")
        XCTAssertEqual(served, pushed)
    }

    func testDeletedImageIsCollectedAndTheOtherStillPulls() async throws {
        let keep = try await tools.makeImage("keep", layers: 2, layerSize: 200_000, seed: 7)
        let drop = try await tools.makeImage("drop", layers: 2, layerSize: 200_000, seed: 8)
        try await tools.skopeo("copy", "--dest-tls-verify=false", "oci:\(keep):latest", "docker://\(registry.address)/gc/keep:v1")
        try await tools.skopeo("copy", "--dest-tls-verify=false", "oci:\(drop):latest", "docker://\(registry.address)/gc/drop:v1")
        // What the storage itself holds (files on disk, objects in the bucket).
        let driver = registry.blobs.driver
        func storedBytes() async throws -> Int {
            var total = 0
            for path in try await driver.list(under: StoragePath("blobs")) { total += Int(try await driver.size(of: path) ?? 0) }
            return total
        }
        let before = try await storedBytes()
        let digest = try await servedDigest("gc/drop", "v1")
        let deleted = try await registry.client.send(.DELETE, "/v2/gc/drop/manifests/\(digest)")
        XCTAssertEqual(deleted.status, .accepted)

        let report = try await GarbageCollector(metadata: registry.metadata, blobs: registry.blobs).run(
            GarbageCollector.Options(grace: .zero))
        XCTAssertEqual(report.blobs.count, 3, "the dropped image's config and two layers")
        let after = try await storedBytes()
        XCTAssertEqual(before - after, Int(report.bytesFreed), "the space is freed in storage")
        XCTAssertGreaterThan(before - after, 2 * 100_000)

        let copy = tools.workDirectory + "/pulled"
        try await tools.skopeo("copy", "--src-tls-verify=false", "docker://\(registry.address)/gc/keep:v1", "oci:\(copy):v1")
        let gone = try await registry.client.send(.GET, "/v2/gc/drop/manifests/v1")
        XCTAssertEqual(gone.status, .notFound)
    }
}
