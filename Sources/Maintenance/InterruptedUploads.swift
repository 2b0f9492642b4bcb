import Metadata
import OCI
import Storage

/// What uploads of a killed process leave behind, tidied when the next one starts.
///
/// An upload pins its blob (creating the row) before it moves the bytes into place. A
/// process killed in between leaves a row whose bytes never arrived; its pin is released
/// when the instance starts again (`SQLiteMetadataStore.releasedPinsAtStart`). Such a row
/// promised nothing to anyone, so it goes, unless something holds it by now or its bytes
/// did arrive (then it is an ordinary unlinked blob, which collection handles).
///
/// ```swift
/// let removed = try await InterruptedUploads.settle(metadata.releasedPinsAtStart, metadata: metadata, blobs: blobs)
/// ```
public enum InterruptedUploads {
    /// - Returns: the rows removed.
    public static func settle(_ released: [Digest], metadata: any CollectionStore, blobs: BlobStore) async throws -> [Digest] {
        var removed: [Digest] = []
        for digest in Set(released).sorted(by: { $0.description < $1.description }) {
            guard try await blobs.size(of: digest) == nil else { continue }
            // Re-checked in the delete's transaction: an upload that pins it meanwhile wins.
            if try await metadata.deleteRowIfUnheld(digest) { removed.append(digest) }
        }
        return removed
    }
}

/// Deletions a killed collection or repair left half done, finished when the next
/// process starts.
///
/// Both mark a blob `deleting` (in a transaction that proves nothing holds it), delete
/// its bytes, then its row. Killed in between, the row stays marked: no upload may pin
/// it, so the blob could not be pushed again, and verification skips it, until some
/// later collection came by. The mark already decided the blob goes, so finishing is
/// right, but not beside a collection of another instance that is still deleting (one
/// whose delete fails takes its mark back): the work is done under the collection lock,
/// and skipped while another instance collects (that run finishes every marked blob).
///
/// ```swift
/// let finished = try await InterruptedDeletions.finish(metadata: metadata, blobs: blobs)
/// ```
public enum InterruptedDeletions {
    /// - Returns: the blobs whose deletion it finished.
    public static func finish(metadata: any CollectionStore, blobs: BlobStore) async throws -> [Digest] {
        try await metadata.whileHoldingCollectionLock {
            var finished: [Digest] = []
            while true {
                let marked = try await metadata.blobsMarkedForDeletion(limit: 1000)
                for digest in marked {
                    do {
                        try await blobs.deleteBlob(digest)
                    } catch StorageError.notFound {
                        // Gone already: the killed run got that far.
                    }
                    try await metadata.finishDeletion(digest)
                    finished.append(digest)
                }
                if marked.count < 1000 { return finished }
            }
        } ?? []
    }
}
