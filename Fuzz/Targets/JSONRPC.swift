import Auth
import Control
import ControlProtocol
import Dispatch
import FoundationEssentials
import Metadata
import Storage

extension FuzzTarget {
    /// The control socket's dispatcher on a real (temporary) database: every line gets
    /// one JSON-RPC 2.0 answer (or none, for notifications), and bad params change
    /// nothing the dispatcher would not report.
    static let jsonRPC = FuzzTarget(name: "json-rpc") { bytes in
        let line = text(bytes)
        let dispatcher = ControlFixture.shared.dispatcher
        let answered = ManagedAnswer()
        let done = DispatchSemaphore(value: 0)
        Task {
            answered.set(await dispatcher.handle(line: line, caller: "uid 0 (fuzz)"))
            done.signal()
        }
        done.wait()
        guard let answer = answered.value else { return }
        guard let decoded = try? JSONDecoder().decode(JSONValue.self, from: Data(answer.utf8)) else {
            preconditionFailure("the answer is not JSON: \(answer)")
        }
        let answers: [JSONValue] = if case .array(let many) = decoded { many } else { [decoded] }
        for single in answers {
            check(single["jsonrpc"] == .string("2.0"), "not a JSON-RPC 2.0 answer: \(answer)")
            check((single["result"] == nil) != (single["error"] == nil), "an answer holds exactly one of result and error: \(answer)")
        }
    }
}

/// One store and dispatcher for the whole run (opening SQLite per input would be most
/// of the work); fast bcrypt so that `user.create` does not dominate.
final class ControlFixture: Sendable {
    static let shared = ControlFixture()
    let dispatcher: ControlDispatcher

    private init() {
        let directory = "/tmp/registryd-fuzz-\(UUID().uuidString.prefix(8).lowercased())"
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let metadata = try! SQLiteMetadataStore(path: directory + "/registry.db")
        let blobs = BlobStore(driver: MemoryDriver())
        dispatcher = ControlMethods(metadata: metadata, blobs: blobs, passwords: PasswordHasher(cost: 4), version: "fuzz").makeDispatcher()
    }
}

/// The answer handed from the dispatcher's task to the waiting fuzzer thread.
final class ManagedAnswer: @unchecked Sendable {  // written once before the semaphore signals, read after
    private(set) var value: String?
    func set(_ answer: String?) { value = answer }
}
