import Foundation
import OCI

/// Builders for the blobs and manifests tests push.
public enum Fixtures {
    /// Deterministic pseudo-random bytes.
    public static func bytes(_ count: Int, seed: UInt64 = 1) -> [UInt8] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<count).map { _ in
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return UInt8(truncatingIfNeeded: state)
        }
    }

    public static func digest(_ bytes: [UInt8], _ algorithm: DigestAlgorithm = .sha256) -> String {
        Digest.of(bytes, algorithm: algorithm).description
    }

    /// A descriptor as a JSON object.
    public static func descriptor(_ mediaType: String, _ bytes: [UInt8], extra: [String: Any] = [:]) -> [String: Any] {
        var object: [String: Any] = ["mediaType": mediaType, "digest": digest(bytes), "size": bytes.count]
        for (key, value) in extra { object[key] = value }
        return object
    }

    /// An image manifest over `config` and `layers` of the given type.
    public static func imageManifest(
        mediaType: String = MediaType.ociManifest, config: [UInt8], layers: [[UInt8]],
        extraLayers: [[String: Any]] = [], subject: [String: Any]? = nil, artifactType: String? = nil,
        configMediaType: String? = nil, annotations: [String: String]? = nil
    ) -> [UInt8] {
        let docker = mediaType == MediaType.dockerManifest
        var document: [String: Any] = [
            "schemaVersion": 2,
            "mediaType": mediaType,
            "config": descriptor(
                configMediaType ?? (docker ? "application/vnd.docker.container.image.v1+json" : "application/vnd.oci.image.config.v1+json"),
                config),
            "layers": layers.map {
                descriptor(docker ? "application/vnd.docker.image.rootfs.diff.tar.gzip" : "application/vnd.oci.image.layer.v1.tar+gzip", $0)
            } + extraLayers,
        ]
        if let subject { document["subject"] = subject }
        if let artifactType { document["artifactType"] = artifactType }
        if let annotations { document["annotations"] = annotations }
        return json(document)
    }

    /// An index (or Docker manifest list) over child manifests.
    public static func index(mediaType: String = MediaType.ociIndex, children: [(mediaType: String, bytes: [UInt8])]) -> [UInt8] {
        json([
            "schemaVersion": 2,
            "mediaType": mediaType,
            "manifests": children.map {
                descriptor($0.mediaType, $0.bytes, extra: ["platform": ["os": "linux", "architecture": "amd64"]])
            },
        ])
    }

    public static func json(_ object: Any) -> [UInt8] {
        Array(try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
    }
}
