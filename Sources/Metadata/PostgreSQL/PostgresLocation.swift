import FoundationEssentials

/// Where the PostgreSQL metadata lives:
/// `postgres://USER@HOST:PORT/DATABASE?sslmode=MODE&sslrootcert=PATH` (`postgresql://`
/// too), the form libpq and every PostgreSQL tool read.
///
/// The URL never carries the password (it would end up in `ps`, unit files and shell
/// history): it comes from the config file's `metadata-password`, `PGPASSWORD`, or a
/// passfile in libpq's format (`PGPASSFILE`, else `~/.pgpass`), in that order.
public struct PostgresLocation: Sendable, Equatable, CustomStringConvertible {
    public enum TLSMode: String, Sendable, CaseIterable {
        /// Plain TCP.
        case disable
        /// TLS when the server offers it, without checking its certificate (libpq's default).
        case prefer
        /// TLS or no connection; the certificate is not checked (libpq's `require`).
        case require
        /// TLS with the certificate checked against the trust roots (`sslrootcert`, else the
        /// system's store) and the host name. libpq's `verify-ca` is taken as this, the stricter.
        case verifyFull = "verify-full"
    }

    public let host: String
    public let port: Int
    public let user: String
    public let database: String
    public let tls: TLSMode
    /// The certificates (PEM) that `verify-full` trusts instead of the system's store:
    /// a private CA's.
    public let rootCertificatesFile: String?
    /// Set by `withPassword`; never part of `description`.
    public internal(set) var password: String?

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case notPostgresURL
        case passwordInURL
        case missing(String)
        case badPort(String)
        case unsupportedOption(String)
        case badSSLMode(String)

        public var description: String {
            switch self {
            case .notPostgresURL:
                "a PostgreSQL location is postgres://USER@HOST:PORT/DATABASE"
            case .passwordInURL:
                "the URL may not carry a password: put it in the config file (metadata-password), PGPASSWORD or a passfile"
            case .missing(let part):
                "the URL names no \(part) (postgres://USER@HOST:PORT/DATABASE)"
            case .badPort(let port):
                "\(port) is not a port"
            case .unsupportedOption(let option):
                "the URL option \(option) is not supported (only sslmode and sslrootcert)"
            case .badSSLMode(let mode):
                "sslmode \(mode) is not one of \(TLSMode.allCases.map(\.rawValue).joined(separator: ", "))"
            }
        }
    }

    /// Parses the URL of `--metadata`. Percent-escapes in the user and database are decoded.
    public init(parsing text: String) throws(ParseError) {
        guard let schemeEnd = text.range(of: "://"),
            ["postgres", "postgresql"].contains(text[..<schemeEnd.lowerBound].lowercased())
        else { throw .notPostgresURL }
        var rest = Substring(text[schemeEnd.upperBound...])
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        guard let at = rest.lastIndex(of: "@") else { throw .missing("user") }
        let userInfo = rest[..<at]
        if userInfo.contains(":") { throw .passwordInURL }
        rest = rest[rest.index(after: at)...]
        guard let slash = rest.firstIndex(of: "/") else { throw .missing("database") }
        let hostPort = rest[..<slash]
        let database = Self.decoded(rest[rest.index(after: slash)...])
        var host = String(hostPort)
        var port = 5432
        if let colon = hostPort.lastIndex(of: ":"), !hostPort.hasSuffix("]") {
            host = String(hostPort[..<colon])
            let portText = String(hostPort[hostPort.index(after: colon)...])
            guard let number = Int(portText), (1...65535).contains(number) else { throw .badPort(portText) }
            port = number
        }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let user = Self.decoded(userInfo)
        guard !user.isEmpty else { throw .missing("user") }
        guard !host.isEmpty else { throw .missing("host") }
        guard !database.isEmpty else { throw .missing("database") }
        var tls = TLSMode.prefer
        var rootCertificatesFile: String?
        for option in query.split(separator: "&") where !option.isEmpty {
            let pair = option.split(separator: "=", maxSplits: 1).map(String.init)
            if pair.count == 2, pair[0] == "sslrootcert", !pair[1].isEmpty {
                rootCertificatesFile = Self.decoded(Substring(pair[1]))
                continue
            }
            guard pair.count == 2, pair[0] == "sslmode" else { throw .unsupportedOption(pair[0]) }
            switch pair[1] {
            case "allow", "prefer": tls = .prefer
            case "require", "verify-ca": tls = pair[1] == "require" ? .require : .verifyFull
            default:
                guard let mode = TLSMode(rawValue: pair[1]) else { throw .badSSLMode(pair[1]) }
                tls = mode
            }
        }
        self.host = host
        self.port = port
        self.user = user
        self.database = database
        self.tls = tls
        self.rootCertificatesFile = rootCertificatesFile
    }

    /// The location without its password: safe to log and to show in `system.status`.
    public var description: String {
        let shownHost = host.contains(":") ? "[\(host)]" : host
        let roots = rootCertificatesFile.map { "&sslrootcert=\($0)" } ?? ""
        return "postgres://\(user)@\(shownHost):\(port)/\(database)?sslmode=\(tls.rawValue)\(roots)"
    }

    /// The password from the first source that has one: `configured` (the config file),
    /// then `PGPASSWORD`, then the passfile. `nil` when none has (trust or peer auth).
    public func withPassword(configured: String?, environment: [String: String]) -> PostgresLocation {
        var located = self
        if let configured, !configured.isEmpty {
            located.password = configured
        } else if let fromEnvironment = environment["PGPASSWORD"], !fromEnvironment.isEmpty {
            located.password = fromEnvironment
        } else {
            let passfile = environment["PGPASSFILE"] ?? environment["HOME"].map { $0 + "/.pgpass" }
            located.password = passfile.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) }.flatMap(passwordInPassfile)
        }
        return located
    }

    /// The password of the first line of a libpq passfile that matches this location
    /// (`host:port:database:user:password`, `*` matches anything, `\` escapes `:` and `\`).
    func passwordInPassfile(_ text: String) -> String? {
        for line in text.split(whereSeparator: \.isNewline) where !line.hasPrefix("#") {
            var fields: [String] = []
            var field = ""
            var escaped = false
            for character in line {
                if escaped {
                    field.append(character)
                    escaped = false
                } else if character == "\\" {
                    escaped = true
                } else if character == ":" && fields.count < 4 {
                    fields.append(field)
                    field = ""
                } else {
                    field.append(character)
                }
            }
            fields.append(field)
            guard fields.count == 5 else { continue }
            let wanted = [host, String(port), database, user]
            if zip(fields.prefix(4), wanted).allSatisfy({ $0 == "*" || $0 == $1 }) { return fields[4] }
        }
        return nil
    }

    private static func decoded(_ text: Substring) -> String {
        String(text).removingPercentEncoding ?? String(text)
    }
}
