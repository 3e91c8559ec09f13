/*
 * conv.c - 2-D convolution (PyTorch's conv2d): forward and both backwards on GEMM.
 *
 * Decisions:
 *  - The batch is cut into chunks of nb samples whose columns fit a fixed budget (2^16
 *    elements, so they stay in L2 until the GEMM reads them); per chunk, im2col writes every
 *    sample's columns side by side into one matrix cols (C kh kw, nb P), P = OH OW, and each
 *    group is one GEMM: Y[g] (Og, nb P) = w[g] (Og, Kg) @ cols[g] (Kg, nb P).  A few samples
 *    per GEMM keep the kernel busy where per-sample products (10 x 576 x 25 for MNIST's first
 *    layer) spend their time in call overhead; Y is then scattered into y's (N, O, OH, OW)
 *    layout with the bias added, a pass over the output.
 *  - Backward per chunk: g is gathered into G (O, nb P) once; dx = col2im(w[g]^T @ G[g]),
 *    dw += G[g] @ cols[g]^T with the columns recomputed: keeping the forward's columns (as
 *    PyTorch's slow_conv2d keeps "finput") costs kh kw times the activations in memory and
 *    measured slower, since the kept columns no longer sit in cache.
 *  - The chunks run over the runtime's pool in at most CONV_BLOCKS blocks, each with its own
 *    scratch and, for the weight gradient, its own partial sum, added in block order
 *    afterwards: one dispatch per call, and the same bits on any thread count.  Inside a
 *    block everything (GEMMs included) runs serially on its thread.
 *  - im2col writes each column row as runs: zeros, a copy, zeros; the bounds of the runs
 *    depend only on the kernel column, so they are computed once per row.
 *  - Scratch comes from the runtime's caching allocator (lunet_tensor_empty) before any
 *    parallel block runs, so a steady training loop does not call malloc.
 *  - Asymmetric padding (padding_extra) exists for padding="same" with an even kernel, where
 *    PyTorch pads the extra row and column at the bottom and right.
 */
#include "autograd.h"
#include "internal.h"
#include "nn_kernels.h"

#include <string.h>

#define INLINE static inline __attribute__((always_inline))

/* Elements of column scratch per chunk (256 KB of float32).  Measured on LeNet's and the
   course CNN's layers: 2^15..2^16 best, 2^21 1.5-2x slower. */
#define CONV_COLS_BUDGET ((int64_t)1 << 16)
/* The chunks are shared out in at most this many parallel blocks, each with its own scratch
   (a function of the shapes only, so the weight gradient's partial sums -- one per block,
   added in block order -- do not depend on the thread count). */
#define CONV_BLOCKS 4

void lunet_conv2d_options_init(lunet_conv2d_options_t *o)
{
    *o = (lunet_conv2d_options_t){.stride = {1, 1}, .dilation = {1, 1}, .groups = 1};
}

/* The geometry of one convolution, derived once from the shapes and options. */
typedef struct conv_geom {
    int64_t N, C, H, W, O, kh, kw, OH, OW;
    int64_t sh, sw, pt, pl, dh, dw, groups;
    int64_t Cg, Og, Kg, K, P;     /* per group Cg, Og, Kg = Cg kh kw; K = C kh kw; P = OH OW */
    int64_t chunk;                /* samples per chunk */
    int64_t nchunks, gc, nblocks; /* chunks, chunks per parallel block, blocks */
    bool dense;                   /* stride 1 and every window inside the image */
} conv_geom_t;

static void geom_init(conv_geom_t *gm, const lunet_tensor_t *x, const lunet_tensor_t *w,
                      const lunet_conv2d_options_t *o)
{
    gm->N = x->shape[0], gm->C = x->shape[1], gm->H = x->shape[2], gm->W = x->shape[3];
    gm->O = w->shape[0], gm->kh = w->shape[2], gm->kw = w->shape[3];
    gm->sh = o->stride[0], gm->sw = o->stride[1];
    gm->pt = o->padding[0], gm->pl = o->padding[1];
    gm->dh = o->dilation[0], gm->dw = o->dilation[1];
    gm->groups = o->groups;
    int64_t hp = gm->H + 2 * o->padding[0] + o->padding_extra[0];
    int64_t wp = gm->W + 2 * o->padding[1] + o->padding_extra[1];
    gm->OH = (hp - gm->dh * (gm->kh - 1) - 1) / gm->sh + 1;
    gm->OW = (wp - gm->dw * (gm->kw - 1) - 1) / gm->sw + 1;
    gm->Cg = gm->C / gm->groups, gm->Og = gm->O / gm->groups;
    gm->Kg = gm->Cg * gm->kh * gm->kw, gm->K = gm->C * gm->kh * gm->kw;
    gm->P = gm->OH * gm->OW;
    gm->dense = gm->sh == 1 && gm->sw == 1 && gm->pt == 0 && gm->pl == 0 &&
                gm->OH + gm->dh * (gm->kh - 1) <= gm->H && gm->OW + gm->dw * (gm->kw - 1) <= gm->W;
    int64_t per = gm->K * gm->P > gm->O * gm->P ? gm->K * gm->P : gm->O * gm->P;
    gm->chunk = per > 0 ? CONV_COLS_BUDGET / per : gm->N;
    if (gm->chunk < 1)
        gm->chunk = 1;
    if (gm->chunk > gm->N)
        gm->chunk = gm->N > 0 ? gm->N : 1;
    gm->nchunks = (gm->N + gm->chunk - 1) / gm->chunk;
    gm->gc = (gm->nchunks + CONV_BLOCKS - 1) / CONV_BLOCKS;
    if (gm->gc < 1)
        gm->gc = 1;
    gm->nblocks = (gm->nchunks + gm->gc - 1) / gm->gc;
}

/* Output columns [lo, hi) whose input column iw = ow sw + iw0 lies inside [0, W). */
INLINE void valid_range(int64_t *lo, int64_t *hi, int64_t iw0, int64_t sw, int64_t W, int64_t OW)
{
    int64_t a, b;
    if (sw == 1) { /* the common case, without two integer divisions per column row */
        a = iw0 >= 0 ? 0 : -iw0;
        b = W - iw0 <= 0 ? 0 : W - iw0;
    } else {
        a = iw0 >= 0 ? 0 : (-iw0 + sw - 1) / sw;
        b = W - iw0 <= 0 ? 0 : (W - iw0 + sw - 1) / sw;
    }
    *lo = a < OW ? a : OW;
    *hi = b < *lo ? *lo : (b < OW ? b : OW);
}

/* dst[0, n) = 0, typed (runs are short: a loop beats a memset call) */
INLINE void zero_run(char *dst, int64_t n, size_t es)
{
    if (es == sizeof(float))
        for (int64_t i = 0; i < n; i++)
            ((float *)dst)[i] = 0.0f;
    else
        for (int64_t i = 0; i < n; i++)
            ((double *)dst)[i] = 0.0;
}

/* d[0, n) = s[0, n) in float32 (n >= 0: a kernel column that sees only padding has an
   empty run): fixed-size memcpys (vector moves), the last one overlapping the one before,
   since a CNN's runs are short (8 to 28 elements) and the compiler would turn a plain copy
   loop into a memcpy call per run. */
INLINE void copy_run_f32(float *restrict d, const float *restrict s, int64_t n)
{
    if (n >= 8) {
        for (int64_t i = 0; i + 8 < n; i += 8)
            memcpy(d + i, s + i, 8 * sizeof(float));
        memcpy(d + n - 8, s + n - 8, 8 * sizeof(float));
    } else if (n >= 4) {
        memcpy(d, s, 4 * sizeof(float));
        memcpy(d + n - 4, s + n - 4, 4 * sizeof(float));
    } else if (n > 0) {
        d[0] = s[0];
        if (n > 1)
            d[1] = s[1];
        if (n > 2)
            d[2] = s[2];
    }
}

/* d[0, n) += s[0, n) in float32, by blocks of fixed size for the same reason */
INLINE void add_run_f32(float *restrict d, const float *restrict s, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            d[i + k] += s[i + k];
    if (i + 4 <= n) {
        for (int k = 0; k < 4; k++)
            d[i + k] += s[i + k];
        i += 4;
    }
    if (i < n)
        d[i] += s[i];
    if (i + 1 < n)
        d[i + 1] += s[i + 1];
    if (i + 2 < n)
        d[i + 2] += s[i + 2];
}

/*
 * For float32 convolutions whose every window lies inside the image with stride 1
 * (g->dense), each row of cols (C kh kw, P) (row stride ld) is OH runs of OW elements, each
 * a piece of one row of x (C, H, W).  im2col copies the runs out of x; its adjoint (col2im)
 * adds them back into x.  x is written only when adjoint.
 */
INLINE void dense_runs_f32(float *restrict cols, int64_t ld, float *restrict x,
                           const conv_geom_t *g, bool adjoint)
{
    const int64_t C = g->C, H = g->H, W = g->W, kh = g->kh, kw = g->kw, dh = g->dh, dw = g->dw;
    const int64_t OH = g->OH, OW = g->OW;
    for (int64_t c = 0; c < C; c++)
        for (int64_t ki = 0; ki < kh; ki++)
            for (int64_t kj = 0; kj < kw; kj++) {
                float *row = cols + ((c * kh + ki) * kw + kj) * ld;
                float *xrow = x + (c * H + ki * dh) * W + kj * dw;
                for (int64_t oh = 0; oh < OH; oh++)
                    if (adjoint)
                        add_run_f32(xrow + oh * W, row + oh * OW, OW);
                    else
                        copy_run_f32(row + oh * OW, xrow + oh * W, OW);
            }
}

/*
 * x (C, H, W) contiguous -> cols (C kh kw, P) with row stride ld.  es is the element size;
 * callers pass a constant, so the body is specialised for float and double.
 */
INLINE void im2col(char *restrict cols, int64_t ld, const char *restrict x, size_t es,
                   const conv_geom_t *gp)
{
    /* a local copy: the stores through char pointers would otherwise reload every field */
    const conv_geom_t gl = *gp, *g = &gl;
    int64_t OW = g->OW, sw = g->sw;
    for (int64_t c = 0; c < g->C; c++)
        for (int64_t ki = 0; ki < g->kh; ki++)
            for (int64_t kj = 0; kj < g->kw; kj++) {
                char *row = cols + (size_t)(((c * g->kh + ki) * g->kw + kj) * ld) * es;
                int64_t iw0 = kj * g->dw - g->pl, lo, hi;
                valid_range(&lo, &hi, iw0, sw, g->W, OW);
                for (int64_t oh = 0; oh < g->OH; oh++) {
                    char *dst = row + (size_t)(oh * OW) * es;
                    int64_t ih = oh * g->sh - g->pt + ki * g->dh;
                    if (ih < 0 || ih >= g->H) {
                        zero_run(dst, OW, es);
                        continue;
                    }
                    const char *src = x + (size_t)((c * g->H + ih) * g->W) * es;
                    zero_run(dst, lo, es);
                    if (es == sizeof(float)) {
                        float *restrict d = (float *)dst;
                        const float *restrict s = (const float *)src + iw0;
                        if (sw == 1)
                            copy_run_f32(d + lo, s + lo, hi - lo);
                        else
                            for (int64_t ow = lo; ow < hi; ow++)
                                d[ow] = s[ow * sw];
                    } else {
                        double *restrict d = (double *)dst;
                        const double *restrict s = (const double *)src + iw0;
                        for (int64_t ow = lo; ow < hi; ow++)
                            d[ow] = s[ow * sw];
                    }
                    zero_run(dst + (size_t)hi * es, OW - hi, es);
                }
            }
}

/* cols (C kh kw, P) with row stride ld added back into dx (C, H, W) (im2col's adjoint). */
INLINE void col2im(char *restrict dx, const char *restrict cols, int64_t ld, size_t es,
                   const conv_geom_t *gp)
{
    /* a local copy: the stores through char pointers would otherwise reload every field */
    const conv_geom_t gl = *gp, *g = &gl;
    int64_t OW = g->OW;
    for (int64_t c = 0; c < g->C; c++)
        for (int64_t ki = 0; ki < g->kh; ki++)
            for (int64_t kj = 0; kj < g->kw; kj++) {
                const char *row = cols + (size_t)(((c * g->kh + ki) * g->kw + kj) * ld) * es;
                int64_t iw0 = kj * g->dw - g->pl, lo, hi;
                valid_range(&lo, &hi, iw0, g->sw, g->W, OW);
                for (int64_t oh = 0; oh < g->OH; oh++) {
                    int64_t ih = oh * g->sh - g->pt + ki * g->dh;
                    if (ih < 0 || ih >= g->H)
                        continue;
                    char *d = dx + (size_t)((c * g->H + ih) * g->W) * es;
                    const char *s = row + (size_t)(oh * OW) * es;
                    if (es == sizeof(float) && g->sw == 1) {
                        float *restrict dd = (float *)d + iw0;
                        const float *restrict ss = (const float *)s;
                        for (int64_t ow = lo; ow < hi; ow++)
                            dd[ow] += ss[ow];
                    } else if (es == sizeof(float)) {
                        float *dd = (float *)d;
                        const float *ss = (const float *)s;
                        for (int64_t ow = lo; ow < hi; ow++)
                            dd[ow * g->sw + iw0] += ss[ow];
                    } else {
                        double *dd = (double *)d;
                        const double *ss = (const double *)s;
                        for (int64_t ow = lo; ow < hi; ow++)
                            dd[ow * g->sw + iw0] += ss[ow];
                    }
                }
            }
}

/* One chunk of samples [n0, n0 + nb) and the buffers its parallel blocks share. */
typedef struct conv_chunk {
    const conv_geom_t *g;
    size_t es;
    int64_t n0, nb;
    const char *x;    /* (N, C, H, W) */
    char *dx;         /* (N, C, H, W) */
    char *cols;       /* (K, nb P) */
    char *mat;        /* (O, nb P): the forward's Y or the backward's G */
    char *y;          /* (N, O, P), forward output or upstream gradient */
    const char *bias; /* (O) or NULL */
} conv_chunk_t;

// sample b of the chunk: x[n0 + b] (C, H, W) -> cols[:, b P : (b + 1) P] (im2col), or with
// adjoint cols[:, b P : (b + 1) P] added into dx[n0 + b] (C, H, W) (col2im)
INLINE void cols_chunk(const conv_chunk_t *k, size_t es, bool adjoint)
{
    const conv_geom_t *g = k->g;
    for (int64_t b = 0; b < k->nb; b++) {
        char *col = k->cols + (size_t)(b * g->P) * es;
        char *img = (adjoint ? k->dx : (char *)k->x) +
                    (size_t)((k->n0 + b) * g->C * g->H * g->W) * es;
        if (es == sizeof(float) && g->dense)
            dense_runs_f32((float *)col, k->nb * g->P, (float *)img, g, adjoint);
        else if (adjoint)
            col2im(img, col, k->nb * g->P, es, g);
        else
            im2col(col, k->nb * g->P, img, es, g);
    }
}

// sample b: Y[:, b P : (b + 1) P] (O, P) + bias -> y[n0 + b] (O, P)
INLINE void scatter_chunk(const conv_chunk_t *k, size_t es)
{
    const conv_geom_t *g = k->g;
    int64_t P = g->P, ld = k->nb * P;
    for (int64_t b = 0; b < k->nb; b++)
        for (int64_t o = 0; o < g->O; o++) {
            const char *src = k->mat + (size_t)(o * ld + b * P) * es;
            char *dst = k->y + (size_t)(((k->n0 + b) * g->O + o) * P) * es;
            if (!k->bias) {
                memcpy(dst, src, (size_t)P * es);
            } else if (es == sizeof(float)) {
                float bv = ((const float *)k->bias)[o], *d = (float *)dst;
                const float *s = (const float *)src;
                for (int64_t p = 0; p < P; p++)
                    d[p] = s[p] + bv;
            } else {
                double bv = ((const double *)k->bias)[o], *d = (double *)dst;
                const double *s = (const double *)src;
                for (int64_t p = 0; p < P; p++)
                    d[p] = s[p] + bv;
            }
        }
}

// sample b: g[n0 + b] (O, P) -> G[:, b P : (b + 1) P]
static void gather_chunk(const conv_chunk_t *k)
{
    const conv_geom_t *g = k->g;
    int64_t P = g->P, ld = k->nb * P;
    for (int64_t b = 0; b < k->nb; b++)
        for (int64_t o = 0; o < g->O; o++)
            memcpy(k->mat + (size_t)(o * ld + b * P) * k->es,
                   k->y + (size_t)(((k->n0 + b) * g->O + o) * P) * k->es, (size_t)P * k->es);
}

/* c (m, n) = alpha op(a) op(b) + beta c in the chunk's dtype */
static void gemm(bool f32, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const char *a,
                 int64_t lda, const char *b, int64_t ldb, double beta, char *c)
{
    if (f32)
        lunet_gemm_f32(ta, tb, m, n, k, 1.0f, (const float *)a, lda, (const float *)b, ldb,
                       (float)beta, (float *)c);
    else
        lunet_gemm_f64(ta, tb, m, n, k, 1.0, (const double *)a, lda, (const double *)b, ldb, beta,
                       (double *)c);
}

/* ---- checks, in PyTorch's order and words */

static lunet_status_t check_options(const lunet_conv2d_options_t *o)
{
    for (int i = 0; i < 2; i++) {
        if (o->padding[i] < 0 || o->padding_extra[i] < 0)
            return lunet_error_set(LUNET_STATUS_RUNTIME, "negative padding is not supported");
        if (o->stride[i] <= 0)
            return lunet_error_set(LUNET_STATUS_RUNTIME, "non-positive stride is not supported");
        if (o->dilation[i] <= 0)
            return lunet_error_set(LUNET_STATUS_RUNTIME, "non-positive dilation is not supported");
    }
    if (o->groups <= 0)
        return lunet_error_set(LUNET_STATUS_RUNTIME, "non-positive groups is not supported");
    return LUNET_OK;
}

/* in + 2 pad + extra, wrapped as PyTorch's int64 math wraps; true when it overflowed */
static bool padded_size(int64_t *out, int64_t in, int64_t pad, int64_t extra)
{
    int64_t t;
    bool over = __builtin_mul_overflow(pad, 2, &t);
    over |= __builtin_add_overflow(in, t, &t);
    over |= __builtin_add_overflow(t, extra, &t);
    *out = lunet_i64_add(lunet_i64_add(in, lunet_i64_mul(2, pad)), extra);
    return over;
}

/* dilation (k - 1) + 1, wrapped; true when it overflowed */
static bool kernel_extent(int64_t *out, int64_t dilation, int64_t k)
{
    int64_t t;
    bool over = __builtin_mul_overflow(dilation, k - 1, &t);
    over |= __builtin_add_overflow(t, 1, &t);
    *out = lunet_i64_add(lunet_i64_mul(dilation, k - 1), 1);
    return over;
}

// x (N, C, H, W), w (O, C/groups, kh, kw), b (O) or NULL
static lunet_status_t check_shapes(const lunet_tensor_t *x, const lunet_tensor_t *w,
                                   const lunet_tensor_t *b, const lunet_conv2d_options_t *o)
{
    char bx[LUNET_SHAPE_BUF], bw[LUNET_SHAPE_BUF], bb[LUNET_SHAPE_BUF];
    if (w->ndim != 4)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "Expected 4-dimensional weight for 4-dimensional input %s, but got "
                               "%d-dimensional weight of size %s instead",
                               lunet_shape_str(bx, sizeof bx, x->ndim, x->shape), w->ndim,
                               lunet_shape_str(bw, sizeof bw, w->ndim, w->shape));
    lunet_shape_str(bx, sizeof bx, x->ndim, x->shape);
    lunet_shape_str(bw, sizeof bw, w->ndim, w->shape);
    if (w->shape[0] % o->groups != 0)
        return lunet_error_set(
            LUNET_STATUS_RUNTIME,
            "Given groups=%lld, expected weight to be divisible by %lld at dimension "
            "0, but got weight of size %s instead",
            (long long)o->groups, (long long)o->groups, bw);
    if (x->shape[1] != w->shape[1] * o->groups)
        return lunet_error_set(
            LUNET_STATUS_RUNTIME,
            "Given groups=%lld, weight of size %s, expected input%s to have %lld "
            "channels, but got %lld channels instead",
            (long long)o->groups, bw, bx, (long long)(w->shape[1] * o->groups),
            (long long)x->shape[1]);
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
        return lunet_error_set(
            LUNET_STATUS_RUNTIME,
            "Given weight of size %s, expected bias to be 1-dimensional with %lld "
            "elements, but got bias of size %s instead",
            bw, (long long)w->shape[0], lunet_shape_str(bb, sizeof bb, b->ndim, b->shape));
    /* PyTorch's int64 arithmetic wraps (padding 2^62 gives a negative padded size and this
       message); an overflow fails here too, so the geometry below never overflows */
    int64_t hp, wp, ekh, ekw;
    bool over = padded_size(&hp, x->shape[2], o->padding[0], o->padding_extra[0]);
    over |= padded_size(&wp, x->shape[3], o->padding[1], o->padding_extra[1]);
    over |= kernel_extent(&ekh, o->dilation[0], w->shape[2]);
    over |= kernel_extent(&ekw, o->dilation[1], w->shape[3]);
    if (over || hp < ekh || wp < ekw)
        return lunet_error_set(
            LUNET_STATUS_RUNTIME,
            "Calculated padded input size per channel: (%lld x %lld). Kernel size: "
            "(%lld x %lld). Kernel size can't be greater than actual input size",
            (long long)hp, (long long)wp, (long long)ekh, (long long)ekw);
    /* the output and the column scratch must have countable sizes */
    int64_t oh = (hp - ekh) / o->stride[0] + 1, ow = (wp - ekw) / o->stride[1] + 1, n;
    int64_t out_shape[4] = {x->shape[0], w->shape[0], oh, ow};
    int64_t col_shape[4] = {w->shape[1] * o->groups, w->shape[2] * w->shape[3], oh, ow};
    if (!lunet_shape_numel_checked(4, out_shape, 8, &n) ||
        !lunet_shape_numel_checked(4, col_shape, 8, &n))
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "conv2d: the output size %lld x %lld per channel is too large",
                               (long long)oh, (long long)ow);
    if (x->dtype != w->dtype) {
        if (x->dtype == LUNET_DTYPE_FLOAT64 || !lunet_dtype_is_floating(x->dtype))
            return lunet_error_set(LUNET_STATUS_RUNTIME, "expected scalar type %s but found %s",
                                   lunet_dtype_torch_name(x->dtype),
                                   lunet_dtype_torch_name(w->dtype));
        return lunet_error_set(
            LUNET_STATUS_RUNTIME,
            "Input type (torch.%sTensor) and weight type (torch.%sTensor) should be "
            "the same or input should be a MKLDNN tensor and weight is a dense "
            "tensor",
            lunet_dtype_torch_name(x->dtype), lunet_dtype_torch_name(w->dtype));
    }
    if (b && b->dtype != x->dtype)
        return lunet_error_set(
            LUNET_STATUS_RUNTIME, "Input type (%s) and bias type (%s) should be the same",
            x->dtype == LUNET_DTYPE_FLOAT32 ? "float" : lunet_dtype_name(x->dtype),
            b->dtype == LUNET_DTYPE_FLOAT32 ? "float" : lunet_dtype_name(b->dtype));
    if (!lunet_dtype_is_floating(x->dtype))
        return lunet_error_set(LUNET_STATUS_RUNTIME, "\"slow_conv2d_cpu\" not implemented for '%s'",
                               lunet_dtype_torch_name(x->dtype));
    return LUNET_OK;
}

/* Per-block scratch: cols (blocks, K, chunk P), mat (blocks, O, chunk P) and, for the
   weight gradient, partial sums (blocks, O Kg) when dwp is not NULL. */
static lunet_status_t block_scratch(lunet_tensor_t **cols, lunet_tensor_t **mat,
                                    lunet_tensor_t **dwp, const conv_geom_t *g, lunet_dtype_t dt)
{
    int64_t sc[3] = {g->nblocks, g->K, g->chunk * g->P},
            sm[3] = {g->nblocks, g->O, g->chunk * g->P};
    int64_t sw[2] = {g->nblocks, g->O * g->Kg};
    lunet_status_t st = lunet_tensor_empty(cols, dt, 3, sc);
    if (!st)
        st = lunet_tensor_empty(mat, dt, 3, sm);
    if (!st && dwp)
        st = lunet_tensor_zeros(dwp, dt, 2, sw);
    return st;
}

/* One convolution's work, shared out by chunk over the pool. */
typedef struct conv_job {
    const conv_geom_t *g;
    bool f32;
    size_t es;
    const char *x, *w, *bias;
    char *y;          /* forward: the output; backward: the upstream gradient (N, O, P) */
    char *dx;         /* backward: (N, C, H, W), zeroed chunk by chunk, or NULL */
    char *dwp;        /* backward: per-block partial weight gradients (blocks, O Kg), or NULL */
    double *dbp;      /* backward: per-block partial bias gradients (blocks, O), or NULL */
    char *cols, *mat; /* per-block scratch */
} conv_job_t;

/* The chunk's view of block blk's scratch. */
static conv_chunk_t chunk_of(const conv_job_t *j, int64_t c, int64_t blk)
{
    const conv_geom_t *g = j->g;
    int64_t n0 = c * g->chunk, nb = g->N - n0 < g->chunk ? g->N - n0 : g->chunk;
    return (conv_chunk_t){.g = g,
                          .es = j->es,
                          .n0 = n0,
                          .nb = nb,
                          .x = j->x,
                          .dx = j->dx,
                          .cols = j->cols + (size_t)(blk * g->K * g->chunk * g->P) * j->es,
                          .mat = j->mat + (size_t)(blk * g->O * g->chunk * g->P) * j->es,
                          .y = j->y,
                          .bias = j->bias};
}

// chunks [c0, c1) of x (N, C, H, W) -> y (N, O, OH, OW): per group
// Y[g] (Og, nb P) = w[g] (Og, Kg) @ cols[g] (Kg, nb P), then y = Y + bias
static void forward_blocks(void *ctx, int64_t c0, int64_t c1)
{
    const conv_job_t *j = ctx;
    const conv_geom_t *g = j->g;
    size_t es = j->es;
    for (int64_t c = c0; c < c1; c++) {
        conv_chunk_t k = chunk_of(j, c, c0 / g->gc);
        int64_t ld = k.nb * g->P;
        j->f32 ? cols_chunk(&k, sizeof(float), false) : cols_chunk(&k, sizeof(double), false);
        for (int64_t gr = 0; gr < g->groups; gr++)
            gemm(j->f32, false, false, g->Og, ld, g->Kg, j->w + (size_t)(gr * g->Og * g->Kg) * es,
                 g->Kg, k.cols + (size_t)(gr * g->Kg * ld) * es, ld, 0.0,
                 k.mat + (size_t)(gr * g->Og * ld) * es);
        j->f32 ? scatter_chunk(&k, sizeof(float)) : scatter_chunk(&k, sizeof(double));
    }
}

/* Options as autograd node arguments (and back). */
static void options_to_args(lunet_op_args_t *a, const lunet_conv2d_options_t *o)
{
    int64_t v[9] = {o->stride[0],   o->stride[1],        o->padding[0],
                    o->padding[1],  o->padding_extra[0], o->padding_extra[1],
                    o->dilation[0], o->dilation[1],      o->groups};
    memcpy(a->i, v, sizeof v);
}

void lunet_conv2d_options_from_args(lunet_conv2d_options_t *o, const int64_t *i)
{
    *o = (lunet_conv2d_options_t){.stride = {i[0], i[1]},
                                  .padding = {i[2], i[3]},
                                  .padding_extra = {i[4], i[5]},
                                  .dilation = {i[6], i[7]},
                                  .groups = i[8]};
}

static lunet_status_t conv2d_4d(lunet_tensor_t **out, lunet_tensor_t *x, lunet_tensor_t *w,
                                lunet_tensor_t *b, const lunet_conv2d_options_t *o)
{
    lunet_tensor_t *xc = NULL, *wc = NULL, *bc = NULL, *cols = NULL, *mat = NULL, *y = NULL;
    lunet_tensor_t *r = NULL;
    lunet_status_t st;
    conv_geom_t g;
    geom_init(&g, x, w, o);
    int64_t shape[4] = {g.N, g.O, g.OH, g.OW};
    if ((st = lunet_tensor_contiguous(&xc, x)) || (st = lunet_tensor_contiguous(&wc, w)) ||
        (b && (st = lunet_tensor_contiguous(&bc, b))) ||
        (st = lunet_tensor_empty(&y, x->dtype, 4, shape)) ||
        (st = block_scratch(&cols, &mat, NULL, &g, x->dtype)))
        goto done;
    bool f32 = x->dtype == LUNET_DTYPE_FLOAT32;
    conv_job_t job = {.g = &g,
                      .f32 = f32,
                      .es = f32 ? sizeof(float) : sizeof(double),
                      .x = lunet_tensor_data(xc),
                      .w = lunet_tensor_data(wc),
                      .bias = bc ? lunet_tensor_data(bc) : NULL,
                      .y = lunet_tensor_data(y),
                      .cols = lunet_tensor_data(cols),
                      .mat = lunet_tensor_data(mat)};
    if (g.N > 0)
        lunet_parallel_for(g.nchunks, g.gc, forward_blocks, &job);
    lunet_tensor_t *in[3] = {x, w, b};
    lunet_op_args_t args = {.name = NULL};
    options_to_args(&args, o);
    st = lunet_autograd_finish(&r, y, LUNET_OP_CONV2D, 3, in, NULL, &args);
    y = NULL;
done:
    LUNET_RELEASE(xc, wc, bc, cols, mat, y);
    if (!st)
        *out = r;
    return st;
}

lunet_status_t lunet_nn_conv2d(lunet_tensor_t **out, lunet_tensor_t *x, lunet_tensor_t *w,
                               lunet_tensor_t *b, const lunet_conv2d_options_t *o)
{
    lunet_conv2d_options_t defaults;
    if (!o) {
        lunet_conv2d_options_init(&defaults);
        o = &defaults;
    }
    lunet_status_t st = check_options(o);
    if (st)
        return st;
    if (x->ndim != 3 && x->ndim != 4) {
        char bx[LUNET_SHAPE_BUF];
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "Expected 3D (unbatched) or 4D (batched) input to conv2d, but got "
                               "input of size: %s",
                               lunet_shape_str(bx, sizeof bx, x->ndim, x->shape));
    }
    if (x->ndim == 4) {
        if ((st = check_shapes(x, w, b, o)))
            return st;
        return conv2d_4d(out, x, w, b, o);
    }
    /* unbatched (C, H, W): a batch of one, squeezed afterwards (as PyTorch does) */
    lunet_tensor_t *x4 = NULL, *y4 = NULL;
    if ((st = lunet_tensor_unsqueeze(&x4, x, 0)))
        return st;
    if (!(st = check_shapes(x4, w, b, o)) && !(st = conv2d_4d(&y4, x4, w, b, o)))
        st = lunet_tensor_squeeze(out, y4, 0);
    LUNET_RELEASE(x4, y4);
    return st;
}

/* ---- backward */

/* The sum of row[0, n) in double, as 8 interleaved partial sums added in a fixed order: the
   same bits on any thread count, and 8 independent additions in flight instead of one chain
   of 4-cycle adds (the bias gradient was 7% of the course CNN's epoch). */
INLINE double row_sum(const char *row, int64_t n, size_t es)
{
#define ROW_AT(i) (es == sizeof(float) ? ((const float *)row)[i] : ((const double *)row)[i])
    double a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) { /* named sums, which stay in registers (an array did not) */
        a0 += ROW_AT(i), a1 += ROW_AT(i + 1), a2 += ROW_AT(i + 2), a3 += ROW_AT(i + 3);
        a4 += ROW_AT(i + 4), a5 += ROW_AT(i + 5), a6 += ROW_AT(i + 6), a7 += ROW_AT(i + 7);
    }
    for (; i < n; i++)
        a0 += ROW_AT(i);
#undef ROW_AT
    return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
}

// chunks [c0, c1): g (N, O, OH, OW) -> dx (N, C, H, W) += col2im(w[g]^T @ G[g]) and the
// block's partial dw (O, Kg) += G[g] @ cols[g]^T, G the chunk's gradient gathered (O, nb P)
static void backward_blocks(void *ctx, int64_t c0, int64_t c1)
{
    const conv_job_t *j = ctx;
    const conv_geom_t *g = j->g;
    size_t es = j->es;
    int64_t blk = c0 / g->gc;
    char *dw = j->dwp ? j->dwp + (size_t)(blk * g->O * g->Kg) * es : NULL;
    for (int64_t c = c0; c < c1; c++) {
        conv_chunk_t k = chunk_of(j, c, blk);
        int64_t ld = k.nb * g->P;
        gather_chunk(&k);
        if (j->dbp) /* the chunk's sums of G's rows, in double */
            for (int64_t o = 0; o < g->O; o++)
                j->dbp[blk * g->O + o] += j->f32 ? row_sum(k.mat + (size_t)(o * ld) * es, ld, 4)
                                                 : row_sum(k.mat + (size_t)(o * ld) * es, ld, 8);
        if (dw) {
            j->f32 ? cols_chunk(&k, sizeof(float), false) : cols_chunk(&k, sizeof(double), false);
            for (int64_t gr = 0; gr < g->groups; gr++)
                gemm(j->f32, false, true, g->Og, g->Kg, ld, k.mat + (size_t)(gr * g->Og * ld) * es,
                     ld, k.cols + (size_t)(gr * g->Kg * ld) * es, ld, 1.0,
                     dw + (size_t)(gr * g->Og * g->Kg) * es);
        }
        if (j->dx) {
            for (int64_t gr = 0; gr < g->groups; gr++)
                gemm(j->f32, true, false, g->Kg, ld, g->Og,
                     j->w + (size_t)(gr * g->Og * g->Kg) * es, g->Kg,
                     k.mat + (size_t)(gr * g->Og * ld) * es, ld, 0.0,
                     k.cols + (size_t)(gr * g->Kg * ld) * es);
            /* the chunk's samples of dx are this block's alone: zeroed here, in cache */
            memset(j->dx + (size_t)(k.n0 * g->C * g->H * g->W) * es, 0,
                   (size_t)(k.nb * g->C * g->H * g->W) * es);
            j->f32 ? cols_chunk(&k, sizeof(float), true) : cols_chunk(&k, sizeof(double), true);
        }
    }
}

// partial sums (blocks, n) -> out (n), added in block order
static void sum_blocks(char *out, const char *parts, int64_t blocks, int64_t n, bool f32)
{
    for (int64_t i = 0; i < n; i++) {
        if (f32) {
            float acc = 0;
            for (int64_t b = 0; b < blocks; b++)
                acc += ((const float *)parts)[b * n + i];
            ((float *)out)[i] = acc;
        } else {
            double acc = 0;
            for (int64_t b = 0; b < blocks; b++)
                acc += ((const double *)parts)[b * n + i];
            ((double *)out)[i] = acc;
        }
    }
}

lunet_status_t lunet_nn_conv2d_backward(lunet_tensor_t **dx, lunet_tensor_t **dw,
                                        lunet_tensor_t **db, lunet_tensor_t *gy, lunet_tensor_t *x,
                                        lunet_tensor_t *w, const lunet_conv2d_options_t *o)
{
    lunet_tensor_t *gc = NULL, *xc = NULL, *wc = NULL, *cols = NULL, *mat = NULL, *dwp = NULL;
    lunet_tensor_t *dbp = NULL;
    lunet_tensor_t *rx = NULL, *rw = NULL, *rb = NULL;
    lunet_status_t st;
    conv_geom_t g;
    geom_init(&g, x, w, o);
    int64_t bshape[1] = {g.O}, pshape[2] = {g.nblocks, g.O};
    if ((st = lunet_tensor_contiguous(&gc, gy)) || (st = lunet_tensor_contiguous(&xc, x)) ||
        (st = lunet_tensor_contiguous(&wc, w)) ||
        (st = block_scratch(&cols, &mat, dw ? &dwp : NULL, &g, x->dtype)) ||
        (dx && (st = lunet_tensor_empty(&rx, x->dtype, 4, x->shape))) ||
        (dw && (st = g.N > 0 ? lunet_tensor_empty(&rw, w->dtype, 4, w->shape)
                             : lunet_tensor_zeros(&rw, w->dtype, 4, w->shape))) ||
        (db && (st = lunet_tensor_zeros(&rb, gy->dtype, 1, bshape))) ||
        (db && (st = lunet_tensor_zeros(&dbp, LUNET_DTYPE_FLOAT64, 2, pshape))))
        goto done;
    bool f32 = x->dtype == LUNET_DTYPE_FLOAT32;
    if ((dx || dw || db) && g.N > 0) {
        conv_job_t job = {.g = &g,
                          .f32 = f32,
                          .es = f32 ? sizeof(float) : sizeof(double),
                          .x = lunet_tensor_data(xc),
                          .w = lunet_tensor_data(wc),
                          .y = lunet_tensor_data(gc),
                          .dx = rx ? lunet_tensor_data(rx) : NULL,
                          .dwp = dwp ? lunet_tensor_data(dwp) : NULL,
                          .dbp = dbp ? lunet_tensor_data(dbp) : NULL,
                          .cols = lunet_tensor_data(cols),
                          .mat = lunet_tensor_data(mat)};
        lunet_parallel_for(g.nchunks, g.gc, backward_blocks, &job);
    }
    if (dw && g.N > 0)
        sum_blocks(lunet_tensor_data(rw), lunet_tensor_data(dwp), g.nblocks, rw->numel, f32);
    if (db && g.N > 0) /* block partials in block order, in double, then rounded once */
        for (int64_t c = 0; c < g.O; c++) {
            double acc = 0;
            for (int64_t blk = 0; blk < g.nblocks; blk++)
                acc += ((const double *)lunet_tensor_data(dbp))[blk * g.O + c];
            if (f32)
                ((float *)lunet_tensor_data(rb))[c] = (float)acc;
            else
                ((double *)lunet_tensor_data(rb))[c] = acc;
        }
    lunet_hand_out(dx, &rx);
    lunet_hand_out(dw, &rw);
    lunet_hand_out(db, &rb);
done:
    LUNET_RELEASE(gc, xc, wc, cols, mat, dwp, dbp, rx, rw, rb);
    return st;
}

lunet_status_t lunet_nn_conv2d_reset(lunet_tensor_t *w, lunet_tensor_t *b, lunet_generator_t *g)
{
    if (w->ndim != 4)
        return lunet_error_set(LUNET_STATUS_RUNTIME, "conv2d init: weight must be 4-D, got %dD",
                               w->ndim);
    /* nn.init's code, as PyTorch's reset_parameters (fan_in = C_in / groups * kh * kw) */
    return lunet_init_layer_reset(w, b, g);
}
