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
#include <stdio.h>
#include <string.h>

#include "lunet.h"

/* Fails the test with the runtime's message when a call does not return LUNET_OK. */
#define CHECK_OK(expr)                                                                     \
    do {                                                                                   \
        lunet_status_t st_ = (expr);                                                       \
        if (st_ != LUNET_OK)                                                               \
            fail_msg("%s failed: %s", #expr, lunet_error_message());                       \
    } while (0)

/* Expects a failure with the given status whose message contains `text`. */
#define CHECK_FAILS(expr, status, text)                                                    \
    do {                                                                                   \
        lunet_status_t st_ = (expr);                                                       \
        if (st_ != (status))                                                               \
            fail_msg("%s: expected status %d, got %d (%s)", #expr, (int)(status), (int)st_, \
                     lunet_error_message());                                               \
        if (!strstr(lunet_error_message(), (text)))                                        \
            fail_msg("%s: message \"%s\" lacks \"%s\"", #expr, lunet_error_message(),      \
                     (text));                                                              \
    } while (0)

/* |a - b| <= tol * max(1, |b|), NaN equal to NaN, inf equal to same-signed inf. */
static inline void check_close_at(double a, double b, double tol, const char *file, int line)
{
    if (isnan(a) && isnan(b))
        return;
    if (isinf(b) && a == b)
        return;
    double scale = fabs(b) > 1 ? fabs(b) : 1;
    if (!(fabs(a - b) <= tol * scale))
        _fail(file, line), print_error("got %.17g, expected %.17g (tol %g)\n", a, b, tol);
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
    for (int64_t i = 0; i < n; i++)
        check_close_at(lunet_tensor_get(t, i), want[i], tol, file, line);
}
#define CHECK_TENSOR(t, want, n, tol) check_tensor_at((t), (want), (n), (tol), __FILE__, __LINE__)

#endif
