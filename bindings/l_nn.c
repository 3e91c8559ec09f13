/*
 * l_nn.c - the C side of lunet.nn: the fused Linear forward (Linear's initialisation is
 * nn.init, bindings/l_init.c; the optimizers' C side is l_optim.c).  The classes themselves (nn.Module, nn.Linear,
 * optim.SGD, ...) are Lua, in bindings/lua/lunet/nn.lua and optim.lua.
 */
#include "lbind.h"

/* _c.linear(x, w [, b [, relu]]) -> y */
static int c_linear(lua_State *L)
{
    lunet_tensor_t *x = lb_checktensor(L, 1), *w = lb_checktensor(L, 2);
    lunet_tensor_t *b = lua_isnoneornil(L, 3) ? NULL : lb_checktensor(L, 3);
    bool relu = lua_toboolean(L, 4);
    lunet_tensor_t *y;
    return lb_result(L, lunet_nn_linear(&y, x, w, b, relu), &y);
}

/* lunet.memory_reserved(): bytes the runtime holds for tensor data (live + cached) */
static int l_memory_reserved(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)lunet_memory_reserved());
    return 1;
}

static const luaL_Reg nn_c[] = {
    {"linear", c_linear},
    {NULL, NULL},
};

void lb_open_nn(lua_State *L)
{
    lb_private_funcs(L, lua_gettop(L), nn_c);
    lua_pushcfunction(L, l_memory_reserved);
    lua_setfield(L, -2, "memory_reserved");
}
