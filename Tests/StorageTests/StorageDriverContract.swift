import NIOCore
import Storage
import XCTest

/// The contract every `StorageDriver` keeps. Each driver's test class inherits these
/// tests and supplies `makeDriver()`; the S3 driver will join the same way.
class StorageDriverContract: XCTestCase {
    /// Overridden by each driver's test class.
    func makeDriver() throws -> any StorageDriver { throw XCTSkip("abstract contract") }

    private func path(_ text: String) throws -> StoragePath { try StoragePath(text) }

    private func write(_ driver: any StorageDriver, _ path: StoragePath, _ chunks: [[UInt8]], truncatingTo: Int64? = 0) async throws {
        let appender = try await driver.appender(for: path, truncatingTo: truncatingTo)
        for chunk in chunks { try await appender.append(ByteBuffer(bytes: chunk)) }
        try await appender.sync()
        try await appender.close()
    }

    private func read(_ driver: any StorageDriver, _ path: StoragePath, _ range: Range<Int64>? = nil) async throws -> [UInt8] {
        Array(try await driver.read(path, range: range).collect(upTo: 1 << 26).readableBytesView)
    }

    func testMissingObjectHasNoSizeAndCannotBeRead() async throws {
        let driver = try makeDriver()
        let missing = try path("nothing/here")
        let size = try await driver.size(of: missing)
        XCTAssertNil(size)
        do {
            _ = try await read(driver, missing)
            XCTFail("reading a missing object must throw")
        } catch StorageError.notFound {}
    }

    func testAppendedChunksReadBackWholeAndByRange() async throws {
        let driver = try makeDriver()
        let object = try path("a/b/data")
        let bytes = (0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try await write(driver, object, [Array(bytes[0..<1000]), Array(bytes[1000..<2_500_000]), Array(bytes[2_500_000...])])
        let size = try await driver.size(of: object)
        XCTAssertEqual(size, 3_000_000)
        let whole = try await read(driver, object)
        XCTAssertEqual(whole, bytes)
        let middle = try await read(driver, object, 1_048_000..<2_100_000)
        XCTAssertEqual(middle, Array(bytes[1_048_000..<2_100_000]))
        let empty = try await read(driver, object, 5..<5)
        XCTAssertEqual(empty, [])
    }

    func testRangeBeyondTheEndIsRejected() async throws {
        let driver = try makeDriver()
        let object = try path("r/data")
        try await write(driver, object, [[1, 2, 3]])
        do {
            _ = try await read(driver, object, 2..<10)
            XCTFail("a range past the end must throw")
        } catch StorageError.invalidRange {}
    }

    func testReopeningAppendsAndTruncationDropsUnacknowledgedBytes() async throws {
        let driver = try makeDriver()
        let object = try path("u/data")
        try await write(driver, object, [[1, 2, 3]])
        try await write(driver, object, [[4, 5]], truncatingTo: nil)
        let appended = try await read(driver, object)
        XCTAssertEqual(appended, [1, 2, 3, 4, 5])
        try await write(driver, object, [[9]], truncatingTo: 2)
        let truncated = try await read(driver, object)
        XCTAssertEqual(truncated, [1, 2, 9])
    }

    func testMoveReplacesDestinationAndRemovesSource() async throws {
        let driver = try makeDriver()
        let source = try path("uploads/x/data")
        let destination = try path("blobs/sha256/ab/abc/data")
        try await write(driver, destination, [[0]])
        try await write(driver, source, [[7, 7, 7]])
        try await driver.move(from: source, to: destination)
        let moved = try await read(driver, destination)
        XCTAssertEqual(moved, [7, 7, 7])
        let sourceSize = try await driver.size(of: source)
        XCTAssertNil(sourceSize)
        do {
            try await driver.move(from: source, to: destination)
            XCTFail("moving a missing object must throw")
        } catch StorageError.notFound {}
    }

    func testPlacingWriterShowsNothingBeforeCommitAndLeavesNothingOnAbort() async throws {
        let driver = try makeDriver()
        let destination = try path("blobs/sha256/cd/cde/data")
        try await write(driver, destination, [[0]])
        let writer = try await driver.placingWriter(to: destination, staging: try path("uploads/p/data"))
        try await writer.append(ByteBuffer(bytes: [1, 2]))
        try await writer.append(ByteBuffer(bytes: [3]))
        let before = try await read(driver, destination)
        XCTAssertEqual(before, [0], "readers see the old object until the commit")
        try await writer.commit()
        let after = try await read(driver, destination)
        XCTAssertEqual(after, [1, 2, 3])

        let abandonedPath = try path("blobs/sha256/ef/efa/data")
        let abandoned = try await driver.placingWriter(to: abandonedPath, staging: try path("uploads/q/data"))
        try await abandoned.append(ByteBuffer(bytes: [4]))
        try await abandoned.abort()
        let abandonedSize = try await driver.size(of: abandonedPath)
        XCTAssertNil(abandonedSize, "an aborted write places nothing")
        let staged = try await driver.size(of: try path("uploads/q/data"))
        XCTAssertNil(staged, "an aborted write leaves nothing staged")

        let emptyPath = try path("blobs/sha256/00/000/data")
        let empty = try await driver.placingWriter(to: emptyPath, staging: try path("uploads/e/data"))
        try await empty.commit()
        let emptySize = try await driver.size(of: emptyPath)
        XCTAssertEqual(emptySize, 0, "an empty object is placed as one")
    }

    func testWholeWritesReplaceTheDestinationAndLeaveNothingStaged() async throws {
        let driver = try makeDriver()
        let destination = try path("blobs/sha256/ab/abc/data")
        let staging = try path("uploads/w/data")
        try await driver.writeWhole(ByteBuffer(bytes: [1, 2, 3]), to: destination, staging: staging)
        let first = try await read(driver, destination)
        XCTAssertEqual(first, [1, 2, 3])
        try await driver.writeWhole(ByteBuffer(bytes: [9]), to: destination, staging: staging)
        let replaced = try await read(driver, destination)
        XCTAssertEqual(replaced, [9], "a whole write replaces what was there")

        let emptyPath = try path("blobs/sha256/00/001/data")
        try await driver.writeWhole(ByteBuffer(), to: emptyPath, staging: try path("uploads/e/data"))
        let emptySize = try await driver.size(of: emptyPath)
        XCTAssertEqual(emptySize, 0, "an empty object is placed as one")
        let staged = try await driver.list(under: try path("uploads"))
        XCTAssertEqual(staged, [], "nothing is left staged")
    }

    func testDeleteRemovesObjectsAndPrefixesAndIgnoresMissing() async throws {
        let driver = try makeDriver()
        try await write(driver, try path("d/one/data"), [[1]])
        try await write(driver, try path("d/two/data"), [[2]])
        try await write(driver, try path("keep/data"), [[3]])
        try await driver.delete(try path("d/one/data"))
        let listed = try await driver.list(under: try path("d")).map(\.description)
        XCTAssertEqual(listed, ["d/two/data"])
        try await driver.delete(try path("d"))
        let afterPrefix = try await driver.list(under: try path("d"))
        XCTAssertEqual(afterPrefix, [])
        try await driver.delete(try path("never/existed"))
        let kept = try await driver.size(of: try path("keep/data"))
        XCTAssertEqual(kept, 1)
    }

    func testListFindsEveryObjectUnderAPrefix() async throws {
        let driver = try makeDriver()
        for name in ["l/a/data", "l/b/c/data", "other/data"] { try await write(driver, try path(name), [[1]]) }
        let listed = try await driver.list(under: try path("l")).map(\.description).sorted()
        XCTAssertEqual(listed, ["l/a/data", "l/b/c/data"])
    }

    func testPathsCannotEscapeTheRoot() {
        for bad in ["../x", "a/../../b", "/abs", "a//b", "a/./b", "", "a/b c", "a\\b"] {
            XCTAssertThrowsError(try StoragePath(bad), bad)
        }
    }
}

final class FilesystemDriverTests: StorageDriverContract {
    var root: String!

    override func setUp() {
        root = NSTemporaryDirectory() + "/registryd-fs-\(UUID().uuidString.prefix(8))"
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: root)
    }

    override func makeDriver() throws -> any StorageDriver { try FilesystemDriver(root: root) }

    func testANewObjectWrittenWholeIsLinkedIntoPlaceWithoutStaging() async throws {
        let driver = try FilesystemDriver(root: root)
        try await driver.writeWhole(
            ByteBuffer(bytes: [1, 2]), to: try StoragePath("blobs/n/data"), staging: try StoragePath("uploads/n/data"))
        XCTAssertEqual(FileManager.default.contents(atPath: root + "/blobs/n/data"), Data([1, 2]))
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/uploads"), "made without a name and linked: nothing was staged")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root + "/blobs/n"), ["data"], "nothing beside it either")
        let appender = try await driver.appender(for: try StoragePath("blobs/s/data"), truncatingTo: 0)
        try await appender.close()
        func mode(_ path: String) throws -> Int? {
            try FileManager.default.attributesOfItem(atPath: root + path)[.posixPermissions] as? Int
        }
        XCTAssertEqual(try mode("/blobs/n/data"), try mode("/blobs/s/data"), "the permissions of a file made with a name")
    }

    func testAWholeWriteRemovesTheDirectoryItMadeAndOnFailureLeavesNothing() async throws {
        let driver = try FilesystemDriver(root: root)
        // An existing destination cannot be linked over: this one is staged and renamed.
        let staging = try StoragePath("uploads/w1/data")
        try await driver.writeWhole(
            ByteBuffer(bytes: [0]), to: try StoragePath("blobs/a/data"), staging: try StoragePath("uploads/w0/data"))
        try FileManager.default.createDirectory(atPath: root + "/uploads", withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.createFile(atPath: root + "/uploads/other", contents: Data()))
        try await driver.writeWhole(ByteBuffer(bytes: [1]), to: try StoragePath("blobs/a/data"), staging: staging)
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/uploads/w1"), "the staging directory goes again")
        XCTAssertTrue(FileManager.default.fileExists(atPath: root + "/uploads/other"), "its parent stays for other uploads")
        XCTAssertEqual(FileManager.default.contents(atPath: root + "/blobs/a/data"), Data([1]))

        // A file where the destination's directory must go: the rename cannot happen.
        XCTAssertTrue(FileManager.default.createFile(atPath: root + "/blocked", contents: Data([7])))
        do {
            try await driver.writeWhole(
                ByteBuffer(bytes: [2]), to: try StoragePath("blocked/data"), staging: try StoragePath("uploads/w2/data"))
            XCTFail("a whole write that cannot be placed must throw")
        } catch is StorageError {}
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/uploads/w2"), "a failed write leaves nothing staged")
        XCTAssertEqual(FileManager.default.contents(atPath: root + "/blocked"), Data([7]))
    }

    func testMissingDirectoriesAreMadeAtEveryDepthAndExistingOnesKept() async throws {
        // The root and the object's directories are missing several levels deep; then a
        // sibling needs only its last directory; a file in the way is refused.
        let driver = try FilesystemDriver(root: root + "/a/b/c")
        try await driver.writeWhole(ByteBuffer(bytes: [1]), to: try StoragePath("p/q/r/data"), staging: try StoragePath("s/t/data"))
        try await driver.writeWhole(ByteBuffer(bytes: [2]), to: try StoragePath("p/q/other/data"), staging: try StoragePath("s/u/data"))
        XCTAssertEqual(FileManager.default.contents(atPath: root + "/a/b/c/p/q/r/data"), Data([1]))
        XCTAssertEqual(FileManager.default.contents(atPath: root + "/a/b/c/p/q/other/data"), Data([2]))
        XCTAssertTrue(FileManager.default.createFile(atPath: root + "/a/b/c/file", contents: Data([3])))
        do {
            let appender = try await driver.appender(for: try StoragePath("file/below/data"), truncatingTo: 0)
            try await appender.close()
            XCTFail("a directory cannot be made below a file")
        } catch is StorageError {}
    }

    func testObjectsAreFilesUnderTheRoot() async throws {
        let driver = try FilesystemDriver(root: root)
        let appender = try await driver.appender(for: StoragePath("x/data"), truncatingTo: 0)
        try await appender.append(ByteBuffer(bytes: [1, 2]))
        try await appender.close()
        XCTAssertEqual(driver.localFile(for: try StoragePath("x/data")), root + "/x/data")
        XCTAssertEqual(FileManager.default.contents(atPath: root + "/x/data"), Data([1, 2]))
    }
}

final class MemoryDriverTests: StorageDriverContract {
    override func makeDriver() throws -> any StorageDriver { MemoryDriver() }

    // A method of its own: on Linux, XCTest finds a class (and the contract tests it
    // inherits) only through the methods it declares.
    func testEveryDriverStartsEmpty() async throws {
        let driver = MemoryDriver()
        let listed = try await driver.list(under: StoragePath("blobs"))
        XCTAssertEqual(listed, [])
    }
}
