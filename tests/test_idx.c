/*
 * test_idx.c - IDX reader/writer: round trips for every type code, 1- to 4-dim, plain and
 * gzip; a corpus of lying files, each rejected with its message (from memory and from a
 * file, so the message names the file); the writer's checks and atomic replace.
 */
#include "check.h"
#include "tmpdir.h"

#include <zlib.h>

/* internal.h: frees cached blocks so leak checkers see a clean exit */
void lunet_memory_trim(void);

/* gzip-compresses buf into a malloc'ed buffer. */
static unsigned char *gz(const void *buf, size_t n, size_t *outn)
{
    z_stream z = {0};
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&z, (uLong)n) + 64;
    unsigned char *o = malloc(cap);
    z.next_in = (unsigned char *)(uintptr_t)buf;
    z.avail_in = (uInt)n;
    z.next_out = o;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    *outn = cap - z.avail_out;
    deflateEnd(&z);
    return o;
}

/* ---------------------------------------------------------------- round trips --------- */

/* Every IDX type code with the dtype a read gives it (the signed integers widen to int64). */
static const struct {
    int code;
    lunet_dtype_t dtype;
} idx_types[] = {
    {0x08, LUNET_DTYPE_UINT8}, {0x09, LUNET_DTYPE_INT64},   {0x0B, LUNET_DTYPE_INT64},
    {0x0C, LUNET_DTYPE_INT64}, {0x0D, LUNET_DTYPE_FLOAT32}, {0x0E, LUNET_DTYPE_FLOAT64},
};

/* A tensor whose values exercise the type's edges (extremes, negatives, -0, inf, nan). */
static lunet_tensor_t *sample_tensor(int code, lunet_dtype_t dtype, int ndim)
{
    int64_t shape[4] = {3, 2, 4, 5};
    int64_t sh[4];
    for (int i = 0; i < ndim; i++)
        sh[i] = shape[4 - ndim + i];
    lunet_tensor_t *t;
    CHECK_OK(lunet_tensor_empty(&t, dtype, ndim, sh));
    void *d = lunet_tensor_data(t);
    for (int64_t i = 0; i < t->numel; i++) {
        switch (code) {
        case 0x08:
            ((uint8_t *)d)[i] = (uint8_t)(i * 37 + (i == 1 ? 255 : 0));
            break;
        case 0x09:
            ((int64_t *)d)[i] = i == 0 ? -128 : i == 1 ? 127 : (i * 7) % 256 - 128;
            break;
        case 0x0B:
            ((int64_t *)d)[i] = i == 0 ? -32768 : i == 1 ? 32767 : (i * 1031) % 65536 - 32768;
            break;
        case 0x0C:
            ((int64_t *)d)[i] = i == 0 ? INT32_MIN : i == 1 ? INT32_MAX : i * 100003 - 777777;
            break;
        case 0x0D: {
            static const float sp[] = {-0.0f, INFINITY, -INFINITY, 1e-45f, 3.4028235e38f};
            ((float *)d)[i] = i < 5 ? sp[i] : i == 5 ? NAN : (float)i * 0.1f - 1.7f;
            break;
        }
        case 0x0E: {
            static const double sp[] = {-0.0, INFINITY, 4.9e-324, 1.7976931348623157e308, -1e300};
            ((double *)d)[i] = i < 5 ? sp[i] : i == 5 ? NAN : (double)i * 0.1 - 1.7;
            break;
        }
        }
    }
    return t;
}

static void test_round_trip_every_code(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof idx_types / sizeof idx_types[0]; k++) {
        int code = idx_types[k].code;
        for (int nd = 1; nd <= 4; nd++) {
            for (int z = 0; z < 2; z++) {
                lunet_tensor_t *t = sample_tensor(code, idx_types[k].dtype, nd), *r;
                const char *p = tmp_path(z ? "rt.idx.gz" : "rt.idx");
                CHECK_OK(lunet_idx_write(p, t, code, z));
                size_t n;
                unsigned char *b = read_bytes(p, &n);
                /* gzip is recognised from the bytes: check what was written */
                assert_int_equal(z, n >= 2 && b[0] == 0x1f && b[1] == 0x8b);
                if (!z) {
                    assert_int_equal(b[2], code);
                    assert_int_equal(b[3], nd);
                }
                free(b);
                CHECK_OK(lunet_idx_read(&r, p));
                assert_int_equal(r->dtype, idx_types[k].dtype);
                assert_int_equal(r->ndim, nd);
                for (int i = 0; i < nd; i++)
                    assert_int_equal(r->shape[i], t->shape[i]);
                assert_memory_equal(lunet_tensor_data(r), lunet_tensor_data(t),
                                    (size_t)t->numel * lunet_dtype_size(t->dtype));
                lunet_tensor_release(r);
                lunet_tensor_release(t);
            }
        }
    }
}

/* The exact bytes of a known file, and the same bytes read back from memory. */
static void test_known_bytes(void **state)
{
    (void)state;
    int64_t sh[2] = {2, 3};
    int64_t v[6] = {1, 2, 3, -1, 256, -32768};
    lunet_tensor_t *t, *r;
    CHECK_OK(lunet_tensor_from_data(&t, LUNET_DTYPE_INT64, 2, sh, v));
    CHECK_OK(lunet_idx_write(tmp_path("i16"), t, 0x0B, false));
    size_t n;
    unsigned char *b = read_bytes(tmp_path("i16"), &n);
    static const unsigned char want[] = {0, 0, 0x0B, 2, 0, 0, 0,    2,    0, 0, 0,    3,
                                         0, 1, 0,    2, 0, 3, 0xff, 0xff, 1, 0, 0x80, 0};
    assert_int_equal(n, sizeof want);
    assert_memory_equal(b, want, sizeof want);
    CHECK_OK(lunet_idx_read_buffer(&r, b, n, "mem"));
    CHECK_TENSOR(r, ((double[]){1, 2, 3, -1, 256, -32768}), 6, 0);
    lunet_tensor_release(r);
    /* torchvision's example: big-endian int16 [1, 2, 3] must read as [1, 2, 3] */
    static const unsigned char i16[] = {0, 0, 0x0B, 1, 0, 0, 0, 3, 0, 1, 0, 2, 0, 3};
    CHECK_OK(lunet_idx_read_buffer(&r, i16, sizeof i16, "i16"));
    CHECK_TENSOR(r, ((double[]){1, 2, 3}), 3, 0);
    lunet_tensor_release(r);
    free(b);
    lunet_tensor_release(t);
}

/* The default type code follows the dtype; uint8 u8 (2, 3) is the small file torchvision was
   tried on (docs/pytorch-parity.md §12.2). */
static void test_default_codes_and_u8(void **state)
{
    (void)state;
    static const unsigned char u8[] = {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 0, 1, 2, 3, 4, 5};
    lunet_tensor_t *t, *r;
    CHECK_OK(lunet_idx_read_buffer(&t, u8, sizeof u8, "u8"));
    assert_int_equal(t->dtype, LUNET_DTYPE_UINT8);
    assert_int_equal(t->ndim, 2);
    CHECK_TENSOR(t, ((double[]){0, 1, 2, 3, 4, 5}), 6, 0);
    CHECK_OK(lunet_idx_write(tmp_path("u8"), t, 0, false));
    size_t n;
    unsigned char *b = read_bytes(tmp_path("u8"), &n);
    assert_int_equal(n, sizeof u8);
    assert_memory_equal(b, u8, n);
    free(b);
    /* int64 -> 0x0C, float64 -> 0x0E, float32 -> 0x0D */
    static const struct {
        lunet_dtype_t dt;
        int code;
    } m[] = {{LUNET_DTYPE_INT64, 0x0C}, {LUNET_DTYPE_FLOAT64, 0x0E}, {LUNET_DTYPE_FLOAT32, 0x0D}};
    for (int i = 0; i < 3; i++) {
        CHECK_OK(lunet_tensor_to(&r, t, m[i].dt));
        CHECK_OK(lunet_idx_write(tmp_path("d"), r, 0, false));
        b = read_bytes(tmp_path("d"), &n);
        assert_int_equal(b[2], m[i].code);
        free(b);
        lunet_tensor_release(r);
    }
    /* a float tensor with integral values can be written as bytes */
    CHECK_OK(lunet_tensor_to(&r, t, LUNET_DTYPE_FLOAT32));
    CHECK_OK(lunet_idx_write(tmp_path("f8"), r, 0x08, true));
    lunet_tensor_release(r);
    CHECK_OK(lunet_idx_read(&r, tmp_path("f8")));
    assert_int_equal(r->dtype, LUNET_DTYPE_UINT8);
    CHECK_TENSOR(r, ((double[]){0, 1, 2, 3, 4, 5}), 6, 0);
    lunet_tensor_release(r);
    lunet_tensor_release(t);
}

/* A non-contiguous tensor is written in its logical (row-major) order. */
static void test_write_transposed(void **state)
{
    (void)state;
    int64_t sh[2] = {2, 3};
    uint8_t v[6] = {0, 1, 2, 3, 4, 5};
    lunet_tensor_t *t, *tt, *r;
    CHECK_OK(lunet_tensor_from_data(&t, LUNET_DTYPE_UINT8, 2, sh, v));
    CHECK_OK(lunet_tensor_transpose(&tt, t, 0, 1));
    CHECK_OK(lunet_idx_write(tmp_path("tr"), tt, 0, false));
    CHECK_OK(lunet_idx_read(&r, tmp_path("tr")));
    assert_int_equal(r->shape[0], 3);
    CHECK_TENSOR(r, ((double[]){0, 3, 1, 4, 2, 5}), 6, 0);
    lunet_tensor_release(r);
    lunet_tensor_release(tt);
    lunet_tensor_release(t);
}

static void test_empty_dim_allowed(void **state)
{
    (void)state;
    static const unsigned char e[] = {0, 0, 8, 2, 0, 0, 0, 0, 0, 0, 0, 28};
    lunet_tensor_t *t;
    CHECK_OK(lunet_idx_read_buffer(&t, e, sizeof e, "empty-n"));
    assert_int_equal(t->numel, 0);
    assert_int_equal(t->shape[1], 28);
    lunet_tensor_release(t);
}

/* ---------------------------------------------------------------- bad files ----------- */

typedef struct bad {
    const char *name;
    const unsigned char *bytes;
    size_t n;
    bool gzip_it; /* gzip the bytes first (a valid stream around a lying file) */
    const char *msg;
} bad_t;

static const unsigned char hdr_magic[] = {1, 0, 8, 1, 0, 0, 0, 1, 0};
static const unsigned char hdr_magic2[] = {0, 7, 8, 1, 0, 0, 0, 1, 0};
static const unsigned char hdr_type[] = {0, 0, 0x0A, 1, 0, 0, 0, 1, 0};
static const unsigned char hdr_type2[] = {0, 0, 0x0F, 1, 0, 0, 0, 1, 0};
static const unsigned char hdr_nd0[] = {0, 0, 8, 0, 5};
static const unsigned char hdr_nd_big[] = {0, 0, 8, 200, 0, 0, 0, 1};
static const unsigned char hdr_size_big[] = {0, 0, 8, 1, 0x80, 0, 0, 0, 1};
static const unsigned char hdr_overflow[] = {0,    0,    0x0E, 4,    0x7f, 0xff, 0xff,
                                             0xff, 0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff,
                                             0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 1};
/* found by the fuzzer: a zero size must not hide sizes whose product overflows */
static const unsigned char hdr_empty_overflow[] = {0, 0, 0x0E, 4, 0, 0x7f, 0, 0x0b, 0x08, 0x40,
                                                   0, 0, 0x11, 0, 0, 0,    0, 0,    0,    0};
static const unsigned char hdr_big[] = {0, 0, 8, 2, 0, 1, 0, 0, 0, 1, 0, 0, 1}; /* 2^32 bytes */
static const unsigned char body_short[] = {0, 0, 8, 1, 0, 0, 0, 5, 1, 2, 3};
static const unsigned char body_long[] = {0, 0, 8, 1, 0, 0, 0, 2, 1, 2, 3};
static const unsigned char body_short16[] = {0, 0, 0x0B, 1, 0, 0, 0, 2, 0, 1, 0};
static const unsigned char trunc_head[] = {0, 0, 8, 2, 0, 0};
static const unsigned char trunc_magic[] = {0, 0};
/* a gzip header, then deflate data with the invalid block type 11 */
static const unsigned char garbage_gz[] = {0x1f, 0x8b, 0x08, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x00,
                                           0x03, 0xff, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde};
/* random bytes, gzipped: a valid stream of garbage */
static const unsigned char random_bytes[] = {0x5e, 0x11, 0xa7, 0x03, 0x9c, 0x42, 0xf0, 0x0d, 0x77};
static const unsigned char bad_gz_header[] = {0x1f, 0x8b, 0x77, 0x00, 0, 0, 0, 0, 0, 3};

static const bad_t bads[] = {
    {"empty", (const unsigned char *)"", 0, false, "file is empty"},
    {"magic", hdr_magic, sizeof hdr_magic, false, "bad magic 01 00 08 01"},
    {"magic2", hdr_magic2, sizeof hdr_magic2, false, "bad magic"},
    {"type0a", hdr_type, sizeof hdr_type, false, "unknown type code 0x0a"},
    {"type0f", hdr_type2, sizeof hdr_type2, false, "unknown type code 0x0f"},
    {"nd0", hdr_nd0, sizeof hdr_nd0, false, "zero dims"},
    {"nd200", hdr_nd_big, sizeof hdr_nd_big, false, "absurd number of dims 200"},
    {"size2g", hdr_size_big, sizeof hdr_size_big, false, "absurd size 2147483648 for dim 0"},
    {"overflow", hdr_overflow, sizeof hdr_overflow, false, "overflow"},
    {"empty_overflow", hdr_empty_overflow, sizeof hdr_empty_overflow, false, "overflow"},
    {"huge", hdr_big, sizeof hdr_big, false, "body is shorter than the header says"},
    {"short", body_short, sizeof body_short, false,
     "body is shorter than the header says: 3 bytes"},
    {"long", body_long, sizeof body_long, false, "body is longer than the header says: 3 bytes"},
    {"short16", body_short16, sizeof body_short16, false, "body is shorter"},
    {"trunc_head", trunc_head, sizeof trunc_head, false, "truncated header"},
    {"trunc_magic", trunc_magic, sizeof trunc_magic, false, "truncated header"},
    {"garbage.gz", garbage_gz, sizeof garbage_gz, false, "corrupt gzip stream"},
    {"random.gz", random_bytes, sizeof random_bytes, true, "bad magic 5e 11 a7 03"},
    {"badhead.gz", bad_gz_header, sizeof bad_gz_header, false, "corrupt gzip stream"},
    {"magic.gz", hdr_magic, sizeof hdr_magic, true, "bad magic"},
    {"nd0.gz", hdr_nd0, sizeof hdr_nd0, true, "zero dims"},
    {"short.gz", body_short, sizeof body_short, true,
     "body is shorter than the header says: 3 bytes"},
    {"long.gz", body_long, sizeof body_long, true,
     "body is longer than the header says: at least 3 bytes"},
    {"huge.gz", hdr_big, sizeof hdr_big, true, "more than a"},
    {"empty.gz", (const unsigned char *)"", 0, true, "file is empty"},
};

static void check_bad(const char *name, const unsigned char *b, size_t n, const char *msg)
{
    lunet_tensor_t *t = NULL;
    CHECK_FAILS(lunet_idx_read_buffer(&t, b, n, name), LUNET_STATUS_VALUE, msg);
    assert_null(t);
    assert_non_null(strstr(lunet_error_message(), name));
    const char *p = tmp_path(name);
    write_bytes(p, b, n);
    char path[512];
    snprintf(path, sizeof path, "%s", p);
    CHECK_FAILS(lunet_idx_read(&t, path), LUNET_STATUS_VALUE, msg);
    assert_non_null(strstr(lunet_error_message(), path));
    assert_null(t);
}

static void test_bad_corpus(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
        const bad_t *b = &bads[i];
        if (b->gzip_it) {
            size_t n;
            unsigned char *g = gz(b->bytes, b->n, &n);
            check_bad(b->name, g, n, b->msg);
            free(g);
        } else {
            check_bad(b->name, b->bytes, b->n, b->msg);
        }
    }
}

/* A gzip bomb behind a small header: 10 body bytes declared, 32 MiB of zeros compressed.
   The reader must stop at the first chunk past the body (the message gives what it saw: at
   most one 4096-byte chunk more), not inflate it all (issue 10). */
static void test_gzip_bomb_stops_early(void **state)
{
    (void)state;
    size_t big = (size_t)32 << 20;
    unsigned char *body = calloc(1, big);
    assert_non_null(body);
    memcpy(body, (unsigned char[]){0, 0, 8, 1, 0, 0, 0, 10}, 8);
    size_t n;
    unsigned char *g = gz(body, big, &n);
    free(body);
    assert_true(n < big / 500); /* it is a bomb */
    lunet_tensor_t *t;
    CHECK_FAILS(lunet_idx_read_buffer(&t, g, n, "bomb.gz"), LUNET_STATUS_VALUE,
                "body is longer than the header says: at least 4106 bytes");
    free(g);
}

/* Damaged gzip around a valid file: truncated stream, bad CRC, trailing garbage, 2 members. */
static void test_bad_gzip_streams(void **state)
{
    (void)state;
    unsigned char body[8 + 300];
    memcpy(body, (unsigned char[]){0, 0, 8, 1, 0, 0, 1, 44}, 8);
    for (int i = 0; i < 300; i++)
        body[8 + i] = (unsigned char)(i * 13);
    size_t n;
    unsigned char *g = gz(body, sizeof body, &n);
    lunet_tensor_t *t;
    CHECK_OK(lunet_idx_read_buffer(&t, g, n, "good.gz"));
    assert_int_equal(t->numel, 300);
    assert_int_equal(((uint8_t *)lunet_tensor_data(t))[7], (7 * 13) & 255);
    lunet_tensor_release(t);
    check_bad("trunc.gz", g, n - 12, "corrupt gzip stream: truncated");
    check_bad("trunc2.gz", g, n / 2, "corrupt gzip stream");
    unsigned char *c = malloc(2 * n + 8);
    memcpy(c, g, n);
    c[n - 6] ^= 0x55; /* CRC32 in the trailer */
    check_bad("crc.gz", c, n, "corrupt gzip stream: incorrect data check");
    memcpy(c, g, n);
    c[n - 2] ^= 0x01; /* ISIZE in the trailer */
    check_bad("isize.gz", c, n, "corrupt gzip stream");
    memcpy(c, g, n);
    memcpy(c + n, "JUNK", 4);
    check_bad("trailing.gz", c, n + 4, "garbage after the end");
    /* two gzip members (cat a.gz b.gz) decompress to their concatenation: here too long */
    memcpy(c + n, g, n);
    check_bad("twice.gz", c, 2 * n, "body is longer than the header says: at least 608 bytes");
    /* and a file split across two members reads fine */
    size_t n1, n2;
    unsigned char *g1 = gz(body, 100, &n1), *g2 = gz(body + 100, sizeof body - 100, &n2);
    memcpy(c, g1, n1);
    memcpy(c + n1, g2, n2);
    CHECK_OK(lunet_idx_read_buffer(&t, c, n1 + n2, "split.gz"));
    assert_int_equal(t->numel, 300);
    assert_memory_equal(lunet_tensor_data(t), body + 8, 300);
    lunet_tensor_release(t);
    free(g1);
    free(g2);
    free(c);
    free(g);
}

static void test_missing_file(void **state)
{
    (void)state;
    lunet_tensor_t *t = NULL;
    CHECK_FAILS(lunet_idx_read(&t, "/nonexistent/dir/x-idx1-ubyte"), LUNET_STATUS_IO,
                "cannot open /nonexistent/dir/x-idx1-ubyte");
    CHECK_FAILS(lunet_idx_read(&t, tmpdir), LUNET_STATUS_IO, "not a regular file");
    assert_null(t);
}

/* ---------------------------------------------------------------- writer checks ------- */

static void test_writer_checks(void **state)
{
    (void)state;
    int64_t sh[1] = {3};
    int64_t big[3] = {1, 300, 2};
    lunet_tensor_t *t, *old;
    CHECK_OK(lunet_tensor_from_data(&t, LUNET_DTYPE_INT64, 1, sh, big));
    const char *p = tmp_path("keep");
    char path[512];
    snprintf(path, sizeof path, "%s", p);
    uint8_t ok[3] = {7, 8, 9};
    CHECK_OK(lunet_tensor_from_data(&old, LUNET_DTYPE_UINT8, 1, sh, ok));
    CHECK_OK(lunet_idx_write(path, old, 0, false));
    int before = tmp_count("");
    CHECK_FAILS(lunet_idx_write(path, t, 0x08, false), LUNET_STATUS_VALUE,
                "element 1 = 300 does not fit type unsigned byte (0x08)");
    CHECK_FAILS(lunet_idx_write(path, t, 0x09, true), LUNET_STATUS_VALUE, "does not fit type");
    CHECK_FAILS(lunet_idx_write(path, t, 0x0A, false), LUNET_STATUS_VALUE,
                "unknown type code 0x0a");
    CHECK_FAILS(lunet_idx_write("/nonexistent/dir/f", t, 0, false), LUNET_STATUS_IO,
                "cannot create a temporary file for /nonexistent/dir/f");
    /* the old file is intact and no temporary file was left behind */
    assert_int_equal(tmp_count(""), before);
    lunet_tensor_t *r;
    CHECK_OK(lunet_idx_read(&r, path));
    CHECK_TENSOR(r, ((double[]){7, 8, 9}), 3, 0);
    lunet_tensor_release(r);
    /* int16 range, fractional values, float32 overflow, 0-d */
    double fr[3] = {1, 2.5, 3};
    lunet_tensor_t *f;
    CHECK_OK(lunet_tensor_from_data(&f, LUNET_DTYPE_FLOAT64, 1, sh, fr));
    CHECK_FAILS(lunet_idx_write(path, f, 0x0C, false), LUNET_STATUS_VALUE,
                "element 1 = 2.5 does not fit type int (0x0C)");
    lunet_tensor_release(f);
    double of[3] = {1, 1e39, 3};
    CHECK_OK(lunet_tensor_from_data(&f, LUNET_DTYPE_FLOAT64, 1, sh, of));
    CHECK_FAILS(lunet_idx_write(path, f, 0x0D, false), LUNET_STATUS_VALUE,
                "does not fit type float");
    lunet_tensor_release(f);
    int64_t w16[3] = {-32769, 0, 0};
    CHECK_OK(lunet_tensor_from_data(&f, LUNET_DTYPE_INT64, 1, sh, w16));
    CHECK_FAILS(lunet_idx_write(path, f, 0x0B, false), LUNET_STATUS_VALUE, "-32769 does not fit");
    lunet_tensor_release(f);
    CHECK_OK(lunet_tensor_scalar(&f, LUNET_DTYPE_FLOAT32, 1, false));
    CHECK_FAILS(lunet_idx_write(path, f, 0, false), LUNET_STATUS_VALUE, "0-d tensor");
    lunet_tensor_release(f);
    uint8_t hi[3] = {0, 200, 1};
    CHECK_OK(lunet_tensor_from_data(&f, LUNET_DTYPE_UINT8, 1, sh, hi));
    CHECK_FAILS(lunet_idx_write(path, f, 0x09, false), LUNET_STATUS_VALUE, "200 does not fit");
    lunet_tensor_release(f);
    assert_int_equal(tmp_count(""), before);
    lunet_tensor_release(old);
    lunet_tensor_release(t);
}

/* The committed corpus (tests/idx_corpus) used as the fuzzer's seeds: none may crash; each
 * bad_* file must fail, each good_* file must load. */
static void test_corpus_dir(void **state)
{
    (void)state;
    DIR *d = opendir("tests/idx_corpus");
    if (!d) {
        print_message("tests/idx_corpus not found (run from the repository root); skipped\n");
        skip();
    }
    struct dirent *e;
    int seen = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strstr(e->d_name, ".py"))
            continue;
        char p[512];
        snprintf(p, sizeof p, "tests/idx_corpus/%s", e->d_name);
        lunet_tensor_t *t = NULL;
        lunet_status_t st = lunet_idx_read(&t, p);
        if (!strncmp(e->d_name, "good", 4)) {
            if (st)
                fail_msg("%s: %s", p, lunet_error_message());
            lunet_tensor_release(t);
        } else {
            assert_int_not_equal(st, LUNET_OK);
            assert_non_null(strstr(lunet_error_message(), p));
        }
        seen++;
    }
    closedir(d);
    assert_true(seen >= 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_code),
        cmocka_unit_test(test_known_bytes),
        cmocka_unit_test(test_default_codes_and_u8),
        cmocka_unit_test(test_write_transposed),
        cmocka_unit_test(test_empty_dim_allowed),
        cmocka_unit_test(test_bad_corpus),
        cmocka_unit_test(test_bad_gzip_streams),
        cmocka_unit_test(test_gzip_bomb_stops_early),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_writer_checks),
        cmocka_unit_test(test_corpus_dir),
    };
    int rc = cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
    lunet_memory_trim();
    return rc;
}
