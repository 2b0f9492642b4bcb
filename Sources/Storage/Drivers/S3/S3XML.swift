/// The XML of S3's answers (lists, multipart results, errors) as a tree of elements.
///
/// S3 answers use a small part of XML: an optional declaration, elements with or
/// without attributes, text with the five named entities and numeric references. This
/// reader handles exactly that and throws on anything else; it needs no libxml2, so the
/// daemon stays a static binary.
///
/// ```swift
/// let root = try S3XMLElement.parse(body)
/// let keys = root.children("Contents").compactMap { $0.child("Key")?.text }
/// ```
struct S3XMLElement: Sendable, Equatable {
    var name: String
    var text: String = ""
    var elements: [S3XMLElement] = []

    func child(_ name: String) -> S3XMLElement? { elements.first { $0.name == name } }
    func children(_ name: String) -> [S3XMLElement] { elements.filter { $0.name == name } }
    /// The text of the first child called `name`.
    subscript(_ name: String) -> String? { child(name)?.text }

    static func parse(_ bytes: some Collection<UInt8>) throws(S3XMLError) -> S3XMLElement {
        var reader = Reader(bytes: Array(bytes))
        reader.skipProlog()
        let root = try reader.element()
        reader.skipWhitespace()
        guard reader.atEnd else { throw .malformed("content after the root element") }
        return root
    }

    /// Text escaped for element content. By Unicode scalar, not by `Character`: a `<`
    /// followed by a combining mark is one Character that is not equal to "<", and would
    /// go out unescaped (found by the `s3-xml` fuzz target).
    static func escape(_ text: String) -> String {
        var result = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": result.append(contentsOf: "&amp;".unicodeScalars)
            case "<": result.append(contentsOf: "&lt;".unicodeScalars)
            case ">": result.append(contentsOf: "&gt;".unicodeScalars)
            default: result.append(scalar)
            }
        }
        return String(result)
    }

    private struct Reader {
        let bytes: [UInt8]
        var index = 0

        var atEnd: Bool { index >= bytes.count }

        mutating func skipWhitespace() {
            while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
        }

        func starts(with text: String) -> Bool {
            let pattern = Array(text.utf8)
            return bytes.count - index >= pattern.count && Array(bytes[index..<index + pattern.count]) == pattern
        }

        mutating func skip(past text: String) throws(S3XMLError) {
            while !atEnd {
                if starts(with: text) { index += text.utf8.count; return }
                index += 1
            }
            throw .malformed("unterminated \(text)")
        }

        /// The declaration, comments and whitespace before the root.
        mutating func skipProlog() {
            while true {
                skipWhitespace()
                if starts(with: "<?") { try? skip(past: "?>") } else if starts(with: "<!--") { try? skip(past: "-->") } else { return }
            }
        }

        mutating func name() throws(S3XMLError) -> String {
            let start = index
            while index < bytes.count,
                !([0x20, 0x09, 0x0A, 0x0D, UInt8(ascii: ">"), UInt8(ascii: "/"), UInt8(ascii: "=")].contains(bytes[index]))
            {
                index += 1
            }
            guard index > start else { throw .malformed("an element without a name") }
            return String(decoding: bytes[start..<index], as: UTF8.self)
        }

        mutating func element() throws(S3XMLError) -> S3XMLElement {
            guard !atEnd, bytes[index] == UInt8(ascii: "<") else { throw .malformed("expected an element") }
            index += 1
            var element = S3XMLElement(name: try name())
            // Attributes (namespaces) carry nothing registryd reads.
            while true {
                skipWhitespace()
                guard !atEnd else { throw .malformed("unterminated <\(element.name)>") }
                if starts(with: "/>") { index += 2; return element }
                if bytes[index] == UInt8(ascii: ">") { index += 1; break }
                _ = try name()
                skipWhitespace()
                guard !atEnd, bytes[index] == UInt8(ascii: "=") else { throw .malformed("an attribute without a value") }
                index += 1
                skipWhitespace()
                guard !atEnd, bytes[index] == UInt8(ascii: "\"") || bytes[index] == UInt8(ascii: "'") else {
                    throw .malformed("an unquoted attribute")
                }
                let quote = bytes[index]
                index += 1
                while !atEnd, bytes[index] != quote { index += 1 }
                guard !atEnd else { throw .malformed("an unterminated attribute") }
                index += 1
            }
            var text: [UInt8] = []
            while true {
                guard !atEnd else { throw .malformed("unterminated <\(element.name)>") }
                if starts(with: "</") {
                    index += 2
                    let closing = try name()
                    guard closing == element.name else { throw .malformed("</\(closing)> closes <\(element.name)>") }
                    skipWhitespace()
                    guard !atEnd, bytes[index] == UInt8(ascii: ">") else { throw .malformed("unterminated </\(closing)>") }
                    index += 1
                    element.text = try Self.decodeEntities(text)
                    return element
                } else if starts(with: "<!--") {
                    try skip(past: "-->")
                } else if starts(with: "<![CDATA[") {
                    index += 9
                    let start = index
                    try skip(past: "]]>")
                    text += bytes[start..<index - 3]
                } else if bytes[index] == UInt8(ascii: "<") {
                    element.elements.append(try self.element())
                } else {
                    text.append(bytes[index])
                    index += 1
                }
            }
        }

        /// By Unicode scalar, not by `Character`: a `;` or `&` followed by a combining
        /// mark is one Character that equals neither (found by the `s3-xml` fuzz target).
        static func decodeEntities(_ raw: [UInt8]) throws(S3XMLError) -> String {
            let text = String(decoding: raw, as: UTF8.self)
            let scalars = text.unicodeScalars
            guard scalars.contains("&") else { return text }
            var result = String.UnicodeScalarView()
            var rest = scalars[...]
            while let ampersand = rest.firstIndex(of: "&") {
                result.append(contentsOf: rest[..<ampersand])
                guard let semicolon = rest[ampersand...].firstIndex(of: ";") else { throw .malformed("an unterminated entity") }
                let entity = String(String.UnicodeScalarView(rest[rest.index(after: ampersand)..<semicolon]))
                switch entity {
                case "amp": result.append("&")
                case "lt": result.append("<")
                case "gt": result.append(">")
                case "quot": result.append("\"")
                case "apos": result.append("'")
                default:
                    let number: UInt32? =
                        entity.hasPrefix("#x")
                        ? UInt32(entity.dropFirst(2), radix: 16)
                        : entity.hasPrefix("#") ? UInt32(entity.dropFirst()) : nil
                    guard let number, let scalar = Unicode.Scalar(number) else { throw .malformed("unknown entity &\(entity);") }
                    result.append(scalar)
                }
                rest = rest[rest.index(after: semicolon)...]
            }
            result.append(contentsOf: rest)
            return String(result)
        }
    }
}

enum S3XMLError: Error, Equatable {
    case malformed(String)
}
