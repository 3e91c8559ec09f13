/*
 * test_layers.c - conv2d, pooling, batch norm, dropout and the CNN activations against
 * PyTorch 1.13 (tests/fixtures/layers_golden.h from gen_layers.py): outputs, gradients of
 * every input, max-pool indices, running statistics, grad_fn names, error texts; central
 * differences in float64; seeded Conv2d init and dropout masks bit for bit.
 */
#include "check.h"
#include "fixtures/layers_golden.h"

static lunet_tensor_t *make(int dtype, int ndim, const int64_t *shape, const double *v, bool grad)
{
    lunet_tensor_t *t = tensor_of(dtype ? LUNET_DTYPE_FLOAT64 : LUNET_DTYPE_FLOAT32, ndim, shape,
                                  v);
    if (grad)
        CHECK_OK(lunet_tensor_requires_grad_(t, true));
    return t;
}

/* Every element of t against want, naming the case and the first element that differs. */
static void check_values(const char *name, const char *what, lunet_tensor_t *t, const double *want,
                         int64_t n, double tol)
{
    if (!t)
        fail_msg("%s: %s: no tensor", name, what);
    if (t->numel != n)
        fail_msg("%s: %s: %lld elements, expected %lld", name, what, (long long)t->numel,
                 (long long)n);
    for (int64_t i = 0; i < n; i++) {
        double a = lunet_tensor_get(t, i), b = want[i];
        if (isnan(a) && isnan(b))
            continue;
        if (!(fabs(a - b) <= tol * (fabs(b) > 1 ? fabs(b) : 1)))
            fail_msg("%s: %s[%lld] = %.17g, PyTorch %.17g (tol %g)", name, what, (long long)i, a, b,
                     tol);
    }
}

static lunet_tensor_t *make1(int dtype, int64_t n, const double *v, bool grad)
{
    return make(dtype, 1, &n, v, grad);
}

/* Runs case c's forward on x (and the case's weight/bias/running stats). */
static lunet_status_t forward(lunet_tensor_t **y, lunet_tensor_t **ind, const layer_golden_t *c,
                              lunet_tensor_t *x, lunet_tensor_t *w, lunet_tensor_t *b,
                              lunet_tensor_t *rm, lunet_tensor_t *rv)
{
    switch (c->op) {
    case L_CONV2D: {
        lunet_conv2d_options_t o = {.stride = {c->stride[0], c->stride[1]},
                                    .padding = {c->padding[0], c->padding[1]},
                                    .padding_extra = {c->extra[0], c->extra[1]},
                                    .dilation = {c->dilation[0], c->dilation[1]},
                                    .groups = c->groups};
        return lunet_nn_conv2d(y, x, w, b, &o);
    }
    case L_MAX_POOL2D:
    case L_AVG_POOL2D: {
        lunet_pool2d_options_t o;
        lunet_pool2d_options_init(&o, c->kernel[0], c->kernel[1]);
        o.stride[0] = c->stride[0], o.stride[1] = c->stride[1];
        o.padding[0] = c->padding[0], o.padding[1] = c->padding[1];
        o.ceil_mode = c->ceil;
        if (c->op == L_MAX_POOL2D) {
            o.dilation[0] = c->dilation[0], o.dilation[1] = c->dilation[1];
            return lunet_nn_max_pool2d(y, ind, x, &o);
        }
        o.count_include_pad = c->cip;
        o.divisor_override = c->divisor;
        return lunet_nn_avg_pool2d(y, x, &o);
    }
    case L_ADAPTIVE:
        return lunet_nn_adaptive_avg_pool2d(y, x, c->osize[0], c->osize[1]);
    case L_LEAKY_RELU:
        return lunet_nn_leaky_relu(y, x, c->p0);
    case L_ELU:
        return lunet_nn_elu(y, x, c->p0);
    case L_GELU:
        return lunet_nn_gelu(y, x, c->flag);
    case L_SOFTPLUS:
        return lunet_nn_softplus(y, x, c->p0, c->p1);
    case L_LOG_SIGMOID:
        return lunet_nn_log_sigmoid(y, x);
    default:
        return lunet_nn_batch_norm(y, x, rm, rv, w, b, c->training, c->momentum, c->eps);
    }
}

/* Output tolerance: pooling is bit-exact in both dtypes; GEMM and libm orders differ. */
static double tol_out(const layer_golden_t *c)
{
    if (c->op == L_ADAPTIVE && c->osize[0] == 1 && c->osize[1] == 1)
        return c->dtype ? 1e-15 : 1e-7; /* a mean (reduce.c's summation order) */
    if (c->op == L_MAX_POOL2D || c->op == L_AVG_POOL2D || c->op == L_ADAPTIVE)
        return 0;
    return c->dtype ? 1e-12 : 2e-6;
}

/* sum(y * g) with grad mode off: the scalar whose gradient the goldens hold. */
static double loss_of(const layer_golden_t *c, lunet_tensor_t *x, lunet_tensor_t *w,
                      lunet_tensor_t *b)
{
    lunet_tensor_t *rm = NULL, *rv = NULL, *y;
    if (c->op == L_BATCH_NORM) { /* fresh running stats: the forward updates them */
        rm = make1(1, c->xshape[1], c->rm0, false);
        rv = make1(1, c->xshape[1], c->rv0, false);
    }
    bool was = lunet_set_grad_enabled(false);
    CHECK_OK(forward(&y, NULL, c, x, w, b, rm, rv));
    lunet_set_grad_enabled(was);
    double s = 0;
    for (int64_t i = 0; i < y->numel; i++)
        s += lunet_tensor_get(y, i) * c->g[i];
    lunet_tensor_release(y);
    lunet_tensor_release(rm);
    lunet_tensor_release(rv);
    return s;
}

/* Central differences of sum(y g) for a few elements of t against its analytic gradient. */
static void check_numeric(const layer_golden_t *c, lunet_tensor_t *x, lunet_tensor_t *w,
                          lunet_tensor_t *b, lunet_tensor_t *t, const double *grad)
{
    const double h = 1e-6;
    int64_t step = t->numel / 7 + 1;
    for (int64_t i = 0; i < t->numel; i += step) {
        double *p = (double *)lunet_tensor_data(t) + i, v = *p;
        if (v == 0 && (c->op == L_LEAKY_RELU || c->op == L_ELU))
            continue; /* the kink: no derivative to approximate */
        *p = v + h;
        double up = loss_of(c, x, w, b);
        *p = v - h;
        double down = loss_of(c, x, w, b);
        *p = v;
        double num = (up - down) / (2 * h);
        if (fabs(num - grad[i]) > 1e-5 * (1 + fabs(grad[i])))
            fail_msg("%s: element %lld: central difference %.10g, gradient %.10g", c->name,
                     (long long)i, num, grad[i]);
    }
}

static void test_goldens(void **state)
{
    (void)state;
    for (int k = 0; k < LAYER_GOLDEN_COUNT; k++) {
        const layer_golden_t *c = &layer_goldens[k];
        lunet_tensor_t *x = make(c->dtype, c->xndim, c->xshape, c->x, true);
        lunet_tensor_t *w = NULL, *b = NULL, *rm = NULL, *rv = NULL, *y, *ind = NULL, *gt;
        if (c->op == L_CONV2D) {
            w = make(c->dtype, 4, c->wshape, c->w, true);
            if (c->has_b)
                b = make1(c->dtype, c->wshape[0], c->b, true);
        } else if (c->op == L_BATCH_NORM) {
            int64_t C = c->xshape[1];
            if (c->has_w) {
                w = make1(c->dtype, C, c->w, true);
                b = make1(c->dtype, C, c->b, true);
            }
            rm = make1(c->dtype, C, c->rm0, false);
            rv = make1(c->dtype, C, c->rv0, false);
        }
        CHECK_OK(forward(&y, &ind, c, x, w, b, rm, rv));
        assert_int_equal(y->ndim, c->ondim);
        for (int d = 0; d < c->ondim; d++)
            assert_int_equal(y->shape[d], c->oshape[d]);
        check_values(c->name, "out", y, c->out, c->onumel, tol_out(c));
        assert_string_equal(lunet_tensor_grad_fn_name(y), c->grad_fn);
        if (c->op == L_MAX_POOL2D)
            for (int64_t i = 0; i < c->onumel; i++)
                assert_int_equal(((const int64_t *)lunet_tensor_data(ind))[i], c->indices[i]);
        if (c->op == L_BATCH_NORM && c->training) {
            check_values(c->name, "running_mean", rm, c->rm, c->xshape[1], c->dtype ? 1e-12 : 1e-6);
            check_values(c->name, "running_var", rv, c->rv, c->xshape[1], c->dtype ? 1e-12 : 1e-6);
        }
        gt = make(c->dtype, c->ondim, c->oshape, c->g, false);
        CHECK_OK(lunet_tensor_backward(y, gt, false));
        double tg = c->dtype ? 1e-10 : 2e-5;
        int64_t xn = x->numel;
        check_values(c->name, "dx", x->grad, c->dx, xn, tg);
        if (w)
            check_values(c->name, "dw", w->grad, c->dw, w->numel, tg);
        if (b)
            check_values(c->name, "db", b->grad, c->db, b->numel, tg);
        /* float64: central differences (max pooling has ties in one case: skip that one) */
        if (c->dtype == 1 && !(c->op == L_MAX_POOL2D && strstr(c->name, "ties"))) {
            check_numeric(c, x, w, b, x, c->dx);
            if (w)
                check_numeric(c, x, w, b, w, c->dw);
        }
        lunet_tensor_release(x);
        lunet_tensor_release(w);
        lunet_tensor_release(b);
        lunet_tensor_release(rm);
        lunet_tensor_release(rv);
        lunet_tensor_release(y);
        lunet_tensor_release(ind);
        lunet_tensor_release(gt);
    }
}

static lunet_tensor_t *zeros(int ndim, const int64_t *shape)
{
    lunet_tensor_t *t;
    CHECK_OK(lunet_tensor_zeros(&t, LUNET_DTYPE_FLOAT32, ndim, shape));
    return t;
}

/* The message must equal PyTorch's (not merely contain a fragment). */
#define CHECK_ERROR(expr, text)                                                                    \
    do {                                                                                           \
        if ((expr) == LUNET_OK)                                                                    \
            fail_msg("%s succeeded, expected \"%s\"", #expr, text);                                \
        if (strcmp(lunet_error_message(), text) != 0)                                              \
            fail_msg("%s: message \"%s\", PyTorch says \"%s\"", #expr, lunet_error_message(),      \
                     text);                                                                        \
    } while (0)

static void test_errors_match_pytorch(void **state)
{
    (void)state;
    int64_t sx[4] = {2, 3, 8, 8}, sw[4] = {4, 3, 3, 3}, sw2[4] = {4, 2, 3, 3};
    int64_t ss[4] = {2, 3, 2, 2}, s2[2] = {8, 8}, sb[1] = {3}, s1[4] = {1, 1, 2, 2};
    lunet_tensor_t *x = zeros(4, sx), *w = zeros(4, sw), *w2 = zeros(4, sw2), *small = zeros(4, ss);
    lunet_tensor_t *flat = zeros(2, s2), *b3 = zeros(1, sb), *tiny = zeros(4, s1), *y, *xd;
    CHECK_OK(lunet_tensor_to(&xd, x, LUNET_DTYPE_FLOAT64));
    lunet_conv2d_options_t o;
    lunet_conv2d_options_init(&o);
    CHECK_ERROR(lunet_nn_conv2d(&y, x, w2, NULL, &o), ERR_CONV_CHANNELS);
    CHECK_ERROR(lunet_nn_conv2d(&y, small, w, NULL, &o), ERR_CONV_KERNEL_TOO_BIG);
    CHECK_ERROR(lunet_nn_conv2d(&y, flat, w, NULL, &o), ERR_CONV_INPUT_DIMS);
    CHECK_ERROR(lunet_nn_conv2d(&y, x, w, b3, &o), ERR_CONV_BIAS);
    CHECK_ERROR(lunet_nn_conv2d(&y, xd, w, NULL, &o), ERR_CONV_DTYPE);
    o.groups = 2;
    CHECK_ERROR(lunet_nn_conv2d(&y, x, w, NULL, &o), ERR_CONV_GROUPS_CHANNELS);
    o.groups = 0;
    CHECK_ERROR(lunet_nn_conv2d(&y, x, w, NULL, &o), ERR_CONV_GROUPS);
    lunet_conv2d_options_init(&o);
    o.dilation[0] = o.dilation[1] = 2;
    CHECK_ERROR(lunet_nn_conv2d(&y, small, w, NULL, &o), ERR_CONV_KERNEL_TOO_BIG_DIL);
    o.dilation[0] = o.dilation[1] = 0;
    CHECK_ERROR(lunet_nn_conv2d(&y, x, w, NULL, &o), ERR_CONV_DILATION);
    lunet_conv2d_options_init(&o);
    o.padding[0] = o.padding[1] = -1;
    CHECK_ERROR(lunet_nn_conv2d(&y, x, w, NULL, &o), ERR_CONV_NEGATIVE_PADDING);
    lunet_conv2d_options_init(&o);
    o.stride[0] = o.stride[1] = 0;
    CHECK_ERROR(lunet_nn_conv2d(&y, x, w, NULL, &o), ERR_CONV_STRIDE);
    /* huge options: PyTorch's int64 math wraps into this message; no overflow in Lunet */
    int64_t s4[4] = {1, 1, 4, 4}, s33[4] = {1, 1, 3, 3};
    lunet_tensor_t *x4 = zeros(4, s4), *w3 = zeros(4, s33);
    lunet_conv2d_options_init(&o);
    o.padding[0] = o.padding[1] = (int64_t)1 << 62;
    CHECK_ERROR(lunet_nn_conv2d(&y, x4, w3, NULL, &o), ERR_CONV_HUGE_PADDING);
    o.padding[0] = o.padding[1] = (int64_t)1 << 40;
    CHECK_FAILS(lunet_nn_conv2d(&y, x4, w3, NULL, &o), LUNET_STATUS_RUNTIME, "too large");
    lunet_conv2d_options_init(&o);
    o.dilation[0] = (int64_t)1 << 62;
    CHECK_FAILS(lunet_nn_conv2d(&y, x4, w3, NULL, &o), LUNET_STATUS_RUNTIME,
                "Kernel size can't be greater than actual input size");
    lunet_pool2d_options_t hp;
    lunet_pool2d_options_init(&hp, INT64_MAX, 2);
    hp.dilation[0] = 3;
    CHECK_FAILS(lunet_nn_max_pool2d(&y, NULL, x4, &hp), LUNET_STATUS_RUNTIME,
                "integer out of range");
    lunet_tensor_release(x4);
    lunet_tensor_release(w3);

    lunet_pool2d_options_t p;
    lunet_pool2d_options_init(&p, 3, 3);
    p.padding[0] = p.padding[1] = 2;
    CHECK_ERROR(lunet_nn_max_pool2d(&y, NULL, x, &p), ERR_POOL_PAD_HALF);
    lunet_pool2d_options_init(&p, 3, 3);
    CHECK_ERROR(lunet_nn_max_pool2d(&y, NULL, tiny, &p), ERR_POOL_TOO_SMALL);
    CHECK_ERROR(lunet_nn_avg_pool2d(&y, tiny, &p), ERR_AVGPOOL_TOO_SMALL);
    lunet_pool2d_options_init(&p, 2, 2);
    p.stride[0] = p.stride[1] = 0;
    CHECK_ERROR(lunet_nn_max_pool2d(&y, NULL, x, &p), ERR_POOL_STRIDE_ZERO);
    lunet_pool2d_options_init(&p, 2, 2);
    p.dilation[0] = p.dilation[1] = 0;
    CHECK_ERROR(lunet_nn_max_pool2d(&y, NULL, x, &p), ERR_POOL_DILATION);
    lunet_pool2d_options_init(&p, 2, 2);
    p.padding[0] = p.padding[1] = -1;
    CHECK_ERROR(lunet_nn_max_pool2d(&y, NULL, x, &p), ERR_POOL_NEGATIVE_PAD);
    lunet_pool2d_options_init(&p, 2, 2);
    CHECK_ERROR(lunet_nn_max_pool2d(&y, NULL, flat, &p), ERR_MAXPOOL_DIMS);
    CHECK_ERROR(lunet_nn_adaptive_avg_pool2d(&y, flat, 2, 2), ERR_ADAPTIVE_DIMS);
    int64_t se[4] = {1, 3, 0, 8};
    lunet_tensor_t *empty = zeros(4, se);
    CHECK_ERROR(lunet_nn_adaptive_avg_pool2d(&y, empty, 2, 2), ERR_ADAPTIVE_EMPTY);
    CHECK_ERROR(lunet_nn_dropout_mask(&y, x, 1.5, NULL), ERR_DROPOUT_P);
    int64_t sbn[4] = {2, 4, 4, 4}, s3[1] = {3};
    lunet_tensor_t *xbn = zeros(4, sbn), *rm = zeros(1, s3), *rv = zeros(1, s3);
    CHECK_ERROR(lunet_nn_batch_norm(&y, xbn, rm, rv, NULL, NULL, true, 0.1, 1e-5),
                ERR_BN_RUNNING_MEAN);
    lunet_tensor_t *xl;
    CHECK_OK(lunet_tensor_to(&xl, x, LUNET_DTYPE_INT64));
    CHECK_ERROR(lunet_nn_leaky_relu(&y, xl, 0.01), ERR_LEAKY_LONG);
    lunet_tensor_t *all[] = {x, w, w2, small, flat, b3, tiny, xd, empty, xbn, rm, rv, xl};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        lunet_tensor_release(all[i]);
}

static void test_conv2d_init_matches_pytorch(void **state)
{
    (void)state;
    /* torch.manual_seed(7); Conv2d(3, 4, 3); Conv2d(4, 6, (2, 3), groups=2);
       Conv2d(2, 3, 3, bias=False, dtype=float64) */
    lunet_generator_t g;
    lunet_generator_seed(&g, 7);
    int64_t s1[4] = {4, 3, 3, 3}, s2[4] = {6, 2, 2, 3}, s3[4] = {3, 2, 3, 3}, b1 = 4, b2 = 6;
    lunet_tensor_t *w1, *bb1, *w2, *bb2, *w3;
    CHECK_OK(lunet_tensor_empty(&w1, LUNET_DTYPE_FLOAT32, 4, s1));
    CHECK_OK(lunet_tensor_empty(&bb1, LUNET_DTYPE_FLOAT32, 1, &b1));
    CHECK_OK(lunet_tensor_empty(&w2, LUNET_DTYPE_FLOAT32, 4, s2));
    CHECK_OK(lunet_tensor_empty(&bb2, LUNET_DTYPE_FLOAT32, 1, &b2));
    CHECK_OK(lunet_tensor_empty(&w3, LUNET_DTYPE_FLOAT64, 4, s3));
    CHECK_OK(lunet_nn_conv2d_reset(w1, bb1, &g));
    CHECK_OK(lunet_nn_conv2d_reset(w2, bb2, &g));
    CHECK_OK(lunet_nn_conv2d_reset(w3, NULL, &g));
    CHECK_TENSOR(w1, lg_init_c1w, w1->numel, 0);
    CHECK_TENSOR(bb1, lg_init_c1b, 4, 0);
    CHECK_TENSOR(w2, lg_init_c2w, w2->numel, 0);
    CHECK_TENSOR(bb2, lg_init_c2b, 6, 0);
    CHECK_TENSOR(w3, lg_init_c3w, w3->numel, 0);
    lunet_tensor_t *all[] = {w1, bb1, w2, bb2, w3};
    for (size_t i = 0; i < 5; i++)
        lunet_tensor_release(all[i]);
}

static void test_dropout_matches_pytorch(void **state)
{
    (void)state;
    /* torch.manual_seed(5); x = randn(4, 6); manual_seed(5); dropout(x, 0.3); then a float64
       (3, 5) input with p = 0.5 from the same stream */
    lunet_generator_t g;
    lunet_generator_seed(&g, 5);
    int64_t s1[2] = {4, 6}, s2[2] = {3, 5};
    lunet_tensor_t *x1 = make(0, 2, s1, lg_dropout_x32, false);
    lunet_tensor_t *x2 = make(1, 2, s2, lg_dropout_x64, false), *m1, *m2, *y1, *y2;
    CHECK_OK(lunet_nn_dropout_mask(&m1, x1, 0.3, &g));
    CHECK_OK(lunet_tensor_binary(&y1, LUNET_BINARY_MUL, x1, m1));
    CHECK_TENSOR(y1, lg_dropout_y32, 24, 0);
    /* PyTorch drew randn(3, 5) in between: consume the same 15 normals */
    lunet_tensor_t *skip = tensor_randn(LUNET_DTYPE_FLOAT64, 2, s2, &g);
    CHECK_TENSOR(skip, lg_dropout_x64, 15, 0);
    CHECK_OK(lunet_nn_dropout_mask(&m2, x2, 0.5, &g));
    CHECK_OK(lunet_tensor_binary(&y2, LUNET_BINARY_MUL, x2, m2));
    CHECK_TENSOR(y2, lg_dropout_y64, 15, 0);
    lunet_tensor_t *all[] = {x1, x2, m1, m2, y1, y2, skip};
    for (size_t i = 0; i < 7; i++)
        lunet_tensor_release(all[i]);
}

/* conv2d's forward and gradients over several parallel blocks: the same bits on 1 and 3
   threads (the blocks and the order of the partial sums depend on the shapes only). */
static void test_conv2d_same_bits_on_any_thread_count(void **state)
{
    (void)state;
    lunet_generator_t g;
    int64_t sx[4] = {40, 4, 20, 20}, sw[4] = {8, 2, 3, 3}, sb[1] = {8};
    lunet_conv2d_options_t o;
    lunet_conv2d_options_init(&o);
    o.groups = 2;
    o.padding[0] = o.padding[1] = 1;
    double first[3] = {0, 0, 0};
    int before = lunet_get_num_threads();
    for (int run = 0; run < 2; run++) {
        CHECK_OK(lunet_set_num_threads(run == 0 ? 1 : 3));
        lunet_generator_seed(&g, 3);
        lunet_tensor_t *x = tensor_randn(LUNET_DTYPE_FLOAT32, 4, sx, &g);
        lunet_tensor_t *w = tensor_randn(LUNET_DTYPE_FLOAT32, 4, sw, &g);
        lunet_tensor_t *b = tensor_randn(LUNET_DTYPE_FLOAT32, 1, sb, &g), *y, *s;
        CHECK_OK(lunet_tensor_requires_grad_(x, true));
        CHECK_OK(lunet_tensor_requires_grad_(w, true));
        CHECK_OK(lunet_nn_conv2d(&y, x, w, b, &o));
        CHECK_OK(lunet_tensor_unary(&s, LUNET_UNARY_TANH, y)); /* a non-uniform upstream */
        lunet_tensor_t *t;
        CHECK_OK(lunet_tensor_reduce(&t, NULL, LUNET_REDUCE_SUM, s, 0, NULL, false));
        CHECK_OK(lunet_tensor_backward(t, NULL, false));
        /* checksums weighted by position: any differing bit changes them */
        double sums[3] = {0, 0, 0};
        lunet_tensor_t *ts[3] = {y, x->grad, w->grad};
        for (int k = 0; k < 3; k++)
            for (int64_t i = 0; i < ts[k]->numel; i++)
                sums[k] += lunet_tensor_get(ts[k], i) * (double)(i % 97 + 1);
        for (int k = 0; k < 3; k++) {
            if (run == 0)
                first[k] = sums[k];
            else if (sums[k] != first[k])
                fail_msg("tensor %d: checksum %.17g on 3 threads, %.17g on 1", k, sums[k],
                         first[k]);
        }
        lunet_tensor_t *all[] = {x, w, b, y, s, t};
        for (size_t i = 0; i < 6; i++)
            lunet_tensor_release(all[i]);
    }
    CHECK_OK(lunet_set_num_threads(before));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_goldens),
        cmocka_unit_test(test_errors_match_pytorch),
        cmocka_unit_test(test_conv2d_init_matches_pytorch),
        cmocka_unit_test(test_dropout_matches_pytorch),
        cmocka_unit_test(test_conv2d_same_bits_on_any_thread_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
