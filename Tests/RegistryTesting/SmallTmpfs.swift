import Foundation

/// A tmpfs of a few MiB mounted for one test (root only), to fill a disk on purpose.
///
/// ```swift
/// let disk = try SmallTmpfs.mount(size: "4m")   // nil when this machine cannot mount
/// defer { disk?.unmount() }
/// try disk?.fill()
/// ```
public struct SmallTmpfs: Sendable {
    public let path: String

    /// Mounts one, or returns `nil` when not root or mounting is refused.
    public static func mount(size: String) throws -> SmallTmpfs? {
        guard getuid() == 0 else { return nil }
        let path = "/tmp/registryd-full-\(UUID().uuidString.prefix(8).lowercased())"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        guard run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(size)", "tmpfs", path]) == 0 else {
            try? FileManager.default.removeItem(atPath: path)
            return nil
        }
        return SmallTmpfs(path: path)
    }

    /// Writes a filler file until the disk refuses more (ENOSPC).
    public func fill() throws {
        let handle = try FillerFile(path: path + "/filler")
        let block = [UInt8](repeating: 0xAB, count: 64 * 1024)
        while handle.write(block) {}
        handle.close()
    }

    /// Gives the filler's space back.
    public func free() throws {
        try FileManager.default.removeItem(atPath: path + "/filler")
    }

    public func unmount() {
        _ = Self.run("/bin/umount", [path])
        try? FileManager.default.removeItem(atPath: path)
    }

    @discardableResult
    private static func run(_ executable: String, _ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        guard (try? process.run()) != nil else { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }
}

/// A file written with write(2), which reports a full disk as a short or failed write.
private final class FillerFile {
    private let descriptor: Int32

    init(path: String) throws {
        descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard descriptor >= 0 else { throw CocoaError(.fileWriteUnknown) }
    }

    /// - Returns: whether the whole block was written.
    func write(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) } == bytes.count
    }

    func close() { _ = Glibc.close(descriptor) }
}
