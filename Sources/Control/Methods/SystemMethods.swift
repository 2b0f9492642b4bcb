import ControlProtocol
import FoundationEssentials
import Metadata
import OCI

/// `system.status` and `repo.list`.
extension ControlMethods {
    /// `system.status`: version, uptime, this instance and the backends, what the registry
    /// holds, and every instance whose heartbeat is recent (several share a PostgreSQL
    /// database; on SQLite it is this one).
    func status(_ params: JSONValue?) async throws(RPCError) -> JSONValue {
        try ParamsReader(params, allowed: []).finish()
        let statistics = try await stored { try await metadata.statistics() }
        let instances = try await stored { try await backend.liveInstances() }
        let now = UnixTime.milliseconds()
        return [
            "version": .string(version),
            "uptime_seconds": .number(Double((ContinuousClock.now - startedAt).components.seconds)),
            "instance": .string(backend.instance),
            "metadata": .string(backend.backendDescription),
            "storage_driver": .string(storageDriver),
            "activation": .string(activation),
            "instances": .array(
                instances.map { instance in
                    [
                        "id": .string(instance.id), "host": .string(instance.host), "pid": .number(Double(instance.pid)),
                        "version": .string(instance.version),
                        "started_seconds_ago": .number(Double(max(0, now - instance.startedAtMilliseconds) / 1000)),
                        "heartbeat_seconds_ago": .number(Double(max(0, now - instance.renewedAtMilliseconds) / 1000)),
                    ]
                }),
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
        let after = try reader.string("after")
        let limit = try reader.integer("limit", in: 1...1000) ?? 1000
        try reader.finish()
        if let after, (try? RepositoryName(parsing: after)) == nil { throw .invalidParams("after is not a valid repository name") }
        let names = try await stored { try await metadata.repositoryNames(after: after, limit: limit) }
        return ["repositories": .array(names.map { .string($0.value) })]
    }
}
