import NIOCore
import NIOHTTP1

/// Closes the file behind a `FileRegion` body once NIO has written it.
///
/// The async outbound writer does not say when a write has reached the socket, so
/// the handler that sees the write's promise owns closing the file.
final class FileRegionLifetimeHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let part = unwrapOutboundIn(data)
        guard case .body(.fileRegion(let region)) = part else {
            context.write(data, promise: promise)
            return
        }
        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenComplete { result in
            try? region.fileHandle.close()
            promise?.completeWith(result)
        }
        context.write(data, promise: written)
    }
}
