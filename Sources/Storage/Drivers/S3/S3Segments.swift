import NIOCore

/// Appended objects on S3 as segments: each appender writes an object of its own,
/// `KEY.seg-OFFSET`, and the object at `KEY` is its segments in order.
///
/// S3 objects cannot grow. Appending by rewriting the object (a multipart upload that
/// copies the current bytes server-side, then adds the new ones) copies every earlier byte
/// again on every append: a 1 GiB blob pushed in 64 MiB chunks made the store copy 7.5 GiB.
/// With segments an append copies nothing, and `move` (a finished upload placed as its
/// blob) joins the segments with one multipart upload: segments of at least the minimum
/// part size are copied server-side, smaller ones are read and sent as parts with their
/// neighbours. Each earlier byte is copied once in all.
///
/// Segments are what `append` writes; `move` only ever writes plain objects, so blobs are
/// plain. An object written before segments existed (an upload in progress across an
/// upgrade) stays plain and is appended to in place, as it was.
struct S3Segment: Sendable {
    let key: String
    let offset: Int64
    let size: Int64
    var end: Int64 { offset + size }
}

extension S3Driver {
    static let segmentSeparator = ".seg-"
    private static let offsetDigits = 20

    /// `KEY.seg-OFFSET`, the offset zero-padded so that the store lists segments in order.
    func segmentKey(_ key: String, at offset: Int64) -> String {
        let digits = String(offset)
        return key + Self.segmentSeparator + String(repeating: "0", count: max(0, Self.offsetDigits - digits.count)) + digits
    }

    /// The object a segment key belongs to, or `nil` for any other key.
    static func objectKey(ofSegment key: String) -> String? {
        let bytes = Array(key.utf8)
        let suffix = segmentSeparator.utf8.count + offsetDigits
        guard bytes.count > suffix else { return nil }
        let separatorStart = bytes.count - suffix
        guard bytes[separatorStart..<(bytes.count - offsetDigits)].elementsEqual(segmentSeparator.utf8),
            bytes[(bytes.count - offsetDigits)...].allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else { return nil }
        return String(decoding: bytes[..<separatorStart], as: UTF8.self)
    }

    /// The segments of the object at `key` in order, or `nil` when it has none.
    /// - Throws: `StorageError.io` when they do not join up (a gap or an overlap).
    func segments(of key: String) async throws -> [S3Segment]? {
        var found: [S3Segment] = []
        for object in try await listKeys(prefix: key + Self.segmentSeparator) where Self.objectKey(ofSegment: object.key) == key {
            guard let offset = Int64(object.key.suffix(Self.offsetDigits)) else { continue }
            found.append(S3Segment(key: object.key, offset: offset, size: object.size))
        }
        guard !found.isEmpty else { return nil }
        found.sort { $0.offset < $1.offset }
        var end: Int64 = 0
        for segment in found {
            guard segment.offset == end else { throw StorageError.io("the segments of \(key) do not join at byte \(end)") }
            end = segment.end
        }
        return found
    }

    /// An appender for the object at `key`: a new segment after the existing ones, which are
    /// first cut to `length` when given (later segments deleted, the one across it cut).
    /// Three requests before the first byte: the plain object's HEAD, the segments' and
    /// the multipart uploads' listings.
    func segmentAppender(key: String, truncatingTo length: Int64?) async throws -> any StorageAppender {
        if try await objectSize(key) != nil {
            return try await S3Appender.open(driver: self, key: key, truncatingTo: length)
        }
        var segments = try await segments(of: key) ?? []
        var end = segments.last?.end ?? 0
        if let length, length < end {
            for segment in segments.reversed() where segment.end > length {
                if segment.offset >= length {
                    _ = try await client.send(S3Request(method: .DELETE, key: segment.key))
                } else {
                    try await S3Appender.truncate(driver: self, key: segment.key, to: length - segment.offset)
                }
            }
            segments.removeAll { $0.offset >= length }
            end = length
        }
        let segmentKey = segmentKey(key, at: end)
        // Multipart uploads that requests which died left on the new segment's key, or on the
        // plain object (a request of a registryd from before segments): they can never be
        // completed correctly now.
        for stale in try await multipartUploads(prefix: key) where stale.key == key || stale.key == segmentKey {
            try await abortMultipartUpload(key: stale.key, id: stale.id)
        }
        // An empty segment at the end (a request that sent nothing) is taken over.
        let existed = segments.last.map { $0.key == segmentKey } ?? false
        return S3Appender.segment(driver: self, key: segmentKey, existed: existed)
    }

    /// Writes the object made of `segments` as the plain object `destination`.
    func join(_ segments: [S3Segment], into destination: String) async throws {
        let total = segments.last?.end ?? 0
        let minimum = Int64(S3Configuration.minimumPartSize)
        if total < minimum {
            var whole = ByteBuffer()
            for segment in segments where segment.size > 0 {
                var bytes = try await readRange(of: segment.key, 0..<segment.size)
                whole.writeBuffer(&bytes)
            }
            try await putObject(destination, whole)
            return
        }
        let upload = try await createMultipartUpload(key: destination)
        do {
            var parts: [S3Part] = []
            // Bytes of small segments, read, until they make up a part (every part but the
            // last must be at least the minimum size).
            var gathered = ByteBuffer()
            for segment in segments where segment.size > 0 {
                var start: Int64 = 0
                if gathered.readableBytes > 0 {
                    start = min(minimum - Int64(gathered.readableBytes), segment.size)
                    var bytes = try await readRange(of: segment.key, 0..<start)
                    gathered.writeBuffer(&bytes)
                    if gathered.readableBytes >= minimum {
                        parts.append(try await uploadPart(key: destination, upload: upload, number: parts.count + 1, body: gathered))
                        gathered = ByteBuffer()
                    }
                }
                if segment.size - start >= minimum {
                    parts += try await copyParts(
                        from: segment.key, range: start..<segment.size, into: destination, upload: upload, firstPartNumber: parts.count + 1)
                } else if start < segment.size {
                    var bytes = try await readRange(of: segment.key, start..<segment.size)
                    gathered.writeBuffer(&bytes)
                }
            }
            if gathered.readableBytes > 0 {
                parts.append(try await uploadPart(key: destination, upload: upload, number: parts.count + 1, body: gathered))
            }
            try await completeMultipartUpload(key: destination, id: upload, parts: parts, expectedSize: total)
        } catch {
            try? await abortMultipartUpload(key: destination, id: upload)
            throw error
        }
    }

    /// The bytes of `range` of the object made of `segments`, segment after segment.
    func read(_ segments: [S3Segment], of path: StoragePath, range: Range<Int64>) -> ByteChunks {
        var pieces: [(key: String, range: Range<Int64>)] = []
        for segment in segments {
            let lower = max(range.lowerBound, segment.offset)
            let upper = min(range.upperBound, segment.end)
            if lower < upper { pieces.append((segment.key, (lower - segment.offset)..<(upper - segment.offset))) }
        }
        let reader = SegmentsReader(driver: self, path: path, pieces: pieces)
        return ByteChunks { try await reader.next() }
    }
}

/// Streams pieces of several objects one after the other.
private final class SegmentsReader: @unchecked Sendable {
    // One consumer at a time (the `ByteChunks` contract), so no lock.
    private let driver: S3Driver
    private let path: StoragePath
    private let pieces: [(key: String, range: Range<Int64>)]
    private var upcoming = 0
    private var current: ObjectReader?

    init(driver: S3Driver, path: StoragePath, pieces: [(key: String, range: Range<Int64>)]) {
        self.driver = driver
        self.path = path
        self.pieces = pieces
    }

    func next() async throws -> ByteBuffer? {
        while true {
            if let current, let chunk = try await current.next() { return chunk }
            guard upcoming < pieces.count else { return nil }
            let piece = pieces[upcoming]
            upcoming += 1
            let reader = ObjectReader(driver: driver, path: path, key: piece.key, range: piece.range)
            try await reader.open(from: piece.range.lowerBound)
            current = reader
        }
    }
}
