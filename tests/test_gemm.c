/*
 * test_gemm.c - Lunet's float32 GEMM kernels (runtime/sgemm.c) and Linear's GEMM paths:
 *  - the AVX-512 tiles against an in-order fma reference, bit for bit (odd shapes, every
 *    transpose, alpha, beta, bias and ReLU);
 *  - the narrow kernels (N <= 16) against a reference loop in their order (one fmaf chain
 *    over k for the transposed layout; 16 chains added as a fixed tree for the forward),
 *    both layouts, odd shapes, the AVX2 and AVX-512 kernels, 1-3 threads, every row count
 *    of their steps against a guard page (no load past the masks); and mm taking
 *    that path at softmax regression's two shapes;
 *  - the fused bias+ReLU forward against the unfused ops, and the backward's dX and dW
 *    (one parallel region) against separate products, on 1, 2 and 3 threads.
 */
#include "check.h"
#include "internal.h"

#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static float frand(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)(*s >> 8) / (float)(1u << 24) - 0.5f;
}

static float *frand_buf(int64_t n, uint32_t seed)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        p[i] = frand(&seed);
    return p;
}

static void same_floats(const char *what, const float *got, const float *want, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0)
            fail_msg("%s, element %lld: got %.9g, expected %.9g", what, (long long)i,
                     (double)got[i], (double)want[i]);
}

// c (m, n) = [relu](alpha * (in-order fma sum of op(a) op(b)) + (bias ? bias : beta * c)),
// as the kernel promises
static void reference(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                      const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                      float *c, const float *bias, bool relu)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            float acc = 0;
            for (int64_t p = 0; p < k; p++)
                acc = fmaf(ta ? a[p * lda + i] : a[i * lda + p],
                           tb ? b[j * ldb + p] : b[p * ldb + j], acc);
            float r = alpha == 1.0f ? acc : alpha * acc;
            if (bias)
                r = bias[j] + r;
            else if (beta != 0.0f)
                r = (beta == 1.0f ? c[i * n + j] : beta * c[i * n + j]) + r;
            c[i * n + j] = relu && r < 0 ? 0.0f : r;
        }
}

static void test_avx512_kernel_exact(void **state)
{
    (void)state;
    if (!lunet_sgemm_tiles_available()) {
        print_message("no AVX-512 here: the kernel is not used, nothing to compare\n");
        return;
    }
    /* edges of every kind: tails of the 6-row and 64-column tiles, of the 8-tile blocks and
       of the 128-long slices of k */
    const int64_t shapes[][3] = {{1, 1, 1},     {7, 13, 5},    {6, 64, 3},
                                 {13, 70, 129}, {50, 17, 257}, {64, 100, 300},
                                 {97, 65, 64},  {3, 200, 2},   {130, 20, 40}};
    /* alpha, beta, with a bias, with the ReLU */
    const float ab[][4] = {{1, 0, 0, 0}, {1, 1, 0, 0}, {0.5f, 2, 0, 0}, {1, 1, 1, 0},
                           {1, 0, 0, 1}, {1, 1, 1, 1}, {0.5f, 1, 1, 1}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 4; t++)
            for (int q = 0; q < 7; q++) {
                int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
                bool ta = t & 1, tb = t & 2;
                int64_t lda = ta ? m + 3 : k + 2, ldb = tb ? k + 1 : n + 5; /* padded rows */
                float *a = frand_buf((ta ? k : m) * lda, 1 + (uint32_t)s);
                float *b = frand_buf((tb ? n : k) * ldb, 100 + (uint32_t)s);
                float *c = frand_buf(m * n, 200 + (uint32_t)s), *want = malloc((size_t)(m * n) * 4);
                memcpy(want, c, (size_t)(m * n) * sizeof(float));
                float *packed = NULL;
                int64_t ldp = lunet_sgemm_pack_ld(m);
                if (tb && !ta) {
                    packed = malloc((size_t)(k * ldp) * sizeof(float));
                    lunet_sgemm_pack(packed, a, lda, m, k);
                }
                float alpha = ab[q][0], beta = ab[q][1];
                float *bias = ab[q][2] != 0 ? frand_buf(n, 300 + (uint32_t)s) : NULL;
                bool relu = ab[q][3] != 0;
                /* b transposed: with the caller's packed a^T, then packed by the kernel 64
                   rows at a time (packed NULL) from the same c */
                float *c0 = malloc((size_t)(m * n) * sizeof(float));
                memcpy(c0, c, (size_t)(m * n) * sizeof(float));
                assert_true(lunet_sgemm_tiles(ta, tb, m, n, k, alpha, a, lda, b, ldb, packed, ldp,
                                              beta, c, n, bias, relu));
                reference(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, want, bias, relu);
                char what[160];
                snprintf(what, sizeof what,
                         "%lldx%lldx%lld ta=%d tb=%d alpha=%g beta=%g bias=%d relu=%d",
                         (long long)m, (long long)n, (long long)k, ta, tb, (double)alpha,
                         (double)beta, bias != NULL, relu);
                same_floats(what, c, want, m * n);
                if (packed) {
                    assert_true(lunet_sgemm_tiles(ta, tb, m, n, k, alpha, a, lda, b, ldb, NULL, ldp,
                                                  beta, c0, n, bias, relu));
                    strcat(what, " (own strips)");
                    same_floats(what, c0, want, m * n);
                }
                free(bias);
                free(a), free(b), free(c), free(c0), free(want), free(packed);
            }
}

static lunet_tensor_t *randn(lunet_dtype_t dt, int64_t r, int64_t c, lunet_generator_t *g)
{
    return tensor_randn(dt, 2, (const int64_t[]){r, c}, g);
}

static void same_tensor(const char *what, const lunet_tensor_t *got, const lunet_tensor_t *want)
{
    assert_int_equal(got->numel, want->numel);
    for (int64_t i = 0; i < got->numel; i++) {
        double a = lunet_tensor_get(got, i), b = lunet_tensor_get(want, i);
        if (memcmp(&a, &b, sizeof a) != 0)
            fail_msg("%s (%s), element %lld: got %.17g, expected %.17g", what,
                     lunet_dtype_name(got->dtype), (long long)i, a, b);
    }
}

/* (rows, in, out): odd sizes, and one large enough to be split into blocks (and, in float32
   on AVX-512, to run the kernel); the last three have at most 16 inputs, so that their
   backward's dX and dW in float32 take the narrow kernels (or the tiles) beside the region
   of the other product */
static const int64_t linear_shapes[][3] = {{7, 13, 9},     {1, 5, 3},      {64, 784, 100},
                                           {33, 65, 130},  {300, 100, 60}, {64, 9, 128},
                                           {256, 10, 512}, {256, 16, 256}};

/* [relu](linear(x, w, b)) fused in one call is bit-equal to the unfused ops. */
static void test_fused_forward_equals_unfused(void **state)
{
    (void)state;
    lunet_generator_t g;
    lunet_generator_seed(&g, 5);
    lunet_dtype_t dts[2] = {LUNET_DTYPE_FLOAT32, LUNET_DTYPE_FLOAT64};
    for (int d = 0; d < 2; d++)
        for (size_t s = 0; s < sizeof linear_shapes / sizeof linear_shapes[0]; s++)
            for (int with_bias = 0; with_bias < 2; with_bias++) {
                int64_t n = linear_shapes[s][0], in = linear_shapes[s][1],
                        out = linear_shapes[s][2];
                lunet_tensor_t *x = randn(dts[d], n, in, &g), *w = randn(dts[d], out, in, &g);
                lunet_tensor_t *b = NULL, *wt, *prod, *relu_ref, *fused, *plain, *relu_plain;
                if (with_bias)
                    b = tensor_randn(dts[d], 1, &out, &g);
                CHECK_OK(lunet_tensor_transpose(&wt, w, 0, 1));
                if (with_bias)
                    CHECK_OK(lunet_tensor_addmm(&prod, b, x, wt, 1.0, 1.0));
                else
                    CHECK_OK(lunet_tensor_mm(&prod, x, wt));
                CHECK_OK(lunet_tensor_unary(&relu_ref, LUNET_UNARY_RELU, prod));
                CHECK_OK(lunet_nn_linear(&fused, x, w, b, true));
                CHECK_OK(lunet_nn_linear(&plain, x, w, b, false));
                CHECK_OK(lunet_tensor_unary(&relu_plain, LUNET_UNARY_RELU, plain));
                same_tensor("linear against addmm / mm", plain, prod);
                same_tensor("fused linear+relu against relu(addmm / mm)", fused, relu_ref);
                same_tensor("fused linear+relu against relu(linear)", fused, relu_plain);
                lunet_tensor_t *all[] = {x, w, b, wt, prod, relu_ref, fused, plain, relu_plain};
                for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
                    lunet_tensor_release(all[i]);
            }
}

typedef struct grads {
    lunet_tensor_t *dx, *dw, *db;
} grads_t;

/* loss = sum(relu(linear(x, w, b)) * r); its gradients, computed by backward */
static grads_t backward_grads(lunet_tensor_t *x, lunet_tensor_t *w, lunet_tensor_t *b,
                              lunet_tensor_t *r)
{
    lunet_tensor_t *xl, *wl, *bl, *y, *yr, *loss;
    CHECK_OK(lunet_tensor_detach(&xl, x));
    CHECK_OK(lunet_tensor_detach(&wl, w));
    CHECK_OK(lunet_tensor_detach(&bl, b));
    xl->requires_grad = wl->requires_grad = bl->requires_grad = true;
    CHECK_OK(lunet_nn_linear(&y, xl, wl, bl, true));
    CHECK_OK(lunet_tensor_binary(&yr, LUNET_BINARY_MUL, y, r));
    CHECK_OK(lunet_tensor_reduce(&loss, NULL, LUNET_REDUCE_SUM, yr, 0, NULL, false));
    CHECK_OK(lunet_tensor_backward(loss, NULL, false));
    grads_t gr = {xl->grad, wl->grad, bl->grad};
    lunet_tensor_retain(gr.dx), lunet_tensor_retain(gr.dw), lunet_tensor_retain(gr.db);
    lunet_tensor_t *all[] = {xl, wl, bl, y, yr, loss};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        lunet_tensor_release(all[i]);
    return gr;
}

/* dX and dW, run as one parallel region, equal separate products on any thread count. */
static void test_backward_equals_separate_products(void **state)
{
    (void)state;
    int saved = lunet_get_num_threads();
    lunet_generator_t g;
    lunet_generator_seed(&g, 9);
    lunet_dtype_t dts[2] = {LUNET_DTYPE_FLOAT32, LUNET_DTYPE_FLOAT64};
    for (int d = 0; d < 2; d++)
        for (size_t s = 0; s < sizeof linear_shapes / sizeof linear_shapes[0]; s++) {
            int64_t n = linear_shapes[s][0], in = linear_shapes[s][1], out = linear_shapes[s][2];
            lunet_tensor_t *x = randn(dts[d], n, in, &g), *w = randn(dts[d], out, in, &g);
            lunet_tensor_t *r = randn(dts[d], n, out, &g), *b, *y, *mask, *gm, *gmt, *dx, *dw;
            b = tensor_randn(dts[d], 1, &out, &g);
            /* the expected: gm = y > 0 ? r : 0, dx = gm @ w, dw = gm^T @ x */
            CHECK_OK(lunet_nn_linear(&y, x, w, b, true));
            CHECK_OK(lunet_tensor_scalar(&mask, dts[d], 0, false));
            lunet_tensor_t *pos;
            CHECK_OK(lunet_tensor_binary(&pos, LUNET_BINARY_GT, y, mask));
            CHECK_OK(lunet_tensor_where(&gm, pos, r, mask));
            CHECK_OK(lunet_tensor_mm(&dx, gm, w));
            CHECK_OK(lunet_tensor_transpose(&gmt, gm, 0, 1));
            CHECK_OK(lunet_tensor_mm(&dw, gmt, x));
            for (int th = 1; th <= 3; th++) {
                CHECK_OK(lunet_set_num_threads(th));
                grads_t gr = backward_grads(x, w, b, r);
                same_tensor("dX", gr.dx, dx);
                same_tensor("dW", gr.dw, dw);
                for (int64_t o = 0; o < out; o++) {
                    double want = 0;
                    for (int64_t i = 0; i < n; i++)
                        want += lunet_tensor_get(gm, i * out + o);
                    CHECK_CLOSE(lunet_tensor_get(gr.db, o), want, 1e-5);
                }
                lunet_tensor_release(gr.dx), lunet_tensor_release(gr.dw);
                lunet_tensor_release(gr.db);
            }
            lunet_tensor_t *all[] = {x, w, r, b, y, mask, pos, gm, gmt, dx, dw};
            for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
                lunet_tensor_release(all[i]);
        }
    CHECK_OK(lunet_set_num_threads(saved));
}

/* deterministic values with every kind of rounding: small integers over 255, signed noise */
static float narrow_value(int64_t i, int salt)
{
    uint32_t h = (uint32_t)(i * 2654435761u) ^ (uint32_t)(salt * 40503u);
    h ^= h >> 13;
    h *= 0x5bd1e995u;
    h ^= h >> 15;
    return salt & 1 ? (float)(h % 256) / 255.0f : ((float)(h % 20001) - 10000.0f) / 7919.0f;
}

// c (m, n) = op(a) @ b in the kernels' orders.  a stored (k, m) (ta): one fmaf chain over
// k per element.  a (m, k): 16 chains, p[l] over k = l mod 16, then added l + 8, l + 4,
// l + 2, l + 1.
static void narrow_reference(bool ta, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                             const float *b, int64_t ldb, float *c)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            if (ta) {
                float acc = 0.0f;
                for (int64_t p = 0; p < k; p++)
                    acc = fmaf(a[p * lda + i], b[p * ldb + j], acc);
                c[i * n + j] = acc;
                continue;
            }
            float part[16] = {0};
            for (int64_t p = 0; p < k; p++)
                part[p % 16] = fmaf(a[i * lda + p], b[p * ldb + j], part[p % 16]);
            for (int w = 8; w >= 1; w /= 2)
                for (int l = 0; l < w; l++)
                    part[l] = part[l] + part[l + w];
            c[i * n + j] = part[0];
        }
}

/* c = op(a) @ b by the narrow kernel of this level, compared with want bit for bit (ctx names
   the run in the message); false when this CPU has no such kernel. */
static bool narrow_matches(int level, bool ta, int64_t m, int64_t n, int64_t k, const float *a,
                           int64_t lda, const float *b, int64_t ldb, const float *want, float *got,
                           const char *ctx)
{
    memset(got, 0xff, (size_t)(m * n) * sizeof *got);
    if (!lunet_sgemm_narrow_at(level, ta, m, n, k, a, lda, b, ldb, got))
        return false;
    for (int64_t e = 0; e < m * n; e++)
        if (memcmp(&got[e], &want[e], sizeof got[e]) != 0)
            fail_msg("%s, ta %d level %d (m %lld, n %lld, k %lld, lda %lld): c[%lld][%lld] = "
                     "%.9g, want %.9g",
                     ctx, ta, level, (long long)m, (long long)n, (long long)k, (long long)lda,
                     (long long)(e / n), (long long)(e % n), (double)got[e], (double)want[e]);
    return true;
}

static void test_narrow_kernels_bit_exact(void **state)
{
    (void)state;
    static const int64_t ms[] = {1, 7, 17, 33, 257};
    static const int64_t ns[] = {1, 3, 8, 10, 16};
    static const int64_t ks[] = {1, 5, 300, 784, 2100}; /* 2100: N <= 9's larger pack */
    int saved = lunet_get_num_threads();
    bool ran = false;
    for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++)
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
            for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
                for (int ta = 0; ta < 2; ta++) {
                    int64_t m = ms[mi], n = ns[ni], k = ks[ki];
                    if (k > 784 && (m > 33 || n > 8))
                        continue; /* the larger pack: a few shapes are enough (valgrind) */
                    /* leading dimensions wider than the rows: strided operands */
                    int64_t lda = (ta ? m : k) + 3, ldb = n + 2;
                    int64_t arows = ta ? k : m;
                    float *a = malloc((size_t)(arows * lda) * sizeof *a);
                    float *b = malloc((size_t)(k * ldb) * sizeof *b);
                    float *want = malloc((size_t)(m * n) * sizeof *want);
                    float *got = malloc((size_t)(m * n) * sizeof *got);
                    assert_non_null(a);
                    assert_non_null(b);
                    assert_non_null(want);
                    assert_non_null(got);
                    for (int64_t i = 0; i < arows * lda; i++)
                        a[i] = narrow_value(i, 1 + ta);
                    for (int64_t i = 0; i < k * ldb; i++)
                        b[i] = narrow_value(i, 2);
                    narrow_reference(ta, m, n, k, a, lda, b, ldb, want);
                    for (int level = 1; level <= 2; level++)
                        for (int th = 1; th <= 3; th++) {
                            CHECK_OK(lunet_set_num_threads(th));
                            char ctx[32];
                            snprintf(ctx, sizeof ctx, "threads %d", th);
                            ran |= narrow_matches(level, ta, m, n, k, a, lda, b, ldb, want, got,
                                                  ctx);
                        }
                    free(a);
                    free(b);
                    free(want);
                    free(got);
                }
    CHECK_OK(lunet_set_num_threads(saved));
    if (!ran)
        print_message("no FMA on this CPU: the narrow kernels are off; skipped\n");
}

/* lunet_sgemm_choose's rule (sgemm.c, from measurement), at shapes either side of each of
   its limits; the tiles' answers are BLAS's where there is no AVX-512. */
static void test_choose(void **state)
{
    (void)state;
    const lunet_sgemm_kind_t N = LUNET_SGEMM_NARROW, B = LUNET_SGEMM_BLAS;
    const lunet_sgemm_kind_t T = lunet_sgemm_tiles_available() ? LUNET_SGEMM_TILES : B;
    const struct {
        bool ta;
        int64_t m, n, k;
        lunet_sgemm_kind_t want;
    } cases[] = {
        {false, 256, 10, 784, N},  /* softmax regression */
        {true, 784, 10, 256, N},   /* and its weight gradient */
        {false, 16, 10, 784, N},   /* N = 9..11 below 10^6 multiply-adds */
        {false, 256, 8, 256, B},   /* other N below 10^6: BLAS */
        {true, 784, 4, 64, B},     /* */
        {false, 64, 16, 256, B},   /* */
        {false, 256, 13, 784, N},  /* above: narrow up to N = 13 */
        {false, 256, 14, 784, T},  /* then the tiles */
        {false, 256, 16, 784, T},  /* */
        {false, 256, 10, 2048, T}, /* b^T past NARROW_PACK_L1 */
        {false, 256, 4, 8192, N},  /* N <= 9: any k */
        {true, 2048, 15, 256, N},  /* transposed: up to N = 15 */
        {true, 256, 16, 1024, N},  /* N = 16 while a is under 2 MB */
        {true, 2048, 16, 256, B},  /* */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lunet_sgemm_kind_t got = lunet_sgemm_choose(cases[i].ta, false, cases[i].m, cases[i].n,
                                                    cases[i].k, 1.0, 0.0, false);
        if (got != cases[i].want)
            fail_msg("choose(%s %lld x %lld x %lld) = %d, expected %d", cases[i].ta ? "TN" : "NN",
                     (long long)cases[i].m, (long long)cases[i].n, (long long)cases[i].k, got,
                     cases[i].want);
    }
    /* beta, b transposed or an epilogue: not the narrow kernels' */
    assert_int_equal(lunet_sgemm_choose(false, false, 256, 10, 784, 1.0, 1.0, false), T);
    assert_int_equal(lunet_sgemm_choose(false, true, 256, 10, 784, 1.0, 0.0, false), T);
    assert_int_equal(lunet_sgemm_choose(false, false, 256, 10, 784, 1.0, 0.0, true), T);
}

/*
 * Every row count the narrow kernels' steps can end on (m = 1..48: the masked tails of the
 * 16- and 32-row steps of x^T @ b, the row pairs of the forward), k = 1, 2, 3, 17 and lda
 * not a multiple of 16, with a's last element at the end of a page whose next page is
 * unreadable: a load past what the masks allow faults instead of passing unseen.
 */
static void test_narrow_every_row_count(void **state)
{
    (void)state;
    static const int64_t ns[] = {1, 5, 12, 13, 16};
    static const int64_t ks[] = {1, 2, 3, 17};
    const size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    bool ran = false;
    for (int ta = 0; ta < 2; ta++)
        for (int64_t m = 1; m <= 48; m++)
            for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
                for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
                    int64_t n = ns[ni], k = ks[ki], row = ta ? m : k, arows = ta ? k : m;
                    int64_t lda = row + 1 + m % 3;
                    lda += lda % 16 == 0;
                    size_t need = (size_t)((arows - 1) * lda + row) * sizeof(float);
                    size_t bytes = (need + pg - 1) / pg * pg;
                    char *buf = NULL;
                    assert_int_equal(posix_memalign((void **)&buf, pg, bytes + pg), 0);
                    assert_int_equal(mprotect(buf + bytes, pg, PROT_NONE), 0);
                    float *a = (float *)(void *)(buf + bytes - need);
                    for (int64_t i = 0; i < (arows - 1) * lda + row; i++)
                        a[i] = narrow_value(i, 1 + ta);
                    float b[17 * 16], want[48 * 16], got[48 * 16];
                    for (int64_t i = 0; i < k * n; i++)
                        b[i] = narrow_value(i, 2);
                    narrow_reference(ta, m, n, k, a, lda, b, n, want);
                    for (int level = 1; level <= 2; level++)
                        ran |= narrow_matches(level, ta, m, n, k, a, lda, b, n, want, got,
                                              "a's end at a guard page");
                    assert_int_equal(mprotect(buf + bytes, pg, PROT_READ | PROT_WRITE), 0);
                    free(buf);
                }
    if (!ran)
        print_message("no FMA on this CPU: the narrow kernels are off; skipped\n");
}

/* mm of softmax regression's shapes goes through the narrow kernels when this CPU has them,
   and gives the reference's bits; else BLAS's, within float32 rounding of it. */
static void test_mm_narrow_shapes(void **state)
{
    (void)state;
    int64_t xs[2] = {256, 784}, ws[2] = {784, 10}, gs[2] = {256, 10};
    lunet_tensor_t *x, *w, *g, *y, *xt, *dw;
    CHECK_OK(lunet_tensor_empty(&x, LUNET_DTYPE_FLOAT32, 2, xs));
    CHECK_OK(lunet_tensor_empty(&w, LUNET_DTYPE_FLOAT32, 2, ws));
    CHECK_OK(lunet_tensor_empty(&g, LUNET_DTYPE_FLOAT32, 2, gs));
    float *px = lunet_tensor_data(x), *pw = lunet_tensor_data(w), *pg = lunet_tensor_data(g);
    for (int64_t i = 0; i < 256 * 784; i++)
        px[i] = narrow_value(i, 1);
    for (int64_t i = 0; i < 784 * 10; i++)
        pw[i] = narrow_value(i, 4) / 100.0f;
    for (int64_t i = 0; i < 256 * 10; i++)
        pg[i] = narrow_value(i, 6) / 10.0f;
    CHECK_OK(lunet_tensor_mm(&y, x, w));
    CHECK_OK(lunet_tensor_transpose(&xt, x, 0, 1));
    CHECK_OK(lunet_tensor_mm(&dw, xt, g));
    float *wy = malloc(256 * 10 * sizeof *wy), *wdw = malloc(784 * 10 * sizeof *wdw);
    assert_non_null(wy);
    assert_non_null(wdw);
    narrow_reference(false, 256, 10, 784, px, 784, pw, 10, wy);
    narrow_reference(true, 784, 10, 256, px, 784, pg, 10, wdw);
    float probe;
    bool narrow = lunet_sgemm_choose(false, false, 256, 10, 784, 1, 0, false) ==
                      LUNET_SGEMM_NARROW &&
                  lunet_sgemm_narrow(false, 1, 1, 1, px, 1, pw, 1, &probe);
    const float *py = lunet_tensor_data(y), *pdw = lunet_tensor_data(dw);
    for (int64_t e = 0; e < 256 * 10; e++)
        if (narrow ? py[e] != wy[e] : fabsf(py[e] - wy[e]) > 1e-4f * (1 + fabsf(wy[e])))
            fail_msg("mm forward c[%lld] = %.9g, want %.9g", (long long)e, py[e], wy[e]);
    for (int64_t e = 0; e < 784 * 10; e++)
        if (narrow ? pdw[e] != wdw[e] : fabsf(pdw[e] - wdw[e]) > 1e-4f * (1 + fabsf(wdw[e])))
            fail_msg("mm weight gradient c[%lld] = %.9g, want %.9g", (long long)e, pdw[e], wdw[e]);
    free(wy);
    free(wdw);
    lunet_tensor_release(x);
    lunet_tensor_release(w);
    lunet_tensor_release(g);
    lunet_tensor_release(y);
    lunet_tensor_release(xt);
    lunet_tensor_release(dw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_avx512_kernel_exact),
        cmocka_unit_test(test_fused_forward_equals_unfused),
        cmocka_unit_test(test_backward_equals_separate_products),
        cmocka_unit_test(test_narrow_kernels_bit_exact),
        cmocka_unit_test(test_narrow_every_row_count),
        cmocka_unit_test(test_choose),
        cmocka_unit_test(test_mm_narrow_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
