import NIOCore
import Synchronization

/// Keeps every object in memory: for tests and throw-away registries.
///
/// ```swift
/// let driver = MemoryDriver()
/// ```
public final class MemoryDriver: StorageDriver {
    public let name = "memory"
    private let objects = Mutex<[StoragePath: ByteBuffer]>([:])
    private let chunkSize = 1 << 20

    /// Set by tests to make `BlobStore` keep uploads as pieces, as it does on S3.
    public let appendRewritesObject: Bool

    public init(appendRewritesObject: Bool = false) {
        self.appendRewritesObject = appendRewritesObject
    }

    public func size(of path: StoragePath) async throws -> Int64? {
        objects.withLock { $0[path].map { Int64($0.readableBytes) } }
    }

    public func read(_ path: StoragePath, range: Range<Int64>?) async throws -> ByteChunks {
        guard let object = objects.withLock({ $0[path] }) else { throw StorageError.notFound(path) }
        let bounds = range ?? 0..<Int64(object.readableBytes)
        guard bounds.lowerBound >= 0, bounds.upperBound <= object.readableBytes else { throw StorageError.invalidRange }
        let remaining = Mutex(object.getSlice(at: Int(bounds.lowerBound), length: Int(bounds.count))!)
        let chunkSize = self.chunkSize
        return ByteChunks {
            remaining.withLock { rest in
                guard rest.readableBytes > 0 else { return nil }
                return rest.readSlice(length: min(chunkSize, rest.readableBytes))
            }
        }
    }

    public func appender(for path: StoragePath, truncatingTo length: Int64?) async throws -> any StorageAppender {
        objects.withLock { objects in
            var object = objects[path] ?? ByteBuffer()
            if let length, length < object.readableBytes { object.moveWriterIndex(to: object.readerIndex + Int(length)) }
            objects[path] = object
        }
        return MemoryAppender(driver: self, path: path)
    }

    public func move(from source: StoragePath, to destination: StoragePath) async throws {
        try objects.withLock { objects in
            guard let object = objects.removeValue(forKey: source) else { throw StorageError.notFound(source) }
            objects[destination] = object
        }
    }

    public func delete(_ path: StoragePath) async throws {
        objects.withLock { objects in
            for key in objects.keys where key.hasPrefix(path) { objects.removeValue(forKey: key) }
        }
    }

    public func list(under prefix: StoragePath) async throws -> [StoragePath] {
        objects.withLock { Array($0.keys.filter { $0.hasPrefix(prefix) }) }
    }

    public func localFile(for path: StoragePath) -> String? { nil }

    fileprivate func append(_ buffer: ByteBuffer, to path: StoragePath) throws {
        try objects.withLock { objects in
            guard var object = objects[path] else { throw StorageError.notFound(path) }
            objects[path] = nil  // keep the buffer uniquely referenced so the append does not copy
            var incoming = buffer
            object.writeBuffer(&incoming)
            objects[path] = object
        }
    }
}

private struct MemoryAppender: StorageAppender {
    let driver: MemoryDriver
    let path: StoragePath

    func append(_ buffer: ByteBuffer) async throws { try driver.append(buffer, to: path) }
    func sync() async throws {}
    func close() async throws {}
}
