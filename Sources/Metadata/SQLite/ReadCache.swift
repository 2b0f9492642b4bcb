import Synchronization

/// Answers of the hottest read queries (a manifest by tag, a tag list, a blob's size in a
/// repository, a repository's visibility), kept in memory until the next write.
///
/// Every write transaction of the process ends by bumping `generation`, which empties
/// the cache. A reader notes the generation before it queries and stores its answer
/// only if no write ended in between; an answer stored from a snapshot older than a
/// commit that is still being bumped is dropped by that bump. So a cached answer is never
/// older than the last write this process acknowledged. (Only this process writes the
/// database; several instances on one database would need another invalidation.)
final class ReadCache: Sendable {
    private struct State {
        var entries: [String: Entry] = [:]
        var bytes = 0
    }

    private struct Entry: @unchecked Sendable {
        // Values are immutable Sendable answers; the box only erases their type.
        let value: Any
    }

    private let state = Mutex(State())
    /// Bumped only inside `state`'s lock (so `store` compares it consistently), read
    /// without it by those who only compare it (answers built from cached reads remember
    /// the generation they came from).
    private let currentGeneration = Atomic<UInt64>(0)
    /// Bound on the approximate bytes held; reaching it starts the cache afresh.
    private let capacity: Int

    init(capacity: Int = 64 << 20) {
        self.capacity = capacity
    }

    /// The generation to pass to `store` after reading; it changes with every write
    /// transaction.
    var generation: UInt64 { currentGeneration.load(ordering: .acquiring) }

    func lookup<T: Sendable>(_ key: String, as type: T.Type) -> T? {
        // Unwrapped first: `nil as? T` succeeds when T is itself an Optional.
        state.withLock { state in
            guard let entry = state.entries[key] else { return nil }
            return entry.value as? T
        }
    }

    /// Keeps `value` unless a write ended since `generation` was read.
    func store<T: Sendable>(_ key: String, _ value: T, size: Int, readAt generation: UInt64) {
        state.withLock { state in
            guard currentGeneration.load(ordering: .relaxed) == generation else { return }
            if state.bytes + size + key.utf8.count > capacity {
                state.entries.removeAll(keepingCapacity: true)
                state.bytes = 0
            }
            state.entries[key] = Entry(value: value)
            state.bytes += size + key.utf8.count
        }
    }

    /// Called after every write transaction, committed or not.
    func invalidate() {
        state.withLock { state in
            currentGeneration.wrappingAdd(1, ordering: .releasing)
            state.entries.removeAll(keepingCapacity: true)
            state.bytes = 0
        }
    }
}
