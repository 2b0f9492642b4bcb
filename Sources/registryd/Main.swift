import Foundation
import NIOCore
import NIOPosix

/// The entry point. Before any task starts, SwiftNIO's event loops become Swift
/// concurrency's global executor: a request's task then runs on the event loop thread
/// that read it, instead of hopping to the cooperative thread pool and back for every
/// request (measured in docs/PERFORMANCE.md).
@main
enum Main {
    static func main() {
        _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        Task {
            await RegistryCommand.main()
            exit(0)
        }
        dispatchMain()
    }
}
