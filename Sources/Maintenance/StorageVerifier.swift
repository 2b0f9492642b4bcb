import FoundationEssentials
import Metadata
import OCI
import Storage

/// Checks that storage and metadata agree: every blob row has bytes of the right size
/// and digest, every stored blob has a row, every manifest reference has a blob.
///
/// ```swift
/// let report = try await StorageVerifier(metadata: metadata, blobs: blobs).verify(sample: nil, repair: false)
/// let clean = report.isClean
/// ```
///
/// With `repair`, corrupt bytes are moved to `quarantine/` (the blob then answers 404
/// until it is pushed again, instead of serving wrong bytes) and bytes without a row
/// are deleted.
public struct StorageVerifier: Sendable {
    let store: any CollectionStore
    let blobs: BlobStore
    private let batch = 1000

    public init(metadata: any CollectionStore, blobs: BlobStore) {
        self.store = metadata
        self.blobs = blobs
    }

    public struct Report: Sendable {
        public var checked = 0
        public var rehashed = 0
        public var missingBytes: [String] = []
        /// Rows whose bytes are missing because an upload pinned them and is moving the
        /// bytes into place right now: not a problem.
        public var uploadsInProgress: [String] = []
        public var wrongSize: [String] = []
        public var corrupt: [String] = []
        public var orphanedBytes: [String] = []
        public var brokenReferences: [String] = []
        public var repaired = false

        public var isClean: Bool {
            missingBytes.isEmpty && wrongSize.isEmpty && corrupt.isEmpty && orphanedBytes.isEmpty && brokenReferences.isEmpty
        }
    }

    /// - Parameter sample: re-hash only every n-th blob (`nil` or 1: all of them).
    public func verify(sample: Int?, repair: Bool) async throws -> Report {
        var report = Report(repaired: repair)
        var last: String?
        var index = 0
        while true {
            let page = try await store.storedBlobs(after: last, limit: batch)
            for blob in page {
                report.checked += 1
                defer { index += 1 }
                guard let size = try await blobs.size(of: blob.digest) else {
                    if try await store.isPinned(blob.digest) {
                        report.uploadsInProgress.append(blob.digest.description)
                    } else {
                        report.missingBytes.append(blob.digest.description)
                    }
                    continue
                }
                if size != blob.size {
                    report.wrongSize.append(blob.digest.description)
                    if repair { try await quarantine(blob.digest) }
                    continue
                }
                guard index % max(sample ?? 1, 1) == 0 else { continue }
                report.rehashed += 1
                if try await digest(of: blob.digest) != blob.digest {
                    report.corrupt.append(blob.digest.description)
                    if repair { try await quarantine(blob.digest) }
                }
            }
            guard let end = page.last, page.count == batch else { break }
            last = end.digest.description
        }
        for path in try await blobs.driver.list(under: StoragePath(["blobs"])) {
            // blobs/<algorithm>/<xx>/<hex>/data
            guard path.segments.count == 5, let digest = try? Digest(parsing: "\(path.segments[1]):\(path.segments[3])") else { continue }
            guard try await !store.hasBlobRow(digest) else { continue }
            // A blob a push is placing this moment is listed (on S3, its multipart upload)
            // before it has bytes or a row: not an orphan.
            guard try await blobs.size(of: digest) != nil else { continue }
            if repair {
                // The same protocol as a collection: a marked row first, so an upload of
                // this very blob waits instead of placing bytes that are about to go.
                guard try await store.markOrphanForDeletion(digest) else { continue }
                try await blobs.deleteBlob(digest)
                try await store.finishDeletion(digest)
            }
            report.orphanedBytes.append(digest.description)
        }
        report.brokenReferences = try await store.referencesWithoutBlobs(limit: batch).map {
            "\($0.repository)@\($0.manifest) → \($0.blob)"
        }
        return report
    }

    private func digest(of digest: Digest) async throws -> Digest {
        let hasher = ContentHasher(algorithm: digest.algorithm)
        let size = try await blobs.size(of: digest) ?? 0
        guard case .chunks(let chunks) = try await blobs.content(of: digest, range: 0..<size, preferChunks: true) else {
            return hasher.finalize()
        }
        for try await chunk in chunks { hasher.update(chunk) }
        return hasher.finalize()
    }

    private func quarantine(_ digest: Digest) async throws {
        let target = try StoragePath(["quarantine", digest.algorithm.rawValue, digest.encoded])
        try await blobs.driver.move(from: BlobStore.path(for: digest), to: target)
    }
}
