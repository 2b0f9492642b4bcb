import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Disk space set aside beside the database for the writes that free space.
///
/// In WAL mode every write, a delete too, first appends to the log: on a full disk the
/// deletes, collections and purges that would free space fail like everything else, and
/// the registry could never recover by itself. So a file of `size` bytes is allocated
/// next to the database; a write that frees space and hits a full disk gives it back and
/// tries once more. `restoreIfRoom()` takes it again once the disk has room.
final class SpaceReserve: Sendable {
    let path: String
    let size: Int
    private let held = Atomic<Bool>(false)

    init(path: String, size: Int) {
        self.path = path
        self.size = size
        restoreIfRoom()
    }

    var isHeld: Bool { held.load(ordering: .acquiring) }

    /// Frees the reserve. - Returns: whether there was one to free.
    func release() -> Bool {
        guard held.exchange(false, ordering: .acquiringAndReleasing) else { return false }
        unlink(path)
        return true
    }

    /// Allocates the reserve again when the disk has room for it twice over (so taking
    /// it does not fill the disk at once).
    func restoreIfRoom() {
        guard size > 0, !isHeld else { return }
        var stats = statvfs()
        let directory = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        guard statvfs(directory.isEmpty ? "." : directory, &stats) == 0,
            UInt64(stats.f_bavail) * UInt64(stats.f_frsize) >= UInt64(size) * 2
        else { return }
        let descriptor = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { return }
        defer { close(descriptor) }
        // Allocated blocks, not a sparse file: the space must really be there to give back.
        if posix_fallocate(descriptor, 0, off_t(size)) == 0 {
            held.store(true, ordering: .releasing)
        } else {
            unlink(path)
        }
    }
}
