import Foundation
import OCI
import RegistryTesting
import XCTest

/// `podman login` and `skopeo login` against both auth modes, and pushes after them;
/// again on the S3 driver in `S3LoginTests`.
class LoginTests: XCTestCase {
    var registry: TestRegistry!
    var tools: ContainerTools!

    override func tearDown() async throws {
        await registry?.stop()
        tools?.cleanUp()
        registry = nil  // XCTest keeps test case objects until the run ends
        tools = nil
    }

    func start(_ auth: TestRegistry.AuthMode) async throws {
        try ContainerTools.require(["podman", "skopeo", "unshare"])
        registry = try await TestRegistry.start(driver: driver(), auth: auth)
        tools = try ContainerTools(registry: registry.address)
    }

    /// Where the registry under test keeps blobs; subclasses pick another driver.
    func driver() throws -> TestRegistry.DriverKind { .filesystem }

    /// Runs a login that must fail. - Returns: what the client printed.
    func failingLogin(_ command: [String]) async throws -> String {
        do {
            try await tools.run(command, input: "wrong-password\n")
            XCTFail("\(command[0]) login with a wrong password succeeded")
            return ""
        } catch let ContainerTools.ToolError.failed(_, _, output) {
            return output
        }
    }

    func testBasicModeLoginThenStaffPushAndNonStaffDenied() async throws {
        try await start(.basic)
        try await registry.createUser("admin", password: "admin-password", staff: true)
        try await registry.createUser("dev", password: "dev-password")
        let layout = try await tools.makeImage("image", layers: 1)

        let podmanLogin = try await tools.podman(
            "login", "--tls-verify=false", "-u", "admin", "--password-stdin", registry.address, input: "admin-password\n")
        XCTAssertTrue(podmanLogin.contains("Login Succeeded!"), podmanLogin)
        let refused = try await failingLogin(
            ["podman"] + tools.podmanFlags + ["login", "--tls-verify=false", "-u", "admin", "--password-stdin", registry.address])
        XCTAssertTrue(refused.contains("invalid username/password"), refused)
        let skopeoRefused = try await failingLogin([
            "skopeo", "login", "--tls-verify=false", "-u", "admin", "--password-stdin", registry.address,
        ])
        XCTAssertTrue(skopeoRefused.contains("invalid username/password"), skopeoRefused)

        let skopeoLogin = try await tools.skopeo(
            "login", "--tls-verify=false", "-u", "admin", "--password-stdin", registry.address, input: "admin-password\n")
        XCTAssertTrue(skopeoLogin.contains("Login Succeeded!"), skopeoLogin)
        try await tools.skopeo("copy", "--dest-tls-verify=false", "oci:\(layout):latest", "docker://\(registry.address)/team/app:v1")

        try await tools.skopeo("login", "--tls-verify=false", "-u", "dev", "--password-stdin", registry.address, input: "dev-password\n")
        do {
            try await tools.skopeo("copy", "--dest-tls-verify=false", "oci:\(layout):latest", "docker://\(registry.address)/team/app:v2")
            XCTFail("a non-staff user pushed")
        } catch let ContainerTools.ToolError.failed(_, _, output) {
            XCTAssertTrue(output.contains("denied"), output)
        }
        // Any logged-in user pulls.
        try await tools.skopeo("inspect", "--tls-verify=false", "docker://\(registry.address)/team/app:v1")
    }

    func testAnonymousClientsPullAPublicRepositoryInBasicMode() async throws {
        // Without stored credentials, containers/image answers the Basic challenge with an
        // empty user and password; for a public repository that must count as anonymous.
        try await start(.basic)
        try await registry.createUser("admin", password: "admin-password", staff: true)
        let layout = try await tools.makeImage("image", layers: 2)
        try await tools.skopeo(
            "copy", "--dest-tls-verify=false", "--dest-creds", "admin:admin-password", "oci:\(layout):latest",
            "docker://\(registry.address)/open/app:v1")
        do {
            try await tools.skopeo("inspect", "--tls-verify=false", "docker://\(registry.address)/open/app:v1")
            XCTFail("an anonymous client read a private repository")
        } catch ContainerTools.ToolError.failed {}
        await assertTrue(try await registry.metadata.setPublic(true, repository: RepositoryName(parsing: "open/app")))
        try await tools.skopeo(
            "copy", "--src-tls-verify=false", "docker://\(registry.address)/open/app:v1", "oci:\(tools.workDirectory)/pulled:v1")
        try await tools.podman("pull", "--tls-verify=false", "\(registry.address)/open/app:v1")
        // Empty credentials never push.
        do {
            try await tools.skopeo("copy", "--dest-tls-verify=false", "oci:\(layout):latest", "docker://\(registry.address)/open/app:v2")
            XCTFail("an anonymous client pushed")
        } catch ContainerTools.ToolError.failed {}
    }

    func testTokenModeLoginAndPushToOwnNamespace() async throws {
        try await start(.token)
        try await registry.createUser("alice", password: "alice-password")
        try await registry.createUser("bob", password: "bob-password")
        let layout = try await tools.makeImage("image", layers: 2)

        let login = try await tools.podman(
            "login", "--tls-verify=false", "-u", "alice", "--password-stdin", registry.address, input: "alice-password\n")
        XCTAssertTrue(login.contains("Login Succeeded!"), login)
        let refused = try await failingLogin(["skopeo", "login", "--tls-verify=false", "-u", "alice", "--password-stdin", registry.address])
        XCTAssertTrue(refused.contains("401") || refused.contains("invalid username/password") || refused.contains("unauthorized"), refused)

        let imageID = try await tools.podman("pull", "-q", "oci:\(layout):latest").trimmingCharacters(in: .whitespacesAndNewlines)
        try await tools.podman("tag", imageID, "\(registry.address)/alice/app:v1", "\(registry.address)/bob/app:v1")
        try await tools.podman("push", "--tls-verify=false", "\(registry.address)/alice/app:v1")
        await assertEqual(try await registry.metadata.role(of: "alice", in: "alice"), .owner)
        do {
            try await tools.podman("push", "--tls-verify=false", "\(registry.address)/bob/app:v1")
            XCTFail("alice pushed into bob's namespace")
        } catch let ContainerTools.ToolError.failed(_, _, output) {
            XCTAssertTrue(output.contains("denied") || output.contains("unauthorized"), output)
        }

        // bob, logged in, cannot see alice's private repository.
        try await tools.skopeo("login", "--tls-verify=false", "-u", "bob", "--password-stdin", registry.address, input: "bob-password\n")
        do {
            try await tools.skopeo("inspect", "--tls-verify=false", "docker://\(registry.address)/alice/app:v1")
            XCTFail("bob read alice's private repository")
        } catch let ContainerTools.ToolError.failed(_, _, output) {
            XCTAssertFalse(output.contains("\"Digest\""), output)
        }
    }
}
