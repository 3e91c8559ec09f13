/*
 * norm.c - batch normalisation (forward, running statistics, backward) and dropout's mask.
 *
 * Decisions:
 *  - batch_norm works on x (N, C, *) seen as (N, C, L).  Per channel the statistics are
 *    accumulated in double (PyTorch's CPU kernel uses a double accumulator for float too),
 *    the output is x alpha + beta with alpha = invstd w, beta = b - mean alpha.  The node
 *    saves (mean, invstd) per channel as float64, so the backward does not recompute them.
 *  - Running statistics are updated in place, outside autograd, with the unbiased variance
 *    (PyTorch's rule); momentum = None (cumulative average) is the caller's 1 / batches.
 *  - Dropout draws its mask as PyTorch 1.13's CPU bernoulli_(1 - p) does: one float64
 *    uniform per element in row-major order, kept when u < 1 - p, then divided by 1 - p in
 *    the input's dtype -- so x * mask equals torch's dropout bit for bit under one seed.
 */
#include "autograd.h"
#include "internal.h"
#include "nn_kernels.h"

#include <math.h>

/* x's (N, C, L) view, for x of 2 or more dims. */
static void ncl(const lunet_tensor_t *x, int64_t *N, int64_t *C, int64_t *L)
{
    *N = x->shape[0];
    *C = x->shape[1];
    *L = lunet_shape_numel(x->ndim - 2, x->shape + 2);
}

static lunet_status_t check_param(const lunet_tensor_t *t, const char *name, int64_t C,
                                  lunet_dtype_t dt)
{
    if (!t)
        return LUNET_OK;
    if (t->numel != C)
        return lunet_error_set(LUNET_STATUS_RUNTIME, "%s should contain %lld elements not %lld",
                               name, (long long)C, (long long)t->numel);
    if (t->dtype != dt)
        return lunet_error_set(LUNET_STATUS_RUNTIME, "batch_norm: %s is %s, expected %s", name,
                               lunet_dtype_name(t->dtype), lunet_dtype_name(dt));
    return LUNET_OK;
}

static double at(const lunet_tensor_t *t, int64_t i) { return lunet_tensor_get(t, i); }

lunet_status_t lunet_nn_batch_norm(lunet_tensor_t **out, lunet_tensor_t *x,
                                   lunet_tensor_t *running_mean, lunet_tensor_t *running_var,
                                   lunet_tensor_t *weight, lunet_tensor_t *bias, bool training,
                                   double momentum, double eps)
{
    if (x->ndim < 2)
        return lunet_error_set(LUNET_STATUS_VALUE,
                               "batch_norm: expected 2D or more input (got %dD "
                               "input)",
                               x->ndim);
    if (!lunet_dtype_is_floating(x->dtype))
        return lunet_error_set(LUNET_STATUS_RUNTIME, "\"batch_norm\" not implemented for '%s'",
                               lunet_dtype_torch_name(x->dtype));
    int64_t N, C, L;
    ncl(x, &N, &C, &L);
    lunet_status_t st;
    if ((st = check_param(running_mean, "running_mean", C, x->dtype)) ||
        (st = check_param(running_var, "running_var", C, x->dtype)) ||
        (st = check_param(weight, "weight", C, x->dtype)) ||
        (st = check_param(bias, "bias", C, x->dtype)))
        return st;
    if (!training && (!running_mean || !running_var))
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "batch_norm: running_mean and running_var must be defined in "
                               "evaluation mode");
    lunet_tensor_t *xc = NULL, *y = NULL, *stats = NULL;
    int64_t sshape[2] = {C, 2};
    if ((st = lunet_tensor_contiguous(&xc, x)) || (st = lunet_tensor_empty_like(&y, x, x->dtype)) ||
        (st = lunet_tensor_empty(&stats, LUNET_DTYPE_FLOAT64, 2, sshape)))
        goto done;
    bool f32 = x->dtype == LUNET_DTYPE_FLOAT32;
    double *ps = lunet_tensor_data(stats);
    int64_t M = N * L;
    // x (N, C, L) -> per channel mean and invstd, then y = x alpha + beta
    for (int64_t c = 0; c < C; c++) {
        double mean, invstd;
        if (training) {
            double s = 0, v = 0;
            for (int64_t n = 0; n < N; n++)
                for (int64_t l = 0; l < L; l++) {
                    int64_t i = (n * C + c) * L + l;
                    s += f32 ? ((const float *)lunet_tensor_data(xc))[i]
                             : ((const double *)lunet_tensor_data(xc))[i];
                }
            mean = M ? s / (double)M : 0;
            for (int64_t n = 0; n < N; n++)
                for (int64_t l = 0; l < L; l++) {
                    int64_t i = (n * C + c) * L + l;
                    double d = (f32 ? ((const float *)lunet_tensor_data(xc))[i]
                                    : ((const double *)lunet_tensor_data(xc))[i]) -
                               mean;
                    v += d * d;
                }
            invstd = 1 / sqrt(v / (double)M + eps);
            if (running_mean)
                lunet_dtype_store((char *)lunet_tensor_data(running_mean) +
                                      c * running_mean->strides[0] *
                                          (int64_t)lunet_dtype_size(x->dtype),
                                  x->dtype, momentum * mean + (1 - momentum) * at(running_mean, c));
            if (running_var)
                lunet_dtype_store((char *)lunet_tensor_data(running_var) +
                                      c * running_var->strides[0] *
                                          (int64_t)lunet_dtype_size(x->dtype),
                                  x->dtype,
                                  momentum * (M > 1 ? v / (double)(M - 1) : NAN) +
                                      (1 - momentum) * at(running_var, c));
        } else {
            mean = at(running_mean, c);
            invstd = 1 / sqrt(at(running_var, c) + eps);
        }
        ps[2 * c] = mean;
        ps[2 * c + 1] = invstd;
        double alpha = invstd * (weight ? at(weight, c) : 1.0);
        double beta = (bias ? at(bias, c) : 0.0) - mean * alpha;
        for (int64_t n = 0; n < N; n++)
            for (int64_t l = 0; l < L; l++) {
                int64_t i = (n * C + c) * L + l;
                if (f32) {
                    float xv = ((const float *)lunet_tensor_data(xc))[i];
                    ((float *)lunet_tensor_data(y))[i] = xv * (float)alpha + (float)beta;
                } else {
                    double xv = ((const double *)lunet_tensor_data(xc))[i];
                    ((double *)lunet_tensor_data(y))[i] = xv * alpha + beta;
                }
            }
    }
    if (training) {
        if (running_mean)
            lunet_tensor_bump_version(running_mean);
        if (running_var)
            lunet_tensor_bump_version(running_var);
    }
    lunet_tensor_t *in[3] = {x, weight, bias};
    lunet_op_args_t args = {.i = {training}};
    st = lunet_autograd_finish(out, y, LUNET_OP_BATCH_NORM, 3, in, &stats, &args);
    y = NULL;
done:
    LUNET_RELEASE(xc, y, stats);
    return st;
}

/* Element i of a contiguous float32 or float64 tensor, as a double. */
static inline double element(lunet_tensor_t *t, int64_t i, bool f32)
{
    return f32 ? ((const float *)lunet_tensor_data(t))[i]
               : ((const double *)lunet_tensor_data(t))[i];
}

/* t's element i = v, rounded to float when f32 */
static inline void put(lunet_tensor_t *t, int64_t i, double v, bool f32)
{
    if (f32)
        ((float *)lunet_tensor_data(t))[i] = (float)v;
    else
        ((double *)lunet_tensor_data(t))[i] = v;
}

lunet_status_t lunet_nn_batch_norm_backward(lunet_tensor_t **dx, lunet_tensor_t **dw,
                                            lunet_tensor_t **db, lunet_tensor_t *g,
                                            lunet_tensor_t *x, lunet_tensor_t *weight,
                                            lunet_tensor_t *stats, bool training)
{
    int64_t N, C, L;
    ncl(x, &N, &C, &L);
    int64_t M = N * L;
    lunet_tensor_t *gc = NULL, *xc = NULL, *rx = NULL, *rw = NULL, *rb = NULL;
    lunet_status_t st;
    int64_t cshape[1] = {C};
    if ((st = lunet_tensor_contiguous(&gc, g)) || (st = lunet_tensor_contiguous(&xc, x)) ||
        (dx && (st = lunet_tensor_empty_like(&rx, x, x->dtype))) ||
        (dw && (st = lunet_tensor_empty(&rw, x->dtype, 1, cshape))) ||
        (db && (st = lunet_tensor_empty(&rb, x->dtype, 1, cshape))))
        goto done;
    bool f32 = x->dtype == LUNET_DTYPE_FLOAT32;
    const double *ps = lunet_tensor_data(stats);
    // g, x (N, C, L) -> per channel sums, then dx
    for (int64_t c = 0; c < C; c++) {
        double mean = ps[2 * c], invstd = ps[2 * c + 1], gsum = 0, dotp = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t l = 0; l < L; l++) {
                int64_t i = (n * C + c) * L + l;
                double gv = element(gc, i, f32), xv = element(xc, i, f32);
                gsum += gv;
                dotp += gv * (xv - mean);
            }
        if (rw)
            lunet_dtype_store((char *)lunet_tensor_data(rw) +
                                  c * (int64_t)lunet_dtype_size(x->dtype),
                              x->dtype, dotp * invstd);
        if (rb)
            lunet_dtype_store((char *)lunet_tensor_data(rb) +
                                  c * (int64_t)lunet_dtype_size(x->dtype),
                              x->dtype, gsum);
        if (!rx)
            continue;
        double w = weight ? at(weight, c) : 1.0;
        double k = training && M ? dotp * invstd * invstd / (double)M : 0;
        double gmean = training && M ? gsum / (double)M : 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t l = 0; l < L; l++) {
                int64_t i = (n * C + c) * L + l;
                double gv = element(gc, i, f32), xv = element(xc, i, f32);
                double d = training ? (gv - gmean - (xv - mean) * k) * invstd * w : gv * invstd * w;
                put(rx, i, d, f32);
            }
    }
    lunet_hand_out(dx, &rx);
    lunet_hand_out(dw, &rw);
    lunet_hand_out(db, &rb);
done:
    LUNET_RELEASE(gc, xc, rx, rw, rb);
    return st;
}

lunet_status_t lunet_nn_dropout_mask(lunet_tensor_t **out, lunet_tensor_t *x, double p,
                                     lunet_generator_t *g)
{
    if (!(p >= 0 && p <= 1))
        return lunet_error_set(LUNET_STATUS_VALUE,
                               "dropout probability has to be between 0 and 1, but got %g", p);
    if (!lunet_dtype_is_floating(x->dtype))
        return lunet_error_set(LUNET_STATUS_RUNTIME, "dropout: expected a floating tensor, got %s",
                               lunet_dtype_name(x->dtype));
    lunet_tensor_t *u = NULL, *m = NULL;
    lunet_status_t st;
    if ((st = lunet_tensor_zeros(&m, x->dtype, x->ndim, x->shape)))
        return st;
    if (p == 1) { /* PyTorch multiplies by zero without drawing */
        *out = m;
        return LUNET_OK;
    }
    if ((st = lunet_tensor_empty(&u, LUNET_DTYPE_FLOAT64, x->ndim, x->shape)) ||
        (st = lunet_tensor_uniform_(u, g, 0.0, 1.0)))
        goto done;
    const double *pu = lunet_tensor_data(u);
    double q = 1 - p;
    // u (numel) float64 uniforms -> m (numel) = [u < 1 - p] / (1 - p)
    if (x->dtype == LUNET_DTYPE_FLOAT32) {
        float *pm = lunet_tensor_data(m), keep = 1.0f / (float)q;
        for (int64_t i = 0; i < x->numel; i++)
            pm[i] = pu[i] < q ? keep : 0.0f;
    } else {
        double *pm = lunet_tensor_data(m), keep = 1.0 / q;
        for (int64_t i = 0; i < x->numel; i++)
            pm[i] = pu[i] < q ? keep : 0.0;
    }
    *out = m;
    m = NULL;
done:
    LUNET_RELEASE(u, m);
    return st;
}
