import NIOHTTP1
import RegistryAPI
import Synchronization

/// Stands in front of the registry and remembers method, URI, framing headers and status
/// of every request.
public final class RequestRecorder: RequestResponder, ImmediateResponder {
    public struct Entry: Sendable {
        public let method: HTTPMethod
        public let uri: String
        public let status: HTTPResponseStatus
        /// The headers that say how a client frames its uploads (no credentials).
        public var framing: [(String, String)] = []

        /// `PATCH /v2/a/blobs/uploads/… [Transfer-Encoding: chunked] 202`: one line of a client's trace.
        public var summary: String {
            let path = uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? uri
            let shortened = path.split(separator: "/").map { $0.count > 24 ? String($0.prefix(12)) + "…" : String($0) }.joined(separator: "/")
            let query = uri.contains("?") ? "?" + (uri.split(separator: "?", maxSplits: 1).last ?? "").split(separator: "&").map { $0.split(separator: "=").first ?? "" }.joined(separator: "&") : ""
            let headers = framing.isEmpty ? "" : " [" + framing.map { "\($0.0): \($0.1)" }.joined(separator: ", ") + "]"
            return "\(method) /\(shortened)\(query)\(headers) \(status.code)"
        }
    }

    static let framingHeaders = ["Content-Length", "Transfer-Encoding", "Content-Range", "Content-Type", "Expect"]

    private let wrapped = Mutex<(any RequestResponder)?>(nil)
    private let entries = Mutex<[Entry]>([])

    init() {}

    /// Sets the responder every request goes to.
    func wrap(_ responder: any RequestResponder) {
        wrapped.withLock { $0 = responder }
    }

    public func respond(to request: HTTPRequest, remoteAddress: String) async -> HTTPResponse {
        guard let responder = wrapped.withLock({ $0 }) else { return HTTPResponse(status: .serviceUnavailable) }
        let response = await responder.respond(to: request, remoteAddress: remoteAddress)
        let framing = Self.framingHeaders.flatMap { name in request.headers[name].map { (name, $0) } }
        entries.withLock { $0.append(Entry(method: request.method, uri: request.head.uri, status: response.status, framing: framing)) }
        return response
    }

    public func respondImmediately(to head: HTTPRequestHead, remoteAddress: String) -> HTTPResponse? {
        guard let responder = wrapped.withLock({ $0 }) as? any ImmediateResponder,
              let response = responder.respondImmediately(to: head, remoteAddress: remoteAddress)
        else { return nil }
        entries.withLock { $0.append(Entry(method: head.method, uri: head.uri, status: response.status)) }
        return response
    }

    public var immediateAnswerGeneration: UInt64? {
        (wrapped.withLock { $0 } as? any ImmediateResponder)?.immediateAnswerGeneration
    }

    /// Requests recorded so far.
    public var requests: [Entry] { entries.withLock { $0 } }

    /// Forgets what was recorded, to look at one step of a test alone.
    public func reset() { entries.withLock { $0.removeAll() } }
}
