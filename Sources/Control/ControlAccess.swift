#if canImport(Glibc)
    import Glibc
#endif

/// Who may talk to the control socket: root, the daemon's own user, and members of
/// the configured admin group. Checked from the peer's credentials (SO_PEERCRED) on
/// every connection, on top of the socket file's 0660 mode.
public struct ControlAccess: Sendable {
    /// The admin group's id, when one is configured.
    public let groupID: gid_t?
    private let daemonUID: uid_t

    public init(adminGroup: String?) throws(ControlAccessError) {
        daemonUID = getuid()
        guard let adminGroup else {
            groupID = nil
            return
        }
        guard let group = getgrnam(adminGroup) else { throw .unknownGroup(adminGroup) }
        groupID = group.pointee.gr_gid
    }

    /// Whether a peer with these credentials may send commands.
    public func permits(_ peer: PeerCredentials) -> Bool {
        if peer.uid == 0 || peer.uid == daemonUID { return true }
        guard let groupID else { return false }
        return peer.gid == groupID || Self.supplementaryGroups(of: peer.uid, primary: peer.gid).contains(groupID)
    }

    private static func supplementaryGroups(of uid: uid_t, primary: gid_t) -> [gid_t] {
        var record = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        guard getpwuid_r(uid, &record, &buffer, buffer.count, &result) == 0, result != nil, let name = record.pw_name else { return [] }
        var count: CInt = 64
        var groups = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(name, primary, &groups, &count) < 0 {
            groups = [gid_t](repeating: 0, count: Int(count))
            guard getgrouplist(name, primary, &groups, &count) >= 0 else { return [] }
        }
        return Array(groups.prefix(Int(count)))
    }
}

/// The process on the other end of a Unix socket.
public struct PeerCredentials: Sendable, Equatable, CustomStringConvertible {
    public let pid: Int32
    public let uid: uid_t
    public let gid: gid_t

    public init(pid: Int32, uid: uid_t, gid: gid_t) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }

    /// `uid 1000 (alice)`: who did it, for the audit table.
    public var description: String {
        guard let entry = getpwuid(uid), let name = entry.pointee.pw_name else { return "uid \(uid)" }
        return "uid \(uid) (\(String(cString: name)))"
    }
}

public enum ControlAccessError: Error, CustomStringConvertible {
    case unknownGroup(String)

    public var description: String {
        switch self {
        case .unknownGroup(let name): "admin group \(name) does not exist"
        }
    }
}
