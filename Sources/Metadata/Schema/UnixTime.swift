#if canImport(Glibc)
    import Glibc
#endif

/// Wall-clock time as the database stores it: whole seconds in `*_at` columns, and
/// milliseconds in `*_at_ms` columns, the ages that garbage collection and leases compare
/// (in whole seconds a collection with grace 0 run in the same second as a delete found
/// nothing old enough).
public enum UnixTime {
    public static func seconds() -> Int64 { Int64(time(nil)) }

    public static func milliseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }
}
