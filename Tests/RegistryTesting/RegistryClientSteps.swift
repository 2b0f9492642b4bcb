import NIOHTTP1
import OCI

/// The push steps most tests need, through the real HTTP API.
extension TestHTTPClient {
    /// Pushes a blob with a monolithic `POST ?digest=` and returns its digest.
    @discardableResult
    public func pushBlob(_ repository: String, _ bytes: [UInt8]) async throws -> String {
        let digest = Fixtures.digest(bytes)
        let response = try await send(.POST, "/v2/\(repository)/blobs/uploads/?digest=\(digest)", body: .bytes(bytes))
        guard response.status == .created else { throw StepError.unexpected("push blob", response) }
        return digest
    }

    /// Starts an upload session and returns its Location.
    public func startUpload(_ repository: String, query: String = "") async throws -> String {
        let response = try await send(.POST, "/v2/\(repository)/blobs/uploads/\(query)")
        guard response.status == .accepted, let location = response.header("Location") else {
            throw StepError.unexpected("start upload", response)
        }
        return location
    }

    /// Goes on with an interrupted upload: its status must say `acknowledged` bytes are
    /// stored; the rest of `blob` is PATCHed, the upload finished with its digest, and the
    /// blob must read back whole. - Returns: the blob's digest.
    @discardableResult
    public func resumeUpload(_ location: String, of blob: [UInt8], acknowledged: Int, in repository: String) async throws -> String {
        let status = try await send(.GET, location)
        guard status.status == .noContent, status.header("Range") == "0-\(acknowledged - 1)" else {
            throw StepError.unexpected("upload status (expected 0-\(acknowledged - 1))", status)
        }
        let rest = try await send(
            .PATCH, location, headers: [("Content-Range", "\(acknowledged)-\(blob.count - 1)")], body: .bytes(Array(blob[acknowledged...])))
        guard rest.status == .accepted else { throw StepError.unexpected("PATCH the rest", rest) }
        let digest = Fixtures.digest(blob)
        let put = try await send(.PUT, "\(location)?digest=\(digest)")
        guard put.status == .created else { throw StepError.unexpected("finish upload", put) }
        let pulled = try await send(.GET, "/v2/\(repository)/blobs/\(digest)")
        guard pulled.body == blob else { throw StepError.unexpected("read the blob back", pulled) }
        return digest
    }

    /// PUTs a manifest and returns the response.
    public func putManifest(_ repository: String, _ reference: String, _ bytes: [UInt8], mediaType: String = MediaType.ociManifest)
        async throws -> TestResponse
    {
        try await send(.PUT, "/v2/\(repository)/manifests/\(reference)", headers: [("Content-Type", mediaType)], body: .bytes(bytes))
    }
}

public enum StepError: Error, CustomStringConvertible {
    case unexpected(String, TestResponse)

    public var description: String {
        switch self {
        case .unexpected(let step, let response): "\(step): \(response.status.code) \(response.text)"
        }
    }
}
