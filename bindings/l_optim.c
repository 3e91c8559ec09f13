/*
 * l_optim.c - the C side of lunet.optim's Adam and AdamW: one fused C update per parameter
 * (runtime/adam.c).  The classes, parameter groups, option checks (Lua knows whether a number
 * is an integer, which PyTorch's messages show), state_dict and lr schedulers are Lua, in
 * bindings/lua/lunet/optim.lua and optim/lr_scheduler.lua.
 */
#include "lbind.h"

/* The group's options: {lr =, betas = {b1, b2}, eps =, weight_decay =, amsgrad =, maximize =}. */
static void check_adam_opts(lua_State *L, int idx, bool decoupled, lunet_adam_options_t *o)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_getfield(L, idx, "lr");
    o->lr = luaL_checknumber(L, -1);
    lua_getfield(L, idx, "eps");
    o->eps = luaL_checknumber(L, -1);
    lua_getfield(L, idx, "weight_decay");
    o->weight_decay = luaL_checknumber(L, -1);
    lua_getfield(L, idx, "amsgrad");
    o->amsgrad = lua_toboolean(L, -1);
    lua_getfield(L, idx, "maximize");
    o->maximize = lua_toboolean(L, -1);
    lua_pop(L, 5);
    if (lua_getfield(L, idx, "betas") != LUA_TTABLE)
        luaL_error(L, "adam: betas must be a table {beta1, beta2}");
    lua_rawgeti(L, -1, 1);
    o->beta1 = luaL_checknumber(L, -1);
    lua_rawgeti(L, -2, 2);
    o->beta2 = luaL_checknumber(L, -1);
    lua_pop(L, 3);
    o->decoupled = decoupled;
}

static const char *const STATE_KEYS[3] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};

/* _c.adam_update(p, grad, state, group, decoupled): updates p and the state table
   {step =, exp_avg =, exp_avg_sq = [, max_exp_avg_sq =]} in place (missing tensors made). */
static int c_adam_update(lua_State *L)
{
    lunet_tensor_t *p = lb_checktensor(L, 1), *g = lb_checktensor(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    lunet_adam_options_t o;
    check_adam_opts(L, 4, lua_toboolean(L, 5), &o);
    lunet_adam_state_t s = {0};
    lunet_tensor_t **slot[3] = {&s.exp_avg, &s.exp_avg_sq, &s.max_exp_avg_sq};
    lua_getfield(L, 3, "step");
    s.step = luaL_optnumber(L, -1, 0);
    lua_pop(L, 1);
    for (int i = 0; i < 3; i++) {
        lua_getfield(L, 3, STATE_KEYS[i]);
        *slot[i] = lua_isnil(L, -1) ? NULL : lb_checktensor(L, -1); /* borrowed from the table */
        lua_pop(L, 1);
    }
    lunet_tensor_t *had[3] = {s.exp_avg, s.exp_avg_sq, s.max_exp_avg_sq};
    LB_CHECK(L, lunet_adam_update(p, g, &s, &o));
    for (int i = 0; i < 3; i++)
        if (*slot[i] != had[i]) { /* created by this step: the table takes the reference */
            lb_pushtensor(L, *slot[i]);
            lua_setfield(L, 3, STATE_KEYS[i]);
        }
    lua_pushnumber(L, s.step);
    lua_setfield(L, 3, "step");
    return 0;
}

static const luaL_Reg optim_c[] = {
    {"adam_update", c_adam_update},
    {NULL, NULL},
};

void lb_open_optim(lua_State *L) { lb_private_funcs(L, lua_gettop(L), optim_c); }
