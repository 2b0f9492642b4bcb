import CSystemd

#if canImport(Glibc)
    import Glibc
#endif

/// The sockets systemd passed at start (sd_listen_fds_with_names(3)).
///
/// ```swift
/// let activation = try SocketActivation.fromEnvironment(expectedNames: ["registry", "control"])
/// let registrySockets = activation.descriptors(named: "registry")
/// ```
///
/// Every passed descriptor must carry one of the expected names (`FileDescriptorName=`
/// in the .socket unit); an unnamed or unexpected one is a startup error, never a guess.
public struct SocketActivation: Sendable {
    public struct PassedSocket: Sendable, Equatable {
        public let descriptor: CInt
        public let name: String
    }

    public let sockets: [PassedSocket]

    /// Whether the process was socket-activated at all.
    public var isActive: Bool { !sockets.isEmpty }

    /// Reads `LISTEN_FDS` / `LISTEN_FDNAMES` and unsets them, so children do not inherit them.
    public static func fromEnvironment(expectedNames: Set<String>) throws(SocketActivationError) -> SocketActivation {
        var names: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
        let count = sd_listen_fds_with_names(1, &names)
        guard count >= 0 else { throw .system(-count) }
        defer {
            if let names {
                for index in 0..<Int(count) { free(names[index]) }
                free(names)
            }
        }
        var sockets: [PassedSocket] = []
        for index in 0..<Int(count) {
            let descriptor = SD_LISTEN_FDS_START + CInt(index)
            let name = names?[index].map { String(cString: $0) } ?? "unknown"
            // systemd calls a descriptor without FileDescriptorName= "unknown".
            guard expectedNames.contains(name) else { throw .unexpectedName(name, descriptor: descriptor) }
            // Keep the descriptors out of processes we start.
            _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
            sockets.append(PassedSocket(descriptor: descriptor, name: name))
        }
        return SocketActivation(sockets: sockets)
    }

    public func descriptors(named name: String) -> [CInt] {
        sockets.filter { $0.name == name }.map(\.descriptor)
    }
}

public enum SocketActivationError: Error, CustomStringConvertible {
    case system(CInt)
    case unexpectedName(String, descriptor: CInt)

    public var description: String {
        switch self {
        case .system(let code):
            "socket activation: \(String(cString: strerror(code)))"
        case .unexpectedName(let name, let descriptor):
            "socket activation passed fd \(descriptor) named \"\(name)\"; expected FileDescriptorName=registry (TCP) or control (Unix)"
        }
    }
}
