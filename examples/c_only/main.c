/*
 * c_only - trains an MLP (784 -> 128 -> ReLU -> 10) on Fashion-MNIST with the C API of
 * lunet.h alone: no Lua.  IDX files -> ToTensor + Normalize batches (lunet_data_image_batch)
 * -> an MLP (lunet_mlp_new: fused Linear+ReLU, then Linear) -> cross-entropy -> backward ->
 * SGD with momentum (lunet_sgd_new / lunet_optimizer_step).  A small slice keeps it quick: the first 6000 training
 * images for 2 epochs, tested on the first 1000 test images.
 *
 * usage: c_only [dir]   (dir holds the IDX files, plain or .gz; default
 *                        data/FashionMNIST/raw, made by `make data`)
 * Prints the loss of each epoch and the test accuracy; exits 0 when the accuracy is above
 * 0.75, 1 otherwise; prints SKIP and exits 0 when the data is absent.
 * build: make examples   (or: cc main.c $(pkg-config --cflags --libs lunet))
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "lunet.h"

#define NTRAIN 6000
#define NTEST 1000
#define BATCH 100
#define EPOCHS 2
#define HIDDEN 128
#define MIN_ACCURACY 0.75

/* Fashion-MNIST's mean and std (torchvision's Normalize((0.2860,), (0.3530,))) */
static const double MEAN = 0.2860, STD = 0.3530;

/* Every tensor this program makes, released at the end (and on any failure). */
static lunet_tensor_t *owned[64];
static int nowned;

static lunet_tensor_t *keep(lunet_tensor_t *t)
{
    owned[nowned++] = t;
    return t;
}

static void release_all(void)
{
    while (nowned > 0)
        lunet_tensor_release(owned[--nowned]);
}

static int fail(const char *what)
{
    fprintf(stderr, "c_only: %s: %s\n", what, lunet_error_message());
    release_all();
    return 1;
}

/* dir/name, or dir/name.gz when only that exists; NULL when neither does. */
static const char *find_file(char *buf, size_t n, const char *dir, const char *name)
{
    snprintf(buf, n, "%s/%s", dir, name);
    if (access(buf, R_OK) == 0)
        return buf;
    snprintf(buf, n, "%s/%s.gz", dir, name);
    return access(buf, R_OK) == 0 ? buf : NULL;
}

/* Reads images (uint8 (N, 28, 28)) and labels (as int64 (N)). */
static lunet_status_t load(lunet_tensor_t **images, lunet_tensor_t **labels, const char *img,
                           const char *lab)
{
    lunet_tensor_t *raw;
    lunet_status_t st = lunet_idx_read(images, img);
    if (st != LUNET_OK)
        return st;
    keep(*images);
    if ((st = lunet_idx_read(&raw, lab)) != LUNET_OK)
        return st;
    st = lunet_tensor_to(labels, raw, LUNET_DTYPE_INT64); /* IDX labels are uint8 */
    lunet_tensor_release(raw);
    if (st == LUNET_OK)
        keep(*labels);
    return st;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "data/FashionMNIST/raw";
    char p1[4096], p2[4096], p3[4096], p4[4096];
    const char *trimg = find_file(p1, sizeof p1, dir, "train-images-idx3-ubyte");
    const char *trlab = find_file(p2, sizeof p2, dir, "train-labels-idx1-ubyte");
    const char *teimg = find_file(p3, sizeof p3, dir, "t10k-images-idx3-ubyte");
    const char *telab = find_file(p4, sizeof p4, dir, "t10k-labels-idx1-ubyte");
    if (!trimg || !trlab || !teimg || !telab) {
        printf("SKIP: c_only: Fashion-MNIST not found in %s (run `make data`)\n", dir);
        return 0;
    }

    lunet_tensor_t *train_x, *train_y, *test_x, *test_y;
    if (load(&train_x, &train_y, trimg, trlab) != LUNET_OK ||
        load(&test_x, &test_y, teimg, telab) != LUNET_OK)
        return fail("reading the data");
    if (train_x->shape[0] < NTRAIN || test_x->shape[0] < NTEST) {
        fprintf(stderr, "c_only: need %d training and %d test images\n", NTRAIN, NTEST);
        release_all();
        return 1;
    }

    /* A 784-HIDDEN-10 ReLU MLP initialised as PyTorch's nn.Linear layers from a seeded
       generator, and SGD with momentum over its parameters. */
    lunet_generator_t *g = lunet_default_generator();
    lunet_generator_seed(g, 0);
    lunet_mlp_t *model;
    if (lunet_mlp_new(&model, 3, (const int64_t[]){784, HIDDEN, 10}, LUNET_ACTIVATION_RELU,
                      LUNET_DTYPE_FLOAT32, g))
        return fail("making the model");
    lunet_tensor_t *params[4];
    for (int i = 0; i < 4; i++)
        params[i] = lunet_mlp_parameter(model, i);
    lunet_sgd_options_t sgd = {.lr = 0.05, .momentum = 0.9};
    lunet_optimizer_t *opt;
    if (lunet_sgd_new(&opt, 4, params, &sgd)) {
        lunet_mlp_free(model);
        return fail("SGD options");
    }
    lunet_loss_options_t ce;
    lunet_loss_options_init(&ce);

    /* One batch buffer, refilled in place each step. */
    lunet_tensor_t *xb, *yb;
    if (lunet_tensor_empty(&xb, LUNET_DTYPE_FLOAT32, 4, (const int64_t[]){BATCH, 1, 28, 28}) ||
        !keep(xb) || lunet_tensor_empty(&yb, LUNET_DTYPE_INT64, 1, (const int64_t[]){BATCH}) ||
        !keep(yb))
        return fail("making the batch buffers");

    for (int epoch = 1; epoch <= EPOCHS; epoch++) {
        lunet_tensor_t *perm;
        if (lunet_tensor_randperm(&perm, g, NTRAIN))
            return fail("randperm");
        const int64_t *order = lunet_tensor_data(perm);
        double total = 0;
        int nbatch = 0;
        for (int start = 0; start + BATCH <= NTRAIN; start += BATCH) {
            lunet_tensor_t *logits = NULL, *loss = NULL;
            lunet_status_t st = lunet_data_image_batch(xb, yb, train_x, train_y, order + start,
                                                       BATCH, 255.0, 1, &MEAN, &STD);
            if (st == LUNET_OK)
                st = lunet_optimizer_zero_grad(opt);
            if (st == LUNET_OK)
                st = lunet_mlp_forward(&logits, model, xb);
            if (st == LUNET_OK)
                st = lunet_loss_cross_entropy(&loss, logits, yb, &ce);
            if (st == LUNET_OK)
                st = lunet_tensor_backward(loss, NULL, false);
            if (st == LUNET_OK)
                st = lunet_optimizer_step(opt);
            if (st == LUNET_OK) {
                total += lunet_tensor_get(loss, 0);
                nbatch++;
            }
            lunet_tensor_release(logits);
            lunet_tensor_release(loss);
            if (st != LUNET_OK) {
                lunet_tensor_release(perm);
                lunet_optimizer_free(opt);
                lunet_mlp_free(model);
                return fail("training step");
            }
        }
        lunet_tensor_release(perm);
        printf("epoch %d: mean loss %.4f over %d batches\n", epoch, total / nbatch, nbatch);
    }
    lunet_optimizer_free(opt);

    /* Test accuracy without recording autograd. */
    bool was = lunet_set_grad_enabled(false);
    int64_t *idx = malloc(sizeof *idx * NTEST);
    lunet_tensor_t *tx = NULL, *ty = NULL, *logits = NULL, *pred = NULL;
    lunet_status_t st = idx ? LUNET_OK : lunet_error_set(LUNET_STATUS_NOMEM, "out of memory");
    for (int64_t i = 0; idx && i < NTEST; i++)
        idx[i] = i;
    if (st == LUNET_OK)
        st = lunet_tensor_empty(&tx, LUNET_DTYPE_FLOAT32, 4, (const int64_t[]){NTEST, 1, 28, 28});
    if (st == LUNET_OK)
        st = lunet_tensor_empty(&ty, LUNET_DTYPE_INT64, 1, (const int64_t[]){NTEST});
    if (st == LUNET_OK)
        st = lunet_data_image_batch(tx, ty, test_x, test_y, idx, NTEST, 255.0, 1, &MEAN, &STD);
    if (st == LUNET_OK)
        st = lunet_mlp_forward(&logits, model, tx);
    if (st == LUNET_OK)
        st = lunet_tensor_reduce(&pred, NULL, LUNET_REDUCE_ARGMAX, logits, 1, (const int64_t[]){1},
                                 false);
    int correct = 0;
    if (st == LUNET_OK) {
        const int64_t *p = lunet_tensor_data(pred), *y = lunet_tensor_data(ty);
        for (int i = 0; i < NTEST; i++)
            correct += p[i] == y[i];
    }
    free(idx);
    lunet_tensor_release(tx);
    lunet_tensor_release(ty);
    lunet_tensor_release(logits);
    lunet_tensor_release(pred);
    lunet_set_grad_enabled(was);
    lunet_mlp_free(model);
    if (st != LUNET_OK)
        return fail("testing");
    release_all();

    double acc = (double)correct / NTEST;
    printf("test accuracy %.4f (%d/%d) with %s\n", acc, correct, NTEST, lunet_blas_name());
    if (acc <= MIN_ACCURACY) {
        fprintf(stderr, "c_only: accuracy %.4f is not above %.2f\n", acc, MIN_ACCURACY);
        return 1;
    }
    printf("c_only: OK\n");
    return 0;
}
