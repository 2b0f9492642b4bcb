import NIOCore
import NIOPosix

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
/// Durability: `sync()` fsyncs the file; `move` renames and then fsyncs the target
/// directory and the parent of every directory it had to create, so a blob that was
/// renamed into place survives a power cut even on a file system without a journal.
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
        let from = fullPath(source)
        let to = fullPath(destination)
        try await threadPool.runIfActive {
            let targetDirectory = parentDirectory(of: to)
            let created = try FileSystemCalls.makeDirectories(targetDirectory)
            guard rename(from, to) == 0 else {
                if errno == ENOENT { throw StorageError.notFound(source) }
                throw FileSystemCalls.error("rename", from)
            }
            // The destination is durable once its entry is on disk, and so is every
            // directory created on the way (`blobs/sha256/ab/<hex>/` is new for each blob):
            // fsync the target and each new directory's parent. The source's entry need
            // not be: a crash that leaves it too is cleaned up as an orphaned upload.
            var synced = Set([targetDirectory])
            try FileSystemCalls.syncDirectory(targetDirectory)
            for directory in created.reversed() {
                let parent = parentDirectory(of: directory)
                if synced.insert(parent).inserted { try FileSystemCalls.syncDirectory(parent) }
            }
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

/// Appends with `O_APPEND` writes from NIO's thread pool.
private struct FileAppender: StorageAppender {
    let descriptor: CInt
    let path: String
    let threadPool: NIOThreadPool

    func append(_ buffer: ByteBuffer) async throws {
        let (descriptor, path) = (self.descriptor, self.path)
        try await threadPool.runIfActive {
            try buffer.withUnsafeReadableBytes { bytes in
                var offset = 0
                while offset < bytes.count {
                    let written = write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        throw FileSystemCalls.error("write", path)
                    }
                    offset += written
                }
            }
        }
    }

    func sync() async throws {
        let (descriptor, path) = (self.descriptor, self.path)
        try await threadPool.runIfActive {
            guard fsync(descriptor) == 0 else { throw FileSystemCalls.error("fsync", path) }
        }
    }

    func close() async throws {
        _ = Glibc.close(descriptor)
    }
}
