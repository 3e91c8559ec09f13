/*
 * internal.h - shared by the runtime's own files; not installed.
 */
#ifndef LUNET_INTERNAL_H
#define LUNET_INTERNAL_H

#include "lunet.h"

#include <stdarg.h>
#include <stdio.h>

#define LUNET_ALIGN 64

/* Free lists of tensors, nodes and data blocks; -DLUNET_NO_POOL turns them off so that
   valgrind and ASan see every allocation's true owner. */
#ifdef LUNET_NO_POOL
#define LUNET_POOLING 0
#else
#define LUNET_POOLING 1
#endif

/* Hot kernels are built twice, with and without AVX2+FMA, and the CPU picks one at load
   time: fmaf is then one instruction instead of a library call per element, and loops run
   8 floats wide.  Results are the same either way (FMA rounds once by definition). */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define LUNET_FMA_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define LUNET_FMA_CLONES
#endif

struct lunet_storage {
    void *data;
    size_t nbytes;
    int refcount;
    uint32_t version; /* bumped by every in-place write; autograd checks it */
    void (*release_fn)(void *data, void *ctx); /* for wrapped host buffers */
    void *release_ctx;
    bool wrapped;
    bool slab; /* made by slab.c: the gaps between its views are zero padding no view sees */
    /* a slab's members (slab.c): their starts (elements, ascending) and a version each, so
       that writing one parameter does not look like writing the others of its slab */
    int nmembers;
    int64_t *member_start;
    uint32_t *member_version;
};

/* ---- error.c */
/* "[2, 3]" into buf (for messages). */
const char *lunet_shape_str(char *buf, size_t n, int ndim, const int64_t *shape);
#define LUNET_SHAPE_BUF 256

/* ---- atomic_file.c: the one writer of files (see its design note).  open, write (or
   write to .fd directly), then commit (which always closes) or abort. */
typedef struct lunet_afile {
    int fd;
    const char *what; /* the operation, for messages */
    const char *path;
    char *dir;
    char *tmp;    /* the temporary's name once it has one */
    bool unnamed; /* an O_TMPFILE, linked at commit */
    bool named;   /* tmp exists on disk */
} lunet_afile_t;
LUNET_MUST_CHECK lunet_status_t lunet_afile_open(lunet_afile_t *f, const char *what,
                                                 const char *path);
LUNET_MUST_CHECK lunet_status_t lunet_afile_write(lunet_afile_t *f, const void *data, size_t n);
LUNET_MUST_CHECK lunet_status_t lunet_afile_commit(lunet_afile_t *f);
void lunet_afile_abort(lunet_afile_t *f);

/* ---- storage.c: a caching allocator, so a steady training loop does not call malloc. */
LUNET_MUST_CHECK lunet_status_t lunet_storage_new(lunet_storage_t **out, size_t nbytes);
LUNET_MUST_CHECK lunet_status_t lunet_storage_wrap(lunet_storage_t **out, void *data, size_t nbytes,
                                                   void (*release_fn)(void *, void *), void *ctx);
void lunet_storage_retain(lunet_storage_t *s);
void lunet_storage_release(lunet_storage_t *s);

/* Per-thread free lists of fixed-size objects (tensor structs, autograd nodes, storage
   headers): get pops one or mallocs size bytes, put keeps p or frees it. */
typedef enum lunet_pool_kind {
    LUNET_POOL_STORAGE = 0,
    LUNET_POOL_TENSOR,
    LUNET_POOL_NODE,
    LUNET_POOL_COUNT
} lunet_pool_kind_t;
void *lunet_pool_get(lunet_pool_kind_t kind, size_t size);
void lunet_pool_put(lunet_pool_kind_t kind, void *p);

/* ---- tensor.c */
/* A tensor struct (refcount 1, no storage) from the struct pool. */
lunet_tensor_t *lunet_tensor_alloc(void);
/* t converted to dt without recording autograd (a new reference; t itself when it already
   has dt; a wrapped number stays one). */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_convert(lunet_tensor_t **out, lunet_tensor_t *t,
                                                     lunet_dtype_t dt);
/* A new contiguous tensor with the shape and dtype of t. */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_empty_like(lunet_tensor_t **out,
                                                        const lunet_tensor_t *t, lunet_dtype_t dt);
/* out = a view of t's storage with the given geometry (retains the storage). */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_make_view(lunet_tensor_t **out, lunet_tensor_t *t,
                                                       int ndim, const int64_t *shape,
                                                       const int64_t *strides, int64_t offset);
void lunet_tensor_set_contiguous_strides(lunet_tensor_t *t);
/* The element count of a shape every tensor already satisfies (no overflow check). */
int64_t lunet_shape_numel(int ndim, const int64_t *shape);
/* The element count of a shape not yet checked, into *numel; false when it overflows (the
   running product, as PyTorch checks it) or when the product of the non-zero sizes times
   itemsize does not fit int64 (which keeps every stride and byte offset exact). */
bool lunet_shape_numel_checked(int ndim, const int64_t *shape, size_t itemsize, int64_t *numel);
/*
 * int64 arithmetic wraps modulo 2^64, as PyTorch's does on x86 (signed overflow is UB in C,
 * so these go through uint64).  Float-to-int64 conversion of a value outside the int64 range
 * (or NaN) gives INT64_MIN, the x86 result PyTorch shows.
 */
static inline int64_t lunet_i64_add(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a + (uint64_t)b);
}
static inline int64_t lunet_i64_sub(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a - (uint64_t)b);
}
static inline int64_t lunet_i64_mul(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a * (uint64_t)b);
}
static inline int64_t lunet_f64_to_i64(double v)
{
    return v >= -0x1p63 && v < 0x1p63 ? (int64_t)v : INT64_MIN;
}
/* The same conversion, saturating instead (for bounds such as clamp's). */
static inline int64_t lunet_f64_to_i64_sat(double v)
{
    return v >= 0x1p63 ? INT64_MAX : v >= -0x1p63 ? (int64_t)v : v < 0 ? INT64_MIN : 0;
}

/* a * b and a + b wrapping as two's complement, for the strides and offsets of views of
   empty tensors (never used to reach memory; PyTorch wraps them the same way). */
static inline int64_t lunet_wrap_mul(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a * (uint64_t)b);
}
static inline int64_t lunet_wrap_add(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a + (uint64_t)b);
}
bool lunet_shape_equal(int na, const int64_t *a, int nb, const int64_t *b);
/* v wrapped into [0, n) (n = 0 counts as 1), a negative v counting from the end, or PyTorch's
   "Dimension out of range" message: lunet_dim_wrap's rule, also for narrow's start. */
LUNET_MUST_CHECK lunet_status_t lunet_wrap_position(int64_t *out, int64_t v, int64_t n);
/* Releases each of the n tensors of ts (NULL ones are skipped; ts may be NULL). */
static inline void lunet_tensors_release(size_t n, lunet_tensor_t *const *ts)
{
    for (size_t i = 0; ts && i < n; i++)
        lunet_tensor_release(ts[i]);
}
/* A float32 row summed in double by four interleaved accumulators, combined as
   (a0 + a1) + (a2 + a3): the order of long float32 sums (reduce.c) and of softmax's
   denominator (softmax.c). */
static inline double lunet_sum4_f32(const float *x, int64_t n)
{
    double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
        a0 += x[j];
        a1 += x[j + 1];
        a2 += x[j + 2];
        a3 += x[j + 3];
    }
    for (; j < n; j++)
        a0 += x[j];
    return (a0 + a1) + (a2 + a3);
}
/* PyTorch's check when a Python int becomes an element of a dt tensor (fill_, masked_fill,
   a uint8 clamp's bounds): c10's overflows<uint8_t> lets -255..255 through (negatives wrap),
   beyond that "value cannot be converted to type uint8_t without overflow"; other dtypes
   take any int. */
LUNET_MUST_CHECK lunet_status_t lunet_check_int_fits(lunet_dtype_t dt, int64_t v);
/* A 0-d tensor of dt (wrapped: a Python number) holding the float dv, or the int iv when
   is_int, that is about to become an element of a dt tensor (fill_, full, masked_fill), after
   PyTorch's checks: lunet_check_int_fits for an int; a float must be finite and within the
   range of an integer dtype ("value cannot be converted to type ... without overflow"). */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_element_scalar(lunet_tensor_t **out, lunet_dtype_t dt,
                                                            bool is_int, double dv, int64_t iv,
                                                            bool wrapped);
/* The release list of a cleanup (an exit label's, a rule's temporaries): LUNET_RELEASE(a, b, r)
   releases each, the compiler counting them. */
#define LUNET_RELEASE(...)                                                                         \
    lunet_tensors_release(sizeof((lunet_tensor_t *[]){__VA_ARGS__}) / sizeof(lunet_tensor_t *),    \
                          (lunet_tensor_t *[]){__VA_ARGS__})
/* Fails if writing to t would write one memory location twice (expanded tensors). */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_check_writable(const lunet_tensor_t *t);
/* A backward's ending for one gradient: when the caller asked for it (want != NULL), *r goes
   to *want and r is cleared; otherwise r stays for the caller's cleanup to release. */
static inline void lunet_hand_out(lunet_tensor_t **want, lunet_tensor_t **r)
{
    if (want) {
        *want = *r;
        *r = NULL;
    }
}
/* Fails, with PyTorch's message, when an in-place op's output and input share part of their
   memory but are not the same elements (x[1:].add_(x[:-1])): the result would depend on the
   order the elements are visited in, and so on the thread count. */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_check_no_partial_overlap(const lunet_tensor_t *out,
                                                                      const lunet_tensor_t *in);
/* Fails, with PyTorch's message (after prefix), unless `in` broadcasts to out's shape: the
   operand of an in-place op (a.add_(b), a.copy_(b)) cannot grow its output. */
LUNET_MUST_CHECK lunet_status_t lunet_check_broadcast_into(const lunet_tensor_t *out,
                                                           const lunet_tensor_t *in,
                                                           const char *prefix);
/* Marks t's storage as modified in place. */
void lunet_tensor_bump_version(lunet_tensor_t *t);
/* A factory's own first fill of the storage it just made is not an in-place write: the new
   tensor starts at version 0, as PyTorch's factories (full, ones, rand, ...) do. */
void lunet_tensor_mark_fresh(lunet_tensor_t *t);
/* What autograd compares: the storage's version, or in a slab the versions of the members t
   covers (summed), so that writing one member leaves the others' versions alone. */
uint32_t lunet_tensor_version(const lunet_tensor_t *t);

/* ---- iter.c: walks up to LUNET_ITER_MAX_OPS strided operands over one shape. */
#define LUNET_ITER_MAX_OPS 4
typedef void (*lunet_loop_fn)(char **data, const int64_t *strides, int64_t n, void *ctx);
typedef struct lunet_iter {
    int ndim;
    int nops;
    int64_t shape[LUNET_MAX_DIMS];
    int64_t strides[LUNET_ITER_MAX_OPS][LUNET_MAX_DIMS]; /* bytes; 0 on broadcast dims */
    char *data[LUNET_ITER_MAX_OPS];
} lunet_iter_t;
void lunet_iter_init(lunet_iter_t *it, int ndim, const int64_t *shape);
/* Adds t, broadcast to the iteration shape (t must be broadcastable to it). */
void lunet_iter_add(lunet_iter_t *it, const lunet_tensor_t *t);
/* Calls fn once per innermost run, after merging dims that are contiguous for every op. */
void lunet_iter_run(lunet_iter_t *it, lunet_loop_fn fn, void *ctx);
/* The same for a kernel whose every element depends only on the same element of its
   operands (element-wise math, never a reduction): a long one-dimensional run is split into
   64K-element blocks over the worker pool (the same bits on any thread count). */
void lunet_iter_run_elementwise(lunet_iter_t *it, lunet_loop_fn fn, void *ctx);

/* ---- elementwise helpers shared with other files */
/* Copies src converted into dst (same shape after broadcasting src). */
void lunet_copy_cast(lunet_tensor_t *dst, const lunet_tensor_t *src);

/* ---- matmul.c: GEMM on raw buffers, c (m, n) contiguous = alpha op(a) op(b) + beta c */
void lunet_gemm_f32(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                    int64_t lda, const float *b, int64_t ldb, float beta, float *c);
void lunet_gemm_f64(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha,
                    const double *a, int64_t lda, const double *b, int64_t ldb, double beta,
                    double *c);

/* ---- sgemm.c: Lunet's own float32 GEMM kernels (matmul.c asks lunet_sgemm_choose).
   Which path a float32 product c (m, n) = alpha op(a) op(b) + beta c [+ bias, relu:
   epilogue] takes, a function of the shape (the same on any thread count): BLAS, the
   AVX-512 tiles or the narrow kernels (n <= 16). */
typedef enum lunet_sgemm_kind {
    LUNET_SGEMM_BLAS = 0,
    LUNET_SGEMM_TILES,
    LUNET_SGEMM_NARROW
} lunet_sgemm_kind_t;
lunet_sgemm_kind_t lunet_sgemm_choose(bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                                      double alpha, double beta, bool epilogue);
bool lunet_sgemm_tiles_available(void);
/* The tiles: c (m, n), ldc = alpha op(a) op(b) + beta c; false when they do not run here
   (no AVX-512F, LUNET_SGEMM=blas, alpha = 0, or no memory for the scratch below): the
   caller then uses BLAS.  packed (b transposed, a not): a^T (k, ldp) from lunet_sgemm_pack,
   already offset to the block's first row of a; NULL: a is packed here, 64 rows at a time
   into a k x 64 scratch (the same bits).  The epilogue, applied to each tile while
   it is in registers: with bias (n), c = alpha * sum + bias (the bits of a c preloaded with
   the bias and beta = 1), then relu when asked. */
bool lunet_sgemm_tiles(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                       const float *a, int64_t lda, const float *b, int64_t ldb,
                       const float *packed, int64_t ldp, float beta, float *c, int64_t ldc,
                       const float *bias, bool relu);
/* p (k, lunet_sgemm_pack_ld(m)) = a (m, k)^T, the padding columns zero */
int64_t lunet_sgemm_pack_ld(int64_t m);
void lunet_sgemm_pack(float *p, const float *a, int64_t lda, int64_t m, int64_t k);
/* The narrow kernels: c (m, n <= 16) contiguous = op(a) @ b, split over the pool; false
   when this CPU has no kernel for it (no FMA) or b^T would not fit its stack buffer, and
   nothing was written.  _at caps the instruction set (1 AVX2, 2 AVX-512) for tests. */
bool lunet_sgemm_narrow(bool ta, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                        const float *b, int64_t ldb, float *c);
bool lunet_sgemm_narrow_at(int level, bool ta, int64_t m, int64_t n, int64_t k, const float *a,
                           int64_t lda, const float *b, int64_t ldb, float *c);

/* ---- matmul.c: Linear's forward in one pass per output block (nn.c).
   c (M, N) contiguous = [relu](a (M, K) @ b (K, N) + bias (N)); bias contiguous or NULL. */
LUNET_MUST_CHECK lunet_status_t lunet_gemm_bias_relu(lunet_tensor_t *c, lunet_tensor_t *a,
                                                     lunet_tensor_t *b, const lunet_tensor_t *bias,
                                                     bool relu);

/* ---- parallel.c: the pool's one-time settings (OpenBLAS's own threads off), made before
   the first BLAS call; cheap after the first time */
void lunet_parallel_ready(void);

/* ---- matmul.c: independent products as one parallel region (Linear's dX and dW).
   Each task: c (M, N) contiguous float = alpha a (M, K) @ b (K, N) + beta c, with a and b
   any strides (a transposed view costs no copy); c must not overlap another task's
   operands.  Each product keeps the blocks, and so the bits, of a lone call.  At most 4. */
typedef struct lunet_gemm_task {
    lunet_tensor_t *c, *a, *b;
    double alpha, beta;
} lunet_gemm_task_t;
LUNET_MUST_CHECK lunet_status_t lunet_gemm_tasks(int n, const lunet_gemm_task_t *tasks);

/* ---- reduce.c: prod's gradient (autograd_rules.c) from its input x and result y;
   reduced[d] != 0 marks a reduced dim */
LUNET_MUST_CHECK lunet_status_t lunet_prod_backward(lunet_tensor_t **dx, lunet_tensor_t *g,
                                                    lunet_tensor_t *x, lunet_tensor_t *y,
                                                    const int64_t *reduced);

/* ---- softmax.c kernels shared with loss.c (one implementation, so that
 * cross_entropy == nll_loss(log_softmax(x)) bit for bit) */
// x (C) strided -> *m_out = max, returns log(sum exp(x - m)); scratch (2 C) gets exp(x - m)
double lunet_softmax_slice_lse_f32(const float *x, int64_t C, int64_t st, float *scratch,
                                   float *m_out);
double lunet_softmax_slice_lse_f64(const double *x, int64_t C, int64_t st, double *m_out);
// e (n) = exp((x - m) - s), contiguous
void lunet_softmax_exp_f32(float *restrict e, const float *restrict x, int64_t n, float m, float s);

/* ---- slab.c: runs of tensors laid out one after the other in a slab (lunet_slab_pack) */
/* b starts where a ends (rounded up to 64 bytes) in the same slab storage; both contiguous. */
bool lunet_slab_follows(const lunet_tensor_t *a, const lunet_tensor_t *b);
/* Elements from first's start to last's end (last follows first, possibly through others). */
int64_t lunet_slab_span(const lunet_tensor_t *first, const lunet_tensor_t *last);
/* The summed versions of the members t covers, and their bump (t's storage has members). */
uint32_t lunet_slab_version(const lunet_tensor_t *t);
void lunet_slab_bump(const lunet_tensor_t *t);
/* views[0..n): a new zero-filled slab laid out as like[0..n) (a run), one view per tensor. */
LUNET_MUST_CHECK lunet_status_t lunet_slab_like(lunet_tensor_t **views, lunet_tensor_t *const *like,
                                                int n);

/* ---- optim.c: the optimizer object for C hosts (lunet_optimizer_t, lunet.h) holds the
   retained parameters, one state per parameter, a copy of the options, and a kind that says
   how to update with the states and how to release one (SGD_KIND in optim.c, ADAM_KIND in
   adam.c). */
typedef struct lunet_optimizer_kind {
    const char *name; /* "sgd", "adam": in messages */
    size_t state_size, options_size;
    /* one parameter's update, or NULL when update_all steps them all at once */
    lunet_status_t (*update)(lunet_tensor_t *p, void *state, const void *options);
    lunet_status_t (*update_all)(int n, lunet_tensor_t *const *params, void *states,
                                 const void *options);
    void (*clear)(void *state); /* releases what a state holds */
} lunet_optimizer_kind_t;
/* The checks every optimizer's update makes (opt names it in the messages): p floating point
   and contiguous, grad of p's dtype and shape. */
LUNET_MUST_CHECK lunet_status_t lunet_optim_check_param(const char *opt, const lunet_tensor_t *p,
                                                        const lunet_tensor_t *grad);
/* Fails with "<opt>: <what> <dtype> <shape> does not match parameter <dtype> <shape>" unless t
   has p's dtype and shape, and with contiguous, with "<opt>: <what> must be contiguous" unless
   it is. */
LUNET_MUST_CHECK lunet_status_t lunet_optim_check_like(const char *opt, const char *what,
                                                       const lunet_tensor_t *t,
                                                       const lunet_tensor_t *p, bool contiguous);
/* The tensor a step writes (*w): p itself, or a contiguous copy of a floating p rebound to
   strided memory (t.data = w:t()), made without recording autograd.  lunet_optim_param_end
   then writes a copy back when st is LUNET_OK (the same bits), marks p modified, releases
   the copy, and returns st. */
LUNET_MUST_CHECK lunet_status_t lunet_optim_param_begin(lunet_tensor_t **w, lunet_tensor_t *p);
LUNET_MUST_CHECK lunet_status_t lunet_optim_param_end(lunet_tensor_t *p, lunet_tensor_t *w,
                                                      lunet_status_t st);
/* Checks the list (non-empty, distinct floating leaves, PyTorch's messages), then retains it;
   the states start zeroed. */
LUNET_MUST_CHECK lunet_status_t lunet_optimizer_new(lunet_optimizer_t **out,
                                                    const lunet_optimizer_kind_t *kind,
                                                    const void *options, int nparams,
                                                    lunet_tensor_t *const *params);
/* The state of parameter i when opt is of this kind, else NULL (also when i is out of range). */
const void *lunet_optimizer_state(const lunet_optimizer_t *opt, const lunet_optimizer_kind_t *kind,
                                  int i);

#endif
