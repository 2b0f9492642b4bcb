import Auth
import ControlProtocol
import FoundationEssentials
import Logging
import Maintenance
import Metadata
import OCI
import Storage

/// The methods the control socket offers so far. Each is thin: it validates params
/// and calls the metadata layer. More groups (`user.*`, `gc.*`, …) join this table.
public struct ControlMethods: Sendable {
    /// The whole backend: `system.status` names it and lists the instances it has seen.
    let backend: any MetadataBackend
    let metadata: any MetadataStore
    let accounts: any AccountStore
    let audit: any AuditStore
    let repositories: any RepositoryAdministration
    let purger: UploadPurger
    /// The daemon's one collector, which its schedule shares: `gc.run` and
    /// `gc.status` see a scheduled collection too.
    let collector: GarbageCollector
    let verifier: StorageVerifier
    /// Default time-to-live of an idle upload session for `upload.purge`.
    let uploadTimeToLive: Int64
    let passwords: PasswordHasher
    let storageDriver: String
    /// How the daemon got its sockets: `socket` (systemd activation) or `none`.
    let activation: String
    let startedAt: ContinuousClock.Instant
    let version: String

    /// - Parameter collector: the daemon's collector; `nil` makes one for these methods alone.
    public init(
        metadata: any MetadataBackend, blobs: BlobStore,
        collector: GarbageCollector? = nil, passwords: PasswordHasher = PasswordHasher(), uploadTimeToLive: Int64 = 86_400,
        activation: String = "none", startedAt: ContinuousClock.Instant = .now, version: String
    ) {
        self.backend = metadata
        self.metadata = metadata
        self.accounts = metadata
        self.audit = metadata
        self.repositories = metadata
        self.purger = UploadPurger(metadata: metadata, blobs: blobs)
        self.collector = collector ?? GarbageCollector(metadata: metadata, blobs: blobs)
        self.verifier = StorageVerifier(metadata: metadata, blobs: blobs)
        self.uploadTimeToLive = uploadTimeToLive
        self.storageDriver = blobs.driver.name
        self.passwords = passwords
        self.activation = activation
        self.startedAt = startedAt
        self.version = version
    }

    /// The answer when the metadata store fails: the caller learns the call did not
    /// happen (-32603), never the store's internals.
    static let metadataFailure = RPCError.internalError("metadata store failure")

    /// Runs a metadata store call; its failure is `metadataFailure`.
    func stored<T>(_ call: () async throws -> T) async throws(RPCError) -> T {
        do { return try await call() } catch { throw Self.metadataFailure }
    }

    /// Methods that change state: each successful call is written to the audit table.
    public static let changingMethods: Set<String> = [
        "repo.set_visibility", "user.create", "user.delete", "user.set_password", "user.set_staff", "user.disable",
        "user.import_htpasswd", "namespace.grant", "namespace.revoke", "repo.delete", "upload.purge", "gc.run", "storage.verify",
    ]

    /// The dispatcher for these methods, auditing every change into the metadata store.
    /// An audit record that cannot be written is logged: the change itself has happened,
    /// so its caller is told of the change, and the operator of the missing record.
    public func makeDispatcher(logger: Logger = Logger(label: "registryd.control")) -> ControlDispatcher {
        let audit = self.audit
        return ControlDispatcher(methods: table, changing: Self.changingMethods) { caller, method, params in
            let text = params.flatMap { try? String(decoding: JSONEncoder().encode($0), as: UTF8.self) }
            do {
                try await audit.recordAudit(actor: caller, method: method, params: text)
            } catch {
                logger.error("the audit record of \(method) by \(caller) could not be written: \(error)")
            }
        }
    }

    public var table: [String: ControlDispatcher.Method] {
        [
            "system.status": { params throws(RPCError) in try await status(params) },
            "repo.list": { params throws(RPCError) in try await listRepositories(params) },
            "repo.set_visibility": { params throws(RPCError) in try await setVisibility(params) },
            "repo.get": { params throws(RPCError) in try await getRepository(params) },
            "repo.delete": { params throws(RPCError) in try await deleteRepository(params) },
            "tag.history": { params throws(RPCError) in try await tagHistory(params) },
            "audit.list": { params throws(RPCError) in try await listAudit(params) },
            "upload.list": { params throws(RPCError) in try await listUploads(params) },
            "upload.purge": { params throws(RPCError) in try await purgeUploads(params) },
            "gc.run": { params throws(RPCError) in try await runCollection(params) },
            "gc.status": { params throws(RPCError) in try await collectionStatus(params) },
            "storage.verify": { params throws(RPCError) in try await verifyStorage(params) },
            "user.create": { params throws(RPCError) in try await createUser(params) },
            "user.list": { params throws(RPCError) in try await listUsers(params) },
            "user.get": { params throws(RPCError) in try await getUser(params) },
            "user.delete": { params throws(RPCError) in try await deleteUser(params) },
            "user.set_password": { params throws(RPCError) in try await setPassword(params) },
            "user.set_staff": { params throws(RPCError) in try await setStaff(params) },
            "user.disable": { params throws(RPCError) in try await disableUser(params) },
            "user.import_htpasswd": { params throws(RPCError) in try await importHtpasswd(params) },
            "namespace.list": { params throws(RPCError) in try await listNamespaces(params) },
            "namespace.grant": { params throws(RPCError) in try await grant(params) },
            "namespace.revoke": { params throws(RPCError) in try await revoke(params) },
        ]
    }
}
