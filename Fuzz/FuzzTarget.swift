/// One libFuzzer target: a parser of untrusted bytes and the properties it must keep.
///
/// `run` gets one input and returns normally for every input; a property that does not
/// hold is a `preconditionFailure`, which libFuzzer reports as a crash with its input.
struct FuzzTarget: Sendable {
    let name: String
    let run: @Sendable ([UInt8]) -> Void

    /// Every target, by name (the `REGISTRYD_FUZZ_TARGET` values and `Fuzz/Corpus/<name>`).
    static let all: [FuzzTarget] = [
        .grammar, .routes, .headScanner, .headDifferential, .manifest, .ranges, .query,
        .authorization, .jsonRPC, .s3XML, .configFile,
    ]

    static func named(_ name: String) -> FuzzTarget? { all.first { $0.name == name } }
}

/// The input as text: most parsers take strings (invalid UTF-8 is repaired, as a
/// header or path would be by the time it reaches them).
func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

/// Fails the run with the input when a property does not hold.
func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { preconditionFailure(message()) }
}
