@testable import Storage

extension FuzzTarget {
    /// The reader of S3's XML answers (listings, multipart results, errors), which comes
    /// from the network: any bytes are read or refused, and text survives escaping.
    static let s3XML = FuzzTarget(name: "s3-xml") { bytes in
        _ = try? S3XMLElement.parse(bytes)
        let input = text(bytes)
        // Control characters other than tab and newlines are not XML; S3 never sends them.
        guard input.unicodeScalars.allSatisfy({ $0.value >= 0x20 || $0 == "\t" || $0 == "\n" }), !input.contains("\r") else { return }
        let document = "<Key>" + S3XMLElement.escape(input) + "</Key>"
        guard let element = try? S3XMLElement.parse(Array(document.utf8)) else {
            preconditionFailure("an escaped text does not parse: \(document)")
        }
        check(element.text == input, "escaped text reads back changed: \(input) → \(element.text)")
    }
}
