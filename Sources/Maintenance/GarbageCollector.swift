import FoundationEssentials
import Metadata
import OCI
import Storage

/// Online garbage collection, driven by the metadata alone (no storage walk), while
/// pushes and pulls go on.
///
/// ```swift
/// let collector = GarbageCollector(metadata: metadata, blobs: blobs)
/// let report = try await collector.run(GarbageCollector.Options(grace: .seconds(3600)))
/// ```
///
/// Order of a run: untagged manifests (when asked) and referrers whose subject is gone;
/// links to blobs that no manifest of their repository references; blobs nothing
/// holds (no link, no reference, no pin); idle uploads. Everything must be older than
/// the grace period. A blob is first marked `deleting` in a transaction that re-checks
/// it (pushes pin or link in transactions too, so one of the two wins cleanly), then its
/// bytes go, then its row: a reader never finds a row whose bytes are gone, and a push
/// never gets a 201 for bytes a collection removes.
public actor GarbageCollector {
    public struct Options: Sendable {
        public var dryRun = false
        public var deleteUntagged = false
        /// How long something must have been unreferenced (old) before it goes.
        public var grace: Duration = .seconds(3600)
        /// Upload sessions idle longer than this are purged.
        public var uploadTTL: Int64 = 86_400

        public init(dryRun: Bool = false, deleteUntagged: Bool = false, grace: Duration = .seconds(3600), uploadTTL: Int64 = 86_400) {
            self.dryRun = dryRun
            self.deleteUntagged = deleteUntagged
            self.grace = grace
            self.uploadTTL = uploadTTL
        }
    }

    public struct Report: Sendable {
        public var manifests: [CollectableManifest] = []
        public var links: [StaleLink] = []
        public var blobs: [CollectableBlob] = []
        public var uploads = 0
        public var bytesFreed: Int64 = 0
        /// Candidates looked at so far (manifests, links, blobs), and the bytes of the blobs among them.
        public var examined = 0
        public var bytesExamined: Int64 = 0
        public var dryRun = false
        public var startedAt = Date()
        public var finishedAt: Date?
    }

    public enum Phase: String, Sendable { case idle, manifests, links, blobs, uploads }

    public struct Status: Sendable {
        public var phase: Phase
        public var running: Report?
        public var last: Report?
    }

    /// Items looked at per query: a run works through large stores in batches.
    private let batch = 1000

    private let store: any CollectionStore
    private let blobs: BlobStore
    private let uploads: UploadPurger
    private var phase = Phase.idle
    private var running: Report?
    private var last: Report?

    public init(metadata: any CollectionStore & MetadataStore & RepositoryAdministration, blobs: BlobStore) {
        self.store = metadata
        self.blobs = blobs
        self.uploads = UploadPurger(metadata: metadata, blobs: blobs)
    }

    public var status: Status { Status(phase: phase, running: running, last: last) }

    /// Runs one collection, holding the store's collection lock: with several instances
    /// on one database, one collection at a time in the whole cluster.
    /// - Throws: `GarbageCollectorError.alreadyRunning` when this collector runs one,
    ///   `.runningElsewhere` when another instance does.
    public func run(_ options: Options) async throws -> Report {
        guard running == nil else { throw GarbageCollectorError.alreadyRunning }
        running = Report(dryRun: options.dryRun)
        defer {
            phase = .idle
            running = nil
        }
        guard let report = try await store.whileHoldingCollectionLock({ try await self.collect(options) }) else {
            let holder = try await store.collectionRunningElsewhere()
            throw GarbageCollectorError.runningElsewhere(holder?.instance ?? "another instance")
        }
        return report
    }

    /// Another instance's collection, if one runs now (for `gc.status`).
    public func collectionElsewhere() async throws -> CollectionClaim? {
        try await store.collectionRunningElsewhere()
    }

    private func collect(_ options: Options) async throws -> Report {
        // Milliseconds, so that grace 0 means everything unreferenced when the run starts.
        let startedAt = UnixTime.milliseconds()
        let cutoff = startedAt - options.grace.milliseconds

        phase = .manifests
        var candidates = try await store.orphanedReferrers(olderThan: cutoff, limit: batch)
        if options.deleteUntagged { candidates += try await store.untaggedManifests(olderThan: cutoff, limit: batch) }
        running?.examined += candidates.count
        for manifest in candidates {
            let removed = try await (options.dryRun ? true : store.deleteManifestIfCollectable(manifest, olderThan: cutoff))
            if removed { running?.manifests.append(manifest) }
        }

        phase = .links
        let links = try await store.staleLinks(olderThan: cutoff, limit: batch * 10)
        running?.examined += links.count
        for link in links {
            let removed = try await (options.dryRun ? true : store.deleteLinkIfStale(link, olderThan: cutoff))
            if removed { running?.links.append(link) }
        }

        phase = .blobs
        if !options.dryRun { _ = try await store.releaseDeadPins() }
        var collectable = try await store.collectableBlobs(olderThan: cutoff, limit: batch * 10)
        running?.examined += collectable.count
        running?.bytesExamined += collectable.reduce(0) { $0 + $1.size }
        if options.dryRun {
            // What the link phase would have freed is not visible to a dry run's queries.
            collectable = collectable.filter { !$0.marked }
            running?.blobs = collectable
            running?.bytesFreed = collectable.reduce(0) { $0 + $1.size }
        } else {
            for blob in collectable {
                guard try await store.markForDeletion(blob.digest, olderThan: cutoff) else { continue }
                do {
                    try await blobs.deleteBlob(blob.digest)
                } catch {
                    try? await store.unmarkDeletion(blob.digest)
                    continue
                }
                try await store.finishDeletion(blob.digest)
                running?.blobs.append(blob)
                running?.bytesFreed += blob.size
            }
        }

        phase = .uploads
        let purged = try await uploads.purge(idleLongerThan: options.uploadTTL, dryRun: options.dryRun, now: startedAt / 1000)
        running?.uploads = purged.sessions.count + purged.orphans.count
        running?.bytesFreed += purged.bytes

        running?.finishedAt = Date()
        last = running
        return running ?? Report()
    }
}

public enum GarbageCollectorError: Error, Equatable, CustomStringConvertible {
    case alreadyRunning
    /// The instance named holds the cluster's collection lock.
    case runningElsewhere(String)

    public var description: String {
        switch self {
        case .alreadyRunning: "a garbage collection is already running"
        case .runningElsewhere(let instance): "a garbage collection is running on instance \(instance)"
        }
    }
}
