import ArgumentParser
import Auth
import Control
import Logging
import Metadata
import NIOCore
import NIOPosix
import RegistryAPI
import Storage

/// `registryd`: wiring only. Reads settings, opens metadata and storage, binds the
/// listeners and serves until stopped.
@main
struct RegistryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "registryd",
        abstract: "A container image registry (OCI Distribution API) server.",
        discussion: "Settings come from --config FILE (key = value lines) and are overridden by flags. See docs/CONFIGURATION.md.")

    @Option(name: .long, help: "Address to listen on, HOST:PORT (repeatable). Default: 127.0.0.1:5000.")
    var listen: [String] = []

    @Option(name: .long, help: "Directory for the database and blob storage. Default: ./registry-data.")
    var dataDir: String?

    @Option(name: .long, help: "Configuration file (key = value lines).")
    var config: String?

    @Option(name: .long, help: "Storage driver: filesystem or memory. Default: filesystem.")
    var storage: String?

    @Option(name: .long, help: "Path of the control socket for registryctl. Default: DATA_DIR/control.sock.")
    var controlSocket: String?

    @Flag(name: .long, help: "Docker token auth with namespaces and roles (default: basic auth, only staff push).")
    var tokenAuth = false

    @Option(name: .long, help: "The service name in token challenges. Default: registryd.")
    var tokenService: String?

    @Option(name: .long, help: "How clients reach the registry (e.g. https://registry.example.com); the token realm is <URL>/token.")
    var publicURL: String?

    @Flag(name: .long, help: "Accept indexes whose child manifests are missing (partial mirrors).")
    var allowSparseIndexes = false

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical. Default: info.")
    var logLevel: String?

    func run() async throws {
        var settings = Settings()
        if let config { try settings.load(file: config) }
        try settings.apply(listen: listen, dataDir: dataDir, controlSocket: controlSocket, storage: storage,
                           allowSparseIndexes: allowSparseIndexes ? true : nil, logLevel: logLevel,
                           tokenAuth: tokenAuth ? true : nil, tokenService: tokenService, publicURL: publicURL)

        let logLevel = settings.logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = logLevel
            return handler
        }
        let logger = Logger(label: "registryd")

        try FileSystemSetup.makeDirectory(settings.dataDir)
        let metadata = try SQLiteMetadataStore(path: settings.dataDir + "/registry.db")
        let driver: any StorageDriver = switch settings.storage {
        case .filesystem: try FilesystemDriver(root: settings.dataDir + "/storage")
        case .memory: MemoryDriver()
        }
        var registryConfiguration = Registry.Configuration()
        registryConfiguration.allowSparseIndexes = settings.allowSparseIndexes
        let policy: RegistryAccessPolicy
        var tokenEndpoint: TokenEndpoint?
        if settings.tokenAuth {
            let key = try TokenSigningKey.loadOrCreate(at: settings.dataDir + "/token-signing.key")
            let tokens = TokenService(key: key, service: settings.tokenService, issuer: settings.tokenService)
            policy = RegistryAccessPolicy(scheme: .token(tokens, realm: settings.realmBase + "/token"), accounts: metadata)
            tokenEndpoint = TokenEndpoint(policy: policy, tokens: tokens)
            logger.notice("token auth: realm \(settings.realmBase)/token, service \(settings.tokenService)")
        } else {
            policy = RegistryAccessPolicy(scheme: .basic, accounts: metadata)
        }
        let registry = Registry(metadata: metadata, blobs: BlobStore(driver: driver), policy: policy, tokenEndpoint: tokenEndpoint,
                                configuration: registryConfiguration, logger: logger)

        let server = HTTPServer(responder: registry, group: MultiThreadedEventLoopGroup.singleton, logger: logger)
        var listeners: [HTTPServer.Listener] = []
        for address in settings.listen {
            let listener = try await server.bind(host: address.host, port: address.port)
            let bound = listener.channel.localAddress.map { "\($0)" } ?? "\(address.host):\(address.port)"
            logger.notice("listening on \(bound), data in \(settings.dataDir), storage \(driver.name)")
            listeners.append(listener)
        }

        let methods = ControlMethods(metadata: metadata, storageDriver: driver.name, version: RegistrydVersion.current)
        let control = ControlServer(dispatcher: ControlDispatcher(methods: methods.table), logger: logger)
        let controlPath = settings.controlSocket ?? settings.dataDir + "/control.sock"
        let controlListener = try await control.bind(path: controlPath)
        logger.notice("control socket at \(controlPath)")

        let registryListeners = listeners
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.serve(registryListeners) }
            group.addTask { try await control.serve(controlListener) }
        }
    }
}

enum RegistrydVersion {
    static let current = "0.1.0"
}
