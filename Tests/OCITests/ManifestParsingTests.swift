import Foundation
import OCI
import XCTest

/// Parsing and checking pushed manifests (image spec; CVE-2021-41190).
final class ManifestParsingTests: XCTestCase {
    let digest = "sha256:" + String(repeating: "1", count: 64)

    func json(_ object: [String: Any]) -> [UInt8] { Array(try! JSONSerialization.data(withJSONObject: object)) }

    func descriptor(_ mediaType: String, urls: [String]? = nil) -> [String: Any] {
        var object: [String: Any] = ["mediaType": mediaType, "digest": digest, "size": 10]
        if let urls { object["urls"] = urls }
        return object
    }

    func testImageManifestRequiresConfigAndNonForeignLayers() throws {
        let manifest = try Manifest(
            parsing: json([
                "schemaVersion": 2, "mediaType": MediaType.dockerManifest,
                "config": descriptor("application/vnd.docker.container.image.v1+json"),
                "layers": [descriptor("a"), descriptor("foreign", urls: ["https://example.invalid/x"])],
            ]), contentType: MediaType.dockerManifest)
        XCTAssertEqual(manifest.kind, .image)
        XCTAssertEqual(manifest.requiredBlobs.count, 2, "config and the one distributable layer")
        XCTAssertEqual(manifest.effectiveArtifactType, "application/vnd.docker.container.image.v1+json")
    }

    func testMediaTypeIsInferredOrTakenFromContentType() throws {
        let index = try Manifest(parsing: json(["schemaVersion": 2, "manifests": [descriptor(MediaType.ociManifest)]]), contentType: nil)
        XCTAssertEqual(index.mediaType, MediaType.ociIndex)
        let image = try Manifest(
            parsing: json(["schemaVersion": 2, "config": descriptor("c"), "layers": []]),
            contentType: MediaType.ociManifest + "; charset=utf-8")
        XCTAssertEqual(image.mediaType, MediaType.ociManifest)
    }

    func testTypeConfusionIsRejected() {
        let both = json(["schemaVersion": 2, "config": descriptor("c"), "layers": [], "manifests": []])
        XCTAssertThrowsError(try Manifest(parsing: both, contentType: MediaType.ociIndex))
        let declaredImage = json(["schemaVersion": 2, "mediaType": MediaType.ociManifest, "config": descriptor("c"), "layers": []])
        XCTAssertThrowsError(try Manifest(parsing: declaredImage, contentType: MediaType.ociIndex))
        let indexWithoutManifests = json(["schemaVersion": 2, "mediaType": MediaType.ociIndex])
        XCTAssertThrowsError(try Manifest(parsing: indexWithoutManifests, contentType: nil))
    }

    func testArtifactTypeWins() throws {
        let manifest = try Manifest(
            parsing: json([
                "schemaVersion": 2, "mediaType": MediaType.ociManifest, "artifactType": "application/vnd.example",
                "config": descriptor(MediaType.ociEmpty), "layers": [], "subject": descriptor(MediaType.ociManifest),
            ]), contentType: nil)
        XCTAssertEqual(manifest.effectiveArtifactType, "application/vnd.example")
        XCTAssertEqual(manifest.subject?.digest, digest)
    }
}
