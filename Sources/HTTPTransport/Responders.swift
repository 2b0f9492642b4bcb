import NIOHTTP1

/// Answers one request: the application behind the server (the registry's `Registry`).
public protocol RequestResponder: Sendable {
    func respond(to request: HTTPRequest, remoteAddress: String) async -> HTTPResponse

    /// The answer sent instead when a `.file` body cannot be opened (the file vanished
    /// between the answer and the write). Asked before the head goes out.
    func responseForUnreadableFile(path: String, error: any Error) -> HTTPResponse
}

extension RequestResponder {
    /// A plain 404 without a body.
    public func responseForUnreadableFile(path: String, error: any Error) -> HTTPResponse {
        HTTPResponse(status: .notFound)
    }
}

/// Answers some requests synchronously, on the event loop that read them, before any
/// task is involved (`ImmediateResponseHandler`); `nil` sends the request down the full
/// path, whose answer must be the same. Must never block: memory only. Given to
/// `HTTPServer` apart from the `RequestResponder`: without one, every request takes
/// the full path.
public protocol ImmediateResponder: Sendable {
    func respondImmediately(to head: HTTPRequestHead, remoteAddress: String) -> HTTPResponse?

    /// Changes whenever an answer of `respondImmediately` may change other than by time
    /// (every write transaction); the server keeps encoded answers while it stays the
    /// same (`ImmediateAnswerCache`). `nil`: keep nothing.
    var immediateAnswerGeneration: UInt64? { get }
}
