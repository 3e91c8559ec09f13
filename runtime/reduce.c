/*
 * reduce.c - sum, mean, prod, max, min, argmax, argmin, all, any over any set of dims.
 *
 * The input is viewed as (M, R): kept dims first, reduced dims last (a permuted view made
 * contiguous; free when the reduced dims are already innermost).  Each output element
 * reduces one contiguous run of R values.  A float sum or mean over the leading dims of a
 * contiguous tensor (a bias gradient: (N, C) summed over N) reads x as (R, M) in place
 * instead, each output element added up in exactly the row kernels' order, so the copy
 * goes and the bits stay.
 *
 * Threads: the output elements are split over the pool in blocks fixed by the shape (64K
 * input elements a block); each output element is reduced whole by one block, in the same
 * order on any thread count.
 */
#include "autograd.h"
#include "internal.h"

#include <math.h>
#include <string.h>

static const char *const reduce_names[] = {
    [LUNET_REDUCE_SUM] = "sum",       [LUNET_REDUCE_MEAN] = "mean",
    [LUNET_REDUCE_PROD] = "prod",     [LUNET_REDUCE_MAX] = "max",
    [LUNET_REDUCE_MIN] = "min",       [LUNET_REDUCE_ARGMAX] = "argmax",
    [LUNET_REDUCE_ARGMIN] = "argmin", [LUNET_REDUCE_ALL] = "all",
    [LUNET_REDUCE_ANY] = "any",
};
_Static_assert(sizeof reduce_names / sizeof reduce_names[0] == LUNET_REDUCE_COUNT,
               "one name per reduction");

/* ---- kernels: x (M, R) contiguous -> y (M) */

/*
 * x (M, R) float32, y (M).  Rows shorter than 8 use PyTorch's scalar order exactly (four
 * float accumulators, element i into acc[i % 4], the tail into acc[0]), so small sums print
 * as PyTorch's do (softmax rows summing to 1.0000 rather than 1.).  Longer rows, where
 * PyTorch's vectorised cascade takes over, are summed in double and rounded once: within
 * the parity tolerance, and more accurate.
 */
static void sum_f32(const float *x, float *y, int64_t m, int64_t r, bool mean)
{
    for (int64_t i = 0; i < m; i++) {
        const float *p = x + i * r;
        if (r < 8) {
            float acc[4] = {0, 0, 0, 0};
            int64_t full = r / 4 * 4, j = 0;
            for (; j < full; j++)
                acc[j % 4] += p[j];
            for (; j < r; j++)
                acc[0] += p[j];
            float s = ((acc[0] + acc[1]) + acc[2]) + acc[3];
            y[i] = mean ? (float)((double)s / (double)r) : s;
            continue;
        }
        double s = lunet_sum4_f32(p, r);
        y[i] = (float)(mean ? s / (double)r : s);
    }
}

static void sum_f64(const double *x, double *y, int64_t m, int64_t r, bool mean)
{
    for (int64_t i = 0; i < m; i++) {
        const double *p = x + i * r;
        double acc0 = 0, acc1 = 0;
        int64_t j = 0;
        for (; j + 2 <= r; j += 2) {
            acc0 += p[j];
            acc1 += p[j + 1];
        }
        for (; j < r; j++)
            acc0 += p[j];
        y[i] = mean ? (acc0 + acc1) / (double)r : acc0 + acc1;
    }
}

/* Output elements per block of the pool: ~64K input elements, a function of the shape. */
static int64_t reduce_grain(int64_t r) { return r >= 65536 ? 1 : 65536 / (r > 0 ? r : 1); }

typedef struct rows_job {
    const void *x;
    void *y;
    int64_t r;
    bool mean, f32;
} rows_job_t;

// output elements [i0, i1) of x (M, R) contiguous -> y (M)
static void sum_rows_block(void *ctx, int64_t i0, int64_t i1)
{
    const rows_job_t *j = ctx;
    if (j->f32)
        sum_f32((const float *)j->x + i0 * j->r, (float *)j->y + i0, i1 - i0, j->r, j->mean);
    else
        sum_f64((const double *)j->x + i0 * j->r, (double *)j->y + i0, i1 - i0, j->r, j->mean);
}

/*
 * x (R, M) contiguous, y (M) = sum (or mean) over R: y[c] adds x[0][c], x[1][c], ... in
 * sum_f32's order for a row (four float accumulators below 8 rows, else four double ones,
 * element i into accumulator i % 4 and the tail into the first), columns 64 at a time.
 */
/*
 * The rows of x (R, M) added into acc[k][0 .. w) over columns b .. b + w: row i into
 * accumulator i % K, the rows past the last multiple of K (full) into accumulator 0; the
 * column form of sum_f32's and sum_f64's orders.  A is acc's type, X x's.
 */
#define ADD_ROWS_INTO(acc, K, A, X)                                                                \
    for (int64_t i = 0; i < r; i++) {                                                              \
        A *a = acc[i < full ? i % (K) : 0];                                                        \
        const X *row = x + i * m + b;                                                              \
        for (int64_t c = 0; c < w; c++)                                                            \
            a[c] += row[c];                                                                        \
    }

static void colsum_f32(const float *x, float *y, int64_t r, int64_t m, int64_t c0, int64_t c1,
                       bool mean)
{
    int64_t full = r / 4 * 4;
    for (int64_t b = c0; b < c1; b += 64) {
        int64_t w = c1 - b < 64 ? c1 - b : 64;
        if (r < 8) {
            float acc[4][64] = {{0}};
            ADD_ROWS_INTO(acc, 4, float, float)
            for (int64_t c = 0; c < w; c++) {
                float s = ((acc[0][c] + acc[1][c]) + acc[2][c]) + acc[3][c];
                y[b + c] = mean ? (float)((double)s / (double)r) : s;
            }
            continue;
        }
        double acc[4][64] = {{0}};
        ADD_ROWS_INTO(acc, 4, double, float)
        for (int64_t c = 0; c < w; c++) {
            double s = (acc[0][c] + acc[1][c]) + (acc[2][c] + acc[3][c]);
            y[b + c] = (float)(mean ? s / (double)r : s);
        }
    }
}

/* x (R, M) contiguous, y (M): sum_f64's order (two accumulators, pairs, tail in the first). */
static void colsum_f64(const double *x, double *y, int64_t r, int64_t m, int64_t c0, int64_t c1,
                       bool mean)
{
    int64_t full = r / 2 * 2;
    for (int64_t b = c0; b < c1; b += 64) {
        int64_t w = c1 - b < 64 ? c1 - b : 64;
        double acc[2][64] = {{0}};
        ADD_ROWS_INTO(acc, 2, double, double)
        for (int64_t c = 0; c < w; c++)
            y[b + c] = mean ? (acc[0][c] + acc[1][c]) / (double)r : acc[0][c] + acc[1][c];
    }
}

#undef ADD_ROWS_INTO

typedef struct cols_job {
    const void *x;
    void *y;
    int64_t r, m;
    bool mean, f32;
} cols_job_t;

static void colsum_block(void *ctx, int64_t c0, int64_t c1)
{
    const cols_job_t *j = ctx;
    if (j->f32)
        colsum_f32(j->x, j->y, j->r, j->m, c0, c1, j->mean);
    else
        colsum_f64(j->x, j->y, j->r, j->m, c0, c1, j->mean);
}

/* Whether x's reduced dims are exactly its leading ones (at least one reduced, one kept). */
static bool reduces_leading(const lunet_tensor_t *x, const bool *reduced, bool all)
{
    if (all || x->ndim < 2 || !reduced[0])
        return false;
    int d = 0;
    while (d < x->ndim && reduced[d])
        d++;
    if (d == x->ndim)
        return false;
    for (int e = d; e < x->ndim; e++)
        if (reduced[e])
            return false;
    return true;
}

// x (M, R) any dtype read as double, y (M) in out dtype
static void generic_reduce(lunet_reduce_op_t op, const lunet_tensor_t *x, lunet_tensor_t *y,
                           lunet_tensor_t *idx, int64_t m, int64_t r)
{
    const char *px = lunet_tensor_data(x);
    char *py = lunet_tensor_data(y);
    size_t es = lunet_dtype_size(x->dtype), eo = lunet_dtype_size(y->dtype);
    int64_t *pi = idx ? lunet_tensor_data(idx) : NULL;
    bool int_in = !lunet_dtype_is_floating(x->dtype);
    for (int64_t i = 0; i < m; i++) {
        const char *row = px + (size_t)(i * r) * es;
        if (op == LUNET_REDUCE_SUM && int_in) {
            int64_t acc = 0;
            for (int64_t j = 0; j < r; j++) // wraps as PyTorch's does on x86
                acc = lunet_i64_add(acc, x->dtype == LUNET_DTYPE_INT64
                                             ? ((const int64_t *)row)[j]
                                             : (int64_t)((const uint8_t *)row)[j]);
            *(int64_t *)(py + (size_t)i * eo) = acc;
            continue;
        }
        if (op == LUNET_REDUCE_PROD && int_in) {
            int64_t acc = 1;
            for (int64_t j = 0; j < r; j++)
                acc = lunet_i64_mul(acc, x->dtype == LUNET_DTYPE_INT64
                                             ? ((const int64_t *)row)[j]
                                             : (int64_t)((const uint8_t *)row)[j]);
            *(int64_t *)(py + (size_t)i * eo) = acc;
            continue;
        }
        bool extreme = op == LUNET_REDUCE_MAX || op == LUNET_REDUCE_MIN ||
                       op == LUNET_REDUCE_ARGMAX || op == LUNET_REDUCE_ARGMIN;
        if (extreme && x->dtype == LUNET_DTYPE_INT64) {
            // exact: int64 values beyond 2^53 do not survive a trip through double
            bool want_max = op == LUNET_REDUCE_MAX || op == LUNET_REDUCE_ARGMAX;
            const int64_t *p = (const int64_t *)row;
            int64_t b = p[0], bj = 0;
            for (int64_t j = 1; j < r; j++)
                if (want_max ? p[j] > b : p[j] < b)
                    b = p[j], bj = j;
            if (op == LUNET_REDUCE_ARGMAX || op == LUNET_REDUCE_ARGMIN)
                *(int64_t *)(py + (size_t)i * eo) = bj;
            else
                *(int64_t *)(py + (size_t)i * eo) = b;
            if (pi)
                pi[i] = bj;
            continue;
        }
        double acc;
        int64_t best = 0;
        switch (op) {
        case LUNET_REDUCE_SUM:
        case LUNET_REDUCE_MEAN:
            acc = 0;
            for (int64_t j = 0; j < r; j++)
                acc += lunet_dtype_load(row + (size_t)j * es, x->dtype);
            if (op == LUNET_REDUCE_MEAN)
                acc /= (double)r;
            break;
        case LUNET_REDUCE_PROD:
            acc = 1;
            for (int64_t j = 0; j < r; j++)
                acc *= lunet_dtype_load(row + (size_t)j * es, x->dtype);
            break;
        case LUNET_REDUCE_ALL:
            acc = 1;
            for (int64_t j = 0; j < r && acc != 0; j++)
                acc = lunet_dtype_load(row + (size_t)j * es, x->dtype) != 0;
            break;
        case LUNET_REDUCE_ANY:
            acc = 0;
            for (int64_t j = 0; j < r && acc == 0; j++)
                acc = lunet_dtype_load(row + (size_t)j * es, x->dtype) != 0;
            break;
        default: { /* max, min, argmax, argmin: first extreme, NaN wins at its first place */
            bool want_max = op == LUNET_REDUCE_MAX || op == LUNET_REDUCE_ARGMAX;
            acc = lunet_dtype_load(row, x->dtype);
            for (int64_t j = 1; j < r && !isnan(acc); j++) {
                double v = lunet_dtype_load(row + (size_t)j * es, x->dtype);
                if (isnan(v) || (want_max ? v > acc : v < acc)) {
                    acc = v;
                    best = j;
                }
            }
            break;
        }
        }
        if (op == LUNET_REDUCE_ARGMAX || op == LUNET_REDUCE_ARGMIN)
            *(int64_t *)(py + (size_t)i * eo) = best;
        else
            lunet_dtype_store(py + (size_t)i * eo, y->dtype, acc);
        if (pi)
            pi[i] = best;
    }
}

// x (M, R) float32, y (M), idx (M): the hot path of argmax/max over classes
static void max_f32(const float *x, float *y, int64_t *idx, int64_t m, int64_t r, bool want_max)
{
    for (int64_t i = 0; i < m; i++) {
        const float *p = x + i * r;
        float best = p[0];
        int64_t bi = 0;
        for (int64_t j = 1; j < r && best == best; j++) {
            float v = p[j];
            if (v != v || (want_max ? v > best : v < best)) {
                best = v;
                bi = j;
            }
        }
        if (y)
            y[i] = best;
        if (idx)
            idx[i] = bi;
    }
}

lunet_status_t lunet_tensor_reduce(lunet_tensor_t **out, lunet_tensor_t **indices,
                                   lunet_reduce_op_t op, lunet_tensor_t *x, int ndims,
                                   const int64_t *dims, bool keepdim)
{
    if ((unsigned)op >= LUNET_REDUCE_COUNT)
        return lunet_error_set(LUNET_STATUS_VALUE, "reduce: unknown op %d", (int)op);
    const char *name = reduce_names[op];
    bool reduced[LUNET_MAX_DIMS] = {false};
    bool all = ndims == 0;
    lunet_status_t st;
    /* PyTorch infers mean's dtype before it looks at the dims */
    if (op == LUNET_REDUCE_MEAN && !lunet_dtype_is_floating(x->dtype))
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "mean(): could not infer output dtype. Input dtype must be either a "
                               "floating point or complex dtype. Got: %s",
                               lunet_dtype_torch_name(x->dtype));
    if (ndims > LUNET_MAX_DIMS)
        return lunet_error_set(LUNET_STATUS_VALUE, "%s: too many dims", name);
    for (int k = 0; k < ndims; k++) {
        int d;
        if ((st = lunet_dim_wrap(&d, dims[k], x->ndim)))
            return st;
        if (x->ndim > 0 && reduced[d])
            return lunet_error_set(LUNET_STATUS_RUNTIME,
                                   "dim %d appears multiple times in the list of dims", d);
        reduced[d] = true;
    }
    bool extreme = op == LUNET_REDUCE_MAX || op == LUNET_REDUCE_MIN || op == LUNET_REDUCE_ARGMAX ||
                   op == LUNET_REDUCE_ARGMIN;
    if (extreme && ndims > 1)
        return lunet_error_set(LUNET_STATUS_RUNTIME, "%s: expected a single dim, got %d", name,
                               ndims);
    if (extreme && x->numel == 0) {
        if (all)
            return lunet_error_set(
                op <= LUNET_REDUCE_MIN ? LUNET_STATUS_RUNTIME : LUNET_STATUS_INDEX,
                "%s(): Expected reduction dim to be specified for input.numel() == "
                "0.%s",
                name,
                op <= LUNET_REDUCE_MIN ? " Specify the reduction dim with the 'dim' "
                                         "argument."
                                       : "");
        for (int d = 0; d < x->ndim; d++)
            if (reduced[d] && x->shape[d] == 0)
                return lunet_error_set(LUNET_STATUS_INDEX,
                                       "%s(): Expected reduction dim %d to have non-zero size.",
                                       name, d);
    }

    /* geometry: kept dims then reduced dims */
    int64_t perm[LUNET_MAX_DIMS], oshape[LUNET_MAX_DIMS];
    int np = 0, ond = 0;
    int64_t m = 1, r = 1;
    for (int d = 0; d < x->ndim; d++) {
        bool red = all || reduced[d];
        if (!red) {
            perm[np++] = d;
            m *= x->shape[d];
            oshape[ond++] = x->shape[d];
        } else if (keepdim) {
            oshape[ond++] = 1;
        }
    }
    for (int d = 0; d < x->ndim; d++)
        if (all || reduced[d]) {
            perm[np++] = d;
            r *= x->shape[d];
        }
    /* argmax/argmin without dim index the flattened tensor and give a 0-d result */
    if (all && !keepdim)
        ond = 0;

    lunet_dtype_t odt = x->dtype;
    if ((op == LUNET_REDUCE_SUM || op == LUNET_REDUCE_PROD) && !lunet_dtype_is_floating(odt))
        odt = LUNET_DTYPE_INT64;
    if (op == LUNET_REDUCE_ARGMAX || op == LUNET_REDUCE_ARGMIN)
        odt = LUNET_DTYPE_INT64;
    /* 1.13's all/any keep uint8 (values 0 and 1); other dtypes give bool */
    if (op == LUNET_REDUCE_ALL || op == LUNET_REDUCE_ANY)
        odt = x->dtype == LUNET_DTYPE_UINT8 ? LUNET_DTYPE_UINT8 : LUNET_DTYPE_BOOL;
    /* PyTorch's argmax kernel has no bool version; an empty result never reaches it */
    if ((op == LUNET_REDUCE_ARGMAX || op == LUNET_REDUCE_ARGMIN) && x->dtype == LUNET_DTYPE_BOOL &&
        m > 0)
        return lunet_error_set(LUNET_STATUS_RUNTIME, "\"%s_cpu\" not implemented for 'Bool'", name);

    lunet_tensor_t *pv = NULL, *xc = NULL, *y = NULL, *idx = NULL;
    bool floating_sum = (x->dtype == LUNET_DTYPE_FLOAT32 || x->dtype == LUNET_DTYPE_FLOAT64) &&
                        (op == LUNET_REDUCE_SUM || op == LUNET_REDUCE_MEAN);
    bool columns = floating_sum && r > 0 && m > 0 && lunet_tensor_is_contiguous(x) &&
                   reduces_leading(x, reduced, all);
    if (!columns) {
        bool was = lunet_set_grad_enabled(false); /* internal views need no history */
        st = lunet_tensor_permute(&pv, x, x->ndim, perm);
        if (!st)
            st = lunet_tensor_contiguous(&xc, pv);
        lunet_set_grad_enabled(was);
        if (st)
            goto done;
    }
    if ((st = lunet_tensor_empty(&y, odt, ond, oshape)))
        goto done;
    bool want_idx = indices && !all && (op == LUNET_REDUCE_MAX || op == LUNET_REDUCE_MIN);
    if (want_idx && (st = lunet_tensor_empty(&idx, LUNET_DTYPE_INT64, ond, oshape)))
        goto done;

    if (r == 0) {
        double v = op == LUNET_REDUCE_MEAN                               ? NAN
                   : (op == LUNET_REDUCE_PROD || op == LUNET_REDUCE_ALL) ? 1
                                                                         : 0;
        if ((st = lunet_tensor_fill_(y, v)))
            goto done;
    } else if (columns) {
        cols_job_t j = {lunet_tensor_data(x),    lunet_tensor_data(y),           r, m,
                        op == LUNET_REDUCE_MEAN, x->dtype == LUNET_DTYPE_FLOAT32};
        /* 64-column strips, ~64K input elements a block */
        int64_t grain = (reduce_grain(r) + 63) / 64 * 64;
        lunet_parallel_for(m, grain, colsum_block, &j);
    } else if (floating_sum) {
        rows_job_t j = {lunet_tensor_data(xc), lunet_tensor_data(y), r, op == LUNET_REDUCE_MEAN,
                        x->dtype == LUNET_DTYPE_FLOAT32};
        lunet_parallel_for(m, reduce_grain(r), sum_rows_block, &j);
    } else if (x->dtype == LUNET_DTYPE_FLOAT32 && extreme) {
        bool want_max = op == LUNET_REDUCE_MAX || op == LUNET_REDUCE_ARGMAX;
        bool arg = op == LUNET_REDUCE_ARGMAX || op == LUNET_REDUCE_ARGMIN;
        max_f32(lunet_tensor_data(xc), arg ? NULL : lunet_tensor_data(y),
                arg   ? lunet_tensor_data(y)
                : idx ? lunet_tensor_data(idx)
                      : NULL,
                m, r, want_max);
    } else {
        generic_reduce(op, xc, y, idx, m, r);
    }

    if (lunet_autograd_needed(x, NULL) && lunet_dtype_is_floating(odt)) {
        lunet_tensor_t *in[1] = {x};
        lunet_op_args_t args = {{0}, {0}, NULL};
        for (int d = 0; d < x->ndim; d++)
            args.i[d] = all || reduced[d];
        args.i[LUNET_MAX_DIMS] = keepdim;
        args.i[LUNET_MAX_DIMS + 1] = all;
        if (op == LUNET_REDUCE_SUM || op == LUNET_REDUCE_MEAN) {
            args.name = op == LUNET_REDUCE_SUM ? (all ? "SumBackward0" : "SumBackward1")
                                               : (all ? "MeanBackward0" : "MeanBackward1");
            st = lunet_autograd_record(y, op == LUNET_REDUCE_SUM ? LUNET_OP_SUM : LUNET_OP_MEAN, 1,
                                       in, NULL, &args);
        } else if ((op == LUNET_REDUCE_MAX || op == LUNET_REDUCE_MIN) && all) {
            args.name = op == LUNET_REDUCE_MAX ? "MaxBackward1" : "MinBackward1";
            st = lunet_autograd_record(y, LUNET_OP_MAX_ALL, 1, in, NULL, &args);
        } else if (op == LUNET_REDUCE_MAX || op == LUNET_REDUCE_MIN) {
            lunet_tensor_t *ix = idx;
            if (!ix) {
                st = lunet_error_set(LUNET_STATUS_RUNTIME, "%s: gradient needs the indices", name);
                goto done;
            }
            int d = 0;
            while (!reduced[d])
                d++;
            args.i[0] = d;
            args.i[1] = keepdim;
            args.name = op == LUNET_REDUCE_MAX ? "MaxBackward0" : "MinBackward0";
            st = lunet_autograd_record(y, LUNET_OP_MAX_DIM, 1, in, &ix, &args);
        } else if (op == LUNET_REDUCE_PROD) {
            args.name = all ? "ProdBackward0" : "ProdBackward1";
            st = lunet_autograd_record(y, LUNET_OP_PROD, 1, in, NULL, &args);
        }
        if (st)
            goto done;
    }
    *out = y;
    y = NULL;
    if (indices && want_idx) {
        *indices = idx;
        idx = NULL;
    } else if (indices) {
        *indices = NULL;
    }
done:
    LUNET_RELEASE(pv, xc, y, idx);
    return st;
}

/* true when x has a zero anywhere (x contiguous) */
static bool has_zero(const lunet_tensor_t *x)
{
    const char *p = lunet_tensor_data(x);
    size_t es = lunet_dtype_size(x->dtype);
    for (int64_t i = 0; i < x->numel; i++)
        if (lunet_dtype_load(p + (size_t)i * es, x->dtype) == 0)
            return true;
    return false;
}

/*
 * Gradient of prod over the dims marked in `reduced` (x's dims), PyTorch's prod_backward:
 * without a zero anywhere in x, g * (y / x) rounded in x's dtype at each step (so a NaN in a
 * slice makes all its gradient NaN); with zeros, each element gets the product of the other
 * elements of its slice, from prefix and suffix products, so zeros are handled exactly.  g
 * and y have the output's shape, kept dims in order.
 */
lunet_status_t lunet_prod_backward(lunet_tensor_t **dx, lunet_tensor_t *g, lunet_tensor_t *x,
                                   lunet_tensor_t *y, const int64_t *reduced)
{
    int64_t perm[LUNET_MAX_DIMS], inv[LUNET_MAX_DIMS], pshape[LUNET_MAX_DIMS];
    int np = 0;
    int64_t m = 1, r = 1;
    for (int d = 0; d < x->ndim; d++)
        if (!reduced[d]) {
            perm[np] = d;
            pshape[np++] = x->shape[d];
            m *= x->shape[d];
        }
    for (int d = 0; d < x->ndim; d++)
        if (reduced[d]) {
            perm[np] = d;
            pshape[np++] = x->shape[d];
            r *= x->shape[d];
        }
    for (int k = 0; k < x->ndim; k++)
        inv[perm[k]] = k;
    lunet_tensor_t *xp = NULL, *xc = NULL, *gc = NULL, *yc = NULL, *out = NULL, *outp = NULL;
    lunet_status_t st = lunet_tensor_permute(&xp, x, x->ndim, perm);
    if (!st)
        st = lunet_tensor_contiguous(&xc, xp);
    if (!st)
        st = lunet_tensor_contiguous(&gc, g);
    if (!st)
        st = lunet_tensor_contiguous(&yc, y);
    if (!st)
        st = lunet_tensor_empty(&out, x->dtype, x->ndim, pshape);
    if (st)
        goto done;
    bool zeros = has_zero(xc);
    // xc (M, R), gc (M), yc (M), out (M, R): out[i][j] = g[i] * prod_{k != j} x[i][k]
    for (int64_t i = 0; i < m; i++) {
        double gi = lunet_tensor_get(gc, i), left = 1;
        char *orow = (char *)lunet_tensor_data(out) + (size_t)(i * r) * lunet_dtype_size(x->dtype);
        const char *xrow = (const char *)lunet_tensor_data(xc) +
                           (size_t)(i * r) * lunet_dtype_size(x->dtype);
        size_t es = lunet_dtype_size(x->dtype);
        if (!zeros) {
            /* a double quotient or product of two floats rounds to float as float math does */
            double yi = lunet_tensor_get(yc, i);
            for (int64_t j = 0; j < r; j++) {
                lunet_dtype_store(orow + (size_t)j * es, x->dtype,
                                  yi / lunet_dtype_load(xrow + (size_t)j * es, x->dtype));
                lunet_dtype_store(orow + (size_t)j * es, x->dtype,
                                  gi * lunet_dtype_load(orow + (size_t)j * es, x->dtype));
            }
            continue;
        }
        for (int64_t j = 0; j < r; j++) { /* prefix products first */
            lunet_dtype_store(orow + (size_t)j * es, x->dtype, left);
            left *= lunet_dtype_load(xrow + (size_t)j * es, x->dtype);
        }
        double right = 1;
        for (int64_t j = r - 1; j >= 0; j--) {
            double pre = lunet_dtype_load(orow + (size_t)j * es, x->dtype);
            lunet_dtype_store(orow + (size_t)j * es, x->dtype, gi * pre * right);
            right *= lunet_dtype_load(xrow + (size_t)j * es, x->dtype);
        }
    }
    if (!(st = lunet_tensor_permute(&outp, out, x->ndim, inv)))
        st = lunet_tensor_contiguous(dx, outp);
done:
    LUNET_RELEASE(xp, xc, gc, yc, out, outp);
    return st;
}
