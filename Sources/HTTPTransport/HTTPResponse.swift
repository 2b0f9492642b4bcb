import NIOCore
import NIOHTTP1

/// A response on its way out: status, headers and a body that may be bytes, a range of a
/// local file, or chunks pulled one at a time (from a storage driver, say).
public struct HTTPResponse: Sendable {
    public enum Body: Sendable {
        case none
        case bytes(ByteBuffer)
        /// A range of a local file, sent from the page cache by `FileBodyStreamer` without
        /// a task or a thread hop per piece.
        case file(path: String, range: Range<Int64>)
        /// Pulled and written one chunk at a time, so producing never runs ahead of the socket.
        case chunks(any AsyncSequence<ByteBuffer, any Error> & Sendable)
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
    public static func json(
        _ status: HTTPResponseStatus, _ bytes: [UInt8], contentType: String = "application/json", headers: HTTPHeaders = [:]
    ) -> HTTPResponse {
        var headers = headers
        headers.replaceOrAdd(name: "Content-Type", value: contentType)
        headers.replaceOrAdd(name: "Content-Length", value: String(bytes.count))
        return HTTPResponse(status: status, headers: headers, body: .bytes(ByteBuffer(bytes: bytes)))
    }
}
