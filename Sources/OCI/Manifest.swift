import FoundationEssentials

/// A pushed manifest, parsed and checked against its declared type.
///
/// ```swift
/// let manifest = try Manifest(parsing: body, contentType: "application/vnd.oci.image.manifest.v1+json")
/// let blobs = try manifest.requiredBlobs.map { try Digest(parsing: $0.digest) }
/// ```
///
/// The bytes stay the source of truth: registryd stores and serves exactly what was
/// pushed; this type only answers what the document references.
public struct Manifest: Sendable {
    public enum Kind: Sendable { case image, index }

    /// Manifests larger than this are rejected with 413 before they are parsed
    /// (CVE-2017-11468: distribution read manifests of any size into memory).
    public static let maximumSize = 4 * 1024 * 1024

    public let mediaType: String
    public let kind: Kind
    public let config: Descriptor?
    public let layers: [Descriptor]
    /// Child manifests of an index.
    public let manifests: [Descriptor]
    public let subject: Descriptor?
    public let artifactType: String?
    public let annotations: [String: String]?

    public init(parsing bytes: [UInt8], contentType: String?) throws(ManifestError) {
        let document: Document
        do {
            document = try JSONDecoder().decode(Document.self, from: Data(bytes))
        } catch {
            throw .invalid("manifest is not valid JSON of the expected shape")
        }
        let declared = document.mediaType
        let sent = contentType.map(MediaType.essence(of:)).flatMap { Self.isGenericContentType($0) ? nil : $0 }

        if let declared, let sent, declared != sent {
            // CVE-2021-41190: one client must not read as an index what another reads as
            // an image; the header and the document have to agree.
            throw .invalid("Content-Type \(sent) does not match the manifest's mediaType \(declared)")
        }
        if document.manifests != nil && (document.layers != nil || document.config != nil) {
            throw .invalid("a manifest may not hold both manifests and layers/config")
        }
        let inferred: String? = document.manifests != nil ? MediaType.ociIndex : (document.config != nil ? MediaType.ociManifest : nil)
        guard let mediaType = declared ?? sent ?? inferred else {
            throw .invalid("cannot tell the manifest's media type: set mediaType or Content-Type")
        }
        if mediaType == MediaType.dockerSchema1 || mediaType == MediaType.dockerSchema1Signed {
            throw .unsupported("Docker schema 1 manifests are not supported; push schema 2 or OCI")
        }
        guard MediaType.manifestTypes.contains(mediaType) else {
            throw .unsupported("unsupported manifest media type \(mediaType)")
        }
        guard document.schemaVersion == 2 else { throw .invalid("schemaVersion must be 2") }

        let kind: Kind = (mediaType == MediaType.ociIndex || mediaType == MediaType.dockerManifestList) ? .index : .image
        switch kind {
        case .image:
            guard document.manifests == nil else { throw .invalid("an image manifest may not hold manifests") }
            guard let config = document.config else { throw .invalid("an image manifest needs a config") }
            try Self.check([config])
            try Self.check(document.layers ?? [])
        case .index:
            guard let manifests = document.manifests else { throw .invalid("an index needs manifests") }
            try Self.check(manifests)
        }
        if let subject = document.subject { try Self.check([subject]) }

        self.mediaType = mediaType
        self.kind = kind
        self.config = document.config
        self.layers = document.layers ?? []
        self.manifests = document.manifests ?? []
        self.subject = document.subject
        self.artifactType = document.artifactType
        self.annotations = document.annotations
    }

    /// Blobs that must exist in the repository: the config and every non-foreign layer.
    public var requiredBlobs: [Descriptor] {
        (config.map { [$0] } ?? []) + layers.filter { !$0.isForeign }
    }

    /// The type the referrers API reports: `artifactType`, else the config's media type
    /// (image spec, "Guidelines for artifact usage").
    public var effectiveArtifactType: String? {
        artifactType ?? (kind == .image ? config?.mediaType : nil)
    }

    /// Clients often send these without meaning a manifest type; the document decides.
    private static func isGenericContentType(_ essence: String) -> Bool {
        essence.isEmpty || essence == "application/json" || essence == "application/octet-stream"
    }

    private static func check(_ descriptors: [Descriptor]) throws(ManifestError) {
        for descriptor in descriptors {
            do {
                _ = try Digest(parsing: descriptor.digest)
            } catch {
                throw .invalid("descriptor digest \(descriptor.digest.prefix(80)) is not a valid digest")
            }
            guard descriptor.size >= 0 else { throw .invalid("descriptor size may not be negative") }
        }
    }

    private struct Document: Decodable {
        var schemaVersion: Int?
        var mediaType: String?
        var artifactType: String?
        var config: Descriptor?
        var layers: [Descriptor]?
        var manifests: [Descriptor]?
        var subject: Descriptor?
        var annotations: [String: String]?
    }
}

public enum ManifestError: Error, Equatable, Sendable {
    /// Not a well-formed manifest: `MANIFEST_INVALID`.
    case invalid(String)
    /// A manifest type registryd does not serve: `MANIFEST_INVALID` with that reason.
    case unsupported(String)

    public var message: String {
        switch self {
        case .invalid(let message), .unsupported(let message): message
        }
    }
}
