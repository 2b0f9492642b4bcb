import Logging
import NIOHTTP1

/// One line per request at `info`: remote address, method, path, status, body bytes
/// sent, body bytes received, duration. Only these: headers may carry credentials.
///
///     127.0.0.1 PATCH /v2/a/blobs/uploads/0b5f…6666 202 0 1048576 4.210ms
struct AccessLog: Sendable {
    let logger: Logger

    func record(
        _ head: HTTPRequestHead, _ status: HTTPResponseStatus, sent: Int64, received: Int64, started: ContinuousClock.Instant,
        remote: String
    ) {
        record(method: head.method, uri: head.uri, status: status, sent: sent, received: received, started: started, remote: remote)
    }

    /// The same, for the immediate path, which has no `HTTPRequestHead`.
    func record(
        method: HTTPMethod, uri: String, status: HTTPResponseStatus, sent: Int64, received: Int64, started: ContinuousClock.Instant,
        remote: String
    ) {
        guard logger.logLevel <= .info else { return }
        let elapsed = ContinuousClock.now - started
        let microseconds = elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000
        let fraction = String(microseconds % 1000)
        let milliseconds = "\(microseconds / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)ms"
        logger.info("\(remote) \(method.rawValue) \(uri) \(status.code) \(sent) \(received) \(milliseconds)")
    }
}
