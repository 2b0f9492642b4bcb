#if canImport(Glibc)
    import Glibc
#endif

/// Blocking POSIX helpers for `FilesystemDriver`; callers run them off the event loops.
enum FileSystemCalls {
    static func error(_ call: String, _ path: String) -> StorageError {
        let code = errno
        if code == ENOSPC || code == EDQUOT { return .noSpace }
        return .io(StorageFailure("\(call) \(path)", code: code))
    }

    /// `mkdir -p`, deepest first: usually the parent exists and one `mkdir` does it (a
    /// walk down from `/` cost a failed `mkdir`, each a path lookup, per existing
    /// component: 14 calls per small push). A component that appears meanwhile (another
    /// upload made it) counts as existing.
    /// - Returns: the directories it created, outermost first.
    @discardableResult
    static func makeDirectories(_ path: String) throws -> [String] {
        if mkdir(path, 0o750) == 0 { return [path] }
        switch errno {
        case EEXIST:
            return []
        case ENOENT:
            guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { throw error("mkdir", path) }
            let created = try makeDirectories(String(path[..<slash]))
            if mkdir(path, 0o750) == 0 { return created + [path] }
            if errno == EEXIST { return created }
            throw error("mkdir", path)
        default:
            throw error("mkdir", path)
        }
    }

    /// Writes all of `bytes` at the descriptor's offset, however many calls it takes.
    static func writeAll(_ bytes: UnsafeRawBufferPointer, to descriptor: CInt, path: String) throws {
        var offset = 0
        while offset < bytes.count {
            let written = write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw error("write", path)
            }
            offset += written
        }
    }

    static func syncDirectory(_ path: String) throws {
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw error("open", path) }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw error("fsync", path) }
    }

    /// `rm -rf`: a file, or a directory and everything below it.
    static func removeTree(_ path: String) throws {
        if unlink(path) == 0 || errno == ENOENT { return }
        guard errno == EISDIR || errno == EPERM else { throw error("unlink", path) }
        for entry in try directoryEntries(path) { try removeTree(path + "/" + entry) }
        guard rmdir(path) == 0 || errno == ENOENT else { throw error("rmdir", path) }
    }

    /// Paths of regular files below `path`, as segment lists relative to it.
    static func listFiles(under path: String) throws -> [[String]] {
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT { return [] }
            throw error("stat", path)
        }
        if (info.st_mode & S_IFMT) == S_IFREG { return [[]] }
        var result: [[String]] = []
        for entry in try directoryEntries(path) {
            for below in try listFiles(under: path + "/" + entry) { result.append([entry] + below) }
        }
        return result
    }

    static func directoryEntries(_ path: String) throws -> [String] {
        guard let directory = opendir(path) else {
            if errno == ENOENT { return [] }
            throw error("opendir", path)
        }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
