import NIOCore
import XCTest

@testable import HTTPTransport

/// The immediate path's framing as a state machine: bytes in, actions out, no channel.
final class ImmediateFramingTests: XCTestCase {
    private let plainGet = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"

    /// Runs `nextAction` until it waits, answering every offer with `decide`.
    private func actions(
        _ framing: inout ImmediateFraming, mayOffer: Bool = true,
        decide: (ScannedRequestHead.Candidate) -> Bool = { _ in true }
    ) -> [String] {
        var seen: [String] = []
        while true {
            switch framing.nextAction(mayOffer: mayOffer) {
            case .waitForBytes:
                return seen
            case .forward(let bytes):
                seen.append("forward \(String(buffer: bytes))")
            case .offer(let candidate):
                if decide(candidate) {
                    let after = framing.answered(keepAlive: candidate.keepAlive)
                    seen.append("answered \(candidate.target)\(after == .closeWhenWritten ? " close" : "")")
                } else {
                    seen.append("declined \(candidate.target): forward \(String(buffer: framing.declined()))")
                }
            }
        }
    }

    private func receive(_ framing: inout ImmediateFraming, _ text: String) -> String? {
        framing.receive(ByteBuffer(string: text)).map { String(buffer: $0) }
    }

    func testPipelinedReadsAreOfferedAndAnUploadWithItsBodyIsForwardedWhole() {
        var framing = ImmediateFraming()
        let upload = "POST /up HTTP/1.1\r\nContent-Length: 5\r\n\r\n"
        XCTAssertNil(receive(&framing, plainGet + upload + "ab"))
        XCTAssertEqual(actions(&framing), ["answered /hello", "forward \(upload)ab"])
        XCTAssertEqual(framing.mode, .forwardingBody(remaining: 3))
        XCTAssertNil(receive(&framing, "cde" + plainGet))
        // The rest of the body goes on; the GET after it waits for the upload's answer.
        XCTAssertEqual(actions(&framing), ["forward cde", "forward \(plainGet)"])
        XCTAssertEqual(framing.unansweredForwarded, 2)
        framing.forwardedRequestAnswered()
        framing.forwardedRequestAnswered()
        XCTAssertNil(receive(&framing, plainGet))
        XCTAssertEqual(actions(&framing), ["answered /hello"], "in order again once NIO answered what it was given")
    }

    func testAHeadSplitAnywhereIsOfferedOnceWhole() {
        var framing = ImmediateFraming()
        for byte in plainGet.utf8.dropLast() {
            XCTAssertNil(framing.receive(ByteBuffer(bytes: [byte])))
            XCTAssertEqual(actions(&framing), [])
        }
        XCTAssertNil(receive(&framing, "\n"))
        XCTAssertEqual(actions(&framing), ["answered /hello"])
    }

    func testADeclinedReadIsForwardedAndHoldsBackLaterOffers() {
        var framing = ImmediateFraming()
        XCTAssertNil(receive(&framing, plainGet + plainGet))
        var first = true
        let seen = actions(&framing) { _ in
            defer { first = false }; return !first
        }
        XCTAssertEqual(seen, ["declined /hello: forward \(plainGet)", "forward \(plainGet)"])
    }

    func testUnusualFramingHandsTheConnectionToNIOForGood() {
        var framing = ImmediateFraming()
        let chunked = "POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n"
        XCTAssertNil(receive(&framing, chunked))
        XCTAssertEqual(actions(&framing), ["forward \(chunked)"])
        XCTAssertEqual(framing.mode, .handedOver)
        XCTAssertEqual(receive(&framing, plainGet), plainGet, "later bytes go straight on")
    }

    func testAnOversizedHeadIsHandedOverOnceItPassesTheLimit() {
        var framing = ImmediateFraming()
        let start = "GET /hello HTTP/1.1\r\nX-Long: " + String(repeating: "a", count: ImmediateFraming.headLimit)
        XCTAssertNil(receive(&framing, start))
        XCTAssertEqual(actions(&framing), ["forward \(start)"])
        XCTAssertEqual(framing.mode, .handedOver)
    }

    func testConnectionCloseEndsReadingAfterTheAnswer() {
        var framing = ImmediateFraming()
        XCTAssertNil(receive(&framing, "GET /bye HTTP/1.1\r\nConnection: close\r\n\r\n" + plainGet))
        XCTAssertEqual(actions(&framing), ["answered /bye close"])
        XCTAssertEqual(framing.mode, .closing)
        XCTAssertNil(receive(&framing, plainGet), "nothing more is read")
        XCTAssertEqual(actions(&framing), [])
    }

    func testWhileDrainingNothingIsOffered() {
        var framing = ImmediateFraming()
        XCTAssertNil(receive(&framing, plainGet))
        XCTAssertEqual(actions(&framing, mayOffer: false), ["forward \(plainGet)"])
    }
}
