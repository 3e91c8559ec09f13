/*
 * iter.c - walks several strided operands over one (broadcast) shape.  Adjacent dims that
 * are contiguous for every operand are merged first, so a contiguous op is one long run.
 */
#include "internal.h"

void lunet_iter_init(lunet_iter_t *it, int ndim, const int64_t *shape)
{
    it->ndim = ndim;
    it->nops = 0;
    for (int i = 0; i < ndim; i++)
        it->shape[i] = shape[i];
}

void lunet_iter_add(lunet_iter_t *it, const lunet_tensor_t *t)
{
    int k = it->nops++;
    size_t es = lunet_dtype_size(t->dtype);
    int lead = it->ndim - t->ndim;
    for (int i = 0; i < it->ndim; i++) {
        int j = i - lead;
        if (j < 0 || t->shape[j] == 1)
            it->strides[k][i] = 0;
        else
            it->strides[k][i] = t->strides[j] * (int64_t)es;
    }
    it->data[k] = lunet_tensor_data(t);
}

/* Merges dim i into dim i+1 when every operand steps through them as one run. */
static void coalesce(lunet_iter_t *it)
{
    int nd = 0;
    int64_t shape[LUNET_MAX_DIMS];
    int64_t strides[LUNET_ITER_MAX_OPS][LUNET_MAX_DIMS];
    for (int i = 0; i < it->ndim; i++) {
        if (it->shape[i] == 1)
            continue; /* size-1 dims never move the pointers */
        if (nd > 0) {
            bool merge = true;
            for (int k = 0; k < it->nops; k++)
                if (strides[k][nd - 1] != it->strides[k][i] * it->shape[i])
                    merge = false;
            if (merge) {
                shape[nd - 1] *= it->shape[i];
                for (int k = 0; k < it->nops; k++)
                    strides[k][nd - 1] = it->strides[k][i];
                continue;
            }
        }
        shape[nd] = it->shape[i];
        for (int k = 0; k < it->nops; k++)
            strides[k][nd] = it->strides[k][i];
        nd++;
    }
    it->ndim = nd;
    for (int i = 0; i < nd; i++) {
        it->shape[i] = shape[i];
        for (int k = 0; k < it->nops; k++)
            it->strides[k][i] = strides[k][i];
    }
}

/* Element-wise runs of at least this many elements are split over the worker pool. */
#define ITER_GRAIN 65536

typedef struct iter_block_job {
    const lunet_iter_t *it;
    lunet_loop_fn fn;
    void *ctx;
} iter_block_job_t;

// elements [b, e) of a one-dimensional (coalesced) iteration
static void iter_block(void *vjob, int64_t b, int64_t e)
{
    const iter_block_job_t *j = vjob;
    char *ptr[LUNET_ITER_MAX_OPS];
    int64_t inner[LUNET_ITER_MAX_OPS];
    for (int k = 0; k < j->it->nops; k++) {
        inner[k] = j->it->strides[k][0];
        ptr[k] = j->it->data[k] + b * inner[k];
    }
    j->fn(ptr, inner, e - b, j->ctx);
}

/* Whether the output (operand 0) of a one-dimensional run shares memory with another operand
   other than element for element (x[1:] += x[:-1]).  Such a run must go in order on one
   thread: split into blocks, its result would depend on the thread count.  The byte ranges
   are widened by 8 (the largest element), which can only send a harmless case serial. */
static bool output_overlaps(const lunet_iter_t *it)
{
    int64_t n = it->shape[0];
    uintptr_t lo[LUNET_ITER_MAX_OPS], hi[LUNET_ITER_MAX_OPS];
    for (int k = 0; k < it->nops; k++) {
        uintptr_t a = (uintptr_t)it->data[k];
        uintptr_t b = a + (uintptr_t)lunet_wrap_mul(it->strides[k][0], n - 1);
        lo[k] = a < b ? a : b;
        hi[k] = (a < b ? b : a) + 8;
    }
    for (int k = 1; k < it->nops; k++) {
        if (it->data[k] == it->data[0] && it->strides[k][0] == it->strides[0][0])
            continue; /* the same elements: each is read, then written, by one block */
        if (lo[k] < hi[0] && lo[0] < hi[k])
            return true;
    }
    return false;
}

void lunet_iter_run_elementwise(lunet_iter_t *it, lunet_loop_fn fn, void *ctx)
{
    for (int i = 0; i < it->ndim; i++)
        if (it->shape[i] == 0)
            return;
    coalesce(it);
    if (it->ndim == 1 && it->shape[0] > ITER_GRAIN && !output_overlaps(it)) {
        iter_block_job_t j = {it, fn, ctx};
        lunet_parallel_for(it->shape[0], ITER_GRAIN, iter_block, &j);
        return;
    }
    lunet_iter_run(it, fn, ctx);
}

void lunet_iter_run(lunet_iter_t *it, lunet_loop_fn fn, void *ctx)
{
    for (int i = 0; i < it->ndim; i++)
        if (it->shape[i] == 0)
            return;
    coalesce(it);
    char *ptr[LUNET_ITER_MAX_OPS];
    int64_t inner[LUNET_ITER_MAX_OPS];
    for (int k = 0; k < it->nops; k++) {
        ptr[k] = it->data[k];
        inner[k] = it->ndim > 0 ? it->strides[k][it->ndim - 1] : 0;
    }
    if (it->ndim <= 1) {
        fn(ptr, inner, it->ndim == 1 ? it->shape[0] : 1, ctx);
        return;
    }
    int outer = it->ndim - 1;
    int64_t n = it->shape[outer];
    int64_t counter[LUNET_MAX_DIMS] = {0};
    for (;;) {
        fn(ptr, inner, n, ctx);
        /* odometer over the outer dims, last fastest */
        int d = outer - 1;
        while (d >= 0) {
            counter[d]++;
            for (int k = 0; k < it->nops; k++)
                ptr[k] += it->strides[k][d];
            if (counter[d] < it->shape[d])
                break;
            for (int k = 0; k < it->nops; k++)
                ptr[k] -= it->strides[k][d] * it->shape[d];
            counter[d] = 0;
            d--;
        }
        if (d < 0)
            return;
    }
}
