/*
 * l_optim.c - the C side of lunet.optim: SGD's step over a whole parameter group (one loop
 * per slab, runtime/optim.c), Adam's and AdamW's fused update per parameter
 * (runtime/adam.c), and the parameter slabs (runtime/slab.c).  The classes, parameter groups, option checks (Lua knows whether a number
 * is an integer, which PyTorch's messages show), state_dict and lr schedulers are Lua, in
 * bindings/lua/lunet/optim.lua and optim/lr_scheduler.lua.
 */
#include "lbind.h"

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

/* Up to 64 tensors on the C stack, more in a userdata left on the Lua stack. */
#define LIST_STACK 64

/* The tensors of the array at idx into a C array (stack if it holds them); *n = how many. */
static lunet_tensor_t **check_tensor_list(lua_State *L, int idx, lunet_tensor_t **stack, int *n)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_Integer len = luaL_len(L, idx);
    luaL_argcheck(L, len < (1 << 24), idx, "too many parameters");
    lunet_tensor_t **t = len <= LIST_STACK ? stack
                                           : lua_newuserdatauv(L, (size_t)len * sizeof *t, 0);
    for (lua_Integer i = 1; i <= len; i++) {
        lua_geti(L, idx, i);
        t[i - 1] = lb_totensor(L, -1);
        lua_pop(L, 1); /* the table keeps it alive */
        if (!t[i - 1])
            luaL_error(L, "params[%d] is not a tensor", (int)i);
    }
    *n = (int)len;
    return t;
}

/* _c.slab_pack(params) -> how many parameters moved into slabs (runtime/slab.c) */
static int c_slab_pack(lua_State *L)
{
    lunet_tensor_t *stack[LIST_STACK];
    int n, packed;
    lunet_tensor_t **t = check_tensor_list(L, 1, stack, &n);
    /* nn.Parameter(lunet.empty(...)) leaves a dead box sharing the parameter's memory until
       the collector runs; a shared parameter stays where it is, so collect first */
    lua_gc(L, LUA_GCCOLLECT);
    LB_CHECK(L, lunet_slab_pack(n, t, &packed));
    lua_pushinteger(L, packed);
    return 1;
}

/* _c.slab_zero_grads(params): zero_grad() of PyTorch 1.13 (fills, keeps the tensors) */
static int c_slab_zero_grads(lua_State *L)
{
    lunet_tensor_t *stack[LIST_STACK];
    int n;
    lunet_tensor_t **t = check_tensor_list(L, 1, stack, &n);
    LB_CHECK(L, lunet_slab_zero_grads(n, t));
    return 0;
}

/* state[params[i + 1]], made when missing; left on the stack */
static void push_state(lua_State *L, int params, int state, int i)
{
    lua_geti(L, params, i + 1);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, state) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -2);
        lua_pushvalue(L, -2);
        lua_rawset(L, state);
    }
    lua_remove(L, -2);
}

/* _c.sgd_step(params, state, group): one SGD step of the group's parameters that have a
   gradient (runtime/optim.c's lunet_sgd_update_all); state[p] = {momentum_buffer = T or
   nil} is made or updated for each of them. */
static int c_sgd_step(lua_State *L)
{
    lunet_tensor_t *pstack[LIST_STACK], *bstack[LIST_STACK], *ostack[LIST_STACK];
    int n;
    lunet_tensor_t **p = check_tensor_list(L, 1, pstack, &n);
    luaL_checktype(L, 2, LUA_TTABLE);
    lunet_sgd_options_t o;
    check_sgd_opts(L, 3, &o);
    bool big = n > LIST_STACK;
    lunet_tensor_t **buf = big ? lua_newuserdatauv(L, (size_t)n * sizeof *buf, 0) : bstack;
    lunet_tensor_t **old = big ? lua_newuserdatauv(L, (size_t)n * sizeof *old, 0) : ostack;
    int top = lua_gettop(L);
    for (int i = 0; i < n; i++) {
        buf[i] = old[i] = NULL;
        if (!p[i]->grad)
            continue;
        push_state(L, 1, 2, i);
        if (lua_getfield(L, -1, "momentum_buffer") != LUA_TNIL)
            buf[i] = old[i] = lb_checktensor(L, -1); /* the state table keeps it alive */
        lua_settop(L, top);
    }
    for (int i = 0; i < n; i++)
        lunet_tensor_retain(buf[i]); /* the step may replace (and release) a buffer */
    lunet_status_t st = lunet_sgd_update_all(n, p, buf, &o);
    for (int i = 0; i < n; i++) {
        if (buf[i] == old[i]) {
            lunet_tensor_release(buf[i]);
            continue;
        }
        push_state(L, 1, 2, i); /* also after a failure: the states hold what was stepped */
        lb_pushtensor(L, buf[i]);
        lua_setfield(L, -2, "momentum_buffer");
        lua_settop(L, top);
    }
    if (st)
        return lb_error(L);
    return 0;
}

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
    {"sgd_check", c_sgd_check},
    {"sgd_step", c_sgd_step},
    {"sgd_update", c_sgd_update},
    {"slab_pack", c_slab_pack},
    {"slab_zero_grads", c_slab_zero_grads},
    {NULL, NULL},
};

void lb_open_optim(lua_State *L) { lb_private_funcs(L, lua_gettop(L), optim_c); }
