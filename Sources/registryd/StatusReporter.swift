import Metadata
import RegistryAPI
import Systemd

/// Keeps systemd's `STATUS=` line current: requests served, open connections,
/// uploads in progress.
struct StatusReporter: Sendable {
    let server: HTTPServer
    let metadata: SQLiteMetadataStore
    let notifier: ServiceNotifier

    func report() {
        let uploads = (try? metadata.statistics().uploads).map(String.init) ?? "?"
        notifier.status("serving: \(server.requestsServed) requests, \(server.openConnections) connections, \(uploads) uploads in progress")
    }

    func run(until stop: StopSignal) async {
        while !stop.isSignalled {
            await stop.sleep(for: .seconds(5))
            if !stop.isSignalled { report() }
        }
    }
}
