import Auth
import Foundation
import Logging
import Maintenance
import Metadata
import NIOCore
import OCI
import RegistryAPI
import Storage
import XCTest

/// The doc comments' examples are `Examples`' code: every ```swift block in `Sources/` is
/// an example block line for line, and every example block is shown somewhere. Those
/// that need no network or service manager also run here.
final class DocumentationExampleTests: XCTestCase {
    private static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized

    /// `// example: NAME` … `// end` blocks, lines trimmed.
    private func exampleBlocks() throws -> [String: [String]] {
        let text = try String(contentsOf: Self.root.appendingPathComponent("Tests/DocumentationExamples/Examples.swift"), encoding: .utf8)
        var blocks: [String: [String]] = [:]
        var current: (name: String, lines: [String])?
        for line in text.components(separatedBy: "\n").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            if line.hasPrefix("// example: ") {
                current = (String(line.dropFirst("// example: ".count)), [])
            } else if line == "// end", let block = current {
                blocks[block.name] = block.lines
                current = nil
            } else if current != nil {
                current!.lines.append(line)
            }
        }
        return blocks
    }

    /// Every ```swift block of a doc comment in `Sources/`, with where it is.
    private func docSnippets() throws -> [(place: String, lines: [String])] {
        var snippets: [(String, [String])] = []
        let sources = Self.root.appendingPathComponent("Sources")
        let files = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)!
        for case let file as URL in files where file.pathExtension == "swift" {
            let lines = try String(contentsOf: file, encoding: .utf8).components(separatedBy: "\n")
            var index = 0
            while index < lines.count {
                defer { index += 1 }
                guard lines[index].trimmingCharacters(in: .whitespaces) == "/// ```swift" else { continue }
                let start = index
                var snippet: [String] = []
                index += 1
                while index < lines.count, lines[index].trimmingCharacters(in: .whitespaces) != "/// ```" {
                    let line = lines[index].trimmingCharacters(in: .whitespaces)
                    snippet.append(String(line.dropFirst(3)).trimmingCharacters(in: .whitespaces))
                    index += 1
                }
                snippets.append(("\(file.path.dropFirst(Self.root.path.count + 1)):\(start + 1)", snippet))
            }
        }
        return snippets
    }

    func testEveryDocCommentExampleIsCompiledCode() throws {
        let blocks = try exampleBlocks()
        let snippets = try docSnippets()
        XCTAssertGreaterThan(snippets.count, 20, "the doc comments' examples were found")
        var shown: Set<String> = []
        for snippet in snippets {
            let match = blocks.first { $0.value == snippet.lines }
            XCTAssertNotNil(
                match,
                "\(snippet.place): this example is not in Tests/DocumentationExamples/Examples.swift:\n\(snippet.lines.joined(separator: "\n"))"
            )
            if let match { shown.insert(match.key) }
        }
        XCTAssertEqual(Set(blocks.keys).subtracting(shown), [], "examples that no doc comment shows")
    }

    // The examples that run here: each checks what its doc comment says it gives.

    func testLocalExamplesDoWhatTheySay() async throws {
        XCTAssertTrue(Examples.passwordHasher())
        XCTAssertTrue(try Examples.digest())
        XCTAssertTrue(try Examples.repositoryName())
        XCTAssertEqual(
            Examples.contentHasher(chunk: ByteBuffer(string: "")).description,
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        let scope = Scope(repository: try RepositoryName(parsing: "alice/app"), actions: [.pull])
        let principal = try Examples.tokenService(key: TokenSigningKey(bytes: Array(repeating: 7, count: 32)), scope: scope)
        XCTAssertEqual(principal.name, "alice")
        XCTAssertEqual(
            try Examples.s3XML(body: Array("<ListBucketResult><Contents><Key>a</Key></Contents></ListBucketResult>".utf8)), ["a"])
        XCTAssertTrue(
            Examples.signatureV4(credentials: S3Credentials(accessKeyID: "k", secretAccessKey: "s")).contains { $0.0 == "authorization" })
        XCTAssertEqual(try Examples.s3Configuration().bucket, "registry")
        XCTAssertThrowsError(try Examples.registryError(digest: Fixture.digest))
    }

    func testStorageAndMaintenanceExamplesRunOnATemporaryDirectory() async throws {
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("registryd-doc-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let metadata = try Examples.metadataStore(dataDir: dataDir)
        let blobs = BlobStore(driver: try FilesystemDriver(root: dataDir + "/storage"))

        let bytes = ByteBuffer(string: "hello")
        // The storage examples write to directories of their own: their files are no
        // blobs the metadata knows (the verifier below would call them orphans).
        let size = try await Examples.blobStore(
            dataDir: dataDir + "/blob-example", id: UploadID.generate(), body: [bytes], digest: Examples.contentHasher(chunk: bytes))
        XCTAssertEqual(size, 5)
        try await Examples.storageDriver(
            root: dataDir + "/driver-example", path: StoragePath("a/part"), finalPath: StoragePath("a/whole"), buffer: bytes)
        let placed = try await FilesystemDriver(root: dataDir + "/driver-example").size(of: StoragePath("a/whole"))
        XCTAssertEqual(placed, 5)

        let settled = try await Examples.interruptedUploads(metadata: metadata, blobs: blobs)
        XCTAssertEqual(settled, [])
        let finished = try await Examples.interruptedDeletions(metadata: metadata, blobs: blobs)
        XCTAssertEqual(finished, [])
        let clean = try await Examples.storageVerifier(metadata: metadata, blobs: blobs)
        XCTAssertTrue(clean)
        let purged = try await Examples.uploadPurger(metadata: metadata, blobs: blobs)
        XCTAssertEqual(purged.sessions.count, 0)
        _ = try await Examples.garbageCollector(metadata: metadata, blobs: blobs)
        let pruned = try await Examples.historyPruner(store: metadata)
        XCTAssertEqual(pruned.tagMoves, 0)
        let answer = await Examples.controlDispatcher(metadata: metadata, blobs: blobs)
        let reply = try XCTUnwrap(answer)
        XCTAssertTrue(reply.contains(#""result""#), reply)

        var logger = Logger(label: "doc")
        logger.logLevel = .critical
        try FileManager.default.createDirectory(atPath: dataDir + "/second", withIntermediateDirectories: true)
        let (registry, immediate) = try Examples.registry(dataDir: dataDir + "/second", logger: logger)
        XCTAssertNil(
            immediate.respondImmediately(to: .init(version: .http1_1, method: .GET, uri: "/v2/a/manifests/v1"), remoteAddress: "127.0.0.1"))
        _ = registry
        XCTAssertEqual(try Examples.manifest(body: Fixture.manifest), [Fixture.digest])
    }
}

private enum Fixture {
    static let digest = try! Digest(parsing: "sha256:" + String(repeating: "b", count: 64))
    static let manifest = Array(
        """
        {"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",\
        "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"\(digest)","size":2},"layers":[]}
        """.utf8)
}
