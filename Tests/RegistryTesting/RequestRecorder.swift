import HTTPTransport
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
            let shortened = path.split(separator: "/").map { $0.count > 24 ? String($0.prefix(12)) + "…" : String($0) }.joined(
                separator: "/")
            let query =
                uri.contains("?")
                ? "?"
                    + (uri.split(separator: "?", maxSplits: 1).last ?? "").split(separator: "&").map {
                        $0.split(separator: "=").first ?? ""
                    }.joined(separator: "&") : ""
            let headers = framing.isEmpty ? "" : " [" + framing.map { "\($0.0): \($0.1)" }.joined(separator: ", ") + "]"
            return "\(method) /\(shortened)\(query)\(headers) \(status.code)"
        }
    }

    static let framingHeaders = ["Content-Length", "Transfer-Encoding", "Content-Range", "Content-Type", "Expect"]

    private let wrapped = Mutex<(any RequestResponder)?>(nil)
    private let wrappedImmediate = Mutex<(any ImmediateResponder)?>(nil)
    private let entries = Mutex<[Entry]>([])
    private let immediateCount = Mutex(0)

    init() {}

    /// Sets the responder every request goes to, and the one that may answer plain reads
    /// from memory (`nil`: every request takes the full path).
    func wrap(_ responder: any RequestResponder, immediate: (any ImmediateResponder)?) {
        wrapped.withLock { $0 = responder }
        wrappedImmediate.withLock { $0 = immediate }
    }

    public func responseForUnreadableFile(path: String, error: any Error) -> HTTPResponse {
        wrapped.withLock { $0 }?.responseForUnreadableFile(path: path, error: error) ?? HTTPResponse(status: .serviceUnavailable)
    }

    public func respond(to request: HTTPRequest, remoteAddress: String) async -> HTTPResponse {
        guard let responder = wrapped.withLock({ $0 }) else { return HTTPResponse(status: .serviceUnavailable) }
        let response = await responder.respond(to: request, remoteAddress: remoteAddress)
        let framing = Self.framingHeaders.flatMap { name in request.headers[name].map { (name, $0) } }
        entries.withLock { $0.append(Entry(method: request.method, uri: request.head.uri, status: response.status, framing: framing)) }
        return response
    }

    public func respondImmediately(to head: HTTPRequestHead, remoteAddress: String) -> HTTPResponse? {
        guard let responder = wrappedImmediate.withLock({ $0 }),
            let response = responder.respondImmediately(to: head, remoteAddress: remoteAddress)
        else { return nil }
        entries.withLock { $0.append(Entry(method: head.method, uri: head.uri, status: response.status)) }
        immediateCount.withLock { $0 += 1 }
        return response
    }

    public var immediateAnswerGeneration: UInt64? {
        wrappedImmediate.withLock { $0 }?.immediateAnswerGeneration
    }

    /// Answers the immediate path took from the registry (answers it re-sent from its
    /// cache of encoded answers are not asked for again, so not counted).
    public var immediateAnswers: Int { immediateCount.withLock { $0 } }

    /// Requests recorded so far.
    public var requests: [Entry] { entries.withLock { $0 } }

    /// Forgets what was recorded, to look at one step of a test alone.
    public func reset() { entries.withLock { $0.removeAll() } }
}
