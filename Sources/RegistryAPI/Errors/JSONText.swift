import FoundationEssentials

/// JSON encoding for the small documents the API returns (error bodies, tag lists).
enum JSONText {
    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    static func encode(_ value: some Encodable) -> [UInt8] {
        // Encoding plain dictionaries, arrays and strings cannot fail.
        Array((try? encoder.encode(value)) ?? Data("{}".utf8))
    }
}
