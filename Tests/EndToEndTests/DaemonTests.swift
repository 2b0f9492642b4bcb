import ControlProtocol
import Foundation
import Metadata
import OCI
import RegistryTesting
import XCTest

/// The `registryd` and `registryctl` binaries as an operator runs them: config file,
/// repeated listeners, access log, control socket, bad settings.
final class DaemonTests: XCTestCase {
    var directory = ""
    var daemon: Process?

    static let buildDirectory = ContainerTools.repositoryRoot + "/.build/debug"
    /// What `scripts/build-release.sh` builds: the binaries users run (scripts/test.sh
    /// builds them before the tests).
    static let releaseDirectory = ContainerTools.repositoryRoot + "/.build/release"

    override func setUp() async throws {
        directory = "/tmp/registryd-daemon-\(UUID().uuidString.prefix(8).lowercased())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try DaemonTests.requireBuiltBinaries()
    }

    override func tearDown() async throws {
        if let daemon, daemon.isRunning {
            daemon.terminate()
            daemon.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The debug binaries the tests run (`swift build` makes them): missing, the test
    /// fails; a skip would let a run without them pass.
    static func requireBuiltBinaries() throws {
        for name in ["registryd", "registryctl"] where !FileManager.default.isExecutableFile(atPath: buildDirectory + "/" + name) {
            throw MissingBinary(path: buildDirectory + "/" + name)
        }
    }

    struct MissingBinary: Error, CustomStringConvertible {
        let path: String
        var description: String { "\(path) is missing: build the binaries first (swift build)" }
    }

    /// A TCP port that was free a moment ago.
    static func freePort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try withUnsafeMutablePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                guard bind(descriptor, $0, length) == 0, getsockname(descriptor, $0, &length) == 0 else { throw POSIXError(.EADDRINUSE) }
            }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    func get(_ port: Int, _ path: String, headers: [(String, String)] = []) async throws -> TestResponse {
        try await TestHTTPClient(port: port).send(.GET, path, headers: headers)
    }

    /// Waits until `/v2/` answers on `port`, or fails after a few seconds.
    func waitUntilServing(_ port: Int) async throws {
        for _ in 0..<100 {
            // Anonymous callers are asked to log in: a 401 means it is up.
            if let response = try? await get(port, "/v2/"), response.status == .unauthorized { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        XCTFail("registryd did not start serving on port \(port)")
    }

    /// Runs registryctl. - Returns: its exit status and standard output.
    func registryctl(_ arguments: [String], input: String? = nil) async throws -> (Int32, String) {
        let tools = try ContainerTools(registry: "127.0.0.1")
        defer { tools.cleanUp() }
        return try await tools.runStatus([Self.buildDirectory + "/registryctl"] + arguments, input: input)
    }

    func start(_ arguments: [String], binaries: String = DaemonTests.buildDirectory) throws -> (Process, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binaries + "/registryd")
        process.arguments = arguments
        let log = directory + "/registryd.log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        return (process, log)
    }

    func testConfigFileWithTwoListenersAccessLogAndRegistryctl() async throws {
        let (first, second) = (try Self.freePort(), try Self.freePort())
        let config = directory + "/registryd.conf"
        try """
        # two listeners, as an operator would write it
        listen = 127.0.0.1:\(first)
        listen = "127.0.0.1:\(second)"
        data-dir = \(directory)/data
        log-level = info
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let (process, log) = try start(["--config", config])
        daemon = process
        try await waitUntilServing(first)
        let anonymous = try await get(second, "/v2/")
        XCTAssertEqual(anonymous.status, .unauthorized)
        XCTAssertEqual(anonymous.header("WWW-Authenticate"), #"Basic realm="registryd""#)

        let socket = "\(directory)/data/control.sock"
        let (added, _) = try await registryctl(
            ["user", "add", "alice", "--staff", "--password-stdin", "--socket", socket], input: "correct horse\n")
        XCTAssertEqual(added, 0)
        let credentials = "Basic " + Data("alice:correct horse".utf8).base64EncodedString()
        let base = try await get(second, "/v2/", headers: [("Authorization", credentials)])
        XCTAssertEqual(base.status, .ok)
        XCTAssertEqual(base.text, "{}")
        _ = try await get(second, "/v2/nothing/tags/list", headers: [("Authorization", credentials)])
        // An upload in two PATCHes and a pull: the log counts the body bytes each way.
        let client = TestHTTPClient(port: second)
        let started = try await client.send(.POST, "/v2/logged/blobs/uploads/", headers: [("Authorization", credentials)])
        let location = try XCTUnwrap(started.header("Location"))
        let layer = Fixtures.bytes(3000)
        let firstPatch = try await client.send(
            .PATCH, location, headers: [("Authorization", credentials)], body: .bytes(Array(layer[..<1000])))
        XCTAssertEqual(firstPatch.status, .accepted)
        let streamed = try await client.send(
            .PATCH, location, headers: [("Authorization", credentials)], body: .chunked([Array(layer[1000...])]))
        XCTAssertEqual(streamed.status, .accepted)
        let put = try await client.send(.PUT, location + "?digest=\(Fixtures.digest(layer))", headers: [("Authorization", credentials)])
        XCTAssertEqual(put.status, .created)
        let pulled = try await get(second, "/v2/logged/blobs/\(Fixtures.digest(layer))", headers: [("Authorization", credentials)])
        XCTAssertEqual(pulled.body, layer)

        let (status, output) = try await registryctl(["--json", "status", "--socket", socket])
        XCTAssertEqual(status, 0)
        let report = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any]
        XCTAssertEqual(report?["storage_driver"] as? String, "filesystem")
        XCTAssertEqual(report?["blob_bytes"] as? Int, 3000, "--json keeps the raw fields")
        // For people: how it runs first, sizes with units, uptime as a duration.
        let (_, summary) = try await registryctl(["status", "--socket", socket])
        let summaryLines = summary.split(separator: "\n").map(String.init)
        XCTAssertTrue(summaryLines.first?.hasPrefix("registryd 0.1.0, up ") == true, summary)
        XCTAssertTrue(summaryLines.first?.hasSuffix("s") == true, "uptime as a duration, e.g. 2s: \(summary)")
        let instance = try String(contentsOfFile: "\(directory)/data/instance-id", encoding: .utf8).trimmingCharacters(
            in: .whitespacesAndNewlines)
        XCTAssertEqual(summaryLines.dropFirst().first, "instance      \(instance)")
        XCTAssertEqual(summaryLines.dropFirst(2).first, "activation    none")
        XCTAssertEqual(summaryLines.dropFirst(3).first, "metadata      SQLite \(directory)/data/registry.db")
        XCTAssertEqual(summaryLines.dropFirst(4).first, "storage       filesystem")
        // The instances sharing the metadata, from their heartbeats: on SQLite this one.
        XCTAssertTrue(summaryLines.contains { $0.hasPrefix("INSTANCE") && $0.contains("HEARTBEAT") }, summary)
        XCTAssertTrue(summaryLines.contains { $0.hasPrefix(instance + "  ") }, summary)
        XCTAssertTrue(summaryLines.contains("blobs         1 (2.9 KiB)"), summary)
        XCTAssertTrue(summaryLines.contains("uploads       0 in progress"), summary)
        XCTAssertFalse(summary.contains("blob_bytes"), summary)

        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(directory)/data/registry.db"))
        // The access-log line is written just after the response: give it a moment
        // (generously: CI machines are busy).
        var lines = ""
        for _ in 0..<250 {
            lines = try String(contentsOfFile: log, encoding: .utf8)
            if lines.contains("GET /v2/logged/blobs/") { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        XCTAssertTrue(lines.contains("GET /v2/ 200 2 0 "), lines)
        // The whole line, as swift-log's stream handler would have written it; the duration
        // has three decimals (the access log pads them itself).
        let shape = #/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} info registryd: \[HTTPTransport\] 127\.0\.0\.1 GET /v2/ 200 2 0 \d+\.\d{3}ms/#
        XCTAssertTrue(lines.split(separator: "\n").contains { $0.wholeMatch(of: shape) != nil }, lines)
        XCTAssertFalse(lines.contains("correct horse"), "a password never reaches the log")
        XCTAssertTrue(lines.contains("GET /v2/nothing/tags/list 404"), lines)
        // Method, path, status, body bytes sent, body bytes received: never a sentinel.
        XCTAssertTrue(lines.contains("PATCH \(location) 202 0 1000 "), lines)
        XCTAssertTrue(lines.contains("PATCH \(location) 202 0 2000 "), lines)
        XCTAssertTrue(lines.contains("GET /v2/logged/blobs/\(Fixtures.digest(layer)) 200 3000 0 "), lines)
        XCTAssertFalse(lines.contains(" -1 "), lines)
    }

    func testTheReadmeQuickStartRunsAsWritten() async throws {
        try ContainerTools.require(["podman", "skopeo", "curl"])
        // The release binaries, as the README builds them (in CI they must be there).
        let release = FileManager.default.isExecutableFile(atPath: Self.releaseDirectory + "/registryd")
        try requireCapability(
            release || ProcessInfo.processInfo.environment["CI"] != "true", "the release build (scripts/build-release.sh)")
        let binaries = release ? Self.releaseDirectory : Self.buildDirectory
        let port = try Self.freePort()
        let (process, _) = try start(["--listen", "127.0.0.1:\(port)", "--data-dir", directory + "/registry-data"], binaries: binaries)
        daemon = process
        try await waitUntilServing(port)
        let tools = try ContainerTools(registry: "localhost:\(port)")
        defer { tools.cleanUp() }

        // The shell blocks between the README's quick-start markers, with only the port
        // and the directories changed.
        let readme = try String(contentsOfFile: ContainerTools.repositoryRoot + "/README.md", encoding: .utf8)
        let section = try XCTUnwrap(
            readme.components(separatedBy: "<!-- quick-start: begin -->").last?.components(separatedBy: "<!-- quick-start: end -->").first)
        let blocks = section.components(separatedBy: "```sh\n").dropFirst().compactMap { $0.components(separatedBy: "```").first }
        XCTAssertEqual(blocks.count, 3, "the quick start's three blocks")
        let script = blocks.joined(separator: "\n")
            .replacingOccurrences(of: "/tmp/", with: tools.workDirectory + "/")
            .replacingOccurrences(of: "localhost:5000", with: "localhost:\(port)")
            .replacingOccurrences(of: ".build/release/", with: binaries + "/")
            .replacingOccurrences(of: "registry-data/", with: directory + "/registry-data/")
        // What the README says a command prints: its `# {…}` lines.
        let promised = script.split(separator: "\n").filter { $0.hasPrefix("# {") }.map { String($0.dropFirst(2)) }
        XCTAssertEqual(promised.count, 2)
        let path = tools.workDirectory + "/quick-start.sh"
        try ("cd \(ContainerTools.repositoryRoot)\n" + script).write(toFile: path, atomically: true, encoding: .utf8)

        let output = try await tools.run(
            ["bash", "-euo", "pipefail", path], input: "a-long-password\n", environment: try tools.podmanConfiguration())
        let printed = output.split(separator: "\n").map(String.init)
        for line in Set(promised) {
            XCTAssertEqual(printed.filter { $0 == line }.count, promised.filter { $0 == line }.count, "\(line) in:\n\(output)")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: tools.workDirectory + "/copy/index.json"), "skopeo copied the image back")
    }

    func testTokenAuthThroughTheRealBinaryWithPodman() async throws {
        try ContainerTools.require(["podman", "unshare"])
        let port = try Self.freePort()
        let registry = "localhost:\(port)"
        let (process, log) = try start([
            "--listen", "127.0.0.1:\(port)", "--data-dir", directory + "/data", "--token-auth", "--public-url", "http://\(registry)",
        ])
        daemon = process
        try await waitUntilServing(port)
        let challenge = try await get(port, "/v2/alice/app/tags/list")
        XCTAssertEqual(
            challenge.header("WWW-Authenticate"),
            "Bearer realm=\"http://\(registry)/token\",service=\"registryd\",scope=\"repository:alice/app:pull\"",
            "the realm comes from --public-url")
        let socket = directory + "/data/control.sock"
        let (added, _) = try await registryctl(["user", "add", "alice", "--password-stdin", "--socket", socket], input: "alice-password\n")
        XCTAssertEqual(added, 0)

        let pusher = try ContainerTools(registry: registry)
        defer { pusher.cleanUp() }
        let layout = try await pusher.makeImage("image")
        let imageID = try await pusher.podman("pull", "-q", "oci:\(layout):latest").trimmingCharacters(in: .whitespacesAndNewlines)
        try await pusher.podman("tag", imageID, "\(registry)/alice/app:v1", "\(registry)/bob/app:v1")
        try await pusher.podman("login", "--tls-verify=false", "-u", "alice", "--password-stdin", registry, input: "alice-password\n")
        let digestFile = pusher.workDirectory + "/pushed.digest"
        try await pusher.podman("push", "--tls-verify=false", "--digestfile", digestFile, "\(registry)/alice/app:v1")
        let pushed = try String(contentsOfFile: digestFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        do {
            try await pusher.podman("push", "--tls-verify=false", "\(registry)/bob/app:v1")
            XCTFail("alice may not push into bob's namespace")
        } catch ContainerTools.ToolError.failed(_, _, let output) {
            XCTAssertTrue(output.contains("denied") || output.contains("unauthorized"), output)
        }

        // Another machine: log in, pull, the same digest.
        let puller = try ContainerTools(registry: registry)
        defer { puller.cleanUp() }
        try await puller.podman("login", "--tls-verify=false", "-u", "alice", "--password-stdin", registry, input: "alice-password\n")
        try await puller.podman("pull", "--tls-verify=false", "\(registry)/alice/app:v1")
        let pulled = try await puller.podman("image", "inspect", "--format", "{{.Digest}}", "\(registry)/alice/app:v1")
        XCTAssertEqual(pulled.trimmingCharacters(in: .whitespacesAndNewlines), pushed)
        let lines = try String(contentsOfFile: log, encoding: .utf8)
        XCTAssertFalse(lines.contains("alice-password"), "a password never reaches the log")
    }

    func testRegistryctlAsAnOperatorUsesIt() async throws {
        let port = try Self.freePort()
        let data = directory + "/data"
        let (process, _) = try start(["--listen", "127.0.0.1:\(port)", "--data-dir", data])
        daemon = process
        try await waitUntilServing(port)
        let tools = try ContainerTools(registry: "127.0.0.1")
        defer { tools.cleanUp() }
        // The socket from REGISTRYCTL_SOCKET, as an operator's shell would set it.
        func ctl(_ arguments: String..., input: String? = nil) async throws -> (Int32, String) {
            try await tools.runStatus(
                [Self.buildDirectory + "/registryctl"] + arguments, input: input,
                environment: ["REGISTRYCTL_SOCKET": data + "/control.sock"])
        }
        func basic(_ user: String, _ password: String) -> [(String, String)] {
            [("Authorization", "Basic " + Data("\(user):\(password)".utf8).base64EncodedString())]
        }
        let client = TestHTTPClient(port: port)

        // Users.
        for (name, password) in [("alice", "alice-password"), ("bob", "bob-password")] {
            let (added, _) = try await ctl("user", "add", name, "--password-stdin", input: password + "\n")
            XCTAssertEqual(added, 0)
        }
        let (duplicate, _) = try await ctl("user", "add", "alice", "--password-stdin", input: "another-password\n")
        XCTAssertEqual(duplicate, 2, "a failed call exits 2")
        let (usage, _) = try await ctl("user", "staff", "alice", "maybe")
        XCTAssertEqual(usage, 64, "a usage error exits 64")
        _ = try await ctl("user", "staff", "alice", "on")
        let (_, users) = try await ctl("user", "list")
        let rows = users.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        XCTAssertEqual(rows, [["NAME", "STAFF", "DISABLED"], ["alice", "yes", "no"], ["bob", "no", "no"]], users)
        _ = try await ctl("user", "passwd", "bob", "--password-stdin", input: "bob-new-password\n")
        let oldPassword = try await client.send(.GET, "/v2/", headers: basic("bob", "bob-password"))
        let newPassword = try await client.send(.GET, "/v2/", headers: basic("bob", "bob-new-password"))
        XCTAssertEqual(
            [oldPassword.status, newPassword.status], [.unauthorized, .ok], "the new password works at once, the old one no more")
        _ = try await ctl("user", "disable", "bob")
        let disabled = try await client.send(.GET, "/v2/", headers: basic("bob", "bob-new-password"))
        XCTAssertEqual(disabled.status, .unauthorized)
        _ = try await ctl("user", "enable", "bob")
        let enabled = try await client.send(.GET, "/v2/", headers: basic("bob", "bob-new-password"))
        XCTAssertEqual(enabled.status, .ok)
        let (removed, _) = try await ctl("user", "rm", "bob")
        XCTAssertEqual(removed, 0)
        let (_, remaining) = try await ctl("user", "list")
        XCTAssertFalse(remaining.contains("bob"), remaining)

        // Namespaces.
        let (granted, grantOutput) = try await ctl("ns", "grant", "team", "alice", "owner")
        XCTAssertEqual(granted, 0, grantOutput)
        let (_, namespaces) = try await ctl("ns", "list")
        XCTAssertTrue(namespaces.contains("team") && namespaces.contains("alice"), namespaces)
        _ = try await ctl("ns", "revoke", "team", "alice")
        let (_, afterRevoke) = try await ctl("ns", "list")
        XCTAssertFalse(afterRevoke.contains("alice"), afterRevoke)

        // Repositories, tags, uploads.
        let alice = basic("alice", "alice-password")
        let layer = Fixtures.bytes(2000)
        for blob in [[1], layer] as [[UInt8]] {
            let pushed = try await client.send(
                .POST, "/v2/team/app/blobs/uploads/?digest=\(Fixtures.digest(blob))", headers: alice, body: .bytes(blob))
            XCTAssertEqual(pushed.status, .created)
        }
        let manifest = Fixtures.imageManifest(config: [1], layers: [layer])
        let put = try await client.send(
            .PUT, "/v2/team/app/manifests/v1", headers: alice + [("Content-Type", MediaType.ociManifest)], body: .bytes(manifest))
        XCTAssertEqual(put.status, .created)
        let (_, repositories) = try await ctl("repo", "list")
        XCTAssertEqual(repositories, "team/app\n")
        let (_, shown) = try await ctl("repo", "show", "team/app")
        XCTAssertTrue(shown.contains("v1") && shown.contains("private"), shown)
        let (_, history) = try await ctl("tag", "history", "team/app:v1")
        XCTAssertTrue(history.contains("alice"), history)
        let anonymousBefore = try await client.send(.GET, "/v2/team/app/tags/list")
        _ = try await ctl("repo", "visibility", "team/app", "public")
        let anonymousAfter = try await client.send(.GET, "/v2/team/app/tags/list")
        XCTAssertEqual([anonymousBefore.status, anonymousAfter.status], [.unauthorized, .ok])

        let started = try await client.send(.POST, "/v2/team/app/blobs/uploads/", headers: alice)
        XCTAssertEqual(started.status, .accepted)
        let (_, uploads) = try await ctl("upload", "list")
        XCTAssertTrue(uploads.contains("team/app"), uploads)
        let (_, purged) = try await ctl("upload", "purge", "--older-than", "0")
        XCTAssertTrue(purged.hasPrefix("removed 1 upload(s)"), purged)

        // Collections and verification, with their exit codes.
        let (collected, _) = try await ctl("gc", "run", "--grace", "0", "--wait")
        XCTAssertEqual(collected, 0)
        let (gcStatus, _) = try await ctl("gc", "status")
        XCTAssertEqual(gcStatus, 0)
        let (clean, _) = try await ctl("storage", "verify")
        XCTAssertEqual(clean, 0)
        let hex = Fixtures.digest(layer).dropFirst("sha256:".count)
        try FileManager.default.removeItem(atPath: "\(data)/storage/blobs/sha256/\(hex.prefix(2))/\(hex)/data")
        let (problems, report) = try await ctl("storage", "verify")
        XCTAssertEqual(problems, 1, report)
        XCTAssertTrue(report.contains("missing bytes: \(Fixtures.digest(layer))"), report)
        let (repaired, _) = try await ctl("storage", "verify", "--repair")
        XCTAssertEqual(repaired, 3)

        let (deleted, _) = try await ctl("repo", "rm", "team/app")
        XCTAssertEqual(deleted, 0)
        let gone = try await client.send(.GET, "/v2/team/app/manifests/v1", headers: alice)
        XCTAssertEqual(gone.status, .notFound)

        // The audit: every change above, newest first, and never a password.
        let (audited, audit) = try await ctl("audit", "--limit", "100")
        XCTAssertEqual(audited, 0, audit)
        XCTAssertTrue(audit.hasPrefix("WHEN"), audit)
        let (_, json) = try await ctl("audit", "--limit", "100", "--json")
        let entries = try JSONDecoder().decode(JSONValue.self, from: Data(json.utf8))["entries"]?.arrayValue ?? []
        let methods = entries.compactMap { $0["method"]?.stringValue }
        XCTAssertEqual(methods.first, "repo.delete", audit)
        XCTAssertEqual(entries.first?["params"]?["name"], "team/app", json)
        for method in [
            "user.create", "user.set_password", "user.set_staff", "user.disable", "user.delete", "namespace.grant", "namespace.revoke",
            "repo.set_visibility", "upload.purge", "gc.run", "gc.result", "storage.verify",
        ] {
            XCTAssertTrue(methods.contains(method), "\(method) in \(audit)")
        }
        XCTAssertTrue(audit.contains(#""password":"(redacted)""#), audit)
        XCTAssertFalse(audit.contains("alice-password") || audit.contains("bob-new-password"), audit)
    }

    /// Tag moves and audit records past their retention are removed (at start, then
    /// periodically); the tags themselves and newer records stay.
    func testHistoryAndAuditRecordsPastTheirRetentionAreRemoved() async throws {
        let port = try Self.freePort()
        let data = directory + "/data"
        let arguments = ["--listen", "127.0.0.1:\(port)", "--data-dir", data, "--tag-history-retention", "1h", "--audit-retention", "2h"]
        daemon = try start(arguments).0
        try await waitUntilServing(port)
        let socket = ["--socket", data + "/control.sock"]
        _ = try await registryctl(["user", "add", "alice", "--staff", "--password-stdin"] + socket, input: "alice-password\n")
        let alice = [("Authorization", "Basic " + Data("alice:alice-password".utf8).base64EncodedString())]
        let client = TestHTTPClient(port: port)
        let pushed = try await client.send(
            .POST, "/v2/team/app/blobs/uploads/?digest=\(Fixtures.digest([1]))", headers: alice, body: .bytes([1]))
        XCTAssertEqual(pushed.status, .created)
        let manifest = Fixtures.imageManifest(config: [1], layers: [])
        let put = try await client.send(
            .PUT, "/v2/team/app/manifests/v1", headers: alice + [("Content-Type", MediaType.ociManifest)], body: .bytes(manifest))
        XCTAssertEqual(put.status, .created)
        let (_, history) = try await registryctl(["tag", "history", "team/app"] + socket)
        XCTAssertTrue(history.contains("alice"), history)
        daemon?.terminate()
        daemon?.waitUntilExit()

        // Ninety minutes pass: the move is past its hour, the audit record within its two.
        let tools = try ContainerTools(registry: "127.0.0.1")
        defer { tools.cleanUp() }
        let age = try await tools.runStatus([
            "/usr/bin/python3", "-c",
            """
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1])
            db.execute("UPDATE tag_history SET at = at - 5400")
            db.execute("UPDATE audit_log SET at = at - 5400")
            db.commit()
            """, data + "/registry.db",
        ])
        XCTAssertEqual(age.0, 0, age.1)
        daemon = try start(arguments).0
        try await waitUntilServing(port)
        var moves = "alice"
        for _ in 0..<100 where moves.contains("alice") {
            moves = try await registryctl(["tag", "history", "team/app", "--json"] + socket).1
            try await Task.sleep(for: .milliseconds(50))
        }
        XCTAssertFalse(moves.contains("alice"), "the move is past its retention: \(moves)")
        let (_, audit) = try await registryctl(["audit"] + socket)
        XCTAssertTrue(audit.contains("user.create"), audit)
        let tags = try await client.send(.GET, "/v2/team/app/tags/list", headers: alice)
        XCTAssertEqual(String(decoding: tags.body, as: UTF8.self), #"{"name":"team/app","tags":["v1"]}"#)
    }

    func testPinsOfAKilledRegistrydAreReleasedWhenItStartsAgain() async throws {
        let data = directory + "/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        // What a registryd killed between pinning a blob and placing its bytes leaves.
        try "instance-a\n".write(toFile: data + "/instance-id", atomically: true, encoding: .utf8)
        do {
            let killed = try SQLiteMetadataStore(path: data + "/registry.db", instance: "instance-a")
            await assertTrue(try await killed.pinBlob(Digest.of([1, 2, 3]), size: 3, for: .generate()))
        }
        let port = try Self.freePort()
        let (process, log) = try start(["--listen", "127.0.0.1:\(port)", "--data-dir", data])
        daemon = process
        try await waitUntilServing(port)
        let (status, output) = try await registryctl(["storage", "verify", "--socket", data + "/control.sock"])
        XCTAssertEqual(status, 0, "storage verify finds nothing wrong: \(output)")
        XCTAssertTrue(output.hasSuffix("clean\n"), output)
        let lines = try String(contentsOfFile: log, encoding: .utf8)
        XCTAssertTrue(lines.contains("released 1 pin(s) of uploads interrupted by the last stop; removed 1 blob row(s)"), lines)
    }

    func testItsOwnThreadsSayWhatTheyDo() async throws {
        // `top -H` and profilers show thread names; a thread without one carries the name
        // of the thread that started it (Dispatch's, for SQLite's commit threads).
        let port = try Self.freePort()
        let data = directory + "/data"
        let (process, _) = try start(["--listen", "127.0.0.1:\(port)", "--data-dir", data])
        daemon = process
        try await waitUntilServing(port)
        let (status, output) = try await registryctl(
            ["user", "add", "thread-names", "--password-stdin", "--socket", data + "/control.sock"], input: "a-long-password\n")
        XCTAssertEqual(status, 0, "a user added is a commit: \(output)")
        let tasks = "/proc/\(process.processIdentifier)/task"
        let names = try FileManager.default.contentsOfDirectory(atPath: tasks).compactMap {
            try? String(contentsOfFile: "\(tasks)/\($0)/comm", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        XCTAssertTrue(names.contains("log-writer"), "\(names)")
        XCTAssertTrue(names.contains("sqlite-commit"), "\(names)")
    }

    func testEveryRequestOfManyConnectionsGetsOneWholeLine() async throws {
        // Connections spread over both event loops, each logging into a buffer of its own
        // thread: every request's line must come out once, whole, none torn or merged.
        let port = try Self.freePort()
        let (process, log) = try start(["--listen", "127.0.0.1:\(port)", "--data-dir", directory + "/data"])
        daemon = process
        try await waitUntilServing(port)
        let (connections, requests) = (16, 100)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for connection in 0..<connections {
                group.addTask {
                    // Pipelined: the last one closes the connection.
                    let pieces = (0..<requests).map { index in
                        let close = index == requests - 1 ? "Connection: close\r\n" : ""
                        return "GET /v2/lines-\(connection)-\(index)/tags/list HTTP/1.1\r\nHost: a\r\n\(close)\r\n"
                    }
                    let answer = try await TestHTTPClient(port: port).exchangeRaw([Array(pieces.joined().utf8)])
                    XCTAssertEqual(TestHTTPClient.splitAnswers(answer).count, requests)
                }
            }
            try await group.waitForAll()
        }
        let shape =
            #/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} info registryd: \[HTTPTransport\] 127\.0\.0\.1 GET /v2/lines-(\d+)-(\d+)/tags/list 401 \d+ 0 \d+\.\d{3}ms/#
        var seen: [String: Int] = [:]
        for _ in 0..<250 {
            let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").filter { $0.contains("/v2/lines-") }
            seen = [:]
            for line in lines {
                let match = try XCTUnwrap(line.wholeMatch(of: shape), "a torn or merged line: \(line)")
                seen["\(match.1)-\(match.2)", default: 0] += 1
            }
            if seen.count == connections * requests { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        XCTAssertEqual(seen.count, connections * requests, "a line for every request")
        XCTAssertEqual(seen.values.filter { $0 != 1 }.count, 0, "and only one")
    }

    func testAStalledStandardErrorNeverStallsRequests() async throws {
        // Standard error is a pipe nobody reads: after 64 KiB the writes block. Requests
        // (each with its access-log line) must still be answered.
        let port = try Self.freePort()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.buildDirectory + "/registryd")
        process.arguments = ["--listen", "127.0.0.1:\(port)", "--data-dir", directory + "/data"]
        let stalled = Pipe()
        process.standardError = stalled
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        daemon = process
        try await waitUntilServing(port)

        let answered = try await withThrowingTaskGroup(of: Int.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    let client = TestHTTPClient(port: port)
                    for index in 0..<250 {
                        let request = "GET /v2/stalled-\(worker)-\(index)/tags/list HTTP/1.1\r\nConnection: close\r\n\r\n"
                        // A stalled daemon leaves the answer out: the client gives up after 10 s.
                        let answer = try await client.exchangeRaw([Array(request.utf8)], limit: .seconds(10))
                        guard String(decoding: answer, as: UTF8.self).hasPrefix("HTTP/1.1 401") else { return index }
                    }
                    return 250
                }
            }
            return try await group.reduce(0, +)
        }
        XCTAssertEqual(answered, 2000, "every request answered while standard error was stalled")
        // The lines were kept, not lost: reading the pipe now gets them (more than the
        // 64 KiB the pipe itself holds).
        var logged = Data()
        while logged.count <= 64 * 1024 {
            let more = stalled.fileHandleForReading.availableData
            if more.isEmpty { break }
            logged += more
        }
        XCTAssertGreaterThan(logged.count, 64 * 1024)
        XCTAssertTrue(String(decoding: logged, as: UTF8.self).contains("GET /v2/stalled-"))
        // Keep reading, so the daemon's last lines at shutdown do not block its exit.
        let reader = stalled.fileHandleForReading
        Thread.detachNewThread { _ = reader.readDataToEndOfFile() }
    }

    func testFlagsOverrideTheConfigFile() async throws {
        let port = try Self.freePort()
        let config = directory + "/registryd.conf"
        try "listen = 127.0.0.1:1\ndata-dir = \(directory)/ignored\n".write(toFile: config, atomically: true, encoding: .utf8)
        let (process, _) = try start([
            "--config", config, "--listen", "127.0.0.1:\(port)", "--data-dir", "\(directory)/used", "--storage", "memory",
        ])
        daemon = process
        try await waitUntilServing(port)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(directory)/used/registry.db"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(directory)/ignored"))
    }

    func testBadSettingsStopTheDaemonWithAClearMessage() throws {
        let config = directory + "/bad.conf"
        try "listen = 127.0.0.1:5000\nsorage = memory\n".write(toFile: config, atomically: true, encoding: .utf8)
        for arguments in [
            ["--config", config], ["--listen", "nowhere"], ["--storage", "floppy"], ["--audit-retention", "3fortnights"],
            ["--tag-history-retention", "59"],
        ] {
            let (process, log) = try start(arguments + ["--data-dir", directory + "/data"])
            process.waitUntilExit()
            XCTAssertNotEqual(process.terminationStatus, 0, "\(arguments)")
            let message = try String(contentsOfFile: log, encoding: .utf8)
            XCTAssertTrue(
                ["sorage", "nowhere", "floppy", "3fortnights", "tag-history-retention: 59"].contains { message.contains($0) }, message)
        }
    }
}
