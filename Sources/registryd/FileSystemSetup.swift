import FoundationEssentials

enum FileSystemSetup {
    /// Creates the data directory (mode 0750) when missing.
    static func makeDirectory(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
    }
}
