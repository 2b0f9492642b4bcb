import OCI

/// The queries garbage collection runs. Each deciding statement re-checks its
/// conditions in the same transaction that changes anything, so a push that links,
/// pins or references something in between always wins.
///
/// Every `cutoff` is Unix time in milliseconds (`UnixTime.milliseconds()` minus the
/// grace period): what was created at or before it is old enough.
public protocol CollectionStore: Sendable {
    /// Untagged manifests that no index in their repository names as a child and that
    /// are not referrers of an existing subject, older than `cutoff`.
    func untaggedManifests(olderThan cutoff: Int64, limit: Int) async throws -> [CollectableManifest]
    /// Referrers whose subject is not in their repository, older than `cutoff`.
    func orphanedReferrers(olderThan cutoff: Int64, limit: Int) async throws -> [CollectableManifest]
    /// Deletes a manifest if it is still collectable (untagged, unreferenced, older than `cutoff`).
    func deleteManifestIfCollectable(_ manifest: CollectableManifest, olderThan cutoff: Int64) async throws -> Bool

    /// Links older than `cutoff` to blobs no manifest of that repository references
    /// (layers pushed without a manifest, or left by deleted manifests).
    func staleLinks(olderThan cutoff: Int64, limit: Int) async throws -> [StaleLink]
    func deleteLinkIfStale(_ link: StaleLink, olderThan cutoff: Int64) async throws -> Bool

    /// Blobs with no link, no reference and no live pin, created at or before `cutoff`;
    /// also blobs a crashed collection left marked.
    func collectableBlobs(olderThan cutoff: Int64, limit: Int) async throws -> [CollectableBlob]
    /// Marks a blob `deleting` if it is still collectable. - Returns: whether it was marked.
    func markForDeletion(_ digest: Digest, olderThan cutoff: Int64) async throws -> Bool
    /// Deletes pins that no longer count (their instance's lease ran out, or they are
    /// older than any upload takes). - Returns: how many.
    func releaseDeadPins() async throws -> Int
    /// Whether an upload in progress (on a live instance) has pinned the blob.
    func isPinned(_ digest: Digest) async throws -> Bool
    /// Deletes a blob row that nothing links, references or pins (and no collection is
    /// deleting). - Returns: whether it was deleted.
    func deleteRowIfUnheld(_ digest: Digest) async throws -> Bool
    /// Removes the row of a blob whose bytes are gone.
    func finishDeletion(_ digest: Digest) async throws
    /// Clears the mark when the bytes could not be deleted.
    func unmarkDeletion(_ digest: Digest) async throws
    /// Blobs marked `deleting`, at most `limit`: a collection or repair under way, or one
    /// a killed process left half done.
    func blobsMarkedForDeletion(limit: Int) async throws -> [Digest]

    // MARK: One collection at a time, across instances
    /// Runs `body` holding the collection lock that every instance sharing this store
    /// takes; returns `nil` without running it when another instance holds the lock. The
    /// lock goes with the process that holds it (a killed instance blocks no one).
    func whileHoldingCollectionLock<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T?
    /// The collection another instance than this store's is running right now, if any.
    func collectionRunningElsewhere() async throws -> CollectionClaim?

    // MARK: Verification
    /// Blob rows in digest order after `last`, at most `limit` (rows being deleted are left out).
    func storedBlobs(after last: String?, limit: Int) async throws -> [CollectableBlob]
    /// Whether a blob row exists (in any state).
    func hasBlobRow(_ digest: Digest) async throws -> Bool
    /// For bytes that have no row: inserts one already marked `deleting`, so that no
    /// upload pins the blob while its bytes are removed. - Returns: `false` when a row
    /// exists (the bytes are not orphaned after all).
    func markOrphanForDeletion(_ digest: Digest) async throws -> Bool
    /// Manifest references to blobs that have no row: (repository, manifest, blob).
    func referencesWithoutBlobs(limit: Int) async throws -> [(repository: String, manifest: String, blob: String)]
}

public struct CollectableManifest: Sendable, Equatable {
    public let repository: String
    public let digest: String
    public let size: Int64
}

public struct StaleLink: Sendable, Equatable {
    public let repository: String
    public let digest: String
}

public struct CollectableBlob: Sendable, Equatable {
    public let digest: Digest
    public let size: Int64
    /// Already marked by an earlier, interrupted collection.
    public let marked: Bool
}

/// Who runs a collection, and since when.
public struct CollectionClaim: Sendable, Equatable {
    public let instance: String
    public let startedAtMilliseconds: Int64
}
