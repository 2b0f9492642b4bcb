import CSystemd

/// Tells systemd how the service is doing (sd_notify(3)). Without `NOTIFY_SOCKET`
/// (not started by systemd) every call is a no-op.
///
/// ```swift
/// let notifier = ServiceNotifier()
/// notifier.ready()
/// notifier.status("serving; 12 requests")
/// ```
public struct ServiceNotifier: Sendable {
    public init() {}

    public func ready() { send("READY=1") }
    public func stopping() { send("STOPPING=1") }
    public func reloading() { send("RELOADING=1") }
    public func watchdog() { send("WATCHDOG=1") }

    /// A one-line status for `systemctl status`.
    public func status(_ text: String) {
        send("STATUS=" + String(text.map { $0 == "\n" ? " " : $0 }))
    }

    /// How often to send `WATCHDOG=1`, when systemd asks for it: half its timeout.
    public var watchdogInterval: Duration? {
        var microseconds: UInt64 = 0
        guard sd_watchdog_enabled(0, &microseconds) > 0, microseconds > 0 else { return nil }
        return .microseconds(Int64(microseconds / 2))
    }

    private func send(_ state: String) {
        _ = sd_notify(0, state)
    }
}
