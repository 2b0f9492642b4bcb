import Control
import ControlProtocol
import Foundation
import Logging
import Metadata
import NIOCore
import NIOPosix
import XCTest

/// The control socket itself: owner-only file, one JSON line in, one line out.
final class ControlServerTests: XCTestCase {
    func testSocketIsOwnerOnlyAndAnswersLineByLine() async throws {
        let directory = "/tmp/registryd-ctl-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let metadata = try SQLiteMetadataStore(path: directory + "/registry.db")
        let server = ControlServer(dispatcher: ControlDispatcher(methods: ControlMethods(metadata: metadata, storageDriver: "memory", version: "t").table),
                                   logger: Logger(label: "test"))
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
}
