import FoundationEssentials
import HTTPTransport
import Maintenance
import Metadata
import Systemd

/// Keeps systemd's `STATUS=` line current: requests served, open connections,
/// uploads in progress.
struct StatusReporter: Sendable {
    let server: HTTPServer
    let metadata: any MetadataBackend
    let collector: GarbageCollector
    let notifier: ServiceNotifier

    func report() async {
        let uploads = await (try? metadata.statistics().uploads).map(String.init) ?? "?"
        let collection = await collector.status
        let gc: String
        if collection.running != nil {
            gc = "garbage collection running (\(collection.phase.rawValue))"
        } else if let last = collection.last, let finished = last.finishedAt {
            gc = "last GC \(Int(Date().timeIntervalSince(finished)))s ago freed \(last.bytesFreed) bytes"
        } else {
            gc = "no GC yet"
        }
        notifier.status(
            "serving: \(server.requestsServed) requests, \(server.openConnections) connections, \(uploads) uploads in progress; \(gc)")
    }

    func run(until stop: StopSignal) async {
        while !stop.isSignalled {
            await stop.sleep(for: .seconds(5))
            if !stop.isSignalled { await report() }
        }
    }
}
