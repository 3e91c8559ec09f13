/*
 * parallel.c - the runtime's own worker pool: lunet_parallel_for and the thread count
 * (PyTorch's torch.set_num_threads / get_num_threads).
 *
 * Decisions:
 *  - Persistent pthreads, started at the first parallel call, sized from the CPU affinity
 *    mask (LUNET_NUM_THREADS or lunet_set_num_threads override it).  The calling thread is
 *    one of the n threads: it claims blocks like the workers do.
 *  - The same bits on any thread count: the blocks of a call are [k*grain, (k+1)*grain),
 *    a function of n and grain only, never of the thread count.  Threads claim blocks from
 *    an atomic counter (so a descheduled thread does not hold the others up), and a caller
 *    that reduces stores one partial per block and combines them in block order.
 *  - Waiting threads spin for a while (a GEMM follows a GEMM within a training step), then
 *    sleep on a condition variable: a busy process on the other core must never find
 *    Lunet burning it.  A worker spins 250 us while regions come that often (a training
 *    step's are 30-250 us apart, and waking a sleeper costs tens of microseconds), 30 us
 *    after a longer wait; spinning pauses, with a yield every 16th turn so that a thread
 *    waiting on the core of the one it waits for hands that core over.
 *  - No collapse when another process holds a core: a worker preempted in the middle of a
 *    block makes the caller wait for the scheduler.  The caller measures how long it waited
 *    after its own share; when the wait exceeds the work (the threads are not paying), the
 *    next regions run on the caller alone, 16 at first and twice as many after each bad
 *    probe (up to 4096; each good region halves that again), then it tries the workers.
 *    Blocks are the same either way, so this changes timing only, never bits.
 *  - One parallel region at a time: a call made inside a block, or while another thread's
 *    region runs, runs its blocks serially on its own thread (same blocks, same bits).
 *  - Blocks must not allocate through the runtime's pools or set errors: they compute into
 *    memory the caller prepared.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

#ifndef LUNET_NO_BLAS
/* OpenBLAS's own threads are switched off: each block calls single-threaded sgemm. */
void openblas_set_num_threads(int n);
#endif

#define MAX_THREADS 256
/* How long a waiting thread spins before it sleeps: a caller waiting for the last block,
   and a worker after a long idle spell, 30 us; a worker whose last region came within
   SPIN_BUSY_NS of the one before (a training step: regions 30-250 us apart) spins that
   long, since waking a sleeping thread costs tens of microseconds on a VM's halted CPU. */
#define SPIN_NS 30000
#define SPIN_BUSY_NS 250000

/* state packs the region's generation (high 32 bits) with the number of workers inside it
   (low 31 bits) and a closed flag (bit 31): a worker enters only an open region of the
   generation it saw, and the caller closes a region only when nobody is inside, so a late
   worker can never claim a block of the next region with the previous one's counters. */
#define STATE_CLOSED 0x80000000u
#define STATE_GEN(s) ((uint32_t)((s) >> 32))

typedef struct pool {
    int nthreads; /* including the caller */
    int nworkers; /* threads started */
    pthread_t *workers;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* workers sleep here between regions */
    pthread_cond_t done; /* the caller sleeps here until the last block finishes */
    _Atomic uint64_t state;
    atomic_int sleepers;
    atomic_bool caller_sleeping;
    atomic_bool stop;
    /* the current region: written by the caller before it opens the region */
    lunet_parallel_fn fn;
    void *ctx;
    int64_t n, grain, nblocks;
    atomic_llong next;     /* next block to claim */
    atomic_llong finished; /* blocks done */
    /* back-off when the workers do not pay (see above); owned by the region's caller */
    int64_t serial_left, backoff;
} pool_t;

#define BACKOFF_MIN 16
#define BACKOFF_MAX 4096
#define WAIT_SLACK_NS 50000

static pthread_mutex_t config_mu = PTHREAD_MUTEX_INITIALIZER;
static int configured_threads; /* 0: not decided yet */
static pool_t *the_pool;       /* started lazily, under config_mu */
static atomic_flag region_busy = ATOMIC_FLAG_INIT;
static _Thread_local bool in_region;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int default_threads(void)
{
    const char *env = getenv("LUNET_NUM_THREADS");
    if (env && *env) {
        char *end;
        errno = 0;
        long v = strtol(env, &end, 10);
        if (!errno && *end == '\0' && v > 0)
            return v > MAX_THREADS ? MAX_THREADS : (int)v;
    }
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int c = CPU_COUNT(&set);
        if (c > 0)
            return c > MAX_THREADS ? MAX_THREADS : c;
    }
    return 1;
}

/* One turn of a wait loop: a few pauses first, then yields, so that a thread waiting on
   the same core as the one it waits for (the other core busy) hands that core over. */
static void spin_wait(int i)
{
    if (i < 256 || (i & 15))
        cpu_relax();
    else
        sched_yield();
}

/* Claims and runs blocks until none is left; returns how many this thread ran. */
static int64_t run_blocks(pool_t *p)
{
    int64_t ran = 0, k;
    while ((k = atomic_fetch_add_explicit(&p->next, 1, memory_order_acq_rel)) < p->nblocks) {
        int64_t b = k * p->grain, e = b + p->grain < p->n ? b + p->grain : p->n;
        p->fn(p->ctx, b, e);
        ran++;
    }
    return ran;
}

/* Adds ran finished blocks; the thread that finishes the last one wakes a sleeping caller. */
static void report_finished(pool_t *p, int64_t ran)
{
    if (ran && atomic_fetch_add(&p->finished, ran) + ran == p->nblocks &&
        atomic_load(&p->caller_sleeping)) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
}

/* Enters the open region of generation gen: false if it is closed or already another one. */
static bool try_enter(pool_t *p, uint32_t gen)
{
    uint64_t s = atomic_load(&p->state);
    while (STATE_GEN(s) == gen && !(s & STATE_CLOSED))
        if (atomic_compare_exchange_weak(&p->state, &s, s + 1))
            return true;
    return false;
}

static void *worker_main(void *arg)
{
    pool_t *p = arg;
    uint32_t seen = 0; /* the generation pool_start left: a late start misses nothing */
    in_region = true;  /* a block that calls lunet_parallel_for runs it serially */
    int64_t spin = SPIN_NS;
    for (;;) {
        /* wait for a new region: spin, then sleep */
        int64_t t0 = now_ns();
        for (int i = 0; STATE_GEN(atomic_load_explicit(&p->state, memory_order_acquire)) == seen;
             i++) {
            if ((i & 63) == 63 && now_ns() - t0 > spin) {
                pthread_mutex_lock(&p->mu);
                atomic_fetch_add(&p->sleepers, 1);
                while (STATE_GEN(atomic_load(&p->state)) == seen)
                    pthread_cond_wait(&p->wake, &p->mu);
                atomic_fetch_sub(&p->sleepers, 1);
                pthread_mutex_unlock(&p->mu);
                break;
            }
            spin_wait(i);
        }
        seen = STATE_GEN(atomic_load(&p->state));
        spin = now_ns() - t0 < SPIN_BUSY_NS ? SPIN_BUSY_NS : SPIN_NS;
        if (atomic_load(&p->stop))
            return NULL;
        if (!try_enter(p, seen))
            continue; /* that region is over already */
        report_finished(p, run_blocks(p));
        atomic_fetch_sub(&p->state, 1); /* leave */
    }
}

static void pool_stop(pool_t *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, true);
    atomic_store(&p->state,
                 ((uint64_t)(STATE_GEN(atomic_load(&p->state)) + 1) << 32) | STATE_CLOSED);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nworkers; i++)
        pthread_join(p->workers[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p->workers);
    free(p);
}

/* A pool of n threads (n - 1 workers); NULL when threads cannot be started. */
static pool_t *pool_start(int n)
{
    pool_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->nthreads = n;
    atomic_store(&p->state, STATE_CLOSED);
    p->workers = calloc((size_t)n, sizeof *p->workers);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    if (!p->workers) {
        pool_stop(p);
        return NULL;
    }
    for (int i = 0; i < n - 1; i++) {
        if (pthread_create(&p->workers[i], NULL, worker_main, p) != 0)
            break;
        p->nworkers++;
    }
    if (p->nworkers == 0) {
        pool_stop(p);
        return NULL;
    }
    p->nthreads = p->nworkers + 1;
    return p;
}

/* A forked child has none of the parent's workers: it starts its own when it needs them. */
static void after_fork_child(void)
{
    the_pool = NULL; /* the parent's pool memory is abandoned, not freed */
    atomic_flag_clear(&region_busy);
    pthread_mutex_init(&config_mu, NULL);
}

/* At exit the workers are joined (valgrind then sees no thread stacks left behind); skipped
   if a region is running on another thread, which exit must not wait for. */
static void stop_at_exit(void)
{
    if (atomic_flag_test_and_set(&region_busy))
        return;
    pthread_mutex_lock(&config_mu);
    pool_stop(the_pool);
    the_pool = NULL;
    pthread_mutex_unlock(&config_mu);
    atomic_flag_clear(&region_busy);
}

static void configure_locked(void)
{
    static bool atfork_done;
    if (!configured_threads)
        configured_threads = default_threads();
    if (!atfork_done) {
        pthread_atfork(NULL, NULL, after_fork_child);
        atexit(stop_at_exit);
        atfork_done = true;
#ifndef LUNET_NO_BLAS
        openblas_set_num_threads(1);
#endif
    }
}

/* OpenBLAS's own threads must be off before the first product, even one that never reaches
   a parallel region (a one-block GEMM): otherwise it would split that product over threads
   of its own, and its bits would follow the thread count. */
static atomic_bool ready;

void lunet_parallel_ready(void)
{
    if (atomic_load_explicit(&ready, memory_order_acquire))
        return;
    pthread_mutex_lock(&config_mu);
    configure_locked();
    pthread_mutex_unlock(&config_mu);
    atomic_store_explicit(&ready, true, memory_order_release);
}

int lunet_get_num_threads(void)
{
    pthread_mutex_lock(&config_mu);
    configure_locked();
    int n = configured_threads;
    pthread_mutex_unlock(&config_mu);
    return n;
}

lunet_status_t lunet_set_num_threads(int n)
{
    if (n <= 0)
        return lunet_error_set(LUNET_STATUS_RUNTIME, "set_num_threads expects a positive integer");
    if (in_region)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "set_num_threads: cannot change the thread count inside a parallel "
                               "region");
    if (n > MAX_THREADS)
        n = MAX_THREADS;
    /* wait until no region runs, so that the old pool can be stopped */
    while (atomic_flag_test_and_set_explicit(&region_busy, memory_order_acquire))
        sched_yield();
    pthread_mutex_lock(&config_mu);
    configure_locked();
    if (n != configured_threads) {
        configured_threads = n;
        pool_stop(the_pool);
        the_pool = NULL;
    }
    pthread_mutex_unlock(&config_mu);
    atomic_flag_clear_explicit(&region_busy, memory_order_release);
    return LUNET_OK;
}

static void run_serial(int64_t n, int64_t grain, lunet_parallel_fn fn, void *ctx)
{
    for (int64_t b = 0; b < n; b += grain)
        fn(ctx, b, b + grain < n ? b + grain : n);
}

void lunet_parallel_for(int64_t n, int64_t grain, lunet_parallel_fn fn, void *ctx)
{
    lunet_parallel_ready();
    if (n <= 0)
        return;
    if (grain < 1)
        grain = 1;
    int64_t nblocks = (n - 1) / grain + 1;
    if (nblocks == 1 || in_region ||
        atomic_flag_test_and_set_explicit(&region_busy, memory_order_acquire)) {
        run_serial(n, grain, fn, ctx);
        return;
    }
    pthread_mutex_lock(&config_mu);
    configure_locked();
    if (!the_pool && configured_threads > 1)
        the_pool = pool_start(configured_threads);
    pool_t *p = the_pool;
    pthread_mutex_unlock(&config_mu);
    if (!p || p->serial_left > 0) {
        if (p)
            p->serial_left--;
        atomic_flag_clear_explicit(&region_busy, memory_order_release);
        run_serial(n, grain, fn, ctx);
        return;
    }
    int64_t t_start = now_ns();
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->grain = grain;
    p->nblocks = nblocks;
    atomic_store(&p->finished, 0);
    atomic_store_explicit(&p->next, 0, memory_order_release);
    atomic_store(&p->caller_sleeping, false);
    /* open the next generation (seq_cst: publishes the region, then reads sleepers) */
    uint32_t gen = STATE_GEN(atomic_load(&p->state)) + 1;
    atomic_store(&p->state, (uint64_t)gen << 32);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
    in_region = true;
    int64_t ran = run_blocks(p);
    in_region = false;
    int64_t t0 = now_ns(), waited = 0;
    if (atomic_fetch_add(&p->finished, ran) + ran != nblocks) {
        for (int i = 0; atomic_load_explicit(&p->finished, memory_order_acquire) != nblocks; i++) {
            if ((i & 63) == 63 && now_ns() - t0 > SPIN_NS) {
                pthread_mutex_lock(&p->mu);
                atomic_store(&p->caller_sleeping, true);
                while (atomic_load(&p->finished) != nblocks)
                    pthread_cond_wait(&p->done, &p->mu);
                pthread_mutex_unlock(&p->mu);
                break;
            }
            spin_wait(i);
        }
        waited = now_ns() - t0;
    }
    if (waited > WAIT_SLACK_NS && waited > t0 - t_start) {
        p->serial_left = p->backoff ? p->backoff : BACKOFF_MIN;
        p->backoff = p->serial_left * 2 > BACKOFF_MAX ? BACKOFF_MAX : p->serial_left * 2;
    } else {
        p->backoff /= 2; /* a good region earns trust back slowly under steady contention */
        if (p->backoff < BACKOFF_MIN)
            p->backoff = 0;
    }
    /* close the region once no worker is inside (they are leaving: no block is left) */
    uint64_t open_state = (uint64_t)gen << 32;
    for (int i = 0;
         !atomic_compare_exchange_weak(&p->state, &open_state, open_state | STATE_CLOSED); i++) {
        open_state = (uint64_t)gen << 32;
        if (i > 1000)
            sched_yield();
        else
            cpu_relax();
    }
    atomic_flag_clear_explicit(&region_busy, memory_order_release);
}
