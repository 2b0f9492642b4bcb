import NIOCore
import Synchronization

/// The server's open connections and whether each is in the middle of a request:
/// what a graceful shutdown needs to close idle connections at once and let busy
/// ones finish. Also counts requests served, for status reports.
final class ConnectionTracker: Sendable {
    private struct Entry {
        let channel: any Channel
        var busy: Bool
    }

    private let state = Mutex<(entries: [ObjectIdentifier: Entry], draining: Bool)>(([:], false))
    let requestsServed = Atomic<Int>(0)
    /// `draining`, read without the lock on every request.
    private let drainingFlag = Atomic<Bool>(false)

    var isDraining: Bool { drainingFlag.load(ordering: .acquiring) }
    var openConnections: Int { state.withLock { $0.entries.count } }

    /// - Returns: `false` when the server is draining and the connection must close.
    func add(_ channel: any Channel) -> Bool {
        state.withLock { state in
            guard !state.draining else { return false }
            state.entries[ObjectIdentifier(channel)] = Entry(channel: channel, busy: false)
            return true
        }
    }

    func remove(_ channel: any Channel) {
        _ = state.withLock { $0.entries.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    /// Marks a connection busy (a request started) or idle (its response was written).
    func setBusy(_ channel: any Channel, _ busy: Bool) {
        if !busy { requestsServed.add(1, ordering: .relaxed) }
        state.withLock { $0.entries[ObjectIdentifier(channel)]?.busy = busy }
    }

    func isBusy(_ channel: any Channel) -> Bool {
        state.withLock { $0.entries[ObjectIdentifier(channel)]?.busy ?? false }
    }

    /// Stops taking new requests: idle connections close now, busy ones after their response.
    func drain() {
        let idle = state.withLock { state in
            state.draining = true
            drainingFlag.store(true, ordering: .releasing)
            return state.entries.values.filter { !$0.busy }.map(\.channel)
        }
        for channel in idle { channel.close(promise: nil) }
    }

    /// Closes whatever is still open (the grace period is over).
    func closeAll() {
        let channels = state.withLock { $0.entries.values.map(\.channel) }
        for channel in channels { channel.close(promise: nil) }
    }
}

/// Closes a connection that has been silent for the idle timeout, unless a request is
/// in progress on it (a long download reads nothing from the client for a while).
///
/// Inbound only, and the connection's first handler: every request passes through it,
/// twice (its bytes and the read's end). NIO's `IdleStateHandler` and a handler acting on
/// its event did the same job from two handlers, one of them also on the outbound path;
/// blob HEADs at 1,000 connections cost 10–11.5 µs of CPU each with them and 8.5 µs
/// without (docs/PERFORMANCE.md, "Many connections").
final class IdleConnectionCloser: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let connections: ConnectionTracker
    private let timeout: TimeAmount
    /// When the last read ended (stamped once per read event, not per message).
    private var lastRead = NIODeadline.now()
    private var check: Scheduled<Void>?

    init(connections: ConnectionTracker, timeout: TimeAmount) {
        self.connections = connections
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stop()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stop()
        context.fireChannelInactive()
    }

    private func stop() {
        check?.cancel()
        check = nil
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        lastRead = .now()
        context.fireChannelReadComplete()
    }

    private func start(_ context: ChannelHandlerContext) {
        guard check == nil else { return }
        lastRead = .now()
        schedule(context, at: lastRead + timeout)
    }

    private func schedule(_ context: ChannelHandlerContext, at deadline: NIODeadline) {
        check = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(deadline: deadline) {
            self.checkIdle(context)
        }
    }

    /// Runs when the connection may have been silent for `timeout`: closes it if it was
    /// and no request is in progress, or checks again when it could next be.
    private func checkIdle(_ context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        let now = NIODeadline.now()
        if now - lastRead < timeout {
            schedule(context, at: lastRead + timeout)
        } else if connections.isBusy(context.channel) {
            schedule(context, at: now + timeout)
        } else {
            check = nil
            context.close(promise: nil)
        }
    }
}
