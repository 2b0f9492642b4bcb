import ArgumentParser
import ControlProtocol
import Foundation

/// `registryctl user …`: accounts. Passwords come from a prompt or standard input,
/// never from the command line (where `ps` and shell history would keep them).
struct User: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Users: add, list, passwd, staff, disable, enable, rm, import.",
        subcommands: [Add.self, List.self, Passwd.self, Staff.self, Disable.self, Enable.self, Remove.self, Import.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a user.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "User name.") var name: String
        @Flag(help: "Make the user staff (may push everywhere).") var staff = false
        @Flag(help: "Read the password from standard input instead of prompting.") var passwordStdin = false

        func run() throws {
            let password = try readPassword(fromStdin: passwordStdin)
            printUser(
                try connection.call("user.create", ["name": .string(name), "password": .string(password), "staff": .bool(staff)]),
                connection)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List users.", aliases: ["ls"])
        @OptionGroup var connection: ConnectionOptions

        func run() throws {
            let result = try connection.call("user.list")
            if connection.json { return connection.printJSON(result) }
            let rows = (result["users"]?.arrayValue ?? []).map { user in
                [user["name"]?.stringValue ?? "", flag(user["staff"]), flag(user["disabled"])]
            }
            printTable(["NAME", "STAFF", "DISABLED"], rows)
        }
    }

    struct Passwd: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a user's password.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "User name.") var name: String
        @Flag(help: "Read the password from standard input instead of prompting.") var passwordStdin = false

        func run() throws {
            let password = try readPassword(fromStdin: passwordStdin)
            printUser(try connection.call("user.set_password", ["name": .string(name), "password": .string(password)]), connection)
        }
    }

    struct Staff: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Turn a user's staff flag on or off.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "User name.") var name: String
        @Argument(help: "on or off.") var state: OnOff

        func run() throws {
            printUser(try connection.call("user.set_staff", ["name": .string(name), "staff": .bool(state == .on)]), connection)
        }
    }

    struct Disable: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable a user: their credentials stop working at once.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "User name.") var name: String

        func run() throws {
            printUser(try connection.call("user.disable", ["name": .string(name), "disabled": true]), connection)
        }
    }

    struct Enable: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enable a disabled user.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "User name.") var name: String

        func run() throws {
            printUser(try connection.call("user.disable", ["name": .string(name), "disabled": false]), connection)
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Delete a user.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "User name.") var name: String

        func run() throws {
            let result = try connection.call("user.delete", ["name": .string(name)])
            if connection.json { return connection.printJSON(result) }
            print("deleted \(name)")
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Import the bcrypt users of an htpasswd file (from CNCF distribution).")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "htpasswd file.") var file: String
        @Flag(help: "Make the imported users staff.") var staff = false

        func run() throws {
            let text = try String(contentsOfFile: file, encoding: .utf8)
            let result = try connection.call("user.import_htpasswd", ["htpasswd": .string(text), "staff": .bool(staff)])
            if connection.json { return connection.printJSON(result) }
            let imported = result["imported"]?.arrayValue?.compactMap(\.stringValue) ?? []
            let skipped = result["skipped"]?.arrayValue?.compactMap(\.stringValue) ?? []
            print("imported: \(imported.joined(separator: ", "))")
            if !skipped.isEmpty { print("skipped (exists, not bcrypt, or bad name): \(skipped.joined(separator: ", "))") }
        }
    }
}

enum OnOff: String, ExpressibleByArgument {
    case on, off
}

/// Reads a password from standard input (first line) or a terminal prompt without echo.
func readPassword(fromStdin: Bool) throws -> String {
    if fromStdin {
        guard let line = Swift.readLine(strippingNewline: true), !line.isEmpty else {
            throw ValidationError("no password on standard input")
        }
        return line
    }
    guard isatty(STDIN_FILENO) != 0 else { throw ValidationError("not a terminal: use --password-stdin") }
    guard let first = getpass("Password: ").map({ String(cString: $0) }), !first.isEmpty else { throw ValidationError("empty password") }
    guard let second = getpass("Again: ").map({ String(cString: $0) }), second == first else {
        throw ValidationError("the passwords differ")
    }
    return first
}

func flag(_ value: JSONValue?) -> String {
    value == .bool(true) ? "yes" : "no"
}

func printUser(_ user: JSONValue, _ connection: ConnectionOptions) {
    if connection.json { return connection.printJSON(user) }
    print("\(user["name"]?.stringValue ?? "")  staff: \(flag(user["staff"]))  disabled: \(flag(user["disabled"]))")
}

/// Columns padded to their widest cell.
func printTable(_ header: [String], _ rows: [[String]]) {
    for line in table(header, rows) { print(line) }
}

/// The lines of `printTable`.
func table(_ header: [String], _ rows: [[String]]) -> [String] {
    let all = [header] + rows
    let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
    return all.map { row in
        zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ").trimmingCharacters(
            in: .whitespaces)
    }
}
