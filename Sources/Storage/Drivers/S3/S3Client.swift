import AsyncHTTPClient
import FoundationEssentials
import NIOCore
import NIOHTTP1
import NIOPosix

/// One S3 call: the object key (nil for the bucket itself), query, extra headers, body.
struct S3Request: Sendable {
    var method: HTTPMethod
    var key: String?
    var query: [(String, String)] = []
    var headers: [(String, String)] = []
    var body: ByteBuffer?
}

struct S3Response: Sendable {
    let status: HTTPResponseStatus
    let headers: HTTPHeaders
    let body: ByteBuffer

    func xml() throws -> S3XMLElement { try S3XMLElement.parse(body.readableBytesView) }
}

/// What the store answered when it refused a call.
struct S3ServiceError: Error, CustomStringConvertible {
    let status: UInt
    /// S3's error code: `NoSuchKey`, `NoSuchUpload`, `SlowDown`, `InvalidRange`, …
    let code: String
    let message: String

    var description: String { "S3 answered \(status) \(code)\(message.isEmpty ? "" : ": \(message)")" }

    /// Throttling and server-side trouble: the same call may succeed a little later.
    var isRetryable: Bool {
        status >= 500 || status == 429
            || ["SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling"].contains(code)
    }
}

/// The store could not be reached or the connection broke, every attempt.
struct S3TransportError: Error, CustomStringConvertible {
    let attempts: Int
    /// The last attempt's failure (the HTTP client's own error).
    let underlying: any Error
    var description: String { "S3 unreachable after \(attempts) attempts: \(underlying)" }
}

/// Signs and sends S3 calls over one process-wide connection pool, retrying with
/// exponential backoff what is safe to repeat: every call registryd makes is idempotent
/// (a part is re-sent whole, a copy or a completion lands once), so transport errors,
/// throttling and 5xx answers are retried up to `maximumAttempts` times.
final class S3Client: Sendable {
    let configuration: S3Configuration
    private let signer: SignatureV4
    private let maximumAttempts = 5
    /// Cap for small answers read whole (XML, small objects).
    private let maximumCollectedBody = 64 << 20

    init(configuration: S3Configuration) {
        self.configuration = configuration
        self.signer = SignatureV4(credentials: configuration.credentials, region: configuration.region)
    }

    /// Sends a call and reads its whole answer; a refusal throws `S3ServiceError`.
    func send(_ request: S3Request) async throws -> S3Response {
        try await withRetries(request) { response in
            let body = try await response.body.collect(upTo: self.maximumCollectedBody)
            let answer = S3Response(status: response.status, headers: response.headers, body: body)
            // CompleteMultipartUpload and CopyObject may answer 200 and still have failed.
            if request.method != .GET, answer.status == .ok, body.readableBytes < 65_536, let error = Self.embeddedError(body) {
                throw error
            }
            return answer
        }
    }

    /// Sends a call whose answer body the caller streams; retried only until the answer's
    /// head arrives.
    func open(_ request: S3Request) async throws -> HTTPClientResponse {
        try await withRetries(request) { $0 }
    }

    /// A URL that lets its holder GET the object for `expires` seconds without credentials.
    func presignedURL(key: String, expires: Int, now: Date = Date()) -> String {
        let path = configuration.requestPath(key: key)
        let query = signer.presignedQuery(method: "GET", path: path, query: [], host: configuration.authority, date: now, expires: expires)
        return "\(configuration.scheme)://\(configuration.authority)\(SignatureV4.encodePath(path))?\(SignatureV4.canonicalQuery(query))"
    }

    private func withRetries<T>(_ request: S3Request, _ handle: (HTTPClientResponse) async throws -> T) async throws -> T {
        var attempt = 0
        while true {
            attempt += 1
            let began = ContinuousClock.now
            do {
                let response = try await Self.http.execute(signed(request), deadline: .now() + .minutes(10))
                if (200..<300).contains(response.status.code) || (request.method == .HEAD && response.status == .notFound) {
                    return try await handle(response)
                }
                let body = (try? await response.body.collect(upTo: 65_536)) ?? ByteBuffer()
                let error = Self.serviceError(status: response.status, body: body)
                guard error.isRetryable, attempt < maximumAttempts else { throw error }
            } catch let error as S3ServiceError {
                guard error.isRetryable, attempt < maximumAttempts else { throw error }
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                // A failure that took the whole connect timeout means the pool already
                // kept trying to connect all that time: do not make the caller wait more.
                let exhausted = ContinuousClock.now - began >= Self.connectTimeout
                guard attempt < maximumAttempts, !exhausted else {
                    throw S3TransportError(attempts: attempt, underlying: error)
                }
            }
            try await Task.sleep(for: Self.backoff(attempt: attempt))
        }
    }

    /// 100 ms, 200 ms, 400 ms, … with jitter, so a throttled store is not hit in step.
    static func backoff(attempt: Int) -> Duration {
        let base = 0.1 * Double(1 << min(attempt - 1, 6))
        return .milliseconds(Int(base * Double.random(in: 0.5...1.5) * 1000))
    }

    private func signed(_ request: S3Request) -> HTTPClientRequest {
        let path = configuration.requestPath(key: request.key)
        var url = "\(configuration.scheme)://\(configuration.authority)\(SignatureV4.encodePath(path))"
        if !request.query.isEmpty { url += "?" + SignatureV4.canonicalQuery(request.query) }
        var client = HTTPClientRequest(url: url)
        client.method = request.method
        // Over TLS the transport protects the body; over plain HTTP its hash is signed.
        let payloadHash =
            configuration.scheme == "https"
            ? SignatureV4.unsignedPayload
            : request.body.map { buffer in buffer.withUnsafeReadableBytes { SignatureV4.sha256Hex($0) } } ?? SignatureV4.emptyPayloadHash
        let headers = [("host", configuration.authority)] + request.headers
        let authorization = signer.authorizationHeaders(
            method: request.method.rawValue, path: path, query: request.query, headers: headers, payloadHash: payloadHash, date: Date()
        )
        for (name, value) in headers + authorization { client.headers.add(name: name, value: value) }
        if let body = request.body {
            client.body = .bytes(body)
        } else if request.method == .PUT || request.method == .POST {
            client.headers.add(name: "content-length", value: "0")
        }
        return client
    }

    private static func serviceError(status: HTTPResponseStatus, body: ByteBuffer) -> S3ServiceError {
        let parsed = try? S3XMLElement.parse(body.readableBytesView)
        return S3ServiceError(status: status.code, code: parsed?["Code"] ?? status.reasonPhrase, message: parsed?["Message"] ?? "")
    }

    private static func embeddedError(_ body: ByteBuffer) -> S3ServiceError? {
        guard let parsed = try? S3XMLElement.parse(body.readableBytesView), parsed.name == "Error" else { return nil }
        return S3ServiceError(status: 200, code: parsed["Code"] ?? "Error", message: parsed["Message"] ?? "")
    }

    private static let connectTimeout = Duration.seconds(5)

    /// One pool for the process: connections are reused across uploads and reads.
    private static let http: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.decompression = .disabled
        configuration.timeout = .init(connect: .seconds(connectTimeout.components.seconds), read: .seconds(120))
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        return HTTPClient(eventLoopGroupProvider: .shared(MultiThreadedEventLoopGroup.singleton), configuration: configuration)
    }()
}
