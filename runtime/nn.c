/*
 * nn.c - the Linear layer's fused forward (GEMM + bias [+ relu]) and backward, and its
 * PyTorch-exact default initialisation.
 */
#include "autograd.h"
#include "internal.h"
#include "nn_kernels.h"

#include <math.h>
#include <string.h>

#ifndef LUNET_NO_BLAS
#include <cblas.h>
#endif

// y (N, O) = relu(y): in place, keeps NaN like PyTorch's relu
static void relu_inplace(lunet_tensor_t *y)
{
    int64_t n = y->numel;
    if (y->dtype == LUNET_DTYPE_FLOAT32) {
        float *p = lunet_tensor_data(y);
        for (int64_t i = 0; i < n; i++)
            p[i] = p[i] < 0 ? 0.0f : p[i];
    } else {
        double *p = lunet_tensor_data(y);
        for (int64_t i = 0; i < n; i++)
            p[i] = p[i] < 0 ? 0.0 : p[i];
    }
}

static lunet_status_t linear_2d(lunet_tensor_t **out, lunet_tensor_t *x, lunet_tensor_t *w,
                                lunet_tensor_t *b, bool relu)
{
    lunet_tensor_t *wt = NULL, *y = NULL, *z = NULL;
    lunet_status_t st;
    bool was = lunet_set_grad_enabled(false);
    st = lunet_tensor_transpose(&wt, w, 0, 1);
    if (!st) {
        if (b) {
            st = lunet_tensor_addmm(&y, b, x, wt, 1.0, 1.0);
        } else {
            st = lunet_tensor_mm(&y, x, wt);
        }
    }
    lunet_set_grad_enabled(was);
    lunet_tensor_release(wt);
    if (st)
        return st;
    if (relu)
        relu_inplace(y);
    if (lunet_autograd_needed(x, w) || lunet_autograd_needed(b, NULL)) {
        lunet_tensor_t *in[3] = {x, w, b};
        lunet_tensor_t *saved[3] = {x, w, relu ? y : NULL};
        lunet_op_args_t args = {.i = {relu}, .name = relu ? "ReluBackward0" : (b ? "AddmmBackward0" : "MmBackward0")};
        if ((st = lunet_autograd_record(y, LUNET_OP_LINEAR, 3, in, relu ? 3 : 2, saved, &args))) {
            lunet_tensor_release(y);
            return st;
        }
    }
    (void)z;
    *out = y;
    return LUNET_OK;
}

lunet_status_t lunet_nn_linear(lunet_tensor_t **out, lunet_tensor_t *x, lunet_tensor_t *w,
                               lunet_tensor_t *b, bool relu)
{
    if (w->ndim != 2)
        return lunet_fail(LUNET_STATUS_RUNTIME, "linear: weight must be 2-D, got %dD", w->ndim);
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
        return lunet_fail(LUNET_STATUS_RUNTIME, "linear: bias must have shape [%lld]",
                          (long long)w->shape[0]);
    if (x->ndim == 0)
        return lunet_fail(LUNET_STATUS_RUNTIME,
                          "linear: both arguments to linear need to be at least 1D, but they are "
                          "0D and 2D");
    int64_t k = x->shape[x->ndim - 1];
    int64_t rows = k ? x->numel / k : lunet_shape_numel(x->ndim - 1, x->shape);
    if (k != w->shape[1])
        return lunet_fail(LUNET_STATUS_RUNTIME,
                          "mat1 and mat2 shapes cannot be multiplied (%lldx%lld and %lldx%lld)",
                          (long long)rows, (long long)k, (long long)w->shape[1],
                          (long long)w->shape[0]);
    if (x->dtype != w->dtype || (b && b->dtype != w->dtype))
        return lunet_fail(LUNET_STATUS_RUNTIME, "mat1 and mat2 must have the same dtype");
    if (x->ndim == 2)
        return linear_2d(out, x, w, b, relu);
    /* (*, in): fold leading dims into rows, then restore them */
    int64_t s2[2] = {rows, k};
    lunet_tensor_t *x2, *y2;
    lunet_status_t st = lunet_tensor_reshape(&x2, x, 2, s2);
    if (st)
        return st;
    st = linear_2d(&y2, x2, w, b, relu);
    lunet_tensor_release(x2);
    if (st)
        return st;
    int64_t shape[LUNET_MAX_DIMS];
    memcpy(shape, x->shape, sizeof(int64_t) * (size_t)(x->ndim - 1));
    shape[x->ndim - 1] = w->shape[0];
    st = lunet_tensor_reshape(out, y2, x->ndim, shape);
    lunet_tensor_release(y2);
    return st;
}

// g (N, O) masked where y <= 0 (relu's gradient) into a new tensor
static lunet_status_t relu_mask(lunet_tensor_t **out, lunet_tensor_t *g, lunet_tensor_t *y)
{
    lunet_tensor_t *gc, *r;
    lunet_status_t st = lunet_tensor_contiguous(&gc, g);
    if (st)
        return st;
    if ((st = lunet_tensor_empty_like(&r, g, g->dtype))) {
        lunet_tensor_release(gc);
        return st;
    }
    int64_t n = g->numel;
    if (g->dtype == LUNET_DTYPE_FLOAT32) {
        const float *pg = lunet_tensor_data(gc), *py = lunet_tensor_data(y);
        float *pr = lunet_tensor_data(r);
        for (int64_t i = 0; i < n; i++)
            pr[i] = py[i] <= 0 ? 0.0f : pg[i];
    } else {
        const double *pg = lunet_tensor_data(gc), *py = lunet_tensor_data(y);
        double *pr = lunet_tensor_data(r);
        for (int64_t i = 0; i < n; i++)
            pr[i] = py[i] <= 0 ? 0.0 : pg[i];
    }
    lunet_tensor_release(gc);
    *out = r;
    return LUNET_OK;
}

// g (N, O) -> db (O): column sums
static lunet_status_t column_sum(lunet_tensor_t **out, lunet_tensor_t *g)
{
    int64_t n = g->shape[0], o = g->shape[1];
    lunet_tensor_t *gc, *r;
    lunet_status_t st = lunet_tensor_contiguous(&gc, g);
    if (st)
        return st;
    if ((st = lunet_tensor_zeros(&r, g->dtype, 1, &o))) {
        lunet_tensor_release(gc);
        return st;
    }
    if (g->dtype == LUNET_DTYPE_FLOAT32) {
        const float *pg = lunet_tensor_data(gc);
        float *pr = lunet_tensor_data(r);
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < o; j++)
                pr[j] += pg[i * o + j];
    } else {
        const double *pg = lunet_tensor_data(gc);
        double *pr = lunet_tensor_data(r);
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < o; j++)
                pr[j] += pg[i * o + j];
    }
    lunet_tensor_release(gc);
    *out = r;
    return LUNET_OK;
}

lunet_status_t lunet_linear_backward(lunet_tensor_t **dx, lunet_tensor_t **dw,
                                     lunet_tensor_t **db, lunet_tensor_t *g, lunet_tensor_t *x,
                                     lunet_tensor_t *w, lunet_tensor_t *y)
{
    lunet_tensor_t *gm = NULL, *t = NULL;
    lunet_status_t st;
    if (y)
        st = relu_mask(&gm, g, y);
    else
        st = lunet_tensor_contiguous(&gm, g);
    if (st)
        return st;
    if (dx && (st = lunet_tensor_mm(dx, gm, w))) /* (N, O) @ (O, I) */
        goto done;
    if (dw) {
        if ((st = lunet_tensor_transpose(&t, gm, 0, 1)) || (st = lunet_tensor_mm(dw, t, x)))
            goto done; /* (O, N) @ (N, I) */
    }
    if (db)
        st = column_sum(db, gm);
done:
    lunet_tensor_release(gm);
    lunet_tensor_release(t);
    return st;
}

lunet_status_t lunet_nn_linear_reset(lunet_tensor_t *w, lunet_tensor_t *b, lunet_generator_t *g)
{
    if (w->ndim != 2)
        return lunet_fail(LUNET_STATUS_RUNTIME, "linear init: weight must be 2-D");
    int64_t fan_in = w->shape[1];
    /* kaiming_uniform(a=sqrt(5)) reduces to 1/sqrt(fan_in); both round to one float32 */
    double k = fan_in > 0 ? (double)(float)(1.0 / sqrt((double)fan_in)) : 0.0;
    bool was = lunet_set_grad_enabled(false);
    lunet_status_t st = fan_in > 0 ? lunet_tensor_uniform_(w, g, -k, k) : LUNET_OK;
    if (!st && b)
        st = lunet_tensor_uniform_(b, g, -k, k);
    lunet_set_grad_enabled(was);
    return st;
}
