import NIOCore
import NIOHTTP1

/// Answers the requests an `ImmediateResponder` can answer from memory right where their
/// bytes arrive, before any HTTP parsing, and hands every other request to NIO's HTTP
/// pipeline and the per-connection task.
///
/// It sits in front of NIO's HTTP decoder. Which bytes are a request it may answer and
/// which go on to NIO is decided by `ImmediateFraming` (no I/O); this handler carries out
/// its actions: answers an offered request from `ImmediateAnswers` (a lookup and one
/// write of ready bytes), forwards bytes, closes. `ResponseEndCounter` tells it when NIO's
/// pipeline has answered a forwarded request, which keeps the answers in order.
final class ImmediateResponseHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let answers: ImmediateAnswers
    private let connections: ConnectionTracker
    private let accessLog: AccessLog
    private var framing = ImmediateFraming()
    /// The peer's address, asked of the socket once (each ask is a getpeername(2)).
    private var remote: String?
    /// Whether bytes went on to NIO's pipeline since the last read-complete.
    private var forwardedSinceReadComplete = false
    /// Adds NIO's HTTP handlers and the rest of the full path behind this handler; called
    /// once, before the first bytes this handler cannot answer go on.
    private var addFullPath: ((ChannelPipeline.SynchronousOperations, ImmediateResponseHandler) throws -> Void)?

    init(
        answers: ImmediateAnswers, connections: ConnectionTracker, accessLog: AccessLog,
        addFullPath: @escaping (ChannelPipeline.SynchronousOperations, ImmediateResponseHandler) throws -> Void
    ) {
        self.answers = answers
        self.connections = connections
        self.accessLog = accessLog
        self.addFullPath = addFullPath
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if let bytes = framing.receive(unwrapInboundIn(data)) {
            forward(bytes, context)
            return
        }
        var wrote = false
        defer { if wrote { context.flush() } }
        while true {
            switch framing.nextAction(mayOffer: !connections.isDraining) {
            case .waitForBytes:
                return
            case .forward(let bytes):
                forward(bytes, context)
            case .offer(let request):
                // Only an answer that ends the connection is watched: a promise per
                // answer would cost an allocation on every keep-alive request.
                let written = request.keepAlive ? nil : context.eventLoop.makePromise(of: Void.self)
                guard answer(request, context, written: written) else {
                    written?.succeed()
                    forward(framing.declined(), context)
                    continue
                }
                wrote = true
                if framing.answered(keepAlive: request.keepAlive) == .closeWhenWritten, let written {
                    // Closed once the answer is on the wire: closing with writes still
                    // queued would drop them, and a large answer would be cut short.
                    let channel = context.channel
                    written.futureResult.whenComplete { _ in channel.close(promise: nil) }
                    return
                }
            }
        }
    }

    /// Handlers behind this one saw no read when every request of the read was answered
    /// here; walking the read-complete through them (NIO's HTTP handlers, the body-rate
    /// guard, the async channel) did nothing but cost ~8% of a small read's CPU with a
    /// thousand connections (docs/PERFORMANCE.md, "Many connections").
    func channelReadComplete(context: ChannelHandlerContext) {
        guard forwardedSinceReadComplete else { return }
        forwardedSinceReadComplete = false
        context.fireChannelReadComplete()
    }

    private func forward(_ bytes: ByteBuffer, _ context: ChannelHandlerContext) {
        if let addFullPath {
            self.addFullPath = nil
            do {
                try addFullPath(context.pipeline.syncOperations, self)
            } catch {
                context.fireErrorCaught(error)
                context.close(promise: nil)
                return
            }
        }
        forwardedSinceReadComplete = true
        context.fireChannelRead(wrapInboundOut(bytes))
    }

    /// Called by `ResponseEndCounter` when the end of a forwarded request's answer was written.
    func forwardedRequestAnswered() {
        framing.forwardedRequestAnswered()
    }

    /// Writes (without flushing) the answer if it can be given from memory; `written`
    /// completes when it is on the wire.
    /// - Returns: whether it could; `false` when the full path must answer.
    private func answer(
        _ request: ScannedRequestHead.Candidate, _ context: ChannelHandlerContext, written: EventLoopPromise<Void>?
    ) -> Bool {
        let started = ContinuousClock.now
        guard let answer = answers.answer(request, remoteAddress: remoteAddress(context), now: .now()) else { return false }
        context.write(wrapOutboundOut(answer.bytes), promise: written)
        connections.requestsServed.add(1, ordering: .relaxed)
        accessLog.record(
            method: request.method, uri: request.target, status: answer.status, sent: answer.bodyLength, received: 0,
            started: started, remote: remoteAddress(context))
        return true
    }

    private func remoteAddress(_ context: ChannelHandlerContext) -> String {
        if let remote { return remote }
        let address = context.remoteAddress?.ipAddress ?? "-"
        remote = address
        return address
    }
}

/// Sees the end of every answer NIO's pipeline writes, and tells the
/// `ImmediateResponseHandler` that one more handed-on request is answered. It sits
/// between NIO's response encoder and its pipelining handler, where every answer's
/// parts pass (also the 400 of NIO's protocol-error handler).
final class ResponseEndCounter: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let immediate: ImmediateResponseHandler

    init(_ immediate: ImmediateResponseHandler) {
        self.immediate = immediate
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let isEnd = if case .end = unwrapOutboundIn(data) { true } else { false }
        context.write(data, promise: promise)
        // After the write: the end's bytes are queued before anything answered later.
        if isEnd { immediate.forwardedRequestAnswered() }
    }
}
