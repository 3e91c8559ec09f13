/*
 * check.h - shared helpers for the cmocka tests.  Include after <cmocka.h>'s prerequisites.
 */
#ifndef LUNET_TEST_CHECK_H
#define LUNET_TEST_CHECK_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "lunet.h"

/* Fails the test with the runtime's message when a call does not return LUNET_OK. */
#define CHECK_OK(expr)                                                                             \
    do {                                                                                           \
        lunet_status_t st_ = (expr);                                                               \
        if (st_ != LUNET_OK)                                                                       \
            fail_msg("%s failed: %s", #expr, lunet_error_message());                               \
    } while (0)

/* Expects a failure with the given status whose message contains `text`. */
#define CHECK_FAILS(expr, status, text)                                                            \
    do {                                                                                           \
        lunet_status_t st_ = (expr);                                                               \
        if (st_ != (status))                                                                       \
            fail_msg("%s: expected status %d, got %d (%s)", #expr, (int)(status), (int)st_,        \
                     lunet_error_message());                                                       \
        if (!strstr(lunet_error_message(), (text)))                                                \
            fail_msg("%s: message \"%s\" lacks \"%s\"", #expr, lunet_error_message(), (text));     \
    } while (0)

/* A new contiguous tensor holding fv[] (converted as lunet_dtype_store does) or iv[]. */
static inline lunet_tensor_t *tensor_filled_(lunet_dtype_t dt, int ndim, const int64_t *shape,
                                             const double *fv, const int64_t *iv)
{
    lunet_tensor_t *t;
    CHECK_OK(lunet_tensor_empty(&t, dt, ndim, shape));
    char *d = lunet_tensor_data(t);
    int64_t es = (int64_t)lunet_dtype_size(dt);
    for (int64_t i = 0; i < t->numel; i++) {
        if (iv)
            lunet_dtype_store_int(d + i * es, dt, iv[i]);
        else
            lunet_dtype_store(d + i * es, dt, fv[i]);
    }
    return t;
}

/* A tensor of dtype dt and shape from row-major doubles (exact for every value the tests use). */
static inline lunet_tensor_t *tensor_of(lunet_dtype_t dt, int ndim, const int64_t *shape,
                                        const double *v)
{
    return tensor_filled_(dt, ndim, shape, v, NULL);
}

/* The same from int64 values, exact beyond 2^53. */
static inline lunet_tensor_t *tensor_of_ints(lunet_dtype_t dt, int ndim, const int64_t *shape,
                                             const int64_t *v)
{
    return tensor_filled_(dt, ndim, shape, NULL, v);
}

/* A new tensor of dtype dt and shape drawn from N(0, 1) by g. */
static inline lunet_tensor_t *tensor_randn(lunet_dtype_t dt, int ndim, const int64_t *shape,
                                           lunet_generator_t *g)
{
    lunet_tensor_t *t;
    CHECK_OK(lunet_tensor_empty(&t, dt, ndim, shape));
    CHECK_OK(lunet_tensor_normal_(t, g, 0, 1));
    return t;
}

/*
 * Every helper prints what it compared before failing: cmocka's _fail() does not return
 * (it jumps out of the test), so the message must come first.
 */

/* |a - b| <= tol * max(1, |b|), NaN equal to NaN, inf equal to same-signed inf. */
static inline bool close_enough(double a, double b, double tol)
{
    if (isnan(a) && isnan(b))
        return true;
    if (isinf(b) && a == b)
        return true;
    double scale = fabs(b) > 1 ? fabs(b) : 1;
    return fabs(a - b) <= tol * scale;
}

static inline void check_close_at(double a, double b, double tol, const char *file, int line)
{
    if (!close_enough(a, b, tol)) {
        print_error("got %.17g, expected %.17g (tol %g)\n", a, b, tol);
        _fail(file, line);
    }
}
#define CHECK_CLOSE(a, b, tol) check_close_at((a), (b), (tol), __FILE__, __LINE__)

/* Compares every element of t (any layout, read as double) with want[]. */
static inline void check_tensor_at(lunet_tensor_t *t, const double *want, int64_t n, double tol,
                                   const char *file, int line)
{
    if (t->numel != n) {
        print_error("numel %lld, expected %lld\n", (long long)t->numel, (long long)n);
        _fail(file, line);
    }
    for (int64_t i = 0; i < n; i++) {
        double got = lunet_tensor_get(t, i);
        if (!close_enough(got, want[i], tol)) {
            print_error("element %lld of %lld: got %.17g, expected %.17g (tol %g)\n", (long long)i,
                        (long long)n, got, want[i], tol);
            _fail(file, line);
        }
    }
}
#define CHECK_TENSOR(t, want, n, tol) check_tensor_at((t), (want), (n), (tol), __FILE__, __LINE__)

#endif
