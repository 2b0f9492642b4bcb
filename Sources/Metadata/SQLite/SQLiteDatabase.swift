import FoundationEssentials
import Synchronization

/// A SQLite database file in WAL mode: one writer connection and a small pool of
/// readers, so reads never wait for a write to finish.
///
/// Writes are committed in groups: a write that arrives while another group commits
/// waits, and the next group takes every write waiting by then into one transaction,
/// each inside a savepoint of its own (a write that fails rolls back alone), with one
/// commit, one fsync, for all. Under concurrent pushes that turns N fsyncs into one;
/// alone, a write costs what it did before.
final class SQLiteDatabase: Sendable {
    private let writer: WriteGroups
    private let readers: [ConnectionSlot]
    private let nextReader = Atomic<Int>(0)
    /// Hot answers, emptied by every write (see `ReadCache`).
    let cache = ReadCache()
    /// Room for the writes that free space, on a full disk (see `SpaceReserve`).
    let reserve: SpaceReserve

    /// 4 MiB: a collection's or a delete's transactions are a few pages each.
    static let reserveSize = 4 << 20

    init(path: String, readerCount: Int = 4) throws {
        reserve = SpaceReserve(path: path + "-reserve", size: Self.reserveSize)
        let writer = try SQLiteConnection(path: path, readOnly: false)
        // WAL lets readers run beside the writer; synchronous=FULL makes every commit
        // durable before we answer the client (a 201 is a promise). Page caches are kept
        // small (1 MiB writer, 512 KiB per reader; SQLite's default is 2 MiB each): the
        // hot answers live in `cache`, the file's pages stay in the kernel's page cache,
        // and five full default caches were ~10 MiB of the daemon's memory once the
        // database outgrew them (same push and mount rates either way; docs/PERFORMANCE.md).
        try writer.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA cache_size=-1024;")
        try Migrations.apply(to: writer)
        self.writer = WriteGroups(writer)
        var readers: [ConnectionSlot] = []
        for _ in 0..<readerCount {
            let reader = try SQLiteConnection(path: path, readOnly: true)
            try reader.execute("PRAGMA foreign_keys=ON; PRAGMA cache_size=-512;")
            readers.append(ConnectionSlot(reader))
        }
        self.readers = readers
    }

    /// Runs `body` on a reader connection.
    func read<T>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        let index = nextReader.wrappingAdd(1, ordering: .relaxed).oldValue % readers.count
        do {
            return try readers[index].use(body)
        } catch let error as SQLiteError {
            throw MetadataError(error)
        }
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

    /// Runs `body` inside a write transaction (with the writes committed alongside it);
    /// afterwards no cached answer predates it.
    ///
    /// A durable write is on disk before this returns (the WAL is fsynced at commit).
    /// `durable: false` skips that fsync for state nobody was promised (an upload session
    /// just opened, a pin): such a commit is atomic and survives a crash of the process,
    /// but a power cut may roll it back, unless a later durable commit (which syncs the
    /// whole WAL before it) has happened. A group with one durable write is durable.
    ///
    /// `body` must not write through this database itself (it would wait for its own group).
    ///
    /// A write that `freesSpace` (a delete, a collection's or a purge's step) that finds
    /// the disk full gives back the `SpaceReserve` and tries once more.
    ///
    /// Runs on one of `writerThreads` (see `BlockingThreads`): a write waits for its
    /// commit's fsync there, and writes from concurrent requests meet in one group commit
    /// instead of queueing for one fsync each.
    func write<T: Sendable>(
        durable: Bool = true, freesSpace: Bool = false, _ body: @escaping @Sendable (SQLiteConnection) throws -> T
    ) async throws -> T {
        try await Self.writerThreads.run {
            try self.writeBlocking(durable: durable, freesSpace: freesSpace, body)
        }
    }

    /// `write` on the calling thread: for opening the store, before anything is served.
    func writeBlocking<T>(durable: Bool = true, freesSpace: Bool = false, _ body: (SQLiteConnection) throws -> T) throws -> T {
        do {
            return try writer.commit(durable: durable, body, then: cache.invalidate)
        } catch let error as SQLiteError where error.isDiskFull {
            guard freesSpace, reserve.release() else { throw MetadataError.storageFull }
            return try writeBlocking(durable: durable, freesSpace: false, body)
        } catch let error as SQLiteError {
            throw MetadataError(error)
        }
    }

    /// Threads that wait for SQLite's commits (see `write`). Shared by every database of
    /// the process; sixteen so that a group commit gathers as many concurrent writes.
    private static let writerThreads = BlockingThreads(limit: 16, name: "sqlite-commit")
}

/// The writer connection and the writes waiting for it (see `SQLiteDatabase`).
///
/// Leader and followers: a thread with a write either finds no group committing and
/// commits everything waiting itself, or waits until a committing thread has done its
/// write. No thread of its own: whoever writes does the work.
///
/// `@unchecked Sendable`: the connection is used only by the one leading thread, and
/// everything else is guarded by `condition`.
private final class WriteGroups: @unchecked Sendable {
    private let connection: SQLiteConnection
    private let condition = ThreadCondition()
    private var waiting: [Job] = []
    private var leading = false

    /// One caller's write. Its closure runs on the leading thread while the caller waits.
    private final class Job {
        let durable: Bool
        /// Returns the write's failure, if it failed.
        let run: (SQLiteConnection) -> (any Error)?
        var done = false
        /// Set when the group's commit failed: the write did not happen.
        var commitFailure: (any Error)?

        init(durable: Bool, run: @escaping (SQLiteConnection) -> (any Error)?) {
            self.durable = durable
            self.run = run
        }
    }

    init(_ connection: SQLiteConnection) {
        self.connection = connection
    }

    func commit<T>(durable: Bool, _ body: (SQLiteConnection) throws -> T, then afterCommit: () -> Void) throws -> T {
        try withoutActuallyEscaping(body) { body in
            var result: Result<T, any Error>?
            let job = Job(durable: durable) { connection in
                result = Result { try body(connection) }
                if case .failure(let error) = result { return error }
                return nil
            }
            condition.lock()
            waiting.append(job)
            while !job.done {
                if leading {
                    condition.wait()
                    continue
                }
                leading = true
                let group = waiting
                waiting = []
                condition.unlock()
                run(group)
                afterCommit()
                condition.lock()
                for member in group { member.done = true }
                leading = false
                condition.broadcast()
            }
            condition.unlock()
            if let failure = job.commitFailure { throw failure }
            return try result!.get()
        }
    }

    /// One transaction for the group, each write in a savepoint; one commit.
    private func run(_ group: [Job]) {
        do {
            try connection.syncCommits(group.contains { $0.durable })
            try connection.execute("BEGIN IMMEDIATE")
            for job in group {
                try connection.execute("SAVEPOINT write")
                if let failure = job.run(connection) {
                    // Some errors (SQLITE_FULL, I/O errors) make SQLite roll back the whole
                    // transaction: every write of the group is undone, and fails with it.
                    guard connection.isInTransaction else { throw failure }
                    try connection.execute("ROLLBACK TO write")
                }
                try connection.execute("RELEASE write")
            }
            try connection.execute("COMMIT")
        } catch {
            try? connection.execute("ROLLBACK")
            for job in group { job.commitFailure = error }
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
    private let lock = ThreadCondition()

    init(_ connection: SQLiteConnection) {
        self.connection = connection
    }

    func use<T>(_ body: (SQLiteConnection) throws -> T) rethrows -> T {
        try lock.withLock { try body(connection) }
    }
}
