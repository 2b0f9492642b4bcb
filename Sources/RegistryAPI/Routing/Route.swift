import NIOHTTP1
import OCI

/// The API's endpoints, as the distribution spec lists them ("Endpoints" table).
/// This enum and `Route.init(method:path:)` are the map of the whole API.
///
/// | route                | method(s)              | path                                   |
/// |----------------------|------------------------|----------------------------------------|
/// | `base`               | GET                    | `/v2/`                                 |
/// | `catalog`            | GET                    | `/v2/_catalog`                         |
/// | `tags`               | GET                    | `/v2/<name>/tags/list`                 |
/// | `manifest`           | GET HEAD PUT DELETE    | `/v2/<name>/manifests/<reference>`     |
/// | `blob`               | GET HEAD DELETE        | `/v2/<name>/blobs/<digest>`            |
/// | `startUpload`        | POST                   | `/v2/<name>/blobs/uploads/`            |
/// | `upload`             | GET PATCH PUT DELETE   | `/v2/<name>/blobs/uploads/<id>`        |
/// | `referrers`          | GET                    | `/v2/<name>/referrers/<digest>`        |
/// | `token`              | GET                    | `/token` (Docker token flow, when on)  |
enum Route: Equatable {
    case token
    case base
    case catalog
    case tags(RepositoryName)
    /// The reference is kept as text: its grammar error depends on the method.
    case manifest(RepositoryName, reference: String)
    case blob(RepositoryName, digest: String)
    case startUpload(RepositoryName)
    case upload(RepositoryName, id: String)
    case referrers(RepositoryName, digest: String)

    /// Matches a path, or tells why it cannot be served.
    ///
    /// Names contain slashes, so the endpoint is recognised from the end of the path
    /// and everything before it must be a valid repository name.
    init(path: String) throws(RouteError) {
        if path == "/token" { self = .token; return }
        guard path == "/v2" || path.hasPrefix("/v2/") else { throw .notFound }
        let rest = path.dropFirst(4)
        if rest.isEmpty { self = .base; return }
        if rest == "_catalog" { self = .catalog; return }
        let segments = rest.split(separator: "/", omittingEmptySubsequences: false)
        let count = segments.count
        func name(droppingLast suffix: Int) throws(RouteError) -> RepositoryName {
            guard count > suffix else { throw .notFound }
            let text = segments[..<(count - suffix)].joined(separator: "/")
            do { return try RepositoryName(parsing: text) } catch { throw .invalidName(text) }
        }
        if count >= 3, segments[count - 2] == "tags", segments[count - 1] == "list" {
            self = .tags(try name(droppingLast: 2))
        } else if count >= 3, segments[count - 2] == "manifests" {
            self = .manifest(try name(droppingLast: 2), reference: String(segments[count - 1]))
        } else if count >= 3, segments[count - 2] == "referrers" {
            self = .referrers(try name(droppingLast: 2), digest: String(segments[count - 1]))
        } else if count >= 3, segments[count - 2] == "blobs", segments[count - 1] == "uploads" {
            self = .startUpload(try name(droppingLast: 2))
        } else if count >= 4, segments[count - 3] == "blobs", segments[count - 2] == "uploads" {
            if segments[count - 1].isEmpty {
                self = .startUpload(try name(droppingLast: 3))
            } else {
                self = .upload(try name(droppingLast: 3), id: String(segments[count - 1]))
            }
        } else if count >= 3, segments[count - 2] == "blobs" {
            self = .blob(try name(droppingLast: 2), digest: String(segments[count - 1]))
        } else {
            throw .notFound
        }
    }

    /// The methods this route answers; anything else gets 405.
    var methods: [HTTPMethod] {
        switch self {
        case .token: [.GET]
        case .base, .catalog, .tags, .referrers: [.GET, .HEAD]
        case .manifest: [.GET, .HEAD, .PUT, .DELETE]
        case .blob: [.GET, .HEAD, .DELETE]
        case .startUpload: [.POST]
        case .upload: [.GET, .PATCH, .PUT, .DELETE]
        }
    }
}

enum RouteError: Error, Equatable {
    case notFound
    case invalidName(String)
}
