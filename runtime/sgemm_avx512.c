/*
 * sgemm_avx512.c - Lunet's own float32 GEMM block for AVX-512 machines, at the shapes of
 * training (a batch of 64 rows against a layer's weight), where the BLAS libraries spend a
 * third of their time packing operands that are used only 64 times.
 *
 * Decisions:
 *  - Nothing is packed but a batch-sized operand.  C is computed in tiles of 6 rows x 64
 *    columns (24 zmm accumulators): per k, four vector loads of a row of B and six scalar
 *    broadcasts of a column of A.  A is read in place whatever its transpose (a broadcast
 *    takes any stride); B is read in place when its rows are contiguous (dX = g @ W,
 *    dW = g^T @ x).  When B is transposed (the forward x @ W^T), the kernel solves
 *    C^T = W @ x^T instead: W is then the in-place A, and x^T (k x m, small: the batch)
 *    is packed once per product by the caller (lunet_sgemm_avx512_pack) before the blocks
 *    run; the tiles are stored transposed.
 *  - Every element of C is one sum over k in order, fma after fma from zero, then
 *    alpha * sum + beta * C (beta = 0: C is not read): the bits do not depend on the tile
 *    or block an element falls in, so the shape-fixed blocks of matmul.c keep giving the
 *    same bits on any thread count.
 *  - Chosen at run time: a CPU without AVX-512F (or valgrind, which has none) gets BLAS;
 *    LUNET_SGEMM=blas forces BLAS (for measurements).
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_KERNEL 1
#include <immintrin.h>
#endif

#define TILE_M 6
#define TILE_V 4 /* vectors of 16 floats: 64 columns */
#define TILE_N (16 * TILE_V)
#define BLOCK_TILES 8
#define K_SLICE 128

bool lunet_sgemm_avx512_available(void)
{
#ifdef HAVE_KERNEL
    static int avail = -1; /* a benign race: every thread computes the same answer */
    if (avail < 0) {
        const char *env = getenv("LUNET_SGEMM");
        __builtin_cpu_init();
        avail = __builtin_cpu_supports("avx512f") && !(env && !strcmp(env, "blas"));
    }
    return avail;
#else
    return false;
#endif
}

/* Measured against OpenBLAS at the MLP's and softmax regression's shapes (bench_gemm
   shapes, docs/performance.md): this kernel wins for x @ W^T from 1 MFLOP up (0.74-0.89x
   the time) and for g @ W from 3 MFLOP up (0.85-0.90x), loses below, and loses for the
   weight gradient g^T @ x with a wide C (1.06-1.14x: C's read-modify-write and a's strided
   columns), which it keeps only when C is narrow (softmax regression's 784 x 10: 0.49x). */
bool lunet_sgemm_avx512_wants(bool ta, bool tb, int64_t m, int64_t n, int64_t k)
{
    double flops = 2.0 * (double)m * (double)n * (double)k;
    return lunet_sgemm_avx512_available() && flops >= (tb ? 1.0e6 : 3.0e6) && (!ta || n < TILE_N);
}

#ifdef HAVE_KERNEL

/* One tile's run over k: io (mr x 16 nv) += a(i, p) * b(p, j) for p < k, fma after fma, from
   zero when first (a float accumulator saved and reloaded is exact, so runs over successive
   slices of k give the bits of one run); a(i, p) at a[i*ai + p*ak], row p of b at
   b + p*ldb, its last vector masked by last.  Inlined with constant mr, nv. */
__attribute__((target("avx512f"), always_inline)) static inline void tile(
    const int mr, const int nv, int64_t k, const float *a, int64_t ai, int64_t ak, const float *b,
    int64_t ldb, __mmask16 last, bool first, __m512 io[TILE_M][TILE_V])
{
    /* local accumulators: io may alias anything a float load reads (__m512 may_alias), so
       summing into it would keep every accumulator in memory */
    __m512 acc[TILE_M][TILE_V];
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            acc[i][v] = first ? _mm512_setzero_ps() : io[i][v];
    for (int64_t p = 0; p < k; p++) {
        __m512 bv[TILE_V];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++) {
            bv[v] = v == nv - 1 ? _mm512_maskz_loadu_ps(last, b + 16 * v)
                                : _mm512_loadu_ps(b + 16 * v);
            /* one load per vector, kept in a register: the compiler would fold it into every
               fma (mr loads instead of one) and make the loop load-bound */
            __asm__("" : "+v"(bv[v]));
        }
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            __m512 av = _mm512_set1_ps(a[i * ai]);
            __asm__("" : "+v"(av));
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++)
                acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
        }
        a += ak;
        b += ldb;
    }
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            io[i][v] = acc[i][v];
}

/* What the sums of a tile become: c = [relu](alpha * sum + (bias ? bias : beta * c)), the
   bias (one value per column of c) taking the place of a c preloaded with it (beta = 1),
   and the ReLU keeping NaN, as relu does. */
typedef struct epilogue {
    float alpha, beta;
    const float *bias;
    bool relu;
} epilogue_t;

/* The tile's sums into C at c(i, j) = c[i*ci + j*cj] (cj = 1: a row of C is contiguous;
   else the tile is stored transposed); bias is the tile's own: indexed by j when cj = 1,
   else by i. */
__attribute__((target("avx512f"))) static void store(int mr, int nc, __m512 acc[TILE_M][TILE_V],
                                                     const epilogue_t *e, const float *bias,
                                                     float *c, int64_t ci, int64_t cj)
{
    const float alpha = e->alpha, beta = e->beta;
    if (cj == 1) {
        __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta), zero = _mm512_setzero_ps();
        for (int i = 0; i < mr; i++)
            for (int v = 0; v * 16 < nc; v++) {
                int left = nc - 16 * v;
                __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
                float *dst = c + i * ci + 16 * v;
                __m512 r = alpha == 1.0f ? acc[i][v] : _mm512_mul_ps(va, acc[i][v]);
                if (bias) {
                    r = _mm512_add_ps(_mm512_maskz_loadu_ps(m, bias + 16 * v), r);
                } else if (beta != 0.0f) {
                    __m512 old = _mm512_maskz_loadu_ps(m, dst);
                    r = _mm512_add_ps(beta == 1.0f ? old : _mm512_mul_ps(vb, old), r);
                }
                if (e->relu) /* max(0, r): r when r is NaN or -0 (the second operand) */
                    r = _mm512_max_ps(zero, r);
                _mm512_mask_storeu_ps(dst, m, r);
            }
        return;
    }
    /* transposed: the epilogue in vectors (row i of the tile is column i of c), then a plain
       transposed copy; only a beta-scaled c without a bias is read back, element by element
       (no data-dependent branch in either loop: a ReLU's random signs would mispredict) */
    float buf[TILE_M][TILE_N] __attribute__((aligned(64)));
    bool read_c = !bias && beta != 0.0f;
    __m512 va = _mm512_set1_ps(alpha), zero = _mm512_setzero_ps();
    for (int i = 0; i < mr; i++)
        for (int v = 0; v * 16 < nc; v++) { /* only the vectors tile() wrote */
            __m512 r = alpha == 1.0f ? acc[i][v] : _mm512_mul_ps(va, acc[i][v]);
            if (bias)
                r = _mm512_add_ps(_mm512_set1_ps(bias[i]), r);
            if (e->relu && !read_c)
                r = _mm512_max_ps(zero, r);
            _mm512_store_ps(&buf[i][16 * v], r);
        }
    if (!read_c) {
        for (int j = 0; j < nc; j++)
            for (int i = 0; i < mr; i++)
                c[i * ci + j * cj] = buf[i][j];
        return;
    }
    for (int j = 0; j < nc; j++)
        for (int i = 0; i < mr; i++) {
            float *dst = c + i * ci + j * cj;
            float r = (beta == 1.0f ? *dst : beta * *dst) + buf[i][j];
            *dst = e->relu && r < 0 ? 0.0f : r;
        }
}

/* tile() for a run-time (mr, nv): each case inlines its own copy with constant sizes, so
   that the accumulators stay in registers. */
__attribute__((target("avx512f"))) static void tile_any(int mr, int nv, int64_t k, const float *a,
                                                        int64_t ai, int64_t ak, const float *b,
                                                        int64_t ldb, __mmask16 last, bool first,
                                                        __m512 acc[TILE_M][TILE_V])
{
    /* clang-format off */
    switch (mr * 8 + nv) {
    case 1 * 8 + 1: tile(1, 1, k, a, ai, ak, b, ldb, last, first, acc); break;
    case 1 * 8 + 2: tile(1, 2, k, a, ai, ak, b, ldb, last, first, acc); break;
    case 1 * 8 + 3: tile(1, 3, k, a, ai, ak, b, ldb, last, first, acc); break;
    case 1 * 8 + 4: tile(1, 4, k, a, ai, ak, b, ldb, last, first, acc); break;
    case 2 * 8 + 1: tile(2, 1, k, a, ai, ak, b, ldb, last, first, acc); break;
    case 2 * 8 + 2: tile(2, 2, k, a, ai, ak, b, ldb, last, first, acc); break;
    case 2 * 8 + 3: tile(2, 3, k, a, ai, ak, b, ldb, last, first, acc); break;
    case 2 * 8 + 4: tile(2, 4, k, a, ai, ak, b, ldb, last, first, acc); break;
    case 3 * 8 + 1: tile(3, 1, k, a, ai, ak, b, ldb, last, first, acc); break;
    case 3 * 8 + 2: tile(3, 2, k, a, ai, ak, b, ldb, last, first, acc); break;
    case 3 * 8 + 3: tile(3, 3, k, a, ai, ak, b, ldb, last, first, acc); break;
    case 3 * 8 + 4: tile(3, 4, k, a, ai, ak, b, ldb, last, first, acc); break;
    case 4 * 8 + 1: tile(4, 1, k, a, ai, ak, b, ldb, last, first, acc); break;
    case 4 * 8 + 2: tile(4, 2, k, a, ai, ak, b, ldb, last, first, acc); break;
    case 4 * 8 + 3: tile(4, 3, k, a, ai, ak, b, ldb, last, first, acc); break;
    case 4 * 8 + 4: tile(4, 4, k, a, ai, ak, b, ldb, last, first, acc); break;
    case 5 * 8 + 1: tile(5, 1, k, a, ai, ak, b, ldb, last, first, acc); break;
    case 5 * 8 + 2: tile(5, 2, k, a, ai, ak, b, ldb, last, first, acc); break;
    case 5 * 8 + 3: tile(5, 3, k, a, ai, ak, b, ldb, last, first, acc); break;
    case 5 * 8 + 4: tile(5, 4, k, a, ai, ak, b, ldb, last, first, acc); break;
    case 6 * 8 + 1: tile(6, 1, k, a, ai, ak, b, ldb, last, first, acc); break;
    case 6 * 8 + 2: tile(6, 2, k, a, ai, ak, b, ldb, last, first, acc); break;
    case 6 * 8 + 3: tile(6, 3, k, a, ai, ak, b, ldb, last, first, acc); break;
    default:        tile(6, 4, k, a, ai, ak, b, ldb, last, first, acc); break;
    }
    /* clang-format on */
}

/* c (m, n) = e's epilogue of a (m, k) @ b (k, n): a(i, p) at a[i*ai + p*ak], row p of b at
   b + p*ldb (contiguous), c(i, j) at c[i*ci + j*cj]. */
__attribute__((target("avx512f"))) static void gemm_tiles(int64_t m, int64_t n, int64_t k,
                                                          const float *a, int64_t ai, int64_t ak,
                                                          const float *b, int64_t ldb,
                                                          const epilogue_t *e, float *c, int64_t ci,
                                                          int64_t cj)
{
    /* blocks of BLOCK_TILES tiles over slices of K_SLICE: the slice of b (K_SLICE x 64
       floats, 32 KB) stays in L1 while the tiles of the block run over it, and their
       accumulators wait in carry between slices */
    __m512 carry[BLOCK_TILES][TILE_M][TILE_V];
    for (int64_t j = 0; j < n; j += TILE_N) {
        int nc = n - j < TILE_N ? (int)(n - j) : TILE_N;
        int nv = (nc + 15) / 16, tail = nc - 16 * (nv - 1);
        __mmask16 last = tail == 16 ? (__mmask16)0xffff : (__mmask16)((1u << tail) - 1);
        for (int64_t i0 = 0; i0 < m; i0 += BLOCK_TILES * TILE_M) {
            int64_t i1 = m - i0 < BLOCK_TILES * TILE_M ? m : i0 + BLOCK_TILES * TILE_M;
            for (int64_t p = 0; p < k; p += K_SLICE) {
                int64_t kc = k - p < K_SLICE ? k - p : K_SLICE;
                for (int64_t i = i0; i < i1; i += TILE_M)
                    tile_any(i1 - i < TILE_M ? (int)(i1 - i) : TILE_M, nv, kc, a + i * ai + p * ak,
                             ai, ak, b + p * ldb + j, ldb, last, p == 0, carry[(i - i0) / TILE_M]);
            }
            for (int64_t i = i0; i < i1; i += TILE_M)
                store(i1 - i < TILE_M ? (int)(i1 - i) : TILE_M, nc, carry[(i - i0) / TILE_M], e,
                      e->bias ? e->bias + (cj == 1 ? j : i) : NULL, c + i * ci + j * cj, ci, cj);
        }
    }
}

/* The recursive 16 x 16 transpose: at distance d, rows i and i + d swap their off-diagonal
   d x d blocks (four rounds of permutes).  Row i takes its own low half and row i+d's low
   half moved up (perm_lo); row i+d takes row i's high half moved down and its own high
   half (perm_hi); a permute index of 16 + j picks element j of the second operand. */
/* clang-format off */
static const int32_t perm_lo[4][16] __attribute__((aligned(64))) = {
    {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23},  /* d = 8 */
    {0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27}, /* d = 4 */
    {0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29}, /* d = 2 */
    {0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30}, /* d = 1 */
};
static const int32_t perm_hi[4][16] __attribute__((aligned(64))) = {
    {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31},
    {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31},
    {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31},
    {1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31},
};
/* clang-format on */

__attribute__((target("avx512f"), always_inline)) static inline void transpose16(__m512 r[16])
{
#pragma GCC unroll 4
    for (int round = 0; round < 4; round++) {
        const int d = 8 >> round;
        __m512i ilo = _mm512_load_si512(perm_lo[round]), ihi = _mm512_load_si512(perm_hi[round]);
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++)
            if (!(i & d)) {
                __m512 x = r[i], y = r[i + d];
                r[i] = _mm512_permutex2var_ps(x, ilo, y);
                r[i + d] = _mm512_permutex2var_ps(x, ihi, y);
            }
    }
}

__attribute__((target("avx512f"))) static void pack_transposed(float *p, int64_t ldp,
                                                               const float *a, int64_t lda,
                                                               int64_t m, int64_t k)
{
    int64_t m16 = m / 16 * 16, k16 = k / 16 * 16;
    for (int64_t i = 0; i < m16; i += 16)
        for (int64_t q = 0; q < k16; q += 16) {
            __m512 r[16];
            for (int t = 0; t < 16; t++)
                r[t] = _mm512_loadu_ps(a + (i + t) * lda + q);
            transpose16(r);
            for (int t = 0; t < 16; t++)
                _mm512_storeu_ps(p + (q + t) * ldp + i, r[t]);
        }
    for (int64_t i = 0; i < m; i++)
        for (int64_t q = i < m16 ? k16 : 0; q < k; q++)
            p[q * ldp + i] = a[i * lda + q];
}

#endif /* HAVE_KERNEL */

int64_t lunet_sgemm_avx512_pack_ld(int64_t m) { return (m + 15) / 16 * 16; }

void lunet_sgemm_avx512_pack(float *p, const float *a, int64_t lda, int64_t m, int64_t k)
{
    int64_t ldp = lunet_sgemm_avx512_pack_ld(m);
#ifdef HAVE_KERNEL
    pack_transposed(p, ldp, a, lda, m, k);
#else
    for (int64_t i = 0; i < m; i++)
        for (int64_t q = 0; q < k; q++)
            p[q * ldp + i] = a[i * lda + q];
#endif
    for (int64_t q = 0; q < k; q++) /* the padding columns are read, never stored: zeros */
        for (int64_t i = m; i < ldp; i++)
            p[q * ldp + i] = 0.0f;
}

bool lunet_sgemm_avx512(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                        const float *a, int64_t lda, const float *b, int64_t ldb,
                        const float *packed, int64_t ldp, float beta, float *c, int64_t ldc,
                        const float *bias, bool relu)
{
#ifdef HAVE_KERNEL
    if (!lunet_sgemm_avx512_available() || alpha == 0.0f)
        return false; /* alpha = 0 must not read a or b (BLAS): left to BLAS */
    epilogue_t e = {alpha, beta, bias, relu};
    if (!tb) {
        /* c = op(a) @ b, b's rows contiguous */
        gemm_tiles(m, n, k, a, ta ? 1 : lda, ta ? lda : 1, b, ldb, &e, c, ldc, 1);
        return true;
    }
    /* c^T (n, m) = b_stored (n, k) @ op(a)^T (k, m): a^T is a itself when ta, else packed */
    const float *bt = ta ? a : packed;
    if (!bt)
        return false;
    int64_t ldbt = ta ? lda : ldp;
    gemm_tiles(n, m, k, b, ldb, 1, bt, ldbt, &e, c, 1, ldc);
    return true;
#else
    (void)ta, (void)tb, (void)m, (void)n, (void)k, (void)alpha, (void)a, (void)lda, (void)b;
    (void)ldb, (void)packed, (void)ldp, (void)beta, (void)c, (void)ldc, (void)bias, (void)relu;
    return false;
#endif
}
