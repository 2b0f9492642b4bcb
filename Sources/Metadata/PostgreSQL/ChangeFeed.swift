import Logging
import PostgresNIO

/// Keeps an instance's in-memory answers in step with the writes of every instance.
///
/// Each write transaction that changes a table instances cache from sends a notification
/// on `channel` naming the table (a trigger's `pg_notify`, inside the transaction:
/// PostgreSQL delivers it only if the transaction commits, after it has). The feed LISTENs
/// on a connection of its own and empties the caches for each one.
/// Notifications are not a guarantee (a connection drops, the server restarts), so two
/// more rules bound how stale an answer can be:
/// - whenever the listening connection is lost or opened again, everything is dropped;
/// - every `refreshInterval` everything is dropped anyway, so no cached answer is older
///   than one second even while notifications are not arriving.
final class ChangeFeed: Sendable {
    static let channel = "registryd_changes"
    /// Half the promised one second: an answer read just before a drop lives at most this
    /// long, plus the time its query took.
    static let refreshInterval = Duration.milliseconds(500)
    /// The tables whose changes may change who is allowed what (credentials, staff,
    /// namespace roles): what `AccountStore.accountGeneration` counts.
    static let accountTables: Set<String> = ["users", "namespaces", "namespace_members"]

    /// What a notification or a drop says changed.
    enum Change {
        /// One table, as its notification names it.
        case table(String)
        /// Anything: the connection was lost or opened again, or the refresh interval passed.
        case everything

        var touchesAccounts: Bool {
            switch self {
            case .table(let name): ChangeFeed.accountTables.contains(name)
            case .everything: true
            }
        }
    }

    private let listening: Task<Void, Never>
    private let refreshing: Task<Void, Never>

    /// Starts listening; `changed` runs for every notification and every drop.
    /// `reachable` follows the listening connection (see `PostgresDatabase.reachable`).
    init(
        configuration: PostgresConnection.Configuration, logger: Logger, reachable: @escaping @Sendable (Bool) -> Void,
        changed: @escaping @Sendable (Change) -> Void
    ) {
        listening = Task {
            var failures = 0
            while !Task.isCancelled {
                do {
                    let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
                    defer { Task { try? await connection.close() } }
                    try await connection.listen(on: Self.channel) { notifications in
                        // Whatever was missed while no connection listened is dropped.
                        changed(.everything)
                        reachable(true)
                        if failures > 0 { logger.notice("metadata: the change feed is connected to PostgreSQL again") }
                        failures = 0
                        for try await notification in notifications { changed(.table(notification.payload)) }
                    }
                } catch {
                    // Said once per outage, not at every attempt to reconnect.
                    if !Task.isCancelled && failures == 0 {
                        logger.warning("metadata: the change feed lost PostgreSQL: \(PostgresDatabase.metadataError(error))")
                    }
                }
                if !Task.isCancelled { reachable(false) }
                changed(.everything)
                failures += 1
                try? await Task.sleep(for: .milliseconds(min(1_000, 100 * failures)))
            }
        }
        refreshing = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: Self.refreshInterval)
                changed(.everything)
            }
        }
    }

    func stop() {
        listening.cancel()
        refreshing.cancel()
    }
}
