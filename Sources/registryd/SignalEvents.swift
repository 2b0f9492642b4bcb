import Dispatch

#if canImport(Glibc)
    import Glibc
#endif

/// Process signals as an async sequence: SIGTERM and SIGINT ask for a graceful stop,
/// SIGHUP for a reload of the settings that can change live.
enum SignalEvents {
    static func stream(_ signals: [CInt]) -> AsyncStream<CInt> {
        AsyncStream { continuation in
            let sources = SignalSources()
            for number in signals {
                // The default action would kill the process before the source sees it.
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler { continuation.yield(number) }
                source.resume()
                sources.all.append(source)
            }
            continuation.onTermination = { _ in sources.cancel() }
        }
    }
}

/// Keeps the signal sources alive as long as the stream.
///
/// `@unchecked Sendable`: `all` is filled before the stream is handed out and only
/// read afterwards, and `cancel()` on a dispatch source is thread-safe.
private final class SignalSources: @unchecked Sendable {
    var all: [any DispatchSourceSignal] = []

    func cancel() { for source in all { source.cancel() } }
}
