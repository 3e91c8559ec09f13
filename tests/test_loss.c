/*
 * test_loss.c - softmax, log_softmax, cross_entropy, nll_loss, mse_loss against PyTorch 1.13
 * goldens (tests/fixtures/gen_losses.py writes tests/fixtures/loss_golden.h): forward values,
 * gradients w.r.t. the input (fused lse path and recomputing path), CE == NLL(log_softmax)
 * bit for bit, grad_fn names, and every error text of docs/pytorch-parity.md §1-§3.
 */
#include "check.h"

#include <stdlib.h>

#include "fixtures/loss_golden.h"

/* docs/pytorch-parity.md §0.3: float32 1e-6 relative (1e-5 for long sums), float64 1e-12 */
#define TOL32 1e-6
#define TOL64 1e-12

static lunet_dtype_t dt_of(int d) { return d ? LUNET_DTYPE_FLOAT64 : LUNET_DTYPE_FLOAT32; }

/* A 1-d tensor of the n doubles v. */
static lunet_tensor_t *mk1(lunet_dtype_t dt, int64_t n, const double *v)
{
    return tensor_of(dt, 1, &n, v);
}

static bool shape_is(const lunet_tensor_t *t, int ndim, const int64_t *shape)
{
    if (t->ndim != ndim)
        return false;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != shape[i])
            return false;
    return true;
}

/* Like CHECK_TENSOR, naming the golden case and the element on a mismatch. */
static void expect_values(const char *name, const char *what, lunet_tensor_t *t, const double *want,
                          int64_t n, double tol)
{
    if (t->numel != n)
        fail_msg("%s %s: numel %lld, expected %lld", name, what, (long long)t->numel, (long long)n);
    for (int64_t i = 0; i < n; i++) {
        double a = lunet_tensor_get(t, i), b = want[i];
        if (isnan(a) && isnan(b))
            continue;
        if (isinf(b) && a == b)
            continue;
        double scale = fabs(b) > 1 ? fabs(b) : 1;
        if (!(fabs(a - b) <= tol * scale))
            fail_msg("%s %s[%lld]: got %.17g, expected %.17g", name, what, (long long)i, a, b);
    }
}

static void golden_inputs(const loss_golden_t *c, lunet_tensor_t **x, lunet_tensor_t **t,
                          lunet_tensor_t **w, lunet_loss_options_t *o)
{
    lunet_dtype_t dt = dt_of(c->dtype);
    *x = tensor_of(dt, c->ndim, c->shape, c->x);
    lunet_dtype_t tdt = c->prob || c->kind == 2 ? dt
                        : c->tu8                ? LUNET_DTYPE_UINT8
                                                : LUNET_DTYPE_INT64;
    *t = tensor_of(tdt, c->tndim, c->tshape, c->target);
    *w = c->weight ? mk1(dt, c->shape[c->ndim == 1 ? 0 : 1], c->weight) : NULL;
    lunet_loss_options_init(o);
    o->weight = *w;
    o->ignore_index = c->ignore_index;
    o->reduction = (lunet_reduction_t)c->reduction;
    o->label_smoothing = c->eps;
}

static void test_loss_goldens(void **state)
{
    (void)state;
    for (int k = 0; k < LOSS_GOLDEN_COUNT; k++) {
        const loss_golden_t *c = &loss_goldens[k];
        double tol = c->dtype ? TOL64 : TOL32;
        lunet_tensor_t *x, *t, *w, *out = NULL, *lse = NULL, *g, *dx = NULL, *dx2 = NULL;
        lunet_loss_options_t o;
        golden_inputs(c, &x, &t, &w, &o);
        g = tensor_of(dt_of(c->dtype), c->ondim, c->oshape, c->g);
        if (c->kind == 0) {
            CHECK_OK(lunet_loss_cross_entropy_lse(&out, &lse, x, t, &o));
            CHECK_OK(lunet_loss_cross_entropy_backward_lse(&dx, g, x, t, lse, &o));
            CHECK_OK(lunet_loss_cross_entropy_backward(&dx2, g, x, t, &o));
        } else if (c->kind == 1) {
            CHECK_OK(lunet_loss_nll(&out, x, t, &o));
            CHECK_OK(lunet_loss_nll_backward(&dx, g, x, t, &o));
        } else {
            CHECK_OK(lunet_loss_mse(&out, x, t, o.reduction));
            CHECK_OK(lunet_loss_mse_backward(&dx, NULL, g, x, t, o.reduction));
        }
        if (out->dtype != x->dtype || !shape_is(out, c->ondim, c->oshape))
            fail_msg("%s: output dtype or shape differs", c->name);
        expect_values(c->name, "out", out, c->out, c->onumel, tol);
        if (!shape_is(dx, x->ndim, x->shape) || dx->dtype != x->dtype)
            fail_msg("%s: gradient dtype or shape differs", c->name);
        expect_values(c->name, "grad", dx, c->grad, x->numel, tol);
        if (dx2)
            expect_values(c->name, "grad (no lse)", dx2, c->grad, x->numel, tol);
        lunet_tensor_release(out);
        lunet_tensor_release(lse);
        lunet_tensor_release(dx);
        lunet_tensor_release(dx2);

        /* the same through autograd: grad_fn name and x.grad after backward(g) */
        CHECK_OK(lunet_tensor_requires_grad_(x, true));
        if (c->kind == 0)
            CHECK_OK(lunet_loss_cross_entropy(&out, x, t, &o));
        else if (c->kind == 1)
            CHECK_OK(lunet_loss_nll(&out, x, t, &o));
        else
            CHECK_OK(lunet_loss_mse(&out, x, t, o.reduction));
        const char *gf = lunet_tensor_grad_fn_name(out);
        if (!gf || strcmp(gf, c->grad_fn) != 0)
            fail_msg("%s: grad_fn %s, expected %s", c->name, gf ? gf : "(none)", c->grad_fn);
        CHECK_OK(lunet_tensor_backward(out, g, false));
        if (!x->grad)
            fail_msg("%s: no gradient reached x", c->name);
        expect_values(c->name, "autograd grad", x->grad, c->grad, x->numel, tol);
        lunet_tensor_release(out);
        lunet_tensor_release(g);
        lunet_tensor_release(x);
        lunet_tensor_release(t);
        lunet_tensor_release(w);
    }
}

/* cross_entropy == nll_loss(log_softmax(x, class_dim)) bit for bit (index targets, eps 0). */
static void test_ce_equals_nll_of_log_softmax(void **state)
{
    (void)state;
    int checked = 0;
    for (int k = 0; k < LOSS_GOLDEN_COUNT; k++) {
        const loss_golden_t *c = &loss_goldens[k];
        if (c->kind != 0 || c->prob || c->eps > 0 || c->ndim == 0)
            continue;
        lunet_tensor_t *x, *t, *w, *ce, *lp, *nll;
        lunet_loss_options_t o;
        golden_inputs(c, &x, &t, &w, &o);
        CHECK_OK(lunet_loss_cross_entropy(&ce, x, t, &o));
        CHECK_OK(lunet_tensor_log_softmax(&lp, x, c->ndim == 1 ? 0 : 1));
        CHECK_OK(lunet_loss_nll(&nll, lp, t, &o));
        assert_int_equal(ce->numel, nll->numel);
        if (ce->numel && memcmp(lunet_tensor_data(ce), lunet_tensor_data(nll),
                                (size_t)ce->numel * lunet_dtype_size(ce->dtype)) != 0)
            fail_msg("%s: CE and NLL(log_softmax) differ in bits", c->name);
        checked++;
        lunet_tensor_release(ce);
        lunet_tensor_release(lp);
        lunet_tensor_release(nll);
        lunet_tensor_release(x);
        lunet_tensor_release(t);
        lunet_tensor_release(w);
    }
    assert_true(checked > 50);
}

static void test_softmax_goldens(void **state)
{
    (void)state;
    for (int k = 0; k < SOFTMAX_GOLDEN_COUNT; k++) {
        const softmax_golden_t *c = &softmax_goldens[k];
        double tol = c->dtype ? TOL64 : TOL32;
        lunet_dtype_t dt = dt_of(c->dtype);
        lunet_tensor_t *x = tensor_of(dt, c->ndim, c->shape, c->x);
        lunet_tensor_t *g = tensor_of(dt, c->ndim, c->shape, c->g), *y, *dx;
        if (c->log) {
            CHECK_OK(lunet_tensor_log_softmax(&y, x, c->dim));
            CHECK_OK(lunet_tensor_log_softmax_backward(&dx, g, y, c->dim));
        } else {
            CHECK_OK(lunet_tensor_softmax(&y, x, c->dim));
            CHECK_OK(lunet_tensor_softmax_backward(&dx, g, y, c->dim));
        }
        if (y->dtype != dt || !shape_is(y, c->ndim, c->shape))
            fail_msg("%s: output dtype or shape differs", c->name);
        expect_values(c->name, "out", y, c->out, c->numel, tol);
        expect_values(c->name, "grad", dx, c->grad, c->numel, tol);
        lunet_tensor_release(x);
        lunet_tensor_release(g);
        lunet_tensor_release(y);
        lunet_tensor_release(dx);
    }
}

/* The seed facts of docs/pytorch-parity.md §4, spelled out (they are also among the goldens). */
static void test_seed_values(void **state)
{
    (void)state;
    const double a[12] = {1.5, 1.9, 2.1, 5.6, 6.1, 4.9, 3.5, 3.9, 1.2, 9.8, 9.0, 7.8};
    const double ya[4] = {1, 0, 1, 2};
    int64_t sa[2] = {4, 3};
    lunet_tensor_t *x = tensor_of(LUNET_DTYPE_FLOAT32, 2, sa, a),
                   *y = mk1(LUNET_DTYPE_INT64, 4, ya);
    lunet_loss_options_t o;
    lunet_loss_options_init(&o);
    lunet_tensor_t *l;
    CHECK_OK(lunet_loss_cross_entropy(&l, x, y, &o));
    CHECK_CLOSE(lunet_tensor_get(l, 0), 1.3051495552062988, TOL32);
    lunet_tensor_release(l);
    lunet_tensor_release(x);
    lunet_tensor_release(y);

    const double d[15] = {0.093,   0.1939, -1.0649, 0.4476,  -2.0769, -1.8024, 0.3696, 0.7796,
                          -1.0346, 0.473,  0.5593,  -2.5067, -2.1275, 0.5548,  -1.6639};
    const double yd[3] = {1, 2, 3};
    int64_t sd[2] = {3, 5};
    x = tensor_of(LUNET_DTYPE_FLOAT64, 2, sd, d);
    y = mk1(LUNET_DTYPE_INT64, 3, yd);
    CHECK_OK(lunet_loss_cross_entropy(&l, x, y, &o));
    CHECK_CLOSE(lunet_tensor_get(l, 0), 1.0155949508195155, TOL64);
    lunet_tensor_release(l);
    lunet_tensor_release(x);
    lunet_tensor_release(y);

    const double s[6] = {0.5, 0.8, 1.0, 1.2, 1.5, 1.6};
    const double s1[6] = {0.25008875131607056, 0.337584525346756,  0.4123266637325287,
                          0.2603025436401367,  0.3513716757297516, 0.3883257806301117};
    int64_t ss[2] = {2, 3};
    x = tensor_of(LUNET_DTYPE_FLOAT32, 2, ss, s);
    CHECK_OK(lunet_tensor_softmax(&l, x, 1));
    CHECK_TENSOR(l, s1, 6, TOL32);
    lunet_tensor_release(l);
    lunet_tensor_release(x);
}

/* grad_fn names of docs/pytorch-parity.md §2.5 and §3 (needs the autograd core). */
static void test_grad_fn_names(void **state)
{
    (void)state;
    const double xv[6] = {1.0, 2.0, 0.5, 0.1, 0.2, 3.0}, yv[2] = {1, 2};
    const double pv[6] = {0.2, 0.3, 0.5, 0.1, 0.1, 0.8};
    int64_t s2[2] = {2, 3};
    lunet_tensor_t *x = tensor_of(LUNET_DTYPE_FLOAT32, 2, s2, xv),
                   *y = mk1(LUNET_DTYPE_INT64, 2, yv);
    lunet_tensor_t *p = tensor_of(LUNET_DTYPE_FLOAT32, 2, s2, pv), *l;
    CHECK_OK(lunet_tensor_requires_grad_(x, true));
    lunet_loss_options_t o;
    lunet_loss_options_init(&o);
    struct {
        lunet_tensor_t *t;
        double eps;
        lunet_reduction_t red;
        const char *name;
    } cases[] = {
        {y, 0, LUNET_REDUCTION_MEAN, "NllLossBackward0"},
        {y, 0.1, LUNET_REDUCTION_MEAN, "AddBackward0"},
        {p, 0, LUNET_REDUCTION_MEAN, "DivBackward1"},
        {p, 0, LUNET_REDUCTION_SUM, "NegBackward0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        o.label_smoothing = cases[i].eps;
        o.reduction = cases[i].red;
        CHECK_OK(lunet_loss_cross_entropy(&l, x, cases[i].t, &o));
        assert_non_null(lunet_tensor_grad_fn_name(l));
        assert_string_equal(lunet_tensor_grad_fn_name(l), cases[i].name);
        lunet_tensor_release(l);
    }
    lunet_loss_options_init(&o);
    CHECK_OK(lunet_loss_nll(&l, x, y, &o));
    assert_string_equal(lunet_tensor_grad_fn_name(l), "NllLossBackward0");
    lunet_tensor_release(l);
    CHECK_OK(lunet_tensor_softmax(&l, x, 1));
    assert_string_equal(lunet_tensor_grad_fn_name(l), "SoftmaxBackward0");
    lunet_tensor_release(l);
    CHECK_OK(lunet_tensor_log_softmax(&l, x, 1));
    assert_string_equal(lunet_tensor_grad_fn_name(l), "LogSoftmaxBackward0");
    lunet_tensor_release(l);
    CHECK_OK(lunet_loss_mse(&l, x, p, LUNET_REDUCTION_MEAN));
    assert_string_equal(lunet_tensor_grad_fn_name(l), "MseLossBackward0");
    lunet_tensor_release(l);
    bool prev = lunet_set_grad_enabled(false);
    CHECK_OK(lunet_loss_cross_entropy(&l, x, y, &o));
    assert_null(lunet_tensor_grad_fn_name(l));
    lunet_tensor_release(l);
    lunet_set_grad_enabled(prev);
    lunet_tensor_release(x);
    lunet_tensor_release(y);
    lunet_tensor_release(p);
}

/* ---------------------------------------------------------------- errors -------------- */

static const double X43[12] = {1.0, 2.0, 0.5, 0.1, 0.2, 3.0, 2.0, -1.0, 0.0, 0.3, 0.3, 0.3};

static lunet_status_t ce(lunet_tensor_t *x, lunet_tensor_t *t, const lunet_loss_options_t *o)
{
    lunet_tensor_t *l = NULL;
    lunet_status_t st = lunet_loss_cross_entropy(&l, x, t, o);
    lunet_tensor_release(l);
    return st;
}

static lunet_status_t nll(lunet_tensor_t *x, lunet_tensor_t *t, const lunet_loss_options_t *o)
{
    lunet_tensor_t *l = NULL;
    lunet_status_t st = lunet_loss_nll(&l, x, t, o);
    lunet_tensor_release(l);
    return st;
}

static void test_cross_entropy_errors(void **state)
{
    (void)state;
    int64_t s43[2] = {4, 3};
    lunet_tensor_t *x = tensor_of(LUNET_DTYPE_FLOAT32, 2, s43, X43);
    lunet_loss_options_t o;
    lunet_loss_options_init(&o);
    const double bad[4] = {1, 2, 3, 1}, neg[4] = {1, 2, -1, 1}, ok[4] = {1, 2, 0, 1};
    const double five[4] = {5, 1, 1, 1};
    lunet_tensor_t *t;

    t = mk1(LUNET_DTYPE_INT64, 4, bad);
    CHECK_FAILS(ce(x, t, &o), LUNET_STATUS_INDEX, "Target 3 is out of bounds.");
    o.reduction = LUNET_REDUCTION_NONE; /* checked whatever the reduction */
    CHECK_FAILS(ce(x, t, &o), LUNET_STATUS_INDEX, "Target 3 is out of bounds.");
    lunet_loss_options_init(&o);
    lunet_tensor_release(t);
    t = mk1(LUNET_DTYPE_INT64, 4, neg);
    CHECK_FAILS(ce(x, t, &o), LUNET_STATUS_INDEX, "Target -1 is out of bounds.");
    lunet_tensor_release(t);
    t = mk1(LUNET_DTYPE_INT64, 4, five);
    o.ignore_index = 5; /* an ignored out-of-range target is fine */
    CHECK_OK(ce(x, t, &o));
    lunet_loss_options_init(&o);
    lunet_tensor_release(t);

    t = mk1(LUNET_DTYPE_INT64, 3, ok);
    CHECK_FAILS(ce(x, t, &o), LUNET_STATUS_VALUE,
                "Expected input batch_size (4) to match target batch_size (3).");
    lunet_tensor_release(t);
    t = mk1(LUNET_DTYPE_FLOAT32, 4, ok);
    CHECK_FAILS(ce(x, t, &o), LUNET_STATUS_RUNTIME, "expected scalar type Long but found Float");
    lunet_tensor_release(t);
    t = mk1(LUNET_DTYPE_BOOL, 4, ok);
    CHECK_FAILS(ce(x, t, &o), LUNET_STATUS_RUNTIME, "expected scalar type Long but found Bool");
    lunet_tensor_release(t);

    double pv[12];
    for (int i = 0; i < 12; i++)
        pv[i] = 1.0 / 3;
    t = tensor_of(LUNET_DTYPE_INT64, 2, s43, pv);
    CHECK_FAILS(ce(x, t, &o), LUNET_STATUS_RUNTIME,
                "Expected floating point type for target with class probabilities, got Long");
    lunet_tensor_release(t);
    t = tensor_of(LUNET_DTYPE_FLOAT32, 2, s43, pv);
    o.ignore_index = 1;
    CHECK_FAILS(ce(x, t, &o), LUNET_STATUS_RUNTIME,
                "ignore_index is not supported for floating point target");
    lunet_loss_options_init(&o);
    o.label_smoothing = 1.5;
    CHECK_FAILS(ce(x, t, &o), LUNET_STATUS_RUNTIME,
                "label_smoothing must be between 0.0 and 1.0. Got: 1.5");
    lunet_loss_options_init(&o);
    const double ones4[4] = {1, 1, 1, 1};
    lunet_tensor_t *w4 = mk1(LUNET_DTYPE_FLOAT32, 4, ones4);
    o.weight = w4;
    CHECK_FAILS(ce(x, t, &o), LUNET_STATUS_RUNTIME,
                "cross_entropy: weight tensor should be defined either for all 3 classes or no "
                "classes but got weight tensor of shape: [4]");
    lunet_tensor_release(t);

    t = mk1(LUNET_DTYPE_INT64, 4, ok);
    CHECK_FAILS(ce(x, t, &o), LUNET_STATUS_RUNTIME,
                "weight tensor should be defined either for all 3 classes or no classes but got "
                "weight tensor of shape: [4]");
    int64_t s13[2] = {1, 3};
    lunet_tensor_t *w13 = tensor_of(LUNET_DTYPE_FLOAT32, 2, s13, ones4);
    o.weight = w13;
    CHECK_FAILS(ce(x, t, &o), LUNET_STATUS_RUNTIME,
                "weight tensor should be defined either for all 3 classes or no classes but got "
                "weight tensor of shape: [1, 3]");
    lunet_tensor_t *w64 = mk1(LUNET_DTYPE_FLOAT64, 3, ones4);
    o.weight = w64;
    CHECK_FAILS(ce(x, t, &o), LUNET_STATUS_RUNTIME, "expected scalar type Float but found Double");
    lunet_loss_options_init(&o);
    o.label_smoothing = 1.5;
    CHECK_FAILS(ce(x, t, &o), LUNET_STATUS_RUNTIME,
                "label_smoothing must be between 0.0 and 1.0. Got: 1.5");
    lunet_loss_options_init(&o);
    o.reduction = (lunet_reduction_t)7;
    CHECK_FAILS(ce(x, t, &o), LUNET_STATUS_VALUE, "is not a valid value for reduction");
    lunet_loss_options_init(&o);

    lunet_tensor_t *xl = tensor_of(LUNET_DTYPE_INT64, 2, s43, X43);
    CHECK_FAILS(ce(xl, t, &o), LUNET_STATUS_RUNTIME,
                "\"log_softmax_lastdim_kernel_impl\" not implemented for 'Long'");
    lunet_tensor_release(xl);
    lunet_tensor_release(t);

    /* (C) input with a (1) target; 0-d input */
    lunet_tensor_t *x3 = mk1(LUNET_DTYPE_FLOAT32, 3, X43);
    t = mk1(LUNET_DTYPE_INT64, 1, ok);
    CHECK_FAILS(ce(x3, t, &o), LUNET_STATUS_RUNTIME, "size mismatch (got input: [3], target: [1])");
    lunet_tensor_release(t);
    lunet_tensor_release(x3);
    lunet_tensor_t *x0 = tensor_of(LUNET_DTYPE_FLOAT32, 0, NULL, X43);
    t = tensor_of(LUNET_DTYPE_INT64, 0, NULL, ok);
    CHECK_FAILS(ce(x0, t, &o), LUNET_STATUS_RUNTIME,
                "Expected floating point type for target with class probabilities, got Long");
    lunet_tensor_release(t);
    lunet_tensor_release(x0);

    /* (N, C, d...) inputs */
    double z[48] = {0};
    int64_t s234[3] = {2, 3, 4}, s23[2] = {2, 3}, s241[3] = {2, 4, 1};
    int64_t s2322[4] = {2, 3, 2, 2}, s212[3] = {2, 1, 2}, s24[2] = {2, 4};
    lunet_tensor_t *xn = tensor_of(LUNET_DTYPE_FLOAT32, 3, s234, z);
    t = tensor_of(LUNET_DTYPE_INT64, 2, s23, z);
    CHECK_FAILS(ce(xn, t, &o), LUNET_STATUS_RUNTIME, "Expected target size [2, 4], got [2, 3]");
    lunet_tensor_release(t);
    t = tensor_of(LUNET_DTYPE_INT64, 3, s241, z);
    CHECK_FAILS(ce(xn, t, &o), LUNET_STATUS_RUNTIME, "Expected target size [2, 4], got [2, 4, 1]");
    lunet_tensor_release(t);
    t = tensor_of(LUNET_DTYPE_INT64, 2, s24, z);
    o.weight = w4;
    CHECK_FAILS(ce(xn, t, &o), LUNET_STATUS_RUNTIME,
                "weight tensor should be defined either for all or no classes");
    lunet_loss_options_init(&o);
    lunet_tensor_release(t);
    lunet_tensor_release(xn);
    xn = tensor_of(LUNET_DTYPE_INT64, 3, s234, z);
    t = tensor_of(LUNET_DTYPE_INT64, 2, s24, z);
    CHECK_FAILS(ce(xn, t, &o), LUNET_STATUS_RUNTIME,
                "\"softmax_kernel_impl\" not implemented for 'Long'");
    lunet_tensor_release(t);
    lunet_tensor_release(xn);
    xn = tensor_of(LUNET_DTYPE_FLOAT32, 4, s2322, z);
    t = tensor_of(LUNET_DTYPE_INT64, 3, s212, z);
    CHECK_FAILS(ce(xn, t, &o), LUNET_STATUS_RUNTIME,
                "size mismatch (got input: [2, 3, 2, 2] , target: [2, 1, 2]");
    lunet_tensor_release(t);
    t = tensor_of(LUNET_DTYPE_INT64, 2, s24, z);
    CHECK_FAILS(ce(xn, t, &o), LUNET_STATUS_RUNTIME,
                "only batches of spatial targets supported (3D tensors) but got targets of "
                "dimension: 2");
    lunet_tensor_release(t);
    lunet_tensor_release(xn);

    lunet_tensor_release(w4);
    lunet_tensor_release(w13);
    lunet_tensor_release(w64);
    lunet_tensor_release(x);
}

static void test_nll_errors(void **state)
{
    (void)state;
    const double lpv[6] = {-0.5, -1.0, -2.0, -3.0, -0.1, -0.7}, yv[2] = {0, 5};
    const double yy[2] = {0, 1};
    int64_t s23[2] = {2, 3}, s21[2] = {2, 1};
    lunet_tensor_t *lp = tensor_of(LUNET_DTYPE_FLOAT32, 2, s23, lpv), *t;
    lunet_loss_options_t o;
    lunet_loss_options_init(&o);
    lunet_tensor_t *x0 = tensor_of(LUNET_DTYPE_FLOAT32, 0, NULL, lpv);
    t = tensor_of(LUNET_DTYPE_INT64, 0, NULL, yy);
    CHECK_FAILS(nll(x0, t, &o), LUNET_STATUS_VALUE, "Expected 1 or more dimensions (got 0)");
    lunet_tensor_release(t);
    lunet_tensor_release(x0);
    t = tensor_of(LUNET_DTYPE_INT64, 2, s21, yy);
    CHECK_FAILS(nll(lp, t, &o), LUNET_STATUS_RUNTIME,
                "0D or 1D target tensor expected, multi-target not supported");
    lunet_tensor_release(t);
    t = mk1(LUNET_DTYPE_INT64, 2, yy);
    lunet_tensor_t *w2 = mk1(LUNET_DTYPE_FLOAT32, 2, lpv);
    o.weight = w2;
    CHECK_FAILS(nll(lp, t, &o), LUNET_STATUS_RUNTIME,
                "weight tensor should be defined either for all 3 classes or no classes but got "
                "weight tensor of shape: [2]");
    lunet_loss_options_init(&o);
    lunet_tensor_t *li = tensor_of(LUNET_DTYPE_INT64, 2, s23, lpv);
    CHECK_FAILS(nll(li, t, &o), LUNET_STATUS_RUNTIME,
                "\"nll_loss_out_frame\" not implemented for 'Long'");
    lunet_tensor_release(li);
    lunet_tensor_release(t);
    t = mk1(LUNET_DTYPE_INT64, 2, yv);
    CHECK_FAILS(nll(lp, t, &o), LUNET_STATUS_INDEX, "Target 5 is out of bounds.");
    lunet_tensor_release(t);
    lunet_tensor_release(w2);
    lunet_tensor_release(lp);
}

static void test_softmax_errors(void **state)
{
    (void)state;
    const double v[4] = {1, 2, 3, 5};
    int64_t s22[2] = {2, 2};
    lunet_tensor_t *m = tensor_of(LUNET_DTYPE_FLOAT32, 2, s22, v), *y = NULL;
    CHECK_FAILS(lunet_tensor_softmax(&y, m, 2), LUNET_STATUS_INDEX,
                "Dimension out of range (expected to be in range of [-2, 1], but got 2)");
    CHECK_FAILS(lunet_tensor_log_softmax(&y, m, -3), LUNET_STATUS_INDEX,
                "Dimension out of range (expected to be in range of [-2, 1], but got -3)");
    lunet_tensor_t *s = tensor_of(LUNET_DTYPE_FLOAT32, 0, NULL, v);
    CHECK_FAILS(lunet_tensor_softmax(&y, s, 1), LUNET_STATUS_INDEX,
                "Dimension out of range (expected to be in range of [-1, 0], but got 1)");
    lunet_tensor_t *l1 = mk1(LUNET_DTYPE_INT64, 3, v),
                   *l2 = tensor_of(LUNET_DTYPE_INT64, 2, s22, v);
    CHECK_FAILS(lunet_tensor_softmax(&y, l1, 0), LUNET_STATUS_RUNTIME,
                "\"softmax_lastdim_kernel_impl\" not implemented for 'Long'");
    CHECK_FAILS(lunet_tensor_log_softmax(&y, l1, 0), LUNET_STATUS_RUNTIME,
                "\"log_softmax_lastdim_kernel_impl\" not implemented for 'Long'");
    CHECK_FAILS(lunet_tensor_softmax(&y, l2, 0), LUNET_STATUS_RUNTIME,
                "\"softmax_kernel_impl\" not implemented for 'Long'");
    CHECK_FAILS(lunet_tensor_log_softmax(&y, l2, 0), LUNET_STATUS_RUNTIME,
                "\"softmax_kernel_impl\" not implemented for 'Long'");
    assert_null(y);
    lunet_tensor_release(m);
    lunet_tensor_release(s);
    lunet_tensor_release(l1);
    lunet_tensor_release(l2);
}

static void test_reduction_parse_and_mse_errors(void **state)
{
    (void)state;
    lunet_reduction_t r;
    CHECK_OK(lunet_reduction_parse(&r, "none"));
    assert_int_equal(r, LUNET_REDUCTION_NONE);
    CHECK_OK(lunet_reduction_parse(&r, "mean"));
    assert_int_equal(r, LUNET_REDUCTION_MEAN);
    CHECK_OK(lunet_reduction_parse(&r, "sum"));
    assert_int_equal(r, LUNET_REDUCTION_SUM);
    CHECK_FAILS(lunet_reduction_parse(&r, "avg"), LUNET_STATUS_VALUE,
                "avg is not a valid value for reduction");
    lunet_loss_options_t o;
    lunet_loss_options_init(&o);
    assert_null(o.weight);
    assert_int_equal(o.ignore_index, -100);
    assert_int_equal(o.reduction, LUNET_REDUCTION_MEAN);
    assert_true(o.label_smoothing == 0.0);

    const double v[3] = {1, 2, 3};
    lunet_tensor_t *a = mk1(LUNET_DTYPE_INT64, 3, v), *l = NULL;
    CHECK_FAILS(lunet_loss_mse(&l, a, a, LUNET_REDUCTION_MEAN), LUNET_STATUS_RUNTIME,
                "\"mse_cpu\" not implemented for 'Long'");
    assert_null(l);
    lunet_tensor_release(a);
}

/* float32 logits with a float64 probability target give a float64 loss (type promotion). */
static void test_prob_target_promotion(void **state)
{
    (void)state;
    int64_t s43[2] = {4, 3};
    const double p[12] = {0.1, 0.7, 0.2, 0., 0., 1., 0.5, 0.25, 0.25, 1. / 3, 1. / 3, 1. / 3};
    lunet_tensor_t *x = tensor_of(LUNET_DTYPE_FLOAT32, 2, s43, X43);
    lunet_tensor_t *t = tensor_of(LUNET_DTYPE_FLOAT64, 2, s43, p), *l, *g, *dx;
    lunet_loss_options_t o;
    lunet_loss_options_init(&o);
    CHECK_OK(lunet_loss_cross_entropy(&l, x, t, &o));
    assert_int_equal(l->dtype, LUNET_DTYPE_FLOAT64);
    /* §2.4: prob mean 0.8731071949005127 (float32 result; the float64 one is close) */
    CHECK_CLOSE(lunet_tensor_get(l, 0), 0.8731071949005127, 1e-6);
    CHECK_OK(lunet_tensor_scalar(&g, LUNET_DTYPE_FLOAT64, 1.0, false));
    CHECK_OK(lunet_loss_cross_entropy_backward(&dx, g, x, t, &o));
    assert_int_equal(dx->dtype, LUNET_DTYPE_FLOAT32);
    lunet_tensor_release(l);
    lunet_tensor_release(g);
    lunet_tensor_release(dx);
    lunet_tensor_release(x);
    lunet_tensor_release(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loss_goldens),
        cmocka_unit_test(test_ce_equals_nll_of_log_softmax),
        cmocka_unit_test(test_softmax_goldens),
        cmocka_unit_test(test_seed_values),
        cmocka_unit_test(test_grad_fn_names),
        cmocka_unit_test(test_cross_entropy_errors),
        cmocka_unit_test(test_nll_errors),
        cmocka_unit_test(test_softmax_errors),
        cmocka_unit_test(test_reduction_parse_and_mse_errors),
        cmocka_unit_test(test_prob_target_promotion),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
