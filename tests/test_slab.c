/*
 * test_slab.c - parameter slabs (runtime/slab.c): lunet_slab_pack moves the parameters that
 * may move and leaves the others; gradients land in the slab at the first backward; the
 * one-loop SGD step (lunet_sgd_update_all) and the one-memset zero_grad give the bits of the
 * per-parameter path on 1, 2 and 3 threads, for every SGD option, and fall back with the same
 * bits when a gradient is replaced or dropped; the C optimizer object takes the same path.
 */
#include "check.h"

#include <stdlib.h>

#define NP 5
/* l1's weight (75000 elements) is more than one 65536-element block of the pool; the float64
   parameter in the middle splits the list into runs */
static const int64_t SHAPES[NP][2] = {{300, 250}, {250, 1}, {7, 250}, {7, 250}, {7, 1}};
static const int NDIMS[NP] = {2, 1, 2, 2, 1};
static const lunet_dtype_t DTYPES[NP] = {LUNET_DTYPE_FLOAT32, LUNET_DTYPE_FLOAT32,
                                         LUNET_DTYPE_FLOAT64, LUNET_DTYPE_FLOAT32,
                                         LUNET_DTYPE_FLOAT32};

static lunet_generator_t *gen(uint64_t seed)
{
    lunet_generator_t *g = lunet_default_generator();
    lunet_generator_seed(g, seed);
    return g;
}

/* the same parameters for every call */
static void make_params(lunet_tensor_t **p)
{
    lunet_generator_t *g = gen(5);
    for (int i = 0; i < NP; i++) {
        CHECK_OK(lunet_tensor_empty(&p[i], DTYPES[i], NDIMS[i], SHAPES[i]));
        CHECK_OK(lunet_tensor_normal_(p[i], g, 0, 0.1));
        CHECK_OK(lunet_tensor_requires_grad_(p[i], true));
    }
}

static void release_all(lunet_tensor_t **t, int n)
{
    for (int i = 0; i < n; i++) {
        lunet_tensor_release(t[i]);
        t[i] = NULL;
    }
}

/* backward of sum_i sum(p_i * w_i) with w drawn from the step's seed: p_i.grad += w_i */
static void backward(lunet_tensor_t **p, int step)
{
    lunet_generator_t *g = gen(100 + (uint64_t)step);
    lunet_tensor_t *loss = NULL;
    for (int i = 0; i < NP; i++) {
        lunet_tensor_t *w, *pw, *s, *sum;
        CHECK_OK(lunet_tensor_empty(&w, DTYPES[i], NDIMS[i], SHAPES[i]));
        CHECK_OK(lunet_tensor_normal_(w, g, 0, 1));
        CHECK_OK(lunet_tensor_binary(&pw, LUNET_BINARY_MUL, p[i], w));
        CHECK_OK(lunet_tensor_reduce(&s, NULL, LUNET_REDUCE_SUM, pw, 0, NULL, false));
        if (loss) {
            CHECK_OK(lunet_tensor_binary(&sum, LUNET_BINARY_ADD, loss, s));
            lunet_tensor_release(loss);
            lunet_tensor_release(s);
            loss = sum;
        } else {
            loss = s;
        }
        lunet_tensor_release(w);
        lunet_tensor_release(pw);
    }
    CHECK_OK(lunet_tensor_backward(loss, NULL, false));
    lunet_tensor_release(loss);
}

/* what a test does to the gradients before a step: nothing, replace one, drop one */
typedef enum { KEEP, REPLACE, DROP } grad_change_t;

static void change_grads(lunet_tensor_t **p, int step, grad_change_t how)
{
    if (how == REPLACE && step == 2) {
        lunet_tensor_t *g;
        CHECK_OK(lunet_tensor_full(&g, DTYPES[3], NDIMS[3], SHAPES[3], 0.25));
        CHECK_OK(lunet_tensor_set_grad(p[3], g));
        lunet_tensor_release(g);
    }
    if (how == DROP && step >= 2)
        CHECK_OK(lunet_tensor_set_grad(p[step % NP], NULL));
}

/* 4 steps of zero_grad, backward, SGD: packed with the one-loop calls, or not with the
   per-parameter calls (PyTorch's algorithm, tests/test_nn.c). */
static void train(lunet_tensor_t **p, lunet_tensor_t **buf, bool packed,
                  const lunet_sgd_options_t *o, grad_change_t how)
{
    make_params(p);
    for (int i = 0; i < NP; i++)
        buf[i] = NULL;
    if (packed) {
        int moved = -1;
        CHECK_OK(lunet_slab_pack(NP, p, &moved));
        assert_int_equal(moved, 4); /* the lone float64 parameter stays */
    }
    for (int step = 0; step < 4; step++) {
        if (packed) {
            CHECK_OK(lunet_slab_zero_grads(NP, p));
        } else {
            for (int i = 0; i < NP; i++)
                if (p[i]->grad)
                    CHECK_OK(lunet_tensor_fill_(p[i]->grad, 0));
        }
        backward(p, step);
        change_grads(p, step, how);
        if (packed) {
            CHECK_OK(lunet_sgd_update_all(NP, p, buf, o));
        } else {
            for (int i = 0; i < NP; i++)
                if (p[i]->grad)
                    CHECK_OK(lunet_sgd_update(p[i], p[i]->grad, &buf[i], o));
        }
    }
}

static void expect_same(lunet_tensor_t *got, lunet_tensor_t *want, const char *what, int i,
                        const char *config)
{
    if (!got || !want) {
        if (got != want)
            fail_msg("%s %d (%s): got %s, expected %s", what, i, config, got ? "a tensor" : "NULL",
                     want ? "a tensor" : "NULL");
        return;
    }
    for (int64_t k = 0; k < want->numel; k++) {
        double a = lunet_tensor_get(got, k), b = lunet_tensor_get(want, k);
        if (memcmp(&a, &b, sizeof a) != 0)
            fail_msg("%s %d (%s) element %lld: got %.17g, expected %.17g", what, i, config,
                     (long long)k, a, b);
    }
}

static const lunet_sgd_options_t CONFIGS[] = {
    {.lr = 0.01, .momentum = 0.5},
    {.lr = 0.05},
    {.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-3, .nesterov = true},
    {.lr = 0.03, .momentum = 0.9, .dampening = 0.3, .weight_decay = 1e-2, .maximize = true},
};
#define NCONFIGS ((int)(sizeof CONFIGS / sizeof CONFIGS[0]))

static void compare_runs(grad_change_t how)
{
    static const char *const HOW[] = {"grads kept", "one grad replaced", "grads dropped"};
    for (int c = 0; c < NCONFIGS; c++) {
        lunet_tensor_t *want[NP], *wbuf[NP];
        CHECK_OK(lunet_set_num_threads(1));
        train(want, wbuf, false, &CONFIGS[c], how);
        for (int th = 1; th <= 3; th++) {
            char config[160];
            snprintf(config, sizeof config,
                     "%s, lr %g momentum %g dampening %g wd %g%s%s, %d threads", HOW[how],
                     CONFIGS[c].lr, CONFIGS[c].momentum, CONFIGS[c].dampening,
                     CONFIGS[c].weight_decay, CONFIGS[c].nesterov ? " nesterov" : "",
                     CONFIGS[c].maximize ? " maximize" : "", th);
            CHECK_OK(lunet_set_num_threads(th));
            lunet_tensor_t *got[NP], *gbuf[NP];
            train(got, gbuf, true, &CONFIGS[c], how);
            for (int i = 0; i < NP; i++) {
                expect_same(got[i], want[i], "parameter", i, config);
                expect_same(got[i]->grad, want[i]->grad, "gradient", i, config);
                expect_same(gbuf[i], wbuf[i], "momentum buffer", i, config);
            }
            release_all(got, NP);
            release_all(gbuf, NP);
        }
        release_all(want, NP);
        release_all(wbuf, NP);
    }
}

static void test_same_bits_as_per_parameter(void **state)
{
    (void)state;
    compare_runs(KEEP);
}

static void test_fallbacks_same_bits(void **state)
{
    (void)state;
    compare_runs(REPLACE);
    compare_runs(DROP);
}

static void test_layout(void **state)
{
    (void)state;
    lunet_tensor_t *p[NP], *buf[NP];
    train(p, buf, true, &CONFIGS[0], KEEP);
    /* f32 slab: 75000, 250 -> 256, 1750 -> 1760, 7; the momentum buffers of each run of the
       list ({0, 1} and {3, 4}: the float64 parameter cuts it) get a slab of their own */
    static const int64_t offsets[NP] = {0, 75008, 0, 75264, 77024};
    static const int64_t buf_offsets[NP] = {0, 75008, 0, 0, 1760};
    for (int i = 0; i < NP; i++) {
        if (i == 2) { /* float64: alone in its dtype, stays on its own storage */
            assert_true(p[i]->storage != p[0]->storage);
            assert_null(p[i]->grad_home);
            continue;
        }
        if (p[i]->offset != offsets[i] || p[i]->grad->offset != offsets[i] ||
            buf[i]->offset != buf_offsets[i])
            fail_msg("parameter %d: offsets %lld (grad %lld, buffer %lld), expected %lld (%lld)", i,
                     (long long)p[i]->offset, (long long)p[i]->grad->offset,
                     (long long)buf[i]->offset, (long long)offsets[i], (long long)buf_offsets[i]);
        assert_ptr_equal(p[i]->storage, p[0]->storage);
        assert_ptr_equal(p[i]->grad->storage, p[0]->grad->storage);
        assert_ptr_equal(buf[i]->storage, buf[i < 2 ? 0 : 3]->storage);
        assert_null(p[i]->grad_home); /* used by the first backward */
    }
    CHECK_OK(lunet_slab_zero_grads(NP, p));
    for (int i = 0; i < NP; i++)
        for (int64_t k = 0; k < p[i]->numel; k++)
            if (lunet_tensor_get(p[i]->grad, k) != 0)
                fail_msg("gradient %d element %lld not zeroed: %g", i, (long long)k,
                         lunet_tensor_get(p[i]->grad, k));
    release_all(p, NP);
    release_all(buf, NP);
}

/* A tensor listed twice (a C host's list) moves once: one place, one reserved gradient (the
   second listing used to leak the first's and leave a dead slot), its values kept. */
static void test_listed_twice(void **state)
{
    (void)state;
    lunet_tensor_t *p[NP];
    make_params(p);
    double first = lunet_tensor_get(p[0], 0), last = lunet_tensor_get(p[0], p[0]->numel - 1);
    lunet_tensor_t *list[3] = {p[0], p[1], p[0]};
    int packed = -1;
    CHECK_OK(lunet_slab_pack(3, list, &packed));
    if (packed != 2)
        fail_msg("packed %d tensors, expected 2 (p0 listed twice)", packed);
    assert_ptr_equal(p[0]->storage, p[1]->storage);
    assert_int_equal(p[0]->offset, 0);
    assert_int_equal(p[1]->offset, 75008); /* right after p0: no slot for its second listing */
    assert_non_null(p[0]->grad_home);
    assert_true(lunet_tensor_get(p[0], 0) == first);
    assert_true(lunet_tensor_get(p[0], p[0]->numel - 1) == last);
    release_all(p, NP); /* ASan's leak check: the reserved gradients go with their tensors */
}

static void test_what_stays(void **state)
{
    (void)state;
    lunet_tensor_t *p[NP], *view = NULL, *t = NULL;
    make_params(p);
    CHECK_OK(lunet_tensor_detach(&view, p[0])); /* shares p[0]'s memory */
    lunet_tensor_t *g;
    CHECK_OK(lunet_tensor_zeros(&g, DTYPES[1], NDIMS[1], SHAPES[1]));
    CHECK_OK(lunet_tensor_set_grad(p[1], g)); /* has a gradient */
    lunet_tensor_release(g);
    CHECK_OK(lunet_tensor_requires_grad_(p[3], false)); /* needs none */
    int moved = -1;
    CHECK_OK(lunet_slab_pack(NP, p, &moved));
    assert_int_equal(moved, 0); /* p[4] alone would be a slab of one */
    for (int i = 0; i < NP; i++)
        assert_int_equal(p[i]->offset, 0);
    assert_ptr_equal(view->storage, p[0]->storage);
    /* two that may move, a transposed one that may not */
    lunet_tensor_t *q[3];
    int64_t s2[2] = {4, 3};
    CHECK_OK(lunet_tensor_zeros(&t, LUNET_DTYPE_FLOAT32, 2, s2));
    CHECK_OK(lunet_tensor_transpose(&q[0], t, 0, 1));
    lunet_tensor_release(t);
    CHECK_OK(lunet_tensor_requires_grad_(q[0], true));
    CHECK_OK(lunet_tensor_full(&q[1], LUNET_DTYPE_FLOAT32, 2, s2, 1.5));
    CHECK_OK(lunet_tensor_full(&q[2], LUNET_DTYPE_FLOAT32, 1, s2, 2.5));
    CHECK_OK(lunet_tensor_requires_grad_(q[1], true));
    CHECK_OK(lunet_tensor_requires_grad_(q[2], true));
    CHECK_OK(lunet_slab_pack(3, q, &moved));
    assert_int_equal(moved, 2);
    assert_ptr_equal(q[1]->storage, q[2]->storage);
    assert_int_equal(q[2]->offset, 16);
    assert_true(lunet_tensor_get(q[1], 11) == 1.5 && lunet_tensor_get(q[2], 3) == 2.5);
    CHECK_OK(lunet_slab_pack(3, q, &moved)); /* packed ones stay where they are */
    assert_int_equal(moved, 0);
    assert_int_equal(q[2]->offset, 16);
    release_all(q, 3);
    lunet_tensor_release(view);
    release_all(p, NP);
}

static void test_optimizer_object(void **state)
{
    (void)state;
    CHECK_OK(lunet_set_num_threads(2));
    lunet_tensor_t *want[NP], *wbuf[NP], *p[NP];
    train(want, wbuf, false, &CONFIGS[2], KEEP);
    make_params(p);
    CHECK_OK(lunet_slab_pack(NP, p, NULL));
    lunet_optimizer_t *opt;
    CHECK_OK(lunet_sgd_new(&opt, NP, p, &CONFIGS[2]));
    for (int step = 0; step < 4; step++) {
        CHECK_OK(lunet_optimizer_zero_grad(opt));
        backward(p, step);
        CHECK_OK(lunet_optimizer_step(opt));
    }
    for (int i = 0; i < NP; i++)
        expect_same(p[i], want[i], "parameter", i, "lunet_optimizer_t, nesterov");
    lunet_optimizer_free(opt);
    release_all(p, NP);
    release_all(want, NP);
    release_all(wbuf, NP);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_bits_as_per_parameter),
        cmocka_unit_test(test_fallbacks_same_bits),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_listed_twice),
        cmocka_unit_test(test_what_stays),
        cmocka_unit_test(test_optimizer_object),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
