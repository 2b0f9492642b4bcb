import HTTPTransport

@testable import RegistryAPI

extension FuzzTarget {
    /// `Range` (downloads) and `Content-Range` (upload chunks).
    static let ranges = FuzzTarget(name: "ranges") { bytes in
        let header = text(bytes)
        for size: Int64 in [0, 1, 100, 1 << 40] {
            guard let range = ByteRange.parse(header, size: size) else { continue }
            check(!range.isEmpty && range.lowerBound >= 0 && range.upperBound <= size, "Range \(header) of \(size) gave \(range)")
        }
        if let range = ContentRange.parse(header) {
            check(range.lowerBound >= 0 && range.lowerBound <= range.upperBound, "Content-Range \(header) gave \(range)")
        }
    }

    /// Query strings: decoding keeps every pair and never invents a key.
    static let query = FuzzTarget(name: "query") { bytes in
        let query = QueryParameters(text(bytes))
        for key in ["digest", "mount", "from", "n", "last", "tag", "artifactType", "scope", "service"] {
            let all = query.all(key)
            check(all.first == query[key], "first value of \(key)")
        }
    }
}
