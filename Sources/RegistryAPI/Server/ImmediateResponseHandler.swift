import NIOCore
import NIOHTTP1

/// Answers requests that an `ImmediateResponder` can answer from memory right here on
/// the event loop, and passes every other request on to the per-connection task.
///
/// It sits after NIO's `HTTPServerPipelineHandler`, which hands on a request only once
/// the answer to the one before has been written: an answer written here can never
/// overtake an earlier answer still being produced by the task. Requests with a body,
/// and every request while the server drains, always go to the task.
final class ImmediateResponseHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let responder: any ImmediateResponder
    private let connections: ConnectionTracker
    private let accessLog: AccessLog
    /// Inside a request answered here: its remaining parts (an `.end`) are dropped.
    private var answered = false
    /// The peer's address, asked of the socket once (each ask is a getpeername(2)).
    private var remote: String?

    init(responder: any ImmediateResponder, connections: ConnectionTracker, accessLog: AccessLog) {
        self.responder = responder
        self.connections = connections
        self.accessLog = accessLog
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            guard !Self.hasBody(head), !connections.isDraining,
                  let response = responder.respondImmediately(to: head, remoteAddress: remoteAddress(context)),
                  Self.isInMemory(response.body)
            else {
                context.fireChannelRead(data)
                return
            }
            answered = true
            write(response, for: head, context: context)
        case .body, .end:
            if answered {
                if case .end = unwrapInboundIn(data) { answered = false }
                return
            }
            context.fireChannelRead(data)
        }
    }

    private func write(_ response: HTTPResponse, for head: HTTPRequestHead, context: ChannelHandlerContext) {
        let started = ContinuousClock.now
        var headers = HTTPServer.finalHeaders(response)
        let keepAlive = head.isKeepAlive
        HTTPServer.setConnection(&headers, reuse: keepAlive, version: head.version)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: response.status, headers: headers))), promise: nil)
        var sent: Int64 = 0
        if head.method != .HEAD, case .bytes(let buffer) = response.body {
            sent = Int64(buffer.readableBytes)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        if keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        }
        accessLog.record(head, response.status, sent, started, remoteAddress(context))
    }

    private func remoteAddress(_ context: ChannelHandlerContext) -> String {
        if let remote { return remote }
        let address = context.remoteAddress?.ipAddress ?? "-"
        remote = address
        return address
    }

    /// Only answers held in memory are written here; files and streams need the task.
    private static func isInMemory(_ body: HTTPResponse.Body) -> Bool {
        switch body {
        case .none, .bytes: true
        default: false
        }
    }

    /// A GET or HEAD with a body is unusual enough to leave to the full path.
    private static func hasBody(_ head: HTTPRequestHead) -> Bool {
        if let length = head.headers.first(name: "Content-Length"), length != "0" { return true }
        return head.headers.contains(name: "Transfer-Encoding")
    }
}
