import NIOHTTP1
import XCTest

@testable import HTTPTransport

/// The immediate path's head scanner: which requests it may answer, and where every
/// other request ends; anything unusual is left to NIO's parser.
final class RequestHeadScannerTests: XCTestCase {
    private func scan(_ text: String) -> ScannedRequestHead? {
        let bytes = Array(text.utf8)
        let result = bytes.withUnsafeBytes { ScannedRequestHead.scan($0) }
        guard case .head(let head) = result else { return nil }
        return head
    }

    func testAPlainGetIsACandidateWithWhatItsAnswerDependsOn() throws {
        let text = "GET /v2/a/b/manifests/v1 HTTP/1.1\r\nHost: x\r\naccept: one\r\nACCEPT: two\r\nAuthorization: Basic abc\r\n\r\nGET /next"
        let head = try XCTUnwrap(scan(text))
        XCTAssertEqual(head.headLength, text.utf8.count - "GET /next".utf8.count)
        XCTAssertEqual(head.framing, .length(0))
        let candidate = try XCTUnwrap(head.candidate)
        XCTAssertEqual(candidate.method, .GET)
        XCTAssertEqual(candidate.target, "/v2/a/b/manifests/v1")
        XCTAssertEqual(candidate.version, .http1_1)
        XCTAssertTrue(candidate.keepAlive)
        XCTAssertEqual(candidate.accept, ["one", "two"])
        XCTAssertEqual(candidate.authorization, "Basic abc")
        XCTAssertEqual(candidate.requestHead.headers["Accept"], ["one", "two"])

        // The key separates what changes the answer, and ignores what does not.
        let other = try XCTUnwrap(
            scan("GET /v2/a/b/manifests/v1 HTTP/1.1\r\nUser-Agent: y\r\naccept: one\r\nACCEPT: two\r\nAuthorization: Basic abc\r\n\r\n")?
                .candidate)
        XCTAssertEqual(candidate.answerKey, other.answerKey)
        for changed in [
            "HEAD /v2/a/b/manifests/v1 HTTP/1.1\r\naccept: one\r\nACCEPT: two\r\nAuthorization: Basic abc\r\n\r\n",
            "GET /v2/a/b/manifests/v2 HTTP/1.1\r\naccept: one\r\nACCEPT: two\r\nAuthorization: Basic abc\r\n\r\n",
            "GET /v2/a/b/manifests/v1 HTTP/1.1\r\naccept: one\r\nAuthorization: Basic abc\r\n\r\n",
            "GET /v2/a/b/manifests/v1 HTTP/1.1\r\naccept: one\r\nACCEPT: two\r\nAuthorization: Basic abd\r\n\r\n",
            "GET /v2/a/b/manifests/v1 HTTP/1.1\r\naccept: one\r\nACCEPT: two\r\n\r\n",
            "GET /v2/a/b/manifests/v1 HTTP/1.1\r\naccept: one\r\nACCEPT: two\r\nAuthorization: Basic abc\r\nConnection: close\r\n\r\n",
            "GET /v2/a/b/manifests/v1 HTTP/1.0\r\naccept: one\r\nACCEPT: two\r\nAuthorization: Basic abc\r\n\r\n",
        ] {
            XCTAssertNotEqual(try XCTUnwrap(scan(changed)?.candidate).answerKey, candidate.answerKey, changed)
        }
    }

    func testAnIncompleteHeadWaitsForMoreBytes() {
        for text in [
            "", "GET /v2/ HTTP/1.1", "GET /v2/ HTTP/1.1\r", "GET /v2/ HTTP/1.1\r\nHost: x\r\n", "GET /v2/ HTTP/1.1\r\nHost: x\r\n\r",
        ] {
            XCTAssertNil(scan(text), text.debugDescription)
        }
    }

    func testKeepAliveFollowsTheVersionAndConnectionHeader() {
        XCTAssertEqual(scan("GET / HTTP/1.1\r\nConnection: Keep-Alive, Close\r\n\r\n")?.candidate?.keepAlive, false)
        XCTAssertEqual(scan("GET / HTTP/1.0\r\n\r\n")?.candidate?.keepAlive, false)
        XCTAssertEqual(scan("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")?.candidate?.keepAlive, true)
        XCTAssertEqual(
            scan("GET / HTTP/1.0\r\nConnection:  Keep-Alive , x\r\n\r\n")?.candidate?.keepAlive, true, "blanks around an option")
        // Found by the head-differential fuzzer: NIO's rule trims spaces around an option
        // but not tabs (`keep-alive<TAB>` is no keep-alive there), so a tab after the
        // leading blanks leaves the request to the full path; it is still framed.
        for text in [
            "GET / HTTP/1.0\r\nConnection: keep-alive\t\r\n\r\n", "GET / HTTP/1.0\r\nConnection:  Keep-Alive\t, x\r\n\r\n",
            "GET / HTTP/1.0\r\nConnection: x,\tkeep-alive\r\n\r\n",
        ] {
            let head = scan(text)
            XCTAssertEqual(head?.framing, .length(0), text.debugDescription)
            XCTAssertNil(head?.candidate, text.debugDescription)
        }
        XCTAssertEqual(scan("GET / HTTP/1.0\r\nConnection:\tkeep-alive\r\n\r\n")?.candidate?.keepAlive, true, "a tab before the value")
        // Found by the head-differential fuzzer: blanks inside an option were dropped.
        XCTAssertEqual(scan("GET / HTTP/1.0\r\nConnection: ke ep-alive\r\n\r\n")?.candidate?.keepAlive, false)
        XCTAssertEqual(scan("GET / HTTP/1.1\r\nConnection: clo se\r\n\r\n")?.candidate?.keepAlive, true)
    }

    func testRequestsWithABodyOrConditionsAreFramedButNotCandidates() throws {
        let post = try XCTUnwrap(scan("POST /v2/a/blobs/uploads/ HTTP/1.1\r\nContent-Length: 42\r\n\r\n"))
        XCTAssertEqual(post.framing, .length(42))
        XCTAssertNil(post.candidate)
        for text in [
            "GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\n", "GET / HTTP/1.1\r\nRange: bytes=0-1\r\n\r\n",
            "HEAD / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n", "GET / HTTP/1.1\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n",
            "DELETE /v2/a/manifests/v1 HTTP/1.1\r\n\r\n", "GET relative HTTP/1.1\r\n\r\n", "GET /caf\u{e9} HTTP/1.1\r\n\r\n",
        ] {
            let head = try XCTUnwrap(scan(text), text)
            XCTAssertNil(head.candidate, text)
            XCTAssertNotEqual(head.framing, .unframed, text)
        }
        XCTAssertEqual(scan("GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")?.framing, .length(0))
        XCTAssertNotNil(scan("GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")?.candidate)
    }

    func testAnythingUnusualIsLeftToNIOsParser() {
        let unusual = [
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n",
            "CONNECT a:443 HTTP/1.1\r\n\r\n",
            "GET / HTTP/2.0\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
            "GET / HTTP/1.1\r\nX: a\u{1}b\r\n\r\n",
            "\r\nGET / HTTP/1.1\r\n\r\n",
        ]
        for text in unusual {
            XCTAssertEqual(scan(text)?.framing, .unframed, text.debugDescription)
        }
        // A bare LF or CR anywhere: no waiting for a CRLF CRLF that may never come.
        for text in ["GET / HTTP/1.1\nHost: x\n\n", "GET / HTTP/1.1\r\nHost: x\rY\r\n\r\n"] {
            XCTAssertEqual(scan(text)?.framing, .unframed, text.debugDescription)
        }
    }
}
