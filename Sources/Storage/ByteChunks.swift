import NIOCore

/// A pull-driven sequence of byte buffers: the next chunk is produced only when the
/// consumer asks for it, so reading never runs ahead of the network.
public struct ByteChunks: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer

    private let pull: @Sendable () async throws -> ByteBuffer?

    /// `pull` returns the next chunk, or `nil` at the end. It is called by one consumer.
    public init(pull: @escaping @Sendable () async throws -> ByteBuffer?) {
        self.pull = pull
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let pull: @Sendable () async throws -> ByteBuffer?
        public mutating func next() async throws -> ByteBuffer? { try await pull() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(pull: pull) }

    /// Every chunk joined into one buffer: for small objects and tests only.
    public func collect(upTo maximum: Int) async throws -> ByteBuffer {
        var result = ByteBuffer()
        for try await var chunk in self {
            guard result.readableBytes + chunk.readableBytes <= maximum else {
                throw StorageError.io("object larger than \(maximum) bytes")
            }
            result.writeBuffer(&chunk)
        }
        return result
    }
}
