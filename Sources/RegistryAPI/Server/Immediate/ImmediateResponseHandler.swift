import NIOCore
import NIOHTTP1

/// Answers the requests an `ImmediateResponder` can answer from memory right where their
/// bytes arrive, before any HTTP parsing, and hands every other request to NIO's HTTP
/// pipeline and the per-connection task.
///
/// It sits in front of NIO's HTTP decoder and reads request heads itself
/// (`ScannedRequestHead`): a plain `GET`/`HEAD` whose answer is in the
/// `ImmediateAnswerCache` costs a lookup and one write of ready bytes; on a miss the
/// responder is asked (routing, access, cached metadata) and its answer encoded and
/// kept. Every other request is passed on whole — head and, by its `Content-Length`,
/// body — so NIO's parser always starts at a request boundary. Anything this scanner
/// does not fully understand hands the connection to NIO for good.
///
/// Answers keep their order: while a handed-on request is unanswered
/// (`ResponseEndCounter` counts the answers' ends), later requests are handed on too,
/// and NIO's `HTTPServerPipelineHandler` answers them in order.
final class ImmediateResponseHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// A head larger than this is left to NIO's parser (and its limits).
    static let headLimit = 16 * 1024

    private enum Mode {
        /// Reading request heads here.
        case scanning
        /// A handed-on request's body: this many bytes still go to NIO as they arrive.
        case forwardingBody(remaining: Int)
        /// NIO's parser reads everything from here on.
        case handedOver
        /// Answered a request that ends the connection; nothing more is read.
        case closing
    }

    private let responder: any ImmediateResponder
    private let connections: ConnectionTracker
    private let accessLog: AccessLog
    private let cache: ImmediateAnswerCache
    private var mode = Mode.scanning
    /// Received bytes not yet answered or handed on (an incomplete head).
    private var pending: ByteBuffer?
    /// Requests handed on whose answer has not been written yet.
    private var unansweredHandedOn = 0
    /// The peer's address, asked of the socket once (each ask is a getpeername(2)).
    private var remote: String?

    init(responder: any ImmediateResponder, connections: ConnectionTracker, accessLog: AccessLog, cache: ImmediateAnswerCache) {
        self.responder = responder
        self.connections = connections
        self.accessLog = accessLog
        self.cache = cache
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch mode {
        case .handedOver:
            context.fireChannelRead(data)
        case .closing:
            break
        case .scanning, .forwardingBody:
            var bytes = unwrapInboundIn(data)
            if pending == nil {
                pending = bytes
            } else {
                pending!.writeBuffer(&bytes)
            }
            process(context)
        }
    }

    /// Called by `ResponseEndCounter` when the end of a handed-on request's answer was written.
    func handedOnRequestAnswered() {
        unansweredHandedOn = max(0, unansweredHandedOn - 1)
    }

    private func process(_ context: ChannelHandlerContext) {
        var wrote = false
        defer {
            if wrote { context.flush() }
            if pending?.readableBytes == 0 { pending = nil }
        }
        while var buffer = pending, buffer.readableBytes > 0 {
            switch mode {
            case .forwardingBody(let remaining):
                let count = min(remaining, buffer.readableBytes)
                let body = buffer.readSlice(length: count)!
                pending = buffer
                mode = count == remaining ? .scanning : .forwardingBody(remaining: remaining - count)
                context.fireChannelRead(wrapInboundOut(body))
            case .scanning:
                let scan = buffer.withUnsafeReadableBytes { ScannedRequestHead.scan($0) }
                guard case .head(let head) = scan else {
                    if buffer.readableBytes > Self.headLimit { handOver(context) }
                    return
                }
                guard case .length(let bodyLength) = head.framing else {
                    handOver(context)
                    return
                }
                if let candidate = head.candidate, unansweredHandedOn == 0, !connections.isDraining,
                   let written = answer(candidate, context) {
                    wrote = true
                    buffer.moveReaderIndex(forwardBy: head.headLength)
                    pending = buffer
                    if !candidate.keepAlive {
                        // Closed once the answer is on the wire: closing with writes still
                        // queued would drop them, and a large answer would be cut short.
                        mode = .closing
                        pending = nil
                        let channel = context.channel
                        written.whenComplete { _ in channel.close(promise: nil) }
                        return
                    }
                    continue
                }
                // The full path answers it: the head, and the body as far as it has arrived.
                unansweredHandedOn += 1
                let available = min(buffer.readableBytes, head.headLength + bodyLength)
                let request = buffer.readSlice(length: available)!
                pending = buffer
                let bodyArrived = available - head.headLength
                mode = bodyArrived < bodyLength ? .forwardingBody(remaining: bodyLength - bodyArrived) : .scanning
                context.fireChannelRead(wrapInboundOut(request))
            case .handedOver, .closing:
                return
            }
        }
    }

    /// From now on NIO's parser reads everything, starting with what is pending.
    private func handOver(_ context: ChannelHandlerContext) {
        mode = .handedOver
        if let rest = pending, rest.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(rest)) }
        pending = nil
    }

    /// Writes (without flushing) the answer if it can be given from memory.
    /// - Returns: the write's future, or `nil` when the full path must answer.
    private func answer(_ request: ScannedRequestHead.Candidate, _ context: ChannelHandlerContext) -> EventLoopFuture<Void>? {
        let started = ContinuousClock.now
        let now = NIODeadline.now()
        let key = request.answerKey
        // Read before answering: an answer stored under a generation a write already
        // ended is never found again.
        let generation = responder.immediateAnswerGeneration
        let answer: ImmediateAnswerCache.Answer
        if let generation, let kept = cache.answer(for: key, generation: generation, now: now) {
            answer = kept
        } else {
            guard let response = responder.respondImmediately(to: request.requestHead, remoteAddress: remoteAddress(context)),
                  Self.isInMemory(response.body),
                  let bytes = ImmediateAnswerCache.encode(response, method: request.method, version: request.version, keepAlive: request.keepAlive)
            else { return nil }
            let bodyLength: Int64 = if request.method != .HEAD, case .bytes(let body) = response.body { Int64(body.readableBytes) } else { 0 }
            answer = ImmediateAnswerCache.Answer(bytes: bytes, status: response.status, bodyLength: bodyLength,
                                                 generation: generation ?? 0, expires: now + ImmediateAnswerCache.lifetime)
            if generation != nil { cache.store(answer, for: key) }
        }
        let written = context.write(wrapOutboundOut(answer.bytes))
        connections.requestsServed.add(1, ordering: .relaxed)
        accessLog.record(method: request.method, uri: request.target, status: answer.status, sent: answer.bodyLength, received: 0,
                         started: started, remote: remoteAddress(context))
        return written
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
        if isEnd { immediate.handedOnRequestAnswered() }
    }
}

/// The immediate answer caches of an event loop group: one per loop, each touched only
/// by connections on its loop.
final class ImmediateAnswerCaches: @unchecked Sendable {
    private let caches: [ObjectIdentifier: ImmediateAnswerCache]

    init(group: any EventLoopGroup) {
        var caches: [ObjectIdentifier: ImmediateAnswerCache] = [:]
        for loop in group.makeIterator() { caches[ObjectIdentifier(loop)] = ImmediateAnswerCache() }
        self.caches = caches
    }

    /// The loop's cache; a connection on a loop outside the group gets one of its own.
    func cache(for loop: any EventLoop) -> ImmediateAnswerCache {
        caches[ObjectIdentifier(loop)] ?? ImmediateAnswerCache(capacity: 64)
    }
}
