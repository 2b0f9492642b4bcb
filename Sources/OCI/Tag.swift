/// A tag such as `latest` or `mytag1.8`: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
public struct Tag: Hashable, Sendable, CustomStringConvertible, Comparable {
    public let value: String

    public init(parsing text: some StringProtocol) throws(TagError) {
        let bytes = Array(text.utf8)
        guard let first = bytes.first, bytes.count <= 128 else { throw .invalid }
        guard Self.isWordByte(first) else { throw .invalid }
        for byte in bytes.dropFirst() where !(Self.isWordByte(byte) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-")) {
            throw .invalid
        }
        self.value = String(text)
    }

    public var description: String { value }

    public static func < (lhs: Tag, rhs: Tag) -> Bool { lhs.value < rhs.value }

    private static func isWordByte(_ byte: UInt8) -> Bool {
        (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x30 && byte <= 0x39) || byte == UInt8(ascii: "_")
    }
}

public enum TagError: Error, Equatable, Sendable {
    case invalid
}

/// The `<reference>` of a manifest URL: a tag or a digest.
public enum ManifestReference: Hashable, Sendable, CustomStringConvertible {
    case tag(Tag)
    case digest(Digest)

    /// A reference containing `:` is a digest (tags cannot contain one); otherwise a tag.
    public init?(parsing text: some StringProtocol) {
        if text.contains(":") {
            guard let digest = try? Digest(parsing: text) else { return nil }
            self = .digest(digest)
        } else {
            guard let tag = try? Tag(parsing: text) else { return nil }
            self = .tag(tag)
        }
    }

    public var description: String {
        switch self {
        case .tag(let tag): tag.value
        case .digest(let digest): digest.description
        }
    }
}
