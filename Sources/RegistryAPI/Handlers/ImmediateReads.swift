import Auth
import HTTPTransport
import Metadata
import NIOHTTP1
import OCI

/// The hottest reads answered on the event loop that read them, without starting a task:
/// manifest GET/HEAD, tag lists and blob HEAD, when the caller is known from memory
/// (anonymous, recently verified credentials, a token) and the answer is in the
/// metadata cache. Anything else — a cache miss, a refusal, a Range, a body — returns
/// `nil` and takes the full path, which gives the same answers (the same response
/// builders of `Registry`) and fills the cache for the next time.
///
/// Handed to `HTTPServer` as its `immediateResponder`; without it (the
/// `immediate-answers = off` setting) every request takes the full path.
public struct ImmediateReads: ImmediateResponder {
    private let cache: any CachedReads
    private let access: any ImmediateAccess
    private let configuration: Registry.Configuration

    public init(cache: any CachedReads, access: any ImmediateAccess, configuration: Registry.Configuration) {
        self.cache = cache
        self.access = access
        self.configuration = configuration
    }

    public var immediateAnswerGeneration: UInt64? { cache.cacheGeneration }

    public func respondImmediately(to head: HTTPRequestHead, remoteAddress: String) -> HTTPResponse? {
        answer(head, remoteAddress: remoteAddress)?.withRegistryHeaders()
    }

    private func answer(_ head: HTTPRequestHead, remoteAddress: String) -> HTTPResponse? {
        guard head.method == .GET || head.method == .HEAD else { return nil }
        let uri = head.uri
        let mark = uri.firstIndex(of: "?")
        let path = mark.map { String(uri[..<$0]) } ?? uri
        guard let route = try? Route(path: path),
            case .some(let principal) = access.immediatePrincipal(head.headers, remoteAddress: remoteAddress)
        else {
            return nil
        }
        func mayPull(_ name: RepositoryName) -> Bool {
            access.immediatelyAllowsPull(principal, on: name, isPublic: cache.cachedIsPublic(name))
        }
        switch route {
        case .manifest(let name, let referenceText):
            guard mark == nil, let reference = try? Registry.parseReference(referenceText), mayPull(name),
                case .some(.some(let manifest)) = cache.cachedManifest(reference, in: name),
                AcceptHeader(head.headers).allows(manifest.mediaType)
            else { return nil }
            return Registry.manifestResponse(manifest)
        case .tags(let name):
            let query = QueryParameters(mark.map { String(uri[uri.index(after: $0)...]) } ?? "")
            guard let page = try? Page(query, configuration), mayPull(name),
                case .some(.some(let tags)) = cache.cachedTags(in: name, after: page.last, limit: page.size + 1)
            else { return nil }
            return Registry.tagsResponse(name, tags, page)
        case .blob(let name, let digestText):
            guard head.method == .HEAD, mark == nil, head.headers.first(name: "Range") == nil,
                let digest = try? Digest.fromRequest(digestText), mayPull(name),
                case .some(.some(let size)) = cache.cachedBlobSize(digest, in: name)
            else { return nil }
            var headers = Registry.blobHeaders(digest)
            headers.add(name: "Content-Length", value: String(size))
            return HTTPResponse(status: .ok, headers: headers)
        default:
            return nil
        }
    }
}
