/*
 * optim.c - SGD with momentum, dampening, Nesterov, weight decay and maximize, exactly as
 * PyTorch 1.13 (parity spec 7.2): each `add(b, alpha=s)` is one fused multiply-add.
 */
#include "autograd.h"
#include "internal.h"

#include <math.h>

lunet_status_t lunet_sgd_check(const lunet_sgd_options_t *o)
{
    if (!(o->lr >= 0))
        return lunet_fail(LUNET_STATUS_VALUE, "Invalid learning rate: %g", o->lr);
    if (!(o->momentum >= 0))
        return lunet_fail(LUNET_STATUS_VALUE, "Invalid momentum value: %g", o->momentum);
    if (!(o->weight_decay >= 0))
        return lunet_fail(LUNET_STATUS_VALUE, "Invalid weight_decay value: %g", o->weight_decay);
    if (o->nesterov && (o->momentum <= 0 || o->dampening != 0))
        return lunet_fail(LUNET_STATUS_VALUE,
                          "Nesterov momentum requires a momentum and zero dampening");
    return LUNET_OK;
}

// p (n), g (n), buf (n) float32, contiguous
static void sgd_f32(float *p, const float *g, float *buf, bool first, int64_t n,
                    const lunet_sgd_options_t *o)
{
    const float wd = (float)o->weight_decay, mom = (float)o->momentum;
    const float damp1 = (float)(1.0 - o->dampening), neg_lr = (float)-o->lr;
    for (int64_t i = 0; i < n; i++) {
        float d = o->maximize ? -g[i] : g[i];
        if (o->weight_decay != 0)
            d = fmaf(wd, p[i], d);
        if (o->momentum != 0) {
            float b = first ? d : fmaf(damp1, d, buf[i] * mom);
            buf[i] = b;
            d = o->nesterov ? fmaf(mom, b, d) : b;
        }
        p[i] = fmaf(neg_lr, d, p[i]);
    }
}

// p (n), g (n), buf (n) float64, contiguous
static void sgd_f64(double *p, const double *g, double *buf, bool first, int64_t n,
                    const lunet_sgd_options_t *o)
{
    for (int64_t i = 0; i < n; i++) {
        double d = o->maximize ? -g[i] : g[i];
        if (o->weight_decay != 0)
            d = fma(o->weight_decay, p[i], d);
        if (o->momentum != 0) {
            double b = first ? d : fma(1.0 - o->dampening, d, buf[i] * o->momentum);
            buf[i] = b;
            d = o->nesterov ? fma(o->momentum, b, d) : b;
        }
        p[i] = fma(-o->lr, d, p[i]);
    }
}

lunet_status_t lunet_sgd_update(lunet_tensor_t *p, lunet_tensor_t *grad,
                                lunet_tensor_t **momentum_buffer, const lunet_sgd_options_t *o)
{
    if (!lunet_dtype_is_floating(p->dtype))
        return lunet_fail(LUNET_STATUS_TYPE, "sgd: parameter must be floating point, got %s",
                          lunet_dtype_name(p->dtype));
    if (grad->dtype != p->dtype || !lunet_shape_equal(grad->ndim, grad->shape, p->ndim, p->shape)) {
        char b1[LUNET_SHAPE_BUF], b2[LUNET_SHAPE_BUF];
        return lunet_fail(LUNET_STATUS_RUNTIME,
                          "sgd: gradient %s %s does not match parameter %s %s",
                          lunet_dtype_name(grad->dtype),
                          lunet_shape_str(b1, sizeof b1, grad->ndim, grad->shape),
                          lunet_dtype_name(p->dtype), lunet_shape_str(b2, sizeof b2, p->ndim, p->shape));
    }
    if (!lunet_tensor_is_contiguous(p))
        return lunet_fail(LUNET_STATUS_RUNTIME, "sgd: parameter must be contiguous");
    lunet_tensor_t *g = NULL, *buf = NULL;
    lunet_status_t st = lunet_tensor_contiguous(&g, grad);
    if (st)
        return st;
    bool first = false;
    if (o->momentum != 0) {
        buf = momentum_buffer ? *momentum_buffer : NULL;
        if (!buf) {
            if ((st = lunet_tensor_empty_like(&buf, p, p->dtype))) {
                lunet_tensor_release(g);
                return st;
            }
            first = true;
        } else if (!lunet_shape_equal(buf->ndim, buf->shape, p->ndim, p->shape) ||
                   buf->dtype != p->dtype || !lunet_tensor_is_contiguous(buf)) {
            lunet_tensor_release(g);
            return lunet_fail(LUNET_STATUS_RUNTIME, "sgd: momentum buffer does not match the parameter");
        }
    }
    if (p->dtype == LUNET_DTYPE_FLOAT32)
        sgd_f32(lunet_tensor_data(p), lunet_tensor_data(g), buf ? lunet_tensor_data(buf) : NULL,
                first, p->numel, o);
    else
        sgd_f64(lunet_tensor_data(p), lunet_tensor_data(g), buf ? lunet_tensor_data(buf) : NULL,
                first, p->numel, o);
    lunet_tensor_bump_version(p);
    if (first) {
        if (momentum_buffer)
            *momentum_buffer = buf;
        else
            lunet_tensor_release(buf);
    }
    lunet_tensor_release(g);
    return LUNET_OK;
}
