import Auth
import ControlProtocol
import Metadata
import OCI

/// `user.*`, `namespace.*` and `repo.set_visibility`: the only way accounts and
/// roles are made (no self-registration, Harbor CVE-2019-16097).
extension ControlMethods {
    /// Shortest password accepted.
    static let minimumPasswordLength = 8

    func createUser(_ params: JSONValue?) async throws(RPCError) -> JSONValue {
        let reader = ParamsReader(params, allowed: ["name", "password", "staff"])
        let name = try reader.requiredString("name")
        let password = try reader.requiredString("password")
        let staff = try reader.bool("staff") ?? false
        try reader.finish()
        try await checkUserName(name)
        try await checkPassword(password)
        do {
            try await accounts.createUser(name: name, passwordHash: passwords.hash(password), isStaff: staff)
        } catch .userExists {
            throw ControlError.alreadyExists("user", name)
        } catch {
            throw Self.metadataFailure
        }
        return try await describeUser(name)
    }

    func listUsers(_ params: JSONValue?) async throws(RPCError) -> JSONValue {
        try ParamsReader(params, allowed: []).finish()
        let users = try await stored { try await accounts.users() }
        return ["users": .array(users.map(Self.describe))]
    }

    func getUser(_ params: JSONValue?) async throws(RPCError) -> JSONValue {
        let reader = ParamsReader(params, allowed: ["name"])
        let name = try reader.requiredString("name")
        try reader.finish()
        return try await describeUser(name)
    }

    func deleteUser(_ params: JSONValue?) async throws(RPCError) -> JSONValue {
        let reader = ParamsReader(params, allowed: ["name"])
        let name = try reader.requiredString("name")
        try reader.finish()
        try await requireChange("user", name) { try await accounts.deleteUser(named: name) }
        return ["deleted": .string(name)]
    }

    func setPassword(_ params: JSONValue?) async throws(RPCError) -> JSONValue {
        let reader = ParamsReader(params, allowed: ["name", "password"])
        let name = try reader.requiredString("name")
        let password = try reader.requiredString("password")
        try reader.finish()
        try await checkPassword(password)
        let hash = passwords.hash(password)
        try await requireChange("user", name) { try await accounts.setPasswordHash(hash, forUser: name) }
        return try await describeUser(name)
    }

    func setStaff(_ params: JSONValue?) async throws(RPCError) -> JSONValue {
        let reader = ParamsReader(params, allowed: ["name", "staff"])
        let name = try reader.requiredString("name")
        guard let staff = try reader.bool("staff") else { throw .invalidParams("staff is required") }
        try reader.finish()
        try await requireChange("user", name) { try await accounts.setStaff(staff, forUser: name) }
        return try await describeUser(name)
    }

    func disableUser(_ params: JSONValue?) async throws(RPCError) -> JSONValue {
        let reader = ParamsReader(params, allowed: ["name", "disabled"])
        let name = try reader.requiredString("name")
        let disabled = try reader.bool("disabled") ?? true
        try reader.finish()
        try await requireChange("user", name) { try await accounts.setDisabled(disabled, forUser: name) }
        return try await describeUser(name)
    }

    /// `user.import_htpasswd {"htpasswd": "<file text>", "staff"?: bool}`: bcrypt lines only.
    func importHtpasswd(_ params: JSONValue?) async throws(RPCError) -> JSONValue {
        let reader = ParamsReader(params, allowed: ["htpasswd", "staff"])
        let text = try reader.requiredString("htpasswd")
        let staff = try reader.bool("staff") ?? false
        try reader.finish()
        let parsed = PasswordHasher.parseHtpasswd(text)
        var imported: [JSONValue] = []
        var skipped: [JSONValue] = parsed.rejected.map { .string($0) }
        for (name, hash) in parsed.users {
            do {
                try await accounts.createUser(name: name, passwordHash: hash, isStaff: staff)
                imported.append(.string(name))
            } catch .userExists {
                skipped.append(.string(name))
            } catch {
                throw Self.metadataFailure
            }
        }
        return ["imported": .array(imported), "skipped": .array(skipped)]
    }

    func listNamespaces(_ params: JSONValue?) async throws(RPCError) -> JSONValue {
        try ParamsReader(params, allowed: []).finish()
        let namespaces = try await stored { try await accounts.namespaces() }
        return [
            "namespaces": .array(
                namespaces.map { entry in
                    ["name": .string(entry.namespace), "members": .object(entry.members.mapValues { .string($0.rawValue) })]
                })
        ]
    }

    func grant(_ params: JSONValue?) async throws(RPCError) -> JSONValue {
        let reader = ParamsReader(params, allowed: ["namespace", "user", "role"])
        let namespace = try reader.requiredString("namespace")
        let user = try reader.requiredString("user")
        let roleText = try reader.requiredString("role")
        try reader.finish()
        guard UserName.isValid(namespace) else { throw .invalidParams("namespace must be one repository path component") }
        guard let role = NamespaceRole(rawValue: roleText) else { throw .invalidParams("role must be owner, collaborator or consumer") }
        do {
            try await accounts.grant(role, on: namespace, to: user)
        } catch .userUnknown {
            throw ControlError.notFound("user", user)
        } catch {
            throw Self.metadataFailure
        }
        return ["namespace": .string(namespace), "user": .string(user), "role": .string(role.rawValue)]
    }

    func revoke(_ params: JSONValue?) async throws(RPCError) -> JSONValue {
        let reader = ParamsReader(params, allowed: ["namespace", "user"])
        let namespace = try reader.requiredString("namespace")
        let user = try reader.requiredString("user")
        try reader.finish()
        try await requireChange("role", "\(user) in \(namespace)") { try await accounts.revoke(namespace: namespace, from: user) }
        return ["namespace": .string(namespace), "user": .string(user), "revoked": true]
    }

    func setVisibility(_ params: JSONValue?) async throws(RPCError) -> JSONValue {
        let reader = ParamsReader(params, allowed: ["name", "public"])
        let name = try reader.requiredString("name")
        guard let isPublic = try reader.bool("public") else { throw .invalidParams("public is required") }
        try reader.finish()
        guard let repository = try? RepositoryName(parsing: name) else { throw .invalidParams("name is not a valid repository name") }
        try await requireChange("repository", name) { try await accounts.setPublic(isPublic, repository: repository) }
        return ["name": .string(name), "public": .bool(isPublic)]
    }

    // MARK: - Helpers

    private func checkUserName(_ name: String) async throws(RPCError) {
        guard UserName.isValid(name) else {
            throw .invalidParams("name must be lowercase letters and digits, optionally joined by . _ or -, at most 64 characters")
        }
    }

    private func checkPassword(_ password: String) async throws(RPCError) {
        guard password.count >= Self.minimumPasswordLength else {
            throw .invalidParams("password must have at least \(Self.minimumPasswordLength) characters")
        }
        // bcrypt reads at most 72 bytes; a longer password would be silently cut.
        guard password.utf8.count <= 72 else { throw .invalidParams("password must be at most 72 bytes") }
    }

    private func requireChange(_ kind: String, _ name: String, _ change: () async throws -> Bool) async throws(RPCError) {
        let changed = try await stored { try await change() }
        guard changed else { throw ControlError.notFound(kind, name) }
    }

    private func describeUser(_ name: String) async throws(RPCError) -> JSONValue {
        let user = try await stored { try await accounts.user(named: name) }
        guard let user else { throw ControlError.notFound("user", name) }
        return Self.describe(user)
    }

    /// A user as the control socket shows it: never the password hash.
    private static func describe(_ user: StoredUser) -> JSONValue {
        [
            "name": .string(user.name), "staff": .bool(user.isStaff), "disabled": .bool(user.isDisabled),
            "created_at": .number(Double(user.createdAt)),
        ]
    }
}

/// Application errors of the control socket, with stable codes (docs/CONFIGURATION.md).
enum ControlError {
    /// -32001: the named thing does not exist.
    static func notFound(_ kind: String, _ name: String) -> RPCError {
        RPCError(code: -32001, message: "\(kind) not found", data: ["kind": .string(kind), "name": .string(String(name.prefix(200)))])
    }

    /// -32003: the operation cannot start now (e.g. a collection is running).
    static func busy(_ message: String) -> RPCError {
        RPCError(code: -32003, message: "busy", data: ["detail": .string(message)])
    }

    /// -32002: the thing to create exists already.
    static func alreadyExists(_ kind: String, _ name: String) -> RPCError {
        RPCError(code: -32002, message: "\(kind) already exists", data: ["kind": .string(kind), "name": .string(String(name.prefix(200)))])
    }
}
