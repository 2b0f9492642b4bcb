/// How long a registryd instance's claim on its pins lasts without renewal, and how
/// often a live instance renews it (`SQLiteMetadataStore.renewInstanceLease`).
///
/// An instance is one registryd process identity: the `instance-id` setting, by default
/// an id kept in the data directory, so a restarted process is the same instance and
/// releases what its predecessor held. Several instances sharing one database need
/// distinct ids.
public enum InstanceLease {
    public static let duration = Duration.seconds(60)
    /// Renewal well inside the lease: two renewals may be missed before it runs out.
    public static let renewalInterval = Duration.seconds(15)
    /// No upload holds a pin this long (it covers a digest check and a move): a pin
    /// this old was leaked and no longer protects its blob.
    public static let longestPin = Duration.seconds(86_400)
}

extension Duration {
    /// Whole milliseconds, as the `*_at_ms` columns count.
    public var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}
