/*
 * tmpdir.h - one temporary directory for the tests that write files (IDX, checkpoints, the
 * atomic writer): make it, name files in it, count them, write and read a file whole, and
 * remove it with all it holds.  Include after check.h.
 */
#ifndef LUNET_TEST_TMPDIR_H
#define LUNET_TEST_TMPDIR_H

#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

static char tmpdir[256];

/* cmocka setup: makes a fresh /tmp/lunet_test_XXXXXX. */
static inline int tmpdir_setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lunet_test_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

/* tmpdir/name; the last four results stay valid, so a call can take several paths. */
static inline const char *tmp_path(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

/* cmocka teardown: removes every file in tmpdir, then tmpdir. */
static inline int tmpdir_teardown(void **state)
{
    (void)state;
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            unlink(tmp_path(e->d_name));
    if (d)
        closedir(d);
    rmdir(tmpdir);
    return 0;
}

/* Number of files in tmpdir whose name contains `part` ("" counts them all). */
static inline int tmp_count(const char *part)
{
    int n = 0;
    DIR *d = opendir(tmpdir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.' && strstr(e->d_name, part) != NULL;
    closedir(d);
    return n;
}

static inline void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* The whole file in a malloc'ed buffer (one byte more than *n, so never NULL). */
static inline unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc((size_t)len + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return p;
}

#endif
