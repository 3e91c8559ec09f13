/*
 * loss.c - cross_entropy, nll_loss and mse_loss with PyTorch 1.13's options, errors and
 * gradients (docs/pytorch-parity.md §2 and §3).
 *
 * Inputs are viewed as (outer, C, inner): (C) -> (1, C, 1), (N, C) -> (N, C, 1),
 * (N, C, d1..dk) -> (N, C, d1*..*dk).  A "position" is one (outer, inner) pair; targets and
 * 'none' outputs hold one value per position, row-major.
 *
 * Cross-entropy is fused: one walk over each position's C logits gives its max m and
 * log-sum-exp; the log-probabilities needed are formed on the fly, no softmax tensor is
 * written.  The forward keeps (m, log S) per position (float64, (positions, 2)) for the
 * backward, which then needs a single pass: p = exp((x - m) - log S).
 *
 * Bit-identity CE == nll_loss(log_softmax(x)) for index targets with no smoothing: the
 * log-probability at the target is formed and rounded exactly as softmax.c's log_softmax
 * rounds it, and both losses finish through nll_finish() with the same summation order.
 */
#include "autograd.h"
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void lunet_loss_options_init(lunet_loss_options_t *o)
{
    o->weight = NULL;
    o->ignore_index = -100;
    o->reduction = LUNET_REDUCTION_MEAN;
    o->label_smoothing = 0.0;
}

lunet_status_t lunet_reduction_parse(lunet_reduction_t *out, const char *name)
{
    static const char *const names[] = {"none", "mean", "sum"};
    _Static_assert(sizeof names / sizeof names[0] == LUNET_REDUCTION_COUNT, "one per value");
    for (int i = 0; name && i < LUNET_REDUCTION_COUNT; i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (lunet_reduction_t)i;
            return LUNET_OK;
        }
    }
    return lunet_error_set(LUNET_STATUS_VALUE, "%s is not a valid value for reduction",
                           name ? name : "None");
}

/* Log-sum-exp of one slice as the pair (m, log S), in double; scratch as above. */
static inline void slice_stats(const void *x, bool f32, int64_t base, int64_t C, int64_t st,
                               float *scratch, double *m, double *ls)
{
    if (f32) {
        float mf;
        *ls = lunet_softmax_slice_lse_f32((const float *)x + base, C, st, scratch, &mf);
        *m = mf;
    } else {
        *ls = lunet_softmax_slice_lse_f64((const double *)x + base, C, st, m);
    }
}

static inline double ld(const void *p, bool f32, int64_t i)
{
    return f32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

/* Rounds v as a tensor of that dtype would store it. */
static inline double rnd(double v, bool f32) { return f32 ? (double)(float)v : v; }

static inline int64_t tgt_at(const void *p, bool u8, int64_t i)
{
    return u8 ? (int64_t)((const uint8_t *)p)[i] : ((const int64_t *)p)[i];
}

/* Per-position buffers (npos doubles) live on the stack up to POS_BUF_LOCAL positions, so a
   training step's loss allocates nothing; larger inputs take them from the heap.  Declared
   without an initializer (that would zero 8 KB), then p = NULL until pos_buf_get. */
#define POS_BUF_LOCAL 1024
typedef struct pos_buf {
    double *p;
    double local[POS_BUF_LOCAL];
} pos_buf_t;

static double *pos_buf_get(pos_buf_t *b, size_t n)
{
    b->p = n <= POS_BUF_LOCAL ? b->local : malloc((n > 0 ? n : 1) * sizeof(double));
    return b->p;
}

static void pos_buf_free(pos_buf_t *b)
{
    if (b->p != b->local)
        free(b->p);
    b->p = NULL;
}

/* ---- validation and geometry shared by the forward and backward functions */

typedef struct loss_ctx {
    bool prob; /* probability targets (cross_entropy only) */
    bool f32;
    bool u8;             /* uint8 class indices */
    lunet_tensor_t *xin; /* the tensor the autograd node takes as input (x or x converted) */
    lunet_tensor_t *x;   /* contiguous data of xin */
    lunet_tensor_t *t;   /* contiguous target (converted to x's dtype in prob mode) */
    lunet_tensor_t *w;   /* contiguous weight in x's dtype, or NULL */
    int64_t outer, C, inner, npos;
    int out_ndim;
    int64_t out_shape[LUNET_MAX_DIMS];
} loss_ctx_t;

static void ctx_free(loss_ctx_t *c)
{
    LUNET_RELEASE(c->xin, c->x, c->t, c->w);
    memset(c, 0, sizeof *c);
}

static void ctx_geometry(loss_ctx_t *c, const lunet_tensor_t *x)
{
    int cdim = x->ndim == 1 ? 0 : 1;
    c->outer = x->ndim == 1 ? 1 : x->shape[0];
    c->C = x->shape[cdim];
    c->inner = 1;
    for (int k = 2; k < x->ndim; k++)
        c->inner *= x->shape[k];
    c->npos = c->outer * c->inner;
    c->out_ndim = 0;
    for (int k = 0; k < x->ndim; k++)
        if (k != cdim)
            c->out_shape[c->out_ndim++] = x->shape[k];
}

/* Shape rules of nll_loss_nd (1-D/2-D: nll_loss, 4-D: nll_loss2d, others reshaped to 4-D). */
static lunet_status_t check_index_shapes(const lunet_tensor_t *x, const lunet_tensor_t *t,
                                         const lunet_tensor_t *w)
{
    char b1[LUNET_SHAPE_BUF], b2[LUNET_SHAPE_BUF];
    if (x->ndim < 1)
        return lunet_error_set(LUNET_STATUS_VALUE, "Expected 1 or more dimensions (got %d)",
                               x->ndim);
    int64_t tb = t->ndim > 0 ? t->shape[0] : 0;
    if (x->ndim != 1 && x->shape[0] != tb)
        return lunet_error_set(
            LUNET_STATUS_VALUE,
            "Expected input batch_size (%lld) to match target batch_size (%lld).",
            (long long)x->shape[0], (long long)tb);
    if (x->ndim <= 2) {
        if (t->ndim > 1)
            return lunet_error_set(LUNET_STATUS_RUNTIME,
                                   "0D or 1D target tensor expected, multi-target not supported");
        bool no_batch = x->ndim == 1 && t->ndim == 0;
        if (!no_batch && x->shape[0] != t->shape[0])
            return lunet_error_set(LUNET_STATUS_RUNTIME,
                                   "size mismatch (got input: %s, target: %s)",
                                   lunet_shape_str(b1, sizeof b1, x->ndim, x->shape),
                                   lunet_shape_str(b2, sizeof b2, t->ndim, t->shape));
        int64_t C = x->shape[x->ndim - 1];
        if (w && (w->ndim != 1 || w->numel != C))
            return lunet_error_set(
                LUNET_STATUS_RUNTIME,
                "weight tensor should be defined either for all %lld classes or no "
                "classes but got weight tensor of shape: %s",
                (long long)C, lunet_shape_str(b1, sizeof b1, w->ndim, w->shape));
        return LUNET_OK;
    }
    if (x->ndim == 4) {
        if (t->ndim != 3)
            return lunet_error_set(LUNET_STATUS_RUNTIME,
                                   "only batches of spatial targets supported (3D tensors) but got "
                                   "targets of dimension: %d",
                                   t->ndim);
    } else if (!lunet_shape_equal(t->ndim - 1, t->shape + 1, x->ndim - 2, x->shape + 2)) {
        int64_t want[LUNET_MAX_DIMS];
        want[0] = x->shape[0];
        for (int k = 2; k < x->ndim; k++)
            want[k - 1] = x->shape[k];
        return lunet_error_set(LUNET_STATUS_RUNTIME, "Expected target size %s, got %s",
                               lunet_shape_str(b1, sizeof b1, x->ndim - 1, want),
                               lunet_shape_str(b2, sizeof b2, t->ndim, t->shape));
    }
    if (w && w->numel != x->shape[1])
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "weight tensor should be defined either for all or no classes");
    if (x->ndim == 4 &&
        !lunet_shape_equal(3, t->shape, 3,
                           (const int64_t[]){x->shape[0], x->shape[2], x->shape[3]}))
        /* PyTorch's text, odd spacing and missing parenthesis included */
        return lunet_error_set(LUNET_STATUS_RUNTIME, "size mismatch (got input: %s , target: %s",
                               lunet_shape_str(b1, sizeof b1, x->ndim, x->shape),
                               lunet_shape_str(b2, sizeof b2, t->ndim, t->shape));
    return LUNET_OK;
}

static lunet_status_t check_index_dtypes(const lunet_tensor_t *x, const lunet_tensor_t *t,
                                         const lunet_tensor_t *w)
{
    if (t->dtype != LUNET_DTYPE_INT64 && t->dtype != LUNET_DTYPE_UINT8)
        return lunet_error_set(LUNET_STATUS_RUNTIME, "expected scalar type Long but found %s",
                               lunet_dtype_torch_name(t->dtype));
    if (w && w->dtype != x->dtype)
        return lunet_error_set(LUNET_STATUS_RUNTIME, "expected scalar type %s but found %s",
                               lunet_dtype_torch_name(x->dtype), lunet_dtype_torch_name(w->dtype));
    return LUNET_OK;
}

/* "log_softmax_lastdim_kernel_impl" when the class dim is the last one, else the generic. */
static lunet_status_t fail_integer_logits(const lunet_tensor_t *x)
{
    return lunet_error_set(LUNET_STATUS_RUNTIME, "\"%s\" not implemented for '%s'",
                           x->ndim <= 2 ? "log_softmax_lastdim_kernel_impl" : "softmax_kernel_impl",
                           lunet_dtype_torch_name(x->dtype));
}

/* A new reference to t converted to dt and made contiguous, without recording autograd. */
static lunet_status_t plain_copy(lunet_tensor_t **out, lunet_tensor_t *t, lunet_dtype_t dt)
{
    bool prev = lunet_set_grad_enabled(false);
    lunet_tensor_t *a = NULL;
    lunet_status_t st = lunet_tensor_to(&a, t, dt);
    if (!st && !lunet_tensor_is_contiguous(a)) {
        lunet_tensor_t *b = NULL;
        st = lunet_tensor_contiguous(&b, a);
        lunet_tensor_release(a);
        a = st ? NULL : b;
    }
    lunet_set_grad_enabled(prev);
    if (st)
        return st;
    *out = a;
    return LUNET_OK;
}

/*
 * Validates x/target/options in PyTorch's order and fills c.  nll selects nll_loss's rules;
 * otherwise cross_entropy's (mode chosen by shape equality).  record_conv: convert x for a
 * float64 probability target with autograd (forward) or without (backward).
 */
static lunet_status_t ctx_prepare(loss_ctx_t *c, lunet_tensor_t *x, lunet_tensor_t *target,
                                  const lunet_loss_options_t *o, bool nll, bool record_conv)
{
    lunet_status_t st;
    memset(c, 0, sizeof *c);
    lunet_tensor_t *w = o->weight;
    if ((unsigned)o->reduction >= LUNET_REDUCTION_COUNT)
        return lunet_error_set(LUNET_STATUS_VALUE, "%d is not a valid value for reduction",
                               (int)o->reduction);
    lunet_dtype_t dt = x->dtype;
    if (!nll && lunet_shape_equal(x->ndim, x->shape, target->ndim, target->shape)) {
        c->prob = true;
        if (!lunet_dtype_is_floating(target->dtype))
            return lunet_error_set(
                LUNET_STATUS_RUNTIME,
                "Expected floating point type for target with class probabilities, "
                "got %s",
                lunet_dtype_torch_name(target->dtype));
        if (o->ignore_index >= 0)
            return lunet_error_set(LUNET_STATUS_RUNTIME,
                                   "ignore_index is not supported for floating point target");
        if (o->label_smoothing > 1.0)
            return lunet_error_set(LUNET_STATUS_RUNTIME,
                                   "label_smoothing must be between 0.0 and 1.0. Got: %g",
                                   o->label_smoothing);
        if (x->ndim == 0)
            return lunet_error_set(LUNET_STATUS_INDEX,
                                   "Dimension specified as 1 but tensor has no dimensions");
        if (!lunet_dtype_is_floating(x->dtype))
            return fail_integer_logits(x);
        int64_t C = x->shape[x->ndim == 1 ? 0 : 1];
        if (w && (w->ndim != 1 || w->numel != C)) {
            char b[LUNET_SHAPE_BUF];
            return lunet_error_set(
                LUNET_STATUS_RUNTIME,
                "cross_entropy: weight tensor should be defined either for all %lld "
                "classes or no classes but got weight tensor of shape: %s",
                (long long)C, lunet_shape_str(b, sizeof b, w->ndim, w->shape));
        }
        if (w && !lunet_dtype_is_floating(w->dtype))
            return lunet_error_set(LUNET_STATUS_RUNTIME, "expected scalar type %s but found %s",
                                   lunet_dtype_torch_name(x->dtype),
                                   lunet_dtype_torch_name(w->dtype));
        /* PyTorch promotes input x target: a float64 target gives a float64 loss */
        if (target->dtype == LUNET_DTYPE_FLOAT64)
            dt = LUNET_DTYPE_FLOAT64;
    } else {
        if (nll) {
            if ((st = check_index_shapes(x, target, w)))
                return st;
            if (!lunet_dtype_is_floating(x->dtype))
                return lunet_error_set(LUNET_STATUS_RUNTIME, "\"%s\" not implemented for '%s'",
                                       x->ndim <= 2 ? "nll_loss_out_frame"
                                                    : "nll_loss2d_forward_out_frame",
                                       lunet_dtype_torch_name(x->dtype));
        } else {
            if (o->label_smoothing > 1.0)
                return lunet_error_set(LUNET_STATUS_RUNTIME,
                                       "label_smoothing must be between 0.0 and 1.0. Got: %g",
                                       o->label_smoothing);
            int d;
            if (x->ndim == 0 && (st = lunet_dim_wrap(&d, 1, 0)))
                return st;
            if (!lunet_dtype_is_floating(x->dtype))
                return fail_integer_logits(x);
            if ((st = check_index_shapes(x, target, w)))
                return st;
        }
        if ((st = check_index_dtypes(x, target, w)))
            return st;
        c->u8 = target->dtype == LUNET_DTYPE_UINT8;
    }
    c->f32 = dt == LUNET_DTYPE_FLOAT32;
    ctx_geometry(c, x);
    /* the node's input: x itself, or x converted to float64 (recorded, so grads flow back) */
    if (dt != x->dtype && record_conv) {
        if ((st = lunet_tensor_to(&c->xin, x, dt)))
            return st;
    } else {
        lunet_tensor_retain(x);
        c->xin = x;
    }
    if ((st = plain_copy(&c->x, c->xin, dt)) ||
        (st = plain_copy(&c->t, target, c->prob ? dt : target->dtype)) ||
        (w && (st = plain_copy(&c->w, w, dt)))) {
        ctx_free(c);
        return st;
    }
    return LUNET_OK;
}

/* Checks every non-ignored target is a class (PyTorch checks in the forward, any reduction). */
static lunet_status_t check_targets(const loss_ctx_t *c, int64_t ignore_index)
{
    const void *t = lunet_tensor_data(c->t);
    for (int64_t p = 0; p < c->npos; p++) {
        int64_t y = tgt_at(t, c->u8, p);
        if (y != ignore_index && (y < 0 || y >= c->C))
            return lunet_error_set(LUNET_STATUS_INDEX, "Target %lld is out of bounds.",
                                   (long long)y);
    }
    return LUNET_OK;
}

/* ---- index-mode forward */

/*
 * Shared tail of nll_loss and index-mode cross_entropy.  lp[p] = log-probability at the
 * target of position p (already rounded to the dtype), sm[p] = -sum_c w_c lp_c (smoothing
 * term, used when eps > 0).  out: 'none' (positions) or 0-d.
 */
static lunet_status_t nll_finish(lunet_tensor_t **out, const loss_ctx_t *c, const double *lp,
                                 const double *sm, const lunet_loss_options_t *o)
{
    const void *t = lunet_tensor_data(c->t);
    const void *w = c->w ? lunet_tensor_data(c->w) : NULL;
    double eps = o->label_smoothing > 0 ? o->label_smoothing : 0;
    double ec = eps > 0 ? eps / (double)c->C : 0;
    bool none = o->reduction == LUNET_REDUCTION_NONE;
    lunet_tensor_t *r;
    lunet_status_t st = none
                            ? lunet_tensor_empty(&r,
                                                 c->f32 ? LUNET_DTYPE_FLOAT32 : LUNET_DTYPE_FLOAT64,
                                                 c->out_ndim, c->out_shape)
                            : lunet_tensor_empty(&r,
                                                 c->f32 ? LUNET_DTYPE_FLOAT32 : LUNET_DTYPE_FLOAT64,
                                                 0, NULL);
    if (st)
        return st;
    void *rd = lunet_tensor_data(r);
    double sum = 0, ssum = 0, den = 0;
    for (int64_t p = 0; p < c->npos; p++) {
        int64_t y = tgt_at(t, c->u8, p);
        if (y == o->ignore_index) {
            if (none)
                lunet_dtype_store((char *)rd + (size_t)p * (c->f32 ? 4 : 8),
                                  c->f32 ? LUNET_DTYPE_FLOAT32 : LUNET_DTYPE_FLOAT64, 0.0);
            continue;
        }
        double wy = w ? ld(w, c->f32, y) : 1.0;
        double term = rnd(-(wy * lp[p]), c->f32); /* PyTorch's per-position value */
        if (none) {
            double v = eps > 0 ? (1 - eps) * term + ec * sm[p] : term;
            if (c->f32)
                ((float *)rd)[p] = (float)v;
            else
                ((double *)rd)[p] = v;
        } else {
            sum += term;
            if (eps > 0)
                ssum += sm[p];
            den += wy;
        }
    }
    if (!none) {
        double v = eps > 0 ? (1 - eps) * sum + ec * ssum : sum;
        if (o->reduction == LUNET_REDUCTION_MEAN)
            v = v / den; /* den = 0 (all ignored / zero weights / empty) gives NaN, as PyTorch */
        if (c->f32)
            *(float *)rd = (float)v;
        else
            *(double *)rd = v;
    }
    *out = r;
    return LUNET_OK;
}

// x (outer, C, inner) logits -> lp (npos) target log-probs, sm (npos) smoothing,
// lse (npos, 2) = (max, log sum exp(x - max)); scratch (2 C floats)
static void ce_index_rows(const loss_ctx_t *c, const lunet_loss_options_t *o, double *lp,
                          double *sm, double *lse, float *scratch, int64_t p0, int64_t p1)
{
    const void *x = lunet_tensor_data(c->x);
    const void *t = lunet_tensor_data(c->t);
    const void *w = c->w ? lunet_tensor_data(c->w) : NULL;
    bool smooth = o->label_smoothing > 0, f32 = c->f32;
    int64_t C = c->C, inner = c->inner;
    for (int64_t p = p0; p < p1; p++) {
        int64_t y = tgt_at(t, c->u8, p);
        int64_t base = (p / inner) * C * inner + p % inner;
        if (y == o->ignore_index) {
            lp[p] = 0;
            if (sm)
                sm[p] = 0;
            if (lse)
                lse[2 * p] = lse[2 * p + 1] = 0;
            continue;
        }
        double m, ls;
        slice_stats(x, f32, base, C, inner, scratch, &m, &ls);
        /* the value log_softmax would store at the target */
        lp[p] = rnd((ld(x, f32, base + y * inner) - m) - ls, f32);
        if (lse)
            lse[2 * p] = m, lse[2 * p + 1] = ls;
        if (smooth) {
            double s = 0;
            for (int64_t k = 0; k < C; k++) {
                double l = rnd((ld(x, f32, base + k * inner) - m) - ls, f32);
                s += (w ? ld(w, f32, k) : 1.0) * l;
            }
            sm[p] = -s;
        }
    }
}

// x (outer, C, inner) log-probs -> lp (npos) values at the targets
static void nll_gather(const loss_ctx_t *c, int64_t ignore_index, double *lp)
{
    const void *x = lunet_tensor_data(c->x);
    const void *t = lunet_tensor_data(c->t);
    for (int64_t p = 0; p < c->npos; p++) {
        int64_t y = tgt_at(t, c->u8, p);
        int64_t base = (p / c->inner) * c->C * c->inner + p % c->inner;
        lp[p] = y == ignore_index ? 0 : ld(x, c->f32, base + y * c->inner);
    }
}

/* ---- probability-mode forward */

// x, t (outer, C, inner) -> loss per position (double), lse (npos, 2) or NULL;
// scratch (2 C floats)
static void ce_prob_rows(const loss_ctx_t *c, const lunet_loss_options_t *o, double *loss,
                         double *lse, float *scratch, int64_t p0, int64_t p1)
{
    const void *x = lunet_tensor_data(c->x);
    const void *t = lunet_tensor_data(c->t);
    const void *w = c->w ? lunet_tensor_data(c->w) : NULL;
    double eps = o->label_smoothing > 0 ? o->label_smoothing : 0;
    double ec = eps / (double)c->C;
    bool f32 = c->f32;
    int64_t C = c->C, inner = c->inner;
    for (int64_t p = p0; p < p1; p++) {
        int64_t base = (p / inner) * C * inner + p % inner;
        double m, ls;
        slice_stats(x, f32, base, C, inner, scratch, &m, &ls);
        if (lse)
            lse[2 * p] = m, lse[2 * p + 1] = ls;
        double s = 0;
        for (int64_t k = 0; k < C; k++) {
            int64_t i = base + k * inner;
            double l = rnd((ld(x, f32, i) - m) - ls, f32);
            double tk = ld(t, f32, i);
            if (eps > 0)
                tk = (1 - eps) * tk + ec;
            s += (w ? ld(w, f32, k) : 1.0) * tk * l;
        }
        loss[p] = -s;
    }
}

static lunet_status_t prob_finish(lunet_tensor_t **out, const loss_ctx_t *c, const double *loss,
                                  lunet_reduction_t red)
{
    lunet_dtype_t dt = c->f32 ? LUNET_DTYPE_FLOAT32 : LUNET_DTYPE_FLOAT64;
    lunet_tensor_t *r;
    lunet_status_t st = red == LUNET_REDUCTION_NONE
                            ? lunet_tensor_empty(&r, dt, c->out_ndim, c->out_shape)
                            : lunet_tensor_empty(&r, dt, 0, NULL);
    if (st)
        return st;
    void *rd = lunet_tensor_data(r);
    if (red == LUNET_REDUCTION_NONE) {
        for (int64_t p = 0; p < c->npos; p++)
            lunet_dtype_store((char *)rd + (size_t)p * lunet_dtype_size(dt), dt, loss[p]);
    } else {
        double s = 0;
        for (int64_t p = 0; p < c->npos; p++)
            s -= loss[p]; /* s = sum of (w t l); the loss is its negation (-0. when empty) */
        double v = -s;
        if (red == LUNET_REDUCTION_MEAN)
            v = c->npos > 0 ? v / (double)c->npos : NAN;
        lunet_dtype_store(rd, dt, v);
    }
    *out = r;
    return LUNET_OK;
}

/* ---- public forward functions */

/* PyTorch's grad_fn for nll_loss_nd: (C)/(N, C) use nll_loss, 4-D nll_loss2d, other ranks
 * are reshaped to 4-D and, for 'none', viewed back. */
static const char *nll_grad_fn_name(int ndim, lunet_reduction_t red)
{
    if (ndim <= 2)
        return "NllLossBackward0";
    if (ndim != 4 && red == LUNET_REDUCTION_NONE)
        return "ViewBackward0";
    return "NllLoss2DBackward0";
}

static const char *ce_grad_fn_name(bool prob, int ndim, int64_t npos, const lunet_loss_options_t *o)
{
    if (prob) /* an empty mean is -(sum().fill_(nan)) in PyTorch: no division */
        return o->reduction == LUNET_REDUCTION_MEAN && npos > 0 ? "DivBackward1" : "NegBackward0";
    return o->label_smoothing > 0 ? "AddBackward0" : nll_grad_fn_name(ndim, o->reduction);
}

static void loss_args(lunet_op_args_t *a, const lunet_loss_options_t *o)
{
    memset(a, 0, sizeof *a);
    a->i[0] = o->ignore_index;
    a->i[1] = (int64_t)o->reduction;
    a->d[0] = o->label_smoothing;
}

/*
 * Threads: positions are split over the pool in blocks of ~64K logits (a function of the
 * shape), each with its own scratch on its stack; every position's values depend on its
 * own logits only, and the reduction over positions (nll_finish, prob_finish) stays one
 * ordered loop, so the bits are the same on any thread count.  Wider rows than
 * LOSS_BLOCK_MAX_C classes run on the calling thread with heap scratch.
 */
#define LOSS_BLOCK_MAX_C 1024

static int64_t loss_grain(int64_t C) { return C >= 65536 ? 1 : 65536 / (C > 0 ? C : 1); }

typedef struct ce_rows_job {
    const loss_ctx_t *c;
    const lunet_loss_options_t *o;
    double *out, *sm, *lse; /* forward */
    void *dx;               /* backward */
    const double *q, *lse_in;
} ce_rows_job_t;

static void ce_forward_block(void *ctx, int64_t p0, int64_t p1)
{
    const ce_rows_job_t *j = ctx;
    float scratch[2 * LOSS_BLOCK_MAX_C + 1];
    if (j->c->prob)
        ce_prob_rows(j->c, j->o, j->out, j->lse, scratch, p0, p1);
    else
        ce_index_rows(j->c, j->o, j->out, j->sm, j->lse, scratch, p0, p1);
}

lunet_status_t lunet_loss_cross_entropy_lse(lunet_tensor_t **out, lunet_tensor_t **lse_out,
                                            lunet_tensor_t *x, lunet_tensor_t *target,
                                            const lunet_loss_options_t *o)
{
    loss_ctx_t c;
    lunet_status_t st = ctx_prepare(&c, x, target, o, false, true);
    if (st)
        return st;
    if (!c.prob && (st = check_targets(&c, o->ignore_index))) {
        ctx_free(&c);
        return st;
    }
    bool need = lunet_autograd_needed(c.xin, NULL);
    lunet_tensor_t *lse = NULL, *r = NULL;
    if (need || lse_out) {
        int64_t n2[2] = {c.npos, 2};
        if ((st = lunet_tensor_empty(&lse, LUNET_DTYPE_FLOAT64, 2, n2))) {
            ctx_free(&c);
            return st;
        }
    }
    double *lsed = lse ? lunet_tensor_data(lse) : NULL;
    bool smooth = !c.prob && o->label_smoothing > 0;
    size_t nbuf = (size_t)(c.npos > 0 ? c.npos : 1);
    pos_buf_t bufs;
    bufs.p = NULL;
    double *buf = pos_buf_get(&bufs, nbuf * (smooth ? 2 : 1));
    bool blocks = c.C <= LOSS_BLOCK_MAX_C;
    float *scratch = blocks ? NULL : malloc((size_t)(2 * c.C + 1) * sizeof(float));
    if (!buf || (!blocks && !scratch)) {
        st = lunet_error_set(LUNET_STATUS_NOMEM, "cross_entropy: out of memory for %lld positions",
                             (long long)c.npos);
        goto done;
    }
    double *sm = smooth ? buf + nbuf : NULL;
    if (blocks) {
        ce_rows_job_t j = {.c = &c, .o = o, .out = buf, .sm = sm, .lse = lsed};
        lunet_parallel_for(c.npos, loss_grain(c.C), ce_forward_block, &j);
    } else if (c.prob) {
        ce_prob_rows(&c, o, buf, lsed, scratch, 0, c.npos);
    } else {
        ce_index_rows(&c, o, buf, sm, lsed, scratch, 0, c.npos);
    }
    if (c.prob)
        st = prob_finish(&r, &c, buf, o->reduction);
    else
        st = nll_finish(&r, &c, buf, sm, o);
    if (st)
        goto done;
    lunet_op_args_t args;
    loss_args(&args, o);
    args.name = ce_grad_fn_name(c.prob, x->ndim, c.npos, o);
    lunet_tensor_t *extra[3] = {c.prob ? c.t : target, c.w, lse};
    if ((st = lunet_autograd_finish(out, r, LUNET_OP_CROSS_ENTROPY, 1, &c.xin, extra, &args)))
        goto done;
    if (lse_out) {
        *lse_out = lse;
        lse = NULL;
    }
done:
    pos_buf_free(&bufs);
    free(scratch);
    lunet_tensor_release(lse);
    ctx_free(&c);
    return st;
}

lunet_status_t lunet_loss_cross_entropy(lunet_tensor_t **out, lunet_tensor_t *x,
                                        lunet_tensor_t *target, const lunet_loss_options_t *o)
{
    return lunet_loss_cross_entropy_lse(out, NULL, x, target, o);
}

lunet_status_t lunet_loss_nll(lunet_tensor_t **out, lunet_tensor_t *x, lunet_tensor_t *target,
                              const lunet_loss_options_t *o)
{
    loss_ctx_t c;
    lunet_status_t st = ctx_prepare(&c, x, target, o, true, true);
    if (st)
        return st;
    if ((st = check_targets(&c, o->ignore_index))) {
        ctx_free(&c);
        return st;
    }
    lunet_loss_options_t o2 = *o;
    o2.label_smoothing = 0; /* nll_loss has none */
    pos_buf_t lps;          /* its local array is not zeroed: pos_buf_get fills p */
    lps.p = NULL;
    double *lp = pos_buf_get(&lps, (size_t)c.npos);
    if (!lp) {
        ctx_free(&c);
        return lunet_error_set(LUNET_STATUS_NOMEM, "nll_loss: out of memory for %lld positions",
                               (long long)c.npos);
    }
    nll_gather(&c, o->ignore_index, lp);
    lunet_tensor_t *r = NULL;
    st = nll_finish(&r, &c, lp, NULL, &o2);
    pos_buf_free(&lps);
    if (!st) {
        lunet_op_args_t args;
        loss_args(&args, &o2);
        args.name = nll_grad_fn_name(x->ndim, o->reduction);
        lunet_tensor_t *extra[2] = {target, o->weight};
        st = lunet_autograd_finish(out, r, LUNET_OP_NLL_LOSS, 1, &x, extra, &args);
    }
    ctx_free(&c);
    return st;
}

/* ---- backward */

/*
 * Upstream gradient: g must be 0-d (or one element) for mean/sum, or have one value per
 * position for none.  Returns a contiguous float64-readable copy in c's dtype.
 */
static lunet_status_t grad_prepare(lunet_tensor_t **gc, lunet_tensor_t *g, const loss_ctx_t *c,
                                   lunet_reduction_t red, const char *op)
{
    int64_t want = red == LUNET_REDUCTION_NONE ? c->npos : 1;
    if (g->numel != want)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "%s_backward: upstream gradient has %lld elements, expected %lld",
                               op, (long long)g->numel, (long long)want);
    return plain_copy(gc, g, c->f32 ? LUNET_DTYPE_FLOAT32 : LUNET_DTYPE_FLOAT64);
}

/* D = sum of the weights of the non-ignored targets (the 'mean' denominator). */
static double index_denominator(const loss_ctx_t *c, int64_t ignore_index)
{
    const void *t = lunet_tensor_data(c->t);
    const void *w = c->w ? lunet_tensor_data(c->w) : NULL;
    double den = 0;
    for (int64_t p = 0; p < c->npos; p++) {
        int64_t y = tgt_at(t, c->u8, p);
        if (y != ignore_index)
            den += w ? ld(w, c->f32, y) : 1.0;
    }
    return den;
}

/*
 * x, dx (outer, C, inner); q (npos) upstream scale per position; lse (npos, 2) = (max,
 * log sum exp) from the forward, or NULL to recompute; scratch (2 C floats).  Per position,
 * p_k = exp((x_k - max) - log S) into pk (C doubles), then the rule of
 * docs/pytorch-parity.md §2.5.
 */
static void ce_backward_rows(void *dx, const void *x, const loss_ctx_t *c,
                             const lunet_loss_options_t *o, const double *q, const double *lse,
                             float *scratch, double *pk, int64_t p0, int64_t p1)
{
    const void *t = lunet_tensor_data(c->t);
    const void *w = c->w ? lunet_tensor_data(c->w) : NULL;
    bool f32 = c->f32;
    int64_t C = c->C, inner = c->inner;
    double eps = o->label_smoothing > 0 ? o->label_smoothing : 0, ec = eps / (double)C;
    double W = (double)C;
    if (w) {
        W = 0;
        for (int64_t k = 0; k < C; k++)
            W += ld(w, f32, k);
    }
    for (int64_t p = p0; p < p1; p++) {
        int64_t base = (p / inner) * C * inner + p % inner;
        int64_t y = c->prob ? 0 : tgt_at(t, c->u8, p);
        if (!c->prob && y == o->ignore_index) {
            for (int64_t k = 0; k < C; k++)
                lunet_dtype_store((char *)dx + (size_t)(base + k * inner) * (f32 ? 4 : 8),
                                  f32 ? LUNET_DTYPE_FLOAT32 : LUNET_DTYPE_FLOAT64, 0.0);
            continue;
        }
        double m, ls;
        if (lse)
            m = lse[2 * p], ls = lse[2 * p + 1];
        else
            slice_stats(x, f32, base, C, inner, scratch, &m, &ls);
        if (f32) {
            /* the vectorised float exp, on the slice made contiguous if needed */
            const float *xs = (const float *)x + base;
            if (inner != 1) {
                for (int64_t k = 0; k < C; k++)
                    scratch[C + k] = xs[k * inner];
                xs = scratch + C;
            }
            lunet_softmax_exp_f32(scratch, xs, C, (float)m, (float)ls);
            if (!c->prob && eps == 0 && inner == 1) {
                /* the common case, straight from the float exps: dx = a (p - onehot) */
                double a = q[p] * (w ? ld(w, f32, y) : 1.0);
                float *ds = (float *)dx + base;
                for (int64_t k = 0; k < C; k++)
                    ds[k] = (float)(a * scratch[k]);
                ds[y] = (float)(a * ((double)scratch[y] - 1.0));
                continue;
            }
            for (int64_t k = 0; k < C; k++)
                pk[k] = scratch[k];
        } else {
            const double *xs = (const double *)x + base;
            for (int64_t k = 0; k < C; k++)
                pk[k] = exp((xs[k * inner] - m) - ls);
        }
        double qp = q[p];
        if (c->prob) {
            double tw = 0; /* sum_c w_c t'_c */
            for (int64_t k = 0; k < C; k++) {
                double tk = ld(t, f32, base + k * inner);
                if (eps > 0)
                    tk = (1 - eps) * tk + ec;
                tw += (w ? ld(w, f32, k) : 1.0) * tk;
            }
            for (int64_t k = 0; k < C; k++) {
                double tk = ld(t, f32, base + k * inner);
                if (eps > 0)
                    tk = (1 - eps) * tk + ec;
                pk[k] = qp * (pk[k] * tw - (w ? ld(w, f32, k) : 1.0) * tk);
            }
        } else if (eps == 0) {
            double a = qp * (w ? ld(w, f32, y) : 1.0);
            pk[y] -= 1.0;
            for (int64_t k = 0; k < C; k++)
                pk[k] *= a;
        } else {
            double wy = w ? ld(w, f32, y) : 1.0;
            for (int64_t k = 0; k < C; k++) {
                double v = (1 - eps) * wy * (pk[k] - (double)(k == y)) +
                           ec * (W * pk[k] - (w ? ld(w, f32, k) : 1.0));
                pk[k] = qp * v;
            }
        }
        if (f32) {
            float *ds = (float *)dx + base;
            for (int64_t k = 0; k < C; k++)
                ds[k * inner] = (float)pk[k];
        } else {
            double *ds = (double *)dx + base;
            for (int64_t k = 0; k < C; k++)
                ds[k * inner] = pk[k];
        }
    }
}

/* Per-position upstream scale q (see docs/pytorch-parity.md §2.5) into *qbuf (from qb). */
static lunet_status_t upstream_scale(double **qbuf, pos_buf_t *qb, lunet_tensor_t *gc,
                                     const loss_ctx_t *c, const lunet_loss_options_t *o,
                                     const char *op)
{
    double *q = pos_buf_get(qb, (size_t)c->npos);
    if (!q)
        return lunet_error_set(LUNET_STATUS_NOMEM, "%s_backward: out of memory", op);
    const void *gd = lunet_tensor_data(gc);
    if (o->reduction == LUNET_REDUCTION_NONE) {
        for (int64_t p = 0; p < c->npos; p++)
            q[p] = ld(gd, c->f32, p);
    } else {
        double s = ld(gd, c->f32, 0);
        if (o->reduction == LUNET_REDUCTION_MEAN)
            s = c->prob ? s / (double)c->npos : s / index_denominator(c, o->ignore_index);
        for (int64_t p = 0; p < c->npos; p++)
            q[p] = s;
    }
    *qbuf = q;
    return LUNET_OK;
}

static void ce_backward_block(void *ctx, int64_t p0, int64_t p1)
{
    const ce_rows_job_t *j = ctx;
    float scratch[2 * LOSS_BLOCK_MAX_C];
    double pk[LOSS_BLOCK_MAX_C];
    ce_backward_rows(j->dx, lunet_tensor_data(j->c->x), j->c, j->o, j->q, j->lse_in, scratch, pk,
                     p0, p1);
}

lunet_status_t lunet_loss_cross_entropy_backward_lse(lunet_tensor_t **dx, lunet_tensor_t *g,
                                                     lunet_tensor_t *x, lunet_tensor_t *target,
                                                     lunet_tensor_t *lse,
                                                     const lunet_loss_options_t *o)
{
    loss_ctx_t c;
    lunet_status_t st = ctx_prepare(&c, x, target, o, false, false);
    if (st)
        return st;
    lunet_tensor_t *gc = NULL, *r = NULL, *lc = NULL;
    double *q = NULL, *pk = NULL;
    pos_buf_t qb;
    qb.p = NULL;
    float *scratch = NULL;
    if (!c.prob && (st = check_targets(&c, o->ignore_index)))
        goto done;
    if (lse && (lse->dtype != LUNET_DTYPE_FLOAT64 || lse->numel != 2 * c.npos)) {
        st = lunet_error_set(LUNET_STATUS_RUNTIME,
                             "cross_entropy_backward: saved log-sum-exp has %lld values, expected "
                             "%lld float64",
                             (long long)lse->numel, (long long)(2 * c.npos));
        goto done;
    }
    if (lse && (st = plain_copy(&lc, lse, LUNET_DTYPE_FLOAT64)))
        goto done;
    if ((st = grad_prepare(&gc, g, &c, o->reduction, "cross_entropy")))
        goto done;
    if ((st = upstream_scale(&q, &qb, gc, &c, o, "cross_entropy")))
        goto done;
    if ((st = lunet_tensor_empty_like(&r, c.x, c.x->dtype)))
        goto done;
    if (c.x->numel > 0) {
        const double *L = lc ? lunet_tensor_data(lc) : NULL;
        if (c.C <= LOSS_BLOCK_MAX_C) {
            ce_rows_job_t j = {.c = &c, .o = o, .dx = lunet_tensor_data(r), .q = q, .lse_in = L};
            lunet_parallel_for(c.npos, loss_grain(c.C), ce_backward_block, &j);
        } else {
            scratch = malloc((size_t)(2 * c.C) * sizeof(float));
            pk = malloc((size_t)c.C * sizeof(double));
            if (!scratch || !pk) {
                st = lunet_error_set(LUNET_STATUS_NOMEM,
                                     "cross_entropy_backward: out of memory for "
                                     "%lld classes",
                                     (long long)c.C);
                goto done;
            }
            ce_backward_rows(lunet_tensor_data(r), lunet_tensor_data(c.x), &c, o, q, L, scratch, pk,
                             0, c.npos);
        }
    }
    /* a float32 x given a float64 probability target: hand back x's dtype */
    if (r->dtype != x->dtype) {
        lunet_tensor_t *r2;
        if ((st = plain_copy(&r2, r, x->dtype)))
            goto done;
        lunet_tensor_release(r);
        r = r2;
    }
    *dx = r;
    r = NULL;
done:
    pos_buf_free(&qb);
    free(pk);
    free(scratch);
    LUNET_RELEASE(r, gc, lc);
    ctx_free(&c);
    return st;
}

lunet_status_t lunet_loss_cross_entropy_backward(lunet_tensor_t **dx, lunet_tensor_t *g,
                                                 lunet_tensor_t *x, lunet_tensor_t *target,
                                                 const lunet_loss_options_t *o)
{
    return lunet_loss_cross_entropy_backward_lse(dx, g, x, target, NULL, o);
}

lunet_status_t lunet_loss_nll_backward(lunet_tensor_t **dx, lunet_tensor_t *g, lunet_tensor_t *x,
                                       lunet_tensor_t *target, const lunet_loss_options_t *o)
{
    loss_ctx_t c;
    lunet_status_t st = ctx_prepare(&c, x, target, o, true, false);
    if (st)
        return st;
    lunet_tensor_t *gc = NULL, *r = NULL;
    double *q = NULL;
    pos_buf_t qb;
    qb.p = NULL;
    if ((st = check_targets(&c, o->ignore_index)) ||
        (st = grad_prepare(&gc, g, &c, o->reduction, "nll_loss")) ||
        (st = upstream_scale(&q, &qb, gc, &c, o, "nll_loss")) ||
        (st = lunet_tensor_zeros(&r, x->dtype, x->ndim, x->shape)))
        goto done;
    {
        const void *t = lunet_tensor_data(c.t);
        const void *w = c.w ? lunet_tensor_data(c.w) : NULL;
        void *rd = lunet_tensor_data(r);
        // dx (outer, C, inner): only the target entries are non-zero
        for (int64_t p = 0; p < c.npos; p++) {
            int64_t y = tgt_at(t, c.u8, p);
            if (y == o->ignore_index)
                continue;
            int64_t k = (p / c.inner) * c.C * c.inner + y * c.inner + p % c.inner;
            double v = -(w ? ld(w, c.f32, y) : 1.0) * q[p];
            if (c.f32)
                ((float *)rd)[k] = (float)v;
            else
                ((double *)rd)[k] = v;
        }
    }
    *dx = r;
    r = NULL;
done:
    pos_buf_free(&qb);
    LUNET_RELEASE(r, gc);
    ctx_free(&c);
    return st;
}

/* ---- mse_loss */

static lunet_status_t mse_operands(lunet_tensor_t **ae, lunet_tensor_t **be, lunet_tensor_t *a,
                                   lunet_tensor_t *b)
{
    lunet_dtype_t dt = lunet_result_dtype(a, b);
    if (!lunet_dtype_is_floating(dt))
        return lunet_error_set(LUNET_STATUS_RUNTIME, "\"mse_cpu\" not implemented for '%s'",
                               lunet_dtype_torch_name(dt));
    int nd;
    int64_t shape[LUNET_MAX_DIMS];
    lunet_status_t st = lunet_broadcast_shape(&nd, shape, a->ndim, a->shape, b->ndim, b->shape);
    if (st)
        return st;
    lunet_tensor_t *a1 = NULL, *b1 = NULL, *a2 = NULL, *b2 = NULL;
    /* conversions and broadcasts are recorded, so gradients reach a and b in their shapes */
    if ((st = lunet_tensor_to(&a1, a, dt)) || (st = lunet_tensor_to(&b1, b, dt)))
        goto fail;
    if (lunet_shape_equal(nd, shape, a->ndim, a->shape)) {
        a2 = a1, a1 = NULL;
    } else if ((st = lunet_tensor_expand(&a2, a1, nd, shape))) {
        goto fail;
    }
    if (lunet_shape_equal(nd, shape, b->ndim, b->shape)) {
        b2 = b1, b1 = NULL;
    } else if ((st = lunet_tensor_expand(&b2, b1, nd, shape))) {
        goto fail;
    }
    LUNET_RELEASE(a1, b1);
    *ae = a2;
    *be = b2;
    return LUNET_OK;
fail:
    LUNET_RELEASE(a1, b1, a2, b2);
    return st;
}

/* r (n) = (x - y)^2 element by element, in T (float or double) */
#define SQUARED_DIFFERENCES(T)                                                                     \
    for (int64_t i = 0; i < n; i++) {                                                              \
        T d = ((const T *)x)[i] - ((const T *)y)[i];                                               \
        ((T *)rd)[i] = d * d;                                                                      \
    }

lunet_status_t lunet_loss_mse(lunet_tensor_t **out, lunet_tensor_t *a, lunet_tensor_t *b,
                              lunet_reduction_t reduction)
{
    if ((unsigned)reduction >= LUNET_REDUCTION_COUNT)
        return lunet_error_set(LUNET_STATUS_VALUE, "%d is not a valid value for reduction",
                               (int)reduction);
    lunet_tensor_t *ae = NULL, *be = NULL, *ac = NULL, *bc = NULL, *r = NULL;
    lunet_status_t st = mse_operands(&ae, &be, a, b);
    if (st)
        return st;
    bool f32 = ae->dtype == LUNET_DTYPE_FLOAT32;
    if ((st = plain_copy(&ac, ae, ae->dtype)) || (st = plain_copy(&bc, be, be->dtype)))
        goto done;
    st = reduction == LUNET_REDUCTION_NONE ? lunet_tensor_empty_like(&r, ae, ae->dtype)
                                           : lunet_tensor_empty(&r, ae->dtype, 0, NULL);
    if (st)
        goto done;
    {
        const void *x = lunet_tensor_data(ac), *y = lunet_tensor_data(bc);
        void *rd = lunet_tensor_data(r);
        int64_t n = ae->numel;
        // a, b, r (n) elementwise, or r () the reduction
        if (reduction == LUNET_REDUCTION_NONE) {
            if (f32)
                SQUARED_DIFFERENCES(float)
            else
                SQUARED_DIFFERENCES(double)
        } else {
            double s = 0;
            for (int64_t i = 0; i < n; i++) {
                double d = rnd(ld(x, f32, i) - ld(y, f32, i), f32);
                s += rnd(d * d, f32);
            }
            if (reduction == LUNET_REDUCTION_MEAN)
                s = n > 0 ? s / (double)n : NAN;
            lunet_dtype_store(rd, ae->dtype, s);
        }
    }
    lunet_op_args_t args = {.i = {(int64_t)reduction}};
    lunet_tensor_t *in[2] = {ae, be};
    st = lunet_autograd_finish(out, r, LUNET_OP_MSE_LOSS, 2, in, NULL, &args);
    r = NULL;
done:
    LUNET_RELEASE(r, ae, be, ac, bc);
    return st;
}
#undef SQUARED_DIFFERENCES

lunet_status_t lunet_loss_mse_backward(lunet_tensor_t **da, lunet_tensor_t **db, lunet_tensor_t *g,
                                       lunet_tensor_t *a, lunet_tensor_t *b,
                                       lunet_reduction_t reduction)
{
    if (!lunet_shape_equal(a->ndim, a->shape, b->ndim, b->shape) || a->dtype != b->dtype ||
        !lunet_dtype_is_floating(a->dtype))
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "mse_loss_backward: the saved operands must have one shape and "
                               "floating dtype");
    int64_t n = a->numel;
    int64_t want = reduction == LUNET_REDUCTION_NONE ? n : 1;
    if (g->numel != want)
        return lunet_error_set(
            LUNET_STATUS_RUNTIME,
            "mse_loss_backward: upstream gradient has %lld elements, expected %lld",
            (long long)g->numel, (long long)want);
    bool f32 = a->dtype == LUNET_DTYPE_FLOAT32;
    lunet_tensor_t *ac = NULL, *bc = NULL, *gc = NULL, *ra = NULL, *rb = NULL;
    lunet_status_t st;
    if ((st = plain_copy(&ac, a, a->dtype)) || (st = plain_copy(&bc, b, a->dtype)) ||
        (st = plain_copy(&gc, g, a->dtype)) ||
        (da && (st = lunet_tensor_empty_like(&ra, a, a->dtype))) ||
        (db && (st = lunet_tensor_empty_like(&rb, a, a->dtype))))
        goto done;
    {
        const void *x = lunet_tensor_data(ac), *y = lunet_tensor_data(bc);
        const void *gd = lunet_tensor_data(gc);
        void *pa = ra ? lunet_tensor_data(ra) : NULL, *pb = rb ? lunet_tensor_data(rb) : NULL;
        double norm = reduction == LUNET_REDUCTION_MEAN ? 2.0 / (double)n : 2.0;
        double g0 = reduction == LUNET_REDUCTION_NONE ? 0 : ld(gd, f32, 0);
        // a, b, g, da, db (n): da = norm (a - b) g, db = -da
        for (int64_t i = 0; i < n; i++) {
            double gi = reduction == LUNET_REDUCTION_NONE ? ld(gd, f32, i) : g0;
            double v = norm * (ld(x, f32, i) - ld(y, f32, i)) * gi;
            if (f32) {
                if (pa)
                    ((float *)pa)[i] = (float)v;
                if (pb)
                    ((float *)pb)[i] = (float)-v;
            } else {
                if (pa)
                    ((double *)pa)[i] = v;
                if (pb)
                    ((double *)pb)[i] = -v;
            }
        }
    }
    if (da)
        *da = ra, ra = NULL;
    if (db)
        *db = rb, rb = NULL;
done:
    LUNET_RELEASE(ac, bc, gc, ra, rb);
    return st;
}
