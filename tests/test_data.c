/*
 * test_data.c - the DataLoader's batch kernels (gather + ToTensor + Normalize in one call),
 * the single-image transforms, and, when `make data` has run, the real Fashion-MNIST files:
 * counts, pixel sum and label histogram from an independent reader, and torchvision's first
 * batches (tests/fixtures/gen_data.py writes tests/fixtures/data_fixture.h).
 */
#include "check.h"

#include <stdlib.h>
#include <sys/stat.h>

#include "fixtures/data_fixture.h"

void lunet_memory_trim(void); /* internal.h */

static const double MEAN[1] = {0.1307}, STD[1] = {0.3081};

/* ---------------------------------------------------------------- kernels ------------- */

/* Every byte: ToTensor is f32(v) / f32(255) and Normalize the two float32 roundings; the
 * spec's endpoints are pixel 0 -> -0.4242129623889923, 255 -> 2.821486711502075. */
static void test_image_batch_values(void **state)
{
    (void)state;
    int64_t sh[3] = {256, 1, 1};
    uint8_t px[256];
    int64_t lab[256];
    for (int i = 0; i < 256; i++) {
        px[i] = (uint8_t)i;
        lab[i] = i % 10;
    }
    lunet_tensor_t *im, *labels, *x, *xn, *y;
    CHECK_OK(lunet_tensor_from_data(&im, LUNET_DTYPE_UINT8, 3, sh, px));
    CHECK_OK(lunet_tensor_from_data(&labels, LUNET_DTYPE_INT64, 1, sh, lab));
    int64_t xs[4] = {256, 1, 1, 1};
    CHECK_OK(lunet_tensor_empty(&x, LUNET_DTYPE_FLOAT32, 4, xs));
    CHECK_OK(lunet_tensor_empty(&xn, LUNET_DTYPE_FLOAT32, 4, xs));
    CHECK_OK(lunet_tensor_empty(&y, LUNET_DTYPE_INT64, 1, sh));
    int64_t idx[256];
    for (int i = 0; i < 256; i++)
        idx[i] = 255 - i;
    CHECK_OK(lunet_data_image_batch(x, y, im, labels, idx, 256, 255, 0, NULL, NULL));
    CHECK_OK(lunet_data_image_batch(xn, NULL, im, NULL, idx, 256, 255, 1, MEAN, STD));
    const float *xv = lunet_tensor_data(x), *nv = lunet_tensor_data(xn);
    const int64_t *yv = lunet_tensor_data(y);
    for (int i = 0; i < 256; i++) {
        int v = 255 - i;
        volatile float q = (float)v / 255.0f; /* one float32 division */
        assert_true(xv[i] == q);
        volatile float d = q - 0.1307f;
        volatile float e = d / 0.3081f;
        assert_true(nv[i] == e);
        assert_int_equal(yv[i], v % 10);
    }
    assert_true(xv[0] == 1.0f && xv[255] == 0.0f);
    assert_true(nv[255] == (float)-0.4242129623889923);
    assert_true(nv[0] == (float)2.821486711502075);
    assert_true((double)nv[255] == -0.4242129623889923);
    assert_true((double)nv[0] == 2.821486711502075);
    lunet_tensor_release(im);
    lunet_tensor_release(labels);
    lunet_tensor_release(x);
    lunet_tensor_release(xn);
    lunet_tensor_release(y);
}

/* The vector kernels (16 and 8 pixels a step, then a scalar tail) against the scalar
 * formula on every pixel: odd planes (63 and 9999 pixels), 3 channels with their own
 * Normalize, a shuffled batch of odd size, and the same bits on 1, 2 and 3 threads (the
 * second shape is split into 7 blocks). */
static void test_image_batch_vector_rows(void **state)
{
    (void)state;
    static const struct {
        int64_t N, C, H, W, n;
    } shapes[2] = {{300, 3, 7, 9, 257}, {50, 1, 101, 99, 37}};
    const double mean[3] = {0.485, 0.456, 0.406}, std[3] = {0.229, 0.224, 0.225};
    int saved = lunet_get_num_threads();
    for (int k = 0; k < 2; k++) {
        int64_t N = shapes[k].N, C = shapes[k].C, plane = shapes[k].H * shapes[k].W;
        int64_t n = shapes[k].n, total = N * C * plane;
        uint8_t *px = malloc((size_t)total);
        int64_t *idx = malloc((size_t)n * sizeof *idx);
        assert_non_null(px);
        assert_non_null(idx);
        for (int64_t i = 0; i < total; i++)
            px[i] = (uint8_t)(i * 7919 + i / 256); /* every byte, in no order */
        for (int64_t b = 0; b < n; b++)
            idx[b] = (b * 131 + 17) % N;
        int64_t sh[4] = {N, C, shapes[k].H, shapes[k].W};
        int64_t xs[4] = {n, C, shapes[k].H, shapes[k].W};
        lunet_tensor_t *im, *x[2][3];
        CHECK_OK(lunet_tensor_from_data(&im, LUNET_DTYPE_UINT8, 4, sh, px));
        for (int norm = 0; norm < 2; norm++)
            for (int th = 1; th <= 3; th++) {
                CHECK_OK(lunet_set_num_threads(th));
                CHECK_OK(lunet_tensor_empty(&x[norm][th - 1], LUNET_DTYPE_FLOAT32, 4, xs));
                CHECK_OK(lunet_data_image_batch(x[norm][th - 1], NULL, im, NULL, idx, n, 255,
                                                norm ? (int)C : 0, mean, std));
            }
        for (int norm = 0; norm < 2; norm++) {
            const float *got = lunet_tensor_data(x[norm][0]);
            for (int64_t b = 0; b < n; b++)
                for (int64_t c = 0; c < C; c++)
                    for (int64_t i = 0; i < plane; i++) {
                        uint8_t v = px[(idx[b] * C + c) * plane + i];
                        volatile float q = (float)v / 255.0f;
                        if (norm) {
                            volatile float d = q - (float)mean[c];
                            q = d / (float)std[c];
                        }
                        float g = got[(b * C + c) * plane + i];
                        if (g != q)
                            fail_msg("shape %d norm %d image %lld channel %lld pixel %lld (byte "
                                     "%d): got %.9g, want %.9g",
                                     k, norm, (long long)b, (long long)c, (long long)i, v, g, q);
                    }
            for (int th = 2; th <= 3; th++)
                assert_memory_equal(got, lunet_tensor_data(x[norm][th - 1]),
                                    (size_t)(n * C * plane) * sizeof(float));
            for (int th = 1; th <= 3; th++)
                lunet_tensor_release(x[norm][th - 1]);
        }
        lunet_tensor_release(im);
        free(px);
        free(idx);
    }
    CHECK_OK(lunet_set_num_threads(saved));
}

/* Gather by index over (N, H, W) and per-channel Normalize over (N, C, H, W). */
static void test_image_batch_gather_channels(void **state)
{
    (void)state;
    int64_t sh[4] = {3, 2, 1, 2};
    uint8_t px[12] = {0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23};
    lunet_tensor_t *im, *x;
    CHECK_OK(lunet_tensor_from_data(&im, LUNET_DTYPE_UINT8, 4, sh, px));
    int64_t xs[4] = {2, 2, 1, 2};
    CHECK_OK(lunet_tensor_empty(&x, LUNET_DTYPE_FLOAT32, 4, xs));
    int64_t idx[2] = {2, 0};
    double mean[2] = {0, 1}, std[2] = {1, 2};
    CHECK_OK(lunet_data_image_batch(x, NULL, im, NULL, idx, 2, 1, 2, mean, std));
    CHECK_TENSOR(x, ((double[]){20, 21, 10.5, 11, 0, 1, 0.5, 1}), 8, 0);
    /* errors: index out of range (nothing written), zero std, channel count, shapes */
    CHECK_OK(lunet_tensor_fill_(x, 7));
    int64_t badidx[2] = {0, 3};
    CHECK_FAILS(lunet_data_image_batch(x, NULL, im, NULL, badidx, 2, 1, 0, NULL, NULL),
                LUNET_STATUS_INDEX, "index 3 is out of range for a dataset of size 3");
    CHECK_CLOSE(lunet_tensor_get(x, 0), 7, 0);
    double zero[1] = {1e-50};
    CHECK_FAILS(
        lunet_data_image_batch(x, NULL, im, NULL, idx, 2, 255, 1, mean, zero), LUNET_STATUS_VALUE,
        "std evaluated to zero after conversion to torch.float32, leading to division by zero.");
    double three[3] = {1, 1, 1};
    CHECK_FAILS(lunet_data_image_batch(x, NULL, im, NULL, idx, 2, 255, 3, three, three),
                LUNET_STATUS_RUNTIME, "3 means/stds for 2 channels");
    CHECK_FAILS(lunet_data_image_batch(x, NULL, im, NULL, idx, 1, 255, 0, NULL, NULL),
                LUNET_STATUS_VALUE, "output must be a contiguous float32 [1, 2, 1, 2]");
    CHECK_FAILS(lunet_data_image_batch(x, NULL, x, NULL, idx, 2, 255, 0, NULL, NULL),
                LUNET_STATUS_TYPE, "images must be a contiguous uint8");
    lunet_tensor_release(im);
    lunet_tensor_release(x);
}

static void test_to_tensor_and_normalize(void **state)
{
    (void)state;
    int64_t sh[2] = {2, 3};
    uint8_t px[6] = {0, 51, 102, 153, 204, 255};
    lunet_tensor_t *im, *x, *n;
    CHECK_OK(lunet_tensor_from_data(&im, LUNET_DTYPE_UINT8, 2, sh, px));
    CHECK_OK(lunet_data_to_tensor(&x, im));
    assert_int_equal(x->dtype, LUNET_DTYPE_FLOAT32);
    assert_int_equal(x->ndim, 3);
    assert_int_equal(x->shape[0], 1);
    assert_int_equal(x->shape[2], 3);
    CHECK_TENSOR(x, ((double[]){0, 0.2f, 0.4f, 0.6f, 0.8f, 1}), 6, 0);
    CHECK_OK(lunet_data_normalize(&n, x, 1, MEAN, 1, STD));
    assert_true(lunet_tensor_get(n, 0) == -0.4242129623889923);
    assert_true(lunet_tensor_get(n, 5) == 2.821486711502075);
    assert_true(lunet_tensor_get(x, 0) == 0); /* input untouched */
    lunet_tensor_release(n);
    /* HWC -> CHW */
    int64_t hwc[3] = {1, 2, 3};
    lunet_tensor_t *im3, *x3;
    CHECK_OK(lunet_tensor_from_data(&im3, LUNET_DTYPE_UINT8, 3, hwc, px));
    CHECK_OK(lunet_data_to_tensor(&x3, im3));
    assert_int_equal(x3->shape[0], 3);
    CHECK_TENSOR(x3, ((double[]){0, 0.6f, 0.2f, 0.8f, 0.4f, 1}), 6, 0);
    lunet_tensor_release(x3);
    lunet_tensor_release(im3);
    /* torchvision's errors */
    CHECK_FAILS(lunet_data_normalize(&n, im, 1, MEAN, 1, STD), LUNET_STATUS_TYPE,
                "Input tensor should be a float tensor. Got torch.uint8.");
    lunet_tensor_t *f2;
    int64_t s22[2] = {2, 2};
    CHECK_OK(lunet_tensor_zeros(&f2, LUNET_DTYPE_FLOAT32, 2, s22));
    CHECK_FAILS(lunet_data_normalize(&n, f2, 1, MEAN, 1, STD), LUNET_STATUS_VALUE,
                "Expected tensor to be a tensor image of size (..., C, H, W). Got tensor.size() = "
                "torch.Size([2, 2])");
    double z[1] = {0};
    CHECK_FAILS(lunet_data_normalize(&n, x, 1, MEAN, 1, z), LUNET_STATUS_VALUE,
                "std evaluated to zero after conversion to torch.float32");
    CHECK_FAILS(lunet_data_to_tensor(&n, f2), LUNET_STATUS_TYPE,
                "pic should be PIL Image or ndarray");
    lunet_tensor_release(f2);
    lunet_tensor_release(x);
    lunet_tensor_release(im);
}

static void test_label_histogram(void **state)
{
    (void)state;
    int64_t sh[1] = {5};
    int64_t l[5] = {0, 9, 9, 3, 0}, h[10];
    lunet_tensor_t *t;
    CHECK_OK(lunet_tensor_from_data(&t, LUNET_DTYPE_INT64, 1, sh, l));
    CHECK_OK(lunet_data_label_histogram(h, t, 10));
    assert_int_equal(h[0], 2);
    assert_int_equal(h[9], 2);
    assert_int_equal(h[3], 1);
    CHECK_FAILS(lunet_data_label_histogram(h, t, 9), LUNET_STATUS_VALUE,
                "label 9 at position 1 is outside [0, 9)");
    lunet_tensor_release(t);
}

/* ---------------------------------------------------------------- real data ----------- */

static lunet_tensor_t *load(const char *name)
{
    const char *root = getenv("LUNET_DATA_ROOT");
    char p[1024];
    struct stat sb;
    snprintf(p, sizeof p, "%s/FashionMNIST/raw/%s", root ? root : "data", name);
    if (stat(p, &sb) != 0) {
        snprintf(p, sizeof p, "%s/FashionMNIST/raw/%s.gz", root ? root : "data", name);
        if (stat(p, &sb) != 0)
            return NULL;
    }
    lunet_tensor_t *t;
    CHECK_OK(lunet_idx_read(&t, p));
    return t;
}

#define NEED_DATA(t)                                                                               \
    do {                                                                                           \
        if (!(t)) {                                                                                \
            print_message("Fashion-MNIST not found under data/FashionMNIST/raw (run `make "        \
                          "data`); skipped\n");                                                    \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

static void test_fashion_files(void **state)
{
    (void)state;
    static const char *names[2][2] = {{"train-images-idx3-ubyte", "train-labels-idx1-ubyte"},
                                      {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}};
    for (int s = 0; s < 2; s++) {
        lunet_tensor_t *im = load(names[s][0]);
        NEED_DATA(im);
        lunet_tensor_t *lab = load(names[s][1]);
        NEED_DATA(lab);
        int64_t n = s ? fx_test_n : fx_train_n;
        assert_int_equal(im->dtype, LUNET_DTYPE_UINT8);
        assert_int_equal(im->ndim, 3);
        assert_int_equal(im->shape[0], n);
        assert_int_equal(im->shape[1], 28);
        assert_int_equal(im->shape[2], 28);
        assert_int_equal(lab->ndim, 1);
        assert_int_equal(lab->shape[0], n);
        const uint8_t *p = lunet_tensor_data(im);
        int64_t sum = 0;
        for (int64_t i = 0; i < im->numel; i++)
            sum += p[i];
        assert_int_equal(sum, s ? fx_test_pixel_sum : fx_train_pixel_sum);
        int64_t h[10];
        CHECK_OK(lunet_data_label_histogram(h, lab, 10));
        for (int k = 0; k < 10; k++)
            assert_int_equal(h[k], s ? fx_test_hist[k] : fx_train_hist[k]);
        for (int k = 0; k < 10; k++)
            assert_int_equal(((uint8_t *)lunet_tensor_data(lab))[k],
                             s ? fx_test_first_labels[k] : fx_train_first_labels[k]);
        lunet_tensor_release(lab);
        lunet_tensor_release(im);
    }
}

static double image_sum(const float *x)
{
    double s = 0;
    for (int i = 0; i < 784; i++)
        s += x[i];
    return s;
}

/* The first batch (unshuffled, and for manual_seed(0)'s shuffled indices) is torchvision's. */
static void test_fashion_first_batches(void **state)
{
    (void)state;
    lunet_tensor_t *im = load("train-images-idx3-ubyte");
    NEED_DATA(im);
    lunet_tensor_t *lab8 = load("train-labels-idx1-ubyte"), *lab;
    NEED_DATA(lab8);
    CHECK_OK(lunet_tensor_to(&lab, lab8, LUNET_DTYPE_INT64));
    int64_t xs[4] = {256, 1, 28, 28}, ys[1] = {256};
    lunet_tensor_t *x, *y;
    CHECK_OK(lunet_tensor_empty(&x, LUNET_DTYPE_FLOAT32, 4, xs));
    CHECK_OK(lunet_tensor_empty(&y, LUNET_DTYPE_INT64, 1, ys));
    int64_t idx[256];
    for (int i = 0; i < 256; i++)
        idx[i] = i;
    CHECK_OK(lunet_data_image_batch(x, y, im, lab, idx, 256, 255, 1, MEAN, STD));
    const float *xv = lunet_tensor_data(x);
    const int64_t *yv = lunet_tensor_data(y);
    for (int b = 0; b < 256; b++) {
        CHECK_CLOSE(image_sum(xv + b * 784), fx_batch0_sums[b], 1e-12);
        assert_int_equal(yv[b], fx_batch0_labels[b]);
    }
    for (size_t k = 0; k < sizeof fx_batch0_pixels / sizeof fx_batch0_pixels[0]; k++) {
        int b = fx_batch0_pixels[k].b, r = fx_batch0_pixels[k].r, c = fx_batch0_pixels[k].c;
        assert_true(xv[b * 784 + r * 28 + c] == fx_batch0_pixels[k].v); /* bit-exact */
    }
    /* the first 16 rows of the same buffers (narrowed views stay contiguous) */
    lunet_tensor_t *x16, *y16;
    CHECK_OK(lunet_tensor_narrow(&x16, x, 0, 0, 16));
    CHECK_OK(lunet_tensor_narrow(&y16, y, 0, 0, 16));
    CHECK_OK(lunet_data_image_batch(x16, y16, im, lab, fx_shuffle_ep1, 16, 255, 1, MEAN, STD));
    lunet_tensor_release(x16);
    lunet_tensor_release(y16);
    for (int b = 0; b < 16; b++) {
        CHECK_CLOSE(image_sum(xv + b * 784), fx_shuffle_sums[b], 1e-12);
        assert_int_equal(yv[b], fx_shuffle_labels[b]);
    }
    lunet_tensor_release(x);
    lunet_tensor_release(y);
    lunet_tensor_release(lab);
    lunet_tensor_release(lab8);
    lunet_tensor_release(im);
}

/* The test split with ToTensor only (no Normalize). */
static void test_fashion_test_totensor(void **state)
{
    (void)state;
    lunet_tensor_t *im = load("t10k-images-idx3-ubyte");
    NEED_DATA(im);
    int64_t xs[4] = {16, 1, 28, 28};
    lunet_tensor_t *x;
    CHECK_OK(lunet_tensor_empty(&x, LUNET_DTYPE_FLOAT32, 4, xs));
    int64_t idx[16];
    for (int i = 0; i < 16; i++)
        idx[i] = i;
    CHECK_OK(lunet_data_image_batch(x, NULL, im, NULL, idx, 16, 255, 0, NULL, NULL));
    for (int b = 0; b < 16; b++)
        CHECK_CLOSE(image_sum((const float *)lunet_tensor_data(x) + b * 784),
                    fx_test_totensor_sums[b], 1e-12);
    lunet_tensor_release(x);
    lunet_tensor_release(im);
}

/* The shuffle itself: randperm(60000) from a private MT19937 seeded with the second
 * random64 % 2^63 of the global stream after manual_seed(0) (docs/pytorch-parity.md §14.6). */
static void test_shuffle_order(void **state)
{
    (void)state;
    lunet_generator_t *g = lunet_default_generator();
    lunet_generator_seed(g, 0);
    (void)(lunet_generator_random64(g) % ((uint64_t)1 << 63)); /* the loader's base seed */
    uint64_t s = lunet_generator_random64(g) % ((uint64_t)1 << 63);
    lunet_generator_t priv;
    lunet_generator_seed(&priv, s);
    lunet_tensor_t *perm;
    CHECK_OK(lunet_tensor_randperm(&perm, &priv, 60000));
    for (int i = 0; i < 16; i++)
        assert_int_equal(((int64_t *)lunet_tensor_data(perm))[i], fx_shuffle_ep1[i]);
    lunet_tensor_release(perm);
    (void)(lunet_generator_random64(g));
    s = lunet_generator_random64(g) % ((uint64_t)1 << 63);
    lunet_generator_seed(&priv, s);
    CHECK_OK(lunet_tensor_randperm(&perm, &priv, 60000));
    for (int i = 0; i < 16; i++)
        assert_int_equal(((int64_t *)lunet_tensor_data(perm))[i], fx_shuffle_ep2[i]);
    lunet_tensor_release(perm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_image_batch_values),
        cmocka_unit_test(test_image_batch_gather_channels),
        cmocka_unit_test(test_image_batch_vector_rows),
        cmocka_unit_test(test_to_tensor_and_normalize),
        cmocka_unit_test(test_label_histogram),
        cmocka_unit_test(test_shuffle_order),
        cmocka_unit_test(test_fashion_files),
        cmocka_unit_test(test_fashion_first_batches),
        cmocka_unit_test(test_fashion_test_totensor),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    lunet_memory_trim();
    return rc;
}
