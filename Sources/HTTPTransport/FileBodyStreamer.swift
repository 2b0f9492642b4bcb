import CLinux
import NIOCore
import NIOHTTP1
import NIOPosix

/// Sends a `FileRegion` body as copies of the file in 512 KiB pieces, read on the event
/// loop from the page cache, instead of letting NIO `sendfile` it; closes the file once
/// the body is out.
///
/// Why not zero-copy: on loopback the receiving client copies every byte out of the
/// socket, and with `sendfile` it copies them straight out of the page cache, memory no
/// core has touched lately; a piece this handler just copied into the socket is still in
/// the caches when the client reads it. The client is the slower side of a pull, so the
/// copy the server adds is paid back: nginx with `sendfile` sent a 1 GiB file to curl at
/// 1,950–2,650 MiB/s, nginx copying through two 256 KiB buffers at 3,200–3,800, curl's CPU
/// per GiB 0.22–0.28 against 0.15–0.19 s. Pieces of 512 KiB beat 256 KiB and 1 MiB ones
/// (docs/PERFORMANCE.md, "Big blobs").
///
/// A read never waits for the disk on the event loop: it asks only for what is cached
/// (`preadv2` with `RWF_NOWAIT`) and hands a miss to the thread pool. The next piece is
/// read only while the channel is writable, so a slow client holds at most one piece in
/// memory; and one turn of the loop sends at most `piecesPerTurn` pieces, so one fast pull
/// does not starve the loop's other connections.
///
/// Writes that arrive while a body streams (its `.end`, a pipelined answer) wait in order
/// and follow it.
final class FileBodyStreamer: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias InboundOut = NIOAny
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    static let pieceSize = 512 << 10
    static let piecesPerTurn = 8

    /// The body being sent: `region`'s reader index is the next byte to send.
    private struct Stream {
        var region: FileRegion
        let descriptor: CInt
        let promise: EventLoopPromise<Void>?
    }

    /// A write or a flush that came while a body was streaming.
    private enum Deferred {
        case write(NIOAny, EventLoopPromise<Void>?)
        case flush
    }

    private let threadPool: NIOThreadPool
    private var stream: Stream?
    /// A read handed to the thread pool is under way: nothing else is read meanwhile.
    private var waitingForDisk = false
    /// The file of a body abandoned while the pool read from it: closed once the read ends.
    private var closeAfterRead: NIOFileHandle?
    private var deferred: [Deferred] = []

    init(threadPool: NIOThreadPool = .singleton) {
        self.threadPool = threadPool
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard stream == nil else {
            deferred.append(.write(data, promise))
            return
        }
        guard case .body(.fileRegion(let region)) = unwrapOutboundIn(data) else {
            context.write(data, promise: promise)
            return
        }
        start(region, promise: promise, context: context)
    }

    func flush(context: ChannelHandlerContext) {
        if stream == nil { context.flush() } else { deferred.append(.flush) }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { send(context: context) }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        abandon(ChannelError.ioOnClosedChannel)
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        abandon(ChannelError.ioOnClosedChannel)
    }

    private func start(_ region: FileRegion, promise: EventLoopPromise<Void>?, context: ChannelHandlerContext) {
        let descriptor: CInt
        do {
            descriptor = try region.fileHandle.withUnsafeFileDescriptor { $0 }
        } catch {
            try? region.fileHandle.close()
            promise?.fail(error)
            return
        }
        stream = Stream(region: region, descriptor: descriptor, promise: promise)
        send(context: context)
    }

    /// Sends pieces while the channel takes them, up to `piecesPerTurn`, then yields the
    /// loop and goes on in a later turn.
    private func send(context: ChannelHandlerContext) {
        var sent = 0
        while let current = stream, !waitingForDisk, context.channel.isWritable {
            guard current.region.readableBytes > 0 else { return finish(lastWrite: nil, context: context) }
            guard sent < Self.piecesPerTurn else {
                context.eventLoop.assumeIsolated().execute { self.send(context: context) }
                return
            }
            let (count, offset) = (min(Self.pieceSize, current.region.readableBytes), Int64(current.region.readerIndex))
            var piece = context.channel.allocator.buffer(capacity: count)
            let copied = piece.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { pointer in
                max(0, registryd_read_cached(current.descriptor, pointer.baseAddress, count, offset))
            }
            guard copied > 0 else { return readFromDisk(count: count, context: context) }
            write(piece, context: context)
            sent += 1
        }
    }

    /// Writes the next piece of the stream; after the last one, the stream is done.
    private func write(_ piece: ByteBuffer, context: ChannelHandlerContext) {
        guard var current = stream else { return }
        current.region.moveReaderIndex(forwardBy: piece.readableBytes)
        stream = current
        let isLast = current.region.readableBytes == 0
        let written = isLast ? context.eventLoop.makePromise(of: Void.self) : nil
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(piece))), promise: written)
        if isLast { finish(lastWrite: written, context: context) }
    }

    /// Reads the next piece on the thread pool (it is not in the page cache) and goes on
    /// from the event loop.
    private func readFromDisk(count: Int, context: ChannelHandlerContext) {
        guard let current = stream else { return }
        waitingForDisk = true
        let (allocator, descriptor, offset) = (context.channel.allocator, current.descriptor, current.region.readerIndex)
        let read = threadPool.runIfActive(eventLoop: context.eventLoop) { () throws -> ByteBuffer in
            var piece = allocator.buffer(capacity: count)
            let read = piece.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { pointer in
                pread(descriptor, pointer.baseAddress, count, off_t(offset))
            }
            guard read > 0 else { throw IOError(errnoCode: read == 0 ? EIO : errno, reason: "pread") }
            return piece
        }
        read.assumeIsolated().whenComplete { result in
            self.waitingForDisk = false
            // The connection closed while the pool read: the file waited for the read.
            if let handle = self.closeAfterRead {
                self.closeAfterRead = nil
                try? handle.close()
            }
            guard self.stream != nil else { return }
            switch result {
            case .success(let piece):
                self.write(piece, context: context)
                self.send(context: context)
            case .failure(let error):
                // The head promised more bytes than can be sent: only closing tells the client.
                self.abandon(error)
                context.close(promise: nil)
            }
        }
    }

    /// The body is out: its promise completes with the last piece's write (at once for an
    /// empty body), the file closes then, and what waited behind it goes on in order (it
    /// may start another file body).
    private func finish(lastWrite: EventLoopPromise<Void>?, context: ChannelHandlerContext) {
        guard let current = stream else { return }
        stream = nil
        let (file, promise) = (current.region.fileHandle, current.promise)
        if let lastWrite {
            lastWrite.futureResult.whenComplete { result in
                try? file.close()
                promise?.completeWith(result)
            }
        } else {
            try? file.close()
            promise?.succeed()
        }
        while stream == nil, !deferred.isEmpty {
            switch deferred.removeFirst() {
            case .write(let data, let promise): write(context: context, data: data, promise: promise)
            case .flush: context.flush()
            }
        }
    }

    /// Fails the body in progress and everything waiting behind it.
    private func abandon(_ error: any Error) {
        if let current = stream {
            stream = nil
            if waitingForDisk { closeAfterRead = current.region.fileHandle } else { try? current.region.fileHandle.close() }
            current.promise?.fail(error)
        }
        let waiting = deferred
        deferred = []
        for case .write(_, let promise) in waiting { promise?.fail(error) }
    }
}
