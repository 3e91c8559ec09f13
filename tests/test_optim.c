/*
 * test_optim.c - Adam and AdamW against PyTorch 1.13: 5-step trajectories for every option
 * combination of tests/fixtures/optim_golden.h, bit for bit in float32 and float64; the
 * optimizer object for C hosts; PyTorch's messages for invalid options; failures that leave
 * the parameter and the state untouched.
 */
#include "check.h"

#include "fixtures/optim_golden.h"

/* A parameter or gradient of the golden's dtype holding vals[0..ADAM_N). */
static lunet_tensor_t *make_vec(const double *vals, lunet_dtype_t dt)
{
    int64_t n = ADAM_N;
    float f[ADAM_N];
    for (int i = 0; i < ADAM_N; i++)
        f[i] = (float)vals[i];
    lunet_tensor_t *t;
    CHECK_OK(lunet_tensor_from_data(&t, dt, 1, &n,
                                    dt == LUNET_DTYPE_FLOAT32 ? (void *)f : (void *)vals));
    return t;
}

static lunet_adam_options_t golden_options(const adam_golden_t *c)
{
    return (lunet_adam_options_t){.lr = c->lr,
                                  .beta1 = c->beta1,
                                  .beta2 = c->beta2,
                                  .eps = c->eps,
                                  .weight_decay = c->weight_decay,
                                  .amsgrad = c->amsgrad,
                                  .maximize = c->maximize,
                                  .decoupled = c->adamw};
}

static void test_adam_trajectories_bit_exact(void **state)
{
    (void)state;
    int ncases = (int)(sizeof adam_goldens / sizeof adam_goldens[0]);
    for (int k = 0; k < ncases; k++) {
        const adam_golden_t *c = &adam_goldens[k];
        lunet_dtype_t dt = c->dtype ? LUNET_DTYPE_FLOAT64 : LUNET_DTYPE_FLOAT32;
        lunet_adam_options_t o = golden_options(c);
        CHECK_OK(lunet_adam_check(&o));
        lunet_tensor_t *p = make_vec(adam_p0, dt);
        lunet_adam_state_t s = {0};
        for (int step = 0; step < 5; step++) {
            lunet_tensor_t *g = make_vec(adam_grads + step * ADAM_N, dt);
            CHECK_OK(lunet_adam_update(p, g, &s, &o));
            lunet_tensor_release(g);
            for (int i = 0; i < ADAM_N; i++) {
                double want = c->steps[step * ADAM_N + i], got = lunet_tensor_get(p, i);
                if (memcmp(&got, &want, sizeof got) != 0)
                    fail_msg("case %d (%s %s lr=%g betas=(%g, %g) eps=%g wd=%g amsgrad=%d "
                             "maximize=%d) step %d element %d: got %.17g, expected %.17g",
                             k, c->adamw ? "AdamW" : "Adam", c->dtype ? "float64" : "float32",
                             c->lr, c->beta1, c->beta2, c->eps, c->weight_decay, c->amsgrad,
                             c->maximize, step + 1, i, got, want);
            }
        }
        assert_true(s.step == 5);
        assert_true((s.max_exp_avg_sq != NULL) == (c->amsgrad != 0));
        lunet_adam_state_clear(&s);
        assert_null(s.exp_avg);
        lunet_tensor_release(p);
    }
}

static void test_adam_messages(void **state)
{
    (void)state;
    lunet_adam_options_t o = {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    CHECK_OK(lunet_adam_check(&o));
    o.lr = -1;
    CHECK_FAILS(lunet_adam_check(&o), LUNET_STATUS_VALUE, "Invalid learning rate: -1.0");
    o.lr = 1e-3, o.eps = -1e-8;
    CHECK_FAILS(lunet_adam_check(&o), LUNET_STATUS_VALUE, "Invalid epsilon value: -1e-08");
    o.eps = 1e-8, o.beta1 = 1.5;
    CHECK_FAILS(lunet_adam_check(&o), LUNET_STATUS_VALUE, "Invalid beta parameter at index 0: 1.5");
    o.beta1 = 0.9, o.beta2 = 1.0;
    CHECK_FAILS(lunet_adam_check(&o), LUNET_STATUS_VALUE, "Invalid beta parameter at index 1: 1.0");
    o.beta2 = NAN;
    CHECK_FAILS(lunet_adam_check(&o), LUNET_STATUS_VALUE, "Invalid beta parameter at index 1: nan");
    o.beta2 = 0.999, o.weight_decay = -0.01;
    CHECK_FAILS(lunet_adam_check(&o), LUNET_STATUS_VALUE, "Invalid weight_decay value: -0.01");
    o.weight_decay = -123456.0;
    CHECK_FAILS(lunet_adam_check(&o), LUNET_STATUS_VALUE, "Invalid weight_decay value: -123456.0");
    o.weight_decay = -1e16;
    CHECK_FAILS(lunet_adam_check(&o), LUNET_STATUS_VALUE, "Invalid weight_decay value: -1e+16");
}

static void test_adam_failures_change_nothing(void **state)
{
    (void)state;
    lunet_adam_options_t o = {
        .lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .amsgrad = true};
    int64_t n3 = 3, n2 = 2;
    lunet_tensor_t *p, *g, *g2, *gl, *pl;
    CHECK_OK(lunet_tensor_full(&p, LUNET_DTYPE_FLOAT32, 1, &n3, 1.0));
    CHECK_OK(lunet_tensor_full(&g, LUNET_DTYPE_FLOAT32, 1, &n3, 0.5));
    CHECK_OK(lunet_tensor_full(&g2, LUNET_DTYPE_FLOAT32, 1, &n2, 0.5));
    CHECK_OK(lunet_tensor_full(&gl, LUNET_DTYPE_FLOAT64, 1, &n3, 0.5));
    CHECK_OK(lunet_tensor_zeros(&pl, LUNET_DTYPE_INT64, 1, &n3));
    lunet_adam_state_t s = {0};
    CHECK_FAILS(lunet_adam_update(p, g2, &s, &o), LUNET_STATUS_RUNTIME,
                "adam: gradient float32 [2] does not match parameter float32 [3]");
    CHECK_FAILS(lunet_adam_update(p, gl, &s, &o), LUNET_STATUS_RUNTIME,
                "adam: gradient float64 [3] does not match parameter float32 [3]");
    CHECK_FAILS(lunet_adam_update(pl, gl, &s, &o), LUNET_STATUS_TYPE,
                "adam: parameter must be floating point, got int64");
    assert_null(s.exp_avg);
    assert_true(s.step == 0);
    CHECK_OK(lunet_adam_update(p, g, &s, &o));
    /* first Adam step moves every element by lr (m / sqrt(v) = sign(g) after correction) */
    CHECK_CLOSE(lunet_tensor_get(p, 0), 0.9, 1e-6);
    /* a state tensor of the wrong shape is refused before anything moves */
    lunet_tensor_t *saved = s.exp_avg_sq;
    s.exp_avg_sq = g2;
    CHECK_FAILS(lunet_adam_update(p, g, &s, &o), LUNET_STATUS_RUNTIME,
                "adam: state exp_avg_sq float32 [2] does not match parameter float32 [3]");
    /* one of the right dtype and shape but strided says so */
    int64_t s32[2] = {3, 2};
    lunet_tensor_t *wide, *column;
    CHECK_OK(lunet_tensor_zeros(&wide, LUNET_DTYPE_FLOAT32, 2, s32));
    CHECK_OK(lunet_tensor_select(&column, wide, 1, 0));
    s.exp_avg_sq = column;
    CHECK_FAILS(lunet_adam_update(p, g, &s, &o), LUNET_STATUS_RUNTIME,
                "adam: state exp_avg_sq must be contiguous");
    lunet_tensor_release(column);
    lunet_tensor_release(wide);
    s.exp_avg_sq = saved;
    assert_true(s.step == 1);
    CHECK_CLOSE(lunet_tensor_get(p, 0), 0.9, 1e-6);
    lunet_adam_state_clear(&s);
    lunet_tensor_release(p);
    lunet_tensor_release(g);
    lunet_tensor_release(g2);
    lunet_tensor_release(gl);
    lunet_tensor_release(pl);
}

/* SGD's momentum buffer: one of another shape or dtype is refused, naming both, and p stays */
static void test_sgd_momentum_buffer_mismatch(void **state)
{
    (void)state;
    lunet_sgd_options_t o = {.lr = 0.1, .momentum = 0.9};
    int64_t n3 = 3, n2 = 2;
    lunet_tensor_t *p, *g, *b2, *b64;
    CHECK_OK(lunet_tensor_full(&p, LUNET_DTYPE_FLOAT32, 1, &n3, 1.0));
    CHECK_OK(lunet_tensor_full(&g, LUNET_DTYPE_FLOAT32, 1, &n3, 0.5));
    CHECK_OK(lunet_tensor_zeros(&b2, LUNET_DTYPE_FLOAT32, 1, &n2));
    CHECK_OK(lunet_tensor_zeros(&b64, LUNET_DTYPE_FLOAT64, 1, &n3));
    lunet_tensor_t *buf = b2;
    CHECK_FAILS(lunet_sgd_update(p, g, &buf, &o), LUNET_STATUS_RUNTIME,
                "sgd: momentum buffer float32 [2] does not match parameter float32 [3]");
    buf = b64;
    CHECK_FAILS(lunet_sgd_update(p, g, &buf, &o), LUNET_STATUS_RUNTIME,
                "sgd: momentum buffer float64 [3] does not match parameter float32 [3]");
    assert_ptr_equal(buf, b64);
    CHECK_CLOSE(lunet_tensor_get(p, 0), 1.0, 0);
    lunet_tensor_release(p);
    lunet_tensor_release(g);
    lunet_tensor_release(b2);
    lunet_tensor_release(b64);
}

static void test_adam_object(void **state)
{
    (void)state;
    /* two parameters stepped by the object follow the same golden as lunet_adam_update */
    const adam_golden_t *c = &adam_goldens[0];
    for (int k = 0; k < (int)(sizeof adam_goldens / sizeof adam_goldens[0]); k++)
        if (adam_goldens[k].adamw && adam_goldens[k].amsgrad && !adam_goldens[k].dtype)
            c = &adam_goldens[k];
    assert_true(c->adamw);
    lunet_adam_options_t o = golden_options(c);
    lunet_tensor_t *params[3] = {make_vec(adam_p0, LUNET_DTYPE_FLOAT32),
                                 make_vec(adam_p0, LUNET_DTYPE_FLOAT32), NULL};
    CHECK_OK(lunet_tensor_requires_grad_(params[0], true));
    CHECK_OK(lunet_tensor_requires_grad_(params[1], true));
    lunet_optimizer_t *opt;
    CHECK_OK(lunet_adam_new(&opt, 2, params, &o));
    for (int step = 0; step < 5; step++) {
        for (int j = 0; j < 2; j++) {
            lunet_tensor_release(params[j]->grad);
            params[j]->grad = make_vec(adam_grads + step * ADAM_N, LUNET_DTYPE_FLOAT32);
        }
        CHECK_OK(lunet_optimizer_step(opt));
    }
    for (int j = 0; j < 2; j++)
        for (int i = 0; i < ADAM_N; i++)
            if ((float)c->steps[4 * ADAM_N + i] != (float)lunet_tensor_get(params[j], i))
                fail_msg("param %d element %d: got %.9g, expected %.9g", j, i,
                         lunet_tensor_get(params[j], i), c->steps[4 * ADAM_N + i]);
    assert_true(lunet_adam_state(opt, 1)->step == 5);
    assert_non_null(lunet_adam_state(opt, 1)->max_exp_avg_sq);
    assert_null(lunet_adam_state(opt, 2));
    CHECK_OK(lunet_optimizer_zero_grad(opt));
    assert_true(lunet_tensor_get(params[0]->grad, 0) == 0);
    /* a parameter without a gradient is skipped */
    lunet_tensor_release(params[1]->grad);
    params[1]->grad = NULL;
    CHECK_OK(lunet_optimizer_step(opt));
    assert_true(lunet_adam_state(opt, 0)->step == 6 && lunet_adam_state(opt, 1)->step == 5);
    lunet_optimizer_free(opt);
    lunet_optimizer_t *bad;
    o.beta1 = 1.5;
    CHECK_FAILS(lunet_adam_new(&bad, 2, params, &o), LUNET_STATUS_VALUE,
                "Invalid beta parameter at index 0: 1.5");
    o.beta1 = 0.9;
    CHECK_FAILS(lunet_adam_new(&bad, 0, params, &o), LUNET_STATUS_VALUE,
                "optimizer got an empty parameter list");
    params[2] = params[0];
    CHECK_FAILS(lunet_adam_new(&bad, 3, params, &o), LUNET_STATUS_VALUE,
                "some parameters appear more than once in the list");
    lunet_tensor_release(params[0]);
    lunet_tensor_release(params[1]);
}

/* A parameter of several of the update's thread blocks gives the same bits on 1 and 2 threads. */
static void test_adam_threads_same_bits(void **state)
{
    (void)state;
    int64_t n = 200003; /* 3 blocks of 65,536 and a partial one */
    lunet_generator_t gen;
    lunet_generator_seed(&gen, 5);
    lunet_tensor_t *p[2], *g;
    lunet_adam_state_t s[2];
    memset(s, 0, sizeof s);
    lunet_adam_options_t o = {.lr = 0.01,
                              .beta1 = 0.9,
                              .beta2 = 0.999,
                              .eps = 1e-8,
                              .weight_decay = 0.1,
                              .amsgrad = true,
                              .decoupled = true};
    CHECK_OK(lunet_tensor_empty(&p[0], LUNET_DTYPE_FLOAT32, 1, &n));
    CHECK_OK(lunet_tensor_normal_(p[0], &gen, 0, 1));
    CHECK_OK(lunet_tensor_clone(&p[1], p[0]));
    CHECK_OK(lunet_tensor_empty(&g, LUNET_DTYPE_FLOAT32, 1, &n));
    int was = lunet_get_num_threads();
    for (int step = 0; step < 3; step++) {
        CHECK_OK(lunet_tensor_normal_(g, &gen, 0, 1));
        for (int k = 0; k < 2; k++) {
            CHECK_OK(lunet_set_num_threads(k + 1));
            CHECK_OK(lunet_adam_update(p[k], g, &s[k], &o));
        }
    }
    CHECK_OK(lunet_set_num_threads(was));
    if (memcmp(lunet_tensor_data(p[0]), lunet_tensor_data(p[1]), (size_t)n * sizeof(float)))
        fail_msg("Adam's update differs between 1 and 2 threads");
    for (int k = 0; k < 2; k++) {
        lunet_adam_state_clear(&s[k]);
        lunet_tensor_release(p[k]);
    }
    lunet_tensor_release(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adam_trajectories_bit_exact),
        cmocka_unit_test(test_adam_messages),
        cmocka_unit_test(test_adam_failures_change_nothing),
        cmocka_unit_test(test_adam_object),
        cmocka_unit_test(test_sgd_momentum_buffer_mismatch),
        cmocka_unit_test(test_adam_threads_same_bits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
