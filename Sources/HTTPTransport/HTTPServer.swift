import FoundationEssentials
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// Serves HTTP/1.1 for a `RequestResponder` on one or more listening sockets.
///
/// ```swift
/// let server = HTTPServer(
///     responder: registry, immediateResponder: immediateReads, group: MultiThreadedEventLoopGroup.singleton, logger: logger)
/// let listener = try await server.bind(host: "127.0.0.1", port: 5000)
/// try await server.serve([listener])
/// ```
///
/// It knows HTTP and nothing of what it serves: no registry errors, storage or metadata.
///
/// One task per connection reads requests in order (HTTP/1.1 keep-alive with
/// pipelining kept in order by NIO), streams bodies with back-pressure, and sends
/// blob files from the page cache a piece at a time (`FileBodyStreamer`).
///
/// With the immediate path on, a connection starts with three handlers (idle timeout,
/// idle closer, immediate answers) and gets NIO's HTTP handlers, the body-rate guard and
/// its async channel only when a request first needs the full path: every read event
/// walks each handler of the pipeline twice (the read and the next read request), and a
/// connection that only pulls by tag never needs the rest.
public struct HTTPServer: Sendable {
    public typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>
    public typealias Listener = NIOAsyncChannel<AcceptedConnection, Never>

    /// A connection as the listener hands it over.
    public struct AcceptedConnection: Sendable {
        let channel: any Channel
        /// The full path's async channel once a request needs it; `nil` when the connection
        /// closed before that.
        let fullPath: EventLoopFuture<Connection?>
    }

    let responder: any RequestResponder
    let group: any EventLoopGroup
    let logger: Logger
    private let accessLog: AccessLog
    private let connections = ConnectionTracker()
    /// The immediate path's answers, `nil` when it is off.
    private let immediateAnswers: ImmediateAnswersByLoop?
    /// Bodies left unread by a handler are drained up to this size; past it the
    /// connection is closed instead of reading a large upload nobody wants.
    private let drainLimit: Int64 = 1 << 20

    /// A connection that sends nothing for this long while no request is in progress
    /// is closed, so idle or stalled clients cannot pile up and exhaust descriptors.
    let idleTimeout: TimeAmount
    /// The slowest request body accepted (`MinimumBodyRateGuard`).
    let minimumBodyRate: MinimumBodyRate

    /// - Parameters:
    ///   - immediateResponder: answers plain reads from memory on the event loop
    ///     (`ImmediateResponseHandler`); `nil` sends every request through NIO's parser
    ///     and `responder`.
    public init(
        responder: any RequestResponder, immediateResponder: (any ImmediateResponder)? = nil, group: any EventLoopGroup,
        logger: Logger, idleTimeout: Duration = .seconds(60), minimumBodyRate: MinimumBodyRate = .standard
    ) {
        self.minimumBodyRate = minimumBodyRate
        self.responder = responder
        self.group = group
        self.logger = logger
        self.accessLog = AccessLog(logger: logger)
        self.immediateAnswers = immediateResponder.map { ImmediateAnswersByLoop(responder: $0, group: group) }
        self.idleTimeout = TimeAmount(idleTimeout)
    }

    /// Binds a TCP listener; port 0 picks a free port (see `listener.channel.localAddress`).
    public func bind(host: String, port: Int) async throws -> Listener {
        try await bootstrap().bind(host: host, port: port, childChannelInitializer: initializeConnection)
    }

    /// Adopts a listening socket that was already bound, e.g. by systemd.
    public func adopt(socket: NIOBSDSocket.Handle) async throws -> Listener {
        try await bootstrap().bind(socket, childChannelInitializer: initializeConnection)
    }

    /// Requests answered since start.
    public var requestsServed: Int { connections.requestsServed.load(ordering: .relaxed) }

    /// Connections open now.
    public var openConnections: Int { connections.openConnections }

    /// Graceful shutdown, after the listeners were closed: idle connections close at
    /// once, requests in flight may finish for up to `gracePeriod`, then everything
    /// still open is closed. An upload cut off this way keeps what it had acknowledged
    /// (a chunked session stays resumable; a monolithic one was never visible).
    public func drain(gracePeriod: Duration) async {
        connections.drain()
        let deadline = ContinuousClock.now + gracePeriod
        while connections.openConnections > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        connections.closeAll()
    }

    /// Accepts connections on every listener until they are closed.
    public func serve(_ listeners: [Listener]) async throws {
        try await withThrowingDiscardingTaskGroup { group in
            for listener in listeners {
                group.addTask {
                    try await withThrowingDiscardingTaskGroup { connections in
                        try await listener.executeThenClose { inbound in
                            for try await connection in inbound {
                                connections.addTask { await self.handle(connection) }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The thread every listener of the process accepts on. Accepting on a serving event
    /// loop made a connection that arrived during a storm wait behind every ready
    /// connection of that loop once per 64 accepts: with 4,000 connections opened at once,
    /// the last first requests waited 1–1.5 s (docs/PERFORMANCE.md, "Many connections").
    /// On a thread of its own the listener drains its queue at once and hands each
    /// connection to a serving loop. Shared, like NIO's singleton group, and never shut down.
    static let acceptorGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    private func bootstrap() -> ServerBootstrap {
        ServerBootstrap(group: Self.acceptorGroup, childGroup: group)
            // A storm of connections (a CI fleet starting together) waits in the kernel's
            // queue instead of overflowing it: an overflowed handshake costs its client a
            // retransmission a second later. The kernel caps it at net.core.somaxconn.
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.maxMessagesPerRead, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            // An upload's bytes in memory at once: at most this many reads per event loop
            // turn, plus the async channel's high watermark (below), each of at most 128 KiB
            // (with 8 reads of 256 KiB a 64 MiB PATCH held ~3 MiB at a time; with 2 reads
            // and a watermark of 3, 16 uploads at once held 2 MiB more than now, at the same
            // rate; docs/PERFORMANCE.md, "Memory").
            .childChannelOption(.maxMessagesPerRead, value: 1)
            // A connection starts (and idles) with a 2 KiB buffer, which NIO keeps between
            // reads; uploads grow it to 128 KiB within a few reads.
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 2048, maximum: 128 * 1024))
    }

    @Sendable
    private func initializeConnection(_ channel: any Channel) -> EventLoopFuture<AcceptedConnection> {
        let connections = self.connections
        let idleTimeout = self.idleTimeout
        let immediateAnswers = self.immediateAnswers
        let accessLog = self.accessLog
        let minimumBodyRate = self.minimumBodyRate
        return channel.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            try pipeline.addHandler(IdleConnectionCloser(connections: connections, timeout: idleTimeout))
            let fullPath = channel.eventLoop.makePromise(of: Connection?.self)
            let addFullPath = { (pipeline: ChannelPipeline.SynchronousOperations, immediate: ImmediateResponseHandler?) in
                try Self.addHTTPHandlers(to: pipeline, immediate: immediate)
                if !minimumBodyRate.isOff { try pipeline.addHandler(MinimumBodyRateGuard(rate: minimumBodyRate)) }
                fullPath.succeed(
                    try Connection(
                        wrappingChannelSynchronously: channel,
                        // Reading stops at 2 parts waiting for the request's task and
                        // resumes when it has taken them all.
                        configuration: .init(backPressureStrategy: .init(lowWatermark: 1, highWatermark: 2))))
            }
            if let immediateAnswers {
                try pipeline.addHandler(
                    ImmediateResponseHandler(
                        answers: immediateAnswers.answers(for: channel.eventLoop), connections: connections, accessLog: accessLog,
                        addFullPath: addFullPath))
                // Never needed: the connection's task ends (a promise completes once; after
                // the full path was added this does nothing).
                channel.closeFuture.whenComplete { _ in fullPath.succeed(nil) }
            } else {
                try addFullPath(pipeline, nil)
            }
            return AcceptedConnection(channel: channel, fullPath: fullPath.futureResult)
        }
    }

    /// NIO's HTTP/1 server handlers behind the immediate path's handler, if there is one
    /// (tests build the same pipeline on an `EmbeddedChannel`).
    static func addHTTPHandlers(to pipeline: ChannelPipeline.SynchronousOperations, immediate: ImmediateResponseHandler?) throws {
        try pipeline.configureHTTPServerPipeline(withErrorHandling: true)
        if let immediate {
            let decoder = try pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try pipeline.addHandler(ResponseEndCounter(immediate), position: .after(decoder))
        }
        try pipeline.addHandler(FileBodyStreamer())
    }

    private func handle(_ accepted: AcceptedConnection) async {
        let channel = accepted.channel
        guard connections.add(channel) else {
            try? await channel.close()
            return
        }
        defer { connections.remove(channel) }
        // Cancelled (the server stops): the connection closes, which ends the wait.
        let fullPath = await withTaskCancellationHandler {
            try? await accepted.fullPath.get()
        } onCancel: {
            channel.close(promise: nil)
        }
        guard let connection = fullPath else { return }
        let remote = channel.remoteAddress?.ipAddress ?? "-"
        do {
            try await connection.executeThenClose { inbound, outbound in
                var iterator = inbound.makeAsyncIterator()
                while let part = try await iterator.next() {
                    guard case .head(let head) = part else { continue }
                    connections.setBusy(channel, true)
                    let started = ContinuousClock.now
                    let body = RequestBody(
                        inbound: iterator,
                        sendContinue: head.expectsContinue
                            ? { try await outbound.write(.head(HTTPResponseHead(version: head.version, status: .continue))) } : nil)
                    let request = HTTPRequest(head: head, body: body)
                    var response = await responder.respond(to: request, remoteAddress: remote)
                    let keepAlive = head.keepsConnectionOpen
                    // A client that waits for 100 Continue before sending its body gets an
                    // answer that did not read it (a refusal) at once, without 100, and the
                    // connection closes (RFC 9110 §10.1.1): waiting for the body would cost
                    // it its expect timeout (curl: 1 s) on every refused upload.
                    let bodyFinished = body.isWithheld ? false : ((try? await body.drain(upTo: drainLimit)) ?? false)
                    iterator = body.releaseInbound()
                    let reuse = keepAlive && bodyFinished && !connections.isDraining
                    Self.setConnection(&response.headers, reuse: reuse, version: head.version)
                    var sent: Int64 = 0
                    do {
                        try await write(response, for: head, to: outbound, closing: reuse ? nil : channel, sent: &sent)
                    } catch {
                        // The client went away mid-response: the request still gets its log
                        // line, with the bytes written before that.
                        accessLog.record(head, response.status, sent: sent, received: body.bytesRead, started: started, remote: remote)
                        throw error
                    }
                    connections.setBusy(channel, false)
                    accessLog.record(head, response.status, sent: sent, received: body.bytesRead, started: started, remote: remote)
                    if !bodyFinished { await lingeringClose(channel, &iterator) }
                    if !reuse || connections.isDraining { return }
                }
            }
        } catch {
            logger.debug("connection from \(remote) ended: \(error)")
        }
    }

    /// Closing while the client still sends a body would make the kernel reset the
    /// connection, and the client could lose the answer it was sent. So: stop writing,
    /// read and drop what still arrives for up to a second, then close.
    private func lingeringClose(_ channel: any Channel, _ iterator: inout NIOAsyncChannelInboundStream<HTTPServerRequestPart>.AsyncIterator)
        async
    {
        try? await channel.close(mode: .output)
        channel.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
        while let part = try? await iterator.next() {
            if case .end = part { break }
        }
    }

    /// Writes a response, counting in `sent` the body bytes of every write that went
    /// through (so a write that fails half-way still leaves an honest count).
    ///
    /// With `closing` (the connection ends after this answer) the last part goes straight
    /// to the channel and is awaited until it is on the wire: closing the channel drops
    /// writes still queued, and a large file body would be cut short.
    private func write(
        _ response: HTTPResponse, for request: HTTPRequestHead, to outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>,
        closing: (any Channel)?, sent: inout Int64
    ) async throws {
        var response = response
        var fileRegion: FileRegion?
        if case .file(let path, let range) = response.body, request.method != .HEAD {
            // Open before the head goes out, so a file that vanished still gets a clean 404.
            do {
                fileRegion = try await openRegion(path, range)
            } catch {
                logger.error("cannot open \(path): \(error)")
                response = responder.responseForUnreadableFile(path: path, error: error)
            }
        }
        var parts: [HTTPServerResponsePart] = [
            .head(HTTPResponseHead(version: request.version, status: response.status, headers: Self.finalHeaders(response)))
        ]
        // Body bytes in `parts`, counted once they are written.
        var pending: Int64 = 0
        switch response.body {
        case .bytes(let buffer) where request.method != .HEAD:
            pending = Int64(buffer.readableBytes)
            parts.append(.body(.byteBuffer(buffer)))
        case .file:
            if let fileRegion {
                // FileBodyStreamer sends it and closes the file once the bytes are on the wire.
                pending = Int64(fileRegion.readableBytes)
                parts.append(.body(.fileRegion(fileRegion)))
            }
        case .chunks(let chunks) where request.method != .HEAD:
            try await outbound.write(contentsOf: parts)
            parts = []
            for try await chunk in chunks {
                try await outbound.write(.body(.byteBuffer(chunk)))
                sent += Int64(chunk.readableBytes)
            }
        default:
            break
        }
        if let closing {
            if !parts.isEmpty { try await outbound.write(contentsOf: parts) }
            try await closing.writeAndFlush(HTTPServerResponsePart.end(nil))
        } else {
            // Head, body and end in one flush: one writev(2) for a small answer.
            try await outbound.write(contentsOf: parts + [.end(nil)])
        }
        sent += pending
    }

    private func openRegion(_ path: String, _ range: Range<Int64>) async throws -> FileRegion {
        let descriptor = try await NIOThreadPool.singleton.runIfActive { () throws -> CInt in
            let descriptor = open(path, O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else { throw IOError(errnoCode: errno, reason: "open") }
            return descriptor
        }
        let handle = NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: descriptor)
        return FileRegion(fileHandle: handle, readerIndex: Int(range.lowerBound), endIndex: Int(range.upperBound))
    }

    /// Says whether the connection stays open: `close` when it does not; `keep-alive` for
    /// HTTP/1.0, which closes after each answer unless the answer says otherwise (ab -k,
    /// old proxies).
    static func setConnection(_ headers: inout HTTPHeaders, reuse: Bool, version: HTTPVersion) {
        if !reuse {
            headers.replaceOrAdd(name: "Connection", value: "close")
        } else if version == .http1_0 {
            headers.replaceOrAdd(name: "Connection", value: "keep-alive")
        }
    }

    /// The headers as sent, on the full and the immediate path alike: an answer without
    /// a body says so with `Content-Length: 0`.
    static func finalHeaders(_ response: HTTPResponse) -> HTTPHeaders {
        var headers = response.headers
        if headers.first(name: "Content-Length") == nil, case .none = response.body {
            headers.add(name: "Content-Length", value: "0")
        }
        return headers
    }
}
