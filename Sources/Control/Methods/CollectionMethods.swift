import ControlProtocol
import FoundationEssentials
import Maintenance
import Metadata

/// `gc.run`, `gc.status` and `storage.verify`.
extension ControlMethods {
    /// `gc.run {"dry_run"?, "delete_untagged"?, "grace"?: seconds, "wait"?}`: one collection at
    /// a time. With `wait` the report comes back; otherwise it runs on and `gc.status` tells.
    func runCollection(_ params: JSONValue?) async throws(RPCError) -> JSONValue {
        let reader = ParamsReader(params, allowed: ["dry_run", "delete_untagged", "grace", "wait"])
        var options = GarbageCollector.Options(uploadTTL: uploadTimeToLive)
        options.dryRun = try reader.bool("dry_run") ?? false
        options.deleteUntagged = try reader.bool("delete_untagged") ?? false
        options.grace = .seconds(try reader.integer("grace", in: 0...31_536_000) ?? 3600)
        let wait = try reader.bool("wait") ?? false
        try reader.finish()
        let collector = self.collector
        let audit = self.audit
        let chosen = options
        if await collector.status.running != nil { throw ControlError.busy("a garbage collection is already running") }
        if let elsewhere = try? await collector.collectionElsewhere() {
            throw ControlError.busy("a garbage collection is running on instance \(elsewhere.instance)")
        }
        let run: @Sendable () async throws -> GarbageCollector.Report = {
            let report = try await collector.run(chosen)
            // The audit keeps counts; the digests removed are in `gc.status` and the log.
            if !chosen.dryRun, let text = try? String(decoding: JSONEncoder().encode(Self.describe(report, listing: false)), as: UTF8.self)
            {
                try? await audit.recordAudit(actor: "registryd", method: "gc.result", params: text)
            }
            return report
        }
        guard wait else {
            Task { _ = try? await run() }
            return ["started": true]
        }
        do {
            return Self.describe(try await run())
        } catch let error as GarbageCollectorError {
            throw ControlError.busy(error.description)
        } catch {
            throw .internalError("garbage collection failed: \(error)")
        }
    }

    /// `gc.status`: the phase and progress of a running collection, and the last one's summary.
    func collectionStatus(_ params: JSONValue?) async throws(RPCError) -> JSONValue {
        try ParamsReader(params, allowed: []).finish()
        let status = await collector.status
        let elsewhere = try await stored { try await collector.collectionElsewhere() }
        return [
            "phase": .string(status.phase.rawValue),
            "running": status.running.map { Self.describe($0) } ?? .null,
            "last": status.last.map { Self.describe($0) } ?? .null,
            // A collection another instance of the cluster runs (only one runs at a time).
            "running_elsewhere": elsewhere.map { claim in
                [
                    "instance": .string(claim.instance),
                    "started_seconds_ago": .number(Double(max(0, UnixTime.milliseconds() - claim.startedAtMilliseconds) / 1000)),
                ]
            } ?? .null,
        ]
    }

    /// `storage.verify {"sample"?: n, "repair"?}`: re-hashes every blob (or every n-th),
    /// and finds rows without bytes, bytes without rows and broken manifest references.
    func verifyStorage(_ params: JSONValue?) async throws(RPCError) -> JSONValue {
        let reader = ParamsReader(params, allowed: ["sample", "repair"])
        let sample = try reader.integer("sample", in: 1...1_000_000)
        let repair = try reader.bool("repair") ?? false
        try reader.finish()
        let report: StorageVerifier.Report
        do {
            report = try await verifier.verify(sample: sample, repair: repair)
        } catch {
            throw .internalError("verification failed: \(error)")
        }
        func list(_ items: [String]) -> JSONValue { .array(items.map { .string($0) }) }
        return [
            "clean": .bool(report.isClean),
            "repaired": .bool(report.repaired),
            "checked": .number(Double(report.checked)),
            "rehashed": .number(Double(report.rehashed)),
            "missing_bytes": list(report.missingBytes),
            "uploads_in_progress": list(report.uploadsInProgress),
            "wrong_size": list(report.wrongSize),
            "corrupt": list(report.corrupt),
            "orphaned_bytes": list(report.orphanedBytes),
            "broken_references": list(report.brokenReferences),
        ]
    }

    /// A collection's report; `listing` names each manifest and blob removed, without it
    /// they are counted (the audit record of `gc.result`: a few hundred bytes however
    /// much the run removed).
    static func describe(_ report: GarbageCollector.Report, listing: Bool = true) -> JSONValue {
        [
            "dry_run": .bool(report.dryRun),
            "manifests": listing
                ? .array(
                    report.manifests.map {
                        ["repository": .string($0.repository), "digest": .string($0.digest), "size": .number(Double($0.size))]
                    })
                : .number(Double(report.manifests.count)),
            "links": .number(Double(report.links.count)),
            "blobs": listing
                ? .array(report.blobs.map { ["digest": .string($0.digest.description), "size": .number(Double($0.size))] })
                : .number(Double(report.blobs.count)),
            "uploads": .number(Double(report.uploads)),
            "bytes_freed": .number(Double(report.bytesFreed)),
            "examined": .number(Double(report.examined)),
            "bytes_examined": .number(Double(report.bytesExamined)),
            "started_at": .number(report.startedAt.timeIntervalSince1970.rounded()),
            "finished_at": report.finishedAt.map { .number($0.timeIntervalSince1970.rounded()) } ?? .null,
        ]
    }
}
