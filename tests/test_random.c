/*
 * test_random.c - the generator against PyTorch 1.13 (docs/pytorch-parity.md §14).
 *
 * Expected values come from tests/fixtures/gen_random.py (real torch); long streams are
 * compared through an FNV-1a hash of their bytes, so one flipped bit anywhere fails.
 */
#include "check.h"

#include "fixtures/random_golden.h"

static lunet_generator_t gen;

static uint64_t fnv1a(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * UINT64_C(0x100000001b3);
    return h;
}

static uint64_t tensor_hash(lunet_tensor_t *t)
{
    return fnv1a(lunet_tensor_data(t), (size_t)t->numel * lunet_dtype_size(t->dtype));
}

static lunet_tensor_t *make(lunet_dtype_t dt, int64_t n)
{
    lunet_tensor_t *t = NULL;
    CHECK_OK(lunet_tensor_empty(&t, dt, 1, &n));
    return t;
}

typedef lunet_status_t (*fill_fn_t)(lunet_tensor_t *, lunet_generator_t *, double, double);

/* A new 1-d tensor of n dt elements filled by fill(t, gen, a, b) right after seeding gen. */
static lunet_tensor_t *seeded(fill_fn_t fill, lunet_dtype_t dt, int64_t n, uint64_t seed, double a,
                              double b)
{
    lunet_tensor_t *t = make(dt, n);
    lunet_generator_seed(&gen, seed);
    CHECK_OK(fill(t, &gen, a, b));
    return t;
}

/* empty(rows, cols).t(): a view whose memory order is not its logical order. */
static lunet_tensor_t *transposed(lunet_dtype_t dt, int64_t rows, int64_t cols)
{
    lunet_tensor_t *base, *x;
    CHECK_OK(lunet_tensor_empty(&base, dt, 2, (const int64_t[]){rows, cols}));
    CHECK_OK(lunet_tensor_transpose(&x, base, 0, 1));
    lunet_tensor_release(base); /* x keeps the storage */
    assert_false(lunet_tensor_is_contiguous(x));
    return x;
}

/* Bit-exact comparison of every element (read as double) with want[]. */
static void check_exact_at(const char *what, lunet_tensor_t *t, int64_t start, const double *want,
                           int64_t n, const char *file, int line)
{
    for (int64_t i = 0; i < n; i++) {
        double got = lunet_tensor_get(t, start + i);
        if (memcmp(&got, &want[i], sizeof got) != 0) {
            print_error("%s: element %lld: got %.17g, expected %.17g\n", what,
                        (long long)(start + i), got, want[i]);
            _fail(file, line);
        }
    }
}
#define CHECK_EXACT(t, start, want, n)                                                             \
    check_exact_at(#t, (t), (start), (want), (n), __FILE__, __LINE__)
#define LEN(a) ((int64_t)(sizeof(a) / sizeof((a)[0])))

/* ---------------------------------------------------------------- generator */

static void test_mt_first_outputs(void **state)
{
    lunet_generator_seed(&gen, 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(lunet_generator_random32(&gen), golden_mt_seed0[i]);
    // random64 = (first << 32) | second
    lunet_generator_seed(&gen, 0);
    assert_true(lunet_generator_random64(&gen) ==
                (((uint64_t)golden_mt_seed0[0] << 32) | golden_mt_seed0[1]));
    assert_true(lunet_generator_random64(&gen) ==
                (((uint64_t)golden_mt_seed0[2] << 32) | golden_mt_seed0[3]));
    // only the low 32 bits seed MT; initial_seed keeps the full value
    lunet_generator_seed(&gen, (UINT64_C(5) << 32) | 0);
    assert_int_equal(lunet_generator_random32(&gen), golden_mt_seed0[0]);
    assert_true(lunet_generator_initial_seed(&gen) == ((UINT64_C(5) << 32) | 0));
    lunet_generator_seed(&gen, UINT64_MAX);
    assert_true(lunet_generator_initial_seed(&gen) == UINT64_MAX);
}

static void test_default_generator(void **state)
{
    lunet_generator_t *g = lunet_default_generator();
    assert_non_null(g);
    assert_ptr_equal(g, lunet_default_generator());
    // seeding the default generator makes NULL-generator calls reproducible
    lunet_generator_seed(g, 0);
    lunet_tensor_t *t = make(LUNET_DTYPE_FLOAT32, 3);
    CHECK_OK(lunet_tensor_uniform_(t, NULL, 0, 1));
    CHECK_EXACT(t, 0, golden_rand3_seed0, 3);
    lunet_tensor_release(t);
}

/* ---------------------------------------------------------------- streams */

/*
 * uniform_(a, b) or normal_(a = mean, b = std) on a new contiguous 1-d tensor of n elements
 * right after manual_seed(seed): count values from start compared bit for bit with want, and
 * when hash is not 0 the FNV-1a hash of all n.
 */
static const struct stream {
    const char *what;
    fill_fn_t fill;
    lunet_dtype_t dtype;
    int64_t n;
    uint64_t seed;
    double a, b;
    int64_t start, count;
    const double *want;
    uint64_t hash;
} streams[] = {
    // what, fill, dtype, n, seed, a, b, start, count, want, hash
    // rand: the twist runs every 624 outputs; 100000 float32 draws cross it many times
    {"rand(3)", lunet_tensor_uniform_, LUNET_DTYPE_FLOAT32, 3, 0, 0, 1, 0, 3,
     (const double[]){0.49625658988952637, 0.7682217955589294, 0.08847743272781372}, 0},
    {"rand(100000)", lunet_tensor_uniform_, LUNET_DTYPE_FLOAT32, 100000, 7, 0, 1, 0,
     LEN(golden_rand_seed7_head), golden_rand_seed7_head, GOLDEN_RAND_SEED7_N100000_HASH},
    {"rand(1000, float64)", lunet_tensor_uniform_, LUNET_DTYPE_FLOAT64, 1000, 5, 0, 1, 0,
     LEN(golden_rand_f64_seed5_head), golden_rand_f64_seed5_head, GOLDEN_RAND_F64_SEED5_N1000_HASH},
    // normal, fewer than 16 elements: the per-element path; mean and std other than 0/1, both
    // dtypes, 15 elements (the largest small size)
    {"normal(0, 0.01, 3)", lunet_tensor_normal_, LUNET_DTYPE_FLOAT32, 3, 0, 0, 0.01, 0, 3,
     (const double[]){0.015409961342811584, -0.002934289164841175, -0.021787893027067184}, 0},
    {"randn(5)", lunet_tensor_normal_, LUNET_DTYPE_FLOAT32, 5, 0, 0, 1, 0, 5,
     (const double[]){1.5409960746765137, -0.293428897857666, -2.1787893772125244,
                      0.5684312582015991, -1.0845223665237427},
     0},
    {"normal(0.3, 1.7, 15)", lunet_tensor_normal_, LUNET_DTYPE_FLOAT32, 15, 2, 0.3, 1.7, 0, 15,
     golden_normal15_f32_seed2, 0},
    {"normal(0.3, 1.7, 15, float64)", lunet_tensor_normal_, LUNET_DTYPE_FLOAT64, 15, 2, 0.3, 1.7, 0,
     15, golden_normal15_f64_seed2, 0},
    // normal, >= 16 contiguous float32: block-of-16 Box-Muller with the avx_mathfun
    // polynomials; n % 16 != 0: the last 16 are redrawn and recomputed; the boundary sizes
    // 16 and 17
    {"normal(0, 0.01, 7840) head", lunet_tensor_normal_, LUNET_DTYPE_FLOAT32, 7840, 0, 0, 0.01, 0,
     32, golden_normal7840_seed0_head, GOLDEN_NORMAL7840_SEED0_HASH},
    {"normal(0, 0.01, 7840) tail", lunet_tensor_normal_, LUNET_DTYPE_FLOAT32, 7840, 0, 0, 0.01,
     7840 - 16, 16, golden_normal7840_seed0_tail, 0},
    {"normal(0.5, 2, 1000) tail", lunet_tensor_normal_, LUNET_DTYPE_FLOAT32, 1000, 3, 0.5, 2.0,
     1000 - 24, 24, golden_normal1000_seed3_tail, GOLDEN_NORMAL1000_SEED3_HASH},
    {"randn(200000)", lunet_tensor_normal_, LUNET_DTYPE_FLOAT32, 200000, 5, 0, 1, 0, 0, NULL,
     GOLDEN_RANDN200000_SEED5_HASH},
    {"randn(16)", lunet_tensor_normal_, LUNET_DTYPE_FLOAT32, 16, 0, 0, 1, 0, 16,
     golden_randn16_seed0, 0},
    {"randn(17)", lunet_tensor_normal_, LUNET_DTYPE_FLOAT32, 17, 0, 0, 1, 0, 17,
     golden_randn17_seed0, 0},
    // normal, >= 16 float64: libm
    {"randn(40, float64)", lunet_tensor_normal_, LUNET_DTYPE_FLOAT64, 40, 0, 0, 1, 0, 40,
     golden_normal40_f64_seed0, 0},
    {"normal(0.3, 1.7, 10007, float64)", lunet_tensor_normal_, LUNET_DTYPE_FLOAT64, 10007, 1, 0.3,
     1.7, 0, 0, NULL, GOLDEN_NORMAL10007_F64_SEED1_HASH},
};

static void test_streams(void **state)
{
    for (size_t k = 0; k < sizeof streams / sizeof streams[0]; k++) {
        const struct stream *c = &streams[k];
        lunet_tensor_t *t = seeded(c->fill, c->dtype, c->n, c->seed, c->a, c->b);
        check_exact_at(c->what, t, c->start, c->want, c->count, __FILE__, __LINE__);
        if (c->hash && tensor_hash(t) != c->hash)
            fail_msg("%s: hash %016llx, expected %016llx", c->what,
                     (unsigned long long)tensor_hash(t), (unsigned long long)c->hash);
        lunet_tensor_release(t);
    }
}

/* ---------------------------------------------------------------- uniform */

static void test_uniform_bounds(void **state)
{
    static const struct {
        uint64_t seed;
        double a, b;
        const double *head;
        uint64_t hash, hash64;
    } cases[4] = {
        {42, -0.5, 0.5, golden_uniform0_head, GOLDEN_UNIFORM0_HASH, GOLDEN_UNIFORM0_F64_HASH},
        {1, -0.0357142873108387, 0.0357142873108387, golden_uniform1_head, GOLDEN_UNIFORM1_HASH,
         GOLDEN_UNIFORM1_F64_HASH},
        {7, 0.1, 0.7, golden_uniform2_head, GOLDEN_UNIFORM2_HASH, GOLDEN_UNIFORM2_F64_HASH},
        {3, -1.3, 2.9, golden_uniform3_head, GOLDEN_UNIFORM3_HASH, GOLDEN_UNIFORM3_F64_HASH},
    };
    for (int k = 0; k < 4; k++) {
        lunet_tensor_t *t = seeded(lunet_tensor_uniform_, LUNET_DTYPE_FLOAT32, GOLDEN_UNIFORM_N,
                                   cases[k].seed, cases[k].a, cases[k].b);
        CHECK_EXACT(t, 0, cases[k].head, 16);
        assert_true(tensor_hash(t) == cases[k].hash);
        lunet_tensor_release(t);
        t = seeded(lunet_tensor_uniform_, LUNET_DTYPE_FLOAT64, GOLDEN_UNIFORM_N, cases[k].seed,
                   cases[k].a, cases[k].b);
        assert_true(tensor_hash(t) == cases[k].hash64);
        lunet_tensor_release(t);
    }
}

static void test_uniform_noncontiguous(void **state)
{
    // x = empty(4, 6).t(): PyTorch's TensorIterator draws in memory order (storage order)
    lunet_tensor_t *base, *x = transposed(LUNET_DTYPE_FLOAT32, 4, 6);
    lunet_generator_seed(&gen, 11);
    CHECK_OK(lunet_tensor_uniform_(x, &gen, -1, 1));
    CHECK_EXACT(x, 0, golden_uniform_t6x4_seed11, 24);
    lunet_tensor_release(x);

    // empty(2, 3, 4).permute(2, 0, 1)
    int64_t shape3[3] = {2, 3, 4}, dims[3] = {2, 0, 1};
    CHECK_OK(lunet_tensor_empty(&base, LUNET_DTYPE_FLOAT32, 3, shape3));
    CHECK_OK(lunet_tensor_permute(&x, base, 3, dims));
    lunet_generator_seed(&gen, 13);
    CHECK_OK(lunet_tensor_uniform_(x, &gen, 0, 1));
    CHECK_EXACT(x, 0, golden_uniform_perm4x2x3_seed13, 24);
    lunet_tensor_release(x);
    lunet_tensor_release(base);

    // empty(5, 8).narrow(1, 2, 3)
    int64_t shape58[2] = {5, 8};
    CHECK_OK(lunet_tensor_empty(&base, LUNET_DTYPE_FLOAT32, 2, shape58));
    CHECK_OK(lunet_tensor_narrow(&x, base, 1, 2, 3));
    lunet_generator_seed(&gen, 14);
    CHECK_OK(lunet_tensor_uniform_(x, &gen, 0, 1));
    CHECK_EXACT(x, 0, golden_uniform_narrow5x3_seed14, 15);
    lunet_tensor_release(x);
    lunet_tensor_release(base);

    // int64 random_(0, 100) on empty(3, 7).t()
    x = transposed(LUNET_DTYPE_INT64, 3, 7);
    lunet_generator_seed(&gen, 15);
    CHECK_OK(lunet_tensor_random_int_(x, &gen, 0, 100));
    for (int64_t i = 0; i < 21; i++)
        assert_true(lunet_tensor_get(x, i) == (double)golden_randint_t7x3_seed15[i]);
    lunet_tensor_release(x);
}

static void test_uniform_errors(void **state)
{
    lunet_tensor_t *t = make(LUNET_DTYPE_FLOAT32, 3);
    CHECK_FAILS(lunet_tensor_uniform_(t, &gen, 2, 1), LUNET_STATUS_RUNTIME,
                "uniform_ expects to return a [from, to) range, but found from=2 > to=1");
    CHECK_FAILS(lunet_tensor_uniform_(t, &gen, -3e38, 3e38), LUNET_STATUS_RUNTIME,
                "uniform_ expects to-from <= std::numeric_limits<Float>::max(), but found "
                "to=3e+38 and from=-3e+38 which result in to-from to exceed the limit");
    CHECK_FAILS(lunet_tensor_uniform_(t, &gen, INFINITY, 1), LUNET_STATUS_RUNTIME,
                "from is out of bounds for float");
    // from == to is allowed and gives the bound
    CHECK_OK(lunet_tensor_uniform_(t, &gen, 1, 1));
    const double ones[3] = {1, 1, 1};
    CHECK_EXACT(t, 0, ones, 3);
    lunet_tensor_release(t);
    t = make(LUNET_DTYPE_INT64, 3);
    CHECK_FAILS(lunet_tensor_uniform_(t, &gen, 0, 1), LUNET_STATUS_RUNTIME,
                "\"check_uniform_bounds\" not implemented for 'Long'");
    lunet_tensor_release(t);
    // an expanded tensor cannot be written element by element
    lunet_tensor_t *one = make(LUNET_DTYPE_FLOAT32, 1), *ex;
    int64_t four = 4;
    CHECK_OK(lunet_tensor_expand(&ex, one, 1, &four));
    CHECK_FAILS(lunet_tensor_uniform_(ex, &gen, 0, 1), LUNET_STATUS_RUNTIME,
                "more than one element of the written-to tensor refers to a single memory");
    lunet_tensor_release(ex);
    lunet_tensor_release(one);
}

/* ---------------------------------------------------------------- integers */

static void test_randperm(void **state)
{
    lunet_tensor_t *t;
    lunet_generator_seed(&gen, 0);
    CHECK_OK(lunet_tensor_randperm(&t, &gen, 10));
    assert_int_equal(t->dtype, LUNET_DTYPE_INT64);
    const int64_t want[10] = {4, 1, 7, 5, 3, 9, 0, 8, 6, 2};
    assert_memory_equal(lunet_tensor_data(t), want, sizeof want);
    assert_memory_equal(lunet_tensor_data(t), golden_randperm10_seed0, sizeof want);
    lunet_tensor_release(t);

    lunet_generator_seed(&gen, 0);
    CHECK_OK(lunet_tensor_randperm(&t, &gen, 60000));
    const int64_t *r = lunet_tensor_data(t);
    assert_int_equal(r[0], 36044);
    assert_int_equal(r[4], 21567);
    assert_memory_equal(r, golden_randperm60000_seed0_head, sizeof golden_randperm60000_seed0_head);
    assert_true(tensor_hash(t) == GOLDEN_RANDPERM60000_SEED0_HASH);
    lunet_tensor_release(t);

    // n = 0 and n = 1 draw nothing
    lunet_generator_seed(&gen, 0);
    CHECK_OK(lunet_tensor_randperm(&t, &gen, 0));
    assert_int_equal(t->numel, 0);
    lunet_tensor_release(t);
    CHECK_OK(lunet_tensor_randperm(&t, &gen, 1));
    assert_int_equal(((int64_t *)lunet_tensor_data(t))[0], 0);
    lunet_tensor_release(t);
    assert_int_equal(lunet_generator_random32(&gen), golden_mt_seed0[0]);

    CHECK_FAILS(lunet_tensor_randperm(&t, &gen, -1), LUNET_STATUS_RUNTIME,
                "Trying to create tensor with negative dimension -1: [-1]");
}

static void test_randint(void **state)
{
    lunet_tensor_t *t = make(LUNET_DTYPE_INT64, 8);
    lunet_generator_seed(&gen, 0);
    CHECK_OK(lunet_tensor_random_int_(t, &gen, 3, 10));
    assert_memory_equal(lunet_tensor_data(t), golden_randint_3_10_seed0, 8 * sizeof(int64_t));
    lunet_tensor_release(t);

    // range >= 2^32 uses 64-bit draws
    t = make(LUNET_DTYPE_INT64, 4);
    lunet_generator_seed(&gen, 0);
    CHECK_OK(lunet_tensor_random_int_(t, &gen, -(INT64_C(1) << 40), INT64_C(1) << 40));
    assert_memory_equal(lunet_tensor_data(t), golden_randint_wide_seed0, 4 * sizeof(int64_t));
    lunet_tensor_release(t);

    t = make(LUNET_DTYPE_FLOAT32, 4);
    lunet_generator_seed(&gen, 0);
    CHECK_OK(lunet_tensor_random_int_(t, &gen, 0, 10));
    CHECK_EXACT(t, 0, golden_randint_f32_seed0, 4);

    CHECK_FAILS(lunet_tensor_random_int_(t, &gen, 5, 5), LUNET_STATUS_RUNTIME,
                "random_ expects 'from' to be less than 'to', but got from=5 >= to=5");
    lunet_tensor_release(t);
    t = make(LUNET_DTYPE_UINT8, 4);
    CHECK_FAILS(lunet_tensor_random_int_(t, &gen, 0, 300), LUNET_STATUS_RUNTIME,
                "to - 1 is out of bounds for unsigned char");
    CHECK_OK(lunet_tensor_random_int_(t, &gen, 0, 256));
    lunet_tensor_release(t);

    // random_() without bounds on int64 is random64 mod 2^63 (the DataLoader seed draw)
    lunet_generator_seed(&gen, 0);
    assert_true((int64_t)(lunet_generator_random64(&gen) % (UINT64_C(1) << 63)) ==
                golden_random_full_seed0[0]);
}

/* ---------------------------------------------------------------- normal */

static void test_normal_cache(void **state)
{
    // the second Box-Muller value waits in the generator for the next call ...
    lunet_tensor_t *a = make(LUNET_DTYPE_FLOAT32, 1), *b = make(LUNET_DTYPE_FLOAT32, 3);
    lunet_generator_seed(&gen, 0);
    CHECK_OK(lunet_tensor_normal_(a, &gen, 0, 1));
    CHECK_EXACT(a, 0, &golden_normal_cache_seed0[0], 1);
    CHECK_OK(lunet_tensor_normal_(a, &gen, 0, 1));
    CHECK_EXACT(a, 0, &golden_normal_cache_seed0[1], 1);
    assert_true(lunet_tensor_get(a, 0) == (double)-0.293428897857666f);
    CHECK_OK(lunet_tensor_normal_(b, &gen, 0, 1));
    CHECK_EXACT(b, 0, &golden_normal_cache_seed0[2], 3);
    // ... and manual_seed clears it
    lunet_generator_seed(&gen, 0);
    CHECK_OK(lunet_tensor_normal_(a, &gen, 0, 1));
    CHECK_OK(lunet_tensor_normal_(a, &gen, 0, 1));
    lunet_generator_seed(&gen, 0);
    CHECK_OK(lunet_tensor_normal_(a, &gen, 0, 1));
    CHECK_EXACT(a, 0, &golden_normal_cache_seed0[0], 1);
    lunet_tensor_release(a);
    lunet_tensor_release(b);
}

static void test_normal_noncontiguous(void **state)
{
    // 30 elements but not contiguous: the per-element (small) path, in memory order
    lunet_tensor_t *x = transposed(LUNET_DTYPE_FLOAT32, 5, 6);
    lunet_generator_seed(&gen, 12);
    CHECK_OK(lunet_tensor_normal_(x, &gen, 0.5, 2.0));
    CHECK_EXACT(x, 0, golden_normal_t6x5_seed12, 30);
    lunet_tensor_release(x);
}

static void test_normal_errors(void **state)
{
    lunet_tensor_t *t = make(LUNET_DTYPE_FLOAT32, 3);
    CHECK_FAILS(lunet_tensor_normal_(t, &gen, 0, -1), LUNET_STATUS_RUNTIME,
                "normal expects std >= 0.0, but found std -1");
    lunet_tensor_release(t);
    t = make(LUNET_DTYPE_INT64, 3);
    CHECK_FAILS(lunet_tensor_normal_(t, &gen, 0, 1), LUNET_STATUS_RUNTIME,
                "\"normal_kernel_cpu\" not implemented for 'Long'");
    lunet_tensor_release(t);
    // empty tensors draw nothing
    t = seeded(lunet_tensor_normal_, LUNET_DTYPE_FLOAT32, 0, 0, 0, 1);
    CHECK_OK(lunet_tensor_uniform_(t, &gen, 0, 1));
    assert_int_equal(lunet_generator_random32(&gen), golden_mt_seed0[0]);
    lunet_tensor_release(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mt_first_outputs),
        cmocka_unit_test(test_streams),
        cmocka_unit_test(test_default_generator),
        cmocka_unit_test(test_uniform_bounds),
        cmocka_unit_test(test_uniform_noncontiguous),
        cmocka_unit_test(test_uniform_errors),
        cmocka_unit_test(test_randperm),
        cmocka_unit_test(test_randint),
        cmocka_unit_test(test_normal_cache),
        cmocka_unit_test(test_normal_noncontiguous),
        cmocka_unit_test(test_normal_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
