import FoundationEssentials
import Logging
import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

/// The control socket: a Unix stream socket where each line is a JSON-RPC request
/// (or batch) and each answer is one line.
///
/// ```swift
/// let server = ControlServer(dispatcher: dispatcher, access: try ControlAccess(adminGroup: nil), logger: logger)
/// let listener = try await server.bind(path: "/run/registryd/control.sock")
/// try await server.serve(listener)
/// ```
///
/// The socket file is created with mode 0660 and the admin group (0600 without one);
/// each connection's peer credentials are checked by `ControlAccess` as well, and a
/// refused peer gets one error line and nothing happens.
public struct ControlServer: Sendable {
    public typealias Connection = NIOAsyncChannel<ByteBuffer, ByteBuffer>
    public typealias Listener = NIOAsyncChannel<Connection, Never>

    let dispatcher: ControlDispatcher
    let access: ControlAccess
    let logger: Logger
    /// Longest request line accepted; a longer one closes the connection.
    public static let maximumLineLength = 1 << 20

    public init(dispatcher: ControlDispatcher, access: ControlAccess, logger: Logger) {
        self.dispatcher = dispatcher
        self.access = access
        self.logger = logger
    }

    /// Creates the socket at `path`: mode 0660 with group `group`, or 0600 without one.
    public func bind(path: String, group: gid_t? = nil) async throws -> Listener {
        // Create the file owner-only from the start: no window in which others can connect.
        let previousMask = umask(0o177)
        defer { umask(previousMask) }
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true) { channel in
                channel.eventLoop.makeCompletedFuture { try Connection(wrappingChannelSynchronously: channel) }
            }
        if let group {
            guard chown(path, getuid(), group) == 0, chmod(path, 0o660) == 0 else {
                try? await listener.channel.close()
                throw ControlServerError.permissions(path, errno)
            }
        }
        return listener
    }

    /// Adopts a Unix socket that systemd bound (its mode and group come from the unit).
    public func adopt(socket: CInt) async throws -> Listener {
        try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(socket) { channel in
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

    /// -32000 with no id: sent once to a peer that may not use the socket.
    static let permissionDenied =
        #"{"error":{"code":-32000,"data":{"detail":"root, the daemon's user or the admin group only"},"message":"Permission denied"},"id":null,"jsonrpc":"2.0"}"#

    /// SO_PEERCRED of a connected Unix socket.
    static func peerCredentials(of channel: any Channel) async throws -> PeerCredentials {
        guard let provider = channel as? any SocketOptionProvider else { throw ControlServerError.noCredentials }
        let credentials: UnixCredentials = try await provider.unsafeGetSocketOption(
            level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED)
        ).get()
        return PeerCredentials(pid: credentials.pid, uid: credentials.uid, gid: credentials.gid)
    }

    /// `struct ucred` (unix(7)), which Swift's Glibc module does not export: same layout.
    struct UnixCredentials: Sendable {
        var pid: Int32 = 0
        var uid: uid_t = 0
        var gid: gid_t = 0
    }

    private func handle(_ connection: Connection) async {
        let peer = try? await Self.peerCredentials(of: connection.channel)
        do {
            try await connection.executeThenClose { inbound, outbound in
                guard let peer, access.permits(peer) else {
                    logger.warning("control socket: refused \(peer.map { "\($0), pid \($0.pid)" } ?? "a peer without credentials")")
                    try await outbound.write(ByteBuffer(string: Self.permissionDenied + "\n"))
                    return
                }
                var pending = ByteBuffer()
                for try await var chunk in inbound {
                    pending.writeBuffer(&chunk)
                    while let newline = pending.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
                        let length = newline - pending.readerIndex
                        let line = pending.readString(length: length) ?? ""
                        pending.moveReaderIndex(forwardBy: 1)
                        if line.allSatisfy(\.isWhitespace) { continue }
                        if let reply = await dispatcher.handle(line: line, caller: peer.description) {
                            try await outbound.write(ByteBuffer(string: reply + "\n"))
                        }
                    }
                    pending.discardReadBytes()
                    if pending.readableBytes > Self.maximumLineLength {
                        let reply =
                            #"{"error":{"code":-32600,"message":"Invalid Request","data":{"detail":"line too long"}},"id":null,"jsonrpc":"2.0"}"#
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

public enum ControlServerError: Error, CustomStringConvertible {
    case permissions(String, CInt)
    case noCredentials

    public var description: String {
        switch self {
        case .permissions(let path, let code): "cannot set group and mode of \(path): \(String(cString: strerror(code)))"
        case .noCredentials: "the control connection has no peer credentials"
        }
    }
}
