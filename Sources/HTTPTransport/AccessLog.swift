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
        // One string grown in place (per request, on the event loop): no nested
        // interpolations, no padding string.
        var line = ""
        line.reserveCapacity(remote.utf8.count + uri.utf8.count + 48)
        line += remote
        line += " "
        line += method.rawValue
        line += " "
        line += uri
        line += " "
        line += String(status.code)
        line += " "
        line += String(sent)
        line += " "
        line += String(received)
        line += " "
        line += String(microseconds / 1000)
        line += "."
        let fraction = microseconds % 1000
        if fraction < 100 { line += fraction < 10 ? "00" : "0" }
        line += String(fraction)
        line += "ms"
        // The source named, not derived from the file's ID on every line.
        logger.info(Logger.Message(stringLiteral: line), source: "HTTPTransport")
    }
}
