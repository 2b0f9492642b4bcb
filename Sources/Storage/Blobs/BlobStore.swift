import NIOCore
import OCI

/// Content-addressed blobs and the temporary objects of uploads, over any driver.
///
/// ```swift
/// let store = BlobStore(driver: try FilesystemDriver(root: dataDir + "/storage"))
/// let hasher = ContentHasher(algorithm: .sha256)
/// let size = try await store.appendToUpload(id, from: body.async, hasher: hasher, startingAt: 0)
/// let verified = try await store.verifyUpload(id, hasher: hasher, expected: digest)
/// try await store.placeUpload(id, as: digest, size: verified)
/// ```
///
/// Layout: `blobs/<algorithm>/<first two hex>/<hex>/data` for committed blobs and
/// `uploads/<id>/data` for uploads in progress. A blob path only ever holds bytes
/// whose digest was verified, because it is reached only by `move` after the check.
public struct BlobStore: Sendable {
    public let driver: any StorageDriver
    /// Incoming chunks are gathered into batches of this size; the driver writes each
    /// batch while the current task hashes it, so hashing and writing overlap. The size of
    /// HTTPServer's largest reads: a full read is written without a copy. (1 MiB batches
    /// saved thread hand-offs but held more memory per upload: docs/PERFORMANCE.md,
    /// "Big blobs".)
    private let batchSize = 128 << 10
    /// Where appends rewrite the object, a request after this many bytes writes a piece of
    /// its own. Below it, rewriting the little there is costs less than the listings that
    /// pieces need (S3's minimum part size: smaller objects are read and sent again).
    static let pieceThreshold: Int64 = 5 << 20

    public init(driver: any StorageDriver) {
        self.driver = driver
    }

    public static func path(for digest: Digest) -> StoragePath {
        // A parsed digest is lowercase hex, which StoragePath always accepts.
        try! StoragePath(["blobs", digest.algorithm.rawValue, String(digest.encoded.prefix(2)), digest.encoded, "data"])
    }

    public static func path(forUpload id: UploadID) -> StoragePath {
        try! StoragePath(["uploads", id.value, "data"])
    }

    public static let uploadsPrefix = try! StoragePath(["uploads"])

    /// The size of a committed blob, or `nil` when its bytes are not stored.
    public func size(of digest: Digest) async throws -> Int64? {
        try await driver.size(of: Self.path(for: digest))
    }

    /// How to send `range` of a blob: a URL the client fetches itself (S3 with
    /// redirects), a local file the HTTP layer sends itself, or chunks (always chunks with
    /// `preferChunks`, for reading the bytes in-process).
    public func content(of digest: Digest, range: Range<Int64>, preferChunks: Bool = false) async throws -> BlobContent {
        let path = Self.path(for: digest)
        if !preferChunks, let url = driver.downloadURL(for: path) { return .redirect(url: url) }
        if !preferChunks, let file = driver.localFile(for: path) { return .file(path: file, range: range) }
        return .chunks(try await driver.read(path, range: range))
    }

    /// Appends `body` to an upload's temporary object, hashing as it goes.
    ///
    /// The object is first cut to `offset` (what the session acknowledged), so bytes a
    /// failed request or a crash left behind never count. Everything is durable on
    /// return. On a throw the object is cut back to `offset` and the hasher holds an
    /// unknown prefix: discard it.
    ///
    /// - Returns: the number of bytes appended.
    public func appendToUpload(
        _ id: UploadID,
        from body: some AsyncSequence<ByteBuffer, any Error>,
        hasher: ContentHasher,
        startingAt offset: Int64
    ) async throws -> Int64 {
        // Where appending rewrites the object (S3), a request that follows enough bytes
        // writes a piece of its own, so they are never copied again (see `placeUpload`).
        var (target, truncation) = (Self.path(forUpload: id), offset)
        if offset >= Self.pieceThreshold && driver.appendRewritesObject {
            (target, truncation) = (Self.piecePath(id, offset: offset), 0)
            // Pieces that a failed or crashed request left past the acknowledged offset.
            for piece in try await pieces(of: id) where piece.offset > offset { try await driver.delete(piece.path) }
        }
        let appender = try await driver.appender(for: target, truncatingTo: truncation)
        let appended: Int64
        do {
            appended = try await stream(body, hasher: hasher) { try await appender.append($0) }.count
            try await appender.sync()
            try await appender.close()
        } catch {
            try? await appender.close()
            // Give back what the failed request wrote (it matters on a full disk); the
            // next request would cut it off anyway.
            try? await driver.appender(for: target, truncatingTo: truncation).close()
            throw error
        }
        return appended
    }

    /// Writes a blob whose digest came with its bytes (the body of a monolithic upload
    /// that has nothing before it) toward its own address, hashing as it goes. Nothing is
    /// visible there before `BlobWrite.place()`, which the caller calls once the digest is
    /// verified and the blob pinned. Meanwhile the bytes wait in the upload's temporary
    /// object where a move is a rename, or unseen at the blob's own key on S3, so that
    /// placing them copies nothing; a body shorter than a batch waits in memory and is
    /// written by `place()` in one step (`StorageDriver.writeWhole`). On a throw nothing is
    /// left behind, and the hasher holds an unknown prefix: discard it.
    public func writeBlob(
        _ digest: Digest,
        staging id: UploadID,
        from body: some AsyncSequence<ByteBuffer, any Error>,
        hasher: ContentHasher
    ) async throws -> BlobWrite {
        var writer: (any PlacingWriter)?
        do {
            let streamed = try await stream(body, hasher: hasher, holdingShortBody: true) { batch in
                if writer == nil { writer = try await driver.placingWriter(to: Self.path(for: digest), staging: Self.path(forUpload: id)) }
                try await writer!.append(batch)
            }
            let pending: BlobWrite.Pending = writer.map { .streamed($0) } ?? .whole(streamed.heldBack ?? ByteBuffer())
            return BlobWrite(store: self, digest: digest, staging: id, pending: pending, size: streamed.count)
        } catch {
            if let writer { await BlobWrite(store: self, digest: digest, staging: id, pending: .streamed(writer), size: 0).abandon() }
            throw error
        }
    }

    /// Hands `body` to `write` in batches of `batchSize` and hashes each batch while the
    /// driver writes it (drivers write behind their caller, see `StorageAppender.append`).
    /// With `holdingShortBody`, a body that ends before a batch is full is not written but
    /// returned (hashed).
    private func stream(
        _ body: some AsyncSequence<ByteBuffer, any Error>,
        hasher: ContentHasher,
        holdingShortBody: Bool = false,
        into write: (ByteBuffer) async throws -> Void
    ) async throws -> (count: Int64, heldBack: ByteBuffer?) {
        var count: Int64 = 0
        var batch = ByteBuffer()
        var sentAny = false
        func send(_ buffer: ByteBuffer) async throws {
            sentAny = true
            try await write(buffer)
            hasher.update(buffer)
        }
        for try await var chunk in body {
            count += Int64(chunk.readableBytes)
            if batch.readableBytes == 0 && chunk.readableBytes >= batchSize {
                try await send(chunk)
                continue
            }
            batch.writeBuffer(&chunk)
            if batch.readableBytes >= batchSize {
                try await send(batch)
                batch = ByteBuffer()
            }
        }
        if holdingShortBody && !sentAny {
            hasher.update(batch)
            return (count, batch)
        }
        if batch.readableBytes > 0 { try await send(batch) }
        return (count, nil)
    }

    /// Verifies the upload's digest. When the expected digest uses another algorithm
    /// than the session hashed with, the bytes are hashed again with that one.
    ///
    /// - Returns: the size of the blob.
    /// - Throws: `BlobStoreError.digestMismatch` (the temporary object is left for the
    ///   caller to discard).
    public func verifyUpload(_ id: UploadID, hasher: ContentHasher, expected: Digest) async throws -> Int64 {
        let verifier = hasher.algorithm == expected.algorithm ? hasher : try await rehashUpload(id, algorithm: expected.algorithm)
        let actual = verifier.finalize()
        guard actual == expected else { throw BlobStoreError.digestMismatch(expected: expected, actual: actual) }
        return verifier.count
    }

    /// Moves a verified upload to its content address; durable on return.
    ///
    /// Always the upload's own bytes, even when the blob is stored already: bytes that a
    /// garbage collection may be deleting this very moment are never relied upon (the
    /// caller pins the blob first, see `MetadataStore.pinBlob`).
    public func placeUpload(_ id: UploadID, as digest: Digest, size: Int64) async throws {
        let source = Self.path(forUpload: id)
        let stored = try await driver.size(of: source)
        if let stored, stored < size, driver.appendRewritesObject {
            // A chunked upload kept as pieces: joined once, each byte copied once.
            let pieces = try await storedPieces(of: id).filter { $0.offset < size }
            guard Self.end(of: pieces) == size else {
                throw StorageError.io("upload \(id)'s pieces do not hold the \(size) bytes verified")
            }
            try await driver.concatenate(pieces.map(\.path), into: Self.path(for: digest))
        } else {
            if stored == nil && size == 0 {
                // An empty blob may be pushed without any body: there is no object to move yet.
                try await driver.appender(for: source, truncatingTo: 0).close()
            } else if stored != size {
                // The object is not what was verified (removed or cut underneath): never place it.
                throw StorageError.io("upload \(id) holds \(stored.map(String.init) ?? "nothing") bytes, not the \(size) verified")
            }
            try await driver.move(from: source, to: Self.path(for: digest))
        }
        // The bytes are in place: that is the commit. Removing the emptied upload directory
        // is tidying; when the store fails it now, the purge removes it later (an orphan),
        // and failing the request here would make the client resume an upload whose data
        // has already moved.
        try? await driver.delete(Self.uploadDirectory(id))
    }

    /// Deletes a blob's bytes (garbage collection, after its row was marked).
    public func deleteBlob(_ digest: Digest) async throws {
        try await driver.delete(Self.path(for: digest))
    }

    /// Removes an upload's temporary object.
    public func discardUpload(_ id: UploadID) async throws {
        try await driver.delete(Self.uploadDirectory(id))
    }

    /// The bytes an upload holds so far, or `nil` when it has no temporary object.
    public func uploadSize(_ id: UploadID) async throws -> Int64? {
        guard driver.appendRewritesObject else { return try await driver.size(of: Self.path(forUpload: id)) }
        return try await storedPieces(of: id).last.map { $0.offset + $0.size }
    }

    /// Hashes an upload's first `length` bytes (all when `nil`) from storage: used when a
    /// session is resumed after a restart, or verified with a second algorithm.
    public func rehashUpload(_ id: UploadID, algorithm: DigestAlgorithm, length: Int64? = nil) async throws -> ContentHasher {
        let hasher = ContentHasher(algorithm: algorithm)
        // Pieces start at `pieceThreshold`: a shorter prefix is all in the first object.
        var sources = [(path: Self.path(forUpload: id), range: length.map { 0..<$0 })]
        if driver.appendRewritesObject && length ?? .max >= Self.pieceThreshold {
            var pieces = try await storedPieces(of: id)
            let end = length ?? pieces.last.map { $0.offset + $0.size } ?? 0
            pieces = pieces.filter { $0.offset < end }
            guard let covered = Self.end(of: pieces), covered >= end else { throw StorageError.notFound(Self.path(forUpload: id)) }
            sources = pieces.map { piece in (piece.path, 0..<min(end - piece.offset, piece.size)) }
        }
        for source in sources {
            for try await chunk in try await driver.read(source.path, range: source.range) {
                hasher.update(chunk)
            }
        }
        return hasher
    }

    fileprivate static func uploadDirectory(_ id: UploadID) -> StoragePath {
        try! StoragePath(["uploads", id.value])
    }

    // MARK: Pieces of an upload (drivers whose appends rewrite the object)

    /// The object holding an upload's bytes from `offset` on: `data` for the first
    /// request, `data-<offset>` for each later one.
    private static func piecePath(_ id: UploadID, offset: Int64) -> StoragePath {
        offset == 0 ? path(forUpload: id) : try! StoragePath(["uploads", id.value, "data-\(offset)"])
    }

    /// An upload's pieces by offset, as listed (on S3 a listing shows writes in progress).
    private func pieces(of id: UploadID) async throws -> [(offset: Int64, path: StoragePath)] {
        try await driver.list(under: Self.uploadDirectory(id)).compactMap { path -> (offset: Int64, path: StoragePath)? in
            guard path.segments.count == 3, let name = path.segments.last else { return nil }
            if name == "data" { return (0, path) }
            guard name.hasPrefix("data-"), let offset = Int64(name.dropFirst(5)), offset > 0 else { return nil }
            return (offset, path)
        }.sorted { $0.offset < $1.offset }
    }

    /// The pieces that hold bytes, with their sizes.
    private func storedPieces(of id: UploadID) async throws -> [(offset: Int64, path: StoragePath, size: Int64)] {
        var stored: [(offset: Int64, path: StoragePath, size: Int64)] = []
        for piece in try await pieces(of: id) {
            if let size = try await driver.size(of: piece.path) { stored.append((piece.offset, piece.path, size)) }
        }
        return stored
    }

    /// Where `pieces` end, when they follow each other from 0 without a gap or an overlap.
    private static func end(of pieces: [(offset: Int64, path: StoragePath, size: Int64)]) -> Int64? {
        var end: Int64 = 0
        for piece in pieces {
            guard piece.offset == end else { return nil }
            end += piece.size
        }
        return end
    }
}

/// A blob written but not yet visible at its address (`BlobStore.writeBlob`).
public struct BlobWrite: Sendable {
    fileprivate enum Pending: Sendable {
        /// Written to a placing writer.
        case streamed(any PlacingWriter)
        /// Held in memory, written into place in one step.
        case whole(ByteBuffer)
    }
    fileprivate let store: BlobStore
    fileprivate let digest: Digest
    /// The upload whose path stages the bytes, where the driver stages them.
    fileprivate let staging: UploadID
    fileprivate let pending: Pending
    /// How many bytes were written.
    public let size: Int64

    /// Makes the blob visible at its address, durably: the commit of the upload. Call it
    /// only after the digest was verified and the blob pinned (as `placeUpload`).
    public func place() async throws {
        switch pending {
        case .streamed(let writer):
            try await writer.commit()
            // As in `placeUpload`: an upload directory left behind is the purge's to remove.
            await tidy(after: writer)
        case .whole(let bytes):
            try await store.driver.writeWhole(bytes, to: BlobStore.path(for: digest), staging: BlobStore.path(forUpload: staging))
        }
    }

    /// Gives the write up; the blob's address stays as it was.
    public func abandon() async {
        guard case .streamed(let writer) = pending else { return }
        try? await writer.abort()
        await tidy(after: writer)
    }

    /// Removes the upload's directory that a staging writer may have made.
    private func tidy(after writer: any PlacingWriter) async {
        if writer.usesStaging { try? await store.driver.delete(BlobStore.uploadDirectory(staging)) }
    }
}

/// A blob's bytes ready to send.
public enum BlobContent: Sendable {
    /// A local file: the HTTP layer sends it straight from the page cache.
    case file(path: String, range: Range<Int64>)
    case chunks(ByteChunks)
    /// A URL that serves the bytes (and ranges of them) without credentials for a while.
    case redirect(url: String)
}

public enum BlobStoreError: Error, Equatable, Sendable {
    case digestMismatch(expected: Digest, actual: Digest)
}
