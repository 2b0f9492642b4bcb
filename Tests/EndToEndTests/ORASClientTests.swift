import Foundation
import RegistryTesting
import XCTest

/// ORAS (the `oras` package from PyPI, in the virtual environment that
/// `scripts/install-deps.sh --test` makes): an artifact pushed and pulled back byte for
/// byte, a second artifact with the first as its subject, found through the referrers
/// API; with basic auth and with the Docker token flow.
final class ORASClientTests: XCTestCase {
    static let python = ContainerTools.repositoryRoot + "/.build/oras-venv/bin/python"
    static let script = ContainerTools.repositoryRoot + "/Tests/EndToEndTests/Clients/oras_roundtrip.py"
    static let signatureType = "application/vnd.registryd.test.signature.v1+json"

    override func setUp() async throws {
        // The virtual environment with the oras package (scripts/install-deps.sh --test).
        try ContainerTools.require([Self.python])
    }

    func roundTrip(_ auth: TestRegistry.AuthMode, backend: String, staff: Bool) async throws {
        let registry = try await TestRegistry.start(auth: auth)
        try await registry.createUser("alice", password: "alice-password", staff: staff)
        let tools = try ContainerTools(registry: registry.address)
        defer { tools.cleanUp() }
        let output = try await tools.run(
            [Self.python, Self.script, registry.address, backend, "alice", "alice-password", tools.workDirectory], isolated: false)
        print("oras (\(backend)):\n" + registry.recorder.requests.map { "  " + $0.summary }.joined(separator: "\n"))
        await registry.stop()

        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any], output)
        XCTAssertEqual(report["roundtrip"] as? Bool, true, "the pulled file is the pushed one")
        let subject = try XCTUnwrap(report["subject"] as? String)
        let referrer = try XCTUnwrap(report["referrer"] as? String)
        XCTAssertEqual(report["subject_header"] as? String, subject, "OCI-Subject names the subject")
        let listed = try XCTUnwrap((report["referrers"] as? [String: Any])?["manifests"] as? [[String: Any]])
        XCTAssertEqual(listed.map { $0["digest"] as? String }, [referrer])
        XCTAssertEqual(listed.first?["artifactType"] as? String, Self.signatureType)
        let filtered = try XCTUnwrap((report["filtered"] as? [String: Any])?["manifests"] as? [[String: Any]])
        XCTAssertEqual(filtered.map { $0["digest"] as? String }, [referrer])
    }

    func testORASWithBasicAuth() async throws {
        try await roundTrip(.basic, backend: "basic", staff: true)
    }

    func testORASWithTokenAuthInItsUsersOwnNamespace() async throws {
        try await roundTrip(.token, backend: "token", staff: false)
    }
}
