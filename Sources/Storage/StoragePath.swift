/// A relative object path such as `blobs/sha256/ab/abcd…/data`.
///
/// Every segment is checked when the path is built: only `[A-Za-z0-9._-]`, never `.`
/// or `..`, never empty. No driver can be steered outside its root by a path.
public struct StoragePath: Hashable, Sendable, CustomStringConvertible {
    public let segments: [String]

    public init(_ segments: [String]) throws(StoragePathError) {
        guard !segments.isEmpty else { throw .invalidSegment("") }
        for segment in segments {
            guard !segment.isEmpty, segment != ".", segment != "..", segment.utf8.count <= 255,
                segment.utf8.allSatisfy(Self.isAllowed)
            else { throw .invalidSegment(segment) }
        }
        self.segments = segments
    }

    public init(_ path: String) throws(StoragePathError) {
        try self.init(path.split(separator: "/", omittingEmptySubsequences: false).map(String.init))
    }

    public var description: String { segments.joined(separator: "/") }

    public func appending(_ segment: String) throws(StoragePathError) -> StoragePath {
        try StoragePath(segments + [segment])
    }

    public func hasPrefix(_ prefix: StoragePath) -> Bool {
        segments.count >= prefix.segments.count && Array(segments.prefix(prefix.segments.count)) == prefix.segments
    }

    private static func isAllowed(_ byte: UInt8) -> Bool {
        (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x30 && byte <= 0x39)
            || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
    }
}

public enum StoragePathError: Error, Equatable, Sendable {
    case invalidSegment(String)
}
