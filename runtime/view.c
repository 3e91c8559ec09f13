/*
 * view.c - operations that return a new geometry over the same storage: view, reshape,
 * transpose, permute, squeeze, unsqueeze, flatten, narrow, select, expand.
 */
#include "autograd.h"
#include "internal.h"

#include <string.h>

lunet_status_t lunet_tensor_make_view(lunet_tensor_t **out, lunet_tensor_t *t, int ndim,
                                      const int64_t *shape, const int64_t *strides, int64_t offset)
{
    int64_t numel;
    if (!lunet_shape_numel_checked(ndim, shape, 1, &numel))
        return lunet_error_set(LUNET_STATUS_RUNTIME, "numel: integer multiplication overflow");
    lunet_tensor_t *v = lunet_tensor_alloc();
    if (!v)
        return lunet_error_set(LUNET_STATUS_NOMEM, "view: out of memory");
    v->storage = t->storage;
    lunet_storage_retain(t->storage);
    v->dtype = t->dtype;
    v->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        v->shape[i] = shape[i];
        v->strides[i] = strides[i];
    }
    v->offset = offset;
    v->numel = numel;
    *out = v;
    return LUNET_OK;
}

/* Makes the view and, when t needs a gradient, records op on it. */
static lunet_status_t view_recorded(lunet_tensor_t **out, lunet_tensor_t *t, int ndim,
                                    const int64_t *shape, const int64_t *strides, int64_t offset,
                                    lunet_op_t op, const lunet_op_args_t *args)
{
    lunet_tensor_t *v;
    lunet_status_t st = lunet_tensor_make_view(&v, t, ndim, shape, strides, offset);
    if (st)
        return st;
    return lunet_autograd_finish(out, v, op, 1, &t, NULL, args);
}

/*
 * Resolves one -1 entry and checks the element count (PyTorch's infer_size).  The product
 * of the given sizes wraps as PyTorch's does, so a request such as (2^32, 2^32) for 0
 * elements passes here like there and is then refused by the overflow-checked count.
 */
static lunet_status_t infer_shape(int64_t *shape, int ndim, const int64_t *req, int64_t numel)
{
    char buf[LUNET_SHAPE_BUF];
    int infer = -1;
    int64_t known = 1;
    int64_t checked;
    if (ndim > LUNET_MAX_DIMS)
        return lunet_error_set(LUNET_STATUS_VALUE, "view: %d dims is more than the %d supported",
                               ndim, LUNET_MAX_DIMS);
    for (int i = 0; i < ndim; i++) {
        shape[i] = req[i];
        if (req[i] == -1) {
            if (infer >= 0)
                return lunet_error_set(LUNET_STATUS_RUNTIME, "only one dimension can be inferred");
            infer = i;
        } else if (req[i] < 0) {
            return lunet_error_set(LUNET_STATUS_RUNTIME, "invalid shape dimension %lld",
                                   (long long)req[i]);
        } else {
            known = lunet_wrap_mul(known, req[i]);
        }
    }
    if (infer >= 0) {
        if (known == 0) {
            if (numel == 0)
                return lunet_error_set(LUNET_STATUS_RUNTIME,
                                       "cannot reshape tensor of 0 elements into shape %s because "
                                       "the unspecified dimension size -1 can be any value and is "
                                       "ambiguous",
                                       lunet_shape_str(buf, sizeof buf, ndim, req));
            return lunet_error_set(LUNET_STATUS_RUNTIME,
                                   "shape '%s' is invalid for input of size %lld",
                                   lunet_shape_str(buf, sizeof buf, ndim, req), (long long)numel);
        }
        if (numel % known != 0)
            return lunet_error_set(LUNET_STATUS_RUNTIME,
                                   "shape '%s' is invalid for input of size %lld",
                                   lunet_shape_str(buf, sizeof buf, ndim, req), (long long)numel);
        shape[infer] = numel / known;
    } else if (known != numel) {
        return lunet_error_set(LUNET_STATUS_RUNTIME, "shape '%s' is invalid for input of size %lld",
                               lunet_shape_str(buf, sizeof buf, ndim, req), (long long)numel);
    }
    if (!lunet_shape_numel_checked(ndim, shape, 1, &checked) || checked != numel)
        return lunet_error_set(LUNET_STATUS_RUNTIME, "numel: integer multiplication overflow");
    return LUNET_OK;
}

/* ATen's computeStride: strides for viewing t as shape without copying, or false. */
static bool view_strides(const lunet_tensor_t *t, int ndim, const int64_t *shape, int64_t *strides)
{
    if (t->numel == 0) {
        int64_t s = 1;
        for (int i = ndim - 1; i >= 0; i--) {
            strides[i] = s;
            s *= shape[i] > 1 ? shape[i] : 1;
        }
        return true;
    }
    int view_d = ndim - 1;
    int64_t chunk_base_stride = t->ndim > 0 ? t->strides[t->ndim - 1] : 1;
    int64_t tensor_numel = 1, view_numel = 1;
    for (int tensor_d = t->ndim - 1; tensor_d >= 0; tensor_d--) {
        tensor_numel *= t->shape[tensor_d];
        if (tensor_d == 0 || (t->shape[tensor_d - 1] != 1 &&
                              t->strides[tensor_d - 1] != tensor_numel * chunk_base_stride)) {
            while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
                strides[view_d] = lunet_wrap_mul(view_numel, chunk_base_stride);
                view_numel *= shape[view_d];
                view_d--;
            }
            if (view_numel != tensor_numel)
                return false;
            if (tensor_d > 0) {
                chunk_base_stride = t->strides[tensor_d - 1];
                tensor_numel = 1;
                view_numel = 1;
            }
        }
    }
    if (view_d != -1) {
        /* remaining leading size-1 dims */
        while (view_d >= 0) {
            if (shape[view_d] != 1)
                return false;
            strides[view_d] = 1;
            view_d--;
        }
    }
    return true;
}

static lunet_status_t view_impl(lunet_tensor_t **out, lunet_tensor_t *t, int ndim,
                                const int64_t *req, bool allow_copy, const char *name)
{
    int64_t shape[LUNET_MAX_DIMS], strides[LUNET_MAX_DIMS];
    lunet_status_t st = infer_shape(shape, ndim, req, t->numel);
    if (st)
        return st;
    lunet_op_args_t args = {.name = name};
    if (view_strides(t, ndim, shape, strides))
        return view_recorded(out, t, ndim, shape, strides, t->offset, LUNET_OP_VIEW, &args);
    if (!allow_copy)
        return lunet_error_set(
            LUNET_STATUS_RUNTIME,
            "view size is not compatible with input tensor's size and stride (at "
            "least one dimension spans across two contiguous subspaces). Use "
            ".reshape(...) instead.");
    lunet_tensor_t *c;
    if ((st = lunet_tensor_clone(&c, t)))
        return st;
    st = view_impl(out, c, ndim, shape, false, "UnsafeViewBackward0");
    lunet_tensor_release(c);
    return st;
}

lunet_status_t lunet_tensor_view(lunet_tensor_t **out, lunet_tensor_t *t, int ndim,
                                 const int64_t *shape)
{
    return view_impl(out, t, ndim, shape, false, "ViewBackward0");
}

lunet_status_t lunet_tensor_reshape(lunet_tensor_t **out, lunet_tensor_t *t, int ndim,
                                    const int64_t *shape)
{
    return view_impl(out, t, ndim, shape, true, "ViewBackward0");
}

lunet_status_t lunet_tensor_permute(lunet_tensor_t **out, lunet_tensor_t *t, int ndim,
                                    const int64_t *dims)
{
    if (ndim != t->ndim)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "permute(sparse_coo): number of dimensions in the tensor input does "
                               "not match the length of the desired ordering of dimensions i.e. "
                               "input.dim() = %d is not equal to len(dims) = %d",
                               t->ndim, ndim);
    int64_t shape[LUNET_MAX_DIMS], strides[LUNET_MAX_DIMS];
    bool seen[LUNET_MAX_DIMS] = {false};
    lunet_op_args_t args = {.name = "PermuteBackward0"};
    for (int i = 0; i < ndim; i++) {
        int d;
        lunet_status_t st = lunet_dim_wrap(&d, dims[i], ndim);
        if (st)
            return st;
        if (seen[d])
            return lunet_error_set(LUNET_STATUS_RUNTIME,
                                   "permute(): duplicate dims are not allowed.");
        seen[d] = true;
        shape[i] = t->shape[d];
        strides[i] = t->strides[d];
        args.i[i] = d;
    }
    return view_recorded(out, t, ndim, shape, strides, t->offset, LUNET_OP_PERMUTE, &args);
}

lunet_status_t lunet_tensor_transpose(lunet_tensor_t **out, lunet_tensor_t *t, int64_t d0,
                                      int64_t d1)
{
    int a, b;
    lunet_status_t st;
    if ((st = lunet_dim_wrap(&a, d0, t->ndim)) || (st = lunet_dim_wrap(&b, d1, t->ndim)))
        return st;
    if (t->ndim == 0)
        return view_recorded(out, t, 0, NULL, NULL, t->offset, LUNET_OP_PERMUTE,
                             &(lunet_op_args_t){.name = "TransposeBackward0"});
    int64_t shape[LUNET_MAX_DIMS], strides[LUNET_MAX_DIMS];
    lunet_op_args_t args = {.name = "TransposeBackward0"};
    for (int i = 0; i < t->ndim; i++) {
        int src = i == a ? b : i == b ? a : i;
        shape[i] = t->shape[src];
        strides[i] = t->strides[src];
        args.i[i] = src;
    }
    return view_recorded(out, t, t->ndim, shape, strides, t->offset, LUNET_OP_PERMUTE, &args);
}

lunet_status_t lunet_tensor_squeeze(lunet_tensor_t **out, lunet_tensor_t *t, int64_t dim)
{
    int64_t shape[LUNET_MAX_DIMS], strides[LUNET_MAX_DIMS];
    int nd = 0, only = -1;
    if (dim != LUNET_ALL_DIMS) {
        lunet_status_t st = lunet_dim_wrap(&only, dim, t->ndim);
        if (st)
            return st;
    }
    for (int i = 0; i < t->ndim; i++) {
        bool drop = t->shape[i] == 1 && (only < 0 || only == i);
        if (!drop) {
            shape[nd] = t->shape[i];
            strides[nd++] = t->strides[i];
        }
    }
    lunet_op_args_t args = {.name = dim == LUNET_ALL_DIMS ? "SqueezeBackward0"
                                                          : "SqueezeBackward1"};
    return view_recorded(out, t, nd, shape, strides, t->offset, LUNET_OP_VIEW, &args);
}

lunet_status_t lunet_tensor_unsqueeze(lunet_tensor_t **out, lunet_tensor_t *t, int64_t dim)
{
    int d;
    lunet_status_t st = lunet_dim_wrap(&d, dim, t->ndim + 1);
    if (st)
        return st;
    if (t->ndim + 1 > LUNET_MAX_DIMS)
        return lunet_error_set(LUNET_STATUS_VALUE, "unsqueeze: too many dims");
    int64_t shape[LUNET_MAX_DIMS], strides[LUNET_MAX_DIMS];
    for (int i = 0, j = 0; i <= t->ndim; i++) {
        if (i == d) {
            shape[i] = 1;
            strides[i] = j < t->ndim ? lunet_wrap_mul(t->strides[j], t->shape[j]) : 1;
        } else {
            shape[i] = t->shape[j];
            strides[i] = t->strides[j];
            j++;
        }
    }
    lunet_op_args_t args = {.name = "UnsqueezeBackward0"};
    return view_recorded(out, t, t->ndim + 1, shape, strides, t->offset, LUNET_OP_VIEW, &args);
}

/* flatten's shape (nd, shape): dims start..end of t (wrapped) made one; a 0-d t gives (1,). */
static lunet_status_t flatten_shape(int *nd, int64_t *shape, const lunet_tensor_t *t, int64_t start,
                                    int64_t end)
{
    int s, e;
    lunet_status_t st;
    if ((st = lunet_dim_wrap(&s, start, t->ndim)) || (st = lunet_dim_wrap(&e, end, t->ndim)))
        return st;
    if (s > e)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "flatten() has invalid args: start_dim cannot come after end_dim");
    int k = 0;
    for (int i = 0; i < s; i++)
        shape[k++] = t->shape[i];
    shape[k++] = 1;
    for (int i = s; i <= e && i < t->ndim; i++)
        shape[k - 1] *= t->shape[i]; /* no overflow: a factor of t's numel */
    for (int i = e + 1; i < t->ndim; i++)
        shape[k++] = t->shape[i];
    *nd = k;
    return LUNET_OK;
}

lunet_status_t lunet_tensor_flatten(lunet_tensor_t **out, lunet_tensor_t *t, int64_t start,
                                    int64_t end)
{
    int64_t shape[LUNET_MAX_DIMS];
    int nd = 0;
    lunet_status_t st = flatten_shape(&nd, shape, t, start, end);
    return st ? st : lunet_tensor_reshape(out, t, nd, shape);
}

lunet_status_t lunet_tensor_narrow(lunet_tensor_t **out, lunet_tensor_t *t, int64_t dim,
                                   int64_t start, int64_t length)
{
    int d;
    lunet_status_t st = lunet_dim_wrap(&d, dim, t->ndim);
    if (st)
        return st;
    if (t->ndim == 0)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "narrow() cannot be applied to a 0-dim tensor.");
    // PyTorch 1.13: start == size is allowed (an empty slice at the end); any other start
    // is wrapped like a dim, with that message; the length check cannot overflow.
    int64_t size = t->shape[d];
    if (start != size && (st = lunet_wrap_position(&start, start, size)))
        return st;
    if (length < 0 || start > size - length)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "start (%lld) + length (%lld) exceeds dimension size (%lld).",
                               (long long)start, (long long)length, (long long)size);
    int64_t shape[LUNET_MAX_DIMS];
    memcpy(shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
    shape[d] = length;
    lunet_op_args_t args = {.i = {d, start}, .name = "SliceBackward0"};
    return view_recorded(out, t, t->ndim, shape, t->strides,
                         lunet_wrap_add(t->offset, lunet_wrap_mul(start, t->strides[d])),
                         LUNET_OP_NARROW, &args);
}

lunet_status_t lunet_tensor_select(lunet_tensor_t **out, lunet_tensor_t *t, int64_t dim,
                                   int64_t index)
{
    if (t->ndim == 0)
        return lunet_error_set(LUNET_STATUS_INDEX, "select() cannot be applied to a 0-dim tensor.");
    int d;
    lunet_status_t st = lunet_dim_wrap(&d, dim, t->ndim);
    if (st)
        return st;
    int64_t size = t->shape[d];
    if (index < -size || index >= size) {
        char b[LUNET_SHAPE_BUF];
        return lunet_error_set(LUNET_STATUS_INDEX,
                               "select(): index %lld out of range for tensor of size %s at "
                               "dimension %d",
                               (long long)index, lunet_shape_str(b, sizeof b, t->ndim, t->shape),
                               d);
    }
    if (index < 0)
        index += size;
    int64_t shape[LUNET_MAX_DIMS], strides[LUNET_MAX_DIMS];
    for (int i = 0, j = 0; i < t->ndim; i++) {
        if (i == d)
            continue;
        shape[j] = t->shape[i];
        strides[j++] = t->strides[i];
    }
    lunet_op_args_t args = {.i = {d, index}, .name = "SelectBackward0"};
    return view_recorded(out, t, t->ndim - 1, shape, strides,
                         lunet_wrap_add(t->offset, lunet_wrap_mul(index, t->strides[d])),
                         LUNET_OP_SELECT, &args);
}

lunet_status_t lunet_tensor_expand(lunet_tensor_t **out, lunet_tensor_t *t, int ndim,
                                   const int64_t *req)
{
    char b1[LUNET_SHAPE_BUF], b2[LUNET_SHAPE_BUF];
    if (ndim > LUNET_MAX_DIMS)
        return lunet_error_set(LUNET_STATUS_VALUE, "expand: too many dims");
    if (ndim < t->ndim) /* PyTorch's text, with lunet. for torch. */
        return lunet_error_set(
            LUNET_STATUS_RUNTIME,
            "expand(lunet.%sTensor{%s}, size=%s): the number of sizes provided (%d) must be "
            "greater or equal to the number of dimensions in the tensor (%d)",
            lunet_dtype_torch_name(t->dtype), lunet_shape_str(b1, sizeof b1, t->ndim, t->shape),
            lunet_shape_str(b2, sizeof b2, ndim, req), ndim, t->ndim);
    int64_t shape[LUNET_MAX_DIMS], strides[LUNET_MAX_DIMS];
    int lead = ndim - t->ndim;
    for (int i = 0; i < ndim; i++) {
        int j = i - lead;
        if (j < 0) {
            if (req[i] < 0)
                return lunet_error_set(LUNET_STATUS_RUNTIME,
                                       "The expanded size of the tensor (%lld) isn't allowed in a "
                                       "leading, non-existing dimension %d",
                                       (long long)req[i], i);
            shape[i] = req[i];
            strides[i] = 0;
        } else if (req[i] == -1 || req[i] == t->shape[j]) {
            shape[i] = t->shape[j];
            strides[i] = t->strides[j];
        } else if (t->shape[j] == 1 && req[i] >= 0) {
            shape[i] = req[i];
            strides[i] = 0;
        } else {
            return lunet_error_set(LUNET_STATUS_RUNTIME,
                                   "The expanded size of the tensor (%lld) must match the existing "
                                   "size (%lld) at non-singleton dimension %d.  Target sizes: %s.  "
                                   "Tensor sizes: %s",
                                   (long long)req[i], (long long)t->shape[j], i,
                                   lunet_shape_str(b1, sizeof b1, ndim, req),
                                   lunet_shape_str(b2, sizeof b2, t->ndim, t->shape));
        }
    }
    lunet_op_args_t args = {.name = "ExpandBackward0"};
    return view_recorded(out, t, ndim, shape, strides, t->offset, LUNET_OP_EXPAND, &args);
}
