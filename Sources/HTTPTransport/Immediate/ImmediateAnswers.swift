import NIOCore
import NIOHTTP1

/// The immediate path's one source of answers on an event loop: the loop's cache of
/// encoded answers, and on a miss the `ImmediateResponder` (routing, access, cached
/// metadata), whose answer is encoded and kept.
final class ImmediateAnswers {
    private let responder: any ImmediateResponder
    let cache: ImmediateAnswerCache

    init(responder: any ImmediateResponder, cache: ImmediateAnswerCache) {
        self.responder = responder
        self.cache = cache
    }

    /// The answer as bytes for the wire, or `nil` when the full path must answer.
    func answer(_ request: ScannedRequestHead.Candidate, remoteAddress: String, now: NIODeadline) -> ImmediateAnswerCache.Answer? {
        let key = request.answerKey
        // Read before answering: an answer stored under a generation a write already
        // ended is never found again.
        let generation = responder.immediateAnswerGeneration
        if let generation, let kept = cache.answer(for: key, generation: generation, now: now) { return kept }
        guard let response = responder.respondImmediately(to: request.requestHead, remoteAddress: remoteAddress),
            Self.isInMemory(response.body),
            let bytes = ImmediateAnswerCache.encode(
                response, method: request.method, version: request.version, keepAlive: request.keepAlive)
        else { return nil }
        let bodyLength: Int64 = if request.method != .HEAD, case .bytes(let body) = response.body { Int64(body.readableBytes) } else { 0 }
        let answer = ImmediateAnswerCache.Answer(
            bytes: bytes, status: response.status, bodyLength: bodyLength,
            generation: generation ?? 0, expires: now + ImmediateAnswerCache.lifetime)
        if generation != nil { cache.store(answer, for: key) }
        return answer
    }

    /// Only answers held in memory are written here; files and streams need the task.
    private static func isInMemory(_ body: HTTPResponse.Body) -> Bool {
        switch body {
        case .none, .bytes: true
        default: false
        }
    }
}

/// The `ImmediateAnswers` of an event loop group: one per loop, each touched only by
/// connections on its loop (so their caches need no lock).
final class ImmediateAnswersByLoop: @unchecked Sendable {
    private let responder: any ImmediateResponder
    private let byLoop: [ObjectIdentifier: ImmediateAnswers]

    init(responder: any ImmediateResponder, group: any EventLoopGroup) {
        self.responder = responder
        var byLoop: [ObjectIdentifier: ImmediateAnswers] = [:]
        for loop in group.makeIterator() {
            byLoop[ObjectIdentifier(loop)] = ImmediateAnswers(responder: responder, cache: ImmediateAnswerCache())
        }
        self.byLoop = byLoop
    }

    /// The loop's answers; a connection on a loop outside the group gets a small cache of its own.
    func answers(for loop: any EventLoop) -> ImmediateAnswers {
        byLoop[ObjectIdentifier(loop)] ?? ImmediateAnswers(responder: responder, cache: ImmediateAnswerCache(capacity: 64))
    }
}
