import ArgumentParser
import Auth
import Control
import DaemonSettings
import FoundationEssentials
import HTTPTransport
import Logging
import Maintenance
import Metadata
import NIOCore
import NIOPosix
import RegistryAPI
import Storage
import Systemd

/// `registryd`: wiring only. Reads settings, opens metadata and storage, takes its
/// sockets from systemd or binds them, serves, and stops gracefully.
struct RegistryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "registryd",
        abstract: "A container image registry (OCI Distribution API) server.",
        usage: "registryd [--config FILE] [--SETTING VALUE ...]",
        discussion: """
            Settings come from --config FILE (key = value lines) and are overridden by flags; \
            every setting is both a config key and a flag (docs/CONFIGURATION.md).

            SETTINGS:
            \(Setting.flagHelp)
            """)

    @Option(name: .long, help: "Configuration file (key = value lines).")
    var config: String?

    /// Every other flag: a setting of `Settings.all`, read by `Settings.apply(flags:)`.
    @Argument(parsing: .allUnrecognized, help: .hidden)
    var settingFlags: [String] = []

    func run() async throws {
        // glibc gives each thread that contends for malloc an arena of its own (up to 8
        // per core); two are plenty for two event loops and a few pool threads, and save
        // ~8 MiB of resident memory after a large upload (docs/PERFORMANCE.md).
        if getenv("MALLOC_ARENA_MAX") == nil { _ = glibcMallopt(mallocArenaMax, 2) }
        let settings = try loadSettings()
        LiveLogLevel.current = settings.logLevel
        LiveLogLevel.bootstrap()
        // Lines still gathered when run() ends (a failed start, a stop) go out first.
        defer { LogOutput.standardError.flush() }
        let logger = Logger(label: "registryd")
        let notifier = ServiceNotifier()

        let activation = try SocketActivation.fromEnvironment(expectedNames: ["registry", "control"])
        if activation.isActive && activation.descriptors(named: "registry").isEmpty {
            throw ValidationError("socket activation passed no socket named \"registry\" (FileDescriptorName=registry)")
        }

        notifier.status("opening the database")
        try FileSystemSetup.makeDirectory(settings.dataDir)
        let instance = try settings.instanceID ?? InstanceIdentity.loadOrCreate(in: settings.dataDir)
        let metadata = try await Self.openMetadata(settings, instance: instance, notifier: notifier, logger: logger)
        let driver: any StorageDriver =
            switch settings.storage {
            case .filesystem: try FilesystemDriver(root: settings.dataDir + "/storage")
            case .memory: MemoryDriver()
            case .s3: try await Self.openS3(settings.s3, notifier: notifier)
            }
        let (policy, tokenEndpoint) = try accessPolicy(settings, metadata, logger)
        var registryConfiguration = Registry.Configuration()
        registryConfiguration.allowSparseIndexes = settings.allowSparseIndexes
        let blobs = BlobStore(driver: driver)
        if !metadata.releasedPinsAtStart.isEmpty {
            let removed = try await InterruptedUploads.settle(metadata.releasedPinsAtStart, metadata: metadata, blobs: blobs)
            logger.notice(
                "released \(metadata.releasedPinsAtStart.count) pin(s) of uploads interrupted by the last stop; removed \(removed.count) blob row(s) whose bytes never arrived"
            )
        }
        do {
            let finished = try await InterruptedDeletions.finish(metadata: metadata, blobs: blobs)
            if !finished.isEmpty {
                logger.notice("finished deleting \(finished.count) blob(s) a collection or repair had marked before it was stopped")
            }
        } catch {
            // The next collection finishes them instead; serving need not wait for that.
            logger.error("finishing interrupted deletions failed: \(error)")
        }
        let registry = Registry(
            metadata: metadata, blobs: blobs, policy: policy, tokenEndpoint: tokenEndpoint,
            configuration: registryConfiguration, logger: logger)
        // The immediate path answers plain reads from memory; without it every request
        // takes NIO's parser and the full path (same answers, more work per request).
        let immediateReads =
            settings.immediateAnswers ? ImmediateReads(cache: metadata, access: policy, configuration: registryConfiguration) : nil
        let server = HTTPServer(
            responder: registry, immediateResponder: immediateReads, group: MultiThreadedEventLoopGroup.singleton, logger: logger,
            minimumBodyRate: MinimumBodyRate(bytesPerSecond: settings.bodyMinimumRate, window: .seconds(settings.bodyRateWindow)))

        var listeners: [HTTPServer.Listener] = []
        if activation.isActive {
            for descriptor in activation.descriptors(named: "registry") {
                listeners.append(try await server.adopt(socket: descriptor))
            }
            logger.notice("socket-activated: \(listeners.count) registry socket(s)")
        } else {
            for address in settings.listen {
                let listener = try await server.bind(host: address.host, port: address.port)
                logger.notice("listening on \(listener.channel.localAddress.map { "\($0)" } ?? "\(address.host):\(address.port)")")
                listeners.append(listener)
            }
        }

        // One collector for the schedule, `gc.run` and the status line: one run at a time.
        let collector = GarbageCollector(metadata: metadata, blobs: blobs)
        let methods = ControlMethods(
            metadata: metadata, blobs: blobs, collector: collector, uploadTimeToLive: Int64(settings.uploadTTL),
            activation: activation.isActive ? "socket" : "none",
            version: RegistrydVersion.current)
        let access = try ControlAccess(adminGroup: settings.adminGroup)
        let control = ControlServer(dispatcher: methods.makeDispatcher(logger: logger), access: access, logger: logger)
        let controlListener: ControlServer.Listener
        if let descriptor = activation.descriptors(named: "control").first {
            controlListener = try await control.adopt(socket: descriptor)
        } else {
            let path = settings.controlSocket ?? settings.dataDir + "/control.sock"
            controlListener = try await control.bind(path: path, group: access.groupID)
            logger.notice("control socket at \(path)")
        }

        // The database is open and migrated and every socket is ready: only now READY=1.
        notifier.ready()
        let status = StatusReporter(server: server, metadata: metadata, collector: collector, notifier: notifier)
        await status.report()

        let registryListeners = listeners
        let gracePeriod = Duration.seconds(settings.shutdownTimeout)
        let exitIdleAfter = settings.exitIdleAfter
        let stop = StopSignal()
        let signals = Task {
            for await number in SignalEvents.stream([SIGTERM, SIGINT, SIGHUP]) {
                if number == SIGHUP {
                    reload(notifier: notifier, logger: logger)
                    await status.report()
                } else {
                    stop.signal()
                }
            }
        }
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await server.serve(registryListeners) }
            group.addTask { try await control.serve(controlListener) }
            group.addTask {
                await stop.wait()
                notifier.stopping()
                notifier.status("stopping: finishing requests in flight")
                logger.notice("stopping")
                for listener in registryListeners { try? await listener.channel.close() }
                await server.drain(gracePeriod: gracePeriod)
                try? await controlListener.channel.close()
            }
            // Helpers end when the stop is signalled.
            group.addTask { await status.run(until: stop) }
            group.addTask { await Self.renewLease(metadata, until: stop, logger: logger) }
            if let interval = settings.gcInterval {
                let options = GarbageCollector.Options(grace: .seconds(settings.gcGrace), uploadTTL: Int64(settings.uploadTTL))
                group.addTask { await Self.collectGarbage(collector, every: interval, options: options, until: stop, logger: logger) }
            }
            group.addTask {
                await Self.purgeUploads(
                    UploadPurger(metadata: metadata, blobs: blobs), ttl: Int64(settings.uploadTTL), until: stop, logger: logger)
            }
            let pruner = HistoryPruner(
                metadata: metadata, retention: .init(tagHistory: settings.tagHistoryRetention, audit: settings.auditRetention))
            if let interval = pruner.retention.interval {
                group.addTask { await Self.pruneHistory(pruner, every: interval, until: stop, logger: logger) }
            }
            if let interval = notifier.watchdogInterval {
                group.addTask { await Self.pingWatchdog(notifier, every: interval, until: stop) }
            }
            if let idle = exitIdleAfter {
                if activation.isActive {
                    group.addTask { await Self.exitWhenIdle(server, after: idle, stop: stop, logger: logger) }
                } else {
                    logger.warning("--exit-idle-after needs socket activation (nothing would start registryd again); ignored")
                }
            }
        }
        signals.cancel()
        await metadata.close()
    }

    /// SQLite in the data directory, or the PostgreSQL database of `--metadata` shared
    /// with other instances (its password from the config file, `PGPASSWORD` or a passfile).
    private static func openMetadata(
        _ settings: Settings, instance: String, notifier: ServiceNotifier, logger: Logger
    ) async throws -> any MetadataBackend {
        let description = InstanceDescription.current(version: RegistrydVersion.current)
        guard let location = settings.metadata else {
            return try SQLiteMetadataStore(path: settings.dataDir + "/registry.db", instance: instance, description: description)
        }
        notifier.status("connecting to PostgreSQL at \(location)")
        let located = location.withPassword(configured: settings.metadataPassword, environment: ProcessInfo.processInfo.environment)
        let metadata = try await PostgresMetadataStore(
            location: located, instance: instance, poolSize: settings.metadataPoolSize, description: description,
            logger: Logger(label: "registryd.metadata"))
        logger.notice("metadata in \(metadata.backendDescription), instance \(instance)")
        return metadata
    }

    private func loadSettings() throws -> Settings {
        var settings = Settings()
        if let config { try settings.load(file: config) }
        try settings.apply(flags: settingFlags)
        return settings
    }

    /// SIGHUP: re-reads the config file and applies what can change live (the log
    /// level); everything else needs a restart, and a broken file changes nothing.
    private func reload(notifier: ServiceNotifier, logger: Logger) {
        notifier.reloading()
        defer { notifier.ready() }
        do {
            let fresh = try loadSettings()
            LiveLogLevel.current = fresh.logLevel
            logger.notice("reloaded: log level \(fresh.logLevel)")
        } catch {
            logger.error("reload failed, keeping the running settings: \(error)")
        }
    }

    private func accessPolicy(_ settings: Settings, _ metadata: any MetadataBackend, _ logger: Logger) throws -> (
        RegistryAccessPolicy, TokenEndpoint?
    ) {
        guard settings.tokenAuth else { return (RegistryAccessPolicy(scheme: .basic, accounts: metadata), nil) }
        // A configured key file must exist (several instances share it); the default one
        // in the data directory is made on first start.
        let key =
            try settings.tokenKeyFile.map { try TokenSigningKey.load(at: $0) }
            ?? TokenSigningKey.loadOrCreate(at: settings.dataDir + "/token-signing.key")
        let accepted = try settings.tokenAcceptKeyFiles.map { try TokenSigningKey.load(at: $0) }
        let tokens = TokenService(key: key, alsoAccepting: accepted, service: settings.tokenService, issuer: settings.tokenService)
        let policy = RegistryAccessPolicy(scheme: .token(tokens, realm: settings.realmBase + "/token"), accounts: metadata)
        logger.notice("token auth: realm \(settings.realmBase)/token, service \(settings.tokenService)")
        return (policy, TokenEndpoint(policy: policy, tokens: tokens))
    }

    /// Scheduled collections (`--gc-interval`).
    /// Checks the bucket (creating it when missing) before READY, so bad credentials or an
    /// unreachable endpoint stop the start with the store's own answer.
    private static func openS3(_ settings: Settings.S3Settings, notifier: ServiceNotifier) async throws -> S3Driver {
        notifier.status("opening the S3 bucket")
        return try await S3Driver.prepared(settings.configuration(environment: ProcessInfo.processInfo.environment))
    }

    private static func collectGarbage(
        _ collector: GarbageCollector, every seconds: Int, options: GarbageCollector.Options, until stop: StopSignal, logger: Logger
    ) async {
        while !stop.isSignalled {
            await stop.sleep(for: .seconds(seconds))
            guard !stop.isSignalled else { return }
            do {
                let report = try await collector.run(options)
                logger.notice(
                    "garbage collection: \(report.blobs.count) blobs, \(report.manifests.count) manifests, \(report.bytesFreed) bytes freed"
                )
            } catch let error as GarbageCollectorError {
                // Several instances with the same schedule: one collects, the others skip.
                logger.info("scheduled garbage collection skipped: \(error)")
            } catch {
                logger.error("garbage collection failed: \(error)")
            }
        }
    }

    /// Removes abandoned uploads at start and then every hour, so they neither fill the
    /// disk nor count against their owner's limit of open uploads forever.
    private static func purgeUploads(_ purger: UploadPurger, ttl: Int64, until stop: StopSignal, logger: Logger) async {
        var first = true
        while !stop.isSignalled {
            if !first { await stop.sleep(for: .seconds(3600)) }
            first = false
            guard !stop.isSignalled else { return }
            do {
                let report = try await purger.purge(idleLongerThan: ttl, now: Int64(Date().timeIntervalSince1970))
                if !report.sessions.isEmpty || !report.orphans.isEmpty || report.abortedWrites > 0 {
                    logger.notice(
                        "upload purge: \(report.sessions.count) idle upload(s), \(report.orphans.count) orphaned object(s), \(report.abortedWrites) aborted write(s), \(report.bytes) bytes"
                    )
                }
            } catch {
                logger.error("upload purge failed: \(error)")
            }
        }
    }

    /// Keeps tag history and audit records to their retention (`HistoryPruner`); the
    /// first pass runs at start, so a lowered retention applies at once.
    private static func pruneHistory(_ pruner: HistoryPruner, every seconds: Int64, until stop: StopSignal, logger: Logger) async {
        while !stop.isSignalled {
            do {
                let report = try await pruner.prune(now: UnixTime.seconds())
                if report.tagMoves > 0 || report.auditEntries > 0 {
                    logger.info(
                        "history pruned: \(report.tagMoves) tag move(s), \(report.auditEntries) audit record(s) past their retention")
                }
            } catch {
                logger.error("pruning tag history and audit records failed: \(error)")
            }
            await stop.sleep(for: .seconds(seconds))
        }
    }

    /// Keeps this instance's pins alive and its heartbeat current (see `InstanceLease`).
    private static func renewLease(_ metadata: any MetadataBackend, until stop: StopSignal, logger: Logger) async {
        while !stop.isSignalled {
            await stop.sleep(for: InstanceLease.renewalInterval)
            guard !stop.isSignalled else { return }
            do {
                try await metadata.renewInstanceLease()
            } catch {
                logger.error("renewing the instance lease failed: \(error)")
            }
        }
    }

    private static func pingWatchdog(_ notifier: ServiceNotifier, every interval: Duration, until stop: StopSignal) async {
        while !stop.isSignalled {
            notifier.watchdog()
            await stop.sleep(for: interval)
        }
    }

    /// Stops once no connection has been open and no request served for `seconds`.
    private static func exitWhenIdle(_ server: HTTPServer, after seconds: Int, stop: StopSignal, logger: Logger) async {
        var lastServed = server.requestsServed
        var idleSince = ContinuousClock.now
        while !stop.isSignalled {
            await stop.sleep(for: .milliseconds(200))
            let served = server.requestsServed
            if served != lastServed || server.openConnections > 0 {
                lastServed = served
                idleSince = .now
            } else if ContinuousClock.now - idleSince >= .seconds(seconds) {
                logger.notice("idle for \(seconds)s: exiting; systemd starts registryd on the next connection")
                stop.signal()
            }
        }
    }
}

enum RegistrydVersion {
    static let current = "0.1.0"
}

/// glibc's `mallopt(3)`: `<malloc.h>` is not part of the Glibc module Swift imports.
@_silgen_name("mallopt")
private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
/// `M_ARENA_MAX` of `<malloc.h>`.
private let mallocArenaMax: Int32 = -8
