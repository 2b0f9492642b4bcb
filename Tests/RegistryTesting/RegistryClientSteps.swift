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
