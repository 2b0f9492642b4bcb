import Foundation
import XCTest

/// A dockerd of the test's own (Debian's docker.io): its own data root, exec root, pid
/// file and socket under a temporary directory, vfs storage and no networking setup, so
/// it touches nothing of the machine's. Its managed containerd serves `ctr` as well.
///
/// ```swift
/// let docker = try await DockerDaemon.start(insecureRegistry: registry.address)
/// defer { docker.stop() }
/// try await tools.run(["/usr/bin/docker", "info"], isolated: false, environment: docker.environment)
/// ```
final class DockerDaemon: @unchecked Sendable {  // `process` is touched by the test's task only
    let directory: String
    private let process: Process

    var socket: String { directory + "/docker.sock" }
    /// The containerd that dockerd started for itself (docker.io 20.10 runs one per daemon).
    var containerdSocket: String { directory + "/exec/containerd/containerd.sock" }
    /// What the docker CLI needs to talk to this daemon and keep its login to itself.
    var environment: [String: String] { ["DOCKER_HOST": "unix://\(socket)", "DOCKER_CONFIG": directory + "/config"] }

    static let binaries = ["/usr/sbin/dockerd", "/usr/bin/docker", "/usr/bin/ctr", "/usr/bin/containerd"]

    private init(directory: String, process: Process) {
        self.directory = directory
        self.process = process
    }

    static func start(insecureRegistry: String) async throws -> DockerDaemon {
        // Short: the socket path must fit in sun_path (108 bytes).
        let directory = "/tmp/rd-docker-\(UUID().uuidString.prefix(8).lowercased())"
        for child in ["root", "exec", "config"] {
            try FileManager.default.createDirectory(atPath: "\(directory)/\(child)", withIntermediateDirectories: true)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/dockerd")
        process.arguments = [
            "--data-root", "\(directory)/root", "--exec-root", "\(directory)/exec", "--pidfile", "\(directory)/docker.pid",
            "-H", "unix://\(directory)/docker.sock", "--storage-driver", "vfs",
            "--iptables=false", "--ip6tables=false", "--bridge=none", "--insecure-registry", insecureRegistry,
        ]
        let log = directory + "/dockerd.log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        try process.run()
        let daemon = DockerDaemon(directory: directory, process: process)
        for _ in 0..<300 {
            if FileManager.default.fileExists(atPath: daemon.socket), FileManager.default.fileExists(atPath: daemon.containerdSocket) {
                if (try? String(contentsOfFile: log, encoding: .utf8))?.contains("API listen on") == true { return daemon }
            }
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        daemon.stop()
        throw DockerDaemonError.didNotStart(String(output.suffix(2000)))
    }

    /// SIGTERM (dockerd stops its containerd too), then SIGKILL after 20 s; removes the directory.
    func stop() {
        if process.isRunning {
            process.terminate()
            let deadline = Date().addingTimeInterval(20)
            while process.isRunning && Date() < deadline { usleep(50_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    enum DockerDaemonError: Error, CustomStringConvertible {
        case didNotStart(String)
        var description: String {
            switch self {
            case .didNotStart(let log): "dockerd did not start:\n\(log)"
            }
        }
    }
}
