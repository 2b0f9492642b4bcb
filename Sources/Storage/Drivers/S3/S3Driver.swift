import AsyncHTTPClient
import FoundationEssentials
import NIOCore
import NIOHTTP1

/// Keeps objects in an S3 bucket (AWS, Ceph radosgw, MinIO, …).
///
/// ```swift
/// let driver = S3Driver(
///     configuration: try S3Configuration(
///         endpoint: "http://127.0.0.1:7480",
///         bucket: "registry", credentials: credentials))
/// try await driver.prepare()  // creates the bucket when missing
/// ```
///
/// Objects are the keys `<prefix>/<path>`. Between requests every object, an upload in
/// progress included, is a plain readable S3 object; an appender turns one request's
/// bytes into a multipart upload that starts with a server-side copy of what the object
/// already holds and replaces it only when `sync()` completes it (see `S3Appender`).
/// A crash mid-request leaves an incomplete multipart upload that no object shows: the
/// next appender on that key, deleting the upload, and `abortAbandonedWrites` abort it.
/// A blob whose digest came with its bytes is written to its own key the same way,
/// unseen until verified, so it is never copied (`placingWriter`).
public final class S3Driver: StorageDriver {
    public let name = "s3"
    public let configuration: S3Configuration
    let client: S3Client
    /// S3 caps a single CopyObject and a single UploadPartCopy at 5 GiB (lowered only
    /// by tests, to exercise multipart copies on small objects).
    let maximumCopySize: Int64

    public convenience init(configuration: S3Configuration) {
        self.init(configuration: configuration, maximumCopySize: 5 << 30)
    }

    init(configuration: S3Configuration, maximumCopySize: Int64) {
        self.configuration = configuration
        self.client = S3Client(configuration: configuration)
        self.maximumCopySize = maximumCopySize
    }

    /// A driver whose bucket is known to exist (see `prepare()`).
    public static func prepared(_ configuration: S3Configuration) async throws -> S3Driver {
        let driver = S3Driver(configuration: configuration)
        try await driver.prepare()
        return driver
    }

    /// Creates the bucket when it does not exist yet; fails clearly on bad credentials
    /// or an unreachable endpoint, so the daemon stops at start rather than at first push.
    public func prepare() async throws {
        do {
            let head = try await client.send(S3Request(method: .HEAD, key: nil))
            guard head.status == .notFound else { return }
            var body: ByteBuffer?
            if configuration.region != "us-east-1" {
                body = ByteBuffer(
                    string:
                        "<CreateBucketConfiguration><LocationConstraint>\(configuration.region)</LocationConstraint></CreateBucketConfiguration>"
                )
            }
            _ = try await client.send(S3Request(method: .PUT, key: nil, body: body))
        } catch {
            throw Self.storageError(error, doing: "open bucket \(configuration.bucket)")
        }
    }

    public func size(of path: StoragePath) async throws -> Int64? {
        do {
            return try await objectSize(key(path))
        } catch {
            throw Self.storageError(error, doing: "HEAD \(path)")
        }
    }

    public func read(_ path: StoragePath, range: Range<Int64>?) async throws -> ByteChunks {
        if let range, range.isEmpty {
            guard let size = try await size(of: path) else { throw StorageError.notFound(path) }
            guard range.lowerBound >= 0, range.upperBound <= size else { throw StorageError.invalidRange }
            return ByteChunks { nil }
        }
        if let range, range.lowerBound < 0 { throw StorageError.invalidRange }
        let reader = ObjectReader(driver: self, path: path, key: key(path), range: range)
        try await reader.open(from: range?.lowerBound ?? 0)
        return ByteChunks { try await reader.next() }
    }

    public func appender(for path: StoragePath, truncatingTo length: Int64?) async throws -> any StorageAppender {
        do {
            return try await S3Appender.open(driver: self, key: key(path), truncatingTo: length)
        } catch {
            throw Self.storageError(error, doing: "open \(path) for appending")
        }
    }

    public func move(from source: StoragePath, to destination: StoragePath) async throws {
        do {
            guard let size = try await objectSize(key(source)) else { throw StorageError.notFound(source) }
            try await copy(from: key(source), to: key(destination), size: size)
            _ = try await client.send(S3Request(method: .DELETE, key: key(source)))
        } catch {
            throw Self.storageError(error, doing: "move \(source) to \(destination)")
        }
    }

    public func placingWriter(to destination: StoragePath, staging: StoragePath) async throws -> any PlacingWriter {
        S3Appender.placing(driver: self, key: key(destination))
    }

    /// One PUT: an object appears whole or not at all, so nothing needs staging.
    public func writeWhole(_ bytes: ByteBuffer, to destination: StoragePath, staging: StoragePath) async throws {
        do {
            try await putObject(key(destination), bytes)
        } catch {
            throw Self.storageError(error, doing: "write \(destination)")
        }
    }

    /// Objects cannot grow: an append rewrites the object inside the store (`S3Appender`).
    public var appendRewritesObject: Bool { true }

    /// One multipart upload onto `destination` whose parts are the sources' bytes: copied
    /// inside the store (`UploadPartCopy`) where a source has at least a part's worth
    /// left, read and sent with their neighbours' bytes where not (every part but the last
    /// must be 5 MiB at least). Each byte is copied once; nothing is visible at the
    /// destination before the upload completes.
    public func concatenate(_ sources: [StoragePath], into destination: StoragePath) async throws {
        do {
            var pieces: [(key: String, size: Int64)] = []
            for source in sources {
                guard let size = try await objectSize(key(source)) else { throw StorageError.notFound(source) }
                pieces.append((key(source), size))
            }
            try await join(pieces, into: key(destination))
        } catch {
            throw Self.storageError(error, doing: "join \(sources.count) objects into \(destination)")
        }
    }

    private func join(_ pieces: [(key: String, size: Int64)], into destination: String) async throws {
        let minimum = Int64(S3Configuration.minimumPartSize)
        var upload: String?
        var parts: [S3Part] = []
        // Bytes read from small pieces (or the start of a large one) waiting to make a part.
        var pending = ByteBuffer()
        func uploadID() async throws -> String {
            if let upload { return upload }
            let created = try await createMultipartUpload(key: destination)
            upload = created
            return created
        }
        do {
            for piece in pieces {
                var offset: Int64 = 0
                if pending.readableBytes > 0 {
                    // Fill the waiting bytes up to a part from the start of this piece.
                    offset = min(piece.size, minimum - Int64(pending.readableBytes))
                    var head = try await readRange(of: piece.key, 0..<offset)
                    pending.writeBuffer(&head)
                    if pending.readableBytes >= minimum {
                        parts.append(try await uploadPart(key: destination, upload: uploadID(), number: parts.count + 1, body: pending))
                        pending = ByteBuffer()
                    }
                }
                if piece.size - offset >= minimum {
                    parts += try await copyParts(
                        from: piece.key, range: offset..<piece.size, into: destination, upload: uploadID(), firstPartNumber: parts.count + 1
                    )
                } else if piece.size > offset {
                    var rest = try await readRange(of: piece.key, offset..<piece.size)
                    pending.writeBuffer(&rest)
                }
            }
            let total = pieces.reduce(0) { $0 + $1.size }
            guard let upload else {
                // Less than a part in all: one plain PUT.
                try await putObject(destination, pending)
                return
            }
            if pending.readableBytes > 0 {
                parts.append(try await uploadPart(key: destination, upload: upload, number: parts.count + 1, body: pending))
            }
            try await completeMultipartUpload(key: destination, id: upload, parts: parts, expectedSize: total)
        } catch {
            if let upload { try? await abortMultipartUpload(key: destination, id: upload) }
            throw error
        }
    }

    /// Under a prefix (an upload's directory) multipart uploads are aborted with the
    /// objects; on an object's own key they are left to their writer: a blob being
    /// collected may be placed again this moment by a push (`placingWriter`).
    public func delete(_ path: StoragePath) async throws {
        do {
            let exact = key(path)
            for object in [exact] + (try await listKeys(prefix: exact + "/")).map(\.key) {
                _ = try await client.send(S3Request(method: .DELETE, key: object))
            }
            for upload in try await multipartUploads(prefix: exact + "/") {
                try await abortMultipartUpload(key: upload.key, id: upload.id)
            }
        } catch {
            throw Self.storageError(error, doing: "delete \(path)")
        }
    }

    public func list(under prefix: StoragePath) async throws -> [StoragePath] {
        do {
            let base = key(prefix) + "/"
            var keys = Set(try await listKeys(prefix: base).map(\.key))
            // An upload whose first request is still running (or crashed) is only a
            // multipart upload: the purge must see it too.
            for upload in try await multipartUploads(prefix: base) { keys.insert(upload.key) }
            return keys.compactMap(path(fromKey:))
        } catch {
            throw Self.storageError(error, doing: "list \(prefix)")
        }
    }

    public func localFile(for path: StoragePath) -> String? { nil }

    public func downloadURL(for path: StoragePath) -> String? {
        configuration.redirect ? client.presignedURL(key: key(path), expires: configuration.redirectExpiry) : nil
    }

    public func abortAbandonedWrites(olderThan age: Duration, now: Date) async throws -> Int {
        do {
            var aborted = 0
            let cutoff = now.addingTimeInterval(-Double(age.components.seconds))
            let base = configuration.prefix.isEmpty ? "" : configuration.prefix + "/"
            for upload in try await multipartUploads(prefix: base) where upload.initiated.map({ $0 < cutoff }) ?? false {
                try await abortMultipartUpload(key: upload.key, id: upload.id)
                aborted += 1
            }
            return aborted
        } catch {
            throw Self.storageError(error, doing: "abort abandoned multipart uploads")
        }
    }

    // MARK: Keys

    func key(_ path: StoragePath) -> String {
        configuration.prefix.isEmpty ? path.description : configuration.prefix + "/" + path.description
    }

    private func path(fromKey key: String) -> StoragePath? {
        let base = configuration.prefix.isEmpty ? "" : configuration.prefix + "/"
        guard key.hasPrefix(base) else { return nil }
        return try? StoragePath(String(key.dropFirst(base.count)))
    }

    // MARK: S3 calls

    func objectSize(_ key: String) async throws -> Int64? {
        let response = try await client.send(S3Request(method: .HEAD, key: key))
        guard response.status != .notFound else { return nil }
        guard let length = response.headers.first(name: "content-length").flatMap({ Int64($0) }) else {
            throw StorageError.io("S3 HEAD \(key) answered without a Content-Length")
        }
        return length
    }

    /// The first `length` bytes of an object, read whole: only for pieces below the
    /// minimum part size.
    func readPrefix(of key: String, length: Int64) async throws -> ByteBuffer {
        try await readRange(of: key, 0..<length)
    }

    /// `range` of an object, read whole: only for pieces below the minimum part size.
    func readRange(of key: String, _ range: Range<Int64>) async throws -> ByteBuffer {
        guard !range.isEmpty else { return ByteBuffer() }
        let response = try await client.send(
            S3Request(method: .GET, key: key, headers: [("range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)")]))
        guard response.body.readableBytes == range.count else {
            throw StorageError.io("S3 GET \(key) returned \(response.body.readableBytes) bytes, not \(range.count)")
        }
        return response.body
    }

    func putObject(_ key: String, _ body: ByteBuffer) async throws {
        _ = try await client.send(S3Request(method: .PUT, key: key, body: body))
    }

    /// Server-side copy; objects over 5 GiB go through a multipart copy.
    func copy(from source: String, to destination: String, size: Int64) async throws {
        if size <= maximumCopySize {
            _ = try await client.send(S3Request(method: .PUT, key: destination, headers: [("x-amz-copy-source", copySource(source))]))
            return
        }
        let upload = try await createMultipartUpload(key: destination)
        do {
            let parts = try await copyParts(from: source, length: size, into: destination, upload: upload, firstPartNumber: 1)
            try await completeMultipartUpload(key: destination, id: upload, parts: parts, expectedSize: size)
        } catch {
            try? await abortMultipartUpload(key: destination, id: upload)
            throw error
        }
    }

    /// Copies `[0, length)` of `source` into parts of a multipart upload.
    func copyParts(from source: String, length: Int64, into key: String, upload: String, firstPartNumber: Int) async throws -> [S3Part] {
        try await copyParts(from: source, range: 0..<length, into: key, upload: upload, firstPartNumber: firstPartNumber)
    }

    /// Copies `range` of `source` into parts of a multipart upload: equal pieces of at most
    /// 5 GiB, so each is at least 2.5 GiB when there are several, and the whole range when
    /// there is one (the range is at least the minimum part size).
    func copyParts(from source: String, range: Range<Int64>, into key: String, upload: String, firstPartNumber: Int) async throws
        -> [S3Part]
    {
        let length = Int64(range.count)
        let count = (length + maximumCopySize - 1) / maximumCopySize
        let piece = (length + count - 1) / count
        var parts: [S3Part] = []
        var offset = range.lowerBound
        while offset < range.upperBound {
            let end = min(offset + piece, range.upperBound)
            let number = firstPartNumber + parts.count
            let response = try await client.send(
                S3Request(
                    method: .PUT, key: key, query: [("partNumber", String(number)), ("uploadId", upload)],
                    headers: [("x-amz-copy-source", copySource(source)), ("x-amz-copy-source-range", "bytes=\(offset)-\(end - 1)")]
                ))
            guard let etag = try response.xml()["ETag"] else { throw StorageError.io("S3 UploadPartCopy answered without an ETag") }
            parts.append(S3Part(number: number, etag: etag, size: end - offset))
            offset = end
        }
        return parts
    }

    private func copySource(_ key: String) -> String {
        "/" + configuration.bucket + "/" + SignatureV4.encode(key, keepingSlashes: true)
    }

    func createMultipartUpload(key: String) async throws -> String {
        let response = try await client.send(S3Request(method: .POST, key: key, query: [("uploads", "")]))
        guard let id = try response.xml()["UploadId"], !id.isEmpty else {
            throw StorageError.io("S3 CreateMultipartUpload answered without an UploadId")
        }
        return id
    }

    func uploadPart(key: String, upload: String, number: Int, body: ByteBuffer) async throws -> S3Part {
        let response = try await client.send(
            S3Request(
                method: .PUT, key: key, query: [("partNumber", String(number)), ("uploadId", upload)], body: body
            ))
        guard let etag = response.headers.first(name: "etag") else { throw StorageError.io("S3 UploadPart answered without an ETag") }
        return S3Part(number: number, etag: etag, size: Int64(body.readableBytes))
    }

    func completeMultipartUpload(key: String, id: String, parts: [S3Part], expectedSize: Int64) async throws {
        var xml = "<CompleteMultipartUpload>"
        for part in parts.sorted(by: { $0.number < $1.number }) {
            xml += "<Part><PartNumber>\(part.number)</PartNumber><ETag>\(S3XMLElement.escape(part.etag))</ETag></Part>"
        }
        xml += "</CompleteMultipartUpload>"
        do {
            _ = try await client.send(S3Request(method: .POST, key: key, query: [("uploadId", id)], body: ByteBuffer(string: xml)))
        } catch let error as S3ServiceError where error.code == "NoSuchUpload" {
            // A retried completion whose first attempt landed: the object is there.
            guard try await objectSize(key) == expectedSize else { throw error }
        }
    }

    func abortMultipartUpload(key: String, id: String) async throws {
        do {
            _ = try await client.send(S3Request(method: .DELETE, key: key, query: [("uploadId", id)]))
        } catch let error as S3ServiceError where error.code == "NoSuchUpload" {}
    }

    struct MultipartUpload {
        let key: String
        let id: String
        let initiated: Date?
    }

    func multipartUploads(prefix: String) async throws -> [MultipartUpload] {
        var uploads: [MultipartUpload] = []
        var markers: [(String, String)] = []
        while true {
            let response = try await client.send(S3Request(method: .GET, key: nil, query: [("uploads", ""), ("prefix", prefix)] + markers))
            let result = try response.xml()
            for upload in result.children("Upload") {
                guard let key = upload["Key"], let id = upload["UploadId"] else { continue }
                uploads.append(MultipartUpload(key: key, id: id, initiated: upload["Initiated"].flatMap(Self.parseTimestamp)))
            }
            guard result["IsTruncated"] == "true", let key = result["NextKeyMarker"], let id = result["NextUploadIdMarker"] else {
                return uploads
            }
            markers = [("key-marker", key), ("upload-id-marker", id)]
        }
    }

    func listKeys(prefix: String) async throws -> [(key: String, size: Int64)] {
        var objects: [(key: String, size: Int64)] = []
        var continuation: [(String, String)] = []
        while true {
            let response = try await client.send(
                S3Request(method: .GET, key: nil, query: [("list-type", "2"), ("prefix", prefix)] + continuation))
            let result = try response.xml()
            for content in result.children("Contents") {
                guard let key = content["Key"] else { continue }
                objects.append((key, content["Size"].flatMap { Int64($0) } ?? 0))
            }
            guard result["IsTruncated"] == "true", let token = result["NextContinuationToken"] else { return objects }
            continuation = [("continuation-token", token)]
        }
    }

    /// `2026-11-29T08:26:43.719Z` (S3's timestamps in listings).
    static func parseTimestamp(_ text: String) -> Date? {
        if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) { return date }
        return try? Date.ISO8601FormatStyle().parse(text)
    }

    /// What a caller of the driver sees: `StorageError`, with the store's own error kept.
    static func storageError(_ error: any Error, doing operation: String) -> any Error {
        switch error {
        case let error as StorageError: error
        case is CancellationError: error
        case let error as S3ServiceError where error.code == "InvalidRange": StorageError.invalidRange
        case let error as S3ServiceError where error.isRetryable:
            StorageError.unavailable(StorageFailure("S3 \(operation)", underlying: error))
        case is S3TransportError: StorageError.unavailable(StorageFailure("S3 \(operation)", underlying: error))
        default: StorageError.io(StorageFailure("S3 \(operation)", underlying: error))
        }
    }
}

struct S3Part: Sendable {
    let number: Int
    let etag: String
    let size: Int64
}

/// Streams one object's bytes; when the connection breaks mid-way the rest is asked for
/// again from where it stopped (objects never change once written), a few times at most.
private final class ObjectReader: @unchecked Sendable {
    // One consumer at a time (the `ByteChunks` contract), so no lock.
    private let driver: S3Driver
    private let path: StoragePath
    private let key: String
    private let end: Int64?
    private var offset: Int64 = 0
    private var iterator: HTTPClientResponse.Body.AsyncIterator?
    private var resumesLeft = 3

    init(driver: S3Driver, path: StoragePath, key: String, range: Range<Int64>?) {
        self.driver = driver
        self.path = path
        self.key = key
        self.end = range?.upperBound
    }

    func open(from start: Int64) async throws {
        offset = start
        var headers: [(String, String)] = []
        if start > 0 || end != nil { headers.append(("range", "bytes=\(start)-\(end.map { String($0 - 1) } ?? "")")) }
        do {
            let response = try await driver.client.open(S3Request(method: .GET, key: key, headers: headers))
            if let end {
                // 206 with `bytes a-b/total`: a range that runs past the end is refused
                // rather than silently shortened.
                let total = response.headers.first(name: "content-range").flatMap { $0.split(separator: "/").last }.flatMap { Int64($0) }
                guard let total, total >= end else { throw StorageError.invalidRange }
            }
            iterator = response.body.makeAsyncIterator()
        } catch let error as S3ServiceError where error.status == 404 {
            throw StorageError.notFound(path)
        } catch {
            throw S3Driver.storageError(error, doing: "GET \(path)")
        }
    }

    func next() async throws -> ByteBuffer? {
        if let end, offset >= end { return nil }
        do {
            guard var current = iterator else { return nil }
            let chunk = try await current.next()
            iterator = current
            guard let chunk else {
                if let end, offset < end { throw StorageError.io("S3 GET \(path) ended \(end - offset) bytes early") }
                return nil
            }
            offset += Int64(chunk.readableBytes)
            return chunk
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            guard resumesLeft > 0 else { throw S3Driver.storageError(error, doing: "GET \(path)") }
            resumesLeft -= 1
            try await open(from: offset)
            return try await next()
        }
    }
}
