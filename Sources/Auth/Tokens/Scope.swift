import OCI

/// One `scope` of a token request (Docker token spec, "Requesting a Token"):
/// `repository:<name>:<action>[,<action>…]`.
public struct Scope: Sendable, Equatable {
    public let repository: RepositoryName
    public let actions: Set<RepositoryAction>

    public init(repository: RepositoryName, actions: Set<RepositoryAction>) {
        self.repository = repository
        self.actions = actions
    }

    /// Parses a scope; `nil` for other resource types (e.g. `registry:catalog:*`) or
    /// anything malformed. Unknown actions (`*`) are ignored, never widened.
    public init?(parsing text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        // The name itself may not contain ':', but a registry host in it could: take
        // the first part as the type and the last as the actions.
        guard parts.count >= 3, parts[0] == "repository" else { return nil }
        let name = parts[1..<(parts.count - 1)].joined(separator: ":")
        guard let repository = try? RepositoryName(parsing: name) else { return nil }
        self.repository = repository
        self.actions = Set(parts[parts.count - 1].split(separator: ",").compactMap { RepositoryAction(rawValue: String($0)) })
    }

    /// `repository:<name>:<actions>` with actions in a stable order.
    public var description: String {
        "repository:\(repository.value):" + actions.sorted().map(\.rawValue).joined(separator: ",")
    }
}
