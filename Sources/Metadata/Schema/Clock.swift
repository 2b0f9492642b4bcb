#if canImport(Glibc)
import Glibc
#endif

/// Unix time in seconds, the unit of every `*_at` column.
enum Clock {
    static func now() -> Int64 { Int64(time(nil)) }
}
