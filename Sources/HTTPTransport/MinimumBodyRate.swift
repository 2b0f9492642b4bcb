import NIOCore
import NIOHTTP1

/// The slowest a client may send a request body: at least `bytesPerSecond`, averaged over
/// each `window` of time the server spent waiting for the client's bytes. A body trickled
/// more slowly (a slowloris, a stalled client) is cut off with 408 and its connection
/// closed, so it cannot hold a connection, a request task and an upload's write slot
/// forever.
///
/// Only the client's time counts: while the handler is busy (the storage writing a part,
/// the database answering), the server stops reading the socket and the clock stops with it.
public struct MinimumBodyRate: Sendable, Equatable {
    public var bytesPerSecond: Int
    public var window: Duration

    public init(bytesPerSecond: Int, window: Duration) {
        self.bytesPerSecond = bytesPerSecond
        self.window = window
    }

    /// 1 KiB/s over 60 s: a minute's worth of a modem's rate, far below any real client.
    public static let standard = MinimumBodyRate(bytesPerSecond: 1024, window: .seconds(60))

    public var isOff: Bool { bytesPerSecond <= 0 }

    /// The fewest bytes a window of waiting must bring.
    var bytesPerWindow: Int64 {
        let seconds = Double(window.components.seconds) + Double(window.components.attoseconds) / 1e18
        return Int64((Double(bytesPerSecond) * seconds).rounded(.up))
    }
}

/// What `MinimumBodyRateGuard` fires into the pipeline when a body is too slow; the
/// request's body reader turns it into `RequestBodyError.tooSlow`.
struct MinimumBodyRateViolation: Error {
    let rate: MinimumBodyRate
}

/// Measures each request body's rate on its connection (see `MinimumBodyRate`).
///
/// It sits after NIO's HTTP decoder. The time that counts runs from the moment a read is
/// asked of the socket (the request's task wants more) until bytes arrive: with the async
/// channel's back-pressure, no read is asked while the handler is busy. A client told to
/// wait for `100 Continue` is not measured before the server sends it.
final class MinimumBodyRateGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let rate: MinimumBodyRate
    private let window: TimeAmount
    private let checkInterval: TimeAmount

    private enum State {
        /// No body being received (between requests, or a request without one).
        case idle
        /// A body comes once the server sends `100 Continue`.
        case awaitingContinue
        /// A body is being received.
        case measuring
    }

    private var state = State.idle
    /// Since when a read has been asked of the socket without bytes arriving.
    private var waitingSince: NIODeadline?
    /// Time spent waiting for the client in the current window, not counting `waitingSince`.
    private var waited = TimeAmount.zero
    private var bytesInWindow: Int64 = 0
    private var checks: RepeatedTask?

    init(rate: MinimumBodyRate) {
        self.rate = rate
        window = TimeAmount(rate.window)
        // Often enough that a violation is seen within an eighth of a window of it happening.
        checkInterval = .nanoseconds(max(100_000_000, min(5_000_000_000, window.nanoseconds / 8)))
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            if Self.hasBody(head) {
                if head.expectsContinue {
                    state = .awaitingContinue
                } else {
                    startMeasuring(context)
                }
            }
        case .body(let buffer):
            if state == .measuring {
                stopWaiting()
                bytesInWindow += Int64(buffer.readableBytes)
            }
        case .end:
            stopMeasuring()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if state == .awaitingContinue, case .head(let head) = unwrapOutboundIn(data), head.status == .continue {
            startMeasuring(context)
        }
        context.write(data, promise: promise)
    }

    func read(context: ChannelHandlerContext) {
        if state == .measuring && waitingSince == nil { waitingSince = .now() }
        context.read()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopMeasuring()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stopMeasuring()
    }

    private func startMeasuring(_ context: ChannelHandlerContext) {
        state = .measuring
        waited = .zero
        bytesInWindow = 0
        waitingSince = nil
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        checks = context.eventLoop.scheduleRepeatedTask(initialDelay: checkInterval, delay: checkInterval) { _ in
            let (handler, context) = loopBound.value
            handler.check(context)
        }
    }

    private func stopMeasuring() {
        state = .idle
        waitingSince = nil
        checks?.cancel()
        checks = nil
    }

    private func stopWaiting() {
        if let since = waitingSince {
            waited = waited + (.now() - since)
            waitingSince = nil
        }
    }

    /// At the end of each window of waiting: enough bytes, or the body is cut off.
    private func check(_ context: ChannelHandlerContext) {
        guard state == .measuring else { return }
        let now = NIODeadline.now()
        let waitedSoFar = waited + (waitingSince.map { now - $0 } ?? .zero)
        guard waitedSoFar >= window else { return }
        if bytesInWindow < rate.bytesPerWindow {
            stopMeasuring()
            context.fireErrorCaught(MinimumBodyRateViolation(rate: rate))
            return
        }
        // A new window starts now (still waiting if a read is outstanding).
        waited = .zero
        bytesInWindow = 0
        if waitingSince != nil { waitingSince = now }
    }

    private static func hasBody(_ head: HTTPRequestHead) -> Bool {
        if head.headers["Transfer-Encoding"].contains(where: { $0.lowercased().contains("chunked") }) { return true }
        return head.headers["Content-Length"].first.flatMap { Int64($0) }.map { $0 > 0 } ?? false
    }
}
