import DaemonSettings
import FoundationEssentials

/// The default instance id (see `InstanceLease`): kept in `DATA_DIR/instance-id`, so a
/// restarted registryd is the same instance and releases the pins its predecessor held.
enum InstanceIdentity {
    static func loadOrCreate(in dataDirectory: String) throws -> String {
        let path = dataDirectory + "/instance-id"
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            return try Settings.instanceID(String(text.filter { !$0.isWhitespace }))
        }
        let id = UUID().uuidString.lowercased()
        guard FileManager.default.createFile(atPath: path, contents: Data((id + "\n").utf8), attributes: [.posixPermissions: 0o640]) else {
            throw SettingsError.invalid("instance-id", "cannot write \(path)")
        }
        return id
    }
}
