import Foundation
import XCTest

/// A test that runs the real `registryd` binary: a fresh directory (with `data/`), a free
/// loopback port, the real clients pointed at it; afterwards the daemon is killed, its
/// log shown when the test failed, and everything removed.
class SpawnedDaemonTestCase: XCTestCase {
    var directory = ""
    var port = 0
    var daemon: SpawnedProcess?
    var tools: ContainerTools!

    /// Names the test's directory, `/tmp/registryd-<prefix>-<random>`.
    class var directoryPrefix: String { "daemon" }

    override func setUp() async throws {
        try DaemonTests.requireBuiltBinaries()
        directory = "/tmp/registryd-\(Self.directoryPrefix)-\(UUID().uuidString.prefix(8).lowercased())"
        try FileManager.default.createDirectory(atPath: directory + "/data", withIntermediateDirectories: true)
        port = try DaemonTests.freePort()
        tools = try ContainerTools(registry: "127.0.0.1:\(port)")
    }

    override func tearDown() async throws {
        if let daemon, daemon.isRunning {
            daemon.signal(SIGKILL)
            _ = await daemon.waitForExit(seconds: 10)
        }
        // The daemon's own account of a failed run, before its directory goes.
        if (testRun?.failureCount ?? 0) > 0, let log = try? String(contentsOfFile: directory + "/registryd.log", encoding: .utf8) {
            print("registryd's log (last 60 lines):\n" + log.split(separator: "\n").suffix(60).joined(separator: "\n"))
        }
        tools?.cleanUp()
        try? FileManager.default.removeItem(atPath: directory)
        (daemon, tools) = (nil, nil)
    }
}
