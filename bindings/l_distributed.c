/*
 * l_distributed.c - lunet.distributed, torch.distributed's names over runtime/distributed.c:
 * init_process_group, is_initialized, get_rank, get_world_size, all_reduce, broadcast,
 * all_gather, barrier, destroy_process_group, ReduceOp.  DistributedDataParallel
 * (lunet/nn/parallel.lua) and DistributedSampler (lunet/data/distributed.lua) are Lua, on
 * top of these and of three private helpers: the gradient reduction of a bucket, the
 * sampler's index order, and the hook that runs after Tensor:backward() (DDP's trigger).
 *
 * At lua_close a group still open is destroyed (MPI finalised), so a script that ends
 * normally leaves mpirun content; the lunet program ends the whole job on an uncaught error
 * instead (lunet_dist_abort), so that the other ranks do not wait in a collective forever.
 */
#include "lbind.h"
#include "lunet_embed.h" /* luaopen_lunet */

#include <string.h>

/* "mpi", or {backend = "mpi"} (world_size and rank are ignored with MPI, as in PyTorch). */
static int l_init_process_group(lua_State *L)
{
    const char *backend = NULL;
    if (lua_type(L, 1) == LUA_TTABLE) {
        lua_getfield(L, 1, "backend");
        backend = luaL_optstring(L, -1, NULL);
        if (!backend) /* PyTorch makes the backend optional; Lunet has one */
            backend = "mpi";
    } else {
        backend = luaL_optstring(L, 1, "mpi");
    }
    LB_CHECK(L, lunet_dist_init(backend));
    return 0;
}

/* The runtime's answers, one function each: a fact, a number, or a status. */
static int push_fact(lua_State *L, bool (*fact)(void))
{
    lua_pushboolean(L, fact());
    return 1;
}

static int push_number(lua_State *L, lunet_status_t (*get)(int *))
{
    int v;
    LB_CHECK(L, get(&v));
    lua_pushinteger(L, v);
    return 1;
}

static int call_checked(lua_State *L, lunet_status_t (*fn)(void))
{
    LB_CHECK(L, fn());
    return 0;
}

static int l_is_initialized(lua_State *L) { return push_fact(L, lunet_dist_is_initialized); }
static int l_is_available(lua_State *L) { return push_fact(L, lunet_dist_is_available); }
static int l_get_rank(lua_State *L) { return push_number(L, lunet_dist_get_rank); }
static int l_get_world_size(lua_State *L) { return push_number(L, lunet_dist_get_world_size); }

/* The op of all_reduce(t, op) / all_reduce(t, {op = ...}); sum when absent. */
static lunet_dist_op_t check_op(lua_State *L, int idx)
{
    lunet_dist_op_t op = LUNET_DIST_OP_SUM;
    if (lua_isnoneornil(L, idx))
        return op;
    if (lua_type(L, idx) == LUA_TTABLE) {
        lua_getfield(L, idx, "async_op");
        if (lua_toboolean(L, -1))
            luaL_error(L, "all_reduce: async_op is not supported by Lunet");
        lua_getfield(L, idx, "op");
        if (!lua_isnil(L, -1)) {
            const char *name = luaL_checkstring(L, -1);
            if (lunet_dist_op_parse(&op, name))
                lb_error(L);
        }
        lua_pop(L, 2);
        return op;
    }
    if (lunet_dist_op_parse(&op, luaL_checkstring(L, idx)))
        lb_error(L);
    return op;
}

/*
 * An argument refused here, on one rank only, must not leave the other ranks waiting in the
 * collective forever (a script that catches the error with pcall): the rank first takes part
 * with an argument the runtime refuses too -- the agreement then fails the call on every
 * rank, naming this one -- and then raises its own message through the usual check.  The
 * try_* functions say, without raising, whether the check would pass.
 */
static bool try_op(lua_State *L, int idx, lunet_dist_op_t *op)
{
    *op = LUNET_DIST_OP_SUM;
    if (lua_isnoneornil(L, idx))
        return true;
    int top = lua_gettop(L);
    bool ok;
    if (lua_type(L, idx) == LUA_TTABLE) {
        lua_getfield(L, idx, "async_op");
        lua_getfield(L, idx, "op");
        ok = !lua_toboolean(L, -2) &&
             (lua_isnil(L, -1) ||
              (lua_isstring(L, -1) && lunet_dist_op_parse(op, lua_tostring(L, -1)) == LUNET_OK));
    } else {
        ok = lua_isstring(L, idx) && lunet_dist_op_parse(op, lua_tostring(L, idx)) == LUNET_OK;
    }
    lua_settop(L, top);
    return ok;
}

/* Raises the message of the check that failed (the collective has been taken part in). */
static int raise_refused(lua_State *L, lunet_status_t took_part)
{
    (void)took_part; /* it failed as intended; this rank's own message follows */
    return luaL_error(L, "bad arguments"); /* not reached: the caller's check raises first */
}

static int l_all_reduce(lua_State *L)
{
    lunet_tensor_t *t = lb_totensor(L, 1);
    lunet_dist_op_t op;
    if (!t || !try_op(L, 2, &op)) {
        lunet_status_t st = lunet_dist_all_reduce(t, LUNET_DIST_OP_COUNT);
        lb_checktensor(L, 1);
        check_op(L, 2);
        return raise_refused(L, st);
    }
    LB_CHECK(L, lunet_dist_all_reduce(t, op));
    return 0;
}

/* src of broadcast(t, src) / broadcast(t, {src = ...}); raises when raise, else returns
   false for a bad one. */
static bool read_src(lua_State *L, int *src, bool raise)
{
    int top = lua_gettop(L);
    int idx = 2;
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_getfield(L, 2, "src");
        idx = -1;
    }
    int isint = 0;
    lua_Integer v = lua_tointegerx(L, idx, &isint);
    if (raise) {
        v = luaL_checkinteger(L, idx);
        luaL_argcheck(L, v >= INT32_MIN && v <= INT32_MAX, 2, "src out of range");
    }
    lua_settop(L, top);
    *src = (int)v;
    return isint && v >= INT32_MIN && v <= INT32_MAX;
}

static int l_broadcast(lua_State *L)
{
    lunet_tensor_t *t = lb_totensor(L, 1);
    int src;
    if (!t || !read_src(L, &src, false)) {
        lunet_status_t st = lunet_dist_broadcast(t, -1);
        lb_checktensor(L, 1);
        read_src(L, &src, true);
        return raise_refused(L, st);
    }
    LB_CHECK(L, lunet_dist_broadcast(t, src));
    return 0;
}

/* Reads the sequence at idx as tensors into ts (at most cap); returns how many it holds. */
static int check_tensor_list(lua_State *L, int idx, lunet_tensor_t **ts, int cap)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_Integer n = luaL_len(L, idx);
    luaL_argcheck(L, n <= cap, idx, "too many tensors");
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, idx, i);
        ts[i - 1] = lb_totensor(L, -1);
        if (!ts[i - 1])
            luaL_error(L, "bad argument #%d (entry %d is %s, a tensor was expected)", idx, (int)i,
                       luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    return (int)n;
}

/* The tensor lists of a call live in a userdata of the right size (no fixed limit). */
static lunet_tensor_t **tensor_array(lua_State *L, int idx)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_Integer n = luaL_len(L, idx);
    luaL_argcheck(L, n >= 0 && n < (1 << 24), idx, "too many tensors");
    return lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof(lunet_tensor_t *), 0);
}

/* Whether check_tensor_list would accept the sequence at idx (see try_op). */
static bool try_tensor_list(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TTABLE)
        return false;
    lua_Integer n = luaL_len(L, idx);
    if (n < 0 || n >= (1 << 24))
        return false;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, idx, i);
        bool ok = lb_totensor(L, -1) != NULL;
        lua_pop(L, 1);
        if (!ok)
            return false;
    }
    return true;
}

/* all_gather(tensor_list, t): tensor_list[r + 1] receives rank r's t. */
static int l_all_gather(lua_State *L)
{
    lunet_tensor_t *t = lb_totensor(L, 2);
    if (!t || !try_tensor_list(L, 1)) {
        lunet_status_t st = lunet_dist_all_gather(NULL, 0, NULL);
        lb_checktensor(L, 2);
        lunet_tensor_t **outs = tensor_array(L, 1);
        check_tensor_list(L, 1, outs, (int)luaL_len(L, 1));
        return raise_refused(L, st);
    }
    lunet_tensor_t **outs = tensor_array(L, 1);
    int n = check_tensor_list(L, 1, outs, (int)luaL_len(L, 1));
    LB_CHECK(L, lunet_dist_all_gather(outs, n, t));
    return 0;
}

static int l_barrier(lua_State *L) { return call_checked(L, lunet_dist_barrier); }
static int l_destroy_process_group(lua_State *L) { return call_checked(L, lunet_dist_destroy); }

/*
 * _c.all_reduce_grads(flat, params, prescale): DistributedDataParallel's reduction of one
 * bucket.  The gradients are read from the parameters here (no Lua table of tensors per
 * step): a parameter without one gets zeros (it took no part in this step's graph), a
 * non-contiguous one a contiguous copy, so that every rank sends the same layout.
 */
#define BUCKET_STACK 64
static int c_all_reduce_grads(lua_State *L)
{
    lunet_tensor_t *flat = lb_checktensor(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    double prescale = luaL_optnumber(L, 3, 1.0);
    lua_Integer n = luaL_len(L, 2);
    luaL_argcheck(L, n >= 0 && n < (1 << 24), 2, "too many parameters");
    lunet_tensor_t *stack[BUCKET_STACK]; /* a model's few tensors: no allocation per step */
    lunet_tensor_t **grads = n <= BUCKET_STACK ? stack
                                               : lua_newuserdatauv(L, (size_t)n * sizeof *grads, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 2, i);
        lunet_tensor_t *p = lb_totensor(L, -1);
        lua_pop(L, 1); /* the bucket's table keeps the parameter alive */
        if (!p)
            return luaL_error(L, "all_reduce_grads: parameter %d is not a tensor", (int)i);
        lunet_tensor_t *g = NULL; /* a new .grad, set through autograd.c's setter */
        lunet_status_t st = LUNET_OK;
        if (!p->grad) {
            st = lunet_tensor_zeros(&g, p->dtype, p->ndim, p->shape);
        } else if (!lunet_tensor_is_contiguous(p->grad) || p->grad->dtype != p->dtype) {
            lunet_tensor_t *c = NULL;
            st = lunet_tensor_to(&c, p->grad, p->dtype);
            if (!st && !lunet_tensor_is_contiguous(c))
                st = lunet_tensor_contiguous(&g, c);
            else if (!st) {
                g = c;
                c = NULL;
            }
            lunet_tensor_release(c);
        }
        if (!st && g)
            st = lunet_tensor_set_grad(p, g);
        lunet_tensor_release(g);
        if (st)
            return lb_error(L);
        grads[i - 1] = p->grad;
    }
    LB_CHECK(L, lunet_dist_all_reduce_coalesced(flat, (int)n, grads, prescale));
    return 0;
}

/*
 * _c.distributed_sampler_indices(n, shuffle, seed, num_replicas, rank, num_samples) ->
 * int64 (num_samples): PyTorch's DistributedSampler order.  The permutation is randperm(n)
 * from a fresh generator seeded with `seed` (seed + epoch), else 0..n-1; position j of the
 * padded list of num_samples * num_replicas is perm[j] for j < n, else perm[(j - n) % n]
 * (PyTorch pads by repeating the list from its start); rank r takes j = r, r + R, r + 2R, ...
 */
static int c_distributed_sampler_indices(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    bool shuffle = lua_toboolean(L, 2);
    lua_Integer seed = luaL_checkinteger(L, 3);
    lua_Integer reps = luaL_checkinteger(L, 4), rank = luaL_checkinteger(L, 5);
    lua_Integer count = luaL_checkinteger(L, 6);
    luaL_argcheck(L, n >= 0, 1, "negative size");
    luaL_argcheck(L, reps > 0 && rank >= 0 && rank < reps, 5, "rank out of range");
    luaL_argcheck(L, count >= 0 && (n > 0 || count == 0) && count <= (INT64_MAX - rank) / reps, 6,
                  "bad sample count");
    lunet_tensor_t *perm = NULL, *out;
    if (shuffle && n > 0) {
        lunet_generator_t g;
        lunet_generator_seed(&g, (uint64_t)seed);
        LB_CHECK(L, lunet_tensor_randperm(&perm, &g, n));
    }
    int64_t len = count;
    lunet_status_t st = lunet_tensor_empty(&out, LUNET_DTYPE_INT64, 1, &len);
    if (st) {
        lunet_tensor_release(perm);
        return lb_error(L);
    }
    const int64_t *p = perm ? lunet_tensor_data(perm) : NULL;
    int64_t *o = lunet_tensor_data(out);
    for (int64_t k = 0; k < count; k++) {
        int64_t j = rank + k * reps;
        int64_t at = j < n ? j : (j - n) % n;
        o[k] = p ? p[at] : at;
    }
    lunet_tensor_release(perm);
    lb_pushtensor(L, out);
    return 1;
}

/* ---------------------------------------------------------------- after backward ------ */

#define POST_BACKWARD_KEY "lunet.post_backward"

/* _c.set_post_backward(fn or nil): fn runs after every successful Tensor:backward(). */
static int c_set_post_backward(lua_State *L)
{
    if (!lua_isnil(L, 1))
        luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, POST_BACKWARD_KEY);
    return 0;
}

void lb_post_backward(lua_State *L)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, POST_BACKWARD_KEY) == LUA_TFUNCTION)
        lua_call(L, 0, 0);
    else
        lua_pop(L, 1);
}

static const luaL_Reg private_funcs[] = {
    {"all_reduce_grads", c_all_reduce_grads},
    {"distributed_sampler_indices", c_distributed_sampler_indices},
    {"set_post_backward", c_set_post_backward},
    {NULL, NULL},
};

static const luaL_Reg dist_funcs[] = {
    {"init_process_group", l_init_process_group},
    {"is_initialized", l_is_initialized},
    {"is_available", l_is_available},
    {"is_mpi_available", l_is_available},
    {"get_rank", l_get_rank},
    {"get_world_size", l_get_world_size},
    {"all_reduce", l_all_reduce},
    {"broadcast", l_broadcast},
    {"all_gather", l_all_gather},
    {"barrier", l_barrier},
    {"destroy_process_group", l_destroy_process_group},
    {NULL, NULL},
};

/* __gc of a sentinel kept in the module: the group ends with the Lua state.  A failure has
   nowhere to go from a finalizer, and the process is ending its group anyway. */
static int sentinel_gc(lua_State *L)
{
    (void)L;
    if (lunet_dist_is_initialized())
        (void)!lunet_dist_destroy();
    return 0;
}

void lb_open_distributed(lua_State *L)
{
    lb_private_funcs(L, -1, private_funcs);
    lua_newtable(L);
    luaL_setfuncs(L, dist_funcs, 0);
    lua_newtable(L); /* ReduceOp.SUM == "sum", ... */
    for (int op = 0; op < LUNET_DIST_OP_COUNT; op++) {
        const char *name = lunet_dist_op_name((lunet_dist_op_t)op);
        char upper[8];
        size_t i = 0;
        for (; name[i] && i + 1 < sizeof upper; i++)
            upper[i] = (char)(name[i] - 'a' + 'A');
        upper[i] = '\0';
        lua_pushstring(L, name);
        lua_setfield(L, -2, upper);
    }
    lua_setfield(L, -2, "ReduceOp");
    lua_newuserdatauv(L, 1, 0);
    if (luaL_newmetatable(L, "lunet.distributed.sentinel")) {
        lua_pushcfunction(L, sentinel_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "_sentinel");
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE); /* require "lunet.distributed" */
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "lunet.distributed");
    lua_pop(L, 1);
    lua_setfield(L, -2, "distributed");
}

/* `require "lunet.distributed"` from plain lua5.4 through the all-in-one C loader. */
int luaopen_lunet_distributed(lua_State *L)
{
    luaL_requiref(L, "lunet", luaopen_lunet, 0);
    lua_getfield(L, -1, "distributed");
    return 1;
}
