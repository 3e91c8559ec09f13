/*
 * test_autograd.c - every differentiable op checked against central differences in
 * float64 (at several shapes, broadcasting included), and the engine's rules: accumulation,
 * retain_graph, errors, no_grad, detach, version counters.
 */
#include "check.h"

#include "../runtime/autograd.h"

typedef lunet_status_t (*fn_t)(lunet_tensor_t **out, lunet_tensor_t **in);

static double det_value(int64_t i, int salt)
{
    /* deterministic values in (-1, 1), away from 0 */
    double v = sin((double)(i * 7 + salt * 13) * 0.7 + 0.3);
    return v >= 0 ? 0.2 + 0.8 * v : -0.2 + 0.8 * v;
}

static lunet_tensor_t *leaf(int nd, const int64_t *shape, int salt, double shift)
{
    lunet_tensor_t *t;
    CHECK_OK(lunet_tensor_empty(&t, LUNET_DTYPE_FLOAT64, nd, shape));
    double *p = lunet_tensor_data(t);
    for (int64_t i = 0; i < t->numel; i++)
        p[i] = det_value(i, salt) + shift;
    CHECK_OK(lunet_tensor_requires_grad_(t, true));
    return t;
}

/* loss = sum(f(in) * r) with a fixed r of f's shape */
static double eval_loss(fn_t f, lunet_tensor_t **in, lunet_tensor_t **out_keep)
{
    lunet_tensor_t *y, *r, *p, *s;
    CHECK_OK(f(&y, in));
    CHECK_OK(lunet_tensor_empty(&r, y->dtype, y->ndim, y->shape));
    for (int64_t i = 0; i < r->numel; i++)
        ((double *)lunet_tensor_data(r))[i] = det_value(i, 99);
    CHECK_OK(lunet_tensor_binary(&p, LUNET_BINARY_MUL, y, r));
    CHECK_OK(lunet_tensor_reduce(&s, NULL, LUNET_REDUCE_SUM, p, 0, NULL, false));
    double v = lunet_tensor_get(s, 0);
    lunet_tensor_release(y);
    lunet_tensor_release(r);
    lunet_tensor_release(p);
    if (out_keep)
        *out_keep = s;
    else
        lunet_tensor_release(s);
    return v;
}

static void gradcheck(const char *name, fn_t f, int nin, lunet_tensor_t **in)
{
    lunet_tensor_t *loss;
    eval_loss(f, in, &loss);
    CHECK_OK(lunet_tensor_backward(loss, NULL, false));
    lunet_tensor_release(loss);
    bool was = lunet_set_grad_enabled(false);
    const double eps = 1e-6;
    for (int k = 0; k < nin; k++) {
        if (!in[k]->requires_grad)
            continue;
        if (!in[k]->grad)
            fail_msg("%s: input %d got no gradient", name, k);
        double *x = lunet_tensor_data(in[k]);
        for (int64_t j = 0; j < in[k]->numel; j++) {
            double keep = x[j];
            x[j] = keep + eps;
            double lp = eval_loss(f, in, NULL);
            x[j] = keep - eps;
            double lm = eval_loss(f, in, NULL);
            x[j] = keep;
            double num = (lp - lm) / (2 * eps), ana = lunet_tensor_get(in[k]->grad, j);
            if (!(fabs(num - ana) <= 1e-6 * (fabs(num) > 1 ? fabs(num) : 1)))
                fail_msg("%s: d/dinput%d[%lld] numeric %.12g analytic %.12g", name, k, (long long)j,
                         num, ana);
        }
    }
    lunet_set_grad_enabled(was);
    for (int k = 0; k < nin; k++)
        lunet_tensor_release(in[k]);
}

/* MAX/MIN over dim: the values, the indices released */
static lunet_status_t extreme_values(lunet_tensor_t **o, lunet_reduce_op_t op, lunet_tensor_t *x,
                                     int64_t dim, bool keepdim)
{
    lunet_tensor_t *idx;
    lunet_status_t st = lunet_tensor_reduce(o, &idx, op, x, 1, &dim, keepdim);
    if (!st)
        lunet_tensor_release(idx);
    return st;
}

/* ---- the ops under test */
/* one op a line, read as a table */
/* clang-format off */
static lunet_status_t f_add(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_tensor_binary(o, LUNET_BINARY_ADD, in[0], in[1]); }
static lunet_status_t f_add_scaled(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_tensor_add_scaled(o, in[0], in[1], -2.5); }
static lunet_status_t f_sub(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_tensor_binary(o, LUNET_BINARY_SUB, in[0], in[1]); }
static lunet_status_t f_mul(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_tensor_binary(o, LUNET_BINARY_MUL, in[0], in[1]); }
static lunet_status_t f_div(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_tensor_binary(o, LUNET_BINARY_DIV, in[0], in[1]); }
static lunet_status_t f_pow(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_tensor_binary(o, LUNET_BINARY_POW, in[0], in[1]); }
static lunet_status_t f_maximum(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_tensor_binary(o, LUNET_BINARY_MAXIMUM, in[0], in[1]); }
static lunet_status_t f_minimum(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_tensor_binary(o, LUNET_BINARY_MINIMUM, in[0], in[1]); }
static lunet_status_t f_neg(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_tensor_unary(o, LUNET_UNARY_NEG, in[0]); }
static lunet_status_t f_exp(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_tensor_unary(o, LUNET_UNARY_EXP, in[0]); }
static lunet_status_t f_log(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_tensor_unary(o, LUNET_UNARY_LOG, in[0]); }
static lunet_status_t f_sqrt(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_tensor_unary(o, LUNET_UNARY_SQRT, in[0]); }
static lunet_status_t f_abs(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_tensor_unary(o, LUNET_UNARY_ABS, in[0]); }
static lunet_status_t f_sigmoid(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_tensor_unary(o, LUNET_UNARY_SIGMOID, in[0]); }
static lunet_status_t f_tanh(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_tensor_unary(o, LUNET_UNARY_TANH, in[0]); }
static lunet_status_t f_relu(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_tensor_unary(o, LUNET_UNARY_RELU, in[0]); }
static lunet_status_t f_clamp(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_tensor_clamp(o, in[0], -0.5, 0.5); }
static lunet_status_t f_where(lunet_tensor_t **o, lunet_tensor_t **in)
{
    lunet_tensor_t *c;
    lunet_tensor_t *zero;
    lunet_status_t st = lunet_tensor_scalar(&zero, LUNET_DTYPE_FLOAT64, 0, true);
    if (st) return st;
    bool was = lunet_set_grad_enabled(false);
    st = lunet_tensor_binary(&c, LUNET_BINARY_GT, in[0], zero);
    lunet_set_grad_enabled(was);
    lunet_tensor_release(zero);
    if (st) return st;
    st = lunet_tensor_where(o, c, in[0], in[1]);
    lunet_tensor_release(c);
    return st;
}
static lunet_status_t f_sum_all(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_tensor_reduce(o, NULL, LUNET_REDUCE_SUM, in[0], 0, NULL, false); }
static lunet_status_t f_sum_d1(lunet_tensor_t **o, lunet_tensor_t **in) { int64_t d[1] = {1}; return lunet_tensor_reduce(o, NULL, LUNET_REDUCE_SUM, in[0], 1, d, false); }
static lunet_status_t f_sum_d02k(lunet_tensor_t **o, lunet_tensor_t **in) { int64_t d[2] = {0, 2}; return lunet_tensor_reduce(o, NULL, LUNET_REDUCE_SUM, in[0], 2, d, true); }
static lunet_status_t f_mean_d0(lunet_tensor_t **o, lunet_tensor_t **in) { int64_t d[1] = {0}; return lunet_tensor_reduce(o, NULL, LUNET_REDUCE_MEAN, in[0], 1, d, false); }
static lunet_status_t f_mean_all(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_tensor_reduce(o, NULL, LUNET_REDUCE_MEAN, in[0], 0, NULL, false); }
static lunet_status_t f_prod_all(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_tensor_reduce(o, NULL, LUNET_REDUCE_PROD, in[0], 0, NULL, false); }
static lunet_status_t f_prod_d1(lunet_tensor_t **o, lunet_tensor_t **in) { int64_t d[1] = {1}; return lunet_tensor_reduce(o, NULL, LUNET_REDUCE_PROD, in[0], 1, d, true); }
static lunet_status_t f_max_all(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_tensor_reduce(o, NULL, LUNET_REDUCE_MAX, in[0], 0, NULL, false); }
static lunet_status_t f_max_d1(lunet_tensor_t **o, lunet_tensor_t **in) { return extreme_values(o, LUNET_REDUCE_MAX, in[0], 1, false); }
static lunet_status_t f_min_d0k(lunet_tensor_t **o, lunet_tensor_t **in) { return extreme_values(o, LUNET_REDUCE_MIN, in[0], 0, true); }
static lunet_status_t f_view(lunet_tensor_t **o, lunet_tensor_t **in) { int64_t s[2] = {3, -1}; return lunet_tensor_view(o, in[0], 2, s); }
static lunet_status_t f_transpose_reshape(lunet_tensor_t **o, lunet_tensor_t **in)
{
    lunet_tensor_t *t;
    lunet_status_t st = lunet_tensor_transpose(&t, in[0], 0, 1);
    if (st) return st;
    int64_t s[1] = {-1};
    st = lunet_tensor_reshape(o, t, 1, s);
    lunet_tensor_release(t);
    return st;
}
static lunet_status_t f_permute(lunet_tensor_t **o, lunet_tensor_t **in) { int64_t p[3] = {2, 0, 1}; return lunet_tensor_permute(o, in[0], 3, p); }
static lunet_status_t f_expand(lunet_tensor_t **o, lunet_tensor_t **in) { int64_t s[3] = {2, 3, 4}; return lunet_tensor_expand(o, in[0], 3, s); }
static lunet_status_t f_narrow(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_tensor_narrow(o, in[0], 1, 1, 2); }
static lunet_status_t f_select(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_tensor_select(o, in[0], 0, -1); }
static lunet_status_t f_squeeze_unsqueeze(lunet_tensor_t **o, lunet_tensor_t **in)
{
    lunet_tensor_t *u;
    lunet_status_t st = lunet_tensor_unsqueeze(&u, in[0], 1);
    if (st) return st;
    st = lunet_tensor_squeeze(o, u, LUNET_ALL_DIMS);
    lunet_tensor_release(u);
    return st;
}
static lunet_tensor_t *int_tensor(int nd, const int64_t *shape, const int64_t *v)
{
    lunet_tensor_t *t;
    CHECK_OK(lunet_tensor_from_data(&t, LUNET_DTYPE_INT64, nd, shape, v));
    return t;
}
static lunet_status_t f_index_select(lunet_tensor_t **o, lunet_tensor_t **in)
{
    int64_t s[1] = {4}, v[4] = {2, 0, 2, 1};
    lunet_tensor_t *i = int_tensor(1, s, v);
    lunet_status_t st = lunet_tensor_index_select(o, in[0], 1, i);
    lunet_tensor_release(i);
    return st;
}
static lunet_status_t f_gather(lunet_tensor_t **o, lunet_tensor_t **in)
{
    int64_t s[2] = {3, 2}, v[6] = {0, 2, 1, 1, 2, 0};
    lunet_tensor_t *i = int_tensor(2, s, v);
    lunet_status_t st = lunet_tensor_gather(o, in[0], 1, i);
    lunet_tensor_release(i);
    return st;
}
static lunet_status_t f_index(lunet_tensor_t **o, lunet_tensor_t **in)
{
    int64_t s[1] = {4}, r[4] = {0, 1, 2, 0}, c[4] = {1, 2, 0, 1};
    lunet_tensor_t *ir = int_tensor(1, s, r), *ic = int_tensor(1, s, c);
    lunet_tensor_t *idx[2] = {ir, ic};
    lunet_status_t st = lunet_tensor_index(o, in[0], 2, idx);
    lunet_tensor_release(ir);
    lunet_tensor_release(ic);
    return st;
}
static lunet_status_t f_mm(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_tensor_mm(o, in[0], in[1]); }
static lunet_status_t f_matmul(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_tensor_matmul(o, in[0], in[1]); }
static lunet_status_t f_addmm(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_tensor_addmm(o, in[0], in[1], in[2], 0.5, 2.0); }
static lunet_status_t f_clone(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_tensor_clone(o, in[0]); }
static lunet_status_t f_softmax0(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_tensor_softmax(o, in[0], 0); }
static lunet_status_t f_softmax1(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_tensor_softmax(o, in[0], -1); }
static lunet_status_t f_log_softmax(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_tensor_log_softmax(o, in[0], 1); }
static lunet_status_t f_linear(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_nn_linear(o, in[0], in[1], in[2], false); }
static lunet_status_t f_linear_relu(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_nn_linear(o, in[0], in[1], in[2], true); }
static lunet_status_t f_linear_nobias(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_nn_linear(o, in[0], in[1], NULL, false); }
static lunet_status_t f_mse(lunet_tensor_t **o, lunet_tensor_t **in) { return lunet_loss_mse(o, in[0], in[1], LUNET_REDUCTION_MEAN); }
/* clang-format on */

static lunet_tensor_t *ce_target(void)
{
    int64_t s[1] = {3}, v[3] = {1, 0, 3};
    return int_tensor(1, s, v);
}
typedef lunet_status_t (*loss_fn_t)(lunet_tensor_t **, lunet_tensor_t *, lunet_tensor_t *,
                                    const lunet_loss_options_t *);
/* loss(x, ce_target()) under opt (default options when opt is NULL) */
static lunet_status_t with_ce_target(loss_fn_t loss, lunet_tensor_t **o, lunet_tensor_t *x,
                                     const lunet_loss_options_t *opt)
{
    lunet_loss_options_t dflt;
    lunet_loss_options_init(&dflt);
    lunet_tensor_t *y = ce_target();
    lunet_status_t st = loss(o, x, y, opt ? opt : &dflt);
    lunet_tensor_release(y);
    return st;
}
static lunet_status_t f_ce(lunet_tensor_t **o, lunet_tensor_t **in)
{
    return with_ce_target(lunet_loss_cross_entropy, o, in[0], NULL);
}
static lunet_status_t f_ce_smooth_weight(lunet_tensor_t **o, lunet_tensor_t **in)
{
    lunet_loss_options_t opt;
    lunet_loss_options_init(&opt);
    int64_t sw[1] = {4};
    double w[4] = {0.2, 1, 3, 0.5};
    lunet_tensor_t *wt;
    CHECK_OK(lunet_tensor_from_data(&wt, LUNET_DTYPE_FLOAT64, 1, sw, w));
    opt.weight = wt;
    opt.label_smoothing = 0.1;
    opt.reduction = LUNET_REDUCTION_SUM;
    lunet_status_t st = with_ce_target(lunet_loss_cross_entropy, o, in[0], &opt);
    lunet_tensor_release(wt);
    return st;
}
static lunet_status_t f_ce_none(lunet_tensor_t **o, lunet_tensor_t **in)
{
    lunet_loss_options_t opt;
    lunet_loss_options_init(&opt);
    opt.reduction = LUNET_REDUCTION_NONE;
    opt.ignore_index = 0;
    return with_ce_target(lunet_loss_cross_entropy, o, in[0], &opt);
}
static lunet_status_t f_ce_prob(lunet_tensor_t **o, lunet_tensor_t **in)
{
    lunet_loss_options_t opt;
    lunet_loss_options_init(&opt);
    return lunet_loss_cross_entropy(o, in[0], in[1], &opt);
}
static lunet_status_t f_nll(lunet_tensor_t **o, lunet_tensor_t **in)
{
    return with_ce_target(lunet_loss_nll, o, in[0], NULL);
}
/* a two-layer MLP with a loss, composed of several ops */
static lunet_status_t f_mlp(lunet_tensor_t **o, lunet_tensor_t **in)
{
    lunet_tensor_t *h, *z;
    lunet_status_t st = lunet_nn_linear(&h, in[0], in[1], in[2], true);
    if (st)
        return st;
    st = lunet_nn_linear(&z, h, in[3], in[4], false);
    lunet_tensor_release(h);
    if (st)
        return st;
    st = f_ce(o, &z);
    lunet_tensor_release(z);
    return st;
}

/* in-place ops on a non-leaf are recorded: t = x * 2; t += w; t *= w; tanh_; clamp_; log via abs */
static lunet_status_t f_inplace(lunet_tensor_t **o, lunet_tensor_t **in)
{
    lunet_tensor_t *two, *t;
    lunet_status_t st = lunet_tensor_scalar(&two, LUNET_DTYPE_FLOAT64, 2, true);
    if (st)
        return st;
    st = lunet_tensor_binary(&t, LUNET_BINARY_MUL, in[0], two);
    lunet_tensor_release(two);
    if (st)
        return st;
    if ((st = lunet_tensor_binary_(t, LUNET_BINARY_ADD, in[1])) ||
        (st = lunet_tensor_binary_(t, LUNET_BINARY_MUL, in[1])) ||
        (st = lunet_tensor_unary_(t, LUNET_UNARY_TANH)) ||
        (st = lunet_tensor_clamp_(t, -0.9, 0.9)) ||
        (st = lunet_tensor_unary_(t, LUNET_UNARY_ABS)) ||
        (st = lunet_tensor_binary_(t, LUNET_BINARY_DIV, in[1]))) {
        lunet_tensor_release(t);
        return st;
    }
    *o = t;
    return LUNET_OK;
}

/* copy_ into a fresh tensor from one that requires grad: dst takes src's history */
static lunet_status_t f_copy(lunet_tensor_t **o, lunet_tensor_t **in)
{
    lunet_tensor_t *t;
    lunet_status_t st = lunet_tensor_zeros(&t, LUNET_DTYPE_FLOAT64, 2, (const int64_t[]){2, 3});
    if (st)
        return st;
    if ((st = lunet_tensor_copy_(t, in[0]))) {
        lunet_tensor_release(t);
        return st;
    }
    st = lunet_tensor_binary(o, LUNET_BINARY_MUL, t, t);
    lunet_tensor_release(t);
    return st;
}

#define S(...) ((const int64_t[]){__VA_ARGS__})

static void test_inplace_recorded(void **state)
{
    (void)state;
    gradcheck("in-place chain", f_inplace, 2,
              (lunet_tensor_t *[]){leaf(2, S(2, 3), 95, 0), leaf(1, S(3), 96, 1.5)});
    gradcheck("copy_ from a tensor requiring grad", f_copy, 1,
              (lunet_tensor_t *[]){leaf(1, S(3), 97, 0)});
    /* a view of a tensor with history, or a tensor saved for backward, is refused */
    lunet_tensor_t *x = leaf(1, S(4), 98, 0), *y, *v, *one;
    CHECK_OK(lunet_tensor_scalar(&one, LUNET_DTYPE_FLOAT64, 1, true));
    CHECK_OK(lunet_tensor_unary(&y, LUNET_UNARY_EXP, x)); /* exp saves its output */
    CHECK_FAILS(lunet_tensor_binary_(y, LUNET_BINARY_ADD, one), LUNET_STATUS_RUNTIME,
                "shares its memory with another");
    lunet_tensor_release(y);
    CHECK_OK(lunet_tensor_binary(&y, LUNET_BINARY_ADD, x, one));
    CHECK_OK(lunet_tensor_narrow(&v, y, 0, 1, 2));
    CHECK_FAILS(lunet_tensor_binary_(v, LUNET_BINARY_ADD, one), LUNET_STATUS_RUNTIME,
                "shares its memory with another");
    assert_string_equal(lunet_tensor_grad_fn_name(y), "AddBackward0");
    lunet_tensor_release(v);
    /* a leaf requiring grad still refuses, as in PyTorch */
    CHECK_FAILS(lunet_tensor_binary_(x, LUNET_BINARY_ADD, one), LUNET_STATUS_RUNTIME,
                "a leaf Variable that requires grad is being used in an in-place operation.");
    /* a plain tensor that takes in a tensor requiring grad becomes part of the graph */
    lunet_tensor_t *z;
    CHECK_OK(lunet_tensor_zeros(&z, LUNET_DTYPE_FLOAT64, 1, S(4)));
    CHECK_OK(lunet_tensor_binary_(z, LUNET_BINARY_ADD, x));
    assert_true(z->requires_grad);
    assert_string_equal(lunet_tensor_grad_fn_name(z), "AddBackward0");
    lunet_tensor_release(z);
    lunet_tensor_release(y);
    lunet_tensor_release(one);
    lunet_tensor_release(x);
}

static void test_elementwise_grads(void **state)
{
    (void)state;
    gradcheck("add", f_add, 2, (lunet_tensor_t *[]){leaf(2, S(2, 3), 1, 0), leaf(1, S(3), 2, 0)});
    gradcheck("add_scaled", f_add_scaled, 2,
              (lunet_tensor_t *[]){leaf(2, S(2, 1), 1, 0), leaf(2, S(1, 3), 2, 0)});
    gradcheck("sub", f_sub, 2,
              (lunet_tensor_t *[]){leaf(3, S(2, 1, 3), 3, 0), leaf(2, S(4, 1), 4, 0)});
    gradcheck("mul", f_mul, 2,
              (lunet_tensor_t *[]){leaf(2, S(2, 3), 5, 0), leaf(2, S(2, 1), 6, 0)});
    gradcheck("div", f_div, 2, (lunet_tensor_t *[]){leaf(2, S(2, 3), 7, 0), leaf(1, S(3), 8, 3)});
    gradcheck("pow", f_pow, 2, (lunet_tensor_t *[]){leaf(2, S(2, 3), 9, 2), leaf(1, S(3), 10, 0)});
    gradcheck("maximum", f_maximum, 2,
              (lunet_tensor_t *[]){leaf(2, S(2, 3), 11, 0), leaf(2, S(2, 3), 12, 0.05)});
    gradcheck("minimum", f_minimum, 2,
              (lunet_tensor_t *[]){leaf(1, S(5), 13, 0), leaf(1, S(5), 14, 0.05)});
    gradcheck("neg", f_neg, 1, (lunet_tensor_t *[]){leaf(1, S(4), 15, 0)});
    gradcheck("exp", f_exp, 1, (lunet_tensor_t *[]){leaf(2, S(2, 2), 16, 0)});
    gradcheck("log", f_log, 1, (lunet_tensor_t *[]){leaf(1, S(4), 17, 2)});
    gradcheck("sqrt", f_sqrt, 1, (lunet_tensor_t *[]){leaf(1, S(4), 18, 2)});
    gradcheck("abs", f_abs, 1, (lunet_tensor_t *[]){leaf(2, S(3, 2), 19, 0)});
    gradcheck("sigmoid", f_sigmoid, 1, (lunet_tensor_t *[]){leaf(2, S(3, 2), 20, 0)});
    gradcheck("tanh", f_tanh, 1, (lunet_tensor_t *[]){leaf(0, NULL, 21, 0)});
    gradcheck("relu", f_relu, 1, (lunet_tensor_t *[]){leaf(2, S(3, 3), 22, 0)});
    gradcheck("clamp", f_clamp, 1, (lunet_tensor_t *[]){leaf(1, S(7), 23, 0)});
    gradcheck("where", f_where, 2,
              (lunet_tensor_t *[]){leaf(2, S(2, 3), 24, 0), leaf(1, S(3), 25, 0)});
}

static void test_reduction_and_view_grads(void **state)
{
    (void)state;
    gradcheck("sum", f_sum_all, 1, (lunet_tensor_t *[]){leaf(2, S(2, 3), 30, 0)});
    gradcheck("sum dim", f_sum_d1, 1, (lunet_tensor_t *[]){leaf(3, S(2, 3, 2), 31, 0)});
    gradcheck("sum dims keepdim", f_sum_d02k, 1, (lunet_tensor_t *[]){leaf(3, S(2, 3, 2), 32, 0)});
    gradcheck("mean dim", f_mean_d0, 1, (lunet_tensor_t *[]){leaf(2, S(4, 3), 33, 0)});
    gradcheck("mean", f_mean_all, 1, (lunet_tensor_t *[]){leaf(1, S(5), 34, 0)});
    gradcheck("prod", f_prod_all, 1, (lunet_tensor_t *[]){leaf(2, S(2, 3), 28, 0)});
    gradcheck("prod dim keepdim", f_prod_d1, 1, (lunet_tensor_t *[]){leaf(3, S(2, 3, 2), 29, 0)});
    gradcheck("max", f_max_all, 1, (lunet_tensor_t *[]){leaf(2, S(3, 3), 35, 0)});
    gradcheck("max dim", f_max_d1, 1, (lunet_tensor_t *[]){leaf(2, S(3, 4), 36, 0)});
    gradcheck("min dim keepdim", f_min_d0k, 1, (lunet_tensor_t *[]){leaf(2, S(3, 4), 37, 0)});
    gradcheck("view", f_view, 1, (lunet_tensor_t *[]){leaf(2, S(2, 3), 38, 0)});
    gradcheck("transpose+reshape", f_transpose_reshape, 1,
              (lunet_tensor_t *[]){leaf(2, S(2, 3), 39, 0)});
    gradcheck("permute", f_permute, 1, (lunet_tensor_t *[]){leaf(3, S(2, 3, 4), 40, 0)});
    gradcheck("expand", f_expand, 1, (lunet_tensor_t *[]){leaf(2, S(3, 1), 41, 0)});
    gradcheck("narrow", f_narrow, 1, (lunet_tensor_t *[]){leaf(2, S(2, 4), 42, 0)});
    gradcheck("select", f_select, 1, (lunet_tensor_t *[]){leaf(2, S(3, 2), 43, 0)});
    gradcheck("squeeze/unsqueeze", f_squeeze_unsqueeze, 1,
              (lunet_tensor_t *[]){leaf(2, S(2, 3), 44, 0)});
    gradcheck("index_select", f_index_select, 1, (lunet_tensor_t *[]){leaf(2, S(2, 3), 45, 0)});
    gradcheck("gather", f_gather, 1, (lunet_tensor_t *[]){leaf(2, S(3, 3), 46, 0)});
    gradcheck("index", f_index, 1, (lunet_tensor_t *[]){leaf(2, S(3, 3), 47, 0)});
    gradcheck("clone", f_clone, 1, (lunet_tensor_t *[]){leaf(1, S(3), 48, 0)});
}

static void test_matrix_and_loss_grads(void **state)
{
    (void)state;
    gradcheck("mm", f_mm, 2,
              (lunet_tensor_t *[]){leaf(2, S(3, 4), 50, 0), leaf(2, S(4, 2), 51, 0)});
    gradcheck("matmul 2x1", f_matmul, 2,
              (lunet_tensor_t *[]){leaf(2, S(3, 4), 52, 0), leaf(1, S(4), 53, 0)});
    gradcheck("matmul 3x2", f_matmul, 2,
              (lunet_tensor_t *[]){leaf(3, S(2, 3, 4), 54, 0), leaf(2, S(4, 2), 55, 0)});
    gradcheck("matmul batched", f_matmul, 2,
              (lunet_tensor_t *[]){leaf(3, S(2, 3, 4), 87, 0), leaf(3, S(2, 4, 2), 88, 0)});
    gradcheck("matmul batched, broadcast", f_matmul, 2,
              (lunet_tensor_t *[]){leaf(3, S(2, 3, 4), 89, 0), leaf(3, S(1, 4, 2), 93, 0)});
    gradcheck("matmul 1-D @ 3-D", f_matmul, 2,
              (lunet_tensor_t *[]){leaf(1, S(4), 94, 0), leaf(3, S(2, 4, 3), 99, 0)});
    gradcheck("addmm", f_addmm, 3,
              (lunet_tensor_t *[]){leaf(1, S(2), 56, 0), leaf(2, S(3, 4), 57, 0),
                                   leaf(2, S(4, 2), 58, 0)});
    gradcheck("linear", f_linear, 3,
              (lunet_tensor_t *[]){leaf(2, S(5, 4), 60, 0), leaf(2, S(3, 4), 61, 0),
                                   leaf(1, S(3), 62, 0)});
    gradcheck("linear 3-D", f_linear, 3,
              (lunet_tensor_t *[]){leaf(3, S(2, 2, 4), 63, 0), leaf(2, S(3, 4), 64, 0),
                                   leaf(1, S(3), 65, 0)});
    gradcheck("linear+relu", f_linear_relu, 3,
              (lunet_tensor_t *[]){leaf(2, S(5, 4), 66, 0), leaf(2, S(3, 4), 67, 0),
                                   leaf(1, S(3), 68, 0)});
    gradcheck("linear no bias", f_linear_nobias, 2,
              (lunet_tensor_t *[]){leaf(1, S(4), 69, 0), leaf(2, S(3, 4), 70, 0)});
    gradcheck("softmax dim 0", f_softmax0, 1, (lunet_tensor_t *[]){leaf(2, S(3, 4), 71, 0)});
    gradcheck("softmax dim -1", f_softmax1, 1, (lunet_tensor_t *[]){leaf(3, S(2, 2, 3), 72, 0)});
    gradcheck("log_softmax", f_log_softmax, 1, (lunet_tensor_t *[]){leaf(3, S(2, 3, 2), 73, 0)});
    gradcheck("cross_entropy", f_ce, 1, (lunet_tensor_t *[]){leaf(2, S(3, 4), 74, 0)});
    gradcheck("cross_entropy smoothing+weight", f_ce_smooth_weight, 1,
              (lunet_tensor_t *[]){leaf(2, S(3, 4), 75, 0)});
    gradcheck("cross_entropy none+ignore", f_ce_none, 1,
              (lunet_tensor_t *[]){leaf(2, S(3, 4), 76, 0)});
    lunet_tensor_t *p = leaf(2, S(3, 4), 77, 2); /* positive probabilities, no grad needed */
    p->requires_grad = false;
    gradcheck("cross_entropy probs", f_ce_prob, 2,
              (lunet_tensor_t *[]){leaf(2, S(3, 4), 78, 0), p});
    gradcheck("nll", f_nll, 1, (lunet_tensor_t *[]){leaf(2, S(3, 4), 79, 0)});
    gradcheck("mse", f_mse, 2,
              (lunet_tensor_t *[]){leaf(2, S(3, 2), 80, 0), leaf(2, S(3, 2), 81, 0)});
    gradcheck("mlp", f_mlp, 5,
              (lunet_tensor_t *[]){leaf(2, S(3, 5), 82, 0), leaf(2, S(6, 5), 83, 0),
                                   leaf(1, S(6), 84, 0), leaf(2, S(4, 6), 85, 0),
                                   leaf(1, S(4), 86, 0)});
}

static void test_engine_rules(void **state)
{
    (void)state;
    /* every op has its row (designated by the enum: a missing one is all zero) */
    for (int i = 0; i < LUNET_OP_COUNT; i++) {
        const lunet_op_info_t *row = &lunet_op_table[i];
        if (!row->backward || !row->name)
            fail_msg("op %d has no row in lunet_op_table", i);
        /* what the row saves fits in a node */
        int nsaved = row->nextra;
        for (unsigned f = LUNET_SAVE_IN0; f <= LUNET_SAVE_OUT; f <<= 1)
            nsaved += (row->saves & f) != 0;
        if (nsaved > LUNET_OP_MAX_SAVED)
            fail_msg("op %d (%s) saves %d tensors, more than LUNET_OP_MAX_SAVED", i, row->name,
                     nsaved);
        assert_int_equal(row->saves & ~(unsigned)(LUNET_SAVE_IN0 | LUNET_SAVE_IN1 | LUNET_SAVE_IN2 |
                                                  LUNET_SAVE_OUT | LUNET_SAVE_CROSS),
                         0);
    }
    /* broadcast gradients are summed back to each input's shape once, by the engine */
    {
        lunet_tensor_t *x, *y, *z, *t;
        double xv[3] = {1, 2, 3}, yv[2] = {10, 20};
        CHECK_OK(lunet_tensor_from_data(&x, LUNET_DTYPE_FLOAT64, 2, S(1, 3), xv));
        CHECK_OK(lunet_tensor_from_data(&y, LUNET_DTYPE_FLOAT64, 2, S(2, 1), yv));
        CHECK_OK(lunet_tensor_requires_grad_(x, true));
        CHECK_OK(lunet_tensor_requires_grad_(y, true));
        CHECK_OK(lunet_tensor_binary(&z, LUNET_BINARY_MUL, x, y)); /* (2, 3) */
        CHECK_OK(lunet_tensor_reduce(&t, NULL, LUNET_REDUCE_SUM, z, 0, NULL, false));
        CHECK_OK(lunet_tensor_backward(t, NULL, false));
        assert_int_equal(x->grad->ndim, 2);
        assert_int_equal(x->grad->shape[0], 1);
        assert_int_equal(x->grad->shape[1], 3);
        assert_int_equal(y->grad->shape[0], 2);
        assert_int_equal(y->grad->shape[1], 1);
        const double *gx = lunet_tensor_data(x->grad), *gy = lunet_tensor_data(y->grad);
        for (int j = 0; j < 3; j++)
            CHECK_CLOSE(gx[j], 30.0, 0.0); /* y summed over the broadcast rows */
        CHECK_CLOSE(gy[0], 6.0, 0.0);
        CHECK_CLOSE(gy[1], 6.0, 0.0);
        lunet_tensor_release(t);
        lunet_tensor_release(z);
        lunet_tensor_release(x);
        lunet_tensor_release(y);
    }
    /* gradients accumulate: sum(a*a) twice gives 2a then 4a */
    lunet_tensor_t *a, *sq, *s;
    double av[3] = {1, 2, 3};
    CHECK_OK(lunet_tensor_from_data(&a, LUNET_DTYPE_FLOAT64, 1, S(3), av));
    CHECK_OK(lunet_tensor_requires_grad_(a, true));
    for (int round = 1; round <= 2; round++) {
        CHECK_OK(lunet_tensor_binary(&sq, LUNET_BINARY_MUL, a, a));
        CHECK_OK(lunet_tensor_reduce(&s, NULL, LUNET_REDUCE_SUM, sq, 0, NULL, false));
        assert_string_equal(lunet_tensor_grad_fn_name(s), "SumBackward0");
        assert_string_equal(lunet_tensor_grad_fn_name(sq), "MulBackward0");
        CHECK_OK(lunet_tensor_backward(s, NULL, false));
        double w[3] = {2.0 * round, 4.0 * round, 6.0 * round};
        CHECK_TENSOR(a->grad, w, 3, 0);
        /* a second backward through freed saved tensors fails */
        if (round == 1)
            CHECK_FAILS(lunet_tensor_backward(s, NULL, false), LUNET_STATUS_RUNTIME,
                        "Trying to backward through the graph a second time");
        lunet_tensor_release(sq);
        lunet_tensor_release(s);
    }
    /* retain_graph allows a replay */
    CHECK_OK(lunet_tensor_binary(&sq, LUNET_BINARY_MUL, a, a));
    CHECK_OK(lunet_tensor_reduce(&s, NULL, LUNET_REDUCE_SUM, sq, 0, NULL, false));
    CHECK_OK(lunet_tensor_backward(s, NULL, true));
    CHECK_OK(lunet_tensor_backward(s, NULL, false));
    double w6[3] = {8, 16, 24};
    CHECK_TENSOR(a->grad, w6, 3, 0);
    lunet_tensor_release(s);
    /* non-scalar output without a gradient; vector-Jacobian product with one */
    CHECK_FAILS(lunet_tensor_backward(sq, NULL, false), LUNET_STATUS_RUNTIME,
                "grad can be implicitly created only for scalar outputs");
    lunet_tensor_t *g4;
    CHECK_OK(lunet_tensor_zeros(&g4, LUNET_DTYPE_FLOAT64, 1, S(4)));
    CHECK_FAILS(lunet_tensor_backward(sq, g4, false), LUNET_STATUS_RUNTIME,
                "Mismatch in shape: grad_output[0] has a shape of torch.Size([4]) and output[0] "
                "has a shape of torch.Size([3]).");
    lunet_tensor_release(g4);
    lunet_tensor_release(sq);
    /* in-place on a leaf that requires grad */
    CHECK_FAILS(lunet_tensor_fill_(a, 0), LUNET_STATUS_RUNTIME,
                "a leaf Variable that requires grad is being used in an in-place operation.");
    /* ... allowed under no_grad, and no_grad records nothing */
    bool was = lunet_set_grad_enabled(false);
    CHECK_OK(lunet_tensor_binary(&sq, LUNET_BINARY_MUL, a, a));
    assert_false(sq->requires_grad);
    assert_null(sq->grad_fn);
    lunet_tensor_release(sq);
    lunet_set_grad_enabled(was);
    /* integer tensors cannot require grad; results without history cannot backward */
    lunet_tensor_t *li;
    CHECK_OK(lunet_tensor_zeros(&li, LUNET_DTYPE_INT64, 1, S(2)));
    CHECK_FAILS(lunet_tensor_requires_grad_(li, true), LUNET_STATUS_RUNTIME,
                "Only Tensors of floating point and complex dtype can require gradients");
    lunet_tensor_release(li);
    lunet_tensor_t *d;
    CHECK_OK(lunet_tensor_detach(&d, a));
    assert_false(d->requires_grad);
    CHECK_FAILS(lunet_tensor_backward(d, NULL, false), LUNET_STATUS_RUNTIME,
                "element 0 of tensors does not require grad and does not have a grad_fn");
    /* detach shares storage */
    CHECK_OK(lunet_tensor_fill_(d, 5));
    CHECK_CLOSE(lunet_tensor_get(a, 0), 5, 0);
    lunet_tensor_release(d);
    /* modifying a saved tensor in place is caught at backward */
    lunet_tensor_t *b, *y, *ys;
    CHECK_OK(lunet_tensor_unary(&y, LUNET_UNARY_SIGMOID, a));
    CHECK_OK(lunet_tensor_reduce(&ys, NULL, LUNET_REDUCE_SUM, y, 0, NULL, false));
    was = lunet_set_grad_enabled(false);
    CHECK_OK(lunet_tensor_fill_(y, 1));
    lunet_set_grad_enabled(was);
    CHECK_FAILS(lunet_tensor_backward(ys, NULL, false), LUNET_STATUS_RUNTIME,
                "one of the variables needed for gradient computation has been modified by an "
                "inplace operation: [torch.DoubleTensor [3]], which is output 0 of "
                "SigmoidBackward0, is at version 1; expected version 0 instead.");
    lunet_tensor_release(ys);
    lunet_tensor_release(y);
    /* Linear adds its weight and bias gradients straight into existing .grad tensors:
       a second backward must give exactly twice the first */
    {
        lunet_tensor_t *xin = leaf(2, S(5, 4), 90, 0), *wl = leaf(2, S(3, 4), 91, 0),
                       *bias = leaf(1, S(3), 92, 0), *out, *total;
        xin->requires_grad = false;
        double first_w[12], first_b[3];
        for (int round = 0; round < 2; round++) {
            CHECK_OK(lunet_nn_linear(&out, xin, wl, bias, true));
            CHECK_OK(lunet_tensor_reduce(&total, NULL, LUNET_REDUCE_SUM, out, 0, NULL, false));
            CHECK_OK(lunet_tensor_backward(total, NULL, false));
            for (int i = 0; i < 12; i++) {
                if (round == 0)
                    first_w[i] = lunet_tensor_get(wl->grad, i);
                else
                    CHECK_CLOSE(lunet_tensor_get(wl->grad, i), 2 * first_w[i], 1e-15);
            }
            for (int i = 0; i < 3; i++) {
                if (round == 0)
                    first_b[i] = lunet_tensor_get(bias->grad, i);
                else
                    CHECK_CLOSE(lunet_tensor_get(bias->grad, i), 2 * first_b[i], 1e-15);
            }
            lunet_tensor_release(out);
            lunet_tensor_release(total);
        }
        lunet_tensor_release(xin);
        lunet_tensor_release(wl);
        lunet_tensor_release(bias);
    }
    /* broadcast operand: w (3) against (2, 3) gets [2, 2, 2] */
    lunet_tensor_t *x23, *w3, *prod;
    CHECK_OK(lunet_tensor_full(&x23, LUNET_DTYPE_FLOAT32, 2, S(2, 3), 1));
    CHECK_OK(lunet_tensor_full(&w3, LUNET_DTYPE_FLOAT32, 1, S(3), 1));
    CHECK_OK(lunet_tensor_requires_grad_(w3, true));
    CHECK_OK(lunet_tensor_binary(&b, LUNET_BINARY_MUL, x23, w3));
    CHECK_OK(lunet_tensor_reduce(&prod, NULL, LUNET_REDUCE_SUM, b, 0, NULL, false));
    CHECK_OK(lunet_tensor_backward(prod, NULL, false));
    double w2[3] = {2, 2, 2};
    CHECK_TENSOR(w3->grad, w2, 3, 0);
    lunet_tensor_release(prod);
    lunet_tensor_release(b);
    lunet_tensor_release(w3);
    lunet_tensor_release(x23);
    lunet_tensor_release(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_elementwise_grads),
        cmocka_unit_test(test_reduction_and_view_grads),
        cmocka_unit_test(test_matrix_and_loss_grads),
        cmocka_unit_test(test_engine_rules),
        cmocka_unit_test(test_inplace_recorded),
    };
    return cmocka_run_group_tests_name("autograd", tests, NULL, NULL);
}
