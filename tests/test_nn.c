/*
 * test_nn.c - the C API for training without Lua: Linear's PyTorch-exact initialisation,
 * the fused Linear+ReLU, the MLP builder and the SGD optimizer object.
 */
#include "check.h"

static void test_linear_init_matches_pytorch(void **state)
{
    (void)state;
    /* torch.manual_seed(42); nn.Linear(4, 3) (docs/pytorch-parity.md §5.2) */
    lunet_generator_t g;
    lunet_generator_seed(&g, 42);
    int64_t sizes[2] = {4, 3};
    lunet_mlp_t *m;
    CHECK_OK(lunet_mlp_new(&m, 2, sizes, LUNET_ACTIVATION_NONE, LUNET_DTYPE_FLOAT32, &g));
    double w0[4] = {0.3822692632675171, 0.4150039553642273, -0.11713624000549316,
                    0.45930564403533936};
    double b[3] = {0.3694044351577759, 0.06771528720855713, 0.24109405279159546};
    for (int i = 0; i < 4; i++) /* row 0 of the (3, 4) weight */
        CHECK_CLOSE(lunet_tensor_get(m->weight[0], i), w0[i], 0);
    CHECK_TENSOR(m->bias[0], b, 3, 0);
    assert_int_equal(lunet_mlp_parameter_count(m), 2);
    assert_ptr_equal(lunet_mlp_parameter(m, 1), m->bias[0]);
    assert_null(lunet_mlp_parameter(m, 2));
    assert_true(m->weight[0]->requires_grad);
    lunet_mlp_free(m);
    int64_t bad[1] = {4};
    CHECK_FAILS(lunet_mlp_new(&m, 1, bad, LUNET_ACTIVATION_RELU, LUNET_DTYPE_FLOAT32, &g),
                LUNET_STATUS_VALUE, "at least two layer sizes");
    CHECK_FAILS(lunet_mlp_new(&m, 2, sizes, LUNET_ACTIVATION_RELU, LUNET_DTYPE_INT64, &g),
                LUNET_STATUS_TYPE, "floating point");
}

static void test_fused_linear_relu(void **state)
{
    (void)state;
    lunet_generator_t g;
    lunet_generator_seed(&g, 1);
    int64_t sx[2] = {5, 4}, sw[2] = {3, 4}, sb[1] = {3};
    lunet_tensor_t *x = tensor_randn(LUNET_DTYPE_FLOAT64, 2, sx, &g);
    lunet_tensor_t *w = tensor_randn(LUNET_DTYPE_FLOAT64, 2, sw, &g);
    lunet_tensor_t *b = tensor_randn(LUNET_DTYPE_FLOAT64, 1, sb, &g), *fused, *plain, *relu;
    CHECK_OK(lunet_nn_linear(&fused, x, w, b, true));
    CHECK_OK(lunet_nn_linear(&plain, x, w, b, false));
    CHECK_OK(lunet_tensor_unary(&relu, LUNET_UNARY_RELU, plain));
    for (int64_t i = 0; i < 15; i++) {
        double want = lunet_tensor_get(b, i % 3);
        for (int k = 0; k < 4; k++)
            want += lunet_tensor_get(x, (i / 3) * 4 + k) * lunet_tensor_get(w, (i % 3) * 4 + k);
        CHECK_CLOSE(lunet_tensor_get(plain, i), want, 1e-12);
        CHECK_CLOSE(lunet_tensor_get(fused, i), want < 0 ? 0 : want, 1e-12);
        CHECK_CLOSE(lunet_tensor_get(relu, i), lunet_tensor_get(fused, i), 0);
    }
    lunet_tensor_t *bad;
    int64_t s5[2] = {2, 5};
    CHECK_OK(lunet_tensor_zeros(&bad, LUNET_DTYPE_FLOAT64, 2, s5));
    lunet_tensor_t *y;
    CHECK_FAILS(lunet_nn_linear(&y, bad, w, b, false), LUNET_STATUS_RUNTIME,
                "mat1 and mat2 shapes cannot be multiplied (2x5 and 4x3)");
    lunet_tensor_release(bad);
    lunet_tensor_release(fused);
    lunet_tensor_release(plain);
    lunet_tensor_release(relu);
    lunet_tensor_release(x);
    lunet_tensor_release(w);
    lunet_tensor_release(b);
}

/* A small MLP learns a synthetic rule (class = sign of feature 0) with the C API alone. */
static void test_mlp_trains(void **state)
{
    (void)state;
    lunet_generator_t g;
    lunet_generator_seed(&g, 0);
    int64_t sizes[3] = {6, 16, 2}, sx[2] = {128, 6}, sy[1] = {128};
    lunet_mlp_t *m;
    CHECK_OK(lunet_mlp_new(&m, 3, sizes, LUNET_ACTIVATION_RELU, LUNET_DTYPE_FLOAT32, &g));
    lunet_tensor_t *x = tensor_randn(LUNET_DTYPE_FLOAT32, 2, sx, &g), *y;
    CHECK_OK(lunet_tensor_empty(&y, LUNET_DTYPE_INT64, 1, sy));
    for (int i = 0; i < 128; i++)
        ((int64_t *)lunet_tensor_data(y))[i] = lunet_tensor_get(x, i * 6) > 0;
    lunet_sgd_options_t o = {.lr = 0.1, .momentum = 0.9};
    lunet_tensor_t *params[4];
    for (int i = 0; i < 4; i++)
        params[i] = lunet_mlp_parameter(m, i);
    lunet_optimizer_t *opt;
    CHECK_OK(lunet_sgd_new(&opt, 4, params, &o));
    lunet_loss_options_t lo;
    lunet_loss_options_init(&lo);
    double first = 0, last = 0;
    for (int step = 0; step < 200; step++) {
        lunet_tensor_t *logits, *loss;
        CHECK_OK(lunet_optimizer_zero_grad(opt));
        CHECK_OK(lunet_mlp_forward(&logits, m, x));
        CHECK_OK(lunet_loss_cross_entropy(&loss, logits, y, &lo));
        CHECK_OK(lunet_tensor_backward(loss, NULL, false));
        CHECK_OK(lunet_optimizer_step(opt));
        last = lunet_tensor_get(loss, 0);
        if (step == 0)
            first = last;
        lunet_tensor_release(logits);
        lunet_tensor_release(loss);
    }
    if (!(last < first * 0.1))
        fail_msg("loss %g -> %g did not fall", first, last);
    /* sigmoid and tanh MLPs run too; inputs of other widths are refused */
    lunet_mlp_t *ms;
    lunet_tensor_t *out;
    CHECK_OK(lunet_mlp_new(&ms, 3, sizes, LUNET_ACTIVATION_TANH, LUNET_DTYPE_FLOAT32, &g));
    CHECK_OK(lunet_mlp_forward(&out, ms, x));
    assert_int_equal(out->shape[1], 2);
    lunet_tensor_release(out);
    int64_t s3[2] = {4, 3};
    lunet_tensor_t *narrow;
    CHECK_OK(lunet_tensor_zeros(&narrow, LUNET_DTYPE_FLOAT32, 2, s3));
    CHECK_FAILS(lunet_mlp_forward(&out, ms, narrow), LUNET_STATUS_RUNTIME,
                "mlp: expected input (N, 6), got [4, 3]");
    lunet_tensor_release(narrow);
    lunet_mlp_free(ms);
    lunet_optimizer_t *bad;
    lunet_sgd_options_t neg = {.lr = -1};
    CHECK_FAILS(lunet_sgd_new(&bad, 4, params, &neg), LUNET_STATUS_VALUE,
                "Invalid learning rate: -1");
    lunet_optimizer_free(opt);
    lunet_mlp_free(m);
    lunet_tensor_release(x);
    lunet_tensor_release(y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_init_matches_pytorch),
        cmocka_unit_test(test_fused_linear_relu),
        cmocka_unit_test(test_mlp_trains),
    };
    int rc = cmocka_run_group_tests_name("nn", tests, NULL, NULL);
    lunet_memory_trim();
    return rc;
}
