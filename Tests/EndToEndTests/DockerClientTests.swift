import Foundation
import NIOHTTP1
import RegistryTesting
import XCTest

/// docker (Debian's docker.io) and containerd's `ctr` against the real server, with
/// basic auth: a dockerd of the test's own (`DockerDaemon`), its containerd for `ctr`.
final class DockerClientTests: XCTestCase {
    var registry: TestRegistry!
    var tools: ContainerTools!
    var docker: DockerDaemon!
    let password = "docker-password"

    override func setUp() async throws {
        try ContainerTools.require(["skopeo", "unshare"] + DockerDaemon.binaries)
        registry = try await TestRegistry.start(auth: .basic)
        try await registry.createUser("admin", password: password, staff: true)
        tools = try ContainerTools(registry: registry.address)
        docker = try await DockerDaemon.start(insecureRegistry: registry.address)
    }

    override func tearDown() async throws {
        docker?.stop()
        await registry?.stop()
        tools?.cleanUp()
        (docker, registry, tools) = (nil, nil, nil)  // XCTest keeps test case objects until the run ends
    }

    @discardableResult
    func dockerCLI(_ arguments: String..., input: String? = nil) async throws -> String {
        try await tools.run(["/usr/bin/docker"] + arguments, isolated: false, input: input, environment: docker.environment)
    }

    @discardableResult
    func ctr(_ arguments: String...) async throws -> String {
        try await tools.run(["/usr/bin/ctr", "--address", docker.containerdSocket] + arguments, isolated: false)
    }

    /// The digest the registry serves for a tag (as docker asks for it).
    func servedDigest(_ repository: String, _ tag: String) async throws -> String {
        let basic = "Basic " + Data("admin:\(password)".utf8).base64EncodedString()
        let response = try await registry.client.send(
            .HEAD, "/v2/\(repository)/manifests/\(tag)",
            headers: [("Accept", "application/vnd.docker.distribution.manifest.v2+json"), ("Authorization", basic)])
        XCTAssertEqual(response.status, .ok)
        return try XCTUnwrap(response.header("Docker-Content-Digest"))
    }

    /// The blob pushes of the recorded requests: (mounted digests, uploaded digests).
    func blobTransfers() -> (mounted: Set<String>, uploaded: Set<String>) {
        func parameter(_ name: String, _ uri: String) -> String? {
            URLComponents(string: uri)?.queryItems?.first { $0.name == name }?.value
        }
        let requests = registry.recorder.requests
        let mounted = requests.filter { $0.method == .POST && $0.status == .created }.compactMap { parameter("mount", $0.uri) }
        let uploaded = requests.filter { $0.method == .PUT && $0.uri.contains("/blobs/uploads/") && $0.status == .created }.compactMap {
            parameter("digest", $0.uri)
        }
        return (Set(mounted), Set(uploaded))
    }

    /// Prints what a client sent, for the record (what each client's upload pattern is).
    func printTrace(_ title: String) {
        print("\(title):\n" + registry.recorder.requests.map { "  " + $0.summary }.joined(separator: "\n"))
    }

    /// A docker-archive of a small image (docker.io 20.10 loads only that format).
    func loadImage(layers: Int) async throws {
        let layout = try await tools.makeImage("image", layers: layers, layerSize: 200_000)
        let archive = tools.workDirectory + "/image.tar"
        try await tools.skopeo("copy", "oci:\(layout):latest", "docker-archive:\(archive):demo:latest")
        try await dockerCLI("load", "-i", archive)
    }

    func testDockerLoginPushPullAndMountIntoASecondRepository() async throws {
        try await loadImage(layers: 3)
        try await dockerCLI("login", "-u", "admin", "--password-stdin", registry.address, input: password + "\n")
        let first = "\(registry.address)/docker/demo:v1"
        try await dockerCLI("tag", "demo:latest", first)
        registry.recorder.reset()
        let pushOutput = try await dockerCLI("push", first)
        printTrace("docker push")
        let pushed = try XCTUnwrap(pushOutput.split(separator: "\n").first { $0.hasPrefix("v1: digest: ") }?.split(separator: " ")[2])
        let served = try await servedDigest("docker/demo", "v1")
        XCTAssertEqual(served, String(pushed))

        // Gone locally, so the pull can only come from the registry.
        try await dockerCLI("rmi", first, "demo:latest")
        registry.recorder.reset()
        try await dockerCLI("pull", first)
        printTrace("docker pull")
        let repoDigests = try await dockerCLI("image", "inspect", "--format", "{{json .RepoDigests}}", first)
        XCTAssertTrue(repoDigests.contains("\(registry.address)/docker/demo@\(served)"), repoDigests)

        // The same image into another repository: docker mounts what the registry has.
        let second = "\(registry.address)/docker/second:v1"
        try await dockerCLI("tag", first, second)
        registry.recorder.reset()
        try await dockerCLI("push", second)
        printTrace("docker push to a second repository")
        let manifest = try await registry.client.send(
            .GET, "/v2/docker/second/manifests/v1",
            headers: [("Accept", "*/*"), ("Authorization", "Basic " + Data("admin:\(password)".utf8).base64EncodedString())])
        let layers = Set(try XCTUnwrap(try manifest.json()["layers"] as? [[String: Any]]).compactMap { $0["digest"] as? String })
        XCTAssertEqual(layers.count, 3)
        let transfers = blobTransfers()
        XCTAssertEqual(transfers.mounted.intersection(layers), layers, "every layer mounted")
        XCTAssertTrue(transfers.uploaded.isDisjoint(with: layers), "no layer uploaded again")
        let secondServed = try await servedDigest("docker/second", "v1")
        XCTAssertEqual(secondServed, served)
    }

    func testContainerdPullsWithCredentialsAndPushesWithMounts() async throws {
        // The image gets into the registry through docker, then containerd takes over.
        try await loadImage(layers: 2)
        try await dockerCLI("login", "-u", "admin", "--password-stdin", registry.address, input: password + "\n")
        let source = "\(registry.address)/ctr/source:v1"
        try await dockerCLI("tag", "demo:latest", source)
        try await dockerCLI("push", source)
        let served = try await servedDigest("ctr/source", "v1")

        registry.recorder.reset()
        try await ctr("images", "pull", "--plain-http", "--user", "admin:\(password)", source)
        printTrace("ctr images pull")
        let listed = try await ctr("images", "ls")
        XCTAssertTrue(listed.contains(served), listed)

        let target = "\(registry.address)/ctr/target:v1"
        registry.recorder.reset()
        try await ctr("images", "push", "--plain-http", "--user", "admin:\(password)", target, source)
        printTrace("ctr images push")
        let pushed = try await servedDigest("ctr/target", "v1")
        XCTAssertEqual(pushed, served, "containerd pushed the same manifest")
        let manifest = try await registry.client.send(
            .GET, "/v2/ctr/target/manifests/v1",
            headers: [("Accept", "*/*"), ("Authorization", "Basic " + Data("admin:\(password)".utf8).base64EncodedString())])
        let layers = Set(try XCTUnwrap(try manifest.json()["layers"] as? [[String: Any]]).compactMap { $0["digest"] as? String })
        let transfers = blobTransfers()
        XCTAssertEqual(transfers.mounted.intersection(layers), layers, "containerd mounts the layers it pulled from this registry")
        XCTAssertTrue(transfers.uploaded.isDisjoint(with: layers))
    }
}
