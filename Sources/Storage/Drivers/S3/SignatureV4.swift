import FoundationEssentials
import Glibc
import OCI

/// Credentials for signing S3 requests. The secret never appears in a description.
public struct S3Credentials: Sendable, CustomStringConvertible {
    public let accessKeyID: String
    public let secretAccessKey: String
    /// Set with temporary credentials (`AWS_SESSION_TOKEN`); sent as `x-amz-security-token`.
    public let sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    public var description: String { "S3Credentials(\(accessKeyID), secret redacted)" }
}

/// AWS Signature Version 4 (`AWS4-HMAC-SHA256`), as S3 checks it: a canonical request
/// built from the method, the URI-encoded path, the sorted query, the signed headers and
/// the payload hash, signed with a key derived from the secret, the date, the region and
/// the service. Both forms: an `Authorization` header and a presigned URL query.
///
/// ```swift
/// let signer = SignatureV4(credentials: credentials, region: "us-east-1")
/// let headers = signer.authorizationHeaders(
///     method: "GET", path: "/bucket/key", query: [],
///     headers: [("host", "127.0.0.1:7480")], payloadHash: SignatureV4.emptyPayloadHash, date: Date())
/// ```
///
/// `path` is the request path before encoding: S3 encodes each segment exactly once
/// (other AWS services encode twice; registryd only speaks to S3).
public struct SignatureV4: Sendable {
    public let credentials: S3Credentials
    public let region: String
    public let service: String

    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    /// Sent over TLS, where the transport already protects the body's integrity.
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"

    public init(credentials: S3Credentials, region: String, service: String = "s3") {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// The headers to add to a request: `x-amz-date`, `x-amz-content-sha256`,
    /// `x-amz-security-token` (with temporary credentials) and `authorization`.
    /// `headers` must contain `host`; every header given is signed.
    public func authorizationHeaders(
        method: String, path: String, query: [(String, String)], headers: [(String, String)],
        payloadHash: String, date: Date
    ) -> [(String, String)] {
        let stamp = Self.timestamp(date)
        var added = [("x-amz-date", stamp), ("x-amz-content-sha256", payloadHash)]
        if let token = credentials.sessionToken { added.append(("x-amz-security-token", token)) }
        let signed = signature(
            method: method, path: path, query: query, headers: headers + added, payloadHash: payloadHash, timestamp: stamp)
        added.append(
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope(stamp)), SignedHeaders=\(signed.signedHeaders), Signature=\(signed.signature)"
            ))
        return added
    }

    /// The canonical request over exactly `headers` and its signature (the AWS test
    /// suite publishes both for each case).
    func signature(
        method: String, path: String, query: [(String, String)], headers: [(String, String)], payloadHash: String, timestamp: String
    ) -> (canonicalRequest: String, signedHeaders: String, signature: String) {
        let (canonicalHeaders, signedHeaders) = Self.canonicalHeaders(headers)
        let request = [method, Self.encodePath(path), Self.canonicalQuery(query), canonicalHeaders, signedHeaders, payloadHash]
            .joined(separator: "\n")
        return (request, signedHeaders, sign(canonicalRequest: request, timestamp: timestamp))
    }

    /// The query of a presigned URL valid for `expires` seconds: the signature travels in
    /// the URL, the payload is unsigned and only `host` is signed.
    public func presignedQuery(method: String, path: String, query: [(String, String)], host: String, date: Date, expires: Int) -> [(
        String, String
    )] {
        let stamp = Self.timestamp(date)
        var parameters =
            query + [
                ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
                ("X-Amz-Credential", "\(credentials.accessKeyID)/\(scope(stamp))"),
                ("X-Amz-Date", stamp),
                ("X-Amz-Expires", String(expires)),
                ("X-Amz-SignedHeaders", "host"),
            ]
        if let token = credentials.sessionToken { parameters.append(("X-Amz-Security-Token", token)) }
        let request = [method, Self.encodePath(path), Self.canonicalQuery(parameters), "host:\(host)\n", "host", Self.unsignedPayload]
            .joined(separator: "\n")
        parameters.append(("X-Amz-Signature", sign(canonicalRequest: request, timestamp: stamp)))
        return parameters
    }

    private func scope(_ timestamp: String) -> String {
        "\(timestamp.prefix(8))/\(region)/\(service)/aws4_request"
    }

    private func sign(canonicalRequest: String, timestamp: String) -> String {
        let stringToSign = ["AWS4-HMAC-SHA256", timestamp, scope(timestamp), Self.sha256Hex(Array(canonicalRequest.utf8))]
            .joined(separator: "\n")
        var key = Array("AWS4\(credentials.secretAccessKey)".utf8)
        for part in [String(timestamp.prefix(8)), region, service, "aws4_request"] {
            key = HMACSHA256.authenticationCode(for: Array(part.utf8), key: key)
        }
        return Hex.encode(HMACSHA256.authenticationCode(for: Array(stringToSign.utf8), key: key))
    }

    // MARK: Canonical forms

    /// `yyyyMMdd'T'HHmmss'Z'` in UTC.
    public static func timestamp(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : String(value) }
        return
            "\(parts.tm_year + 1900)\(two(parts.tm_mon + 1))\(two(parts.tm_mday))T\(two(parts.tm_hour))\(two(parts.tm_min))\(two(parts.tm_sec))Z"
    }

    /// RFC 3986 percent-encoding of everything but the unreserved characters
    /// (`A–Z a–z 0–9 - . _ ~`); `/` too unless `keepingSlashes`.
    public static func encode(_ text: String, keepingSlashes: Bool = false) -> String {
        var result = ""
        result.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: "/") where keepingSlashes:
                result.append("/")
            default:
                let digits = Array("0123456789ABCDEF".utf8)
                result.append("%")
                result.unicodeScalars.append(Unicode.Scalar(digits[Int(byte >> 4)]))
                result.unicodeScalars.append(Unicode.Scalar(digits[Int(byte & 0xF)]))
            }
        }
        return result
    }

    static func encodePath(_ path: String) -> String {
        path.isEmpty ? "/" : encode(path, keepingSlashes: true)
    }

    /// Sorted by encoded name, then by encoded value; `name=value` joined with `&`.
    public static func canonicalQuery(_ query: [(String, String)]) -> String {
        let encoded: [(name: String, value: String)] = query.map { (encode($0.0), encode($0.1)) }
        let sorted = encoded.sorted { left, right in left.name == right.name ? left.value < right.value : left.name < right.name }
        return sorted.map { $0.name + "=" + $0.value }.joined(separator: "&")
    }

    /// Lowercase names, values trimmed with inner runs of spaces folded, sorted by name;
    /// repeated names joined with commas.
    static func canonicalHeaders(_ headers: [(String, String)]) -> (canonical: String, signed: String) {
        var merged: [String: [String]] = [:]
        for (name, value) in headers {
            let folded = value.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
            merged[name.lowercased(), default: []].append(folded)
        }
        let names = merged.keys.sorted()
        let canonical = names.map { "\($0):\(merged[$0]!.joined(separator: ","))\n" }.joined()
        return (canonical, names.joined(separator: ";"))
    }

    // MARK: Primitives

    public static func sha256Hex(_ bytes: some Collection<UInt8>) -> String {
        Digest.of(bytes, algorithm: .sha256).encoded
    }
}
