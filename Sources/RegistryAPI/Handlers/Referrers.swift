import FoundationEssentials
import HTTPTransport
import NIOHTTP1
import OCI

/// `GET /v2/<name>/referrers/<digest>[?artifactType=]` (spec: "Listing Referrers"):
/// always an OCI index, empty when nothing refers to the digest.
extension Registry {
    func referrers(_ name: RepositoryName, _ digestText: String, _ context: RequestContext) async throws -> HTTPResponse {
        let digest = try Digest.fromRequest(digestText)
        try await authorize(.pull, on: name, context)
        let artifactType = context.request.query["artifactType"]
        let referrers = try await meta { try await metadata.referrers(of: digest, in: name, artifactType: artifactType) }
        let descriptors = referrers.prefix(configuration.maximumReferrers).map { referrer in
            Descriptor(
                mediaType: referrer.mediaType, digest: referrer.digest.description, size: referrer.size,
                annotations: referrer.annotationsJSON.flatMap { try? JSONDecoder().decode([String: String].self, from: Data($0.utf8)) },
                artifactType: referrer.artifactType)
        }
        let index = ReferrersIndex(manifests: Array(descriptors))
        var headers = HTTPHeaders()
        if artifactType != nil { headers.add(name: "OCI-Filters-Applied", value: "artifactType") }
        if referrers.count > configuration.maximumReferrers {
            headers.add(name: "Warning", value: "299 - \"only the first \(configuration.maximumReferrers) referrers are listed\"")
        }
        return .json(.ok, JSONText.encode(index), contentType: MediaType.ociIndex, headers: headers)
    }
}

private struct ReferrersIndex: Encodable {
    let schemaVersion = 2
    let mediaType = MediaType.ociIndex
    let manifests: [Descriptor]
}
