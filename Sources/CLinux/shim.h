#ifndef REGISTRYD_CLINUX_SHIM_H
#define REGISTRYD_CLINUX_SHIM_H
// Linux calls that Swift's Glibc module leaves out: glibc declares them only under
// _GNU_SOURCE, which that module is not built with.
#include <stdint.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/uio.h>
#include <unistd.h>

int sync_file_range(int fd, int64_t offset, int64_t nbytes, unsigned int flags);
int pthread_setname_np(pthread_t thread, const char *name);
ssize_t preadv2(int fd, const struct iovec *iov, int iovcnt, off_t offset, int flags);

/// Reads what of `count` bytes at `offset` is in the page cache, never waiting for the
/// disk (preadv2(2) with RWF_NOWAIT): fails with EAGAIN when the first page is not there.
static inline ssize_t registryd_read_cached(int fd, void *buffer, size_t count, int64_t offset) {
    struct iovec vector = { buffer, count };
    return preadv2(fd, &vector, 1, offset, 0x00000008 /* RWF_NOWAIT */);
}

/// Names the calling thread (at most 15 bytes are kept), as `top -H` and profilers show it;
/// a thread otherwise carries the name of the thread that started it.
static inline void registryd_name_this_thread(const char *name) {
    (void)pthread_setname_np(pthread_self(), name);
}

/// Starts writing back a file's dirty pages without waiting for them
/// (sync_file_range(2) with SYNC_FILE_RANGE_WRITE over the whole file).
static inline int registryd_start_write_back(int fd) {
    return sync_file_range(fd, 0, 0, 2 /* SYNC_FILE_RANGE_WRITE */);
}

/// Opens a new file without a name in `directory` for writing (open(2) with O_TMPFILE):
/// it appears only when linked, and a crash before that leaves nothing. Fails with
/// EOPNOTSUPP (or EISDIR on kernels older than 3.11) where the file system cannot.
static inline int registryd_open_unnamed(const char *directory, unsigned int mode) {
    return open(directory, __O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
}

/// Gives the unnamed file open at `fd` the name `path`: linkat(2) through /proc/self/fd,
/// which needs no privilege (AT_EMPTY_PATH does). Fails with EEXIST where `path` exists.
static inline int registryd_link_unnamed(int fd, const char *path) {
    char proc[32];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    return linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW);
}
#endif
