/*
 * storage.c - refcounted, 64-byte aligned tensor memory with a small cache of freed blocks,
 * so that a training loop that makes the same shapes every step stops calling malloc after
 * its first step.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Freed blocks are kept by exact (rounded) size, up to a total of CACHE_LIMIT bytes. */
#define CACHE_SLOTS 64
#define CACHE_PER_SLOT 32
#define CACHE_LIMIT ((size_t)1 << 30)

typedef struct cache_slot {
    size_t nbytes;
    int count;
    void *blocks[CACHE_PER_SLOT];
} cache_slot_t;

static cache_slot_t cache[CACHE_SLOTS];
static size_t cached_bytes;
static size_t reserved_bytes;

/* Storage headers are recycled too. */
static lunet_storage_t *free_headers[256];
static int n_free_headers;

static size_t round_size(size_t n) { return n == 0 ? LUNET_ALIGN : (n + LUNET_ALIGN - 1) & ~(size_t)(LUNET_ALIGN - 1); }

static void *block_get(size_t nbytes)
{
    for (int i = 0; i < CACHE_SLOTS; i++) {
        if (cache[i].nbytes == nbytes && cache[i].count > 0) {
            cached_bytes -= nbytes;
            return cache[i].blocks[--cache[i].count];
        }
    }
    void *p = aligned_alloc(LUNET_ALIGN, nbytes);
    if (p)
        reserved_bytes += nbytes;
    return p;
}

static void block_put(void *p, size_t nbytes)
{
    if (LUNET_POOLING && cached_bytes + nbytes <= CACHE_LIMIT) {
        int empty = -1;
        for (int i = 0; i < CACHE_SLOTS; i++) {
            if (cache[i].nbytes == nbytes && cache[i].count < CACHE_PER_SLOT) {
                cache[i].blocks[cache[i].count++] = p;
                cached_bytes += nbytes;
                return;
            }
            if (empty < 0 && cache[i].count == 0)
                empty = i;
        }
        if (empty >= 0) {
            cache[empty].nbytes = nbytes;
            cache[empty].blocks[cache[empty].count++] = p;
            cached_bytes += nbytes;
            return;
        }
    }
    reserved_bytes -= nbytes;
    free(p);
}

void lunet_memory_trim(void)
{
    for (int i = 0; i < CACHE_SLOTS; i++) {
        while (cache[i].count > 0) {
            free(cache[i].blocks[--cache[i].count]);
            reserved_bytes -= cache[i].nbytes;
        }
        cache[i].nbytes = 0;
    }
    cached_bytes = 0;
    while (n_free_headers > 0)
        free(free_headers[--n_free_headers]);
    lunet_tensor_structs_trim();
    lunet_autograd_trim();
}

size_t lunet_memory_reserved(void) { return reserved_bytes; }

static lunet_storage_t *header_get(void)
{
    if (n_free_headers > 0)
        return free_headers[--n_free_headers];
    return malloc(sizeof(lunet_storage_t));
}

static void header_put(lunet_storage_t *s)
{
    if (LUNET_POOLING && n_free_headers < (int)(sizeof free_headers / sizeof free_headers[0]))
        free_headers[n_free_headers++] = s;
    else
        free(s);
}

lunet_status_t lunet_storage_new(lunet_storage_t **out, size_t nbytes)
{
    size_t rounded = round_size(nbytes);
    if (rounded < nbytes)
        return lunet_fail(LUNET_STATUS_NOMEM, "storage: cannot allocate %zu bytes", nbytes);
    lunet_storage_t *s = header_get();
    if (!s)
        return lunet_fail(LUNET_STATUS_NOMEM, "storage: out of memory");
    s->data = block_get(rounded);
    if (!s->data) {
        header_put(s);
        return lunet_fail(LUNET_STATUS_NOMEM, "storage: cannot allocate %zu bytes", nbytes);
    }
    s->nbytes = rounded;
    s->refcount = 1;
    s->version = 0;
    s->release_fn = NULL;
    s->release_ctx = NULL;
    s->wrapped = false;
    *out = s;
    return LUNET_OK;
}

lunet_status_t lunet_storage_wrap(lunet_storage_t **out, void *data, size_t nbytes,
                                  void (*release_fn)(void *, void *), void *ctx)
{
    lunet_storage_t *s = header_get();
    if (!s)
        return lunet_fail(LUNET_STATUS_NOMEM, "storage: out of memory");
    s->data = data;
    s->nbytes = nbytes;
    s->refcount = 1;
    s->version = 0;
    s->release_fn = release_fn;
    s->release_ctx = ctx;
    s->wrapped = true;
    *out = s;
    return LUNET_OK;
}

void lunet_storage_retain(lunet_storage_t *s) { s->refcount++; }

void lunet_storage_release(lunet_storage_t *s)
{
    if (!s || --s->refcount > 0)
        return;
    if (s->wrapped) {
        if (s->release_fn)
            s->release_fn(s->data, s->release_ctx);
    } else {
        block_put(s->data, s->nbytes);
    }
    header_put(s);
}
