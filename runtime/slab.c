/*
 * slab.c - parameter slabs: a module's parameters moved into one storage, their gradients
 * and momentum buffers laid out the same way in two more, so that zero_grad is one memset
 * and the SGD step one loop over the whole slab (optim.c), as llm.c does.
 *
 * Decisions:
 *  - The parameters keep their tensor objects (a Lua user's model.l1.weight stays the same
 *    object); only their storage and offset change, once, and only for a parameter no other
 *    tensor shares memory with (storage refcount 1), so no alias is ever broken.
 *  - Nothing remembers which tensors form a slab.  A run of tensors is handled as one when
 *    each is a contiguous view that starts where the previous one ends (rounded up to 64
 *    bytes) in the same storage made here; this is checked at every step (a few compares a
 *    tensor), so a replaced .grad, a parameter put back by the user, a group holding half a
 *    slab or a momentum buffer loaded from a file all just fall back to the per-tensor path.
 *  - The gaps between views are zero padding no tensor sees; the slab loop updates them too
 *    (0 stays 0 under every SGD option, and nothing else reads them).
 *  - A gradient appears when backward makes it (PyTorch's .grad is None before), so packing
 *    only reserves its place, grad_home, which the first accumulation fills by a copy.
 *  - A slab keeps a version per member (autograd's check of saved tensors reads those a
 *    tensor covers): writing one parameter in place between a forward and its backward fails
 *    that backward only if the written parameter was saved, as in PyTorch, where the
 *    parameters are separate tensors.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define SLAB_ALIGN 64 /* bytes: every view starts on a cache line */

/* t's elements rounded up to a whole number of cache lines */
static int64_t padded(const lunet_tensor_t *t)
{
    int64_t a = SLAB_ALIGN / (int64_t)lunet_dtype_size(t->dtype);
    return (t->numel + a - 1) / a * a;
}

bool lunet_slab_follows(const lunet_tensor_t *a, const lunet_tensor_t *b)
{
    return a->storage == b->storage && a->storage->slab && a->dtype == b->dtype &&
           b->offset == a->offset + padded(a) && lunet_tensor_is_contiguous(a) &&
           lunet_tensor_is_contiguous(b);
}

int64_t lunet_slab_span(const lunet_tensor_t *first, const lunet_tensor_t *last)
{
    return last->offset + last->numel - first->offset;
}

/* A zero-filled slab storage of nelem elements of dtype dt whose n members start at
   starts[0..n) (ascending). */
static lunet_status_t slab_storage(lunet_storage_t **out, lunet_dtype_t dt, int64_t nelem, int n,
                                   const int64_t *starts)
{
    size_t es = lunet_dtype_size(dt);
    if (nelem < 0 || (uint64_t)nelem > SIZE_MAX / es)
        return lunet_error_set(LUNET_STATUS_NOMEM, "slab: %lld elements do not fit in memory",
                               (long long)nelem);
    lunet_storage_t *s;
    lunet_status_t st = lunet_storage_new(&s, (size_t)nelem * es);
    if (st)
        return st;
    memset(s->data, 0, (size_t)nelem * es);
    s->slab = true;
    s->member_start = malloc((size_t)n * sizeof *s->member_start);
    s->member_version = calloc((size_t)n, sizeof *s->member_version);
    if (!s->member_start || !s->member_version) {
        lunet_storage_release(s);
        return lunet_error_set(LUNET_STATUS_NOMEM, "slab: out of memory");
    }
    memcpy(s->member_start, starts, (size_t)n * sizeof *starts);
    s->nmembers = n;
    *out = s;
    return LUNET_OK;
}

/* The members [*first, *last] that t's elements fall in (none: *first > *last). */
static void members_of(const lunet_tensor_t *t, int *first, int *last)
{
    const lunet_storage_t *s = t->storage;
    int64_t x[2] = {t->offset, t->offset}; /* t's lowest and highest element */
    for (int d = 0; d < t->ndim; d++) {
        int64_t span = (t->shape[d] - 1) * t->strides[d];
        x[span < 0 ? 0 : 1] += span;
    }
    *first = 1;
    *last = 0;
    if (t->numel == 0)
        return;
    int k[2];
    for (int j = 0; j < 2; j++) { /* the last member starting at or before x[j] */
        int a = 0, b = s->nmembers - 1;
        while (a < b) {
            int m = (a + b + 1) / 2;
            if (s->member_start[m] <= x[j])
                a = m;
            else
                b = m - 1;
        }
        k[j] = a;
    }
    *first = k[0];
    *last = k[1];
}

uint32_t lunet_slab_version(const lunet_tensor_t *t)
{
    int a, b;
    members_of(t, &a, &b);
    uint32_t v = 0;
    for (int k = a; k <= b; k++)
        v += t->storage->member_version[k];
    return v;
}

void lunet_slab_bump(const lunet_tensor_t *t)
{
    int a, b;
    members_of(t, &a, &b);
    for (int k = a; k <= b; k++)
        t->storage->member_version[k]++;
}

/* A contiguous view of s shaped like t, starting at element offset. */
static lunet_tensor_t *slab_view(lunet_storage_t *s, const lunet_tensor_t *t, int64_t offset)
{
    lunet_tensor_t *v = lunet_tensor_alloc();
    if (!v)
        return NULL;
    v->storage = s;
    lunet_storage_retain(s);
    v->dtype = t->dtype;
    v->ndim = t->ndim;
    memcpy(v->shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
    memcpy(v->strides, t->strides, sizeof(int64_t) * (size_t)t->ndim);
    v->offset = offset;
    v->numel = t->numel;
    return v;
}

lunet_status_t lunet_slab_like(lunet_tensor_t **views, lunet_tensor_t *const *like, int n)
{
    lunet_storage_t *s = NULL;
    int64_t base = like[0]->offset;
    int64_t *starts = malloc((size_t)n * sizeof *starts);
    if (!starts)
        return lunet_error_set(LUNET_STATUS_NOMEM, "slab: out of memory");
    for (int i = 0; i < n; i++)
        starts[i] = like[i]->offset - base;
    lunet_status_t st = slab_storage(&s, like[0]->dtype, lunet_slab_span(like[0], like[n - 1]), n,
                                     starts);
    free(starts);
    for (int i = 0; i < n && !st; i++)
        if (!(views[i] = slab_view(s, like[i], like[i]->offset - base)))
            st = lunet_error_set(LUNET_STATUS_NOMEM, "slab: out of memory");
    if (st)
        for (int i = 0; i < n; i++) {
            lunet_tensor_release(views[i]);
            views[i] = NULL;
        }
    lunet_storage_release(s); /* the views hold it */
    return st;
}

/* A parameter that can move: a floating leaf needing a gradient, contiguous, with no gradient
   yet, alone on a storage of its own making. */
static bool can_pack(const lunet_tensor_t *p)
{
    return p && lunet_dtype_is_floating(p->dtype) && !p->grad_fn && p->requires_grad && !p->grad &&
           !p->grad_home && p->numel > 0 && lunet_tensor_is_contiguous(p) &&
           p->storage->refcount == 1 && !p->storage->wrapped && !p->storage->slab;
}

/* params[i] moves into the slab of dtype dt: it can pack, has that dtype, and was not listed
   before it (a C host may list a tensor twice; it moves once). */
static bool movable(lunet_tensor_t *const *params, int i, lunet_dtype_t dt)
{
    if (!can_pack(params[i]) || params[i]->dtype != dt)
        return false;
    for (int j = 0; j < i; j++)
        if (params[j] == params[i])
            return false;
    return true;
}

/* Packs the movable parameters of dtype dt; *packed += how many. */
static lunet_status_t pack_dtype(int n, lunet_tensor_t *const *params, lunet_dtype_t dt,
                                 int *packed)
{
    int64_t total = 0;
    int count = 0;
    for (int i = 0; i < n; i++)
        if (movable(params, i, dt)) {
            if (padded(params[i]) > INT64_MAX - total)
                return lunet_error_set(LUNET_STATUS_NOMEM, "slab: parameters too large");
            total += padded(params[i]);
            count++;
        }
    if (count < 2)
        return LUNET_OK; /* a slab of one is the tensor itself */
    lunet_storage_t *ps = NULL, *gs = NULL;
    lunet_tensor_t **homes = calloc((size_t)n, sizeof *homes);
    int64_t *starts = malloc((size_t)count * sizeof *starts);
    lunet_status_t st = homes && starts
                            ? LUNET_OK
                            : lunet_error_set(LUNET_STATUS_NOMEM, "slab: out of memory");
    int64_t at = 0;
    for (int i = 0, k = 0; i < n && !st; i++)
        if (movable(params, i, dt)) {
            starts[k++] = at;
            at += padded(params[i]);
        }
    if (!st)
        st = slab_storage(&ps, dt, total, count, starts);
    if (!st)
        st = slab_storage(&gs, dt, total, count, starts);
    free(starts);
    /* every allocation first, so that a failure leaves the parameters untouched */
    int64_t off = 0;
    for (int i = 0; i < n && !st; i++)
        if (movable(params, i, dt)) {
            if (!(homes[i] = slab_view(gs, params[i], off)))
                st = lunet_error_set(LUNET_STATUS_NOMEM, "slab: out of memory");
            off += padded(params[i]);
        }
    if (!st) {
        off = 0;
        size_t es = lunet_dtype_size(dt);
        for (int i = 0; i < n; i++) {
            lunet_tensor_t *p = params[i];
            if (!homes[i])
                continue;
            memcpy((char *)ps->data + (size_t)off * es, lunet_tensor_data(p),
                   (size_t)p->numel * es);
            lunet_storage_release(p->storage);
            lunet_storage_retain(ps);
            p->storage = ps;
            p->offset = off;
            p->grad_home = homes[i];
            homes[i] = NULL;
            off += padded(p);
        }
        *packed += count;
    }
    for (int i = 0; homes && i < n; i++)
        lunet_tensor_release(homes[i]);
    free(homes);
    lunet_storage_release(ps);
    lunet_storage_release(gs);
    return st;
}

lunet_status_t lunet_slab_pack(int n, lunet_tensor_t *const *params, int *packed)
{
    int moved = 0;
    lunet_status_t st = LUNET_OK;
    /* one slab per dtype, in the order the dtypes first appear */
    for (int i = 0; i < n && !st; i++) {
        bool seen = false;
        for (int j = 0; j < i && !seen; j++)
            seen = params[j] && params[i] && params[j]->dtype == params[i]->dtype;
        if (params[i] && !seen && lunet_dtype_is_floating(params[i]->dtype))
            st = pack_dtype(n, params, params[i]->dtype, &moved);
    }
    if (packed)
        *packed = moved;
    return st;
}

/* elements [b, e) of the gradients' run starting at ctx */
static void zero_block(void *ctx, int64_t b, int64_t e)
{
    const lunet_tensor_t *g = ctx;
    size_t es = lunet_dtype_size(g->dtype);
    memset((char *)lunet_tensor_data(g) + (size_t)b * es, 0, (size_t)(e - b) * es);
}

#define ZERO_GRAIN 65536 /* elements, as tensor.c's fills */

lunet_status_t lunet_slab_zero_grads(int n, lunet_tensor_t *const *params)
{
    bool was = lunet_set_grad_enabled(false);
    lunet_status_t st = LUNET_OK;
    for (int i = 0; i < n && !st;) {
        lunet_tensor_t *g = params[i]->grad;
        int j = i + 1;
        while (g && j < n && params[j]->grad &&
               lunet_slab_follows(params[j - 1]->grad, params[j]->grad))
            j++;
        if (g && j - i == 1) {
            st = lunet_tensor_fill_(g, 0);
        } else if (g) {
            lunet_parallel_for(lunet_slab_span(g, params[j - 1]->grad), ZERO_GRAIN, zero_block, g);
            for (int k = i; k < j; k++)
                lunet_tensor_bump_version(params[k]->grad);
        }
        i = j;
    }
    lunet_set_grad_enabled(was);
    return st;
}
