/*
 * matmul.c - mm, addmm and matmul.  Float32/float64 products go to OpenBLAS's cblas_?gemm
 * with transpose flags read from the strides (a transposed view costs no copy); a portable
 * kernel serves `make BLAS=none` builds and integer dtypes.
 */
#include "autograd.h"
#include "internal.h"

#include <string.h>

#ifndef LUNET_NO_BLAS
#include <cblas.h>
#endif
#ifdef LUNET_BLAS_DNNL
#include <oneapi/dnnl/dnnl.h>
/* oneDNN runs its GEMM on OpenMP threads of the calling thread; Lunet's pool already
   splits the work, so every thread that calls it asks OpenMP for one thread (libgomp). */
void omp_set_num_threads(int n);
static _Thread_local bool omp_single;
#endif

const char *lunet_blas_name(void)
{
#if defined(LUNET_NO_BLAS)
    return "builtin";
#elif defined(LUNET_BLAS_DNNL)
    return "onednn";
#else
    return "openblas";
#endif
}

/* A 2-D operand as BLAS sees it: row-major data, transposed or not, leading dimension. */
typedef struct gemm_operand {
    const void *data;
    bool trans;
    int64_t ld;
} gemm_operand_t;

/*
 * Whether a (rows, cols) matrix with strides (row_stride, col_stride) is row-major with unit
 * stride; if so sets op->ld and op->trans = trans.  blas_layout asks it of t and of t's
 * transpose.
 */
static bool row_major_layout(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride,
                             bool trans, gemm_operand_t *op)
{
    if (col_stride == 1 || cols == 1) {
        int64_t ld = rows == 1 ? (cols > 1 ? cols : 1) : row_stride;
        if (ld >= (cols > 1 ? cols : 1)) {
            op->trans = trans;
            op->ld = ld;
            return true;
        }
    }
    return false;
}

/* Reads t's layout; false when neither t nor its transpose is row-major with unit stride. */
static bool blas_layout(const lunet_tensor_t *t, gemm_operand_t *op)
{
    int64_t rows = t->shape[0], cols = t->shape[1];
    op->data = lunet_tensor_data(t);
    return row_major_layout(rows, cols, t->strides[0], t->strides[1], false, op) ||
           row_major_layout(cols, rows, t->strides[1], t->strides[0], true, op);
}

/*
 * a (M, K) op b (K, N) -> c (M, N) row-major contiguous; c = alpha*a@b + beta*c.  One body
 * for the two element types T (float, double), so the float32 and float64 kernels cannot
 * drift apart; each keeps its own greppable name below.
 */
#define GEMM_BUILTIN_BODY(T)                                                                       \
    const T *pa = a->data, *pb = b->data;                                                          \
    for (int64_t i = 0; i < m; i++) {                                                              \
        T *ci = c + i * ldc;                                                                       \
        for (int64_t j = 0; j < n; j++)                                                            \
            ci[j] = beta == 0 ? (T)0 : beta * ci[j];                                               \
        for (int64_t p = 0; p < k; p++) {                                                          \
            T av = alpha * (a->trans ? pa[p * a->ld + i] : pa[i * a->ld + p]);                     \
            if (!b->trans) {                                                                       \
                const T *bp = pb + p * b->ld;                                                      \
                for (int64_t j = 0; j < n; j++)                                                    \
                    ci[j] += av * bp[j];                                                           \
            } else {                                                                               \
                for (int64_t j = 0; j < n; j++)                                                    \
                    ci[j] += av * pb[j * b->ld + p];                                               \
            }                                                                                      \
        }                                                                                          \
    }

static void gemm_builtin_f32(const gemm_operand_t *a, const gemm_operand_t *b, float *c,
                             int64_t ldc, int64_t m, int64_t n, int64_t k, float alpha, float beta)
{
    GEMM_BUILTIN_BODY(float)
}

static void gemm_builtin_f64(const gemm_operand_t *a, const gemm_operand_t *b, double *c,
                             int64_t ldc, int64_t m, int64_t n, int64_t k, double alpha,
                             double beta)
{
    GEMM_BUILTIN_BODY(double)
}
#undef GEMM_BUILTIN_BODY

// c (n) = relu(c), in place; keeps NaN like PyTorch's relu
static void relu_rows(lunet_dtype_t dt, void *c, int64_t n)
{
    if (dt == LUNET_DTYPE_FLOAT32) {
        float *p = c;
        for (int64_t i = 0; i < n; i++)
            p[i] = p[i] < 0 ? 0.0f : p[i];
    } else {
        double *p = c;
        for (int64_t i = 0; i < n; i++)
            p[i] = p[i] < 0 ? 0.0 : p[i];
    }
}

// a (M, K) @ b (K, N) -> c (M, N), int64 (any layout, read element-wise)
/* Element (r, col) of a 2-D integer tensor (int64, uint8 or bool), any strides. */
static int64_t int_at(const lunet_tensor_t *t, int64_t r, int64_t col)
{
    int64_t off = t->offset + r * t->strides[0] + col * t->strides[1];
    const char *p = (const char *)t->storage->data;
    if (t->dtype == LUNET_DTYPE_INT64)
        return ((const int64_t *)(const void *)p)[off];
    return ((const uint8_t *)p)[off];
}

static void gemm_generic(const lunet_tensor_t *a, const lunet_tensor_t *b, lunet_tensor_t *c,
                         double alpha, double beta)
{
    int64_t m = a->shape[0], k = a->shape[1], n = b->shape[1];
    if (!lunet_dtype_is_floating(a->dtype) && !lunet_dtype_is_floating(b->dtype)) {
        // c (m, n) = alpha a (m, k) @ b (k, n) + beta c in int64, exact and wrapping as
        // PyTorch's integer GEMM (a double accumulator loses integers beyond 2^53)
        int64_t ia = lunet_f64_to_i64(alpha), ib = lunet_f64_to_i64(beta);
        size_t es = lunet_dtype_size(c->dtype);
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                int64_t acc = 0;
                for (int64_t p = 0; p < k; p++)
                    acc = lunet_i64_add(acc, lunet_i64_mul(int_at(a, i, p), int_at(b, p, j)));
                char *dst = (char *)lunet_tensor_data(c) + (size_t)(i * n + j) * es;
                int64_t old = beta == 0 ? 0 : int_at(c, i, j);
                lunet_dtype_store_int(dst, c->dtype,
                                      lunet_i64_add(lunet_i64_mul(ia, acc),
                                                    lunet_i64_mul(ib, old)));
            }
        return;
    }
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double acc = 0;
            for (int64_t p = 0; p < k; p++)
                acc += lunet_tensor_get(a, i * k + p) * lunet_tensor_get(b, p * n + j);
            double old = beta == 0 ? 0 : lunet_tensor_get(c, i * n + j);
            lunet_dtype_store((char *)lunet_tensor_data(c) +
                                  (size_t)(i * n + j) * lunet_dtype_size(c->dtype),
                              c->dtype, alpha * acc + beta * old);
        }
}

/*
 * The float GEMM, split into blocks of C's rows or columns that depend on the shape alone
 * (never on the thread count), each block one single-threaded BLAS call on a thread of
 * the runtime's pool: the same bits on 1 or n threads.  Small products are one block.
 * An optional epilogue works on each block while it is in cache: the bias is copied into
 * the block's rows before the product (beta = 1, as PyTorch's addmm does it) and the ReLU
 * applied after it.
 */
/* Each block repacks the operand it shares with the others, so blocks stay large: at least
   8 MFLOP each, at most 4 per product, and a power of two (even on 2 threads). */
#define GEMM_BLOCK_FLOPS (8LL << 20)
#define GEMM_MAX_BLOCKS 4
#define GEMM_ALIGN 16 /* block edges fall on multiples of 16 rows / columns */

typedef struct gemm_job {
    gemm_operand_t a, b;
    char *c;
    int64_t m, n, k;
    double alpha, beta;
    lunet_dtype_t dtype;
    bool by_rows;     /* blocks of C's rows (else of its columns) */
    const void *bias; /* (N) contiguous, copied into each row first; or NULL */
    bool relu;
    bool avx512;         /* float32 through sgemm.c's AVX-512 tiles (lunet_sgemm_choose) */
    const float *packed; /* a^T (k, ldp) for the AVX-512 kernel's x @ W^T, or NULL */
    int64_t ldp;
} gemm_job_t;

// c (mb, nb) block, ldc = n: rows [r0, r1) and columns [c0, c1) of job->c
static void gemm_block(const gemm_job_t *j, int64_t r0, int64_t r1, int64_t c0, int64_t c1)
{
    int64_t mb = r1 - r0, nb = c1 - c0, n = j->n;
    size_t es = lunet_dtype_size(j->dtype);
    gemm_operand_t a = j->a, b = j->b;
    a.data = (const char *)a.data + (size_t)(a.trans ? r0 : r0 * a.ld) * es;
    b.data = (const char *)b.data + (size_t)(b.trans ? c0 * b.ld : c0) * es;
    char *c = j->c + (size_t)(r0 * n + c0) * es;
    double beta = j->beta;
#if !defined(LUNET_NO_BLAS) && !defined(LUNET_BLAS_DNNL)
    /* the AVX-512 block applies the bias and the ReLU in its own epilogue, on each tile
       while it is in registers */
    if (j->avx512 &&
        lunet_sgemm_tiles(a.trans, b.trans, mb, nb, j->k, (float)j->alpha, a.data, a.ld, b.data,
                          b.ld, j->packed ? j->packed + r0 : NULL, j->ldp, (float)beta, (float *)c,
                          n, j->bias ? (const float *)j->bias + c0 : NULL, j->relu))
        return;
#endif
    if (j->bias) {
        for (int64_t i = 0; i < mb; i++)
            memcpy(c + (size_t)(i * n) * es, (const char *)j->bias + (size_t)c0 * es,
                   (size_t)nb * es);
        beta = 1.0;
    }
    if (j->dtype == LUNET_DTYPE_FLOAT32) {
#if defined(LUNET_NO_BLAS)
        gemm_builtin_f32(&a, &b, (float *)c, n, mb, nb, j->k, (float)j->alpha, (float)beta);
#elif defined(LUNET_BLAS_DNNL)
        if (!omp_single) {
            omp_set_num_threads(1);
            omp_single = true;
        }
        dnnl_sgemm(a.trans ? 'T' : 'N', b.trans ? 'T' : 'N', mb, nb, j->k, (float)j->alpha, a.data,
                   a.ld, b.data, b.ld, (float)beta, (float *)c, n);
#else
        cblas_sgemm(CblasRowMajor, a.trans ? CblasTrans : CblasNoTrans,
                    b.trans ? CblasTrans : CblasNoTrans, (int)mb, (int)nb, (int)j->k,
                    (float)j->alpha, a.data, (int)a.ld, b.data, (int)b.ld, (float)beta, (float *)c,
                    (int)n);
#endif
    } else {
#ifdef LUNET_NO_BLAS
        gemm_builtin_f64(&a, &b, (double *)c, n, mb, nb, j->k, j->alpha, beta);
#else
        cblas_dgemm(CblasRowMajor, a.trans ? CblasTrans : CblasNoTrans,
                    b.trans ? CblasTrans : CblasNoTrans, (int)mb, (int)nb, (int)j->k, j->alpha,
                    a.data, (int)a.ld, b.data, (int)b.ld, beta, (double *)c, (int)n);
#endif
    }
    if (j->relu)
        for (int64_t i = 0; i < mb; i++)
            relu_rows(j->dtype, c + (size_t)(i * n) * es, nb);
}

/* Rows or columns per block for an (m, n, k) product: a function of the shape only. */
static int64_t gemm_grain(int64_t m, int64_t n, int64_t k, bool *by_rows)
{
    *by_rows = m >= n;
    int64_t dim = *by_rows ? m : n;
    double flops = 2.0 * (double)m * (double)n * (double)k;
    int64_t blocks = 1;
    while (blocks < GEMM_MAX_BLOCKS && flops >= (double)(2 * blocks) * GEMM_BLOCK_FLOPS &&
           2 * blocks <= dim / GEMM_ALIGN)
        blocks *= 2;
    if (blocks == 1)
        return dim;
    int64_t grain = (dim + blocks - 1) / blocks;
    return (grain + GEMM_ALIGN - 1) / GEMM_ALIGN * GEMM_ALIGN;
}

/*
 * Independent products run as one parallel region: each keeps its own shape-fixed blocks
 * (so its bits are those of a lone call), and the threads claim the blocks of all of them
 * from one counter.  A Linear backward's dX and dW thus share one wake-up, and two small
 * products of one block each still run on two threads.
 */
#define GEMM_MAX_TASKS 4
/* Below this many flops in all, a set runs on the calling thread: waking a worker would
   cost more than it saves. */
#define GEMM_SET_MIN_FLOPS (2LL << 20)

typedef struct gemm_set {
    gemm_job_t job[GEMM_MAX_TASKS];
    int64_t grain[GEMM_MAX_TASKS];
    int64_t first[GEMM_MAX_TASKS + 1]; /* job i owns the set's blocks [first[i], first[i + 1]) */
    int njobs;
    double flops;
} gemm_set_t;

static void gemm_set_add(gemm_set_t *s, const gemm_job_t *j)
{
    int i = s->njobs++;
    s->job[i] = *j;
    s->grain[i] = gemm_grain(j->m, j->n, j->k, &s->job[i].by_rows);
    int64_t dim = s->job[i].by_rows ? j->m : j->n;
    s->first[i + 1] = s->first[i] + (dim + s->grain[i] - 1) / s->grain[i];
    s->flops += 2.0 * (double)j->m * (double)j->n * (double)j->k;
}

static void gemm_set_blocks(void *ctx, int64_t begin, int64_t end)
{
    const gemm_set_t *s = ctx;
    for (int64_t k = begin; k < end; k++) {
        int i = 0;
        while (k >= s->first[i + 1])
            i++;
        const gemm_job_t *j = &s->job[i];
        int64_t dim = j->by_rows ? j->m : j->n, b = (k - s->first[i]) * s->grain[i];
        int64_t e = b + s->grain[i] < dim ? b + s->grain[i] : dim;
        if (j->by_rows)
            gemm_block(j, b, e, 0, j->n);
        else
            gemm_block(j, 0, j->m, b, e);
    }
}

static void gemm_set_run(gemm_set_t *s)
{
#ifndef LUNET_NO_BLAS
    (void)gemm_builtin_f32; /* compiled and checked in every build */
    (void)gemm_builtin_f64;
#endif
    lunet_parallel_ready(); /* BLAS single-threaded before its first call */
    int64_t nblocks = s->first[s->njobs];
    if (s->njobs > 1 && s->flops < (double)GEMM_SET_MIN_FLOPS)
        gemm_set_blocks(s, 0, nblocks);
    else
        lunet_parallel_for(nblocks, 1, gemm_set_blocks, s);
}

/* Runs a job with k > 0 (or a beta-only update) over the pool, in shape-fixed blocks. */
static void gemm_run(const gemm_job_t *j)
{
    if (j->m == 0 || j->n == 0)
        return;
    gemm_set_t s = {.njobs = 0};
    gemm_set_add(&s, j);
    gemm_set_run(&s);
}

/* The BLAS view of a and b for a job, cloning an operand that has no row-major layout (the
   clone goes to *keep_a / *keep_b, which the caller releases). */
static lunet_status_t gemm_operands(gemm_job_t *j, lunet_tensor_t *a, lunet_tensor_t *b,
                                    lunet_tensor_t **keep_a, lunet_tensor_t **keep_b)
{
    lunet_status_t st = LUNET_OK;
    bool was = lunet_set_grad_enabled(false);
    if (!blas_layout(a, &j->a) && !(st = lunet_tensor_clone(keep_a, a)))
        blas_layout(*keep_a, &j->a);
    if (!st && !blas_layout(b, &j->b) && !(st = lunet_tensor_clone(keep_b, b)))
        blas_layout(*keep_b, &j->b);
    lunet_set_grad_enabled(was);
    return st;
}

/* For the AVX-512 kernel's c = a @ b^T split in blocks of c's columns: a^T packed once for
   all the blocks (into *keep, which the caller releases).  Blocks of c's rows share nothing
   of a: each packs its own rows, 64 at a time, into a k x 64 scratch (sgemm.c), so a large
   batch (the test set's 1000 rows) needs no k x M copy. */
static void gemm_pack(gemm_job_t *j, lunet_tensor_t **keep)
{
#if !defined(LUNET_NO_BLAS) && !defined(LUNET_BLAS_DNNL)
    j->avx512 = j->dtype == LUNET_DTYPE_FLOAT32 &&
                lunet_sgemm_choose(j->a.trans, j->b.trans, j->m, j->n, j->k, j->alpha, j->beta,
                                   j->bias || j->relu) == LUNET_SGEMM_TILES;
    bool by_rows;
    gemm_grain(j->m, j->n, j->k, &by_rows);
    if (!j->avx512 || !j->b.trans || j->a.trans || by_rows)
        return;
    int64_t shape[2] = {j->k, lunet_sgemm_pack_ld(j->m)};
    if (lunet_tensor_empty(keep, LUNET_DTYPE_FLOAT32, 2, shape) != LUNET_OK)
        return;
    j->ldp = shape[1];
    j->packed = lunet_tensor_data(*keep);
    lunet_sgemm_pack(lunet_tensor_data(*keep), j->a.data, j->a.ld, j->m, j->k);
#else
    (void)j, (void)keep;
#endif
}

/* c (M, N <= 16) = a @ b by sgemm.c's narrow kernels, when the chooser picks them for the
   job's shape (they read a in place, unpacked, and split their own rows over the pool);
   false: not taken, nothing written. */
static bool gemm_narrow(const gemm_job_t *j)
{
    return j->dtype == LUNET_DTYPE_FLOAT32 &&
           lunet_sgemm_choose(j->a.trans, j->b.trans, j->m, j->n, j->k, j->alpha, j->beta,
                              j->bias || j->relu) == LUNET_SGEMM_NARROW &&
           lunet_sgemm_narrow(j->a.trans, j->m, j->n, j->k, j->a.data, j->a.ld, j->b.data, j->b.ld,
                              (float *)(void *)j->c);
}

/* c (M, N) contiguous = [relu](alpha * a @ b + beta * c), or with bias (N):
   [relu](alpha * a @ b + bias). */
static lunet_status_t gemm_ex(lunet_tensor_t *c, lunet_tensor_t *a, lunet_tensor_t *b, double alpha,
                              double beta, const lunet_tensor_t *bias, bool relu)
{
    int64_t m = a->shape[0], k = a->shape[1], n = b->shape[1];
    if (!lunet_dtype_is_floating(c->dtype)) {
        gemm_generic(a, b, c, alpha, beta);
        return LUNET_OK;
    }
    if (m == 0 || n == 0)
        return LUNET_OK;
    lunet_tensor_t *ac = NULL, *bc = NULL, *packed = NULL;
    gemm_job_t j = {.c = lunet_tensor_data(c),
                    .m = m,
                    .n = n,
                    .k = k,
                    .alpha = alpha,
                    .beta = beta,
                    .dtype = c->dtype,
                    .bias = bias ? lunet_tensor_data(bias) : NULL,
                    .relu = relu};
    bool was = lunet_set_grad_enabled(false);
    lunet_status_t st = gemm_operands(&j, a, b, &ac, &bc);
    if (st)
        goto done;
    if (gemm_narrow(&j))
        goto done;
    if (k == 0) {
        /* empty inner dim: the product is zero, so c is beta * c or the bias rows */
        size_t es = lunet_dtype_size(c->dtype);
        char *pc = lunet_tensor_data(c);
        if (bias) {
            for (int64_t i = 0; i < m; i++)
                memcpy(pc + (size_t)(i * n) * es, j.bias, (size_t)n * es);
        } else {
            lunet_tensor_t *z;
            if ((st = lunet_tensor_scalar(&z, c->dtype, beta, false)))
                goto done;
            st = lunet_tensor_binary_(c, LUNET_BINARY_MUL, z);
            lunet_tensor_release(z);
        }
        if (!st && relu)
            relu_rows(c->dtype, pc, m * n);
        goto done;
    }
    gemm_pack(&j, &packed);
    gemm_run(&j);
done:
    lunet_set_grad_enabled(was);
    lunet_tensor_release(ac);
    lunet_tensor_release(bc);
    lunet_tensor_release(packed);
    return st;
}

lunet_status_t lunet_gemm_tasks(int n, const lunet_gemm_task_t *t)
{
    lunet_tensor_t *keep[3 * GEMM_MAX_TASKS] = {NULL};
    gemm_set_t s = {.njobs = 0};
    lunet_status_t st = LUNET_OK;
    if (n > GEMM_MAX_TASKS)
        return lunet_error_set(LUNET_STATUS_RUNTIME, "gemm_tasks: at most %d products, got %d",
                               GEMM_MAX_TASKS, n);
    for (int i = 0; i < n && !st; i++) {
        lunet_tensor_t *c = t[i].c, *a = t[i].a, *b = t[i].b;
        int64_t m = a->shape[0], k = a->shape[1], nn = b->shape[1];
        if (!lunet_dtype_is_floating(c->dtype) || k == 0) {
            st = gemm_ex(c, a, b, t[i].alpha, t[i].beta, NULL, false); /* now, on its own */
            continue;
        }
        if (m == 0 || nn == 0)
            continue;
        gemm_job_t j = {.c = lunet_tensor_data(c),
                        .m = m,
                        .n = nn,
                        .k = k,
                        .alpha = t[i].alpha,
                        .beta = t[i].beta,
                        .dtype = c->dtype};
        /* a narrow product (a Linear with at most 16 inputs) runs now, on its own */
        if (!(st = gemm_operands(&j, a, b, &keep[3 * i], &keep[3 * i + 1])) && !gemm_narrow(&j)) {
            gemm_pack(&j, &keep[3 * i + 2]);
            gemm_set_add(&s, &j);
        }
    }
    if (!st && s.njobs)
        gemm_set_run(&s);
    for (int i = 0; i < 3 * GEMM_MAX_TASKS; i++)
        lunet_tensor_release(keep[i]);
    return st;
}

/* Raw-buffer GEMM for kernels that keep their own scratch (conv.c): c (m, n) row-major with
   leading dimension n = alpha * op(a) @ op(b) + beta * c, op = transpose when ta / tb.
   Split over the pool like every product (a call from inside a block runs serially). */
static void gemm_raw(lunet_dtype_t dt, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                     double alpha, const void *a, int64_t lda, const void *b, int64_t ldb,
                     double beta, void *c)
{
    gemm_job_t j = {.a = {a, ta, lda},
                    .b = {b, tb, ldb},
                    .c = c,
                    .m = m,
                    .n = n,
                    .k = k,
                    .alpha = alpha,
                    .beta = beta,
                    .dtype = dt};
    gemm_run(&j);
}

void lunet_gemm_f32(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                    int64_t lda, const float *b, int64_t ldb, float beta, float *c)
{
    gemm_raw(LUNET_DTYPE_FLOAT32, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c);
}

void lunet_gemm_f64(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha,
                    const double *a, int64_t lda, const double *b, int64_t ldb, double beta,
                    double *c)
{
    gemm_raw(LUNET_DTYPE_FLOAT64, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c);
}

static lunet_status_t gemm(lunet_tensor_t *c, lunet_tensor_t *a, lunet_tensor_t *b, double alpha,
                           double beta)
{
    return gemm_ex(c, a, b, alpha, beta, NULL, false);
}

lunet_status_t lunet_gemm_bias_relu(lunet_tensor_t *c, lunet_tensor_t *a, lunet_tensor_t *b,
                                    const lunet_tensor_t *bias, bool relu)
{
    return gemm_ex(c, a, b, 1.0, 0.0, bias, relu);
}

static lunet_status_t check_mm(const char *op, const lunet_tensor_t *a, const lunet_tensor_t *b)
{
    if (a->ndim != 2 || b->ndim != 2) /* PyTorch's "self must be a matrix", and the shapes */
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "%s: %s must be a matrix (expected 2-D tensors, got %dD and %dD)",
                               op, a->ndim != 2 ? "self" : "mat2", a->ndim, b->ndim);
    if (a->shape[1] != b->shape[0])
        return lunet_error_set(
            LUNET_STATUS_RUNTIME,
            "%s: mat1 and mat2 shapes cannot be multiplied (%lldx%lld and %lldx%lld)", op,
            (long long)a->shape[0], (long long)a->shape[1], (long long)b->shape[0],
            (long long)b->shape[1]);
    if (a->dtype != b->dtype)
        return lunet_error_set(LUNET_STATUS_RUNTIME, "%s: expected scalar type %s but found %s", op,
                               lunet_dtype_torch_name(a->dtype), lunet_dtype_torch_name(b->dtype));
    if (a->dtype == LUNET_DTYPE_BOOL)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "%s: \"addmm_impl_cpu_\" not implemented for 'Bool'", op);
    return LUNET_OK;
}

lunet_status_t lunet_tensor_mm(lunet_tensor_t **out, lunet_tensor_t *a, lunet_tensor_t *b)
{
    lunet_status_t st = check_mm("mm", a, b);
    if (st)
        return st;
    int64_t shape[2] = {a->shape[0], b->shape[1]};
    lunet_tensor_t *c;
    if ((st = lunet_tensor_empty(&c, a->dtype, 2, shape)))
        return st;
    if ((st = gemm(c, a, b, 1.0, 0.0)))
        goto fail;
    lunet_tensor_t *in[2] = {a, b};
    return lunet_autograd_finish(out, c, LUNET_OP_MM, 2, in, NULL, NULL);
fail:
    lunet_tensor_release(c);
    return st;
}

lunet_status_t lunet_tensor_addmm(lunet_tensor_t **out, lunet_tensor_t *bias, lunet_tensor_t *a,
                                  lunet_tensor_t *b, double beta, double alpha)
{
    lunet_status_t st = check_mm("addmm", a, b);
    if (st)
        return st;
    int64_t shape[2] = {a->shape[0], b->shape[1]};
    lunet_tensor_t *c, *e = NULL;
    if ((st = lunet_tensor_empty(&c, a->dtype, 2, shape)))
        return st;
    bool was = lunet_set_grad_enabled(false);
    st = lunet_tensor_expand(&e, bias, 2, shape);
    lunet_set_grad_enabled(was);
    if (st) {
        lunet_tensor_release(c);
        return st;
    }
    if (beta != 0)
        lunet_copy_cast(c, e);
    lunet_tensor_release(e);
    if ((st = gemm(c, a, b, alpha, beta)))
        goto fail;
    lunet_tensor_t *in[3] = {bias, a, b};
    lunet_op_args_t args = {.d = {beta, alpha}};
    return lunet_autograd_finish(out, c, LUNET_OP_ADDMM, 3, in, NULL, &args);
fail:
    lunet_tensor_release(c);
    return st;
}

lunet_status_t lunet_tensor_addmm_(lunet_tensor_t *c, lunet_tensor_t *a, lunet_tensor_t *b,
                                   double beta, double alpha)
{
    lunet_status_t st = check_mm("addmm_", a, b);
    if (st)
        return st;
    if (c->ndim != 2 || c->shape[0] != a->shape[0] || c->shape[1] != b->shape[1] ||
        c->dtype != a->dtype || !lunet_tensor_is_contiguous(c))
        return lunet_error_set(
            LUNET_STATUS_RUNTIME,
            "addmm_: the output must be a contiguous %s tensor of shape [%lld, %lld]",
            lunet_dtype_name(a->dtype), (long long)a->shape[0], (long long)b->shape[1]);
    if ((st = lunet_autograd_check_inplace(c, "addmm_")))
        return st;
    if (lunet_autograd_needed(a, b))
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "addmm_: in-place products of tensors that require grad are not "
                               "recorded (use addmm, or run under no_grad)");
    if ((st = gemm(c, a, b, alpha, beta)))
        return st;
    lunet_tensor_bump_version(c);
    return LUNET_OK;
}

lunet_status_t lunet_tensor_matmul(lunet_tensor_t **out, lunet_tensor_t *a, lunet_tensor_t *b)
{
    lunet_status_t st;
    if (a->ndim == 0 || b->ndim == 0)
        return lunet_error_set(
            LUNET_STATUS_RUNTIME,
            "both arguments to matmul need to be at least 1D, but they are %dD and "
            "%dD",
            a->ndim, b->ndim);
    if (a->ndim <= 2 && b->ndim <= 2) {
        /* 1-D operands become a row (left) or a column (right), squeezed afterwards */
        lunet_tensor_t *a2 = NULL, *b2 = NULL, *c = NULL;
        if (a->ndim == 1 && b->ndim >= 1 && a->shape[0] != b->shape[0])
            return lunet_error_set(LUNET_STATUS_RUNTIME,
                                   b->ndim == 1
                                       ? "inconsistent tensor size, expected tensor [%lld] and "
                                         "src [%lld] to have the same number of elements, but "
                                         "got %lld and %lld elements respectively"
                                       : "size mismatch, got %lld, %lldx%lld,%lld",
                                   (long long)a->shape[0], (long long)b->shape[0],
                                   (long long)a->shape[0], (long long)b->shape[0]);
        if (a->ndim == 2 && b->ndim == 1 && a->shape[1] != b->shape[0])
            return lunet_error_set(LUNET_STATUS_RUNTIME, "size mismatch, got %lld, %lldx%lld,%lld",
                                   (long long)a->shape[0], (long long)a->shape[0],
                                   (long long)a->shape[1], (long long)b->shape[0]);
        if ((st = a->ndim == 1 ? lunet_tensor_unsqueeze(&a2, a, 0)
                               : (lunet_tensor_retain(a), a2 = a, LUNET_OK)))
            return st;
        if ((st = b->ndim == 1 ? lunet_tensor_unsqueeze(&b2, b, 1)
                               : (lunet_tensor_retain(b), b2 = b, LUNET_OK))) {
            lunet_tensor_release(a2);
            return st;
        }
        st = lunet_tensor_mm(&c, a2, b2);
        lunet_tensor_release(a2);
        lunet_tensor_release(b2);
        if (st)
            return st;
        if (a->ndim == 2 && b->ndim == 2) {
            *out = c;
            return LUNET_OK;
        }
        int64_t shape[1] = {a->ndim == 2 ? a->shape[0] : b->ndim == 2 ? b->shape[1] : 0};
        st = lunet_tensor_reshape(out, c, a->ndim == 1 && b->ndim == 1 ? 0 : 1, shape);
        lunet_tensor_release(c);
        return st;
    }
    if (b->ndim <= 2 && a->ndim >= 3) {
        /* fold a's leading dims into rows: (..., n, k) @ (k, m) */
        int64_t k = a->shape[a->ndim - 1], rows = a->numel / (k ? k : 1);
        int64_t s2[2] = {k ? rows : lunet_shape_numel(a->ndim - 1, a->shape), k};
        lunet_tensor_t *a2, *c;
        if ((st = lunet_tensor_reshape(&a2, a, 2, s2)))
            return st;
        st = lunet_tensor_matmul(&c, a2, b);
        lunet_tensor_release(a2);
        if (st)
            return st;
        int64_t shape[LUNET_MAX_DIMS];
        memcpy(shape, a->shape, sizeof(int64_t) * (size_t)(a->ndim - 1));
        int nd = a->ndim - 1;
        if (b->ndim == 2)
            shape[nd++] = b->shape[1];
        st = lunet_tensor_reshape(out, c, nd, shape);
        lunet_tensor_release(c);
        return st;
    }
    /* batched: broadcast the batch dims, one gemm per batch */
    lunet_tensor_t *a3 = NULL, *b3 = NULL, *r = NULL;
    if (a->ndim == 1 && (st = lunet_tensor_unsqueeze(&a3, a, 0)))
        return st;
    if (b->ndim == 1 && (st = lunet_tensor_unsqueeze(&b3, b, 1))) {
        lunet_tensor_release(a3);
        return st;
    }
    lunet_tensor_t *A = a3 ? a3 : a, *B = b3 ? b3 : b;
    int64_t n = A->shape[A->ndim - 2], k = A->shape[A->ndim - 1];
    int64_t k2 = B->shape[B->ndim - 2], m = B->shape[B->ndim - 1];
    int bnd;
    int64_t bshape[LUNET_MAX_DIMS];
    if (k != k2) {
        st = lunet_error_set(
            LUNET_STATUS_RUNTIME,
            "matmul: mat1 and mat2 shapes cannot be multiplied (%lldx%lld and %lldx%lld)",
            (long long)n, (long long)k, (long long)k2, (long long)m);
        goto done;
    }
    if ((st = lunet_broadcast_shape(&bnd, bshape, A->ndim - 2, A->shape, B->ndim - 2, B->shape)))
        goto done;
    if (A->dtype != B->dtype) {
        st = lunet_error_set(LUNET_STATUS_RUNTIME, "matmul: expected scalar type %s but found %s",
                             lunet_dtype_torch_name(A->dtype), lunet_dtype_torch_name(B->dtype));
        goto done;
    }
    int64_t rshape[LUNET_MAX_DIMS];
    memcpy(rshape, bshape, sizeof(int64_t) * (size_t)bnd);
    rshape[bnd] = n;
    rshape[bnd + 1] = m;
    if ((st = lunet_tensor_empty(&r, A->dtype, bnd + 2, rshape)))
        goto done;
    int64_t nb = lunet_shape_numel(bnd, bshape);
    int64_t coord[LUNET_MAX_DIMS] = {0};
    for (int64_t i = 0; i < nb; i++) {
        /* 2-D slices of A, B and r for this batch position */
        lunet_tensor_t sa = *A, sb = *B, sr = *r;
        sa.ndim = sb.ndim = sr.ndim = 2;
        sa.offset = A->offset;
        sb.offset = B->offset;
        sr.offset = r->offset;
        for (int d = 0; d < bnd; d++) {
            int da = d - (bnd - (A->ndim - 2)), db = d - (bnd - (B->ndim - 2));
            if (da >= 0 && A->shape[da] > 1)
                sa.offset += coord[d] * A->strides[da];
            if (db >= 0 && B->shape[db] > 1)
                sb.offset += coord[d] * B->strides[db];
            sr.offset += coord[d] * r->strides[d];
        }
        sa.shape[0] = n, sa.shape[1] = k, sa.strides[0] = A->strides[A->ndim - 2],
        sa.strides[1] = A->strides[A->ndim - 1];
        sb.shape[0] = k, sb.shape[1] = m, sb.strides[0] = B->strides[B->ndim - 2],
        sb.strides[1] = B->strides[B->ndim - 1];
        sr.shape[0] = n, sr.shape[1] = m, sr.strides[0] = m, sr.strides[1] = 1;
        sa.numel = n * k, sb.numel = k * m, sr.numel = n * m;
        if ((st = gemm(&sr, &sa, &sb, 1.0, 0.0)))
            goto done;
        for (int d = bnd - 1; d >= 0; d--) {
            if (++coord[d] < bshape[d])
                break;
            coord[d] = 0;
        }
    }
    if (lunet_autograd_needed(A, B)) {
        lunet_tensor_t *in[2] = {A, B};
        if ((st = lunet_autograd_record(r, LUNET_OP_BMM, 2, in, NULL, NULL)))
            goto done;
    }
    if (a->ndim == 1 || b->ndim == 1) {
        int64_t shape[LUNET_MAX_DIMS];
        int nd = 0;
        for (int d = 0; d < bnd; d++)
            shape[nd++] = bshape[d];
        if (a->ndim != 1)
            shape[nd++] = n;
        if (b->ndim != 1)
            shape[nd++] = m;
        st = lunet_tensor_reshape(out, r, nd, shape);
        goto done;
    }
    *out = r;
    r = NULL;
done:
    lunet_tensor_release(a3);
    lunet_tensor_release(b3);
    lunet_tensor_release(r);
    return st;
}
