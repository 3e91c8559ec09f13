/*
 * bench_gemm.c - the hardware's limits for make bench, and the GEMM library comparison.
 *
 *   bench_gemm peak          the FMA peak (register-only loop, AVX-512 / AVX2 / SSE picked
 *                            at run time) on 1 and 2 threads, and the 2-core FLOP bound of
 *                            one MLP epoch (158.5 GFLOP of GEMM)
 *   bench_gemm floor         Lunet's own GEMM path (lunet_tensor_mm / addmm_) at the MLP's
 *                            14 shapes and softmax regression's 2: seconds of GEMM per epoch
 *                            on 1 and 2 threads (the step's GEMM floor)
 *   bench_gemm libs          OpenBLAS, BLIS and oneDNN (dlopen'ed; single-threaded calls,
 *                            split over Lunet's pool for 2 threads) at the same shapes + 1024^3
 *   bench_gemm shapes        Lunet's path per shape on one thread against OpenBLAS and oneDNN
 *                            called directly: the MLP's and softmax regression's shapes, then
 *                            N <= 16 products on either side of the narrow kernels' limits
 *   bench_gemm linear        a Linear's forward and backward (dX and dW, .grad reset each
 *                            time) through the C API, on one thread, for layers of at most 16
 *                            inputs, whose backward products have N <= 16
 *
 * Medians of interleaved rounds: every configuration is timed in every round, so the other
 * load on the machine hits them alike.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* seconds of this thread's CPU: on one thread, what the other load on the machine cannot
   inflate (a preempted thread's wall time runs on, its CPU time does not) */
static double thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---------------------------------------------------------------- FMA peak */

#define FMA_ITERS 20000000L

#if defined(__x86_64__)
/* 12 independent accumulators hide the FMA latency (4 cycles x 2 ports + margin). */
__attribute__((target("avx512f"))) static double fma_avx512(long iters)
{
    __m512 a[12], m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
#pragma GCC unroll 12
    for (int i = 0; i < 12; i++)
        a[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++)
            a[i] = _mm512_fmadd_ps(a[i], m, c);
    }
    __m512 s = a[0];
#pragma GCC unroll 12
    for (int i = 1; i < 12; i++)
        s = _mm512_add_ps(s, a[i]);
    float out[16];
    _mm512_storeu_ps(out, s);
    (void)out[0];
    return (double)iters * 12 * 16 * 2 + out[0] * 0; /* flops */
}

__attribute__((target("avx2,fma"))) static double fma_avx2(long iters)
{
    __m256 a[12], m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
#pragma GCC unroll 12
    for (int i = 0; i < 12; i++)
        a[i] = _mm256_set1_ps((float)i);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++)
            a[i] = _mm256_fmadd_ps(a[i], m, c);
    }
    __m256 s = a[0];
#pragma GCC unroll 12
    for (int i = 1; i < 12; i++)
        s = _mm256_add_ps(s, a[i]);
    float out[8];
    _mm256_storeu_ps(out, s);
    return (double)iters * 12 * 8 * 2 + out[0] * 0;
}
#endif

static double fma_scalar(long iters)
{
    volatile float sink;
    float a[8] = {0};
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < 8; i++)
            a[i] = a[i] * 0.999999f + 1e-7f;
    sink = a[0];
    (void)sink;
    return (double)iters * 8 * 2;
}

static const char *fma_isa(void)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return "AVX-512";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "AVX2+FMA";
#endif
    return "scalar";
}

static double fma_run(long iters)
{
    const char *isa = fma_isa();
#if defined(__x86_64__)
    if (!strcmp(isa, "AVX-512"))
        return fma_avx512(iters);
    if (!strcmp(isa, "AVX2+FMA"))
        return fma_avx2(iters);
#endif
    return fma_scalar(iters / 4);
}

typedef struct {
    double flops, seconds;
} fma_result_t;

/* Timed by the thread's CPU time: other processes on the machine take turns on the core
   but do not slow the loop while it runs (two threads on one physical core would). */
static void *fma_thread(void *arg)
{
    fma_result_t *r = arg;
    double t0 = thread_cpu();
    r->flops = fma_run(FMA_ITERS);
    r->seconds = thread_cpu() - t0;
    return NULL;
}

/* GF/s of `threads` concurrent register-only FMA loops (summed). */
static double fma_peak(int threads)
{
    pthread_t th[2];
    fma_result_t r[2];
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, fma_thread, &r[i]);
    double gf = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        gf += r[i].flops / r[i].seconds * 1e-9;
    }
    return gf;
}

/* GEMM flops of one MLP epoch: 60000 images, batch 64, 784-512-256-128-64-10; forward,
   weight gradients, input gradients of layers 2..5. */
static double mlp_epoch_flops(void)
{
    static const int64_t sz[6] = {784, 512, 256, 128, 64, 10};
    double f = 0;
    for (int l = 0; l < 5; l++)
        f += 2.0 * 60000 * (double)sz[l] * (double)sz[l + 1] * (l ? 3 : 2);
    return f;
}

static int cmd_peak(void)
{
    enum { ROUNDS = 5 };
    double p1[ROUNDS], p2[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        p1[r] = fma_peak(1);
        p2[r] = fma_peak(2);
    }
    double g1 = median(p1, ROUNDS), g2 = median(p2, ROUNDS), f = mlp_epoch_flops();
    printf("FMA peak (%s register loop, by thread CPU time, median of %d): %.1f GF/s on 1 "
           "thread, %.1f GF/s on 2\n",
           fma_isa(), ROUNDS, g1, g2);
    printf("MLP epoch GEMM work: %.1f GFLOP; FLOP bound %.3f s on 1 core, %.3f s on 2 cores\n",
           f * 1e-9, f / (g1 * 1e9), f / (g2 * 1e9));
    return 0;
}

/* ---------------------------------------------------------------- shapes */

typedef struct shape {
    const char *what;
    int64_t m, n, k;
    bool ta, tb; /* op(A) = A^T (A stored k x m), op(B) = B^T (B stored n x k) */
    float beta;
    double per_epoch; /* calls per epoch */
} shape_t;

#define MLP_STEPS (60000.0 / 64)
#define SR_STEPS (60000.0 / 256)

static const shape_t shapes[] = {
    {"mlp fwd 1", 64, 512, 784, false, true, 0, MLP_STEPS},
    {"mlp fwd 2", 64, 256, 512, false, true, 0, MLP_STEPS},
    {"mlp fwd 3", 64, 128, 256, false, true, 0, MLP_STEPS},
    {"mlp fwd 4", 64, 64, 128, false, true, 0, MLP_STEPS},
    {"mlp fwd 5", 64, 10, 64, false, true, 0, MLP_STEPS},
    {"mlp dW 1", 512, 784, 64, true, false, 1, MLP_STEPS},
    {"mlp dW 2", 256, 512, 64, true, false, 1, MLP_STEPS},
    {"mlp dW 3", 128, 256, 64, true, false, 1, MLP_STEPS},
    {"mlp dW 4", 64, 128, 64, true, false, 1, MLP_STEPS},
    {"mlp dW 5", 10, 64, 64, true, false, 1, MLP_STEPS},
    {"mlp dX 2", 64, 512, 256, false, false, 0, MLP_STEPS},
    {"mlp dX 3", 64, 256, 128, false, false, 0, MLP_STEPS},
    {"mlp dX 4", 64, 128, 64, false, false, 0, MLP_STEPS},
    {"mlp dX 5", 64, 64, 10, false, false, 0, MLP_STEPS},
    {"sr fwd", 256, 10, 784, false, false, 0, SR_STEPS},
    {"sr dW", 784, 10, 256, true, false, 0, SR_STEPS},
    /* N <= 16 either side of the narrow kernels' limits (lunet_sgemm_choose) */
    {"narrow", 64, 16, 256, false, false, 0, 0},
    {"narrow", 256, 8, 256, false, false, 0, 0},
    {"narrow", 256, 16, 784, false, false, 0, 0},
    {"narrow", 256, 12, 1400, false, false, 0, 0},
    {"narrow", 256, 10, 2048, false, false, 0, 0},
    {"narrow", 256, 4, 8192, false, false, 0, 0},
    {"narrow", 784, 4, 64, true, false, 0, 0},
    {"narrow", 2048, 16, 256, true, false, 0, 0},
    {"1024^3", 1024, 1024, 1024, false, false, 0, 0},
};
#define NSHAPES (int)(sizeof shapes / sizeof shapes[0])
#define NLUNET (NSHAPES - 1) /* shapes timed through Lunet (all but 1024^3) */

typedef struct operands {
    float *a, *b, *c;
} operands_t;

static float *rand_buf(int64_t n)
{
    float *p = aligned_alloc(64, (size_t)((n * 4 + 63) / 64 * 64));
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    return p;
}

static void operands_init(operands_t *o, const shape_t *s)
{
    o->a = rand_buf(s->m * s->k);
    o->b = rand_buf(s->k * s->n);
    o->c = rand_buf(s->m * s->n);
}

/* ---------------------------------------------------------------- libraries */

/* row-major C (m, n) = alpha op(A) op(B) + beta C */
typedef void (*sgemm_fn)(void *lib, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                         const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                         float *c, int64_t ldc);

typedef struct library {
    const char *name;
    void *handle;
    void *fn;
    sgemm_fn call;
} library_t;

typedef void (*cblas_sgemm_t)(int, int, int, int, int, int, float, const float *, int,
                              const float *, int, float, float *, int);
typedef int (*dnnl_sgemm_t)(char, char, int64_t, int64_t, int64_t, float, const float *, int64_t,
                            const float *, int64_t, float, float *, int64_t);

static void call_cblas(void *lib, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float *a,
                       int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    cblas_sgemm_t f = (cblas_sgemm_t)((library_t *)lib)->fn;
    f(101, ta ? 112 : 111, tb ? 112 : 111, (int)m, (int)n, (int)k, 1.0f, a, (int)lda, b, (int)ldb,
      beta, c, (int)ldc);
}

static void call_dnnl(void *lib, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float *a,
                      int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    dnnl_sgemm_t f = (dnnl_sgemm_t)((library_t *)lib)->fn;
    f(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
}

static bool lib_open(library_t *l, const char *name, const char *so, const char *sym,
                     const char *threads_sym)
{
    l->name = name;
    l->handle = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!l->handle)
        return false;
    l->fn = dlsym(l->handle, sym);
    if (!l->fn)
        return false;
    l->call = strcmp(sym, "dnnl_sgemm") ? call_cblas : call_dnnl;
    if (threads_sym) {
        void (*set)(int) = (void (*)(int))dlsym(l->handle, threads_sym);
        if (set)
            set(1);
    }
    return true;
}

typedef struct lib_job {
    library_t *lib;
    const shape_t *s;
    operands_t *o;
    bool by_rows;
} lib_job_t;

// c block of rows or columns [b, e) = op(a) op(b) (+ c): one single-threaded library call
static void lib_block(void *ctx, int64_t b, int64_t e)
{
    const lib_job_t *j = ctx;
    const shape_t *s = j->s;
    int64_t lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
    const float *a = j->o->a, *bb = j->o->b;
    float *c = j->o->c;
    if (j->by_rows)
        j->lib->call(j->lib, s->ta, s->tb, e - b, s->n, s->k, a + (s->ta ? b : b * lda), lda, bb,
                     ldb, s->beta, c + b * s->n, s->n);
    else
        j->lib->call(j->lib, s->ta, s->tb, s->m, e - b, s->k, a, lda, bb + (s->tb ? b * ldb : b),
                     ldb, s->beta, c + b, s->n);
}

/* The block rule of runtime/matmul.c (a function of the shape only): blocks of at least
   8 MFLOP, at most 4, a power of two, edges on multiples of 16. */
static int64_t grain_of(const shape_t *s, bool *by_rows)
{
    *by_rows = s->m >= s->n;
    int64_t dim = *by_rows ? s->m : s->n;
    double flops = 2.0 * (double)s->m * (double)s->n * (double)s->k;
    int64_t blocks = 1;
    while (blocks < 4 && flops >= (double)(2 * blocks) * (8 << 20) && 2 * blocks <= dim / 16)
        blocks *= 2;
    if (blocks == 1)
        return dim;
    int64_t g = (dim + blocks - 1) / blocks;
    return (g + 15) / 16 * 16;
}

static void lib_gemm(library_t *lib, const shape_t *s, operands_t *o, int threads)
{
    lib_job_t j = {lib, s, o, false};
    if (threads == 1) {
        j.by_rows = true;
        lib_block(&j, 0, s->m);
        return;
    }
    int64_t g = grain_of(s, &j.by_rows);
    /* lib_block's first argument decides rows or columns */
    if (!j.by_rows && g == s->n) {
        j.by_rows = true;
        g = s->m;
    }
    lunet_parallel_for(j.by_rows ? s->m : s->n, g, lib_block, &j);
}

/* enough calls for ~2 ms */
/* seconds per call, wall clock (cpu false) or the calling thread's CPU time (cpu true) */
static double time_calls(void (*body)(void *), void *ctx, bool cpu)
{
    double (*clock_fn)(void) = cpu ? thread_cpu : now;
    body(ctx);
    int reps = 1;
    double t;
    for (;;) {
        double t0 = clock_fn();
        for (int i = 0; i < reps; i++)
            body(ctx);
        t = clock_fn() - t0;
        if (t > 2e-3 || reps > 1 << 20)
            break;
        reps *= 4;
    }
    return t / reps;
}

typedef struct lib_timing {
    library_t *lib;
    const shape_t *s;
    operands_t *o;
    int threads;
} lib_timing_t;

static void lib_body(void *ctx)
{
    lib_timing_t *t = ctx;
    lib_gemm(t->lib, t->s, t->o, t->threads);
}

static int cmd_libs(int rounds)
{
    /* oneDNN and BLIS (OpenMP builds) must not start thread teams of their own */
    setenv("OMP_NUM_THREADS", "1", 1);
    setenv("BLIS_NUM_THREADS", "1", 1);
    library_t libs[3];
    int nl = 0;
    if (lib_open(&libs[nl], "OpenBLAS", "libopenblas.so.0", "cblas_sgemm",
                 "openblas_set_num_threads"))
        nl++;
    if (lib_open(&libs[nl], "BLIS", "libblis.so.4", "cblas_sgemm", "bli_thread_set_num_threads"))
        nl++;
    if (lib_open(&libs[nl], "oneDNN", "libdnnl.so.2", "dnnl_sgemm", NULL))
        nl++;
    if (!nl) {
        printf("no GEMM library found (libopenblas0, libblis4, libdnnl2)\n");
        return 0;
    }
    operands_t ops[NSHAPES];
    for (int i = 0; i < NSHAPES; i++)
        operands_init(&ops[i], &shapes[i]);
    /* t[shape][lib][threads-1][round] */
    static double t[NSHAPES][3][2][64];
    if (rounds > 64)
        rounds = 64;
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < NSHAPES; i++)
            for (int l = 0; l < nl; l++)
                for (int th = 1; th <= 2; th++) {
                    CHECK(lunet_set_num_threads(th));
                    lib_timing_t lt = {&libs[l], &shapes[i], &ops[i], th};
                    t[i][l][th - 1][r] = time_calls(lib_body, &lt, th == 1);
                }
    printf("%-10s %16s", "shape", "m x n x k");
    for (int l = 0; l < nl; l++)
        printf(" | %8s 1t %8s 2t", libs[l].name, libs[l].name);
    printf("   (microseconds per call, median of %d interleaved rounds; 1t: the thread's CPU "
           "time, 2t: wall time)\n",
           rounds);
    double mlp[3][2] = {{0}}, sr[3][2] = {{0}}, big[3][2] = {{0}};
    for (int i = 0; i < NSHAPES; i++) {
        const shape_t *s = &shapes[i];
        char dims[48];
        snprintf(dims, sizeof dims, "%lldx%lldx%lld%s%s", (long long)s->m, (long long)s->n,
                 (long long)s->k, s->ta ? " TN" : "", s->tb ? " NT" : "");
        printf("%-10s %16s", s->what, dims);
        for (int l = 0; l < nl; l++)
            for (int th = 0; th < 2; th++) {
                double m = median(t[i][l][th], rounds);
                printf(" %s%11.1f", th ? "" : " |", m * 1e6);
                if (!strncmp(s->what, "mlp", 3))
                    mlp[l][th] += m * s->per_epoch;
                else if (!strncmp(s->what, "sr", 2))
                    sr[l][th] += m * s->per_epoch;
                else if (!strcmp(s->what, "1024^3"))
                    big[l][th] = 2.0 * s->m * s->n * s->k / m * 1e-9;
            }
        printf("\n");
    }
    printf("%-27s", "MLP epoch of GEMM (s)");
    for (int l = 0; l < nl; l++)
        printf(" | %11.3f %11.3f", mlp[l][0], mlp[l][1]);
    printf("\n%-27s", "softmax regr. epoch (s)");
    for (int l = 0; l < nl; l++)
        printf(" | %11.4f %11.4f", sr[l][0], sr[l][1]);
    printf("\n%-27s", "1024^3 (GF/s)");
    for (int l = 0; l < nl; l++)
        printf(" | %11.1f %11.1f", big[l][0], big[l][1]);
    printf("\n");
    return 0;
}

/* ---------------------------------------------------------------- Lunet's own path */

typedef struct lunet_timing {
    lunet_tensor_t *a, *b, *c;
    const shape_t *s;
} lunet_timing_t;

static void lunet_body(void *ctx)
{
    lunet_timing_t *t = ctx;
    if (t->s->beta != 0) {
        CHECK(lunet_tensor_addmm_(t->c, t->a, t->b, 1.0, 1.0));
    } else {
        lunet_tensor_t *c;
        CHECK(lunet_tensor_mm(&c, t->a, t->b));
        lunet_tensor_release(c);
    }
}

static lunet_tensor_t *operand(int64_t rows, int64_t cols, bool trans)
{
    int64_t shape[2] = {trans ? cols : rows, trans ? rows : cols};
    lunet_tensor_t *t, *v;
    CHECK(lunet_tensor_empty(&t, LUNET_DTYPE_FLOAT32, 2, shape));
    CHECK(lunet_tensor_uniform_(t, NULL, -0.5, 0.5));
    if (!trans)
        return t;
    CHECK(lunet_tensor_transpose(&v, t, 0, 1));
    lunet_tensor_release(t);
    return v;
}

/* Lunet tensors for the first n shapes */
static void timings_init(lunet_timing_t *lt, int n)
{
    for (int i = 0; i < n; i++) {
        const shape_t *s = &shapes[i];
        lt[i].s = s;
        lt[i].a = operand(s->m, s->k, s->ta);
        lt[i].b = operand(s->k, s->n, s->tb);
        lt[i].c = operand(s->m, s->n, false);
    }
}

static int cmd_floor(int rounds)
{
    enum { NS = 16 }; /* the MLP's and softmax regression's shapes */
    lunet_timing_t lt[NS];
    timings_init(lt, NS);
    static double t[2][64];
    if (rounds > 64)
        rounds = 64;
    int nthreads = lunet_get_num_threads();
    for (int r = 0; r < rounds; r++)
        for (int th = 1; th <= 2; th++) {
            CHECK(lunet_set_num_threads(th));
            double mlp = 0;
            for (int i = 0; i < 14; i++)
                mlp += time_calls(lunet_body, &lt[i], th == 1) * shapes[i].per_epoch;
            t[th - 1][r] = mlp;
        }
    CHECK(lunet_set_num_threads(nthreads));
    printf("Lunet GEMM floor of one MLP epoch (14 shapes, %s): %.3f s on 1 thread (CPU time), "
           "%.3f s on 2 (wall)\n",
           lunet_blas_name(), median(t[0], rounds), median(t[1], rounds));
    return 0;
}

/* Lunet's own path per shape on one thread against OpenBLAS and oneDNN called directly on
   the same operands, interleaved: microseconds per call (the thread's CPU time) */
static int cmd_shapes(int rounds)
{
    enum { NS = NLUNET };
    lunet_timing_t lt[NS];
    static double t[3][NS][64];
    if (rounds > 64)
        rounds = 64;
    timings_init(lt, NS);
    setenv("OMP_NUM_THREADS", "1", 1); /* oneDNN must not start a thread team of its own */
    library_t libs[2];
    bool have[2] = {lib_open(&libs[0], "OpenBLAS", "libopenblas.so.0", "cblas_sgemm",
                             "openblas_set_num_threads"),
                    lib_open(&libs[1], "oneDNN", "libdnnl.so.2", "dnnl_sgemm", NULL)};
    operands_t ops[NS];
    for (int i = 0; i < NS; i++)
        operands_init(&ops[i], &shapes[i]);
    CHECK(lunet_set_num_threads(1));
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < NS; i++) {
            t[0][i][r] = time_calls(lunet_body, &lt[i], true);
            for (int l = 0; l < 2; l++) {
                lib_timing_t bt = {&libs[l], &shapes[i], &ops[i], 1};
                t[1 + l][i][r] = have[l] ? time_calls(lib_body, &bt, true) : 0;
            }
        }
    printf("%-10s %16s %10s %12s %10s %10s %10s\n", "shape", "m x n x k", "Lunet us", "(GF/s)",
           "OpenBLAS", "oneDNN", "Lunet/best");
    for (int i = 0; i < NS; i++) {
        const shape_t *s = &shapes[i];
        double us = median(t[0][i], rounds) * 1e6, ub = median(t[1][i], rounds) * 1e6,
               ud = median(t[2][i], rounds) * 1e6;
        double best = have[1] && ud < ub ? ud : ub;
        char dims[48];
        snprintf(dims, sizeof dims, "%lldx%lldx%lld%s%s", (long long)s->m, (long long)s->n,
                 (long long)s->k, s->ta ? " TN" : "", s->tb ? " NT" : "");
        printf("%-10s %16s %10.1f %12.1f %10.1f %10.1f %9.2fx\n", s->what, dims, us,
               2.0 * s->m * s->n * s->k / us * 1e-3, ub, have[1] ? ud : 0.0, us / best);
    }
    printf("(one thread, CPU time, medians of %d interleaved rounds; Lunet: %s with its own "
           "kernels, LUNET_SGEMM=blas for BLAS alone)\n",
           rounds, lunet_blas_name());
    return 0;
}

/* ---------------------------------------------------------------- Linear, C API */

/* (batch, in, out): layers of at most 16 inputs, whose backward products dX (batch, in) and
   dW (out, in) have N <= 16 */
static const int64_t linear_shapes[][3] = {{64, 9, 128},
                                           {256, 10, 512},
                                           {256, 16, 256},
                                           {1024, 4, 256}};
#define NLINEAR (int)(sizeof linear_shapes / sizeof linear_shapes[0])

typedef struct linear_timing {
    lunet_tensor_t *x, *w, *g;
} linear_timing_t;

/* y = x @ w^T, then backward with y's gradient g: dX and dW, w.grad and x.grad reset first
   so that dW is a new product each time (beta 0), as after zero_grad(set_to_none) */
static void linear_body(void *ctx)
{
    linear_timing_t *t = ctx;
    lunet_tensor_t *y;
    CHECK(lunet_tensor_set_grad(t->x, NULL));
    CHECK(lunet_tensor_set_grad(t->w, NULL));
    CHECK(lunet_nn_linear(&y, t->x, t->w, NULL, false));
    CHECK(lunet_tensor_backward(y, t->g, false));
    lunet_tensor_release(y);
}

static int cmd_linear(int rounds)
{
    linear_timing_t lt[NLINEAR];
    static double t[NLINEAR][64];
    if (rounds > 64)
        rounds = 64;
    for (int i = 0; i < NLINEAR; i++) {
        const int64_t *s = linear_shapes[i];
        lt[i].x = operand(s[0], s[1], false);
        lt[i].w = operand(s[2], s[1], false);
        lt[i].g = operand(s[0], s[2], false);
        CHECK(lunet_tensor_requires_grad_(lt[i].x, true));
        CHECK(lunet_tensor_requires_grad_(lt[i].w, true));
    }
    CHECK(lunet_set_num_threads(1));
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < NLINEAR; i++)
            t[i][r] = time_calls(linear_body, &lt[i], true);
    printf("%-22s %12s\n", "Linear (batch, in, out)", "fwd+bwd us");
    for (int i = 0; i < NLINEAR; i++) {
        char dims[48];
        snprintf(dims, sizeof dims, "(%lld, %lld, %lld)", (long long)linear_shapes[i][0],
                 (long long)linear_shapes[i][1], (long long)linear_shapes[i][2]);
        printf("%-22s %12.1f\n", dims, median(t[i], rounds) * 1e6);
    }
    printf("(one thread, CPU time, medians of %d interleaved rounds)\n", rounds);
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "peak";
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    if (!strcmp(cmd, "peak"))
        return cmd_peak();
    if (!strcmp(cmd, "floor"))
        return cmd_floor(rounds);
    if (!strcmp(cmd, "shapes"))
        return cmd_shapes(rounds);
    if (!strcmp(cmd, "libs"))
        return cmd_libs(rounds);
    if (!strcmp(cmd, "linear"))
        return cmd_linear(rounds);
    fprintf(stderr, "usage: bench_gemm peak | floor [rounds] | shapes [rounds] | libs [rounds] | "
                    "linear [rounds]\n");
    return 2;
}
