/*
 * test_parallel.c - the worker pool (lunet_parallel_for, set/get_num_threads) and the promise
 * that the thread count never changes a bit: a few SGD steps of an MLP whose GEMMs are split
 * into several blocks, trained on 1, 2 and 3 threads, give identical losses, gradients and
 * weights; convolutions and pooling, forward and backward, likewise.  `make test-c-noblas` runs
 * the same tests on the built-in GEMM.
 */
#include "check.h"

#include <stdatomic.h>
#include <stdlib.h>

/* ---------------------------------------------------------------- parallel_for */

typedef struct {
    atomic_int *hits;
    int64_t grain;
    atomic_int bad_blocks;
} cover_t;

static void count_block(void *ctx, int64_t b, int64_t e)
{
    cover_t *c = ctx;
    if (b % c->grain != 0 || e - b > c->grain || e <= b)
        atomic_fetch_add(&c->bad_blocks, 1);
    for (int64_t i = b; i < e; i++)
        atomic_fetch_add(&c->hits[i], 1);
}

static void test_every_index_once(void **state)
{
    (void)state;
    static const int64_t ns[] = {1, 7, 64, 1000, 4097};
    static const int64_t grains[] = {1, 3, 64, 5000};
    for (int th = 1; th <= 3; th++) {
        CHECK_OK(lunet_set_num_threads(th));
        assert_int_equal(lunet_get_num_threads(), th);
        for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
            for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++) {
                atomic_int *hits = calloc((size_t)ns[a], sizeof *hits);
                cover_t c = {hits, grains[g], 0};
                lunet_parallel_for(ns[a], grains[g], count_block, &c);
                for (int64_t i = 0; i < ns[a]; i++)
                    if (atomic_load(&hits[i]) != 1)
                        fail_msg("threads %d, n %lld, grain %lld: index %lld ran %d times", th,
                                 (long long)ns[a], (long long)grains[g], (long long)i,
                                 atomic_load(&hits[i]));
                if (atomic_load(&c.bad_blocks))
                    fail_msg("threads %d, n %lld, grain %lld: %d blocks off the grain", th,
                             (long long)ns[a], (long long)grains[g], atomic_load(&c.bad_blocks));
                free(hits);
            }
    }
    lunet_parallel_for(0, 4, count_block, NULL); /* nothing to do: fn never called */
}

/* a block that starts a region of its own: it runs serially on that thread */
typedef struct {
    atomic_int inner;
} nested_t;

static void inner_block(void *ctx, int64_t b, int64_t e)
{
    nested_t *n = ctx;
    atomic_fetch_add(&n->inner, (int)(e - b));
}

static void outer_block(void *ctx, int64_t b, int64_t e)
{
    for (int64_t i = b; i < e; i++)
        lunet_parallel_for(100, 10, inner_block, ctx);
}

static void test_nested_and_errors(void **state)
{
    (void)state;
    CHECK_OK(lunet_set_num_threads(2));
    nested_t n = {0};
    lunet_parallel_for(8, 1, outer_block, &n);
    assert_int_equal(atomic_load(&n.inner), 800);
    CHECK_FAILS(lunet_set_num_threads(0), LUNET_STATUS_RUNTIME,
                "set_num_threads expects a positive integer");
    CHECK_FAILS(lunet_set_num_threads(-3), LUNET_STATUS_RUNTIME,
                "set_num_threads expects a positive integer");
    assert_int_equal(lunet_get_num_threads(), 2);
}

/* ---------------------------------------------------------------- same bits */

enum { STEPS = 3, BATCH = 64, NPARAM = 4 };

typedef struct {
    float loss[STEPS];
    float *grad[NPARAM];
    float *weight[NPARAM];
    int64_t numel[NPARAM];
} run_t;

/* STEPS SGD-momentum steps of a 512-256-10 ReLU MLP on seeded random data. */
static void train(run_t *r, int threads)
{
    CHECK_OK(lunet_set_num_threads(threads));
    lunet_generator_t *g = lunet_default_generator();
    lunet_generator_seed(g, 7);
    lunet_mlp_t *m;
    CHECK_OK(lunet_mlp_new(&m, 3, (const int64_t[]){512, 256, 10}, LUNET_ACTIVATION_RELU,
                           LUNET_DTYPE_FLOAT32, g));
    lunet_tensor_t *params[NPARAM];
    for (int i = 0; i < NPARAM; i++)
        params[i] = lunet_mlp_parameter(m, i);
    lunet_sgd_options_t o = {.lr = 0.05, .momentum = 0.9};
    lunet_optimizer_t *opt;
    CHECK_OK(lunet_sgd_new(&opt, NPARAM, params, &o));
    lunet_loss_options_t ce;
    lunet_loss_options_init(&ce);
    lunet_tensor_t *x, *y;
    CHECK_OK(lunet_tensor_empty(&x, LUNET_DTYPE_FLOAT32, 2, (const int64_t[]){BATCH, 512}));
    CHECK_OK(lunet_tensor_empty(&y, LUNET_DTYPE_INT64, 1, (const int64_t[]){BATCH}));
    CHECK_OK(lunet_tensor_random_int_(y, g, 0, 10));
    for (int s = 0; s < STEPS; s++) {
        lunet_tensor_t *logits, *loss;
        CHECK_OK(lunet_tensor_normal_(x, g, 0, 1));
        CHECK_OK(lunet_optimizer_zero_grad(opt));
        CHECK_OK(lunet_mlp_forward(&logits, m, x));
        CHECK_OK(lunet_loss_cross_entropy(&loss, logits, y, &ce));
        CHECK_OK(lunet_tensor_backward(loss, NULL, false));
        r->loss[s] = (float)lunet_tensor_get(loss, 0);
        if (s == STEPS - 1)
            for (int i = 0; i < NPARAM; i++) {
                r->numel[i] = params[i]->numel;
                r->grad[i] = malloc((size_t)params[i]->numel * sizeof(float));
                memcpy(r->grad[i], lunet_tensor_data(params[i]->grad),
                       (size_t)params[i]->numel * sizeof(float));
            }
        CHECK_OK(lunet_optimizer_step(opt));
        lunet_tensor_release(logits);
        lunet_tensor_release(loss);
    }
    for (int i = 0; i < NPARAM; i++) {
        r->weight[i] = malloc((size_t)params[i]->numel * sizeof(float));
        memcpy(r->weight[i], lunet_tensor_data(params[i]),
               (size_t)params[i]->numel * sizeof(float));
    }
    lunet_tensor_release(x);
    lunet_tensor_release(y);
    lunet_optimizer_free(opt);
    lunet_mlp_free(m);
}

static void run_free(run_t *r)
{
    for (int i = 0; i < NPARAM; i++) {
        free(r->grad[i]);
        free(r->weight[i]);
    }
}

static void same_bits(const char *what, int threads, int i, const float *a, const float *b,
                      int64_t n)
{
    for (int64_t k = 0; k < n; k++)
        if (memcmp(&a[k], &b[k], sizeof(float)) != 0)
            fail_msg("%s of parameter %d, element %lld: 1 thread %.9g, %d threads %.9g", what, i,
                     (long long)k, (double)a[k], threads, (double)b[k]);
}

static void test_same_bits_on_any_thread_count(void **state)
{
    (void)state;
    int saved = lunet_get_num_threads();
    run_t one = {0};
    train(&one, 1);
    for (int th = 2; th <= 3; th++) {
        run_t r = {0};
        train(&r, th);
        for (int s = 0; s < STEPS; s++)
            if (memcmp(&one.loss[s], &r.loss[s], sizeof(float)) != 0)
                fail_msg("loss of step %d: 1 thread %.9g, %d threads %.9g (%s GEMM)", s,
                         (double)one.loss[s], th, (double)r.loss[s], lunet_blas_name());
        for (int i = 0; i < NPARAM; i++) {
            same_bits("gradient", th, i, one.grad[i], r.grad[i], one.numel[i]);
            same_bits("weight", th, i, one.weight[i], r.weight[i], one.numel[i]);
        }
        run_free(&r);
    }
    assert_true(one.loss[STEPS - 1] < one.loss[0]); /* it did learn something */
    run_free(&one);
    CHECK_OK(lunet_set_num_threads(saved));
}

/* exp(x) + x*x and a zero fill of 300K elements (split into 64K blocks): same bits. */
static void test_elementwise_same_bits(void **state)
{
    (void)state;
    int saved = lunet_get_num_threads();
    enum { N = 300000 };
    float *want = malloc(N * sizeof(float));
    for (int th = 1; th <= 2; th++) {
        CHECK_OK(lunet_set_num_threads(th));
        lunet_generator_t *g = lunet_default_generator();
        lunet_generator_seed(g, 3);
        lunet_tensor_t *x, *e, *sq, *r;
        CHECK_OK(lunet_tensor_empty(&x, LUNET_DTYPE_FLOAT32, 1, (const int64_t[]){N}));
        CHECK_OK(lunet_tensor_normal_(x, g, 0, 3));
        CHECK_OK(lunet_tensor_unary(&e, LUNET_UNARY_EXP, x));
        CHECK_OK(lunet_tensor_binary(&sq, LUNET_BINARY_MUL, x, x));
        CHECK_OK(lunet_tensor_binary(&r, LUNET_BINARY_ADD, e, sq));
        const float *pr = lunet_tensor_data(r);
        if (th == 1)
            memcpy(want, pr, N * sizeof(float));
        else
            same_bits("exp(x) + x*x", th, 0, want, pr, N);
        CHECK_OK(lunet_tensor_fill_(r, 0));
        for (int i = 0; i < N; i++)
            if (pr[i] != 0 || signbit(pr[i]))
                fail_msg("fill_(0) on %d threads left element %d = %g", th, i, (double)pr[i]);
        lunet_tensor_release(x);
        lunet_tensor_release(e);
        lunet_tensor_release(sq);
        lunet_tensor_release(r);
    }
    free(want);
    CHECK_OK(lunet_set_num_threads(saved));
}

/* x[1:] += x[:-1] over 1M elements (the output overlaps the input shifted by one): split into
   blocks, a block that starts before the previous one wrote its last element would give a
   thread-count-dependent result.  PyTorch 1.13 refuses the operation, and so does Lunet now
   (lunet_tensor_check_no_partial_overlap), on any thread count, leaving x untouched; iter.c
   still runs such runs serially for the runtime's own callers. */
static void test_overlapping_inplace_refused(void **state)
{
    (void)state;
    int saved = lunet_get_num_threads();
    enum { N = 1 << 20, ROUNDS = 3 };
    for (int round = 0; round < ROUNDS; round++) {
        int th = 2 + round % 3;
        CHECK_OK(lunet_set_num_threads(th));
        lunet_tensor_t *x, *hi, *lo;
        CHECK_OK(lunet_tensor_full(&x, LUNET_DTYPE_FLOAT64, 1, (const int64_t[]){N}, 1.0));
        CHECK_OK(lunet_tensor_narrow(&hi, x, 0, 1, N - 1));
        CHECK_OK(lunet_tensor_narrow(&lo, x, 0, 0, N - 1));
        CHECK_FAILS(lunet_tensor_binary_(hi, LUNET_BINARY_ADD, lo), LUNET_STATUS_RUNTIME,
                    "some elements of the input tensor and the written-to tensor refer to a "
                    "single memory location");
        const double *p = lunet_tensor_data(x);
        for (int i = 0; i < N; i++)
            if (p[i] != 1.0)
                fail_msg("x[1:] += x[:-1] on %d threads (round %d): x[%d] = %.17g, expected 1", th,
                         round, i, p[i]);
        lunet_tensor_release(hi);
        lunet_tensor_release(lo);
        lunet_tensor_release(x);
    }
    CHECK_OK(lunet_set_num_threads(saved));
}

/* ---------------------------------------------------------------- conv and pooling */

/* One case: x (N, C, H, W), w (O, C / groups, k, k), options; then max or avg pooling 2. */
typedef struct {
    lunet_dtype_t dt;
    int64_t n, c, h, w, o, k, stride, pad, groups;
    bool avg;
} conv_case_t;

/* conv2d -> max/avg pool2d(2) -> backward of a seeded gradient: out, dx, dw, db as bytes */
static void conv_run(const conv_case_t *cc, int threads, char **out, size_t *len)
{
    CHECK_OK(lunet_set_num_threads(threads));
    lunet_generator_t *g = lunet_default_generator();
    lunet_generator_seed(g, 11);
    lunet_tensor_t *x, *w, *b, *y, *p, *gp;
    CHECK_OK(lunet_tensor_empty(&x, cc->dt, 4, (const int64_t[]){cc->n, cc->c, cc->h, cc->w}));
    CHECK_OK(lunet_tensor_empty(&w, cc->dt, 4,
                                (const int64_t[]){cc->o, cc->c / cc->groups, cc->k, cc->k}));
    CHECK_OK(lunet_tensor_empty(&b, cc->dt, 1, (const int64_t[]){cc->o}));
    lunet_tensor_t *leaves[3] = {x, w, b};
    for (int i = 0; i < 3; i++) {
        CHECK_OK(lunet_tensor_normal_(leaves[i], g, 0, 1));
        CHECK_OK(lunet_tensor_requires_grad_(leaves[i], true));
    }
    lunet_conv2d_options_t o;
    lunet_conv2d_options_init(&o);
    o.stride[0] = o.stride[1] = cc->stride;
    o.padding[0] = o.padding[1] = cc->pad;
    o.groups = cc->groups;
    CHECK_OK(lunet_nn_conv2d(&y, x, w, b, &o));
    lunet_pool2d_options_t po;
    lunet_pool2d_options_init(&po, 2, 2);
    if (cc->avg)
        CHECK_OK(lunet_nn_avg_pool2d(&p, y, &po));
    else
        CHECK_OK(lunet_nn_max_pool2d(&p, NULL, y, &po));
    CHECK_OK(lunet_tensor_empty(&gp, cc->dt, p->ndim, p->shape));
    CHECK_OK(lunet_tensor_normal_(gp, g, 0, 1));
    CHECK_OK(lunet_tensor_backward(p, gp, false));
    const lunet_tensor_t *parts[5] = {y, p, x->grad, w->grad, b->grad};
    size_t es = cc->dt == LUNET_DTYPE_FLOAT32 ? sizeof(float) : sizeof(double), total = 0;
    for (int i = 0; i < 5; i++)
        total += (size_t)parts[i]->numel * es;
    *out = malloc(total);
    *len = total;
    for (size_t i = 0, at = 0; i < 5; at += (size_t)parts[i]->numel * es, i++)
        memcpy(*out + at, lunet_tensor_data(parts[i]), (size_t)parts[i]->numel * es);
    lunet_tensor_t *all[7] = {x, w, b, y, p, gp, NULL};
    for (int i = 0; all[i]; i++)
        lunet_tensor_release(all[i]);
}

/* The course CNN's two convolutions and pooling, LeNet's padded first one with avg pooling,
   and strided / grouped float64 ones: every output and gradient the same bits on 1, 2 and 3
   threads (the convolution splits its batch into chunks over the pool, the pooling its
   planes). */
static void test_conv_pool_same_bits(void **state)
{
    (void)state;
    int saved = lunet_get_num_threads();
    static const conv_case_t cases[] = {
        {LUNET_DTYPE_FLOAT32, 64, 1, 28, 28, 10, 5, 1, 0, 1, false},
        {LUNET_DTYPE_FLOAT32, 64, 10, 12, 12, 20, 5, 1, 0, 1, false},
        {LUNET_DTYPE_FLOAT32, 37, 1, 28, 28, 6, 5, 1, 2, 1, true},
        {LUNET_DTYPE_FLOAT32, 33, 4, 17, 15, 6, 3, 2, 1, 2, false},
        {LUNET_DTYPE_FLOAT64, 29, 6, 14, 14, 16, 5, 1, 0, 1, true},
        {LUNET_DTYPE_FLOAT64, 33, 4, 17, 15, 6, 3, 2, 1, 2, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *want, *got;
        size_t n, m;
        conv_run(&cases[i], 1, &want, &n);
        for (int th = 2; th <= 3; th++) {
            conv_run(&cases[i], th, &got, &m);
            assert_int_equal(n, m);
            for (size_t k = 0; k < n; k++)
                if (want[k] != got[k])
                    fail_msg("conv case %zu: byte %zu of (y, pooled, dx, dw, db) differs on %d "
                             "threads (%02x, 1 thread %02x)",
                             i, k, th, (unsigned char)got[k], (unsigned char)want[k]);
            free(got);
        }
        free(want);
    }
    CHECK_OK(lunet_set_num_threads(saved));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_index_once),
        cmocka_unit_test(test_nested_and_errors),
        cmocka_unit_test(test_same_bits_on_any_thread_count),
        cmocka_unit_test(test_elementwise_same_bits),
        cmocka_unit_test(test_overlapping_inplace_refused),
        cmocka_unit_test(test_conv_pool_same_bits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
