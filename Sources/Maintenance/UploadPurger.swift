import FoundationEssentials
import Metadata
import OCI
import Storage

/// Removes abandoned uploads: sessions idle for longer than the time-to-live, with
/// their temporary objects, and temporary objects that no session owns any more.
///
/// ```swift
/// let report = try await UploadPurger(metadata: metadata, blobs: blobs).purge(idleLongerThan: 86_400, now: UnixTime.seconds())
/// ```
///
/// The object goes before the row: a session row never points at bytes that are gone
/// while its owner could still resume it (an idle session past its TTL is not resumed).
public struct UploadPurger: Sendable {
    let metadata: any MetadataStore & RepositoryAdministration
    let blobs: BlobStore
    /// Sessions looked at per purge.
    private let batch = 10_000

    public init(metadata: any MetadataStore & RepositoryAdministration, blobs: BlobStore) {
        self.metadata = metadata
        self.blobs = blobs
    }

    public struct Report: Sendable {
        public let sessions: [UploadSessionInfo]
        /// Temporary objects without a session (left by a crash between steps).
        public let orphans: [String]
        public let bytes: Int64
        /// Half-done writes the driver cleaned up (S3's incomplete multipart uploads).
        public var abortedWrites = 0
    }

    /// Purges sessions whose last activity is older than `seconds` before `now`.
    public func purge(idleLongerThan seconds: Int64, dryRun: Bool = false, now: Int64) async throws -> Report {
        // Storage first, sessions second: a session's row exists before its first byte,
        // so an object listed here whose session is missing below is a real orphan, never
        // an upload that started in between.
        let objects = try await blobs.driver.list(under: BlobStore.uploadsPrefix).filter { $0.segments.count >= 2 }.map { $0.segments[1] }
        let sessions = try await metadata.uploads(limit: batch)
        let stale = sessions.filter { now - $0.updatedAt >= seconds }
        let known = Set(sessions.map(\.session.id.value))
        var orphans: [String] = []
        for id in objects where !known.contains(id) && !orphans.contains(id) {
            // Listed before the sessions were read, yet without a session: check once more
            // against the store itself, the list above being capped.
            if let parsed = try? UploadID(parsing: id), try await metadata.upload(parsed) != nil { continue }
            orphans.append(id)
        }
        var bytes: Int64 = stale.reduce(0) { $0 + $1.session.size }
        for id in orphans {
            if let parsed = try? UploadID(parsing: id) { bytes += (try? await blobs.uploadSize(parsed)) ?? 0 }
        }
        guard !dryRun else { return Report(sessions: stale, orphans: orphans, bytes: bytes) }
        for info in stale {
            try await blobs.discardUpload(info.session.id)
            try await metadata.deleteUpload(info.session.id)
        }
        for id in orphans {
            if let parsed = try? UploadID(parsing: id) { try await blobs.discardUpload(parsed) }
        }
        var report = Report(sessions: stale, orphans: orphans, bytes: bytes)
        // Anywhere under the driver's root, older than the time-to-live: a request that
        // crashed mid-write (an upload, or a move onto a blob's address) left it.
        report.abortedWrites = try await blobs.driver.abortAbandonedWrites(
            olderThan: .seconds(seconds), now: Date(timeIntervalSince1970: Double(now))
        )
        return report
    }

    /// Removes the temporary objects of sessions that are already gone from the metadata.
    public func discard(_ uploads: [UploadID]) async throws {
        for id in uploads { try await blobs.discardUpload(id) }
    }
}
