import XCTest

@testable import Metadata

/// `--metadata postgres://…`: what is read from the URL, and that a password never comes
/// from it nor goes out in a description.
final class PostgresLocationTests: XCTestCase {
    func testTheURLGivesHostPortUserDatabaseAndTLSMode() throws {
        let location = try PostgresLocation(parsing: "postgres://registry%40prod@db.internal:6432/images?sslmode=verify-full")
        XCTAssertEqual(location.user, "registry@prod")
        XCTAssertEqual(location.host, "db.internal")
        XCTAssertEqual(location.port, 6432)
        XCTAssertEqual(location.database, "images")
        XCTAssertEqual(location.tls, .verifyFull)
        let defaults = try PostgresLocation(parsing: "postgresql://registryd@[::1]/registry")
        XCTAssertEqual(defaults.host, "::1")
        XCTAssertEqual(defaults.port, 5432)
        XCTAssertEqual(defaults.tls, .prefer, "libpq's default")
        XCTAssertEqual(defaults.description, "postgres://registryd@[::1]:5432/registry?sslmode=prefer")
        XCTAssertEqual(try PostgresLocation(parsing: "postgres://u@h/d?sslmode=require").tls, .require)
        XCTAssertEqual(try PostgresLocation(parsing: "postgres://u@h/d?sslmode=verify-ca").tls, .verifyFull, "verify-ca is checked fully")
        XCTAssertNil(defaults.rootCertificatesFile)
        let privateCA = try PostgresLocation(parsing: "postgres://u@h/d?sslmode=verify-full&sslrootcert=/etc/registryd/db%20ca.pem")
        XCTAssertEqual(privateCA.rootCertificatesFile, "/etc/registryd/db ca.pem")
        XCTAssertEqual(privateCA.description, "postgres://u@h:5432/d?sslmode=verify-full&sslrootcert=/etc/registryd/db ca.pem")
    }

    func testBadURLsAreRefusedWithTheReasonAndAPasswordNeverRidesAlong() {
        let refusals: [(String, PostgresLocation.ParseError)] = [
            ("mysql://u@h/d", .notPostgresURL),
            ("postgres://u:secret@h/d", .passwordInURL),
            ("postgres://h/d", .missing("user")),
            ("postgres://u@h", .missing("database")),
            ("postgres://u@h:99999/d", .badPort("99999")),
            ("postgres://u@h/d?sslmode=sometimes", .badSSLMode("sometimes")),
            ("postgres://u@h/d?application_name=x", .unsupportedOption("application_name")),
        ]
        for (text, expected) in refusals {
            XCTAssertThrowsError(try PostgresLocation(parsing: text), text) { error in
                XCTAssertEqual(error as? PostgresLocation.ParseError, expected, text)
                XCTAssertFalse("\(error)".contains("secret"), "the message never repeats a password")
            }
        }
    }

    func testThePasswordComesFromTheConfigThenPGPASSWORDThenThePassfile() throws {
        let location = try PostgresLocation(parsing: "postgres://registryd@db:5432/registry")
        let passfile = NSTemporaryDirectory() + "/pgpass-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: passfile) }
        try """
        # host:port:database:user:password
        other:5432:registry:registryd:wrong-host
        db:*:registry:registryd:from\\:passfile
        *:*:*:*:fallback
        """.write(toFile: passfile, atomically: true, encoding: .utf8)
        let environment = ["PGPASSWORD": "from-environment", "PGPASSFILE": passfile]
        XCTAssertEqual(location.withPassword(configured: "from-config", environment: environment).password, "from-config")
        XCTAssertEqual(location.withPassword(configured: nil, environment: environment).password, "from-environment")
        XCTAssertEqual(location.withPassword(configured: nil, environment: ["PGPASSFILE": passfile]).password, "from:passfile")
        XCTAssertNil(location.withPassword(configured: nil, environment: [:]).password, "none: trust or peer authentication")
        let located = location.withPassword(configured: "from-config", environment: [:])
        XCTAssertFalse(located.description.contains("from-config"), "a description never holds the password")
    }
}
