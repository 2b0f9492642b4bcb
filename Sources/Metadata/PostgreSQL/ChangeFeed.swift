import Logging
import PostgresNIO

/// Keeps an instance's in-memory answers in step with the writes of every instance.
///
/// Each write transaction sends a notification on `channel` (`pg_notify` inside the
/// transaction: PostgreSQL delivers it only if the transaction commits, after it has).
/// The feed LISTENs on a connection of its own and empties the caches for each one.
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

    private let listening: Task<Void, Never>
    private let refreshing: Task<Void, Never>

    /// Starts listening; `changed` runs for every notification and every drop.
    /// `reachable` follows the listening connection (see `PostgresDatabase.reachable`).
    init(
        configuration: PostgresConnection.Configuration, logger: Logger, reachable: @escaping @Sendable (Bool) -> Void,
        changed: @escaping @Sendable () -> Void
    ) {
        listening = Task {
            var failures = 0
            while !Task.isCancelled {
                do {
                    let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
                    defer { Task { try? await connection.close() } }
                    try await connection.listen(on: Self.channel) { notifications in
                        // Whatever was missed while no connection listened is dropped.
                        changed()
                        reachable(true)
                        if failures > 0 { logger.notice("metadata: the change feed is connected to PostgreSQL again") }
                        failures = 0
                        for try await _ in notifications { changed() }
                    }
                } catch {
                    // Said once per outage, not at every attempt to reconnect.
                    if !Task.isCancelled && failures == 0 {
                        logger.warning("metadata: the change feed lost PostgreSQL: \(PostgresDatabase.metadataError(error))")
                    }
                }
                if !Task.isCancelled { reachable(false) }
                changed()
                failures += 1
                try? await Task.sleep(for: .milliseconds(min(1_000, 100 * failures)))
            }
        }
        refreshing = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: Self.refreshInterval)
                changed()
            }
        }
    }

    func stop() {
        listening.cancel()
        refreshing.cancel()
    }
}
