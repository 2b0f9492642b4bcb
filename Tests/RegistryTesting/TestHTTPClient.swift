import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// A small HTTP/1.1 client for tests: one connection per request, full control over
/// headers and body framing (Content-Length, chunked without length, none).
///
/// ```swift
/// let response = try await client.send(.PATCH, "/v2/a/blobs/uploads/\(id)", body: .chunked([part1, part2]))
/// XCTAssertEqual(response.status, .accepted)
/// ```
public struct TestHTTPClient: Sendable {
    public enum Body: Sendable {
        case none
        /// Sent with a Content-Length.
        case bytes([UInt8])
        /// Sent with `Transfer-Encoding: chunked` and no length, like podman's streamed PATCH.
        case chunked([[UInt8]])
        /// `chunk` sent `count` times, chunked: a large body that the client never holds whole.
        case repeated(chunk: [UInt8], count: Int)
        /// `chunk` sent `count` times with a pause after each: a slow client.
        case paced(chunk: [UInt8], count: Int, pause: Duration)
    }

    public let host: String
    public let port: Int
    /// Sent with every request before the request's own (credentials, for instance).
    public let defaultHeaders: [(String, String)]

    public init(host: String = "127.0.0.1", port: Int, defaultHeaders: [(String, String)] = []) {
        self.host = host
        self.port = port
        self.defaultHeaders = defaultHeaders
    }

    /// The same client, sending basic-auth credentials with every request.
    public func withBasicAuth(user: String, password: String) -> TestHTTPClient {
        let credentials = Data("\(user):\(password)".utf8).base64EncodedString()
        return TestHTTPClient(host: host, port: port, defaultHeaders: defaultHeaders + [("Authorization", "Basic " + credentials)])
    }

    public func send(_ method: HTTPMethod, _ uri: String, headers: [(String, String)] = [], body: Body = .none) async throws -> TestResponse
    {
        do {
            return try await exchange(method, uri, headers: headers, body: body)
        } catch {
            throw TestHTTPClientError.failed("\(method) \(uri)", String(describing: error))
        }
    }

    private func exchange(_ method: HTTPMethod, _ uri: String, headers: [(String, String)], body: Body) async throws -> TestResponse {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var head = HTTPRequestHead(version: .http1_1, method: method, uri: uri)
            head.headers.add(name: "Host", value: "\(host):\(port)")
            for (name, value) in defaultHeaders + headers { head.headers.add(name: name, value: value) }
            switch body {
            case .none:
                if method == .PUT || method == .POST || method == .PATCH, head.headers["Content-Length"].isEmpty {
                    head.headers.add(name: "Content-Length", value: "0")
                }
            case .bytes(let bytes):
                if head.headers["Content-Length"].isEmpty { head.headers.add(name: "Content-Length", value: String(bytes.count)) }
            case .chunked, .repeated, .paced:
                head.headers.add(name: "Transfer-Encoding", value: "chunked")
            }
            do {
                try await outbound.write(.head(head))
                switch body {
                case .none: break
                case .bytes(let bytes): if !bytes.isEmpty { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: bytes)))) }
                case .chunked(let parts): for part in parts { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: part)))) }
                case .repeated(let chunk, let count):
                    let buffer = ByteBuffer(bytes: chunk)
                    for _ in 0..<count { try await outbound.write(.body(.byteBuffer(buffer))) }
                case .paced(let chunk, let count, let pause):
                    let buffer = ByteBuffer(bytes: chunk)
                    for _ in 0..<count {
                        try await outbound.write(.body(.byteBuffer(buffer)))
                        try await Task.sleep(for: pause)
                    }
                }
                try await outbound.write(.end(nil))
            } catch {
                // A server may answer early and close while the body is still going out
                // (a refused upload); like real clients, read what it answered.
            }

            var response: HTTPResponseHead?
            var collected = ByteBuffer()
            for try await part in inbound {
                switch part {
                case .head(let received):
                    if received.status == .continue { continue }
                    response = received
                case .body(var buffer):
                    collected.writeBuffer(&buffer)
                case .end:
                    guard let response else { throw TestHTTPClientError.noResponse }
                    return TestResponse(status: response.status, headers: response.headers, body: Array(collected.readableBytesView))
                }
            }
            throw TestHTTPClientError.noResponse
        }
    }

    /// Opens a connection, sends `text` (maybe nothing) and waits for the server to close
    /// it. - Returns: how long that took, or `nil` when it stayed open past `limit`.
    public func secondsUntilClosed(after text: String, limit: Duration) async throws -> Duration? {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        let started = ContinuousClock.now
        let closer = channel.channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(limit.components.seconds) * 1_000_000_000)) {
            channel.channel.close(promise: nil)
        }
        let closedByServer: Bool = try await channel.executeThenClose { inbound, outbound in
            if !text.isEmpty { try await outbound.write(ByteBuffer(string: text)) }
            do {
                for try await _ in inbound {}
            } catch {}
            return ContinuousClock.now - started < limit
        }
        closer.cancel()
        return closedByServer ? ContinuousClock.now - started : nil
    }

    /// Sends a raw request line and headers as written, for requests NIO's encoder
    /// would refuse to build (hostile paths). - Returns: the raw response text.
    public func sendRaw(_ text: String) async throws -> String {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: text))
            var collected = ""
            for try await buffer in inbound {
                collected += String(buffer: buffer)
                if collected.contains("\r\n\r\n") { break }
            }
            return collected
        }
    }
}

extension TestHTTPClient {
    /// Sends a raw request and reads until the server closes the connection.
    /// - Returns: the response head's text and how many bytes followed it.
    public func sendRawUntilClosed(_ text: String) async throws -> (head: String, bodyBytes: Int) {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: text))
            var received: [UInt8] = []
            for try await buffer in inbound { received += buffer.readableBytesView }
            // The head ends at the first CRLF CRLF.
            var end = 0
            while end + 3 < received.count,
                !(received[end] == 13 && received[end + 1] == 10 && received[end + 2] == 13 && received[end + 3] == 10)
            {
                end += 1
            }
            guard end + 3 < received.count else { return (String(decoding: received, as: UTF8.self), 0) }
            return (String(decoding: received[..<end], as: UTF8.self), received.count - end - 4)
        }
    }
}

extension TestHTTPClient {
    /// Sends `pieces` on one connection, pausing between them so each arrives as a read
    /// of its own, then reads until the server closes the connection (or `limit` passes).
    /// - Returns: everything received.
    public func exchangeRaw(_ pieces: [[UInt8]], pause: Duration = .milliseconds(30), limit: Duration = .seconds(10)) async throws
        -> [UInt8]
    {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        let closer = channel.channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(limit.components.seconds) * 1_000_000_000)) {
            channel.channel.close(promise: nil)
        }
        defer { closer.cancel() }
        return try await channel.executeThenClose { inbound, outbound in
            for (index, piece) in pieces.enumerated() {
                if index > 0 { try await Task.sleep(for: pause) }
                try await outbound.write(ByteBuffer(bytes: piece))
            }
            var received: [UInt8] = []
            do {
                for try await buffer in inbound { received += buffer.readableBytesView }
            } catch {}
            return received
        }
    }

    /// Splits raw HTTP/1.1 answers (each with a Content-Length, or none for HEAD) into
    /// status codes and bodies. `heads` says which answers are to HEAD requests.
    public static func splitAnswers(_ bytes: [UInt8], heads: Set<Int> = []) -> [(status: Int, headers: String, body: [UInt8])] {
        var answers: [(Int, String, [UInt8])] = []
        var rest = bytes[...]
        while !rest.isEmpty {
            guard let end = rest.indices.first(where: { rest[$0...].starts(with: [13, 10, 13, 10]) }) else { break }
            let head = String(decoding: rest[..<end], as: UTF8.self)
            rest = rest[(end + 4)...]
            let status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
            let length =
                head.split(separator: "\r\n").compactMap { line -> Int? in
                    let parts = line.split(separator: ":", maxSplits: 1)
                    guard parts.count == 2, parts[0].lowercased() == "content-length" else { return nil }
                    return Int(parts[1].trimmingCharacters(in: .whitespaces))
                }.first ?? 0
            let bodyLength = heads.contains(answers.count) ? 0 : min(length, rest.count)
            answers.append((status, head, Array(rest.prefix(bodyLength))))
            rest = rest.dropFirst(bodyLength)
        }
        return answers
    }
}

public struct TestResponse: Sendable {
    public let status: HTTPResponseStatus
    public let headers: HTTPHeaders
    public let body: [UInt8]

    public var text: String { String(decoding: body, as: UTF8.self) }

    public func header(_ name: String) -> String? { headers.first(name: name) }

    /// The body parsed as a JSON object.
    public func json() throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            throw TestHTTPClientError.notJSONObject(text)
        }
        return object
    }

    /// The OCI error codes in the body.
    public var errorCodes: [String] {
        guard let object = try? json(), let errors = object["errors"] as? [[String: Any]] else { return [] }
        return errors.compactMap { $0["code"] as? String }
    }
}

public enum TestHTTPClientError: Error {
    /// The request, and what went wrong with it.
    case failed(String, String)
    case noResponse
    case notJSONObject(String)
}

extension TestHTTPClient {
    /// Sends a request head, then its body in pieces of `piece` bytes, one every
    /// `interval` (a slow client), while reading the answer: stops sending once an answer
    /// head arrives or the server closes. `head` must end with an empty line.
    /// - Returns: the answer's head (empty when the connection closed without one), and
    ///   how long after the first byte it came.
    public func trickle(_ head: String, body: [UInt8], piece: Int, every interval: Duration) async throws -> (
        head: String, after: Duration
    ) {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        let started = ContinuousClock.now
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: head))
            let sender = Task {
                var offset = 0
                while offset < body.count && !Task.isCancelled {
                    try await Task.sleep(for: interval)
                    let end = min(body.count, offset + piece)
                    try await outbound.write(ByteBuffer(bytes: body[offset..<end]))
                    offset = end
                }
            }
            defer { sender.cancel() }
            var received = ""
            for try await buffer in inbound {
                received += String(buffer: buffer)
                if let end = received.range(of: "\r\n\r\n") { return (String(received[..<end.lowerBound]), ContinuousClock.now - started) }
            }
            return (received, ContinuousClock.now - started)
        }
    }
}
