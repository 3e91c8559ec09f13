/*
 * test_print.c - tensor and size printing, character-exact against PyTorch 1.13
 * (docs/pytorch-parity.md §9; goldens from tests/fixtures/gen_print.py).
 */
#include "check.h"
#include "internal.h"

#include <stdlib.h>

#include "fixtures/print_golden.h"

/* ---- building tensors */

static lunet_tensor_t *build_golden(const print_golden_t *g)
{
    lunet_tensor_t *base = g->ivalues ? tensor_of_ints(g->dtype, g->ndim, g->shape, g->ivalues)
                                      : tensor_of(g->dtype, g->ndim, g->shape, g->fvalues);
    if (g->view_ndim < 0) {
        base->requires_grad = g->requires_grad;
        return base;
    }
    lunet_tensor_t *v;
    CHECK_OK(lunet_tensor_make_view(&v, base, g->view_ndim, g->view_shape, g->view_strides,
                                    g->view_offset));
    lunet_tensor_release(base);
    v->requires_grad = g->requires_grad;
    return v;
}

/* Joins the NULL-ended lines with "\n". */
static char *join_lines(const char *const *lines)
{
    size_t n = 0;
    for (int i = 0; lines[i]; i++)
        n += strlen(lines[i]) + 1;
    char *s = malloc(n + 1);
    assert_non_null(s);
    s[0] = '\0';
    for (int i = 0; lines[i]; i++) {
        if (i)
            strcat(s, "\n");
        strcat(s, lines[i]);
    }
    return s;
}

/* Formats t with prefix and compares character by character; consumes t. */
static bool format_matches(lunet_tensor_t *t, const char *prefix, const char *want,
                           const char *name)
{
    char *got = NULL;
    CHECK_OK(lunet_tensor_format(&got, t, prefix));
    lunet_tensor_release(t);
    bool ok = strcmp(got, want) == 0;
    if (!ok) {
        size_t k = 0;
        while (got[k] && got[k] == want[k])
            k++;
        print_error("%s: first difference at offset %zu\n--- got:\n%s\n--- want:\n%s\n", name, k,
                    got, want);
    }
    free(got);
    return ok;
}

#define EXPECT_TEXT(t, want) assert_true(format_matches((t), "torch.", (want), #t))

/* ---- every golden case from PyTorch */

static void test_goldens(void **state)
{
    (void)state;
    int failed = 0;
    for (int i = 0; i < PRINT_GOLDEN_COUNT; i++) {
        const print_golden_t *g = &print_goldens[i];
        char *want = join_lines(g->lines);
        if (!format_matches(build_golden(g), "torch.", want, g->name))
            failed++;
        free(want);
    }
    if (failed)
        fail_msg("%d of %d golden cases differ", failed, PRINT_GOLDEN_COUNT);
    assert_true(PRINT_GOLDEN_COUNT >= 40);
}

/* The Lua API prints the same text with "lunet." names. */
static void test_goldens_lunet_prefix(void **state)
{
    (void)state;
    for (int i = 0; i < PRINT_GOLDEN_COUNT; i++) {
        const print_golden_t *g = &print_goldens[i];
        char *want = join_lines(g->lines);
        char *p;
        while ((p = strstr(want, "torch.")) != NULL)
            memcpy(p, "lunet.", 6);
        assert_true(format_matches(build_golden(g), "lunet.", want, g->name));
        free(want);
    }
}

/* ---- the explicit strings of the tables of docs/pytorch-parity.md §9 */

static lunet_tensor_t *f32(int n, const double *v)
{
    int64_t shape[1] = {n};
    return tensor_of(LUNET_DTYPE_FLOAT32, 1, shape, v);
}

static lunet_tensor_t *scalar(lunet_dtype_t dt, double v) { return tensor_of(dt, 0, NULL, &v); }

static void test_spec_9_2_table(void **state)
{
    (void)state;
    EXPECT_TEXT(f32(3, (double[]){1, 2, 3}), "tensor([1., 2., 3.])");
    EXPECT_TEXT(f32(3, (double[]){1.5, 2, -3.25}), "tensor([ 1.5000,  2.0000, -3.2500])");
    EXPECT_TEXT(f32(2, (double[]){0.1f, 0.2f}), "tensor([0.1000, 0.2000])");
    EXPECT_TEXT(f32(2, (double[]){0.0001f, 1.0}), "tensor([1.0000e-04, 1.0000e+00])");
    EXPECT_TEXT(f32(2, (double[]){0.01f, 10.1f}), "tensor([1.0000e-02, 1.0100e+01])");
    EXPECT_TEXT(f32(2, (double[]){1.5e8, 2.0}), "tensor([1.5000e+08, 2.0000e+00])");
    EXPECT_TEXT(f32(2, (double[]){1, 1000}), "tensor([   1., 1000.])");
    EXPECT_TEXT(f32(2, (double[]){1, 1001}), "tensor([1.0000e+00, 1.0010e+03])");
    EXPECT_TEXT(scalar(LUNET_DTYPE_FLOAT32, 100000000.), "tensor(100000000.)");
    EXPECT_TEXT(scalar(LUNET_DTYPE_FLOAT32, 123456789.), "tensor(1.2346e+08)");
    EXPECT_TEXT(f32(4, (double[]){NAN, INFINITY, -INFINITY, 1}), "tensor([nan, inf, -inf, 1.])");
    EXPECT_TEXT(f32(3, (double[]){NAN, INFINITY, 1.5}), "tensor([   nan,    inf, 1.5000])");
    EXPECT_TEXT(f32(3, (double[]){-NAN, 1.5, 2}), "tensor([   nan, 1.5000, 2.0000])");
    EXPECT_TEXT(f32(2, (double[]){-0.0, 1}), "tensor([-0., 1.])");
    EXPECT_TEXT(f32(2, (double[]){0, 0}), "tensor([0., 0.])");
    EXPECT_TEXT(scalar(LUNET_DTYPE_FLOAT32, 3), "tensor(3.)");
    EXPECT_TEXT(scalar(LUNET_DTYPE_FLOAT32, 0.12345f), "tensor(0.1235)");
    EXPECT_TEXT(scalar(LUNET_DTYPE_INT64, 7), "tensor(7)");
    EXPECT_TEXT(scalar(LUNET_DTYPE_FLOAT32, 1e-5f), "tensor(1.0000e-05)");
    // correctly rounded decimal conversion, ties to even
    EXPECT_TEXT(f32(3, (double[]){2.00005f, 0.12345f, 0.99995f}),
                "tensor([2.0001, 0.1235, 0.9999])");
    EXPECT_TEXT(f32(3, (double[]){1.03125, 1.09375, 0.5}), "tensor([1.0312, 1.0938, 0.5000])");
    int64_t s3[1] = {3}, s2[1] = {2};
    EXPECT_TEXT(tensor_of_ints(LUNET_DTYPE_INT64, 1, s3, (int64_t[]){1, -20, 300}),
                "tensor([  1, -20, 300])");
    EXPECT_TEXT(tensor_of_ints(LUNET_DTYPE_BOOL, 1, s2, (int64_t[]){1, 0}),
                "tensor([ True, False])");
    EXPECT_TEXT(tensor_of_ints(LUNET_DTYPE_UINT8, 1, s2, (int64_t[]){0, 255}),
                "tensor([  0, 255], dtype=torch.uint8)");
    EXPECT_TEXT(tensor_of(LUNET_DTYPE_FLOAT64, 1, s2, (double[]){1.0, 2.5}),
                "tensor([1.0000, 2.5000], dtype=torch.float64)");
}

static void test_spec_9_3_layout(void **state)
{
    (void)state;
    int64_t s22[2] = {2, 2}, s222[3] = {2, 2, 2};
    EXPECT_TEXT(tensor_of(LUNET_DTYPE_FLOAT32, 2, s22, (double[]){1, 2.5, -3, 4}),
                "tensor([[ 1.0000,  2.5000],\n"
                "        [-3.0000,  4.0000]])");
    EXPECT_TEXT(tensor_of_ints(LUNET_DTYPE_INT64, 3, s222, (int64_t[]){0, 1, 2, 3, 4, 5, 6, 7}),
                "tensor([[[0, 1],\n"
                "         [2, 3]],\n"
                "\n"
                "        [[4, 5],\n"
                "         [6, 7]]])");
    // 20 values of width 6 -> 9 per line
    double v[20];
    for (int i = 0; i < 20; i++)
        v[i] = (float)i / 3.0f;
    EXPECT_TEXT(f32(20, v),
                "tensor([0.0000, 0.3333, 0.6667, 1.0000, 1.3333, 1.6667, 2.0000, 2.3333, 2.6667,\n"
                "        3.0000, 3.3333, 3.6667, 4.0000, 4.3333, 4.6667, 5.0000, 5.3333, 5.6667,\n"
                "        6.0000, 6.3333])");
}

static void test_spec_9_4_summary(void **state)
{
    (void)state;
    lunet_tensor_t *t;
    CHECK_OK(lunet_tensor_arange(&t, LUNET_DTYPE_INT64, 0, 1001, 1));
    EXPECT_TEXT(t, "tensor([   0,    1,    2,  ...,  998,  999, 1000])");

    int64_t n1001[1] = {1001};
    CHECK_OK(lunet_tensor_empty(&t, LUNET_DTYPE_FLOAT32, 1, n1001));
    for (int i = 0; i < 1001; i++)
        ((float *)lunet_tensor_data(t))[i] = (float)i / 7.0f;
    EXPECT_TEXT(t, "tensor([  0.0000,   0.1429,   0.2857,  ..., 142.5714, 142.7143, 142.8571])");

    int64_t s40x30[2] = {40, 30};
    CHECK_OK(lunet_tensor_empty(&t, LUNET_DTYPE_INT64, 2, s40x30));
    for (int i = 0; i < 1200; i++)
        ((int64_t *)lunet_tensor_data(t))[i] = i;
    EXPECT_TEXT(t, "tensor([[   0,    1,    2,  ...,   27,   28,   29],\n"
                   "        [  30,   31,   32,  ...,   57,   58,   59],\n"
                   "        [  60,   61,   62,  ...,   87,   88,   89],\n"
                   "        ...,\n"
                   "        [1110, 1111, 1112,  ..., 1137, 1138, 1139],\n"
                   "        [1140, 1141, 1142,  ..., 1167, 1168, 1169],\n"
                   "        [1170, 1171, 1172,  ..., 1197, 1198, 1199]])");

    // the formatter sees only 0,1,2,597..602,1197..1199: ratio 1199 > 1000 forces sci mode
    int64_t s2x600[2] = {2, 600};
    CHECK_OK(lunet_tensor_empty(&t, LUNET_DTYPE_FLOAT32, 2, s2x600));
    for (int i = 0; i < 1200; i++)
        ((float *)lunet_tensor_data(t))[i] = (float)i;
    EXPECT_TEXT(t, "tensor([[0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 5.9700e+02, 5.9800e+02,\n"
                   "         5.9900e+02],\n"
                   "        [6.0000e+02, 6.0100e+02, 6.0200e+02,  ..., 1.1970e+03, 1.1980e+03,\n"
                   "         1.1990e+03]])");

    // 1000 elements print in full: 72 lines
    CHECK_OK(lunet_tensor_arange(&t, LUNET_DTYPE_INT64, 0, 1000, 1));
    char *text;
    CHECK_OK(lunet_tensor_format(&text, t, "torch."));
    int lines = 1;
    for (char *p = text; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 72);
    assert_null(strstr(text, "..."));
    free(text);
    lunet_tensor_release(t);
}

static void test_spec_9_5_empty(void **state)
{
    (void)state;
    int64_t s0[1] = {0}, s03[2] = {0, 3}, s20[2] = {2, 0};
    lunet_tensor_t *t;
    CHECK_OK(lunet_tensor_empty(&t, LUNET_DTYPE_FLOAT32, 1, s0));
    EXPECT_TEXT(t, "tensor([])");
    CHECK_OK(lunet_tensor_empty(&t, LUNET_DTYPE_FLOAT32, 2, s03));
    EXPECT_TEXT(t, "tensor([], size=(0, 3))");
    CHECK_OK(lunet_tensor_empty(&t, LUNET_DTYPE_INT64, 1, s0));
    EXPECT_TEXT(t, "tensor([], dtype=torch.int64)");
    CHECK_OK(lunet_tensor_zeros(&t, LUNET_DTYPE_FLOAT32, 2, s20));
    EXPECT_TEXT(t, "tensor([], size=(2, 0))");
    CHECK_OK(lunet_tensor_empty(&t, LUNET_DTYPE_BOOL, 2, s03));
    EXPECT_TEXT(t, "tensor([], size=(0, 3), dtype=torch.bool)");
}

static void test_spec_9_6_suffixes(void **state)
{
    (void)state;
    int64_t s17[1] = {17}, s18[1] = {18}, s9[1] = {9};
    lunet_tensor_t *t;
    CHECK_OK(lunet_tensor_full(&t, LUNET_DTYPE_UINT8, 1, s17, 1));
    EXPECT_TEXT(t,
                "tensor([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], dtype=torch.uint8)");
    CHECK_OK(lunet_tensor_full(&t, LUNET_DTYPE_UINT8, 1, s18, 1));
    EXPECT_TEXT(t, "tensor([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],\n"
                   "       dtype=torch.uint8)");
    CHECK_OK(lunet_tensor_empty(&t, LUNET_DTYPE_FLOAT64, 1, s9));
    for (int i = 0; i < 9; i++)
        ((double *)lunet_tensor_data(t))[i] = i / 7.0;
    t->requires_grad = true;
    EXPECT_TEXT(t,
                "tensor([0.0000, 0.1429, 0.2857, 0.4286, 0.5714, 0.7143, 0.8571, 1.0000, 1.1429],\n"
                "       dtype=torch.float64, requires_grad=True)");
    t = f32(2, (double[]){1, 2});
    t->requires_grad = true;
    EXPECT_TEXT(t, "tensor([1., 2.], requires_grad=True)");
    t = scalar(LUNET_DTYPE_FLOAT64, 1.5);
    t->requires_grad = true;
    EXPECT_TEXT(t, "tensor(1.5000, dtype=torch.float64, requires_grad=True)");
}

/* float32 prints its dtype once the default is float64; float64 then prints none. */
static void test_default_dtype(void **state)
{
    (void)state;
    int64_t s0[1] = {0}, s2[1] = {2};
    CHECK_OK(lunet_set_default_dtype(LUNET_DTYPE_FLOAT64));
    lunet_tensor_t *e32, *e64;
    CHECK_OK(lunet_tensor_empty(&e32, LUNET_DTYPE_FLOAT32, 1, s0));
    CHECK_OK(lunet_tensor_empty(&e64, LUNET_DTYPE_FLOAT64, 1, s0));
    /* every case runs (and prints what it compared) before the default is restored */
    int failed = !format_matches(f32(2, (double[]){1, 2}), "torch.",
                                 "tensor([1., 2.], dtype=torch.float32)", "f32");
    failed += !format_matches(tensor_of(LUNET_DTYPE_FLOAT64, 1, s2, (double[]){1, 2}), "torch.",
                              "tensor([1., 2.])", "f64");
    failed += !format_matches(e32, "torch.", "tensor([], dtype=torch.float32)", "e32");
    failed += !format_matches(e64, "torch.", "tensor([])", "e64");
    CHECK_OK(lunet_set_default_dtype(LUNET_DTYPE_FLOAT32));
    assert_int_equal(failed, 0);
}

static void test_prefix(void **state)
{
    (void)state;
    int64_t s2[1] = {2};
    assert_true(format_matches(tensor_of(LUNET_DTYPE_FLOAT64, 1, s2, (double[]){1.0, 2.5}),
                               "lunet.", "tensor([1.0000, 2.5000], dtype=lunet.float64)", "lunet"));
    assert_true(format_matches(tensor_of_ints(LUNET_DTYPE_UINT8, 1, s2, (int64_t[]){3, 4}), NULL,
                               "tensor([3, 4], dtype=torch.uint8)", "NULL prefix"));
}

static void test_size_format(void **state)
{
    (void)state;
    char *s;
    CHECK_OK(lunet_size_format(&s, 4, (int64_t[]){256, 1, 28, 28}, "torch."));
    assert_string_equal(s, "torch.Size([256, 1, 28, 28])");
    free(s);
    CHECK_OK(lunet_size_format(&s, 4, (int64_t[]){256, 1, 28, 28}, "lunet."));
    assert_string_equal(s, "lunet.Size([256, 1, 28, 28])");
    free(s);
    CHECK_OK(lunet_size_format(&s, 0, NULL, "torch."));
    assert_string_equal(s, "torch.Size([])");
    free(s);
    CHECK_OK(lunet_size_format(&s, 2, (int64_t[]){0, 3}, "torch."));
    assert_string_equal(s, "torch.Size([0, 3])");
    free(s);
    CHECK_OK(lunet_size_format(&s, 1, (int64_t[]){5}, "torch."));
    assert_string_equal(s, "torch.Size([5])");
    free(s);
    CHECK_FAILS(lunet_size_format(&s, -1, NULL, "torch."), LUNET_STATUS_VALUE, "size format");
}

static void test_bad_arguments(void **state)
{
    (void)state;
    char *s;
    CHECK_FAILS(lunet_tensor_format(&s, NULL, "torch."), LUNET_STATUS_VALUE, "tensor format");
    lunet_tensor_t *t = scalar(LUNET_DTYPE_FLOAT32, 1);
    CHECK_FAILS(lunet_tensor_format(NULL, t, "torch."), LUNET_STATUS_VALUE, "tensor format");
    lunet_tensor_release(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_goldens),
        cmocka_unit_test(test_goldens_lunet_prefix),
        cmocka_unit_test(test_spec_9_2_table),
        cmocka_unit_test(test_spec_9_3_layout),
        cmocka_unit_test(test_spec_9_4_summary),
        cmocka_unit_test(test_spec_9_5_empty),
        cmocka_unit_test(test_spec_9_6_suffixes),
        cmocka_unit_test(test_default_dtype),
        cmocka_unit_test(test_prefix),
        cmocka_unit_test(test_size_format),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
