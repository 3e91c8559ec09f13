/*
 * test_serialize.c - checkpoints (runtime/serialize.c, docs/FORMAT.md): round trips of every
 * dtype and rank, nested maps, every truncation of a small file, foreign and lying files,
 * a failing write that must leave the previous file intact, and a frozen version-1 file
 * written by an independent Python encoder (tests/fixtures/gen_serialize.py).
 */
#include "check.h"
#include "tmpdir.h"

#include <sys/stat.h>
#include <zlib.h>

#include "fixtures/serialize_golden.h"

static int teardown(void **state)
{
    tmpdir_teardown(state);
    lunet_serialize_set_fault(-1);
    lunet_memory_trim();
    return 0;
}

/* m[key] = a value holding t (a reference of its own). */
static void put_tensor(lunet_value_t *m, const char *key, lunet_tensor_t *t)
{
    lunet_value_t *x;
    CHECK_OK(lunet_value_tensor(&x, t));
    CHECK_OK(lunet_value_map_put_str(m, key, x));
}

/* v as `width` little-endian bytes at p. */
static void put_le(unsigned char *p, uint64_t v, int width)
{
    for (int i = 0; i < width; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Builds a file from a raw payload as FORMAT.md says; payload_claim 0 means the true size. */
static void write_raw(const char *path, const unsigned char *payload, size_t n,
                      uint64_t payload_claim, uint16_t version)
{
    uLongf clen = compressBound(n);
    unsigned char *buf = malloc(36 + clen);
    assert_non_null(buf);
    assert_int_equal(compress2(buf + 36, &clen, payload, n, 6), Z_OK);
    memcpy(buf, "LUNET\0", 6);
    buf[6] = (unsigned char)version;
    buf[7] = (unsigned char)(version >> 8);
    put_le(buf + 8, 1, 4);
    put_le(buf + 12, payload_claim ? payload_claim : n, 8);
    put_le(buf + 20, clen, 8);
    put_le(buf + 28, (uint32_t)crc32(0, payload, (uInt)n), 4);
    put_le(buf + 32, (uint32_t)crc32(0, buf, 32), 4);
    write_bytes(path, buf, 36 + clen);
    free(buf);
}

/* Expects loading path to fail with a VALUE error naming the file and containing text. */
static void expect_load_error(const char *path, const char *text)
{
    lunet_value_t *v = NULL;
    CHECK_FAILS(lunet_value_load(&v, path), LUNET_STATUS_VALUE, text);
    assert_null(v);
    assert_non_null(strstr(lunet_error_message(), path));
}

/* ---------------------------------------------------------------- round trips ---------- */

static void check_same_tensor(lunet_tensor_t *a, lunet_tensor_t *b)
{
    assert_int_equal(a->dtype, b->dtype);
    assert_int_equal(a->ndim, b->ndim);
    for (int d = 0; d < a->ndim; d++)
        assert_int_equal(a->shape[d], b->shape[d]);
    assert_int_equal(a->numel, b->numel);
    assert_true(lunet_tensor_is_contiguous(b));
    assert_int_equal(a->requires_grad, b->requires_grad);
    for (int64_t i = 0; i < a->numel; i++) {
        double x = lunet_tensor_get(a, i), y = lunet_tensor_get(b, i);
        if (!(isnan(x) && isnan(y)))
            assert_memory_equal(&x, &y, sizeof x); /* bit-exact, -0.0 included */
    }
}

static void test_every_dtype_and_rank(void **state)
{
    (void)state;
    const lunet_dtype_t dts[] = {LUNET_DTYPE_FLOAT32, LUNET_DTYPE_FLOAT64, LUNET_DTYPE_INT64,
                                 LUNET_DTYPE_UINT8, LUNET_DTYPE_BOOL};
    const int64_t shape[4] = {2, 3, 1, 4};
    const char *path = tmp_path("t.lunet");
    for (size_t k = 0; k < sizeof dts / sizeof dts[0]; k++)
        for (int nd = 0; nd <= 4; nd++) {
            lunet_tensor_t *t, *u;
            CHECK_OK(lunet_tensor_empty(&t, dts[k], nd, shape));
            for (int64_t i = 0; i < t->numel; i++) {
                double v = dts[k] == LUNET_DTYPE_BOOL    ? (double)(i % 3 == 0)
                           : dts[k] == LUNET_DTYPE_UINT8 ? (double)(250 - i)
                           : dts[k] == LUNET_DTYPE_INT64 ? (double)(i * 1000003 - 7)
                                                         : (i - 5) / 7.0 * (i % 2 ? -1 : 1);
                lunet_dtype_store((char *)lunet_tensor_data(t) + i * lunet_dtype_size(dts[k]),
                                  dts[k], v);
            }
            if (lunet_dtype_is_floating(dts[k]) && nd == 2)
                CHECK_OK(lunet_tensor_requires_grad_(t, true));
            lunet_value_t *v, *w;
            CHECK_OK(lunet_value_tensor(&v, t));
            CHECK_OK(lunet_value_save(path, v));
            CHECK_OK(lunet_value_load(&w, path));
            assert_int_equal(w->kind, LUNET_VALUE_TENSOR);
            u = w->u.tensor;
            check_same_tensor(t, u);
            assert_true(lunet_tensor_is_leaf(u));
            lunet_value_free(v);
            lunet_value_free(w);
            lunet_tensor_release(t);
        }
    assert_int_equal(tmp_count(".tmp."), 0);
}

static void test_views_and_special_values(void **state)
{
    (void)state;
    const char *path = tmp_path("v.lunet");
    /* a transposed view is written contiguous, in logical order */
    lunet_tensor_t *a, *at, *b;
    CHECK_OK(lunet_tensor_arange(&a, LUNET_DTYPE_FLOAT32, 0, 6, 1));
    lunet_tensor_t *a2;
    CHECK_OK(lunet_tensor_view(&a2, a, 2, (int64_t[]){2, 3}));
    CHECK_OK(lunet_tensor_transpose(&at, a2, 0, 1));
    const double nz = -0.0;
    double special[6] = {NAN, INFINITY, -INFINITY, nz, 5e-324, 1.7976931348623157e308};
    CHECK_OK(lunet_tensor_from_data(&b, LUNET_DTYPE_FLOAT64, 1, (int64_t[]){6}, special));
    lunet_tensor_t *empty;
    CHECK_OK(lunet_tensor_empty(&empty, LUNET_DTYPE_FLOAT32, 3, (int64_t[]){4, 0, 3}));
    lunet_value_t *m, *x;
    CHECK_OK(lunet_value_map(&m));
    put_tensor(m, "t", at);
    put_tensor(m, "special", b);
    put_tensor(m, "empty", empty);
    /* large float tensors switch deflate to Huffman-only and back: mix them with others */
    lunet_tensor_t *big, *ints;
    CHECK_OK(lunet_tensor_empty(&big, LUNET_DTYPE_FLOAT32, 1, (int64_t[]){5000}));
    for (int i = 0; i < 5000; i++)
        ((float *)lunet_tensor_data(big))[i] = (float)sin(i * 0.37) * 3.0f;
    CHECK_OK(lunet_tensor_arange(&ints, LUNET_DTYPE_INT64, 0, 5000, 1));
    put_tensor(m, "big", big);
    put_tensor(m, "ints", ints);
    put_tensor(m, "big2", big);
    CHECK_OK(lunet_value_string(&x, "after", 5));
    CHECK_OK(lunet_value_map_put_str(m, "tail", x));
    CHECK_OK(lunet_value_save(path, m));
    lunet_value_t *r;
    CHECK_OK(lunet_value_load(&r, path));
    const lunet_value_t *t = lunet_value_map_get(r, "t");
    assert_non_null(t);
    assert_int_equal(t->u.tensor->shape[0], 3);
    assert_int_equal(t->u.tensor->shape[1], 2);
    CHECK_TENSOR(t->u.tensor, ((double[]){0, 3, 1, 4, 2, 5}), 6, 0);
    const lunet_tensor_t *s = lunet_value_map_get(r, "special")->u.tensor;
    const double *sd = lunet_tensor_data(s);
    assert_true(isnan(sd[0]));
    assert_memory_equal(sd + 1, special + 1, 5 * sizeof(double));
    const lunet_tensor_t *e = lunet_value_map_get(r, "empty")->u.tensor;
    assert_int_equal(e->ndim, 3);
    assert_int_equal(e->numel, 0);
    assert_int_equal(e->shape[2], 3);
    check_same_tensor(big, lunet_value_map_get(r, "big")->u.tensor);
    check_same_tensor(ints, lunet_value_map_get(r, "ints")->u.tensor);
    check_same_tensor(big, lunet_value_map_get(r, "big2")->u.tensor);
    assert_string_equal(lunet_value_map_get(r, "tail")->u.str.data, "after");
    lunet_tensor_release(big);
    lunet_tensor_release(ints);
    lunet_value_free(m);
    lunet_value_free(r);
    lunet_tensor_release(a);
    lunet_tensor_release(a2);
    lunet_tensor_release(at);
    lunet_tensor_release(b);
    lunet_tensor_release(empty);
}

/* {state = {[0] = {momentum_buffer = T}}, param_groups = {{lr = 0.01, momentum = 0.5,
   nesterov = false, params = {0, 1, 2}}}, name = "a\0b", big = INT64_MIN, one = 1.0} */
static void test_nested_optimizer_state(void **state)
{
    (void)state;
    const char *path = tmp_path("opt.lunet");
    lunet_tensor_t *buf;
    CHECK_OK(lunet_tensor_full(&buf, LUNET_DTYPE_FLOAT32, 2, (int64_t[]){2, 2}, 0.25));
    lunet_value_t *root, *st, *s0, *groups, *g, *params, *x, *k;
    CHECK_OK(lunet_value_map(&root));
    CHECK_OK(lunet_value_map(&st));
    CHECK_OK(lunet_value_map(&s0));
    put_tensor(s0, "momentum_buffer", buf);
    CHECK_OK(lunet_value_int(&k, 0));
    CHECK_OK(lunet_value_map_put(st, k, s0));
    CHECK_OK(lunet_value_map_put_str(root, "state", st));
    CHECK_OK(lunet_value_map(&groups));
    CHECK_OK(lunet_value_map(&g));
    CHECK_OK(lunet_value_float(&x, 0.01));
    CHECK_OK(lunet_value_map_put_str(g, "lr", x));
    CHECK_OK(lunet_value_float(&x, 0.5));
    CHECK_OK(lunet_value_map_put_str(g, "momentum", x));
    CHECK_OK(lunet_value_bool(&x, false));
    CHECK_OK(lunet_value_map_put_str(g, "nesterov", x));
    CHECK_OK(lunet_value_map(&params));
    for (int i = 0; i < 3; i++) {
        CHECK_OK(lunet_value_int(&k, i + 1));
        CHECK_OK(lunet_value_int(&x, i));
        CHECK_OK(lunet_value_map_put(params, k, x));
    }
    CHECK_OK(lunet_value_map_put_str(g, "params", params));
    CHECK_OK(lunet_value_int(&k, 1));
    CHECK_OK(lunet_value_map_put(groups, k, g));
    CHECK_OK(lunet_value_map_put_str(root, "param_groups", groups));
    CHECK_OK(lunet_value_string(&x, "a\0b", 3));
    CHECK_OK(lunet_value_map_put_str(root, "name", x));
    CHECK_OK(lunet_value_int(&x, INT64_MIN));
    CHECK_OK(lunet_value_map_put_str(root, "big", x));
    CHECK_OK(lunet_value_float(&x, 1.0));
    CHECK_OK(lunet_value_map_put_str(root, "one", x));
    CHECK_OK(lunet_value_bool(&x, true));
    CHECK_OK(lunet_value_map_put_str(root, "", x));
    CHECK_OK(lunet_value_save(path, root));

    lunet_value_t *r;
    CHECK_OK(lunet_value_load(&r, path));
    assert_int_equal(r->kind, LUNET_VALUE_MAP);
    assert_int_equal(r->u.map.count, 6);
    /* file order = insertion order */
    assert_string_equal(r->u.map.entries[0].key->u.str.data, "state");
    assert_string_equal(r->u.map.entries[5].key->u.str.data, "");
    const lunet_value_t *mb = lunet_value_map_get(
        lunet_value_map_geti(lunet_value_map_get(r, "state"), 0), "momentum_buffer");
    assert_non_null(mb);
    CHECK_TENSOR(mb->u.tensor, ((double[]){0.25, 0.25, 0.25, 0.25}), 4, 0);
    const lunet_value_t *g1 = lunet_value_map_geti(lunet_value_map_get(r, "param_groups"), 1);
    assert_int_equal(lunet_value_map_get(g1, "lr")->kind, LUNET_VALUE_FLOAT);
    assert_true(lunet_value_map_get(g1, "lr")->u.f == 0.01);
    assert_int_equal(lunet_value_map_get(g1, "nesterov")->kind, LUNET_VALUE_BOOL);
    assert_false(lunet_value_map_get(g1, "nesterov")->u.b);
    const lunet_value_t *pr = lunet_value_map_get(g1, "params");
    assert_int_equal(pr->u.map.count, 3);
    assert_int_equal(lunet_value_map_geti(pr, 3)->kind, LUNET_VALUE_INT);
    assert_int_equal(lunet_value_map_geti(pr, 3)->u.i, 2);
    const lunet_value_t *nm = lunet_value_map_get(r, "name");
    assert_int_equal(nm->u.str.len, 3);
    assert_memory_equal(nm->u.str.data, "a\0b", 4);
    assert_int_equal(lunet_value_map_get(r, "big")->u.i, INT64_MIN);
    assert_int_equal(lunet_value_map_get(r, "one")->kind, LUNET_VALUE_FLOAT);
    assert_true(lunet_value_map_get(r, "")->u.b);
    assert_null(lunet_value_map_get(r, "missing"));
    lunet_value_free(r);

    /* sorted output is independent of insertion order */
    lunet_value_map_sort(root);
    assert_string_equal(root->u.map.entries[0].key->u.str.data, "");
    assert_string_equal(root->u.map.entries[5].key->u.str.data, "state");
    lunet_value_free(root);
    lunet_tensor_release(buf);
}

static void test_map_api_errors(void **state)
{
    (void)state;
    lunet_value_t *m, *k, *v;
    CHECK_OK(lunet_value_map(&m));
    CHECK_OK(lunet_value_float(&k, 1.5));
    CHECK_OK(lunet_value_int(&v, 1));
    /* a float key is refused, and both values are freed (valgrind checks) */
    CHECK_FAILS(lunet_value_map_put(m, k, v), LUNET_STATUS_TYPE, "int or a string");
    CHECK_FAILS(lunet_value_map_put(m, NULL, NULL), LUNET_STATUS_TYPE, "key");
    CHECK_OK(lunet_value_int(&v, 1));
    CHECK_FAILS(lunet_value_map_put(v, NULL, NULL), LUNET_STATUS_TYPE, "not a map");
    lunet_value_free(v);
    /* duplicate keys: refused at save time, with the key path */
    lunet_value_t *inner;
    CHECK_OK(lunet_value_map(&inner));
    CHECK_OK(lunet_value_int(&v, 1));
    CHECK_OK(lunet_value_map_put_str(inner, "a", v));
    CHECK_OK(lunet_value_int(&v, 2));
    CHECK_OK(lunet_value_map_put_str(inner, "a", v));
    CHECK_OK(lunet_value_map_put_str(m, "opt", inner));
    const char *path = tmp_path("dup.lunet");
    CHECK_FAILS(lunet_value_save(path, m), LUNET_STATUS_VALUE, "duplicate key 'opt.a'");
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(tmp_count(".tmp."), 0);
    lunet_value_free(m);
    /* a directory that does not exist */
    CHECK_OK(lunet_value_int(&v, 1));
    CHECK_FAILS(lunet_value_save("/nonexistent-dir/x.lunet", v), LUNET_STATUS_IO,
                "/nonexistent-dir/x.lunet");
    lunet_value_free(v);
    lunet_value_t *r = NULL;
    CHECK_FAILS(lunet_value_load(&r, tmp_path("missing.lunet")), LUNET_STATUS_IO, "missing.lunet");
    CHECK_FAILS(lunet_value_load(&r, tmpdir), LUNET_STATUS_IO, "not a regular file");
}

static void test_save_load_tensors(void **state)
{
    (void)state;
    lunet_tensor_t *w, *b;
    CHECK_OK(lunet_tensor_full(&w, LUNET_DTYPE_FLOAT32, 2, (int64_t[]){3, 2}, -1.5));
    CHECK_OK(lunet_tensor_arange(&b, LUNET_DTYPE_INT64, 0, 3, 1));
    const char *names[] = {"layer1.weight", "layer1.bias"};
    lunet_tensor_t *ts[] = {w, b};
    const char *path = tmp_path("sd.lunet");
    CHECK_OK(lunet_tensors_save(path, 2, names, ts));
    size_t n;
    char **nm;
    lunet_tensor_t **lt;
    CHECK_OK(lunet_tensors_load(&n, &nm, &lt, path));
    assert_int_equal(n, 2);
    assert_string_equal(nm[0], "layer1.weight");
    assert_string_equal(nm[1], "layer1.bias");
    check_same_tensor(w, lt[0]);
    check_same_tensor(b, lt[1]);
    lunet_tensors_free(n, nm, lt);
    /* a file holding something else */
    lunet_value_t *v;
    CHECK_OK(lunet_value_int(&v, 3));
    CHECK_OK(lunet_value_save(path, v));
    lunet_value_free(v);
    CHECK_FAILS(lunet_tensors_load(&n, &nm, &lt, path), LUNET_STATUS_TYPE, "not a map");
    CHECK_FAILS(lunet_tensors_save(path, 1, (const char *[]){NULL}, ts), LUNET_STATUS_VALUE,
                "NULL");
    lunet_tensor_release(w);
    lunet_tensor_release(b);
}

/* ---------------------------------------------------------------- bad files ------------ */

static void test_every_truncation(void **state)
{
    (void)state;
    const char *path = tmp_path("full.lunet"), *cut = tmp_path("cut.lunet");
    lunet_tensor_t *t;
    CHECK_OK(lunet_tensor_arange(&t, LUNET_DTYPE_FLOAT32, 0, 5, 1));
    lunet_value_t *m, *x;
    CHECK_OK(lunet_value_map(&m));
    put_tensor(m, "w", t);
    CHECK_OK(lunet_value_string(&x, "hello", 5));
    CHECK_OK(lunet_value_map_put_str(m, "s", x));
    CHECK_OK(lunet_value_save(path, m));
    size_t n;
    unsigned char *bytes = read_bytes(path, &n);
    assert_true(n > 40);
    for (size_t len = 0; len < n; len++) {
        write_bytes(cut, bytes, len);
        lunet_value_t *r = NULL;
        lunet_status_t st = lunet_value_load(&r, cut);
        assert_int_equal(st, LUNET_STATUS_VALUE);
        assert_null(r);
        const char *msg = lunet_error_message();
        assert_non_null(strstr(msg, cut));
        if (len == 0)
            assert_non_null(strstr(msg, "not a Lunet file"));
        else
            assert_non_null(strstr(msg, "truncated"));
    }
    /* every single flipped byte is caught as well (header CRC, zlib, payload CRC) */
    for (size_t i = 0; i < n; i++) {
        bytes[i] ^= 0x41;
        write_bytes(cut, bytes, n);
        lunet_value_t *r = NULL;
        assert_int_not_equal(lunet_value_load(&r, cut), LUNET_OK);
        assert_null(r);
        bytes[i] ^= 0x41;
    }
    /* one byte too many */
    unsigned char *longer = malloc(n + 1);
    memcpy(longer, bytes, n);
    longer[n] = 0;
    write_bytes(cut, longer, n + 1);
    expect_load_error(cut, "corrupt data (1 bytes after the end of the data)");
    free(longer);
    write_bytes(cut, bytes, n);
    lunet_value_t *r;
    CHECK_OK(lunet_value_load(&r, cut));
    lunet_value_free(r);
    free(bytes);
    lunet_value_free(m);
    lunet_tensor_release(t);
}

static void test_foreign_and_versions(void **state)
{
    (void)state;
    const char *path = tmp_path("foreign");
    write_bytes(path, "hello, world: this is plain text and not a checkpoint", 53);
    expect_load_error(path, "not a Lunet file");
    const unsigned char png[] = {0x89, 'P', 'N', 'G', 13, 10, 26, 10, 0, 0, 0, 13};
    write_bytes(path, png, sizeof png);
    expect_load_error(path, "not a Lunet file");
    write_bytes(path, "LUN", 3);
    expect_load_error(path, "truncated");
    /* an IDX file is not a checkpoint either */
    lunet_tensor_t *t;
    CHECK_OK(lunet_tensor_zeros(&t, LUNET_DTYPE_UINT8, 1, (int64_t[]){4}));
    CHECK_OK(lunet_idx_write(path, t, 0, true));
    expect_load_error(path, "not a Lunet file");
    lunet_tensor_release(t);

    const unsigned char payload[] = {0x03, 7, 0, 0, 0, 0, 0, 0, 0}; /* int 7 */
    write_raw(path, payload, sizeof payload, 0, 1);
    lunet_value_t *v;
    CHECK_OK(lunet_value_load(&v, path));
    assert_int_equal(v->kind, LUNET_VALUE_INT);
    assert_int_equal(v->u.i, 7);
    lunet_value_free(v);
    write_raw(path, payload, sizeof payload, 0, 2);
    expect_load_error(path, "unsupported version 2 (this build reads version 1)");
    write_raw(path, payload, sizeof payload, 0, 0);
    expect_load_error(path, "unsupported version 0");
    /* header lies about the payload size */
    write_raw(path, payload, sizeof payload, 10, 1);
    expect_load_error(path, "corrupt data");
    write_raw(path, payload, sizeof payload, 8, 1);
    expect_load_error(path, "corrupt data");
    write_raw(path, payload, sizeof payload, (uint64_t)1 << 50, 1);
    expect_load_error(path, "corrupt data (payload of 1125899906842624 bytes");
}

/* requires_grad on an integer tensor: no writer makes it, so the file is damaged (issue 10) */
static void test_integer_requires_grad_is_corrupt(void **state)
{
    (void)state;
    const char *path = tmp_path("intgrad.lunet");
    unsigned char p[20];
    p[0] = 0x06, p[1] = 2 /* int64 */, p[2] = 1 /* requires_grad */, p[3] = 1;
    put_le(p + 4, 1, 8);
    put_le(p + 12, 7, 8);
    write_raw(path, p, 20, 0, 1);
    expect_load_error(path, "corrupt data (int64 tensor marked requires_grad");
    assert_non_null(strstr(lunet_error_message(), path));
    p[1] = 1; /* the same as float64 loads, a leaf that requires grad */
    write_raw(path, p, 20, 0, 1);
    lunet_value_t *v = NULL;
    CHECK_OK(lunet_value_load(&v, path));
    assert_true(v->u.tensor->requires_grad);
    lunet_value_free(v);
}

static void test_lying_payloads(void **state)
{
    (void)state;
    const char *path = tmp_path("lie.lunet");
    unsigned char p[64];
    /* a string claiming 2^62 bytes */
    p[0] = 0x05;
    put_le(p + 1, (uint64_t)1 << 62, 8);
    write_raw(path, p, 9, 0, 1);
    expect_load_error(path, "string of 4611686018427387904 bytes");
    /* a map claiming 2^60 entries */
    p[0] = 0x07;
    put_le(p + 1, (uint64_t)1 << 60, 8);
    write_raw(path, p, 9, 0, 1);
    expect_load_error(path, "map of 1152921504606846976 entries");
    /* a tensor (2^40, 2^40) float32, and one whose shape product overflows 64 bits */
    p[0] = 0x06, p[1] = 0, p[2] = 0, p[3] = 2;
    put_le(p + 4, (uint64_t)1 << 40, 8);
    put_le(p + 12, (uint64_t)1 << 40, 8);
    write_raw(path, p, 20, 0, 1);
    expect_load_error(path, "tensor data larger than");
    p[3] = 4;
    for (int d = 0; d < 4; d++)
        put_le(p + 4 + 8 * d, (uint64_t)1 << 33, 8);
    write_raw(path, p, 36, 0, 1);
    expect_load_error(path, "tensor data larger than");
    /* a zero-size dim needs no data, but the shape must still be one the runtime allows */
    put_le(p + 4, 0, 8);
    write_raw(path, p, 36, 0, 1);
    lunet_value_t *v = NULL;
    CHECK_FAILS(lunet_value_load(&v, path), LUNET_STATUS_RUNTIME, "cannot create the tensor");
    assert_non_null(strstr(lunet_error_message(), path));
    put_le(p + 12, 5, 8), put_le(p + 20, 1 << 20, 8), put_le(p + 28, 3, 8);
    write_raw(path, p, 36, 0, 1);
    CHECK_OK(lunet_value_load(&v, path));
    assert_int_equal(v->u.tensor->numel, 0);
    assert_int_equal(v->u.tensor->shape[2], 1 << 20);
    lunet_value_free(v);
    /* negative size, too many dims, unknown dtype, bad flags, bool byte 2 */
    put_le(p + 4, (uint64_t)-1, 8);
    write_raw(path, p, 36, 0, 1);
    expect_load_error(path, "negative size in dim 0");
    p[3] = 17;
    write_raw(path, p, 36, 0, 1);
    expect_load_error(path, "tensor of 17 dims");
    p[1] = 9, p[3] = 1;
    write_raw(path, p, 36, 0, 1);
    expect_load_error(path, "unknown dtype code 9");
    p[1] = 0, p[2] = 4;
    write_raw(path, p, 36, 0, 1);
    expect_load_error(path, "tensor flags 0x04");
    p[1] = 4, p[2] = 0, p[3] = 1;
    put_le(p + 4, 2, 8);
    p[12] = 1, p[13] = 2;
    write_raw(path, p, 14, 0, 1);
    expect_load_error(path, "bool tensor holds byte 0x02");
    /* unknown tag; a float as a map key; a duplicate key (with its path) */
    p[0] = 0x99;
    write_raw(path, p, 1, 0, 1);
    expect_load_error(path, "unknown value tag 0x99");
    unsigned char fk[] = {0x07, 1, 0, 0, 0, 0, 0, 0, 0, 0x04, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x01};
    write_raw(path, fk, sizeof fk, 0, 1);
    expect_load_error(path, "map key with tag 0x04");
    unsigned char dk[] = {0x07, 2, 0,   0,    0,    0, 0, 0, 0, 0x05, 1, 0, 0, 0,   0,   0,
                          0,    0, 'a', 0x01, 0x05, 1, 0, 0, 0, 0,    0, 0, 0, 'a', 0x02};
    write_raw(path, dk, sizeof dk, 0, 1);
    expect_load_error(path, "duplicate key, at key 'a'");
    /* bytes left over after the value; a value cut short */
    unsigned char two[] = {0x01, 0x02};
    write_raw(path, two, 2, 0, 1);
    expect_load_error(path, "1 bytes after the value");
    unsigned char shortint[] = {0x03, 1, 2};
    write_raw(path, shortint, 3, 0, 1);
    expect_load_error(path, "int of 8 bytes runs past the end");
    /* 1000 nested maps: refused before the C stack is at risk */
    size_t depth = 1000;
    unsigned char *deep = malloc(depth * 18 + 1);
    for (size_t i = 0; i < depth; i++) {
        unsigned char *q = deep + 18 * i;
        q[0] = 0x07;
        put_le(q + 1, 1, 8);
        q[9] = 0x03;
        put_le(q + 10, i, 8);
    }
    deep[depth * 18] = 0x01;
    write_raw(path, deep, depth * 18 + 1, 0, 1);
    expect_load_error(path, "maps nested too deeply");
    free(deep);
}

/* ---------------------------------------------------------------- failing writes ------- */

static void test_failed_save_keeps_old_file(void **state)
{
    (void)state;
    const char *path = tmp_path("ckpt.lunet");
    lunet_tensor_t *old_t, *new_t;
    CHECK_OK(lunet_tensor_full(&old_t, LUNET_DTYPE_FLOAT32, 1, (int64_t[]){1000}, 1.0));
    CHECK_OK(lunet_tensor_empty(&new_t, LUNET_DTYPE_FLOAT64, 1, (int64_t[]){20000}));
    for (int64_t i = 0; i < 20000; i++) /* poorly compressible, so the body is long */
        ((double *)lunet_tensor_data(new_t))[i] = sin((double)i * 12.9898) * 43758.5453;
    lunet_value_t *vo, *vn;
    CHECK_OK(lunet_value_tensor(&vo, old_t));
    CHECK_OK(lunet_value_tensor(&vn, new_t));
    CHECK_OK(lunet_value_save(path, vo));
    size_t n0;
    unsigned char *before = read_bytes(path, &n0);
    const int64_t cuts[] = {0, 1, 35, 36, 37, 100, 4096, 65536 + 36, 100000};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        lunet_serialize_set_fault(cuts[i]);
        CHECK_FAILS(lunet_value_save(path, vn), LUNET_STATUS_IO, "simulated write failure");
        assert_non_null(strstr(lunet_error_message(), path));
        size_t n1;
        unsigned char *after = read_bytes(path, &n1);
        assert_int_equal(n0, n1);
        assert_memory_equal(before, after, n0);
        free(after);
        assert_int_equal(tmp_count(".tmp."), 0);
    }
    /* the environment variable does the same until the API is used... */
    lunet_serialize_set_fault(-1);
    CHECK_OK(lunet_value_save(path, vn));
    lunet_value_t *r;
    CHECK_OK(lunet_value_load(&r, path));
    check_same_tensor(new_t, r->u.tensor);
    lunet_value_free(r);
    free(before);
    lunet_value_free(vo);
    lunet_value_free(vn);
    lunet_tensor_release(old_t);
    lunet_tensor_release(new_t);
}

/* ---------------------------------------------------------------- frozen file ---------- */

/* A version-1 file written by tests/fixtures/gen_serialize.py, an independent encoder that
   follows docs/FORMAT.md: this build must keep reading it. */
static void test_golden_file(void **state)
{
    (void)state;
    const char *path = tmp_path("golden.lunet");
    write_bytes(path, serialize_golden_bytes, sizeof serialize_golden_bytes);
    lunet_value_t *r;
    CHECK_OK(lunet_value_load(&r, path));
    assert_int_equal(r->kind, LUNET_VALUE_MAP);
    const lunet_value_t *w = lunet_value_map_get(r, "layer1.weight");
    assert_non_null(w);
    assert_int_equal(w->u.tensor->dtype, LUNET_DTYPE_FLOAT32);
    assert_int_equal(w->u.tensor->ndim, 2);
    assert_true(w->u.tensor->requires_grad);
    CHECK_TENSOR(w->u.tensor, serialize_golden_weight, 6, 0);
    const lunet_value_t *b = lunet_value_map_get(r, "labels");
    assert_int_equal(b->u.tensor->dtype, LUNET_DTYPE_INT64);
    CHECK_TENSOR(b->u.tensor, ((double[]){-1, 0, 9007199254740993.0}), 3, 0);
    assert_int_equal(((int64_t *)lunet_tensor_data(b->u.tensor))[2], 9007199254740993LL);
    const lunet_value_t *g = lunet_value_map_geti(lunet_value_map_get(r, "param_groups"), 1);
    assert_true(lunet_value_map_get(g, "lr")->u.f == 0.01);
    assert_int_equal(lunet_value_map_get(g, "step")->kind, LUNET_VALUE_INT);
    assert_int_equal(lunet_value_map_get(g, "step")->u.i, 938);
    assert_string_equal(lunet_value_map_get(r, "note")->u.str.data, "caf\xc3\xa9 <&>");
    assert_true(lunet_value_map_get(r, "flag")->u.b);
    const lunet_value_t *mask = lunet_value_map_get(r, "mask");
    CHECK_TENSOR(mask->u.tensor, ((double[]){1, 0, 1}), 3, 0);
    lunet_value_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_dtype_and_rank, tmpdir_setup, teardown),
        cmocka_unit_test_setup_teardown(test_views_and_special_values, tmpdir_setup, teardown),
        cmocka_unit_test_setup_teardown(test_nested_optimizer_state, tmpdir_setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_api_errors, tmpdir_setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_load_tensors, tmpdir_setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_truncation, tmpdir_setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_and_versions, tmpdir_setup, teardown),
        cmocka_unit_test_setup_teardown(test_lying_payloads, tmpdir_setup, teardown),
        cmocka_unit_test_setup_teardown(test_integer_requires_grad_is_corrupt, tmpdir_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_failed_save_keeps_old_file, tmpdir_setup, teardown),
        cmocka_unit_test_setup_teardown(test_golden_file, tmpdir_setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
