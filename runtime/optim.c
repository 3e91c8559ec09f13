/*
 * optim.c - SGD with momentum, dampening, Nesterov, weight decay and maximize, exactly as
 * PyTorch 1.13 (docs/pytorch-parity.md §7.2): each `add(b, alpha=s)` is one fused multiply-add.
 */
#include "autograd.h"
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

lunet_status_t lunet_sgd_check(const lunet_sgd_options_t *o)
{
    if (!(o->lr >= 0))
        return lunet_error_set(LUNET_STATUS_VALUE, "Invalid learning rate: %g", o->lr);
    if (!(o->momentum >= 0))
        return lunet_error_set(LUNET_STATUS_VALUE, "Invalid momentum value: %g", o->momentum);
    if (!(o->weight_decay >= 0))
        return lunet_error_set(LUNET_STATUS_VALUE, "Invalid weight_decay value: %g",
                               o->weight_decay);
    if (o->nesterov && (o->momentum <= 0 || o->dampening != 0))
        return lunet_error_set(LUNET_STATUS_VALUE,
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
        sgd_f64((double *)j->p + b, (const double *)j->g + b, j->buf ? (double *)j->buf + b : NULL,
                j->first, e - b, j->o);
}

lunet_status_t lunet_optim_param_begin(lunet_tensor_t **w, lunet_tensor_t *p)
{
    *w = p;
    if (!lunet_dtype_is_floating(p->dtype) || lunet_tensor_is_contiguous(p))
        return LUNET_OK; /* the update's own checks speak for a non-float p */
    bool was = lunet_set_grad_enabled(false);
    lunet_status_t st = lunet_tensor_clone(w, p);
    lunet_set_grad_enabled(was);
    return st;
}

lunet_status_t lunet_optim_param_end(lunet_tensor_t *p, lunet_tensor_t *w, lunet_status_t st)
{
    if (w == p)
        return st;
    if (!st) {
        lunet_copy_cast(p, w); /* the same bits the step wrote */
        lunet_tensor_bump_version(p);
    }
    lunet_tensor_release(w);
    return st;
}

lunet_status_t lunet_optim_check_like(const char *opt, const char *what, const lunet_tensor_t *t,
                                      const lunet_tensor_t *p, bool contiguous)
{
    if (t->dtype == p->dtype && lunet_shape_equal(t->ndim, t->shape, p->ndim, p->shape))
        return !contiguous || lunet_tensor_is_contiguous(t)
                   ? LUNET_OK
                   : lunet_error_set(LUNET_STATUS_RUNTIME, "%s: %s must be contiguous", opt, what);
    char b1[LUNET_SHAPE_BUF], b2[LUNET_SHAPE_BUF];
    return lunet_error_set(LUNET_STATUS_RUNTIME, "%s: %s %s %s does not match parameter %s %s", opt,
                           what, lunet_dtype_name(t->dtype),
                           lunet_shape_str(b1, sizeof b1, t->ndim, t->shape),
                           lunet_dtype_name(p->dtype),
                           lunet_shape_str(b2, sizeof b2, p->ndim, p->shape));
}

lunet_status_t lunet_optim_check_param(const char *opt, const lunet_tensor_t *p,
                                       const lunet_tensor_t *grad)
{
    if (!lunet_dtype_is_floating(p->dtype))
        return lunet_error_set(LUNET_STATUS_TYPE, "%s: parameter must be floating point, got %s",
                               opt, lunet_dtype_name(p->dtype));
    lunet_status_t st = lunet_optim_check_like(opt, "gradient", grad, p, false);
    if (!st && !lunet_tensor_is_contiguous(p))
        st = lunet_error_set(LUNET_STATUS_RUNTIME, "%s: parameter must be contiguous", opt);
    return st;
}

/* One step of a contiguous p (lunet_sgd_update below gives it one). */
static lunet_status_t sgd_update(lunet_tensor_t *p, lunet_tensor_t *grad,
                                 lunet_tensor_t **momentum_buffer, const lunet_sgd_options_t *o)
{
    lunet_status_t st = lunet_optim_check_param("sgd", p, grad);
    if (st)
        return st;
    lunet_tensor_t *g = NULL, *buf = NULL;
    st = lunet_tensor_contiguous(&g, grad);
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
        } else if ((st = lunet_optim_check_like("sgd", "momentum buffer", buf, p, true))) {
            lunet_tensor_release(g);
            return st;
        }
    }
    sgd_job_t job = {lunet_tensor_data(p),
                     lunet_tensor_data(g),
                     buf ? lunet_tensor_data(buf) : NULL,
                     first,
                     p->dtype,
                     o};
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

lunet_status_t lunet_sgd_update(lunet_tensor_t *p, lunet_tensor_t *grad,
                                lunet_tensor_t **momentum_buffer, const lunet_sgd_options_t *o)
{
    lunet_tensor_t *w;
    lunet_status_t st = lunet_optim_param_begin(&w, p);
    if (!st)
        st = sgd_update(w, grad, momentum_buffer, o);
    return lunet_optim_param_end(p, w, st);
}

/* ---- the whole list at once: one loop per run of neighbours in a slab (slab.c) */

/* params[j] joins the run that params[i..j) form: it has a gradient, and it, its gradient and
   (with momentum) its buffer's presence continue the run in their slabs. */
static bool run_continues(lunet_tensor_t *const *params, lunet_tensor_t *const *bufs, int i, int j)
{
    const lunet_tensor_t *p = params[j], *q = params[j - 1], *g = p->grad;
    if (!g || g->numel != p->numel || params[i]->grad->numel != params[i]->numel ||
        !lunet_slab_follows(q, p) || !lunet_slab_follows(q->grad, g) || g->storage == p->storage ||
        g->offset - params[i]->grad->offset != p->offset - params[i]->offset)
        return false;
    return !bufs || (bufs[j] == NULL) == (bufs[i] == NULL);
}

/* The run's momentum buffers as one slab laid out as its parameters: kept when they already
   are, else made (the first step) or filled from the buffers the caller had (loaded from a
   state dict).  *first says whether they were made. */
static lunet_status_t run_buffers(lunet_tensor_t *const *params, lunet_tensor_t **bufs, int n,
                                  bool *first)
{
    *first = bufs[0] == NULL;
    bool laid_out = !*first && bufs[0]->storage != params[0]->storage &&
                    bufs[0]->storage != params[0]->grad->storage;
    for (int k = 1; k < n && laid_out; k++)
        laid_out = lunet_slab_follows(bufs[k - 1], bufs[k]) &&
                   bufs[k]->offset - bufs[0]->offset == params[k]->offset - params[0]->offset;
    if (laid_out)
        return LUNET_OK;
    for (int k = 0; k < n && !*first; k++) {
        lunet_status_t st = lunet_optim_check_like("sgd", "momentum buffer", bufs[k], params[k],
                                                   false);
        if (st)
            return st;
    }
    lunet_tensor_t *stack[64], **made = n <= 64 ? stack : calloc((size_t)n, sizeof *made);
    if (!made)
        return lunet_error_set(LUNET_STATUS_NOMEM, "sgd: out of memory");
    lunet_status_t st = lunet_slab_like(made, params, n);
    for (int k = 0; k < n && !st; k++) {
        if (!*first) {
            lunet_copy_cast(made[k], bufs[k]);
            lunet_tensor_release(bufs[k]);
        }
        bufs[k] = made[k];
    }
    if (made != stack)
        free(made);
    return st;
}

/* One loop over params[0..n) (a run) and their gradients and buffers. */
static lunet_status_t sgd_run(lunet_tensor_t *const *params, lunet_tensor_t **bufs, int n,
                              const lunet_sgd_options_t *o)
{
    bool first = false;
    lunet_status_t st = bufs ? run_buffers(params, bufs, n, &first) : LUNET_OK;
    if (st)
        return st;
    sgd_job_t job = {lunet_tensor_data(params[0]),
                     lunet_tensor_data(params[0]->grad),
                     bufs ? lunet_tensor_data(bufs[0]) : NULL,
                     first,
                     params[0]->dtype,
                     o};
    lunet_parallel_for(lunet_slab_span(params[0], params[n - 1]), SGD_GRAIN, sgd_block, &job);
    for (int k = 0; k < n; k++)
        lunet_tensor_bump_version(params[k]);
    return LUNET_OK;
}

lunet_status_t lunet_sgd_update_all(int n, lunet_tensor_t *const *params,
                                    lunet_tensor_t **momentum_buffers, const lunet_sgd_options_t *o)
{
    lunet_tensor_t **bufs = o->momentum != 0 ? momentum_buffers : NULL;
    if (o->momentum != 0 && !bufs)
        return lunet_error_set(LUNET_STATUS_VALUE, "sgd: momentum needs the buffers' array");
    for (int i = 0; i < n;) {
        lunet_tensor_t *p = params[i];
        int j = i + 1;
        while (p->grad && j < n && run_continues(params, bufs, i, j))
            j++;
        lunet_status_t st = LUNET_OK;
        if (j - i > 1)
            st = sgd_run(params + i, bufs ? bufs + i : NULL, j - i, o);
        else if (p->grad) /* parameters without a gradient are skipped, as in PyTorch */
            st = lunet_sgd_update(p, p->grad, bufs ? &bufs[i] : NULL, o);
        if (st)
            return st;
        i = j;
    }
    return LUNET_OK;
}

/* ---- shared by the optimizer objects (SGD here, Adam in adam.c) */

/* A non-empty list of distinct floating leaf tensors, or PyTorch's message. */
static lunet_status_t check_params(int nparams, lunet_tensor_t *const *params, const char *name)
{
    if (nparams <= 0)
        return lunet_error_set(LUNET_STATUS_VALUE, "optimizer got an empty parameter list");
    for (int i = 0; i < nparams; i++) {
        if (!params[i] || !lunet_dtype_is_floating(params[i]->dtype))
            return lunet_error_set(LUNET_STATUS_TYPE, "%s: parameter %d is not a floating tensor",
                                   name, i);
        if (params[i]->grad_fn)
            return lunet_error_set(LUNET_STATUS_VALUE, "can't optimize a non-leaf Tensor");
        for (int j = 0; j < i; j++)
            if (params[j] == params[i])
                return lunet_error_set(LUNET_STATUS_VALUE,
                                       "some parameters appear more than once in the list");
    }
    return LUNET_OK;
}

struct lunet_optimizer {
    const lunet_optimizer_kind_t *kind;
    int nparams;
    lunet_tensor_t **params; /* retained */
    void *states;            /* nparams zero-initialised states of kind->state_size bytes */
    void *options;           /* a copy, kind->options_size bytes */
};

void lunet_optimizer_free(lunet_optimizer_t *opt)
{
    if (!opt)
        return;
    lunet_tensors_release((size_t)opt->nparams, opt->params);
    for (int i = 0; opt->states && i < opt->nparams; i++)
        opt->kind->clear((char *)opt->states + (size_t)i * opt->kind->state_size);
    free(opt->params);
    free(opt->states);
    free(opt->options);
    free(opt);
}

lunet_status_t lunet_optimizer_new(lunet_optimizer_t **out, const lunet_optimizer_kind_t *kind,
                                   const void *options, int nparams, lunet_tensor_t *const *params)
{
    lunet_status_t st = check_params(nparams, params, kind->name);
    if (st)
        return st;
    lunet_optimizer_t *opt = calloc(1, sizeof *opt);
    if (opt) {
        opt->kind = kind;
        opt->params = calloc((size_t)nparams, sizeof *opt->params);
        opt->states = calloc((size_t)nparams, kind->state_size);
        opt->options = malloc(kind->options_size);
    }
    if (!opt || !opt->params || !opt->states || !opt->options) {
        lunet_optimizer_free(opt);
        return lunet_error_set(LUNET_STATUS_NOMEM, "%s: out of memory", kind->name);
    }
    memcpy(opt->options, options, kind->options_size);
    opt->nparams = nparams;
    for (int i = 0; i < nparams; i++) {
        lunet_tensor_retain(params[i]);
        opt->params[i] = params[i];
    }
    *out = opt;
    return LUNET_OK;
}

lunet_status_t lunet_optimizer_step(lunet_optimizer_t *opt)
{
    if (opt->kind->update_all)
        return opt->kind->update_all(opt->nparams, opt->params, opt->states, opt->options);
    for (int i = 0; i < opt->nparams; i++) {
        lunet_tensor_t *p = opt->params[i];
        if (!p->grad)
            continue; /* parameters without a gradient are skipped, as in PyTorch */
        void *state = (char *)opt->states + (size_t)i * opt->kind->state_size;
        lunet_status_t st = opt->kind->update(p, state, opt->options);
        if (st)
            return st;
    }
    return LUNET_OK;
}

lunet_status_t lunet_optimizer_zero_grad(lunet_optimizer_t *opt)
{
    return lunet_slab_zero_grads(opt->nparams, opt->params);
}

const void *lunet_optimizer_state(const lunet_optimizer_t *opt, const lunet_optimizer_kind_t *kind,
                                  int i)
{
    return opt->kind == kind && i >= 0 && i < opt->nparams
               ? (char *)opt->states + (size_t)i * opt->kind->state_size
               : NULL;
}

/* ---- SGD's object for C hosts: a lunet_optimizer_t whose states are momentum buffers */

static void sgd_clear(void *buffer)
{
    lunet_tensor_t **b = buffer;
    lunet_tensor_release(*b);
    *b = NULL;
}

/* one loop over the whole list, so packed parameters take the slab's single pass */
static lunet_status_t sgd_update_all(int n, lunet_tensor_t *const *params, void *states,
                                     const void *options)
{
    return lunet_sgd_update_all(n, params, states, options);
}

static const lunet_optimizer_kind_t SGD_KIND = {
    .name = "sgd",
    .state_size = sizeof(lunet_tensor_t *),
    .options_size = sizeof(lunet_sgd_options_t),
    .update_all = sgd_update_all,
    .clear = sgd_clear,
};

lunet_status_t lunet_sgd_new(lunet_optimizer_t **out, int nparams, lunet_tensor_t *const *params,
                             const lunet_sgd_options_t *o)
{
    lunet_status_t st = lunet_sgd_check(o);
    return st ? st : lunet_optimizer_new(out, &SGD_KIND, o, nparams, params);
}
