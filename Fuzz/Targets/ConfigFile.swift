import DaemonSettings

extension FuzzTarget {
    /// The config file reader: any text yields settings or a `SettingsError` that names
    /// what is wrong, never a crash; and what it accepts holds only values the daemon can
    /// use (a retention of at least a minute, ports that exist, listeners it can bind).
    static let configFile = FuzzTarget(name: "config-file") { bytes in
        var settings = Settings()
        do throws(SettingsError) {
            try settings.load(text: text(bytes), source: "fuzz.conf")
        } catch {
            check(!error.description.isEmpty, "an error without a message")
            return
        }
        check(!settings.listen.isEmpty, "no listener left")
        for address in settings.listen {
            check((0...65535).contains(address.port), "port \(address.port) accepted")
        }
        for retention in [settings.tagHistoryRetention, settings.auditRetention].compactMap({ $0 }) {
            check(retention >= 60, "a retention of \(retention) s accepted")
        }
        check((5...5120).contains(settings.s3.partSizeMiB), "part size \(settings.s3.partSizeMiB) MiB accepted")
        if let id = settings.instanceID { check(!id.isEmpty && id.utf8.count <= 64, "instance id \(id) accepted") }
        _ = settings.realmBase
    }
}
