import NIOCore
import NIOHTTP1

/// Immediate answers as the bytes that go on the wire, so a repeated request costs a
/// lookup and one write: no routing, no header building, no encoding.
///
/// One cache per event loop, touched only by that loop (no lock). An answer is reused
/// for the same method, target, HTTP version, keep-alive, `Accept` and `Authorization`
/// while the responder's generation is unchanged (every write transaction changes it:
/// a push, a delete, a visibility or account change is seen by the next request) and
/// for at most `lifetime`, after which the responder decides again (a credential cache
/// entry or a token that expired, a throttled address).
///
/// Bounded in entries and in bytes, and answers over `largestAnswer` are not kept: the
/// key includes `Accept`, which anyone may vary, so without a byte bound a few thousand
/// variants of a request for a 4 MiB public manifest would each keep a copy.
final class ImmediateAnswerCache {
    struct Answer {
        let bytes: ByteBuffer
        let status: HTTPResponseStatus
        let bodyLength: Int64
        let generation: UInt64
        let expires: NIODeadline
    }

    /// What an answer depends on (`ScannedRequestHead.Candidate.answerKey`), hashed as one
    /// block of bytes: `[UInt8]`'s own hashing feeds the hasher byte by byte, which cost
    /// more than the rest of a lookup.
    struct Key: Hashable {
        let bytes: [UInt8]

        func hash(into hasher: inout Hasher) {
            bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
        }
    }

    static let lifetime = TimeAmount.seconds(1)
    private let capacity: Int
    private let byteCapacity: Int
    let largestAnswer: Int
    private var answers: [Key: Answer] = [:]
    private var bytes = 0

    init(capacity: Int = 4096, byteCapacity: Int = 8 << 20, largestAnswer: Int = 64 << 10) {
        self.capacity = capacity
        self.byteCapacity = byteCapacity
        self.largestAnswer = largestAnswer
    }

    /// Bytes held by the kept answers and their keys.
    var heldBytes: Int { bytes }

    func answer(for key: Key, generation: UInt64, now: NIODeadline) -> Answer? {
        guard let answer = answers[key] else { return nil }
        guard answer.generation == generation, now < answer.expires else {
            answers[key] = nil
            bytes -= Self.size(answer, key)
            return nil
        }
        return answer
    }

    /// Keeps `answer` unless it is larger than `largestAnswer`; a full cache starts afresh.
    func store(_ answer: Answer, for key: Key) {
        let size = Self.size(answer, key)
        guard answer.bytes.readableBytes <= largestAnswer else { return }
        if answers.count >= capacity || bytes + size > byteCapacity {
            answers.removeAll(keepingCapacity: true)
            bytes = 0
        }
        if let replaced = answers.updateValue(answer, forKey: key) { bytes -= Self.size(replaced, key) }
        bytes += size
    }

    private static func size(_ answer: Answer, _ key: Key) -> Int {
        answer.bytes.readableBytes + key.bytes.count
    }

    /// The whole answer as HTTP/1 bytes: status line, headers, body (none for HEAD).
    /// `nil` when a header could not be sent as it is (a CR or LF in a value would split
    /// the answer): then the full path, with NIO's header validation, answers.
    static func encode(_ response: HTTPResponse, method: HTTPMethod, version: HTTPVersion, keepAlive: Bool) -> ByteBuffer? {
        var headers = HTTPServer.finalHeaders(response)
        HTTPServer.setConnection(&headers, reuse: keepAlive, version: version)
        var body: ByteBuffer?
        if case .bytes(let bytes) = response.body {
            if headers.first(name: "Content-Length") == nil { headers.add(name: "Content-Length", value: String(bytes.readableBytes)) }
            if method != .HEAD { body = bytes }
        }
        var buffer = ByteBuffer()
        buffer.reserveCapacity(256 + (body?.readableBytes ?? 0))
        buffer.writeString("HTTP/\(version.major).\(version.minor) \(response.status.code) \(response.status.reasonPhrase)\r\n")
        for (name, value) in headers {
            guard Self.isSafe(name), Self.isSafe(value) else { return nil }
            buffer.writeString(name)
            buffer.writeStaticString(": ")
            buffer.writeString(value)
            buffer.writeStaticString("\r\n")
        }
        buffer.writeStaticString("\r\n")
        if var body { buffer.writeBuffer(&body) }
        return buffer
    }

    private static func isSafe(_ text: String) -> Bool {
        !text.utf8.contains { $0 == 0x0D || $0 == 0x0A || $0 == 0x00 }
    }
}
