import CLinux
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Keeps each object in a file under `root`. Blocking system calls run on NIO's
/// thread pool, never on an event loop.
///
/// ```swift
/// let driver = try FilesystemDriver(root: "/var/lib/registryd/storage")
/// ```
///
/// Durability: `sync()` fsyncs the file; `move` renames (`writeWhole` links a file made
/// without a name) and then fsyncs the target directory and the parent of every directory
/// it had to create, so a blob put into place survives a power cut even on a file system
/// without a journal.
public struct FilesystemDriver: StorageDriver {
    public let name = "filesystem"
    public let root: String
    /// Size of each chunk `read` hands out.
    private let readChunkSize = 1 << 20
    private let threadPool: NIOThreadPool

    public init(root: String, threadPool: NIOThreadPool = .singleton) throws {
        self.root = root.hasSuffix("/") ? String(root.dropLast()) : root
        self.threadPool = threadPool
        try FileSystemCalls.makeDirectories(self.root)
    }

    public func size(of path: StoragePath) async throws -> Int64? {
        let file = fullPath(path)
        return try await threadPool.runIfActive {
            var info = stat()
            if stat(file, &info) != 0 {
                if errno == ENOENT || errno == ENOTDIR { return nil }
                throw FileSystemCalls.error("stat", file)
            }
            return (info.st_mode & S_IFMT) == S_IFREG ? Int64(info.st_size) : nil
        }
    }

    public func read(_ path: StoragePath, range: Range<Int64>?) async throws -> ByteChunks {
        let file = fullPath(path)
        let (descriptor, fileSize) = try await threadPool.runIfActive {
            let descriptor = open(file, O_RDONLY | O_CLOEXEC)
            if descriptor < 0 {
                if errno == ENOENT { throw StorageError.notFound(path) }
                throw FileSystemCalls.error("open", file)
            }
            var info = stat()
            guard fstat(descriptor, &info) == 0 else {
                close(descriptor)
                throw FileSystemCalls.error("fstat", file)
            }
            return (descriptor, Int64(info.st_size))
        }
        let bounds = range ?? 0..<fileSize
        guard bounds.lowerBound >= 0, bounds.upperBound <= fileSize else {
            close(descriptor)
            throw StorageError.invalidRange
        }
        let reader = FileRangeReader(descriptor: descriptor, range: bounds, chunkSize: readChunkSize, threadPool: threadPool)
        return ByteChunks { try await reader.next() }
    }

    public func appender(for path: StoragePath, truncatingTo length: Int64?) async throws -> any StorageAppender {
        let file = fullPath(path)
        let directory = parentDirectory(of: file)
        let descriptor = try await threadPool.runIfActive {
            try FileSystemCalls.makeDirectories(directory)
            let descriptor = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
            guard descriptor >= 0 else { throw FileSystemCalls.error("open", file) }
            if let length, ftruncate(descriptor, off_t(length)) != 0 {
                close(descriptor)
                throw FileSystemCalls.error("ftruncate", file)
            }
            return descriptor
        }
        return FileAppender(descriptor: descriptor, path: file, threadPool: threadPool)
    }

    public func move(from source: StoragePath, to destination: StoragePath) async throws {
        let (from, to) = (fullPath(source), fullPath(destination))
        try await threadPool.runIfActive {
            guard try renameDurably(from, to) else { throw StorageError.notFound(source) }
        }
    }

    /// Everything in one trip to the thread pool: through an appender and `move`, a small
    /// blob cost five (open, write, fsync, close, rename), each a hand-off to a pool thread
    /// and back (docs/PERFORMANCE.md, "Big blobs": small pushes).
    ///
    /// The file is made without a name in the destination's directory and linked into
    /// place once durable: no upload directory to make and remove, no rename between
    /// directories, and a crash before the link leaves nothing at all. Where that cannot
    /// be done (the destination exists, which a link cannot replace; a file system without
    /// `O_TMPFILE`) the bytes are staged at `staging` and renamed into place, as `move`.
    public func writeWhole(_ bytes: ByteBuffer, to destination: StoragePath, staging: StoragePath) async throws {
        let (file, target) = (fullPath(staging), fullPath(destination))
        try await threadPool.runIfActive {
            try bytes.withUnsafeReadableBytes { bytes in
                let made = try writeUnnamed(bytes, to: target)
                guard case .notWritten(let directoriesMade) = made else { return }
                try writeStaged(bytes, at: file, to: target, directoriesMade: directoriesMade)
            }
        }
    }

    private enum UnnamedWrite {
        case placed
        /// Not written: stage it instead. Directories made on the way must still be made
        /// durable (their parents fsynced) by whoever places the file.
        case notWritten(directoriesMade: [String])
    }

    private func writeUnnamed(_ bytes: UnsafeRawBufferPointer, to target: String) throws -> UnnamedWrite {
        let directory = parentDirectory(of: target)
        let made = try FileSystemCalls.makeDirectories(directory)
        let descriptor = registryd_open_unnamed(directory, 0o640)
        guard descriptor >= 0 else {
            if errno == EOPNOTSUPP || errno == EISDIR { return .notWritten(directoriesMade: made) }
            throw FileSystemCalls.error("open", directory)
        }
        defer { close(descriptor) }
        try FileSystemCalls.writeAll(bytes, to: descriptor, path: target)
        guard fsync(descriptor) == 0 else { throw FileSystemCalls.error("fsync", target) }
        guard registryd_link_unnamed(descriptor, target) == 0 else {
            // EEXIST: a link never replaces. The rest: /proc hidden or restricted.
            let code = errno
            if [EEXIST, ENOENT, EXDEV, EPERM, EACCES].contains(code) { return .notWritten(directoriesMade: made) }
            throw FileSystemCalls.error("link", target)
        }
        try syncNewEntry(in: directory, directoriesMade: made)
        return .placed
    }

    /// Writes `bytes` to `file`, then renames it to `target`. The upload's directory, when
    /// made for the staging file, goes again whatever happens; its parents stay (other
    /// uploads may be making directories in them). Once one directory is made, all below
    /// it are: the last made is the file's own.
    private func writeStaged(_ bytes: UnsafeRawBufferPointer, at file: String, to target: String, directoriesMade: [String]) throws {
        let directory = parentDirectory(of: file)
        let made = try FileSystemCalls.makeDirectories(directory)
        defer { if !made.isEmpty { rmdir(directory) } }
        let descriptor = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
        guard descriptor >= 0 else { throw FileSystemCalls.error("open", file) }
        let written = Result {
            try FileSystemCalls.writeAll(bytes, to: descriptor, path: file)
            guard fsync(descriptor) == 0 else { throw FileSystemCalls.error("fsync", file) }
        }
        close(descriptor)
        do {
            try written.get()
            guard try renameDurably(file, target, directoriesMade: directoriesMade) else {
                throw StorageError.io("\(file) vanished before it was placed")
            }
        } catch {
            unlink(file)
            throw error
        }
    }

    /// Renames `from` to `to` and makes the new entry durable (`syncNewEntry`). The
    /// source's entry need not be: a crash that leaves it too is cleaned up as an orphaned
    /// upload.
    /// - Parameter directoriesMade: directories toward `to` that the caller made already.
    /// - Returns: `false` when there is no `from`.
    private func renameDurably(_ from: String, _ to: String, directoriesMade: [String] = []) throws -> Bool {
        let targetDirectory = parentDirectory(of: to)
        let made = directoriesMade + (try FileSystemCalls.makeDirectories(targetDirectory))
        guard rename(from, to) == 0 else {
            if errno == ENOENT { return false }
            throw FileSystemCalls.error("rename", from)
        }
        try syncNewEntry(in: targetDirectory, directoriesMade: made)
        return true
    }

    /// Fsyncs `directory`, which just got a new entry, and the parent of every directory
    /// made on the way to it (`blobs/sha256/ab/<hex>/` is new for each blob), so the entry
    /// survives a power cut even on a file system without a journal.
    private func syncNewEntry(in directory: String, directoriesMade: [String]) throws {
        var synced = Set([directory])
        try FileSystemCalls.syncDirectory(directory)
        for made in directoriesMade.reversed() {
            let parent = parentDirectory(of: made)
            if synced.insert(parent).inserted { try FileSystemCalls.syncDirectory(parent) }
        }
    }

    public func delete(_ path: StoragePath) async throws {
        let file = fullPath(path)
        try await threadPool.runIfActive { try FileSystemCalls.removeTree(file) }
    }

    public func list(under prefix: StoragePath) async throws -> [StoragePath] {
        let directory = fullPath(prefix)
        let relative = try await threadPool.runIfActive { try FileSystemCalls.listFiles(under: directory) }
        return try relative.map { try StoragePath(prefix.segments + $0) }
    }

    public func localFile(for path: StoragePath) -> String? { fullPath(path) }

    private func fullPath(_ path: StoragePath) -> String { root + "/" + path.description }

    private func parentDirectory(of file: String) -> String {
        guard let slash = file.lastIndex(of: "/") else { return "." }
        return String(file[..<slash])
    }
}

/// Hands out one range of an open file chunk by chunk; closes the file at the end.
private actor FileRangeReader {
    private var descriptor: CInt
    private var offset: Int64
    private let end: Int64
    private let chunkSize: Int
    private let threadPool: NIOThreadPool

    init(descriptor: CInt, range: Range<Int64>, chunkSize: Int, threadPool: NIOThreadPool) {
        self.descriptor = descriptor
        self.offset = range.lowerBound
        self.end = range.upperBound
        self.chunkSize = chunkSize
        self.threadPool = threadPool
    }

    deinit { if descriptor >= 0 { close(descriptor) } }

    func next() async throws -> ByteBuffer? {
        guard descriptor >= 0 else { return nil }
        guard offset < end else {
            close(descriptor)
            descriptor = -1
            return nil
        }
        let count = Int(min(Int64(chunkSize), end - offset))
        let (descriptor, offset) = (self.descriptor, self.offset)
        let buffer = try await threadPool.runIfActive {
            var buffer = ByteBufferAllocator().buffer(capacity: count)
            let read = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { pointer in
                pread(descriptor, pointer.baseAddress, count, off_t(offset))
            }
            guard read > 0 else { throw StorageError.io("short read: file changed underneath") }
            return buffer
        }
        self.offset += Int64(buffer.readableBytes)
        return buffer
    }
}

/// Appends with `O_APPEND` writes from NIO's thread pool, one write in flight behind the
/// caller: `append` hands the bytes to the pool and returns, and the next call waits for
/// that write only if it has not finished yet.
///
/// Each hand-off between threads costs a wake-up; a pushed GiB is 8,192 of BlobStore's
/// 128 KiB batches. Awaiting each write in a task of its own (as BlobStore did, to hash
/// while the pool wrote) took four wake-ups per batch: the task's start, the pool thread,
/// the write's completion, the waiting caller. Here the pool thread is woken for the write,
/// and the caller, hashing meanwhile, usually finds it done (docs/PERFORMANCE.md, "Big
/// blobs").
///
/// Used by one upload request at a time, one call after the other (`StorageAppender`):
/// hence `@unchecked Sendable` for `inFlight`, which only that request's calls touch.
private final class FileAppender: StorageAppender, @unchecked Sendable {
    let file: OpenFile
    let path: String
    let threadPool: NIOThreadPool
    private var inFlight: PoolWrite?
    /// Bytes written since write-back was last started.
    private var unflushed = 0
    /// Every this many bytes the kernel is told to start writing the file back, so the
    /// disk works while the body still arrives and `sync()`'s fsync finds little left (a
    /// chunked upload fsyncs at the end of each PATCH, its client waiting).
    private static let writeBackInterval = 8 << 20

    init(descriptor: CInt, path: String, threadPool: NIOThreadPool) {
        self.file = OpenFile(descriptor)
        self.path = path
        self.threadPool = threadPool
    }

    func append(_ buffer: ByteBuffer) async throws {
        try await finishWriting()
        let (file, path) = (self.file, self.path)
        let write = PoolWrite()
        inFlight = write
        unflushed += buffer.readableBytes
        let startWriteBack = unflushed >= Self.writeBackInterval
        if startWriteBack { unflushed = 0 }
        // The write holds the file open: an appender dropped while it runs (a cancelled
        // request) does not close the descriptor under it.
        threadPool.submit { state in
            guard case .active = state else { return write.finish(CancellationError()) }
            do {
                try buffer.withUnsafeReadableBytes { try FileSystemCalls.writeAll($0, to: file.descriptor, path: path) }
                // A hint: no wait, and a failure here surfaces in `sync`'s fsync if at all.
                if startWriteBack { _ = registryd_start_write_back(file.descriptor) }
                write.finish(nil)
            } catch {
                write.finish(error)
            }
        }
    }

    func sync() async throws {
        try await finishWriting()
        let (descriptor, path) = (file.descriptor, self.path)
        try await threadPool.runIfActive {
            guard fsync(descriptor) == 0 else { throw FileSystemCalls.error("fsync", path) }
        }
    }

    func close() async throws {
        defer { file.close() }
        try await finishWriting()
    }

    /// Waits for the write in flight; its failure is this call's.
    private func finishWriting() async throws {
        guard let write = inFlight else { return }
        inFlight = nil
        try await write.finished()
    }
}

/// A file descriptor closed once: by `close()`, or when the last holder lets go.
private final class OpenFile: Sendable {
    let descriptor: CInt
    private let isOpen = Atomic(true)

    init(_ descriptor: CInt) { self.descriptor = descriptor }

    deinit { close() }

    func close() {
        if isOpen.exchange(false, ordering: .relaxed) { _ = Glibc.close(descriptor) }
    }
}

/// One write handed to the thread pool: the pool thread finishes it, the appender's next
/// call waits for it, suspending only when it has not finished yet.
private final class PoolWrite: Sendable {
    private enum State {
        case running
        case awaited(CheckedContinuation<Void, any Error>)
        case finished((any Error)?)
    }
    private let state = Mutex(State.running)

    /// Called once, by the pool thread.
    func finish(_ error: (any Error)?) {
        let waiting = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            defer { state = .finished(error) }
            if case .awaited(let continuation) = state { return continuation }
            return nil
        }
        if let waiting { Self.resume(waiting, error) }
    }

    func finished() async throws {
        if case .finished(let error) = state.withLock({ $0 }) {
            if let error { throw error }
            return
        }
        try await withCheckedThrowingContinuation { continuation in
            let outcome = state.withLock { state -> (any Error)?? in
                if case .finished(let error) = state { return .some(error) }
                state = .awaited(continuation)
                return .none
            }
            if case .some(let error) = outcome { Self.resume(continuation, error) }
        }
    }

    private static func resume(_ continuation: CheckedContinuation<Void, any Error>, _ error: (any Error)?) {
        if let error { continuation.resume(throwing: error) } else { continuation.resume() }
    }
}
