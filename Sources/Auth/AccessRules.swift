import Metadata
import OCI

/// The push rules: who may pull, push and delete which repository.
///
/// Without token auth: anonymous callers pull public repositories only; any
/// logged-in user pulls; only staff push and delete.
/// With token auth: staff may do everything; otherwise the caller's role on the
/// namespace (the name's first segment) decides — owner: pull, push, delete;
/// collaborator: pull, push; consumer: pull — and a user owns the namespace named
/// after them, which is created on their first push. Public repositories are
/// pullable by everyone.
public struct AccessRules: Sendable {
    public enum Mode: Sendable { case staffPush, namespaces }

    public let mode: Mode
    private let accounts: any AccountStore

    public init(mode: Mode, accounts: any AccountStore) {
        self.mode = mode
        self.accounts = accounts
    }

    /// Every action `principal` may take on `repository`.
    public func actions(for principal: Principal?, on repository: RepositoryName) async throws -> Set<RepositoryAction> {
        if let principal, principal.isStaff { return Set(RepositoryAction.allCases) }
        var actions: Set<RepositoryAction> = try await accounts.isPublic(repository) ? [.pull] : []
        guard let principal else { return actions }
        switch mode {
        case .staffPush:
            actions.insert(.pull)
        case .namespaces:
            let namespace = String(repository.namespace)
            let role: NamespaceRole?
            if let held = try await accounts.role(of: principal.name, in: namespace) {
                role = held
            } else if namespace == principal.name {
                role = .owner
            } else {
                role = nil
            }
            switch role {
            case .owner?: actions.formUnion([.pull, .push, .delete])
            case .collaborator?: actions.formUnion([.pull, .push])
            case .consumer?: actions.insert(.pull)
            case nil: break
            }
        }
        return actions
    }

    /// Whether a push by `principal` to `repository` is their first into the namespace
    /// named after them, which then has to be created (`createOwnNamespace`).
    public func mustCreateOwnNamespace(of principal: Principal, pushingTo repository: RepositoryName) async throws -> Bool {
        guard mode == .namespaces, repository.namespace == principal.name else { return false }
        return try await !accounts.namespaceExists(principal.name)
    }

    /// Records the namespace named after `principal` with them as owner. A write; a
    /// namespace that exists by now (a concurrent first push) is left as it is.
    public func createOwnNamespace(of principal: Principal, pushingTo repository: RepositoryName) async throws {
        guard try await mustCreateOwnNamespace(of: principal, pushingTo: repository) else { return }
        try await accounts.grant(.owner, on: principal.name, to: principal.name)
    }

    /// Why `principal` may not do `action`: the message for a 403.
    public func denialReason(for principal: Principal, action: RepositoryAction, on repository: RepositoryName) -> String {
        switch mode {
        case .staffPush:
            "only staff users may \(action.rawValue) (\(principal.name) is not staff)"
        case .namespaces:
            "\(principal.name) may not \(action.rawValue) in namespace \(repository.namespace)"
        }
    }
}
