/*
 * l_runtime.c - the runtime's resources: lunet.set_num_threads(n) and lunet.get_num_threads(),
 * PyTorch's names for the worker pool (runtime/parallel.c), and lunet.memory_reserved().
 */
#include "lbind.h"

/* lunet.set_num_threads(n): n >= 1; results are the same bits on any thread count. */
static int l_set_num_threads(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    if (n > 1 << 20)
        n = 1 << 20; /* capped by the runtime anyway */
    if (lunet_set_num_threads(n < 0 ? 0 : (int)n) != LUNET_OK)
        return lb_error(L);
    return 0;
}

/* lunet.get_num_threads() -> the thread count large operations use */
static int l_get_num_threads(lua_State *L)
{
    lua_pushinteger(L, lunet_get_num_threads());
    return 1;
}

/* lunet.memory_reserved(): bytes the runtime holds for tensor data (live + cached) */
static int l_memory_reserved(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)lunet_memory_reserved());
    return 1;
}

static const luaL_Reg functions[] = {
    {"set_num_threads", l_set_num_threads},
    {"get_num_threads", l_get_num_threads},
    {"memory_reserved", l_memory_reserved},
    {NULL, NULL},
};

void lb_open_runtime(lua_State *L) { luaL_setfuncs(L, functions, 0); }
