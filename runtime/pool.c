/*
 * pool.c - 2-D pooling: max_pool2d (with indices), avg_pool2d, adaptive_avg_pool2d, and
 * their gradients.
 *
 * Decisions:
 *  - Inputs are (N, C, H, W) or (C, H, W); both are walked as N C (or C) independent planes
 *    of a contiguous copy.  Windows, output sizes, the order of the sums and the divisions
 *    follow PyTorch 1.13's CPU kernels (MaxPoolKernel.cpp, AvgPoolKernel.cpp,
 *    AdaptiveAvgPoolKernel.cpp), so float32 results are bit-exact: max keeps the first
 *    maximum (a NaN wins), the average sums row by row in the input's dtype and divides once
 *    (adaptive: by kh, then by kw).
 *  - Indices are flat positions within an (H, W) plane, int64, as PyTorch returns them.
 *  - One generic body per kernel, inlined twice (float, double) by the always_inline
 *    wrappers, instead of two hand-copied loops.
 */
#include "autograd.h"
#include "internal.h"
#include "nn_kernels.h"

#include <math.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <string.h>

#define INLINE static inline __attribute__((always_inline))

void lunet_pool2d_options_init(lunet_pool2d_options_t *o, int64_t kh, int64_t kw)
{
    *o = (lunet_pool2d_options_t){.kernel = {kh, kw},
                                  .stride = {kh, kw},
                                  .dilation = {1, 1},
                                  .count_include_pad = true};
}

/* PyTorch's pooling_output_shape, with its checks. */
static lunet_status_t output_size(int64_t *out, int64_t in, int64_t k, int64_t pad, int64_t stride,
                                  int64_t dil, bool ceil_mode)
{
    if (stride == 0)
        return lunet_error_set(LUNET_STATUS_RUNTIME, "stride should not be zero");
    if (pad < 0)
        return lunet_error_set(LUNET_STATUS_RUNTIME, "pad must be non-negative, but got pad: %lld",
                               (long long)pad);
    if (pad > k / 2)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "pad should be at most half of kernel size, but got pad=%lld and "
                               "kernel_size=%lld",
                               (long long)pad, (long long)k);
    /* in + 2 pad - dil (k - 1) - 1 [+ stride - 1], each step checked (huge options) */
    int64_t num, t, s1;
    if (__builtin_mul_overflow(pad, 2, &t) || __builtin_add_overflow(t, in - 1, &t) ||
        __builtin_mul_overflow(dil, k - 1, &num) || __builtin_sub_overflow(t, num, &num) ||
        __builtin_sub_overflow(stride, 1, &s1) ||
        __builtin_add_overflow(num, ceil_mode ? s1 : 0, &num))
        return lunet_error_set(LUNET_STATUS_RUNTIME, "integer out of range");
    /* div_rtn: rounds toward minus infinity */
    int64_t q = num / stride;
    if ((num % stride != 0) && ((num < 0) != (stride < 0)))
        q--;
    int64_t o = q + 1;
    if (ceil_mode && (o - 1) * stride >= in + pad)
        o--;
    *out = o;
    return LUNET_OK;
}

/* Planes and output geometry of a pooling call, after PyTorch's shape checks. */
typedef struct pool_geom {
    int64_t planes, H, W, OH, OW;
} pool_geom_t;

// dx (planes, H, W): planes [c0, c1) = 0
static void zero_planes(void *dx, const pool_geom_t *g, int64_t c0, int64_t c1, bool f64)
{
    size_t es = f64 ? sizeof(double) : sizeof(float);
    memset((char *)dx + (size_t)(c0 * g->H * g->W) * es, 0, (size_t)((c1 - c0) * g->H * g->W) * es);
}

static lunet_status_t pool_geom(pool_geom_t *g, const lunet_tensor_t *x,
                                const lunet_pool2d_options_t *o, bool is_max)
{
    lunet_status_t st;
    const char *name = is_max ? "max_pool2d" : "avg_pool2d";
    if (x->ndim != 3 && x->ndim != 4) {
        if (is_max)
            return lunet_error_set(LUNET_STATUS_RUNTIME,
                                   "non-empty 3D or 4D (batch mode) tensor expected for input");
        if (x->ndim < 3)
            return lunet_error_set(
                LUNET_STATUS_INDEX,
                "Dimension out of range (expected to be in range of [%d, %d], but "
                "got -3)",
                x->ndim ? -x->ndim : -1, x->ndim ? x->ndim - 1 : 0);
    }
    int64_t dh = is_max ? o->dilation[0] : 1, dw = is_max ? o->dilation[1] : 1;
    int64_t H = x->ndim >= 2 ? x->shape[x->ndim - 2] : 0, W = x->shape[x->ndim - 1];
    int64_t OH, OW;
    if ((st = output_size(&OH, H, o->kernel[0], o->padding[0], o->stride[0], dh, o->ceil_mode)) ||
        (st = output_size(&OW, W, o->kernel[1], o->padding[1], o->stride[1], dw, o->ceil_mode)))
        return st;
    if (o->kernel[0] <= 0 || o->kernel[1] <= 0)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "kernel size should be greater than zero, but got kH: %lld kW: %lld",
                               (long long)o->kernel[0], (long long)o->kernel[1]);
    if (o->stride[0] <= 0 || o->stride[1] <= 0)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "stride should be greater than zero, but got dH: %lld dW: %lld",
                               (long long)o->stride[0], (long long)o->stride[1]);
    if (dh <= 0 || dw <= 0)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "dilation should be greater than zero, but got dilationH: %lld "
                               "dilationW: %lld",
                               (long long)dh, (long long)dw);
    int nd = x->ndim;
    bool valid = x->shape[nd - 3] != 0 && x->shape[nd - 2] != 0;
    if (!((nd == 3 && x->shape[0] != 0 && valid) || (nd == 4 && valid && x->shape[3] != 0))) {
        char b[LUNET_SHAPE_BUF];
        return lunet_error_set(
            LUNET_STATUS_RUNTIME,
            "Expected 3D or 4D (batch mode) tensor with optional 0 dim batch size "
            "for input, but got:%s",
            lunet_shape_str(b, sizeof b, nd, x->shape));
    }
    if (OH < 1 || OW < 1)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "Given input size: (%lldx%lldx%lld). Calculated output size: "
                               "(%lldx%lldx%lld). Output size is too small",
                               (long long)x->shape[nd - 3], (long long)H, (long long)W,
                               (long long)x->shape[nd - 3], (long long)OH, (long long)OW);
    if (!lunet_dtype_is_floating(x->dtype))
        return lunet_error_set(LUNET_STATUS_RUNTIME, "\"%s\" not implemented for '%s'", name,
                               lunet_dtype_torch_name(x->dtype));
    g->planes = nd == 4 ? x->shape[0] * x->shape[1] : x->shape[0];
    g->H = H, g->W = W, g->OH = OH, g->OW = OW;
    return LUNET_OK;
}

/* A new output of x's leading dims with (OH, OW) at the end. */
static lunet_status_t pool_output(lunet_tensor_t **out, const lunet_tensor_t *x, int64_t OH,
                                  int64_t OW, lunet_dtype_t dt)
{
    int64_t shape[4];
    memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    shape[x->ndim - 2] = OH;
    shape[x->ndim - 1] = OW;
    return lunet_tensor_empty(out, dt, x->ndim, shape);
}

INLINE void st_set(void *p, int64_t i, double v, bool f64)
{
    if (f64)
        ((double *)p)[i] = v;
    else
        ((float *)p)[i] = (float)v;
}

INLINE void st_add(void *p, int64_t i, double v, bool f64)
{
    if (f64)
        ((double *)p)[i] += v;
    else
        ((float *)p)[i] += (float)v;
}

/* ---- max */

/* The max of one window and its flat position; the first maximum wins, a NaN wins.  float
   values compare the same in double, so one body serves both dtypes. */
INLINE double window_max(int64_t *at, const void *xp, bool f64, int64_t ih0, int64_t ih1,
                         int64_t iw0, int64_t iw1, int64_t dh, int64_t dw, int64_t W)
{
    int64_t maxi = ih0 * W + iw0;
    double maxv = -INFINITY;
    for (int64_t ih = ih0; ih < ih1; ih += dh)
        for (int64_t iw = iw0; iw < iw1; iw += dw) {
            int64_t i = ih * W + iw;
            double v = f64 ? ((const double *)xp)[i] : (double)((const float *)xp)[i];
            if (v > maxv || v != v) {
                maxv = v;
                maxi = i;
            }
        }
    *at = maxi;
    return maxv;
}

/* A pooling pass over planes, split over the runtime's pool (each block its own planes). */
typedef struct pool_job {
    void *y;
    int64_t *ind;
    const void *x;
    const pool_geom_t *g;
    const lunet_pool2d_options_t *o;
    bool f64;
} pool_job_t;

/* Planes per parallel block: about 4096 outputs (a fixed function of the shape). */
static int64_t plane_grain(const pool_geom_t *g)
{
    int64_t per = g->OH * g->OW;
    return per >= 4096 ? 1 : 4096 / (per > 0 ? per : 1);
}

/*
 * What every pooling backward does: g contiguous, dx in the input's shape (ndim, shape, dt;
 * not zeroed: each block zeroes its own planes with zero_planes just before it adds into
 * them, while they are in cache), then fn over the pool's blocks of planes, whose output
 * size is out's last two dims.  ind: max pooling's positions; o: average pooling's options
 * (NULL for adaptive pooling).
 */
static lunet_status_t pool_backward(lunet_tensor_t **dx, lunet_tensor_t *g,
                                    const lunet_tensor_t *out, int ndim, const int64_t *shape,
                                    lunet_dtype_t dt, lunet_tensor_t *ind,
                                    const lunet_pool2d_options_t *o, lunet_parallel_fn fn)
{
    lunet_tensor_t *gc = NULL, *r = NULL;
    lunet_status_t st;
    if (!(st = lunet_tensor_contiguous(&gc, g)) &&
        !(st = lunet_tensor_empty(&r, dt, ndim, shape))) {
        pool_geom_t geo = {.planes = lunet_shape_numel(ndim - 2, shape),
                           .H = shape[ndim - 2],
                           .W = shape[ndim - 1],
                           .OH = out->shape[ndim - 2],
                           .OW = out->shape[ndim - 1]};
        pool_job_t job = {.y = lunet_tensor_data(r),
                          .ind = ind ? lunet_tensor_data(ind) : NULL,
                          .x = lunet_tensor_data(gc),
                          .g = &geo,
                          .o = o,
                          .f64 = dt == LUNET_DTYPE_FLOAT64};
        lunet_parallel_for(geo.planes, plane_grain(&geo), fn, &job);
        *dx = r;
        r = NULL;
    }
    LUNET_RELEASE(gc, r);
    return st;
}

/* One window of MaxPool2d(2) on float32 at flat position i of its plane: the same
   first-maximum / NaN rule as window_max, as selects, not branches (random data would
   mispredict half of them). */
INLINE void max_2x2_one(float *y, int64_t *at, const float *xp, int64_t i, int64_t W)
{
    int64_t a = i;
    float m = xp[i], v = xp[i + 1];
    bool t = (v > m) | (v != v);
    m = t ? v : m, a = t ? i + 1 : a;
    v = xp[i + W], t = (v > m) | (v != v);
    m = t ? v : m, a = t ? i + W : a;
    v = xp[i + W + 1], t = (v > m) | (v != v);
    m = t ? v : m, a = t ? i + W + 1 : a;
    *y = m;
    *at = a;
}

#ifdef __SSE2__
/* Four windows of MaxPool2d(2) side by side, from row0 and row0 + W (a plane's flat position
   i of the first): the same rule as max_2x2_one, lane by lane (cmpunord is v != v). */
INLINE void max_2x2_sse2(float *y, int64_t *at, const float *xp, int64_t i, int64_t W)
{
    const float *r0 = xp + i, *r1 = r0 + W;
    __m128 a0 = _mm_loadu_ps(r0), a1 = _mm_loadu_ps(r0 + 4);
    __m128 b0 = _mm_loadu_ps(r1), b1 = _mm_loadu_ps(r1 + 4);
    __m128 m = _mm_shuffle_ps(a0, a1, _MM_SHUFFLE(2, 0, 2, 0));
    __m128 cand[3] = {_mm_shuffle_ps(a0, a1, _MM_SHUFFLE(3, 1, 3, 1)),
                      _mm_shuffle_ps(b0, b1, _MM_SHUFFLE(2, 0, 2, 0)),
                      _mm_shuffle_ps(b0, b1, _MM_SHUFFLE(3, 1, 3, 1))};
    __m128i off[3] = {_mm_set1_epi32(1), _mm_set1_epi32((int)W), _mm_set1_epi32((int)W + 1)};
    __m128i code = _mm_setzero_si128();
    for (int k = 0; k < 3; k++) {
        __m128 v = cand[k];
        __m128 t = _mm_or_ps(_mm_cmpgt_ps(v, m), _mm_cmpunord_ps(v, v));
        m = _mm_or_ps(_mm_and_ps(t, v), _mm_andnot_ps(t, m));
        __m128i ti = _mm_castps_si128(t);
        code = _mm_or_si128(_mm_and_si128(ti, off[k]), _mm_andnot_si128(ti, code));
    }
    _mm_storeu_ps(y, m);
    __m128i pos = _mm_add_epi32(_mm_add_epi32(_mm_set1_epi32((int)i), _mm_setr_epi32(0, 2, 4, 6)),
                                code);
    _mm_storeu_si128((__m128i *)at, _mm_unpacklo_epi32(pos, _mm_setzero_si128()));
    _mm_storeu_si128((__m128i *)(at + 2), _mm_unpackhi_epi32(pos, _mm_setzero_si128()));
}
#endif

// MaxPool2d(2) on float32 when every window is whole: x (planes, H, W) -> y, ind
// (planes, OH, OW), four windows at a time where SSE2 is there (positions fit int32: the
// caller checks H W < 2^31)
static void max_pool_2x2_f32(const pool_job_t *j, int64_t c0, int64_t c1)
{
    const pool_geom_t *g = j->g;
    int64_t W = g->W, HW = g->H * W, OW = g->OW, OHW = g->OH * OW;
    for (int64_t c = c0; c < c1; c++) {
        const float *xp = (const float *)j->x + c * HW;
        float *yp = (float *)j->y + c * OHW;
        int64_t *ip = j->ind + c * OHW;
        for (int64_t oh = 0; oh < g->OH; oh++) {
            int64_t ow = 0;
#ifdef __SSE2__
            for (; ow + 4 <= OW; ow += 4)
                max_2x2_sse2(yp + oh * OW + ow, ip + oh * OW + ow, xp, 2 * oh * W + 2 * ow, W);
#endif
            for (; ow < OW; ow++)
                max_2x2_one(yp + oh * OW + ow, ip + oh * OW + ow, xp, 2 * oh * W + 2 * ow, W);
        }
    }
}

// x (planes, H, W) -> y (planes, OH, OW), ind (planes, OH, OW) flat positions in a plane
static void max_pool_blocks(void *ctx, int64_t c0, int64_t c1)
{
    const pool_job_t *j = ctx;
    const pool_geom_t *g = j->g;
    const lunet_pool2d_options_t *o = j->o;
    if (!j->f64 && o->kernel[0] == 2 && o->kernel[1] == 2 && o->stride[0] == 2 &&
        o->stride[1] == 2 && o->padding[0] == 0 && o->padding[1] == 0 && o->dilation[0] == 1 &&
        o->dilation[1] == 1 && 2 * g->OH <= g->H && 2 * g->OW <= g->W && g->H * g->W < INT32_MAX) {
        max_pool_2x2_f32(j, c0, c1);
        return;
    }
    int64_t kh = o->kernel[0], kw = o->kernel[1], sh = o->stride[0], sw = o->stride[1];
    int64_t ph = o->padding[0], pw = o->padding[1], dh = o->dilation[0], dw = o->dilation[1];
    int64_t HW = g->H * g->W, OHW = g->OH * g->OW;
    for (int64_t c = c0; c < c1; c++)
        for (int64_t oh = 0; oh < g->OH; oh++) {
            int64_t ih0 = oh * sh - ph;
            int64_t ih1 = ih0 + (kh - 1) * dh + 1 < g->H ? ih0 + (kh - 1) * dh + 1 : g->H;
            while (ih0 < 0)
                ih0 += dh;
            for (int64_t ow = 0; ow < g->OW; ow++) {
                int64_t iw0 = ow * sw - pw;
                int64_t iw1 = iw0 + (kw - 1) * dw + 1 < g->W ? iw0 + (kw - 1) * dw + 1 : g->W;
                while (iw0 < 0)
                    iw0 += dw;
                int64_t oi = c * OHW + oh * g->OW + ow;
                if (j->f64)
                    ((double *)j->y)[oi] = window_max(&j->ind[oi], (const double *)j->x + c * HW,
                                                      true, ih0, ih1, iw0, iw1, dh, dw, g->W);
                else
                    ((float *)j->y)[oi] = (float)window_max(&j->ind[oi],
                                                            (const float *)j->x + c * HW, false,
                                                            ih0, ih1, iw0, iw1, dh, dw, g->W);
            }
        }
}

static void options_to_args(lunet_op_args_t *a, const lunet_pool2d_options_t *o)
{
    int64_t v[12] = {o->kernel[0],  o->kernel[1],         o->stride[0],        o->stride[1],
                     o->padding[0], o->padding[1],        o->dilation[0],      o->dilation[1],
                     o->ceil_mode,  o->count_include_pad, o->divisor_override, 0};
    memcpy(a->i, v, sizeof v);
}

void lunet_pool2d_options_from_args(lunet_pool2d_options_t *o, const int64_t *i)
{
    *o = (lunet_pool2d_options_t){.kernel = {i[0], i[1]},
                                  .stride = {i[2], i[3]},
                                  .padding = {i[4], i[5]},
                                  .dilation = {i[6], i[7]},
                                  .ceil_mode = i[8] != 0,
                                  .count_include_pad = i[9] != 0,
                                  .divisor_override = i[10]};
}

lunet_status_t lunet_nn_max_pool2d(lunet_tensor_t **out, lunet_tensor_t **indices,
                                   lunet_tensor_t *x, const lunet_pool2d_options_t *o)
{
    lunet_tensor_t *xc = NULL, *y = NULL, *ind = NULL;
    pool_geom_t g;
    lunet_status_t st = pool_geom(&g, x, o, true);
    if (st)
        return st;
    if ((st = lunet_tensor_contiguous(&xc, x)) || (st = pool_output(&y, x, g.OH, g.OW, x->dtype)) ||
        (st = pool_output(&ind, x, g.OH, g.OW, LUNET_DTYPE_INT64)))
        goto done;
    pool_job_t job = {.y = lunet_tensor_data(y),
                      .ind = lunet_tensor_data(ind),
                      .x = lunet_tensor_data(xc),
                      .g = &g,
                      .o = o,
                      .f64 = x->dtype == LUNET_DTYPE_FLOAT64};
    lunet_parallel_for(g.planes, plane_grain(&g), max_pool_blocks, &job);
    lunet_op_args_t args = {.name = NULL};
    options_to_args(&args, o);
    st = lunet_autograd_finish(out, y, LUNET_OP_MAX_POOL2D, 1, &x, &ind, &args);
    y = NULL;
    if (st)
        goto done;
    if (indices) {
        *indices = ind;
        ind = NULL;
    }
done:
    LUNET_RELEASE(xc, y, ind);
    return st;
}

// g (planes, OH, OW) (job x) scattered into dx (planes, H, W) (job y) at the saved positions
static void max_pool_back_blocks(void *ctx, int64_t c0, int64_t c1)
{
    const pool_job_t *j = ctx;
    int64_t HW = j->g->H * j->g->W, OHW = j->g->OH * j->g->OW;
    zero_planes(j->y, j->g, c0, c1, j->f64);
    for (int64_t c = c0; c < c1; c++)
        for (int64_t i = c * OHW; i < (c + 1) * OHW; i++) {
            if (j->f64)
                ((double *)j->y)[c * HW + j->ind[i]] += ((const double *)j->x)[i];
            else
                ((float *)j->y)[c * HW + j->ind[i]] += ((const float *)j->x)[i];
        }
}

lunet_status_t lunet_nn_max_pool2d_backward(lunet_tensor_t **dx, lunet_tensor_t *g,
                                            lunet_tensor_t *indices, int ndim, const int64_t *shape,
                                            lunet_dtype_t dt)
{
    return pool_backward(dx, g, indices, ndim, shape, dt, indices, NULL, max_pool_back_blocks);
}

/* ---- average */

static int64_t start_index(int64_t a, int64_t b, int64_t c) { return (a * c) / b; }
static int64_t end_index(int64_t a, int64_t b, int64_t c) { return ((a + 1) * c + b - 1) / b; }

/* The window of output (oh, ow), clipped to the image, and what its sum is divided by, in
   two steps as PyTorch divides (average pooling: by div_h = the divisor, then by div_w = 1,
   which changes no bit; adaptive: by the window's height, then by its width). */
typedef struct avg_window {
    int64_t h0, h1, w0, w1, div_h, div_w;
} avg_window_t;

/* Average pooling's window (o) or, with o NULL, adaptive pooling's; false when it is empty. */
INLINE bool avg_window(avg_window_t *w, int64_t oh, int64_t ow, const pool_geom_t *g,
                       const lunet_pool2d_options_t *o)
{
    if (!o) {
        w->h0 = start_index(oh, g->OH, g->H), w->h1 = end_index(oh, g->OH, g->H);
        w->w0 = start_index(ow, g->OW, g->W), w->w1 = end_index(ow, g->OW, g->W);
        w->div_h = w->h1 - w->h0, w->div_w = w->w1 - w->w0;
        return true;
    }
    int64_t hs = oh * o->stride[0] - o->padding[0], ws = ow * o->stride[1] - o->padding[1];
    int64_t he = hs + o->kernel[0] < g->H + o->padding[0] ? hs + o->kernel[0]
                                                          : g->H + o->padding[0];
    int64_t we = ws + o->kernel[1] < g->W + o->padding[1] ? ws + o->kernel[1]
                                                          : g->W + o->padding[1];
    int64_t pool_size = (he - hs) * (we - ws);
    hs = hs > 0 ? hs : 0, ws = ws > 0 ? ws : 0;
    he = he < g->H ? he : g->H, we = we < g->W ? we : g->W;
    w->h0 = hs, w->h1 = he, w->w0 = ws, w->w1 = we;
    if (hs >= he || ws >= we)
        return false;
    w->div_h = o->divisor_override ? o->divisor_override
                                   : (o->count_include_pad ? pool_size : (he - hs) * (we - ws));
    w->div_w = 1;
    return true;
}

/* The sum of plane x[at:]'s window w, row by row in the dtype (a float sum is returned
   exactly as a double). */
INLINE double window_sum(const void *x, int64_t at, const avg_window_t *w, int64_t W, bool f64)
{
    double sd = 0;
    float sf = 0;
    for (int64_t ih = w->h0; ih < w->h1; ih++)
        for (int64_t iw = w->w0; iw < w->w1; iw++) {
            if (f64)
                sd += ((const double *)x)[at + ih * W + iw];
            else
                sf += ((const float *)x)[at + ih * W + iw];
        }
    return f64 ? sd : (double)sf;
}

/*
 * Average and adaptive average pooling (o NULL), planes [c0, c1).  Forward: x (planes, H, W)
 * -> y (planes, OH, OW), each window summed row by row in the input's dtype, then divided.
 * Adjoint (the backward): g (planes, OH, OW) -> dx (planes, H, W) (zeroed), each input of a
 * window adding g / divisors.
 */
INLINE void avg_pass(void *out, const void *in, const pool_geom_t *g,
                     const lunet_pool2d_options_t *o, int64_t c0, int64_t c1, bool f64,
                     bool adjoint)
{
    int64_t HW = g->H * g->W, OHW = g->OH * g->OW;
    for (int64_t c = c0; c < c1; c++)
        for (int64_t oh = 0; oh < g->OH; oh++)
            for (int64_t ow = 0; ow < g->OW; ow++) {
                int64_t oi = c * OHW + oh * g->OW + ow;
                avg_window_t w;
                bool any = avg_window(&w, oh, ow, g, o);
                if (adjoint) {
                    if (!any)
                        continue;
                    double d = f64 ? ((const double *)in)[oi] / (double)w.div_h / (double)w.div_w
                                   : (double)(((const float *)in)[oi] / (float)w.div_h /
                                              (float)w.div_w);
                    for (int64_t ih = w.h0; ih < w.h1; ih++)
                        for (int64_t iw = w.w0; iw < w.w1; iw++)
                            st_add(out, c * HW + ih * g->W + iw, d, f64);
                } else if (!any) {
                    st_set(out, oi, 0.0, f64);
                } else if (f64) {
                    double s = window_sum(in, c * HW, &w, g->W, true);
                    ((double *)out)[oi] = s / (double)w.div_h / (double)w.div_w;
                } else { /* a float sum (exact in double), divided in float */
                    float s = (float)window_sum(in, c * HW, &w, g->W, false);
                    ((float *)out)[oi] = s / (float)w.div_h / (float)w.div_w;
                }
            }
}

/* AvgPool2d(2) with whole windows, no padding: the common CNN case */
static bool avg_2x2(const pool_geom_t *g, const lunet_pool2d_options_t *o)
{
    return o && o->kernel[0] == 2 && o->kernel[1] == 2 && o->stride[0] == 2 && o->stride[1] == 2 &&
           o->padding[0] == 0 && o->padding[1] == 0 && o->divisor_override == 0 &&
           2 * g->OH <= g->H && 2 * g->OW <= g->W;
}

// x (planes, H, W) -> y (planes, OH, OW) for planes [c0, c1): each window summed in
// PyTorch's order (row by row from 0) and divided by 4
static void avg_2x2_f32(const pool_job_t *j, int64_t c0, int64_t c1)
{
    const pool_geom_t *g = j->g;
    int64_t W = g->W, HW = g->H * W, OHW = g->OH * g->OW;
    for (int64_t c = c0; c < c1; c++) {
        const float *xp = (const float *)j->x + c * HW;
        float *yp = (float *)j->y + c * OHW;
        for (int64_t oh = 0; oh < g->OH; oh++)
            for (int64_t ow = 0; ow < g->OW; ow++) {
                const float *p = xp + 2 * oh * W + 2 * ow;
                float s = 0;
                s += p[0];
                s += p[1];
                s += p[W];
                s += p[W + 1];
                yp[oh * g->OW + ow] = s / 4.0f;
            }
    }
}

static void avg_pool_blocks(void *ctx, int64_t c0, int64_t c1)
{
    const pool_job_t *j = ctx;
    if (!j->f64 && avg_2x2(j->g, j->o))
        avg_2x2_f32(j, c0, c1);
    else if (j->f64)
        avg_pass(j->y, j->x, j->g, j->o, c0, c1, true, false);
    else
        avg_pass(j->y, j->x, j->g, j->o, c0, c1, false, false);
}

lunet_status_t lunet_nn_avg_pool2d(lunet_tensor_t **out, lunet_tensor_t *x,
                                   const lunet_pool2d_options_t *o)
{
    lunet_tensor_t *xc = NULL, *y = NULL;
    lunet_pool2d_options_t ov = *o;
    ov.dilation[0] = ov.dilation[1] = 1;
    pool_geom_t g;
    lunet_status_t st = pool_geom(&g, x, &ov, false);
    if (st)
        return st;
    if ((st = lunet_tensor_contiguous(&xc, x)) || (st = pool_output(&y, x, g.OH, g.OW, x->dtype)))
        goto done;
    pool_job_t job = {.y = lunet_tensor_data(y),
                      .x = lunet_tensor_data(xc),
                      .g = &g,
                      .o = &ov,
                      .f64 = x->dtype == LUNET_DTYPE_FLOAT64};
    lunet_parallel_for(g.planes, plane_grain(&g), avg_pool_blocks, &job);
    lunet_op_args_t args = {.name = NULL};
    options_to_args(&args, &ov);
    st = lunet_autograd_finish(out, y, LUNET_OP_AVG_POOL2D, 1, &x, NULL, &args);
    y = NULL;
done:
    LUNET_RELEASE(xc, y);
    return st;
}

// g (planes, OH, OW) (job x) -> dx (planes, H, W) (job y, zero-filled) for planes [c0, c1)
static void avg_back_blocks(void *ctx, int64_t c0, int64_t c1)
{
    const pool_job_t *j = ctx;
    const pool_geom_t *g = j->g;
    zero_planes(j->y, g, c0, c1, j->f64);
    if (!j->f64 && avg_2x2(g, j->o)) { /* windows do not overlap: each input gets g / 4 */
        int64_t W = g->W, HW = g->H * W, OHW = g->OH * g->OW;
        for (int64_t c = c0; c < c1; c++)
            for (int64_t oh = 0; oh < g->OH; oh++)
                for (int64_t ow = 0; ow < g->OW; ow++) {
                    float d = ((const float *)j->x)[c * OHW + oh * g->OW + ow] / 4.0f;
                    float *p = (float *)j->y + c * HW + 2 * oh * W + 2 * ow;
                    p[0] = d, p[1] = d, p[W] = d, p[W + 1] = d;
                }
    } else if (j->f64) {
        avg_pass(j->y, j->x, g, j->o, c0, c1, true, true);
    } else {
        avg_pass(j->y, j->x, g, j->o, c0, c1, false, true);
    }
}

lunet_status_t lunet_nn_avg_pool2d_backward(lunet_tensor_t **dx, lunet_tensor_t *gy, int ndim,
                                            const int64_t *shape, lunet_dtype_t dt,
                                            const lunet_pool2d_options_t *o)
{
    return pool_backward(dx, gy, gy, ndim, shape, dt, NULL, o, avg_back_blocks);
}

/* ---- adaptive average (avg_pass with adaptive windows) */

lunet_status_t lunet_nn_adaptive_avg_pool2d(lunet_tensor_t **out, lunet_tensor_t *x, int64_t oh,
                                            int64_t ow)
{
    char b[LUNET_SHAPE_BUF];
    if (x->ndim != 3 && x->ndim != 4)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "adaptive_avg_pool2d(): Expected 3D or 4D tensor, but got %s",
                               lunet_shape_str(b, sizeof b, x->ndim, x->shape));
    if (oh < 0 || ow < 0)
        return lunet_error_set(
            LUNET_STATUS_RUNTIME,
            "adaptive_avg_pool2d: elements of output_size must be greater than or "
            "equal to 0 but received {%lld, %lld}",
            (long long)oh, (long long)ow);
    for (int d = 1; d < x->ndim; d++)
        if (x->shape[d] == 0)
            return lunet_error_set(
                LUNET_STATUS_RUNTIME,
                "adaptive_avg_pool2d(): Expected input to have non-zero size for "
                "non-batch dimensions, but input has sizes %s with dimension %d "
                "being empty",
                lunet_shape_str(b, sizeof b, x->ndim, x->shape), d);
    if (!lunet_dtype_is_floating(x->dtype))
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "\"adaptive_avg_pool2d\" not implemented for '%s'",
                               lunet_dtype_torch_name(x->dtype));
    if (oh == 1 && ow == 1) { /* PyTorch takes a mean over (H, W) here ("MeanBackward1") */
        int64_t dims[2] = {-1, -2};
        return lunet_tensor_reduce(out, NULL, LUNET_REDUCE_MEAN, x, 2, dims, true);
    }
    lunet_tensor_t *xc = NULL, *y = NULL;
    lunet_status_t st;
    pool_geom_t g = {.planes = lunet_shape_numel(x->ndim - 2, x->shape),
                     .H = x->shape[x->ndim - 2],
                     .W = x->shape[x->ndim - 1],
                     .OH = oh,
                     .OW = ow};
    if ((st = lunet_tensor_contiguous(&xc, x)) || (st = pool_output(&y, x, oh, ow, x->dtype)))
        goto done;
    if (x->dtype == LUNET_DTYPE_FLOAT32)
        avg_pass(lunet_tensor_data(y), lunet_tensor_data(xc), &g, NULL, 0, g.planes, false, false);
    else
        avg_pass(lunet_tensor_data(y), lunet_tensor_data(xc), &g, NULL, 0, g.planes, true, false);
    st = lunet_autograd_finish(out, y, LUNET_OP_ADAPTIVE_AVG_POOL2D, 1, &x, NULL, NULL);
    y = NULL;
done:
    LUNET_RELEASE(xc, y);
    return st;
}

lunet_status_t lunet_nn_adaptive_avg_pool2d_backward(lunet_tensor_t **dx, lunet_tensor_t *gy,
                                                     int ndim, const int64_t *shape,
                                                     lunet_dtype_t dt)
{
    return pool_backward(dx, gy, gy, ndim, shape, dt, NULL, NULL, avg_back_blocks);
}
