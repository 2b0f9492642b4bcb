import NIOCore
import NIOHTTP1
import XCTest

@testable import HTTPTransport

/// The encoded-answer cache: reused only for the same generation and within its
/// lifetime, and bounded in bytes whatever keys callers make up.
final class ImmediateAnswerCacheTests: XCTestCase {
    private func answer(size: Int, generation: UInt64 = 1, expires: NIODeadline = .now() + .seconds(1)) -> ImmediateAnswerCache.Answer {
        ImmediateAnswerCache.Answer(
            bytes: ByteBuffer(repeating: 0x61, count: size), status: .ok, bodyLength: Int64(size),
            generation: generation, expires: expires)
    }

    private func key(_ bytes: [UInt8]) -> ImmediateAnswerCache.Key { ImmediateAnswerCache.Key(bytes: bytes) }

    func testAnAnswerIsReusedOnlyForItsGenerationAndWithinItsLifetime() {
        let cache = ImmediateAnswerCache()
        let now = NIODeadline.now()
        cache.store(answer(size: 10, generation: 7, expires: now + .seconds(1)), for: key([1]))
        XCTAssertNotNil(cache.answer(for: key([1]), generation: 7, now: now))
        XCTAssertNil(cache.answer(for: key([2]), generation: 7, now: now))
        XCTAssertNil(cache.answer(for: key([1]), generation: 7, now: now + .seconds(2)), "expired")
        cache.store(answer(size: 10, generation: 7, expires: now + .seconds(1)), for: key([1]))
        XCTAssertNil(cache.answer(for: key([1]), generation: 8, now: now), "a write happened since")
        XCTAssertNil(cache.answer(for: key([1]), generation: 7, now: now), "and the stale answer was dropped")
        XCTAssertEqual(cache.heldBytes, 0)
    }

    func testMadeUpKeysCannotGrowItPastItsByteBound() {
        // Anyone can vary Accept, so keys are free: the bytes kept must stay bounded.
        let cache = ImmediateAnswerCache(capacity: 100_000, byteCapacity: 64 * 1024, largestAnswer: 8 * 1024)
        let now = NIODeadline.now()
        for index in 0..<5_000 {
            cache.store(answer(size: 4 * 1024), for: key(Array("accept-\(index)".utf8)))
            XCTAssertLessThanOrEqual(cache.heldBytes, 64 * 1024)
        }
        XCTAssertNotNil(cache.answer(for: key(Array("accept-4999".utf8)), generation: 1, now: now))
        // An answer larger than the largest kept is answered but never kept.
        cache.store(answer(size: 9 * 1024), for: key([9]))
        XCTAssertNil(cache.answer(for: key([9]), generation: 1, now: now))
    }

    func testEncodingWritesTheHeadAndOmitsTheBodyForHEAD() throws {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: "2")
        headers.add(name: "Docker-Distribution-API-Version", value: "registry/2.0")
        let response = HTTPResponse(status: .ok, headers: headers, body: .bytes(ByteBuffer(string: "{}")))
        let get = try XCTUnwrap(ImmediateAnswerCache.encode(response, method: .GET, version: .http1_1, keepAlive: true))
        XCTAssertEqual(
            String(buffer: get),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nDocker-Distribution-API-Version: registry/2.0\r\n\r\n{}"
        )
        let head = try XCTUnwrap(ImmediateAnswerCache.encode(response, method: .HEAD, version: .http1_0, keepAlive: true))
        XCTAssertEqual(
            String(buffer: head),
            "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nDocker-Distribution-API-Version: registry/2.0\r\nConnection: keep-alive\r\n\r\n"
        )
        // A value that would split the answer is never written from here.
        var hostile = response
        hostile.headers.replaceOrAdd(name: "Content-Type", value: "a\r\nSet-Cookie: x")
        XCTAssertNil(ImmediateAnswerCache.encode(hostile, method: .GET, version: .http1_1, keepAlive: true))
    }
}
