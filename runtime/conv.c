/*
 * conv.c - 2-D convolution (PyTorch's conv2d): forward and both backwards on GEMM.
 *
 * Decisions:
 *  - im2col per image and group, then one GEMM: y[n, g] (Og, P) = w[g] (Og, Kg) @ cols (Kg, P)
 *    with Kg = Cg kh kw and P = OH OW.  Per image rather than one GEMM over the whole batch:
 *    the result lands straight in y's (N, O, OH, OW) layout (no transposing copy), and the
 *    column buffer stays small enough for the cache (25 x 576 floats for MNIST's first layer).
 *    A 1x1 kernel with stride 1 and no padding skips im2col: the image is its own column
 *    matrix.
 *  - im2col writes each column row as a run: zeros, a copy (memcpy at stride 1), zeros; the
 *    bounds of the run depend only on the kernel column, so they are computed once per row.
 *  - Backward recomputes the columns instead of keeping them from the forward: a CNN's
 *    columns are kh kw times its activations, and im2col is cheap next to the GEMMs.
 *  - Scratch comes from the runtime's caching allocator (lunet_tensor_empty), so a steady
 *    training loop does not call malloc.
 *  - Asymmetric padding (padding_extra) exists for padding="same" with an even kernel, where
 *    PyTorch pads the extra row and column at the bottom and right.
 */
#include "autograd.h"
#include "nn_kernels.h"
#include "internal.h"

#include <string.h>

void lunet_conv2d_options_init(lunet_conv2d_options_t *o)
{
    *o = (lunet_conv2d_options_t){.stride = {1, 1}, .dilation = {1, 1}, .groups = 1};
}

/* The geometry of one convolution, derived once from the shapes and options. */
typedef struct conv_geom {
    int64_t N, C, H, W, O, kh, kw, OH, OW;
    int64_t sh, sw, pt, pl, dh, dw, groups;
    int64_t Cg, Og, K, P; /* per group: in channels, out channels, K = Cg kh kw, P = OH OW */
    bool pointwise;       /* 1x1, stride 1, no padding: no im2col needed */
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
    gm->K = gm->Cg * gm->kh * gm->kw, gm->P = gm->OH * gm->OW;
    gm->pointwise = gm->kh == 1 && gm->kw == 1 && gm->sh == 1 && gm->sw == 1 && gm->pt == 0 &&
                    gm->pl == 0 && o->padding_extra[0] == 0 && o->padding_extra[1] == 0;
}

/* Output columns [lo, hi) whose input column iw = ow sw + iw0 lies inside [0, W). */
static void valid_range(int64_t *lo, int64_t *hi, int64_t iw0, int64_t sw, int64_t W,
                        int64_t OW)
{
    int64_t a = iw0 >= 0 ? 0 : (-iw0 + sw - 1) / sw;
    int64_t b = W - iw0 <= 0 ? 0 : (W - iw0 + sw - 1) / sw;
    *lo = a < OW ? a : OW;
    *hi = b < *lo ? *lo : (b < OW ? b : OW);
}

/*
 * x (Cg, H, W) contiguous -> cols (Cg kh kw, OH OW).  es is the element size; the two
 * wrappers below make the compiler specialise the body for float and double.
 */
static inline __attribute__((always_inline)) void im2col(char *restrict cols,
                                                         const char *restrict x, size_t es,
                                                         const conv_geom_t *g)
{
    int64_t P = g->P, OW = g->OW;
    for (int64_t c = 0; c < g->Cg; c++)
        for (int64_t ki = 0; ki < g->kh; ki++)
            for (int64_t kj = 0; kj < g->kw; kj++) {
                char *row = cols + (size_t)(((c * g->kh + ki) * g->kw + kj) * P) * es;
                int64_t iw0 = kj * g->dw - g->pl, lo, hi;
                valid_range(&lo, &hi, iw0, g->sw, g->W, OW);
                for (int64_t oh = 0; oh < g->OH; oh++) {
                    char *dst = row + (size_t)(oh * OW) * es;
                    int64_t ih = oh * g->sh - g->pt + ki * g->dh;
                    if (ih < 0 || ih >= g->H) {
                        memset(dst, 0, (size_t)OW * es);
                        continue;
                    }
                    const char *src = x + (size_t)((c * g->H + ih) * g->W) * es;
                    memset(dst, 0, (size_t)lo * es);
                    if (g->sw == 1) {
                        memcpy(dst + (size_t)lo * es, src + (size_t)(lo + iw0) * es,
                               (size_t)(hi - lo) * es);
                    } else if (es == sizeof(float)) {
                        float *d = (float *)dst;
                        const float *s = (const float *)src;
                        for (int64_t ow = lo; ow < hi; ow++)
                            d[ow] = s[ow * g->sw + iw0];
                    } else {
                        double *d = (double *)dst;
                        const double *s = (const double *)src;
                        for (int64_t ow = lo; ow < hi; ow++)
                            d[ow] = s[ow * g->sw + iw0];
                    }
                    memset(dst + (size_t)hi * es, 0, (size_t)(OW - hi) * es);
                }
            }
}

static void im2col_f32(float *cols, const float *x, const conv_geom_t *g)
{
    im2col((char *)cols, (const char *)x, sizeof(float), g);
}

static void im2col_f64(double *cols, const double *x, const conv_geom_t *g)
{
    im2col((char *)cols, (const char *)x, sizeof(double), g);
}

/* cols (Cg kh kw, OH OW) added back into dx (Cg, H, W) contiguous (the adjoint of im2col). */
static inline __attribute__((always_inline)) void col2im(char *restrict dx,
                                                         const char *restrict cols, size_t es,
                                                         const conv_geom_t *g)
{
    int64_t P = g->P, OW = g->OW;
    for (int64_t c = 0; c < g->Cg; c++)
        for (int64_t ki = 0; ki < g->kh; ki++)
            for (int64_t kj = 0; kj < g->kw; kj++) {
                const char *row = cols + (size_t)(((c * g->kh + ki) * g->kw + kj) * P) * es;
                int64_t iw0 = kj * g->dw - g->pl, lo, hi;
                valid_range(&lo, &hi, iw0, g->sw, g->W, OW);
                for (int64_t oh = 0; oh < g->OH; oh++) {
                    int64_t ih = oh * g->sh - g->pt + ki * g->dh;
                    if (ih < 0 || ih >= g->H)
                        continue;
                    char *d = dx + (size_t)((c * g->H + ih) * g->W) * es;
                    const char *s = row + (size_t)(oh * OW) * es;
                    if (es == sizeof(float)) {
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

static void col2im_f32(float *dx, const float *cols, const conv_geom_t *g)
{
    col2im((char *)dx, (const char *)cols, sizeof(float), g);
}

static void col2im_f64(double *dx, const double *cols, const conv_geom_t *g)
{
    col2im((char *)dx, (const char *)cols, sizeof(double), g);
}

/* ---- checks, in PyTorch's order and words */

static lunet_status_t check_options(const lunet_conv2d_options_t *o)
{
    for (int i = 0; i < 2; i++) {
        if (o->padding[i] < 0 || o->padding_extra[i] < 0)
            return lunet_fail(LUNET_STATUS_RUNTIME, "negative padding is not supported");
        if (o->stride[i] <= 0)
            return lunet_fail(LUNET_STATUS_RUNTIME, "non-positive stride is not supported");
        if (o->dilation[i] <= 0)
            return lunet_fail(LUNET_STATUS_RUNTIME, "non-positive dilation is not supported");
    }
    if (o->groups <= 0)
        return lunet_fail(LUNET_STATUS_RUNTIME, "non-positive groups is not supported");
    return LUNET_OK;
}

// x (N, C, H, W), w (O, C/groups, kh, kw), b (O) or NULL
static lunet_status_t check_shapes(const lunet_tensor_t *x, const lunet_tensor_t *w,
                                   const lunet_tensor_t *b, const lunet_conv2d_options_t *o)
{
    char bx[LUNET_SHAPE_BUF], bw[LUNET_SHAPE_BUF], bb[LUNET_SHAPE_BUF];
    if (w->ndim != 4)
        return lunet_fail(LUNET_STATUS_RUNTIME,
                          "Expected 4-dimensional weight for 4-dimensional input %s, but got "
                          "%d-dimensional weight of size %s instead",
                          lunet_shape_str(bx, sizeof bx, x->ndim, x->shape), w->ndim,
                          lunet_shape_str(bw, sizeof bw, w->ndim, w->shape));
    lunet_shape_str(bx, sizeof bx, x->ndim, x->shape);
    lunet_shape_str(bw, sizeof bw, w->ndim, w->shape);
    if (w->shape[0] % o->groups != 0)
        return lunet_fail(LUNET_STATUS_RUNTIME,
                          "Given groups=%lld, expected weight to be divisible by %lld at dimension "
                          "0, but got weight of size %s instead",
                          (long long)o->groups, (long long)o->groups, bw);
    if (x->shape[1] != w->shape[1] * o->groups)
        return lunet_fail(LUNET_STATUS_RUNTIME,
                          "Given groups=%lld, weight of size %s, expected input%s to have %lld "
                          "channels, but got %lld channels instead",
                          (long long)o->groups, bw, bx, (long long)(w->shape[1] * o->groups),
                          (long long)x->shape[1]);
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
        return lunet_fail(LUNET_STATUS_RUNTIME,
                          "Given weight of size %s, expected bias to be 1-dimensional with %lld "
                          "elements, but got bias of size %s instead",
                          bw, (long long)w->shape[0],
                          lunet_shape_str(bb, sizeof bb, b->ndim, b->shape));
    int64_t hp = x->shape[2] + 2 * o->padding[0] + o->padding_extra[0];
    int64_t wp = x->shape[3] + 2 * o->padding[1] + o->padding_extra[1];
    int64_t ekh = o->dilation[0] * (w->shape[2] - 1) + 1;
    int64_t ekw = o->dilation[1] * (w->shape[3] - 1) + 1;
    if (hp < ekh || wp < ekw)
        return lunet_fail(LUNET_STATUS_RUNTIME,
                          "Calculated padded input size per channel: (%lld x %lld). Kernel size: "
                          "(%lld x %lld). Kernel size can't be greater than actual input size",
                          (long long)hp, (long long)wp, (long long)ekh, (long long)ekw);
    if (x->dtype != w->dtype) {
        if (x->dtype == LUNET_DTYPE_FLOAT64 || !lunet_dtype_is_floating(x->dtype))
            return lunet_fail(LUNET_STATUS_RUNTIME, "expected scalar type %s but found %s",
                              lunet_dtype_torch_name(x->dtype), lunet_dtype_torch_name(w->dtype));
        return lunet_fail(LUNET_STATUS_RUNTIME,
                          "Input type (torch.%sTensor) and weight type (torch.%sTensor) should be "
                          "the same or input should be a MKLDNN tensor and weight is a dense "
                          "tensor",
                          lunet_dtype_torch_name(x->dtype), lunet_dtype_torch_name(w->dtype));
    }
    if (b && b->dtype != x->dtype)
        return lunet_fail(LUNET_STATUS_RUNTIME,
                          "Input type (%s) and bias type (%s) should be the same",
                          x->dtype == LUNET_DTYPE_FLOAT32 ? "float" : lunet_dtype_name(x->dtype),
                          b->dtype == LUNET_DTYPE_FLOAT32 ? "float" : lunet_dtype_name(b->dtype));
    if (!lunet_dtype_is_floating(x->dtype))
        return lunet_fail(LUNET_STATUS_RUNTIME, "\"slow_conv2d_cpu\" not implemented for '%s'",
                          lunet_dtype_torch_name(x->dtype));
    return LUNET_OK;
}

/* Column scratch (K, P) for one image and group, unless the conv is pointwise. */
static lunet_status_t cols_scratch(lunet_tensor_t **out, const conv_geom_t *g, lunet_dtype_t dt)
{
    *out = NULL;
    if (g->pointwise)
        return LUNET_OK;
    int64_t shape[2] = {g->K, g->P};
    return lunet_tensor_empty(out, dt, 2, shape);
}

// x (N, C, H, W), w (O, Cg, kh, kw), b (O) or NULL -> y (N, O, OH, OW); all contiguous
static void conv_forward_f32(float *y, const float *x, const float *w, const float *b,
                             float *cols, const conv_geom_t *g)
{
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t gr = 0; gr < g->groups; gr++) {
            const float *xg = x + (n * g->C + gr * g->Cg) * g->H * g->W;
            float *yg = y + (n * g->O + gr * g->Og) * g->P;
            const float *src = xg;
            if (!g->pointwise) {
                im2col_f32(cols, xg, g);
                src = cols;
            }
            lunet_gemm_f32(false, false, g->Og, g->P, g->K, 1.0f, w + gr * g->Og * g->K, g->K,
                           src, g->P, 0.0f, yg);
            if (b)
                for (int64_t o = 0; o < g->Og; o++) {
                    float bv = b[gr * g->Og + o], *row = yg + o * g->P;
                    for (int64_t p = 0; p < g->P; p++)
                        row[p] += bv;
                }
        }
}

// float64 twin of conv_forward_f32
static void conv_forward_f64(double *y, const double *x, const double *w, const double *b,
                             double *cols, const conv_geom_t *g)
{
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t gr = 0; gr < g->groups; gr++) {
            const double *xg = x + (n * g->C + gr * g->Cg) * g->H * g->W;
            double *yg = y + (n * g->O + gr * g->Og) * g->P;
            const double *src = xg;
            if (!g->pointwise) {
                im2col_f64(cols, xg, g);
                src = cols;
            }
            lunet_gemm_f64(false, false, g->Og, g->P, g->K, 1.0, w + gr * g->Og * g->K, g->K,
                           src, g->P, 0.0, yg);
            if (b)
                for (int64_t o = 0; o < g->Og; o++) {
                    double bv = b[gr * g->Og + o], *row = yg + o * g->P;
                    for (int64_t p = 0; p < g->P; p++)
                        row[p] += bv;
                }
        }
}

/* Options as autograd node arguments (and back). */
static void options_to_args(lunet_op_args_t *a, const lunet_conv2d_options_t *o)
{
    int64_t v[9] = {o->stride[0],        o->stride[1],        o->padding[0],
                    o->padding[1],       o->padding_extra[0], o->padding_extra[1],
                    o->dilation[0],      o->dilation[1],      o->groups};
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
    lunet_tensor_t *xc = NULL, *wc = NULL, *bc = NULL, *cols = NULL, *y = NULL, *r = NULL;
    lunet_status_t st;
    conv_geom_t g;
    geom_init(&g, x, w, o);
    int64_t shape[4] = {g.N, g.O, g.OH, g.OW};
    if ((st = lunet_tensor_contiguous(&xc, x)) || (st = lunet_tensor_contiguous(&wc, w)) ||
        (b && (st = lunet_tensor_contiguous(&bc, b))) ||
        (st = lunet_tensor_empty(&y, x->dtype, 4, shape)) ||
        (st = cols_scratch(&cols, &g, x->dtype)))
        goto done;
    if (x->dtype == LUNET_DTYPE_FLOAT32)
        conv_forward_f32(lunet_tensor_data(y), lunet_tensor_data(xc), lunet_tensor_data(wc),
                         bc ? lunet_tensor_data(bc) : NULL, cols ? lunet_tensor_data(cols) : NULL,
                         &g);
    else
        conv_forward_f64(lunet_tensor_data(y), lunet_tensor_data(xc), lunet_tensor_data(wc),
                         bc ? lunet_tensor_data(bc) : NULL, cols ? lunet_tensor_data(cols) : NULL,
                         &g);
    lunet_tensor_t *in[3] = {x, w, b};
    lunet_op_args_t args = {.name = NULL};
    options_to_args(&args, o);
    st = lunet_autograd_finish(&r, y, LUNET_OP_CONV2D, 3, in, NULL, &args);
    y = NULL;
done:
    lunet_tensor_release(xc);
    lunet_tensor_release(wc);
    lunet_tensor_release(bc);
    lunet_tensor_release(cols);
    lunet_tensor_release(y);
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
        return lunet_fail(LUNET_STATUS_RUNTIME,
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
    lunet_tensor_release(x4);
    lunet_tensor_release(y4);
    return st;
}

/* ---- backward */

// g (N, O, OH, OW), w (O, Cg, kh, kw) -> dx (N, C, H, W), zero-filled by the caller
static void conv_dx_f32(float *dx, const float *gy, const float *w, float *cols,
                        const conv_geom_t *g)
{
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t gr = 0; gr < g->groups; gr++) {
            float *dxg = dx + (n * g->C + gr * g->Cg) * g->H * g->W;
            const float *gg = gy + (n * g->O + gr * g->Og) * g->P;
            /* (K, P) = w[g]^T (K, Og) @ g (Og, P) */
            lunet_gemm_f32(true, false, g->K, g->P, g->Og, 1.0f, w + gr * g->Og * g->K, g->K,
                           gg, g->P, 0.0f, g->pointwise ? dxg : cols);
            if (!g->pointwise)
                col2im_f32(dxg, cols, g);
        }
}

// float64 twin of conv_dx_f32
static void conv_dx_f64(double *dx, const double *gy, const double *w, double *cols,
                        const conv_geom_t *g)
{
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t gr = 0; gr < g->groups; gr++) {
            double *dxg = dx + (n * g->C + gr * g->Cg) * g->H * g->W;
            const double *gg = gy + (n * g->O + gr * g->Og) * g->P;
            lunet_gemm_f64(true, false, g->K, g->P, g->Og, 1.0, w + gr * g->Og * g->K, g->K, gg,
                           g->P, 0.0, g->pointwise ? dxg : cols);
            if (!g->pointwise)
                col2im_f64(dxg, cols, g);
        }
}

// g (N, O, OH, OW), x (N, C, H, W) -> dw (O, Cg, kh, kw) += sum_n g[n] @ cols[n]^T
static void conv_dw_f32(float *dw, const float *gy, const float *x, float *cols,
                        const conv_geom_t *g)
{
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t gr = 0; gr < g->groups; gr++) {
            const float *xg = x + (n * g->C + gr * g->Cg) * g->H * g->W;
            const float *gg = gy + (n * g->O + gr * g->Og) * g->P;
            const float *src = xg;
            if (!g->pointwise) {
                im2col_f32(cols, xg, g);
                src = cols;
            }
            /* (Og, K) += g (Og, P) @ cols^T (P, K) */
            lunet_gemm_f32(false, true, g->Og, g->K, g->P, 1.0f, gg, g->P, src, g->P, 1.0f,
                           dw + gr * g->Og * g->K);
        }
}

// float64 twin of conv_dw_f32
static void conv_dw_f64(double *dw, const double *gy, const double *x, double *cols,
                        const conv_geom_t *g)
{
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t gr = 0; gr < g->groups; gr++) {
            const double *xg = x + (n * g->C + gr * g->Cg) * g->H * g->W;
            const double *gg = gy + (n * g->O + gr * g->Og) * g->P;
            const double *src = xg;
            if (!g->pointwise) {
                im2col_f64(cols, xg, g);
                src = cols;
            }
            lunet_gemm_f64(false, true, g->Og, g->K, g->P, 1.0, gg, g->P, src, g->P, 1.0,
                           dw + gr * g->Og * g->K);
        }
}

// g (N, O, P) -> db (O) = sum over n and p (accumulated in double for float32 too)
static void conv_db(lunet_tensor_t *db, const lunet_tensor_t *gy, const conv_geom_t *g)
{
    bool f32 = gy->dtype == LUNET_DTYPE_FLOAT32;
    for (int64_t o = 0; o < g->O; o++) {
        double acc = 0;
        for (int64_t n = 0; n < g->N; n++) {
            int64_t base = (n * g->O + o) * g->P;
            if (f32) {
                const float *p = (const float *)lunet_tensor_data(gy) + base;
                float s = 0;
                for (int64_t i = 0; i < g->P; i++)
                    s += p[i];
                acc += s;
            } else {
                const double *p = (const double *)lunet_tensor_data(gy) + base;
                for (int64_t i = 0; i < g->P; i++)
                    acc += p[i];
            }
        }
        if (f32)
            ((float *)lunet_tensor_data(db))[o] = (float)acc;
        else
            ((double *)lunet_tensor_data(db))[o] = acc;
    }
}

lunet_status_t lunet_nn_conv2d_backward(lunet_tensor_t **dx, lunet_tensor_t **dw,
                                        lunet_tensor_t **db, lunet_tensor_t *gy,
                                        lunet_tensor_t *x, lunet_tensor_t *w,
                                        const lunet_conv2d_options_t *o)
{
    lunet_tensor_t *gc = NULL, *xc = NULL, *wc = NULL, *cols = NULL;
    lunet_tensor_t *rx = NULL, *rw = NULL, *rb = NULL;
    lunet_status_t st;
    conv_geom_t g;
    geom_init(&g, x, w, o);
    bool f32 = x->dtype == LUNET_DTYPE_FLOAT32;
    int64_t bshape[1] = {g.O};
    if ((st = lunet_tensor_contiguous(&gc, gy)) || (st = lunet_tensor_contiguous(&xc, x)) ||
        (st = lunet_tensor_contiguous(&wc, w)) || (st = cols_scratch(&cols, &g, x->dtype)))
        goto done;
    if (dx) {
        if ((st = lunet_tensor_zeros(&rx, x->dtype, 4, x->shape)))
            goto done;
        if (f32)
            conv_dx_f32(lunet_tensor_data(rx), lunet_tensor_data(gc), lunet_tensor_data(wc),
                        cols ? lunet_tensor_data(cols) : NULL, &g);
        else
            conv_dx_f64(lunet_tensor_data(rx), lunet_tensor_data(gc), lunet_tensor_data(wc),
                        cols ? lunet_tensor_data(cols) : NULL, &g);
    }
    if (dw) {
        if ((st = lunet_tensor_zeros(&rw, w->dtype, 4, w->shape)))
            goto done;
        if (f32)
            conv_dw_f32(lunet_tensor_data(rw), lunet_tensor_data(gc), lunet_tensor_data(xc),
                        cols ? lunet_tensor_data(cols) : NULL, &g);
        else
            conv_dw_f64(lunet_tensor_data(rw), lunet_tensor_data(gc), lunet_tensor_data(xc),
                        cols ? lunet_tensor_data(cols) : NULL, &g);
    }
    if (db) {
        if ((st = lunet_tensor_empty(&rb, gy->dtype, 1, bshape)))
            goto done;
        conv_db(rb, gc, &g);
    }
    if (dx)
        *dx = rx, rx = NULL;
    if (dw)
        *dw = rw, rw = NULL;
    if (db)
        *db = rb, rb = NULL;
done:
    lunet_tensor_release(gc);
    lunet_tensor_release(xc);
    lunet_tensor_release(wc);
    lunet_tensor_release(cols);
    lunet_tensor_release(rx);
    lunet_tensor_release(rw);
    lunet_tensor_release(rb);
    return st;
}

lunet_status_t lunet_nn_conv2d_reset(lunet_tensor_t *w, lunet_tensor_t *b, lunet_generator_t *g)
{
    if (w->ndim != 4)
        return lunet_fail(LUNET_STATUS_RUNTIME, "conv2d init: weight must be 4-D, got %dD",
                          w->ndim);
    /* nn.init's code, as PyTorch's reset_parameters (fan_in = C_in / groups * kh * kw) */
    return lunet_init_layer_reset(w, b, g);
}
