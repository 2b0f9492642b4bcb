import FoundationEssentials
import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// Where bytes live. One small protocol with a driver per backend (filesystem, memory,
/// and later S3); every driver passes the same contract suite in `StorageTests`.
///
/// ```swift
/// let driver: any StorageDriver = try FilesystemDriver(root: root)
/// let appender = try await driver.appender(for: path, truncatingTo: 0)
/// try await appender.append(buffer); try await appender.sync(); try await appender.close()
/// try await driver.move(from: path, to: finalPath)
/// ```
///
/// Drivers know nothing of digests or repositories; `BlobStore` gives paths meaning.
public protocol StorageDriver: Sendable {
    /// A short name for logs and status: `filesystem`, `memory`, `s3`.
    var name: String { get }

    /// The size of the object at `path`, or `nil` when there is none.
    func size(of path: StoragePath) async throws -> Int64?

    /// The bytes of `range` (the whole object when `nil`), pulled chunk by chunk so a
    /// slow reader holds back the driver instead of filling memory.
    func read(_ path: StoragePath, range: Range<Int64>?) async throws -> ByteChunks

    /// Opens the object at `path` for appending, creating it when missing. When
    /// `truncatingTo` is given the object is first cut to that length (a resumed upload
    /// drops bytes a crash left past the last acknowledged offset).
    func appender(for path: StoragePath, truncatingTo length: Int64?) async throws -> any StorageAppender

    /// Moves an object atomically and durably: afterwards `destination` holds the whole
    /// source or, after a crash, nothing changed. Replaces an existing destination.
    func move(from source: StoragePath, to destination: StoragePath) async throws

    /// Starts a new object that appears at `destination` whole and only on `commit()`:
    /// until then readers see what was there before (or nothing), and `abort()` or a
    /// crash leaves the destination as it was. The bytes may wait at `staging` meanwhile
    /// (a file renamed into place); a driver that can write to the destination unseen
    /// (S3's multipart uploads) writes there, so committing copies nothing.
    func placingWriter(to destination: StoragePath, staging: StoragePath) async throws -> any PlacingWriter

    /// Writes a whole object held in memory (a small blob) into place, durably and
    /// atomically as `move` does, in as few steps as the backend allows. The bytes may
    /// pass through `staging`; nothing is left there, nor any directory made for it.
    func writeWhole(_ bytes: ByteBuffer, to destination: StoragePath, staging: StoragePath) async throws

    /// Whether appending to an existing object makes the store rewrite it (S3 objects
    /// cannot grow). `BlobStore` then keeps each request's bytes of an upload as an object
    /// of its own and joins them once, when the blob is placed (`concatenate`).
    var appendRewritesObject: Bool { get }

    /// Joins `sources`, in order, into one new object at `destination`, atomically as
    /// `move` does. The sources stay; the caller deletes them.
    func concatenate(_ sources: [StoragePath], into destination: StoragePath) async throws

    /// Deletes the object at `path`, or everything under it when it is a prefix.
    /// Deleting what does not exist is not an error.
    func delete(_ path: StoragePath) async throws

    /// Every object path under `prefix`, in no particular order.
    func list(under prefix: StoragePath) async throws -> [StoragePath]

    /// A local file holding the object, which the HTTP layer sends itself; `nil` when
    /// the driver keeps objects elsewhere.
    func localFile(for path: StoragePath) -> String?

    /// A URL from which a client may fetch the object itself for a while (a presigned S3
    /// URL), or `nil` when the registry must send the bytes.
    func downloadURL(for path: StoragePath) -> String?

    /// Cleans up writes that a crash left half-done and that no object shows (S3's
    /// incomplete multipart uploads) once they are older than `age`.
    /// - Returns: how many were removed.
    func abortAbandonedWrites(olderThan age: Duration, now: Date) async throws -> Int
}

extension StorageDriver {
    /// Appends to `staging`, then `move`s it into place: where a move is a rename, that
    /// costs nothing, and no driver-specific code is needed.
    public func placingWriter(to destination: StoragePath, staging: StoragePath) async throws -> any PlacingWriter {
        StagedWriter(driver: self, destination: destination, staging: staging, appender: try await appender(for: staging, truncatingTo: 0))
    }

    /// Through a placing writer: a call per step.
    public func writeWhole(_ bytes: ByteBuffer, to destination: StoragePath, staging: StoragePath) async throws {
        try await writePlaced(to: destination, staging: staging) { try await $0.append(bytes) }
    }

    public var appendRewritesObject: Bool { false }

    /// Reads the sources into a placing writer staged beside the first.
    public func concatenate(_ sources: [StoragePath], into destination: StoragePath) async throws {
        guard let first = sources.first, let name = first.segments.last else {
            throw StorageError.io("nothing to join into \(destination)")
        }
        try await writePlaced(to: destination, staging: try StoragePath(first.segments.dropLast() + [name + ".joined"])) { writer in
            for source in sources {
                for try await chunk in try await read(source, range: nil) { try await writer.append(chunk) }
            }
        }
    }

    /// A new object through a placing writer: `fill` appends its bytes, then it is
    /// committed; on any failure it is aborted, so the destination stays as it was.
    func writePlaced(to destination: StoragePath, staging: StoragePath, _ fill: (any PlacingWriter) async throws -> Void) async throws {
        let writer = try await placingWriter(to: destination, staging: staging)
        do {
            try await fill(writer)
            try await writer.commit()
        } catch {
            try? await writer.abort()
            throw error
        }
    }

    public func downloadURL(for path: StoragePath) -> String? { nil }
    public func abortAbandonedWrites(olderThan age: Duration, now: Date) async throws -> Int { 0 }
}

/// Appends to one object. Used by one upload request at a time, one call after the other.
public protocol StorageAppender: Sendable {
    /// Takes `buffer` for the object. It may return before the bytes are written (the
    /// filesystem driver writes behind the caller, S3 uploads parts in the background):
    /// a failed write surfaces in a later call, at the latest in `sync`.
    func append(_ buffer: ByteBuffer) async throws
    /// Writes everything appended so far and makes it durable (fsync for files).
    func sync() async throws
    /// Ends the appender. Without `sync` nothing is promised durable.
    func close() async throws
}

/// Writes one new object into place (`StorageDriver.placingWriter`). Used by one request,
/// one call after the other; ends with `commit()` or `abort()` (also after a failed
/// `commit()`, to clean up).
public protocol PlacingWriter: Sendable {
    /// Whether the bytes wait at the staging path until `commit()`: then a directory made
    /// for them may be left behind, for the caller to remove when it owns it. `false`
    /// where the writer writes to the destination unseen (S3's multipart uploads).
    var usesStaging: Bool { get }
    /// Takes `buffer` for the object; like `StorageAppender.append` it may return before
    /// the bytes are written, and a failure surfaces at the latest in `commit`.
    func append(_ buffer: ByteBuffer) async throws
    /// Makes the bytes durable and visible at the destination in one step, replacing
    /// what was there.
    func commit() async throws
    /// Ends the write; the destination stays as it was.
    func abort() async throws
}

/// The placing writer of drivers that move objects cheaply: an appender on the staging
/// path, moved to the destination on commit.
struct StagedWriter: PlacingWriter {
    let driver: any StorageDriver
    let destination: StoragePath
    let staging: StoragePath
    let appender: any StorageAppender

    var usesStaging: Bool { true }

    func append(_ buffer: ByteBuffer) async throws {
        try await appender.append(buffer)
    }

    func commit() async throws {
        try await appender.sync()
        try await appender.close()
        try await driver.move(from: staging, to: destination)
    }

    func abort() async throws {
        // Being given up: a write that failed in the background may fail the close too.
        try? await appender.close()
        try await driver.delete(staging)
    }
}

public enum StorageError: Error, Equatable, Sendable {
    case notFound(StoragePath)
    case invalidRange
    /// The device is full (ENOSPC/EDQUOT); the operator must free space.
    case noSpace
    /// The backend did not answer or kept failing after retries (an object store that is
    /// down or throttling): the same request may succeed later.
    case unavailable(StorageFailure)
    /// Any other failure: what was being done and, when something below failed, its
    /// error or `errno`.
    case io(StorageFailure)
}

/// What a storage operation was doing when it failed, with the cause kept as it came
/// from below: the underlying error (an S3 answer, a transport failure) or the `errno`
/// of a system call. Written as text (`.io("short read")`) when registryd itself found
/// the fault and nothing below failed.
public struct StorageFailure: Error, Equatable, CustomStringConvertible, ExpressibleByStringInterpolation, @unchecked Sendable {
    public let operation: String
    /// The `errno` of the failed system call.
    public let code: Int32?
    public let underlying: (any Error)?

    public init(_ operation: String, code: Int32? = nil, underlying: (any Error)? = nil) {
        self.operation = operation
        self.code = code
        self.underlying = underlying
    }

    public init(stringLiteral value: String) {
        self.init(value)
    }

    public var description: String {
        if let underlying { return "\(operation): \(underlying)" }
        if let code { return "\(operation): \(String(cString: strerror(code)))" }
        return operation
    }

    public static func == (left: StorageFailure, right: StorageFailure) -> Bool {
        left.code == right.code && left.description == right.description
    }
}
