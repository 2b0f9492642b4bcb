import OCI

/// Everything registryd knows about repositories, blobs, manifests, tags and upload
/// sessions. The SQLite implementation is `SQLiteMetadataStore`; a PostgreSQL one can
/// sit beside it for several instances.
///
/// Calls are synchronous and short: each is one prepared statement or one transaction.
public protocol MetadataStore: Sendable {
    // MARK: Repositories
    /// Repository names in order, after `last`, at most `limit`.
    func repositoryNames(after last: String?, limit: Int) async throws -> [RepositoryName]

    /// How much the registry holds, for status reports.
    func statistics() async throws -> MetadataStatistics

    // MARK: Blobs
    /// The size of a blob visible in `repository`, or `nil`.
    func blobSize(_ digest: Digest, in repository: RepositoryName) async throws -> Int64?
    /// Protects a blob from garbage collection while `upload` puts its bytes in place:
    /// creates the row when missing and records the upload's pin, owned by this
    /// instance (see `InstanceLease`).
    /// - Returns: `false` when a collection is deleting the blob right now (wait, retry).
    func pinBlob(_ digest: Digest, size: Int64, for upload: UploadID) async throws -> Bool
    /// Drops the pin `upload` took (when placing its bytes failed).
    func unpinBlob(for upload: UploadID) async throws
    /// Records that a verified blob is stored and makes it visible in `repository`;
    /// `completing` an upload, also drops the pin it took and ends its session, in the
    /// same transaction (one durable commit for the finished upload).
    func linkBlob(_ digest: Digest, size: Int64, to repository: RepositoryName, completing upload: UploadID?) async throws
    /// Makes a blob visible in `target` when it is visible in `source`, in one transaction.
    /// - Returns: its size, or `nil` when `source` does not hold it.
    func mountBlob(_ digest: Digest, from source: RepositoryName, to target: RepositoryName) async throws -> Int64?
    /// Repositories in which the blob is visible, at most `limit`.
    func repositoriesLinking(_ digest: Digest, limit: Int) async throws -> [RepositoryName]
    /// Hides a blob from `repository`. - Returns: whether it was visible.
    func unlinkBlob(_ digest: Digest, from repository: RepositoryName) async throws -> Bool

    // MARK: Manifests and tags
    func manifest(_ reference: ManifestReference, in repository: RepositoryName) async throws -> StoredManifest?
    /// Stores a manifest and points `tags` at it, after checking in the same transaction
    /// that everything it requires is present in the repository.
    func putManifest(_ manifest: NewManifest, in repository: RepositoryName, tags: [Tag], actor: String?) async throws(PutManifestError)
    /// Deletes a manifest and the tags that point at it. - Returns: whether it existed.
    func deleteManifest(_ digest: Digest, in repository: RepositoryName, actor: String?) async throws -> Bool
    /// Deletes one tag, leaving the manifest. - Returns: whether it existed.
    func deleteTag(_ tag: Tag, in repository: RepositoryName, actor: String?) async throws -> Bool
    /// Tags in order after `last`, at most `limit`; `nil` when the repository is unknown.
    func tags(in repository: RepositoryName, after last: String?, limit: Int) async throws -> [String]?
    /// Manifests whose `subject` is `digest`, optionally only of one artifact type.
    func referrers(of digest: Digest, in repository: RepositoryName, artifactType: String?) async throws -> [Referrer]

    // MARK: Upload sessions
    func createUpload(_ session: UploadSession) async throws
    /// Upload sessions open for `principal` (`nil`: anonymous).
    func uploadCount(principal: String?) async throws -> Int
    func upload(_ id: UploadID) async throws -> UploadSession?
    func setUploadSize(_ id: UploadID, size: Int64) async throws
    func deleteUpload(_ id: UploadID) async throws
}

/// A manifest as stored: its exact bytes and the type they were pushed as.
public struct StoredManifest: Sendable {
    public let digest: Digest
    public let mediaType: String
    public let content: [UInt8]
}

/// A manifest about to be stored, with what it references.
public struct NewManifest: Sendable {
    public let digest: Digest
    public let mediaType: String
    public let content: [UInt8]
    public let artifactType: String?
    /// Annotations as a JSON object, for the referrers API.
    public let annotationsJSON: String?
    /// Blobs that must be visible in the repository (config and non-foreign layers).
    public let requiredBlobs: [Digest]
    /// Foreign layers: referenced, but their bytes live elsewhere.
    public let foreignBlobs: [Digest]
    /// Child manifests of an index.
    public let childManifests: [Digest]
    /// Accept an index whose children are missing (partial mirrors).
    public let allowMissingChildren: Bool
    public let subject: Digest?

    public init(
        digest: Digest, mediaType: String, content: [UInt8], artifactType: String?, annotationsJSON: String?, requiredBlobs: [Digest],
        foreignBlobs: [Digest], childManifests: [Digest], allowMissingChildren: Bool, subject: Digest?
    ) {
        self.digest = digest
        self.mediaType = mediaType
        self.content = content
        self.artifactType = artifactType
        self.annotationsJSON = annotationsJSON
        self.requiredBlobs = requiredBlobs
        self.foreignBlobs = foreignBlobs
        self.childManifests = childManifests
        self.allowMissingChildren = allowMissingChildren
        self.subject = subject
    }
}

public enum MetadataError: Error, Equatable {
    /// A collection is deleting this blob; it cannot be linked until it is gone.
    case blobBeingDeleted(Digest)
    /// The database's disk is full (SQLITE_FULL: the WAL or the file could not grow).
    /// The write was rolled back whole; writes work again once space is freed.
    case storageFull
    /// A row this build cannot read (what it holds is in the message).
    case damagedRow(String)
    /// The database engine failed; the engine's own error is kept.
    case backend(MetadataBackendError)
    /// The database cannot be reached (PostgreSQL down, its connections lost): nothing
    /// happened, and the same call may succeed once it is back.
    case unavailable(MetadataBackendError)
    /// The database was migrated by a newer registryd than this one: starting on it could
    /// misread what that version wrote.
    case newerSchema(found: Int, known: Int)
}

extension MetadataError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .blobBeingDeleted(let digest): "blob \(digest) is being deleted by a collection"
        case .storageFull: "the database's disk is full"
        case .damagedRow(let what): "damaged row: \(what)"
        case .backend(let error): "\(error)"
        case .unavailable(let error): "the database is unreachable: \(error)"
        case .newerSchema(let found, let known):
            "the database has schema version \(found), newer than this registryd knows (\(known)): "
                + "run the registryd that migrated it, or a newer one"
        }
    }
}

/// A failure of the database under the metadata layer, with the engine's own error kept
/// as its cause. The API edge logs it and answers 500; nothing below turns it into text.
public struct MetadataBackendError: Error, Equatable, CustomStringConvertible, @unchecked Sendable {
    /// The engine's result code (SQLite: the extended result code), when it gave one.
    public let code: Int32?
    /// What the engine (or whatever failed under the store) threw.
    public let underlying: any Error

    public init(code: Int32?, underlying: any Error) {
        self.code = code
        self.underlying = underlying
    }

    public var description: String { "\(underlying)" }

    public static func == (left: MetadataBackendError, right: MetadataBackendError) -> Bool {
        left.code == right.code && left.description == right.description
    }
}

extension MetadataStore {
    /// Links without a pin (bytes that are known to be in place, e.g. in tests).
    public func linkBlob(_ digest: Digest, size: Int64, to repository: RepositoryName) async throws {
        try await linkBlob(digest, size: size, to: repository, completing: nil)
    }
}

public enum PutManifestError: Error, Equatable {
    case blobUnknown(Digest)
    case manifestUnknown(Digest)
    /// See `MetadataError.storageFull`.
    case storageFull
    /// The store failed (the cause is kept in the `MetadataError`).
    case metadata(MetadataError)
}

/// A manifest that names another as its `subject`.
public struct Referrer: Sendable, Equatable {
    public let digest: Digest
    public let mediaType: String
    public let size: Int64
    public let artifactType: String?
    public let annotationsJSON: String?
}

public struct TagMove: Sendable, Equatable {
    public let tag: String
    public let oldDigest: String?
    public let newDigest: String?
    public let actor: String?
    public let at: Int64
}

/// An upload in progress: owned by one repository and one principal.
public struct UploadSession: Sendable, Equatable {
    public let id: UploadID
    public let repository: RepositoryName
    /// Who started it; `nil` for an anonymous caller.
    public let principal: String?
    public let algorithm: DigestAlgorithm
    /// Bytes acknowledged so far.
    public var size: Int64
    public let createdAt: Int64

    public init(id: UploadID, repository: RepositoryName, principal: String?, algorithm: DigestAlgorithm, size: Int64 = 0, createdAt: Int64)
    {
        self.id = id
        self.repository = repository
        self.principal = principal
        self.algorithm = algorithm
        self.size = size
        self.createdAt = createdAt
    }
}

public struct MetadataStatistics: Sendable, Equatable {
    public let repositories: Int
    public let blobs: Int
    public let blobBytes: Int64
    public let manifests: Int
    public let tags: Int
    public let uploads: Int

    public init(repositories: Int, blobs: Int, blobBytes: Int64, manifests: Int, tags: Int, uploads: Int) {
        self.repositories = repositories
        self.blobs = blobs
        self.blobBytes = blobBytes
        self.manifests = manifests
        self.tags = tags
        self.uploads = uploads
    }
}

/// What `repo.get` shows of a repository.
public struct RepositorySummary: Sendable {
    public let name: String
    public let isPublic: Bool
    public let createdAt: Int64
    public let tags: [(tag: String, digest: String)]
    public let manifests: [(digest: String, mediaType: String, size: Int64, createdAt: Int64)]
    /// Bytes of the blobs visible in the repository (shared blobs count in each).
    public let blobBytes: Int64
    public let blobCount: Int
}

/// Administration of repositories and uploads, for the control socket.
public protocol RepositoryAdministration: Sendable {
    func repositorySummary(_ name: RepositoryName) async throws -> RepositorySummary?
    /// Deletes a repository with its manifests, tags, blob links and upload sessions.
    /// Blob bytes stay for garbage collection. - Returns: the ids of the upload sessions
    /// it had (their temporary objects are the caller's to remove), or `nil` when unknown.
    func deleteRepository(_ name: RepositoryName) async throws -> [UploadID]?
    /// Tag moves of a repository, newest first, optionally of one tag.
    func tagHistory(in repository: RepositoryName, tag: Tag?, limit: Int) async throws -> [TagMove]
    /// Removes at most `limit` tag moves made before `time` (Unix seconds), oldest first.
    /// - Returns: how many it removed.
    func pruneTagHistory(before time: Int64, limit: Int) async throws -> Int
    /// Upload sessions, oldest activity first.
    func uploads(limit: Int) async throws -> [UploadSessionInfo]
}

extension RepositoryAdministration {
    /// Moves of one tag, newest first.
    public func tagHistory(_ tag: Tag, in repository: RepositoryName) async throws -> [TagMove] {
        try await tagHistory(in: repository, tag: tag, limit: 10_000)
    }
}

public struct UploadSessionInfo: Sendable, Equatable {
    public let session: UploadSession
    /// Unix time of the last acknowledged chunk (or the start).
    public let updatedAt: Int64
}
