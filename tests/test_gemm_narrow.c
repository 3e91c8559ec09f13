/*
 * test_gemm_narrow.c - the narrow float32 products (runtime/gemm_narrow.c): every element
 * bit-equal to a reference loop in the kernels' order (one fmaf chain over k for the
 * transposed layout; 16 chains added as a fixed tree for the forward), for both layouts, odd shapes (rows not a
 * multiple of the kernels' 4, 8 or 16, N from 1 to 16), the AVX2 and the AVX-512 kernels,
 * and 1, 2 and 3 threads; and lunet_tensor_mm taking that path for softmax regression's
 * two shapes (forward, and the weight gradient through a transposed view).
 */
#include "check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* deterministic values with every kind of rounding: small integers over 255, signed noise */
static float value(int64_t i, int salt)
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
static void reference(bool ta, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
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

static void test_narrow_kernels_bit_exact(void **state)
{
    (void)state;
    static const int64_t ms[] = {1, 7, 17, 33, 257};
    static const int64_t ns[] = {1, 3, 8, 10, 16};
    static const int64_t ks[] = {1, 5, 300, 784};
    int saved = lunet_get_num_threads();
    bool ran = false;
    for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++)
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
            for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
                for (int ta = 0; ta < 2; ta++) {
                    int64_t m = ms[mi], n = ns[ni], k = ks[ki];
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
                        a[i] = value(i, 1 + ta);
                    for (int64_t i = 0; i < k * ldb; i++)
                        b[i] = value(i, 2);
                    reference(ta, m, n, k, a, lda, b, ldb, want);
                    for (int level = 1; level <= 2; level++)
                        for (int th = 1; th <= 3; th++) {
                            CHECK_OK(lunet_set_num_threads(th));
                            memset(got, 0xff, (size_t)(m * n) * sizeof *got);
                            if (!lunet_gemm_narrow_f32_at(level, ta, m, n, k, a, lda, b, ldb, got))
                                continue; /* no such kernel on this CPU */
                            ran = true;
                            for (int64_t e = 0; e < m * n; e++)
                                if (memcmp(&got[e], &want[e], sizeof got[e]) != 0)
                                    fail_msg("ta %d level %d threads %d (m %lld, n %lld, k %lld): "
                                             "c[%lld][%lld] = %.9g, want %.9g",
                                             ta, level, th, (long long)m, (long long)n,
                                             (long long)k, (long long)(e / n), (long long)(e % n),
                                             got[e], want[e]);
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
        px[i] = value(i, 1);
    for (int64_t i = 0; i < 784 * 10; i++)
        pw[i] = value(i, 4) / 100.0f;
    for (int64_t i = 0; i < 256 * 10; i++)
        pg[i] = value(i, 6) / 10.0f;
    CHECK_OK(lunet_tensor_mm(&y, x, w));
    CHECK_OK(lunet_tensor_transpose(&xt, x, 0, 1));
    CHECK_OK(lunet_tensor_mm(&dw, xt, g));
    float *wy = malloc(256 * 10 * sizeof *wy), *wdw = malloc(784 * 10 * sizeof *wdw);
    assert_non_null(wy);
    assert_non_null(wdw);
    reference(false, 256, 10, 784, px, 784, pw, 10, wy);
    reference(true, 784, 10, 256, px, 784, pg, 10, wdw);
    float probe;
    bool narrow = lunet_gemm_narrow_f32(false, 1, 1, 1, px, 1, pw, 1, &probe);
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
        cmocka_unit_test(test_narrow_kernels_bit_exact),
        cmocka_unit_test(test_mm_narrow_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
