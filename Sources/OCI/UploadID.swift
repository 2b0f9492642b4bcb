import FoundationEssentials

/// The id of a blob upload session, as it appears in `/v2/<name>/blobs/uploads/<id>`.
///
/// registryd issues lowercase UUIDs; anything a client sends back is checked against
/// `[A-Za-z0-9_-]{1,128}` before it is used in a path or a query.
public struct UploadID: Hashable, Sendable, CustomStringConvertible {
    public let value: String

    public init(parsing text: some StringProtocol) throws(UploadIDError) {
        guard (1...128).contains(text.utf8.count), text.utf8.allSatisfy(Self.isAllowed) else { throw .invalid }
        self.value = String(text)
    }

    /// A fresh, unguessable id.
    public static func generate() -> UploadID {
        // A UUID string only holds hex digits and dashes, which the grammar allows.
        try! UploadID(parsing: UUID().uuidString.lowercased())
    }

    public var description: String { value }

    private static func isAllowed(_ byte: UInt8) -> Bool {
        (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x30 && byte <= 0x39)
            || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
    }
}

public enum UploadIDError: Error, Equatable, Sendable {
    case invalid
}
