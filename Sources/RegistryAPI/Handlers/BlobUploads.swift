import FoundationEssentials
import HTTPTransport
import Metadata
import NIOHTTP1
import OCI
import Storage

/// `/v2/<name>/blobs/uploads/…` (spec: "Pushing blobs": monolithic POST, POST then
/// PUT, chunked PATCHes, one streamed PATCH, cross-repository mount).
extension Registry {
    /// How many repositories a `mount` without `from` looks at for a readable source.
    private static let mountCandidateLimit = 64

    func startUpload(_ name: RepositoryName, _ context: RequestContext) async throws -> HTTPResponse {
        try await authorize(.pull, .push, on: name, context)
        let query = context.request.query

        if let mountText = query["mount"] {
            let digest = try Digest.fromRequest(mountText)
            if try await mount(digest, from: query["from"], to: name, context) {
                return HTTPResponse(status: .created, headers: blobLocationHeaders(name, digest))
            }
            // Not mountable: fall back to an ordinary upload, revealing nothing about why.
        }

        let algorithm: DigestAlgorithm
        if let text = query["digest-algorithm"] {
            guard let requested = DigestAlgorithm(rawValue: text) else {
                throw RegistryError(.unsupported, status: .badRequest, "digest algorithm \(text.prefix(40)) is not supported")
            }
            algorithm = requested
        } else {
            algorithm = .sha256
        }
        let expected = try query["digest"].map { text throws(RegistryError) in try Digest.fromRequest(text) }
        // Disk exhaustion by a flood of sessions: each principal holds only so many.
        let open = try await meta { try await metadata.uploadCount(principal: context.principal?.name) }
        guard open < configuration.maximumUploadsPerPrincipal else {
            throw RegistryError(.tooManyRequests, status: .tooManyRequests, "too many uploads in progress (\(open)); finish or cancel some")
                .with(header: "Retry-After", "60")
        }

        let session = UploadSession(
            id: .generate(), repository: name, principal: context.principal?.name,
            algorithm: expected?.algorithm ?? algorithm, createdAt: Int64(Date.now.timeIntervalSince1970))
        try await meta { [metadata] in try await metadata.createUpload(session) }

        if let expected {
            // Monolithic upload: the whole blob is the body of this POST. The session
            // exists only for this request, so any failure discards it whole.
            _ = await uploads.checkOut(session.id)
            do {
                return try await completeUpload(session, hasher: ContentHasher(algorithm: session.algorithm), expected: expected, context)
            } catch {
                try? await discard(session)
                throw error
            }
        }
        return HTTPResponse(status: .accepted, headers: sessionHeaders(session))
    }

    func uploadStatus(_ name: RepositoryName, _ idText: String, _ context: RequestContext) async throws -> HTTPResponse {
        try await authorize(.pull, on: name, context)
        let session = try await loadSession(name, idText, context)
        return HTTPResponse(status: .noContent, headers: sessionHeaders(session))
    }

    func patchUpload(_ name: RepositoryName, _ idText: String, _ context: RequestContext) async throws -> HTTPResponse {
        try await authorize(.pull, .push, on: name, context)
        let (checkedOut, hasher) = try await checkOut(try loadSession(name, idText, context))
        var session = checkedOut
        do {
            let expectedLength = try checkContentRange(of: context.request, against: session)
            session.size += try await append(context.request, to: session, hasher: hasher, expectedLength: expectedLength)
            let (id, size) = (session.id, session.size)
            try await meta { [metadata] in try await metadata.setUploadSize(id, size: size) }
        } catch let error as RegistryError where error.status == .rangeNotSatisfiable {
            // Nothing was written: the running hash is still good.
            await uploads.checkIn(session.id, hasher: hasher)
            throw error
        } catch {
            await uploads.checkIn(session.id, hasher: nil)
            throw error
        }
        await uploads.checkIn(session.id, hasher: hasher)
        return HTTPResponse(status: .accepted, headers: sessionHeaders(session))
    }

    func finishUpload(_ name: RepositoryName, _ idText: String, _ context: RequestContext) async throws -> HTTPResponse {
        try await authorize(.pull, .push, on: name, context)
        let session = try await loadSession(name, idText, context)
        guard let digestText = context.request.query["digest"] else {
            throw RegistryError.digestInvalid("the digest query parameter is required to finish an upload")
        }
        let expected = try Digest.fromRequest(digestText)
        let (current, hasher) = try await checkOut(session)
        return try await completeUpload(current, hasher: hasher, expected: expected, context)
    }

    /// Cancelling needs `push`, not `delete` as in distribution: it removes nothing
    /// stored, and a pushing client's token rarely carries `delete`.
    func cancelUpload(_ name: RepositoryName, _ idText: String, _ context: RequestContext) async throws -> HTTPResponse {
        try await authorize(.push, on: name, context)
        let session = try await loadSession(name, idText, context)
        try await discard(session)
        return HTTPResponse(status: .noContent)
    }

    // MARK: - Steps

    /// Appends the request's body (if any), verifies the digest, moves the blob into
    /// place and only then records it: a crash at any step leaves no visible blob.
    /// The session must be checked out by the caller.
    ///
    /// A body that is the whole blob (nothing uploaded before it, hashed with the digest's
    /// algorithm) is written toward the blob's address instead of the session's object,
    /// unseen until placed: on S3 the bytes then never need a copy inside the store.
    private func completeUpload(_ session: UploadSession, hasher: ContentHasher, expected: Digest, _ context: RequestContext) async throws
        -> HTTPResponse
    {
        var session = session
        var written: BlobWrite?
        let size: Int64
        do {
            if context.request.hasBody {
                let expectedLength = try checkContentRange(of: context.request, against: session)
                if session.size == 0 && hasher.algorithm == expected.algorithm {
                    let (id, body) = (session.id, context.request.body)
                    let write = try await receive { try await blobs.writeBlob(expected, staging: id, from: body, hasher: hasher) }
                    written = write
                    session.size = try checkLength(write.size, declared: expectedLength)
                } else {
                    session.size += try await append(context.request, to: session, hasher: hasher, expectedLength: expectedLength)
                }
            }
            size = try await storage { try await blobs.verifyUpload(session.id, hasher: hasher, expected: expected) }
            try await pin(expected, size: size, for: session.id)
            do {
                if let written {
                    try await storage { try await written.place() }
                } else {
                    try await storage { try await blobs.placeUpload(session.id, as: expected, size: size) }
                }
            } catch {
                let id = session.id
                try? await meta { [metadata] in try await metadata.unpinBlob(for: id) }
                throw error
            }
        } catch let error as BlobStoreError {
            await written?.abandon()
            guard case .digestMismatch(_, let actual) = error else { throw error }
            try await discard(session)
            throw RegistryError.digestInvalid("uploaded content has digest \(actual), not \(expected)")
        } catch {
            await written?.abandon()
            await uploads.checkIn(session.id, hasher: nil)
            throw error
        }
        // The bytes are in place whatever happens next: the session is over either way.
        await uploads.forget(session.id)
        let (repository, id) = (session.repository, session.id)
        try await meta { [metadata] in try await metadata.linkBlob(expected, size: size, to: repository, completing: id) }
        return HTTPResponse(status: .created, headers: blobLocationHeaders(session.repository, expected))
    }

    /// Pins a blob against garbage collection before its bytes are placed; waits while
    /// a collection is deleting that very blob (it takes moments), then pins it afresh.
    private func pin(_ digest: Digest, size: Int64, for upload: UploadID) async throws {
        for _ in 0..<1500 {
            if try await meta({ [metadata] in try await metadata.pinBlob(digest, size: size, for: upload) }) { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw RegistryError(.unknown, status: .serviceUnavailable, "the blob is being garbage-collected; retry the upload")
            .with(header: "Retry-After", "5")
    }

    /// Streams the body into the session's temporary object.
    /// - Returns: the bytes appended.
    private func append(_ request: HTTPRequest, to session: UploadSession, hasher: ContentHasher, expectedLength: Int64?) async throws
        -> Int64
    {
        let (id, offset, body) = (session.id, session.size, request.body)
        let appended = try await receive { try await blobs.appendToUpload(id, from: body, hasher: hasher, startingAt: offset) }
        return try checkLength(appended, declared: expectedLength)
    }

    /// Runs a storage step that reads the request body; a body that broke off or came too
    /// slowly is the client's error.
    private func receive<Result>(_ step: () async throws -> Result) async throws -> Result {
        do {
            return try await storage(step)
        } catch RequestBodyError.tooSlow(let rate) {
            throw RegistryError.bodyTooSlow(rate)
        } catch is RequestBodyError {
            throw RegistryError(.blobUploadInvalid, status: .badRequest, "the request body ended early")
        }
    }

    /// - Returns: `received`, when it is the length the request declared (if any).
    private func checkLength(_ received: Int64, declared: Int64?) throws(RegistryError) -> Int64 {
        if let declared, received != declared {
            throw RegistryError(
                .blobUploadInvalid, status: .badRequest,
                "body length \(received) does not match the declared range of \(declared) bytes")
        }
        return received
    }

    /// Takes the session for this request and brings its hasher to the acknowledged size.
    ///
    /// - Returns: the session as it is now (re-read after taking it, so a request that
    ///   waited behind another sees the size that one acknowledged) and its hasher.
    private func checkOut(_ session: UploadSession) async throws -> (UploadSession, ContentHasher) {
        guard let checkedOut = await uploads.checkOut(session.id) else {
            throw RegistryError(.blobUploadInvalid, status: .badRequest, "another request is writing to this upload")
        }
        do {
            guard let current = try await meta({ try await metadata.upload(session.id) }) else { throw RegistryError.uploadUnknown() }
            if let hasher = checkedOut.hasher, hasher.algorithm == current.algorithm, hasher.count == current.size {
                return (current, hasher)
            }
            // No usable running hash (a restart, or a failed request): hash what is stored.
            if current.size == 0 { return (current, ContentHasher(algorithm: current.algorithm)) }
            do {
                let hasher = try await blobs.rehashUpload(current.id, algorithm: current.algorithm, length: current.size)
                return (current, hasher)
            } catch let error as StorageError {
                guard case .notFound = error else { throw storageFailure(error) }
                // The session's bytes are gone (a store that lost them, or a completion
                // whose answer was lost after the bytes moved): it cannot go on. Say so,
                // and end it, so the client starts the upload again.
                try? await meta { [metadata] in try await metadata.deleteUpload(current.id) }
                logger.warning("upload \(current.id.value) lost its data at \(current.size) bytes; its session is ended")
                throw RegistryError(.blobUploadUnknown, status: .notFound, "the upload's data is gone; start the upload again")
            }
        } catch {
            await uploads.checkIn(session.id, hasher: nil)
            throw error
        }
    }

    /// Checks `Content-Range` and `Content-Length` against the session.
    /// - Returns: the number of bytes the request declares, when it declares any.
    private func checkContentRange(of request: HTTPRequest, against session: UploadSession) throws(RegistryError) -> Int64? {
        guard let header = request.headers.first(name: "Content-Range") else { return request.contentLength }
        guard let range = ContentRange.parse(header) else {
            throw RegistryError(.rangeInvalid, status: .rangeNotSatisfiable, "invalid Content-Range", detail: String(header.prefix(100)))
                .with(header: "Range", rangeValue(session.size))
                .with(header: "Location", uploadLocation(session))
        }
        guard range.lowerBound == session.size else {
            // Out of order or overlapping: the client must resume from what we have.
            throw RegistryError(
                .rangeInvalid, status: .rangeNotSatisfiable, "chunk does not start at the end of the upload (\(session.size))"
            )
            .with(header: "Range", rangeValue(session.size))
            .with(header: "Location", uploadLocation(session))
            .with(header: "Docker-Upload-UUID", session.id.value)
        }
        let length = Int64(range.count)
        if let declared = request.contentLength, declared != length {
            throw RegistryError(
                .sizeInvalid, status: .badRequest, "Content-Length \(declared) does not match Content-Range \(header.prefix(100))")
        }
        return length
    }

    /// The session named by the URL, if it belongs to this repository and this caller;
    /// otherwise `BLOB_UPLOAD_UNKNOWN`, the same answer as for an id that never existed.
    private func loadSession(_ name: RepositoryName, _ idText: String, _ context: RequestContext) async throws -> UploadSession {
        guard let id = try? UploadID(parsing: idText),
            let session = try await meta({ try await metadata.upload(id) }),
            session.repository == name,
            session.principal == context.principal?.name
        else { throw RegistryError.uploadUnknown() }
        return session
    }

    private func discard(_ session: UploadSession) async throws {
        try await storage { try await blobs.discardUpload(session.id) }
        try await meta { try await self.metadata.deleteUpload(session.id) }
        await uploads.forget(session.id)
    }

    /// Mounts a blob from `fromText`, or without it from any repository the caller may
    /// read. Needs pull access to the source (zot CVE-2024-39897).
    /// - Returns: whether the blob is now visible in `target`; `false` means "start a
    ///   normal upload".
    private func mount(_ digest: Digest, from fromText: String?, to target: RepositoryName, _ context: RequestContext) async throws -> Bool
    {
        let candidates: [RepositoryName]
        if let fromText {
            guard let source = try? RepositoryName(parsing: fromText) else { return false }
            candidates = [source]
        } else {
            candidates = try await meta { try await metadata.repositoriesLinking(digest, limit: Self.mountCandidateLimit) }
        }
        for source in candidates where source != target {
            // With `from` the request (its token) must grant pull on the source; without
            // it, only repositories the caller could read at all are looked at.
            let readable =
                fromText != nil
                ? await policy.allows(context.principal, to: .pull, on: source) : await policy.mayRead(context.principal, source)
            guard readable else { continue }
            if try await meta({ [metadata] in try await metadata.mountBlob(digest, from: source, to: target) }) != nil { return true }
        }
        // Mounting onto itself: already there counts as mounted.
        guard candidates.contains(target) else { return false }
        return try await meta { try await metadata.blobSize(digest, in: target) } != nil
    }

    /// Runs a storage call, answering its failures as `storageFailure` says.
    func storage<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as StorageError {
            throw storageFailure(error)
        }
    }

    /// A full disk is 507; a backend that is down or throttling is 503 with Retry-After
    /// (clients retry); anything else is 500. The details go to the log only.
    func storageFailure(_ error: StorageError) -> RegistryError {
        switch error {
        case .noSpace:
            return .storageFull
        case .unavailable(let reason):
            logger.error("storage unavailable: \(reason)")
            return RegistryError(.unknown, status: .serviceUnavailable, "the registry's storage is unavailable; retry later")
                .with(header: "Retry-After", "5")
        default:
            logger.error("storage: \(error)")
            return RegistryError.internalError("storage failure")
        }
    }

    private func sessionHeaders(_ session: UploadSession) -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.add(name: "Location", value: uploadLocation(session))
        headers.add(name: "Range", value: rangeValue(session.size))
        headers.add(name: "Docker-Upload-UUID", value: session.id.value)
        return headers
    }

    private func blobLocationHeaders(_ name: RepositoryName, _ digest: Digest) -> HTTPHeaders {
        var headers = HTTPHeaders()
        headers.add(name: "Location", value: "/v2/\(name.value)/blobs/\(digest)")
        headers.add(name: "Docker-Content-Digest", value: digest.description)
        return headers
    }

    private func uploadLocation(_ session: UploadSession) -> String {
        "/v2/\(session.repository.value)/blobs/uploads/\(session.id.value)"
    }

    /// The `Range` of an upload: `0-<last byte>`; an empty upload reports `0-0`, as
    /// distribution does and Docker clients expect.
    private func rangeValue(_ size: Int64) -> String { "0-\(max(0, size - 1))" }
}

/// `Content-Range` of an upload chunk: `<start>-<end>` inclusive, as the distribution
/// spec writes it; `bytes <start>-<end>[/<total>]` and `bytes=` from other clients too.
enum ContentRange {
    static func parse(_ header: String) -> ClosedRange<Int64>? {
        var text = header.trimmingWhitespace()
        if text.lowercased().hasPrefix("bytes") {
            text = text.dropFirst(5)
            guard let separator = text.first, separator == " " || separator == "=" else { return nil }
            text = text.dropFirst().trimmingWhitespace()
        }
        if let slash = text.firstIndex(of: "/") { text = text[..<slash] }
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.count <= 18 && $0.allSatisfy(\.isASCIIDigit) }),
            let start = Int64(parts[0]), let end = Int64(parts[1]), end >= start
        else { return nil }
        return start...end
    }
}
