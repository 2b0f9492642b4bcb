import NIOCore
import NIOHTTP1
import Storage

/// A response on its way out: status, headers and a body that may be bytes, a file
/// sent with `sendfile`, or chunks pulled from a storage driver.
public struct HTTPResponse: Sendable {
    public enum Body: Sendable {
        case none
        case bytes(ByteBuffer)
        /// A file region: zero-copy on plain TCP.
        case file(path: String, range: Range<Int64>)
        case chunks(ByteChunks)
    }

    public var status: HTTPResponseStatus
    public var headers: HTTPHeaders
    public var body: Body

    public init(status: HTTPResponseStatus, headers: HTTPHeaders = [:], body: Body = .none) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A JSON body with its Content-Type and Content-Length.
    static func json(_ status: HTTPResponseStatus, _ bytes: [UInt8], contentType: String = "application/json", headers: HTTPHeaders = [:]) -> HTTPResponse {
        var headers = headers
        headers.replaceOrAdd(name: "Content-Type", value: contentType)
        headers.replaceOrAdd(name: "Content-Length", value: String(bytes.count))
        return HTTPResponse(status: status, headers: headers, body: .bytes(ByteBuffer(bytes: bytes)))
    }

    /// The OCI error body for `error`.
    static func error(_ error: RegistryError) -> HTTPResponse {
        var entry: [String: String] = ["code": error.code.rawValue, "message": error.message]
        if let detail = error.detail { entry["detail"] = detail }
        let body = JSONText.encode(["errors": [entry]])
        var headers = HTTPHeaders()
        for (name, value) in error.headers { headers.add(name: name, value: value) }
        return .json(error.status, body, headers: headers)
    }
}
