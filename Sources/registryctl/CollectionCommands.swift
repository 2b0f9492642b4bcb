import ArgumentParser
import ControlProtocol
import Foundation

/// `registryctl gc run|status`.
struct CollectionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc", abstract: "Garbage collection: run, status.", subcommands: [Run.self, Status.self])

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Collect unreferenced blobs (online; pushes and pulls go on).")
        @OptionGroup var connection: ConnectionOptions
        @Flag(help: "Only list what would go.") var dryRun = false
        @Flag(help: "Also delete manifests that no tag and no index refers to.") var deleteUntagged = false
        @Option(help: "Seconds something must have been unreferenced before it goes. Default: 3600.") var grace: Int?
        @Flag(help: "Wait for the end and print what was removed (with progress on a terminal).") var wait = false

        func run() throws {
            var params: [String: JSONValue] = ["dry_run": .bool(dryRun), "delete_untagged": .bool(deleteUntagged)]
            if let grace { params["grace"] = .number(Double(grace)) }
            _ = try connection.call("gc.run", .object(params))
            guard wait else {
                if connection.json { return connection.printJSON(["started": true]) }
                return print("garbage collection started; see: registryctl gc status")
            }
            let showProgress = isatty(STDOUT_FILENO) != 0 && !connection.json
            var status = try connection.call("gc.status")
            while status["running"] != .null {
                if showProgress, let running = status["running"] {
                    let line =
                        "\r\(status["phase"]?.stringValue ?? "")  examined \(number(running["examined"])) (\(bytes(running["bytes_examined"]))), "
                        + "deleted \(running["blobs"]?.arrayValue?.count ?? 0) blobs (\(bytes(running["bytes_freed"])))   "
                    FileHandle.standardOutput.write(Data(line.utf8))
                }
                Thread.sleep(forTimeInterval: 0.2)
                status = try connection.call("gc.status")
            }
            if showProgress { print("") }
            let last = status["last"] ?? .null
            if connection.json { return connection.printJSON(last) }
            printReport(last)
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The running collection's phase and progress, and the last one's summary.")
        @OptionGroup var connection: ConnectionOptions

        func run() throws {
            let status = try connection.call("gc.status")
            if connection.json { return connection.printJSON(status) }
            print("phase: \(status["phase"]?.stringValue ?? "idle")")
            if let running = status["running"], running != .null {
                print(
                    "running: examined \(number(running["examined"])) (\(bytes(running["bytes_examined"]))), "
                        + "deleted \(running["blobs"]?.arrayValue?.count ?? 0) blobs (\(bytes(running["bytes_freed"]))) so far")
            }
            if let last = status["last"], last != .null {
                print("last collection:")
                printReport(last)
            }
        }
    }
}

/// A collection's summary, for people.
func printReport(_ report: JSONValue) {
    let verb = report["dry_run"] == .bool(true) ? "would remove" : "removed"
    print(
        "\(verb): \(report["manifests"]?.arrayValue?.count ?? 0) manifests, \(number(report["links"])) links, "
            + "\(report["blobs"]?.arrayValue?.count ?? 0) blobs, \(number(report["uploads"])) uploads; \(bytes(report["bytes_freed"])) "
            + (report["dry_run"] == .bool(true) ? "would be freed" : "freed"))
    for blob in report["blobs"]?.arrayValue ?? [] {
        print("  \(blob["digest"]?.stringValue ?? "")  \(bytes(blob["size"]))")
    }
}

/// `registryctl storage verify`.
struct StorageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "storage", abstract: "Storage: verify.", subcommands: [Verify.self])

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check that storage and metadata agree. Exit status: 0 clean, 1 problems found (3 when --repair acted on them).")
        @OptionGroup var connection: ConnectionOptions
        @Flag(help: "Quarantine corrupt blobs and delete bytes without a row.") var repair = false
        @Option(help: "Re-hash only every N-th blob.") var sample: Int?

        func run() throws {
            var params: [String: JSONValue] = ["repair": .bool(repair)]
            if let sample { params["sample"] = .number(Double(sample)) }
            let result = try connection.call("storage.verify", .object(params))
            if connection.json {
                connection.printJSON(result)
            } else {
                print("checked \(number(result["checked"])) blobs, re-hashed \(number(result["rehashed"]))")
                for item in result["uploads_in_progress"]?.arrayValue ?? [] {
                    print("upload in progress (not a problem): \(item.stringValue ?? "")")
                }
                for key in ["missing_bytes", "wrong_size", "corrupt", "orphaned_bytes", "broken_references"] {
                    for item in result[key]?.arrayValue ?? [] {
                        print("\(key.replacingOccurrences(of: "_", with: " ")): \(item.stringValue ?? "")")
                    }
                }
                print(result["clean"] == .bool(true) ? "clean" : (repair ? "problems found and repaired where possible" : "problems found"))
            }
            if result["clean"] != .bool(true) { throw ExitCode(repair ? 3 : 1) }
        }
    }
}
