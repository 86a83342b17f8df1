/*
 * fault_shim.c - an LD_PRELOAD library that makes the disk fail on demand,
 * for tests of how the node handles storage faults (issue 9, finding 5).
 *
 * While the file named by RINGKV_FAULT_FILE exists:
 *   fsync, fdatasync, msync          fail with EIO (a failed flush: the
 *                                    pages may or may not be on disk);
 * while the file named by RINGKV_FAULT_WRITE_FILE exists:
 *   write, pwrite, pwritev to a file named *.mdb fail with EIO;
 * and while the file named by RINGKV_FAULT_MAP_FILE exists:
 *   ftruncate of a *.mdb file fails with EFBIG and mmap of one with ENOMEM
 *   (what LMDB does to grow its map: mdb_env_set_mapsize).
 * Everything else goes to the real libc call (dlsym RTLD_NEXT). The test
 * creates and removes the file to switch faults on and off in a running
 * node without any hook in the node itself.
 *
 * Built without sanitizers; an ASan binary that preloads it needs
 * ASAN_OPTIONS=verify_asan_link_order=0.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

int fsync(int fd);
int fdatasync(int fd);
int msync(void *addr, size_t len, int flags);
ssize_t write(int fd, const void *buf, size_t n);
ssize_t pwrite(int fd, const void *buf, size_t n, off_t off);
ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off);
int ftruncate(int fd, off_t len);
void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);

static int fault_file_exists(const char *env)
{
    const char *p = getenv(env);
    struct stat st;
    return p != NULL && p[0] != '\0' && stat(p, &st) == 0;
}

/* Is fd an LMDB file (data.mdb or lock.mdb)? */
static int fault_is_mdb(int fd)
{
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof(path) - 1);
    if (n < 4)
        return 0;
    path[n] = '\0';
    return strcmp(path + n - 4, ".mdb") == 0;
}

static int fault_sync(void)
{
    if (!fault_file_exists("RINGKV_FAULT_FILE"))
        return 0;
    errno = EIO;
    return 1;
}

static int fault_write(int fd)
{
    if (!fault_file_exists("RINGKV_FAULT_WRITE_FILE") || !fault_is_mdb(fd))
        return 0;
    errno = EIO;
    return 1;
}

static int fault_map(int fd)
{
    return fd >= 0 && fault_file_exists("RINGKV_FAULT_MAP_FILE") &&
           fault_is_mdb(fd);
}

#define REAL(name, type) ((type)dlsym(RTLD_NEXT, name))

int fsync(int fd)
{
    if (fault_sync())
        return -1;
    return REAL("fsync", int (*)(int))(fd);
}

int fdatasync(int fd)
{
    if (fault_sync())
        return -1;
    return REAL("fdatasync", int (*)(int))(fd);
}

int msync(void *addr, size_t len, int flags)
{
    if (fault_sync())
        return -1;
    return REAL("msync", int (*)(void *, size_t, int))(addr, len, flags);
}

ssize_t write(int fd, const void *buf, size_t n)
{
    if (fault_write(fd))
        return -1;
    return REAL("write", ssize_t(*)(int, const void *, size_t))(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (fault_write(fd))
        return -1;
    return REAL("pwrite", ssize_t(*)(int, const void *, size_t, off_t))(fd, buf,
                                                                        n, off);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    if (fault_write(fd))
        return -1;
    return REAL("pwritev", ssize_t(*)(int, const struct iovec *, int, off_t))(
        fd, iov, cnt, off);
}

int ftruncate(int fd, off_t len)
{
    if (fault_map(fd)) {
        errno = EFBIG;
        return -1;
    }
    return REAL("ftruncate", int (*)(int, off_t))(fd, len);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (fault_map(fd)) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    return REAL("mmap", void *(*)(void *, size_t, int, int, int, off_t))(
        addr, len, prot, flags, fd, off);
}
