import Auth

@testable import RegistryAPI

extension FuzzTarget {
    /// A key only this process knows: no input can carry a valid signature.
    static let tokens = TokenService(
        key: TokenSigningKey(bytes: Array("registryd-fuzz-signing-key-32by".utf8) + [0]), service: "registryd", issuer: "registryd")

    /// `Authorization` headers (Basic and Bearer) and bearer tokens (JWTs): a token is
    /// never accepted unless this process signed it (CVE-2025-24976: no `alg: none`, no
    /// header-supplied key).
    static let authorization = FuzzTarget(name: "authorization") { bytes in
        let header = text(bytes)
        if let (name, _) = RegistryAccessPolicy.basicCredentials(header) {
            check(!name.contains(":"), "a user name with a colon from \(header)")
        }
        for scheme in ["basic", "bearer"] {
            if let credentials = RegistryAccessPolicy.credentials(header, scheme: scheme) {
                check(!credentials.isEmpty || header.split(separator: " ").count >= 2, "credentials of \(header)")
            }
        }
        let token = RegistryAccessPolicy.credentials(header, scheme: "bearer") ?? header
        if let principal = try? tokens.verify(token) {
            preconditionFailure("a token this process never signed was accepted for \(principal.name): \(token)")
        }
    }
}
