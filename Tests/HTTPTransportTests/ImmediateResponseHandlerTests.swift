import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import XCTest

@testable import HTTPTransport

/// The immediate path in the server's own pipeline, on an `EmbeddedChannel`: what it
/// answers from memory, what reaches NIO's parser, and the order of answers.
final class ImmediateResponseHandlerTests: XCTestCase {
    /// Answers `GET /hello` from memory; everything else goes down the full path.
    struct Hello: ImmediateResponder {
        func respondImmediately(to head: HTTPRequestHead, remoteAddress: String) -> HTTPResponse? {
            guard head.uri == "/hello" else { return nil }
            return .json(.ok, Array(#"{"hello":1}"#.utf8))
        }
        var immediateAnswerGeneration: UInt64? { 1 }
    }

    /// The server's pipeline: the immediate path, with NIO's HTTP handlers (and `tail`, as
    /// the async channel would be there) added when a request first needs them.
    private func channel(tail: (any ChannelHandler)? = nil) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let handler = ImmediateResponseHandler(
            answers: ImmediateAnswers(responder: Hello(), cache: ImmediateAnswerCache()),
            connections: ConnectionTracker(), accessLog: AccessLog(logger: logger),
            addFullPath: { pipeline, immediate in
                try HTTPServer.addHTTPHandlers(to: pipeline, immediate: immediate)
                if let tail { try pipeline.addHandler(tail) }
            })
        try channel.pipeline.syncOperations.addHandler(handler)
        return channel
    }

    private func written(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let part = try channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let buffer) = part { text += String(buffer: buffer) }
        }
        return text
    }

    private func parsedHeads(_ channel: EmbeddedChannel) throws -> [String] {
        var uris: [String] = []
        while let part = try channel.readInbound(as: HTTPServerRequestPart.self) {
            if case .head(let head) = part { uris.append("\(head.method) \(head.uri)") }
        }
        return uris
    }

    func testAnswersFromMemoryAndHandsTheRestToNIOInOrder() throws {
        let channel = try channel()
        try channel.writeInbound(ByteBuffer(string: "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"))
        let first = try written(channel)
        XCTAssertTrue(first.hasPrefix("HTTP/1.1 200 OK\r\n"), first)
        XCTAssertTrue(first.hasSuffix(#"{"hello":1}"#), first)
        XCTAssertEqual(try parsedHeads(channel), [], "NIO's parser never saw it")

        // A request only the full path answers, then one the immediate path could answer:
        // both go to NIO, so the second cannot overtake the first (NIO's pipelining
        // handler passes it on once the first is answered).
        try channel.writeInbound(ByteBuffer(string: "GET /other HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\n\r\n"))
        XCTAssertEqual(try written(channel), "")
        XCTAssertEqual(try parsedHeads(channel), ["GET /other"])
        for expected in [["GET /hello"], []] {
            try channel.writeOutbound(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .noContent)))
            try channel.writeOutbound(HTTPServerResponsePart.end(nil))
            XCTAssertTrue(try written(channel).hasPrefix("HTTP/1.1 204"))
            XCTAssertEqual(try parsedHeads(channel), expected)
        }
        // Both answered: reads are answered here again.
        try channel.writeInbound(ByteBuffer(string: "GET /hello HTTP/1.1\r\n\r\n"))
        XCTAssertTrue(try written(channel).hasPrefix("HTTP/1.1 200 OK\r\n"))
        XCTAssertEqual(try parsedHeads(channel), [])
        _ = try channel.finish()
    }

    /// Counts the read-completes that reach the end of the pipeline.
    final class ReadCompleteCounter: ChannelInboundHandler {
        typealias InboundIn = Any
        var count = 0
        func channelReadComplete(context: ChannelHandlerContext) {
            count += 1
            context.fireChannelReadComplete()
        }
    }

    func testTheFullPathIsAddedOnlyForARequestItMustAnswer() throws {
        let counter = ReadCompleteCounter()
        let channel = try channel(tail: counter)
        try channel.writeInbound(ByteBuffer(string: "GET /hello HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\n\r\n"))
        XCTAssertEqual(try written(channel).components(separatedBy: "HTTP/1.1 200 OK").count, 3)
        XCTAssertNil(try? channel.pipeline.syncOperations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self))

        try channel.writeInbound(ByteBuffer(string: "GET /other HTTP/1.1\r\n\r\n"))
        XCTAssertEqual(try parsedHeads(channel), ["GET /other"])
        XCTAssertEqual(counter.count, 1, "the full path got the request and its read-complete")
        try channel.writeOutbound(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .noContent)))
        try channel.writeOutbound(HTTPServerResponsePart.end(nil))
        XCTAssertTrue(try written(channel).hasPrefix("HTTP/1.1 204"))

        // Answered here again: the full path stays, but hears of nothing.
        try channel.writeInbound(ByteBuffer(string: "GET /hello HTTP/1.1\r\n\r\n"))
        XCTAssertTrue(try written(channel).hasPrefix("HTTP/1.1 200 OK\r\n"))
        XCTAssertEqual(counter.count, 1, "everything was answered here")
        _ = try channel.finish()
    }

    func testConnectionCloseClosesOnceTheAnswerIsWritten() throws {
        let channel = try channel()
        try channel.writeInbound(ByteBuffer(string: "GET /hello HTTP/1.1\r\nConnection: close\r\n\r\nGET /hello HTTP/1.1\r\n\r\n"))
        let text = try written(channel)
        XCTAssertEqual(text.components(separatedBy: "HTTP/1.1 200 OK").count, 2, "one answer, the second request is never read")
        XCTAssertTrue(text.contains("Connection: close\r\n"), text)
        channel.embeddedEventLoop.run()
        XCTAssertFalse(channel.isActive)
    }

    func testUnframedRequestsReachNIOsParserAndItsErrorAnswer() throws {
        let channel = try channel()
        // Two Content-Length headers: NIO's parser refuses it with its own 400.
        XCTAssertThrowsError(
            try channel.writeInbound(ByteBuffer(string: "GET /hello HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")))
        XCTAssertTrue(try written(channel).hasPrefix("HTTP/1.1 400 Bad Request"))
        XCTAssertEqual(try parsedHeads(channel), [])
    }
}
