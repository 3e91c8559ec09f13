/*
 * bench.h - what the C benchmarks share: a monotonic clock and a check that stops the
 * benchmark with the runtime's message when a call fails.
 */
#ifndef LUNET_BENCH_H
#define LUNET_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "lunet.h"

/* seconds from a monotonic clock */
static inline double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#define CHECK(expr)                                                                                \
    do {                                                                                           \
        if ((expr) != LUNET_OK) {                                                                  \
            fprintf(stderr, "%s: %s\n", #expr, lunet_error_message());                             \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#endif
