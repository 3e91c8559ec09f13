/*
 * l_init.c - the C side of lunet.nn.init (bindings/lua/lunet/nn/init.lua): PyTorch's gains,
 * fans and the Kaiming / Xavier fills of runtime/init.c, from the default generator.
 */
#include "lbind.h"

/* _c.init_gain(nonlinearity [, param]) -> gain (param nil: PyTorch's None) */
static int c_init_gain(lua_State *L)
{
    const char *nl = luaL_checkstring(L, 1);
    bool has = !lua_isnoneornil(L, 2);
    double param = has ? luaL_checknumber(L, 2) : 0;
    double gain;
    LB_CHECK(L, lunet_init_calculate_gain(&gain, nl, has, param));
    lua_pushnumber(L, gain);
    return 1;
}

/* _c.init_fans(t) -> fan_in, fan_out */
static int c_init_fans(lua_State *L)
{
    int64_t fan_in, fan_out;
    LB_CHECK(L, lunet_init_fans(&fan_in, &fan_out, lb_checktensor(L, 1)));
    lua_pushinteger(L, (lua_Integer)fan_in);
    lua_pushinteger(L, (lua_Integer)fan_out);
    return 2;
}

/* _c.init_kaiming(t, a, mode, nonlinearity, normal) */
static int c_init_kaiming(lua_State *L)
{
    lunet_tensor_t *t = lb_checktensor(L, 1);
    double a = luaL_checknumber(L, 2);
    const char *mode = luaL_checkstring(L, 3), *nl = luaL_checkstring(L, 4);
    if (lua_toboolean(L, 5))
        LB_CHECK(L, lunet_init_kaiming_normal_(t, NULL, a, mode, nl));
    else
        LB_CHECK(L, lunet_init_kaiming_uniform_(t, NULL, a, mode, nl));
    return 0;
}

/* _c.init_xavier(t, gain, normal) */
static int c_init_xavier(lua_State *L)
{
    lunet_tensor_t *t = lb_checktensor(L, 1);
    double gain = luaL_checknumber(L, 2);
    if (lua_toboolean(L, 3))
        LB_CHECK(L, lunet_init_xavier_normal_(t, NULL, gain));
    else
        LB_CHECK(L, lunet_init_xavier_uniform_(t, NULL, gain));
    return 0;
}

static const luaL_Reg init_c[] = {
    {"init_gain", c_init_gain},
    {"init_fans", c_init_fans},
    {"init_kaiming", c_init_kaiming},
    {"init_xavier", c_init_xavier},
    {NULL, NULL},
};

void lb_open_init(lua_State *L) { lb_private_funcs(L, lua_gettop(L), init_c); }
