import NIOCore
import NIOPosix
import Synchronization

/// Many connections that each send a request a byte at a time (slowloris): a head that
/// never ends, or a body that never does. They hold the server's connections, parsers and
/// request tasks while tests measure what others get done beside them.
///
/// ```swift
/// let loris = try await SlowClients.open(500, port: registry.port) { index in "GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: " }
/// defer { loris.close() }
/// ```
public final class SlowClients: Sendable {
    private let channels: Mutex<[any Channel]>

    private init(channels: [any Channel]) {
        self.channels = Mutex(channels)
    }

    /// Connections still open (the server closes those it gives up on).
    public var openCount: Int { channels.withLock { $0.filter(\.isActive).count } }

    /// Opens `count` connections to `port`, sends each `start(index)` at once and then one
    /// more byte (`a`) every `interval`, forever.
    public static func open(
        _ count: Int, port: Int, every interval: TimeAmount = .seconds(1), start: (Int) -> String
    ) async throws -> SlowClients {
        var channels: [any Channel] = []
        for index in 0..<count {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelInitializer { channel in
                    // What the server answers is read and dropped.
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Discard()) }
                }
                .connect(host: "127.0.0.1", port: port).get()
            channel.writeAndFlush(ByteBuffer(string: start(index)), promise: nil)
            channel.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { task in
                guard channel.isActive else { return task.cancel() }
                channel.writeAndFlush(ByteBuffer(string: "a"), promise: nil)
            }
            channels.append(channel)
        }
        return SlowClients(channels: channels)
    }

    public func close() {
        for channel in channels.withLock({ $0 }) { channel.close(promise: nil) }
    }

    private final class Discard: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
    }
}
