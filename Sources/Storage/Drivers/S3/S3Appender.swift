import NIOCore

/// Appends one request's bytes to an S3 object.
///
/// S3 objects cannot grow in place, so an append is a multipart upload onto the same key:
/// the object's current bytes come first as server-side copied parts (`UploadPartCopy`,
/// no bytes travel through registryd), then the new bytes in parts of the configured size
/// streamed as they arrive, at most `maximumPartsInFlight` at a time. `sync()` completes
/// the upload, which replaces the object in one step; until then readers see the old
/// object, and `close()` without `sync()` aborts, so a failed request changes nothing.
/// An object still smaller than S3's minimum part size is read and re-sent instead, and
/// a small object without any part is written with one plain PUT.
///
/// A registry upload is one object under `uploads/`; each PATCH of a chunked upload is one
/// multipart upload, so the object is readable (for verification after a restart) between
/// requests and a resumed upload needs nothing but the object itself.
///
/// The same machinery writes a new object in place (`S3Driver.placingWriter`): a blob
/// whose digest came with its bytes goes straight to its own key as a multipart upload
/// that no reader sees until `sync()` completes it after the digest was verified, so the
/// store never copies it.
actor S3Appender: StorageAppender, PlacingWriter {
    private let driver: S3Driver
    private let key: String
    private let partSize: Int
    /// Bytes the object holds before this appender's first byte.
    private let baseSize: Int64
    private let existed: Bool
    /// A new object written in place: `close()` without `sync()` leaves no object behind.
    private let placing: Bool
    private var started = false
    private var upload: String?
    private var parts: [S3Part] = []
    private var inFlight: [Task<S3Part, any Error>] = []
    private var pending = ByteBuffer()
    private var appended: Int64 = 0
    private var finished = false

    private let maximumPartsInFlight = 2
    private static let maximumParts = 10_000

    /// Placing writes go to the destination's own key; nothing is staged.
    nonisolated var usesStaging: Bool { false }

    private init(driver: S3Driver, key: String, baseSize: Int64, existed: Bool, placing: Bool = false) {
        self.driver = driver
        self.key = key
        self.partSize = driver.configuration.partSize
        self.baseSize = baseSize
        self.existed = existed
        self.placing = placing
    }

    /// A new object at `key`, seen only once `sync()` (`commit()`) completes it. Multipart
    /// uploads already on the key are left alone: another request may be placing the same
    /// blob this moment (a crash's leftovers go with `abortAbandonedWrites`).
    static func placing(driver: S3Driver, key: String) -> S3Appender {
        S3Appender(driver: driver, key: key, baseSize: 0, existed: false, placing: true)
    }

    static func open(driver: S3Driver, key: String, truncatingTo length: Int64?) async throws -> S3Appender {
        // A multipart upload left on this key by a request that died cannot be completed
        // correctly any more (its base may have changed): abort it.
        for stale in try await driver.multipartUploads(prefix: key) where stale.key == key {
            try await driver.abortMultipartUpload(key: key, id: stale.id)
        }
        var size = try await driver.objectSize(key)
        if let length, let current = size, length < current {
            try await truncate(driver: driver, key: key, to: length)
            size = length
        }
        return S3Appender(driver: driver, key: key, baseSize: size ?? 0, existed: size != nil)
    }

    /// Rewrites the object as its first `length` bytes.
    private static func truncate(driver: S3Driver, key: String, to length: Int64) async throws {
        if length < Int64(S3Configuration.minimumPartSize) {
            try await driver.putObject(key, try await driver.readPrefix(of: key, length: length))
            return
        }
        let upload = try await driver.createMultipartUpload(key: key)
        do {
            let parts = try await driver.copyParts(from: key, length: length, into: key, upload: upload, firstPartNumber: 1)
            try await driver.completeMultipartUpload(key: key, id: upload, parts: parts, expectedSize: length)
        } catch {
            try? await driver.abortMultipartUpload(key: key, id: upload)
            throw error
        }
    }

    /// Callers see `StorageError` (a store that is away is `.unavailable`, answered 503),
    /// as from every driver call; these three run S3 calls of their own.
    private func mapped<T>(_ operation: String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            throw S3Driver.storageError(error, doing: "\(operation) \(key)")
        }
    }

    func append(_ buffer: ByteBuffer) async throws {
        try await mapped("append to") { try await appendUnmapped(buffer) }
    }

    func sync() async throws {
        try await mapped("complete") { try await syncUnmapped() }
    }

    func close() async throws {
        try await mapped("abort the append to") { try await closeUnmapped() }
    }

    func commit() async throws {
        try await sync()
    }

    func abort() async throws {
        try await close()
    }

    private func appendUnmapped(_ buffer: ByteBuffer) async throws {
        precondition(!finished, "append after sync or close")
        if !started { try await start() }
        var incoming = buffer
        appended += Int64(incoming.readableBytes)
        while incoming.readableBytes > 0 {
            // A whole part's room once the data is more than a small blob's worth, so a
            // part is gathered without reallocating on the way.
            if pending.capacity < partSize, pending.readableBytes + incoming.readableBytes > 1 << 20 { pending.reserveCapacity(partSize) }
            var slice = incoming.readSlice(length: min(partSize - pending.readableBytes, incoming.readableBytes))!
            pending.writeBuffer(&slice)
            if pending.readableBytes == partSize {
                let part = pending
                pending = ByteBuffer()
                try await send(part)
            }
        }
    }

    /// Brings in the object's current bytes: copied server-side as leading parts, or read
    /// into the first part when too small to be a part of their own.
    private func start() async throws {
        started = true
        guard baseSize > 0 else { return }
        if baseSize < Int64(S3Configuration.minimumPartSize) {
            pending = try await driver.readPrefix(of: key, length: baseSize)
            return
        }
        let upload = try await driver.createMultipartUpload(key: key)
        self.upload = upload
        parts = try await driver.copyParts(from: key, length: baseSize, into: key, upload: upload, firstPartNumber: 1)
    }

    private func send(_ part: ByteBuffer) async throws {
        let upload: String
        if let existing = self.upload {
            upload = existing
        } else {
            upload = try await driver.createMultipartUpload(key: key)
            self.upload = upload
        }
        let number = parts.count + inFlight.count + 1
        guard number <= Self.maximumParts else {
            throw StorageError.io("object \(key) needs more than \(Self.maximumParts) parts: raise the S3 part size")
        }
        while inFlight.count >= maximumPartsInFlight {
            parts.append(try await inFlight.removeFirst().value)
        }
        let driver = self.driver, key = self.key
        inFlight.append(Task { try await driver.uploadPart(key: key, upload: upload, number: number, body: part) })
    }

    private func syncUnmapped() async throws {
        guard !finished else { return }
        if upload == nil {
            // Small enough for one PUT (or nothing new at all).
            if appended > 0 || !existed { try await driver.putObject(key, pending) }
            pending = ByteBuffer()
        } else {
            if pending.readableBytes > 0 {
                let last = pending
                pending = ByteBuffer()
                try await send(last)
            }
            while !inFlight.isEmpty { parts.append(try await inFlight.removeFirst().value) }
            try await driver.completeMultipartUpload(key: key, id: upload!, parts: parts, expectedSize: baseSize + appended)
        }
        finished = true
    }

    private func closeUnmapped() async throws {
        guard !finished else { return }
        finished = true
        for task in inFlight { task.cancel() }
        for task in inFlight { _ = try? await task.value }
        inFlight = []
        if let upload {
            try await driver.abortMultipartUpload(key: key, id: upload)
        } else if !existed && appended == 0 && !placing {
            // Opening creates a missing object, as a file would be created.
            try await driver.putObject(key, ByteBuffer())
        }
    }
}
