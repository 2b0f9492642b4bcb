import HTTPTransport
import NIOHTTP1

/// An error code of the distribution spec ("Error Codes"), plus the few that
/// distribution added and clients recognise.
public enum RegistryErrorCode: String, Sendable {
    case blobUnknown = "BLOB_UNKNOWN"
    case blobUploadInvalid = "BLOB_UPLOAD_INVALID"
    case blobUploadUnknown = "BLOB_UPLOAD_UNKNOWN"
    case digestInvalid = "DIGEST_INVALID"
    case manifestBlobUnknown = "MANIFEST_BLOB_UNKNOWN"
    case manifestInvalid = "MANIFEST_INVALID"
    case manifestUnknown = "MANIFEST_UNKNOWN"
    case nameInvalid = "NAME_INVALID"
    case nameUnknown = "NAME_UNKNOWN"
    case sizeInvalid = "SIZE_INVALID"
    case unauthorized = "UNAUTHORIZED"
    case denied = "DENIED"
    case unsupported = "UNSUPPORTED"
    case tooManyRequests = "TOOMANYREQUESTS"
    // From distribution: clients know them, the spec does not forbid them.
    case tagInvalid = "TAG_INVALID"
    case rangeInvalid = "RANGE_INVALID"
    case paginationNumberInvalid = "PAGINATION_NUMBER_INVALID"
    case unknown = "UNKNOWN"
}

/// An error answered on `/v2` with the OCI error body
/// `{"errors":[{"code","message","detail"}]}`.
///
/// ```swift
/// throw RegistryError(.blobUnknown, status: .notFound, "blob unknown to registry", detail: digest.description)
/// ```
public struct RegistryError: Error, Sendable {
    public let code: RegistryErrorCode
    public let status: HTTPResponseStatus
    public let message: String
    public let detail: String?
    /// Extra headers, e.g. `Range` on a 416 or `Content-Range: bytes */size`.
    public var headers: [(String, String)] = []

    public init(_ code: RegistryErrorCode, status: HTTPResponseStatus, _ message: String, detail: String? = nil) {
        self.code = code
        self.status = status
        self.message = message
        self.detail = detail
    }

    public func with(header name: String, _ value: String) -> RegistryError {
        var copy = self
        copy.headers.append((name, value))
        return copy
    }
}

extension RegistryError {
    static func nameInvalid(_ text: some StringProtocol) -> RegistryError {
        RegistryError(.nameInvalid, status: .badRequest, "invalid repository name", detail: String(text.prefix(300)))
    }
    static func digestInvalid(_ detail: String) -> RegistryError {
        RegistryError(
            .digestInvalid, status: .badRequest, "provided digest did not match uploaded content or is malformed",
            detail: String(detail.prefix(300)))
    }
    static func blobUnknown(_ digest: String) -> RegistryError {
        RegistryError(.blobUnknown, status: .notFound, "blob unknown to registry", detail: digest)
    }
    static func uploadUnknown() -> RegistryError {
        RegistryError(.blobUploadUnknown, status: .notFound, "blob upload unknown to registry")
    }
    static func manifestUnknown(_ reference: String) -> RegistryError {
        RegistryError(.manifestUnknown, status: .notFound, "manifest unknown", detail: String(reference.prefix(300)))
    }
    static func nameUnknown(_ name: String) -> RegistryError {
        RegistryError(.nameUnknown, status: .notFound, "repository name not known to registry", detail: name)
    }
    /// A full disk, under the blobs or under the metadata: 507, and nothing half-done.
    static let storageFull = RegistryError(.unknown, status: .insufficientStorage, "the registry's storage is full")
    /// The metadata database cannot be reached: 503, and the client may retry shortly.
    static let metadataUnavailable = RegistryError(
        .unknown, status: .serviceUnavailable, "the registry's database is unreachable; retry later"
    )
    .with(header: "Retry-After", "5")
    /// A body trickled below `MinimumBodyRate`: 408; an upload keeps the size it last
    /// acknowledged and can be resumed from there.
    static func bodyTooSlow(_ rate: MinimumBodyRate) -> RegistryError {
        RegistryError(
            .unknown, status: .requestTimeout,
            "the request body arrived slower than \(rate.bytesPerSecond) bytes/s over \(rate.window.components.seconds) s; resume an upload from its last acknowledged size"
        )
    }
    static func internalError(_ what: String) -> RegistryError {
        RegistryError(.unknown, status: .internalServerError, "internal error", detail: what)
    }
}
