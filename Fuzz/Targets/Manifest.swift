import OCI

extension FuzzTarget {
    /// Manifest and index parsing, with every Content-Type a client may send: never a
    /// document that is both an image and an index (CVE-2021-41190), never a reference
    /// that is not a digest.
    static let manifest = FuzzTarget(name: "manifest") { bytes in
        let contentTypes: [String?] = [
            nil, MediaType.ociManifest, MediaType.ociIndex, MediaType.dockerManifest, MediaType.dockerManifestList, "application/json",
        ]
        for contentType in contentTypes {
            guard let manifest = try? Manifest(parsing: bytes, contentType: contentType) else { continue }
            check(manifest.manifests.isEmpty || (manifest.layers.isEmpty && manifest.config == nil), "both an index and an image")
            for descriptor in manifest.requiredBlobs + manifest.manifests + (manifest.subject.map { [$0] } ?? []) {
                check((try? Digest(parsing: descriptor.digest)) != nil, "reference \(descriptor.digest) is not a digest")
            }
            if let contentType, contentType != "application/json" {
                check(manifest.mediaType == contentType, "Content-Type \(contentType) but read as \(manifest.mediaType)")
            }
        }
    }
}
