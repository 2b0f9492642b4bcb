/// A repository name such as `library/alpine`, validated by the distribution spec's
/// grammar: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
///
/// ```swift
/// let name = try RepositoryName(parsing: "test/this")
/// let inTest = name.namespace == "test"
/// ```
///
/// Because every component must start and end with `[a-z0-9]`, a valid name can never
/// contain `..`, an empty component or a leading slash: it is safe in a path or query.
public struct RepositoryName: Hashable, Sendable, CustomStringConvertible, Comparable {
    /// Longest name accepted; distribution uses the same bound.
    public static let maximumLength = 255

    public let value: String

    public init(parsing text: some StringProtocol) throws(NameError) {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty, bytes.count <= Self.maximumLength else { throw .invalid }
        var index = 0
        while true {
            index = try Self.scanComponent(bytes, from: index)
            if index == bytes.count { break }
            guard bytes[index] == UInt8(ascii: "/") else { throw .invalid }
            index += 1
        }
        self.value = String(text)
    }

    /// The first path segment: the unit of ownership once namespaces exist.
    public var namespace: Substring { value.split(separator: "/", maxSplits: 1)[0] }

    public var description: String { value }

    public static func < (lhs: RepositoryName, rhs: RepositoryName) -> Bool { lhs.value < rhs.value }

    /// One `path-component`: alphanumerics joined by `.`, `_`, `__` or runs of `-`.
    /// Returns the index just past the component.
    private static func scanComponent(_ bytes: [UInt8], from start: Int) throws(NameError) -> Int {
        var index = start
        func scanAlphanumerics() throws(NameError) {
            let begin = index
            while index < bytes.count, isLowerAlphanumeric(bytes[index]) { index += 1 }
            if index == begin { throw .invalid }
        }
        try scanAlphanumerics()
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: ".") {
                index += 1
            } else if byte == UInt8(ascii: "_") {
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "_") { index += 1 }
            } else if byte == UInt8(ascii: "-") {
                while index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
            } else {
                break
            }
            try scanAlphanumerics()
        }
        return index
    }

    private static func isLowerAlphanumeric(_ byte: UInt8) -> Bool {
        (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x30 && byte <= 0x39)
    }
}

public enum NameError: Error, Equatable, Sendable {
    case invalid
}
