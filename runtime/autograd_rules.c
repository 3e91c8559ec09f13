/*
 * autograd_rules.c - one backward rule per op of lunet_op_t (autograd.h).  The table at the
 * end is checked against LUNET_OP_COUNT at compile time, so an op cannot exist without a
 * rule; its rows also say what each op's node saves (autograd.h).  Rules run with grad mode
 * off and build their results from ordinary tensor ops.  A rule may return an input's
 * gradient in the broadcast shape of the op's result: the engine (autograd.c fit_grad) sums
 * it back to the input's shape and dtype.
 */
#include "autograd.h"
#include "index.h"
#include "internal.h"
#include "nn_kernels.h"

#include <math.h>
#include <string.h>

/* n is unused by the few rules that need only g. */
#define RULE(fn)                                                                                   \
    static lunet_status_t fn(lunet_node_t *n __attribute__((unused)), lunet_tensor_t *g,           \
                             lunet_tensor_t **grads)

static lunet_status_t scaled(lunet_tensor_t **out, lunet_tensor_t *g, double s)
{
    if (s == 1) {
        lunet_tensor_retain(g);
        *out = g;
        return LUNET_OK;
    }
    lunet_tensor_t *k;
    lunet_status_t st = lunet_tensor_scalar(&k, g->dtype, s, true);
    if (st)
        return st;
    st = lunet_tensor_binary(out, LUNET_BINARY_MUL, g, k);
    lunet_tensor_release(k);
    return st;
}

RULE(add_backward)
{
    if (n->in[0].needs_grad) {
        lunet_tensor_retain(g);
        grads[0] = g;
    }
    if (!n->in[1].needs_grad)
        return LUNET_OK;
    return scaled(&grads[1], g, n->op == LUNET_OP_SUB ? -n->args.d[0] : n->args.d[0]);
}

RULE(mul_backward)
{
    lunet_status_t st = LUNET_OK;
    if (n->in[0].needs_grad &&
        (st = lunet_tensor_binary(&grads[0], LUNET_BINARY_MUL, g, n->saved[1])))
        return st;
    if (n->in[1].needs_grad)
        st = lunet_tensor_binary(&grads[1], LUNET_BINARY_MUL, g, n->saved[0]);
    return st;
}

RULE(div_backward)
{
    lunet_tensor_t *a = n->saved[0], *b = n->saved[1];
    lunet_status_t st = LUNET_OK;
    if (n->in[0].needs_grad && (st = lunet_tensor_binary(&grads[0], LUNET_BINARY_DIV, g, b)))
        return st;
    if (n->in[1].needs_grad) {
        /* -g * a / (b * b) */
        lunet_tensor_t *t1 = NULL, *t2 = NULL, *bb = NULL;
        if (!(st = lunet_tensor_binary(&t1, LUNET_BINARY_MUL, g, a)) &&
            !(st = lunet_tensor_binary(&bb, LUNET_BINARY_MUL, b, b)) &&
            !(st = lunet_tensor_binary(&t2, LUNET_BINARY_DIV, t1, bb)) &&
            !(st = lunet_tensor_unary_(t2, LUNET_UNARY_NEG))) {
            grads[1] = t2;
            t2 = NULL;
        }
        LUNET_RELEASE(t1, t2, bb);
    }
    return st;
}

/*
 * PyTorch's pow_backward_self and pow_backward_exponent: the base's gradient is 0 where the
 * exponent is 0 (not 0 * inf), the exponent's is 0 where the base is 0 and the exponent >= 0
 * (not 0 * log 0). log(a) of a Python number is taken in the result's dtype (3 ^ t of
 * float64 t: log 3 in double), of a tensor in its own (1.13's self.log(): float32 for ints).
 */
RULE(pow_backward)
{
    lunet_tensor_t *a = n->saved[0], *b = n->saved[1], *y = n->saved[2];
    lunet_tensor_t *one = NULL, *zero = NULL, *bm1 = NULL, *p = NULL, *t = NULL, *mask = NULL;
    lunet_tensor_t *m2 = NULL, *m3 = NULL, *ca = NULL, *la = NULL, *ib = NULL;
    lunet_status_t st = LUNET_OK;
    if ((st = lunet_tensor_scalar(&zero, g->dtype, 0, true)))
        goto done;
    if (n->in[0].needs_grad) {
        /* where(b == 0, 0, g * b * a^(b-1)); a Python True exponent is 1 there (a bool
           tensor's b - 1 fails, as in PyTorch) */
        if (b->wrapped_number && b->dtype == LUNET_DTYPE_BOOL) {
            if ((st = lunet_tensor_convert(&ib, b, LUNET_DTYPE_INT64)))
                goto done;
            ib->wrapped_number = true;
            b = ib;
        }
        if (!(st = lunet_tensor_scalar_int(&one, LUNET_DTYPE_INT64, 1, true)) &&
            !(st = lunet_tensor_binary(&bm1, LUNET_BINARY_SUB, b, one)) &&
            !(st = lunet_tensor_binary(&p, LUNET_BINARY_POW, a, bm1)) &&
            !(st = lunet_tensor_binary_(p, LUNET_BINARY_MUL, b)) &&
            !(st = lunet_tensor_binary_(p, LUNET_BINARY_MUL, g)) &&
            !(st = lunet_tensor_binary(&mask, LUNET_BINARY_EQ, b, zero)))
            st = lunet_tensor_where(&grads[0], mask, zero, p);
        lunet_tensor_release(mask);
        mask = NULL;
        if (st)
            goto done;
    }
    if (n->in[1].needs_grad) {
        /* where(a == 0 & b >= 0, 0, g * y * log(a)) */
        if (!(st = lunet_tensor_convert(&ca, a, a->wrapped_number ? y->dtype : a->dtype)) &&
            !(st = lunet_tensor_unary(&la, LUNET_UNARY_LOG, ca)) &&
            !(st = lunet_tensor_binary(&t, LUNET_BINARY_MUL, y, la)) &&
            !(st = lunet_tensor_binary_(t, LUNET_BINARY_MUL, g)) &&
            !(st = lunet_tensor_binary(&m2, LUNET_BINARY_EQ, a, zero)) &&
            !(st = lunet_tensor_binary(&m3, LUNET_BINARY_GE, b, zero)) &&
            !(st = lunet_tensor_binary(&mask, LUNET_BINARY_MUL, m2, m3)))
            st = lunet_tensor_where(&grads[1], mask, zero, t);
    }
done:
    LUNET_RELEASE(one, zero, bm1, p, t, mask, m2, m3, ca, la, ib);
    return st;
}

/* maximum/minimum: the gradient goes to the larger (smaller) input, split evenly on ties. */
RULE(extreme_backward)
{
    lunet_tensor_t *a = n->saved[0], *b = n->saved[1];
    lunet_binary_op_t win = n->op == LUNET_OP_MAXIMUM ? LUNET_BINARY_GT : LUNET_BINARY_LT;
    lunet_status_t st = LUNET_OK;
    for (int i = 0; i < 2 && !st; i++) {
        if (!n->in[i].needs_grad)
            continue;
        lunet_tensor_t *wins = NULL, *ties = NULL, *h = NULL, *half = NULL;
        lunet_tensor_t *x = i == 0 ? a : b, *y = i == 0 ? b : a;
        if (!(st = lunet_tensor_binary(&wins, win, x, y)) &&
            !(st = lunet_tensor_binary(&ties, LUNET_BINARY_EQ, x, y)) &&
            !(st = lunet_tensor_scalar(&half, g->dtype, 0.5, true)) &&
            !(st = lunet_tensor_binary(&h, LUNET_BINARY_MUL, ties, half)) &&
            !(st = lunet_tensor_binary_(h, LUNET_BINARY_ADD, wins)))
            st = lunet_tensor_binary(&grads[i], LUNET_BINARY_MUL, g, h);
        LUNET_RELEASE(wins, ties, h, half);
    }
    return st;
}

/* floor_divide records a node whose backward fails (PyTorch: grad_fn=<NotImplemented>), so
   that the forward of a tensor requiring grad works and only a backward through it fails. */
RULE(not_implemented_backward)
{
    (void)g;
    (void)grads;
    return lunet_error_set(LUNET_STATUS_RUNTIME,
                           "derivative for aten::floor_divide is not implemented");
}

RULE(neg_backward) { return scaled(&grads[0], g, -1.0); }

RULE(exp_backward) { return lunet_tensor_binary(&grads[0], LUNET_BINARY_MUL, g, n->saved[0]); }

RULE(log_backward) { return lunet_tensor_binary(&grads[0], LUNET_BINARY_DIV, g, n->saved[0]); }

RULE(sqrt_backward)
{
    lunet_tensor_t *two;
    lunet_status_t st = scaled(&two, n->saved[0], 2.0);
    if (st)
        return st;
    st = lunet_tensor_binary(&grads[0], LUNET_BINARY_DIV, g, two);
    lunet_tensor_release(two);
    return st;
}

/* Element-wise rules with a fixed formula run as one loop: dx = f(g, s), s saved. */
typedef enum pointwise_kind { PW_SIGMOID, PW_TANH, PW_RELU, PW_ABS, PW_CLAMP } pointwise_kind_t;

typedef struct pointwise_ctx {
    pointwise_kind_t kind;
    double lo, hi;
} pointwise_ctx_t;

/* One body for float and double (T and its fma); the comments give PyTorch's forms. */
#define POINTWISE_BODY(T, FMA)                                                                     \
    const pointwise_ctx_t *c = vctx;                                                               \
    const T lo = (T)c->lo, hi = (T)c->hi;                                                          \
    if (s[0] == sizeof(T) && s[1] == sizeof(T) && s[2] == sizeof(T) &&                             \
        (c->kind == PW_SIGMOID || c->kind == PW_RELU)) { /* a CNN's: loops that vectorise */       \
        T *restrict r_ = (T *)d[0];                                                                \
        const T *restrict g_ = (const T *)d[1], *restrict y_ = (const T *)d[2];                    \
        if (c->kind == PW_SIGMOID)                                                                 \
            for (int64_t i = 0; i < n; i++)                                                        \
                r_[i] = g_[i] * ((T)1 - y_[i]) * y_[i];                                            \
        else                                                                                       \
            for (int64_t i = 0; i < n; i++) { /* g read always: a select, not a branch */          \
                T gv_ = g_[i];                                                                     \
                r_[i] = y_[i] <= 0 ? (T)0 : gv_;                                                   \
            }                                                                                      \
        return;                                                                                    \
    }                                                                                              \
    for (int64_t i = 0; i < n; i++) {                                                              \
        T gv = *(const T *)(d[1] + i * s[1]), y = *(const T *)(d[2] + i * s[2]);                   \
        T r;                                                                                       \
        switch (c->kind) {                                                                         \
        case PW_SIGMOID: /* PyTorch's order, bit-exact */                                          \
            r = gv * ((T)1 - y) * y;                                                               \
            break;                                                                                 \
        case PW_TANH: /* fused, as PyTorch */                                                      \
            r = gv * FMA(-y, y, (T)1);                                                             \
            break;                                                                                 \
        case PW_RELU: /* NaN output passes g */                                                    \
            r = y <= 0 ? (T)0 : gv;                                                                \
            break;                                                                                 \
        case PW_ABS:                                                                               \
            r = y > 0 ? gv : y < 0 ? -gv : (T)0;                                                   \
            break;                                                                                 \
        default: /* clamp: a NaN bound is an absent one */                                         \
            r = (y >= lo || isnan(c->lo)) && (y <= hi || isnan(c->hi)) ? gv : (T)0;                \
            break;                                                                                 \
        }                                                                                          \
        *(T *)(d[0] + i * s[0]) = r;                                                               \
    }

// g, s, dx all of one float dtype and shape
static void pointwise_f32(char **d, const int64_t *s, int64_t n, void *vctx)
{
    POINTWISE_BODY(float, fmaf)
}
static void pointwise_f64(char **d, const int64_t *s, int64_t n, void *vctx)
{
    POINTWISE_BODY(double, fma)
}
#undef POINTWISE_BODY

static lunet_status_t pointwise(lunet_tensor_t **out, lunet_tensor_t *g, lunet_tensor_t *s,
                                pointwise_ctx_t c)
{
    lunet_tensor_t *gs = NULL, *r = NULL;
    lunet_status_t st;
    if (!lunet_dtype_is_floating(s->dtype))
        return lunet_error_set(LUNET_STATUS_RUNTIME, "backward: integer tensor in a float rule");
    if ((st = lunet_tensor_to(&gs, g, s->dtype)) ||
        (st = lunet_tensor_empty_like(&r, s, s->dtype))) {
        lunet_tensor_release(gs);
        return st;
    }
    lunet_iter_t it;
    lunet_iter_init(&it, r->ndim, r->shape);
    lunet_iter_add(&it, r);
    lunet_iter_add(&it, gs);
    lunet_iter_add(&it, s);
    lunet_iter_run(&it, s->dtype == LUNET_DTYPE_FLOAT32 ? pointwise_f32 : pointwise_f64, &c);
    lunet_tensor_release(gs);
    *out = r;
    return LUNET_OK;
}

RULE(sigmoid_backward)
{
    return pointwise(&grads[0], g, n->saved[0], (pointwise_ctx_t){PW_SIGMOID, 0, 0});
}
RULE(tanh_backward)
{
    return pointwise(&grads[0], g, n->saved[0], (pointwise_ctx_t){PW_TANH, 0, 0});
}
RULE(relu_backward)
{
    return pointwise(&grads[0], g, n->saved[0], (pointwise_ctx_t){PW_RELU, 0, 0});
}
RULE(abs_backward) { return pointwise(&grads[0], g, n->saved[0], (pointwise_ctx_t){PW_ABS, 0, 0}); }
RULE(clamp_backward)
{
    return pointwise(&grads[0], g, n->saved[0],
                     (pointwise_ctx_t){PW_CLAMP, n->args.d[0], n->args.d[1]});
}

RULE(where_backward)
{
    lunet_tensor_t *cond = n->saved[0], *zero;
    lunet_status_t st = lunet_tensor_scalar(&zero, g->dtype, 0, true);
    if (st)
        return st;
    for (int i = 0; i < 2 && !st; i++) {
        if (!n->in[i].needs_grad)
            continue;
        st = lunet_tensor_where(&grads[i], cond, i == 0 ? g : zero, i == 0 ? zero : g);
    }
    lunet_tensor_release(zero);
    return st;
}

/* g of a reduction, re-shaped with the reduced dims as size 1 and expanded to the input. */
static lunet_status_t unreduce(lunet_tensor_t **out, lunet_node_t *n, lunet_tensor_t *g)
{
    const lunet_edge_t *e = &n->in[0];
    int64_t kshape[LUNET_MAX_DIMS];
    for (int d = 0; d < e->ndim; d++)
        kshape[d] = n->args.i[d] ? 1 : e->shape[d];
    lunet_tensor_t *k;
    lunet_status_t st = lunet_tensor_reshape(&k, g, e->ndim, kshape);
    if (st)
        return st;
    st = lunet_tensor_expand(out, k, e->ndim, e->shape);
    lunet_tensor_release(k);
    return st;
}

RULE(sum_backward) { return unreduce(&grads[0], n, g); }

RULE(mean_backward)
{
    int64_t count = 1;
    for (int d = 0; d < n->in[0].ndim; d++)
        if (n->args.i[d])
            count *= n->in[0].shape[d];
    lunet_tensor_t *s;
    lunet_status_t st = scaled(&s, g, 1.0 / (double)count);
    if (st)
        return st;
    st = unreduce(&grads[0], n, s);
    lunet_tensor_release(s);
    return st;
}

RULE(prod_backward)
{
    return lunet_prod_backward(&grads[0], g, n->saved[0], n->saved[1], n->args.i);
}

/* max()/min() without a dim: the gradient split evenly among the elements equal to the
   result, or among the NaNs when the result is NaN (PyTorch's evenly_distribute_backward). */
RULE(max_all_backward)
{
    lunet_tensor_t *x = n->saved[0], *y = n->saved[1], *mask = NULL, *cnt = NULL, *w = NULL;
    double yv = lunet_tensor_get(y, 0);
    lunet_status_t st;
    if (!(st = yv != yv ? lunet_tensor_binary(&mask, LUNET_BINARY_NE, x, x)
                        : lunet_tensor_binary(&mask, LUNET_BINARY_EQ, x, y)) &&
        !(st = lunet_tensor_reduce(&cnt, NULL, LUNET_REDUCE_SUM, mask, 0, NULL, false)) &&
        !(st = lunet_tensor_binary(&w, LUNET_BINARY_DIV, g, cnt)))
        st = lunet_tensor_binary(&grads[0], LUNET_BINARY_MUL, mask, w);
    LUNET_RELEASE(mask, cnt, w);
    return st;
}

RULE(max_dim_backward)
{
    const lunet_edge_t *e = &n->in[0];
    int dim = (int)n->args.i[0];
    lunet_tensor_t *idx = n->saved[0], *gi = NULL, *ii = NULL;
    lunet_status_t st;
    if (e->ndim == 0)
        return lunet_tensor_reshape(&grads[0], g, 0, NULL);
    if (n->args.i[1]) {
        lunet_tensor_retain(g), gi = g;
        lunet_tensor_retain(idx), ii = idx;
    } else if ((st = lunet_tensor_unsqueeze(&gi, g, dim)) ||
               (st = lunet_tensor_unsqueeze(&ii, idx, dim))) {
        lunet_tensor_release(gi);
        return st;
    }
    st = lunet_gather_backward(&grads[0], gi, e->ndim, e->shape, dim, ii);
    LUNET_RELEASE(gi, ii);
    return st;
}

RULE(view_backward) { return lunet_tensor_reshape(&grads[0], g, n->in[0].ndim, n->in[0].shape); }

RULE(permute_backward)
{
    int64_t inv[LUNET_MAX_DIMS];
    for (int k = 0; k < g->ndim; k++)
        inv[n->args.i[k]] = k;
    return lunet_tensor_permute(&grads[0], g, g->ndim, inv);
}

/* narrow/select: the gradient is zero outside the slice the view looked at. */
RULE(slice_backward)
{
    const lunet_edge_t *e = &n->in[0];
    lunet_tensor_t *z, *v;
    lunet_status_t st = lunet_tensor_zeros(&z, g->dtype, e->ndim, e->shape);
    if (st)
        return st;
    if (n->op == LUNET_OP_NARROW)
        st = lunet_tensor_narrow(&v, z, n->args.i[0], n->args.i[1],
                                 g->ndim ? g->shape[n->args.i[0]] : 1);
    else
        st = lunet_tensor_select(&v, z, n->args.i[0], n->args.i[1]);
    if (!st) {
        st = lunet_tensor_copy_(v, g);
        lunet_tensor_release(v);
    }
    if (st) {
        lunet_tensor_release(z);
        return st;
    }
    grads[0] = z;
    return LUNET_OK;
}

RULE(index_select_backward)
{
    const lunet_edge_t *e = &n->in[0];
    if (e->ndim == 0) { /* a 0-d x: its one element was selected */
        lunet_tensor_retain(g);
        grads[0] = g;
        return LUNET_OK;
    }
    int dim = (int)n->args.i[0];
    lunet_tensor_t *gt = NULL, *r = NULL;
    int64_t tshape[LUNET_MAX_DIMS];
    memcpy(tshape, e->shape, sizeof(int64_t) * (size_t)e->ndim);
    tshape[0] = e->shape[dim];
    tshape[dim] = e->shape[0];
    int64_t block = 1;
    for (int d = 1; d < e->ndim; d++)
        block *= tshape[d];
    lunet_status_t st = lunet_tensor_transpose(&gt, g, 0, dim);
    if (!st)
        st = lunet_index_backward(&r, gt, e->ndim, tshape, n->saved[0], block);
    if (!st)
        st = lunet_tensor_transpose(&grads[0], r, 0, dim);
    LUNET_RELEASE(gt, r);
    return st;
}

RULE(gather_backward)
{
    const lunet_edge_t *e = &n->in[0];
    return lunet_gather_backward(&grads[0], g, e->ndim, e->shape, n->args.i[0], n->saved[0]);
}

RULE(index_backward)
{
    const lunet_edge_t *e = &n->in[0];
    return lunet_index_backward(&grads[0], g, e->ndim, e->shape, n->saved[0], n->args.i[0]);
}

/* g @ b^T and a^T @ g */
static lunet_status_t mm_grads(lunet_tensor_t **ga, lunet_tensor_t **gb, lunet_tensor_t *g,
                               lunet_tensor_t *a, lunet_tensor_t *b, double alpha)
{
    lunet_tensor_t *t = NULL, *gs = NULL;
    lunet_status_t st = scaled(&gs, g, alpha);
    if (st)
        return st;
    if (ga && !(st = lunet_tensor_transpose(&t, b, 0, 1)))
        st = lunet_tensor_mm(ga, gs, t);
    lunet_tensor_release(t);
    t = NULL;
    if (!st && gb && !(st = lunet_tensor_transpose(&t, a, 0, 1)))
        st = lunet_tensor_mm(gb, t, gs);
    LUNET_RELEASE(t, gs);
    return st;
}

RULE(mm_backward)
{
    return mm_grads(n->in[0].needs_grad ? &grads[0] : NULL, n->in[1].needs_grad ? &grads[1] : NULL,
                    g, n->saved[0], n->saved[1], 1.0);
}

RULE(addmm_backward)
{
    lunet_status_t st = LUNET_OK;
    if (n->in[0].needs_grad && (st = scaled(&grads[0], g, n->args.d[0])))
        return st;
    return mm_grads(n->in[1].needs_grad ? &grads[1] : NULL, n->in[2].needs_grad ? &grads[2] : NULL,
                    g, n->saved[0], n->saved[1], n->args.d[1]);
}

/* batched: dA = g @ B^T and dB = A^T @ g (the engine sums them over broadcast batch dims) */
RULE(bmm_backward)
{
    lunet_tensor_t *a = n->saved[0], *b = n->saved[1], *t = NULL;
    lunet_status_t st = LUNET_OK;
    for (int i = 0; i < 2 && !st; i++) {
        if (!n->in[i].needs_grad)
            continue;
        if (i == 0 && !(st = lunet_tensor_transpose(&t, b, -1, -2)))
            st = lunet_tensor_matmul(&grads[0], g, t);
        if (i == 1 && !(st = lunet_tensor_transpose(&t, a, -1, -2)))
            st = lunet_tensor_matmul(&grads[1], t, g);
        lunet_tensor_release(t);
        t = NULL;
    }
    return st;
}

/* Conversions, copies and expand pass the gradient through (the engine casts it to the
   input's dtype and sums it over expanded dims). */
RULE(identity_backward)
{
    (void)n;
    lunet_tensor_retain(g);
    grads[0] = g;
    return LUNET_OK;
}

RULE(softmax_backward)
{
    return lunet_tensor_softmax_backward(&grads[0], g, n->saved[0], n->args.i[0]);
}

RULE(log_softmax_backward)
{
    return lunet_tensor_log_softmax_backward(&grads[0], g, n->saved[0], n->args.i[0]);
}

static void loss_options(lunet_loss_options_t *o, lunet_node_t *n, lunet_tensor_t *weight)
{
    lunet_loss_options_init(o);
    o->weight = weight;
    o->ignore_index = n->args.i[0];
    o->reduction = (lunet_reduction_t)n->args.i[1];
    o->label_smoothing = n->args.d[0];
}

RULE(cross_entropy_backward)
{
    lunet_loss_options_t o;
    loss_options(&o, n, n->saved[2]);
    /* saved: x, target, weight, and the forward's per-position (max, log-sum-exp) */
    return lunet_loss_cross_entropy_backward_lse(&grads[0], g, n->saved[0], n->saved[1],
                                                 n->nsaved > 3 ? n->saved[3] : NULL, &o);
}

RULE(nll_loss_backward)
{
    lunet_loss_options_t o;
    loss_options(&o, n, n->saved[2]);
    return lunet_loss_nll_backward(&grads[0], g, n->saved[0], n->saved[1], &o);
}

RULE(mse_loss_backward)
{
    return lunet_loss_mse_backward(n->in[0].needs_grad ? &grads[0] : NULL,
                                   n->in[1].needs_grad ? &grads[1] : NULL, g, n->saved[0],
                                   n->saved[1], (lunet_reduction_t)n->args.i[0]);
}

/* A leaf input's existing .grad, which the linear rule may add into directly (the engine
   then has nothing left to accumulate for that input). */
static lunet_tensor_t *leaf_grad(const lunet_edge_t *e)
{
    return e->needs_grad && e->leaf ? e->leaf->grad : NULL;
}

RULE(linear_backward)
{
    return lunet_linear_backward(n->in[0].needs_grad ? &grads[0] : NULL,
                                 n->in[1].needs_grad ? &grads[1] : NULL,
                                 n->in[2].needs_grad ? &grads[2] : NULL, g, n->saved[0],
                                 n->saved[1], n->saved[2], leaf_grad(&n->in[1]),
                                 leaf_grad(&n->in[2]));
}

RULE(conv2d_backward)
{
    lunet_conv2d_options_t o;
    lunet_conv2d_options_from_args(&o, n->args.i);
    return lunet_nn_conv2d_backward(n->in[0].needs_grad ? &grads[0] : NULL,
                                    n->in[1].needs_grad ? &grads[1] : NULL,
                                    n->in[2].needs_grad ? &grads[2] : NULL, g, n->saved[0],
                                    n->saved[1], &o);
}

RULE(max_pool2d_backward)
{
    return lunet_nn_max_pool2d_backward(&grads[0], g, n->saved[0], n->in[0].ndim, n->in[0].shape,
                                        n->in[0].dtype);
}

RULE(avg_pool2d_backward)
{
    lunet_pool2d_options_t o;
    lunet_pool2d_options_from_args(&o, n->args.i);
    return lunet_nn_avg_pool2d_backward(&grads[0], g, n->in[0].ndim, n->in[0].shape, n->in[0].dtype,
                                        &o);
}

RULE(adaptive_avg_pool2d_backward)
{
    return lunet_nn_adaptive_avg_pool2d_backward(&grads[0], g, n->in[0].ndim, n->in[0].shape,
                                                 n->in[0].dtype);
}

RULE(activation_backward)
{
    return lunet_nn_activation_backward(&grads[0], g, n->saved[0], &n->args);
}

RULE(batch_norm_backward)
{
    return lunet_nn_batch_norm_backward(n->in[0].needs_grad ? &grads[0] : NULL,
                                        n->in[1].needs_grad ? &grads[1] : NULL,
                                        n->in[2].needs_grad ? &grads[2] : NULL, g, n->saved[0],
                                        n->saved[1], n->saved[2], n->args.i[0] != 0);
}

/*
 * One row per lunet_op_t (test_autograd.c checks that every row has a name and a rule):
 * PyTorch's grad_fn name, the rule, and what the node keeps for backward: .saves (flagged
 * inputs and output) and, when the forward passes extra tensors, .nextra; the rule reads
 * them as n->saved[] in that order (autograd.h).
 */
const lunet_op_info_t lunet_op_table[] = {
    [LUNET_OP_ADD] = {"AddBackward0", add_backward, .saves = LUNET_SAVE_NONE},
    [LUNET_OP_SUB] = {"SubBackward0", add_backward, .saves = LUNET_SAVE_NONE},
    [LUNET_OP_MUL] = {"MulBackward0", mul_backward,
                      .saves = LUNET_SAVE_IN0 | LUNET_SAVE_IN1 | LUNET_SAVE_CROSS},
    [LUNET_OP_DIV] = {"DivBackward0", div_backward, .saves = LUNET_SAVE_IN0 | LUNET_SAVE_IN1},
    [LUNET_OP_POW] = {"PowBackward1", pow_backward,
                      .saves = LUNET_SAVE_IN0 | LUNET_SAVE_IN1 | LUNET_SAVE_OUT},
    [LUNET_OP_MAXIMUM] = {"MaximumBackward0", extreme_backward,
                          .saves = LUNET_SAVE_IN0 | LUNET_SAVE_IN1},
    [LUNET_OP_MINIMUM] = {"MinimumBackward0", extreme_backward,
                          .saves = LUNET_SAVE_IN0 | LUNET_SAVE_IN1},
    [LUNET_OP_FLOOR_DIVIDE] = {"NotImplemented", not_implemented_backward,
                               .saves = LUNET_SAVE_NONE},
    [LUNET_OP_NEG] = {"NegBackward0", neg_backward, .saves = LUNET_SAVE_NONE},
    [LUNET_OP_EXP] = {"ExpBackward0", exp_backward, .saves = LUNET_SAVE_OUT},
    [LUNET_OP_LOG] = {"LogBackward0", log_backward, .saves = LUNET_SAVE_IN0},
    [LUNET_OP_SQRT] = {"SqrtBackward0", sqrt_backward, .saves = LUNET_SAVE_OUT},
    [LUNET_OP_ABS] = {"AbsBackward0", abs_backward, .saves = LUNET_SAVE_IN0},
    [LUNET_OP_SIGMOID] = {"SigmoidBackward0", sigmoid_backward, .saves = LUNET_SAVE_OUT},
    [LUNET_OP_TANH] = {"TanhBackward0", tanh_backward, .saves = LUNET_SAVE_OUT},
    [LUNET_OP_RELU] = {"ReluBackward0", relu_backward, .saves = LUNET_SAVE_OUT},
    [LUNET_OP_CLAMP] = {"ClampBackward1", clamp_backward, .saves = LUNET_SAVE_IN0},
    [LUNET_OP_WHERE] = {"WhereBackward0", where_backward, .nextra = 1 /* condition */},
    [LUNET_OP_SUM] = {"SumBackward0", sum_backward, .saves = LUNET_SAVE_NONE},
    [LUNET_OP_MEAN] = {"MeanBackward0", mean_backward, .saves = LUNET_SAVE_NONE},
    [LUNET_OP_PROD] = {"ProdBackward0", prod_backward, .saves = LUNET_SAVE_IN0 | LUNET_SAVE_OUT},
    [LUNET_OP_MAX_ALL] = {"MaxBackward1", max_all_backward,
                          .saves = LUNET_SAVE_IN0 | LUNET_SAVE_OUT},
    [LUNET_OP_MAX_DIM] = {"MaxBackward0", max_dim_backward, .nextra = 1 /* indices */},
    [LUNET_OP_VIEW] = {"ViewBackward0", view_backward, .saves = LUNET_SAVE_NONE},
    [LUNET_OP_PERMUTE] = {"PermuteBackward0", permute_backward, .saves = LUNET_SAVE_NONE},
    [LUNET_OP_EXPAND] = {"ExpandBackward0", identity_backward, .saves = LUNET_SAVE_NONE},
    [LUNET_OP_NARROW] = {"SliceBackward0", slice_backward, .saves = LUNET_SAVE_NONE},
    [LUNET_OP_SELECT] = {"SelectBackward0", slice_backward, .saves = LUNET_SAVE_NONE},
    [LUNET_OP_INDEX_SELECT] = {"IndexSelectBackward0", index_select_backward,
                               .nextra = 1 /* index */},
    [LUNET_OP_GATHER] = {"GatherBackward0", gather_backward, .nextra = 1 /* index */},
    [LUNET_OP_INDEX] = {"IndexBackward0", index_backward, .nextra = 1 /* flat positions */},
    [LUNET_OP_MM] = {"MmBackward0", mm_backward,
                     .saves = LUNET_SAVE_IN0 | LUNET_SAVE_IN1 | LUNET_SAVE_CROSS},
    [LUNET_OP_ADDMM] = {"AddmmBackward0", addmm_backward,
                        .saves = LUNET_SAVE_IN1 | LUNET_SAVE_IN2 | LUNET_SAVE_CROSS},
    [LUNET_OP_BMM] = {"BmmBackward0", bmm_backward,
                      .saves = LUNET_SAVE_IN0 | LUNET_SAVE_IN1 | LUNET_SAVE_CROSS},
    [LUNET_OP_TO] = {"ToCopyBackward0", identity_backward, .saves = LUNET_SAVE_NONE},
    [LUNET_OP_CLONE] = {"CloneBackward0", identity_backward, .saves = LUNET_SAVE_NONE},
    [LUNET_OP_SOFTMAX] = {"SoftmaxBackward0", softmax_backward, .saves = LUNET_SAVE_OUT},
    [LUNET_OP_LOG_SOFTMAX] = {"LogSoftmaxBackward0", log_softmax_backward, .saves = LUNET_SAVE_OUT},
    [LUNET_OP_NLL_LOSS] = {"NllLossBackward0", nll_loss_backward, .saves = LUNET_SAVE_IN0,
                           .nextra = 2 /* target, weight */},
    [LUNET_OP_CROSS_ENTROPY] = {"NllLossBackward0", cross_entropy_backward, .saves = LUNET_SAVE_IN0,
                                .nextra = 3 /* target, weight, (max, lse) */},
    [LUNET_OP_MSE_LOSS] = {"MseLossBackward0", mse_loss_backward,
                           .saves = LUNET_SAVE_IN0 | LUNET_SAVE_IN1},
    [LUNET_OP_LINEAR] = {"AddmmBackward0", linear_backward,
                         .saves = LUNET_SAVE_IN0 | LUNET_SAVE_IN1 | LUNET_SAVE_CROSS,
                         .nextra = 1 /* the output when a ReLU is fused */},
    [LUNET_OP_CONV2D] = {"ConvolutionBackward0", conv2d_backward,
                         .saves = LUNET_SAVE_IN0 | LUNET_SAVE_IN1},
    [LUNET_OP_MAX_POOL2D] = {"MaxPool2DWithIndicesBackward0", max_pool2d_backward,
                             .nextra = 1 /* indices */},
    [LUNET_OP_AVG_POOL2D] = {"AvgPool2DBackward0", avg_pool2d_backward, .saves = LUNET_SAVE_NONE},
    [LUNET_OP_ADAPTIVE_AVG_POOL2D] = {"AdaptiveAvgPool2DBackward0", adaptive_avg_pool2d_backward,
                                      .saves = LUNET_SAVE_NONE},
    /* each kind names its node (args.name: "LeakyReluBackward0", ...) */
    [LUNET_OP_ACTIVATION] = {"ActivationBackward0", activation_backward, .saves = LUNET_SAVE_IN0},
    [LUNET_OP_BATCH_NORM] = {"NativeBatchNormBackward0", batch_norm_backward,
                             .saves = LUNET_SAVE_IN0 | LUNET_SAVE_IN1,
                             .nextra = 1 /* (mean, invstd) */},
};

/* A missing last row makes the count differ; a missing row elsewhere has no rule (test_autograd.c). */
_Static_assert(sizeof lunet_op_table / sizeof lunet_op_table[0] == LUNET_OP_COUNT,
               "one backward rule per op");
