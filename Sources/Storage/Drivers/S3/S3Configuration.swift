/// Where the S3 driver keeps objects and how it reaches them. Checked when built, so a
/// typo in the config file stops the daemon at start with a clear message.
///
/// ```swift
/// let configuration = try S3Configuration(
///     endpoint: "http://127.0.0.1:7480", bucket: "registry",
///     credentials: S3Credentials(accessKeyID: "…", secretAccessKey: "…"))
/// ```
public struct S3Configuration: Sendable {
    public enum Addressing: String, Sendable, CaseIterable {
        /// `http://host/bucket/key`: works with every S3 server, radosgw and MinIO included.
        case path
        /// `http://bucket.host/key`: what AWS prefers; needs DNS for `bucket.host`.
        case virtualHost = "virtual-host"
    }

    public let scheme: String
    public let host: String
    public let port: Int
    public let bucket: String
    public let region: String
    /// Key prefix without slashes at either end; empty for the bucket's root.
    public let prefix: String
    public let addressing: Addressing
    public let credentials: S3Credentials
    /// Bytes per multipart part (S3: at least 5 MiB, except the last).
    public let partSize: Int
    /// Answer blob GETs with a 307 to a presigned URL instead of streaming the bytes.
    public let redirect: Bool
    /// How long a presigned URL stays valid.
    public let redirectExpiry: Int

    public static let minimumPartSize = 5 << 20
    public static let defaultPartSize = 16 << 20

    public init(
        endpoint: String, bucket: String, region: String = "us-east-1", prefix: String = "",
        addressing: Addressing = .path, credentials: S3Credentials, partSize: Int = defaultPartSize,
        redirect: Bool = false, redirectExpiry: Int = 1200
    ) throws(S3ConfigurationError) {
        guard let schemeEnd = endpoint.firstRange(of: "://") else { throw .invalid("endpoint \(endpoint) needs http:// or https://") }
        let scheme = endpoint[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "http" || scheme == "https" else { throw .invalid("endpoint \(endpoint) needs http:// or https://") }
        var authority = endpoint[schemeEnd.upperBound...]
        if authority.hasSuffix("/") { authority = authority.dropLast() }
        guard !authority.isEmpty, !authority.contains("/"), !authority.contains("@"), !authority.contains("?") else {
            throw .invalid("endpoint \(endpoint) must be scheme://host[:port] without a path")
        }
        var host = String(authority)
        var port = scheme == "https" ? 443 : 80
        if let colon = authority.lastIndex(of: ":"), !authority.hasSuffix("]") {
            guard let parsed = Int(authority[authority.index(after: colon)...]), (1...65535).contains(parsed) else {
                throw .invalid("endpoint \(endpoint) has a bad port")
            }
            port = parsed
            host = String(authority[..<colon])
        }
        guard Self.isBucketName(bucket) else {
            throw .invalid("bucket \(bucket): 3–63 characters of a–z, 0–9, '.', '-', starting and ending with a letter or digit")
        }
        guard !region.isEmpty,
            region.utf8.allSatisfy({ $0 == UInt8(ascii: "-") || ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) })
        else {
            throw .invalid("region \(region) is not a region name")
        }
        let trimmedPrefix = prefix.split(separator: "/").joined(separator: "/")
        if !trimmedPrefix.isEmpty, (try? StoragePath(trimmedPrefix)) == nil {
            throw .invalid("prefix \(prefix): segments of A–Z a–z 0–9 . _ - only")
        }
        guard partSize >= Self.minimumPartSize, partSize <= 5 << 30 else { throw .invalid("part size must be between 5 MiB and 5 GiB") }
        guard !credentials.accessKeyID.isEmpty, !credentials.secretAccessKey.isEmpty else {
            throw .invalid("no S3 credentials: set s3-access-key and s3-secret-key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
        }
        guard (1...604_800).contains(redirectExpiry) else { throw .invalid("redirect expiry must be 1 s to 7 days") }
        self.scheme = scheme
        self.host = host.lowercased()
        self.port = port
        self.bucket = bucket
        self.region = region
        self.prefix = trimmedPrefix
        self.addressing = addressing
        self.credentials = credentials
        self.partSize = partSize
        self.redirect = redirect
        self.redirectExpiry = redirectExpiry
    }

    /// `host` or `host:port` when the port is not the scheme's default, as the `Host` header.
    var authority: String {
        let base = addressing == .virtualHost ? "\(bucket).\(host)" : host
        return port == (scheme == "https" ? 443 : 80) ? base : "\(base):\(port)"
    }

    /// The request path of an object (or of the bucket when `key` is nil), unencoded.
    func requestPath(key: String?) -> String {
        switch addressing {
        case .path: key.map { "/\(bucket)/\($0)" } ?? "/\(bucket)"
        case .virtualHost: "/" + (key ?? "")
        }
    }

    private static func isBucketName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (3...63).contains(bytes.count) else { return false }
        func alphanumeric(_ byte: UInt8) -> Bool { (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x30 && byte <= 0x39) }
        return alphanumeric(bytes.first!) && alphanumeric(bytes.last!)
            && bytes.allSatisfy { alphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }
}

public enum S3ConfigurationError: Error, Equatable, CustomStringConvertible {
    case invalid(String)

    public var description: String {
        switch self {
        case .invalid(let message): "S3 storage: \(message)"
        }
    }
}
