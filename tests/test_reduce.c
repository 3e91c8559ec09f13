/*
 * test_reduce.c - float sums and means (runtime/reduce.c): over the leading dims of a
 * contiguous tensor they are read in place, column by column, and must give exactly the
 * bits of the permuted, copied row reduction; and every reduction gives the same bits on 1,
 * 2 and 3 threads (its blocks depend on the shape only).  float32 and float64, odd shapes,
 * row counts on both sides of the float32 kernel's 8-row switch.
 */
#include "check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double value(int64_t i)
{
    uint32_t h = (uint32_t)(i * 2654435761u);
    h ^= h >> 13;
    h *= 0x5bd1e995u;
    h ^= h >> 15;
    /* signed, over 2^-30 .. 2^30: sums that round, even in double */
    return ((double)(h % 200001) - 100000.0) / 3.7 * ldexp(1.0, (int)((h >> 20) % 61) - 30);
}

static lunet_tensor_t *filled(lunet_dtype_t dt, int nd, const int64_t *shape)
{
    lunet_tensor_t *t;
    CHECK_OK(lunet_tensor_empty(&t, dt, nd, shape));
    for (int64_t i = 0; i < t->numel; i++) {
        if (dt == LUNET_DTYPE_FLOAT32)
            ((float *)lunet_tensor_data(t))[i] = (float)value(i);
        else
            ((double *)lunet_tensor_data(t))[i] = value(i);
    }
    return t;
}

static void assert_same_bits(lunet_tensor_t *a, lunet_tensor_t *b, const char *what)
{
    assert_int_equal(a->numel, b->numel);
    size_t es = a->dtype == LUNET_DTYPE_FLOAT32 ? 4 : 8;
    const char *pa = lunet_tensor_data(a), *pb = lunet_tensor_data(b);
    for (int64_t i = 0; i < a->numel; i++)
        if (memcmp(pa + (size_t)i * es, pb + (size_t)i * es, es) != 0)
            fail_msg("%s: element %lld: %.17g vs %.17g", what, (long long)i, lunet_tensor_get(a, i),
                     lunet_tensor_get(b, i));
}

/* (R, M) and (A, B, M) reduced over the leading dims, against the copied row reduction. */
static void test_leading_dims_in_place(void **state)
{
    (void)state;
    static const int64_t shapes[][3] = {{1, 10, 0},  {3, 10, 0},   {7, 65, 0},   {8, 1, 0},
                                        {9, 130, 0}, {256, 10, 0}, {1001, 3, 0}, {3, 5, 7}};
    for (int dt = 0; dt < 2; dt++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int op = 0; op < 2; op++)
                for (int keep = 0; keep < 2; keep++) {
                    lunet_dtype_t dtype = dt ? LUNET_DTYPE_FLOAT64 : LUNET_DTYPE_FLOAT32;
                    int nd = shapes[s][2] ? 3 : 2, nred = nd - 1;
                    lunet_tensor_t *x = filled(dtype, nd, shapes[s]);
                    int64_t dims[2] = {0, 1}, back[2] = {1, 2};
                    int64_t perm[3] = {nd - 1, 0, 1};
                    lunet_reduce_op_t rop = op ? LUNET_REDUCE_MEAN : LUNET_REDUCE_SUM;
                    lunet_tensor_t *y, *p, *pc, *want, *flat;
                    CHECK_OK(lunet_tensor_reduce(&y, NULL, rop, x, nred, dims, keep));
                    CHECK_OK(lunet_tensor_permute(&p, x, nd, perm));
                    CHECK_OK(lunet_tensor_contiguous(&pc, p));
                    CHECK_OK(lunet_tensor_reduce(&want, NULL, rop, pc, nred, back, false));
                    CHECK_OK(lunet_tensor_reshape(&flat, y, 1, &want->numel));
                    assert_int_equal(y->ndim, keep ? nd : 1);
                    assert_same_bits(flat, want, "leading dims in place vs copied rows");
                    lunet_tensor_release(x);
                    lunet_tensor_release(y);
                    lunet_tensor_release(p);
                    lunet_tensor_release(pc);
                    lunet_tensor_release(want);
                    lunet_tensor_release(flat);
                }
}

/* Large reductions are split over the pool; 1, 2 and 3 threads give the same bits. */
static void test_threads_same_bits(void **state)
{
    (void)state;
    int saved = lunet_get_num_threads();
    static const int64_t shapes[][2] = {{300, 1000}, {5, 100003}, {70000, 3}};
    for (int dt = 0; dt < 2; dt++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int64_t d = 0; d < 2; d++) {
                lunet_dtype_t dtype = dt ? LUNET_DTYPE_FLOAT64 : LUNET_DTYPE_FLOAT32;
                lunet_tensor_t *x = filled(dtype, 2, shapes[s]), *y[3];
                for (int th = 1; th <= 3; th++) {
                    CHECK_OK(lunet_set_num_threads(th));
                    CHECK_OK(
                        lunet_tensor_reduce(&y[th - 1], NULL, LUNET_REDUCE_SUM, x, 1, &d, false));
                }
                assert_same_bits(y[0], y[1], "1 vs 2 threads");
                assert_same_bits(y[0], y[2], "1 vs 3 threads");
                for (int th = 0; th < 3; th++)
                    lunet_tensor_release(y[th]);
                lunet_tensor_release(x);
            }
    CHECK_OK(lunet_set_num_threads(saved));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leading_dims_in_place),
        cmocka_unit_test(test_threads_same_bits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
