import NIOCore
import NIOEmbedded
import NIOHTTP1

@testable import HTTPTransport

extension FuzzTarget {
    /// The immediate path's head scanner on any bytes: what it reports stays inside them.
    static let headScanner = FuzzTarget(name: "head-scanner") { bytes in
        bytes.withUnsafeBytes { buffer in
            guard case .head(let head) = ScannedRequestHead.scan(buffer) else { return }
            check(head.headLength > 0 && head.headLength <= bytes.count, "head length \(head.headLength) of \(bytes.count) bytes")
            if case .length(let length) = head.framing { check(length >= 0, "negative body length") }
            if let candidate = head.candidate {
                check(head.framing == .length(0), "a candidate has no body")
                check(
                    !candidate.target.utf8.contains { $0 <= 0x20 || $0 == 0x7F }, "target \(candidate.target) holds a space or control byte"
                )
                check(candidate.method == .GET || candidate.method == .HEAD, "candidate method \(candidate.method)")
            }
        }
    }

    /// The same bytes through the scanner and through NIO's parser: wherever the scanner
    /// frames a request itself (instead of handing the connection to NIO), NIO must see
    /// one whole request in exactly those bytes, with the same method, target, version,
    /// keep-alive and the headers an answer depends on. A disagreement would let one
    /// request be read as two (request smuggling).
    static let headDifferential = FuzzTarget(name: "head-differential") { bytes in
        let scanned: ScannedRequestHead? = bytes.withUnsafeBytes { buffer in
            if case .head(let head) = ScannedRequestHead.scan(buffer) { return head }
            return nil
        }
        guard let head = scanned, case .length(let bodyLength) = head.framing else { return }
        let (end, overflow) = head.headLength.addingReportingOverflow(bodyLength)
        guard !overflow, end <= bytes.count else { return }

        let channel = EmbeddedChannel(handler: ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes)))
        defer { _ = try? channel.finish() }
        var parts: [HTTPServerRequestPart] = []
        do {
            try channel.writeInbound(ByteBuffer(bytes: bytes[..<end]))
            while let part = try channel.readInbound(as: HTTPServerRequestPart.self) { parts.append(part) }
        } catch {
            // NIO refusing a request the scanner only framed and handed on is harmless: its
            // error handling answers 400 and closes the connection. Answering one itself
            // that NIO would refuse is not.
            check(head.candidate == nil, "the immediate path would answer a request NIO refuses (\(error)) in \(end) bytes")
            return
        }
        guard case .head(let nioHead) = parts.first else {
            preconditionFailure("the scanner framed a request in \(end) bytes where NIO sees no complete head")
        }
        guard case .end = parts.last else {
            preconditionFailure("NIO does not see the request end where the scanner does (\(end) bytes)")
        }
        let ends = parts.filter { if case .end = $0 { return true } else { return false } }.count
        check(ends == 1, "NIO sees \(ends) requests in what the scanner framed as one")
        let bodyBytes = parts.reduce(0) { total, part in
            if case .body(let body) = part { return total + body.readableBytes } else { return total }
        }
        check(bodyBytes == bodyLength, "body: scanner \(bodyLength), NIO \(bodyBytes)")
        if let candidate = head.candidate {
            check(candidate.method == nioHead.method, "method: scanner \(candidate.method), NIO \(nioHead.method)")
            check(candidate.target == nioHead.uri, "target: scanner \(candidate.target), NIO \(nioHead.uri)")
            check(candidate.version == nioHead.version, "version: scanner \(candidate.version), NIO \(nioHead.version)")
            check(
                candidate.keepAlive == nioHead.keepsConnectionOpen,
                "keep-alive: scanner \(candidate.keepAlive), full path \(nioHead.keepsConnectionOpen)")
            // Field values without the whitespace around them (RFC 9110 §5.5: it is not part
            // of the value); NIO keeps trailing blanks, the scanner drops them.
            func value(_ text: String) -> Substring {
                var value = Substring(text)
                while let first = value.first, first == " " || first == "\t" { value = value.dropFirst() }
                while let last = value.last, last == " " || last == "\t" { value = value.dropLast() }
                return value
            }
            let nioAccept = nioHead.headers["Accept"].map(value)
            check(candidate.accept.map(value) == nioAccept, "Accept: scanner \(candidate.accept), NIO \(nioAccept)")
            let nioAuthorization = nioHead.headers["Authorization"].map(value)
            check(
                candidate.authorization.map { [value($0)] } ?? [] == nioAuthorization,
                "Authorization: scanner \(candidate.authorization ?? "-"), NIO \(nioAuthorization)")
        }
    }
}
