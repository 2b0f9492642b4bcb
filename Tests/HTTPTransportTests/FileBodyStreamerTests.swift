import Glibc
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import XCTest

@testable import HTTPTransport

/// File bodies sent as copies from the page cache: the same bytes as the file's range, in
/// order with what is written around them, paced by the channel's writability.
final class FileBodyStreamerTests: XCTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("streamer-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A file of `size` bytes of a repeating pattern, and a region of `range` of it.
    private func region(size: Int, range: Range<Int>? = nil) throws -> (FileRegion, [UInt8]) {
        let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 12) }
        let path = directory + "/file-\(size)"
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        XCTAssertGreaterThanOrEqual(descriptor, 0)
        let range = range ?? 0..<size
        let handle = NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: descriptor)
        return (FileRegion(fileHandle: handle, readerIndex: range.lowerBound, endIndex: range.upperBound), Array(bytes[range]))
    }

    private func channel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(FileBodyStreamer())
        return channel
    }

    /// Body bytes written so far and, after them, the other parts' kinds in order.
    private func drain(_ channel: EmbeddedChannel) throws -> (body: [UInt8], pieces: [Int], after: [String]) {
        var (body, pieces, after) = ([UInt8](), [Int](), [String]())
        while let part = try channel.readOutbound(as: HTTPServerResponsePart.self) {
            switch part {
            case .head(let head): after.append("head \(head.status.code)")
            case .body(.byteBuffer(let buffer)) where after.isEmpty:
                body += buffer.readableBytesView
                pieces.append(buffer.readableBytes)
            case .body: after.append("body")
            case .end: after.append("end")
            }
        }
        return (body, pieces, after)
    }

    func testAFileRangeIsSentAsItsBytesInPiecesAndThePromiseCompletesAfterTheLastOne() throws {
        let channel = try channel()
        let size = FileBodyStreamer.pieceSize * 3 + 1234
        let (region, expected) = try region(size: size, range: 100..<size - 7)
        let written = channel.eventLoop.makePromise(of: Void.self)
        channel.write(HTTPServerResponsePart.body(.fileRegion(region)), promise: written)
        channel.writeAndFlush(HTTPServerResponsePart.end(nil), promise: nil)
        channel.embeddedEventLoop.run()

        let sent = try drain(channel)
        XCTAssertEqual(sent.body, expected)
        XCTAssertTrue(sent.pieces.allSatisfy { $0 <= FileBodyStreamer.pieceSize }, "\(sent.pieces)")
        XCTAssertEqual(sent.pieces.count, 4)
        XCTAssertEqual(sent.after, ["end"])
        XCTAssertNoThrow(try written.futureResult.wait())
        XCTAssertThrowsError(try region.fileHandle.withUnsafeFileDescriptor { _ in }, "the file is closed once sent")
    }

    func testSendingPausesWhileTheChannelIsNotWritableAndGoesOnWhenItIs() throws {
        let channel = try channel()
        let (region, expected) = try region(size: FileBodyStreamer.pieceSize * 2 + 10)
        channel.isWritable = false
        channel.writeAndFlush(HTTPServerResponsePart.body(.fileRegion(region)), promise: nil)
        channel.writeAndFlush(HTTPServerResponsePart.end(nil), promise: nil)
        channel.embeddedEventLoop.run()
        let paused = try drain(channel)
        XCTAssertEqual(paused.body, [], "nothing is read while the channel cannot take it")
        XCTAssertEqual(paused.after, [], "the end waits for the body")

        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        channel.embeddedEventLoop.run()
        let sent = try drain(channel)
        XCTAssertEqual(sent.body, expected)
        XCTAssertEqual(sent.after, ["end"])
    }

    func testOneTurnSendsAtMostItsShareAndTheRestFollowsInLaterTurns() throws {
        let channel = try channel()
        let pieces = FileBodyStreamer.piecesPerTurn * 2 + 1
        let (region, expected) = try region(size: FileBodyStreamer.pieceSize * pieces)
        channel.writeAndFlush(HTTPServerResponsePart.body(.fileRegion(region)), promise: nil)
        XCTAssertEqual(try drain(channel).pieces.count, FileBodyStreamer.piecesPerTurn, "the first turn's share")
        channel.embeddedEventLoop.run()
        XCTAssertEqual(try drain(channel).body, Array(expected.dropFirst(FileBodyStreamer.pieceSize * FileBodyStreamer.piecesPerTurn)))
    }

    func testAnswersWrittenDuringABodyFollowItInOrderAndMayBeFileBodiesThemselves() throws {
        let channel = try channel()
        let (first, firstBytes) = try region(size: FileBodyStreamer.pieceSize + 1)
        let (second, secondBytes) = try region(size: 5000)
        channel.isWritable = false
        channel.write(HTTPServerResponsePart.body(.fileRegion(first)), promise: nil)
        channel.write(HTTPServerResponsePart.end(nil), promise: nil)
        channel.write(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok)), promise: nil)
        channel.write(HTTPServerResponsePart.body(.fileRegion(second)), promise: nil)
        channel.writeAndFlush(HTTPServerResponsePart.end(nil), promise: nil)
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        channel.embeddedEventLoop.run()

        var parts: [String] = []
        var bodies: [[UInt8]] = [[]]
        while let part = try channel.readOutbound(as: HTTPServerResponsePart.self) {
            switch part {
            case .head: parts.append("head"); bodies.append([])
            case .body(.byteBuffer(let buffer)):
                if parts.last != "body" { parts.append("body") }
                bodies[bodies.count - 1] += buffer.readableBytesView
            case .body: XCTFail("a file region went through")
            case .end: parts.append("end")
            }
        }
        XCTAssertEqual(parts, ["body", "end", "head", "body", "end"])
        XCTAssertEqual(bodies, [firstBytes, secondBytes])
    }

    func testAnEmptyRangeSendsNothingAndCompletes() throws {
        let channel = try channel()
        let (region, _) = try region(size: 10, range: 4..<4)
        let written = channel.eventLoop.makePromise(of: Void.self)
        channel.writeAndFlush(HTTPServerResponsePart.body(.fileRegion(region)), promise: written)
        channel.writeAndFlush(HTTPServerResponsePart.end(nil), promise: nil)
        channel.embeddedEventLoop.run()
        let sent = try drain(channel)
        XCTAssertEqual(sent.body, [])
        XCTAssertEqual(sent.after, ["end"])
        XCTAssertNoThrow(try written.futureResult.wait())
    }

    func testAClosedConnectionFailsTheBodyAndWhatWaitsBehindItAndClosesTheFile() throws {
        let channel = try channel()
        let (region, _) = try region(size: FileBodyStreamer.pieceSize * 2)
        channel.isWritable = false
        let body = channel.eventLoop.makePromise(of: Void.self)
        let end = channel.eventLoop.makePromise(of: Void.self)
        channel.write(HTTPServerResponsePart.body(.fileRegion(region)), promise: body)
        channel.writeAndFlush(HTTPServerResponsePart.end(nil), promise: end)
        XCTAssertNoThrow(try channel.close().wait())
        XCTAssertThrowsError(try body.futureResult.wait())
        XCTAssertThrowsError(try end.futureResult.wait())
        XCTAssertThrowsError(try region.fileHandle.withUnsafeFileDescriptor { _ in }, "the file is closed")
    }
}
