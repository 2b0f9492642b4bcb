/// A content descriptor (OCI image spec, descriptor.md): what a manifest says about
/// the blob or manifest it points to.
public struct Descriptor: Codable, Sendable, Equatable {
    public var mediaType: String
    public var digest: String
    public var size: Int64
    /// Where a foreign / non-distributable layer can be fetched; such a layer need not exist here.
    public var urls: [String]?
    public var annotations: [String: String]?
    public var artifactType: String?

    public init(
        mediaType: String, digest: String, size: Int64, urls: [String]? = nil, annotations: [String: String]? = nil,
        artifactType: String? = nil
    ) {
        self.mediaType = mediaType
        self.digest = digest
        self.size = size
        self.urls = urls
        self.annotations = annotations
        self.artifactType = artifactType
    }

    /// A layer that carries `urls` may live elsewhere; a push never needs its bytes.
    public var isForeign: Bool { !(urls ?? []).isEmpty }
}
