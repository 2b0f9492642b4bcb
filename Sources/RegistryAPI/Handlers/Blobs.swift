import HTTPTransport
import NIOHTTP1
import OCI
import Storage

/// `/v2/<name>/blobs/<digest>` (spec: "Pulling blobs", "Deleting Blobs").
extension Registry {
    func getBlob(_ name: RepositoryName, _ digestText: String, _ context: RequestContext) async throws -> HTTPResponse {
        let digest = try Digest.fromRequest(digestText)
        try await authorize(.pull, on: name, context)
        // Visibility is per repository (zot CVE-2024-39897): bytes stored for another
        // repository do not make the blob exist here.
        guard let size = try await meta({ try await metadata.blobSize(digest, in: name) }) else {
            throw RegistryError.blobUnknown(digest.description)
        }
        var headers = Self.blobHeaders(digest)

        var status = HTTPResponseStatus.ok
        var range: Range<Int64> = 0..<size
        if let rangeHeader = context.request.headers.first(name: "Range") {
            guard let requested = ByteRange.parse(rangeHeader, size: size) else {
                throw RegistryError(
                    .rangeInvalid, status: .rangeNotSatisfiable, "the requested range cannot be served",
                    detail: String(rangeHeader.prefix(200))
                )
                .with(header: "Content-Range", "bytes */\(size)")
            }
            range = requested
            status = .partialContent
            headers.add(name: "Content-Range", value: "bytes \(range.lowerBound)-\(range.upperBound - 1)/\(size)")
        }
        headers.add(name: "Content-Length", value: String(range.count))
        if context.request.method == .HEAD { return HTTPResponse(status: status, headers: headers) }

        let content: BlobContent
        do {
            content = try await blobs.content(of: digest, range: range)
        } catch StorageError.notFound {
            logger.error("blob \(digest) has a row in \(name) but no bytes in storage")
            throw RegistryError.blobUnknown(digest.description)
        } catch let error as StorageError {
            throw storageFailure(error)
        }
        switch content {
        case .file(let path, let range): return HTTPResponse(status: status, headers: headers, body: .file(path: path, range: range))
        case .chunks(let chunks): return HTTPResponse(status: status, headers: headers, body: .chunks(chunks))
        case .redirect(let url):
            // The client sends its Range header again to the object store.
            return HTTPResponse(
                status: .temporaryRedirect,
                headers: [
                    "Location": url, "Docker-Content-Digest": digest.description, "Content-Length": "0",
                ])
        }
    }

    /// What every blob GET/HEAD answer carries (the immediate path's HEAD too).
    static func blobHeaders(_ digest: Digest) -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.add(name: "Docker-Content-Digest", value: digest.description)
        headers.add(name: "ETag", value: "\"\(digest)\"")
        headers.add(name: "Accept-Ranges", value: "bytes")
        headers.add(name: "Content-Type", value: "application/octet-stream")
        return headers
    }

    func deleteBlob(_ name: RepositoryName, _ digestText: String, _ context: RequestContext) async throws -> HTTPResponse {
        let digest = try Digest.fromRequest(digestText)
        try await authorize(.delete, on: name, context)
        // Only the link goes; the bytes stay until garbage collection finds them unused.
        guard try await meta({ try await self.metadata.unlinkBlob(digest, from: name) }) else {
            throw RegistryError.blobUnknown(digest.description)
        }
        return HTTPResponse(status: .accepted, headers: ["Docker-Content-Digest": digest.description])
    }
}

/// A single `Range: bytes=…` request (RFC 9110 §14.1.2). One range per request: a
/// list of ranges is refused rather than answered with multipart bodies.
enum ByteRange {
    static func parse(_ header: String, size: Int64) -> Range<Int64>? {
        let trimmed = header.trimmingWhitespace()
        guard trimmed.lowercased().hasPrefix("bytes=") else { return nil }
        let spec = trimmed.dropFirst(6).trimmingWhitespace()
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { return nil }
        let first = spec[..<dash].trimmingWhitespace()
        let last = spec[spec.index(after: dash)...].trimmingWhitespace()
        guard first.allSatisfy(\.isASCIIDigit), last.allSatisfy(\.isASCIIDigit), first.count <= 18, last.count <= 18 else { return nil }
        if first.isEmpty {
            // Suffix range: the last N bytes.
            guard let suffix = Int64(last), suffix > 0, size > 0 else { return nil }
            return max(0, size - suffix)..<size
        }
        guard let start = Int64(first), start < size else { return nil }
        if last.isEmpty { return start..<size }
        guard let end = Int64(last), end >= start else { return nil }
        return start..<min(end + 1, size)
    }
}

extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
