/// Lowercase hexadecimal, as digests, signatures and key files spell bytes.
public enum Hex {
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(bytes.underestimatedCount * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}

/// HMAC-SHA256 (RFC 2104): token signatures and AWS Signature Version 4.
///
/// Built on `ContentHasher`'s SHA-256 rather than libcrypto's `HMAC()`, which goes through
/// `EVP` and loads OpenSSL 3's provider machinery (see `ContentHasher`); the daemon links
/// only libcrypto's SHA code (docs/PERFORMANCE.md, "Memory").
public enum HMACSHA256 {
    /// SHA-256's block size, to which the key is padded.
    static let blockSize = 64

    public static func authenticationCode(for message: [UInt8], key: [UInt8]) -> [UInt8] {
        // A key longer than a block is replaced by its hash; a shorter one is padded with zeros.
        var paddedKey = key.count > blockSize ? sha256(key) : key
        paddedKey += [UInt8](repeating: 0, count: blockSize - paddedKey.count)
        let inner = sha256(paddedKey.map { $0 ^ 0x36 }, message)
        return sha256(paddedKey.map { $0 ^ 0x5c }, inner)
    }

    /// SHA-256 of the parts one after the other.
    private static func sha256(_ parts: [UInt8]...) -> [UInt8] {
        let hasher = ContentHasher(algorithm: .sha256)
        for part in parts { hasher.update(part) }
        return hasher.finalizeBytes()
    }
}
