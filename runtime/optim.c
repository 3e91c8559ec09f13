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

/* Large parameters are updated by the worker pool in blocks of 64K elements (each element's
   update is independent of the others, so the bits never depend on the split). */
#define SGD_GRAIN 65536

typedef struct sgd_job {
    void *p;
    const void *g;
    void *buf;
    bool first;
    lunet_dtype_t dtype;
    const lunet_sgd_options_t *o;
} sgd_job_t;

// elements [b, e) of p, g, buf
static void sgd_block(void *ctx, int64_t b, int64_t e)
{
    const sgd_job_t *j = ctx;
    if (j->dtype == LUNET_DTYPE_FLOAT32)
        sgd_f32((float *)j->p + b, (const float *)j->g + b, j->buf ? (float *)j->buf + b : NULL,
                j->first, e - b, j->o);
    else
        sgd_f64((double *)j->p + b, (const double *)j->g + b,
                j->buf ? (double *)j->buf + b : NULL, j->first, e - b, j->o);
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
    sgd_job_t job = {lunet_tensor_data(p), lunet_tensor_data(g),
                     buf ? lunet_tensor_data(buf) : NULL, first, p->dtype, o};
    lunet_parallel_for(p->numel, SGD_GRAIN, sgd_block, &job);
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

/* A non-empty list of distinct floating leaf tensors, or PyTorch's message. */
static lunet_status_t check_params(int nparams, lunet_tensor_t *const *params, const char *name)
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

lunet_status_t lunet_optimizer_hold(lunet_optimizer_core_t *core, size_t state_size, int nparams,
                                    lunet_tensor_t *const *params, const char *name)
{
    lunet_status_t st = check_params(nparams, params, name);
    if (st)
        return st;
    lunet_tensor_t **held = calloc((size_t)nparams, sizeof *held);
    void *states = calloc((size_t)nparams, state_size);
    if (!held || !states) {
        free(held);
        free(states);
        return lunet_fail(LUNET_STATUS_NOMEM, "%s: out of memory", name);
    }
    for (int i = 0; i < nparams; i++) {
        lunet_tensor_retain(params[i]);
        held[i] = params[i];
    }
    *core = (lunet_optimizer_core_t){.nparams = nparams, .params = held, .states = states,
                                     .state_size = state_size};
    return LUNET_OK;
}

void lunet_optimizer_release(lunet_optimizer_core_t *core)
{
    for (int i = 0; i < core->nparams; i++)
        lunet_tensor_release(core->params[i]);
    free(core->params);
    free(core->states);
    *core = (lunet_optimizer_core_t){0};
}

lunet_status_t lunet_optimizer_step_all(lunet_optimizer_core_t *core,
                                        lunet_optimizer_update_fn update, const void *options)
{
    for (int i = 0; i < core->nparams; i++) {
        lunet_tensor_t *p = core->params[i];
        if (!p->grad)
            continue; /* parameters without a gradient are skipped, as in PyTorch */
        lunet_status_t st = update(p, (char *)core->states + (size_t)i * core->state_size, options);
        if (st)
            return st;
    }
    return LUNET_OK;
}

lunet_status_t lunet_optimizer_zero_grads(lunet_optimizer_core_t *core)
{
    bool was = lunet_set_grad_enabled(false);
    lunet_status_t st = LUNET_OK;
    for (int i = 0; i < core->nparams && !st; i++)
        if (core->params[i]->grad)
            st = lunet_tensor_fill_(core->params[i]->grad, 0);
    lunet_set_grad_enabled(was);
    return st;
}

/* ---- an optimizer object for C hosts */

struct lunet_sgd {
    lunet_optimizer_core_t core; /* states: one momentum buffer (lunet_tensor_t *) each */
    lunet_sgd_options_t options;
};

void lunet_sgd_free(lunet_sgd_t *opt)
{
    if (!opt)
        return;
    lunet_tensor_t **buffers = opt->core.states;
    for (int i = 0; i < opt->core.nparams; i++)
        lunet_tensor_release(buffers[i]);
    lunet_optimizer_release(&opt->core);
    free(opt);
}

lunet_status_t lunet_sgd_new(lunet_sgd_t **out, int nparams, lunet_tensor_t *const *params,
                             const lunet_sgd_options_t *o)
{
    lunet_status_t st = lunet_sgd_check(o);
    lunet_sgd_t *opt = st ? NULL : calloc(1, sizeof *opt);
    if (!st && !opt)
        st = lunet_fail(LUNET_STATUS_NOMEM, "sgd: out of memory");
    if (!st && !(st = lunet_optimizer_hold(&opt->core, sizeof(lunet_tensor_t *), nparams, params,
                                           "sgd"))) {
        opt->options = *o;
        *out = opt;
        return LUNET_OK;
    }
    free(opt);
    return st;
}

static lunet_status_t sgd_step_one(lunet_tensor_t *p, void *buffer, const void *options)
{
    return lunet_sgd_update(p, p->grad, buffer, options);
}

lunet_status_t lunet_sgd_step(lunet_sgd_t *opt)
{
    return lunet_optimizer_step_all(&opt->core, sgd_step_one, &opt->options);
}

lunet_status_t lunet_sgd_zero_grad(lunet_sgd_t *opt) { return lunet_optimizer_zero_grads(&opt->core); }
