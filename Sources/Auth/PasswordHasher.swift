import HummingbirdBcrypt
import OCI

/// Slow, salted password hashes (bcrypt), and the htpasswd lines people bring over
/// from CNCF distribution.
///
/// ```swift
/// let hash = PasswordHasher(cost: 10).hash("s3cret")
/// let matches = PasswordHasher.verify("s3cret", against: hash)  // true
/// ```
public struct PasswordHasher: Sendable {
    /// bcrypt's work factor: each step doubles the time. 10 costs ~60 ms here.
    public let cost: UInt8

    public init(cost: UInt8 = 10) {
        precondition((4...31).contains(cost), "bcrypt cost must be 4…31")
        self.cost = cost
    }

    public func hash(_ password: String) -> String {
        Bcrypt.hash(password, cost: cost)
    }

    /// Checks a password against a bcrypt hash (`$2a$`, `$2b$` or `$2y$`).
    public static func verify(_ password: String, against hash: String) -> Bool {
        guard isBcryptHash(hash) else { return false }
        return Bcrypt.verify(password, hash: hash)
    }

    /// Whether `text` looks like a bcrypt hash: `$2?$NN$` and 53 characters of salt and hash.
    public static func isBcryptHash(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 60, bytes[0] == UInt8(ascii: "$"), bytes[1] == UInt8(ascii: "2"),
            [UInt8(ascii: "a"), UInt8(ascii: "b"), UInt8(ascii: "y")].contains(bytes[2]), bytes[3] == UInt8(ascii: "$"),
            bytes[6] == UInt8(ascii: "$")
        else { return false }
        return bytes[4...5].allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
    }

    /// Parses htpasswd text. Only bcrypt lines can be imported: other formats (MD5,
    /// SHA-1, crypt) are weak, and are reported instead of silently skipped.
    public static func parseHtpasswd(_ text: String) -> (users: [(name: String, hash: String)], rejected: [String]) {
        var users: [(String, String)] = []
        var rejected: [String] = []
        for rawLine in text.split(whereSeparator: \.isNewline) {
            let line = rawLine.trimmingWhitespace()
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let colon = line.firstIndex(of: ":") else { rejected.append(String(line.prefix(40))); continue }
            let name = String(line[..<colon])
            let hash = String(line[line.index(after: colon)...])
            if UserName.isValid(name) && isBcryptHash(hash) {
                users.append((name, hash))
            } else {
                rejected.append(name)
            }
        }
        return (users, rejected)
    }
}

/// The grammar of user names: they become namespaces, so they follow a repository
/// path component (`[a-z0-9]+(?:[._-][a-z0-9]+)*`), at most 64 characters.
public enum UserName {
    public static func isValid(_ name: String) -> Bool {
        guard (1...64).contains(name.utf8.count), !name.contains("/") else { return false }
        return (try? RepositoryName(parsing: name)) != nil
    }
}
