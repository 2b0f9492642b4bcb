import CLibcrypto
import NIOCore

/// Incremental SHA-256 / SHA-512 over libcrypto, which uses the CPU's SHA extensions.
///
/// ```swift
/// let hasher = ContentHasher(algorithm: .sha256)
/// hasher.update(chunk)
/// let digest = hasher.finalize()
/// ```
///
/// Through libcrypto's own SHA functions, not its `EVP_Digest*` interface: the same
/// assembly at the same speed, but `EVP` first loads OpenSSL 3's provider machinery,
/// which made the first hash touch 2 MiB of the library that stayed resident for the
/// process's life (docs/PERFORMANCE.md, "Memory").
///
/// `@unchecked Sendable` because an upload hands its hasher from one request's task to
/// the next (a chunked upload spans several PATCH requests); it is owned by one task
/// at a time and never used concurrently, which `BlobUploadSessions` enforces by
/// letting one request hold a session at a time.
public final class ContentHasher: @unchecked Sendable {
    public let algorithm: DigestAlgorithm
    /// A `SHA256_CTX` or a `SHA512_CTX`, as `algorithm` says.
    private let context: UnsafeMutableRawPointer
    /// Bytes hashed so far.
    public private(set) var count: Int64 = 0

    public init(algorithm: DigestAlgorithm) {
        self.algorithm = algorithm
        switch algorithm {
        case .sha256:
            let context = UnsafeMutablePointer<SHA256_CTX>.allocate(capacity: 1)
            precondition(SHA256_Init(context) == 1, "SHA256_Init failed")
            self.context = UnsafeMutableRawPointer(context)
        case .sha512:
            let context = UnsafeMutablePointer<SHA512_CTX>.allocate(capacity: 1)
            precondition(SHA512_Init(context) == 1, "SHA512_Init failed")
            self.context = UnsafeMutableRawPointer(context)
        }
    }

    deinit { context.deallocate() }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        let result =
            switch algorithm {
            case .sha256: SHA256_Update(context.assumingMemoryBound(to: SHA256_CTX.self), base, bytes.count)
            case .sha512: SHA512_Update(context.assumingMemoryBound(to: SHA512_CTX.self), base, bytes.count)
            }
        precondition(result == 1, "SHA update failed")
        count += Int64(bytes.count)
    }

    public func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public func update(_ buffer: ByteBuffer) {
        buffer.withUnsafeReadableBytes { update($0) }
    }

    /// The digest of everything hashed so far. The hasher can no longer be updated.
    public func finalize() -> Digest {
        Digest(algorithm: algorithm, hashBytes: finalizeBytes())
    }

    /// The hash of everything hashed so far as raw bytes (HMAC's inner hash). The hasher
    /// can no longer be updated.
    public func finalizeBytes() -> [UInt8] {
        var output = [UInt8](repeating: 0, count: algorithm.encodedLength / 2)
        let result = output.withUnsafeMutableBufferPointer { output in
            switch algorithm {
            case .sha256: SHA256_Final(output.baseAddress, context.assumingMemoryBound(to: SHA256_CTX.self))
            case .sha512: SHA512_Final(output.baseAddress, context.assumingMemoryBound(to: SHA512_CTX.self))
            }
        }
        precondition(result == 1, "SHA final failed")
        return output
    }

    /// An independent copy, so the state can be finalized without ending this hasher.
    public func copy() -> ContentHasher {
        let clone = ContentHasher(algorithm: algorithm)
        let size =
            switch algorithm {
            case .sha256: MemoryLayout<SHA256_CTX>.size
            case .sha512: MemoryLayout<SHA512_CTX>.size
            }
        clone.context.copyMemory(from: context, byteCount: size)
        clone.count = count
        return clone
    }
}
