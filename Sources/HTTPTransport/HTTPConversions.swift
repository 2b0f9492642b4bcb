import NIOCore
import NIOHTTP1

extension TimeAmount {
    /// The same span in NIO's terms (whole nanoseconds).
    init(_ duration: Duration) {
        self = .nanoseconds(Int64(duration.components.seconds) * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    }
}

extension HTTPRequestHead {
    /// `Expect: 100-continue`: the client holds its body back until the server says `100 Continue`.
    var expectsContinue: Bool {
        headers["Expect"].contains { $0.lowercased() == "100-continue" }
    }
}
