import ArgumentParser
import ControlProtocol
import Foundation

/// Entry point: global options may come before the subcommand
/// (`registryctl --socket S --json status`) or after it (`registryctl status --json`).
@main
enum Registryctl {
    static func main() {
        RegistryctlCommand.main(GlobalOptions.movedBehindSubcommand(Array(CommandLine.arguments.dropFirst())))
    }
}

enum GlobalOptions {
    /// Moves `--socket PATH`, `--socket=PATH` and `--json` written before the first
    /// subcommand word to the end, where every subcommand's `ConnectionOptions` reads them.
    static func movedBehindSubcommand(_ arguments: [String]) -> [String] {
        var leading: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--json" || argument.hasPrefix("--socket=") {
                leading.append(argument)
                index += 1
            } else if argument == "--socket", index + 1 < arguments.count {
                leading += [argument, arguments[index + 1]]
                index += 2
            } else {
                break
            }
        }
        return Array(arguments[index...]) + leading
    }
}

struct RegistryctlCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "registryctl",
        abstract: "Administer registryd over its control socket (JSON-RPC 2.0).",
        subcommands: [
            Status.self, User.self, Namespace.self, Repo.self, TagCommand.self, AuditCommand.self, UploadCommand.self,
            CollectionCommand.self, StorageCommand.self, Call.self,
        ])
}

/// Options every subcommand takes.
struct ConnectionOptions: ParsableArguments {
    @Option(
        name: .long,
        help:
            "Control socket path. Default: $REGISTRYCTL_SOCKET, else \(ConnectionOptions.packagedSocket) when it exists, else ./registry-data/control.sock."
    )
    var socket: String?

    /// Where contrib/systemd/registryd-control.socket puts the socket.
    static let packagedSocket = "/run/registryd-control/control.sock"

    @Flag(name: .long, help: "Print the JSON result instead of a table.")
    var json = false

    var socketPath: String {
        if let socket { return socket }
        if let fromEnvironment = ProcessInfo.processInfo.environment["REGISTRYCTL_SOCKET"] { return fromEnvironment }
        return FileManager.default.fileExists(atPath: Self.packagedSocket) ? Self.packagedSocket : "./registry-data/control.sock"
    }

    /// Calls `method` and returns its result, or exits with the error printed.
    func call(_ method: String, _ params: JSONValue? = nil) throws -> JSONValue {
        let client = try ControlClient(path: socketPath)
        let response = try client.call(RPCRequest(method: method, params: params, id: 1))
        if let error = response.error {
            var message = "registryctl: \(method): \(error.message) (\(error.code))"
            if let detail = error.data?["detail"]?.stringValue { message += ": \(detail)" }
            FileHandle.standardError.write(Data((message + "\n").utf8))
            throw ExitCode(2)
        }
        return response.result ?? .null
    }

    func printJSON(_ value: JSONValue) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        print(String(decoding: (try? encoder.encode(value)) ?? Data(), as: UTF8.self))
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show version, uptime, storage driver and what the registry holds.")
    @OptionGroup var connection: ConnectionOptions

    func run() throws {
        let result = try connection.call("system.status")
        if connection.json { return connection.printJSON(result) }
        for line in Self.summary(result) { print(line) }
    }

    /// For people: how it runs first, then what it holds, sizes with units.
    ///
    ///     registryd 0.1.0, up 2h 03m
    ///     activation    socket
    ///     storage       filesystem
    ///     repositories  3
    ///     …
    static func summary(_ status: JSONValue) -> [String] {
        var rows: [(String, String)] = [
            ("instance", status["instance"]?.stringValue ?? "-"),
            ("activation", status["activation"]?.stringValue ?? "-"),
            ("metadata", status["metadata"]?.stringValue ?? "-"),
            ("storage", status["storage_driver"]?.stringValue ?? "-"),
            ("repositories", number(status["repositories"])),
            ("manifests", number(status["manifests"])),
            ("tags", number(status["tags"])),
            ("blobs", "\(number(status["blobs"])) (\(bytes(status["blob_bytes"])))"),
            ("uploads", "\(number(status["uploads_in_progress"])) in progress"),
        ]
        // Fields a newer daemon reports that this registryctl does not know yet.
        let known: Set = [
            "version", "uptime_seconds", "instance", "metadata", "instances", "activation", "storage_driver", "repositories", "manifests",
            "tags", "blobs", "blob_bytes", "uploads_in_progress",
        ]
        if case .object(let fields) = status {
            for key in fields.keys.sorted() where !known.contains(key) {
                rows.append((key, fields[key]?.stringValue ?? number(fields[key])))
            }
        }
        let width = rows.map(\.0.count).max() ?? 0
        let header = "registryd \(status["version"]?.stringValue ?? "?"), up \(duration(status["uptime_seconds"]))"
        var lines = [header] + rows.map { $0.0.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + $0.1 }
        // The instances that share the metadata, seen by their heartbeats.
        let instances = status["instances"]?.arrayValue ?? []
        if !instances.isEmpty {
            lines.append("")
            lines += table(
                ["INSTANCE", "HOST", "PID", "VERSION", "UP", "HEARTBEAT"],
                instances.map { instance in
                    [
                        instance["id"]?.stringValue ?? "", instance["host"]?.stringValue ?? "", number(instance["pid"]),
                        instance["version"]?.stringValue ?? "", duration(instance["started_seconds_ago"]),
                        duration(instance["heartbeat_seconds_ago"]) + " ago",
                    ]
                })
        }
        return lines
    }
}

struct Repo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Repositories: list, show, rm, visibility.",
        subcommands: [List.self, RepoShow.self, RepoRemove.self, Visibility.self])

    struct Visibility: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a repository public (anonymous pull) or private.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Repository name.") var name: String
        @Argument(help: "public or private.") var visibility: RepositoryVisibility

        func run() throws {
            let result = try connection.call("repo.set_visibility", ["name": .string(name), "public": .bool(visibility == .public)])
            if connection.json { return connection.printJSON(result) }
            print("\(name) is \(visibility.rawValue)")
        }
    }

    enum RepositoryVisibility: String, ExpressibleByArgument {
        case `public`, `private`
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List repository names.", aliases: ["ls"])
        @OptionGroup var connection: ConnectionOptions

        func run() throws {
            let result = try connection.call("repo.list")
            if connection.json { return connection.printJSON(result) }
            for name in result["repositories"]?.arrayValue ?? [] { print(name.stringValue ?? "") }
        }
    }
}

struct Call: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Call any control method with JSON params and print the JSON result.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Method name, e.g. system.status.") var method: String
    @Argument(help: "Params as a JSON object.") var params: String?

    func run() throws {
        var decoded: JSONValue?
        if let params {
            guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(params.utf8)) else {
                throw ValidationError("params are not valid JSON")
            }
            decoded = value
        }
        connection.printJSON(try connection.call(method, decoded))
    }
}
