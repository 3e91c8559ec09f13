/*
 * softmax.c - softmax / log_softmax along one dim and their backward (docs/pytorch-parity.md §1).
 *
 * The input is viewed as (outer, C, inner) with C the soft-maxed dim.  Each slice is
 *   m = max x,  S = sum exp(x - m),  softmax = exp(x - m) / S,  log_softmax = (x - m) - log S
 * evaluated in double and rounded once to the tensor's dtype, so float32 results are within
 * an ulp of the exact value (PyTorch's own float kernels differ from it by a few ulp).
 * Non-finite inputs are not special-cased: the formula gives PyTorch's NaN/0/-inf results.
 *
 * float32 slices use a vectorisable float exp (about 1e-7 relative) summed in double.
 * loss.c calls the per-slice log-sum-exp defined here (lunet_softmax_slice_lse_*), so that
 * cross_entropy equals nll_loss(log_softmax(x)) bit for bit.
 */
#include "autograd.h"
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- float32 exp, written so that gcc -O2 vectorises it (4 lanes, no branches) */

// e (4) = exp((x - m) - s): Cody-Waite reduction by ln 2, degree-7 Taylor polynomial on
// |r| <= ln2/2 (relative error about 1e-7), 2^k from the exponent bits.  Arguments below -87
// give exactly 0 (so -inf logits give 0, as exp(-inf) does); NaN stays NaN.
static inline void exp4_f32(float *restrict e, const float *restrict x, float m, float s)
{
    for (int j = 0; j < 4; j++) {
        float v = (x[j] - m) - s;
        float z = v * 1.44269504088896341f + 12582912.0f; /* 1.5 * 2^23: rounds to integer */
        float kf = z - 12582912.0f;
        uint32_t zb, eb;
        memcpy(&zb, &z, 4);
        float r = v - kf * 0.693145751953125f;
        r = r - kf * 1.428606765330187045e-06f;
        float p = 1.0f +
                  r * (1.0f +
                       r * (0.5f + r * (0.16666667f +
                                        r * (0.041666668f +
                                             r * (0.0083333333f +
                                                  r * (0.0013888889f + r * 0.00019841270f))))));
        uint32_t sb = (zb - 0x4B400000u + 127u) << 23;
        float sc;
        memcpy(&sc, &sb, 4);
        float ev = p * sc;
        memcpy(&eb, &ev, 4);
        eb &= 0u - (uint32_t) !(v < -87.0f);
        memcpy(&e[j], &eb, 4);
    }
}

// e (n) = exp((x - m) - s), x and e contiguous
void lunet_softmax_exp_f32(float *restrict e, const float *restrict x, int64_t n, float m, float s)
{
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        exp4_f32(e + i, x + i, m, s);
    if (i < n) {
        float tx[4] = {m, m, m, m}, te[4];
        for (int64_t j = i; j < n; j++)
            tx[j - i] = x[j];
        exp4_f32(te, tx, m, s);
        for (int64_t j = i; j < n; j++)
            e[j] = te[j - i];
    }
}

/* ---- per-slice log-sum-exp, shared with loss.c (which declares these two) so that
 * cross_entropy and nll_loss(log_softmax) see the very same numbers. */

// x (C) strided -> *m = max (float), returns log(sum exp(x - m)) summed in double;
// scratch (2 C floats) receives exp(x - m) in its first C entries
double lunet_softmax_slice_lse_f32(const float *x, int64_t C, int64_t st, float *scratch,
                                   float *m_out)
{
    const float *xs = x;
    if (st != 1) {
        float *g = scratch + C; /* gather the strided slice */
        for (int64_t c = 0; c < C; c++)
            g[c] = x[c * st];
        xs = g;
    }
    float mv[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    int64_t c = 0;
    for (; c + 4 <= C; c += 4)
        for (int j = 0; j < 4; j++)
            mv[j] = xs[c + j] > mv[j] ? xs[c + j] : mv[j];
    for (; c < C; c++)
        mv[0] = xs[c] > mv[0] ? xs[c] : mv[0];
    float m = mv[0];
    for (int j = 1; j < 4; j++)
        m = mv[j] > m ? mv[j] : m;
    lunet_softmax_exp_f32(scratch, xs, C, m, 0.0f);
    *m_out = m;
    return log(lunet_sum4_f32(scratch, C));
}

// x (C) strided -> *m = max, returns log(sum exp(x - m))
double lunet_softmax_slice_lse_f64(const double *x, int64_t C, int64_t st, double *m_out)
{
    double m = -INFINITY, s = 0;
    for (int64_t c = 0; c < C; c++)
        if (x[c * st] > m)
            m = x[c * st];
    for (int64_t c = 0; c < C; c++)
        s += exp(x[c * st] - m);
    *m_out = m;
    return log(s);
}

/* A NaN anywhere in the slice must poison it (max skips NaN since NaN > m is false, but
 * exp(NaN - m) then makes S NaN, so every output is NaN as in PyTorch). */

// x, y (outer, C, inner) contiguous, slices [s0, s1) of the outer * inner; scratch (2 C floats)
static void softmax_f32(float *y, const float *x, int64_t s0, int64_t s1, int64_t C, int64_t inner,
                        bool log_out, float *scratch)
{
    for (int64_t sl = s0; sl < s1; sl++) {
        int64_t o = sl / inner, i = sl % inner;
        {
            const float *xs = x + o * C * inner + i;
            float *ys = y + o * C * inner + i;
            float m;
            double ls = lunet_softmax_slice_lse_f32(xs, C, inner, scratch, &m);
            if (log_out) {
                for (int64_t c = 0; c < C; c++)
                    ys[c * inner] = (float)(((double)xs[c * inner] - m) - ls);
            } else {
                double inv_s = exp(-ls); /* 1/S */
                for (int64_t c = 0; c < C; c++)
                    ys[c * inner] = (float)(scratch[c] * inv_s);
            }
        }
    }
}

static void softmax_f64(double *y, const double *x, int64_t s0, int64_t s1, int64_t C,
                        int64_t inner, bool log_out)
{
    for (int64_t sl = s0; sl < s1; sl++) {
        int64_t o = sl / inner, i = sl % inner;
        {
            const double *xs = x + o * C * inner + i;
            double *ys = y + o * C * inner + i;
            double m, ls = lunet_softmax_slice_lse_f64(xs, C, inner, &m);
            if (log_out) {
                for (int64_t c = 0; c < C; c++)
                    ys[c * inner] = (xs[c * inner] - m) - ls;
            } else {
                /* divide, not multiply by 1/S: the float64 goldens are correctly rounded */
                double s = exp(ls);
                for (int64_t c = 0; c < C; c++)
                    ys[c * inner] = exp(xs[c * inner] - m) / s;
            }
        }
    }
}

/*
 * Threads: slices are split over the pool in blocks of ~64K elements (a function of the
 * shape), each slice computed whole by one block with its scratch on the block's stack:
 * the same bits on any thread count.  Slices wider than SOFTMAX_BLOCK_MAX_C run on the
 * calling thread with heap scratch.
 */
#define SOFTMAX_BLOCK_MAX_C 1024

static int64_t slice_grain(int64_t C) { return C >= 65536 ? 1 : 65536 / (C > 0 ? C : 1); }

typedef struct softmax_job {
    void *y;
    const void *x, *g; /* g: the backward's upstream gradient */
    int64_t C, inner;
    bool log_out, f32;
} softmax_job_t;

static void softmax_block(void *ctx, int64_t s0, int64_t s1)
{
    const softmax_job_t *j = ctx;
    if (j->f32) {
        float scratch[2 * SOFTMAX_BLOCK_MAX_C];
        softmax_f32(j->y, j->x, s0, s1, j->C, j->inner, j->log_out, scratch);
    } else {
        softmax_f64(j->y, j->x, s0, s1, j->C, j->inner, j->log_out);
    }
}

/* outer, C, inner of t around dim d (0-d tensors are one slice of one element). */
static void split_dims(const lunet_tensor_t *t, int d, int64_t *outer, int64_t *C, int64_t *inner)
{
    *outer = 1, *C = 1, *inner = 1;
    for (int k = 0; k < t->ndim; k++) {
        if (k < d)
            *outer *= t->shape[k];
        else if (k == d)
            *C = t->shape[k];
        else
            *inner *= t->shape[k];
    }
}

static lunet_status_t softmax_common(lunet_tensor_t **out, lunet_tensor_t *x, int64_t dim,
                                     bool log_out)
{
    int d;
    lunet_status_t st = lunet_dim_wrap(&d, dim, x->ndim);
    if (st)
        return st;
    if (!lunet_dtype_is_floating(x->dtype)) {
        /* PyTorch names the kernel it would have used: the last-dim one or the generic one */
        bool last = d == (x->ndim > 0 ? x->ndim - 1 : 0);
        return lunet_error_set(LUNET_STATUS_RUNTIME, "\"%s\" not implemented for '%s'",
                               last ? (log_out ? "log_softmax_lastdim_kernel_impl"
                                               : "softmax_lastdim_kernel_impl")
                                    : "softmax_kernel_impl",
                               lunet_dtype_torch_name(x->dtype));
    }
    bool prev = lunet_set_grad_enabled(false); /* the contiguous copy is an internal detail */
    lunet_tensor_t *xc = NULL, *y = NULL;
    st = lunet_tensor_contiguous(&xc, x);
    if (!st)
        st = lunet_tensor_empty_like(&y, x, x->dtype);
    lunet_set_grad_enabled(prev);
    if (st) {
        lunet_tensor_release(xc);
        return st;
    }
    int64_t outer, C, inner;
    split_dims(x, d, &outer, &C, &inner);
    if (x->numel > 0) {
        bool f32 = x->dtype == LUNET_DTYPE_FLOAT32;
        if (!f32 || C <= SOFTMAX_BLOCK_MAX_C) {
            softmax_job_t j = {.y = lunet_tensor_data(y),
                               .x = lunet_tensor_data(xc),
                               .C = C,
                               .inner = inner,
                               .log_out = log_out,
                               .f32 = f32};
            lunet_parallel_for(outer * inner, slice_grain(C), softmax_block, &j);
        } else {
            float *scratch = malloc((size_t)(2 * C) * sizeof(float));
            if (!scratch) {
                LUNET_RELEASE(xc, y);
                return lunet_error_set(LUNET_STATUS_NOMEM, "%s: out of memory for %lld classes",
                                       log_out ? "log_softmax" : "softmax", (long long)C);
            }
            softmax_f32(lunet_tensor_data(y), lunet_tensor_data(xc), 0, outer * inner, C, inner,
                        log_out, scratch);
            free(scratch);
        }
    }
    lunet_tensor_release(xc);
    lunet_op_args_t args = {.i = {d}};
    return lunet_autograd_finish(out, y, log_out ? LUNET_OP_LOG_SOFTMAX : LUNET_OP_SOFTMAX, 1, &x,
                                 NULL, &args);
}

lunet_status_t lunet_tensor_softmax(lunet_tensor_t **out, lunet_tensor_t *x, int64_t dim)
{
    return softmax_common(out, x, dim, false);
}

lunet_status_t lunet_tensor_log_softmax(lunet_tensor_t **out, lunet_tensor_t *x, int64_t dim)
{
    return softmax_common(out, x, dim, true);
}

/* ---- backward */

/*
 * g, y, dx (outer, C, inner) contiguous; softmax: dx = y (g - sum g y); log: dx = g - e^y sum g.
 * Sums and products in double for both element types T (float, double): one body, so the
 * two kernels cannot drift apart.
 */
#define SOFTMAX_BWD_BODY(T)                                                                        \
    for (int64_t sl = s0; sl < s1; sl++) {                                                         \
        int64_t o = sl / inner, i = sl % inner;                                                    \
        {                                                                                          \
            int64_t base = o * C * inner + i;                                                      \
            double s = 0;                                                                          \
            if (log_out) {                                                                         \
                for (int64_t c = 0; c < C; c++)                                                    \
                    s += g[base + c * inner];                                                      \
                for (int64_t c = 0; c < C; c++) {                                                  \
                    int64_t k = base + c * inner;                                                  \
                    dx[k] = (T)((double)g[k] - exp((double)y[k]) * s);                             \
                }                                                                                  \
            } else {                                                                               \
                for (int64_t c = 0; c < C; c++)                                                    \
                    s += (double)g[base + c * inner] * y[base + c * inner];                        \
                for (int64_t c = 0; c < C; c++) {                                                  \
                    int64_t k = base + c * inner;                                                  \
                    dx[k] = (T)((double)y[k] * ((double)g[k] - s));                                \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

static void softmax_bwd_f32(float *dx, const float *g, const float *y, int64_t s0, int64_t s1,
                            int64_t C, int64_t inner, bool log_out)
{
    SOFTMAX_BWD_BODY(float)
}

static void softmax_bwd_f64(double *dx, const double *g, const double *y, int64_t s0, int64_t s1,
                            int64_t C, int64_t inner, bool log_out)
{
    SOFTMAX_BWD_BODY(double)
}
#undef SOFTMAX_BWD_BODY

// slices [s0, s1): dx (j->y) from g (j->g) and the forward's output y (j->x)
static void softmax_bwd_block(void *ctx, int64_t s0, int64_t s1)
{
    const softmax_job_t *j = ctx;
    if (j->f32)
        softmax_bwd_f32(j->y, j->g, j->x, s0, s1, j->C, j->inner, j->log_out);
    else
        softmax_bwd_f64(j->y, j->g, j->x, s0, s1, j->C, j->inner, j->log_out);
}

static lunet_status_t softmax_backward_common(lunet_tensor_t **dx, lunet_tensor_t *g,
                                              lunet_tensor_t *y, int64_t dim, bool log_out)
{
    const char *name = log_out ? "log_softmax_backward" : "softmax_backward";
    int d;
    lunet_status_t st = lunet_dim_wrap(&d, dim, y->ndim);
    if (st)
        return st;
    if (!lunet_dtype_is_floating(y->dtype))
        return lunet_error_set(LUNET_STATUS_RUNTIME, "%s: output dtype %s is not floating", name,
                               lunet_dtype_name(y->dtype));
    if (!lunet_shape_equal(g->ndim, g->shape, y->ndim, y->shape)) {
        char b1[LUNET_SHAPE_BUF], b2[LUNET_SHAPE_BUF];
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "%s: gradient of shape %s for output of shape %s", name,
                               lunet_shape_str(b1, sizeof b1, g->ndim, g->shape),
                               lunet_shape_str(b2, sizeof b2, y->ndim, y->shape));
    }
    bool prev = lunet_set_grad_enabled(false);
    lunet_tensor_t *gc = NULL, *yc = NULL, *r = NULL;
    st = lunet_tensor_to(&gc, g, y->dtype); /* a new ref; converts only when dtypes differ */
    if (!st && !lunet_tensor_is_contiguous(gc)) {
        lunet_tensor_t *t = gc;
        st = lunet_tensor_contiguous(&gc, t);
        lunet_tensor_release(t);
        if (st)
            gc = NULL;
    }
    if (!st)
        st = lunet_tensor_contiguous(&yc, y);
    if (!st)
        st = lunet_tensor_empty_like(&r, y, y->dtype);
    lunet_set_grad_enabled(prev);
    if (st) {
        LUNET_RELEASE(gc, yc);
        return st;
    }
    int64_t outer, C, inner;
    split_dims(y, d, &outer, &C, &inner);
    if (y->numel > 0) {
        softmax_job_t j = {.y = lunet_tensor_data(r),
                           .x = lunet_tensor_data(yc),
                           .g = lunet_tensor_data(gc),
                           .C = C,
                           .inner = inner,
                           .log_out = log_out,
                           .f32 = y->dtype == LUNET_DTYPE_FLOAT32};
        lunet_parallel_for(outer * inner, slice_grain(C), softmax_bwd_block, &j);
    }
    LUNET_RELEASE(gc, yc);
    *dx = r;
    return LUNET_OK;
}

lunet_status_t lunet_tensor_softmax_backward(lunet_tensor_t **dx, lunet_tensor_t *g,
                                             lunet_tensor_t *y, int64_t dim)
{
    return softmax_backward_common(dx, g, y, dim, false);
}

lunet_status_t lunet_tensor_log_softmax_backward(lunet_tensor_t **dx, lunet_tensor_t *g,
                                                 lunet_tensor_t *y, int64_t dim)
{
    return softmax_backward_common(dx, g, y, dim, true);
}
