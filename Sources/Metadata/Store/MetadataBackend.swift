import OCI

#if canImport(Glibc)
    import Glibc
#else
    import Darwin
#endif

/// A whole metadata backend: every store protocol, plus what the daemon does with the
/// backend itself. `SQLiteMetadataStore` (one instance, a file in the data directory)
/// and `PostgresMetadataStore` (several instances, one PostgreSQL database) are the two.
public protocol MetadataBackend: MetadataStore, CachedReads, AccountStore, CollectionStore, AuditStore, RepositoryAdministration {
    /// The registryd instance this store speaks for (see `InstanceLease`).
    var instance: String { get }
    /// Blobs pinned by uploads of an earlier process of this instance, whose pins were
    /// released when the store opened (see `InterruptedUploads`).
    var releasedPinsAtStart: [Digest] { get }
    /// Extends this instance's lease and writes its heartbeat (see `InstanceLease`); also
    /// the moment for the backend's own housekeeping.
    func renewInstanceLease() async throws
    /// Instances whose heartbeat is recent, this one included, for `registryctl status`.
    func liveInstances() async throws -> [InstanceHeartbeat]
    /// The newest migration applied to the database.
    func schemaVersion() async throws -> Int
    /// What `system.status` shows of the backend: its kind and where it is (no secrets).
    var backendDescription: String { get }
    /// Ends background work and closes connections; no call may follow.
    func close() async
}

/// One instance as its last heartbeat described it.
public struct InstanceHeartbeat: Sendable, Equatable {
    public let id: String
    public let host: String
    public let pid: Int64
    public let version: String
    public let startedAtMilliseconds: Int64
    public let renewedAtMilliseconds: Int64
    public let leaseExpiresAtMilliseconds: Int64
}

/// What an instance writes about itself with each heartbeat.
public struct InstanceDescription: Sendable, Equatable {
    public let host: String
    public let pid: Int64
    public let version: String

    public init(host: String, pid: Int64, version: String) {
        self.host = host
        self.pid = pid
        self.version = version
    }

    /// This process: its host name and process id, and `version`.
    public static func current(version: String) -> InstanceDescription {
        InstanceDescription(host: HostName.current, pid: Int64(getpid()), version: version)
    }
}

enum HostName {
    static var current: String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
