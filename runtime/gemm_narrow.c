/*
 * gemm_narrow.c - float32 products with a narrow output, c (M, N <= 16) = op(a) @ b: softmax
 * regression's (256, 784) @ (784, 10) and its weight gradient x^T (784, 256) @ g (256, 10).
 *
 * Decisions:
 *  - Order: each c[i][j] is one fused multiply-add chain over k = 0, 1, ..., K-1 starting
 *    from +0, the plain loop's order.  It does not depend on the vector width, the blocks
 *    or the thread count, so the AVX-512 and AVX2 kernels give the same bits, and a
 *    reference loop with fmaf checks them exactly.  (OpenBLAS 0.3.21 computes the weight
 *    gradient's shape in this same order on this project's Xeon: the bits did not change.)
 *  - Why: a general GEMM packs the wide operand before multiplying, so at N = 10 OpenBLAS
 *    spends a third of its time copying the (256, 784) batch, and its kernels run 10 of 16
 *    lanes.  Here the batch is read once, in place: the forward kernel broadcasts a[i][k]
 *    against b's row k (8 rows of c at a time); the transposed kernel reads 16 of a's
 *    columns a step and broadcasts b[k][j] (N accumulators of 16 rows of c).
 *  - When: x86-64 with FMA (AVX2 or AVX-512), alpha 1, beta 0, b's rows contiguous; else
 *    the caller's BLAS path.  The rows of c are split over the pool in blocks fixed by the
 *    shape (every element is computed whole by one block, so the split cannot change bits).
 */
#include "internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define NARROW_X86 1
#endif

typedef struct narrow_job {
    const float *a, *b;
    float *c;
    int64_t n, k, lda, ldb;
    bool ta;
} narrow_job_t;

#ifdef NARROW_X86
/* c rows [i0, i1) = a rows @ b: acc (N lanes of 16) per row, 8 rows at a time. */
__attribute__((target("avx512f,fma"))) static void rows_nn_avx512(const narrow_job_t *j, int64_t i0,
                                                                  int64_t i1)
{
    const __mmask16 mask = (__mmask16)((1u << j->n) - 1);
    const int64_t K = j->k, lda = j->lda, ldb = j->ldb;
    int64_t i = i0;
    for (; i + 8 <= i1; i += 8) {
        __m512 acc[8];
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++)
            acc[r] = _mm512_setzero_ps();
        const float *a0 = j->a + i * lda;
        for (int64_t k = 0; k < K; k++) {
            __m512 bv = _mm512_maskz_loadu_ps(mask, j->b + k * ldb);
#pragma GCC unroll 8
            for (int r = 0; r < 8; r++)
                acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(a0[r * lda + k]), bv, acc[r]);
        }
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++)
            _mm512_mask_storeu_ps(j->c + (i + r) * j->n, mask, acc[r]);
    }
    for (; i < i1; i++) {
        __m512 acc = _mm512_setzero_ps();
        const float *a0 = j->a + i * lda;
        for (int64_t k = 0; k < K; k++)
            acc = _mm512_fmadd_ps(_mm512_set1_ps(a0[k]),
                                  _mm512_maskz_loadu_ps(mask, j->b + k * ldb), acc);
        _mm512_mask_storeu_ps(j->c + i * j->n, mask, acc);
    }
}

/* c rows [i0, i1) = (a^T) rows @ b, a stored (K, M): 16 rows of c a step, one accumulator
   per column of c (N of them, N a constant here so that they stay in registers). */
__attribute__((target("avx512f,fma"), always_inline)) static inline void rows_tn_avx512_n(
    const narrow_job_t *j, int64_t i0, int64_t i1, const int n)
{
    const int64_t K = j->k, lda = j->lda, ldb = j->ldb;
    for (int64_t i = i0; i < i1; i += 16) {
        int64_t rows = i1 - i < 16 ? i1 - i : 16;
        const __mmask16 mask = (__mmask16)((1u << rows) - 1);
        __m512 acc[16];
#pragma GCC unroll 16
        for (int c = 0; c < n; c++)
            acc[c] = _mm512_setzero_ps();
        for (int64_t k = 0; k < K; k++) {
            __m512 av = _mm512_maskz_loadu_ps(mask, j->a + k * lda + i);
            const float *bk = j->b + k * ldb;
#pragma GCC unroll 16
            for (int c = 0; c < n; c++)
                acc[c] = _mm512_fmadd_ps(av, _mm512_set1_ps(bk[c]), acc[c]);
        }
        float t[16][16];
#pragma GCC unroll 16
        for (int c = 0; c < n; c++)
            _mm512_storeu_ps(t[c], acc[c]);
        for (int64_t r = 0; r < rows; r++)
            for (int c = 0; c < n; c++)
                j->c[(i + r) * n + c] = t[c][r];
    }
}

__attribute__((target("avx2,fma"))) static void rows_nn_avx2(const narrow_job_t *j, int64_t i0,
                                                             int64_t i1)
{
    /* two 8-lane halves of the row; lanes past N are loaded as zeros and never stored */
    int n = (int)j->n;
    __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane);
    __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(n - 8), lane);
    const int64_t K = j->k, lda = j->lda, ldb = j->ldb;
    int64_t i = i0;
    for (; i + 4 <= i1; i += 4) {
        __m256 lo[4], hi[4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            lo[r] = hi[r] = _mm256_setzero_ps();
        const float *a0 = j->a + i * lda;
        for (int64_t k = 0; k < K; k++) {
            const float *bk = j->b + k * ldb;
            __m256 b0 = _mm256_maskload_ps(bk, m0), b1 = _mm256_maskload_ps(bk + 8, m1);
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                __m256 av = _mm256_set1_ps(a0[r * lda + k]);
                lo[r] = _mm256_fmadd_ps(av, b0, lo[r]);
                hi[r] = _mm256_fmadd_ps(av, b1, hi[r]);
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            _mm256_maskstore_ps(j->c + (i + r) * n, m0, lo[r]);
            _mm256_maskstore_ps(j->c + (i + r) * n + 8, m1, hi[r]);
        }
    }
    for (; i < i1; i++) {
        __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
        const float *a0 = j->a + i * lda;
        for (int64_t k = 0; k < K; k++) {
            const float *bk = j->b + k * ldb;
            __m256 av = _mm256_set1_ps(a0[k]);
            lo = _mm256_fmadd_ps(av, _mm256_maskload_ps(bk, m0), lo);
            hi = _mm256_fmadd_ps(av, _mm256_maskload_ps(bk + 8, m1), hi);
        }
        _mm256_maskstore_ps(j->c + i * n, m0, lo);
        _mm256_maskstore_ps(j->c + i * n + 8, m1, hi);
    }
}

__attribute__((target("avx2,fma"), always_inline)) static inline void rows_tn_avx2_n(
    const narrow_job_t *j, int64_t i0, int64_t i1, const int n)
{
    __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const int64_t K = j->k, lda = j->lda, ldb = j->ldb;
    for (int64_t i = i0; i < i1; i += 8) {
        int64_t rows = i1 - i < 8 ? i1 - i : 8;
        __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rows), lane);
        __m256 acc[16];
#pragma GCC unroll 16
        for (int c = 0; c < n; c++)
            acc[c] = _mm256_setzero_ps();
        for (int64_t k = 0; k < K; k++) {
            __m256 av = _mm256_maskload_ps(j->a + k * lda + i, mask);
            const float *bk = j->b + k * ldb;
#pragma GCC unroll 16
            for (int c = 0; c < n; c++)
                acc[c] = _mm256_fmadd_ps(av, _mm256_set1_ps(bk[c]), acc[c]);
        }
        float t[16][8];
#pragma GCC unroll 16
        for (int c = 0; c < n; c++)
            _mm256_storeu_ps(t[c], acc[c]);
        for (int64_t r = 0; r < rows; r++)
            for (int c = 0; c < n; c++)
                j->c[(i + r) * n + c] = t[c][r];
    }
}

/* one specialisation per N, so that the accumulators are registers */
/* clang-format off */
#define NARROW_CASES(F, j, i0, i1) \
    switch ((j)->n) { \
    case 1: F(j, i0, i1, 1); break;   case 2: F(j, i0, i1, 2); break; \
    case 3: F(j, i0, i1, 3); break;   case 4: F(j, i0, i1, 4); break; \
    case 5: F(j, i0, i1, 5); break;   case 6: F(j, i0, i1, 6); break; \
    case 7: F(j, i0, i1, 7); break;   case 8: F(j, i0, i1, 8); break; \
    case 9: F(j, i0, i1, 9); break;   case 10: F(j, i0, i1, 10); break; \
    case 11: F(j, i0, i1, 11); break; case 12: F(j, i0, i1, 12); break; \
    case 13: F(j, i0, i1, 13); break; case 14: F(j, i0, i1, 14); break; \
    case 15: F(j, i0, i1, 15); break; default: F(j, i0, i1, 16); break; \
    }
/* clang-format on */

__attribute__((target("avx512f,fma"))) static void rows_tn_avx512(const narrow_job_t *j, int64_t i0,
                                                                  int64_t i1)
{
    NARROW_CASES(rows_tn_avx512_n, j, i0, i1)
}

__attribute__((target("avx2,fma"))) static void rows_tn_avx2(const narrow_job_t *j, int64_t i0,
                                                             int64_t i1)
{
    NARROW_CASES(rows_tn_avx2_n, j, i0, i1)
}
#undef NARROW_CASES
#endif

typedef void (*narrow_rows_fn)(const narrow_job_t *, int64_t, int64_t);

typedef struct narrow_task {
    const narrow_job_t *job;
    narrow_rows_fn rows;
} narrow_task_t;

static void narrow_block(void *ctx, int64_t i0, int64_t i1)
{
    const narrow_task_t *t = ctx;
    t->rows(t->job, i0, i1);
}

/* The widest kernel for this CPU and layout, or NULL (no FMA: the caller uses its BLAS). */
static narrow_rows_fn narrow_kernel(bool ta, int level)
{
#ifdef NARROW_X86
    __builtin_cpu_init();
    bool avx512 = level >= 2 && __builtin_cpu_supports("avx512f");
    bool avx2 = level >= 1 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (avx512)
        return ta ? rows_tn_avx512 : rows_nn_avx512;
    if (avx2)
        return ta ? rows_tn_avx2 : rows_nn_avx2;
#else
    (void)ta;
    (void)level;
#endif
    return NULL;
}

/* Rows of c per block: about 1 MFLOP each, a multiple of 16, from the shape alone. */
static int64_t narrow_grain(int64_t m, int64_t n, int64_t k)
{
    double per_row = 2.0 * (double)n * (double)k;
    int64_t g = (int64_t)((double)(1 << 20) / (per_row > 1 ? per_row : 1));
    g = (g + 15) / 16 * 16;
    return g < m ? g : m;
}

bool lunet_gemm_narrow_f32_at(int level, bool ta, int64_t m, int64_t n, int64_t k, const float *a,
                              int64_t lda, const float *b, int64_t ldb, float *c)
{
    if (n < 1 || n > 16 || m < 1 || k < 1)
        return false;
    narrow_rows_fn rows = narrow_kernel(ta, level);
    if (!rows)
        return false;
    narrow_job_t job = {a, b, c, n, k, lda, ldb, ta};
    narrow_task_t task = {&job, rows};
    lunet_parallel_for(m, narrow_grain(m, n, k), narrow_block, &task);
    return true;
}

bool lunet_gemm_narrow_f32(bool ta, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                           const float *b, int64_t ldb, float *c)
{
    return lunet_gemm_narrow_f32_at(2, ta, m, n, k, a, lda, b, ldb, c);
}
