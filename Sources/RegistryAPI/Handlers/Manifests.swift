import FoundationEssentials
import HTTPTransport
import Metadata
import NIOCore
import NIOHTTP1
import OCI

/// `/v2/<name>/manifests/<reference>` (spec: "Pulling manifests", "Pushing Manifests",
/// "Deleting Manifests").
extension Registry {
    func getManifest(_ name: RepositoryName, _ referenceText: String, _ context: RequestContext) async throws -> HTTPResponse {
        try await authorize(.pull, on: name, context)
        guard let reference = try? Self.parseReference(referenceText),
            let manifest = try await meta({ try await metadata.manifest(reference, in: name) })
        else {
            throw RegistryError.manifestUnknown(referenceText)
        }
        let accepted = AcceptHeader(context.request.headers)
        guard accepted.allows(manifest.mediaType) else {
            // Never converted: a client that cannot read the stored type gets told so.
            throw RegistryError(
                .manifestUnknown, status: .notFound,
                "manifest exists as \(manifest.mediaType), which the Accept header does not allow", detail: referenceText)
        }
        return Self.manifestResponse(manifest)
    }

    /// The answer to a manifest GET/HEAD, on both the full and the immediate path.
    static func manifestResponse(_ manifest: StoredManifest) -> HTTPResponse {
        var headers = HTTPHeaders()
        headers.add(name: "Docker-Content-Digest", value: manifest.digest.description)
        headers.add(name: "ETag", value: "\"\(manifest.digest)\"")
        return .json(.ok, manifest.content, contentType: manifest.mediaType, headers: headers)
    }

    func putManifest(_ name: RepositoryName, _ referenceText: String, _ context: RequestContext) async throws -> HTTPResponse {
        let reference = try Self.parseReference(referenceText)
        try await authorize(.pull, .push, on: name, context)
        let request = context.request

        var tags: [Tag] = []
        if case .tag(let tag) = reference { tags.append(tag) }
        let extraTags = request.query.all("tag")
        for text in extraTags {
            guard let tag = try? Tag(parsing: text) else {
                throw RegistryError(.tagInvalid, status: .badRequest, "invalid tag", detail: String(text.prefix(200)))
            }
            if !tags.contains(tag) { tags.append(tag) }
        }

        if let length = request.contentLength, length > Manifest.maximumSize {
            throw RegistryError(.sizeInvalid, status: .payloadTooLarge, "manifest larger than \(Manifest.maximumSize) bytes")
        }
        let bytes: [UInt8]
        do {
            var buffer = try await request.body.collect(upTo: Manifest.maximumSize)
            bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        } catch RequestBodyError.tooLarge {
            throw RegistryError(.sizeInvalid, status: .payloadTooLarge, "manifest larger than \(Manifest.maximumSize) bytes")
        }

        let digest: Digest
        switch reference {
        case .digest(let expected):
            digest = Digest.of(bytes, algorithm: expected.algorithm)
            guard digest == expected else {
                throw RegistryError.digestInvalid("manifest digest is \(digest), not \(expected)")
            }
        case .tag:
            digest = Digest.of(bytes)
        }

        let manifest: Manifest
        do {
            manifest = try Manifest(parsing: bytes, contentType: request.headers.first(name: "Content-Type"))
        } catch {
            throw RegistryError(.manifestInvalid, status: .badRequest, "manifest invalid", detail: error.message)
        }

        let newManifest = NewManifest(
            digest: digest, mediaType: manifest.mediaType, content: bytes,
            artifactType: manifest.effectiveArtifactType,
            annotationsJSON: manifest.annotations.map { String(decoding: JSONText.encode($0), as: UTF8.self) },
            requiredBlobs: try manifest.requiredBlobs.map { try Digest(parsing: $0.digest) },
            foreignBlobs: try manifest.layers.filter(\.isForeign).map { try Digest(parsing: $0.digest) },
            childManifests: try manifest.manifests.map { try Digest(parsing: $0.digest) },
            allowMissingChildren: configuration.allowSparseIndexes,
            subject: try manifest.subject.map { try Digest(parsing: $0.digest) })

        let actor = context.principal?.name
        do {
            try await metadata.putManifest(newManifest, in: name, tags: tags, actor: actor)
        } catch .blobUnknown(let blob) {
            throw RegistryError(.manifestBlobUnknown, status: .badRequest, "blob unknown to registry", detail: blob.description)
        } catch .manifestUnknown(let child) {
            // The spec answers a missing child of an index like a missing blob.
            throw RegistryError(
                .manifestBlobUnknown, status: .badRequest, "manifest references a manifest that is not in the repository",
                detail: child.description)
        } catch .storageFull {
            logger.error("metadata: the database's disk is full")
            throw RegistryError.storageFull
        } catch .metadata(let error) {
            logger.error("metadata: \(error)")
            throw RegistryError.internalError("metadata store failure")
        }

        var headers = HTTPHeaders()
        headers.add(name: "Location", value: "/v2/\(name.value)/manifests/\(digest)")
        headers.add(name: "Docker-Content-Digest", value: digest.description)
        if let subject = manifest.subject { headers.add(name: "OCI-Subject", value: subject.digest) }
        if !extraTags.isEmpty {
            for tag in tags { headers.add(name: "OCI-Tag", value: tag.value) }
        }
        if configuration.allowSparseIndexes && !manifest.manifests.isEmpty {
            headers.add(name: "Warning", value: "299 - \"sparse indexes are allowed: child manifests were not required\"")
        }
        return HTTPResponse(status: .created, headers: headers)
    }

    func deleteManifest(_ name: RepositoryName, _ referenceText: String, _ context: RequestContext) async throws -> HTTPResponse {
        try await authorize(.delete, on: name, context)
        guard let reference = try? Self.parseReference(referenceText) else { throw RegistryError.manifestUnknown(referenceText) }
        let actor = context.principal?.name
        let existed =
            switch reference {
            case .digest(let digest): try await meta { try await self.metadata.deleteManifest(digest, in: name, actor: actor) }
            case .tag(let tag): try await meta { try await self.metadata.deleteTag(tag, in: name, actor: actor) }
            }
        guard existed else { throw RegistryError.manifestUnknown(referenceText) }
        return HTTPResponse(status: .accepted)
    }

    /// A reference as a tag or a digest. Only a PUT answers a malformed one with 400
    /// (`TAG_INVALID`, `DIGEST_INVALID`, `UNSUPPORTED`): GET, HEAD and DELETE answer
    /// 404 `MANIFEST_UNKNOWN`, since no manifest can be stored under it (the OCI
    /// conformance suite asks that of GET and HEAD; clients read 404 as "absent").
    static func parseReference(_ text: String) throws(RegistryError) -> ManifestReference {
        if text.contains(":") {
            return .digest(try Digest.fromRequest(text))
        }
        guard let tag = try? Tag(parsing: text) else {
            throw RegistryError(.tagInvalid, status: .badRequest, "invalid tag", detail: String(text.prefix(200)))
        }
        return .tag(tag)
    }
}

/// The media types a client accepts, gathered from every `Accept` header line.
struct AcceptHeader {
    private let lines: [String]

    init(_ headers: HTTPHeaders) {
        lines = headers["Accept"]
    }

    /// No Accept header, a wildcard, or the exact type (parameters and case ignored).
    /// Checked on the header's bytes: this runs on every manifest GET.
    func allows(_ mediaType: String) -> Bool {
        guard !lines.isEmpty else { return true }
        let wanted = Array(mediaType.utf8)
        for line in lines {
            for item in line.utf8.split(separator: UInt8(ascii: ",")) {
                var essence = item.prefix { $0 != UInt8(ascii: ";") }[...]
                while let first = essence.first, first == 0x20 || first == 0x09 { essence = essence.dropFirst() }
                while let last = essence.last, last == 0x20 || last == 0x09 { essence = essence.dropLast() }
                if ASCIIBytes.equalsIgnoringCase(essence, "*/*") || ASCIIBytes.equalsIgnoringCase(essence, "application/*") { return true }
                if ASCIIBytes.equalIgnoringCase(essence, wanted) { return true }
            }
        }
        return false
    }
}
