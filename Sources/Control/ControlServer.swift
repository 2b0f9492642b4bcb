#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOPosix
import Foundation

/// The control socket: a Unix stream socket where each line is a JSON-RPC request
/// (or batch) and each answer is one line.
///
/// ```swift
/// let server = ControlServer(dispatcher: dispatcher, logger: logger)
/// let listener = try await server.bind(path: "/run/registryd/control.sock")
/// try await server.serve(listener)
/// ```
///
/// The socket file is created with mode 0600 (owner only). Group access and the
/// peer-credential check for an admin group come with the systemd integration.
public struct ControlServer: Sendable {
    public typealias Connection = NIOAsyncChannel<ByteBuffer, ByteBuffer>
    public typealias Listener = NIOAsyncChannel<Connection, Never>

    let dispatcher: ControlDispatcher
    let logger: Logger
    /// Longest request line accepted; a longer one closes the connection.
    public static let maximumLineLength = 1 << 20

    public init(dispatcher: ControlDispatcher, logger: Logger) {
        self.dispatcher = dispatcher
        self.logger = logger
    }

    public func bind(path: String) async throws -> Listener {
        // Create the file owner-only from the start: no window in which others can connect.
        let previousMask = umask(0o177)
        defer { umask(previousMask) }
        return try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true) { channel in
                channel.eventLoop.makeCompletedFuture { try Connection(wrappingChannelSynchronously: channel) }
            }
    }

    public func serve(_ listener: Listener) async throws {
        try await withThrowingDiscardingTaskGroup { group in
            try await listener.executeThenClose { inbound in
                for try await connection in inbound {
                    group.addTask { await handle(connection) }
                }
            }
        }
    }

    private func handle(_ connection: Connection) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                var pending = ByteBuffer()
                for try await var chunk in inbound {
                    pending.writeBuffer(&chunk)
                    while let newline = pending.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
                        let length = newline - pending.readerIndex
                        let line = pending.readString(length: length) ?? ""
                        pending.moveReaderIndex(forwardBy: 1)
                        if line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
                        if let reply = await dispatcher.handle(line: line) {
                            try await outbound.write(ByteBuffer(string: reply + "\n"))
                        }
                    }
                    pending.discardReadBytes()
                    if pending.readableBytes > Self.maximumLineLength {
                        let reply = #"{"error":{"code":-32600,"message":"Invalid Request","data":{"detail":"line too long"}},"id":null,"jsonrpc":"2.0"}"#
                        try await outbound.write(ByteBuffer(string: reply + "\n"))
                        return
                    }
                }
            }
        } catch {
            logger.debug("control connection ended: \(error)")
        }
    }
}
