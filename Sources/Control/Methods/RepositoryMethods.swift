import ControlProtocol
import FoundationEssentials
import Maintenance
import Metadata
import OCI

/// `repo.get`, `repo.delete`, `tag.history`, `audit.list`, `upload.list`, `upload.purge`.
extension ControlMethods {
    /// `repo.get {"name"}`: tags, manifests and size.
    func getRepository(_ params: JSONValue?) async throws(RPCError) -> JSONValue {
        let reader = ParamsReader(params, allowed: ["name"])
        let name = try await repositoryName(reader.requiredString("name"))
        try reader.finish()
        let summary = try await stored { try await repositories.repositorySummary(name) }
        guard let summary else { throw ControlError.notFound("repository", name.value) }
        return [
            "name": .string(summary.name),
            "public": .bool(summary.isPublic),
            "created_at": .number(Double(summary.createdAt)),
            "tags": .array(summary.tags.map { ["tag": .string($0.tag), "digest": .string($0.digest)] }),
            "manifests": .array(
                summary.manifests.map {
                    [
                        "digest": .string($0.digest), "media_type": .string($0.mediaType), "size": .number(Double($0.size)),
                        "created_at": .number(Double($0.createdAt)),
                    ]
                }),
            "blobs": .number(Double(summary.blobCount)),
            "blob_bytes": .number(Double(summary.blobBytes)),
        ]
    }

    /// `repo.delete {"name"}`: manifests, tags, links and uploads go; blob bytes wait for GC.
    func deleteRepository(_ params: JSONValue?) async throws(RPCError) -> JSONValue {
        let reader = ParamsReader(params, allowed: ["name"])
        let name = try await repositoryName(reader.requiredString("name"))
        try reader.finish()
        let uploads = try await stored { try await repositories.deleteRepository(name) }
        guard let uploads else { throw ControlError.notFound("repository", name.value) }
        do { try await purger.discard(uploads) } catch { throw .internalError("storage failure removing upload data") }
        return ["deleted": .string(name.value), "uploads_removed": .number(Double(uploads.count))]
    }

    /// `tag.history {"repository", "tag"?, "limit"?}`: who moved a tag, when, from what to what.
    func tagHistory(_ params: JSONValue?) async throws(RPCError) -> JSONValue {
        let reader = ParamsReader(params, allowed: ["repository", "tag", "limit"])
        let repository = try await repositoryName(reader.requiredString("repository"))
        let tagText = try reader.string("tag")
        let limit = try reader.integer("limit", in: 1...10_000) ?? 100
        try reader.finish()
        var tag: Tag?
        if let tagText {
            guard let parsed = try? Tag(parsing: tagText) else { throw .invalidParams("tag is not a valid tag") }
            tag = parsed
        }
        let moves = try await stored { try await repositories.tagHistory(in: repository, tag: tag, limit: limit) }
        return [
            "moves": .array(
                moves.map { move in
                    [
                        "tag": .string(move.tag), "from": move.oldDigest.map(JSONValue.string) ?? .null,
                        "to": move.newDigest.map(JSONValue.string) ?? .null,
                        "actor": move.actor.map(JSONValue.string) ?? .null, "at": .number(Double(move.at)),
                    ]
                })
        ]
    }

    /// `audit.list {"limit"?}`: the newest changes made through the control socket.
    func listAudit(_ params: JSONValue?) async throws(RPCError) -> JSONValue {
        let reader = ParamsReader(params, allowed: ["limit"])
        let limit = try reader.integer("limit", in: 1...10_000) ?? 100
        try reader.finish()
        let entries = try await stored { try await audit.auditEntries(limit: limit) }
        return [
            "entries": .array(
                entries.map { entry in
                    // Params are stored as JSON text; an entry that no longer parses is shown as text.
                    let params = entry.params.map { text in
                        (try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))) ?? .string(text)
                    }
                    return [
                        "at": .number(Double(entry.at)), "actor": .string(entry.actor), "method": .string(entry.method),
                        "params": params ?? .null,
                    ]
                })
        ]
    }

    /// `upload.list {"limit"?}`: sessions in progress, least recently active first.
    func listUploads(_ params: JSONValue?) async throws(RPCError) -> JSONValue {
        let reader = ParamsReader(params, allowed: ["limit"])
        let limit = try reader.integer("limit", in: 1...10_000) ?? 1000
        try reader.finish()
        let uploads = try await stored { try await repositories.uploads(limit: limit) }
        return ["uploads": .array(uploads.map(Self.describe))]
    }

    /// `upload.purge {"older_than"?: seconds, "dry_run"?: bool}`: removes sessions idle for
    /// longer than that (default: the upload time-to-live) and temporary objects no session owns.
    func purgeUploads(_ params: JSONValue?) async throws(RPCError) -> JSONValue {
        let reader = ParamsReader(params, allowed: ["older_than", "dry_run"])
        let olderThan = try reader.integer("older_than", in: 0...31_536_000).map(Int64.init) ?? uploadTimeToLive
        let dryRun = try reader.bool("dry_run") ?? false
        try reader.finish()
        let report: UploadPurger.Report
        do {
            report = try await purger.purge(idleLongerThan: olderThan, dryRun: dryRun, now: Int64(Date().timeIntervalSince1970))
        } catch {
            throw .internalError("upload purge failed: \(error)")
        }
        return [
            "dry_run": .bool(dryRun),
            "sessions": .array(report.sessions.map(Self.describe)),
            "orphaned_objects": .array(report.orphans.map { .string($0) }),
            "aborted_writes": .number(Double(report.abortedWrites)),
            "bytes": .number(Double(report.bytes)),
        ]
    }

    private func repositoryName(_ text: String) async throws(RPCError) -> RepositoryName {
        guard let name = try? RepositoryName(parsing: text) else { throw .invalidParams("not a valid repository name") }
        return name
    }

    private static func describe(_ info: UploadSessionInfo) -> JSONValue {
        [
            "id": .string(info.session.id.value), "repository": .string(info.session.repository.value),
            "principal": info.session.principal.map(JSONValue.string) ?? .null, "size": .number(Double(info.session.size)),
            "created_at": .number(Double(info.session.createdAt)), "updated_at": .number(Double(info.updatedAt)),
        ]
    }
}
