import DaemonSettings
import Foundation
import XCTest

/// Each setting is declared once (`Settings.all`); the config file, the flags and the
/// documentation must all follow from that one declaration.
final class SettingTableTests: XCTestCase {
    static let marker = "<!-- settings table: made from Settings.all; SettingTableTests checks it -->"

    func testTheDocumentedTableIsTheDeclaredOne() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../docs/CONFIGURATION.md").path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let parts = text.components(separatedBy: Self.marker)
        XCTAssertEqual(parts.count, 3, "docs/CONFIGURATION.md holds the table between two marker lines")
        guard parts.count == 3 else { return }
        let documented = parts[1].trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(
            documented, Setting.documentationTable,
            "docs/CONFIGURATION.md is out of date; put this between the markers:\n\(Setting.documentationTable)")
    }

    func testEveryDefaultReadsBackAsItself() throws {
        let defaults = Settings()
        for setting in Settings.all {
            guard let shown = setting.shownValue(of: defaults), !shown.hasPrefix("…") else { continue }
            var settings = Settings()
            // A repeatable setting shows its values joined; each is read as its own line.
            let lines = setting.repeatable ? shown.components(separatedBy: ", ") : [shown]
            try settings.load(text: lines.map { "\(setting.key) = \($0)" }.joined(separator: "\n"), source: "defaults.conf")
            XCTAssertEqual(setting.shownValue(of: settings), shown, setting.key)
        }
    }

    func testFlagsOverrideTheFileAndRepeatedFlagsReplaceItsList() throws {
        var settings = Settings()
        try settings.load(text: "listen = 127.0.0.1:1\nlisten = 127.0.0.1:2\ngc-grace = 10\ntoken-auth = false", source: "a.conf")
        XCTAssertEqual(settings.listen.map(\.port), [1, 2])
        try settings.apply(flags: [
            "--listen", "127.0.0.1:3", "--listen=[::1]:4", "--gc-grace=20", "--token-auth", "--immediate-answers=false",
        ])
        XCTAssertEqual(settings.listen.map(\.text), ["127.0.0.1:3", "[::1]:4"])
        XCTAssertEqual(settings.gcGrace, 20)
        XCTAssertTrue(settings.tokenAuth)
        XCTAssertFalse(settings.immediateAnswers)
    }

    func testBadFlagsAreRefusedByName() {
        func refusal(_ arguments: [String]) -> String {
            var settings = Settings()
            do {
                try settings.apply(flags: arguments)
                return "accepted"
            } catch {
                return error.description
            }
        }
        XCTAssertEqual(refusal(["--no-such-thing", "1"]), "unknown flag --no-such-thing")
        XCTAssertEqual(refusal(["--gc-grace"]), "--gc-grace needs a value")
        XCTAssertEqual(refusal(["--gc-grace", "soon"]), "invalid value for gc-grace: soon")
        XCTAssertEqual(refusal(["--s3-secret-key", "x"]), "s3-secret-key is read from the config file only (a flag would show in ps)")
        XCTAssertEqual(refusal(["stray"]), "unexpected argument stray: settings are given as --key VALUE")
        XCTAssertEqual(refusal(["--token-auth=maybe"]), "invalid value for token-auth: maybe")
    }

    func testAMetadataURLWithAPasswordIsRefusedWithoutRepeatingIt() throws {
        var settings = Settings()
        XCTAssertThrowsError(try settings.apply(flags: ["--metadata", "postgres://registryd:hunter22@db/registry"])) { error in
            XCTAssertTrue("\(error)".contains("may not carry a password"), "\(error)")
            XCTAssertFalse("\(error)".contains("hunter22"), "\(error)")
        }
        XCTAssertThrowsError(try settings.apply(flags: ["--metadata-password", "hunter22"]), "a password is never a flag")
        try settings.load(text: "metadata = postgres://registryd@db/registry\nmetadata-password = hunter22", source: "a.conf")
        XCTAssertEqual(settings.metadata?.host, "db")
        XCTAssertEqual(settings.metadataPassword, "hunter22")
        XCTAssertThrowsError(try settings.apply(flags: ["--metadata-pool-size", "1"]), "a collection needs a second connection")
    }
}
