import Foundation
import OCI
import RegistryTesting
import Synchronization
import XCTest

/// Three registryd instances on one PostgreSQL database and one radosgw bucket, behind
/// nginx (see `Cluster`): the real clients push through the balancer, requests of one
/// upload land on different instances, and what one instance changes the others serve.
final class ClusterTests: XCTestCase {
    var cluster: Cluster!

    override func setUp() async throws {
        cluster = try await Cluster.start()
    }

    override func tearDown() async throws {
        await cluster?.stop(showingLogs: (testRun?.failureCount ?? 0) > 0)
        cluster = nil
    }

    private func digestServed(by index: Int?, _ repository: String, _ reference: String) async throws -> String? {
        let response = try await cluster.client(index).send(.HEAD, "/v2/\(repository)/manifests/\(reference)", headers: [("Accept", "*/*")])
        return response.status == .ok ? response.header("Docker-Content-Digest") : nil
    }

    func testPodmanAndSkopeoPushThroughTheBalancerAndEveryInstanceServesTheSameDigest() async throws {
        try ContainerTools.require(["podman", "skopeo", "unshare"])
        let tools = try ContainerTools(registry: cluster.balancerAddress)
        defer { tools.cleanUp() }
        let credentials = "\(Cluster.admin.user):\(Cluster.admin.password)"

        // podman: push through nginx, so its HEADs, POSTs, PATCHes and PUTs spread over all three.
        let layout = try await tools.makeImage("image", layers: 4)
        let imageID = try await tools.podman("pull", "-q", "oci:\(layout):latest").trimmingCharacters(in: .whitespacesAndNewlines)
        let reference = "\(cluster.balancerAddress)/team/app:v1"
        try await tools.podman("tag", imageID, reference)
        let digestFile = tools.workDirectory + "/pushed.digest"
        try await tools.podman("push", "--tls-verify=false", "--creds", credentials, "--digestfile", digestFile, reference)
        let pushed = try String(contentsOfFile: digestFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)

        // skopeo: a multi-platform index, copied whole.
        let index = try await tools.makeImage("multi", platforms: "linux/amd64,linux/arm64", seed: 7)
        try await tools.skopeo(
            "copy", "--all", "--dest-tls-verify=false", "--dest-creds", credentials, "oci:\(index):latest",
            "docker://\(cluster.balancerAddress)/team/multi:v1")

        for instance in 0..<3 {
            let served = try await digestServed(by: instance, "team/app", "v1")
            XCTAssertEqual(served, pushed, "instance \(instance)")
        }
        let indexDigests = try await (0..<3).asyncMap { try await self.digestServed(by: $0, "team/multi", "v1") }
        XCTAssertEqual(Set(indexDigests).count, 1, "\(indexDigests)")
        XCTAssertNotNil(indexDigests.first ?? nil)

        // Pulled back through the balancer into an empty storage: the same image.
        let puller = try ContainerTools(registry: cluster.balancerAddress)
        defer { puller.cleanUp() }
        try await puller.podman("pull", "--tls-verify=false", "--creds", credentials, reference)
        let pulled = try await puller.podman("image", "inspect", "--format", "{{.Digest}}", reference)
        XCTAssertEqual(pulled.trimmingCharacters(in: .whitespacesAndNewlines), pushed)
        let copied = puller.workDirectory + "/copied"
        try await puller.skopeo(
            "copy", "--all", "--src-tls-verify=false", "--src-creds", credentials, "docker://\(cluster.balancerAddress)/team/multi:v1",
            "oci:\(copied):latest")
    }

    func testAChunkedUploadWhosePostPatchesAndPutLandOnThreeInstances() async throws {
        let blob = Fixtures.bytes(11 << 20, seed: 31)
        let cuts = [0, 5 << 20, 8 << 20, blob.count]
        let location = try await cluster.client(0).startUpload("team/chunks")
        for part in 0..<3 {
            let range = cuts[part]..<cuts[part + 1]
            // Each PATCH on another instance than the one before it: 1, 2, 0.
            let patch = try await cluster.client((part + 1) % 3).send(
                .PATCH, location, headers: [("Content-Range", "\(range.lowerBound)-\(range.upperBound - 1)")],
                body: .bytes(Array(blob[range])))
            XCTAssertEqual(patch.status, .accepted, "part \(part): \(patch.text)")
            XCTAssertEqual(patch.header("Range"), "0-\(range.upperBound - 1)")
        }
        let status = try await cluster.client(2).send(.GET, location)
        XCTAssertEqual(status.header("Range"), "0-\(blob.count - 1)", "the acknowledged size is the cluster's, not one instance's")
        let put = try await cluster.client(1).send(.PUT, "\(location)?digest=\(Fixtures.digest(blob))")
        XCTAssertEqual(put.status, .created, put.text)
        for instance in 0..<3 {
            let get = try await cluster.client(instance).send(.GET, "/v2/team/chunks/blobs/\(Fixtures.digest(blob))")
            XCTAssertEqual(get.status, .ok, "instance \(instance)")
            XCTAssertEqual(Fixtures.digest(get.body), Fixtures.digest(blob), "instance \(instance)")
        }
    }

    func testAManifestDeletedOnOneInstanceIsGoneOnTheOthersWithinASecond() async throws {
        let config = Fixtures.json(["cluster": "delete"])
        let layer = Fixtures.bytes(4096, seed: 5)
        for blob in [config, layer] { try await cluster.client(0).pushBlob("team/gone", blob) }
        let manifest = Fixtures.imageManifest(config: config, layers: [layer])
        let put = try await cluster.client(0).putManifest("team/gone", "v1", manifest)
        XCTAssertEqual(put.status, .created, put.text)
        // Instances 1 and 2 answer it (and now hold it in their caches).
        for _ in 0..<3 {
            for instance in 1...2 { _ = try await digestServed(by: instance, "team/gone", "v1") }
        }
        await assertEqual(try await digestServed(by: 1, "team/gone", "v1"), Fixtures.digest(manifest))

        let deleted = try await cluster.client(0).send(.DELETE, "/v2/team/gone/manifests/\(Fixtures.digest(manifest))")
        XCTAssertEqual(deleted.status, .accepted)
        let started = ContinuousClock.now
        var gone = [false, false]
        while gone.contains(false), ContinuousClock.now - started < .seconds(3) {
            for instance in 1...2 where !gone[instance - 1] {
                let response = try await cluster.client(instance).send(.GET, "/v2/team/gone/manifests/v1", headers: [("Accept", "*/*")])
                gone[instance - 1] = response.status == .notFound
            }
        }
        let elapsed = ContinuousClock.now - started
        XCTAssertEqual(gone, [true, true])
        XCTAssertLessThan(elapsed, .seconds(1), "404 on every instance within the bound (took \(elapsed))")
    }

    func testAPasswordChangedThroughOneInstanceStopsWorkingOnTheOthers() async throws {
        let (created, output) = try await cluster.registryctl(0, ["user", "add", "ci", "--password-stdin"], input: "first-password\n")
        XCTAssertEqual(created, 0, output)
        let old = TestHTTPClient(port: cluster.instances[2].port).withBasicAuth(user: "ci", password: "first-password")
        for _ in 0..<3 {
            let response = try await old.send(.GET, "/v2/")
            XCTAssertEqual(response.status, .ok, "the password works (and is remembered) on instance 2")
        }
        let (changed, changeOutput) = try await cluster.registryctl(
            1, ["user", "passwd", "ci", "--password-stdin"], input: "second-password\n")
        XCTAssertEqual(changed, 0, changeOutput)
        let started = ContinuousClock.now
        var refused = false
        while !refused, ContinuousClock.now - started < .seconds(3) {
            refused = try await old.send(.GET, "/v2/").status == .unauthorized
        }
        XCTAssertTrue(refused, "the old password is refused on instance 2")
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(1))
        let new = TestHTTPClient(port: cluster.instances[0].port).withBasicAuth(user: "ci", password: "second-password")
        await assertEqual(try await new.send(.GET, "/v2/").status, .ok)
    }

    func testDockerPushesThroughTheBalancerAndPullsBack() async throws {
        try ContainerTools.require(["skopeo", "unshare"] + DockerDaemon.binaries)
        let tools = try ContainerTools(registry: cluster.balancerAddress)
        defer { tools.cleanUp() }
        let docker = try await DockerDaemon.start(insecureRegistry: cluster.balancerAddress)
        defer { docker.stop() }
        func dockerCLI(_ arguments: String..., input: String? = nil) async throws -> String {
            try await tools.run(["/usr/bin/docker"] + arguments, isolated: false, input: input, environment: docker.environment)
        }
        let layout = try await tools.makeImage("image", layers: 3, layerSize: 200_000)
        let archive = tools.workDirectory + "/image.tar"
        try await tools.skopeo("copy", "oci:\(layout):latest", "docker-archive:\(archive):demo:latest")
        _ = try await dockerCLI("load", "-i", archive)
        _ = try await dockerCLI(
            "login", "-u", Cluster.admin.user, "--password-stdin", cluster.balancerAddress, input: Cluster.admin.password + "\n")
        let reference = "\(cluster.balancerAddress)/docker/demo:v1"
        _ = try await dockerCLI("tag", "demo:latest", reference)
        let output = try await dockerCLI("push", reference)
        let pushed = try XCTUnwrap(output.split(separator: "\n").first { $0.hasPrefix("v1: digest: ") }?.split(separator: " ")[2])
        for instance in 0..<3 {
            await assertEqual(try await digestServed(by: instance, "docker/demo", "v1"), String(pushed), "instance \(instance)")
        }
        _ = try await dockerCLI("rmi", reference, "demo:latest")
        _ = try await dockerCLI("pull", reference)
        let repoDigests = try await dockerCLI("image", "inspect", "--format", "{{json .RepoDigests}}", reference)
        XCTAssertTrue(repoDigests.contains("docker/demo@\(pushed)"), repoDigests)
    }

    func testAKilledInstanceLeavesNothingThatBlocksTheOthers() async throws {
        // An upload begun on instance 2, which then dies without a word.
        let blob = Fixtures.bytes(7 << 20, seed: 77)
        let split = 3 << 20
        let location = try await cluster.client(2).startUpload("team/survivor")
        let first = try await cluster.client(2).send(
            .PATCH, location, headers: [("Content-Range", "0-\(split - 1)")], body: .bytes(Array(blob[..<split])))
        XCTAssertEqual(first.status, .accepted, first.text)
        await cluster.kill(2)

        // Its upload resumes on instance 0 where it stopped.
        let status = try await cluster.client(0).send(.GET, location)
        XCTAssertEqual(status.header("Range"), "0-\(split - 1)")
        let rest = try await cluster.client(0).send(
            .PATCH, location, headers: [("Content-Range", "\(split)-\(blob.count - 1)")], body: .bytes(Array(blob[split...])))
        XCTAssertEqual(rest.status, .accepted, rest.text)
        let put = try await cluster.client(0).send(.PUT, "\(location)?digest=\(Fixtures.digest(blob))")
        XCTAssertEqual(put.status, .created, put.text)

        // The balancer passes over the dead instance: a whole push through it works.
        let config = Fixtures.json(["after": "kill"])
        for blob in [config, blob] {
            let head = try await cluster.client().send(.HEAD, "/v2/team/survivor/blobs/\(Fixtures.digest(blob))")
            if head.status != .ok { try await cluster.client().pushBlob("team/survivor", blob) }
        }
        let manifest = Fixtures.imageManifest(config: config, layers: [blob])
        let stored = try await cluster.client().putManifest("team/survivor", "v1", manifest)
        XCTAssertEqual(stored.status, .created, stored.text)
        for _ in 0..<6 {
            let pulled = try await cluster.client().send(.GET, "/v2/team/survivor/blobs/\(Fixtures.digest(blob))")
            XCTAssertEqual(Fixtures.digest(pulled.body), Fixtures.digest(blob))
        }
        // A collection runs (no lock left behind by the dead instance) and keeps the image.
        let (collected, output) = try await cluster.registryctl(1, ["gc", "run", "--grace", "0", "--wait"])
        XCTAssertEqual(collected, 0, output)
        await assertEqual(try await digestServed(by: 0, "team/survivor", "v1"), Fixtures.digest(manifest))

        // Started again, the instance releases what its killed process held and serves.
        try cluster.launch(2)
        try await cluster.waitUntilServing(2)
        await assertEqual(try await digestServed(by: 2, "team/survivor", "v1"), Fixtures.digest(manifest))
    }

    func testAnInstanceKilledInTheMiddleOfSkopeoPushesLeavesTheOthersServing() async throws {
        try ContainerTools.require(["skopeo", "unshare"])
        let tools = try ContainerTools(registry: cluster.balancerAddress)
        defer { tools.cleanUp() }
        let credentials = "\(Cluster.admin.user):\(Cluster.admin.password)"
        // Three images of 8 incompressible layers of 6 MiB: long enough pushes that the
        // kill lands in the middle of them.
        let layouts = try await (0..<3).asyncMap { image in
            try await tools.makeImage("image\(image)", layers: 8, layerSize: 6 << 20, seed: 300 + image)
        }
        let balancer = cluster.balancerAddress
        func push(_ image: Int) async throws -> String {
            try await tools.skopeo(
                "copy", "--retry-times", "3", "--dest-tls-verify=false", "--dest-creds", credentials, "oci:\(layouts[image]):latest",
                "docker://\(balancer)/team/killed-\(image):v1")
        }
        let finished = Counter()
        let pushes = (0..<3).map { image in
            Task { () -> Result<String, any Error> in
                defer { finished.increment() }
                do { return .success(try await push(image)) } catch { return .failure(error) }
            }
        }

        // Kill instance 1 once it is taking part in the uploads (its access log shows a
        // PATCH or PUT of an upload), while every push still runs.
        let started = ContinuousClock.now
        while !cluster.logTail(1, lines: 400).contains("/blobs/uploads/"), ContinuousClock.now - started < .seconds(60) {
            try await Task.sleep(for: .milliseconds(20))
        }
        XCTAssertTrue(cluster.logTail(1, lines: 400).contains("/blobs/uploads/"), "instance 1 took part in the pushes")
        XCTAssertEqual(finished.value, 0, "the kill lands while all three pushes run")
        await cluster.kill(1)

        // The other two keep answering the whole time the pushes go on.
        var answered = 0
        while finished.value < 3 {
            for instance in [0, 2] {
                let response = try await cluster.client(instance).send(.GET, "/v2/")
                XCTAssertEqual(response.status, .ok, "instance \(instance) answers")
                answered += 1
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        XCTAssertGreaterThan(answered, 0)

        // Every push completes: by itself (skopeo's retries), or run again once as a user
        // would when its request was cut on the dead instance (nginx answers 502 for a
        // request whose body it had begun to send there).
        var rerun = 0
        for (image, task) in pushes.enumerated() {
            if case .failure = await task.value {
                rerun += 1
                _ = try await push(image)
            }
        }
        // What was pushed is the same on both survivors and pulls back byte-exact (skopeo
        // checks every digest it reads).
        for image in 0..<3 {
            let served = try await [0, 2].asyncMap { try await self.digestServed(by: $0, "team/killed-\(image)", "v1") }
            XCTAssertNotNil(served[0], "image \(image) (pushes run again: \(rerun))")
            XCTAssertEqual(served[0], served[1], "image \(image)")
            try await tools.skopeo(
                "copy", "--src-tls-verify=false", "--src-creds", credentials,
                "docker://127.0.0.1:\(cluster.instances[image == 1 ? 0 : 2].port)/team/killed-\(image):v1",
                "oci:\(tools.workDirectory)/out/pulled-\(image):latest")
        }
        // The uploads cut by the kill (skopeo began new ones) can be resumed on the others:
        // their state is in the database, their bytes in the bucket.
        let (listed, listing) = try await cluster.registryctl(0, ["upload", "list", "--json"])
        XCTAssertEqual(listed, 0, listing)
        let uploads =
            try XCTUnwrap(
                try JSONSerialization.jsonObject(with: Data(listing.utf8)) as? [String: Any])["uploads"] as? [[String: Any]] ?? []
        for upload in uploads {
            let (id, repository) = (upload["id"] as? String ?? "", upload["repository"] as? String ?? "")
            let status = try await cluster.client(0).send(.GET, "/v2/\(repository)/blobs/uploads/\(id)")
            XCTAssertEqual(status.status, .noContent, "upload \(id) of \(repository) answers on instance 0: \(status.text)")
            XCTAssertNotNil(status.header("Range"), "upload \(id)")
        }
        print("kill -9 mid-push: \(rerun) of 3 skopeo copies run again, \(uploads.count) cut upload(s) resumed on another instance")
        // … or purged, and nothing the dead instance left blocks a collection.
        let (purged, purgeOutput) = try await cluster.registryctl(2, ["upload", "purge", "--older-than", "0"])
        XCTAssertEqual(purged, 0, purgeOutput)
        XCTAssertTrue(purgeOutput.contains("removed \(uploads.count) upload(s)"), "\(purgeOutput) (listed: \(uploads.count))")
        let (collected, output) = try await cluster.registryctl(0, ["gc", "run", "--grace", "0", "--wait"])
        XCTAssertEqual(collected, 0, output)
        let (verified, report) = try await cluster.registryctl(2, ["storage", "verify"])
        XCTAssertEqual(verified, 0, report)
    }

    func testPushesDeletesAndZeroGraceCollectionsAcrossInstancesLoseNothingAcknowledged() async throws {
        // Three writers, each through its own instance, push images sharing layers, delete
        // some, move tags; meanwhile instance 0 collects with grace 0, over and over.
        let shared = (0..<3).map { Fixtures.bytes(30_000, seed: 500 + UInt64($0)) }
        let clients = (0..<3).map { cluster.client($0) }
        let socket = cluster.instances[0].controlSocket
        let collections = Counter()
        let collecting = Task {
            while !Task.isCancelled {
                let (status, output) = try await Cluster.registryctl(
                    socket: socket, ["gc", "run", "--grace", "0", "--delete-untagged", "--wait"])
                XCTAssertEqual(status, 0, output)
                collections.increment()
                // With grace 0 a layer pushed before its manifest is collectable until the
                // manifest lands: collections back to back would starve a writer whose
                // pushes take longer than a run (by design, not a loss). Gaps of about a
                // second let every writer through while collections still cut into pushes.
                try? await Task.sleep(for: .milliseconds(Int.random(in: 300...1200)))
            }
            return collections.value
        }
        let survivors = try await withThrowingTaskGroup(of: [StressWriter.Pushed].self) { group in
            for writer in 0..<3 {
                var stress = StressWriter(writer: writer, shared: shared, client: clients[writer])
                stress.ownLayerSize = 8000
                // Pushes go on until three collections have cut into them (12 rounds took
                // 13-20 s once; with small blobs written in one PUT they take about 2 s).
                group.addTask { [stress] in
                    try await stress.write(rounds: 12, thenWhile: { collections.value < 3 }, maximumRounds: 120)
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        collecting.cancel()
        let runs = try await collecting.value
        XCTAssertGreaterThan(runs, 2, "collections ran beside the pushes")
        XCTAssertFalse(survivors.isEmpty)

        // Every manifest that was acknowledged and not deleted pulls byte-exact, from any instance.
        for (index, pushed) in survivors.enumerated() {
            let (repository, manifest) = (pushed.repository, pushed.manifest)
            let client = cluster.client(index % 3)
            let fetched = try await client.send(
                .GET, "/v2/\(repository)/manifests/\(Fixtures.digest(manifest))", headers: [("Accept", "*/*")])
            XCTAssertEqual(fetched.status, .ok, "\(repository) \(Fixtures.digest(manifest))")
            XCTAssertEqual(fetched.body, manifest)
            let document = try fetched.json()
            let descriptors = [try XCTUnwrap(document["config"] as? [String: Any])] + (document["layers"] as? [[String: Any]] ?? [])
            for descriptor in descriptors {
                let digest = try XCTUnwrap(descriptor["digest"] as? String)
                let blob = try await client.send(.GET, "/v2/\(repository)/blobs/\(digest)")
                XCTAssertEqual(blob.status, .ok, "\(repository) \(digest)")
                XCTAssertEqual(Fixtures.digest(blob.body), digest, "bytes verify")
            }
        }
        let (verified, report) = try await cluster.registryctl(1, ["storage", "verify", "--json"])
        XCTAssertEqual(verified, 0, report)
        XCTAssertTrue(report.contains(#""clean" : true"#) || report.contains(#""clean":true"#), report)
    }

    func testRegistryctlOfAnyInstanceListsEveryInstance() async throws {
        let (status, output) = try await cluster.registryctl(2, ["status"])
        XCTAssertEqual(status, 0, output)
        for id in ["node-0", "node-1", "node-2"] { XCTAssertTrue(output.contains(id), output) }
        XCTAssertTrue(output.contains("PostgreSQL"), output)
        XCTAssertFalse(output.contains(cluster.postgres.password ?? "-"), "no password in the status")
    }
}

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var values: [T] = []
        for element in self { values.append(try await transform(element)) }
        return values
    }
}

/// The same cluster with token auth: every instance has the same key file, so a token
/// one instance issued is accepted by the others.
final class ClusterTokenTests: XCTestCase {
    var cluster: Cluster!

    override func setUp() async throws {
        cluster = try await Cluster.start(tokenAuth: true)
    }

    override func tearDown() async throws {
        await cluster?.stop(showingLogs: (testRun?.failureCount ?? 0) > 0)
        cluster = nil
    }

    func testATokenFromOneInstanceWorksOnTheOthers() async throws {
        let basic = "Basic " + Data("\(Cluster.admin.user):\(Cluster.admin.password)".utf8).base64EncodedString()
        let issued = try await TestHTTPClient(port: cluster.instances[0].port).send(
            .GET, "/token?service=registryd&scope=repository:team/app:pull,push", headers: [("Authorization", basic)])
        XCTAssertEqual(issued.status, .ok, issued.text)
        let token = try XCTUnwrap(try issued.json()["token"] as? String)
        let bearer = TestHTTPClient(port: cluster.instances[1].port, defaultHeaders: [("Authorization", "Bearer " + token)])
        let layer = Fixtures.bytes(1000, seed: 3)
        let pushed = try await bearer.pushBlob("team/app", layer)
        let elsewhere = TestHTTPClient(port: cluster.instances[2].port, defaultHeaders: [("Authorization", "Bearer " + token)])
        let pulled = try await elsewhere.send(.GET, "/v2/team/app/blobs/\(pushed)")
        XCTAssertEqual(pulled.status, .ok, pulled.text)
        XCTAssertEqual(pulled.body, layer)
    }

    func testPodmanLogsInAndPushesThroughTheBalancer() async throws {
        try ContainerTools.require(["podman", "unshare"])
        let tools = try ContainerTools(registry: cluster.balancerAddress)
        defer { tools.cleanUp() }
        try await tools.podman(
            "login", "--tls-verify=false", "-u", Cluster.admin.user, "--password-stdin", cluster.balancerAddress,
            input: Cluster.admin.password + "\n")
        let layout = try await tools.makeImage("image", layers: 3, seed: 21)
        let imageID = try await tools.podman("pull", "-q", "oci:\(layout):latest").trimmingCharacters(in: .whitespacesAndNewlines)
        let reference = "\(cluster.balancerAddress)/team/tokens:v1"
        try await tools.podman("tag", imageID, reference)
        try await tools.podman("push", "--tls-verify=false", reference)
        let puller = try ContainerTools(registry: cluster.balancerAddress)
        defer { puller.cleanUp() }
        try await puller.podman(
            "login", "--tls-verify=false", "-u", Cluster.admin.user, "--password-stdin", cluster.balancerAddress,
            input: Cluster.admin.password + "\n")
        try await puller.podman("pull", "--tls-verify=false", reference)
    }
}

/// A count several tasks bump and the test reads.
private final class Counter: Sendable {
    private let count = Atomic<Int>(0)

    var value: Int { count.load(ordering: .acquiring) }

    func increment() { count.add(1, ordering: .releasing) }
}
