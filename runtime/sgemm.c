/*
 * sgemm.c - Lunet's own float32 GEMM kernels, for the training shapes where the BLAS
 * libraries lose time packing operands that are used only 64 (or 10) times: the tiles
 * (6 x 64, AVX-512) for a batch of 64 rows against a layer's weight, and the narrow
 * kernels (N <= 16, AVX-512 or AVX2) for softmax regression's 10 outputs.  Everything else
 * goes to BLAS; one function, lunet_sgemm_choose, decides which (matmul.c asks it).
 *
 * Decisions:
 *  - Ours only where measured clearly faster than the libraries, OpenBLAS and oneDNN, in the
 *    same run (bench_gemm shapes; the table and the fallbacks are in docs/performance.md):
 *    x @ W^T from 1 MFLOP and g @ W from 3 MFLOP (tiles), N <= 16 with alpha 1, beta 0
 *    (narrow).  The weight gradient g^T @ x with a wide C stays on BLAS (tiles were slower).
 *  - Fallbacks: no AVX-512 (or valgrind, which has none) -> BLAS for the tiles; the narrow
 *    kernels have an AVX2 path (the same bits) and need FMA, else BLAS; LUNET_SGEMM=blas
 *    sends everything to BLAS (for measurements).
 *  - Order, a function of the shape only, so that no tile, block or thread count changes a
 *    bit, and a plain loop in that order checks each kernel exactly (tests/test_gemm.c):
 *    . tiles: each element one in-order fma chain over k from zero; K is walked in slices
 *      with the float accumulators carried between them (exact), then alpha * sum
 *      + (bias, or beta * c), then the ReLU if asked.
 *    . narrow, a stored transposed (x^T @ g): one in-order fma chain per element (OpenBLAS
 *      0.3.21's own order at this shape on this Xeon).
 *    . narrow forward (x @ w): 16 chains per element, p[l] over k = l mod 16, added as
 *      lanes l + 8, then l + 4, l + 2, l + 1 (differs from OpenBLAS in the last bits).
 *  - Tiles: per k, four vector loads of a row of B and six broadcasts of a column of A; A is
 *    read in place whatever its transpose, B in place when its rows are contiguous
 *    (g @ W); x @ W^T is solved as C^T = W @ x^T with only x^T (the batch) packed: once per
 *    product by the caller (lunet_sgemm_pack) when the blocks split W's rows and all need
 *    it, else by each block, 64 rows of x at a time into a k x 64 scratch (a 1000-row test
 *    batch needed a 3 MB copy, which the free lists then kept; the strip, read from L2, also
 *    made that product about 25% faster); those tiles are stored transposed.  The bias and the ReLU are applied to the tile while it is in registers.
 *  - Narrow: the batch is read once, in place: the forward reads a row of x 16 values a
 *    step against b^T (packed into a scratch tensor, N * KP <= 16384 floats, 4M at N <= 9), two rows
 *    of c at a time; the weight gradient reads 16 of a's columns a step and broadcasts
 *    b[k][j] (N accumulators of 16 rows of c).  Its rows are split over the pool in blocks
 *    fixed by the shape.
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

/* LUNET_SGEMM=blas sends every product to BLAS (for measurements) */
static bool own_kernels_allowed(void)
{
    static int allowed = -1; /* a benign race: every thread computes the same answer */
    if (allowed < 0) {
        const char *env = getenv("LUNET_SGEMM");
        allowed = !(env && !strcmp(env, "blas"));
    }
    return allowed;
}

bool lunet_sgemm_tiles_available(void)
{
#ifdef HAVE_KERNEL
    static int avail = -1;
    if (avail < 0) {
        __builtin_cpu_init();
        avail = __builtin_cpu_supports("avx512f");
    }
    return avail && own_kernels_allowed();
#else
    return false;
#endif
}

/* The narrow forward packs b^T (N, KP) into a scratch tensor: up to N * KP = NARROW_PACK_L1
   floats (64 KB, about L1) it beats the tiles at N <= 13; past it only at N <= 9, which may
   pack up to NARROW_PACK_CAP floats (16 MB). */
#define NARROW_PACK_L1 16384
#define NARROW_PACK_CAP (1 << 22)

/* Whether the narrow kernels can take c (m, n) = op(a) @ b at all: N <= 16, and for the
   forward layout a pack of b^T within the limits above. */
static bool narrow_fits(bool ta, int64_t n, int64_t k)
{
    if (n < 1 || n > 16 || k < 1)
        return false;
    int64_t kp = (k + 15) / 16 * 16;
    return ta || n * kp <= (n <= 9 ? NARROW_PACK_CAP : NARROW_PACK_L1);
}

/* Where each kernel was measured faster than OpenBLAS and oneDNN (bench_gemm shapes and
   narrow, docs/performance.md), one thread, CPU time:
    - c = op(a) @ b with N <= 16 (alpha 1, beta 0, no bias): up to 10^6 multiply-adds
      OpenBLAS 0.3.21 runs these unpacked and is as fast as the narrow kernels or faster,
      except at N = 9..11 (narrow 10-20% faster); above, its time jumps 2-4x, and the
      narrow kernels take half of it or less: the forward layout up to N = 13 while b^T
      stays within NARROW_PACK_L1 (N <= 9 whatever k), the tiles beyond; the transposed
      layout (x^T @ g) up to N = 15, and N = 16 while a is under 2 MB (then OpenBLAS);
    - the tiles for x @ W^T from 1 MFLOP and for g @ W from 3 MFLOP (0.74-0.92x OpenBLAS's
      time), not below, and not for the weight gradient g^T @ x with a wide C (1.05-1.36x:
      C's read-modify-write and a's strided columns). */
lunet_sgemm_kind_t lunet_sgemm_choose(bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                                      double alpha, double beta, bool epilogue)
{
    if (!own_kernels_allowed() || m < 1 || n < 1 || k < 1)
        return LUNET_SGEMM_BLAS;
    double macs = (double)m * (double)n * (double)k;
    if (n <= 16 && !tb && alpha == 1.0 && beta == 0.0 && !epilogue && m * k >= 4096) {
        bool narrow;
        if (macs <= 1.0e6)
            narrow = n >= 9 && n <= 11;
        else if (ta)
            narrow = n <= 15 || m * k < (1 << 19);
        else
            narrow = n <= 13 && narrow_fits(false, n, k);
        if (narrow && narrow_fits(ta, n, k))
            return LUNET_SGEMM_NARROW;
        if (macs > 1.0e6 && !ta)
            return lunet_sgemm_tiles_available() ? LUNET_SGEMM_TILES : LUNET_SGEMM_BLAS;
        return LUNET_SGEMM_BLAS;
    }
    if (lunet_sgemm_tiles_available() && 2.0 * macs >= (tb ? 1.0e6 : 3.0e6) && (!ta || n < TILE_N))
        return LUNET_SGEMM_TILES;
    return LUNET_SGEMM_BLAS;
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

/* p (k, ldp) = a (m, k)^T: 16 x 16 blocks through registers, the edges element by element */
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

/* c (m, n) = e's epilogue of a (m, k) @ b (k, n): a(i, p) at a[i*ai + p*ak], row p of b at
   b + p*ldb (contiguous), c(i, j) at c[i*ci + j*cj].  With strip (k x 64 floats), b is
   given stored transposed instead, (n, k) with rows ldb apart, and each 64 columns of it
   are packed into strip as the loop reaches them (scratch of k x 64, whatever n). */
__attribute__((target("avx512f"))) static void gemm_tiles(int64_t m, int64_t n, int64_t k,
                                                          const float *a, int64_t ai, int64_t ak,
                                                          const float *b, int64_t ldb,
                                                          const epilogue_t *e, float *c, int64_t ci,
                                                          int64_t cj, float *strip)
{
    /* blocks of BLOCK_TILES tiles over slices of K_SLICE: the slice of b (K_SLICE x 64
       floats, 32 KB) stays in L1 while the tiles of the block run over it, and their
       accumulators wait in carry between slices */
    __m512 carry[BLOCK_TILES][TILE_M][TILE_V];
    for (int64_t j = 0; j < n; j += TILE_N) {
        int nc = n - j < TILE_N ? (int)(n - j) : TILE_N;
        int nv = (nc + 15) / 16, tail = nc - 16 * (nv - 1);
        __mmask16 last = tail == 16 ? (__mmask16)0xffff : (__mmask16)((1u << tail) - 1);
        /* columns [j, j + nc) of b: in place, or packed now (the tiles' masked loads read no
           column past nc, so the strip needs no padding) */
        const float *bj = b + j;
        int64_t ldbj = ldb;
        if (strip) {
            pack_transposed(strip, TILE_N, b + j * ldb, ldb, nc, k);
            bj = strip;
            ldbj = TILE_N;
        }
        for (int64_t i0 = 0; i0 < m; i0 += BLOCK_TILES * TILE_M) {
            int64_t i1 = m - i0 < BLOCK_TILES * TILE_M ? m : i0 + BLOCK_TILES * TILE_M;
            for (int64_t p = 0; p < k; p += K_SLICE) {
                int64_t kc = k - p < K_SLICE ? k - p : K_SLICE;
                for (int64_t i = i0; i < i1; i += TILE_M)
                    tile_any(i1 - i < TILE_M ? (int)(i1 - i) : TILE_M, nv, kc, a + i * ai + p * ak,
                             ai, ak, bj + p * ldbj, ldbj, last, p == 0, carry[(i - i0) / TILE_M]);
            }
            for (int64_t i = i0; i < i1; i += TILE_M)
                store(i1 - i < TILE_M ? (int)(i1 - i) : TILE_M, nc, carry[(i - i0) / TILE_M], e,
                      e->bias ? e->bias + (cj == 1 ? j : i) : NULL, c + i * ci + j * cj, ci, cj);
        }
    }
}

#endif /* HAVE_KERNEL */

int64_t lunet_sgemm_pack_ld(int64_t m) { return (m + 15) / 16 * 16; }

void lunet_sgemm_pack(float *p, const float *a, int64_t lda, int64_t m, int64_t k)
{
    int64_t ldp = lunet_sgemm_pack_ld(m);
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

bool lunet_sgemm_tiles(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                       const float *a, int64_t lda, const float *b, int64_t ldb,
                       const float *packed, int64_t ldp, float beta, float *c, int64_t ldc,
                       const float *bias, bool relu)
{
#ifdef HAVE_KERNEL
    if (!lunet_sgemm_tiles_available() || alpha == 0.0f)
        return false; /* alpha = 0 must not read a or b (BLAS): left to BLAS */
    epilogue_t e = {alpha, beta, bias, relu};
    if (!tb) {
        /* c = op(a) @ b, b's rows contiguous */
        gemm_tiles(m, n, k, a, ta ? 1 : lda, ta ? lda : 1, b, ldb, &e, c, ldc, 1, NULL);
        return true;
    }
    /* c^T (n, m) = b_stored (n, k) @ op(a)^T (k, m): a^T is a itself when ta, the caller's
       packed a^T, or packed here 64 rows of a at a time (from the thread's free lists) */
    if (ta || packed) {
        gemm_tiles(n, m, k, b, ldb, 1, ta ? a : packed, ta ? lda : ldp, &e, c, 1, ldc, NULL);
        return true;
    }
    lunet_tensor_t *scratch = NULL;
    if (lunet_tensor_empty(&scratch, LUNET_DTYPE_FLOAT32, 2, (const int64_t[]){k, TILE_N}) !=
        LUNET_OK)
        return false;
    gemm_tiles(n, m, k, b, ldb, 1, a, lda, &e, c, 1, ldc, lunet_tensor_data(scratch));
    lunet_tensor_release(scratch);
    return true;
#else
    (void)ta, (void)tb, (void)m, (void)n, (void)k, (void)alpha, (void)a, (void)lda, (void)b;
    (void)ldb, (void)packed, (void)ldp, (void)beta, (void)c, (void)ldc, (void)bias, (void)relu;
    return false;
#endif
}

/* ---------------------------------------------------------------- narrow: N <= 16 */

#if defined(__x86_64__) && defined(__GNUC__)
#define NARROW_X86 1
#endif

typedef struct narrow_job {
    const float *a, *b;
    const float *bt; /* the forward's b^T (N, KP), zero-padded, 64-byte aligned */
    float *c;
    int64_t n, k, lda, ldb, kp;
    bool ta;
} narrow_job_t;

#ifdef NARROW_X86
/* c rows [i, i + rows) = (a^T) rows @ b, a stored (K, M), rows <= 16 nv: nv vectors of 16
   rows, one accumulator per column of c and vector (N of them, N and nv constants here so
   that they stay in registers), loads masked to the rows. */
__attribute__((target("avx512f,fma"), always_inline)) static inline void tn_step_avx512(
    const narrow_job_t *j, int64_t i, int64_t rows, const int n, const int nv)
{
    __mmask16 mask[2];
    for (int v = 0; v < nv; v++) {
        int64_t left = rows - 16 * v;
        mask[v] = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
    }
    const int64_t K = j->k, lda = j->lda, ldb = j->ldb;
    __m512 acc[2][16];
#pragma GCC unroll 16
    for (int c = 0; c < n; c++)
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++)
            acc[v][c] = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k++) {
        const float *ak = j->a + k * lda + i, *bk = j->b + k * ldb;
        __m512 av[2];
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++)
            av[v] = _mm512_maskz_loadu_ps(mask[v], ak + 16 * v);
#pragma GCC unroll 16
        for (int c = 0; c < n; c++) {
            __m512 bv = _mm512_set1_ps(bk[c]); /* one broadcast serves nv FMAs */
#pragma GCC unroll 2
            for (int v = 0; v < nv; v++)
                acc[v][c] = _mm512_fmadd_ps(av[v], bv, acc[v][c]);
        }
    }
    float t[16][32];
#pragma GCC unroll 16
    for (int c = 0; c < n; c++)
        for (int v = 0; v < nv; v++)
            _mm512_storeu_ps(t[c] + 16 * v, acc[v][c]);
    for (int64_t r = 0; r < rows; r++)
        for (int c = 0; c < n; c++)
            j->c[(i + r) * n + c] = t[c][r];
}

/* c rows [i0, i1) = (a^T) rows @ b: 32 rows a step while 2 N accumulators fit the registers
   (N <= 12), else 16. */
__attribute__((target("avx512f,fma"), always_inline)) static inline void rows_tn_avx512_n(
    const narrow_job_t *j, int64_t i0, int64_t i1, const int n)
{
    const int64_t step = n <= 12 ? 32 : 16;
    for (int64_t i = i0; i < i1; i += step) {
        int64_t rows = i1 - i < step ? i1 - i : step;
        if (rows > 16)
            tn_step_avx512(j, i, rows, n, 2);
        else
            tn_step_avx512(j, i, rows, n, 1);
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

bool lunet_sgemm_narrow_at(int level, bool ta, int64_t m, int64_t n, int64_t k, const float *a,
                           int64_t lda, const float *b, int64_t ldb, float *c)
{
    if (m < 1 || !narrow_fits(ta, n, k))
        return false;
    int64_t kp = (k + 15) / 16 * 16;
    narrow_rows_fn rows = narrow_kernel(ta, level);
    if (!rows)
        return false;
    /* bt (n, kp) = b^T, zeros past k; from the thread's free lists (no malloc in a steady
       loop, and no 64 KB stack frame on a host's small thread stack) */
    lunet_tensor_t *scratch = NULL;
    float *bt = NULL;
    if (!ta) {
        int64_t shape[2] = {n, kp};
        if (lunet_tensor_empty(&scratch, LUNET_DTYPE_FLOAT32, 2, shape) != LUNET_OK)
            return false; /* the caller's BLAS does it without the scratch */
        bt = lunet_tensor_data(scratch);
        for (int64_t jj = 0; jj < n; jj++)
            for (int64_t kk = 0; kk < kp; kk++)
                bt[jj * kp + kk] = kk < k ? b[kk * ldb + jj] : 0.0f;
    }
    narrow_job_t job = {a, b, bt, c, n, k, lda, ldb, kp, ta};
    narrow_task_t task = {&job, rows};
    lunet_parallel_for(m, narrow_grain(m, n, k), narrow_block, &task);
    lunet_tensor_release(scratch);
    return true;
}

bool lunet_sgemm_narrow(bool ta, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                        const float *b, int64_t ldb, float *c)
{
    return lunet_sgemm_narrow_at(2, ta, m, n, k, a, lda, b, ldb, c);
}
