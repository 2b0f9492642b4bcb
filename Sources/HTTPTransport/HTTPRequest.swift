import FoundationEssentials
import NIOCore
import NIOHTTP1

/// A request as handlers see it: the head, its parsed URL, and a body to stream.
public struct HTTPRequest {
    public let head: HTTPRequestHead
    public let path: String
    public let query: QueryParameters
    public let body: RequestBody

    public init(head: HTTPRequestHead, body: RequestBody) {
        self.head = head
        let uri = head.uri
        if let mark = uri.firstIndex(of: "?") {
            self.path = String(uri[..<mark])
            self.query = QueryParameters(String(uri[uri.index(after: mark)...]))
        } else {
            self.path = uri
            self.query = QueryParameters("")
        }
        self.body = body
    }

    public var method: HTTPMethod { head.method }
    public var headers: HTTPHeaders { head.headers }

    /// The declared body length, when the client sent `Content-Length`.
    public var contentLength: Int64? { headers.first(name: "Content-Length").flatMap { Int64($0) } }

    /// Whether a body follows: a non-zero `Content-Length` or chunked transfer coding.
    public var hasBody: Bool {
        if let length = contentLength { return length > 0 }
        return headers[canonicalForm: "Transfer-Encoding"].contains { $0.lowercased() == "chunked" }
    }
}

/// Query parameters (RFC 3986): `%XX` escapes of UTF-8 bytes; repeated keys keep every
/// value. A `+` is a plus, not a space as in HTML forms: media types carry it
/// (`?artifactType=application/vnd.example+json`, which ORAS sends unescaped), and no
/// value this API reads may contain a space.
public struct QueryParameters: Sendable {
    private let pairs: [(String, String)]

    public init(_ query: String) {
        pairs = query.split(separator: "&").map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = Self.decode(parts[0])
            let value = parts.count > 1 ? Self.decode(parts[1]) : ""
            return (key, value)
        }
    }

    public subscript(_ key: String) -> String? { pairs.first { $0.0 == key }?.1 }

    public func all(_ key: String) -> [String] { pairs.filter { $0.0 == key }.map(\.1) }

    private static func decode(_ text: Substring) -> String {
        let text = String(text)
        return percentDecoded(text) ?? text
    }

    /// `%XX` escapes replaced by their bytes; nil when an escape is broken or the
    /// result is not UTF-8 (the text is then taken as it is).
    private static func percentDecoded(_ text: String) -> String? {
        guard text.utf8.contains(UInt8(ascii: "%")) else { return text }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
            bytes.append(high << 4 | low)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

extension HTTPRequestHead {
    /// Whether the connection stays open after the answer: a `close` option anywhere in
    /// `Connection` ends it (RFC 9112 §9.6), whatever else the header lists; otherwise
    /// HTTP/1.1 keeps it and HTTP/1.0 only with `keep-alive`. NIO's `isKeepAlive` lets
    /// `keep-alive` win over `close` for HTTP/1.0; the immediate path's scanner and the
    /// full path answer the same request the same way with this rule.
    var keepsConnectionOpen: Bool {
        let closes = headers[canonicalForm: "Connection"].contains { $0.lowercased() == "close" }
        return isKeepAlive && !closes
    }
}
