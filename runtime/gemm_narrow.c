/*
 * gemm_narrow.c - float32 products with a narrow output, c (M, N <= 16) = op(a) @ b: softmax
 * regression's (256, 784) @ (784, 10) and its weight gradient x^T (784, 256) @ g (256, 10).
 *
 * Decisions:
 *  - Order, a function of the shape only (never of the vector width, the blocks or the
 *    thread count), so the AVX-512 and AVX2 kernels give the same bits and a plain loop in
 *    that order checks them exactly (tests/test_gemm_narrow.c):
 *    . weight gradient, a stored transposed (x^T @ g): each c[i][j] is one fused
 *      multiply-add chain over k = 0, 1, ..., K-1 from +0.  OpenBLAS 0.3.21 computes this
 *      shape in the same order on this project's Xeon: W's bits did not change.
 *    . forward (x @ w): 16 chains per element, p[l] over k = l mod 16, added as lanes
 *      l + 8, then l + 4, l + 2, l + 1.  This differs from OpenBLAS in the last bits; the
 *      softmax-regression script's printed losses and accuracies are unchanged over all
 *      10 epochs.
 *  - Why: a general GEMM packs the wide operand before multiplying, so at N = 10 OpenBLAS
 *    spends a third of its time copying the (256, 784) batch, and its kernels run 10 of 16
 *    lanes.  Here the batch is read once, in place: the forward reads a row of x 16 values a
 *    step against b^T (packed on the stack, N * KP <= 16384 floats, else BLAS), two rows
 *    of c at a time; the weight gradient reads 16 of a's columns a step and broadcasts
 *    b[k][j] (N accumulators of 16 rows of c).  One thread, this Xeon: forward 75 -> 37 us,
 *    weight gradient 64 -> 30 us (OpenBLAS -> here; AVX2: 51 and 41 us).
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
    const float *bt; /* the forward's b^T (N, KP), zero-padded, 64-byte aligned */
    float *c;
    int64_t n, k, lda, ldb, kp;
    bool ta;
} narrow_job_t;

/* The forward packs b^T on the caller's stack: at most this many floats (N * KP). */
#define NARROW_PACK_MAX 16384

#ifdef NARROW_X86
/* c rows [i0, i1) = (a^T) rows @ b, a stored (K, M): 16 rows of c a step, one accumulator
   per column of c (N of them, N a constant here so that they stay in registers). */
__attribute__((target("avx512f,fma"), always_inline)) static inline void rows_tn_avx512_n(
    const narrow_job_t *j, int64_t i0, int64_t i1, const int n)
{
    const int64_t K = j->k, lda = j->lda, ldb = j->ldb;
    int64_t i = i0;
    /* 32 rows of c a step while 2 N accumulators fit the registers: one broadcast of
       b[k][c] serves two FMAs */
    for (; n <= 12 && i + 32 <= i1; i += 32) {
        __m512 lo[12], hi[12];
#pragma GCC unroll 12
        for (int c = 0; c < n; c++)
            lo[c] = hi[c] = _mm512_setzero_ps();
        for (int64_t k = 0; k < K; k++) {
            __m512 a0 = _mm512_loadu_ps(j->a + k * lda + i);
            __m512 a1 = _mm512_loadu_ps(j->a + k * lda + i + 16);
            const float *bk = j->b + k * ldb;
#pragma GCC unroll 12
            for (int c = 0; c < n; c++) {
                __m512 bv = _mm512_set1_ps(bk[c]);
                lo[c] = _mm512_fmadd_ps(a0, bv, lo[c]);
                hi[c] = _mm512_fmadd_ps(a1, bv, hi[c]);
            }
        }
        float t[12][32];
#pragma GCC unroll 12
        for (int c = 0; c < n; c++) {
            _mm512_storeu_ps(t[c], lo[c]);
            _mm512_storeu_ps(t[c] + 16, hi[c]);
        }
        for (int64_t r = 0; r < 32; r++)
            for (int c = 0; c < n; c++)
                j->c[(i + r) * n + c] = t[c][r];
    }
    for (; i < i1; i += 16) {
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

/* The forward's sum of 16 partial sums p[0..15] (p[l] the chain over k = l mod 16): lanes
   l and l + 8, then l and l + 4, l and l + 2, l and l + 1. */
__attribute__((target("avx2"))) static inline float tree16_avx2(__m256 lo, __m256 hi)
{
    __m256 s8 = _mm256_add_ps(lo, hi);
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

__attribute__((target("avx512f"))) static inline float tree16_avx512(__m512 v)
{
    __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    return tree16_avx2(_mm512_castps512_ps256(v), hi);
}

/* c rows [i0, i1) = a rows @ b, with b^T packed (N, KP) and zero-padded: 16 partial sums
   per element, two rows of c at a time (one when N is too wide for the registers). */
__attribute__((target("avx512f,fma"), always_inline)) static inline void rows_nn_avx512_n(
    const narrow_job_t *j, int64_t i0, int64_t i1, const int n)
{
    const int64_t K = j->k, lda = j->lda, kp = j->kp;
    const float *bt = j->bt;
    int64_t i = i0;
    for (; n <= 12 && i + 2 <= i1; i += 2) {
        __m512 acc0[12], acc1[12];
#pragma GCC unroll 12
        for (int c = 0; c < n; c++)
            acc0[c] = acc1[c] = _mm512_setzero_ps();
        const float *a0 = j->a + i * lda, *a1 = a0 + lda;
        for (int64_t k = 0; k < K; k += 16) {
            __mmask16 mk = K - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - k)) - 1);
            __m512 x0 = _mm512_maskz_loadu_ps(mk, a0 + k);
            __m512 x1 = _mm512_maskz_loadu_ps(mk, a1 + k);
#pragma GCC unroll 12
            for (int c = 0; c < n; c++) {
                __m512 w = _mm512_load_ps(bt + c * kp + k);
                acc0[c] = _mm512_fmadd_ps(x0, w, acc0[c]);
                acc1[c] = _mm512_fmadd_ps(x1, w, acc1[c]);
            }
        }
#pragma GCC unroll 12
        for (int c = 0; c < n; c++) {
            j->c[i * n + c] = tree16_avx512(acc0[c]);
            j->c[(i + 1) * n + c] = tree16_avx512(acc1[c]);
        }
    }
    for (; i < i1; i++) {
        __m512 acc[16];
#pragma GCC unroll 16
        for (int c = 0; c < n; c++)
            acc[c] = _mm512_setzero_ps();
        const float *a0 = j->a + i * lda;
        for (int64_t k = 0; k < K; k += 16) {
            __mmask16 mk = K - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - k)) - 1);
            __m512 x0 = _mm512_maskz_loadu_ps(mk, a0 + k);
#pragma GCC unroll 16
            for (int c = 0; c < n; c++)
                acc[c] = _mm512_fmadd_ps(x0, _mm512_load_ps(bt + c * kp + k), acc[c]);
        }
#pragma GCC unroll 16
        for (int c = 0; c < n; c++)
            j->c[i * n + c] = tree16_avx512(acc[c]);
    }
}

/* The same sums with 8-lane halves: lo holds p[0..7], hi p[8..15]; one row of c at a time,
   its columns 5 at a time (10 accumulators, within AVX2's 16 registers). */
__attribute__((target("avx2,fma"))) static void rows_nn_avx2(const narrow_job_t *j, int64_t i0,
                                                             int64_t i1)
{
    const int64_t K = j->k, lda = j->lda, kp = j->kp, n = j->n, kfull = K / 16 * 16;
    const float *bt = j->bt;
    __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(K - kfull)), lane);
    __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(K - kfull - 8)), lane);
    for (int64_t i = i0; i < i1; i++) {
        const float *a0 = j->a + i * lda;
        for (int64_t c0 = 0; c0 < n; c0 += 5) {
            int64_t nc = n - c0 < 5 ? n - c0 : 5;
            const float *w[5];
            for (int c = 0; c < 5; c++)
                w[c] = bt + (c0 + (c < nc ? c : 0)) * kp;
            __m256 lo[5], hi[5];
#pragma GCC unroll 5
            for (int c = 0; c < 5; c++)
                lo[c] = hi[c] = _mm256_setzero_ps();
            for (int64_t k = 0; k < kfull; k += 16) {
                __m256 x0 = _mm256_loadu_ps(a0 + k), x1 = _mm256_loadu_ps(a0 + k + 8);
#pragma GCC unroll 5
                for (int c = 0; c < 5; c++) {
                    lo[c] = _mm256_fmadd_ps(x0, _mm256_load_ps(w[c] + k), lo[c]);
                    hi[c] = _mm256_fmadd_ps(x1, _mm256_load_ps(w[c] + k + 8), hi[c]);
                }
            }
            if (kfull < K) {
                __m256 x0 = _mm256_maskload_ps(a0 + kfull, m0);
                __m256 x1 = _mm256_maskload_ps(a0 + kfull + 8, m1);
#pragma GCC unroll 5
                for (int c = 0; c < 5; c++) {
                    lo[c] = _mm256_fmadd_ps(x0, _mm256_load_ps(w[c] + kfull), lo[c]);
                    hi[c] = _mm256_fmadd_ps(x1, _mm256_load_ps(w[c] + kfull + 8), hi[c]);
                }
            }
            for (int c = 0; c < nc; c++)
                j->c[i * n + c0 + c] = tree16_avx2(lo[c], hi[c]);
        }
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

__attribute__((target("avx512f,fma"))) static void rows_nn_avx512(const narrow_job_t *j, int64_t i0,
                                                                  int64_t i1)
{
    NARROW_CASES(rows_nn_avx512_n, j, i0, i1)
}

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
    int64_t kp = (k + 15) / 16 * 16;
    if (!ta && n * kp > NARROW_PACK_MAX)
        return false;
    narrow_rows_fn rows = narrow_kernel(ta, level);
    if (!rows)
        return false;
    _Alignas(64) float bt[NARROW_PACK_MAX];
    if (!ta) // bt (n, kp) = b^T, zeros past k
        for (int64_t jj = 0; jj < n; jj++)
            for (int64_t kk = 0; kk < kp; kk++)
                bt[jj * kp + kk] = kk < k ? b[kk * ldb + jj] : 0.0f;
    narrow_job_t job = {a, b, bt, c, n, k, lda, ldb, kp, ta};
    narrow_task_t task = {&job, rows};
    lunet_parallel_for(m, narrow_grain(m, n, k), narrow_block, &task);
    return true;
}

bool lunet_gemm_narrow_f32(bool ta, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                           const float *b, int64_t ldb, float *c)
{
    return lunet_gemm_narrow_f32_at(2, ta, m, n, k, a, lda, b, ldb, c);
}
