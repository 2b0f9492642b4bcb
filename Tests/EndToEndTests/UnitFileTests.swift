import Foundation
import XCTest

/// The unit files in contrib/systemd pass `systemd-analyze verify`.
final class UnitFileTests: XCTestCase {
    func testUnitFilesVerify() async throws {
        try ContainerTools.require(["systemd-analyze"])
        let tools = try ContainerTools(registry: "127.0.0.1")
        defer { tools.cleanUp() }
        let source = ContainerTools.repositoryRoot + "/contrib/systemd"
        let units = ["registryd.service", "registryd.socket", "registryd-control.socket"]
        // ExecStart must name an existing binary: point it at this build's.
        for unit in units {
            let text = try String(contentsOfFile: "\(source)/\(unit)", encoding: .utf8)
                .replacingOccurrences(of: "/usr/local/bin/registryd", with: SocketActivationTests.registryd)
            try text.write(toFile: "\(tools.workDirectory)/\(unit)", atomically: true, encoding: .utf8)
        }
        let (status, _) = try await tools.runStatus(
            ["/usr/bin/env", "systemd-analyze", "verify"] + units.map { "\(tools.workDirectory)/\($0)" })
        XCTAssertEqual(status, 0, "systemd-analyze verify rejected the units")
        let service = try String(contentsOfFile: "\(source)/registryd.service", encoding: .utf8)
        for setting in [
            "Type=notify", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "RestrictAddressFamilies=",
            "StateDirectory=", "RuntimeDirectory=",
        ] {
            XCTAssertTrue(service.contains(setting), setting)
        }
        let control = try String(contentsOfFile: "\(source)/registryd-control.socket", encoding: .utf8)
        XCTAssertTrue(control.contains("SocketMode=0660") && control.contains("FileDescriptorName=control"))
    }
}
