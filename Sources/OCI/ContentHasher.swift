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
/// `@unchecked Sendable` because an upload hands its hasher from one request's task to
/// the next (a chunked upload spans several PATCH requests); it is owned by one task
/// at a time and never used concurrently, which `BlobUploadSessions` enforces by
/// letting one request hold a session at a time.
public final class ContentHasher: @unchecked Sendable {
    public let algorithm: DigestAlgorithm
    private let context: OpaquePointer
    /// Bytes hashed so far.
    public private(set) var count: Int64 = 0

    public init(algorithm: DigestAlgorithm) {
        self.algorithm = algorithm
        guard let context = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new: out of memory") }
        self.context = context
        let md =
            switch algorithm {
            case .sha256: EVP_sha256()
            case .sha512: EVP_sha512()
            }
        precondition(EVP_DigestInit_ex(context, md, nil) == 1, "EVP_DigestInit_ex failed")
    }

    deinit { EVP_MD_CTX_free(context) }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        precondition(EVP_DigestUpdate(context, base, bytes.count) == 1, "EVP_DigestUpdate failed")
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
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        precondition(EVP_DigestFinal_ex(context, &output, &length) == 1, "EVP_DigestFinal_ex failed")
        return Digest(algorithm: algorithm, hashBytes: output.prefix(Int(length)))
    }

    /// An independent copy, so the state can be finalized without ending this hasher.
    public func copy() -> ContentHasher {
        let clone = ContentHasher(algorithm: algorithm)
        precondition(EVP_MD_CTX_copy_ex(clone.context, context) == 1, "EVP_MD_CTX_copy_ex failed")
        clone.count = count
        return clone
    }
}
