import HTTPTransport
import NIOHTTP1
import OCI

/// `GET /v2/_catalog` and `GET /v2/<name>/tags/list`, both paged with `n` and `last`
/// (spec: "Listing Tags", "Content Discovery").
extension Registry {
    /// Batches of repository names a catalog request looks through at most.
    private static let catalogBatches = 20

    func catalog(_ context: RequestContext) async throws -> HTTPResponse {
        let page = try Page(context.request.query, configuration)
        // Only what the caller may read is listed. Fetch until the page has one more
        // than asked (to know whether a next page exists), in bounded batches.
        var names: [String] = []
        var after = page.last
        for _ in 0..<Self.catalogBatches where names.count <= page.size {
            let batch = try await meta { try await metadata.repositoryNames(after: after, limit: configuration.maximumPageSize + 1) }
            for name in batch where names.count <= page.size {
                if await policy.mayRead(context.principal, name) { names.append(name.value) }
            }
            guard let last = batch.last, batch.count > configuration.maximumPageSize else { break }
            after = last.value
        }
        return page.response(items: names, path: "/v2/_catalog") { CatalogDocument(repositories: $0) }
    }

    func tags(_ name: RepositoryName, _ context: RequestContext) async throws -> HTTPResponse {
        try await authorize(.pull, on: name, context)
        let page = try Page(context.request.query, configuration)
        guard let tags = try await meta({ try await metadata.tags(in: name, after: page.last, limit: page.size + 1) }) else {
            throw RegistryError.nameUnknown(name.value)
        }
        return Self.tagsResponse(name, tags, page)
    }

    /// The answer to a tag list, on both the full and the immediate path; `tags` holds up
    /// to one more than the page (to tell whether a next page exists).
    static func tagsResponse(_ name: RepositoryName, _ tags: [String], _ page: Page) -> HTTPResponse {
        page.response(items: tags, path: "/v2/\(name.value)/tags/list") { TagListDocument(name: name.value, tags: $0) }
    }
}

/// `n` and `last` of a listing request, with `n` clamped to the configured maximum.
struct Page {
    let size: Int
    let last: String?
    let clamped: Bool

    init(_ query: QueryParameters, _ configuration: Registry.Configuration) throws(RegistryError) {
        if let text = query["n"] {
            guard let requested = Int(text), requested >= 0 else {
                throw RegistryError(
                    .paginationNumberInvalid, status: .badRequest, "invalid number of results requested", detail: String(text.prefix(40)))
            }
            size = min(requested, configuration.maximumPageSize)
            clamped = requested > configuration.maximumPageSize
        } else {
            size = configuration.defaultPageSize
            clamped = false
        }
        last = query["last"]
    }

    /// The page's answer: `document` made of the page's items, and a `Link` to the next
    /// page when `items` holds more than the page.
    func response(items: [String], path: String, document: ([String]) -> some Encodable) -> HTTPResponse {
        let page = Array(items.prefix(size))
        var headers = HTTPHeaders()
        if items.count > size, let lastItem = page.last {
            headers.add(name: "Link", value: "<\(path)?n=\(size)&last=\(lastItem)>; rel=\"next\"")
        }
        if clamped {
            headers.add(name: "Warning", value: "299 - \"n was larger than \(size); the page holds at most \(size) entries\"")
        }
        return .json(.ok, JSONText.encode(document(page)), headers: headers)
    }
}

/// `GET /v2/_catalog`'s body.
struct CatalogDocument: Encodable {
    let repositories: [String]
}

/// `GET /v2/<name>/tags/list`'s body.
struct TagListDocument: Encodable {
    let name: String
    let tags: [String]
}
