/*
 * test_loss_threads.c - cross_entropy (forward and backward, index and probability targets,
 * label smoothing, reduction 'none') and softmax / log_softmax (forward and backward) split
 * their positions over the worker pool: 1, 2 and 3 threads must give the same bits, in
 * float32 and float64, for (N, C) and (N, C, d) shapes, and for a class count above the
 * per-block stack scratch (which runs on the calling thread).
 */
#include "check.h"

#include <stdlib.h>
#include <string.h>

static double value(int64_t i)
{
    uint32_t h = (uint32_t)(i * 2654435761u);
    h ^= h >> 13;
    h *= 0x5bd1e995u;
    h ^= h >> 15;
    return ((double)(h % 20001) - 10000.0) / 1234.5;
}

static lunet_tensor_t *filled(lunet_dtype_t dt, int nd, const int64_t *shape, double scale)
{
    lunet_tensor_t *t;
    CHECK_OK(lunet_tensor_empty(&t, dt, nd, shape));
    for (int64_t i = 0; i < t->numel; i++) {
        if (dt == LUNET_DTYPE_FLOAT32)
            ((float *)lunet_tensor_data(t))[i] = (float)(value(i + 17) * scale);
        else
            ((double *)lunet_tensor_data(t))[i] = value(i + 17) * scale;
    }
    return t;
}

static void same_bits(lunet_tensor_t *a, lunet_tensor_t *b, const char *what, int th)
{
    assert_int_equal(a->numel, b->numel);
    size_t es = a->dtype == LUNET_DTYPE_FLOAT32 ? 4 : 8;
    if (memcmp(lunet_tensor_data(a), lunet_tensor_data(b), (size_t)a->numel * es) != 0)
        for (int64_t i = 0; i < a->numel; i++)
            if (lunet_tensor_get(a, i) != lunet_tensor_get(b, i))
                fail_msg("%s on %d threads: element %lld is %.17g, on 1 thread %.17g", what, th,
                         (long long)i, lunet_tensor_get(b, i), lunet_tensor_get(a, i));
}

typedef struct results {
    lunet_tensor_t *t[6];
} results_t;

// x (N, C[, d]) logits: CE (smoothed, 'none') + its backward, CE with probability targets
// ('sum') + backward, softmax and log_softmax over dim 1 + their backwards
static void run_all(results_t *r, lunet_tensor_t *x, lunet_tensor_t *idx, lunet_tensor_t *prob)
{
    lunet_loss_options_t o;
    lunet_loss_options_init(&o);
    o.label_smoothing = 0.1;
    o.reduction = LUNET_REDUCTION_NONE;
    lunet_tensor_t *l, *g, *l2, *g2, *s, *ls, *gs, *gls;
    CHECK_OK(lunet_loss_cross_entropy(&l, x, idx, &o));
    lunet_tensor_t *ones;
    CHECK_OK(lunet_tensor_full(&ones, l->dtype, l->ndim, l->shape, 1.0));
    CHECK_OK(lunet_loss_cross_entropy_backward(&g, ones, x, idx, &o));
    lunet_loss_options_init(&o);
    o.reduction = LUNET_REDUCTION_SUM;
    CHECK_OK(lunet_loss_cross_entropy(&l2, x, prob, &o));
    lunet_tensor_t *one;
    CHECK_OK(lunet_tensor_full(&one, l2->dtype, l2->ndim, l2->shape, 1.0));
    CHECK_OK(lunet_loss_cross_entropy_backward(&g2, one, x, prob, &o));
    CHECK_OK(lunet_tensor_softmax(&s, x, 1));
    CHECK_OK(lunet_tensor_log_softmax(&ls, x, 1));
    CHECK_OK(lunet_tensor_softmax_backward(&gs, prob, s, 1));
    CHECK_OK(lunet_tensor_log_softmax_backward(&gls, prob, ls, 1));
    lunet_tensor_t *cat[6] = {l, g, l2, g2, gs, gls};
    for (int k = 0; k < 6; k++)
        r->t[k] = cat[k];
    lunet_tensor_release(ones);
    lunet_tensor_release(one);
    lunet_tensor_release(s);
    lunet_tensor_release(ls);
}

static void test_loss_and_softmax_threads(void **state)
{
    (void)state;
    static const char *const names[6] = {"cross_entropy (smoothed, none)",
                                         "its backward",
                                         "cross_entropy (probabilities)",
                                         "its backward",
                                         "softmax backward",
                                         "log_softmax backward"};
    static const int64_t shapes[][3] = {{4096, 100, 0}, {300, 7, 33}, {70, 1500, 0}};
    int saved = lunet_get_num_threads();
    for (int dt = 0; dt < 2; dt++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            lunet_dtype_t dtype = dt ? LUNET_DTYPE_FLOAT64 : LUNET_DTYPE_FLOAT32;
            int nd = shapes[s][2] ? 3 : 2;
            lunet_tensor_t *x = filled(dtype, nd, shapes[s], 1.0);
            lunet_tensor_t *p0 = filled(dtype, nd, shapes[s], 0.1), *prob;
            CHECK_OK(lunet_tensor_softmax(&prob, p0, 1));
            int64_t ishape[2] = {shapes[s][0], shapes[s][2]};
            lunet_tensor_t *idx;
            CHECK_OK(lunet_tensor_empty(&idx, LUNET_DTYPE_INT64, nd - 1, ishape));
            for (int64_t i = 0; i < idx->numel; i++)
                ((int64_t *)lunet_tensor_data(idx))[i] = (i * 7 + 3) % shapes[s][1];
            results_t r[3];
            for (int th = 1; th <= 3; th++) {
                CHECK_OK(lunet_set_num_threads(th));
                run_all(&r[th - 1], x, idx, prob);
            }
            for (int th = 2; th <= 3; th++)
                for (int k = 0; k < 6; k++)
                    same_bits(r[0].t[k], r[th - 1].t[k], names[k], th);
            for (int th = 0; th < 3; th++)
                for (int k = 0; k < 6; k++)
                    lunet_tensor_release(r[th].t[k]);
            lunet_tensor_release(x);
            lunet_tensor_release(p0);
            lunet_tensor_release(prob);
            lunet_tensor_release(idx);
        }
    CHECK_OK(lunet_set_num_threads(saved));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loss_and_softmax_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
