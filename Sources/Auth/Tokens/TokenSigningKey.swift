import CLibcrypto
import FoundationEssentials
import OCI

/// The secret that signs and verifies tokens (HMAC-SHA256). Generated on first start
/// and kept in the data directory with mode 0600, or read from the file `token-key-file`
/// names: several instances share it by being given the same file (docs/SCALE-OUT.md).
/// Verification uses the configured keys only: a key named or carried in a token is
/// never trusted (CVE-2025-24976).
public struct TokenSigningKey: Sendable {
    let bytes: [UInt8]
    /// Identifies the key in the token header (`kid`), for rotation later.
    public let id: String

    public init(bytes: [UInt8]) {
        precondition(bytes.count >= 32, "a token key needs at least 256 bits")
        self.bytes = bytes
        self.id = String(Digest.of(bytes).encoded.prefix(16))
    }

    /// Reads the key at `path`, or creates one there (mode 0600) when missing.
    public static func loadOrCreate(at path: String) throws -> TokenSigningKey {
        if FileManager.default.fileExists(atPath: path) { return try load(at: path) }
        // The standard library's generator reads the kernel's CSPRNG (getrandom(2)).
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let hex = Hex.encode(bytes)
        // Create owner-only, and never replace a key another instance just wrote.
        guard FileManager.default.createFile(atPath: path, contents: Data((hex + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
            throw TokenKeyError.cannotWrite(path)
        }
        return TokenSigningKey(bytes: bytes)
    }

    /// Reads the key at `path`: hex of at least 32 bytes (`openssl rand -hex 32`).
    public static func load(at path: String) throws -> TokenSigningKey {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw TokenKeyError.unreadable(path) }
        let hex = String(text.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
        guard let bytes = Self.decodeHex(hex), bytes.count >= 32 else { throw TokenKeyError.malformed(path) }
        return TokenSigningKey(bytes: bytes)
    }

    /// HMAC-SHA256 of `message`.
    func sign(_ message: [UInt8]) -> [UInt8] {
        HMACSHA256.authenticationCode(for: message, key: bytes)
    }

    /// Whether `signature` is the HMAC of `message`, compared in constant time.
    func isValid(_ signature: [UInt8], for message: [UInt8]) -> Bool {
        let expected = sign(message)
        guard signature.count == expected.count else { return false }
        return CRYPTO_memcmp(signature, expected, expected.count) == 0
    }

    private static func decodeHex(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let byte = UInt8(String(decoding: digits[index...index + 1], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }
}

public enum TokenKeyError: Error, CustomStringConvertible {
    case malformed(String)
    case unreadable(String)
    case cannotWrite(String)

    public var description: String {
        switch self {
        case .malformed(let path): "token signing key \(path) is not hex of at least 32 bytes"
        case .unreadable(let path): "token signing key \(path) cannot be read"
        case .cannotWrite(let path): "cannot create token signing key \(path)"
        }
    }
}
