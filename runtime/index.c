/*
 * index.c - gather, index_select, advanced indexing x[i0, i1, ...], and the scatter-adds
 * their gradients need (lunet_index_add_flat, lunet_gather_backward).
 */
#include "autograd.h"
#include "index.h"
#include "internal.h"

#include <string.h>

/* The first entry of index outside [0, size) into *bad; false when there is none. */
static bool find_out_of_range(const lunet_tensor_t *index, int64_t size, int64_t *bad)
{
    for (int64_t i = 0; i < index->numel; i++) {
        *bad = (int64_t)lunet_tensor_get(index, i);
        if (*bad < 0 || *bad >= size)
            return true;
    }
    return false;
}

/* Fails with PyTorch's message (status st, after prefix) at the first entry of index outside
   [0, size), size being dim d's. */
static lunet_status_t check_in_range(const lunet_tensor_t *index, int64_t size, int d,
                                     lunet_status_t st, const char *prefix)
{
    int64_t v;
    if (find_out_of_range(index, size, &v))
        return lunet_error_set(st, "%sindex %lld is out of bounds for dimension %d with size %lld",
                               prefix, (long long)v, d, (long long)size);
    return LUNET_OK;
}

/* gather's rules for a non-empty index: int64, of x's rank, no larger than x off dim d; the
   result is index's shape. */
static lunet_status_t gather_shape(int *nd, int64_t *shape, const lunet_tensor_t *x, int d,
                                   const lunet_tensor_t *index)
{
    if (index->dtype != LUNET_DTYPE_INT64)
        return lunet_error_set(LUNET_STATUS_RUNTIME, "gather(): Expected dtype int64 for index");
    int xnd = x->ndim > 0 ? x->ndim : 1, ind = index->ndim > 0 ? index->ndim : 1;
    if (xnd != ind)
        return lunet_error_set(
            LUNET_STATUS_RUNTIME,
            "Index tensor must have the same number of dimensions as input tensor");
    for (int k = 0; k < index->ndim; k++) {
        if (k != d && index->shape[k] > x->shape[k]) {
            char b1[LUNET_SHAPE_BUF], b2[LUNET_SHAPE_BUF];
            return lunet_error_set(LUNET_STATUS_RUNTIME,
                                   "Size does not match at dimension %d expected index %s to be "
                                   "smaller than self %s apart from dimension %d",
                                   k, lunet_shape_str(b1, sizeof b1, index->ndim, index->shape),
                                   lunet_shape_str(b2, sizeof b2, x->ndim, x->shape), d);
        }
    }
    *nd = index->ndim;
    memcpy(shape, index->shape, sizeof(int64_t) * (size_t)index->ndim);
    return LUNET_OK;
}

/* index_select's rules: a vector index, then its dtype (PyTorch's message names the int32 it
   also takes; Lunet has none); the result is x's shape with index's length along dim d. */
static lunet_status_t index_select_shape(int *nd, int64_t *shape, const lunet_tensor_t *x, int d,
                                         const lunet_tensor_t *index)
{
    if (index->ndim > 1)
        return lunet_error_set(LUNET_STATUS_INDEX,
                               "index_select(): Index is supposed to be a vector");
    if (index->dtype != LUNET_DTYPE_INT64)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "index_select(): Expected dtype int32 or int64 for index");
    *nd = x->ndim;
    memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    if (x->ndim > 0)
        shape[d] = index->numel;
    return LUNET_OK;
}

/*
 * What gather and index_select check before they read an index, in PyTorch's order: dim
 * (wrapped into *d), the op's rules for the index's dtype and shape (none for gather's empty
 * index: PyTorch returns an empty result of its shape at once), a result that can be
 * allocated (PyTorch allocates it first, so an impossible size from a huge expanded index
 * fails at once instead of after a scan of every index; the trial block goes back to the
 * thread's cache, where the op's result finds it), then every index within x's size along
 * dim.
 */
static lunet_status_t check_index_op(int *d, const lunet_tensor_t *x, int64_t dim,
                                     const lunet_tensor_t *index, lunet_op_t op)
{
    bool gather = op == LUNET_OP_GATHER;
    lunet_status_t st = lunet_dim_wrap(d, dim, x->ndim);
    if (st || (gather && index->numel == 0))
        return st;
    int nd = 0;
    int64_t shape[LUNET_MAX_DIMS];
    st = gather ? gather_shape(&nd, shape, x, *d, index)
                : index_select_shape(&nd, shape, x, *d, index);
    lunet_tensor_t *trial;
    if (st || (st = lunet_tensor_empty(&trial, x->dtype, nd, shape)))
        return st;
    lunet_tensor_release(trial);
    int64_t size = x->ndim > 0 ? x->shape[*d] : 1, v;
    /* PyTorch's index_select words it by dim: "index out of range in self" along dim 0, its
       CPU kernel's text along the others */
    if (!gather && *d != 0 && find_out_of_range(index, size, &v))
        return lunet_error_set(LUNET_STATUS_RUNTIME, /* a RuntimeError there, not IndexError */
                               "INDICES element is out of DATA bounds, id=%lld axis_dim=%lld",
                               (long long)v, (long long)size);
    return gather ? check_in_range(index, size, *d, LUNET_STATUS_RUNTIME, "")
                  : check_in_range(index, size, *d, LUNET_STATUS_INDEX,
                                   "index out of range in self: ");
}

/* ---- gather (docs/pytorch-parity.md §11.3) */

// r (index shape) = x (any) read along dim d at index, elsewhere at r's own coordinates
static lunet_status_t gather(lunet_tensor_t **out, const lunet_tensor_t *x, int d,
                             const lunet_tensor_t *index)
{
    lunet_tensor_t *r;
    lunet_status_t st = lunet_tensor_empty(&r, x->dtype, index->ndim, index->shape);
    if (st)
        return st;
    size_t es = lunet_dtype_size(x->dtype);
    const char *px = lunet_tensor_data(x);
    char *pr = lunet_tensor_data(r);
    int64_t coord[LUNET_MAX_DIMS] = {0};
    for (int64_t i = 0; i < r->numel; i++) {
        int64_t ioff = 0, xoff = 0;
        for (int k = 0; k < index->ndim; k++)
            ioff += coord[k] * index->strides[k];
        int64_t v = ((const int64_t *)lunet_tensor_data(index))[ioff];
        for (int k = 0; k < x->ndim; k++)
            xoff += (k == d ? v : coord[k]) * x->strides[k];
        memcpy(pr + (size_t)i * es, px + xoff * (int64_t)es, es);
        for (int k = index->ndim - 1; k >= 0; k--) {
            if (++coord[k] < index->shape[k])
                break;
            coord[k] = 0;
        }
    }
    *out = r;
    return LUNET_OK;
}

/* The start of a scatter-add backward: *r zero-filled in x's shape, and g contiguous (*gc). */
static lunet_status_t scatter_start(lunet_tensor_t **r, lunet_tensor_t **gc, lunet_tensor_t *g,
                                    int xnd, const int64_t *xshape)
{
    lunet_status_t st = lunet_tensor_zeros(r, g->dtype, xnd, xshape);
    if (st)
        return st;
    if ((st = lunet_tensor_contiguous(gc, g)))
        lunet_tensor_release(*r);
    return st;
}

// g (index shape) scattered-added into dx (x shape) along dim at positions index
lunet_status_t lunet_gather_backward(lunet_tensor_t **dx, lunet_tensor_t *g, int xnd,
                                     const int64_t *xshape, int64_t dim, lunet_tensor_t *index)
{
    lunet_tensor_t *r, *gc;
    lunet_status_t st = scatter_start(&r, &gc, g, xnd, xshape);
    if (st)
        return st;
    int64_t coord[LUNET_MAX_DIMS] = {0};
    const int64_t *pi = lunet_tensor_data(index);
    for (int64_t i = 0; i < index->numel; i++) {
        int64_t ioff = 0, xoff = 0;
        for (int k = 0; k < index->ndim; k++)
            ioff += coord[k] * index->strides[k];
        for (int k = 0; k < xnd; k++)
            xoff += (k == dim ? pi[ioff] : coord[k]) * r->strides[k];
        if (g->dtype == LUNET_DTYPE_FLOAT32)
            ((float *)lunet_tensor_data(r))[xoff] += ((const float *)lunet_tensor_data(gc))[i];
        else
            ((double *)lunet_tensor_data(r))[xoff] += ((const double *)lunet_tensor_data(gc))[i];
        for (int k = index->ndim - 1; k >= 0; k--) {
            if (++coord[k] < index->shape[k])
                break;
            coord[k] = 0;
        }
    }
    lunet_tensor_release(gc);
    *dx = r;
    return LUNET_OK;
}

/* ---- index_select */

// r = x (any) with dim d's entries index (a vector or 0-d) in that order; called without grad
static lunet_status_t index_select(lunet_tensor_t **out, lunet_tensor_t *x, int d,
                                   lunet_tensor_t *index)
{
    if (x->ndim == 0)
        return lunet_tensor_clone(out, x); /* the index is [0] or 0 (checked) */
    /* x[..., idx[k], ...] = one leading-dim selection per k, done as flat advanced indexing
       with the index as a vector: a 0-d one keeps dim d, of length 1, as in PyTorch */
    lunet_tensor_t *iv = NULL, *xt = NULL, *r = NULL, *rt = NULL;
    int64_t len = index->numel;
    lunet_status_t st = lunet_tensor_reshape(&iv, index, 1, &len);
    if (!st)
        st = lunet_tensor_transpose(&xt, x, 0, d);
    if (!st)
        st = lunet_tensor_index(&r, xt, 1, &iv);
    if (!st)
        st = lunet_tensor_transpose(&rt, r, 0, d);
    if (!st)
        st = lunet_tensor_contiguous(out, rt);
    LUNET_RELEASE(iv, xt, r, rt);
    return st;
}

/* ---- both: the checks, the op's kernel, the autograd record */

static lunet_status_t index_op(lunet_tensor_t **out, lunet_tensor_t *x, int64_t dim,
                               lunet_tensor_t *index, lunet_op_t op)
{
    int d;
    lunet_tensor_t *r = NULL;
    lunet_status_t st = check_index_op(&d, x, dim, index, op);
    if (st)
        return st;
    bool was = lunet_set_grad_enabled(false);
    st = op == LUNET_OP_GATHER ? gather(&r, x, d, index) : index_select(&r, x, d, index);
    lunet_set_grad_enabled(was);
    if (st)
        return st;
    lunet_op_args_t args = {.i = {d}};
    return lunet_autograd_finish(out, r, op, 1, &x, &index, &args);
}

lunet_status_t lunet_tensor_gather(lunet_tensor_t **out, lunet_tensor_t *x, int64_t dim,
                                   lunet_tensor_t *index)
{
    return index_op(out, x, dim, index, LUNET_OP_GATHER);
}

lunet_status_t lunet_tensor_index_select(lunet_tensor_t **out, lunet_tensor_t *x, int64_t dim,
                                         lunet_tensor_t *index)
{
    return index_op(out, x, dim, index, LUNET_OP_INDEX_SELECT);
}

/* ---- advanced indexing (docs/pytorch-parity.md §11.4) */

/* Expands bool masks into int64 coordinate tensors (nonzero), one per masked dim.
   *nout counts the tensors placed in out[] so far, also on failure (the caller frees them). */
static lunet_status_t expand_masks(int *nout, lunet_tensor_t **out, const lunet_tensor_t *x,
                                   int nidx, lunet_tensor_t **idx)
{
    int n = 0;
    *nout = 0;
    for (int j = 0; j < nidx; j++) {
        lunet_tensor_t *t = idx[j];
        if (t->dtype == LUNET_DTYPE_BOOL || t->dtype == LUNET_DTYPE_UINT8) {
            if (n + t->ndim > x->ndim)
                return lunet_error_set(LUNET_STATUS_INDEX,
                                       "too many indices for tensor of dimension %d", x->ndim);
            for (int k = 0; k < t->ndim; k++)
                if (t->shape[k] != x->shape[n + k]) {
                    char b1[LUNET_SHAPE_BUF], b2[LUNET_SHAPE_BUF];
                    return lunet_error_set(LUNET_STATUS_INDEX,
                                           "The shape of the mask %s at index %d does not match "
                                           "the shape of the indexed tensor %s at index %d",
                                           lunet_shape_str(b1, sizeof b1, t->ndim, t->shape), k,
                                           lunet_shape_str(b2, sizeof b2, x->ndim, x->shape),
                                           n + k);
                }
            int64_t count = 0;
            for (int64_t i = 0; i < t->numel; i++)
                count += lunet_tensor_get(t, i) != 0;
            lunet_status_t st;
            for (int k = 0; k < t->ndim; k++) {
                if ((st = lunet_tensor_empty(&out[n + k], LUNET_DTYPE_INT64, 1, &count)))
                    return st;
                *nout = n + k + 1;
            }
            int64_t w = 0;
            for (int64_t i = 0; i < t->numel; i++) {
                if (lunet_tensor_get(t, i) == 0)
                    continue;
                int64_t rem = i;
                for (int k = t->ndim - 1; k >= 0; k--) {
                    ((int64_t *)lunet_tensor_data(out[n + k]))[w] = rem % t->shape[k];
                    rem /= t->shape[k];
                }
                w++;
            }
            n += t->ndim;
        } else if (t->dtype == LUNET_DTYPE_INT64) {
            lunet_tensor_retain(t);
            out[n++] = t;
            *nout = n;
        } else {
            return lunet_error_set(LUNET_STATUS_INDEX,
                                   "tensors used as indices must be long, byte or bool tensors");
        }
    }
    *nout = n;
    return LUNET_OK;
}

lunet_status_t lunet_tensor_index(lunet_tensor_t **out, lunet_tensor_t *x, int nidx,
                                  lunet_tensor_t **idx)
{
    lunet_tensor_t *ix[LUNET_MAX_DIMS] = {NULL};
    lunet_tensor_t *xc = NULL, *r = NULL, *pos = NULL;
    int n = 0;
    lunet_status_t st;
    if (nidx > x->ndim || nidx > LUNET_MAX_DIMS) {
        st = lunet_error_set(LUNET_STATUS_INDEX,
                             "too many indices for tensor of dimension %d (got %d)", x->ndim, nidx);
        return st;
    }
    if ((st = expand_masks(&n, ix, x, nidx, idx)))
        goto done;
    /* broadcast the index tensors together */
    int bnd = 0;
    int64_t bshape[LUNET_MAX_DIMS];
    for (int j = 0; j < n; j++) {
        int nd2;
        int64_t s2[LUNET_MAX_DIMS];
        if (lunet_broadcast_shape(&nd2, s2, bnd, bshape, ix[j]->ndim, ix[j]->shape)) {
            char buf[1024];
            size_t len = 0;
            for (int k = 0; k < n; k++) {
                char b[LUNET_SHAPE_BUF];
                len += (size_t)snprintf(buf + len, sizeof buf - len, k ? ", %s" : "%s",
                                        lunet_shape_str(b, sizeof b, ix[k]->ndim, ix[k]->shape));
                if (len >= sizeof buf)
                    break;
            }
            st = lunet_error_set(LUNET_STATUS_INDEX,
                                 "shape mismatch: indexing tensors could not be broadcast together "
                                 "with shapes %s",
                                 buf);
            goto done;
        }
        bnd = nd2;
        memcpy(bshape, s2, sizeof s2);
    }
    int64_t bnum = lunet_shape_numel(bnd, bshape);
    /* flat positions into x's first n dims, bounds-checked before the result exists */
    if ((st = lunet_tensor_empty(&pos, LUNET_DTYPE_INT64, bnd, bshape)))
        goto done;
    int64_t *pp = lunet_tensor_data(pos);
    for (int64_t i = 0; i < bnum; i++)
        pp[i] = 0;
    for (int j = 0; j < n; j++) {
        lunet_tensor_t *e;
        bool was = lunet_set_grad_enabled(false);
        st = lunet_tensor_expand(&e, ix[j], bnd, bshape);
        lunet_set_grad_enabled(was);
        if (st)
            goto done;
        int64_t size = x->shape[j];
        for (int64_t i = 0; i < bnum; i++) {
            int64_t v = (int64_t)lunet_tensor_get(e, i);
            if (v < -size || v >= size) {
                lunet_tensor_release(e);
                st = lunet_error_set(LUNET_STATUS_INDEX,
                                     "index %lld is out of bounds for dimension %d with size %lld",
                                     (long long)v, j, (long long)size);
                goto done;
            }
            pp[i] = pp[i] * size + (v < 0 ? v + size : v);
        }
        lunet_tensor_release(e);
    }
    /* result (B..., trailing dims of x) */
    int rnd = bnd + x->ndim - n;
    if (rnd > LUNET_MAX_DIMS) {
        st = lunet_error_set(LUNET_STATUS_INDEX, "index: result has too many dims");
        goto done;
    }
    int64_t rshape[LUNET_MAX_DIMS];
    memcpy(rshape, bshape, sizeof(int64_t) * (size_t)bnd);
    int64_t block = 1;
    for (int k = n; k < x->ndim; k++) {
        rshape[bnd + k - n] = x->shape[k];
        block *= x->shape[k];
    }
    bool was = lunet_set_grad_enabled(false);
    st = lunet_tensor_contiguous(&xc, x);
    lunet_set_grad_enabled(was);
    if (st || (st = lunet_tensor_empty(&r, x->dtype, rnd, rshape)))
        goto done;
    size_t bytes = (size_t)block * lunet_dtype_size(x->dtype);
    const char *px = lunet_tensor_data(xc);
    char *pr = lunet_tensor_data(r);
    for (int64_t i = 0; i < bnum; i++)
        memcpy(pr + (size_t)i * bytes, px + (size_t)pp[i] * bytes, bytes);
    lunet_op_args_t args = {.i = {block}};
    st = lunet_autograd_finish(out, r, LUNET_OP_INDEX, 1, &x, &pos, &args);
    r = NULL;
done:
    for (int j = 0; j < n; j++)
        lunet_tensor_release(ix[j]);
    LUNET_RELEASE(xc, r, pos);
    return st;
}

// g (B..., trailing) added block-wise into dx (x shape) at flat leading positions pos (B)
lunet_status_t lunet_index_backward(lunet_tensor_t **dx, lunet_tensor_t *g, int xnd,
                                    const int64_t *xshape, lunet_tensor_t *pos, int64_t block)
{
    lunet_tensor_t *r, *gc;
    lunet_status_t st = scatter_start(&r, &gc, g, xnd, xshape);
    if (st)
        return st;
    const int64_t *pp = lunet_tensor_data(pos);
    for (int64_t i = 0; i < pos->numel; i++) {
        if (g->dtype == LUNET_DTYPE_FLOAT32) {
            float *dst = (float *)lunet_tensor_data(r) + pp[i] * block;
            const float *src = (const float *)lunet_tensor_data(gc) + i * block;
            for (int64_t k = 0; k < block; k++)
                dst[k] += src[k];
        } else {
            double *dst = (double *)lunet_tensor_data(r) + pp[i] * block;
            const double *src = (const double *)lunet_tensor_data(gc) + i * block;
            for (int64_t k = 0; k < block; k++)
                dst[k] += src[k];
        }
    }
    lunet_tensor_release(gc);
    *dx = r;
    return LUNET_OK;
}
