/*
 * test_init.c - runtime/init.c: PyTorch's gains and fans, the messages for bad modes and
 * nonlinearities, and nn.Linear's reset through lunet_init_layer_reset giving PyTorch's
 * seeded values (the Lua side checks every nn.init function bit for bit: spec/init_spec.lua).
 */
#include "check.h"

static void test_gains_and_fans(void **state)
{
    (void)state;
    double gain;
    CHECK_OK(lunet_init_calculate_gain(&gain, "conv2d", false, 0));
    assert_true(gain == 1);
    CHECK_OK(lunet_init_calculate_gain(&gain, "tanh", false, 0));
    assert_true(gain == 5.0 / 3);
    CHECK_OK(lunet_init_calculate_gain(&gain, "leaky_relu", false, 0));
    assert_true(gain == sqrt(2.0 / (1 + 0.01 * 0.01)));
    CHECK_OK(lunet_init_calculate_gain(&gain, "leaky_relu", true, 0));
    assert_true(gain == sqrt(2.0));
    CHECK_FAILS(lunet_init_calculate_gain(&gain, "swish", false, 0), LUNET_STATUS_VALUE,
                "Unsupported nonlinearity swish");
    int64_t shape[4] = {4, 3, 5, 2}, fan_in, fan_out;
    lunet_tensor_t *t, *v;
    CHECK_OK(lunet_tensor_empty(&t, LUNET_DTYPE_FLOAT32, 4, shape));
    CHECK_OK(lunet_init_fans(&fan_in, &fan_out, t));
    assert_int_equal(fan_in, 30);
    assert_int_equal(fan_out, 40);
    CHECK_FAILS(lunet_init_kaiming_uniform_(t, NULL, 0, "fan_avg", "relu"), LUNET_STATUS_VALUE,
                "Mode fan_avg not supported, please use one of ['fan_in', 'fan_out']");
    CHECK_FAILS(lunet_init_kaiming_normal_(t, NULL, 0, "Fan_In", "softmax"), LUNET_STATUS_VALUE,
                "Unsupported nonlinearity softmax");
    CHECK_OK(lunet_tensor_empty(&v, LUNET_DTYPE_FLOAT32, 1, shape));
    CHECK_FAILS(lunet_init_xavier_uniform_(v, NULL, 1), LUNET_STATUS_VALUE,
                "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions");
    lunet_tensor_release(t);
    lunet_tensor_release(v);
}

static void test_layer_reset_is_pytorch_linear(void **state)
{
    (void)state;
    /* torch.manual_seed(42); nn.Linear(4, 3): weight row 0 and the bias */
    const double w0[4] = {0.3822692632675171, 0.4150039553642273, -0.11713624000549316,
                          0.45930564403533936};
    const double b[3] = {0.3694044351577759, 0.06771528720855713, 0.24109405279159546};
    lunet_generator_t g;
    lunet_generator_seed(&g, 42);
    int64_t sw[2] = {3, 4}, sb[1] = {3};
    lunet_tensor_t *w, *bias;
    CHECK_OK(lunet_tensor_empty(&w, LUNET_DTYPE_FLOAT32, 2, sw));
    CHECK_OK(lunet_tensor_empty(&bias, LUNET_DTYPE_FLOAT32, 1, sb));
    CHECK_OK(lunet_tensor_requires_grad_(w, true));
    CHECK_OK(lunet_init_layer_reset(w, bias, &g));
    for (int i = 0; i < 4; i++) /* row 0 */
        CHECK_CLOSE(lunet_tensor_get(w, i), w0[i], 0);
    CHECK_TENSOR(bias, b, 3, 0);
    assert_null(w->grad_fn);
    lunet_tensor_release(w);
    lunet_tensor_release(bias);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gains_and_fans),
        cmocka_unit_test(test_layer_reset_is_pytorch_linear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
