import Foundation
import NIOHTTP1
import OCI
import RegistryTesting
import XCTest

/// registryd under systemd's own `systemd-socket-activate`, with both sockets passed
/// by name and a notification socket standing in for systemd.
final class SocketActivationTests: XCTestCase {
    var directory = ""
    var activated: SpawnedProcess?
    var restarted: Process?
    var notify: NotifySocket!
    var tools: ContainerTools!
    var port = 0
    var controlPath: String { directory + "/control.sock" }
    static let registryd = ContainerTools.repositoryRoot + "/.build/debug/registryd"
    static let registryctl = ContainerTools.repositoryRoot + "/.build/debug/registryctl"

    override func setUp() async throws {
        try ContainerTools.require(["systemd-socket-activate"])
        try DaemonTests.requireBuiltBinaries()
        directory = "/tmp/registryd-activation-\(UUID().uuidString.prefix(8).lowercased())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        notify = try NotifySocket(path: directory + "/notify.sock")
        tools = try ContainerTools(registry: "127.0.0.1")
        port = try DaemonTests.freePort()
    }

    override func tearDown() async throws {
        if let activated, activated.isRunning {
            activated.signal(SIGKILL)
            _ = await activated.waitForExit(seconds: 5)
        }
        if let restarted, restarted.isRunning {
            restarted.terminate()
            restarted.waitUntilExit()
        }
        notify = nil
        tools?.cleanUp()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Starts `systemd-socket-activate` with the registry and control sockets; registryd
    /// itself starts on the first connection (systemd-socket-activate execs it, so the
    /// pid stays the same).
    func startActivated(
        names: String = "registry:control", logLevel: String? = "notice", _ extra: [String] = [], environment: [String: String] = [:]
    ) throws {
        let passed = environment.sorted { $0.key < $1.key }.flatMap { ["-E", "\($0.key)=\($0.value)"] }
        activated = try SpawnedProcess(
            [
                "/usr/bin/systemd-socket-activate", "-l", "127.0.0.1:\(port)", "-l", controlPath, "--fdname=\(names)",
                "-E", "NOTIFY_SOCKET=\(notify.path)",
            ] + passed + [Self.registryd, "--data-dir", directory + "/data"]
                + (logLevel.map { ["--log-level", $0] } ?? []) + extra,
            environment: ["PATH": "/usr/bin:/bin"], stderrPath: directory + "/registryd.log")
    }

    /// Waits until something listens on the TCP socket (systemd-socket-activate binds first).
    func connectWhenListening() async throws -> TestResponse {
        for _ in 0..<200 {
            if let response = try? await TestHTTPClient(port: port).send(.GET, "/v2/") { return response }
            try await Task.sleep(for: .milliseconds(25))
        }
        // A daemon that crashed under activation is a failure, not a skip.
        XCTFail(
            "systemd-socket-activate did not listen: \((try? String(contentsOfFile: directory + "/registryd.log", encoding: .utf8)) ?? "")")
        throw TestHTTPClientError.noResponse
    }

    /// Runs registryctl against the activated control socket. - Returns: exit status and output.
    func registryctl(_ arguments: [String], input: String? = nil) async throws -> (Int32, String) {
        try await tools.runStatus([Self.registryctl] + arguments + ["--socket", controlPath], input: input)
    }

    func testActivatedDaemonServesPushesAndRegistryctlThenStopsOnSIGTERM() async throws {
        try ContainerTools.require(["podman"])
        try startActivated()
        let first = try await connectWhenListening()
        XCTAssertEqual(first.status, .unauthorized, "the first connection started registryd and was answered")
        let ready = await notify.waitFor("READY=1")
        XCTAssertTrue(ready)

        let (added, _) = try await registryctl(["user", "add", "admin", "--staff", "--password-stdin"], input: "admin-password\n")
        XCTAssertEqual(added, 0)
        let (status, output) = try await registryctl(["status", "--json"])
        XCTAssertEqual(status, 0)
        let report = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any]
        XCTAssertEqual(report?["activation"] as? String, "socket")

        let layout = try await tools.makeImage("image", layers: 2)
        let reference = "localhost:\(port)/activated/app:v1"
        let imageID = try await tools.podman("pull", "-q", "oci:\(layout):latest").trimmingCharacters(in: .whitespacesAndNewlines)
        try await tools.podman("tag", imageID, reference)
        try await tools.podman(
            "login", "--tls-verify=false", "-u", "admin", "--password-stdin", "localhost:\(port)", input: "admin-password\n")
        try await tools.podman("push", "--tls-verify=false", reference)
        let tags = try await TestHTTPClient(port: port).send(
            .GET, "/v2/activated/app/tags/list",
            headers: [("Authorization", "Basic " + Data("admin:admin-password".utf8).base64EncodedString())])
        XCTAssertEqual(tags.text, #"{"name":"activated/app","tags":["v1"]}"#)

        // registryctl against what the push left, for people and for scripts.
        let (shown, table) = try await registryctl(["repo", "show", "activated/app"])
        XCTAssertEqual(shown, 0)
        XCTAssertTrue(table.contains("TAG") && table.contains("v1"), table)
        let (_, json) = try await registryctl(["--json", "repo", "show", "activated/app"])
        let repository = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        XCTAssertEqual((repository?["tags"] as? [[String: Any]])?.first?["tag"] as? String, "v1")
        let (_, history) = try await registryctl(["tag", "history", "activated/app:v1"])
        XCTAssertTrue(history.contains("admin"), "the push is recorded with who made it: \(history)")
        let (missing, _) = try await registryctl(["repo", "show", "no/such"])
        XCTAssertEqual(missing, 2, "a failed call exits 2")
        let (verified, verification) = try await registryctl(["storage", "verify"])
        XCTAssertEqual(verified, 0, "a clean store exits 0: \(verification)")
        let (collected, collection) = try await registryctl(["gc", "run", "--dry-run", "--wait", "--grace", "0"])
        XCTAssertEqual(collected, 0)
        XCTAssertTrue(collection.contains("would remove"), collection)
        let statusReported = await notify.waitFor("STATUS=")
        XCTAssertTrue(statusReported)

        let process = try XCTUnwrap(activated)
        process.signal(SIGTERM)
        let stopping = await notify.waitFor("STOPPING=1")
        XCTAssertTrue(stopping)
        let exited = await process.waitForExit(seconds: 10)
        XCTAssertTrue(exited)
        XCTAssertEqual(process.terminationStatus, 0)
    }

    /// A TCP connection that sends nothing: enough for systemd-socket-activate to start
    /// registryd, without asking the API anything. - Returns: its descriptor.
    func connectWithoutRequest() async throws -> Int32 {
        for _ in 0..<200 {
            let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if connected == 0 { return descriptor }
            close(descriptor)
            try await Task.sleep(for: .milliseconds(25))
        }
        XCTFail("systemd-socket-activate did not listen")
        throw TestHTTPClientError.noResponse
    }

    func testReadyComesAfterTheAPIAnswersAndSIGHUPReloads() async throws {
        try startActivated()
        // Started by a connection that asks nothing: READY=1 must not come before the
        // API can answer, so the first request after it is answered at once.
        let trigger = try await connectWithoutRequest()
        defer { close(trigger) }
        let ready = await notify.waitFor("READY=1")
        XCTAssertTrue(ready)
        let started = ContinuousClock.now
        let answer = try await TestHTTPClient(port: port).send(.GET, "/v2/")
        XCTAssertEqual(answer.status, .unauthorized)
        XCTAssertLessThan(ContinuousClock.now - started, .milliseconds(500), "READY=1 came before the API answered")
        let (status, output) = try await registryctl(["status"])
        XCTAssertEqual(status, 0, "the control socket answers once READY=1 is sent: \(output)")
        // The connection that started it, queued before registryd ran, is served too.
        let request = Array("GET /v2/ HTTP/1.1\r\nHost: registry\r\nConnection: close\r\n\r\n".utf8)
        XCTAssertEqual(write(trigger, request, request.count), request.count)
        var reply = [UInt8](repeating: 0, count: 512)
        let read = recv(trigger, &reply, reply.count, 0)
        XCTAssertTrue(
            String(decoding: reply.prefix(max(read, 0)), as: UTF8.self).hasPrefix("HTTP/1.1 401"), "the first connection is answered")

        try XCTUnwrap(activated).signal(SIGHUP)
        let reloading = await notify.waitFor("RELOADING=1")
        XCTAssertTrue(reloading)
        let deadline = Date().addingTimeInterval(5)
        while notify.received.filter({ $0 == "READY=1" }).count < 2 && Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
        XCTAssertEqual(notify.received.filter { $0 == "READY=1" }.count, 2, "READY=1 again after the reload")
    }

    func testWatchdogIsPingedAtHalfTheTimeoutSystemdAsksFor() async throws {
        // systemd passes WatchdogSec= as WATCHDOG_USEC; 400 ms asks for a ping every 200 ms.
        try startActivated(logLevel: "warning", environment: ["WATCHDOG_USEC": "400000"])
        _ = try await connectWhenListening()
        _ = await notify.waitFor("READY=1")
        let before = notify.received.filter { $0 == "WATCHDOG=1" }.count
        try await Task.sleep(for: .seconds(2))
        let pings = notify.received.filter { $0 == "WATCHDOG=1" }.count - before
        XCTAssertGreaterThanOrEqual(pings, 6, "about ten pings in two seconds, at least six")
        XCTAssertLessThanOrEqual(pings, 14)
    }

    func testSIGHUPRereadsTheConfigFileAndABrokenOneChangesNothing() async throws {
        let config = directory + "/registryd.conf"
        try "log-level = info\n".write(toFile: config, atomically: true, encoding: .utf8)
        try startActivated(logLevel: nil, ["--config", config])
        _ = try await connectWhenListening()
        _ = await notify.waitFor("READY=1")
        let client = TestHTTPClient(port: port)
        func logged(_ path: String) async throws -> Bool {
            _ = try await client.send(.GET, path)
            try await Task.sleep(for: .milliseconds(300))  // the log writer gathers lines for up to 50 ms
            return try String(contentsOfFile: directory + "/registryd.log", encoding: .utf8).contains("GET \(path) ")
        }
        func reload() async throws {
            let before = notify.received.filter { $0 == "READY=1" }.count
            try XCTUnwrap(activated).signal(SIGHUP)
            let deadline = Date().addingTimeInterval(5)
            while notify.received.filter({ $0 == "READY=1" }).count <= before && Date() < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        let infoLogs = try await logged("/v2/before-reload/tags/list")
        XCTAssertTrue(infoLogs, "log-level = info from the file: access lines")

        try "log-level = warning\n".write(toFile: config, atomically: true, encoding: .utf8)
        try await reload()
        let warningLogs = try await logged("/v2/after-reload/tags/list")
        XCTAssertFalse(warningLogs, "the reloaded file's level applies without a restart")

        try "log-level = shouting\n".write(toFile: config, atomically: true, encoding: .utf8)
        try await reload()
        let log = try String(contentsOfFile: directory + "/registryd.log", encoding: .utf8)
        XCTAssertTrue(log.contains("reload failed, keeping the running settings"), log)
        let stillWarning = try await logged("/v2/after-broken-reload/tags/list")
        XCTAssertFalse(stillWarning, "a broken file changes nothing")
        XCTAssertTrue(try XCTUnwrap(activated).isRunning)
    }

    func testSIGTERMDuringUploadsLeavesNoPartialBlob() async throws {
        try startActivated(["--shutdown-timeout", "0"])
        _ = try await connectWhenListening()
        _ = await notify.waitFor("READY=1")
        let (added, _) = try await registryctl(["user", "add", "admin", "--staff", "--password-stdin"], input: "admin-password\n")
        XCTAssertEqual(added, 0)
        let auth = [("Authorization", "Basic " + Data("admin:admin-password".utf8).base64EncodedString())]
        let client = TestHTTPClient(port: port)

        // A chunked upload with one acknowledged chunk...
        let start = try await client.send(.POST, "/v2/cut/blobs/uploads/", headers: auth)
        let location = try XCTUnwrap(start.header("Location"))
        let chunk = Fixtures.bytes(1 << 20)
        let firstPatch = try await client.send(
            .PATCH, location, headers: auth + [("Content-Range", "0-\(chunk.count - 1)")], body: .bytes(chunk))
        XCTAssertEqual(firstPatch.status, .accepted)
        // ...and a large monolithic one and a second chunk cut off mid-body.
        let huge = Fixtures.digest(Fixtures.bytes(16))
        async let monolithic = client.send(
            .POST, "/v2/cut/blobs/uploads/?digest=\(huge)", headers: auth, body: .repeated(chunk: chunk, count: 4096))
        async let secondPatch = client.send(.PATCH, location, headers: auth, body: .repeated(chunk: chunk, count: 4096))
        // SIGTERM once both bodies are streaming into storage: the chunked upload's object
        // has grown past its first chunk, and a second upload object has bytes.
        let uploads = directory + "/data/storage/uploads"
        let id = String(location.split(separator: "/").last!)
        func size(_ path: String) -> Int { ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0 }
        var streaming = false
        for _ in 0..<500 where !streaming {
            let others = ((try? FileManager.default.contentsOfDirectory(atPath: uploads)) ?? []).filter { $0 != id }
            streaming = size("\(uploads)/\(id)/data") > chunk.count && others.contains { size("\(uploads)/\($0)/data") > 0 }
            if !streaming { try await Task.sleep(for: .milliseconds(10)) }
        }
        XCTAssertTrue(streaming, "both bodies were streaming when the daemon was stopped")
        let process = try XCTUnwrap(activated)
        process.signal(SIGTERM)
        // With --shutdown-timeout 0 neither may finish: each is cut (no answer) or refused.
        for (name, result) in [("monolithic", try? await monolithic), ("second chunk", try? await secondPatch)] {
            if let result { XCTAssertFalse((200..<300).contains(result.status.code), "\(name): \(result.status) after SIGTERM") }
        }
        let exited = await process.waitForExit(seconds: 10)
        XCTAssertTrue(exited)

        // Started again (without activation): nothing half-written is visible, and the
        // chunked upload resumes from what had been acknowledged.
        let restarted = Process()
        restarted.executableURL = URL(fileURLWithPath: Self.registryd)
        restarted.arguments = [
            "--listen", "127.0.0.1:\(port)", "--data-dir", directory + "/data", "--control-socket", directory + "/control2.sock",
        ]
        restarted.standardError = FileHandle.nullDevice
        try restarted.run()
        self.restarted = restarted
        _ = try await connectWhenListening()
        let status = try await client.send(.GET, location, headers: auth)
        XCTAssertEqual(status.status, .noContent)
        XCTAssertEqual(status.header("Range"), "0-\(chunk.count - 1)", "the acknowledged chunk survives; the cut one does not count")
        let head = try await client.send(.HEAD, "/v2/cut/blobs/\(huge)", headers: auth)
        XCTAssertEqual(head.status, .notFound)
        let blobs = (FileManager.default.enumerator(atPath: directory + "/data/storage/blobs")?.allObjects as? [String] ?? []).filter {
            $0.hasSuffix("/data")
        }
        XCTAssertEqual(blobs, [], "no blob file was committed")
        let rest = Fixtures.bytes(1000, seed: 9)
        let resumed = try await client.send(
            .PUT, "\(location)?digest=\(Fixtures.digest(chunk + rest))",
            headers: auth + [("Content-Range", "\(chunk.count)-\(chunk.count + 999)")], body: .bytes(rest))
        XCTAssertEqual(resumed.status, .created, resumed.text)
    }

    func testUnexpectedDescriptorNameIsAStartupError() async throws {
        try startActivated(names: "registry:bogus")
        let process = try XCTUnwrap(activated)
        // The first connection makes systemd-socket-activate start registryd, which refuses to run.
        for _ in 0..<100 where process.isRunning {
            _ = try? await TestHTTPClient(port: port).send(.GET, "/v2/")
            try await Task.sleep(for: .milliseconds(50))
        }
        let exited = await process.waitForExit(seconds: 10)
        XCTAssertTrue(exited)
        XCTAssertNotEqual(process.terminationStatus, 0)
        let log = try String(contentsOfFile: directory + "/registryd.log", encoding: .utf8)
        XCTAssertTrue(log.contains("\"bogus\""), log)
    }

    func testExitsWhenIdleUnderActivation() async throws {
        try startActivated(["--exit-idle-after", "1"])
        _ = try await connectWhenListening()
        let process = try XCTUnwrap(activated)
        let exited = await process.waitForExit(seconds: 8)
        XCTAssertTrue(exited, "registryd exits once idle; systemd would start it on the next connection")
        XCTAssertEqual(process.terminationStatus, 0)
    }
}
