/*
 * optim.c - SGD with momentum, dampening, Nesterov, weight decay and maximize, exactly as
 * PyTorch 1.13 (docs/pytorch-parity.md §7.2): each `add(b, alpha=s)` is one fused multiply-add.
 */
#include "autograd.h"
#include "internal.h"

#include <math.h>
#include <stdlib.h>

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

// p (n), g (n), buf (n) float32, contiguous.  The two usual cases get loops of their own
// without branches, which the compiler vectorises; the general loop covers the rest.
LUNET_FMA_CLONES static void sgd_f32(float *restrict p, const float *restrict g,
                                     float *restrict buf, bool first, int64_t n,
                                     const lunet_sgd_options_t *o)
{
    const float wd = (float)o->weight_decay, mom = (float)o->momentum;
    const float damp1 = (float)(1.0 - o->dampening), neg_lr = (float)-o->lr;
    const float sign = o->maximize ? -1.0f : 1.0f; /* exact: -g */
    const bool has_wd = o->weight_decay != 0, has_mom = o->momentum != 0;
    if (!has_wd && !has_mom) {
        for (int64_t i = 0; i < n; i++)
            p[i] = fmaf(neg_lr, sign * g[i], p[i]);
        return;
    }
    if (!has_wd && has_mom && !first && !o->nesterov) {
        for (int64_t i = 0; i < n; i++) {
            float b = fmaf(damp1, sign * g[i], buf[i] * mom);
            buf[i] = b;
            p[i] = fmaf(neg_lr, b, p[i]);
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        float d = sign * g[i];
        if (has_wd)
            d = fmaf(wd, p[i], d);
        if (has_mom) {
            float b = first ? d : fmaf(damp1, d, buf[i] * mom);
            buf[i] = b;
            d = o->nesterov ? fmaf(mom, b, d) : b;
        }
        p[i] = fmaf(neg_lr, d, p[i]);
    }
}

// p (n), g (n), buf (n) float64, contiguous
LUNET_FMA_CLONES static void sgd_f64(double *restrict p, const double *restrict g,
                                     double *restrict buf, bool first, int64_t n,
                                     const lunet_sgd_options_t *o)
{
    const double sign = o->maximize ? -1.0 : 1.0;
    const bool has_wd = o->weight_decay != 0, has_mom = o->momentum != 0;
    for (int64_t i = 0; i < n; i++) {
        double d = sign * g[i];
        if (has_wd)
            d = fma(o->weight_decay, p[i], d);
        if (has_mom) {
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

/* ---- shared by the optimizer objects (SGD here, Adam in adam.c) */

lunet_status_t lunet_optimizer_check_params(int nparams, lunet_tensor_t *const *params,
                                            const char *name)
{
    if (nparams <= 0)
        return lunet_fail(LUNET_STATUS_VALUE, "optimizer got an empty parameter list");
    for (int i = 0; i < nparams; i++) {
        if (!params[i] || !lunet_dtype_is_floating(params[i]->dtype))
            return lunet_fail(LUNET_STATUS_TYPE, "%s: parameter %d is not a floating tensor",
                              name, i);
        if (params[i]->grad_fn)
            return lunet_fail(LUNET_STATUS_VALUE, "can't optimize a non-leaf Tensor");
        for (int j = 0; j < i; j++)
            if (params[j] == params[i])
                return lunet_fail(LUNET_STATUS_VALUE,
                                  "some parameters appear more than once in the list");
    }
    return LUNET_OK;
}

lunet_status_t lunet_optimizer_zero_grads(int nparams, lunet_tensor_t *const *params)
{
    bool was = lunet_set_grad_enabled(false);
    lunet_status_t st = LUNET_OK;
    for (int i = 0; i < nparams && !st; i++)
        if (params[i]->grad)
            st = lunet_tensor_fill_(params[i]->grad, 0);
    lunet_set_grad_enabled(was);
    return st;
}

/* ---- an optimizer object for C hosts */

struct lunet_sgd {
    int nparams;
    lunet_sgd_options_t options;
    lunet_tensor_t **params;  /* retained */
    lunet_tensor_t **buffers; /* momentum buffers, created at the first step */
};

void lunet_sgd_free(lunet_sgd_t *opt)
{
    if (!opt)
        return;
    for (int i = 0; i < opt->nparams; i++) {
        if (opt->params)
            lunet_tensor_release(opt->params[i]);
        if (opt->buffers)
            lunet_tensor_release(opt->buffers[i]);
    }
    free(opt->params);
    free(opt->buffers);
    free(opt);
}

lunet_status_t lunet_sgd_new(lunet_sgd_t **out, int nparams, lunet_tensor_t *const *params,
                             const lunet_sgd_options_t *o)
{
    lunet_status_t st = lunet_sgd_check(o);
    if (st)
        return st;
    if ((st = lunet_optimizer_check_params(nparams, params, "sgd")))
        return st;
    lunet_sgd_t *opt = calloc(1, sizeof *opt);
    if (!opt)
        return lunet_fail(LUNET_STATUS_NOMEM, "sgd: out of memory");
    opt->params = calloc((size_t)nparams, sizeof *opt->params);
    opt->buffers = calloc((size_t)nparams, sizeof *opt->buffers);
    if (!opt->params || !opt->buffers) {
        lunet_sgd_free(opt);
        return lunet_fail(LUNET_STATUS_NOMEM, "sgd: out of memory");
    }
    opt->nparams = nparams;
    opt->options = *o;
    for (int i = 0; i < nparams; i++) {
        lunet_tensor_retain(params[i]);
        opt->params[i] = params[i];
    }
    *out = opt;
    return LUNET_OK;
}

lunet_status_t lunet_sgd_step(lunet_sgd_t *opt)
{
    for (int i = 0; i < opt->nparams; i++) {
        lunet_tensor_t *p = opt->params[i];
        if (!p->grad)
            continue; /* parameters without a gradient are skipped, as in PyTorch */
        lunet_status_t st = lunet_sgd_update(p, p->grad, &opt->buffers[i], &opt->options);
        if (st)
            return st;
    }
    return LUNET_OK;
}

lunet_status_t lunet_sgd_zero_grad(lunet_sgd_t *opt)
{
    return lunet_optimizer_zero_grads(opt->nparams, opt->params);
}
