import Foundation
import Synchronization

/// A SQLite database file in WAL mode: one writer connection and a small pool of
/// readers, so reads never wait for a write to finish.
///
/// Connections are not thread-safe; each sits in a `ConnectionSlot` whose mutex hands
/// it to one caller at a time.
final class SQLiteDatabase: Sendable {
    private let writer: ConnectionSlot
    private let readers: [ConnectionSlot]
    private let nextReader = Atomic<Int>(0)
    /// Hot answers, emptied by every write (see `ReadCache`).
    let cache = ReadCache()

    init(path: String, readerCount: Int = 4) throws {
        let writer = try SQLiteConnection(path: path, readOnly: false)
        // WAL lets readers run beside the writer; synchronous=FULL makes every commit
        // durable before we answer the client (a 201 is a promise).
        try writer.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
        try Migrations.apply(to: writer)
        self.writer = ConnectionSlot(writer)
        var readers: [ConnectionSlot] = []
        for _ in 0..<readerCount {
            let reader = try SQLiteConnection(path: path, readOnly: true)
            try reader.execute("PRAGMA foreign_keys=ON;")
            readers.append(ConnectionSlot(reader))
        }
        self.readers = readers
    }

    /// Runs `body` on a reader connection.
    func read<T>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        let index = nextReader.wrappingAdd(1, ordering: .relaxed).oldValue % readers.count
        return try readers[index].use(body)
    }

    /// Runs `body` on a reader unless the answer for `key` is cached; caches it otherwise.
    /// `size` estimates the answer's bytes (for the cache's bound).
    func cachedRead<T: Sendable>(_ key: String, size: (T) -> Int = { _ in 64 }, _ body: (SQLiteConnection) throws -> T) throws -> T {
        if let hit = cache.lookup(key, as: T.self) { return hit }
        let generation = cache.generation
        let value = try read(body)
        cache.store(key, value, size: size(value), readAt: generation)
        return value
    }

    /// Runs `body` inside one write transaction; afterwards no cached answer predates it.
    ///
    /// A durable write is on disk before this returns (the WAL is fsynced at commit).
    /// `durable: false` skips that fsync for state nobody was promised (an upload session
    /// just opened, a pin): such a commit is atomic and survives a crash of the process,
    /// but a power cut may roll it back, unless a later durable commit (which syncs the
    /// whole WAL before it) has happened.
    func write<T>(durable: Bool = true, _ body: (SQLiteConnection) throws -> T) throws -> T {
        defer { cache.invalidate() }
        return try writer.use { connection in
            try connection.syncCommits(durable)
            return try connection.transaction { try body(connection) }
        }
    }
}

/// A connection behind its own lock.
///
/// `@unchecked Sendable` because the connection is only ever touched inside `use`,
/// which holds the lock; `Mutex` would do the same but cannot lend a non-Sendable
/// value to a closure that returns a generic result under strict concurrency.
private final class ConnectionSlot: @unchecked Sendable {
    private let connection: SQLiteConnection
    private let lock = NSLock()

    init(_ connection: SQLiteConnection) {
        self.connection = connection
    }

    func use<T>(_ body: (SQLiteConnection) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(connection)
    }
}
