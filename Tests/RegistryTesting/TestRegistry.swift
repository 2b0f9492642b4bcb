import Auth
import Foundation
import HTTPTransport
import Logging
import Metadata
import NIOCore
import NIOPosix
import RegistryAPI
import Storage

/// The real registry stack (HTTP server, API, metadata on SQLite or on the test
/// PostgreSQL server, a storage driver), running in-process on an ephemeral loopback
/// port with a throw-away data directory (and database).
///
/// ```swift
/// let registry = try await TestRegistry.start()
/// defer { registry.stop() }   // or `await registry.stop()` at the end of the test
/// let response = try await registry.client.send(.GET, "/v2/")
/// ```
public final class TestRegistry: Sendable {
    public enum DriverKind: Sendable {
        case filesystem, memory
        /// The S3 driver on the tests' radosgw (`TestObjectStore`).
        case s3(S3Configuration)
        /// A driver the test made (a wrapper that fails on cue, in unit tests).
        case custom(any StorageDriver)
    }

    /// Who may do what: `open` lets everyone do everything (protocol tests); `basic`
    /// and `token` are the daemon's real policies over this registry's own database.
    public enum AuthMode: Sendable {
        case open, basic
        /// Token auth; tokens live `tokenLifetime` seconds.
        case token(tokenLifetime: Int = 300)

        public static let token = AuthMode.token()
    }

    /// Where the metadata lives: SQLite in the data directory, or a fresh database on the
    /// tests' PostgreSQL server (`TestPostgres`).
    public enum MetadataKind: Sendable {
        case sqlite
        case postgres
        /// An existing PostgreSQL database (a restart, or a second instance on it).
        case postgresDatabase(PostgresLocation)
    }

    public let port: Int
    public let dataDirectory: String
    public let metadata: any MetadataBackend
    /// The PostgreSQL database this registry made, dropped by `stop`.
    private let ownDatabase: PostgresLocation?
    public let blobs: BlobStore
    public let client: TestHTTPClient
    private let listener: HTTPServer.Listener
    private let serving: Task<Void, any Error>

    /// Every request served, in order: lets a test see what a real client did.
    public let recorder: RequestRecorder

    private init(
        port: Int, dataDirectory: String, metadata: any MetadataBackend, ownDatabase: PostgresLocation?, blobs: BlobStore,
        recorder: RequestRecorder, listener: HTTPServer.Listener, serving: Task<Void, any Error>
    ) {
        self.ownDatabase = ownDatabase
        self.recorder = recorder
        self.port = port
        self.dataDirectory = dataDirectory
        self.metadata = metadata
        self.blobs = blobs
        self.client = TestHTTPClient(port: port)
        self.listener = listener
        self.serving = serving
    }

    /// Starts a registry; with `dataDirectory` it reopens one a stopped registry left
    /// (a restart), otherwise it makes a fresh one.
    /// `storageRoot` puts the filesystem driver's root elsewhere (e.g. on a tiny tmpfs).
    public static func start(
        driver: DriverKind = .filesystem, configuration: Registry.Configuration = Registry.Configuration(), auth: AuthMode = .open,
        dataDirectory: String? = nil, storageRoot: String? = nil, idleTimeout: Duration = .seconds(60),
        minimumBodyRate: MinimumBodyRate = .standard, immediateAnswers: Bool = true,
        metadata metadataKind: MetadataKind = .sqlite, instance: String = "local"
    ) async throws -> TestRegistry {
        let directory = try dataDirectory ?? makeTemporaryDirectory(prefix: "registryd-test")
        let metadata: any MetadataBackend
        var ownDatabase: PostgresLocation?
        switch metadataKind {
        case .sqlite:
            metadata = try SQLiteMetadataStore(path: directory + "/registry.db", instance: instance)
        case .postgres:
            let location = try await TestPostgres.makeDatabase()
            ownDatabase = location
            metadata = try await PostgresMetadataStore(location: location, instance: instance)
        case .postgresDatabase(let location):
            metadata = try await PostgresMetadataStore(location: location, instance: instance)
        }
        let storageDriver: any StorageDriver =
            switch driver {
            case .filesystem: try FilesystemDriver(root: storageRoot ?? directory + "/storage")
            case .memory: MemoryDriver()
            case .s3(let configuration): try await S3Driver.prepared(configuration)
            case .custom(let driver): driver
            }
        let blobs = BlobStore(driver: storageDriver)
        var logger = Logger(label: "registryd-test")
        logger.logLevel = ProcessInfo.processInfo.environment["REGISTRYD_TEST_LOG"] == nil ? .critical : .debug
        // The token realm names the port, known only once bound: the registry is
        // built after binding and handed to the recorder then.
        let recorder = RequestRecorder()
        let server = HTTPServer(
            responder: recorder, immediateResponder: immediateAnswers ? recorder : nil, group: MultiThreadedEventLoopGroup.singleton,
            logger: logger, idleTimeout: idleTimeout, minimumBodyRate: minimumBodyRate)
        let listener = try await server.bind(host: "127.0.0.1", port: 0)
        guard let port = listener.channel.localAddress?.port else { throw TestRegistryError.noPort }
        let policy: any AccessPolicy & ImmediateAccess
        var tokenEndpoint: TokenEndpoint?
        switch auth {
        case .open:
            policy = OpenAccessPolicy()
        case .basic:
            policy = RegistryAccessPolicy(scheme: .basic, accounts: metadata)
        case .token(let lifetime):
            let key = try TokenSigningKey.loadOrCreate(at: directory + "/token-signing.key")
            let tokens = TokenService(key: key, service: "registryd", issuer: "registryd", lifetime: lifetime)
            let tokenPolicy = RegistryAccessPolicy(scheme: .token(tokens, realm: "http://127.0.0.1:\(port)/token"), accounts: metadata)
            tokenEndpoint = TokenEndpoint(policy: tokenPolicy, tokens: tokens)
            policy = tokenPolicy
        }
        recorder.wrap(
            Registry(
                metadata: metadata, blobs: blobs, policy: policy, tokenEndpoint: tokenEndpoint, configuration: configuration, logger: logger
            ),
            immediate: ImmediateReads(cache: metadata, access: policy, configuration: configuration))
        let serving = Task { try await server.serve([listener]) }
        return TestRegistry(
            port: port, dataDirectory: directory, metadata: metadata, ownDatabase: ownDatabase, blobs: blobs, recorder: recorder,
            listener: listener, serving: serving)
    }

    /// Creates a user straight in the metadata layer (cost-4 bcrypt, to keep tests fast).
    public func createUser(_ name: String, password: String, staff: Bool = false) async throws {
        try await metadata.createUser(name: name, passwordHash: PasswordHasher(cost: 4).hash(password), isStaff: staff)
    }

    /// `127.0.0.1:<port>`, as clients name the registry.
    public var address: String { "127.0.0.1:\(port)" }

    /// Stops accepting, ends open connections and (unless `keepingData`) removes the
    /// data directory.
    public func stop(keepingData: Bool = false) async {
        try? await listener.channel.close()
        serving.cancel()
        _ = await serving.result
        await metadata.close()
        if !keepingData {
            try? FileManager.default.removeItem(atPath: dataDirectory)
            if let ownDatabase { try? await TestPostgres.dropDatabase(ownDatabase) }
        }
    }

    /// The SQLite store, for tests of what only that backend has (its space reserve).
    public var sqlite: SQLiteMetadataStore {
        guard let store = metadata as? SQLiteMetadataStore else { preconditionFailure("this registry's metadata is not SQLite") }
        return store
    }

    /// The PostgreSQL database of this registry, to start another on (`.postgresDatabase`).
    public var postgresDatabase: PostgresLocation? { ownDatabase }
}

public enum TestRegistryError: Error {
    case noPort
}

/// A fresh directory under the system's temporary directory.
public func makeTemporaryDirectory(prefix: String) throws -> String {
    let path = NSTemporaryDirectory() + "/\(prefix)-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}
