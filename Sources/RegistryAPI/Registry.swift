import Auth
import HTTPTransport
import Logging
import Metadata
import NIOCore
import NIOHTTP1
import NIOPosix
import OCI
import Storage

/// The registry API: answers `/v2` requests from metadata and blob storage, behind an
/// `HTTPServer` (the daemon's own wiring is `RegistryCommand.run`).
///
/// ```swift
/// let metadata = try SQLiteMetadataStore(path: dataDir + "/registry.db")
/// let policy = RegistryAccessPolicy(scheme: .basic, accounts: metadata)
/// let registry = Registry(
///     metadata: metadata, blobs: BlobStore(driver: try FilesystemDriver(root: dataDir + "/storage")),
///     policy: policy, logger: logger)
/// let immediateReads = ImmediateReads(cache: metadata, access: policy, configuration: Registry.Configuration())
/// ```
public final class Registry: RequestResponder {
    public struct Configuration: Sendable {
        /// Accept an index whose child manifests are not (yet) in the repository, for
        /// partial mirrors. Off by default: such a push gets `MANIFEST_BLOB_UNKNOWN`.
        public var allowSparseIndexes = false
        /// Upper bound for `n` on `_catalog` and `tags/list` (CVE-2023-2253).
        public var maximumPageSize = 1000
        /// Page size when the client gives no `n`.
        public var defaultPageSize = 1000
        /// Most referrers listed for one subject.
        public var maximumReferrers = 1000
        /// Most upload sessions one principal may have open; past it a new upload gets
        /// 429 (abandoned sessions count until the upload purge removes them).
        public var maximumUploadsPerPrincipal = 64

        public init() {}
    }

    let metadata: any MetadataStore
    let blobs: BlobStore
    let policy: any AccessPolicy
    let configuration: Configuration
    let logger: Logger
    let uploads = BlobUploadSessions()
    /// `GET /token`, present when token auth is on.
    let tokenEndpoint: TokenEndpoint?

    public init(
        metadata: any MetadataStore, blobs: BlobStore, policy: any AccessPolicy, tokenEndpoint: TokenEndpoint? = nil,
        configuration: Configuration = Configuration(), logger: Logger
    ) {
        self.metadata = metadata
        self.tokenEndpoint = tokenEndpoint
        self.blobs = blobs
        self.policy = policy
        self.configuration = configuration
        self.logger = logger
    }

    public func respond(to request: HTTPRequest, remoteAddress: String) async -> HTTPResponse {
        await answer(request, remoteAddress: remoteAddress).withRegistryHeaders()
    }

    private func answer(_ request: HTTPRequest, remoteAddress: String) async -> HTTPResponse {
        do {
            let route: Route
            do {
                route = try Route(path: request.path)
            } catch .invalidName(let name) {
                throw RegistryError.nameInvalid(name)
            } catch {
                throw RegistryError(.unsupported, status: .notFound, "no such endpoint", detail: String(request.path.prefix(300)))
            }
            guard route.methods.contains(request.method) else {
                var error = RegistryError(.unsupported, status: .methodNotAllowed, "method not allowed on this endpoint")
                error.headers.append(("Allow", route.methods.map(\.rawValue).joined(separator: ", ")))
                throw error
            }
            // The token endpoint checks its own credentials (a login, not a registry request).
            let principal = route == .token ? nil : try await policy.authenticate(request.headers, remoteAddress: remoteAddress)
            let context = RequestContext(request: request, principal: principal, remoteAddress: remoteAddress)
            return try await dispatch(route, context)
        } catch let error as RegistryError {
            return .error(error)
        } catch RequestBodyError.tooSlow(let rate) {
            // Any body (a manifest, a token request), not only an upload's.
            return .error(.bodyTooSlow(rate))
        } catch {
            logger.error("\(request.method.rawValue) \(request.path): \(error)")
            return .error(.internalError("the request could not be completed"))
        }
    }

    public func responseForUnreadableFile(path: String, error: any Error) -> HTTPResponse {
        HTTPResponse.error(RegistryError.blobUnknown("blob bytes are missing")).withRegistryHeaders()
    }

    private func dispatch(_ route: Route, _ context: RequestContext) async throws -> HTTPResponse {
        switch (route, context.request.method) {
        case (.token, _):
            guard let tokenEndpoint else { throw RegistryError(.unsupported, status: .notFound, "token auth is not enabled") }
            return try await tokenEndpoint.respond(to: context.request, remoteAddress: context.remoteAddress)
        case (.base, _):
            if let refusal = policy.baseRefusal(for: context.principal) { throw refusal }
            return .json(.ok, Array("{}".utf8))
        case (.catalog, _):
            return try await catalog(context)
        case (.tags(let name), _):
            return try await tags(name, context)
        case (.manifest(let name, let reference), .GET), (.manifest(let name, let reference), .HEAD):
            return try await getManifest(name, reference, context)
        case (.manifest(let name, let reference), .PUT):
            return try await putManifest(name, reference, context)
        case (.manifest(let name, let reference), _):
            return try await deleteManifest(name, reference, context)
        case (.blob(let name, let digest), .DELETE):
            return try await deleteBlob(name, digest, context)
        case (.blob(let name, let digest), _):
            return try await getBlob(name, digest, context)
        case (.startUpload(let name), _):
            return try await startUpload(name, context)
        case (.upload(let name, let id), .GET):
            return try await uploadStatus(name, id, context)
        case (.upload(let name, let id), .PATCH):
            return try await patchUpload(name, id, context)
        case (.upload(let name, let id), .PUT):
            return try await finishUpload(name, id, context)
        case (.upload(let name, let id), _):
            return try await cancelUpload(name, id, context)
        case (.referrers(let name, let digest), _):
            return try await referrers(name, digest, context)
        }
    }

    /// Refuses the request unless the caller may do every one of `actions` on
    /// `repository` (the endpoint → actions table is in docs/AUTH.md). `push` and
    /// `delete` are checked before `pull`, so a caller lacking both hears "denied" (as for
    /// any repository) rather than "unknown" (the answer to a missing `pull` alone).
    func authorize(_ actions: RepositoryAction..., on repository: RepositoryName, _ context: RequestContext) async throws {
        for action in actions.sorted(by: >) {
            guard await policy.allows(context.principal, to: action, on: repository) else {
                throw await policy.refusal(for: context.principal, action: action, needed: actions, on: repository)
            }
        }
        let principal = context.principal
        if actions.contains(.push), try await meta({ try await policy.pushCreatesNamespace(principal, on: repository) }) {
            try await meta { try await self.policy.createNamespace(for: principal, on: repository) }
        }
    }

    /// Runs a metadata call, turning database failures into a logged 500. The store
    /// itself keeps network round trips and fsync waits off Swift's cooperative threads
    /// (see `MetadataStore`).
    func meta<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as RegistryError {
            throw error
        } catch MetadataError.storageFull {
            logger.error("metadata: the database's disk is full")
            throw RegistryError.storageFull
        } catch MetadataError.unavailable(let cause) {
            logger.error("metadata: the database is unreachable: \(cause)")
            throw RegistryError.metadataUnavailable
        } catch {
            logger.error("metadata: \(error)")
            throw RegistryError.internalError("metadata store failure")
        }
    }
}

/// What every handler needs to know about the request beyond the route.
struct RequestContext {
    let request: HTTPRequest
    let principal: Principal?
    let remoteAddress: String
}

extension HTTPResponse {
    /// Every answer of the registry says which API it speaks (clients check it on `/v2/`).
    func withRegistryHeaders() -> HTTPResponse {
        var response = self
        response.headers.replaceOrAdd(name: "Docker-Distribution-API-Version", value: "registry/2.0")
        return response
    }
}

extension Digest {
    /// Parses a digest from a URL or query, answering 400 `DIGEST_INVALID` (or
    /// `UNSUPPORTED` for a well-formed digest of an algorithm we do not hash).
    static func fromRequest(_ text: String) throws(RegistryError) -> Digest {
        do {
            return try Digest(parsing: text)
        } catch .unsupportedAlgorithm(let algorithm) {
            throw RegistryError(
                .unsupported, status: .badRequest, "digest algorithm \(algorithm) is not supported", detail: String(text.prefix(300)))
        } catch {
            throw RegistryError.digestInvalid(text)
        }
    }
}
