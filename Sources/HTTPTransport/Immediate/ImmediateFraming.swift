import NIOCore

/// The immediate path's framing of one connection, without I/O: it takes the bytes that
/// arrive and says, one action at a time, what to do with them. `ImmediateResponseHandler`
/// carries the actions out; tests drive it with bytes alone.
///
/// Requests are scanned (`ScannedRequestHead`) where they start. A plain read is
/// *offered*: the handler answers it (`answered`) or gives it back (`declined`), and a
/// declined or any other request is *forwarded* whole to NIO's parser — head and, by its
/// `Content-Length`, body — so that parser always starts at a request boundary. A head
/// the scanner does not fully understand, or one larger than `headLimit`, hands the
/// connection over to NIO for good.
///
/// Answers keep their order: while a forwarded request is unanswered
/// (`forwardedRequestAnswered` counts the ends of NIO's answers), nothing is offered, and
/// NIO's pipeline answers the later requests in order.
struct ImmediateFraming {
    /// A head larger than this is left to NIO's parser (and its limits).
    static let headLimit = 16 * 1024

    enum Mode: Equatable {
        /// Reading request heads here.
        case scanning
        /// A request was offered and waits for `answered` or `declined`.
        case offered(headLength: Int, bodyLength: Int)
        /// A forwarded request's body: this many bytes still go to NIO as they arrive.
        case forwardingBody(remaining: Int)
        /// NIO's parser reads everything from here on.
        case handedOver
        /// Answered a request that ends the connection; nothing more is read.
        case closing
    }

    enum Action {
        /// Pass these bytes on to NIO's HTTP parser.
        case forward(ByteBuffer)
        /// A request the immediate path may answer: reply with `answered` or `declined`.
        case offer(ScannedRequestHead.Candidate)
        /// Nothing to do until more bytes arrive.
        case waitForBytes
    }

    /// What follows an answered request.
    enum AfterAnswer: Equatable {
        case readOn
        /// The request asked to close: close once the answer is written.
        case closeWhenWritten
    }

    private(set) var mode = Mode.scanning
    /// Received bytes not yet answered or forwarded (an incomplete head, say).
    private var pending: ByteBuffer?
    /// Forwarded requests whose answer has not been written yet.
    private(set) var unansweredForwarded = 0

    /// Takes bytes that arrived. Afterwards, call `nextAction` until it says to wait.
    /// - Returns: bytes to forward at once, when NIO's parser already has the connection.
    mutating func receive(_ bytes: ByteBuffer) -> ByteBuffer? {
        switch mode {
        case .handedOver:
            return bytes
        case .closing:
            return nil
        case .scanning, .offered, .forwardingBody:
            if pending == nil {
                pending = bytes
            } else {
                var bytes = bytes
                pending!.writeBuffer(&bytes)
            }
            return nil
        }
    }

    /// The next step with the bytes received so far.
    /// - Parameter mayOffer: `false` when no request may be answered here now (the
    ///   server drains): every request is forwarded.
    mutating func nextAction(mayOffer: Bool = true) -> Action {
        guard var buffer = pending, buffer.readableBytes > 0 else {
            pending = nil
            return .waitForBytes
        }
        switch mode {
        case .handedOver, .closing:
            return .waitForBytes
        case .offered:
            preconditionFailure("an offered request must be answered or declined first")
        case .forwardingBody(let remaining):
            let count = min(remaining, buffer.readableBytes)
            let body = buffer.readSlice(length: count)!
            pending = buffer
            mode = count == remaining ? .scanning : .forwardingBody(remaining: remaining - count)
            return .forward(body)
        case .scanning:
            let scan = buffer.withUnsafeReadableBytes { ScannedRequestHead.scan($0) }
            guard case .head(let head) = scan else {
                return buffer.readableBytes > Self.headLimit ? handOver() : .waitForBytes
            }
            guard case .length(let bodyLength) = head.framing else { return handOver() }
            mode = .offered(headLength: head.headLength, bodyLength: bodyLength)
            if let candidate = head.candidate, unansweredForwarded == 0, mayOffer {
                return .offer(candidate)
            }
            return forwardOffered()
        }
    }

    /// The offered request was answered: its head is consumed.
    mutating func answered(keepAlive: Bool) -> AfterAnswer {
        guard case .offered(let headLength, _) = mode else { preconditionFailure("nothing was offered") }
        guard keepAlive else {
            mode = .closing
            pending = nil
            return .closeWhenWritten
        }
        pending!.moveReaderIndex(forwardBy: headLength)
        mode = .scanning
        return .readOn
    }

    /// The offered request is for NIO's pipeline after all.
    /// - Returns: the bytes to forward (the head, and the body as far as it arrived).
    mutating func declined() -> ByteBuffer {
        guard case .forward(let bytes) = forwardOffered() else { preconditionFailure("nothing was offered") }
        return bytes
    }

    /// The end of a forwarded request's answer was written.
    mutating func forwardedRequestAnswered() {
        unansweredForwarded = max(0, unansweredForwarded - 1)
    }

    private mutating func forwardOffered() -> Action {
        guard case .offered(let headLength, let bodyLength) = mode, var buffer = pending else {
            preconditionFailure("nothing was offered")
        }
        unansweredForwarded += 1
        let available = min(buffer.readableBytes, headLength + bodyLength)
        let request = buffer.readSlice(length: available)!
        pending = buffer
        let bodyArrived = available - headLength
        mode = bodyArrived < bodyLength ? .forwardingBody(remaining: bodyLength - bodyArrived) : .scanning
        return .forward(request)
    }

    /// From now on NIO's parser reads everything, starting with what is pending.
    private mutating func handOver() -> Action {
        mode = .handedOver
        let rest = pending
        pending = nil
        return .forward(rest!)
    }
}
