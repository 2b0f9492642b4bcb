import ArgumentParser
import Dispatch
import Synchronization

/// The process entry point: parses the command line, then runs `RegistryCommand` on the
/// global executor while the main thread waits.
///
/// Not an `async` main: on Linux that ends the main thread with `pthread_exit` once the
/// first task is queued, and the forced unwind of its stack loads libgcc's unwinder and
/// pages in ~0.6 MiB of the binary's unwind tables that nothing else ever reads
/// (docs/PERFORMANCE.md, "Memory"). Nothing in registryd runs on the main actor.
@main
enum Main {
    static func main() {
        let command = RegistryCommand.parseOrExit()
        let failure = Mutex<(any Error)?>(nil)
        let finished = DispatchSemaphore(value: 0)
        Task.detached {
            do {
                try await command.run()
            } catch {
                failure.withLock { $0 = error }
            }
            finished.signal()
        }
        finished.wait()
        if let error = failure.withLock({ $0 }) { RegistryCommand.exit(withError: error) }
    }
}
