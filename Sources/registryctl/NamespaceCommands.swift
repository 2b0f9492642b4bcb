import ArgumentParser
import ControlProtocol

/// `registryctl ns …`: roles on namespaces (token auth).
struct Namespace: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ns", abstract: "Namespaces and roles: list, grant, revoke.", subcommands: [List.self, Grant.self, Revoke.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list", abstract: "List namespaces and their members.", aliases: ["ls"])
        @OptionGroup var connection: ConnectionOptions

        func run() throws {
            let result = try connection.call("namespace.list")
            if connection.json { return connection.printJSON(result) }
            var rows: [[String]] = []
            for entry in result["namespaces"]?.arrayValue ?? [] {
                let name = entry["name"]?.stringValue ?? ""
                guard case .object(let members)? = entry["members"], !members.isEmpty else { rows.append([name, "-", "-"]); continue }
                for user in members.keys.sorted() { rows.append([name, user, members[user]?.stringValue ?? ""]) }
            }
            printTable(["NAMESPACE", "USER", "ROLE"], rows)
        }
    }

    struct Grant: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Give USER a ROLE (owner, collaborator, consumer) on namespace NS.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Namespace.") var namespace: String
        @Argument(help: "User name.") var user: String
        @Argument(help: "owner, collaborator or consumer.") var role: String

        func run() throws {
            let result = try connection.call(
                "namespace.grant", ["namespace": .string(namespace), "user": .string(user), "role": .string(role)])
            if connection.json { return connection.printJSON(result) }
            print("\(user) is \(role) of \(namespace)")
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Take USER's role on namespace NS away.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Namespace.") var namespace: String
        @Argument(help: "User name.") var user: String

        func run() throws {
            let result = try connection.call("namespace.revoke", ["namespace": .string(namespace), "user": .string(user)])
            if connection.json { return connection.printJSON(result) }
            print("\(user) has no role on \(namespace)")
        }
    }
}
