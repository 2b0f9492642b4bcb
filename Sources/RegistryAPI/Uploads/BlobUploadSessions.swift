import OCI

/// The in-memory side of upload sessions: the running hash of each session and which
/// sessions a request is writing to right now. The durable side (owner, repository,
/// acknowledged size) lives in the metadata store.
///
/// One request at a time may hold a session; a second concurrent PATCH to the same
/// upload is refused instead of interleaving bytes.
actor BlobUploadSessions {
    private var hashers: [UploadID: ContentHasher] = [:]
    private var busy: Set<UploadID> = []

    /// Takes a session for one request.
    /// - Returns: `nil` when another request holds it; otherwise the cached hasher
    ///   (`hasher` is `nil` when none is cached, e.g. after a restart).
    func checkOut(_ id: UploadID) -> CheckedOutSession? {
        guard !busy.contains(id) else { return nil }
        busy.insert(id)
        return CheckedOutSession(hasher: hashers.removeValue(forKey: id))
    }

    /// Returns a session; `hasher` is kept for the next request when it matches the
    /// acknowledged size, and dropped (`nil`) when its state is unknown.
    func checkIn(_ id: UploadID, hasher: ContentHasher?) {
        busy.remove(id)
        if let hasher { hashers[id] = hasher }
    }

    /// Forgets a finished or cancelled session.
    func forget(_ id: UploadID) {
        busy.remove(id)
        hashers.removeValue(forKey: id)
    }

    struct CheckedOutSession: Sendable {
        let hasher: ContentHasher?
    }
}
