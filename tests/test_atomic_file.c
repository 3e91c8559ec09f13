/*
 * test_atomic_file.c - the one file writer (runtime/atomic_file.c) behind checkpoints, IDX
 * files and PNGs: a write replaces the file whole, keeps its mode, leaves no temporary, and
 * removes the stale temporaries of writers that died (tests/kill_save_test.sh kills real
 * ones).
 */
#include "check.h"
#include "tmpdir.h"

#include <sys/stat.h>
#include <sys/wait.h>

static void touch(const char *path)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("stale", f);
    fclose(f);
}

static void test_replaces_whole_and_keeps_mode(void **state)
{
    (void)state;
    const char *p = tmp_path("f.bin");
    CHECK_OK(lunet_write_file_atomic(p, "first", 5));
    assert_int_equal(chmod(p, 0600), 0);
    CHECK_OK(lunet_write_file_atomic(p, "second!", 7));
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_size, 7);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(tmp_count("f.bin.tmp."), 0);
    /* a directory that does not exist: an error naming the file, nothing created */
    CHECK_FAILS(lunet_write_file_atomic(tmp_path("no/such/f.bin"), "x", 1), LUNET_STATUS_IO,
                "no/such/f.bin");
}

/* A new file gets the default mode; a missing directory is an error naming the file. */
static void test_new_file_and_missing_dir(void **state)
{
    (void)state;
    const char *path = tmp_path("a.txt");
    CHECK_OK(lunet_write_file_atomic(path, "one\n", 4));
    CHECK_OK(lunet_write_file_atomic(path, "two!\n", 5));
    size_t n;
    unsigned char *b = read_bytes(path, &n);
    assert_int_equal(n, 5);
    assert_memory_equal(b, "two!\n", 5);
    free(b);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0644);
    CHECK_FAILS(lunet_write_file_atomic("/nonexistent-dir/a.txt", "x", 1), LUNET_STATUS_IO,
                "cannot create a temporary file for /nonexistent-dir/a.txt");
    assert_int_equal(tmp_count(".tmp."), 0);
}

static void test_idx_and_png_leave_no_temporary(void **state)
{
    (void)state;
    lunet_tensor_t *img;
    CHECK_OK(lunet_tensor_zeros(&img, LUNET_DTYPE_UINT8, 2, (const int64_t[]){4, 5}));
    CHECK_OK(lunet_idx_write(tmp_path("x.idx"), img, 0x08, false));
    CHECK_OK(lunet_idx_write(tmp_path("x.idx.gz"), img, 0x08, true));
    CHECK_OK(lunet_data_write_png(tmp_path("x.png"), img));
    CHECK_OK(lunet_data_write_png(tmp_path("x.png"), img)); /* over an existing one */
    lunet_tensor_release(img);
    assert_int_equal(tmp_count("x."), 3);
    assert_int_equal(tmp_count("x.png.tmp."), 0);
    struct stat sb;
    assert_int_equal(stat(tmp_path("x.png"), &sb), 0);
    assert_true(sb.st_size > 8);
}

static void test_stale_temporaries_of_dead_writers_go(void **state)
{
    (void)state;
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0)
        _exit(0);
    assert_int_equal(waitpid(child, NULL, 0), child); /* its pid now names no process */
    char host[64];
    if (gethostname(host, sizeof host) != 0 || !host[0])
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    char dead[512], alive[512], other[512], remote[512];
    snprintf(dead, sizeof dead, "%s/c.lnt.tmp.%s.%ld.Ab12Cd", tmpdir, host, (long)child);
    snprintf(alive, sizeof alive, "%s/c.lnt.tmp.%s.%ld.Ef34Gh", tmpdir, host, (long)getppid());
    snprintf(other, sizeof other, "%s/d.lnt.tmp.%s.%ld.Ij56Kl", tmpdir, host, (long)child);
    snprintf(remote, sizeof remote, "%s/c.lnt.tmp.other-host.example.%ld.Mn78Op", tmpdir,
             (long)child);
    touch(dead);
    touch(alive);
    touch(other);
    touch(remote);
    CHECK_OK(lunet_write_file_atomic(tmp_path("c.lnt"), "new", 3));
    /* the dead writer's temporary is gone; a live writer's, another target's and another
       machine's (its pid means nothing here) stay */
    assert_int_equal(access(dead, F_OK), -1);
    assert_int_equal(access(alive, F_OK), 0);
    assert_int_equal(access(other, F_OK), 0);
    assert_int_equal(access(remote, F_OK), 0);
    unlink(alive);
    unlink(other);
    unlink(remote);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_replaces_whole_and_keeps_mode, tmpdir_setup,
                                        tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_new_file_and_missing_dir, tmpdir_setup,
                                        tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_idx_and_png_leave_no_temporary, tmpdir_setup,
                                        tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_stale_temporaries_of_dead_writers_go, tmpdir_setup,
                                        tmpdir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
