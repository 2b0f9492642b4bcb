import ControlProtocol
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A blocking client for the control socket: one request line out, one line back.
struct ControlClient {
    private let descriptor: CInt

    init(path: String) throws {
        descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw ControlClientError.system("socket", errno) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw ControlClientError.pathTooLong(path) }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            buffer.copyBytes(from: pathBytes)
            buffer[pathBytes.count] = 0
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            let code = errno
            close(descriptor)
            throw ControlClientError.connect(path, code)
        }
    }

    func call(_ request: RPCRequest) throws -> RPCResponse {
        defer { close(descriptor) }
        var line = try JSONEncoder().encode(request)
        line.append(UInt8(ascii: "\n"))
        try line.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                guard written > 0 else { throw ControlClientError.system("write", errno) }
                offset += written
            }
        }
        var received = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !received.contains(UInt8(ascii: "\n")) {
            let count = read(descriptor, &buffer, buffer.count)
            guard count > 0 else { break }
            received.append(contentsOf: buffer[0..<count])
        }
        guard let end = received.firstIndex(of: UInt8(ascii: "\n")) else { throw ControlClientError.noResponse }
        return try JSONDecoder().decode(RPCResponse.self, from: received[..<end])
    }
}

enum ControlClientError: Error, CustomStringConvertible {
    case system(String, CInt)
    case connect(String, CInt)
    case pathTooLong(String)
    case noResponse

    var description: String {
        switch self {
        case .system(let call, let code): "\(call): \(String(cString: strerror(code)))"
        case .connect(let path, let code):
            "cannot connect to \(path): \(String(cString: strerror(code))) (is registryd running? --socket sets the path)"
        case .pathTooLong(let path): "socket path too long: \(path)"
        case .noResponse: "registryd closed the connection without answering"
        }
    }
}
