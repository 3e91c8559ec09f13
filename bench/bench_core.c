/*
 * bench_core.c - benchmarks of the tensor core (make bench): matmul against a direct cblas
 * call, element-wise add/exp bandwidth against memcpy, and one SGD step of the notebook's
 * 784-512-256-128-64-10 MLP at batch 64 through the C API, with its breakdown.
 * Best of several rounds; the machine's other load shows up as noise, so compare within a run.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef LUNET_NO_BLAS
#include <cblas.h>
#endif

#include "bench.h"

/* best time of `rounds` rounds of `reps` calls of body, in seconds per call */
#define BEST(rounds, reps, ...)                                                                    \
    ({                                                                                             \
        double best_ = 1e30;                                                                       \
        for (int r_ = 0; r_ < (rounds); r_++) {                                                    \
            double t0_ = now();                                                                    \
            for (int k_ = 0; k_ < (reps); k_++) {                                                  \
                __VA_ARGS__;                                                                       \
            }                                                                                      \
            double dt_ = (now() - t0_) / (reps);                                                   \
            if (dt_ < best_)                                                                       \
                best_ = dt_;                                                                       \
        }                                                                                          \
        best_;                                                                                     \
    })

static lunet_tensor_t *randn(int nd, const int64_t *shape)
{
    lunet_tensor_t *t;
    CHECK(lunet_tensor_empty(&t, LUNET_DTYPE_FLOAT32, nd, shape));
    CHECK(lunet_tensor_normal_(t, NULL, 0, 1));
    return t;
}

static void bench_matmul(void)
{
    int64_t sa[2] = {64, 784}, sb[2] = {784, 512};
    lunet_tensor_t *a = randn(2, sa), *b = randn(2, sb), *c;
    double t = BEST(7, 200, {
        CHECK(lunet_tensor_matmul(&c, a, b));
        lunet_tensor_release(c);
    });
    printf("matmul 64x784 @ 784x512 (float32): lunet %.1f us", t * 1e6);
#ifndef LUNET_NO_BLAS
    float *out = malloc(sizeof(float) * 64 * 512);
    double tb = BEST(7, 200, {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 64, 512, 784, 1.0f,
                    lunet_tensor_data(a), 784, lunet_tensor_data(b), 512, 0.0f, out, 512);
    });
    printf(", direct cblas_sgemm %.1f us, overhead %+.1f%%\n", tb * 1e6, (t / tb - 1) * 100);
    free(out);
#else
    printf(" (builtin GEMM)\n");
#endif
    lunet_tensor_release(a);
    lunet_tensor_release(b);
}

static void bench_elementwise(void)
{
    int64_t n[1] = {1000000};
    lunet_tensor_t *a = randn(1, n), *b = randn(1, n), *c;
    double bytes3 = 3.0 * 4 * 1e6, bytes2 = 2.0 * 4 * 1e6;
    double tadd = BEST(7, 50, {
        CHECK(lunet_tensor_binary(&c, LUNET_BINARY_ADD, a, b));
        lunet_tensor_release(c);
    });
    double texp = BEST(7, 50, {
        CHECK(lunet_tensor_unary(&c, LUNET_UNARY_EXP, a));
        lunet_tensor_release(c);
    });
    char *src = malloc(4000000), *dst = malloc(4000000);
    memset(src, 1, 4000000);
    memset(dst, 0, 4000000);
    double tcpy = BEST(7, 50, {
        memcpy(dst, src, 4000000);
        __asm__ volatile("" ::: "memory");
    });
    printf("add 1e6 float32: %.1f us, %.2f GB/s (reads 2 + writes 1 arrays)\n", tadd * 1e6,
           bytes3 / tadd * 1e-9);
    printf("exp 1e6 float32: %.1f us, %.2f GB/s\n", texp * 1e6, bytes2 / texp * 1e-9);
    printf("memcpy 4 MB:     %.1f us, %.2f GB/s (read 1 + write 1)\n", tcpy * 1e6,
           bytes2 / tcpy * 1e-9);
    free(src);
    free(dst);
    lunet_tensor_release(a);
    lunet_tensor_release(b);
}

#define NL 5
static const int64_t sizes[NL + 1] = {784, 512, 256, 128, 64, 10};

static void bench_mlp_step(void)
{
    lunet_generator_seed(lunet_default_generator(), 0);
    lunet_tensor_t *w[NL], *b[NL], *buf_w[NL] = {0}, *buf_b[NL] = {0};
    for (int l = 0; l < NL; l++) {
        int64_t sw[2] = {sizes[l + 1], sizes[l]}, sb[1] = {sizes[l + 1]};
        CHECK(lunet_tensor_empty(&w[l], LUNET_DTYPE_FLOAT32, 2, sw));
        CHECK(lunet_tensor_empty(&b[l], LUNET_DTYPE_FLOAT32, 1, sb));
        CHECK(lunet_nn_linear_reset(w[l], b[l], lunet_default_generator()));
        CHECK(lunet_tensor_requires_grad_(w[l], true));
        CHECK(lunet_tensor_requires_grad_(b[l], true));
    }
    int64_t sx[2] = {64, 784}, sy[1] = {64};
    lunet_tensor_t *x = randn(2, sx), *y;
    CHECK(lunet_tensor_empty(&y, LUNET_DTYPE_INT64, 1, sy));
    CHECK(lunet_tensor_random_int_(y, NULL, 0, 10));
    lunet_loss_options_t opts;
    lunet_loss_options_init(&opts);
    lunet_sgd_options_t sgd = {.lr = 0.01, .momentum = 0.5};
    double t_fwd = 1e30, t_bwd = 1e30, t_upd = 1e30, t_zero = 1e30, t_all = 1e30;
    for (int round = 0; round < 7; round++) {
        double f = 0, bw = 0, u = 0, z = 0;
        const int reps = 100;
        for (int k = 0; k < reps; k++) {
            double t0 = now();
            lunet_tensor_t *h = x;
            lunet_tensor_retain(h);
            for (int l = 0; l < NL; l++) {
                lunet_tensor_t *nh;
                CHECK(lunet_nn_linear(&nh, h, w[l], b[l], l < NL - 1));
                lunet_tensor_release(h);
                h = nh;
            }
            lunet_tensor_t *loss;
            CHECK(lunet_loss_cross_entropy(&loss, h, y, &opts));
            lunet_tensor_release(h);
            double t1 = now();
            CHECK(lunet_tensor_backward(loss, NULL, false));
            lunet_tensor_release(loss);
            double t2 = now();
            for (int l = 0; l < NL; l++) {
                CHECK(lunet_sgd_update(w[l], w[l]->grad, &buf_w[l], &sgd));
                CHECK(lunet_sgd_update(b[l], b[l]->grad, &buf_b[l], &sgd));
            }
            double t3 = now();
            bool was = lunet_set_grad_enabled(false);
            for (int l = 0; l < NL; l++) {
                CHECK(lunet_tensor_fill_(w[l]->grad, 0));
                CHECK(lunet_tensor_fill_(b[l]->grad, 0));
            }
            lunet_set_grad_enabled(was);
            double t4 = now();
            f += t1 - t0, bw += t2 - t1, u += t3 - t2, z += t4 - t3;
        }
        f /= reps, bw /= reps, u /= reps, z /= reps;
        if (f + bw + u + z < t_all) {
            t_all = f + bw + u + z;
            t_fwd = f, t_bwd = bw, t_upd = u, t_zero = z;
        }
    }
    /* the matrix products alone: forward 5, backward 10 (dx for layers 2-5, dw for all) */
    lunet_tensor_t *acts[NL + 1], *g[NL + 1];
    acts[0] = x;
    lunet_tensor_retain(x);
    for (int l = 0; l < NL; l++) {
        int64_t s[2] = {64, sizes[l + 1]};
        acts[l + 1] = randn(2, s);
        g[l + 1] = randn(2, s);
    }
    double t_mm = BEST(7, 100, {
        for (int l = 0; l < NL; l++) {
            lunet_tensor_t *r, *wt, *gt;
            CHECK(lunet_tensor_transpose(&wt, w[l], 0, 1));
            bool was = lunet_set_grad_enabled(false);
            CHECK(lunet_tensor_mm(&r, acts[l], wt));
            lunet_tensor_release(r);
            if (l > 0) {
                CHECK(lunet_tensor_mm(&r, g[l + 1], w[l]));
                lunet_tensor_release(r);
            }
            CHECK(lunet_tensor_transpose(&gt, g[l + 1], 0, 1));
            CHECK(lunet_tensor_mm(&r, gt, acts[l]));
            lunet_tensor_release(r);
            lunet_set_grad_enabled(was);
            lunet_tensor_release(gt);
            lunet_tensor_release(wt);
        }
    });
    printf("MLP 784-512-256-128-64-10, batch 64, one SGD step (C API): %.0f us\n", t_all * 1e6);
    printf("  forward + loss %.0f us, backward %.0f us, SGD-momentum update %.0f us, zero_grad "
           "%.0f us\n",
           t_fwd * 1e6, t_bwd * 1e6, t_upd * 1e6, t_zero * 1e6);
    printf("  matrix products alone %.0f us; outside them %.0f us (%.0f%%)\n", t_mm * 1e6,
           (t_all - t_mm) * 1e6, (t_all - t_mm) / t_all * 100);
    for (int l = 0; l <= NL; l++)
        lunet_tensor_release(acts[l]);
    for (int l = 1; l <= NL; l++)
        lunet_tensor_release(g[l]);
    for (int l = 0; l < NL; l++) {
        lunet_tensor_release(w[l]);
        lunet_tensor_release(b[l]);
        lunet_tensor_release(buf_w[l]);
        lunet_tensor_release(buf_b[l]);
    }
    lunet_tensor_release(x);
    lunet_tensor_release(y);
}

int main(void)
{
    printf("Lunet %s core benchmarks (GEMM: %s)\n", LUNET_VERSION, lunet_blas_name());
    bench_matmul();
    bench_elementwise();
    bench_mlp_step();
    return 0;
}
