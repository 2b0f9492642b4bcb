import Auth
import OCI

@testable import RegistryAPI

extension FuzzTarget {
    /// Digests, repository names, tags, upload ids, token scopes: what they accept
    /// can never step out of its directory or query (CVE-2014-9358, CVE-2024-3727).
    static let grammar = FuzzTarget(name: "grammar") { bytes in
        let input = text(bytes)
        func pathSafe(_ value: String) -> Bool {
            !value.split(separator: "/", omittingEmptySubsequences: false).contains { $0 == ".." || $0 == "." || $0.isEmpty }
                && !value.utf8.contains { $0 < 0x21 || $0 == UInt8(ascii: "\\") || $0 == UInt8(ascii: "%") || $0 >= 0x7F }
        }
        if let digest = try? Digest(parsing: input) {
            check(digest.description == input, "a digest reads back as it was written: \(input)")
            check(pathSafe(digest.encoded) && !digest.encoded.contains("/"), "digest \(input)")
        }
        if let name = try? RepositoryName(parsing: input) {
            check(pathSafe(name.value), "repository name \(input)")
            check((try? RepositoryName(parsing: name.value)) == name, "a name parses again to itself")
        }
        if let tag = try? Tag(parsing: input) {
            check(pathSafe(tag.value) && !tag.value.contains("/") && tag.value.utf8.count <= 128, "tag \(input)")
        }
        if let id = try? UploadID(parsing: input) {
            check(pathSafe(id.value) && !id.value.contains("/"), "upload id \(input)")
        }
        if let scope = Scope(parsing: input) {
            check(pathSafe(scope.repository.value), "scope \(input)")
        }
    }

    /// The routing table: whatever path it matches names a valid repository.
    static let routes = FuzzTarget(name: "routes") { bytes in
        let path = text(bytes)
        guard let route = try? Route(path: path) else { return }
        if let name = route.repository {
            check((try? RepositoryName(parsing: name.value)) == name, "route \(path) names an invalid repository")
        }
        check(!route.methods.isEmpty, "route \(path) answers no method")
    }
}

private extension Route {
    /// The repository the route acts on, if any.
    var repository: RepositoryName? {
        switch self {
        case .token, .base, .catalog: nil
        case .tags(let name), .manifest(let name, _), .blob(let name, _), .startUpload(let name),
            .upload(let name, _), .referrers(let name, _):
            name
        }
    }
}
