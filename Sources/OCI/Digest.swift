/// A content digest such as `sha256:2cf24dba…`, validated by the grammar of the
/// OCI image spec (descriptor.md, "Digests") restricted to the algorithms we hash.
///
/// ```swift
/// let digest = try Digest(parsing: "sha256:" + String(repeating: "a", count: 64))
/// let isSHA256 = digest.algorithm == .sha256
/// ```
///
/// Parsing happens before a digest touches a path or a query, so a string that is
/// not exactly `algorithm ":" lowercase-hex` of the right length never gets further.
public struct Digest: Hashable, Sendable, CustomStringConvertible, Comparable {
    public let algorithm: DigestAlgorithm
    /// Lowercase hex of the hash, exactly `algorithm.encodedLength` characters.
    public let encoded: String

    public init(parsing text: some StringProtocol) throws(DigestError) {
        guard let colon = text.firstIndex(of: ":") else { throw .malformed }
        let algorithmName = text[..<colon]
        let encoded = text[text.index(after: colon)...]
        guard let algorithm = DigestAlgorithm(rawValue: String(algorithmName)) else {
            // A well-formed but unknown algorithm (e.g. "blake3:…") is a different answer
            // from garbage: the spec says to reject it as unsupported.
            if algorithmName.utf8.allSatisfy({ Self.isAlgorithmComponentByte($0) }) && !algorithmName.isEmpty {
                throw .unsupportedAlgorithm(String(algorithmName))
            }
            throw .malformed
        }
        guard encoded.utf8.count == algorithm.encodedLength,
            encoded.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) })
        else { throw .malformed }
        self.algorithm = algorithm
        self.encoded = String(encoded)
    }

    /// Builds a digest from raw hash bytes produced by `ContentHasher`.
    init(algorithm: DigestAlgorithm, hashBytes: some Sequence<UInt8>) {
        self.algorithm = algorithm
        self.encoded = Hex.encode(hashBytes)
    }

    public var description: String { "\(algorithm.rawValue):\(encoded)" }

    public static func < (lhs: Digest, rhs: Digest) -> Bool { lhs.description < rhs.description }

    /// The digest of `bytes`, computed with `algorithm`.
    public static func of(_ bytes: some Collection<UInt8>, algorithm: DigestAlgorithm = .sha256) -> Digest {
        let hasher = ContentHasher(algorithm: algorithm)
        hasher.update(Array(bytes))
        return hasher.finalize()
    }

    private static func isAlgorithmComponentByte(_ byte: UInt8) -> Bool {
        // algorithm-component ::= [a-z0-9]+, separators [+._-]
        (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x30 && byte <= 0x39) || byte == 0x2b || byte == 0x2e || byte == 0x5f || byte == 0x2d
    }
}

/// The hash functions registryd computes. Others are rejected as unsupported.
public enum DigestAlgorithm: String, Sendable, CaseIterable {
    case sha256
    case sha512

    /// Number of lowercase hex characters in an encoded digest.
    public var encodedLength: Int {
        switch self {
        case .sha256: 64
        case .sha512: 128
        }
    }
}

public enum DigestError: Error, Equatable, Sendable {
    case malformed
    case unsupportedAlgorithm(String)
}
