/*
 * tensor.c - tensor structs, creation, refcounting, dtype facts, copies and conversions.
 * Views live in view.c, element-wise math in ops_elementwise.c.
 */
#include "autograd.h"
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- dtypes */

static const struct {
    const char *name;
    const char *torch_name;
    size_t size;
    bool floating;
} dtype_info[] = {
    [LUNET_DTYPE_FLOAT32] = {"float32", "Float", 4, true},
    [LUNET_DTYPE_FLOAT64] = {"float64", "Double", 8, true},
    [LUNET_DTYPE_INT64] = {"int64", "Long", 8, false},
    [LUNET_DTYPE_UINT8] = {"uint8", "Byte", 1, false},
    [LUNET_DTYPE_BOOL] = {"bool", "Bool", 1, false},
};
_Static_assert(sizeof dtype_info / sizeof dtype_info[0] == LUNET_DTYPE_COUNT, "one row per dtype");

size_t lunet_dtype_size(lunet_dtype_t dt) { return dtype_info[dt].size; }
const char *lunet_dtype_name(lunet_dtype_t dt) { return dtype_info[dt].name; }
const char *lunet_dtype_torch_name(lunet_dtype_t dt) { return dtype_info[dt].torch_name; }
bool lunet_dtype_is_floating(lunet_dtype_t dt) { return dtype_info[dt].floating; }

static lunet_dtype_t default_dtype = LUNET_DTYPE_FLOAT32;

lunet_dtype_t lunet_default_dtype(void) { return default_dtype; }

lunet_status_t lunet_set_default_dtype(lunet_dtype_t dt)
{
    if (!lunet_dtype_is_floating(dt))
        return lunet_error_set(LUNET_STATUS_TYPE,
                               "set_default_dtype: only floating-point types are supported as the "
                               "default type (got %s)",
                               lunet_dtype_name(dt));
    default_dtype = dt;
    return LUNET_OK;
}

double lunet_dtype_load(const void *p, lunet_dtype_t dt)
{
    switch (dt) {
    case LUNET_DTYPE_FLOAT32:
        return *(const float *)p;
    case LUNET_DTYPE_FLOAT64:
        return *(const double *)p;
    case LUNET_DTYPE_INT64:
        return (double)*(const int64_t *)p;
    case LUNET_DTYPE_UINT8:
        return *(const uint8_t *)p;
    case LUNET_DTYPE_BOOL:
        return *(const uint8_t *)p ? 1.0 : 0.0;
    default:
        return 0;
    }
}

/* Float to integer conversion truncates toward zero, as PyTorch's does. */
void lunet_dtype_store(void *p, lunet_dtype_t dt, double v)
{
    if (dt == LUNET_DTYPE_FLOAT32)
        *(float *)p = (float)v;
    else if (dt == LUNET_DTYPE_FLOAT64)
        *(double *)p = v;
    else if (dt == LUNET_DTYPE_BOOL)
        *(uint8_t *)p = v != 0;
    else /* int64, uint8 */
        lunet_dtype_store_int(p, dt, lunet_f64_to_i64(v));
}

void lunet_dtype_store_int(void *p, lunet_dtype_t dt, int64_t v)
{
    switch (dt) {
    case LUNET_DTYPE_FLOAT32:
        *(float *)p = (float)v;
        break;
    case LUNET_DTYPE_FLOAT64:
        *(double *)p = (double)v;
        break;
    case LUNET_DTYPE_INT64:
        *(int64_t *)p = v;
        break;
    case LUNET_DTYPE_UINT8:
        *(uint8_t *)p = (uint8_t)v;
        break;
    case LUNET_DTYPE_BOOL:
        *(uint8_t *)p = v != 0;
        break;
    default:
        break;
    }
}

/* ---- tensor structs, recycled through the thread's free list (storage.c) */

lunet_tensor_t *lunet_tensor_alloc(void)
{
    lunet_tensor_t *t = lunet_pool_get(LUNET_POOL_TENSOR, sizeof(lunet_tensor_t));
    if (!t)
        return NULL;
    memset(t, 0, sizeof *t);
    t->refcount = 1;
    return t;
}

void lunet_tensor_retain(lunet_tensor_t *t)
{
    if (t)
        t->refcount++;
}

void lunet_tensor_release(lunet_tensor_t *t)
{
    if (!t || --t->refcount > 0)
        return;
    lunet_storage_release(t->storage);
    LUNET_RELEASE(t->grad, t->grad_home);
    if (t->grad_fn && t->grad_fn->retain_target == t)
        t->grad_fn->retain_target = NULL;
    lunet_node_release(t->grad_fn);
    lunet_pool_put(LUNET_POOL_TENSOR, t);
}

int64_t lunet_shape_numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    return n;
}

bool lunet_shape_numel_checked(int ndim, const int64_t *shape, size_t itemsize, int64_t *numel)
{
    // PyTorch's test (c10::safe_multiplies_u64): the running product in uint64 never
    // overflows and ends within int64; a negative size counts as a huge one.
    uint64_t n = 1, span = itemsize;
    bool over = false;
    for (int i = 0; i < ndim; i++) {
        uint64_t d = (uint64_t)shape[i];
        over |= __builtin_mul_overflow(n, d, &n);
        over |= __builtin_mul_overflow(span, d > 1 ? d : 1, &span);
    }
    if (over || n > INT64_MAX || span > INT64_MAX)
        return false;
    *numel = (int64_t)n;
    return true;
}

bool lunet_shape_equal(int na, const int64_t *a, int nb, const int64_t *b)
{
    if (na != nb)
        return false;
    for (int i = 0; i < na; i++)
        if (a[i] != b[i])
            return false;
    return true;
}

void lunet_tensor_set_contiguous_strides(lunet_tensor_t *t)
{
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        t->strides[i] = s;
        s *= t->shape[i] > 1 ? t->shape[i] : 1;
    }
}

/*
 * The checks of a new tensor's shape, with PyTorch's messages.  Its byte size must fit in
 * int64 (PyTorch: "Storage size calculation overflowed"); Lunet asks the same of the
 * product of the non-zero sizes, so that contiguous strides and every offset into the
 * tensor are exact even for an empty tensor such as (0, 2^62, 4), which PyTorch allows
 * with wrapped strides.
 */
static lunet_status_t check_shape(const char *op, int ndim, const int64_t *shape, lunet_dtype_t dt,
                                  int64_t *numel)
{
    char buf[LUNET_SHAPE_BUF];
    if (ndim < 0 || ndim > LUNET_MAX_DIMS)
        return lunet_error_set(LUNET_STATUS_VALUE, "%s: %d dims is more than the %d supported", op,
                               ndim, LUNET_MAX_DIMS);
    if ((unsigned)dt >= LUNET_DTYPE_COUNT)
        return lunet_error_set(LUNET_STATUS_TYPE, "%s: unknown dtype %d", op, (int)dt);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0)
            return lunet_error_set(LUNET_STATUS_RUNTIME,
                                   "Trying to create tensor with negative dimension %lld: %s",
                                   (long long)shape[i],
                                   lunet_shape_str(buf, sizeof buf, ndim, shape));
    if (!lunet_shape_numel_checked(ndim, shape, lunet_dtype_size(dt), numel))
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "Storage size calculation overflowed with sizes=%s",
                               lunet_shape_str(buf, sizeof buf, ndim, shape));
    return LUNET_OK;
}

/* A contiguous tensor header of a checked shape (numel elements), its storage still NULL. */
static lunet_tensor_t *contiguous_header(lunet_dtype_t dt, int ndim, const int64_t *shape,
                                         int64_t numel)
{
    lunet_tensor_t *t = lunet_tensor_alloc();
    if (!t)
        return NULL;
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->numel = numel;
    lunet_tensor_set_contiguous_strides(t);
    return t;
}

lunet_status_t lunet_tensor_empty(lunet_tensor_t **out, lunet_dtype_t dt, int ndim,
                                  const int64_t *shape)
{
    int64_t numel;
    lunet_status_t st = check_shape("empty", ndim, shape, dt, &numel);
    if (st)
        return st;
    lunet_tensor_t *t = contiguous_header(dt, ndim, shape, numel);
    if (!t)
        return lunet_error_set(LUNET_STATUS_NOMEM, "empty: out of memory");
    if ((st = lunet_storage_new(&t->storage, (size_t)numel * lunet_dtype_size(dt)))) {
        lunet_tensor_release(t);
        return st;
    }
    *out = t;
    return LUNET_OK;
}

lunet_status_t lunet_tensor_empty_like(lunet_tensor_t **out, const lunet_tensor_t *t,
                                       lunet_dtype_t dt)
{
    return lunet_tensor_empty(out, dt, t->ndim, t->shape);
}

lunet_status_t lunet_tensor_zeros(lunet_tensor_t **out, lunet_dtype_t dt, int ndim,
                                  const int64_t *shape)
{
    lunet_tensor_t *t;
    lunet_status_t st = lunet_tensor_empty(&t, dt, ndim, shape);
    if (st)
        return st;
    memset(t->storage->data, 0, (size_t)t->numel * lunet_dtype_size(dt));
    *out = t;
    return LUNET_OK;
}

/* A new tensor holding one number everywhere: a double, or (is_int, exactly) an int64. */
static lunet_status_t filled(lunet_tensor_t **out, lunet_dtype_t dt, int ndim, const int64_t *shape,
                             bool is_int, double dv, int64_t iv)
{
    lunet_tensor_t *t;
    lunet_status_t st = lunet_tensor_empty(&t, dt, ndim, shape);
    if (st)
        return st;
    if ((st = is_int ? lunet_tensor_fill_int_(t, iv) : lunet_tensor_fill_(t, dv))) {
        lunet_tensor_release(t);
        return st;
    }
    lunet_tensor_mark_fresh(t);
    *out = t;
    return LUNET_OK;
}

lunet_status_t lunet_tensor_full(lunet_tensor_t **out, lunet_dtype_t dt, int ndim,
                                 const int64_t *shape, double value)
{
    return filled(out, dt, ndim, shape, false, value, 0);
}

lunet_status_t lunet_tensor_full_int(lunet_tensor_t **out, lunet_dtype_t dt, int ndim,
                                     const int64_t *shape, int64_t value)
{
    return filled(out, dt, ndim, shape, true, 0, value);
}

/* A 0-d tensor of one number (stored directly: this runs for every number an op meets). */
static lunet_status_t number(lunet_tensor_t **out, lunet_dtype_t dt, bool wrapped, bool is_int,
                             double dv, int64_t iv)
{
    lunet_tensor_t *t;
    lunet_status_t st = lunet_tensor_empty(&t, dt, 0, NULL);
    if (st)
        return st;
    if (is_int)
        lunet_dtype_store_int(t->storage->data, dt, iv);
    else
        lunet_dtype_store(t->storage->data, dt, dv);
    t->wrapped_number = wrapped;
    *out = t;
    return LUNET_OK;
}

lunet_status_t lunet_tensor_scalar_int(lunet_tensor_t **out, lunet_dtype_t dt, int64_t value,
                                       bool wrapped)
{
    return number(out, dt, wrapped, true, 0, value);
}

lunet_status_t lunet_tensor_scalar(lunet_tensor_t **out, lunet_dtype_t dt, double value,
                                   bool wrapped)
{
    return number(out, dt, wrapped, false, value, 0);
}

lunet_status_t lunet_tensor_from_data(lunet_tensor_t **out, lunet_dtype_t dt, int ndim,
                                      const int64_t *shape, const void *data)
{
    lunet_tensor_t *t;
    lunet_status_t st = lunet_tensor_empty(&t, dt, ndim, shape);
    if (st)
        return st;
    memcpy(t->storage->data, data, (size_t)t->numel * lunet_dtype_size(dt));
    *out = t;
    return LUNET_OK;
}

lunet_status_t lunet_tensor_wrap(lunet_tensor_t **out, lunet_dtype_t dt, int ndim,
                                 const int64_t *shape, void *data,
                                 void (*release_fn)(void *data, void *ctx), void *ctx)
{
    int64_t numel;
    lunet_status_t st = check_shape("wrap", ndim, shape, dt, &numel);
    if (st)
        return st;
    if (!data && numel > 0)
        return lunet_error_set(LUNET_STATUS_VALUE, "wrap: NULL data for %lld elements",
                               (long long)numel);
    if ((uintptr_t)data % lunet_dtype_size(dt) != 0)
        return lunet_error_set(LUNET_STATUS_VALUE, "wrap: data is not aligned for %s",
                               lunet_dtype_name(dt));
    lunet_tensor_t *t = contiguous_header(dt, ndim, shape, numel);
    if (!t)
        return lunet_error_set(LUNET_STATUS_NOMEM, "wrap: out of memory");
    if ((st = lunet_storage_wrap(&t->storage, data, (size_t)numel * lunet_dtype_size(dt),
                                 release_fn, ctx))) {
        lunet_tensor_release(t);
        return st;
    }
    *out = t;
    return LUNET_OK;
}

/*
 * arange and linspace: a new 1-D tensor of n values of dtype dt, start + step * i for i < half
 * and end - step * (n - 1 - i) from there on.
 */
static lunet_status_t linear_sequence(lunet_tensor_t **out, lunet_dtype_t dt, int64_t n,
                                      double start, double end, double step, int64_t half)
{
    lunet_tensor_t *t;
    lunet_status_t st = lunet_tensor_empty(&t, dt, 1, &n);
    if (st)
        return st;
    char *p = t->storage->data;
    size_t es = lunet_dtype_size(dt);
    for (int64_t i = 0; i < n; i++) {
        double v = i < half ? start + step * (double)i : end - step * (double)(n - 1 - i);
        lunet_dtype_store(p + (size_t)i * es, dt, v);
    }
    *out = t;
    return LUNET_OK;
}

lunet_status_t lunet_tensor_arange(lunet_tensor_t **out, lunet_dtype_t dt, double start, double end,
                                   double step)
{
    if (step == 0)
        return lunet_error_set(LUNET_STATUS_RUNTIME, "arange: step must be nonzero");
    if (!isfinite(start) || !isfinite(end))
        return lunet_error_set(LUNET_STATUS_RUNTIME, "arange: unsupported range: %g -> %g", start,
                               end);
    if ((step > 0 && end < start) || (step < 0 && end > start))
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "arange: upper bound and larger bound inconsistent with step sign");
    double size_d = ceil((end - start) / step);
    if (!(size_d >= 0 && size_d < 0x1p63)) // PyTorch's check, without the cast's UB at 2^63
        return lunet_error_set(LUNET_STATUS_RUNTIME, "invalid size, possible overflow?");
    int64_t n = (int64_t)size_d;
    return linear_sequence(out, dt, n, start, 0, step, n);
}

lunet_status_t lunet_tensor_linspace(lunet_tensor_t **out, lunet_dtype_t dt, double start,
                                     double end, int64_t steps)
{
    if (steps < 0)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "linspace: number of steps must be non-negative");
    double step = steps > 1 ? (end - start) / (double)(steps - 1) : 0;
    /* PyTorch fills the first half from start and the second half from end. */
    return linear_sequence(out, dt, steps, start, end, step, steps / 2);
}

lunet_status_t lunet_tensor_eye(lunet_tensor_t **out, lunet_dtype_t dt, int64_t n, int64_t m)
{
    int64_t shape[2] = {n, m};
    lunet_tensor_t *t;
    lunet_status_t st = lunet_tensor_zeros(&t, dt, 2, shape);
    if (st)
        return st;
    size_t es = lunet_dtype_size(dt);
    for (int64_t i = 0; i < n && i < m; i++)
        lunet_dtype_store((char *)t->storage->data + (size_t)(i * m + i) * es, dt, 1);
    *out = t;
    return LUNET_OK;
}

/* ---- facts */

bool lunet_tensor_is_contiguous(const lunet_tensor_t *t)
{
    int64_t expect = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] == 1)
            continue;
        if (t->strides[i] != expect)
            return t->numel == 0;
        expect *= t->shape[i];
    }
    return true;
}

void *lunet_tensor_data(const lunet_tensor_t *t)
{
    return (char *)t->storage->data + (size_t)t->offset * lunet_dtype_size(t->dtype);
}

double lunet_tensor_get(const lunet_tensor_t *t, int64_t flat_index)
{
    int64_t off = t->offset;
    for (int i = t->ndim - 1; i >= 0; i--) {
        int64_t size = t->shape[i];
        off += (flat_index % size) * t->strides[i];
        flat_index /= size;
    }
    return lunet_dtype_load((char *)t->storage->data + (size_t)off * lunet_dtype_size(t->dtype),
                            t->dtype);
}

lunet_status_t lunet_wrap_position(int64_t *out, int64_t v, int64_t n)
{
    int64_t lim = n > 0 ? n : 1;
    if (v < -lim || v >= lim)
        return lunet_error_set(
            LUNET_STATUS_INDEX,
            "Dimension out of range (expected to be in range of [%lld, %lld], but got %lld)",
            (long long)-lim, (long long)(lim - 1), (long long)v);
    *out = v < 0 ? v + lim : v;
    return LUNET_OK;
}

lunet_status_t lunet_dim_wrap(int *out, int64_t dim, int ndim)
{
    int64_t d;
    lunet_status_t st = lunet_wrap_position(&d, dim, ndim);
    if (!st)
        *out = (int)d;
    return st;
}

void lunet_tensor_bump_version(lunet_tensor_t *t)
{
    t->storage->version++;
    if (t->storage->nmembers)
        lunet_slab_bump(t);
}

void lunet_tensor_mark_fresh(lunet_tensor_t *t) { t->storage->version = 0; }

uint32_t lunet_tensor_version(const lunet_tensor_t *t)
{
    return t->storage->nmembers ? lunet_slab_version(t) : t->storage->version;
}

lunet_status_t lunet_tensor_check_writable(const lunet_tensor_t *t)
{
    for (int i = 0; i < t->ndim; i++) {
        if (t->strides[i] == 0 && t->shape[i] > 1)
            return lunet_error_set(LUNET_STATUS_RUNTIME,
                                   "unsupported operation: more than one element of the written-to "
                                   "tensor refers to a single memory location. Please clone() the "
                                   "tensor before performing the operation.");
    }
    return LUNET_OK;
}

/* True when t's elements fill exactly numel consecutive slots in some order of its dims
   (PyTorch's is_non_overlapping_and_dense). */
static bool dense_non_overlapping(const lunet_tensor_t *t)
{
    int order[LUNET_MAX_DIMS], n = 0;
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] != 1)
            order[n++] = i;
    for (int i = 1; i < n; i++) // insertion sort by stride
        for (int j = i; j > 0 && t->strides[order[j - 1]] > t->strides[order[j]]; j--) {
            int k = order[j];
            order[j] = order[j - 1];
            order[j - 1] = k;
        }
    int64_t expect = 1;
    for (int i = 0; i < n; i++) {
        if (t->strides[order[i]] != expect)
            return false;
        expect *= t->shape[order[i]];
    }
    return true;
}

lunet_status_t lunet_tensor_check_no_partial_overlap(const lunet_tensor_t *out,
                                                     const lunet_tensor_t *in)
{
    // PyTorch's get_overlap_status: only dense tensors of one storage are compared; the
    // same range with the same strides is a full overlap (x.add_(x) is fine)
    if (out == in || out->storage != in->storage || out->numel == 0 || in->numel == 0 ||
        !dense_non_overlapping(out) || !dense_non_overlapping(in))
        return LUNET_OK;
    size_t oes = lunet_dtype_size(out->dtype), ies = lunet_dtype_size(in->dtype);
    size_t ob = (size_t)out->offset * oes, oe = ob + (size_t)out->numel * oes;
    size_t ib = (size_t)in->offset * ies, ie = ib + (size_t)in->numel * ies;
    bool full = ob == ib && oe == ie &&
                lunet_shape_equal(out->ndim, out->strides, in->ndim, in->strides);
    if (full || !(ob < ie && ib < oe))
        return LUNET_OK;
    return lunet_error_set(LUNET_STATUS_RUNTIME,
                           "unsupported operation: some elements of the input tensor and the "
                           "written-to tensor refer to a single memory location. Please clone() "
                           "the tensor before performing the operation.");
}

/* ---- copies and conversions */

/* dst <- v (a 0-d tensor of dst's dtype, released here) */
/* Large contiguous fills (zero_grad of a big weight) run over the worker pool. */
#define FILL_GRAIN 65536

typedef struct fill_job {
    char *data;
    size_t es;
    unsigned char value[8]; /* one element's bytes */
    bool zero;
} fill_job_t;

// elements [b, e) of job->data = value
static void fill_block(void *ctx, int64_t b, int64_t e)
{
    const fill_job_t *j = ctx;
    char *p = j->data + (size_t)b * j->es;
    size_t n = (size_t)(e - b);
    if (j->zero) {
        memset(p, 0, n * j->es);
        return;
    }
    /* typed stores the compiler vectorises (a memcpy of es bytes per element does not) */
    if (j->es == 8) {
        uint64_t v, *q = (uint64_t *)(void *)p;
        memcpy(&v, j->value, 8);
        for (size_t i = 0; i < n; i++)
            q[i] = v;
    } else if (j->es == 4) {
        uint32_t v, *q = (uint32_t *)(void *)p;
        memcpy(&v, j->value, 4);
        for (size_t i = 0; i < n; i++)
            q[i] = v;
    } else if (j->es == 1) {
        memset(p, j->value[0], n);
    } else {
        for (size_t i = 0; i < n; i++)
            memcpy(p + i * j->es, j->value, j->es);
    }
}

static lunet_status_t fill_with(lunet_tensor_t *dst, lunet_tensor_t *v)
{
    lunet_status_t st = lunet_autograd_check_inplace(dst, "fill_");
    if (!st)
        st = lunet_tensor_check_writable(dst);
    if (!st && dst->numel > FILL_GRAIN && lunet_tensor_is_contiguous(dst)) {
        fill_job_t j = {.data = lunet_tensor_data(dst), .es = lunet_dtype_size(dst->dtype)};
        memcpy(j.value, lunet_tensor_data(v), j.es);
        j.zero = true;
        for (size_t i = 0; i < j.es; i++)
            j.zero = j.zero && j.value[i] == 0;
        lunet_parallel_for(dst->numel, FILL_GRAIN, fill_block, &j);
        lunet_tensor_bump_version(dst);
    } else if (!st) {
        lunet_copy_cast(dst, v);
        lunet_tensor_bump_version(dst);
    }
    lunet_tensor_release(v);
    return st;
}

lunet_status_t lunet_check_int_fits(lunet_dtype_t dt, int64_t v)
{
    if (dt == LUNET_DTYPE_UINT8 && (v > 255 || v < -255))
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "value cannot be converted to type uint8_t without overflow");
    return LUNET_OK;
}

/* A Python float into an integer dtype: NaN, infinities and values out of range fail. */
static lunet_status_t check_float_fits(lunet_dtype_t dt, double v)
{
    if (dt == LUNET_DTYPE_UINT8 && !(v >= 0 && v <= 255))
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "value cannot be converted to type uint8_t without overflow");
    if (dt == LUNET_DTYPE_INT64 && !(v >= -0x1p63 && v <= 0x1p63))
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "value cannot be converted to type int64_t without overflow");
    return LUNET_OK;
}

lunet_status_t lunet_tensor_element_scalar(lunet_tensor_t **out, lunet_dtype_t dt, bool is_int,
                                           double dv, int64_t iv, bool wrapped)
{
    lunet_status_t st = is_int ? lunet_check_int_fits(dt, iv) : check_float_fits(dt, dv);
    return st ? st : number(out, dt, wrapped, is_int, dv, iv);
}

lunet_status_t lunet_tensor_fill_(lunet_tensor_t *dst, double value)
{
    lunet_tensor_t *v;
    lunet_status_t st = lunet_tensor_element_scalar(&v, dst->dtype, false, value, 0, true);
    return st ? st : fill_with(dst, v);
}

lunet_status_t lunet_tensor_fill_int_(lunet_tensor_t *dst, int64_t value)
{
    lunet_tensor_t *v;
    lunet_status_t st = lunet_tensor_element_scalar(&v, dst->dtype, true, 0, value, true);
    return st ? st : fill_with(dst, v);
}

lunet_status_t lunet_tensor_copy_(lunet_tensor_t *dst, lunet_tensor_t *src)
{
    bool record;
    lunet_status_t st = lunet_autograd_begin_inplace(&record, dst, src, "copy_");
    if (st)
        return st;
    if ((st = lunet_check_broadcast_into(dst, src, "copy_: ")))
        return st;
    if ((st = lunet_tensor_check_writable(dst)) ||
        (st = lunet_tensor_check_no_partial_overlap(dst, src)))
        return st;
    if (record) {
        /* dst takes the history of src converted and broadcast to it (old history dropped) */
        lunet_tensor_t *conv, *r;
        if ((st = lunet_tensor_to(&conv, src, dst->dtype)))
            return st;
        st = lunet_tensor_expand(&r, conv, dst->ndim, dst->shape);
        lunet_tensor_release(conv);
        if (st)
            return st;
        lunet_copy_cast(dst, r);
        lunet_tensor_bump_version(dst);
        lunet_autograd_rebase(dst, r);
        lunet_tensor_release(r);
        return LUNET_OK;
    }
    lunet_copy_cast(dst, src);
    lunet_tensor_bump_version(dst);
    return LUNET_OK;
}

lunet_status_t lunet_tensor_convert(lunet_tensor_t **out, lunet_tensor_t *t, lunet_dtype_t dt)
{
    if (t->dtype == dt) {
        lunet_tensor_retain(t);
        *out = t;
        return LUNET_OK;
    }
    lunet_tensor_t *r;
    lunet_status_t st = lunet_tensor_empty_like(&r, t, dt);
    if (st)
        return st;
    lunet_copy_cast(r, t);
    r->wrapped_number = t->wrapped_number;
    *out = r;
    return LUNET_OK;
}

lunet_status_t lunet_tensor_to(lunet_tensor_t **out, lunet_tensor_t *t, lunet_dtype_t dt)
{
    lunet_tensor_t *r;
    lunet_status_t st = lunet_tensor_convert(&r, t, dt);
    if (st || r == t) {
        if (!st)
            *out = r;
        return st;
    }
    if (!lunet_dtype_is_floating(dt)) { /* an integer result has no gradient */
        *out = r;
        return LUNET_OK;
    }
    return lunet_autograd_finish(out, r, LUNET_OP_TO, 1, &t, NULL, NULL);
}

lunet_status_t lunet_tensor_clone(lunet_tensor_t **out, lunet_tensor_t *t)
{
    lunet_tensor_t *r;
    lunet_status_t st = lunet_tensor_empty_like(&r, t, t->dtype);
    if (st)
        return st;
    lunet_copy_cast(r, t);
    return lunet_autograd_finish(out, r, LUNET_OP_CLONE, 1, &t, NULL, NULL);
}

lunet_status_t lunet_tensor_contiguous(lunet_tensor_t **out, lunet_tensor_t *t)
{
    if (lunet_tensor_is_contiguous(t)) {
        lunet_tensor_retain(t);
        *out = t;
        return LUNET_OK;
    }
    return lunet_tensor_clone(out, t);
}

lunet_status_t lunet_tensor_detach(lunet_tensor_t **out, lunet_tensor_t *t)
{
    lunet_tensor_t *r;
    lunet_status_t st = lunet_tensor_make_view(&r, t, t->ndim, t->shape, t->strides, t->offset);
    if (st)
        return st;
    r->requires_grad = false;
    r->wrapped_number = t->wrapped_number; /* a saved Python number stays one (pow's backward) */
    *out = r;
    return LUNET_OK;
}
