import Metadata

/// Keeps the tag history and the audit log to their retention periods, so that a
/// registry pushed to all day does not grow its database without bound.
///
/// ```swift
/// let pruner = HistoryPruner(metadata: store, retention: .init(tagHistory: 90 * 86_400, audit: 365 * 86_400))
/// let report = try await pruner.prune(now: UnixTime.seconds())
/// ```
///
/// Rows go in batches, each its own short write, so pushes waiting for the writer wait
/// for one batch at most, never for a whole backlog.
public struct HistoryPruner: Sendable {
    /// How long each kind of row is kept, in seconds; `nil` keeps it forever.
    public struct Retention: Sendable, Equatable {
        public var tagHistory: Int64?
        public var audit: Int64?

        public init(tagHistory: Int64?, audit: Int64?) {
            self.tagHistory = tagHistory
            self.audit = audit
        }

        /// How often pruning runs: hourly, or at half the shortest retention when that
        /// is shorter (so a row outlives its retention by half of it at most); `nil`
        /// when everything is kept forever.
        public var interval: Int64? {
            let periods = [tagHistory, audit].compactMap { $0 }
            guard let shortest = periods.min() else { return nil }
            return max(1, min(3600, shortest / 2))
        }
    }

    public struct Report: Sendable, Equatable {
        public var tagMoves: Int
        public var auditEntries: Int

        public init(tagMoves: Int = 0, auditEntries: Int = 0) {
            self.tagMoves = tagMoves
            self.auditEntries = auditEntries
        }
    }

    let metadata: any RepositoryAdministration & AuditStore
    public let retention: Retention
    /// Rows removed per write.
    let batch: Int

    public init(metadata: any RepositoryAdministration & AuditStore, retention: Retention, batch: Int = 5_000) {
        self.metadata = metadata
        self.retention = retention
        self.batch = batch
    }

    /// Removes every row older than its retention at `now` (Unix seconds).
    public func prune(now: Int64) async throws -> Report {
        var report = Report()
        if let keep = retention.tagHistory {
            report.tagMoves = try await drain { try await metadata.pruneTagHistory(before: now - keep, limit: batch) }
        }
        if let keep = retention.audit {
            report.auditEntries = try await drain { try await metadata.pruneAudit(before: now - keep, limit: batch) }
        }
        return report
    }

    private func drain(_ step: () async throws -> Int) async throws -> Int {
        var total = 0
        while true {
            let removed = try await step()
            total += removed
            if removed < batch { return total }
        }
    }
}
