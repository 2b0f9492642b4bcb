/// Case-insensitive comparison of ASCII bytes, for header names and media types read
/// straight from a request's bytes (no `String` built to compare them).
public enum ASCIIBytes {
    /// `A`–`Z` as `a`–`z`; every other byte unchanged.
    public static func lowercased(_ byte: UInt8) -> UInt8 {
        byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
    }

    /// Whether `bytes` spell `lowercase` (given in lower case), ignoring ASCII case.
    public static func equalsIgnoringCase(_ bytes: some Collection<UInt8>, _ lowercase: StaticString) -> Bool {
        lowercase.withUTF8Buffer { pattern in
            bytes.count == pattern.count && zip(bytes, pattern).allSatisfy { lowercased($0) == $1 }
        }
    }

    /// Whether two byte sequences are equal ignoring ASCII case.
    public static func equalIgnoringCase(_ left: some Collection<UInt8>, _ right: some Collection<UInt8>) -> Bool {
        left.count == right.count && zip(left, right).allSatisfy { lowercased($0) == lowercased($1) }
    }
}
