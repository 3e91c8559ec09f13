/*
 * l_random.c - lunet.manual_seed, rand, randn, normal, uniform, randint, randperm and the
 * in-place methods t:normal_, t:uniform_, t:random_ (parity spec section 14).
 *
 * Everything draws from the runtime's default generator, so a script's numbers match
 * PyTorch's for the same seed and the same order of calls.
 */
#include "lbind.h"

#include <string.h>

/* ---------------------------------------------------------------- argument helpers --- */

typedef struct rand_opts {
    lunet_dtype_t dtype;
    bool has_dtype;
    bool requires_grad;
} rand_opts_t;

/* Options table {dtype=, requires_grad=} at idx (none or nil allowed). */
static void check_opts(lua_State *L, int idx, lunet_dtype_t def, rand_opts_t *o)
{
    o->dtype = def;
    o->has_dtype = false;
    o->requires_grad = false;
    if (lua_isnoneornil(L, idx))
        return;
    luaL_checktype(L, idx, LUA_TTABLE);
    if (lua_getfield(L, idx, "dtype") != LUA_TNIL) {
        o->dtype = lb_checkdtype(L, lua_gettop(L));
        o->has_dtype = true;
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "requires_grad");
    o->requires_grad = lua_toboolean(L, -1);
    lua_pop(L, 1);
}

/* True for a table that is an options table rather than a size ({} or {dtype=...}). */
static bool is_opts(lua_State *L, int idx)
{
    return lua_type(L, idx) == LUA_TTABLE && lua_rawlen(L, idx) == 0 &&
           lb_totensor(L, idx) == NULL;
}

/*
 * A size as integers from idx on, or as one table (a lunet.Size or a sequence).  Checks
 * for negative sizes with PyTorch's text.  Returns the index after the size.
 */
static int check_size(lua_State *L, int idx, int *ndim, int64_t *shape)
{
    int n = 0;
    if (lua_type(L, idx) == LUA_TTABLE && !is_opts(L, idx)) {
        lua_Integer len = (lua_Integer)lua_rawlen(L, idx);
        if (len > LUNET_MAX_DIMS)
            luaL_argerror(L, idx, "too many dimensions");
        for (lua_Integer i = 1; i <= len; i++) {
            lua_geti(L, idx, i);
            int isint;
            lua_Integer v = lua_tointegerx(L, -1, &isint);
            if (!isint)
                luaL_argerror(L, idx, "size must be a sequence of integers");
            shape[n++] = (int64_t)v;
            lua_pop(L, 1);
        }
        idx++;
    } else {
        while (lua_type(L, idx) == LUA_TNUMBER) {
            if (n >= LUNET_MAX_DIMS)
                luaL_argerror(L, idx, "too many dimensions");
            shape[n++] = (int64_t)luaL_checkinteger(L, idx);
            idx++;
        }
    }
    *ndim = n;
    for (int i = 0; i < n; i++) {
        if (shape[i] < 0) {
            char buf[LUNET_MAX_DIMS * 24 + 4];
            size_t len = 0;
            buf[len++] = '[';
            for (int j = 0; j < n; j++)
                len += (size_t)snprintf(buf + len, sizeof buf - len, j ? ", %lld" : "%lld",
                                        (long long)shape[j]);
            snprintf(buf + len, sizeof buf - len, "]");
            return luaL_error(L, "Trying to create tensor with negative dimension %I: %s",
                              (lua_Integer)shape[i], buf);
        }
    }
    return idx;
}

/* Creates an empty tensor, boxes it at the top of the stack and returns it. */
static lunet_tensor_t *push_empty(lua_State *L, int ndim, const int64_t *shape, lunet_dtype_t dt)
{
    lunet_tensor_t *t;
    if (lunet_tensor_empty(&t, dt, ndim, shape) != LUNET_OK)
        lb_error(L);
    lb_pushtensor(L, t); // the box owns t from here, so a later error does not leak it
    return t;
}

static void finish(lua_State *L, lunet_tensor_t *t, const rand_opts_t *o)
{
    if (o->requires_grad && lunet_tensor_requires_grad_(t, true) != LUNET_OK)
        lb_error(L);
}

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

/* rand / randn (sizes... [, opts]) */
static int sized_fill(lua_State *L, bool normal)
{
    int ndim;
    int64_t shape[LUNET_MAX_DIMS];
    int next = check_size(L, 1, &ndim, shape);
    rand_opts_t o;
    check_opts(L, next, lunet_default_dtype(), &o);
    lunet_tensor_t *t = push_empty(L, ndim, shape, o.dtype);
    if (normal)
        LB_CHECK(L, lunet_tensor_normal_(t, NULL, 0.0, 1.0));
    else
        LB_CHECK(L, lunet_tensor_uniform_(t, NULL, 0.0, 1.0));
    finish(L, t, &o);
    return 1;
}

static int l_rand(lua_State *L) { return sized_fill(L, false); }
static int l_randn(lua_State *L) { return sized_fill(L, true); }

/* normal(mean, std, size [, opts]) / uniform(a, b, size [, opts]) */
static int param_fill(lua_State *L, bool normal)
{
    double p1 = luaL_checknumber(L, 1);
    double p2 = luaL_checknumber(L, 2);
    if (lua_isnoneornil(L, 3))
        luaL_argerror(L, 3, "size expected");
    int ndim;
    int64_t shape[LUNET_MAX_DIMS];
    int next = check_size(L, 3, &ndim, shape);
    rand_opts_t o;
    check_opts(L, next, lunet_default_dtype(), &o);
    lunet_tensor_t *t = push_empty(L, ndim, shape, o.dtype);
    if (normal)
        LB_CHECK(L, lunet_tensor_normal_(t, NULL, p1, p2));
    else
        LB_CHECK(L, lunet_tensor_uniform_(t, NULL, p1, p2));
    finish(L, t, &o);
    return 1;
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
    int next = check_size(L, sidx, &ndim, shape);
    rand_opts_t o;
    check_opts(L, next, LUNET_DTYPE_INT64, &o);
    lunet_tensor_t *t = push_empty(L, ndim, shape, o.dtype);
    LB_CHECK(L, lunet_tensor_random_int_(t, NULL, (int64_t)low, (int64_t)high));
    finish(L, t, &o);
    return 1;
}

/* randperm(n [, opts]); int64 by default. */
static int l_randperm(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    rand_opts_t o;
    check_opts(L, 2, LUNET_DTYPE_INT64, &o);
    lunet_tensor_t *t;
    LB_CHECK(L, lunet_tensor_randperm(&t, NULL, (int64_t)n));
    lb_pushtensor(L, t);
    if (o.dtype != LUNET_DTYPE_INT64) {
        lunet_tensor_t *c;
        LB_CHECK(L, lunet_tensor_to(&c, t, o.dtype));
        lb_pushtensor(L, c);
        t = c;
    }
    finish(L, t, &o);
    return 1;
}

/* ---------------------------------------------------------------- in place ------------ */

/* t:normal_([mean [, std]]) -> t */
static int m_normal_(lua_State *L)
{
    lunet_tensor_t *t = lb_checktensor(L, 1);
    double mean = luaL_optnumber(L, 2, 0.0);
    double std = luaL_optnumber(L, 3, 1.0);
    LB_CHECK(L, lunet_tensor_normal_(t, NULL, mean, std));
    lua_settop(L, 1);
    return 1;
}

/* t:uniform_([a [, b]]) -> t */
static int m_uniform_(lua_State *L)
{
    lunet_tensor_t *t = lb_checktensor(L, 1);
    double a = luaL_optnumber(L, 2, 0.0);
    double b = luaL_optnumber(L, 3, 1.0);
    LB_CHECK(L, lunet_tensor_uniform_(t, NULL, a, b));
    lua_settop(L, 1);
    return 1;
}

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

static int l_get_rng_state(lua_State *L)
{
    const lunet_generator_t *g = lunet_default_generator();
    int64_t n = RNG_STATE_LEN, v[RNG_STATE_LEN];
    for (int i = 0; i < 624; i++)
        v[i] = g->state[i];
    v[624] = g->index;
    memcpy(&v[625], &g->seed, sizeof g->seed);
    v[626] = g->has_cached_normal;
    memcpy(&v[627], &g->cached_normal, sizeof g->cached_normal);
    lunet_tensor_t *t;
    LB_CHECK(L, lunet_tensor_from_data(&t, LUNET_DTYPE_INT64, 1, &n, v));
    lb_pushtensor(L, t);
    return 1;
}

static int l_set_rng_state(lua_State *L)
{
    lunet_tensor_t *t = lb_checktensor(L, 1);
    if (t->dtype != LUNET_DTYPE_INT64 || t->ndim != 1 || t->shape[0] != RNG_STATE_LEN ||
        !lunet_tensor_is_contiguous(t))
        return luaL_error(L, "set_rng_state: expected the int64 tensor of %d values that "
                             "get_rng_state returns", RNG_STATE_LEN);
    const int64_t *v = lunet_tensor_data(t);
    if (v[624] < 0 || v[624] > 624)
        return luaL_error(L, "set_rng_state: corrupt state (position %d)", (int)v[624]);
    lunet_generator_t *g = lunet_default_generator();
    for (int i = 0; i < 624; i++)
        g->state[i] = (uint32_t)v[i];
    g->index = (int)v[624];
    memcpy(&g->seed, &v[625], sizeof g->seed);
    g->has_cached_normal = v[626] != 0;
    memcpy(&g->cached_normal, &v[627], sizeof g->cached_normal);
    return 0;
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
