/*
 * l_distributed.c - lunet.distributed, torch.distributed's names over runtime/distributed.c:
 * init_process_group, is_initialized, get_rank, get_world_size, all_reduce, broadcast,
 * all_gather, barrier, destroy_process_group, ReduceOp.  DistributedDataParallel and
 * DistributedSampler are Lua, on top of these.
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

static int l_is_initialized(lua_State *L)
{
    lua_pushboolean(L, lunet_dist_is_initialized());
    return 1;
}

static int l_is_available(lua_State *L)
{
    lua_pushboolean(L, lunet_dist_is_available());
    return 1;
}

static int l_get_rank(lua_State *L)
{
    int r;
    LB_CHECK(L, lunet_dist_get_rank(&r));
    lua_pushinteger(L, r);
    return 1;
}

static int l_get_world_size(lua_State *L)
{
    int n;
    LB_CHECK(L, lunet_dist_get_world_size(&n));
    lua_pushinteger(L, n);
    return 1;
}

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

static int l_all_reduce(lua_State *L)
{
    lunet_tensor_t *t = lb_checktensor(L, 1);
    lunet_dist_op_t op = check_op(L, 2);
    LB_CHECK(L, lunet_dist_all_reduce(t, op));
    return 0;
}

/* broadcast(t, src) or broadcast(t, {src = ...}) */
static int l_broadcast(lua_State *L)
{
    lunet_tensor_t *t = lb_checktensor(L, 1);
    lua_Integer src;
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_getfield(L, 2, "src");
        src = luaL_checkinteger(L, -1);
        lua_pop(L, 1);
    } else {
        src = luaL_checkinteger(L, 2);
    }
    luaL_argcheck(L, src >= INT32_MIN && src <= INT32_MAX, 2, "src out of range");
    LB_CHECK(L, lunet_dist_broadcast(t, (int)src));
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

/* all_gather(tensor_list, t): tensor_list[r + 1] receives rank r's t. */
static int l_all_gather(lua_State *L)
{
    lunet_tensor_t *t = lb_checktensor(L, 2);
    lunet_tensor_t **outs = tensor_array(L, 1);
    int n = check_tensor_list(L, 1, outs, (int)luaL_len(L, 1));
    LB_CHECK(L, lunet_dist_all_gather(outs, n, t));
    return 0;
}

static int l_barrier(lua_State *L)
{
    LB_CHECK(L, lunet_dist_barrier());
    return 0;
}

static int l_destroy_process_group(lua_State *L)
{
    LB_CHECK(L, lunet_dist_destroy());
    return 0;
}

/* _all_reduce_coalesced(flat, tensors, prescale): DistributedDataParallel's bucket reduction. */
#define COALESCED_STACK 64
static int l_all_reduce_coalesced(lua_State *L)
{
    lunet_tensor_t *flat = lb_checktensor(L, 1);
    double prescale = luaL_optnumber(L, 3, 1.0);
    luaL_checktype(L, 2, LUA_TTABLE);
    lunet_tensor_t *stack[COALESCED_STACK]; /* a model's few tensors: no allocation per step */
    lunet_tensor_t **ts = luaL_len(L, 2) <= COALESCED_STACK ? stack : tensor_array(L, 2);
    int n = check_tensor_list(L, 2, ts, ts == stack ? COALESCED_STACK : (int)luaL_len(L, 2));
    LB_CHECK(L, lunet_dist_all_reduce_coalesced(flat, n, ts, prescale));
    return 0;
}

/* __gc of a sentinel kept in the module: the group ends with the Lua state. */
static int sentinel_gc(lua_State *L)
{
    (void)L;
    /* nowhere to report a failure from a finalizer: the process is ending its group anyway */
    if (lunet_dist_is_initialized() && lunet_dist_destroy() != LUNET_OK)
        return 0;
    return 0;
}

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
    {"_all_reduce_coalesced", l_all_reduce_coalesced},
    {NULL, NULL},
};

void lb_open_distributed(lua_State *L)
{
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
