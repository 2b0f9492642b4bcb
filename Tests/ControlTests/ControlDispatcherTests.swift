import Auth
import Control
import ControlProtocol
import Foundation
import Metadata
import OCI
import RegistryTesting
import Storage
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
        dispatcher = ControlDispatcher(
            methods: ControlMethods(metadata: metadata, blobs: BlobStore(driver: MemoryDriver()), version: "test").table)
    }

    override func tearDown() async throws {
        dispatcher = nil
        metadata = nil
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
        for line in [
            #"{"method":"system.status","id":1}"#, #"{"jsonrpc":"2.0","id":1}"#, #"{"jsonrpc":"2.0","method":5,"id":1}"#, "[]", "42",
        ] {
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
        try await metadata.linkBlob(Digest.of([1, 2, 3]), size: 3, to: RepositoryName(parsing: "a/b"))
        let response = try await reply(#"{"jsonrpc":"2.0","method":"system.status","id":"s"}"#)
        let result = try XCTUnwrap(response["result"])
        XCTAssertEqual(result["repositories"], 1)
        XCTAssertEqual(result["blobs"], 1)
        XCTAssertEqual(result["blob_bytes"], 3)
        XCTAssertEqual(result["storage_driver"], "memory")
        XCTAssertEqual(response["id"], "s")
    }

    func testBatchAnswersEveryRequestButNotNotifications() async throws {
        let response = try await reply(
            #"[{"jsonrpc":"2.0","method":"repo.list","id":1},{"jsonrpc":"2.0","method":"repo.list"},{"jsonrpc":"2.0","method":"nope","id":2}]"#
        )
        let answers = try XCTUnwrap(response.arrayValue)
        XCTAssertEqual(answers.map { $0["id"] }, [1, 2])
        let onlyNotifications = await dispatcher.handle(line: #"{"jsonrpc":"2.0","method":"repo.list"}"#)
        XCTAssertNil(onlyNotifications)
    }

    func testOversizeBatchIsRefused() async throws {
        let batch =
            "["
            + Array(repeating: #"{"jsonrpc":"2.0","method":"repo.list","id":1}"#, count: ControlDispatcher.maximumBatch + 1).joined(
                separator: ",") + "]"
        let response = try await reply(batch)
        XCTAssertEqual(errorCode(response), -32600)
    }
}

/// `user.*`, `namespace.*`, `repo.set_visibility` through the dispatcher.
final class AccountMethodTests: XCTestCase {
    var directory: String!
    var metadata: SQLiteMetadataStore!
    var dispatcher: ControlDispatcher!

    override func setUp() async throws {
        directory = NSTemporaryDirectory() + "/registryd-accounts-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        metadata = try SQLiteMetadataStore(path: directory + "/registry.db")
        dispatcher = ControlDispatcher(
            methods: ControlMethods(
                metadata: metadata, blobs: BlobStore(driver: MemoryDriver()), passwords: PasswordHasher(cost: 4), version: "test"
            ).table)
    }

    override func tearDown() async throws {
        dispatcher = nil
        metadata = nil
        try? FileManager.default.removeItem(atPath: directory)
    }

    func call(_ method: String, _ params: String) async throws -> JSONValue {
        let answer = await dispatcher.handle(line: #"{"jsonrpc":"2.0","method":"\#(method)","params":\#(params),"id":1}"#)
        return try JSONDecoder().decode(JSONValue.self, from: Data(try XCTUnwrap(answer).utf8))
    }

    func testUserLifecycleNeverShowsTheHash() async throws {
        let created = try await call("user.create", #"{"name":"alice","password":"long-enough","staff":true}"#)
        XCTAssertEqual(created["result"]?["staff"], .bool(true))
        XCTAssertNil(created["result"]?["password_hash"])
        let duplicate = try await call("user.create", #"{"name":"alice","password":"long-enough"}"#)
        XCTAssertEqual(duplicate["error"]?["code"], -32002)
        let stored = try await unwrap(try await metadata.user(named: "alice"))
        XCTAssertTrue(PasswordHasher.verify("long-enough", against: stored.passwordHash))
        _ = try await call("user.set_password", #"{"name":"alice","password":"another-one"}"#)
        await assertTrue(
            PasswordHasher.verify("another-one", against: try await unwrap(try await metadata.user(named: "alice")).passwordHash))
        _ = try await call("user.disable", #"{"name":"alice"}"#)
        await assertEqual(try await metadata.user(named: "alice")?.isDisabled, true)
        let deleted = try await call("user.delete", #"{"name":"alice"}"#)
        XCTAssertEqual(deleted["result"]?["deleted"], "alice")
        let missing = try await call("user.get", #"{"name":"alice"}"#)
        XCTAssertEqual(missing["error"]?["code"], -32001)
    }

    func testBadAccountParamsChangeNothing() async throws {
        for params in [
            #"{"name":"Alice","password":"long-enough"}"#, #"{"name":"a/b","password":"long-enough"}"#,
            #"{"name":"alice","password":"short"}"#, #"{"name":"alice"}"#, #"{"name":"alice","password":"long-enough","staff":"yes"}"#,
        ] {
            let response = try await call("user.create", params)
            XCTAssertEqual(response["error"]?["code"], -32602, params)
        }
        await assertEqual(try await metadata.users(), [])
        let role = try await call("namespace.grant", #"{"namespace":"team","user":"nobody","role":"owner"}"#)
        XCTAssertEqual(role["error"]?["code"], -32001)
        let badRole = try await call("namespace.grant", #"{"namespace":"team","user":"nobody","role":"king"}"#)
        XCTAssertEqual(badRole["error"]?["code"], -32602)
        await assertEqual(try await metadata.namespaces(), [])
    }

    func testHtpasswdImportTakesBcryptLinesOnly() async throws {
        let hash = PasswordHasher(cost: 4).hash("from-distribution")
        let text = "carol:\(hash)\ndave:{SHA}abcdef\n"
        let encoded = String(decoding: try JSONEncoder().encode(JSONValue.string(text)), as: UTF8.self)
        let response = try await call("user.import_htpasswd", #"{"htpasswd":\#(encoded)}"#)
        XCTAssertEqual(response["result"]?["imported"], ["carol"])
        XCTAssertEqual(response["result"]?["skipped"], ["dave"])
        await assertTrue(
            PasswordHasher.verify("from-distribution", against: try await unwrap(try await metadata.user(named: "carol")).passwordHash))
    }

    func testGrantAndVisibility() async throws {
        _ = try await call("user.create", #"{"name":"bob","password":"long-enough"}"#)
        let granted = try await call("namespace.grant", #"{"namespace":"team","user":"bob","role":"collaborator"}"#)
        XCTAssertEqual(granted["result"]?["role"], "collaborator")
        await assertEqual(try await metadata.role(of: "bob", in: "team"), .collaborator)
        let unknownRepository = try await call("repo.set_visibility", #"{"name":"team/app","public":true}"#)
        XCTAssertEqual(unknownRepository["error"]?["code"], -32001)
        try await metadata.linkBlob(Digest.of([1]), size: 1, to: RepositoryName(parsing: "team/app"))
        _ = try await call("repo.set_visibility", #"{"name":"team/app","public":true}"#)
        await assertTrue(try await metadata.isPublic(RepositoryName(parsing: "team/app")))
    }
}
