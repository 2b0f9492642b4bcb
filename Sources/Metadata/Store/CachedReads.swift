import OCI

/// The hot reads' cached answers, without ever touching the database: for answering
/// requests on the event loop that read them (see `ImmediateReads`).
///
/// Each returns `nil` when the answer is not in memory; a cached "there is none" is
/// `.some(nil)`. A miss sends the request down the full path, which reads the
/// database and fills the cache.
public protocol CachedReads: Sendable {
    func cachedManifest(_ reference: ManifestReference, in repository: RepositoryName) -> StoredManifest??
    func cachedTags(in repository: RepositoryName, after last: String?, limit: Int) -> [String]??
    func cachedBlobSize(_ digest: Digest, in repository: RepositoryName) -> Int64??
    func cachedIsPublic(_ repository: RepositoryName) -> Bool?
    /// Changes with every write transaction: an answer derived from cached reads at one
    /// generation is current while the generation is unchanged.
    var cacheGeneration: UInt64 { get }
}

/// The cache keys of the hot reads, shared by the reads that fill them and the peeks.
enum HotReadKey {
    static func manifest(_ reference: ManifestReference, _ repository: RepositoryName) -> String {
        switch reference {
        case .digest(let digest): "manifest\u{0}\(repository.value)\u{0}\(digest)"
        case .tag(let tag): "manifest\u{0}\(repository.value)\u{0}\(tag.value)"
        }
    }

    static func tags(_ repository: RepositoryName, _ last: String?, _ limit: Int) -> String {
        "tags\u{0}\(repository.value)\u{0}\(last ?? "")\u{0}\(limit)"
    }

    static func blob(_ digest: Digest, _ repository: RepositoryName) -> String {
        "blob\u{0}\(repository.value)\u{0}\(digest)"
    }

    static func visibility(_ repository: RepositoryName) -> String {
        "public\u{0}\(repository.value)"
    }
}

/// A backend whose hot reads go through a `ReadCache`: the peeks of `CachedReads` are
/// the same lookups for every such backend.
protocol ReadCaching: CachedReads {
    var readCache: ReadCache { get }
}

extension ReadCaching {
    public func cachedManifest(_ reference: ManifestReference, in repository: RepositoryName) -> StoredManifest?? {
        readCache.lookup(HotReadKey.manifest(reference, repository), as: StoredManifest?.self)
    }

    public func cachedTags(in repository: RepositoryName, after last: String?, limit: Int) -> [String]?? {
        readCache.lookup(HotReadKey.tags(repository, last, limit), as: [String]?.self)
    }

    public func cachedBlobSize(_ digest: Digest, in repository: RepositoryName) -> Int64?? {
        readCache.lookup(HotReadKey.blob(digest, repository), as: Int64?.self)
    }

    public func cachedIsPublic(_ repository: RepositoryName) -> Bool? {
        readCache.lookup(HotReadKey.visibility(repository), as: Bool.self)
    }

    public var cacheGeneration: UInt64 { readCache.generation }
}

extension SQLiteMetadataStore: ReadCaching {
    var readCache: ReadCache { database.cache }
}

extension PostgresMetadataStore: ReadCaching {
    var readCache: ReadCache { database.cache }
}
