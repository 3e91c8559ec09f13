/*
 * atomic_file.c - the one way the runtime writes a file (checkpoints, IDX files, PNGs):
 * readers see the old file or the complete new one, never a part, and a writer killed
 * half-way leaves nothing that outlives the next write.
 *
 * Decisions:
 *  - Linux: the data goes into an unnamed O_TMPFILE in the target's directory; commit links
 *    it to "<path>.tmp.<host>.<pid>.<n>" (linkat through /proc/self/fd, no privilege needed)
 *    and renames that over the target.  A writer killed while writing leaves nothing at all;
 *    only a kill in the microseconds between link and rename leaves a named temporary.
 *  - Elsewhere, or when the filesystem or /proc refuses (or LUNET_NO_TMPFILE=1 is set, for
 *    the tests): a named "<path>.tmp.<host>.<pid>.XXXXXX" from mkstemp.
 *  - Every open first removes stale temporaries of the same target: names of that pattern
 *    made on this host (the host name is in the name: a writer on another machine sharing
 *    the directory is never touched) whose process no longer exists (kill(pid, 0) fails
 *    with ESRCH).  So a crash-looping job never accumulates temporaries.  A writer in another
 *    PID namespace with the same host name could still look dead; losing its temporary
 *    makes its save fail cleanly, it never damages the target.
 *  - The file gets the target's mode when the target exists, else 0644 (the umask is not
 *    consulted: reading it is not thread-safe); it is fsync'ed before the rename and the
 *    directory after it.
 */
#define _GNU_SOURCE /* O_TMPFILE */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static _Atomic unsigned link_counter;

/* dir part of path ("." when none) and the base name; dir is malloc'ed. */
static char *split_path(const char *path, const char **base)
{
    const char *slash = strrchr(path, '/');
    *base = slash ? slash + 1 : path;
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

#define HOST_MAX 64

/* This machine's name as it goes into temporary names (no '/', never empty). */
static void host_name(char *buf)
{
    if (gethostname(buf, HOST_MAX) != 0 || !buf[0])
        snprintf(buf, HOST_MAX, "localhost");
    buf[HOST_MAX - 1] = '\0';
    for (char *p = buf; *p; p++)
        if (*p == '/')
            *p = '_';
}

/* Removes "<base>.tmp.<host>.<pid>.*" in dir made on this host by a process that is gone. */
static void remove_stale(const char *dir, const char *base)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    char host[HOST_MAX];
    host_name(host);
    size_t blen = strlen(base), hlen = strlen(host);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        if (strncmp(n, base, blen) != 0 || strncmp(n + blen, ".tmp.", 5) != 0 ||
            strncmp(n + blen + 5, host, hlen) != 0 || n[blen + 5 + hlen] != '.')
            continue;
        const char *ps = n + blen + 5 + hlen + 1;
        char *end;
        long pid = strtol(ps, &end, 10);
        if (end == ps || *end != '.' || pid <= 0)
            continue;
        if (pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        struct stat sb;
        if (fstatat(dirfd(d), n, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(sb.st_mode))
            continue;
        (void)unlinkat(dirfd(d), n, 0);
    }
    closedir(d);
}

static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* An unnamed file in dir that commit can link, or -1. */
static int open_unnamed(const char *dir)
{
#ifdef O_TMPFILE
    const char *off = getenv("LUNET_NO_TMPFILE");
    if (off && *off && strcmp(off, "0") != 0)
        return -1;
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    if (access(proc, F_OK) != 0) { // no /proc: the file could never get a name
        close(fd);
        return -1;
    }
    return fd;
#else
    (void)dir;
    return -1;
#endif
}

lunet_status_t lunet_afile_open(lunet_afile_t *f, const char *what, const char *path)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    f->what = what;
    if (!path || !*path)
        return lunet_error_set(LUNET_STATUS_VALUE, "%s: empty file name", what);
    const char *base;
    char *dir = split_path(path, &base);
    size_t plen = strlen(path);
    // "<path>.tmp.<host>.<pid>.<suffix>": pid <= 20 digits, suffix <= 20
    char *tmp = malloc(plen + 64 + HOST_MAX);
    if (!dir || !tmp) {
        free(dir);
        free(tmp);
        return lunet_error_set(LUNET_STATUS_NOMEM, "%s: %s: out of memory", what, path);
    }
    remove_stale(dir, base);
    f->path = path;
    f->dir = dir;
    f->tmp = tmp;
    f->fd = open_unnamed(dir);
    if (f->fd >= 0) {
        f->unnamed = true;
        return LUNET_OK;
    }
    char host[HOST_MAX];
    host_name(host);
    snprintf(tmp, plen + 64 + HOST_MAX, "%s.tmp.%s.%ld.XXXXXX", path, host, (long)getpid());
    f->fd = mkstemp(tmp);
    if (f->fd < 0) {
        lunet_status_t st = lunet_error_set(LUNET_STATUS_IO,
                                            "%s: cannot create a temporary file for %s: %s", what,
                                            path, strerror(errno));
        free(dir);
        free(tmp);
        f->dir = f->tmp = NULL;
        return st;
    }
    f->named = true;
    return LUNET_OK;
}

lunet_status_t lunet_afile_write(lunet_afile_t *f, const void *data, size_t n)
{
    const unsigned char *p = data;
    while (n > 0) {
        ssize_t k = write(f->fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return lunet_error_set(LUNET_STATUS_IO, "%s: cannot write %s: %s", f->what, f->path,
                                   k < 0 ? strerror(errno) : "no progress");
        p += k;
        n -= (size_t)k;
    }
    return LUNET_OK;
}

void lunet_afile_abort(lunet_afile_t *f)
{
    if (f->fd >= 0)
        close(f->fd);
    if (f->named)
        unlink(f->tmp);
    free(f->dir);
    free(f->tmp);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

lunet_status_t lunet_afile_commit(lunet_afile_t *f)
{
    lunet_status_t st = LUNET_OK;
    struct stat sb;
    mode_t mode = stat(f->path, &sb) == 0 ? (sb.st_mode & 07777) : 0644;
    if (fchmod(f->fd, mode) != 0 || fsync(f->fd) != 0) {
        st = lunet_error_set(LUNET_STATUS_IO, "%s: cannot sync %s: %s", f->what, f->path,
                             strerror(errno));
        goto fail;
    }
    if (f->unnamed) {
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", f->fd);
        size_t cap = strlen(f->path) + 64 + HOST_MAX;
        char host[HOST_MAX];
        host_name(host);
        for (;;) {
            unsigned n = atomic_fetch_add(&link_counter, 1);
            snprintf(f->tmp, cap, "%s.tmp.%s.%ld.%u", f->path, host, (long)getpid(), n);
            if (linkat(AT_FDCWD, proc, AT_FDCWD, f->tmp, AT_SYMLINK_FOLLOW) == 0)
                break;
            if (errno != EEXIST) {
                st = lunet_error_set(LUNET_STATUS_IO, "%s: cannot link the new %s: %s", f->what,
                                     f->path, strerror(errno));
                goto fail;
            }
        }
        f->named = true;
    }
    int fd = f->fd;
    f->fd = -1;
    if (close(fd) != 0) {
        st = lunet_error_set(LUNET_STATUS_IO, "%s: cannot write %s: close failed: %s", f->what,
                             f->path, strerror(errno));
        goto fail;
    }
    if (rename(f->tmp, f->path) != 0) {
        st = lunet_error_set(LUNET_STATUS_IO, "%s: cannot rename %s to %s: %s", f->what, f->tmp,
                             f->path, strerror(errno));
        goto fail;
    }
    f->named = false;
    sync_dir(f->dir);
fail:
    lunet_afile_abort(f);
    return st;
}

lunet_status_t lunet_write_file_atomic(const char *path, const void *data, size_t len)
{
    if (!data && len)
        return lunet_error_set(LUNET_STATUS_VALUE, "write_file: %s: NULL data", path ? path : "");
    lunet_afile_t f;
    lunet_status_t st = lunet_afile_open(&f, "write_file", path);
    if (st)
        return st;
    if ((st = lunet_afile_write(&f, data, len))) {
        lunet_afile_abort(&f);
        return st;
    }
    return lunet_afile_commit(&f);
}
