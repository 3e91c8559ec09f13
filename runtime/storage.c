/*
 * storage.c - refcounted, 64-byte aligned tensor memory, and the runtime's free lists.
 *
 * Decisions:
 *  - Freed data blocks, storage headers, tensor structs and autograd nodes are kept for
 *    reuse, so a training loop that makes the same shapes every step stops calling malloc
 *    after its first step.
 *  - The free lists are per thread: no lock on the hot path, and separate graphs on separate
 *    threads never touch each other's lists.  Something freed on another thread than the one
 *    that made it goes to the freeing thread's lists (a block is a block).
 *  - A thread's lists are freed when the thread exits (a pthread key destructor; lunet.so is
 *    linked -z nodelete so that the destructor outlives a dlclose).  lunet_memory_trim()
 *    empties the calling thread's lists.
 *  - lunet_memory_reserved() counts every thread's blocks, live and cached (atomically).
 */
#include "internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Freed blocks are kept by exact (rounded) size, up to CACHE_LIMIT bytes per thread. */
#define CACHE_SLOTS 64
#define CACHE_PER_SLOT 32
#define CACHE_LIMIT ((size_t)1 << 30)
/* Free objects kept per kind and thread. */
#define POOL_OBJECTS 1024

typedef struct cache_slot {
    size_t nbytes;
    int count;
    void *blocks[CACHE_PER_SLOT];
} cache_slot_t;

typedef struct thread_pool {
    cache_slot_t cache[CACHE_SLOTS];
    size_t cached_bytes;
    int nobjs[LUNET_POOL_COUNT];
    void *objs[LUNET_POOL_COUNT][POOL_OBJECTS];
} thread_pool_t;

static _Atomic size_t reserved_bytes;

static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static pthread_key_t pool_key;
static bool pool_key_ok;
static _Thread_local thread_pool_t *my_pool;
/* set once this thread's pool could not be made or was freed at thread exit: from then on
   everything goes straight to malloc/free */
static _Thread_local bool pool_off;

static void pool_empty(thread_pool_t *tp)
{
    for (int i = 0; i < CACHE_SLOTS; i++) {
        cache_slot_t *c = &tp->cache[i];
        while (c->count > 0) {
            free(c->blocks[--c->count]);
            atomic_fetch_sub_explicit(&reserved_bytes, c->nbytes, memory_order_relaxed);
        }
        c->nbytes = 0;
    }
    tp->cached_bytes = 0;
    for (int k = 0; k < LUNET_POOL_COUNT; k++)
        while (tp->nobjs[k] > 0)
            free(tp->objs[k][--tp->nobjs[k]]);
}

/* The key's destructor: runs as a thread that used the runtime exits. */
static void pool_destroy(void *p)
{
    pool_empty(p);
    free(p);
    my_pool = NULL;
    pool_off = true;
}

static void pool_make_key(void) { pool_key_ok = pthread_key_create(&pool_key, pool_destroy) == 0; }

/* This thread's pool, made at first use; NULL when pooling is off. */
static thread_pool_t *pool_here(void)
{
    if (my_pool || pool_off || !LUNET_POOLING)
        return my_pool;
    pthread_once(&pool_once, pool_make_key);
    thread_pool_t *tp = pool_key_ok ? calloc(1, sizeof *tp) : NULL;
    if (tp && pthread_setspecific(pool_key, tp) != 0) {
        free(tp);
        tp = NULL;
    }
    if (!tp)
        pool_off = true;
    my_pool = tp;
    return tp;
}

void *lunet_pool_get(lunet_pool_kind_t kind, size_t size)
{
    thread_pool_t *tp = pool_here();
    if (tp && tp->nobjs[kind] > 0)
        return tp->objs[kind][--tp->nobjs[kind]];
    return malloc(size);
}

void lunet_pool_put(lunet_pool_kind_t kind, void *p)
{
    thread_pool_t *tp = pool_here();
    if (tp && tp->nobjs[kind] < POOL_OBJECTS)
        tp->objs[kind][tp->nobjs[kind]++] = p;
    else
        free(p);
}

static size_t round_size(size_t n)
{
    return n == 0 ? LUNET_ALIGN : (n + LUNET_ALIGN - 1) & ~(size_t)(LUNET_ALIGN - 1);
}

static void *block_get(size_t nbytes)
{
    thread_pool_t *tp = pool_here();
    for (int i = 0; tp && i < CACHE_SLOTS; i++) {
        cache_slot_t *c = &tp->cache[i];
        if (c->nbytes == nbytes && c->count > 0) {
            tp->cached_bytes -= nbytes;
            return c->blocks[--c->count];
        }
    }
    void *p = aligned_alloc(LUNET_ALIGN, nbytes);
    if (p)
        atomic_fetch_add_explicit(&reserved_bytes, nbytes, memory_order_relaxed);
    return p;
}

static void block_put(void *p, size_t nbytes)
{
    thread_pool_t *tp = pool_here();
    if (tp && tp->cached_bytes + nbytes <= CACHE_LIMIT) {
        int empty = -1;
        for (int i = 0; i < CACHE_SLOTS; i++) {
            cache_slot_t *c = &tp->cache[i];
            if (c->nbytes == nbytes && c->count < CACHE_PER_SLOT) {
                c->blocks[c->count++] = p;
                tp->cached_bytes += nbytes;
                return;
            }
            if (empty < 0 && c->count == 0)
                empty = i;
        }
        if (empty >= 0) {
            tp->cache[empty].nbytes = nbytes;
            tp->cache[empty].blocks[tp->cache[empty].count++] = p;
            tp->cached_bytes += nbytes;
            return;
        }
    }
    atomic_fetch_sub_explicit(&reserved_bytes, nbytes, memory_order_relaxed);
    free(p);
}

void lunet_memory_trim(void)
{
    if (my_pool)
        pool_empty(my_pool);
}

size_t lunet_memory_reserved(void)
{
    return atomic_load_explicit(&reserved_bytes, memory_order_relaxed);
}

/* A storage header on data (refcount 1, version 0), from the thread's free list. */
static lunet_storage_t *storage_header(void *data, size_t nbytes,
                                       void (*release_fn)(void *, void *), void *ctx, bool wrapped)
{
    lunet_storage_t *s = lunet_pool_get(LUNET_POOL_STORAGE, sizeof *s);
    if (!s)
        return NULL;
    s->data = data;
    s->nbytes = nbytes;
    s->refcount = 1;
    s->version = 0;
    s->release_fn = release_fn;
    s->release_ctx = ctx;
    s->wrapped = wrapped;
    s->slab = false;
    s->nmembers = 0;
    s->member_start = NULL;
    s->member_version = NULL;
    return s;
}

lunet_status_t lunet_storage_new(lunet_storage_t **out, size_t nbytes)
{
    size_t rounded = round_size(nbytes);
    if (rounded < nbytes)
        return lunet_error_set(LUNET_STATUS_NOMEM, "storage: cannot allocate %zu bytes", nbytes);
    void *data = block_get(rounded);
    if (!data)
        return lunet_error_set(LUNET_STATUS_NOMEM, "storage: cannot allocate %zu bytes", nbytes);
    lunet_storage_t *s = storage_header(data, rounded, NULL, NULL, false);
    if (!s) {
        block_put(data, rounded);
        return lunet_error_set(LUNET_STATUS_NOMEM, "storage: out of memory");
    }
    *out = s;
    return LUNET_OK;
}

lunet_status_t lunet_storage_wrap(lunet_storage_t **out, void *data, size_t nbytes,
                                  void (*release_fn)(void *, void *), void *ctx)
{
    lunet_storage_t *s = storage_header(data, nbytes, release_fn, ctx, true);
    if (!s)
        return lunet_error_set(LUNET_STATUS_NOMEM, "storage: out of memory");
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
    free(s->member_start);
    free(s->member_version);
    lunet_pool_put(LUNET_POOL_STORAGE, s);
}
