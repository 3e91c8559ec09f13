/*
 * test_tensor.c - the tensor core: creation, views, broadcasting, promotion, reductions,
 * indexing, matmul (against a naive product at awkward shapes) and their error texts.
 */
#include "check.h"

#include <stdlib.h>

static lunet_tensor_t *arange_f(int64_t n, lunet_dtype_t dt)
{
    lunet_tensor_t *t;
    CHECK_OK(lunet_tensor_arange(&t, dt, 0, (double)n, 1));
    return t;
}

static lunet_tensor_t *shaped(lunet_tensor_t *t, int nd, const int64_t *shape)
{
    lunet_tensor_t *v;
    CHECK_OK(lunet_tensor_reshape(&v, t, nd, shape));
    lunet_tensor_release(t);
    return v;
}

static void test_creation(void **state)
{
    (void)state;
    lunet_tensor_t *t;
    int64_t shape[2] = {2, 3};
    CHECK_OK(lunet_tensor_full(&t, LUNET_DTYPE_FLOAT32, 2, shape, 1.5));
    assert_int_equal(t->numel, 6);
    assert_int_equal(t->strides[0], 3);
    assert_true(((uintptr_t)lunet_tensor_data(t)) % 64 == 0);
    double want[6] = {1.5, 1.5, 1.5, 1.5, 1.5, 1.5};
    CHECK_TENSOR(t, want, 6, 0);
    lunet_tensor_release(t);

    CHECK_OK(lunet_tensor_arange(&t, LUNET_DTYPE_INT64, 1, 7, 1));
    double w2[6] = {1, 2, 3, 4, 5, 6};
    CHECK_TENSOR(t, w2, 6, 0);
    lunet_tensor_release(t);

    CHECK_OK(lunet_tensor_linspace(&t, LUNET_DTYPE_FLOAT32, 0, 1, 5));
    double w3[5] = {0, 0.25, 0.5, 0.75, 1};
    CHECK_TENSOR(t, w3, 5, 0);
    lunet_tensor_release(t);

    CHECK_OK(lunet_tensor_eye(&t, LUNET_DTYPE_FLOAT64, 2, 3));
    double w4[6] = {1, 0, 0, 0, 1, 0};
    CHECK_TENSOR(t, w4, 6, 0);
    lunet_tensor_release(t);

    int64_t bad[1] = {-2};
    CHECK_FAILS(lunet_tensor_empty(&t, LUNET_DTYPE_FLOAT32, 1, bad), LUNET_STATUS_RUNTIME,
                "negative dimension -2");
    CHECK_FAILS(lunet_tensor_arange(&t, LUNET_DTYPE_FLOAT32, 0, 1, 0), LUNET_STATUS_RUNTIME,
                "step must be nonzero");
}

static void test_views_share_storage(void **state)
{
    (void)state;
    int64_t s23[2] = {2, 3};
    lunet_tensor_t *a = shaped(arange_f(6, LUNET_DTYPE_FLOAT32), 2, s23);
    lunet_tensor_t *t, *row, *tt;
    CHECK_OK(lunet_tensor_transpose(&t, a, 0, 1));
    assert_int_equal(t->shape[0], 3);
    assert_int_equal(t->strides[0], 1);
    assert_int_equal(t->strides[1], 3);
    assert_false(lunet_tensor_is_contiguous(t));
    double wt[6] = {0, 3, 1, 4, 2, 5};
    CHECK_TENSOR(t, wt, 6, 0);
    /* a view of a view, written through */
    CHECK_OK(lunet_tensor_select(&row, t, 0, 1)); /* column 1 of a: [1, 4] */
    double wr[2] = {1, 4};
    CHECK_TENSOR(row, wr, 2, 0);
    CHECK_OK(lunet_tensor_fill_(row, 9));
    double wa[6] = {0, 9, 2, 3, 9, 5};
    CHECK_TENSOR(a, wa, 6, 0);
    /* view of a transposed tensor is refused; reshape copies */
    int64_t flat[1] = {-1};
    CHECK_FAILS(lunet_tensor_view(&tt, t, 1, flat), LUNET_STATUS_RUNTIME,
                "view size is not compatible with input tensor's size and stride");
    CHECK_OK(lunet_tensor_reshape(&tt, t, 1, flat));
    double wf[6] = {0, 3, 9, 9, 2, 5};
    CHECK_TENSOR(tt, wf, 6, 0);
    lunet_tensor_release(tt);
    /* narrow + unsqueeze + squeeze + permute + flatten */
    lunet_tensor_t *nw, *u, *sq, *p, *fl;
    CHECK_OK(lunet_tensor_narrow(&nw, a, 1, 1, 2));
    double wn[4] = {9, 2, 9, 5};
    CHECK_TENSOR(nw, wn, 4, 0);
    CHECK_OK(lunet_tensor_unsqueeze(&u, nw, 1));
    assert_int_equal(u->ndim, 3);
    assert_int_equal(u->shape[1], 1);
    CHECK_OK(lunet_tensor_squeeze(&sq, u, LUNET_ALL_DIMS));
    assert_int_equal(sq->ndim, 2);
    int64_t perm[3] = {2, 0, 1};
    CHECK_OK(lunet_tensor_permute(&p, u, 3, perm));
    assert_int_equal(p->shape[0], 2);
    assert_int_equal(p->shape[1], 2);
    assert_int_equal(p->shape[2], 1);
    CHECK_OK(lunet_tensor_flatten(&fl, p, 0, -1));
    double wp[4] = {9, 9, 2, 5};
    CHECK_TENSOR(fl, wp, 4, 0);
    lunet_tensor_release(fl);
    lunet_tensor_release(p);
    lunet_tensor_release(sq);
    lunet_tensor_release(u);
    lunet_tensor_release(nw);
    lunet_tensor_release(row);
    lunet_tensor_release(t);

    /* view errors (docs/pytorch-parity.md §11.5) */
    int64_t s4m1[2] = {4, -1}, s2m1m1[2] = {-1, -1};
    CHECK_FAILS(lunet_tensor_view(&tt, a, 2, s4m1), LUNET_STATUS_RUNTIME,
                "shape '[4, -1]' is invalid for input of size 6");
    CHECK_FAILS(lunet_tensor_view(&tt, a, 2, s2m1m1), LUNET_STATUS_RUNTIME,
                "only one dimension can be inferred");
    CHECK_FAILS(lunet_tensor_select(&tt, a, 1, 3), LUNET_STATUS_INDEX,
                "select(): index 3 out of range for tensor of size [2, 3] at dimension 1");
    CHECK_FAILS(lunet_tensor_transpose(&tt, a, 0, 2), LUNET_STATUS_INDEX,
                "Dimension out of range (expected to be in range of [-2, 1], but got 2)");
    lunet_tensor_release(a);

    lunet_tensor_t *z, *zz;
    int64_t s03[2] = {0, 3}, s0m1[2] = {0, -1};
    CHECK_OK(lunet_tensor_empty(&z, LUNET_DTYPE_FLOAT32, 2, s03));
    CHECK_FAILS(lunet_tensor_view(&zz, z, 2, s0m1), LUNET_STATUS_RUNTIME,
                "cannot reshape tensor of 0 elements into shape [0, -1] because the unspecified "
                "dimension size -1 can be any value and is ambiguous");
    lunet_tensor_release(z);
}

static void test_expand(void **state)
{
    (void)state;
    int64_t s21[2] = {2, 1}, s23[2] = {2, 3}, s33[2] = {3, 3};
    double v[2] = {1, 2};
    lunet_tensor_t *a = tensor_of(LUNET_DTYPE_FLOAT32, 2, s21, v), *e, *b;
    CHECK_OK(lunet_tensor_expand(&e, a, 2, s23));
    assert_int_equal(e->strides[0], 1);
    assert_int_equal(e->strides[1], 0);
    assert_false(lunet_tensor_is_contiguous(e));
    double w[6] = {1, 1, 1, 2, 2, 2};
    CHECK_TENSOR(e, w, 6, 0);
    CHECK_FAILS(lunet_tensor_fill_(e, 0), LUNET_STATUS_RUNTIME,
                "more than one element of the written-to tensor refers to a single memory "
                "location");
    int64_t one[1] = {2};
    lunet_tensor_t *v1 = tensor_of(LUNET_DTYPE_FLOAT32, 1, one, v);
    CHECK_FAILS(lunet_tensor_expand(&b, v1, 2, s33), LUNET_STATUS_RUNTIME,
                "The expanded size of the tensor (3) must match the existing size (2) at "
                "non-singleton dimension 1.  Target sizes: [3, 3].  Tensor sizes: [2]");
    lunet_tensor_release(v1);
    lunet_tensor_release(e);
    lunet_tensor_release(a);
}

static void test_broadcasting(void **state)
{
    (void)state;
    int64_t s213[3] = {2, 1, 3}, s41[2] = {4, 1};
    lunet_tensor_t *a = shaped(arange_f(6, LUNET_DTYPE_FLOAT32), 3, s213);
    lunet_tensor_t *b = shaped(arange_f(4, LUNET_DTYPE_FLOAT32), 2, s41);
    lunet_tensor_t *c;
    CHECK_OK(lunet_tensor_binary(&c, LUNET_BINARY_ADD, a, b));
    assert_int_equal(c->ndim, 3);
    assert_int_equal(c->shape[0], 2);
    assert_int_equal(c->shape[1], 4);
    assert_int_equal(c->shape[2], 3);
    /* c[i][j][k] = a[i][0][k] + b[j][0] */
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++)
            for (int k = 0; k < 3; k++)
                CHECK_CLOSE(lunet_tensor_get(c, (i * 4 + j) * 3 + k), i * 3 + k + j, 0);
    lunet_tensor_release(c);

    /* (2, 3) + (5, 4, 3): mismatch reported at dim 1 of the result */
    int64_t s23[2] = {2, 3}, s543[3] = {5, 4, 3};
    lunet_tensor_t *x, *y;
    CHECK_OK(lunet_tensor_zeros(&x, LUNET_DTYPE_FLOAT32, 2, s23));
    CHECK_OK(lunet_tensor_zeros(&y, LUNET_DTYPE_FLOAT32, 3, s543));
    CHECK_FAILS(lunet_tensor_binary(&c, LUNET_BINARY_ADD, x, y), LUNET_STATUS_RUNTIME,
                "The size of tensor a (2) must match the size of tensor b (4) at non-singleton "
                "dimension 1");
    /* in place may broadcast only the other operand */
    int64_t s13[2] = {1, 3};
    lunet_tensor_t *o13;
    CHECK_OK(lunet_tensor_zeros(&o13, LUNET_DTYPE_FLOAT32, 2, s13));
    CHECK_FAILS(lunet_tensor_binary_(o13, LUNET_BINARY_ADD, x), LUNET_STATUS_RUNTIME,
                "output with shape [1, 3] doesn't match the broadcast shape [2, 3]");
    /* (0, 1) + (3) -> (0, 3) */
    int64_t s01[2] = {0, 1}, s3[1] = {3};
    lunet_tensor_t *e01, *e3;
    CHECK_OK(lunet_tensor_zeros(&e01, LUNET_DTYPE_FLOAT32, 2, s01));
    CHECK_OK(lunet_tensor_zeros(&e3, LUNET_DTYPE_FLOAT32, 1, s3));
    CHECK_OK(lunet_tensor_binary(&c, LUNET_BINARY_ADD, e01, e3));
    assert_int_equal(c->shape[0], 0);
    assert_int_equal(c->shape[1], 3);
    lunet_tensor_release(c);
    lunet_tensor_release(e01);
    lunet_tensor_release(e3);
    lunet_tensor_release(o13);
    lunet_tensor_release(x);
    lunet_tensor_release(y);
    lunet_tensor_release(a);
    lunet_tensor_release(b);
}

static lunet_dtype_t promo(lunet_dtype_t a, int atier, lunet_dtype_t b, int btier)
{
    /* tier: 2 = dimensioned, 1 = 0-d tensor, 0 = plain number */
    lunet_tensor_t ta = {.dtype = a, .ndim = atier == 2 ? 1 : 0, .wrapped_number = atier == 0};
    lunet_tensor_t tb = {.dtype = b, .ndim = btier == 2 ? 1 : 0, .wrapped_number = btier == 0};
    return lunet_result_dtype(&ta, &tb);
}

static void test_promotion(void **state)
{
    (void)state;
    const lunet_dtype_t F = LUNET_DTYPE_FLOAT32, D = LUNET_DTYPE_FLOAT64, L = LUNET_DTYPE_INT64,
                        U = LUNET_DTYPE_UINT8, B = LUNET_DTYPE_BOOL;
    assert_int_equal(promo(F, 2, L, 2), F);
    assert_int_equal(promo(L, 2, F, 2), F);
    assert_int_equal(promo(L, 2, D, 2), D);
    assert_int_equal(promo(F, 2, D, 2), D);
    assert_int_equal(promo(L, 2, D, 0), F); /* int64 + 2.5 -> float32 */
    assert_int_equal(promo(L, 2, L, 0), L); /* int64 * 2 */
    assert_int_equal(promo(F, 2, L, 0), F); /* float32 + 1 */
    assert_int_equal(promo(F, 2, D, 1), F); /* float32 + 0-d float64 */
    assert_int_equal(promo(L, 2, D, 1), D); /* int64 + 0-d float64 */
    assert_int_equal(promo(B, 2, L, 2), L);
    assert_int_equal(promo(B, 2, D, 0), F); /* bool + 1.5 */
    assert_int_equal(promo(B, 2, L, 0), L); /* bool * 2 */
    assert_int_equal(promo(U, 2, L, 2), L);

    /* int64 / int64 is true division in float32; int64 == float32 gives bool */
    int64_t s2[1] = {2};
    double iv[2] = {7, -7}, dv[2] = {2, 2};
    lunet_tensor_t *a = tensor_of(L, 1, s2, iv), *b = tensor_of(L, 1, s2, dv), *c;
    CHECK_OK(lunet_tensor_binary(&c, LUNET_BINARY_DIV, a, b));
    assert_int_equal(c->dtype, F);
    double w[2] = {3.5, -3.5};
    CHECK_TENSOR(c, w, 2, 0);
    lunet_tensor_release(c);
    CHECK_OK(lunet_tensor_binary(&c, LUNET_BINARY_FLOOR_DIV, a, b));
    assert_int_equal(c->dtype, L);
    double wf[2] = {3, -4};
    CHECK_TENSOR(c, wf, 2, 0);
    lunet_tensor_release(c);
    lunet_tensor_t *zero, *q;
    CHECK_OK(lunet_tensor_scalar(&zero, L, 0, true));
    CHECK_FAILS(lunet_tensor_binary(&q, LUNET_BINARY_FLOOR_DIV, a, zero), LUNET_STATUS_RUNTIME,
                "ZeroDivisionError");
    lunet_tensor_release(zero);
    lunet_tensor_t *minus;
    CHECK_OK(lunet_tensor_scalar(&minus, L, -1, true));
    CHECK_FAILS(lunet_tensor_binary(&q, LUNET_BINARY_POW, a, minus), LUNET_STATUS_RUNTIME,
                "Integers to negative integer powers are not allowed.");
    lunet_tensor_release(minus);
    lunet_tensor_t *s;
    CHECK_OK(lunet_tensor_scalar(&s, D, 2.5, true));
    CHECK_FAILS(lunet_tensor_binary_(a, LUNET_BINARY_ADD, s), LUNET_STATUS_RUNTIME,
                "result type Float can't be cast to the desired output type Long");
    lunet_tensor_release(s);
    /* float -> int conversion truncates toward zero */
    double fv[2] = {1.7, -1.7};
    lunet_tensor_t *f = tensor_of(F, 1, s2, fv), *li;
    CHECK_OK(lunet_tensor_to(&li, f, L));
    double wl[2] = {1, -1};
    CHECK_TENSOR(li, wl, 2, 0);
    lunet_tensor_release(li);
    lunet_tensor_release(f);
    lunet_tensor_release(a);
    lunet_tensor_release(b);
}

static void test_unary_values(void **state)
{
    (void)state;
    int64_t s8[1] = {8};
    double x[8] = {-2, -0.0, 0, 0.5, 3, NAN, -INFINITY, INFINITY};
    lunet_tensor_t *t = tensor_of(LUNET_DTYPE_FLOAT32, 1, s8, x), *r;
    CHECK_OK(lunet_tensor_unary(&r, LUNET_UNARY_RELU, t));
    double wr[8] = {0, -0.0, 0, 0.5, 3, NAN, 0, INFINITY};
    CHECK_TENSOR(r, wr, 8, 0);
    assert_true(signbit(lunet_tensor_get(r, 1)));
    lunet_tensor_release(r);
    CHECK_OK(lunet_tensor_unary(&r, LUNET_UNARY_SIGMOID, t));
    double ws[8] = {0.11920291930437088, 0.5, 0.5, 0.622459352016449,
                    0.9525741338729858,  NAN, 0,   1};
    CHECK_TENSOR(r, ws, 8, 2.5e-7);
    lunet_tensor_release(r);
    CHECK_OK(lunet_tensor_unary(&r, LUNET_UNARY_TANH, t));
    double wt[8] = {-0.9640275835990906, -0.0, 0,  0.46211716532707214,
                    0.9950547814369202,  NAN,  -1, 1};
    CHECK_TENSOR(r, wt, 8, 2.5e-7);
    lunet_tensor_release(r);
    lunet_tensor_release(t);
    /* float32 sigmoid underflows to exactly 0 like PyTorch's */
    double big[3] = {-100, -1000, 20};
    int64_t s3[1] = {3};
    t = tensor_of(LUNET_DTYPE_FLOAT32, 1, s3, big);
    CHECK_OK(lunet_tensor_unary(&r, LUNET_UNARY_SIGMOID, t));
    assert_true(lunet_tensor_get(r, 0) == 0.0);
    assert_true(lunet_tensor_get(r, 1) == 0.0);
    assert_true(lunet_tensor_get(r, 2) == 1.0);
    lunet_tensor_release(r);
    lunet_tensor_release(t);
    /* integer input to exp gives float32 */
    double iv[2] = {0, 1};
    int64_t s2[1] = {2};
    t = tensor_of(LUNET_DTYPE_INT64, 1, s2, iv);
    CHECK_OK(lunet_tensor_unary(&r, LUNET_UNARY_EXP, t));
    assert_int_equal(r->dtype, LUNET_DTYPE_FLOAT32);
    double we[2] = {1, 2.718281828459045};
    CHECK_TENSOR(r, we, 2, 1e-7);
    lunet_tensor_release(r);
    CHECK_OK(lunet_tensor_clamp(&r, t, NAN, 0));
    double wc[2] = {0, 0};
    CHECK_TENSOR(r, wc, 2, 0);
    lunet_tensor_release(r);
    lunet_tensor_release(t);
}

/* float32 exp (a vectorised polynomial) stays within 1 ulp of the C library's expf */
static void test_exp_accuracy(void **state)
{
    (void)state;
    const int64_t n = 2000003;
    int64_t shape[1] = {n};
    lunet_tensor_t *x, *y;
    CHECK_OK(lunet_tensor_empty(&x, LUNET_DTYPE_FLOAT32, 1, shape));
    float *px = lunet_tensor_data(x);
    for (int64_t i = 0; i < n; i++)
        px[i] = -105.0f + 195.0f * (float)((double)i / (double)(n - 1));
    float special[8] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 88.72283f, -103.97208f, -87.3f};
    for (int i = 0; i < 8; i++)
        px[i] = special[i];
    CHECK_OK(lunet_tensor_unary(&y, LUNET_UNARY_EXP, x));
    const float *py = lunet_tensor_data(y);
    int64_t worst = 0;
    for (int64_t i = 0; i < n; i++) {
        float want = expf(px[i]), got = py[i];
        if (isnan(want)) {
            assert_true(isnan(got));
            continue;
        }
        int32_t a, b;
        memcpy(&a, &got, 4);
        memcpy(&b, &want, 4);
        int64_t d = (int64_t)a - (int64_t)b;
        if (d < 0)
            d = -d;
        if (d > worst)
            worst = d;
    }
    if (worst > 1)
        fail_msg("exp is %lld ulp from expf", (long long)worst);
    lunet_tensor_release(x);
    lunet_tensor_release(y);
}

static void test_reductions(void **state)
{
    (void)state;
    int64_t s23[2] = {2, 3};
    double v[6] = {1, 5, 5, 7, 0, 7};
    lunet_tensor_t *a = tensor_of(LUNET_DTYPE_FLOAT64, 2, s23, v), *r, *idx;
    int64_t d0[1] = {0}, d1[1] = {1}, dm1[1] = {-1};
    CHECK_OK(lunet_tensor_reduce(&r, NULL, LUNET_REDUCE_SUM, a, 1, d0, true));
    assert_int_equal(r->ndim, 2);
    assert_int_equal(r->shape[0], 1);
    double w0[3] = {8, 5, 12};
    CHECK_TENSOR(r, w0, 3, 0);
    lunet_tensor_release(r);
    CHECK_OK(lunet_tensor_reduce(&r, NULL, LUNET_REDUCE_MEAN, a, 1, d1, false));
    double w1[2] = {11.0 / 3, 14.0 / 3};
    CHECK_TENSOR(r, w1, 2, 1e-15);
    lunet_tensor_release(r);
    CHECK_OK(lunet_tensor_reduce(&r, NULL, LUNET_REDUCE_SUM, a, 0, NULL, false));
    assert_int_equal(r->ndim, 0);
    CHECK_CLOSE(lunet_tensor_get(r, 0), 25, 0);
    lunet_tensor_release(r);
    /* max with dim: first index among ties */
    CHECK_OK(lunet_tensor_reduce(&r, &idx, LUNET_REDUCE_MAX, a, 1, dm1, false));
    double wm[2] = {5, 7}, wi[2] = {1, 0};
    CHECK_TENSOR(r, wm, 2, 0);
    CHECK_TENSOR(idx, wi, 2, 0);
    assert_int_equal(idx->dtype, LUNET_DTYPE_INT64);
    lunet_tensor_release(r);
    lunet_tensor_release(idx);
    CHECK_OK(lunet_tensor_reduce(&r, NULL, LUNET_REDUCE_ARGMAX, a, 0, NULL, false));
    CHECK_CLOSE(lunet_tensor_get(r, 0), 3, 0);
    lunet_tensor_release(r);
    CHECK_OK(lunet_tensor_reduce(&r, NULL, LUNET_REDUCE_ARGMIN, a, 1, d0, false));
    double wam[3] = {0, 1, 0};
    CHECK_TENSOR(r, wam, 3, 0);
    lunet_tensor_release(r);
    lunet_tensor_release(a);
    /* NaN wins, at its first place */
    int64_t s4[1] = {4};
    double nv[4] = {1, NAN, 3, NAN};
    a = tensor_of(LUNET_DTYPE_FLOAT32, 1, s4, nv);
    CHECK_OK(lunet_tensor_reduce(&r, NULL, LUNET_REDUCE_ARGMAX, a, 0, NULL, false));
    CHECK_CLOSE(lunet_tensor_get(r, 0), 1, 0);
    lunet_tensor_release(r);
    CHECK_OK(lunet_tensor_reduce(&r, NULL, LUNET_REDUCE_MAX, a, 0, NULL, false));
    assert_true(isnan(lunet_tensor_get(r, 0)));
    lunet_tensor_release(r);
    lunet_tensor_release(a);
    /* bool sums to int64; mean of ints refuses; empty max refuses */
    double bv[3] = {1, 1, 0};
    int64_t s3[1] = {3};
    a = tensor_of(LUNET_DTYPE_BOOL, 1, s3, bv);
    CHECK_OK(lunet_tensor_reduce(&r, NULL, LUNET_REDUCE_SUM, a, 0, NULL, false));
    assert_int_equal(r->dtype, LUNET_DTYPE_INT64);
    CHECK_CLOSE(lunet_tensor_get(r, 0), 2, 0);
    lunet_tensor_release(r);
    CHECK_OK(lunet_tensor_reduce(&r, NULL, LUNET_REDUCE_ANY, a, 0, NULL, false));
    CHECK_CLOSE(lunet_tensor_get(r, 0), 1, 0);
    lunet_tensor_release(r);
    CHECK_OK(lunet_tensor_reduce(&r, NULL, LUNET_REDUCE_ALL, a, 0, NULL, false));
    CHECK_CLOSE(lunet_tensor_get(r, 0), 0, 0);
    lunet_tensor_release(r);
    lunet_tensor_release(a);
    a = tensor_of(LUNET_DTYPE_INT64, 1, s3, bv);
    CHECK_FAILS(lunet_tensor_reduce(&r, NULL, LUNET_REDUCE_MEAN, a, 0, NULL, false),
                LUNET_STATUS_RUNTIME,
                "mean(): could not infer output dtype. Input dtype must be "
                "either a floating point or complex dtype. Got: Long");
    lunet_tensor_release(a);
    int64_t s0[1] = {0}, s20[2] = {2, 0};
    CHECK_OK(lunet_tensor_zeros(&a, LUNET_DTYPE_FLOAT32, 1, s0));
    CHECK_FAILS(lunet_tensor_reduce(&r, NULL, LUNET_REDUCE_MAX, a, 0, NULL, false),
                LUNET_STATUS_RUNTIME,
                "max(): Expected reduction dim to be specified for "
                "input.numel() == 0. Specify the reduction dim with the 'dim' argument.");
    CHECK_OK(lunet_tensor_reduce(&r, NULL, LUNET_REDUCE_MEAN, a, 0, NULL, false));
    assert_true(isnan(lunet_tensor_get(r, 0)));
    lunet_tensor_release(r);
    lunet_tensor_release(a);
    CHECK_OK(lunet_tensor_zeros(&a, LUNET_DTYPE_FLOAT32, 2, s20));
    CHECK_FAILS(lunet_tensor_reduce(&r, &idx, LUNET_REDUCE_MAX, a, 1, d1, false),
                LUNET_STATUS_INDEX, "max(): Expected reduction dim 1 to have non-zero size.");
    lunet_tensor_release(a);
    /* every dim of a 3-D tensor, against a direct loop */
    int64_t s234[3] = {2, 3, 4};
    a = shaped(arange_f(24, LUNET_DTYPE_FLOAT32), 3, s234);
    for (int d = 0; d < 3; d++) {
        int64_t dd[1] = {d};
        CHECK_OK(lunet_tensor_reduce(&r, NULL, LUNET_REDUCE_SUM, a, 1, dd, false));
        assert_int_equal(r->numel, 24 / s234[d]);
        /* the two kept dims, in order, and their sizes */
        int kd[2], nk = 0;
        for (int q = 0; q < 3; q++)
            if (q != d)
                kd[nk++] = q;
        for (int64_t o = 0; o < r->numel; o++) {
            int64_t kept[2] = {o / s234[kd[1]], o % s234[kd[1]]};
            double want = 0;
            for (int64_t j = 0; j < s234[d]; j++) {
                int64_t c[3];
                c[d] = j;
                c[kd[0]] = kept[0];
                c[kd[1]] = kept[1];
                want += (double)((c[0] * 3 + c[1]) * 4 + c[2]);
            }
            CHECK_CLOSE(lunet_tensor_get(r, o), want, 0);
        }
        lunet_tensor_release(r);
    }
    lunet_tensor_release(a);
}

static void test_indexing(void **state)
{
    (void)state;
    int64_t s23[2] = {2, 3}, s21[2] = {2, 1}, s2[1] = {2};
    double yh[6] = {0.1, 0.3, 0.6, 0.2, 0.3, 0.5};
    lunet_tensor_t *y_hat = tensor_of(LUNET_DTYPE_FLOAT32, 2, s23, yh), *r;
    double yv[2] = {0, 2};
    lunet_tensor_t *y = tensor_of(LUNET_DTYPE_INT64, 1, s2, yv),
                   *yc = tensor_of(LUNET_DTYPE_INT64, 2, s21, yv);
    CHECK_OK(lunet_tensor_gather(&r, y_hat, 1, yc));
    double wg[2] = {0.1f, 0.5f};
    CHECK_TENSOR(r, wg, 2, 0);
    assert_int_equal(r->shape[1], 1);
    lunet_tensor_release(r);
    /* y_hat[[0, 1], y] */
    double rv[2] = {0, 1};
    lunet_tensor_t *rows = tensor_of(LUNET_DTYPE_INT64, 1, s2, rv);
    lunet_tensor_t *idx[2] = {rows, y};
    CHECK_OK(lunet_tensor_index(&r, y_hat, 2, idx));
    CHECK_TENSOR(r, wg, 2, 0);
    lunet_tensor_release(r);
    CHECK_OK(lunet_tensor_index_select(&r, y_hat, 1, y));
    double wis[4] = {0.1f, 0.6f, 0.2f, 0.5f};
    CHECK_TENSOR(r, wis, 4, 0);
    lunet_tensor_release(r);
    /* errors */
    double bad[2] = {3, 0};
    lunet_tensor_t *yb = tensor_of(LUNET_DTYPE_INT64, 2, s21, bad);
    CHECK_FAILS(lunet_tensor_gather(&r, y_hat, 1, yb), LUNET_STATUS_RUNTIME,
                "index 3 is out of bounds for dimension 1 with size 3");
    CHECK_FAILS(lunet_tensor_gather(&r, y_hat, 1, y), LUNET_STATUS_RUNTIME,
                "Index tensor must have the same number of dimensions as input tensor");
    /* index_select along dim 1: PyTorch 1.13's kernel text, a RuntimeError (an IndexError
       along dim 0, spec/parity_ops_spec.lua) */
    lunet_tensor_t *yb1 = tensor_of(LUNET_DTYPE_INT64, 1, s2, bad);
    CHECK_FAILS(lunet_tensor_index_select(&r, y_hat, 1, yb1), LUNET_STATUS_RUNTIME,
                "INDICES element is out of DATA bounds, id=3 axis_dim=3");
    lunet_tensor_release(yb1);
    lunet_tensor_t *yf = tensor_of(LUNET_DTYPE_FLOAT32, 2, s21, yv);
    CHECK_FAILS(lunet_tensor_gather(&r, y_hat, 1, yf), LUNET_STATUS_RUNTIME,
                "gather(): Expected dtype int64 for index");
    lunet_tensor_t *idxf[2] = {rows, yf};
    CHECK_FAILS(lunet_tensor_index(&r, y_hat, 2, idxf), LUNET_STATUS_INDEX,
                "tensors used as indices must be long, byte or bool tensors");
    int64_t s3[1] = {3};
    double r3[3] = {0, 1, 0};
    lunet_tensor_t *rows3 = tensor_of(LUNET_DTYPE_INT64, 1, s3, r3);
    lunet_tensor_t *idx3[2] = {rows3, y};
    CHECK_FAILS(lunet_tensor_index(&r, y_hat, 2, idx3), LUNET_STATUS_INDEX,
                "shape mismatch: indexing tensors could not be broadcast together with shapes "
                "[3], [2]");
    /* negative index wraps; bool mask selects in row-major order */
    double neg[2] = {0, -1};
    lunet_tensor_t *yn = tensor_of(LUNET_DTYPE_INT64, 1, s2, neg);
    lunet_tensor_t *idxn[2] = {rows, yn};
    CHECK_OK(lunet_tensor_index(&r, y_hat, 2, idxn));
    double wn[2] = {0.1f, 0.5f};
    CHECK_TENSOR(r, wn, 2, 0);
    lunet_tensor_release(r);
    double mv[6] = {1, 0, 1, 0, 0, 1};
    lunet_tensor_t *mask = tensor_of(LUNET_DTYPE_BOOL, 2, s23, mv);
    CHECK_OK(lunet_tensor_index(&r, y_hat, 1, &mask));
    double wmk[3] = {0.1f, 0.6f, 0.5f};
    CHECK_TENSOR(r, wmk, 3, 0);
    lunet_tensor_release(r);
    CHECK_OK(lunet_tensor_masked_fill(&r, y_hat, mask, -1));
    double wmf[6] = {-1, 0.3f, -1, 0.2f, 0.3f, -1};
    CHECK_TENSOR(r, wmf, 6, 0);
    lunet_tensor_release(r);
    CHECK_OK(lunet_tensor_where(&r, mask, y_hat, yf));
    lunet_tensor_release(r);
    lunet_tensor_release(mask);
    lunet_tensor_release(yn);
    lunet_tensor_release(rows3);
    lunet_tensor_release(yf);
    lunet_tensor_release(yb);
    lunet_tensor_release(rows);
    lunet_tensor_release(y);
    lunet_tensor_release(yc);
    lunet_tensor_release(y_hat);
}

/* naive reference product of a (m, k) and b (k, n), any layout */
static void naive_mm(const lunet_tensor_t *a, const lunet_tensor_t *b, double *c)
{
    int64_t m = a->shape[0], k = a->shape[1], n = b->shape[1];
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double acc = 0;
            for (int64_t p = 0; p < k; p++)
                acc += lunet_tensor_get(a, i * k + p) * lunet_tensor_get(b, p * n + j);
            c[i * n + j] = acc;
        }
}

static lunet_tensor_t *rand_matrix(lunet_dtype_t dt, int64_t r, int64_t c, unsigned *seed)
{
    int64_t s[2] = {r, c};
    lunet_tensor_t *t;
    CHECK_OK(lunet_tensor_empty(&t, dt, 2, s));
    for (int64_t i = 0; i < t->numel; i++) {
        *seed = *seed * 1103515245u + 12345u;
        double v = (double)((*seed >> 8) % 2001) / 1000.0 - 1.0;
        if (dt == LUNET_DTYPE_FLOAT32)
            ((float *)lunet_tensor_data(t))[i] = (float)v;
        else
            ((double *)lunet_tensor_data(t))[i] = v;
    }
    return t;
}

static void test_matmul_shapes(void **state)
{
    (void)state;
    static const int64_t sizes[4] = {1, 7, 33, 65};
    unsigned seed = 1;
    for (int dt = 0; dt < 2; dt++) {
        lunet_dtype_t type = dt ? LUNET_DTYPE_FLOAT64 : LUNET_DTYPE_FLOAT32;
        double tol = dt ? 1e-12 : 1e-5;
        for (int im = 0; im < 4; im++)
            for (int ik = 0; ik < 4; ik++)
                for (int in = 0; in < 4; in++) {
                    int64_t m = sizes[im], k = sizes[ik], n = sizes[in];
                    for (int layout = 0; layout < 4; layout++) {
                        /* layout bit 0: a given as a transposed view; bit 1: b likewise */
                        lunet_tensor_t *a, *b, *c, *ta = NULL, *tb = NULL;
                        if (layout & 1) {
                            ta = rand_matrix(type, k, m, &seed);
                            CHECK_OK(lunet_tensor_transpose(&a, ta, 0, 1));
                        } else {
                            a = rand_matrix(type, m, k, &seed);
                        }
                        if (layout & 2) {
                            tb = rand_matrix(type, n, k, &seed);
                            CHECK_OK(lunet_tensor_transpose(&b, tb, 0, 1));
                        } else {
                            b = rand_matrix(type, k, n, &seed);
                        }
                        CHECK_OK(lunet_tensor_matmul(&c, a, b));
                        double *want = malloc(sizeof(double) * (size_t)(m * n));
                        naive_mm(a, b, want);
                        CHECK_TENSOR(c, want, m * n, tol * (double)k);
                        free(want);
                        lunet_tensor_release(c);
                        lunet_tensor_release(a);
                        lunet_tensor_release(b);
                        lunet_tensor_release(ta);
                        lunet_tensor_release(tb);
                    }
                }
    }
}

static void test_matmul_forms(void **state)
{
    (void)state;
    unsigned seed = 7;
    lunet_tensor_t *a = rand_matrix(LUNET_DTYPE_FLOAT64, 3, 4, &seed);
    lunet_tensor_t *b = rand_matrix(LUNET_DTYPE_FLOAT64, 4, 5, &seed);
    lunet_tensor_t *v, *c, *r, *bias;
    int64_t s4[1] = {4}, s5[1] = {5};
    CHECK_OK(lunet_tensor_arange(&v, LUNET_DTYPE_FLOAT64, 0, 4, 1));
    /* 2-D @ 1-D and 1-D @ 2-D */
    CHECK_OK(lunet_tensor_matmul(&r, a, v));
    assert_int_equal(r->ndim, 1);
    assert_int_equal(r->shape[0], 3);
    for (int i = 0; i < 3; i++) {
        double acc = 0;
        for (int p = 0; p < 4; p++)
            acc += lunet_tensor_get(a, i * 4 + p) * p;
        CHECK_CLOSE(lunet_tensor_get(r, i), acc, 1e-12);
    }
    lunet_tensor_release(r);
    CHECK_OK(lunet_tensor_matmul(&r, v, b));
    assert_int_equal(r->ndim, 1);
    assert_int_equal(r->shape[0], 5);
    lunet_tensor_release(r);
    CHECK_OK(lunet_tensor_matmul(&r, v, v));
    assert_int_equal(r->ndim, 0);
    CHECK_CLOSE(lunet_tensor_get(r, 0), 14, 0);
    lunet_tensor_release(r);
    /* addmm = bias + a @ b */
    CHECK_OK(lunet_tensor_full(&bias, LUNET_DTYPE_FLOAT64, 1, s5, 0.5));
    CHECK_OK(lunet_tensor_addmm(&c, bias, a, b, 1, 1));
    CHECK_OK(lunet_tensor_mm(&r, a, b));
    for (int i = 0; i < 15; i++)
        CHECK_CLOSE(lunet_tensor_get(c, i), lunet_tensor_get(r, i) + 0.5, 1e-12);
    lunet_tensor_release(r);
    lunet_tensor_release(c);
    /* batched (2, 3, 4) @ (4, 5) and (2, 3, 4) @ (2, 4, 5) */
    int64_t s234[3] = {2, 3, 4}, s245[3] = {2, 4, 5};
    lunet_tensor_t *a3 = shaped(arange_f(24, LUNET_DTYPE_FLOAT64), 3, s234);
    lunet_tensor_t *b3 = shaped(arange_f(40, LUNET_DTYPE_FLOAT64), 3, s245);
    CHECK_OK(lunet_tensor_matmul(&r, a3, b));
    assert_int_equal(r->ndim, 3);
    assert_int_equal(r->shape[2], 5);
    lunet_tensor_release(r);
    CHECK_OK(lunet_tensor_matmul(&r, a3, b3));
    assert_int_equal(r->shape[0], 2);
    /* r[1][2][3] = sum_p a3[1][2][p] * b3[1][p][3] */
    double acc = 0;
    for (int p = 0; p < 4; p++)
        acc += (double)(12 + 8 + p) * (double)(20 + p * 5 + 3);
    CHECK_CLOSE(lunet_tensor_get(r, (1 * 3 + 2) * 5 + 3), acc, 0);
    lunet_tensor_release(r);
    /* errors */
    CHECK_FAILS(lunet_tensor_mm(&r, a, a), LUNET_STATUS_RUNTIME,
                "mat1 and mat2 shapes cannot be multiplied (3x4 and 3x4)");
    lunet_tensor_t *af;
    CHECK_OK(lunet_tensor_to(&af, a, LUNET_DTYPE_FLOAT32));
    CHECK_FAILS(lunet_tensor_mm(&r, af, b), LUNET_STATUS_RUNTIME,
                "expected scalar type Float but found Double");
    lunet_tensor_release(af);
    (void)s4;
    lunet_tensor_release(a3);
    lunet_tensor_release(b3);
    lunet_tensor_release(bias);
    lunet_tensor_release(v);
    lunet_tensor_release(a);
    lunet_tensor_release(b);
}

static void test_wrap_and_errors(void **state)
{
    (void)state;
    static float host[6] = {1, 2, 3, 4, 5, 6};
    int64_t s23[2] = {2, 3};
    lunet_tensor_t *t, *r;
    CHECK_OK(lunet_tensor_wrap(&t, LUNET_DTYPE_FLOAT32, 2, s23, host, NULL, NULL));
    CHECK_OK(lunet_tensor_reduce(&r, NULL, LUNET_REDUCE_SUM, t, 0, NULL, false));
    CHECK_CLOSE(lunet_tensor_get(r, 0), 21, 0);
    lunet_tensor_release(r);
    CHECK_OK(lunet_tensor_fill_(t, 2)); /* writes reach the host buffer */
    assert_true(host[5] == 2.0f);
    lunet_tensor_release(t);
    assert_string_equal(lunet_status_name(LUNET_STATUS_INDEX), "IndexError");
    assert_string_equal(lunet_dtype_torch_name(LUNET_DTYPE_INT64), "Long");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_creation),     cmocka_unit_test(test_views_share_storage),
        cmocka_unit_test(test_expand),       cmocka_unit_test(test_broadcasting),
        cmocka_unit_test(test_promotion),    cmocka_unit_test(test_unary_values),
        cmocka_unit_test(test_exp_accuracy), cmocka_unit_test(test_reductions),
        cmocka_unit_test(test_indexing),     cmocka_unit_test(test_matmul_shapes),
        cmocka_unit_test(test_matmul_forms), cmocka_unit_test(test_wrap_and_errors),
    };
    return cmocka_run_group_tests_name("tensor", tests, NULL, NULL);
}
