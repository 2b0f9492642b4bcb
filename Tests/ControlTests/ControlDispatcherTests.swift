import Control
import ControlProtocol
import Foundation
import Metadata
import OCI
import XCTest

/// JSON-RPC 2.0 as the spec words it, and the first control methods.
final class ControlDispatcherTests: XCTestCase {
    var directory: String!
    var metadata: SQLiteMetadataStore!
    var dispatcher: ControlDispatcher!

    override func setUp() async throws {
        directory = NSTemporaryDirectory() + "/registryd-control-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        metadata = try SQLiteMetadataStore(path: directory + "/registry.db")
        dispatcher = ControlDispatcher(methods: ControlMethods(metadata: metadata, storageDriver: "memory", version: "test").table)
    }

    override func tearDown() async throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func reply(_ line: String) async throws -> JSONValue {
        let answer = await dispatcher.handle(line: line)
        let text = try XCTUnwrap(answer)
        return try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
    }

    func errorCode(_ value: JSONValue) -> Double? { value["error"]?["code"]?.numberValue }

    func testParseErrorIs32700WithNullID() async throws {
        let response = try await reply("{not json")
        XCTAssertEqual(errorCode(response), -32700)
        XCTAssertEqual(response["id"], .null)
    }

    func testInvalidRequestIs32600() async throws {
        for line in [#"{"method":"system.status","id":1}"#, #"{"jsonrpc":"2.0","id":1}"#, #"{"jsonrpc":"2.0","method":5,"id":1}"#, "[]", "42"] {
            let response = try await reply(line)
            XCTAssertEqual(errorCode(response), -32600, line)
        }
    }

    func testUnknownMethodIs32601() async throws {
        let response = try await reply(#"{"jsonrpc":"2.0","method":"user.nuke","id":7}"#)
        XCTAssertEqual(errorCode(response), -32601)
        XCTAssertEqual(response["id"], 7)
    }

    func testBadParamsAre32602() async throws {
        for params in [#"{"limit":0}"#, #"{"limit":"ten"}"#, #"{"after":"../etc"}"#, #"{"bogus":1}"#, #""text""#] {
            let response = try await reply(#"{"jsonrpc":"2.0","method":"repo.list","params":\#(params),"id":1}"#)
            XCTAssertEqual(errorCode(response), -32602, params)
        }
    }

    func testStatusReportsCounts() async throws {
        try metadata.linkBlob(Digest.of([1, 2, 3]), size: 3, to: RepositoryName(parsing: "a/b"))
        let response = try await reply(#"{"jsonrpc":"2.0","method":"system.status","id":"s"}"#)
        let result = try XCTUnwrap(response["result"])
        XCTAssertEqual(result["repositories"], 1)
        XCTAssertEqual(result["blobs"], 1)
        XCTAssertEqual(result["blob_bytes"], 3)
        XCTAssertEqual(result["storage_driver"], "memory")
        XCTAssertEqual(response["id"], "s")
    }

    func testBatchAnswersEveryRequestButNotNotifications() async throws {
        let response = try await reply(#"[{"jsonrpc":"2.0","method":"repo.list","id":1},{"jsonrpc":"2.0","method":"repo.list"},{"jsonrpc":"2.0","method":"nope","id":2}]"#)
        let answers = try XCTUnwrap(response.arrayValue)
        XCTAssertEqual(answers.map { $0["id"] }, [1, 2])
        let onlyNotifications = await dispatcher.handle(line: #"{"jsonrpc":"2.0","method":"repo.list"}"#)
        XCTAssertNil(onlyNotifications)
    }

    func testOversizeBatchIsRefused() async throws {
        let batch = "[" + Array(repeating: #"{"jsonrpc":"2.0","method":"repo.list","id":1}"#, count: ControlDispatcher.maximumBatch + 1).joined(separator: ",") + "]"
        let response = try await reply(batch)
        XCTAssertEqual(errorCode(response), -32600)
    }
}
