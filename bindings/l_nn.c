/*
 * l_nn.c - the C side of lunet.nn and lunet.optim: the fused Linear forward and the SGD
 * update (Linear's initialisation is nn.init, bindings/l_init.c).  The classes themselves (nn.Module, nn.Linear,
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

static void check_sgd_opts(lua_State *L, int idx, lunet_sgd_options_t *o)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_getfield(L, idx, "lr");
    o->lr = luaL_checknumber(L, -1);
    lua_getfield(L, idx, "momentum");
    o->momentum = luaL_optnumber(L, -1, 0);
    lua_getfield(L, idx, "dampening");
    o->dampening = luaL_optnumber(L, -1, 0);
    lua_getfield(L, idx, "weight_decay");
    o->weight_decay = luaL_optnumber(L, -1, 0);
    lua_getfield(L, idx, "nesterov");
    o->nesterov = lua_toboolean(L, -1);
    lua_getfield(L, idx, "maximize");
    o->maximize = lua_toboolean(L, -1);
    lua_pop(L, 6);
}

/* _c.sgd_check(opts): raises PyTorch's message for invalid options */
static int c_sgd_check(lua_State *L)
{
    lunet_sgd_options_t o;
    check_sgd_opts(L, 1, &o);
    LB_CHECK(L, lunet_sgd_check(&o));
    return 0;
}

/* _c.sgd_update(p, grad, buf_or_nil, opts) -> buf (the momentum buffer, or nil) */
static int c_sgd_update(lua_State *L)
{
    lunet_tensor_t *p = lb_checktensor(L, 1), *g = lb_checktensor(L, 2);
    lunet_tensor_t *buf = lua_isnoneornil(L, 3) ? NULL : lb_checktensor(L, 3);
    lunet_sgd_options_t o;
    check_sgd_opts(L, 4, &o);
    bool had = buf != NULL;
    LB_CHECK(L, lunet_sgd_update(p, g, &buf, &o));
    if (had)
        lua_pushvalue(L, 3);
    else
        lb_pushtensor(L, buf); /* new buffer, or nil when momentum is 0 */
    return 1;
}

/* lunet.memory_reserved(): bytes the runtime holds for tensor data (live + cached) */
static int l_memory_reserved(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)lunet_memory_reserved());
    return 1;
}

static const luaL_Reg nn_c[] = {
    {"linear", c_linear},
    {"sgd_check", c_sgd_check},
    {"sgd_update", c_sgd_update},
    {NULL, NULL},
};

void lb_open_nn(lua_State *L)
{
    lb_private_funcs(L, lua_gettop(L), nn_c);
    lua_pushcfunction(L, l_memory_reserved);
    lua_setfield(L, -2, "memory_reserved");
}
