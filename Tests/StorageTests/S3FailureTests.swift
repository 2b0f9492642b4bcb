import Foundation
import HTTPTransport
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import RegistryAPI
import RegistryTesting
import Storage
import Synchronization
import XCTest

/// How the S3 driver meets a store that fails: a scripted stand-in for S3 (this unit
/// test's mock, served by registryd's own HTTP server) answers throttling, 5xx and
/// refusals, and the registry in front of it answers its clients clearly.
final class S3FailureTests: XCTestCase {
    /// Answers each request with the next scripted status, then with the last one: an
    /// error with the scripted code, a 200 with the scripted body (none: a 42-byte object's
    /// headers).
    final class ScriptedStore: RequestResponder {
        let script: [(HTTPResponseStatus, String)]
        let requests = Mutex<[String]>([])

        init(_ script: [(HTTPResponseStatus, String)]) { self.script = script }

        func respond(to request: HTTPRequest, remoteAddress: String) async -> HTTPResponse {
            // Drain the body so the connection can be reused.
            do { for try await _ in request.body {} } catch {}
            let index = requests.withLock { requests in
                requests.append("\(request.method) \(request.path)")
                return requests.count - 1
            }
            let (status, code) = script[min(index, script.count - 1)]
            var headers = HTTPHeaders()
            if status == .ok && code.isEmpty { headers.add(name: "Content-Length", value: "42") }
            let body = status == .ok ? code : "<?xml version=\"1.0\"?><Error><Code>\(code)</Code><Message>scripted</Message></Error>"
            return HTTPResponse(status: status, headers: headers, body: body.isEmpty ? .none : .bytes(ByteBuffer(string: body)))
        }

        var count: Int { requests.withLock { $0.count } }
    }

    private var listeners: [HTTPServer.Listener] = []

    override func tearDown() async throws {
        for listener in listeners { try? await listener.channel.close() }
    }

    private func serve(_ store: any RequestResponder) async throws -> S3Configuration {
        var logger = Logger(label: "scripted-s3")
        logger.logLevel = .critical
        let server = HTTPServer(responder: store, group: MultiThreadedEventLoopGroup.singleton, logger: logger)
        let listener = try await server.bind(host: "127.0.0.1", port: 0)
        listeners.append(listener)
        Task { try await server.serve([listener]) }
        return try S3Configuration(
            endpoint: "http://127.0.0.1:\(listener.channel.localAddress!.port!)", bucket: "scripted",
            credentials: S3Credentials(accessKeyID: "AKID", secretAccessKey: "secret"))
    }

    func testThrottlingIsRetriedWithBackoffUntilItSucceeds() async throws {
        let store = ScriptedStore([(.serviceUnavailable, "SlowDown"), (.internalServerError, "InternalError"), (.ok, "")])
        let driver = S3Driver(configuration: try await serve(store))
        let size = try await driver.size(of: StoragePath("blobs/x/data"))
        XCTAssertEqual(size, 42)
        XCTAssertEqual(store.count, 3)
    }

    func testAStoreThatKeepsFailingIsReportedUnavailable() async throws {
        let store = ScriptedStore([(.serviceUnavailable, "SlowDown")])
        let driver = S3Driver(configuration: try await serve(store))
        do {
            _ = try await driver.list(under: StoragePath("blobs"))
            XCTFail("a store that always throttles must fail")
        } catch StorageError.unavailable(let failure) {
            let message = failure.description
            XCTAssertTrue(message.contains("SlowDown"), message)
        }
        XCTAssertEqual(store.count, 5, "five attempts, then give up")
    }

    func testARefusalIsNotRetried() async throws {
        let store = ScriptedStore([(.forbidden, "AccessDenied")])
        let driver = S3Driver(configuration: try await serve(store))
        do {
            _ = try await driver.list(under: StoragePath("blobs"))
            XCTFail("a refusal must fail")
        } catch StorageError.io(let failure) {
            let message = failure.description
            XCTAssertTrue(message.contains("AccessDenied"), message)
        }
        XCTAssertEqual(store.count, 1)
    }

    func testAnUnreachableStoreIsReportedUnavailable() async throws {
        let port = try await serve(ScriptedStore([(.ok, "")])).port
        try await listeners.removeLast().channel.close()
        let driver = S3Driver(
            configuration: try S3Configuration(
                endpoint: "http://127.0.0.1:\(port)", bucket: "gone",
                credentials: S3Credentials(accessKeyID: "AKID", secretAccessKey: "secret")))
        do {
            _ = try await driver.size(of: StoragePath("blobs/x/data"))
            XCTFail("a closed port must fail")
        } catch StorageError.unavailable(let failure) {
            let message = failure.description
            XCTAssertTrue(message.contains("unreachable"), message)
        }
    }

    func testAStoreLostInTheMiddleOfAnAppendIsReportedUnavailable() async throws {
        // Found by the crash test that kills radosgw: the appender's own S3 calls let the
        // transport's error through, and clients got 500 instead of 503 + Retry-After.
        let noUploads = "<?xml version=\"1.0\"?><ListMultipartUploadsResult></ListMultipartUploadsResult>"
        // Opening finds no stale upload and no object; then the store stops answering.
        let store = ScriptedStore([(.ok, noUploads), (.notFound, "NoSuchKey"), (.serviceUnavailable, "ServiceUnavailable")])
        let driver = S3Driver(configuration: try await serve(store))
        let appender = try await driver.appender(for: StoragePath("uploads/u/data"), truncatingTo: nil)
        try await appender.append(ByteBuffer(bytes: Fixtures.bytes(1000)))
        do {
            try await appender.sync()
            XCTFail("a store that is away must fail")
        } catch StorageError.unavailable(let failure) {
            let message = failure.description
            XCTAssertTrue(message.contains("ServiceUnavailable"), message)
        }
    }

    /// Serves one object whose first answer breaks off half-way; records each `Range`.
    final class BreakingStore: RequestResponder {
        let object: [UInt8]
        let ranges = Mutex<[String?]>([])

        init(_ object: [UInt8]) { self.object = object }

        func respond(to request: HTTPRequest, remoteAddress: String) async -> HTTPResponse {
            let range = request.headers.first(name: "range")
            let first = ranges.withLock {
                $0.append(range); return $0.count == 1
            }
            let start = range.flatMap { Int($0.dropFirst("bytes=".count).split(separator: "-").first ?? "") } ?? 0
            let rest = Array(object[start...])
            var headers = HTTPHeaders()
            if range != nil { headers.add(name: "Content-Range", value: "bytes \(start)-\(object.count - 1)/\(object.count)") }
            let half = rest.count / 2
            let delivered = Mutex(false)
            let body = ByteChunks {
                guard
                    !delivered.withLock({
                        let was = $0; $0 = true; return was
                    })
                else {
                    if first {
                        // The connection breaks mid-body, once the half is on the wire
                        // (closing at once could drop bytes still queued for the socket).
                        try await Task.sleep(for: .milliseconds(200))
                        throw CancellationError()
                    }
                    return nil
                }
                return ByteBuffer(bytes: first ? Array(rest[..<half]) : rest)
            }
            return HTTPResponse(status: range == nil ? .ok : .partialContent, headers: headers, body: .chunks(body))
        }
    }

    func testAReadThatBreaksOffResumesWithARangedGetFromWhereItStopped() async throws {
        let object = Fixtures.bytes(300_000)
        let store = BreakingStore(object)
        let driver = S3Driver(configuration: try await serve(store))
        var read: [UInt8] = []
        for try await chunk in try await driver.read(StoragePath("blobs/x/data"), range: nil) { read += Array(buffer: chunk) }
        XCTAssertEqual(read.count, object.count)
        XCTAssertTrue(read == object, "the bytes after the break are the object's own")
        XCTAssertEqual(store.ranges.withLock { $0 }, [nil, "bytes=150000-"], "resumed from the first byte not received")
    }

    func testTemporaryCredentialsSendTheirSessionTokenSigned() {
        let credentials = S3Credentials(accessKeyID: "ASIAEXAMPLE", secretAccessKey: "secret", sessionToken: "token/with+chars=")
        let signer = SignatureV4(credentials: credentials, region: "us-east-1")
        let headers = signer.authorizationHeaders(
            method: "GET", path: "/bucket/key", query: [], headers: [("host", "s3.example.com")],
            payloadHash: SignatureV4.unsignedPayload, date: Date(timeIntervalSince1970: 1_700_000_000))
        XCTAssertEqual(headers.first { $0.0 == "x-amz-security-token" }?.1, "token/with+chars=")
        let authorization = headers.first { $0.0 == "authorization" }?.1 ?? ""
        XCTAssertTrue(authorization.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token"), authorization)
        // The token is part of what is signed: another token gives another signature.
        let other = SignatureV4(
            credentials: S3Credentials(accessKeyID: "ASIAEXAMPLE", secretAccessKey: "secret", sessionToken: "another"), region: "us-east-1"
        )
        .authorizationHeaders(
            method: "GET", path: "/bucket/key", query: [], headers: [("host", "s3.example.com")],
            payloadHash: SignatureV4.unsignedPayload, date: Date(timeIntervalSince1970: 1_700_000_000))
        XCTAssertNotEqual(other.first { $0.0 == "authorization" }?.1, authorization)
        let presigned = signer.presignedQuery(
            method: "GET", path: "/bucket/key", query: [], host: "s3.example.com", date: Date(timeIntervalSince1970: 1_700_000_000),
            expires: 60)
        XCTAssertEqual(presigned.first { $0.0 == "X-Amz-Security-Token" }?.1, "token/with+chars=")
    }

    func testTheRegistryAnswers503WithRetryAfterAndKeepsNothing() async throws {
        // The bucket check at start succeeds, then the store throttles every call.
        let store = ScriptedStore([(.ok, "")] + [(.serviceUnavailable, "SlowDown")])
        let registry = try await TestRegistry.start(driver: .s3(try await serve(store)))
        let blob = Fixtures.bytes(1000)
        let push = try await registry.client.send(.POST, "/v2/a/b/blobs/uploads/?digest=\(Fixtures.digest(blob))", body: .bytes(blob))
        XCTAssertEqual(push.status, .serviceUnavailable, push.text)
        XCTAssertEqual(push.header("Retry-After"), "5")
        XCTAssertTrue(push.text.contains("UNKNOWN") && push.text.contains("retry later"), push.text)
        XCTAssertFalse(push.text.contains("SlowDown"), "the store's details stay in the log")
        let head = try await registry.client.send(.HEAD, "/v2/a/b/blobs/\(Fixtures.digest(blob))")
        XCTAssertEqual(head.status, .notFound, "nothing half-written became visible")
        await registry.stop()
    }
}
