import Foundation
import Synchronization

/// A stand-in for systemd's notification socket: collects what sd_notify sends.
final class NotifySocket: Sendable {
    let path: String
    private let descriptor: Int32
    private let messages = Messages()

    private final class Messages: Sendable {
        let lines = Mutex<[String]>([])
    }

    init(path: String) throws {
        self.path = path
        descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            let bytes = Array(path.utf8)
            buffer.copyBytes(from: bytes)
            buffer[bytes.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else { throw POSIXError(.EADDRINUSE) }
        let thread = Thread { [descriptor, messages] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = recv(descriptor, &buffer, buffer.count, 0)
                guard count > 0 else { return }
                let text = String(decoding: buffer[0..<count], as: UTF8.self)
                messages.lines.withLock { $0.append(contentsOf: text.split(separator: "\n").map(String.init)) }
            }
        }
        thread.start()
    }

    deinit {
        shutdown(descriptor, Int32(SHUT_RDWR))
        close(descriptor)
        unlink(path)
    }

    var received: [String] { messages.lines.withLock { $0 } }

    /// Waits until a message equal to `message` (or starting with it, for `STATUS=`) arrived.
    func waitFor(_ message: String, seconds: Double = 10) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if received.contains(where: { $0 == message || (message.hasSuffix("=") && $0.hasPrefix(message)) }) { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return false
    }
}
