import Auth
import Control
import Foundation
import HTTPTransport
import Logging
import Maintenance
import NIOCore
import NIOPosix
import OCI
import PostgresNIO
import RegistryAPI
import Systemd

@testable import Metadata
@testable import Storage

/// The examples that doc comments in `Sources/` show, as code that compiles. Each block
/// between `// example: NAME` and `// end` is the doc comment's example, line for line
/// (`DocumentationExampleTests` checks both ways), so an API change that breaks an
/// example breaks the build. Most of them also run, in `DocumentationExampleTests`.
enum Examples {
    static func passwordHasher() -> Bool {
        // example: PasswordHasher
        let hash = PasswordHasher(cost: 10).hash("s3cret")
        let matches = PasswordHasher.verify("s3cret", against: hash)  // true
        // end
        return matches
    }

    static func tokenService(key: TokenSigningKey, scope: Scope) throws -> Principal {
        // example: TokenService
        let tokens = TokenService(key: key, service: "registryd", issuer: "registryd")
        let issued = tokens.issue(subject: "alice", grants: [scope])
        let verified = try tokens.verify(issued.token)
        // end
        return verified
    }

    static func controlDispatcher(metadata: SQLiteMetadataStore, blobs: BlobStore) async -> String? {
        // example: ControlDispatcher
        let methods = ControlMethods(metadata: metadata, blobs: blobs, version: "1.0")
        let dispatcher = ControlDispatcher(methods: methods.table, changing: ControlMethods.changingMethods)
        let reply = await dispatcher.handle(line: #"{"jsonrpc":"2.0","method":"system.status","id":1}"#)
        // end
        return reply
    }

    static func controlServer(dispatcher: ControlDispatcher, logger: Logger) async throws {
        // example: ControlServer
        let server = ControlServer(dispatcher: dispatcher, access: try ControlAccess(adminGroup: nil), logger: logger)
        let listener = try await server.bind(path: "/run/registryd/control.sock")
        try await server.serve(listener)
        // end
    }

    static func garbageCollector(metadata: SQLiteMetadataStore, blobs: BlobStore) async throws -> GarbageCollector.Report {
        // example: GarbageCollector
        let collector = GarbageCollector(metadata: metadata, blobs: blobs)
        let report = try await collector.run(GarbageCollector.Options(grace: .seconds(3600)))
        // end
        return report
    }

    static func historyPruner(store: SQLiteMetadataStore) async throws -> HistoryPruner.Report {
        // example: HistoryPruner
        let pruner = HistoryPruner(metadata: store, retention: .init(tagHistory: 90 * 86_400, audit: 365 * 86_400))
        let report = try await pruner.prune(now: UnixTime.seconds())
        // end
        return report
    }

    static func interruptedUploads(metadata: SQLiteMetadataStore, blobs: BlobStore) async throws -> [Digest] {
        // example: InterruptedUploads
        let removed = try await InterruptedUploads.settle(metadata.releasedPinsAtStart, metadata: metadata, blobs: blobs)
        // end
        return removed
    }

    static func interruptedDeletions(metadata: SQLiteMetadataStore, blobs: BlobStore) async throws -> [Digest] {
        // example: InterruptedDeletions
        let finished = try await InterruptedDeletions.finish(metadata: metadata, blobs: blobs)
        // end
        return finished
    }

    static func storageVerifier(metadata: SQLiteMetadataStore, blobs: BlobStore) async throws -> Bool {
        // example: StorageVerifier
        let report = try await StorageVerifier(metadata: metadata, blobs: blobs).verify(sample: nil, repair: false)
        let clean = report.isClean
        // end
        return clean
    }

    static func uploadPurger(metadata: SQLiteMetadataStore, blobs: BlobStore) async throws -> UploadPurger.Report {
        // example: UploadPurger
        let report = try await UploadPurger(metadata: metadata, blobs: blobs).purge(idleLongerThan: 86_400, now: UnixTime.seconds())
        // end
        return report
    }

    /// Compiled, not run: it needs a PostgreSQL server (the contract tests open stores like this).
    static func postgresMetadataStore(password: String, logger: Logger) async throws -> PostgresMetadataStore {
        // example: PostgresMetadataStore
        let location = try PostgresLocation(parsing: "postgres://registryd@db.internal:5432/registry")
            .withPassword(configured: nil, environment: ["PGPASSWORD": password])
        let metadata = try await PostgresMetadataStore(location: location, instance: "registry-1", logger: logger)
        // end
        return metadata
    }

    /// Compiled, not run: it needs a PostgreSQL server (the store's hot paths run like this).
    static func hotStatement(connection: PostgresConnection, name: String) async throws -> (String, String)? {
        // example: HotStatement
        enum UserByName: HotStatement {
            static let sql = "SELECT name, password_hash FROM users WHERE name = $1"
        }
        let user = try await connection.first(UserByName.self, name) { try $0.decode((String, String).self) }
        // end
        return user
    }

    static func metadataStore(dataDir: String) throws -> SQLiteMetadataStore {
        // example: SQLiteMetadataStore
        let metadata = try SQLiteMetadataStore(path: dataDir + "/registry.db", instance: "registry-1")
        // end
        return metadata
    }

    static func contentHasher(chunk: ByteBuffer) -> Digest {
        // example: ContentHasher
        let hasher = ContentHasher(algorithm: .sha256)
        hasher.update(chunk)
        let digest = hasher.finalize()
        // end
        return digest
    }

    static func digest() throws -> Bool {
        // example: Digest
        let digest = try Digest(parsing: "sha256:" + String(repeating: "a", count: 64))
        let isSHA256 = digest.algorithm == .sha256
        // end
        return isSHA256
    }

    static func manifest(body: [UInt8]) throws -> [Digest] {
        // example: Manifest
        let manifest = try Manifest(parsing: body, contentType: "application/vnd.oci.image.manifest.v1+json")
        let blobs = try manifest.requiredBlobs.map { try Digest(parsing: $0.digest) }
        // end
        return blobs
    }

    static func repositoryName() throws -> Bool {
        // example: RepositoryName
        let name = try RepositoryName(parsing: "test/this")
        let inTest = name.namespace == "test"
        // end
        return inTest
    }

    static func accessPolicies(metadata: SQLiteMetadataStore, tokens: TokenService) -> [RegistryAccessPolicy] {
        // example: RegistryAccessPolicy
        let basic = RegistryAccessPolicy(scheme: .basic, accounts: metadata)
        let token = RegistryAccessPolicy(scheme: .token(tokens, realm: "https://registry.example/token"), accounts: metadata)
        // end
        return [basic, token]
    }

    static func registryError(digest: Digest) throws(RegistryError) {
        // example: RegistryError
        throw RegistryError(.blobUnknown, status: .notFound, "blob unknown to registry", detail: digest.description)
        // end
    }

    static func blobStore(dataDir: String, id: UploadID, body: [ByteBuffer], digest: Digest) async throws -> Int64 {
        // example: BlobStore
        let store = BlobStore(driver: try FilesystemDriver(root: dataDir + "/storage"))
        let hasher = ContentHasher(algorithm: .sha256)
        let size = try await store.appendToUpload(id, from: body.async, hasher: hasher, startingAt: 0)
        let verified = try await store.verifyUpload(id, hasher: hasher, expected: digest)
        try await store.placeUpload(id, as: digest, size: verified)
        // end
        return size
    }

    /// Compiled only: it would make the directory it names.
    static func filesystemDriver() throws -> FilesystemDriver {
        // example: FilesystemDriver
        let driver = try FilesystemDriver(root: "/var/lib/registryd/storage")
        // end
        return driver
    }

    static func memoryDriver() -> MemoryDriver {
        // example: MemoryDriver
        let driver = MemoryDriver()
        // end
        return driver
    }

    static func s3Configuration() throws -> S3Configuration {
        // example: S3Configuration
        let configuration = try S3Configuration(
            endpoint: "http://127.0.0.1:7480", bucket: "registry",
            credentials: S3Credentials(accessKeyID: "…", secretAccessKey: "…"))
        // end
        return configuration
    }

    static func s3Driver(credentials: S3Credentials) async throws {
        // example: S3Driver
        let driver = S3Driver(
            configuration: try S3Configuration(
                endpoint: "http://127.0.0.1:7480",
                bucket: "registry", credentials: credentials))
        try await driver.prepare()  // creates the bucket when missing
        // end
    }

    static func s3XML(body: [UInt8]) throws -> [String] {
        // example: S3XMLElement
        let root = try S3XMLElement.parse(body)
        let keys = root.children("Contents").compactMap { $0.child("Key")?.text }
        // end
        return keys
    }

    static func signatureV4(credentials: S3Credentials) -> [(String, String)] {
        // example: SignatureV4
        let signer = SignatureV4(credentials: credentials, region: "us-east-1")
        let headers = signer.authorizationHeaders(
            method: "GET", path: "/bucket/key", query: [],
            headers: [("host", "127.0.0.1:7480")], payloadHash: SignatureV4.emptyPayloadHash, date: Date())
        // end
        return headers
    }

    static func storageDriver(root: String, path: StoragePath, finalPath: StoragePath, buffer: ByteBuffer) async throws {
        // example: StorageDriver
        let driver: any StorageDriver = try FilesystemDriver(root: root)
        let appender = try await driver.appender(for: path, truncatingTo: 0)
        try await appender.append(buffer); try await appender.sync(); try await appender.close()
        try await driver.move(from: path, to: finalPath)
        // end
    }

    static func serviceNotifier() {
        // example: ServiceNotifier
        let notifier = ServiceNotifier()
        notifier.ready()
        notifier.status("serving; 12 requests")
        // end
    }

    static func socketActivation() throws -> [CInt] {
        // example: SocketActivation
        let activation = try SocketActivation.fromEnvironment(expectedNames: ["registry", "control"])
        let registrySockets = activation.descriptors(named: "registry")
        // end
        return registrySockets
    }

    static func httpServer(registry: Registry, immediateReads: ImmediateReads, logger: Logger) async throws {
        // example: HTTPServer
        let server = HTTPServer(
            responder: registry, immediateResponder: immediateReads, group: MultiThreadedEventLoopGroup.singleton, logger: logger)
        let listener = try await server.bind(host: "127.0.0.1", port: 5000)
        try await server.serve([listener])
        // end
    }

    static func registry(dataDir: String, logger: Logger) throws -> (Registry, ImmediateReads) {
        // example: Registry
        let metadata = try SQLiteMetadataStore(path: dataDir + "/registry.db")
        let policy = RegistryAccessPolicy(scheme: .basic, accounts: metadata)
        let registry = Registry(
            metadata: metadata, blobs: BlobStore(driver: try FilesystemDriver(root: dataDir + "/storage")),
            policy: policy, logger: logger)
        let immediateReads = ImmediateReads(cache: metadata, access: policy, configuration: Registry.Configuration())
        // end
        return (registry, immediateReads)
    }
}

private extension Array where Element == ByteBuffer {
    /// The buffers as the async sequence a request body is.
    var async: AsyncThrowingStream<ByteBuffer, any Error> {
        AsyncThrowingStream { continuation in
            for buffer in self { continuation.yield(buffer) }
            continuation.finish()
        }
    }
}
