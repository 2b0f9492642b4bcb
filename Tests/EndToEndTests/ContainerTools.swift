import Foundation
import OCI
import XCTest

/// Runs the real clients (podman, skopeo, buildah from Debian) against a test registry.
///
/// Each test gets its own storage root and its own `/var/lib/containers` (bind-mounted
/// inside `unshare -m`), so the clients' blob-info cache lives exactly as long as the
/// test: a second push within a test can mount, and no run sees another's cache.
struct ContainerTools {
    let workDirectory: String
    let registry: String

    init(registry: String) throws {
        self.registry = registry
        // Lowercase and without "//": podman names images pulled from a layout after its path.
        workDirectory = "/tmp/registryd-e2e-\(UUID().uuidString.prefix(8).lowercased())"
        for directory in ["root", "runroot", "varlib", "out"] {
            try FileManager.default.createDirectory(atPath: "\(workDirectory)/\(directory)", withIntermediateDirectories: true)
        }
        try FileManager.default.createDirectory(atPath: "/var/lib/containers", withIntermediateDirectories: true)
        // podman refuses to start when REGISTRY_AUTH_FILE names a missing file.
        try #"{"auths":{}}"#.write(toFile: "\(workDirectory)/auth.json", atomically: true, encoding: .utf8)
    }

    func cleanUp() {
        try? FileManager.default.removeItem(atPath: workDirectory)
    }

    /// Fails the test unless every tool is installed (scripts/install-deps.sh installs them):
    /// a name is looked for in /usr/bin, a path as it is.
    static func require(_ tools: [String]) throws {
        for tool in tools where !FileManager.default.isExecutableFile(atPath: tool.hasPrefix("/") ? tool : "/usr/bin/\(tool)") {
            let environment = ProcessInfo.processInfo.environment
            if environment["REGISTRYD_SKIP_CLIENT_TESTS"] != nil && environment["CI"] != "true" {
                throw XCTSkip("\(tool) is not installed and REGISTRYD_SKIP_CLIENT_TESTS is set")
            }
            throw ToolError.failed(tool, 127, "not installed: run scripts/install-deps.sh --test")
        }
    }

    var podmanFlags: [String] {
        [
            "--root", "\(workDirectory)/root", "--runroot", "\(workDirectory)/runroot", "--storage-driver", "vfs",
            "--events-backend", "file", "--cgroup-manager", "cgroupfs",
        ]
    }

    /// What `podmanFlags` say, as the configuration files plain `podman` commands read
    /// (for scripts written as a user would type them).
    func podmanConfiguration() throws -> [String: String] {
        try """
        [storage]
        driver = "vfs"
        graphroot = "\(workDirectory)/root"
        runroot = "\(workDirectory)/runroot"
        """.write(toFile: "\(workDirectory)/storage.conf", atomically: true, encoding: .utf8)
        try """
        [engine]
        events_logger = "file"
        cgroup_manager = "cgroupfs"
        """.write(toFile: "\(workDirectory)/containers.conf", atomically: true, encoding: .utf8)
        return ["CONTAINERS_STORAGE_CONF": "\(workDirectory)/storage.conf", "CONTAINERS_CONF": "\(workDirectory)/containers.conf"]
    }

    var buildahFlags: [String] {
        ["--root", "\(workDirectory)/root", "--runroot", "\(workDirectory)/runroot", "--storage-driver", "vfs"]
    }

    @discardableResult
    func podman(_ arguments: String..., input: String? = nil) async throws -> String {
        try await run(["podman"] + podmanFlags + arguments, input: input)
    }

    @discardableResult
    func buildah(_ arguments: String...) async throws -> String {
        try await run(["buildah"] + buildahFlags + arguments)
    }

    @discardableResult
    func skopeo(_ arguments: String..., input: String? = nil) async throws -> String {
        try await run(["skopeo"] + arguments, input: input)
    }

    /// Writes an OCI layout with scripts/make-test-image.py. - Returns: its path.
    func makeImage(_ name: String, platforms: String = "linux/amd64", layers: Int = 3, layerSize: Int = 65536, seed: Int = 1) async throws
        -> String
    {
        let path = "\(workDirectory)/\(name)"
        try await run(
            [
                "python3", Self.repositoryRoot + "/scripts/make-test-image.py", path, "--platforms", platforms,
                "--layers", String(layers), "--layer-size", String(layerSize), "--seed", String(seed),
            ], isolated: false)
        return path
    }

    /// The sha256 digest of a file's bytes.
    func fileDigest(_ path: String) throws -> String {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return Digest.of(Array(data)).description
    }

    static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// Runs a command (inside a private mount namespace unless `isolated` is false),
    /// failing with its output when it exits non-zero. - Returns: its standard output.
    @discardableResult
    func run(_ command: [String], isolated: Bool = true, input: String? = nil, environment: [String: String] = [:]) async throws -> String {
        let (status, output, errors) = try await execute(command, isolated: isolated, input: input, environment: environment)
        guard status == 0 else {
            throw ToolError.failed(command.joined(separator: " "), status, output + errors)
        }
        return output
    }

    /// Runs a command outside the mount namespace and returns its exit status and
    /// standard output, whatever the status.
    func runStatus(_ command: [String], input: String? = nil, environment: [String: String] = [:]) async throws -> (Int32, String) {
        let (status, output, _) = try await execute(command, isolated: false, input: input, environment: environment)
        return (status, output)
    }

    /// Like `runStatus`, with standard error too.
    func runCapturing(_ command: [String], input: String? = nil) async throws -> (status: Int32, output: String, errors: String) {
        try await execute(command, isolated: false, input: input)
    }

    /// Output goes to files and the exit is awaited without blocking a thread: a pipe
    /// could stay open in another child and hang the read.
    private func execute(_ command: [String], isolated: Bool, input: String?, environment extra: [String: String] = [:]) async throws -> (
        Int32, String, String
    ) {
        let process = Process()
        // Credentials from `login` stay in this test's own file, not the machine's.
        var environment = ProcessInfo.processInfo.environment.merging(extra) { $1 }
        environment["REGISTRY_AUTH_FILE"] = "\(workDirectory)/auth.json"
        process.environment = environment
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        if isolated {
            let script = #"mount --bind "$0" /var/lib/containers && exec "$@""#
            process.arguments = ["unshare", "-m", "sh", "-c", script, "\(workDirectory)/varlib"] + command
        } else {
            process.arguments = command
        }
        let outputPath = "\(workDirectory)/out/\(UUID().uuidString)"
        _ = FileManager.default.createFile(atPath: outputPath + ".out", contents: nil)
        _ = FileManager.default.createFile(atPath: outputPath + ".err", contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath + ".out"))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath + ".err"))
        let inputPath = outputPath + ".in"
        _ = FileManager.default.createFile(atPath: inputPath, contents: Data((input ?? "").utf8))
        process.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: inputPath))
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do { try process.run() } catch { continuation.resume(throwing: error) }
        }
        let output = (try? String(contentsOfFile: outputPath + ".out", encoding: .utf8)) ?? ""
        let errors = (try? String(contentsOfFile: outputPath + ".err", encoding: .utf8)) ?? ""
        return (status, output, errors)
    }

    enum ToolError: Error, CustomStringConvertible {
        case failed(String, Int32, String)
        var description: String {
            switch self {
            case .failed(let command, let status, let output): "\(command) exited \(status):\n\(output)"
            }
        }
    }
}
