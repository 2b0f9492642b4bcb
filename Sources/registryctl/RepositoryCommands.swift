import ArgumentParser
import ControlProtocol
import Foundation

/// `registryctl repo show|rm`, `tag history`, `audit`, `upload list|purge`.
struct RepoShow: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Tags, manifests and size of a repository.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Repository name.") var name: String

    func run() throws {
        let result = try connection.call("repo.get", ["name": .string(name)])
        if connection.json { return connection.printJSON(result) }
        print(
            "\(name)  \(result["public"] == .bool(true) ? "public" : "private")  \(number(result["blobs"])) blobs, \(bytes(result["blob_bytes"]))"
        )
        printTable(
            ["TAG", "DIGEST"], (result["tags"]?.arrayValue ?? []).map { [$0["tag"]?.stringValue ?? "", $0["digest"]?.stringValue ?? ""] })
        print("")
        printTable(
            ["MANIFEST", "MEDIA TYPE", "SIZE"],
            (result["manifests"]?.arrayValue ?? []).map {
                [$0["digest"]?.stringValue ?? "", $0["media_type"]?.stringValue ?? "", number($0["size"])]
            })
    }
}

struct RepoRemove: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm", abstract: "Delete a repository (blob bytes are freed by garbage collection).")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Repository name.") var name: String

    func run() throws {
        let result = try connection.call("repo.delete", ["name": .string(name)])
        if connection.json { return connection.printJSON(result) }
        print("deleted \(name)")
    }
}

struct TagCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tag", abstract: "Tags: history.", subcommands: [History.self])

    struct History: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Who moved a tag, when, from what to what: REPO or REPO:TAG.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "REPO or REPO:TAG.") var reference: String
        @Option(help: "Most moves shown.") var limit = 100

        func run() throws {
            var params: [String: JSONValue] = ["limit": .number(Double(limit))]
            if let colon = reference.lastIndex(of: ":") {
                params["repository"] = .string(String(reference[..<colon]))
                params["tag"] = .string(String(reference[reference.index(after: colon)...]))
            } else {
                params["repository"] = .string(reference)
            }
            let result = try connection.call("tag.history", .object(params))
            if connection.json { return connection.printJSON(result) }
            printTable(
                ["WHEN", "TAG", "FROM", "TO", "BY"],
                (result["moves"]?.arrayValue ?? []).map { move in
                    [
                        time(move["at"]), move["tag"]?.stringValue ?? "", short(move["from"]), short(move["to"]),
                        move["actor"]?.stringValue ?? "-",
                    ]
                })
        }
    }
}

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Changes made through the control socket, newest first.")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Most records shown.") var limit = 50

    func run() throws {
        let result = try connection.call("audit.list", ["limit": .number(Double(limit))])
        if connection.json { return connection.printJSON(result) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        printTable(
            ["WHEN", "BY", "METHOD", "PARAMS"],
            (result["entries"]?.arrayValue ?? []).map { entry in
                let params = entry["params"].flatMap { $0 == .null ? nil : try? String(decoding: encoder.encode($0), as: UTF8.self) } ?? ""
                return [time(entry["at"]), entry["actor"]?.stringValue ?? "", entry["method"]?.stringValue ?? "", params]
            })
    }
}

struct UploadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upload", abstract: "Uploads in progress: list, purge.", subcommands: [List.self, Purge.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "Uploads in progress.", aliases: ["ls"])
        @OptionGroup var connection: ConnectionOptions

        func run() throws {
            let result = try connection.call("upload.list")
            if connection.json { return connection.printJSON(result) }
            printTable(
                ["ID", "REPOSITORY", "BY", "SIZE", "LAST ACTIVE"],
                (result["uploads"]?.arrayValue ?? []).map {
                    [
                        $0["id"]?.stringValue ?? "", $0["repository"]?.stringValue ?? "", $0["principal"]?.stringValue ?? "-",
                        bytes($0["size"]), time($0["updated_at"]),
                    ]
                })
        }
    }

    struct Purge: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove uploads idle longer than the time-to-live and orphaned upload data.")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Idle seconds after which an upload goes (default: the daemon's upload time-to-live).") var olderThan: Int?
        @Flag(help: "Only list what would go.") var dryRun = false

        func run() throws {
            var params: [String: JSONValue] = ["dry_run": .bool(dryRun)]
            if let olderThan { params["older_than"] = .number(Double(olderThan)) }
            let result = try connection.call("upload.purge", .object(params))
            if connection.json { return connection.printJSON(result) }
            let sessions = result["sessions"]?.arrayValue?.count ?? 0
            let orphans = result["orphaned_objects"]?.arrayValue?.count ?? 0
            print(
                "\(dryRun ? "would remove" : "removed") \(sessions) upload(s) and \(orphans) orphaned object(s), \(bytes(result["bytes"]))")
        }
    }
}

func number(_ value: JSONValue?) -> String {
    guard let number = value?.numberValue else { return "-" }
    return String(Int64(number))
}

func bytes(_ value: JSONValue?) -> String {
    guard let count = value?.numberValue else { return "-" }
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var size = count
    var unit = 0
    while size >= 1024 && unit < units.count - 1 {
        size /= 1024
        unit += 1
    }
    return unit == 0 ? "\(Int64(size)) B" : String(format: "%.1f %@", size, units[unit])
}

/// Seconds as people say them: `45s`, `12m 05s`, `3h 02m`, `4d 07h`.
func duration(_ value: JSONValue?) -> String {
    guard let number = value?.numberValue else { return "-" }
    let seconds = Int64(number)
    let (days, hours, minutes) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60)
    func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
    if days > 0 { return "\(days)d \(two(hours))h" }
    if hours > 0 { return "\(hours)h \(two(minutes))m" }
    if minutes > 0 { return "\(minutes)m \(two(seconds % 60))s" }
    return "\(seconds)s"
}

func time(_ value: JSONValue?) -> String {
    guard let seconds = value?.numberValue else { return "-" }
    let formatter = ISO8601DateFormatter()
    return formatter.string(from: Date(timeIntervalSince1970: seconds))
}

/// A digest shortened for a table: `sha256:0123456789ab`.
func short(_ value: JSONValue?) -> String {
    guard let digest = value?.stringValue else { return "-" }
    return String(digest.prefix(19))
}
