import Auth
import Control
import ControlProtocol
import Foundation
import Logging
import Metadata
import NIOCore
import NIOPosix
import RegistryTesting
import Storage
import XCTest

/// The control socket itself: owner-only file, one JSON line in, one line out.
final class ControlServerTests: XCTestCase {
    func testSocketIsOwnerOnlyAndAnswersLineByLine() async throws {
        let directory = "/tmp/registryd-ctl-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let metadata = try SQLiteMetadataStore(path: directory + "/registry.db")
        let server = ControlServer(
            dispatcher: ControlMethods(metadata: metadata, blobs: BlobStore(driver: MemoryDriver()), version: "t").makeDispatcher(),
            access: try ControlAccess(adminGroup: nil), logger: Logger(label: "test"))
        let path = directory + "/control.sock"
        let listener = try await server.bind(path: path)
        let serving = Task { try await server.serve(listener) }

        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        XCTAssertEqual(mode, 0o600)

        let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(unixDomainSocketPath: path) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        let lines = try await client.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "{\"jsonrpc\":\"2.0\",\"method\":\"repo.list\",\"id\":1}\n\n{broken\n"))
            var received = ""
            for try await buffer in inbound {
                received += String(buffer: buffer)
                if received.filter({ $0 == "\n" }).count >= 2 { break }
            }
            return received.split(separator: "\n").map(String.init)
        }
        XCTAssertEqual(lines.count, 2)
        XCTAssertTrue(lines[0].contains(#""repositories":[]"#), lines[0])
        XCTAssertTrue(lines[1].contains("-32700"), lines[1])

        try await listener.channel.close()
        serving.cancel()
        _ = await serving.result
    }

    /// Sends one request line as another user (via setpriv) and returns the answer.
    func sendAs(user: String, group: String, to path: String) throws -> String {
        let script = """
            import socket, sys
            s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
            try:
                s.sendall(b'{"jsonrpc":"2.0","method":"user.create","params":{"name":"intruder","password":"long-enough","staff":true},"id":1}\\n')
            except BrokenPipeError:
                pass  # a refused peer is answered and closed without being read: maybe before this send
            print(s.makefile().readline().strip())
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = ["--reuid", user, "--regid", group, "--clear-groups", "/usr/bin/python3", "-c", script, path]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        process.waitUntilExit()
        return String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }

    func testPeersOutsideTheAdminGroupAreRefusedAndNothingHappens() async throws {
        try requireCapability(getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"), "needs root and setpriv")
        let directory = "/tmp/registryd-peer-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let metadata = try SQLiteMetadataStore(path: directory + "/registry.db")
        let nogroup = try XCTUnwrap(getgrnam("nogroup")).pointee.gr_gid
        let server = ControlServer(
            dispatcher: ControlMethods(
                metadata: metadata, blobs: BlobStore(driver: MemoryDriver()), passwords: PasswordHasher(cost: 4), version: "t"
            ).makeDispatcher(),
            access: try ControlAccess(adminGroup: "nogroup"), logger: Logger(label: "test"))
        let path = directory + "/control.sock"
        let listener = try await server.bind(path: path, group: nogroup)
        let serving = Task { try await server.serve(listener) }
        defer { serving.cancel() }

        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        XCTAssertEqual(mode, 0o660)
        // The file mode lets the group in; open it to everyone so that only the peer check stands.
        chmod(path, 0o666)
        let stranger = try sendAs(user: "daemon", group: "daemon", to: path)
        XCTAssertTrue(stranger.contains("-32000"), stranger)
        await assertNil(try await metadata.user(named: "intruder"), "a refused peer changes nothing")
        await assertEqual(try await metadata.auditEntries(limit: 10), [])

        let member = try sendAs(user: "nobody", group: "nogroup", to: path)
        XCTAssertTrue(member.contains(#""staff":true"#), member)
        let audit = try await metadata.auditEntries(limit: 10)
        XCTAssertEqual(audit.map(\.method), ["user.create"])
        XCTAssertTrue(audit.first?.actor.contains("uid 65534") == true, audit.first?.actor ?? "")
        XCTAssertFalse(audit.first?.params?.contains("long-enough") ?? true, "passwords never reach the audit table")
        try await listener.channel.close()
    }
}
