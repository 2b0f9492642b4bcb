import NIOCore
import NIOHTTP1

/// What the immediate path reads of a request head, straight from the received bytes.
///
/// It is no HTTP parser: it recognises the plain `GET`/`HEAD` requests the immediate
/// path may answer, and for every other request only where it ends (so the bytes can be
/// handed to NIO's parser one whole request at a time). Anything unusual (a bare LF, a
/// folded or malformed header line, `Transfer-Encoding`, `Upgrade`, `CONNECT`, more
/// than one `Content-Length`, another HTTP version) is `.unframed`: NIO's parser gets the
/// connection's bytes from then on and gives the answer the standard asks for.
struct ScannedRequestHead {
    enum Framing: Equatable {
        /// Followed by exactly this many body bytes (0: no body).
        case length(Int)
        /// Unknown or unusual: only NIO's parser may read this connection from here on.
        case unframed
    }

    /// Bytes of the head, up to and including the empty line.
    var headLength: Int
    var framing: Framing
    /// Set for a `GET` or `HEAD` without body, `Range`, `Expect` or `Upgrade`.
    var candidate: Candidate?

    struct Candidate {
        var method: HTTPMethod
        var target: String
        var version: HTTPVersion
        var keepAlive: Bool
        /// Every `Accept` line, in order.
        var accept: [String]
        var authorization: String?

        /// What an answer may depend on, as one key (the Host or User-Agent never matter).
        var answerKey: ImmediateAnswerCache.Key {
            var key: [UInt8] = []
            key.reserveCapacity(target.utf8.count + (authorization?.utf8.count ?? 0) + 64)
            key.append(method == .HEAD ? 1 : 0)
            key.append(version.minor == 1 ? 1 : 0)
            key.append(keepAlive ? 1 : 0)
            key.append(contentsOf: target.utf8)
            for line in accept {
                key.append(0)
                key.append(contentsOf: line.utf8)
            }
            key.append(1)
            if let authorization { key.append(contentsOf: authorization.utf8) }
            return ImmediateAnswerCache.Key(bytes: key)
        }

        /// The head for `ImmediateResponder`, with the only headers it reads.
        var requestHead: HTTPRequestHead {
            var headers = HTTPHeaders()
            for line in accept { headers.add(name: "Accept", value: line) }
            if let authorization { headers.add(name: "Authorization", value: authorization) }
            return HTTPRequestHead(version: version, method: method, uri: target, headers: headers)
        }
    }

    enum Scan {
        /// The head has not fully arrived.
        case incomplete
        case head(ScannedRequestHead)
    }

    /// Scans the head at the start of `bytes`.
    static func scan(_ bytes: UnsafeRawBufferPointer) -> Scan {
        var lines = LineReader(bytes)
        guard let firstLine = lines.next() else { return lines.broken ? .head(.unframed(bytes.count)) : .incomplete }
        let requestLine = RequestLine(firstLine)
        var contentLength: Int?
        var unframed = requestLine.version == nil || requestLine.isConnect
        var connectionClose = false
        var connectionKeepAlive = false
        var accept: [String] = []
        var authorization: String?
        var authorizationLines = 0
        var excluded = false

        while let line = lines.next() {
            if line.isEmpty {
                guard !unframed else { return .head(.unframed(lines.offset)) }
                // The rule of `HTTPRequestHead.keepsConnectionOpen`, on the full path too.
                let keepAlive = !connectionClose && (requestLine.version == .http1_1 || connectionKeepAlive)
                let length = contentLength ?? 0
                var head = ScannedRequestHead(headLength: lines.offset, framing: .length(length), candidate: nil)
                if let method = requestLine.method, let version = requestLine.version, let target = requestLine.target,
                    length == 0, !excluded, authorizationLines <= 1
                {
                    head.candidate = Candidate(
                        method: method, target: target, version: version, keepAlive: keepAlive,
                        accept: accept, authorization: authorization)
                }
                return .head(head)
            }
            guard let field = HeaderField(line) else {
                unframed = true
                continue
            }
            switch field.name {
            case .contentLength:
                if contentLength != nil { unframed = true }
                contentLength = field.decimalValue
                if contentLength == nil { unframed = true }
            case .transferEncoding, .upgrade:
                unframed = true
            case .range, .expect:
                excluded = true
            case .accept:
                accept.append(field.text)
            case .authorization:
                authorization = field.text
                authorizationLines += 1
            case .connection:
                // NIO's keep-alive rule trims spaces around an option but not tabs, so
                // `keep-alive<TAB>` keeps an HTTP/1.0 connection open here and closes it
                // there: such a request is left to the full path, whose rule decides.
                if field.holdsTabAfterLeadingBlanks { excluded = true }
                for token in field.commaSeparatedLowercased {
                    if token == "close" { connectionClose = true }
                    if token == "keep-alive" { connectionKeepAlive = true }
                }
            case .other:
                break
            }
        }
        return lines.broken ? .head(.unframed(bytes.count)) : .incomplete
    }

    private static func unframed(_ length: Int) -> ScannedRequestHead {
        ScannedRequestHead(headLength: length, framing: .unframed, candidate: nil)
    }
}

/// CRLF-terminated lines; a bare LF or CR marks the head `broken`.
private struct LineReader {
    let bytes: UnsafeRawBufferPointer
    private(set) var offset = 0
    private(set) var broken = false

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    mutating func next() -> UnsafeRawBufferPointer? {
        guard !broken else { return nil }
        var index = offset
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\r") {
                guard index + 1 < bytes.count else { return nil }
                guard bytes[index + 1] == UInt8(ascii: "\n") else {
                    broken = true
                    return nil
                }
                let line = UnsafeRawBufferPointer(rebasing: bytes[offset..<index])
                offset = index + 2
                return line
            }
            if byte == UInt8(ascii: "\n") {
                broken = true
                return nil
            }
            index += 1
        }
        return nil
    }
}

/// `METHOD SP target SP HTTP/1.x`, with the method and target only when the immediate
/// path could answer it.
private struct RequestLine {
    var method: HTTPMethod?
    var target: String?
    var version: HTTPVersion?
    var isConnect = false

    init(_ line: UnsafeRawBufferPointer) {
        guard let firstSpace = line.firstIndex(of: UInt8(ascii: " ")),
            let lastSpace = line.lastIndex(of: UInt8(ascii: " ")), lastSpace > firstSpace
        else { return }
        let method = UnsafeRawBufferPointer(rebasing: line[..<firstSpace])
        let target = UnsafeRawBufferPointer(rebasing: line[(firstSpace + 1)..<lastSpace])
        let version = UnsafeRawBufferPointer(rebasing: line[(lastSpace + 1)...])
        if version.elementsEqual("HTTP/1.1".utf8) {
            self.version = .http1_1
        } else if version.elementsEqual("HTTP/1.0".utf8) {
            self.version = .http1_0
        }
        isConnect = method.elementsEqual("CONNECT".utf8)
        if method.elementsEqual("GET".utf8) {
            self.method = .GET
        } else if method.elementsEqual("HEAD".utf8) {
            self.method = .HEAD
        }
        // Visible ASCII only, starting at the root; anything else goes to NIO's parser.
        if self.method != nil, target.first == UInt8(ascii: "/"), target.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
            self.target = String(decoding: target, as: UTF8.self)
        } else {
            self.method = nil
        }
    }
}

/// `name: value`, with the names the immediate path cares about recognised.
private struct HeaderField {
    enum Name {
        case contentLength, transferEncoding, upgrade, range, expect, accept, authorization, connection, other
    }

    let name: Name
    let value: UnsafeRawBufferPointer
    /// The value with the blanks after it (those before it NIO's parser skips too).
    private let valueAndTrailingBlanks: UnsafeRawBufferPointer

    init?(_ line: UnsafeRawBufferPointer) {
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > 0 else { return nil }
        let name = UnsafeRawBufferPointer(rebasing: line[..<colon])
        guard name.allSatisfy(Self.isTokenByte) else { return nil }
        var start = colon + 1, end = line.count
        while start < end, line[start] == 0x20 || line[start] == 0x09 { start += 1 }
        valueAndTrailingBlanks = UnsafeRawBufferPointer(rebasing: line[start..<end])
        while end > start, line[end - 1] == 0x20 || line[end - 1] == 0x09 { end -= 1 }
        let value = UnsafeRawBufferPointer(rebasing: line[start..<end])
        guard value.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else { return nil }
        self.value = value
        self.name = Self.recognise(name)
    }

    var text: String { String(decoding: value, as: UTF8.self) }

    /// A tab inside the value or among the blanks after it; looked at for `Connection`
    /// only, so other fields pay nothing for it.
    var holdsTabAfterLeadingBlanks: Bool { valueAndTrailingBlanks.contains(0x09) }

    /// Digits only, as a length; `nil` for anything else or an absurd size.
    var decimalValue: Int? {
        guard !value.isEmpty, value.count <= 18, value.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return value.reduce(0) { $0 * 10 + Int($1 - 0x30) }
    }

    /// The list's elements with the blanks around each trimmed (blanks inside stay:
    /// `ke ep-alive` is not `keep-alive`, as NIO's parser agrees).
    var commaSeparatedLowercased: [String] {
        value.split(separator: UInt8(ascii: ",")).map { token in
            let isBlank = { (byte: UInt8) in byte == 0x20 || byte == 0x09 }
            let trimmed = token.drop(while: isBlank).reversed().drop(while: isBlank).reversed()
            return String(decoding: trimmed.map(ASCIIBytes.lowercased), as: UTF8.self)
        }
    }

    private static func recognise(_ name: UnsafeRawBufferPointer) -> Name {
        switch name.count {
        case 5 where ASCIIBytes.equalsIgnoringCase(name, "range"): .range
        case 6 where ASCIIBytes.equalsIgnoringCase(name, "accept"): .accept
        case 6 where ASCIIBytes.equalsIgnoringCase(name, "expect"): .expect
        case 7 where ASCIIBytes.equalsIgnoringCase(name, "upgrade"): .upgrade
        case 10 where ASCIIBytes.equalsIgnoringCase(name, "connection"): .connection
        case 13 where ASCIIBytes.equalsIgnoringCase(name, "authorization"): .authorization
        case 14 where ASCIIBytes.equalsIgnoringCase(name, "content-length"): .contentLength
        case 17 where ASCIIBytes.equalsIgnoringCase(name, "transfer-encoding"): .transferEncoding
        default: .other
        }
    }

    /// RFC 9110 token characters.
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        default:
            "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}
