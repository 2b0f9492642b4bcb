import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

/// libFuzzer's entry points. One binary holds every target; `REGISTRYD_FUZZ_TARGET`
/// names the one to run (scripts/fuzz.sh sets it per target).
nonisolated(unsafe) private var selected: FuzzTarget?

@_cdecl("LLVMFuzzerInitialize")
public func fuzzerInitialize(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>
) -> CInt {
    guard let name = getenv("REGISTRYD_FUZZ_TARGET").map({ String(cString: $0) }), let target = FuzzTarget.named(name) else {
        let message = "REGISTRYD_FUZZ_TARGET must name one of: \(FuzzTarget.all.map(\.name).joined(separator: ", "))\n"
        _ = message.withCString { write(2, $0, strlen($0)) }
        exit(2)
    }
    selected = target
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    selected?.run(bytes)
    return 0
}

#if !FUZZING
    /// Without libFuzzer (an ordinary build): replays stored inputs through their targets,
    /// so the seed corpora and every input that once crashed run with the test suite.
    ///
    ///     registryd-fuzz Fuzz/Corpus Fuzz/Regressions     # <dir>/<target>/<input>
    @main
    enum Replay {
        static func main() {
            var count = 0
            for root in CommandLine.arguments.dropFirst() {
                for target in FuzzTarget.all {
                    let directory = root + "/" + target.name
                    guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { continue }
                    for name in names.sorted() {
                        guard let data = FileManager.default.contents(atPath: directory + "/" + name) else { continue }
                        target.run(Array(data))
                        count += 1
                    }
                }
            }
            print("replayed \(count) inputs")
            if count == 0 { exit(1) }
        }
    }
#endif
