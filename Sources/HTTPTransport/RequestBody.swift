import NIOCore
import NIOHTTP1

/// The body of the request being handled, pulled from the connection on demand.
///
/// Reading is back-pressured end to end: NIO stops reading the socket while the
/// handler is busy with a chunk, so a large upload never piles up in memory.
public final class RequestBody: AsyncSequence {
    public typealias Element = ByteBuffer
    public typealias Failure = any Error

    private var inbound: NIOAsyncChannelInboundStream<HTTPServerRequestPart>.AsyncIterator
    private var finished = false
    /// Cut off for being too slow: the rest of the body is never read, the connection closes.
    private var cutOff = false
    private var sendContinue: (() async throws -> Void)?
    /// Bytes received so far (handed out, or discarded by `drain`).
    public private(set) var bytesRead: Int64 = 0

    init(inbound: NIOAsyncChannelInboundStream<HTTPServerRequestPart>.AsyncIterator, sendContinue: (() async throws -> Void)?) {
        self.inbound = inbound
        self.sendContinue = sendContinue
    }

    /// The next chunk, or `nil` once the request's end arrived.
    public func next() async throws -> ByteBuffer? {
        if finished { return nil }
        if let send = sendContinue {
            // `Expect: 100-continue`: the client waits for this before sending the body.
            sendContinue = nil
            try await send()
        }
        while let part = try await nextPart() {
            switch part {
            case .body(let buffer):
                bytesRead += Int64(buffer.readableBytes)
                return buffer
            case .end:
                finished = true
                return nil
            case .head:
                throw RequestBodyError.unexpectedHead
            }
        }
        finished = true
        throw RequestBodyError.connectionClosed
    }

    /// The connection's next part; the rate guard's verdict as the body's own error.
    private func nextPart() async throws -> HTTPServerRequestPart? {
        do {
            return try await inbound.next()
        } catch let violation as MinimumBodyRateViolation {
            cutOff = true
            throw RequestBodyError.tooSlow(violation.rate)
        }
    }

    /// Whether the client holds its body back until it hears `100 Continue`, which
    /// nobody has asked to send yet (`Expect: 100-continue`, body not read).
    var isWithheld: Bool { sendContinue != nil && !finished }

    /// Reads the whole body into one buffer, refusing more than `limit` bytes.
    public func collect(upTo limit: Int) async throws -> ByteBuffer {
        var result = ByteBuffer()
        while var chunk = try await next() {
            guard result.readableBytes + chunk.readableBytes <= limit else { throw RequestBodyError.tooLarge }
            result.writeBuffer(&chunk)
        }
        return result
    }

    /// Discards what is left of the body so the connection can serve the next request.
    /// - Returns: `false` when more than `limit` bytes were left: close the connection instead.
    func drain(upTo limit: Int64) async throws -> Bool {
        if cutOff { return false }
        if finished { return true }
        sendContinue = nil
        var discarded: Int64 = 0
        while let part = try await inbound.next() {
            switch part {
            case .body(let buffer):
                discarded += Int64(buffer.readableBytes)
                bytesRead += Int64(buffer.readableBytes)
                if discarded > limit { return false }
            case .end:
                finished = true
                return true
            case .head:
                return false
            }
        }
        return false
    }

    /// Hands the connection's iterator back once the request is done.
    func releaseInbound() -> NIOAsyncChannelInboundStream<HTTPServerRequestPart>.AsyncIterator { inbound }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let body: RequestBody
        public mutating func next() async throws -> ByteBuffer? { try await body.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(body: self) }
}

/// Why a request body could not be read to its end.
public enum RequestBodyError: Error {
    /// Longer than the limit given to `collect(upTo:)`.
    case tooLarge
    /// The connection ended before the body did.
    case connectionClosed
    /// The next request's head arrived where body bytes were expected.
    case unexpectedHead
    /// The body came more slowly than the server's `MinimumBodyRate`; the connection closes.
    case tooSlow(MinimumBodyRate)
}
