/*
 * distributed.c - torch.distributed's default process group on Open MPI: the processes that
 * mpirun started, with all_reduce, broadcast, all_gather and barrier on tensors of any dtype
 * and layout, and the coalesced gradient all-reduce behind DistributedDataParallel.
 *
 * Decisions:
 *  - One process group (PyTorch's default group) over a duplicate of MPI_COMM_WORLD, so a
 *    host that uses MPI itself never receives Lunet's messages.  If the host initialised MPI,
 *    Lunet neither initialises nor finalises it.  MPI_THREAD_FUNNELED: only the thread that
 *    called init_process_group runs collectives (the runtime's own worker threads never do).
 *  - Every collective first all-reduces a small header (which collective, op, root, dtype,
 *    shape, and whether this rank's own arguments were valid) with MAX over (h, -h), so every
 *    rank learns the largest and the smallest value of each field.  A shape that differs
 *    between ranks, or a bad argument on one rank, then fails on every rank at once, instead
 *    of one rank raising and the others waiting forever in the data transfer.  The cost is
 *    one extra message of 352 bytes per call.
 *  - MPI reports errors by return code on Lunet's communicator (MPI_ERRORS_RETURN); they
 *    become RuntimeErrors naming the collective and MPI's own text.
 *  - avg is a sum followed by a division by the world size in the tensor's dtype (float32
 *    division for float32); floating dtypes only (PyTorch has avg only on NCCL, for floats).
 *    bool reduces as logical or (sum, max) and logical and (min), as Gloo and NCCL do.
 *  - A non-contiguous tensor goes through a contiguous copy that is copied back.  Counts
 *    above INT_MAX (MPI's int counts) are sent in pieces.
 *  - Collectives write tensors in place without recording autograd (as c10d does), but bump
 *    the storage version so that a tensor saved for backward is not silently changed.
 *  - A rank waiting in a collective yields the CPU between polls (Open MPI's
 *    mpi_yield_when_idle, set unless the environment already sets it): on a machine shared
 *    with other work, a spinning rank otherwise eats the time slices its peer needs to
 *    reach the collective (an MLP epoch on 2 ranks of a loaded 2-core machine: 8.5 s
 *    spinning, 3.9-5.0 s yielding); Gloo, PyTorch's CPU backend, sleeps in its waits too.
 *  - destroy_process_group finalises MPI, which MPI allows once per process: a second
 *    init_process_group after it fails with a message saying so.
 *  - Built without MPI (no LUNET_HAVE_MPI), init fails with "Lunet was built without MPI"
 *    and every other call says the group is not initialised.
 */
#include "internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifdef LUNET_HAVE_MPI
#include <mpi.h>
#endif

static const char *const op_names[] = {
    [LUNET_DIST_OP_SUM] = "sum",
    [LUNET_DIST_OP_AVG] = "avg",
    [LUNET_DIST_OP_MAX] = "max",
    [LUNET_DIST_OP_MIN] = "min",
};
_Static_assert(sizeof op_names / sizeof op_names[0] == LUNET_DIST_OP_COUNT, "one name per op");

const char *lunet_dist_op_name(lunet_dist_op_t op)
{
    return (unsigned)op < LUNET_DIST_OP_COUNT ? op_names[op] : "?";
}

lunet_status_t lunet_dist_op_parse(lunet_dist_op_t *out, const char *name)
{
    for (int i = 0; i < LUNET_DIST_OP_COUNT; i++) {
        if (strcasecmp(name, op_names[i]) == 0) {
            *out = (lunet_dist_op_t)i;
            return LUNET_OK;
        }
    }
    return lunet_error_set(LUNET_STATUS_VALUE,
                           "all_reduce: unknown op '%s' (expected sum, avg, max or min)", name);
}

bool lunet_dist_is_available(void)
{
#ifdef LUNET_HAVE_MPI
    return true;
#else
    return false;
#endif
}

static lunet_status_t not_initialized(void)
{
    return lunet_error_set(LUNET_STATUS_RUNTIME,
                           "Default process group has not been initialized, please make sure to "
                           "call init_process_group.");
}

/* Backend names PyTorch knows (any case); only mpi is Lunet's. */
static lunet_status_t check_backend(const char *backend)
{
    static const char *const torch_backends[] = {"gloo", "nccl", "ucc"};
    if (backend == NULL)
        return lunet_error_set(LUNET_STATUS_VALUE,
                               "init_process_group: backend must be given (\"mpi\")");
    if (strcasecmp(backend, "mpi") == 0)
        return LUNET_OK;
    if (strcasecmp(backend, "tcp") == 0)
        return lunet_error_set(
            LUNET_STATUS_VALUE,
            "TCP backend has been deprecated. Please use Gloo or MPI backend for "
            "collective operations on CPU tensors.");
    for (size_t i = 0; i < sizeof torch_backends / sizeof torch_backends[0]; i++)
        if (strcasecmp(backend, torch_backends[i]) == 0)
            return lunet_error_set(LUNET_STATUS_RUNTIME,
                                   "init_process_group: Lunet has only the mpi backend, not '%s'",
                                   backend);
    return lunet_error_set(LUNET_STATUS_VALUE, "Invalid backend: '%s'", backend);
}

#ifndef LUNET_HAVE_MPI

lunet_status_t lunet_dist_init(const char *backend)
{
    lunet_status_t st = check_backend(backend);
    if (st)
        return st;
    return lunet_error_set(
        LUNET_STATUS_RUNTIME,
        "init_process_group: Lunet was built without MPI (install libopenmpi-dev "
        "and openmpi-bin, e.g. `make deps`, then rebuild)");
}
bool lunet_dist_is_initialized(void) { return false; }
lunet_status_t lunet_dist_get_rank(int *out)
{
    (void)out;
    return not_initialized();
}
lunet_status_t lunet_dist_get_world_size(int *out)
{
    (void)out;
    return not_initialized();
}
lunet_status_t lunet_dist_all_reduce(lunet_tensor_t *t, lunet_dist_op_t op)
{
    (void)t, (void)op;
    return not_initialized();
}
lunet_status_t lunet_dist_broadcast(lunet_tensor_t *t, int src)
{
    (void)t, (void)src;
    return not_initialized();
}
lunet_status_t lunet_dist_all_gather(lunet_tensor_t *const *outs, int nouts, lunet_tensor_t *t)
{
    (void)outs, (void)nouts, (void)t;
    return not_initialized();
}
lunet_status_t lunet_dist_barrier(void) { return not_initialized(); }
lunet_status_t lunet_dist_all_reduce_coalesced(lunet_tensor_t *flat, int n,
                                               lunet_tensor_t *const *tensors, double prescale)
{
    (void)flat, (void)n, (void)tensors, (void)prescale;
    return not_initialized();
}
lunet_status_t lunet_dist_destroy(void) { return not_initialized(); }
void lunet_dist_abort(int code) { (void)code; }

#else /* LUNET_HAVE_MPI */

static struct {
    bool initialized; /* a group exists */
    bool finalized;   /* destroy finalised MPI: it cannot start again in this process */
    bool owns_mpi;    /* Lunet called MPI_Init (and so calls MPI_Finalize) */
    MPI_Comm comm;
    int rank, size;
} group = {.comm = MPI_COMM_NULL};

/* The collectives, as the header's first field names them. */
typedef enum call_kind {
    CALL_ALL_REDUCE = 1,
    CALL_BROADCAST,
    CALL_ALL_GATHER,
    CALL_BARRIER,
    CALL_COALESCED,
    CALL_COUNT
} call_kind_t;

static const char *const call_names[] = {
    [0] = "?",
    [CALL_ALL_REDUCE] = "all_reduce",
    [CALL_BROADCAST] = "broadcast",
    [CALL_ALL_GATHER] = "all_gather",
    [CALL_BARRIER] = "barrier",
    [CALL_COALESCED] = "all_reduce_coalesced",
};
_Static_assert(sizeof call_names / sizeof call_names[0] == CALL_COUNT, "one name per call");

/* Header fields; H_ERR holds 1 + the rank whose arguments were invalid (0: none). */
enum { H_ERR, H_KIND, H_OP, H_ROOT, H_DTYPE, H_NDIM, H_SHAPE, H_LEN = H_SHAPE + LUNET_MAX_DIMS };

static lunet_status_t mpi_fail(const char *what, int rc)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof text, "MPI error %d", rc);
    return lunet_error_set(LUNET_STATUS_RUNTIME, "%s: MPI failed: %s", what, text);
}

lunet_status_t lunet_dist_init(const char *backend)
{
    lunet_status_t st = check_backend(backend);
    if (st)
        return st;
    if (group.initialized)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "trying to initialize the default process group twice!");
    if (group.finalized)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "init_process_group: MPI was finalized by destroy_process_group and "
                               "cannot start again in the same process");
    int inited = 0, fin = 0, rc;
    MPI_Initialized(&inited);
    MPI_Finalized(&fin);
    if (fin)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "init_process_group: MPI has been finalized in this process");
    if (!inited) {
        int provided = 0;
        setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0); /* see Decisions */
        if ((rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided)) != MPI_SUCCESS)
            return mpi_fail("init_process_group", rc);
        group.owns_mpi = true;
    }
    MPI_Comm comm = MPI_COMM_NULL;
    if ((rc = MPI_Comm_dup(MPI_COMM_WORLD, &comm)) != MPI_SUCCESS)
        return mpi_fail("init_process_group", rc);
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm, &group.rank);
    MPI_Comm_size(comm, &group.size);
    group.comm = comm;
    group.initialized = true;
    return LUNET_OK;
}

bool lunet_dist_is_initialized(void) { return group.initialized; }

lunet_status_t lunet_dist_get_rank(int *out)
{
    if (!group.initialized)
        return not_initialized();
    *out = group.rank;
    return LUNET_OK;
}

lunet_status_t lunet_dist_get_world_size(int *out)
{
    if (!group.initialized)
        return not_initialized();
    *out = group.size;
    return LUNET_OK;
}

/* ---------------------------------------------------------------- agreement ----------- */

static void header_init(int64_t *h, call_kind_t kind)
{
    memset(h, 0, H_LEN * sizeof h[0]);
    h[H_KIND] = kind;
}

static void header_tensor(int64_t *h, const lunet_tensor_t *t)
{
    h[H_DTYPE] = t->dtype;
    h[H_NDIM] = t->ndim;
    for (int d = 0; d < t->ndim; d++)
        h[H_SHAPE + d] = t->shape[d];
}

/*
 * Exchanges the header h (every rank calls this once per collective).  `local` is this rank's
 * own argument check: when it failed, the rank still takes part, then returns its own error
 * (the message already set).  Every other rank then fails naming the failing rank, and every
 * rank fails when any field differs between ranks.
 */
static lunet_status_t agree(int64_t *h, lunet_status_t local)
{
    const char *name = call_names[h[H_KIND]];
    if (local)
        h[H_ERR] = group.rank + 1;
    int64_t send[2 * H_LEN], got[2 * H_LEN];
    for (int i = 0; i < H_LEN; i++) {
        send[i] = h[i];
        send[H_LEN + i] = -h[i];
    }
    int rc = MPI_Allreduce(send, got, 2 * H_LEN, MPI_INT64_T, MPI_MAX, group.comm);
    if (rc != MPI_SUCCESS)
        return mpi_fail(name, rc);
    if (local)
        return local;
    if (got[H_KIND] != -got[H_LEN + H_KIND])
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "%s: the ranks called different collectives at the same time (this "
                               "rank called %s)",
                               name, name);
    if (got[H_ERR])
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "%s: the call failed on rank %lld (its error says why)", name,
                               (long long)(got[H_ERR] - 1));
    bool same[H_LEN];
    for (int i = 0; i < H_LEN; i++)
        same[i] = got[i] == -got[H_LEN + i];
    if (!same[H_OP])
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "%s: the ranks passed different ops (this rank: %s)", name,
                               lunet_dist_op_name((lunet_dist_op_t)h[H_OP]));
    if (!same[H_ROOT])
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "%s: the ranks passed different src ranks (this rank: %lld)", name,
                               (long long)h[H_ROOT]);
    if (!same[H_DTYPE])
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "%s: the tensor's dtype differs between ranks (this rank: %s)", name,
                               lunet_dtype_name((lunet_dtype_t)h[H_DTYPE]));
    bool shape_same = same[H_NDIM];
    for (int d = 0; d < LUNET_MAX_DIMS; d++)
        shape_same = shape_same && same[H_SHAPE + d];
    if (!shape_same) {
        char sb[LUNET_SHAPE_BUF];
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "%s: the tensor's shape differs between ranks (this rank: %s)", name,
                               lunet_shape_str(sb, sizeof sb, (int)h[H_NDIM], h + H_SHAPE));
    }
    return LUNET_OK;
}

/* ---------------------------------------------------------------- helpers ------------- */

/* MPI's type for each dtype's bytes; bool travels as unsigned char (0 or 1). */
static MPI_Datatype mpi_type(lunet_dtype_t dt)
{
    static const MPI_Datatype types[] = {
        [LUNET_DTYPE_FLOAT32] = MPI_FLOAT,      [LUNET_DTYPE_FLOAT64] = MPI_DOUBLE,
        [LUNET_DTYPE_INT64] = MPI_INT64_T,      [LUNET_DTYPE_UINT8] = MPI_UINT8_T,
        [LUNET_DTYPE_BOOL] = MPI_UNSIGNED_CHAR,
    };
    _Static_assert(sizeof types / sizeof types[0] == LUNET_DTYPE_COUNT, "one type per dtype");
    return types[dt];
}

/* MPI's reduction for op on dtype dt (avg is a sum here, divided afterwards). */
static MPI_Op mpi_op(lunet_dist_op_t op, lunet_dtype_t dt)
{
    if (dt == LUNET_DTYPE_BOOL) /* 0/1 bytes: max is or, min is and */
        return op == LUNET_DIST_OP_MIN ? MPI_MIN : MPI_MAX;
    return op == LUNET_DIST_OP_MAX ? MPI_MAX : op == LUNET_DIST_OP_MIN ? MPI_MIN : MPI_SUM;
}

/* One in-place collective over count elements at p, in pieces MPI's int counts can hold:
   a broadcast from root when root >= 0, else an all-reduce with op. */
static int in_pieces(void *p, int64_t count, lunet_dtype_t dt, MPI_Op op, int root)
{
    char *c = p;
    size_t es = lunet_dtype_size(dt);
    do {
        int n = count > INT_MAX ? INT_MAX : (int)count;
        int rc = root >= 0 ? MPI_Bcast(c, n, mpi_type(dt), root, group.comm)
                           : MPI_Allreduce(MPI_IN_PLACE, c, n, mpi_type(dt), op, group.comm);
        if (rc != MPI_SUCCESS)
            return rc;
        c += (size_t)n * es;
        count -= n;
    } while (count > 0);
    return MPI_SUCCESS;
}

/* A tensor argument: present, and writable when the collective writes into it. */
static lunet_status_t check_arg(const char *name, const char *what, const lunet_tensor_t *t,
                                bool write)
{
    if (t == NULL)
        return lunet_error_set(LUNET_STATUS_TYPE, "%s: %s must be a tensor", name, what);
    return write ? lunet_tensor_check_writable(t) : LUNET_OK;
}

/* *out = t itself (a new reference) when contiguous, else a contiguous copy of it. */
static lunet_status_t as_contiguous(lunet_tensor_t **out, lunet_tensor_t *t)
{
    if (lunet_tensor_is_contiguous(t)) {
        lunet_tensor_retain(t);
        *out = t;
        return LUNET_OK;
    }
    lunet_tensor_t *c;
    lunet_status_t st = lunet_tensor_empty_like(&c, t, t->dtype);
    if (st)
        return st;
    lunet_copy_cast(c, t);
    *out = c;
    return LUNET_OK;
}

/* The collective's result buf back into t (when buf is a copy); t is marked modified. */
static void write_back(lunet_tensor_t *t, lunet_tensor_t *buf)
{
    if (buf != t)
        lunet_copy_cast(t, buf);
    lunet_tensor_bump_version(t);
}

// x (n) contiguous float32/float64: x = x / world, in x's precision (avg after the sum)
static void divide_by(lunet_tensor_t *x, int world)
{
    int64_t n = x->numel;
    if (x->dtype == LUNET_DTYPE_FLOAT32) {
        float *p = lunet_tensor_data(x), w = (float)world;
        for (int64_t i = 0; i < n; i++)
            p[i] = p[i] / w;
    } else {
        double *p = lunet_tensor_data(x), w = (double)world;
        for (int64_t i = 0; i < n; i++)
            p[i] = p[i] / w;
    }
}

/* ---------------------------------------------------------------- collectives --------- */

/*
 * The shared part of all_reduce (root -1: every rank sends and receives, combined by op) and
 * broadcast (root: the sender), after the call's own checks (st): the ranks agree, then t's
 * data goes through a contiguous buffer, in pieces, and back into t (the root of a broadcast
 * keeps its own).
 */
static lunet_status_t in_place_collective(lunet_status_t st, call_kind_t kind, lunet_tensor_t *t,
                                          lunet_dist_op_t op, int root)
{
    int64_t h[H_LEN];
    header_init(h, kind);
    h[H_OP] = op;
    h[H_ROOT] = root;
    lunet_tensor_t *buf = NULL;
    if (!st) {
        header_tensor(h, t);
        st = as_contiguous(&buf, t); /* before agreeing: nothing may fail after it */
    }
    if ((st = agree(h, st)))
        goto done;
    MPI_Op mop = root < 0 ? mpi_op(op, t->dtype) : MPI_OP_NULL;
    int rc = in_pieces(lunet_tensor_data(buf), buf->numel, t->dtype, mop, root);
    if (rc != MPI_SUCCESS) {
        st = mpi_fail(call_names[kind], rc);
        goto done;
    }
    if (root < 0 && op == LUNET_DIST_OP_AVG)
        divide_by(buf, group.size);
    if (root != group.rank)
        write_back(t, buf);
done:
    lunet_tensor_release(buf);
    return st;
}

lunet_status_t lunet_dist_all_reduce(lunet_tensor_t *t, lunet_dist_op_t op)
{
    if (!group.initialized)
        return not_initialized();
    lunet_status_t st = check_arg("all_reduce", "tensor", t, true);
    if (!st && (unsigned)op >= LUNET_DIST_OP_COUNT)
        st = lunet_error_set(LUNET_STATUS_VALUE, "all_reduce: invalid op %d", (int)op);
    if (!st && op == LUNET_DIST_OP_AVG && !lunet_dtype_is_floating(t->dtype))
        st = lunet_error_set(LUNET_STATUS_RUNTIME,
                             "all_reduce: op avg needs a floating point tensor, got %s",
                             lunet_dtype_name(t->dtype));
    return in_place_collective(st, CALL_ALL_REDUCE, t, op, -1);
}

lunet_status_t lunet_dist_broadcast(lunet_tensor_t *t, int src)
{
    if (!group.initialized)
        return not_initialized();
    lunet_status_t st = check_arg("broadcast", "tensor", t, src != group.rank);
    if (!st && (src < 0 || src >= group.size))
        st = lunet_error_set(LUNET_STATUS_RUNTIME,
                             "broadcast: invalid root rank: %d (world size %d)", src, group.size);
    return in_place_collective(st, CALL_BROADCAST, t, LUNET_DIST_OP_SUM, src);
}

/* The local checks of all_gather: one output per rank, each of the input's shape and dtype. */
static lunet_status_t check_gather(lunet_tensor_t *const *outs, int nouts, lunet_tensor_t *t)
{
    lunet_status_t st = check_arg("all_gather", "tensor", t, false);
    if (st)
        return st;
    if (nouts != group.size)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "all_gather: tensor_list has %d tensors, expected one per rank (%d)",
                               nouts, group.size);
    if (t->numel > INT_MAX)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "all_gather: tensors of more than %d elements are not supported",
                               INT_MAX);
    for (int i = 0; i < nouts; i++) {
        if ((st = check_arg("all_gather", "every entry of tensor_list", outs[i], true)))
            return st;
        if (outs[i]->dtype != t->dtype ||
            !lunet_shape_equal(outs[i]->ndim, outs[i]->shape, t->ndim, t->shape)) {
            char sa[LUNET_SHAPE_BUF], sb[LUNET_SHAPE_BUF];
            return lunet_error_set(
                LUNET_STATUS_RUNTIME,
                "all_gather: tensor_list[%d] is %s %s, the input tensor is %s %s", i,
                lunet_dtype_name(outs[i]->dtype),
                lunet_shape_str(sa, sizeof sa, outs[i]->ndim, outs[i]->shape),
                lunet_dtype_name(t->dtype), lunet_shape_str(sb, sizeof sb, t->ndim, t->shape));
        }
    }
    return LUNET_OK;
}

lunet_status_t lunet_dist_all_gather(lunet_tensor_t *const *outs, int nouts, lunet_tensor_t *t)
{
    if (!group.initialized)
        return not_initialized();
    int64_t h[H_LEN];
    header_init(h, CALL_ALL_GATHER);
    lunet_tensor_t *send = NULL, *recv = NULL;
    lunet_status_t st = check_gather(outs, nouts, t);
    if (!st) {
        header_tensor(h, t);
        int64_t total = t->numel * group.size; /* <= INT_MAX * size: no overflow */
        if (!(st = as_contiguous(&send, t)))
            st = lunet_tensor_empty(&recv, t->dtype, 1, &total);
    }
    if ((st = agree(h, st)))
        goto done;
    int n = (int)t->numel;
    int rc = MPI_Allgather(lunet_tensor_data(send), n, mpi_type(t->dtype), lunet_tensor_data(recv),
                           n, mpi_type(t->dtype), group.comm);
    if (rc != MPI_SUCCESS) {
        st = mpi_fail("all_gather", rc);
        goto done;
    }
    for (int i = 0; i < nouts; i++) {
        lunet_tensor_t *part;
        int64_t strides[LUNET_MAX_DIMS], s = 1;
        for (int d = t->ndim - 1; d >= 0; d--) {
            strides[d] = s;
            s *= t->shape[d];
        }
        if ((st = lunet_tensor_make_view(&part, recv, t->ndim, t->shape, strides, (int64_t)i * n)))
            goto done;
        write_back(outs[i], part);
        lunet_tensor_release(part);
    }
done:
    LUNET_RELEASE(send, recv);
    return st;
}

lunet_status_t lunet_dist_barrier(void)
{
    if (!group.initialized)
        return not_initialized();
    int64_t h[H_LEN];
    header_init(h, CALL_BARRIER);
    lunet_status_t st = agree(h, LUNET_OK);
    if (st)
        return st;
    int rc = MPI_Barrier(group.comm);
    return rc == MPI_SUCCESS ? LUNET_OK : mpi_fail("barrier", rc);
}

/* The local checks of the coalesced all-reduce: n contiguous tensors of flat's dtype whose
   sizes add up to flat's. */
static lunet_status_t check_coalesced(lunet_tensor_t *flat, int n, lunet_tensor_t *const *ts,
                                      double prescale)
{
    const char *name = "all_reduce_coalesced";
    lunet_status_t st = check_arg(name, "the flat buffer", flat, true);
    if (st)
        return st;
    if (!lunet_tensor_is_contiguous(flat))
        return lunet_error_set(LUNET_STATUS_RUNTIME, "%s: the flat buffer must be contiguous",
                               name);
    if (prescale != 1 && !lunet_dtype_is_floating(flat->dtype))
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "%s: a scale needs floating point tensors, got %s", name,
                               lunet_dtype_name(flat->dtype));
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        if ((st = check_arg(name, "every tensor", ts[i], true)))
            return st;
        if (ts[i]->dtype != flat->dtype || !lunet_tensor_is_contiguous(ts[i]))
            return lunet_error_set(LUNET_STATUS_RUNTIME,
                                   "%s: tensor %d is %s%s, the flat buffer is %s", name, i,
                                   lunet_tensor_is_contiguous(ts[i]) ? "" : "non-contiguous ",
                                   lunet_dtype_name(ts[i]->dtype), lunet_dtype_name(flat->dtype));
        total += ts[i]->numel;
    }
    if (total != flat->numel)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "%s: the tensors hold %lld elements, the flat buffer %lld", name,
                               (long long)total, (long long)flat->numel);
    return LUNET_OK;
}

// dst (n) = src (n) * s, contiguous; s rounded to float32 for float32 (PyTorch's scalar rule)
static void scale_copy(void *dst, const void *src, int64_t n, lunet_dtype_t dt, double s)
{
    if (s == 1) {
        if (dst != src)
            memcpy(dst, src, (size_t)n * lunet_dtype_size(dt));
    } else if (dt == LUNET_DTYPE_FLOAT32) {
        float *d = dst, f = (float)s;
        const float *x = src;
        for (int64_t i = 0; i < n; i++)
            d[i] = x[i] * f;
    } else {
        double *d = dst;
        const double *x = src;
        for (int64_t i = 0; i < n; i++)
            d[i] = x[i] * s;
    }
}

lunet_status_t lunet_dist_all_reduce_coalesced(lunet_tensor_t *flat, int n,
                                               lunet_tensor_t *const *tensors, double prescale)
{
    if (!group.initialized)
        return not_initialized();
    int64_t h[H_LEN];
    header_init(h, CALL_COALESCED);
    lunet_status_t st = check_coalesced(flat, n, tensors, prescale);
    if (!st)
        header_tensor(h, flat);
    if ((st = agree(h, st)))
        return st;
    size_t es = lunet_dtype_size(flat->dtype);
    char *base = lunet_tensor_data(flat);
    int64_t off = 0;
    for (int i = 0; i < n; i++) { /* tensors that already live in flat are scaled in place */
        scale_copy(base + (size_t)off * es, lunet_tensor_data(tensors[i]), tensors[i]->numel,
                   flat->dtype, prescale);
        off += tensors[i]->numel;
    }
    int rc = in_pieces(base, flat->numel, flat->dtype, MPI_SUM, -1);
    if (rc != MPI_SUCCESS)
        return mpi_fail("all_reduce_coalesced", rc);
    lunet_tensor_bump_version(flat);
    off = 0;
    for (int i = 0; i < n; i++) {
        void *p = lunet_tensor_data(tensors[i]);
        if (p != base + (size_t)off * es)
            memcpy(p, base + (size_t)off * es, (size_t)tensors[i]->numel * es);
        lunet_tensor_bump_version(tensors[i]);
        off += tensors[i]->numel;
    }
    return LUNET_OK;
}

lunet_status_t lunet_dist_destroy(void)
{
    if (!group.initialized)
        return not_initialized();
    MPI_Comm_free(&group.comm);
    group.initialized = false;
    if (group.owns_mpi) {
        group.finalized = true;
        int rc = MPI_Finalize();
        if (rc != MPI_SUCCESS)
            return mpi_fail("destroy_process_group", rc);
    }
    return LUNET_OK;
}

void lunet_dist_abort(int code)
{
    int inited = 0, fin = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&fin);
    if (inited && !fin)
        MPI_Abort(MPI_COMM_WORLD, code);
}

#endif /* LUNET_HAVE_MPI */
