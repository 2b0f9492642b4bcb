import ControlProtocol
import Foundation
import Auth
import Maintenance
import Metadata
import OCI
import Storage

/// The methods the control socket offers so far. Each is thin: it validates params
/// and calls the metadata layer. More groups (`user.*`, `gc.*`, …) join this table.
public struct ControlMethods: Sendable {
    let metadata: any MetadataStore
    let accounts: any AccountStore
    let audit: any AuditStore
    let repositories: any RepositoryAdministration
    let purger: UploadPurger
    /// Default time-to-live of an idle upload session for `upload.purge`.
    let uploadTimeToLive: Int64
    let passwords: PasswordHasher
    let storageDriver: String
    /// How the daemon got its sockets: `socket` (systemd activation) or `none`.
    let activation: String
    let startedAt: ContinuousClock.Instant
    let version: String

    public init(metadata: any MetadataStore & AccountStore & AuditStore & RepositoryAdministration, blobs: BlobStore,
                passwords: PasswordHasher = PasswordHasher(), uploadTimeToLive: Int64 = 86_400,
                activation: String = "none", startedAt: ContinuousClock.Instant = .now, version: String) {
        self.metadata = metadata
        self.accounts = metadata
        self.audit = metadata
        self.repositories = metadata
        self.purger = UploadPurger(metadata: metadata, blobs: blobs)
        self.uploadTimeToLive = uploadTimeToLive
        self.storageDriver = blobs.driver.name
        self.passwords = passwords
        self.activation = activation
        self.startedAt = startedAt
        self.version = version
    }

    /// Methods that change state: each successful call is written to the audit table.
    public static let changingMethods: Set<String> = [
        "repo.set_visibility", "user.create", "user.delete", "user.set_password", "user.set_staff", "user.disable",
        "user.import_htpasswd", "namespace.grant", "namespace.revoke", "repo.delete", "upload.purge",
    ]

    /// The dispatcher for these methods, auditing every change into the metadata store.
    public func makeDispatcher() -> ControlDispatcher {
        let audit = self.audit
        return ControlDispatcher(methods: table, changing: Self.changingMethods) { caller, method, params in
            let text = params.flatMap { try? String(decoding: JSONEncoder().encode($0), as: UTF8.self) }
            try? audit.recordAudit(actor: caller, method: method, params: text)
        }
    }

    public var table: [String: ControlDispatcher.Method] {
        [
            "system.status": { params throws(RPCError) in try status(params) },
            "repo.list": { params throws(RPCError) in try listRepositories(params) },
            "repo.set_visibility": { params throws(RPCError) in try setVisibility(params) },
            "repo.get": { params throws(RPCError) in try getRepository(params) },
            "repo.delete": { params throws(RPCError) in try await deleteRepository(params) },
            "tag.history": { params throws(RPCError) in try tagHistory(params) },
            "upload.list": { params throws(RPCError) in try listUploads(params) },
            "upload.purge": { params throws(RPCError) in try await purgeUploads(params) },
            "user.create": { params throws(RPCError) in try createUser(params) },
            "user.list": { params throws(RPCError) in try listUsers(params) },
            "user.get": { params throws(RPCError) in try getUser(params) },
            "user.delete": { params throws(RPCError) in try deleteUser(params) },
            "user.set_password": { params throws(RPCError) in try setPassword(params) },
            "user.set_staff": { params throws(RPCError) in try setStaff(params) },
            "user.disable": { params throws(RPCError) in try disableUser(params) },
            "user.import_htpasswd": { params throws(RPCError) in try importHtpasswd(params) },
            "namespace.list": { params throws(RPCError) in try listNamespaces(params) },
            "namespace.grant": { params throws(RPCError) in try grant(params) },
            "namespace.revoke": { params throws(RPCError) in try revoke(params) },
        ]
    }

    /// `system.status`: version, uptime, storage driver and what the registry holds.
    func status(_ params: JSONValue?) throws(RPCError) -> JSONValue {
        try ParamsReader(params, allowed: []).finish()
        let statistics: MetadataStatistics
        do { statistics = try metadata.statistics() } catch { throw .internalError("metadata store failure") }
        return [
            "version": .string(version),
            "uptime_seconds": .number(Double((ContinuousClock.now - startedAt).components.seconds)),
            "storage_driver": .string(storageDriver),
            "activation": .string(activation),
            "repositories": .number(Double(statistics.repositories)),
            "blobs": .number(Double(statistics.blobs)),
            "blob_bytes": .number(Double(statistics.blobBytes)),
            "manifests": .number(Double(statistics.manifests)),
            "tags": .number(Double(statistics.tags)),
            "uploads_in_progress": .number(Double(statistics.uploads)),
        ]
    }

    /// `repo.list {"after"?: name, "limit"?: 1…1000}`: repository names in order.
    func listRepositories(_ params: JSONValue?) throws(RPCError) -> JSONValue {
        var reader = ParamsReader(params, allowed: ["after", "limit"])
        let after = try reader.string("after")
        let limit = try reader.integer("limit", in: 1...1000) ?? 1000
        try reader.finish()
        if let after, (try? RepositoryName(parsing: after)) == nil { throw .invalidParams("after is not a valid repository name") }
        let names: [RepositoryName]
        do { names = try metadata.repositoryNames(after: after, limit: limit) } catch { throw .internalError("metadata store failure") }
        return ["repositories": .array(names.map { .string($0.value) })]
    }
}

/// Reads named params, refusing unknown names and wrong types with -32602.
struct ParamsReader {
    private let object: [String: JSONValue]
    private var unread: Set<String>
    private var invalid: RPCError?

    init(_ params: JSONValue?, allowed: Set<String>) {
        switch params {
        case nil, .null?:
            object = [:]
        case .object(let values)?:
            object = values
        default:
            object = [:]
            invalid = .invalidParams("params must be an object")
        }
        unread = Set(object.keys)
        if let unknown = unread.subtracting(allowed).sorted().first, invalid == nil {
            invalid = .invalidParams("unknown parameter \(unknown.prefix(64))")
        }
    }

    mutating func string(_ name: String) throws(RPCError) -> String? {
        unread.remove(name)
        guard let value = object[name] else { return nil }
        guard let text = value.stringValue else { throw .invalidParams("\(name) must be a string") }
        return text
    }

    /// A required string param.
    mutating func requiredString(_ name: String) throws(RPCError) -> String {
        guard let value = try string(name) else { throw .invalidParams("\(name) is required") }
        return value
    }

    mutating func bool(_ name: String) throws(RPCError) -> Bool? {
        unread.remove(name)
        guard let value = object[name] else { return nil }
        guard case .bool(let flag) = value else { throw .invalidParams("\(name) must be true or false") }
        return flag
    }

    mutating func integer(_ name: String, in range: ClosedRange<Int>) throws(RPCError) -> Int? {
        unread.remove(name)
        guard let value = object[name] else { return nil }
        guard let number = value.numberValue, number.rounded() == number, let integer = Int(exactly: number), range.contains(integer) else {
            throw .invalidParams("\(name) must be an integer in \(range.lowerBound)…\(range.upperBound)")
        }
        return integer
    }

    func finish() throws(RPCError) {
        if let invalid { throw invalid }
    }
}
