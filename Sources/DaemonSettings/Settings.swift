import FoundationEssentials
import Logging
import Metadata
import Storage

/// Every setting of the daemon, from defaults, then the config file, then flags.
///
/// A property's initial value is its default; how it is named, read, shown and
/// documented is declared once, in `Settings.all`.
public struct Settings: Sendable {
    public enum StorageKind: String, Sendable { case filesystem, memory, s3 }

    public struct ListenAddress: Equatable, Sendable {
        public let host: String
        public let port: Int

        /// `HOST:PORT`, `[IPv6]:PORT` or `:PORT` (all interfaces).
        public init(parsing text: String) throws(SettingsError) {
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
                throw .invalid("listen", text)
            }
            var host = String(text[..<colon])
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            self.host = host.isEmpty ? "0.0.0.0" : host
            self.port = port
        }

        /// As it is written in a config file.
        public var text: String {
            host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }

    public var listen = [try! ListenAddress(parsing: "127.0.0.1:5000")]
    public var dataDir = "./registry-data"
    /// `nil`: `DATA_DIR/control.sock`.
    public var controlSocket: String?
    /// PostgreSQL metadata; `nil`: SQLite in the data directory.
    public var metadata: PostgresLocation?
    public var metadataPassword: String?
    public var metadataPoolSize = 16
    public var storage = StorageKind.filesystem
    public var allowSparseIndexes = false
    public var logLevel = Logger.Level.info
    /// Docker token auth (namespaces and roles) instead of basic auth (staff push).
    public var tokenAuth = false
    /// The `service` named in token challenges and checked in tokens.
    public var tokenService = "registryd"
    /// The key that signs tokens; `nil`: `DATA_DIR/token-signing.key`, made when missing.
    public var tokenKeyFile: String?
    /// Keys whose tokens are still accepted (a rotation under way).
    public var tokenAcceptKeyFiles: [String] = []
    /// How clients reach this registry, e.g. `https://registry.example.com`; the token
    /// realm is `<public-url>/token`. Default: `http://<first listen address>`.
    public var publicURL: String?
    /// Group whose members may use the control socket; `nil`: root and the daemon's user only.
    public var adminGroup: String?
    /// Seconds requests in flight get after SIGTERM.
    public var shutdownTimeout = 30
    /// With socket activation: exit after this many idle seconds.
    public var exitIdleAfter: Int?
    /// Request bodies slower than this many bytes per second, averaged over
    /// `bodyRateWindow` seconds of waiting for the client, are cut off (0: never).
    public var bodyMinimumRate = 1024
    public var bodyRateWindow = 60
    /// Upload sessions idle longer than this are purged (hourly, and by `upload.purge`).
    public var uploadTTL = 86_400
    /// Collect garbage every this many seconds; `nil`: only when asked (`registryctl gc run`).
    public var gcInterval: Int?
    /// Grace period of scheduled collections.
    public var gcGrace = 3600
    /// Seconds tag moves and audit records are kept (`nil`: forever); see `HistoryPruner`.
    public var tagHistoryRetention: Int64? = 90 * 86_400
    public var auditRetention: Int64? = 365 * 86_400
    /// The S3 driver's settings (`storage = s3`).
    public var s3 = S3Settings()
    /// This process's identity as a holder of pins (see `InstanceLease`); `nil`: the id
    /// kept in `DATA_DIR/instance-id`, made on first start.
    public var instanceID: String?
    /// Plain reads answered from memory on the event loop (`ImmediateReads`).
    public var immediateAnswers = true

    public init() {}

    public struct S3Settings: Sendable {
        public var endpoint: String?
        public var bucket: String?
        public var region = "us-east-1"
        public var prefix = ""
        public var addressing = S3Configuration.Addressing.path
        public var partSizeMiB = S3Configuration.defaultPartSize >> 20
        public var redirect = false
        /// From the config file only (a flag would show in `ps`); else the environment.
        public var accessKey: String?
        public var secretKey: String?

        public init() {}

        /// The driver's configuration, with credentials from the config file or the
        /// standard `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (/ `AWS_SESSION_TOKEN`).
        public func configuration(environment: [String: String]) throws -> S3Configuration {
            guard let endpoint else { throw SettingsError.missing("s3-endpoint") }
            guard let bucket else { throw SettingsError.missing("s3-bucket") }
            let credentials = S3Credentials(
                accessKeyID: accessKey ?? environment["AWS_ACCESS_KEY_ID"] ?? "",
                secretAccessKey: secretKey ?? environment["AWS_SECRET_ACCESS_KEY"] ?? "",
                sessionToken: accessKey == nil ? environment["AWS_SESSION_TOKEN"] : nil
            )
            return try S3Configuration(
                endpoint: endpoint, bucket: bucket, region: region, prefix: prefix, addressing: addressing,
                credentials: credentials, partSize: partSizeMiB << 20, redirect: redirect)
        }
    }

    /// Reads `key = value` lines; `#` starts a comment; `listen` may repeat.
    public mutating func load(file path: String) throws {
        try load(text: try String(contentsOfFile: path, encoding: .utf8), source: path)
    }

    /// The config file's text (`source` names it in errors): whatever it holds, the
    /// answer is these settings or a clear `SettingsError`, never a crash.
    public mutating func load(text: String, source path: String) throws(SettingsError) {
        var given: Set<String> = []
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0].trimmingWhitespace
            if line.isEmpty { continue }
            guard let equals = line.firstIndex(of: "=") else { throw SettingsError.syntax(path, number + 1) }
            let key = line[..<equals].trimmingWhitespace
            var value = line[line.index(after: equals)...].trimmingWhitespace
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
            guard let setting = Self.named(key) else { throw SettingsError.unknownKey(key) }
            try read(setting, value, given: &given)
        }
    }

    /// Command-line flags, which win over the file: `--key VALUE`, `--key=VALUE`, and
    /// `--key` alone for an on/off setting.
    public mutating func apply(flags arguments: [String]) throws(SettingsError) {
        var given: Set<String> = []
        var remaining = arguments[...]
        while let argument = remaining.popFirst() {
            guard argument.hasPrefix("--"), argument.count > 2 else { throw SettingsError.unexpectedArgument(argument) }
            let flag = argument.dropFirst(2)
            let name = String(flag.prefix { $0 != "=" })
            let inline = flag.firstIndex(of: "=").map { String(flag[flag.index(after: $0)...]) }
            guard let setting = Self.named(name) else { throw SettingsError.unknownFlag(argument) }
            let value: String
            switch setting.form {
            case .fileOnly:
                throw SettingsError.fileOnly(name)
            case .onOff:
                value = inline ?? "true"
            case .value:
                guard let next = inline ?? remaining.popFirst() else { throw SettingsError.missingValue(name) }
                value = next
            }
            try read(setting, value, given: &given)
        }
    }

    /// Reads one value. A source's first value of a repeatable setting replaces what an
    /// earlier source gave; otherwise the last value given wins.
    private mutating func read(_ setting: Setting, _ value: String, given: inout Set<String>) throws(SettingsError) {
        if given.insert(setting.key).inserted { setting.reset?(&self) }
        try setting.read(&self, value, setting.key)
    }

    /// Letters, digits, `.`, `_` and `-`, at most 64.
    public static func instanceID(_ value: String, key: String = "instance-id") throws(SettingsError) -> String {
        guard !value.isEmpty, value.utf8.count <= 64,
            value.utf8.allSatisfy({
                $0 < 0x80 && (Character(Unicode.Scalar($0)).isLetter || Character(Unicode.Scalar($0)).isNumber || "._-".utf8.contains($0))
            })
        else { throw .invalid(key, value) }
        return value
    }

    /// One of an enumeration's raw values.
    static func choice<Choice: RawRepresentable>(_ type: Choice.Type, _ key: String, _ value: String) throws(SettingsError) -> Choice
    where Choice.RawValue == String {
        guard let choice = Choice(rawValue: value) else { throw .invalid(key, value) }
        return choice
    }

    /// Whole MiB, 5 MiB (S3's minimum part) to 5 GiB.
    static func partSize(_ key: String, _ value: String) throws(SettingsError) -> Int {
        guard let mebibytes = Int(value), (5...5120).contains(mebibytes) else { throw .invalid(key, value) }
        return mebibytes
    }

    static func boolean(_ key: String, _ value: String) throws(SettingsError) -> Bool {
        switch value {
        case "true", "yes", "1": return true
        case "false", "no", "0": return false
        default: throw .invalid(key, value)
        }
    }

    /// The token realm's base: the configured public URL, else the first listener.
    public var realmBase: String {
        if let publicURL { return publicURL }
        return "http://\(listen[0].text)"
    }

    static func seconds(_ key: String, _ value: String) throws(SettingsError) -> Int {
        guard let seconds = Int(value), (0...86_400).contains(seconds) else { throw .invalid(key, value) }
        return seconds
    }

    /// A retention as `retention` reads it: `forever`, or the largest whole unit.
    static func period(_ seconds: Int64?) -> String {
        guard let seconds else { return "forever" }
        for (unit, size) in [("d", Int64(86_400)), ("h", 3600), ("m", 60)] where seconds % size == 0 {
            return "\(seconds / size)\(unit)"
        }
        return String(seconds)
    }

    /// `forever`, or a period of at least a minute: a number of seconds, or a number
    /// followed by `s`, `m`, `h` or `d`.
    public static func retention(_ key: String, _ value: String) throws(SettingsError) -> Int64? {
        if value == "forever" { return nil }
        let units: [Character: Int64] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
        var digits = Substring(value)
        var unit: Int64 = 1
        if let last = value.last, let factor = units[last] {
            digits = digits.dropLast()
            unit = factor
        }
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), let count = Int64(digits),
            count <= 36_500 * 86_400 / unit, count * unit >= 60
        else { throw .invalid(key, value) }
        return count * unit
    }

    static func postgresLocation(_ key: String, _ value: String) throws(SettingsError) -> PostgresLocation {
        do {
            return try PostgresLocation(parsing: value)
        } catch {
            // The reason, never the value: a refused URL may hold a password.
            throw .rejected(key, error.description)
        }
    }

    static func count(_ key: String, _ value: String, in range: ClosedRange<Int>) throws(SettingsError) -> Int {
        guard let number = Int(value), range.contains(number) else { throw .invalid(key, value) }
        return number
    }

    static func url(_ key: String, _ value: String) throws(SettingsError) -> String {
        guard value.hasPrefix("http://") || value.hasPrefix("https://"), !value.contains(" "), !value.contains("\"") else {
            throw .invalid(key, value)
        }
        return value.hasSuffix("/") ? String(value.dropLast()) : value
    }
}

public enum SettingsError: Error, CustomStringConvertible {
    case syntax(String, Int)
    case unknownKey(String)
    case invalid(String, String)
    case missing(String)
    case unknownFlag(String)
    case unexpectedArgument(String)
    case missingValue(String)
    case fileOnly(String)
    /// A value refused for `reason`, without repeating it (it may hold a secret).
    case rejected(String, String)

    public var description: String {
        switch self {
        case .syntax(let file, let line): "\(file):\(line): expected key = value"
        case .unknownKey(let key): "unknown setting \(key)"
        case .invalid(let key, let value): "invalid value for \(key): \(value)"
        case .missing(let key): "\(key) is required with storage = s3"
        case .unknownFlag(let flag): "unknown flag \(flag)"
        case .unexpectedArgument(let argument): "unexpected argument \(argument): settings are given as --key VALUE"
        case .missingValue(let key): "--\(key) needs a value"
        case .fileOnly(let key): "\(key) is read from the config file only (a flag would show in ps)"
        case .rejected(let key, let reason): "invalid value for \(key): \(reason)"
        }
    }
}

private extension StringProtocol {
    /// Without leading and trailing blanks (a CR left by a CRLF file included).
    var trimmingWhitespace: String {
        String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}
