/*
 * l_random.c - lunet.manual_seed, rand, randn, normal, uniform, randint, randperm and the
 * in-place methods t:normal_, t:uniform_, t:random_ (docs/pytorch-parity.md §14).
 *
 * Everything draws from the runtime's default generator, so a script's numbers match
 * PyTorch's for the same seed and the same order of calls.
 */
#include "l_tensor.h"

#include <string.h>

/* ---------------------------------------------------------------- argument helpers --- */
/* Sizes and {dtype=, requires_grad=} are parsed by the tensor binding's helpers (l_tensor.h). */

/* ---------------------------------------------------------------- seeding ------------- */

/* lunet.manual_seed(n): n is taken modulo 2^64 (so -1 is 2^64 - 1, as in PyTorch). */
static int l_manual_seed(lua_State *L)
{
    lua_Integer s = luaL_checkinteger(L, 1);
    lunet_generator_seed(lunet_default_generator(), (uint64_t)s);
    return 0;
}

/*
 * lunet.initial_seed(): the seed as a Lua integer (seeds >= 2^63 come back negative, in
 * two's complement, and give the same stream when passed to manual_seed).
 */
static int l_initial_seed(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)lunet_generator_initial_seed(lunet_default_generator()));
    return 1;
}

/* ---------------------------------------------------------------- creation ------------ */

/* A new tensor of the size (and options) at sidx, filled from normal(p1, p2) or uniform(p1, p2). */
static int random_fill(lua_State *L, int sidx, bool normal, double p1, double p2)
{
    int ndim;
    int64_t shape[LUNET_MAX_DIMS];
    lbt_create_opts_t o;
    lbt_checksize_opts(L, sidx, &ndim, shape, &o);
    lunet_tensor_t *t;
    LB_CHECK(L, normal ? lunet_tensor_normal(&t, o.dtype, ndim, shape, NULL, p1, p2)
                       : lunet_tensor_uniform(&t, o.dtype, ndim, shape, NULL, p1, p2));
    lb_pushtensor(L, t);
    lbt_finish_create(L, t, &o);
    return 1;
}

/* rand / randn (sizes... [, opts]) */
static int l_rand(lua_State *L) { return random_fill(L, 1, false, 0.0, 1.0); }
static int l_randn(lua_State *L) { return random_fill(L, 1, true, 0.0, 1.0); }

/* normal(mean, std, size [, opts]) / uniform(a, b, size [, opts]) */
static int param_fill(lua_State *L, bool normal)
{
    double p1 = luaL_checknumber(L, 1);
    double p2 = luaL_checknumber(L, 2);
    if (lua_isnoneornil(L, 3))
        luaL_argerror(L, 3, "size expected");
    return random_fill(L, 3, normal, p1, p2);
}

static int l_normal(lua_State *L) { return param_fill(L, true); }
static int l_uniform(lua_State *L) { return param_fill(L, false); }

/* randint(low, high, size [, opts]) or randint(high, size [, opts]); int64 by default. */
static int l_randint(lua_State *L)
{
    lua_Integer low = 0, high;
    int sidx;
    if (lua_type(L, 2) == LUA_TNUMBER) {
        low = luaL_checkinteger(L, 1);
        high = luaL_checkinteger(L, 2);
        sidx = 3;
    } else {
        high = luaL_checkinteger(L, 1);
        sidx = 2;
    }
    if (lua_isnoneornil(L, sidx))
        luaL_argerror(L, sidx, "size expected");
    int ndim;
    int64_t shape[LUNET_MAX_DIMS];
    lbt_create_opts_t o;
    lbt_checksize_opts(L, sidx, &ndim, shape, &o);
    lunet_tensor_t *t;
    LB_CHECK(L, lunet_tensor_randint(&t, o.has_dtype ? o.dtype : LUNET_DTYPE_INT64, ndim, shape,
                                     NULL, (int64_t)low, (int64_t)high));
    lb_pushtensor(L, t);
    lbt_finish_create(L, t, &o);
    return 1;
}

/* randperm(n [, opts]); int64 by default. */
static int l_randperm(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    lbt_create_opts_t o;
    lbt_checkcreateopts(L, 2, &o);
    lunet_tensor_t *t;
    LB_CHECK(L, lunet_tensor_randperm(&t, NULL, (int64_t)n));
    lb_pushtensor(L, t);
    if (o.has_dtype && o.dtype != LUNET_DTYPE_INT64) {
        lunet_tensor_t *c;
        LB_CHECK(L, lunet_tensor_to(&c, t, o.dtype));
        lb_pushtensor(L, c);
        t = c;
    }
    lbt_finish_create(L, t, &o);
    return 1;
}

/* ---------------------------------------------------------------- in place ------------ */

/* t:normal_([mean [, std]]) -> t and t:uniform_([a [, b]]) -> t: both default to (0, 1) */
static int random_fill_(lua_State *L, bool normal)
{
    lunet_tensor_t *t = lb_checktensor(L, 1);
    double p0 = luaL_optnumber(L, 2, 0.0), p1 = luaL_optnumber(L, 3, 1.0);
    LB_CHECK(L, normal ? lunet_tensor_normal_(t, NULL, p0, p1)
                       : lunet_tensor_uniform_(t, NULL, p0, p1));
    lua_settop(L, 1);
    return 1;
}

static int m_normal_(lua_State *L) { return random_fill_(L, true); }
static int m_uniform_(lua_State *L) { return random_fill_(L, false); }

/* t:random_(low, high) or t:random_(high) -> t: integers in [low, high) */
static int m_random_(lua_State *L)
{
    lunet_tensor_t *t = lb_checktensor(L, 1);
    lua_Integer low = 0, high;
    if (lua_isnoneornil(L, 3)) {
        high = luaL_checkinteger(L, 2);
    } else {
        low = luaL_checkinteger(L, 2);
        high = luaL_checkinteger(L, 3);
    }
    LB_CHECK(L, lunet_tensor_random_int_(t, NULL, (int64_t)low, (int64_t)high));
    lua_settop(L, 1);
    return 1;
}

/*
 * The default generator's whole state as an int64 tensor of 628 values (the 624 MT words,
 * the position, the seed, whether a normal value is cached and its bits), so a checkpoint
 * can resume the exact random stream: lunet.set_rng_state(lunet.get_rng_state()).
 */
#define RNG_STATE_LEN 628

static int l_set_rng_state(lua_State *L)
{
    lunet_tensor_t *t = lb_checktensor(L, 1);
    if (t->dtype != LUNET_DTYPE_INT64 || t->ndim != 1 || t->shape[0] != RNG_STATE_LEN ||
        !lunet_tensor_is_contiguous(t))
        return luaL_error(L,
                          "set_rng_state: expected the int64 tensor of %d values that "
                          "get_rng_state returns",
                          RNG_STATE_LEN);
    const int64_t *v = lunet_tensor_data(t);
    if (v[624] < 0 || v[624] > 624)
        return luaL_error(L, "set_rng_state: corrupt state (position %d)", (int)v[624]);
    lunet_generator_t *g = lunet_default_generator();
    lunet_generator_lock(g);
    for (int i = 0; i < 624; i++)
        g->state[i] = (uint32_t)v[i];
    g->index = (int)v[624];
    memcpy(&g->seed, &v[625], sizeof g->seed);
    g->has_cached_normal = v[626] != 0;
    memcpy(&g->cached_normal, &v[627], sizeof g->cached_normal);
    lunet_generator_unlock(g);
    return 0;
}

static int l_get_rng_state(lua_State *L)
{
    lunet_generator_t *g = lunet_default_generator();
    int64_t n = RNG_STATE_LEN, v[RNG_STATE_LEN];
    lunet_generator_lock(g);
    for (int i = 0; i < 624; i++)
        v[i] = g->state[i];
    v[624] = g->index;
    memcpy(&v[625], &g->seed, sizeof g->seed);
    v[626] = g->has_cached_normal;
    memcpy(&v[627], &g->cached_normal, sizeof g->cached_normal);
    lunet_generator_unlock(g);
    lunet_tensor_t *t;
    return lb_result(L, lunet_tensor_from_data(&t, LUNET_DTYPE_INT64, 1, &n, v), &t);
}

static const luaL_Reg functions[] = {
    {"get_rng_state", l_get_rng_state},
    {"set_rng_state", l_set_rng_state},
    {"manual_seed", l_manual_seed},
    {"initial_seed", l_initial_seed},
    {"rand", l_rand},
    {"randn", l_randn},
    {"normal", l_normal},
    {"uniform", l_uniform},
    {"randint", l_randint},
    {"randperm", l_randperm},
    {NULL, NULL},
};

static const luaL_Reg methods[] = {
    {"normal_", m_normal_},
    {"uniform_", m_uniform_},
    {"random_", m_random_},
    {NULL, NULL},
};

void lb_open_random(lua_State *L)
{
    int module = lua_gettop(L);
    luaL_setfuncs(L, functions, 0);
    // The tensor binding keeps its method table in the metatable's __methods field (and
    // as lunet.Tensor); lb_open_tensor runs first.
    luaL_getmetatable(L, LB_TENSOR_MT);
    if (lua_type(L, -1) == LUA_TTABLE)
        lua_getfield(L, -1, "__methods");
    else
        lua_pushnil(L);
    if (lua_type(L, -1) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_getfield(L, module, "Tensor");
    }
    if (lua_type(L, -1) == LUA_TTABLE)
        luaL_setfuncs(L, methods, 0);
    lua_settop(L, module);
}
