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
    /// redirects), a local file for zero-copy, or chunks (always chunks with
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
        let appender = try await driver.appender(for: Self.path(forUpload: id), truncatingTo: offset)
        let appended: Int64
        do {
            appended = try await stream(body, hasher: hasher) { try await appender.append($0) }
            try await appender.sync()
            try await appender.close()
        } catch {
            try? await appender.close()
            // Give back what the failed request wrote (it matters on a full disk); the
            // next request would cut it off anyway.
            try? await driver.appender(for: Self.path(forUpload: id), truncatingTo: offset).close()
            throw error
        }
        return appended
    }

    /// Writes a blob whose digest came with its bytes (the body of a monolithic upload
    /// that has nothing before it) toward its own address, hashing as it goes. Nothing is
    /// visible there before `BlobWrite.place()`, which the caller calls once the digest is
    /// verified and the blob pinned. Meanwhile the bytes wait in the upload's temporary
    /// object where a move is a rename, or unseen at the blob's own key on S3, so that
    /// placing them copies nothing. On a throw nothing is left behind, and the hasher holds
    /// an unknown prefix: discard it.
    public func writeBlob(
        _ digest: Digest,
        staging id: UploadID,
        from body: some AsyncSequence<ByteBuffer, any Error>,
        hasher: ContentHasher
    ) async throws -> BlobWrite {
        let writer = try await driver.placingWriter(to: Self.path(for: digest), staging: Self.path(forUpload: id))
        do {
            let size = try await stream(body, hasher: hasher) { try await writer.append($0) }
            return BlobWrite(writer: writer, size: size, tidy: { [driver] in try? await driver.delete(Self.uploadDirectory(id)) })
        } catch {
            try? await writer.abort()
            throw error
        }
    }

    /// Hands `body` to `write` in batches of `batchSize` and hashes each batch while the
    /// driver writes it (drivers write behind their caller, see `StorageAppender.append`).
    /// - Returns: the number of bytes.
    private func stream(
        _ body: some AsyncSequence<ByteBuffer, any Error>,
        hasher: ContentHasher,
        into write: (ByteBuffer) async throws -> Void
    ) async throws -> Int64 {
        var count: Int64 = 0
        var batch = ByteBuffer()
        func send(_ buffer: ByteBuffer) async throws {
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
        if batch.readableBytes > 0 { try await send(batch) }
        return count
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
        if stored == nil && size == 0 {
            // An empty blob may be pushed without any body: there is no object to move yet.
            try await driver.appender(for: source, truncatingTo: 0).close()
        } else if stored != size {
            // The object is not what was verified (removed or cut underneath): never place it.
            throw StorageError.io("upload \(id) holds \(stored.map(String.init) ?? "nothing") bytes, not the \(size) verified")
        }
        try await driver.move(from: source, to: Self.path(for: digest))
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
        try await driver.size(of: Self.path(forUpload: id))
    }

    /// Hashes an upload's first `length` bytes (all when `nil`) from storage: used when a
    /// session is resumed after a restart, or verified with a second algorithm.
    public func rehashUpload(_ id: UploadID, algorithm: DigestAlgorithm, length: Int64? = nil) async throws -> ContentHasher {
        let hasher = ContentHasher(algorithm: algorithm)
        let range: Range<Int64>? = length.map { 0..<$0 }
        for try await chunk in try await driver.read(Self.path(forUpload: id), range: range) {
            hasher.update(chunk)
        }
        return hasher
    }

    private static func uploadDirectory(_ id: UploadID) -> StoragePath {
        try! StoragePath(["uploads", id.value])
    }
}

/// A blob written but not yet visible at its address (`BlobStore.writeBlob`).
public struct BlobWrite: Sendable {
    fileprivate let writer: any PlacingWriter
    /// How many bytes were written.
    public let size: Int64
    fileprivate let tidy: @Sendable () async -> Void

    /// Makes the blob visible at its address, durably: the commit of the upload. Call it
    /// only after the digest was verified and the blob pinned (as `placeUpload`).
    public func place() async throws {
        try await writer.commit()
        // As in `placeUpload`: an upload directory left behind is the purge's to remove.
        await tidy()
    }

    /// Gives the write up; the blob's address stays as it was.
    public func abandon() async {
        try? await writer.abort()
    }
}

/// A blob's bytes ready to send.
public enum BlobContent: Sendable {
    /// A local file: the HTTP layer sends it with `sendfile`.
    case file(path: String, range: Range<Int64>)
    case chunks(ByteChunks)
    /// A URL that serves the bytes (and ranges of them) without credentials for a while.
    case redirect(url: String)
}

public enum BlobStoreError: Error, Equatable, Sendable {
    case digestMismatch(expected: Digest, actual: Digest)
}
