/*
 * bench_loss.c - cross-entropy forward + backward on float32 logits, (64, 10) and
 * (4096, 1000): microseconds per call, best of several rounds.  Two variants: the C API
 * directly (forward keeping the log-sum-exp, single-pass backward), and through autograd
 * (requires_grad logits, backward()).  bench/bench_loss_torch.py times PyTorch on the same work.
 * Usage: bench_loss [rounds]
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "lunet.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int check(lunet_status_t st)
{
    if (st != LUNET_OK) {
        fprintf(stderr, "bench_loss: %s\n", lunet_error_message());
        exit(1);
    }
    return 0;
}

// x (N, C) float32 logits, y (N) class indices: best time of one forward + backward
static void bench(int64_t N, int64_t C, int rounds)
{
    lunet_generator_t *g = lunet_default_generator();
    lunet_generator_seed(g, 0);
    int64_t sx[2] = {N, C};
    lunet_tensor_t *x, *y, *one;
    check(lunet_tensor_empty(&x, LUNET_DTYPE_FLOAT32, 2, sx));
    check(lunet_tensor_normal_(x, g, 0, 1));
    check(lunet_tensor_empty(&y, LUNET_DTYPE_INT64, 1, &N));
    check(lunet_tensor_random_int_(y, g, 0, C));
    check(lunet_tensor_scalar(&one, LUNET_DTYPE_FLOAT32, 1.0, false));
    lunet_loss_options_t o;
    lunet_loss_options_init(&o);
    /* enough calls per round for ~20 ms */
    int reps = N * C >= 1000000 ? 5 : 2000;
    double best_api = 1e30, best_ag = 1e30;
    for (int r = 0; r < rounds; r++) {
        double t0 = now_us();
        for (int i = 0; i < reps; i++) {
            lunet_tensor_t *l, *lse, *dx;
            check(lunet_loss_cross_entropy_lse(&l, &lse, x, y, &o));
            check(lunet_loss_cross_entropy_backward_lse(&dx, one, x, y, lse, &o));
            lunet_tensor_release(l);
            lunet_tensor_release(lse);
            lunet_tensor_release(dx);
        }
        double t = (now_us() - t0) / reps;
        if (t < best_api)
            best_api = t;
    }
    check(lunet_tensor_requires_grad_(x, true));
    for (int r = 0; r < rounds; r++) {
        double t0 = now_us();
        for (int i = 0; i < reps; i++) {
            lunet_tensor_t *l;
            check(lunet_loss_cross_entropy(&l, x, y, &o));
            check(lunet_tensor_backward(l, NULL, false));
            lunet_tensor_release(l);
        }
        double t = (now_us() - t0) / reps;
        if (t < best_ag)
            best_ag = t;
    }
    printf("cross_entropy fwd+bwd (%lld, %lld) float32: %10.2f us (C API, fused)  %10.2f us "
           "(autograd)\n",
           (long long)N, (long long)C, best_api, best_ag);
    lunet_tensor_release(x);
    lunet_tensor_release(y);
    lunet_tensor_release(one);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    if (rounds < 1)
        rounds = 1;
    bench(64, 10, rounds);
    bench(4096, 1000, rounds);
    return 0;
}
