import ControlProtocol
import FoundationEssentials
import Metadata
import OCI

/// `system.status` and `repo.list`.
extension ControlMethods {
    /// `system.status`: version, uptime, storage driver and what the registry holds.
    func status(_ params: JSONValue?) async throws(RPCError) -> JSONValue {
        try await ParamsReader(params, allowed: []).finish()
        let statistics = try await stored { try await metadata.statistics() }
        return [
            "version": .string(version),
            "uptime_seconds": .number(Double((ContinuousClock.now - startedAt).components.seconds)),
            "storage_driver": .string(storageDriver),
            "activation": .string(activation),
            "repositories": .number(Double(statistics.repositories)),
            "blobs": .number(Double(statistics.blobs)),
            "blob_bytes": .number(Double(statistics.blobBytes)),
            "manifests": .number(Double(statistics.manifests)),
            "tags": .number(Double(statistics.tags)),
            "uploads_in_progress": .number(Double(statistics.uploads)),
        ]
    }

    /// `repo.list {"after"?: name, "limit"?: 1…1000}`: repository names in order.
    func listRepositories(_ params: JSONValue?) async throws(RPCError) -> JSONValue {
        let reader = ParamsReader(params, allowed: ["after", "limit"])
        let after = try await reader.string("after")
        let limit = try await reader.integer("limit", in: 1...1000) ?? 1000
        try await reader.finish()
        if let after, (try? RepositoryName(parsing: after)) == nil { throw .invalidParams("after is not a valid repository name") }
        let names = try await stored { try await metadata.repositoryNames(after: after, limit: limit) }
        return ["repositories": .array(names.map { .string($0.value) })]
    }
}
