/*
 * lunet.h - the public C API of the Lunet runtime.
 *
 * Conventions (read these once, they hold for every function below):
 *
 *  - Every fallible function returns a lunet_status_t.  LUNET_OK (0) means success; any
 *    other value means failure, and lunet_error_message() then returns a message naming
 *    the operation and the offending shapes, dtypes, values or file.  The message lives
 *    in a thread-local buffer that the next failing call overwrites.  Nothing here aborts,
 *    exits or prints.  Status-returning functions are declared LUNET_MUST_CHECK
 *    (warn_unused_result): with GCC or Clang, a caller that drops a status gets a warning.
 *  - Results come back through an out-parameter, always the first argument
 *    (lunet_tensor_t **out).  On failure *out is left untouched and nothing leaks.
 *  - Ownership: a function that hands out a tensor gives the caller one reference; drop it
 *    with lunet_tensor_release().  Arguments are borrowed: a function that keeps a tensor
 *    beyond the call (a view, an autograd record) takes its own reference.
 *  - Views (view, transpose, select, narrow, expand, ...) share storage with their base;
 *    storage is refcounted and freed when the last tensor using it is released.
 *  - Positions (dims, indices) are 0-based; negative dims count from the end.
 *  - Integers: int64 arithmetic (add, sub, mul, neg, abs, pow, sum, prod) wraps modulo 2^64
 *    as PyTorch's does on x86; INT64_MIN // -1 is INT64_MIN (PyTorch 1.13 dies of SIGFPE
 *    there) and integer // 0 fails with "ZeroDivisionError".  A float outside the int64
 *    range, or NaN, converts to INT64_MIN (to uint8: 0), PyTorch's x86 result.  Functions
 *    taking a double lose integers beyond 2^53; their _int forms (lunet_tensor_full_int,
 *    fill_int_, masked_fill_int, scalar_int) keep them exact.
 *  - Sizes: every shape, stride, offset and element count is overflow-checked; a size
 *    that does not fit fails with PyTorch's message ("numel: integer multiplication
 *    overflow", "Storage size calculation overflowed with sizes=[...]").
 *  - Threads: separate graphs on separate threads are fine.  A tensor, and everything
 *    reachable from it (its views, its storage, its autograd graph), is used by one thread
 *    at a time; hand it to another thread only with your own synchronisation.  The free
 *    lists of tensor data, tensor structs and autograd nodes are per thread (freed when the
 *    thread exits); error buffers and the grad mode flag are per thread.  The default
 *    generator is shared by the process and locked: concurrent draws from it never corrupt
 *    it (the order in which threads get their numbers is unspecified; see
 *    lunet_generator_lock).  A generator you make yourself is not locked.  The default
 *    dtype is per process: set it before starting threads.
 */
#ifndef LUNET_H
#define LUNET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LUNET_VERSION "0.1.0"
#define LUNET_MAX_DIMS 16

/* ---------------------------------------------------------------- errors -------------- */

typedef enum lunet_status {
    LUNET_OK = 0,
    LUNET_STATUS_RUNTIME, /* PyTorch's RuntimeError */
    LUNET_STATUS_INDEX,   /* IndexError */
    LUNET_STATUS_VALUE,   /* ValueError */
    LUNET_STATUS_TYPE,    /* TypeError */
    LUNET_STATUS_NOMEM,   /* allocation failed */
    LUNET_STATUS_IO,      /* a file could not be read or written */
    LUNET_STATUS_COUNT
} lunet_status_t;

/* On every function returning a status: the compiler flags a caller that drops it. */
#if defined(__GNUC__)
#define LUNET_MUST_CHECK __attribute__((warn_unused_result))
#else
#define LUNET_MUST_CHECK
#endif

/* The message of the last failure on this thread ("" if none). */
const char *lunet_error_message(void);
/* The status of the last failure on this thread. */
lunet_status_t lunet_error_status(void);
/* PyTorch's exception class for a status: "RuntimeError", "IndexError", ... */
const char *lunet_status_name(lunet_status_t st);
/* Set the thread's error (for host code and the bindings); returns st. */
lunet_status_t lunet_error_set(lunet_status_t st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ---------------------------------------------------------------- dtypes -------------- */

typedef enum lunet_dtype {
    LUNET_DTYPE_FLOAT32 = 0,
    LUNET_DTYPE_FLOAT64,
    LUNET_DTYPE_INT64,
    LUNET_DTYPE_UINT8,
    LUNET_DTYPE_BOOL,
    LUNET_DTYPE_COUNT
} lunet_dtype_t;

size_t lunet_dtype_size(lunet_dtype_t dt);
/* "float32", "float64", "int64", "uint8", "bool" */
const char *lunet_dtype_name(lunet_dtype_t dt);
/* PyTorch's scalar type names used in error texts: "Float", "Double", "Long", "Byte", "Bool" */
const char *lunet_dtype_torch_name(lunet_dtype_t dt);
bool lunet_dtype_is_floating(lunet_dtype_t dt);
/* One element at p of dtype dt, read as a double / written from a double (float to integer
   truncates toward zero, as PyTorch's conversion does). */
double lunet_dtype_load(const void *p, lunet_dtype_t dt);
void lunet_dtype_store(void *p, lunet_dtype_t dt, double v);
/* An int64 written as dtype dt, exactly for int64 (a double holds integers exactly only up
   to 2^53); uint8 keeps the low 8 bits, bool is v != 0. */
void lunet_dtype_store_int(void *p, lunet_dtype_t dt, int64_t v);
/* The default floating dtype (float32 unless changed); per process. */
lunet_dtype_t lunet_default_dtype(void);
LUNET_MUST_CHECK lunet_status_t lunet_set_default_dtype(lunet_dtype_t dt);

/* ---------------------------------------------------------------- tensors ------------- */

typedef struct lunet_storage lunet_storage_t;
typedef struct lunet_node lunet_node_t;

/*
 * A tensor: a strided view of a refcounted storage.  Fields are readable by host code;
 * change them only through the API.  Strides and offset count elements, not bytes.
 */
typedef struct lunet_tensor {
    lunet_storage_t *storage;
    lunet_dtype_t dtype;
    int ndim;
    int64_t shape[LUNET_MAX_DIMS];
    int64_t strides[LUNET_MAX_DIMS];
    int64_t offset;
    int64_t numel;
    int refcount;
    /* true for a 0-d tensor made from a Lua/C number: lowest rank in type promotion */
    bool wrapped_number;
    /* autograd */
    bool requires_grad;
    bool retains_grad;         /* a non-leaf asked to keep its grad (lunet_tensor_retain_grad) */
    struct lunet_tensor *grad; /* accumulated gradient (owned), or NULL; set it with
                                  lunet_tensor_set_grad */
    lunet_node_t *grad_fn;     /* the node that made this tensor (owned ref), or NULL */
    /* a packed parameter's place in its gradient slab (owned ref, never shown to users):
       the first gradient backward gives the parameter is copied there (lunet_slab_pack) */
    struct lunet_tensor *grad_home;
} lunet_tensor_t;

/* Creation.  All elements are row-major contiguous and 64-byte aligned. */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_empty(lunet_tensor_t **out, lunet_dtype_t dt, int ndim,
                                                   const int64_t *shape);
LUNET_MUST_CHECK lunet_status_t lunet_tensor_zeros(lunet_tensor_t **out, lunet_dtype_t dt, int ndim,
                                                   const int64_t *shape);
LUNET_MUST_CHECK lunet_status_t lunet_tensor_full(lunet_tensor_t **out, lunet_dtype_t dt, int ndim,
                                                  const int64_t *shape, double value);
/* A 0-d tensor holding a number; wrapped=true marks it as a plain number for promotion. */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_scalar(lunet_tensor_t **out, lunet_dtype_t dt,
                                                    double value, bool wrapped);
/* The integer forms of scalar and full: the value stays exact in an int64 tensor. */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_scalar_int(lunet_tensor_t **out, lunet_dtype_t dt,
                                                        int64_t value, bool wrapped);
LUNET_MUST_CHECK lunet_status_t lunet_tensor_full_int(lunet_tensor_t **out, lunet_dtype_t dt,
                                                      int ndim, const int64_t *shape,
                                                      int64_t value);
/* Copies count values of type dt from data into a new tensor of the given shape. */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_from_data(lunet_tensor_t **out, lunet_dtype_t dt,
                                                       int ndim, const int64_t *shape,
                                                       const void *data);
/*
 * Wraps a host buffer without copying.  The tensor (and every view of it) reads and writes
 * `data` directly; the buffer must stay valid until the last such tensor is released, at
 * which point release_fn(data, ctx) is called (release_fn may be NULL when the host keeps
 * ownership and guarantees the lifetime).  `data` must be aligned for dt.
 */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_wrap(lunet_tensor_t **out, lunet_dtype_t dt, int ndim,
                                                  const int64_t *shape, void *data,
                                                  void (*release_fn)(void *data, void *ctx),
                                                  void *ctx);
LUNET_MUST_CHECK lunet_status_t lunet_tensor_arange(lunet_tensor_t **out, lunet_dtype_t dt,
                                                    double start, double end, double step);
LUNET_MUST_CHECK lunet_status_t lunet_tensor_linspace(lunet_tensor_t **out, lunet_dtype_t dt,
                                                      double start, double end, int64_t steps);
LUNET_MUST_CHECK lunet_status_t lunet_tensor_eye(lunet_tensor_t **out, lunet_dtype_t dt, int64_t n,
                                                 int64_t m);

/*
 * Memory: freed tensor data, tensor structs and autograd nodes are kept for reuse, so a
 * training loop that makes the same shapes every step stops calling malloc after its first
 * step.  The caches are per thread and freed when their thread exits.
 * lunet_memory_reserved() is the bytes held for tensor data by all threads (live + cached);
 * lunet_memory_trim() returns the calling thread's cached blocks to the system.
 */
size_t lunet_memory_reserved(void);
void lunet_memory_trim(void);

void lunet_tensor_retain(lunet_tensor_t *t);
/* Drops one reference; frees the tensor (and its storage, grad, node) at zero. NULL is ok. */
void lunet_tensor_release(lunet_tensor_t *t);

/* Facts. */
bool lunet_tensor_is_contiguous(const lunet_tensor_t *t);
/* Address of the first element (storage base + offset). */
void *lunet_tensor_data(const lunet_tensor_t *t);
/* Element at a flat row-major position, converted to double (any layout). */
double lunet_tensor_get(const lunet_tensor_t *t, int64_t flat_index);
/* Normalise a possibly negative dim for a tensor of ndim dims (0-d counts as 1). */
LUNET_MUST_CHECK lunet_status_t lunet_dim_wrap(int *out, int64_t dim, int ndim);

/* Conversion and copies. */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_to(lunet_tensor_t **out, lunet_tensor_t *t,
                                                lunet_dtype_t dt);
LUNET_MUST_CHECK lunet_status_t lunet_tensor_clone(lunet_tensor_t **out, lunet_tensor_t *t);
LUNET_MUST_CHECK lunet_status_t lunet_tensor_contiguous(lunet_tensor_t **out, lunet_tensor_t *t);
/* A tensor sharing storage, with no autograd history and requires_grad false. */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_detach(lunet_tensor_t **out, lunet_tensor_t *t);
/* Copies src (broadcast to dst's shape, converted to dst's dtype) into dst. */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_copy_(lunet_tensor_t *dst, lunet_tensor_t *src);
LUNET_MUST_CHECK lunet_status_t lunet_tensor_fill_(lunet_tensor_t *dst, double value);
/* fill_ with an integer, exact into int64 tensors (as torch keeps Python ints exact). */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_fill_int_(lunet_tensor_t *dst, int64_t value);

/* Views: results share storage with t. */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_view(lunet_tensor_t **out, lunet_tensor_t *t, int ndim,
                                                  const int64_t *shape);
/* Like view, but copies when the strides do not allow a view. */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_reshape(lunet_tensor_t **out, lunet_tensor_t *t,
                                                     int ndim, const int64_t *shape);
LUNET_MUST_CHECK lunet_status_t lunet_tensor_transpose(lunet_tensor_t **out, lunet_tensor_t *t,
                                                       int64_t d0, int64_t d1);
LUNET_MUST_CHECK lunet_status_t lunet_tensor_permute(lunet_tensor_t **out, lunet_tensor_t *t,
                                                     int ndim, const int64_t *dims);
/* dim = LUNET_ALL_DIMS squeezes every size-1 dim. */
#define LUNET_ALL_DIMS INT64_MIN
LUNET_MUST_CHECK lunet_status_t lunet_tensor_squeeze(lunet_tensor_t **out, lunet_tensor_t *t,
                                                     int64_t dim);
LUNET_MUST_CHECK lunet_status_t lunet_tensor_unsqueeze(lunet_tensor_t **out, lunet_tensor_t *t,
                                                       int64_t dim);
LUNET_MUST_CHECK lunet_status_t lunet_tensor_flatten(lunet_tensor_t **out, lunet_tensor_t *t,
                                                     int64_t start, int64_t end);
LUNET_MUST_CHECK lunet_status_t lunet_tensor_narrow(lunet_tensor_t **out, lunet_tensor_t *t,
                                                    int64_t dim, int64_t start, int64_t length);
LUNET_MUST_CHECK lunet_status_t lunet_tensor_select(lunet_tensor_t **out, lunet_tensor_t *t,
                                                    int64_t dim, int64_t index);
/* shape entries of -1 keep the existing size. */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_expand(lunet_tensor_t **out, lunet_tensor_t *t,
                                                    int ndim, const int64_t *shape);

/* ---------------------------------------------------------------- element-wise -------- */

typedef enum lunet_binary_op {
    LUNET_BINARY_ADD = 0,
    LUNET_BINARY_SUB,
    LUNET_BINARY_MUL,
    LUNET_BINARY_DIV,
    LUNET_BINARY_POW,
    LUNET_BINARY_MAXIMUM,
    LUNET_BINARY_MINIMUM,
    LUNET_BINARY_FLOOR_DIV,
    LUNET_BINARY_EQ,
    LUNET_BINARY_NE,
    LUNET_BINARY_LT,
    LUNET_BINARY_LE,
    LUNET_BINARY_GT,
    LUNET_BINARY_GE,
    LUNET_BINARY_COUNT
} lunet_binary_op_t;

typedef enum lunet_unary_op {
    LUNET_UNARY_NEG = 0,
    LUNET_UNARY_EXP,
    LUNET_UNARY_LOG,
    LUNET_UNARY_SQRT,
    LUNET_UNARY_ABS,
    LUNET_UNARY_SIGMOID,
    LUNET_UNARY_TANH,
    LUNET_UNARY_RELU,
    LUNET_UNARY_COUNT
} lunet_unary_op_t;

/* Name of an op as used in messages ("add", "exp", ...). */
const char *lunet_binary_op_name(lunet_binary_op_t op);
const char *lunet_unary_op_name(lunet_unary_op_t op);

/* out = a op b with broadcasting and PyTorch's type promotion (comparisons give bool). */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_binary(lunet_tensor_t **out, lunet_binary_op_t op,
                                                    lunet_tensor_t *a, lunet_tensor_t *b);
/* a = a op b in place (b broadcast to a's shape; the result must be castable to a's dtype). */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_binary_(lunet_tensor_t *a, lunet_binary_op_t op,
                                                     lunet_tensor_t *b);
/* a + alpha * b (PyTorch's add(b, alpha=)); alpha = 1 is a plain add. */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_add_scaled(lunet_tensor_t **out, lunet_tensor_t *a,
                                                        lunet_tensor_t *b, double alpha);
LUNET_MUST_CHECK lunet_status_t lunet_tensor_unary(lunet_tensor_t **out, lunet_unary_op_t op,
                                                   lunet_tensor_t *x);
LUNET_MUST_CHECK lunet_status_t lunet_tensor_unary_(lunet_tensor_t *x, lunet_unary_op_t op);
/* clamp to [lo, hi]; pass NAN to leave a side open. */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_clamp(lunet_tensor_t **out, lunet_tensor_t *x,
                                                   double lo, double hi);
LUNET_MUST_CHECK lunet_status_t lunet_tensor_clamp_(lunet_tensor_t *x, double lo, double hi);
/* cond ? a : b, all three broadcast together; cond is bool. */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_where(lunet_tensor_t **out, lunet_tensor_t *cond,
                                                   lunet_tensor_t *a, lunet_tensor_t *b);
LUNET_MUST_CHECK lunet_status_t lunet_tensor_masked_fill(lunet_tensor_t **out, lunet_tensor_t *x,
                                                         lunet_tensor_t *mask, double value);
/* masked_fill with an integer, exact into int64 tensors. */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_masked_fill_int(lunet_tensor_t **out,
                                                             lunet_tensor_t *x,
                                                             lunet_tensor_t *mask, int64_t value);
/* The dtype a binary op on a and b computes in (promotion rules of PyTorch). */
lunet_dtype_t lunet_result_dtype(const lunet_tensor_t *a, const lunet_tensor_t *b);
/* The broadcast of shapes a and b into shape (its rank through *ndim); fails with PyTorch's
   "The size of tensor a (..) must match the size of tensor b (..)" when they do not broadcast. */
LUNET_MUST_CHECK lunet_status_t lunet_broadcast_shape(int *ndim, int64_t *shape, int andim,
                                                      const int64_t *ashape, int bndim,
                                                      const int64_t *bshape);

/* ---------------------------------------------------------------- reductions ---------- */

typedef enum lunet_reduce_op {
    LUNET_REDUCE_SUM = 0,
    LUNET_REDUCE_MEAN,
    LUNET_REDUCE_PROD,
    LUNET_REDUCE_MAX,
    LUNET_REDUCE_MIN,
    LUNET_REDUCE_ARGMAX,
    LUNET_REDUCE_ARGMIN,
    LUNET_REDUCE_ALL,
    LUNET_REDUCE_ANY,
    LUNET_REDUCE_COUNT
} lunet_reduce_op_t;

/*
 * Reduce over the dims listed in dims (ndims of them; ndims = 0 reduces everything to a
 * 0-d tensor).  For MAX/MIN over one dim, *indices (if not NULL) receives the int64
 * positions of the first extreme value.
 */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_reduce(lunet_tensor_t **out, lunet_tensor_t **indices,
                                                    lunet_reduce_op_t op, lunet_tensor_t *x,
                                                    int ndims, const int64_t *dims, bool keepdim);

/* ---------------------------------------------------------------- indexing ------------ */

LUNET_MUST_CHECK lunet_status_t lunet_tensor_gather(lunet_tensor_t **out, lunet_tensor_t *x,
                                                    int64_t dim, lunet_tensor_t *index);
LUNET_MUST_CHECK lunet_status_t lunet_tensor_index_select(lunet_tensor_t **out, lunet_tensor_t *x,
                                                          int64_t dim, lunet_tensor_t *index);
/*
 * Advanced indexing x[i0, i1, ...] with one int64 (or bool mask) tensor per leading dim;
 * the index tensors broadcast together.  nidx <= x->ndim.
 */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_index(lunet_tensor_t **out, lunet_tensor_t *x,
                                                   int nidx, lunet_tensor_t **idx);

/* ---------------------------------------------------------------- matmul -------------- */

/* PyTorch's matmul: 1-D/2-D/batched with broadcasting of batch dims. */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_matmul(lunet_tensor_t **out, lunet_tensor_t *a,
                                                    lunet_tensor_t *b);
/* 2-D only: a (n, k) @ b (k, m). */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_mm(lunet_tensor_t **out, lunet_tensor_t *a,
                                                lunet_tensor_t *b);
/* beta * c + alpha * (a @ b), c broadcast to (n, m). */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_addmm(lunet_tensor_t **out, lunet_tensor_t *c,
                                                   lunet_tensor_t *a, lunet_tensor_t *b,
                                                   double beta, double alpha);
/* In place: c (n, m), contiguous, = beta * c + alpha * (a @ b); no autograd record. */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_addmm_(lunet_tensor_t *c, lunet_tensor_t *a,
                                                    lunet_tensor_t *b, double beta, double alpha);
/* "openblas" or "builtin": which GEMM this build uses. */
const char *lunet_blas_name(void);

/* ---------------------------------------------------------------- threads ------------- */

/* The threads large operations use (PyTorch's torch.get_num_threads): the CPUs of the
   process's affinity mask, or LUNET_NUM_THREADS when set, until lunet_set_num_threads. */
int lunet_get_num_threads(void);
/* n >= 1 threads (capped at 256); fails inside a parallel block.  Results are the same bits
   on any thread count. */
LUNET_MUST_CHECK lunet_status_t lunet_set_num_threads(int n);
/* A block of work: the indices [begin, end) of a lunet_parallel_for. */
typedef void (*lunet_parallel_fn)(void *ctx, int64_t begin, int64_t end);
/*
 * Calls fn(ctx, b, min(b + grain, n)) once for every b = 0, grain, 2 grain, ... < n, spread
 * over the runtime's threads (the caller is one of them); returns when all are done.  The
 * blocks depend on n and grain only, never on the thread count: a reduction that keeps one
 * partial per block and combines them in block order gives the same bits on any thread
 * count.  Blocks run in any order, on any thread, and must not call into the runtime's
 * allocator or set errors (prepare memory first).  A call made from inside a block runs
 * serially on that thread.
 */
void lunet_parallel_for(int64_t n, int64_t grain, lunet_parallel_fn fn, void *ctx);

/* ---------------------------------------------------------------- random -------------- */

/* MT19937 with PyTorch's seeding and stream usage (docs/pytorch-parity.md §14). */
typedef struct lunet_generator {
    uint32_t state[624];
    int index;
    uint64_t seed;
    bool has_cached_normal;
    double cached_normal;
} lunet_generator_t;

/* The process-wide default generator (seeded randomly at first use). */
lunet_generator_t *lunet_default_generator(void);
/*
 * The default generator's lock (recursive; a no-op for any other generator).  Every function
 * below that draws from or seeds the default generator takes it for the whole call; hold it
 * yourself to make several calls one uninterrupted sequence, or to read or write its
 * fields directly while other threads may draw.
 */
void lunet_generator_lock(lunet_generator_t *g);
void lunet_generator_unlock(lunet_generator_t *g);
void lunet_generator_seed(lunet_generator_t *g, uint64_t seed);
/* The seed given to the last lunet_generator_seed (torch.initial_seed()). */
uint64_t lunet_generator_initial_seed(const lunet_generator_t *g);
uint32_t lunet_generator_random32(lunet_generator_t *g);
uint64_t lunet_generator_random64(lunet_generator_t *g);
/*
 * In place: x ~ U[a, b) (float dtypes), one draw per element: in row-major order when x is
 * contiguous, else in memory order as PyTorch's TensorIterator does (same for normal_ and
 * random_int_).  g may be NULL for the default generator.
 */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_uniform_(lunet_tensor_t *x, lunet_generator_t *g,
                                                      double a, double b);
/* In place: x ~ N(mean, std). */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_normal_(lunet_tensor_t *x, lunet_generator_t *g,
                                                     double mean, double std);
/* In place: integers uniform in [low, high). */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_random_int_(lunet_tensor_t *x, lunet_generator_t *g,
                                                         int64_t low, int64_t high);
/*
 * New tensors (dt, shape) drawn as uniform_, normal_ and random_int_ draw them (the same
 * stream and errors): torch.rand / uniform_, torch.randn / normal, torch.randint.  They start
 * at version 0 (the fill is not an in-place write), as PyTorch's do.
 */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_uniform(lunet_tensor_t **out, lunet_dtype_t dt,
                                                     int ndim, const int64_t *shape,
                                                     lunet_generator_t *g, double a, double b);
LUNET_MUST_CHECK lunet_status_t lunet_tensor_normal(lunet_tensor_t **out, lunet_dtype_t dt,
                                                    int ndim, const int64_t *shape,
                                                    lunet_generator_t *g, double mean, double std);
LUNET_MUST_CHECK lunet_status_t lunet_tensor_randint(lunet_tensor_t **out, lunet_dtype_t dt,
                                                     int ndim, const int64_t *shape,
                                                     lunet_generator_t *g, int64_t low,
                                                     int64_t high);
/* A new int64 tensor holding a random permutation of 0..n-1. */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_randperm(lunet_tensor_t **out, lunet_generator_t *g,
                                                      int64_t n);

/* ---------------------------------------------------------------- printing ------------ */

/*
 * PyTorch's text for a tensor (docs/pytorch-parity.md §9), e.g. "tensor([1., 2.])".
 * *text is malloc'ed; the caller frees it.  A tensor made by an autograd node shows
 * "grad_fn=<NAME>" (lunet_tensor_grad_fn_name), a leaf requiring grad "requires_grad=True";
 * dtype names print with the prefix given ("torch." or "lunet."; NULL means "torch.").
 */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_format(char **text, lunet_tensor_t *t,
                                                    const char *dtype_prefix);
/* "torch.Size([256, 1, 28, 28])" with prefix "torch." (*text malloc'ed; caller frees). */
LUNET_MUST_CHECK lunet_status_t lunet_size_format(char **text, int ndim, const int64_t *shape,
                                                  const char *prefix);

/* ---------------------------------------------------------------- softmax, losses ----- */
/* (softmax.c, loss.c)  docs/pytorch-parity.md §1-§3. */

typedef enum lunet_reduction {
    LUNET_REDUCTION_NONE = 0,
    LUNET_REDUCTION_MEAN,
    LUNET_REDUCTION_SUM,
    LUNET_REDUCTION_COUNT
} lunet_reduction_t;

/* "none", "mean", "sum" -> enum; fails with "avg is not a valid value for reduction". */
LUNET_MUST_CHECK lunet_status_t lunet_reduction_parse(lunet_reduction_t *out, const char *name);

typedef struct lunet_loss_options {
    lunet_tensor_t *weight;      /* per-class weights (C), or NULL */
    int64_t ignore_index;        /* default -100 */
    lunet_reduction_t reduction; /* default MEAN */
    double label_smoothing;      /* default 0 */
} lunet_loss_options_t;

/* Fills opts with PyTorch's defaults. */
void lunet_loss_options_init(lunet_loss_options_t *opts);

/* y = softmax(x) / log_softmax(x) along dim (numerically stable; records autograd). */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_softmax(lunet_tensor_t **out, lunet_tensor_t *x,
                                                     int64_t dim);
LUNET_MUST_CHECK lunet_status_t lunet_tensor_log_softmax(lunet_tensor_t **out, lunet_tensor_t *x,
                                                         int64_t dim);
/* dx from upstream g and the forward output y. */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_softmax_backward(lunet_tensor_t **dx,
                                                              lunet_tensor_t *g, lunet_tensor_t *y,
                                                              int64_t dim);
LUNET_MUST_CHECK lunet_status_t lunet_tensor_log_softmax_backward(lunet_tensor_t **dx,
                                                                  lunet_tensor_t *g,
                                                                  lunet_tensor_t *y, int64_t dim);

/* Cross-entropy of logits x with class-index (int64) or probability targets. */
LUNET_MUST_CHECK lunet_status_t lunet_loss_cross_entropy(lunet_tensor_t **out, lunet_tensor_t *x,
                                                         lunet_tensor_t *target,
                                                         const lunet_loss_options_t *o);
/* Gradient w.r.t. x, given upstream g (0-d for mean/sum, per-position for none). */
LUNET_MUST_CHECK lunet_status_t lunet_loss_cross_entropy_backward(lunet_tensor_t **dx,
                                                                  lunet_tensor_t *g,
                                                                  lunet_tensor_t *x,
                                                                  lunet_tensor_t *target,
                                                                  const lunet_loss_options_t *o);
LUNET_MUST_CHECK lunet_status_t lunet_loss_nll(lunet_tensor_t **out, lunet_tensor_t *x,
                                               lunet_tensor_t *target,
                                               const lunet_loss_options_t *o);
LUNET_MUST_CHECK lunet_status_t lunet_loss_nll_backward(lunet_tensor_t **dx, lunet_tensor_t *g,
                                                        lunet_tensor_t *x, lunet_tensor_t *target,
                                                        const lunet_loss_options_t *o);
LUNET_MUST_CHECK lunet_status_t lunet_loss_mse(lunet_tensor_t **out, lunet_tensor_t *a,
                                               lunet_tensor_t *b, lunet_reduction_t reduction);
/*
 * Cross-entropy that also hands back (if lse != NULL) the per-position log-sum-exp of the
 * logits as (max, log sum exp(x - max)) pairs (float64, shape (positions, 2)); the autograd
 * node saves it (saved[3]) so that the backward is a single pass over the logits.  Records
 * autograd exactly as lunet_loss_cross_entropy.
 */
LUNET_MUST_CHECK lunet_status_t lunet_loss_cross_entropy_lse(lunet_tensor_t **out,
                                                             lunet_tensor_t **lse,
                                                             lunet_tensor_t *x,
                                                             lunet_tensor_t *target,
                                                             const lunet_loss_options_t *o);
/* Gradient w.r.t. x; lse from the forward, or NULL to recompute it. */
LUNET_MUST_CHECK lunet_status_t lunet_loss_cross_entropy_backward_lse(
    lunet_tensor_t **dx, lunet_tensor_t *g, lunet_tensor_t *x, lunet_tensor_t *target,
    lunet_tensor_t *lse, const lunet_loss_options_t *o);
/* Gradients of mse_loss(a, b) (a, b of one shape and dtype); da or db may be NULL. */
LUNET_MUST_CHECK lunet_status_t lunet_loss_mse_backward(lunet_tensor_t **da, lunet_tensor_t **db,
                                                        lunet_tensor_t *g, lunet_tensor_t *a,
                                                        lunet_tensor_t *b,
                                                        lunet_reduction_t reduction);

/* ---------------------------------------------------------------- IDX files ----------- */
/* (idx.c)  docs/pytorch-parity.md §12.2.  gzip or plain, detected from the bytes. */

/* Reads an IDX file: 0x08 -> uint8, 0x09/0x0B/0x0C -> int64, 0x0D -> float32, 0x0E -> float64. */
/* 1 to LUNET_MAX_DIMS dims (a size may be 0; one of 2^31 or more, or a body over 64 GiB, is
 * rejected); a lying header (bad magic, type code, dims, sizes, short/long body, corrupt gzip)
 * fails with a message naming the file, before anything the header claims is allocated. */
LUNET_MUST_CHECK lunet_status_t lunet_idx_read(lunet_tensor_t **out, const char *path);
/* Same from memory; `name` is used in messages. */
LUNET_MUST_CHECK lunet_status_t lunet_idx_read_buffer(lunet_tensor_t **out, const void *buf,
                                                      size_t len, const char *name);
/*
 * Writes t as IDX with the given type code (0 picks one from the dtype: uint8 -> 0x08,
 * int64 -> 0x0C, float32 -> 0x0D, float64 -> 0x0E), gzip-compressed if gzip.  Written to a
 * temporary file and renamed, so the old file survives a failed write.
 */
LUNET_MUST_CHECK lunet_status_t lunet_idx_write(const char *path, lunet_tensor_t *t, int type_code,
                                                bool gzip);

/* ---------------------------------------------------------------- data ---------------- */
/* (data.c)  docs/pytorch-parity.md §12.4-§12.5: ToTensor / Normalize, bit-exact, per batch. */

/*
 * One DataLoader batch of an image dataset in one call: for b < n, sample idx[b] of
 * images_u8 (N, H, W) [or (N, C, H, W)] goes to out_x[b] (float32 (n, 1, H, W) [(n, C, H, W)],
 * contiguous, preallocated) as f32(v) / f32(scale_div) (ToTensor with scale_div = 255: one
 * float32 division, bit-exact), then, if nnorm > 0, (x - f32(mean[c])) / f32(std[c]) with
 * two float32 roundings (Normalize; nnorm = 1 broadcasts over channels, else nnorm = C).
 * out_y (int64 (n), may be NULL) receives labels[idx[b]] (labels int64 (N), may be NULL).
 * Indices out of range fail with IndexError before anything is written.
 */
LUNET_MUST_CHECK lunet_status_t lunet_data_image_batch(lunet_tensor_t *out_x, lunet_tensor_t *out_y,
                                                       lunet_tensor_t *images_u8,
                                                       lunet_tensor_t *labels, const int64_t *idx,
                                                       int64_t n, double scale_div, int nnorm,
                                                       const double *mean, const double *std);
/* ToTensor on one image: uint8 (H, W) -> float32 (1, H, W), uint8 (H, W, C) -> (C, H, W). */
LUNET_MUST_CHECK lunet_status_t lunet_data_to_tensor(lunet_tensor_t **out, lunet_tensor_t *img);
/*
 * Normalize: x float (..., C, H, W) -> new tensor (x - mean[c]) / std[c]; nmean and nstd are
 * 1 or C.  float32 input computes in float32 (two roundings), float64 in double.
 * Errors use torchvision's texts (non-float input, fewer than 3 dims, zero std).
 */
LUNET_MUST_CHECK lunet_status_t lunet_data_normalize(lunet_tensor_t **out, lunet_tensor_t *x,
                                                     int nmean, const double *mean, int nstd,
                                                     const double *std);
/* Integer class counts: out[k] = #{i : labels[i] == k} for k < nclass; fails on a label
 * outside [0, nclass) naming its position (dataset label checks). */
LUNET_MUST_CHECK lunet_status_t lunet_data_label_histogram(int64_t *out, lunet_tensor_t *labels,
                                                           int64_t nclass);
/* Writes a uint8 image (H, W) gray or (H, W, 3) RGB as a PNG file (zlib, CRC-checked chunks). */
LUNET_MUST_CHECK lunet_status_t lunet_data_write_png(const char *path, lunet_tensor_t *img);

/* ---------------------------------------------------------------- nn, optim ----------- */
/* (nn.c, optim.c)  docs/pytorch-parity.md §5-§7: enough to build and train an MLP from C. */

/*
 * y = x @ w^T + b (b may be NULL), then relu when `relu` -- one GEMM and one pass over y.
 * x (*, in), w (out, in), b (out), y (*, out).  Records autograd ("AddmmBackward0", or
 * "ReluBackward0" when fused with relu).
 */
LUNET_MUST_CHECK lunet_status_t lunet_nn_linear(lunet_tensor_t **out, lunet_tensor_t *x,
                                                lunet_tensor_t *w, lunet_tensor_t *b, bool relu);
/* PyTorch's default init of a Linear layer from g: w ~ U(-k, k), then b ~ U(-k, k),
   k = f32(1/sqrt(in_features)).  b may be NULL. */
LUNET_MUST_CHECK lunet_status_t lunet_nn_linear_reset(lunet_tensor_t *w, lunet_tensor_t *b,
                                                      lunet_generator_t *g);

typedef enum lunet_activation {
    LUNET_ACTIVATION_NONE = 0,
    LUNET_ACTIVATION_RELU,
    LUNET_ACTIVATION_SIGMOID,
    LUNET_ACTIVATION_TANH,
    LUNET_ACTIVATION_COUNT
} lunet_activation_t;

/*
 * A multi-layer perceptron: Linear layers of the given sizes with `activation` between them
 * (none after the last), e.g. sizes {784, 512, 256, 128, 64, 10}.  The parameters are leaves
 * that require grad, owned by the MLP; lunet_mlp_free releases them.
 */
typedef struct lunet_mlp {
    int nlayers;
    lunet_activation_t activation;
    lunet_tensor_t **weight; /* nlayers tensors (out, in) */
    lunet_tensor_t **bias;   /* nlayers tensors (out) */
} lunet_mlp_t;

/* Builds the layers in order and initialises them as PyTorch's nn.Linear does, from g. */
LUNET_MUST_CHECK lunet_status_t lunet_mlp_new(lunet_mlp_t **out, int nsizes, const int64_t *sizes,
                                              lunet_activation_t activation, lunet_dtype_t dt,
                                              lunet_generator_t *g);
void lunet_mlp_free(lunet_mlp_t *m);
/* logits (N, sizes[last]) from x (N, sizes[0]) or (N, ...) with sizes[0] values per row. */
LUNET_MUST_CHECK lunet_status_t lunet_mlp_forward(lunet_tensor_t **out, lunet_mlp_t *m,
                                                  lunet_tensor_t *x);
/* 2 * nlayers parameters in PyTorch's order (weight 0, bias 0, weight 1, ...); borrowed. */
int lunet_mlp_parameter_count(const lunet_mlp_t *m);
lunet_tensor_t *lunet_mlp_parameter(const lunet_mlp_t *m, int i);

/* ---------------------------------------------------------------- conv, pooling ------- */
/* (conv.c, pool.c)  PyTorch's conv2d and 2-D pooling, forward and backward, on float32 and
   float64; inputs (N, C, H, W) or unbatched (C, H, W).  Errors use PyTorch's texts. */

typedef struct lunet_conv2d_options {
    int64_t stride[2];        /* (sH, sW) >= 1 */
    int64_t padding[2];       /* zeros before and after each spatial dim, >= 0 */
    int64_t padding_extra[2]; /* more zeros after (bottom, right): padding="same", even kernel */
    int64_t dilation[2];      /* >= 1 */
    int64_t groups;           /* >= 1, divides C and O */
} lunet_conv2d_options_t;

/* stride 1, padding 0, dilation 1, groups 1 (PyTorch's defaults). */
void lunet_conv2d_options_init(lunet_conv2d_options_t *o);
/*
 * y = conv2d(x, w, b): x (N, C, H, W) or (C, H, W), w (O, C / groups, kh, kw), b (O) or NULL,
 * y (N, O, OH, OW) with OH = (H + 2 padding + extra - dilation (kh - 1) - 1) / stride + 1.
 * o may be NULL (defaults).  Records autograd ("ConvolutionBackward0").
 */
LUNET_MUST_CHECK lunet_status_t lunet_nn_conv2d(lunet_tensor_t **out, lunet_tensor_t *x,
                                                lunet_tensor_t *w, lunet_tensor_t *b,
                                                const lunet_conv2d_options_t *o);
/* PyTorch's default Conv2d init from g: w from kaiming_uniform_(a=sqrt(5)), b (may be NULL)
   ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = C/groups kh kw. */
LUNET_MUST_CHECK lunet_status_t lunet_nn_conv2d_reset(lunet_tensor_t *w, lunet_tensor_t *b,
                                                      lunet_generator_t *g);

typedef struct lunet_pool2d_options {
    int64_t kernel[2], stride[2], padding[2], dilation[2]; /* dilation: max pooling only */
    bool ceil_mode;
    bool count_include_pad;   /* avg pooling: padding zeros count in the divisor */
    int64_t divisor_override; /* avg pooling: 0 = none */
} lunet_pool2d_options_t;

/* kernel (kh, kw), stride = kernel, padding 0, dilation 1, count_include_pad true. */
void lunet_pool2d_options_init(lunet_pool2d_options_t *o, int64_t kh, int64_t kw);
/* y = max_pool2d(x); *indices (may be NULL) receives int64 flat positions within each (H, W)
   plane, as return_indices=True gives them.  Records "MaxPool2DWithIndicesBackward0". */
LUNET_MUST_CHECK lunet_status_t lunet_nn_max_pool2d(lunet_tensor_t **out, lunet_tensor_t **indices,
                                                    lunet_tensor_t *x,
                                                    const lunet_pool2d_options_t *o);
/* y = avg_pool2d(x) (dilation ignored).  Records "AvgPool2DBackward0". */
LUNET_MUST_CHECK lunet_status_t lunet_nn_avg_pool2d(lunet_tensor_t **out, lunet_tensor_t *x,
                                                    const lunet_pool2d_options_t *o);
/* y = adaptive_avg_pool2d(x, (oh, ow)).  Records "AdaptiveAvgPool2DBackward0" (a mean over
   (H, W), "MeanBackward1", for (1, 1) as in PyTorch). */
LUNET_MUST_CHECK lunet_status_t lunet_nn_adaptive_avg_pool2d(lunet_tensor_t **out,
                                                             lunet_tensor_t *x, int64_t oh,
                                                             int64_t ow);

/* ---------------------------------------------------------------- activations, norm --- */
/* (activation.c, norm.c)  Element-wise activations of any floating tensor; each records its
   PyTorch grad_fn ("LeakyReluBackward0", "EluBackward0", "GeluBackward0",
   "SoftplusBackward0", "LogSigmoidBackward0"). */
LUNET_MUST_CHECK lunet_status_t lunet_nn_leaky_relu(lunet_tensor_t **out, lunet_tensor_t *x,
                                                    double negative_slope);
/* alpha (exp(x) - 1) for x <= 0, x above */
LUNET_MUST_CHECK lunet_status_t lunet_nn_elu(lunet_tensor_t **out, lunet_tensor_t *x, double alpha);
/* exact (erf) or, with tanh_approximation, PyTorch's approximate="tanh" */
LUNET_MUST_CHECK lunet_status_t lunet_nn_gelu(lunet_tensor_t **out, lunet_tensor_t *x,
                                              bool tanh_approximation);
/* log(1 + exp(beta x)) / beta, or x where beta x > threshold */
LUNET_MUST_CHECK lunet_status_t lunet_nn_softplus(lunet_tensor_t **out, lunet_tensor_t *x,
                                                  double beta, double threshold);
LUNET_MUST_CHECK lunet_status_t lunet_nn_log_sigmoid(lunet_tensor_t **out, lunet_tensor_t *x);

/*
 * Batch normalisation of x (N, C, *) over every dim but C.  training: batch statistics, and
 * running_mean / running_var (C) (either may be NULL) updated in place with momentum and the
 * unbiased variance; otherwise the running statistics normalise.  weight, bias (C) may be
 * NULL.  Records "NativeBatchNormBackward0".
 */
LUNET_MUST_CHECK lunet_status_t lunet_nn_batch_norm(lunet_tensor_t **out, lunet_tensor_t *x,
                                                    lunet_tensor_t *running_mean,
                                                    lunet_tensor_t *running_var,
                                                    lunet_tensor_t *weight, lunet_tensor_t *bias,
                                                    bool training, double momentum, double eps);
/*
 * Dropout's scaled mask for x: a new tensor of x's shape and dtype holding 0 or 1 / (1 - p),
 * drawn from g (NULL: the default generator) exactly as PyTorch 1.13's CPU dropout draws
 * it, so x * mask is torch's dropout(x, p) bit for bit.  p = 1 gives zeros without drawing.
 */
LUNET_MUST_CHECK lunet_status_t lunet_nn_dropout_mask(lunet_tensor_t **out, lunet_tensor_t *x,
                                                      double p, lunet_generator_t *g);

typedef struct lunet_sgd_options {
    double lr, momentum, dampening, weight_decay;
    bool nesterov, maximize;
} lunet_sgd_options_t;

/* Validates options with PyTorch's messages ("Invalid learning rate: -1", ...). */
LUNET_MUST_CHECK lunet_status_t lunet_sgd_check(const lunet_sgd_options_t *o);
/*
 * One SGD step of parameter p with gradient grad (PyTorch 1.13's algorithm, bit-exact in
 * float32).  *momentum_buffer is created on the first step when momentum != 0 (the caller
 * owns it and passes it back on later steps).  Runs without recording autograd.
 */
LUNET_MUST_CHECK lunet_status_t lunet_sgd_update(lunet_tensor_t *p, lunet_tensor_t *grad,
                                                 lunet_tensor_t **momentum_buffer,
                                                 const lunet_sgd_options_t *o);

/*
 * An optimizer over a fixed list of parameters (retained), keeping its per-parameter state
 * between steps, as torch.optim.Optimizer: made by lunet_sgd_new or lunet_adam_new;
 * lunet_optimizer_step updates every parameter that has a gradient, in order;
 * lunet_optimizer_zero_grad zero-fills the gradients (PyTorch 1.13's default);
 * lunet_optimizer_free releases the parameters and the state (NULL is a no-op).
 */
typedef struct lunet_optimizer lunet_optimizer_t;
LUNET_MUST_CHECK lunet_status_t lunet_optimizer_step(lunet_optimizer_t *opt);
LUNET_MUST_CHECK lunet_status_t lunet_optimizer_zero_grad(lunet_optimizer_t *opt);
void lunet_optimizer_free(lunet_optimizer_t *opt);

/* SGD: the state is each parameter's momentum buffer. */
LUNET_MUST_CHECK lunet_status_t lunet_sgd_new(lunet_optimizer_t **out, int nparams,
                                              lunet_tensor_t *const *params,
                                              const lunet_sgd_options_t *o);

/*
 * Parameter slabs (slab.c).  lunet_slab_pack moves each floating leaf parameter of
 * params[0..n) that shares its memory with no other tensor, has no .grad yet and is
 * contiguous into one 64-byte aligned, zero-padded storage per dtype (list order), keeping
 * the tensor objects and their values, and reserves the gradient each will get in a
 * matching gradient slab: its first backward copies the gradient there (.grad stays NULL
 * until then, as in PyTorch).  Parameters that do not qualify stay where they are; *packed
 * (may be NULL) gets how many moved.  From then on a list whose parameters, gradients and
 * momentum buffers are neighbours in their slabs is zeroed with one memset
 * (lunet_slab_zero_grads) and stepped with one loop (lunet_sgd_update_all); anything else
 * (a .grad replaced or set to NULL, a shared parameter) takes the per-tensor path, with the
 * same results.  Each member of a slab keeps its own version counter (autograd's check of
 * saved tensors), as separate tensors do.
 */
LUNET_MUST_CHECK lunet_status_t lunet_slab_pack(int n, lunet_tensor_t *const *params, int *packed);
/* Zero-fills the .grad of every params[i] that has one (PyTorch 1.13's zero_grad()); one
   memset per run of gradients that are neighbours in a slab.  Runs without autograd. */
LUNET_MUST_CHECK lunet_status_t lunet_slab_zero_grads(int n, lunet_tensor_t *const *params);
/*
 * One SGD step of every params[i] that has a .grad (the others are skipped, as in
 * PyTorch), bit-exact with lunet_sgd_update called on each in turn.  momentum_buffers[i]
 * (owned by the caller, NULL before the first step) may be replaced by a view into a
 * momentum slab laid out as the parameters' (the old one released).  On failure the
 * parameters before the failing one have been updated (as with per-parameter calls).
 */
LUNET_MUST_CHECK lunet_status_t lunet_sgd_update_all(int n, lunet_tensor_t *const *params,
                                                     lunet_tensor_t **momentum_buffers,
                                                     const lunet_sgd_options_t *o);

typedef struct lunet_adam_options {
    double lr, beta1, beta2, eps, weight_decay;
    bool amsgrad, maximize;
    bool decoupled; /* true: AdamW (weight decay scales the parameter, p *= 1 - lr * wd) */
} lunet_adam_options_t;

/* Validates options with PyTorch's messages ("Invalid beta parameter at index 0: 1.5", ...). */
LUNET_MUST_CHECK lunet_status_t lunet_adam_check(const lunet_adam_options_t *o);

/* The Adam state of one parameter, as PyTorch's optimizer.state[p]. */
typedef struct lunet_adam_state {
    double step;                    /* steps taken */
    lunet_tensor_t *exp_avg;        /* owned by the holder of the struct; NULL before step 1 */
    lunet_tensor_t *exp_avg_sq;     /* same */
    lunet_tensor_t *max_exp_avg_sq; /* same; only with amsgrad */
} lunet_adam_state_t;

/*
 * One Adam (or AdamW, o->decoupled) step of parameter p with gradient grad: PyTorch 1.13's
 * single-tensor algorithm, bit-exact in float32 and float64.  Missing state tensors are
 * created zero-filled (and then owned by *s); s->step is advanced.  Runs without recording
 * autograd.  On failure p and *s are unchanged.
 */
LUNET_MUST_CHECK lunet_status_t lunet_adam_update(lunet_tensor_t *p, lunet_tensor_t *grad,
                                                  lunet_adam_state_t *s,
                                                  const lunet_adam_options_t *o);
/* Releases the state's tensors and zeroes it. */
void lunet_adam_state_clear(lunet_adam_state_t *s);

/* Adam/AdamW as a lunet_optimizer_t (lunet_optimizer_step, _zero_grad, _free). */
LUNET_MUST_CHECK lunet_status_t lunet_adam_new(lunet_optimizer_t **out, int nparams,
                                               lunet_tensor_t *const *params,
                                               const lunet_adam_options_t *o);
/* The Adam state of parameter i (borrowed), or NULL when i is out of range or opt was not
   made by lunet_adam_new. */
const lunet_adam_state_t *lunet_adam_state(const lunet_optimizer_t *opt, int i);

/* ---- torch.nn.init (init.c): bounds computed as PyTorch's Python does, then g's stream */

/* calculate_gain(nonlinearity, param): "linear", "conv1d".."conv_transpose3d", "sigmoid" -> 1,
   "tanh" -> 5/3, "relu" -> sqrt(2), "leaky_relu" -> sqrt(2 / (1 + slope^2)) (slope = param
   when has_param, else 0.01), "selu" -> 3/4; else "Unsupported nonlinearity <name>". */
LUNET_MUST_CHECK lunet_status_t lunet_init_calculate_gain(double *out, const char *nonlinearity,
                                                          bool has_param, double param);
/* _calculate_fan_in_and_fan_out: size(1) and size(0) times the product of the sizes after
   dim 1; fails for tensors of fewer than 2 dims with PyTorch's message. */
LUNET_MUST_CHECK lunet_status_t lunet_init_fans(int64_t *fan_in, int64_t *fan_out,
                                                const lunet_tensor_t *t);
/* kaiming_uniform_ / kaiming_normal_(t, a, mode "fan_in"|"fan_out", nonlinearity); a tensor
   with no elements is left alone (PyTorch: a no-op with a warning). */
LUNET_MUST_CHECK lunet_status_t lunet_init_kaiming_uniform_(lunet_tensor_t *t, lunet_generator_t *g,
                                                            double a, const char *mode,
                                                            const char *nonlinearity);
LUNET_MUST_CHECK lunet_status_t lunet_init_kaiming_normal_(lunet_tensor_t *t, lunet_generator_t *g,
                                                           double a, const char *mode,
                                                           const char *nonlinearity);
/* xavier_uniform_ / xavier_normal_(t, gain) */
LUNET_MUST_CHECK lunet_status_t lunet_init_xavier_uniform_(lunet_tensor_t *t, lunet_generator_t *g,
                                                           double gain);
LUNET_MUST_CHECK lunet_status_t lunet_init_xavier_normal_(lunet_tensor_t *t, lunet_generator_t *g,
                                                          double gain);
/* nn.Linear's and nn.Conv2d's reset_parameters: kaiming_uniform_(w, a=sqrt(5)), then b (may
   be NULL) from U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
LUNET_MUST_CHECK lunet_status_t lunet_init_layer_reset(lunet_tensor_t *w, lunet_tensor_t *b,
                                                       lunet_generator_t *g);

/* ---------------------------------------------------------------- autograd ------------ */

bool lunet_grad_enabled(void);
/* Sets this thread's grad mode; returns the previous mode. */
bool lunet_set_grad_enabled(bool enabled);
LUNET_MUST_CHECK lunet_status_t lunet_tensor_requires_grad_(lunet_tensor_t *t, bool requires_grad);
/* True when t is a leaf (no grad_fn). */
bool lunet_tensor_is_leaf(const lunet_tensor_t *t);
/* Name of the node that made t ("MulBackward0"), or NULL for a leaf. */
const char *lunet_tensor_grad_fn_name(const lunet_tensor_t *t);
/* Keeps t.grad after backward for a non-leaf t too (a leaf keeps it anyway); t->retains_grad
   then reads true, as PyTorch's t.retains_grad. */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_retain_grad(lunet_tensor_t *t);
/* Sets t->grad to g (taking a reference of its own; NULL clears it).  g must have t's shape
   and dtype: "assigned grad has data of a different size" / "... of a different type". */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_set_grad(lunet_tensor_t *t, lunet_tensor_t *g);
/* t.data = src: t views src's memory (its dtype, shape and strides) and keeps its autograd
   state; a tensor that requires grad needs a floating src. */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_set_data(lunet_tensor_t *t, lunet_tensor_t *src);
/* Runs backward from t; grad may be NULL for a scalar t. */
LUNET_MUST_CHECK lunet_status_t lunet_tensor_backward(lunet_tensor_t *t, lunet_tensor_t *grad,
                                                      bool retain_graph);

/* ---------------------------------------------------------------- serialize ----------- */
/*
 * (serialize.c)  Checkpoints: a tree of values saved in Lunet's versioned, little-endian,
 * zlib-compressed format (docs/FORMAT.md).  Saving writes a temporary file in the same
 * directory (unnamed O_TMPFILE on Linux, else "<path>.tmp.<host>.<pid>.XXXXXX"), fsyncs it and
 * renames it over path, so a failed or interrupted save leaves the previous file intact, and
 * a killed save leaves no temporary that outlives the next save of path.  Loading checks every length against the file before allocating and
 * fails with "load: <path>: not a Lunet file", "... truncated (...)", "... unsupported
 * version N ..." or "... corrupt data (...)".
 */
typedef enum lunet_value_kind {
    LUNET_VALUE_BOOL = 0,
    LUNET_VALUE_INT,    /* int64, kept apart from floats */
    LUNET_VALUE_FLOAT,  /* double */
    LUNET_VALUE_STRING, /* bytes (may hold NULs), also NUL-terminated */
    LUNET_VALUE_TENSOR, /* dtype, shape, data and the requires_grad flag */
    LUNET_VALUE_MAP     /* entries with int or string keys, in order */
} lunet_value_kind_t;

typedef struct lunet_value lunet_value_t;
typedef struct lunet_value_entry {
    lunet_value_t *key; /* LUNET_VALUE_INT or LUNET_VALUE_STRING */
    lunet_value_t *value;
} lunet_value_entry_t;

/* A node of a value tree; every node owns its children (and one tensor reference). */
struct lunet_value {
    lunet_value_kind_t kind;
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            char *data;
            size_t len;
        } str;
        lunet_tensor_t *tensor;
        struct {
            lunet_value_entry_t *entries;
            size_t count, cap;
        } map;
    } u;
};

LUNET_MUST_CHECK lunet_status_t lunet_value_bool(lunet_value_t **out, bool b);
LUNET_MUST_CHECK lunet_status_t lunet_value_int(lunet_value_t **out, int64_t i);
LUNET_MUST_CHECK lunet_status_t lunet_value_float(lunet_value_t **out, double f);
/* Copies len bytes of s. */
LUNET_MUST_CHECK lunet_status_t lunet_value_string(lunet_value_t **out, const char *s, size_t len);
/* Takes its own reference to t (saved contiguous, as data; autograd history is not kept). */
LUNET_MUST_CHECK lunet_status_t lunet_value_tensor(lunet_value_t **out, lunet_tensor_t *t);
/* An empty map. */
LUNET_MUST_CHECK lunet_status_t lunet_value_map(lunet_value_t **out);
/* Frees v and everything under it (NULL is ok). */
void lunet_value_free(lunet_value_t *v);
/*
 * Appends key -> value to map.  The map takes ownership of key and value in every case (they
 * are freed if the call fails), so calls can be chained without cleanup.  Keys must be
 * distinct: lunet_value_save fails on a duplicate.
 */
LUNET_MUST_CHECK lunet_status_t lunet_value_map_put(lunet_value_t *map, lunet_value_t *key,
                                                    lunet_value_t *value);
/* Same with a string key copied from a C string. */
LUNET_MUST_CHECK lunet_status_t lunet_value_map_put_str(lunet_value_t *map, const char *key,
                                                        lunet_value_t *value);
/* The value under a string / int key, or NULL (borrowed; linear search). */
const lunet_value_t *lunet_value_map_get(const lunet_value_t *map, const char *key);
const lunet_value_t *lunet_value_map_geti(const lunet_value_t *map, int64_t key);
/* Sorts a map's entries: int keys ascending, then string keys bytewise (stable output). */
void lunet_value_map_sort(lunet_value_t *map);

/* Writes v to path (atomically: temp file, fsync, rename). */
LUNET_MUST_CHECK lunet_status_t lunet_value_save(const char *path, const lunet_value_t *v);
/* Reads a file written by lunet_value_save; *out is a new tree (free with lunet_value_free). */
LUNET_MUST_CHECK lunet_status_t lunet_value_load(lunet_value_t **out, const char *path);

/* Convenience for C hosts: a map of n named tensors (a state dict), in the given order. */
LUNET_MUST_CHECK lunet_status_t lunet_tensors_save(const char *path, size_t n,
                                                   const char *const *names,
                                                   lunet_tensor_t *const *tensors);
/* Reads such a file: *n entries, malloc'ed arrays of names and tensor references, in file
   order; fails if the file holds anything else.  Release with lunet_tensors_free. */
LUNET_MUST_CHECK lunet_status_t lunet_tensors_load(size_t *n, char ***names,
                                                   lunet_tensor_t ***tensors, const char *path);
void lunet_tensors_free(size_t n, char **names, lunet_tensor_t **tensors);

/* Writes len bytes to path atomically (temp file in the same directory, fsync, rename). */
LUNET_MUST_CHECK lunet_status_t lunet_write_file_atomic(const char *path, const void *data,
                                                        size_t len);

/*
 * Testing aid: make every following save fail after `after_bytes` bytes of the file have been
 * written (-1 turns it off).  Until this is called, the environment variable
 * LUNET_FAULT_SAVE_AFTER=N (read at each save) does the same.
 */
void lunet_serialize_set_fault(int64_t after_bytes);

/* ---------------------------------------------------------------- distributed --------- */
/*
 * (distributed.c)  torch.distributed's default process group on Open MPI: the processes
 * started by mpirun (or one process started alone).  Collectives are called by every rank
 * in the same order, from the thread that called lunet_dist_init.  Each first exchanges a
 * small header, so a shape, dtype, op or root that differs between ranks, or an invalid
 * argument on one rank, fails on every rank ("all_reduce: the tensor's shape differs between
 * ranks (this rank: [3])", "... the call failed on rank 1 (its error says why)") instead of
 * hanging.  Tensors of any dtype and layout are written in place (no autograd record).
 * Before init (or in a build without MPI) every call but init fails with PyTorch's "Default
 * process group has not been initialized, please make sure to call init_process_group."
 */
typedef enum lunet_dist_op {
    LUNET_DIST_OP_SUM = 0,
    LUNET_DIST_OP_AVG, /* sum / world size; floating dtypes only */
    LUNET_DIST_OP_MAX,
    LUNET_DIST_OP_MIN,
    LUNET_DIST_OP_COUNT
} lunet_dist_op_t;

/* "sum", "avg", "max", "min" (any case) -> op; ValueError otherwise. */
LUNET_MUST_CHECK lunet_status_t lunet_dist_op_parse(lunet_dist_op_t *out, const char *name);
const char *lunet_dist_op_name(lunet_dist_op_t op);
/* True when this build has MPI (torch.distributed.is_mpi_available()). */
bool lunet_dist_is_available(void);
/*
 * init_process_group(backend="mpi"): initialises MPI unless the host already did, and makes
 * the group (rank and size from the launcher).  Fails with "trying to initialize the default
 * process group twice!", "Invalid backend: 'x'", or, built without MPI, "init_process_group:
 * Lunet was built without MPI ...".
 */
LUNET_MUST_CHECK lunet_status_t lunet_dist_init(const char *backend);
bool lunet_dist_is_initialized(void);
LUNET_MUST_CHECK lunet_status_t lunet_dist_get_rank(int *out);
LUNET_MUST_CHECK lunet_status_t lunet_dist_get_world_size(int *out);
/* In place: t = op over every rank's t.  bool: sum and max are or, min is and. */
LUNET_MUST_CHECK lunet_status_t lunet_dist_all_reduce(lunet_tensor_t *t, lunet_dist_op_t op);
/* In place: t = rank src's t ("broadcast: invalid root rank: 5 (world size 2)"). */
LUNET_MUST_CHECK lunet_status_t lunet_dist_broadcast(lunet_tensor_t *t, int src);
/* outs[r] = rank r's t, for nouts == world size outputs of t's shape and dtype. */
LUNET_MUST_CHECK lunet_status_t lunet_dist_all_gather(lunet_tensor_t *const *outs, int nouts,
                                                      lunet_tensor_t *t);
LUNET_MUST_CHECK lunet_status_t lunet_dist_barrier(void);
/*
 * DistributedDataParallel's gradient reduction, one MPI call for n tensors: each tensor's
 * values times prescale (float32: times (float)prescale, as PyTorch's DDP divides into its
 * bucket) are packed into flat (contiguous, their dtype, as many elements as all of them),
 * flat is summed over the ranks, and the result is copied back.  A tensor that already lives
 * at its place in flat (a gradient slab) is scaled in place and not copied.  Contiguous
 * tensors of flat's dtype only; prescale != 1 needs a floating dtype.
 */
LUNET_MUST_CHECK lunet_status_t lunet_dist_all_reduce_coalesced(lunet_tensor_t *flat, int n,
                                                                lunet_tensor_t *const *tensors,
                                                                double prescale);
/* destroy_process_group: frees the group and finalises MPI if lunet_dist_init started it
   (MPI cannot start again in the same process afterwards). */
LUNET_MUST_CHECK lunet_status_t lunet_dist_destroy(void);
/*
 * For hosts on a fatal error: ends every process of the job (MPI_Abort with code) when MPI is
 * running, so that the other ranks do not wait forever in a collective; returns when it is
 * not.  The one function of this API that can end the process.
 */
void lunet_dist_abort(int code);

#ifdef __cplusplus
}
#endif
#endif /* LUNET_H */
