/*
 * l_tensor.c - the tensor userdata of the Lua module: boxing, dtypes, lunet.Size, creation,
 * facts, conversion, views and indexing.  Element-wise math, reductions, matmul and the
 * autograd surface are in l_tensor_math.c.
 *
 * Identity: a C tensor is boxed by at most one userdata at a time.  A weak-valued registry
 * table maps the tensor's address to its box, so `t.grad` or `t:contiguous()` return the very
 * object Lua already holds (== is identity, fields set on it stay).  The box holds one
 * reference, dropped by __gc.
 */
#include "l_tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Registry keys (addresses are unique). */
static const char cache_key = 'c';
static const char size_mt_key = 's';
static const char gradfn_mt_key = 'g';

/* ================================================================ boxing, errors ===== */

int lb_error(lua_State *L)
{
    lua_pushstring(L, lunet_error_message());
    return lua_error(L);
}

lunet_tensor_t *lb_totensor(lua_State *L, int idx)
{
    lb_tensor_t *ud = luaL_testudata(L, idx, LB_TENSOR_MT);
    return ud ? ud->t : NULL;
}

lunet_tensor_t *lb_checktensor(lua_State *L, int idx)
{
    lunet_tensor_t *t = lb_totensor(L, idx);
    if (!t)
        luaL_typeerror(L, idx, "tensor");
    return t;
}

void lb_pushtensor(lua_State *L, lunet_tensor_t *t)
{
    if (!t) {
        lua_pushnil(L);
        return;
    }
    luaL_checkstack(L, 4, "lunet: stack overflow");
    lua_rawgetp(L, LUA_REGISTRYINDEX, &cache_key);
    if (lua_rawgetp(L, -1, t) == LUA_TUSERDATA) {
        /* Already boxed: the box keeps its own reference, so drop the caller's. */
        lua_remove(L, -2);
        lunet_tensor_release(t);
        return;
    }
    lua_pop(L, 1);
    /*
     * Lua's collector sees an 8-byte box, not the tensor's data; tell it about the data so
     * that a training loop's temporaries are collected before memory grows.
     */
    static size_t pending_bytes, since_full;
    size_t nbytes = (size_t)t->numel * lunet_dtype_size(t->dtype) + sizeof(lunet_tensor_t);
    pending_bytes += nbytes;
    since_full += nbytes;
    if (since_full >= ((size_t)1 << 23)) {
        /* The generational collector promotes a batch that lives across two steps to the
           old generation, and a heap of 8-byte boxes never grows enough for a major
           collection: every 8 MiB of tensors, one full collection (the Lua heap itself
           is small, so it is quick) keeps dead batches from piling up (peak RSS). */
        lua_gc(L, LUA_GCCOLLECT);
        pending_bytes = since_full = 0;
    } else if (pending_bytes >= ((size_t)1 << 22)) {
        lua_gc(L, LUA_GCSTEP, (int)(pending_bytes >> 10));
        pending_bytes = 0;
    }
    lb_tensor_t *ud = lua_newuserdatauv(L, sizeof *ud, 1);
    ud->t = t;
    luaL_setmetatable(L, LB_TENSOR_MT);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, -3, t);
    lua_remove(L, -2);
}

/* ================================================================ dtypes ============= */

static bool dtype_from_string(const char *s, lunet_dtype_t *dt)
{
    static const struct {
        const char *name;
        lunet_dtype_t dt;
    } names[] = {
        {"float32", LUNET_DTYPE_FLOAT32}, {"float", LUNET_DTYPE_FLOAT32},
        {"float64", LUNET_DTYPE_FLOAT64}, {"double", LUNET_DTYPE_FLOAT64},
        {"int64", LUNET_DTYPE_INT64},     {"long", LUNET_DTYPE_INT64},
        {"uint8", LUNET_DTYPE_UINT8},     {"byte", LUNET_DTYPE_UINT8},
        {"bool", LUNET_DTYPE_BOOL},
    };
    if (strncmp(s, "lunet.", 6) == 0)
        s += 6;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(s, names[i].name) == 0) {
            *dt = names[i].dt;
            return true;
        }
    }
    return false;
}

lunet_dtype_t lb_checkdtype(lua_State *L, int idx)
{
    lunet_dtype_t dt;
    const char *s = lua_type(L, idx) == LUA_TSTRING ? lua_tostring(L, idx) : NULL;
    if (!s)
        luaL_typeerror(L, idx, "dtype");
    if (!dtype_from_string(s, &dt))
        luaL_argerror(L, idx, lua_pushfstring(L, "unknown dtype '%s'", s));
    return dt;
}

void lb_pushdtype(lua_State *L, lunet_dtype_t dt) { lua_pushstring(L, lunet_dtype_name(dt)); }

/* ================================================================ small helpers ====== */

/* Pushes the element at p as a Lua value: integers stay exact, bool is a boolean. */
static void push_elem(lua_State *L, lunet_dtype_t dt, const char *p)
{
    switch (dt) {
    case LUNET_DTYPE_FLOAT32:
        lua_pushnumber(L, (lua_Number) * (const float *)p);
        break;
    case LUNET_DTYPE_FLOAT64:
        lua_pushnumber(L, (lua_Number) * (const double *)p);
        break;
    case LUNET_DTYPE_INT64:
        lua_pushinteger(L, (lua_Integer) * (const int64_t *)p);
        break;
    case LUNET_DTYPE_UINT8:
        lua_pushinteger(L, *(const uint8_t *)p);
        break;
    case LUNET_DTYPE_BOOL:
        lua_pushboolean(L, *(const uint8_t *)p != 0);
        break;
    default:
        lua_pushnil(L);
        break;
    }
}

/* Stores Lua value v (number or boolean at idx) exactly into p of dtype dt. */
static void store_value(lua_State *L, int idx, lunet_dtype_t dt, char *p)
{
    if (lua_isboolean(L, idx)) {
        lunet_dtype_store(p, dt, lua_toboolean(L, idx) ? 1.0 : 0.0);
    } else if (lua_isinteger(L, idx) && dt == LUNET_DTYPE_INT64) {
        *(int64_t *)p = (int64_t)lua_tointeger(L, idx);
    } else {
        lunet_dtype_store(p, dt, (double)lua_tonumber(L, idx));
    }
}

bool lbt_isoptstable(lua_State *L, int idx)
{
    return lua_type(L, idx) == LUA_TTABLE && lua_rawlen(L, idx) == 0 &&
           !luaL_testudata(L, idx, LB_TENSOR_MT);
}

/* Integer field `name` of the options table at idx (nil keeps *out). */
static bool opt_bool(lua_State *L, int idx, const char *name, bool def)
{
    bool v = def;
    if (lua_getfield(L, idx, name) != LUA_TNIL)
        v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

void lbt_checkcreateopts(lua_State *L, int idx, lbt_create_opts_t *o)
{
    o->has_dtype = false;
    o->dtype = lunet_default_dtype();
    o->requires_grad = false;
    if (lua_isnoneornil(L, idx))
        return;
    luaL_checktype(L, idx, LUA_TTABLE);
    idx = lua_absindex(L, idx);
    if (lua_getfield(L, idx, "dtype") != LUA_TNIL) {
        const char *s = lua_tostring(L, -1);
        if (lua_type(L, -1) != LUA_TSTRING || !dtype_from_string(s, &o->dtype))
            luaL_argerror(L, idx, "option 'dtype' must be a lunet dtype (lunet.float32, ...)");
        o->has_dtype = true;
    }
    lua_pop(L, 1);
    o->requires_grad = opt_bool(L, idx, "requires_grad", false);
}

void lbt_checksize_opts(lua_State *L, int idx, int *ndim, int64_t *shape, lbt_create_opts_t *o)
{
    lbt_checkcreateopts(L, lbt_checksize(L, idx, ndim, shape), o);
}

void lbt_finish_create(lua_State *L, lunet_tensor_t *t, const lbt_create_opts_t *o)
{
    /* t is already boxed at the top of the stack, so an error here does not leak it. */
    if (o->requires_grad && lunet_tensor_requires_grad_(t, true))
        lb_error(L);
}

/* True for a table that is an options table rather than a size ({} or {dtype = ...}). */
static bool is_options_table(lua_State *L, int idx)
{
    return lua_type(L, idx) == LUA_TTABLE && lua_rawlen(L, idx) == 0 && lb_totensor(L, idx) == NULL;
}

int lbt_checkshape(lua_State *L, int idx, int *ndim, int64_t *shape)
{
    int n = 0;
    if (lua_type(L, idx) == LUA_TTABLE && !is_options_table(L, idx)) {
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
    return idx;
}

int lbt_checksize(lua_State *L, int idx, int *ndim, int64_t *shape)
{
    idx = lbt_checkshape(L, idx, ndim, shape);
    int n = *ndim;
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

/* ================================================================ lunet.Size ========= */

static int size_format(lua_State *L, int idx)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "lunet.Size([");
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        lua_Integer v = lua_tointeger(L, -1);
        lua_pop(L, 1);
        lua_pushfstring(L, "%s%I", i > 1 ? ", " : "", v);
        luaL_addvalue(&b);
    }
    luaL_addstring(&b, "])");
    luaL_pushresult(&b);
    return 1;
}

static int size_tostring(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    return size_format(L, 1);
}

static int size_eq(lua_State *L)
{
    if (lua_type(L, 1) != LUA_TTABLE || lua_type(L, 2) != LUA_TTABLE) {
        lua_pushboolean(L, 0);
        return 1;
    }
    lua_Unsigned n = lua_rawlen(L, 1);
    if (n != lua_rawlen(L, 2)) {
        lua_pushboolean(L, 0);
        return 1;
    }
    for (lua_Integer i = 1; i <= (lua_Integer)n; i++) {
        lua_rawgeti(L, 1, i);
        lua_rawgeti(L, 2, i);
        int eq = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
        if (!eq) {
            lua_pushboolean(L, 0);
            return 1;
        }
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int size_numel(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = (lua_Integer)lua_rawlen(L, 1), p = 1;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, i);
        p *= lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    lua_pushinteger(L, p);
    return 1;
}

void lbt_pushsize(lua_State *L, int ndim, const int64_t *shape)
{
    lua_createtable(L, ndim, 0);
    for (int i = 0; i < ndim; i++) {
        lua_pushinteger(L, (lua_Integer)shape[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_rawgetp(L, LUA_REGISTRYINDEX, &size_mt_key);
    lua_setmetatable(L, -2);
}

/* lunet.Size({2, 3}) or lunet.Size(2, 3). */
static int l_size_new(lua_State *L)
{
    int ndim;
    int64_t shape[LUNET_MAX_DIMS];
    lbt_checkshape(L, 1, &ndim, shape);
    lbt_pushsize(L, ndim, shape);
    return 1;
}

/* ================================================================ operands =========== */

void lbt_checkoperand(lua_State *L, int idx)
{
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
    case LUA_TBOOLEAN:
    case LUA_TTABLE:
        return;
    case LUA_TUSERDATA:
        if (lb_totensor(L, idx))
            return;
        break;
    default:
        break;
    }
    luaL_typeerror(L, idx, "tensor or number");
}

lunet_tensor_t *lbt_tooperand(lua_State *L, int idx, bool *owned)
{
    lunet_tensor_t *t = NULL;
    *owned = false;
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            if (lunet_tensor_scalar_int(&t, LUNET_DTYPE_INT64, lua_tointeger(L, idx), true))
                lb_error(L);
        } else if (lunet_tensor_scalar(&t, LUNET_DTYPE_FLOAT64, lua_tonumber(L, idx), true)) {
            lb_error(L);
        }
        *owned = true;
        return t;
    case LUA_TBOOLEAN:
        if (lunet_tensor_scalar(&t, LUNET_DTYPE_BOOL, lua_toboolean(L, idx) ? 1 : 0, true))
            lb_error(L);
        *owned = true;
        return t;
    case LUA_TTABLE:
        /* Boxed into the argument slot so that the GC owns it even if a later step fails. */
        t = lb_astensor(L, idx, NULL);
        lb_pushtensor(L, t);
        lua_replace(L, idx);
        return t;
    default:
        return lb_checktensor(L, idx);
    }
}

/* ================================================================ tables -> tensors == */

typedef struct table_scan {
    int ndim;
    int64_t shape[LUNET_MAX_DIMS];
    bool any_float, any_int, any_bool;
} table_scan_t;

static void scan_shape(lua_State *L, int idx, table_scan_t *s)
{
    /* The shape comes from the first element at every depth; fill_table checks the rest. */
    s->ndim = 0;
    lua_pushvalue(L, idx);
    while (lua_type(L, -1) == LUA_TTABLE) {
        if (s->ndim >= LUNET_MAX_DIMS)
            luaL_error(L, "tensor(): too many dimensions (at most %d)", LUNET_MAX_DIMS);
        lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
        s->shape[s->ndim++] = n;
        if (n == 0)
            break;
        lua_rawgeti(L, -1, 1);
        lua_remove(L, -2);
    }
    lua_pop(L, 1);
}

/* Checks the nested table at idx against s->shape from depth d; notes the kinds of values. */
static void check_table(lua_State *L, int idx, int d, table_scan_t *s)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    if (n != s->shape[d])
        luaL_error(L, "expected sequence of length %I at dim %d (got %I)", (lua_Integer)s->shape[d],
                   d, n);
    luaL_checkstack(L, 2, "tensor(): nesting too deep");
    for (lua_Integer i = 1; i <= n; i++) {
        int ty = lua_rawgeti(L, idx, i);
        if (d + 1 < s->ndim) {
            if (ty != LUA_TTABLE)
                luaL_error(L, "expected sequence of length %I at dim %d (got %s)",
                           (lua_Integer)s->shape[d + 1], d + 1, luaL_typename(L, -1));
            check_table(L, lua_gettop(L), d + 1, s);
        } else if (ty == LUA_TNUMBER) {
            if (lua_isinteger(L, -1))
                s->any_int = true;
            else
                s->any_float = true;
        } else if (ty == LUA_TBOOLEAN) {
            s->any_bool = true;
        } else if (ty == LUA_TTABLE) {
            luaL_error(L, "expected a number at dim %d (got a table): the nested table is ragged",
                       d + 1);
        } else {
            lunet_tensor_t *e = lb_totensor(L, -1);
            if (!e || e->numel != 1)
                luaL_error(L, "tensor(): invalid data type '%s'",
                           e ? "tensor with more than one element" : luaL_typename(L, -1));
            if (lunet_dtype_is_floating(e->dtype))
                s->any_float = true;
            else if (e->dtype == LUNET_DTYPE_BOOL)
                s->any_bool = true;
            else
                s->any_int = true;
        }
        lua_pop(L, 1);
    }
}

/* Writes the checked nested table at idx into contiguous memory at *p (advancing it). */
static void fill_table(lua_State *L, int idx, int d, const table_scan_t *s, lunet_dtype_t dt,
                       char **p)
{
    size_t es = lunet_dtype_size(dt);
    lua_Integer n = (lua_Integer)s->shape[d];
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        if (d + 1 < s->ndim) {
            fill_table(L, lua_gettop(L), d + 1, s, dt, p);
        } else {
            lunet_tensor_t *e = lb_totensor(L, -1);
            if (e)
                lunet_dtype_store(*p, dt, lunet_tensor_get(e, 0));
            else
                store_value(L, -1, dt, *p);
            *p += es;
        }
        lua_pop(L, 1);
    }
}

lunet_tensor_t *lb_astensor(lua_State *L, int idx, lunet_dtype_t *dtype_or_null)
{
    lunet_tensor_t *t = NULL, *r = NULL;
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
    case LUA_TBOOLEAN: {
        lunet_dtype_t dt = lua_isboolean(L, idx)   ? LUNET_DTYPE_BOOL
                           : lua_isinteger(L, idx) ? LUNET_DTYPE_INT64
                                                   : lunet_default_dtype();
        if (dtype_or_null)
            dt = *dtype_or_null;
        if (lunet_tensor_empty(&t, dt, 0, NULL))
            lb_error(L);
        store_value(L, idx, dt, lunet_tensor_data(t));
        return t;
    }
    case LUA_TTABLE: {
        table_scan_t s;
        memset(&s, 0, sizeof s);
        scan_shape(L, idx, &s);
        check_table(L, idx, 0, &s);
        lunet_dtype_t dt = s.any_float  ? lunet_default_dtype()
                           : s.any_int  ? LUNET_DTYPE_INT64
                           : s.any_bool ? LUNET_DTYPE_BOOL
                                        : lunet_default_dtype();
        if (dtype_or_null)
            dt = *dtype_or_null;
        if (lunet_tensor_empty(&t, dt, s.ndim, s.shape))
            lb_error(L);
        char *p = lunet_tensor_data(t);
        /* Only out-of-memory could raise inside fill_table (lua_rawgeti does not). */
        fill_table(L, idx, 0, &s, dt, &p);
        return t;
    }
    case LUA_TUSERDATA:
        t = lb_checktensor(L, idx);
        if (dtype_or_null && *dtype_or_null != t->dtype) {
            if (lunet_tensor_to(&r, t, *dtype_or_null))
                lb_error(L);
            return r;
        }
        lunet_tensor_retain(t);
        return t;
    default:
        luaL_typeerror(L, idx, "tensor, number or table");
        return NULL;
    }
}

/* ================================================================ creation =========== */

/* lunet.tensor(value [, {dtype=, requires_grad=}]) */
static int l_tensor(lua_State *L)
{
    lbt_create_opts_t o;
    lbt_checkcreateopts(L, 2, &o);
    lunet_tensor_t *src = lb_totensor(L, 1), *t;
    if (src) {
        /* A tensor argument is copied, detached from its graph (torch.tensor(t) does that). */
        lunet_tensor_t *d;
        LB_CHECK(L, lunet_tensor_detach(&d, src));
        lunet_status_t st = lunet_tensor_to(&t, d, o.has_dtype ? o.dtype : src->dtype);
        if (st == LUNET_OK && t == d) {
            lunet_tensor_release(t);
            st = lunet_tensor_clone(&t, d);
        }
        lunet_tensor_release(d);
        if (st)
            return lb_error(L);
    } else {
        t = lb_astensor(L, 1, o.has_dtype ? &o.dtype : NULL);
    }
    lb_pushtensor(L, t);
    lbt_finish_create(L, t, &o);
    return 1;
}

typedef enum { FILL_ZEROS, FILL_ONES, FILL_EMPTY } fill_kind_t;

static int make_filled(lua_State *L, int ndim, const int64_t *shape, lunet_dtype_t dt,
                       const lbt_fill_t *v, fill_kind_t kind, const lbt_create_opts_t *o)
{
    lunet_tensor_t *t;
    if (kind == FILL_EMPTY)
        LB_CHECK(L, lunet_tensor_empty(&t, dt, ndim, shape));
    else if (kind == FILL_ZEROS)
        LB_CHECK(L, lunet_tensor_zeros(&t, dt, ndim, shape));
    else
        LB_CHECK(L, v->is_int ? lunet_tensor_full_int(&t, dt, ndim, shape, v->i)
                              : lunet_tensor_full(&t, dt, ndim, shape, v->d));
    lb_pushtensor(L, t);
    lbt_finish_create(L, t, o);
    return 1;
}

static int create_sized(lua_State *L, fill_kind_t kind)
{
    int ndim;
    int64_t shape[LUNET_MAX_DIMS];
    lbt_create_opts_t o;
    lbt_checksize_opts(L, 1, &ndim, shape, &o);
    lbt_fill_t one = {true, 1, 1.0};
    return make_filled(L, ndim, shape, o.dtype, &one, kind, &o);
}

static int l_zeros(lua_State *L) { return create_sized(L, FILL_ZEROS); }
static int l_ones(lua_State *L) { return create_sized(L, FILL_ONES); }
static int l_empty(lua_State *L) { return create_sized(L, FILL_EMPTY); }

/* lunet.full(size, value [, opts]); size a table, or leading integers (the last is the value). */
static int l_full(lua_State *L)
{
    int ndim, vidx;
    int64_t shape[LUNET_MAX_DIMS];
    if (lua_type(L, 1) == LUA_TTABLE) {
        lbt_checksize(L, 1, &ndim, shape);
        vidx = 2;
    } else {
        /* full(2, 3, value): every number but the last is a size */
        int n = 0;
        while (lua_type(L, n + 1) == LUA_TNUMBER || lua_type(L, n + 1) == LUA_TBOOLEAN)
            n++;
        if (n < 2)
            luaL_argerror(L, 1, "size and value expected");
        if (n - 1 > LUNET_MAX_DIMS)
            luaL_argerror(L, 1, "too many dimensions");
        for (int i = 0; i < n - 1; i++)
            shape[i] = (int64_t)luaL_checkinteger(L, i + 1);
        ndim = n - 1;
        vidx = n;
    }
    int ty = lua_type(L, vidx);
    if (ty != LUA_TNUMBER && ty != LUA_TBOOLEAN)
        luaL_typeerror(L, vidx, "number");
    lbt_create_opts_t o;
    lbt_checkcreateopts(L, vidx + 1, &o);
    /* PyTorch 1.13 infers the dtype from the fill value. */
    lunet_dtype_t dt = o.has_dtype              ? o.dtype
                       : ty == LUA_TBOOLEAN     ? LUNET_DTYPE_BOOL
                       : lua_isinteger(L, vidx) ? LUNET_DTYPE_INT64
                                                : lunet_default_dtype();
    lbt_fill_t v = lbt_checkfill(L, vidx);
    return make_filled(L, ndim, shape, dt, &v, FILL_ONES, &o);
}

static int create_like(lua_State *L, fill_kind_t kind, int vidx)
{
    lunet_tensor_t *t = lb_checktensor(L, 1);
    lbt_fill_t v = {true, 1, 1.0};
    int optidx = 2;
    if (vidx) {
        luaL_checknumber(L, vidx);
        v = lbt_checkfill(L, vidx);
        optidx = vidx + 1;
    }
    lbt_create_opts_t o;
    lbt_checkcreateopts(L, optidx, &o);
    int64_t shape[LUNET_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    return make_filled(L, t->ndim, shape, o.has_dtype ? o.dtype : t->dtype, &v, kind, &o);
}

static int l_zeros_like(lua_State *L) { return create_like(L, FILL_ZEROS, 0); }
static int l_ones_like(lua_State *L) { return create_like(L, FILL_ONES, 0); }
static int l_empty_like(lua_State *L) { return create_like(L, FILL_EMPTY, 0); }
static int l_full_like(lua_State *L) { return create_like(L, FILL_ONES, 2); }

/* lunet.arange(end) / arange(start, end [, step]) [, opts] */
static int l_arange(lua_State *L)
{
    int n = 0;
    while (n < 3 && lua_type(L, n + 1) == LUA_TNUMBER)
        n++;
    if (n == 0)
        luaL_typeerror(L, 1, "number");
    bool any_float = false;
    for (int i = 1; i <= n; i++)
        any_float = any_float || !lua_isinteger(L, i);
    double start = 0, end, step = 1;
    if (n == 1) {
        end = lua_tonumber(L, 1);
    } else {
        start = lua_tonumber(L, 1);
        end = lua_tonumber(L, 2);
        if (n == 3)
            step = lua_tonumber(L, 3);
    }
    lbt_create_opts_t o;
    lbt_checkcreateopts(L, n + 1, &o);
    lunet_dtype_t dt = o.has_dtype ? o.dtype
                       : any_float ? lunet_default_dtype()
                                   : LUNET_DTYPE_INT64;
    lunet_tensor_t *t;
    LB_CHECK(L, lunet_tensor_arange(&t, dt, start, end, step));
    lb_pushtensor(L, t);
    lbt_finish_create(L, t, &o);
    return 1;
}

static int l_linspace(lua_State *L)
{
    double start = luaL_checknumber(L, 1), end = luaL_checknumber(L, 2);
    lua_Integer steps = luaL_checkinteger(L, 3);
    lbt_create_opts_t o;
    lbt_checkcreateopts(L, 4, &o);
    lunet_tensor_t *t;
    LB_CHECK(L, lunet_tensor_linspace(&t, o.dtype, start, end, (int64_t)steps));
    lb_pushtensor(L, t);
    lbt_finish_create(L, t, &o);
    return 1;
}

static int l_eye(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1), m = n;
    int optidx = 2;
    if (lua_type(L, 2) == LUA_TNUMBER) {
        m = luaL_checkinteger(L, 2);
        optidx = 3;
    }
    lbt_create_opts_t o;
    lbt_checkcreateopts(L, optidx, &o);
    lunet_tensor_t *t;
    LB_CHECK(L, lunet_tensor_eye(&t, o.dtype, (int64_t)n, (int64_t)m));
    lb_pushtensor(L, t);
    lbt_finish_create(L, t, &o);
    return 1;
}

static int l_set_default_dtype(lua_State *L)
{
    LB_CHECK(L, lunet_set_default_dtype(lb_checkdtype(L, 1)));
    return 0;
}

static int l_get_default_dtype(lua_State *L)
{
    lb_pushdtype(L, lunet_default_dtype());
    return 1;
}

static int l_is_tensor(lua_State *L)
{
    lua_pushboolean(L, lb_totensor(L, 1) != NULL);
    return 1;
}

/* ================================================================ facts ============== */

/* t:size([dim]) and t:stride([dim]): one entry, or the list (a lunet.Size for size). */
static int size_or_stride(lua_State *L, bool stride)
{
    lunet_tensor_t *t = lb_checktensor(L, 1);
    const int64_t *v = stride ? t->strides : t->shape;
    if (!lua_isnoneornil(L, 2)) {
        int d;
        LB_CHECK(L, lunet_dim_wrap(&d, luaL_checkinteger(L, 2), t->ndim));
        lua_pushinteger(L, t->ndim == 0 ? 1 : (lua_Integer)v[d]);
    } else if (!stride) {
        lbt_pushsize(L, t->ndim, v);
    } else {
        lua_createtable(L, t->ndim, 0);
        for (int i = 0; i < t->ndim; i++) {
            lua_pushinteger(L, (lua_Integer)v[i]);
            lua_rawseti(L, -2, i + 1);
        }
    }
    return 1;
}

static int m_size(lua_State *L) { return size_or_stride(L, false); }
static int m_stride(lua_State *L) { return size_or_stride(L, true); }

static int m_dim(lua_State *L)
{
    lua_pushinteger(L, lb_checktensor(L, 1)->ndim);
    return 1;
}

static int m_numel(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)lb_checktensor(L, 1)->numel);
    return 1;
}

static int m_is_contiguous(lua_State *L)
{
    lua_pushboolean(L, lunet_tensor_is_contiguous(lb_checktensor(L, 1)));
    return 1;
}

/* t:storage_offset() (PyTorch's): where t starts in its storage, in elements */
static int m_storage_offset(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)lb_checktensor(L, 1)->offset);
    return 1;
}

/* t:data_ptr() (PyTorch's): the address of t's first element, as an integer */
static int m_data_ptr(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)(uintptr_t)lunet_tensor_data(lb_checktensor(L, 1)));
    return 1;
}

static int m_is_floating_point(lua_State *L)
{
    lua_pushboolean(L, lunet_dtype_is_floating(lb_checktensor(L, 1)->dtype));
    return 1;
}

static int m_element_size(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)lunet_dtype_size(lb_checktensor(L, 1)->dtype));
    return 1;
}

/* ================================================================ conversion ========= */

static int m_item(lua_State *L)
{
    lunet_tensor_t *t = lb_checktensor(L, 1);
    if (t->numel != 1)
        return luaL_error(L,
                          "only one element tensors can be converted to Lua numbers "
                          "(got %I elements)",
                          (lua_Integer)t->numel);
    push_elem(L, t->dtype, lunet_tensor_data(t));
    return 1;
}

static void push_list(lua_State *L, const lunet_tensor_t *t, int d, const char *p)
{
    if (d == t->ndim) {
        push_elem(L, t->dtype, p);
        return;
    }
    luaL_checkstack(L, 3, "tolist: nesting too deep");
    int64_t n = t->shape[d];
    size_t step = (size_t)t->strides[d] * lunet_dtype_size(t->dtype);
    lua_createtable(L, n > INT32_MAX ? 0 : (int)n, 0);
    for (int64_t i = 0; i < n; i++) {
        push_list(L, t, d + 1, p + (ptrdiff_t)((int64_t)step * i));
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

static int m_tolist(lua_State *L)
{
    lunet_tensor_t *t = lb_checktensor(L, 1);
    push_list(L, t, 0, lunet_tensor_data(t));
    return 1;
}

static int convert_to(lua_State *L, lunet_tensor_t *t, lunet_dtype_t dt)
{
    lunet_tensor_t *r;
    return lb_result(L, lunet_tensor_to(&r, t, dt), &r);
}

static int m_to(lua_State *L)
{
    lunet_tensor_t *t = lb_checktensor(L, 1);
    lunet_tensor_t *other = lb_totensor(L, 2);
    if (other)
        return convert_to(L, t, other->dtype);
    if (lua_type(L, 2) == LUA_TTABLE) { /* to{dtype = ...} */
        lbt_create_opts_t o;
        lbt_checkcreateopts(L, 2, &o);
        return convert_to(L, t, o.has_dtype ? o.dtype : t->dtype);
    }
    if (lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2), "cpu") == 0) {
        lua_settop(L, 1); /* the only device */
        return 1;
    }
    return convert_to(L, t, lb_checkdtype(L, 2));
}

static int m_float(lua_State *L)
{
    return convert_to(L, lb_checktensor(L, 1), LUNET_DTYPE_FLOAT32);
}
static int m_double(lua_State *L)
{
    return convert_to(L, lb_checktensor(L, 1), LUNET_DTYPE_FLOAT64);
}
static int m_long(lua_State *L) { return convert_to(L, lb_checktensor(L, 1), LUNET_DTYPE_INT64); }
static int m_byte(lua_State *L) { return convert_to(L, lb_checktensor(L, 1), LUNET_DTYPE_UINT8); }
static int m_bool(lua_State *L) { return convert_to(L, lb_checktensor(L, 1), LUNET_DTYPE_BOOL); }

/* t:type() -> "lunet.FloatTensor"; t:type(dtype) converts (PyTorch's spelling of to). */
static int m_type(lua_State *L)
{
    static const char *const names[] = {"lunet.FloatTensor", "lunet.DoubleTensor",
                                        "lunet.LongTensor", "lunet.ByteTensor", "lunet.BoolTensor"};
    lunet_tensor_t *t = lb_checktensor(L, 1);
    if (lua_isnoneornil(L, 2)) {
        lua_pushstring(L, names[t->dtype]);
        return 1;
    }
    if (lua_type(L, 2) == LUA_TSTRING) {
        const char *s = lua_tostring(L, 2);
        for (int i = 0; i < LUNET_DTYPE_COUNT; i++)
            if (strcmp(s, names[i]) == 0)
                return convert_to(L, t, (lunet_dtype_t)i);
    }
    return convert_to(L, t, lb_checkdtype(L, 2));
}

static int m_clone(lua_State *L)
{
    lunet_tensor_t *r;
    return lb_result(L, lunet_tensor_clone(&r, lb_checktensor(L, 1)), &r);
}

static int m_detach(lua_State *L)
{
    lunet_tensor_t *r;
    return lb_result(L, lunet_tensor_detach(&r, lb_checktensor(L, 1)), &r);
}

static int m_contiguous(lua_State *L)
{
    lunet_tensor_t *r;
    return lb_result(L, lunet_tensor_contiguous(&r, lb_checktensor(L, 1)), &r);
}

/* ================================================================ views ============== */

/*
 * view, reshape, permute and expand: the shape (dims for permute) as varargs or a table; for
 * view and reshape (other_ok), also another tensor's (view_as, reshape_as).
 */
static int with_shape(lua_State *L,
                      lunet_status_t (*fn)(lunet_tensor_t **, lunet_tensor_t *, int,
                                           const int64_t *),
                      bool other_ok)
{
    lunet_tensor_t *t = lb_checktensor(L, 1), *r;
    lunet_tensor_t *other = other_ok ? lb_totensor(L, 2) : NULL;
    int ndim;
    int64_t shape[LUNET_MAX_DIMS];
    if (other) {
        ndim = other->ndim;
        memcpy(shape, other->shape, sizeof shape);
    } else {
        lbt_checkshape(L, 2, &ndim, shape);
    }
    return lb_result(L, fn(&r, t, ndim, shape), &r);
}

static int m_view(lua_State *L) { return with_shape(L, lunet_tensor_view, true); }
static int m_reshape(lua_State *L) { return with_shape(L, lunet_tensor_reshape, true); }
static int m_permute(lua_State *L) { return with_shape(L, lunet_tensor_permute, false); }
static int m_expand(lua_State *L) { return with_shape(L, lunet_tensor_expand, false); }

/* t:t(): transpose of a tensor with at most 2 dims. */
static int m_t(lua_State *L)
{
    lunet_tensor_t *t = lb_checktensor(L, 1), *r;
    if (t->ndim > 2)
        return luaL_error(L, "t() expects a tensor with <= 2 dimensions, but self is %dD", t->ndim);
    if (t->ndim < 2) {
        LB_CHECK(L, lunet_tensor_view(&r, t, t->ndim, t->shape));
    } else {
        LB_CHECK(L, lunet_tensor_transpose(&r, t, 0, 1));
    }
    lb_pushtensor(L, r);
    return 1;
}

/*
 * The shape methods whose arguments after the tensor are all integers (dims, a start, a
 * length): one row each, read by m_int_shape (its upvalue is the row).  Arguments from `nreq`
 * on may be left out (nil) and take their default.  Exactly one of fn1/fn2/fn3 is set: the
 * runtime function taking that many integers.
 */
typedef struct {
    const char *name;
    int nreq;
    int64_t dflt[3];
    lunet_status_t (*fn1)(lunet_tensor_t **, lunet_tensor_t *, int64_t);
    lunet_status_t (*fn2)(lunet_tensor_t **, lunet_tensor_t *, int64_t, int64_t);
    lunet_status_t (*fn3)(lunet_tensor_t **, lunet_tensor_t *, int64_t, int64_t, int64_t);
} int_shape_op_t;

/* clang-format off */
static const int_shape_op_t int_shape_ops[] = {
    /* t:transpose(d0, d1) */
    {.name = "transpose", .nreq = 2, .fn2 = lunet_tensor_transpose},
    /* t:squeeze([dim]): every size-1 dim without one */
    {.name = "squeeze",   .nreq = 0, .dflt = {LUNET_ALL_DIMS}, .fn1 = lunet_tensor_squeeze},
    /* t:unsqueeze(dim) */
    {.name = "unsqueeze", .nreq = 1, .fn1 = lunet_tensor_unsqueeze},
    /* t:flatten([start [, end]]) */
    {.name = "flatten",   .nreq = 0, .dflt = {0, -1}, .fn2 = lunet_tensor_flatten},
    /* t:narrow(dim, start, length) */
    {.name = "narrow",    .nreq = 3, .fn3 = lunet_tensor_narrow},
    /* t:select(dim, index) */
    {.name = "select",    .nreq = 2, .fn2 = lunet_tensor_select},
};
/* clang-format on */

static int m_int_shape(lua_State *L)
{
    const int_shape_op_t *op = lua_touserdata(L, lua_upvalueindex(1));
    lunet_tensor_t *t = lb_checktensor(L, 1), *r;
    int nargs = op->fn1 ? 1 : op->fn2 ? 2 : 3;
    int64_t a[3];
    for (int i = 0; i < nargs; i++)
        a[i] = i < op->nreq ? (int64_t)luaL_checkinteger(L, i + 2)
                            : (int64_t)luaL_optinteger(L, i + 2, op->dflt[i]);
    lunet_status_t st = op->fn1   ? op->fn1(&r, t, a[0])
                        : op->fn2 ? op->fn2(&r, t, a[0], a[1])
                                  : op->fn3(&r, t, a[0], a[1], a[2]);
    return lb_result(L, st, &r);
}

static int m_expand_as(lua_State *L)
{
    lunet_tensor_t *t = lb_checktensor(L, 1), *o = lb_checktensor(L, 2), *r;
    return lb_result(L, lunet_tensor_expand(&r, t, o->ndim, o->shape), &r);
}

/* ================================================================ indexing =========== */

/*
 * One index entry of t:index{...}: a tensor (int64 or bool), a nested table, or an integer.
 * Tables and integers are converted and boxed in place on the stack so the GC owns them.
 */
static lunet_tensor_t *index_entry(lua_State *L, int idx)
{
    lunet_tensor_t *e = lb_totensor(L, idx);
    if (e)
        return e;
    int ty = lua_type(L, idx);
    if (ty != LUA_TTABLE && ty != LUA_TNUMBER && ty != LUA_TBOOLEAN)
        luaL_error(L, "index: each index must be a tensor, a table or an integer (got %s)",
                   luaL_typename(L, idx));
    if (ty == LUA_TNUMBER && !lua_isinteger(L, idx))
        luaL_error(L, "tensors used as indices must be long, byte or bool tensors");
    e = lb_astensor(L, idx, NULL);
    lb_pushtensor(L, e);
    lua_replace(L, idx);
    return e;
}

/* t:index{rows, cols} or t:index(rows, cols): advanced indexing, one entry per leading dim. */
static int m_index(lua_State *L)
{
    lunet_tensor_t *t = lb_checktensor(L, 1), *r;
    lunet_tensor_t *idx[LUNET_MAX_DIMS];
    int n = 0;
    if (lua_gettop(L) == 2 && lua_type(L, 2) == LUA_TTABLE) {
        int len = (int)lua_rawlen(L, 2);
        if (len > LUNET_MAX_DIMS || len > t->ndim)
            return luaL_error(L, "too many indices for tensor of dimension %d", t->ndim);
        luaL_checkstack(L, len + 2, "index");
        int base = lua_gettop(L);
        for (int i = 1; i <= len; i++)
            lua_rawgeti(L, 2, i);
        for (int i = 0; i < len; i++)
            idx[n++] = index_entry(L, base + 1 + i);
    } else {
        int top = lua_gettop(L);
        if (top - 1 > LUNET_MAX_DIMS || top - 1 > t->ndim)
            return luaL_error(L, "too many indices for tensor of dimension %d", t->ndim);
        for (int i = 2; i <= top; i++)
            idx[n++] = index_entry(L, i);
    }
    if (n == 0)
        return luaL_error(L, "index: at least one index expected");
    return lb_result(L, lunet_tensor_index(&r, t, n, idx), &r);
}

static int m_gather(lua_State *L)
{
    lunet_tensor_t *t = lb_checktensor(L, 1), *r;
    lua_Integer d = luaL_checkinteger(L, 2);
    lunet_tensor_t *i = lb_checktensor(L, 3);
    return lb_result(L, lunet_tensor_gather(&r, t, (int64_t)d, i), &r);
}

static int m_index_select(lua_State *L)
{
    lunet_tensor_t *t = lb_checktensor(L, 1), *r;
    lua_Integer d = luaL_checkinteger(L, 2);
    lunet_tensor_t *i = lb_totensor(L, 3);
    if (!i) {
        luaL_checktype(L, 3, LUA_TTABLE);
        i = index_entry(L, 3);
    }
    return lb_result(L, lunet_tensor_index_select(&r, t, (int64_t)d, i), &r);
}

lbt_fill_t lbt_checkfill(lua_State *L, int idx)
{
    lbt_fill_t f = {false, 0, 0.0};
    lunet_tensor_t *v = lb_totensor(L, idx);
    if (v) {
        if (v->numel != 1)
            luaL_argerror(L, idx, "a fill value tensor must have exactly one element");
        if (v->dtype == LUNET_DTYPE_INT64)
            f.is_int = true, f.i = *(const int64_t *)lunet_tensor_data(v);
        else
            f.d = lunet_tensor_get(v, 0);
    } else if (lua_isboolean(L, idx)) {
        f.is_int = true, f.i = lua_toboolean(L, idx);
    } else if (lua_isinteger(L, idx)) {
        f.is_int = true, f.i = (int64_t)lua_tointeger(L, idx);
    } else {
        f.d = luaL_checknumber(L, idx);
    }
    return f;
}

lunet_status_t lbt_fill_(lunet_tensor_t *t, const lbt_fill_t *v)
{
    return v->is_int ? lunet_tensor_fill_int_(t, v->i) : lunet_tensor_fill_(t, v->d);
}

lunet_status_t lbt_masked_fill(lunet_tensor_t **out, lunet_tensor_t *t, lunet_tensor_t *mask,
                               const lbt_fill_t *v)
{
    return v->is_int ? lunet_tensor_masked_fill_int(out, t, mask, v->i)
                     : lunet_tensor_masked_fill(out, t, mask, v->d);
}

static int m_masked_fill(lua_State *L)
{
    lunet_tensor_t *t = lb_checktensor(L, 1), *r;
    lunet_tensor_t *mask = lb_checktensor(L, 2);
    lbt_fill_t v = lbt_checkfill(L, 3);
    return lb_result(L, lbt_masked_fill(&r, t, mask, &v), &r);
}

/* ================================================================ metamethods ======== */

static lunet_tensor_t *self_tensor(lua_State *L)
{
    lb_tensor_t *ud = lua_touserdata(L, 1);
    if (!ud || !ud->t)
        luaL_error(L, "attempt to use a freed tensor");
    return ud->t;
}

static void push_grad_fn(lua_State *L, const lunet_tensor_t *t)
{
    const char *name = lunet_tensor_grad_fn_name(t);
    if (!name) {
        lua_pushnil(L);
        return;
    }
    lua_createtable(L, 0, 1);
    lua_pushstring(L, name);
    lua_setfield(L, -2, "name");
    lua_rawgetp(L, LUA_REGISTRYINDEX, &gradfn_mt_key);
    lua_setmetatable(L, -2);
}

static int gradfn_tostring(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "name");
    lua_pushfstring(L, "<%s>", lua_tostring(L, -1));
    return 1;
}

/* The number key of t[i] and t[i] = v (stack index 2), which must be an integer. */
static lua_Integer check_index(lua_State *L)
{
    int isint;
    lua_Integer i = lua_tointegerx(L, 2, &isint);
    if (!isint)
        luaL_error(L, "tensor index must be an integer (got %s)", lua_tostring(L, 2));
    return i;
}

/* t[i] as t:select(0, i), out of range with the message PyTorch gives for t[i] (its
   select() names the whole shape instead). */
static lunet_status_t select_item(lunet_tensor_t **r, lunet_tensor_t *t, lua_Integer i)
{
    if (t->ndim > 0 && (i < -t->shape[0] || i >= t->shape[0]))
        return lunet_error_set(LUNET_STATUS_INDEX,
                               "index %lld is out of bounds for dimension 0 with size %lld",
                               (long long)i, (long long)t->shape[0]);
    return lunet_tensor_select(r, t, 0, (int64_t)i);
}

/* t[i] = src: PyTorch expands src to the slot's shape first, so a mismatch says "The
   expanded size of the tensor ..." (copy_ itself says "The size of tensor a ..."). */
static lunet_status_t assign_tensor(lunet_tensor_t *slot, lunet_tensor_t *src)
{
    if (src->ndim > slot->ndim)
        return lunet_tensor_copy_(slot, src);
    lunet_tensor_t *e;
    bool was = lunet_set_grad_enabled(false); /* only a check of the shapes */
    lunet_status_t st = lunet_tensor_expand(&e, src, slot->ndim, slot->shape);
    lunet_set_grad_enabled(was);
    if (st)
        return st;
    lunet_tensor_release(e);
    return lunet_tensor_copy_(slot, src);
}

/* Pushes the element or sub-tensor t[i] (a number for a 1-D tensor). */
static int index_integer(lua_State *L, lunet_tensor_t *t, lua_Integer i)
{
    lunet_tensor_t *r;
    LB_CHECK(L, select_item(&r, t, i));
    if (r->ndim == 0) {
        push_elem(L, r->dtype, lunet_tensor_data(r));
        lunet_tensor_release(r);
        return 1;
    }
    lb_pushtensor(L, r);
    return 1;
}

static int t_gc(lua_State *L)
{
    lb_tensor_t *ud = luaL_checkudata(L, 1, LB_TENSOR_MT);
    lunet_tensor_release(ud->t);
    ud->t = NULL;
    return 0;
}

static int t_tostring(lua_State *L)
{
    lunet_tensor_t *t = self_tensor(L);
    char *s = NULL;
    LB_CHECK(L, lunet_tensor_format(&s, t, "lunet."));
    /* nn.Parameter marks its tensor; PyTorch prints those with a heading */
    bool param = false;
    if (lua_getiuservalue(L, 1, 1) == LUA_TTABLE) {
        lua_getfield(L, -1, "_is_param");
        param = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (param)
        lua_pushfstring(L, "Parameter containing:\n%s", s);
    else
        lua_pushstring(L, s);
    free(s);
    return 1;
}

static int t_len(lua_State *L)
{
    lunet_tensor_t *t = self_tensor(L);
    if (t->ndim == 0)
        return luaL_error(L, "len() of a 0-d tensor");
    lua_pushinteger(L, (lua_Integer)t->shape[0]);
    return 1;
}

static int t_index(lua_State *L)
{
    lunet_tensor_t *t = self_tensor(L);
    switch (lua_type(L, 2)) {
    case LUA_TSTRING: {
        lua_pushvalue(L, 2);
        if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
            return 1;
        lua_pop(L, 1);
        const char *k = lua_tostring(L, 2);
        if (strcmp(k, "shape") == 0) {
            lbt_pushsize(L, t->ndim, t->shape);
        } else if (strcmp(k, "dtype") == 0) {
            lb_pushdtype(L, t->dtype);
        } else if (strcmp(k, "requires_grad") == 0) {
            lua_pushboolean(L, t->requires_grad);
        } else if (strcmp(k, "grad") == 0) {
            lunet_tensor_retain(t->grad);
            lb_pushtensor(L, t->grad);
        } else if (strcmp(k, "grad_fn") == 0) {
            push_grad_fn(L, t);
        } else if (strcmp(k, "retains_grad") == 0) {
            lua_pushboolean(L, t->retains_grad);
        } else if (strcmp(k, "is_leaf") == 0) {
            lua_pushboolean(L, lunet_tensor_is_leaf(t));
        } else if (strcmp(k, "ndim") == 0) {
            lua_pushinteger(L, t->ndim);
        } else if (strcmp(k, "data") == 0) {
            lunet_tensor_t *r;
            LB_CHECK(L, lunet_tensor_detach(&r, t));
            lb_pushtensor(L, r);
        } else if (strcmp(k, "device") == 0) {
            lua_pushliteral(L, "cpu");
        } else if (lua_getiuservalue(L, 1, 1) == LUA_TTABLE) {
            lua_pushvalue(L, 2);
            lua_rawget(L, -2);
        } else {
            lua_pushnil(L);
        }
        return 1;
    }
    case LUA_TNUMBER:
        return index_integer(L, t, check_index(L));
    case LUA_TUSERDATA: {
        lunet_tensor_t *i = lb_totensor(L, 2), *r;
        if (i) {
            LB_CHECK(L, lunet_tensor_index(&r, t, 1, &i));
            lb_pushtensor(L, r);
            return 1;
        }
        break;
    }
    default:
        break;
    }
    return luaL_error(L,
                      "a tensor cannot be indexed with a %s (use t[i], t:index{...} or a "
                      "method name)",
                      luaL_typename(L, 2));
}

static void set_grad(lua_State *L, lunet_tensor_t *t, int vidx)
{
    lunet_tensor_t *g = lua_isnil(L, vidx) ? NULL : lb_checktensor(L, vidx);
    if (lunet_tensor_set_grad(t, g) != LUNET_OK)
        lb_error(L);
}

static int t_newindex(lua_State *L)
{
    lunet_tensor_t *t = self_tensor(L);
    switch (lua_type(L, 2)) {
    case LUA_TSTRING: {
        const char *k = lua_tostring(L, 2);
        if (strcmp(k, "grad") == 0) {
            set_grad(L, t, 3);
        } else if (strcmp(k, "requires_grad") == 0) {
            LB_CHECK(L, lunet_tensor_requires_grad_(t, lua_toboolean(L, 3)));
        } else if (strcmp(k, "data") == 0) {
            lunet_tensor_t *src = lb_totensor(L, 3);
            if (!src)
                return luaL_error(L, "Variable data has to be a tensor, but got %s",
                                  luaL_typename(L, 3));
            LB_CHECK(L, lunet_tensor_set_data(t, src));
        } else if (strcmp(k, "shape") == 0 || strcmp(k, "dtype") == 0 ||
                   strcmp(k, "grad_fn") == 0 || strcmp(k, "is_leaf") == 0 ||
                   strcmp(k, "retains_grad") == 0 || strcmp(k, "ndim") == 0 ||
                   strcmp(k, "device") == 0) {
            return luaL_error(L, "attribute '%s' of a tensor is read-only", k);
        } else {
            /* Any other field goes to a per-tensor table (used by nn to tag parameters). */
            if (lua_getiuservalue(L, 1, 1) != LUA_TTABLE) {
                lua_pop(L, 1);
                lua_newtable(L);
                lua_pushvalue(L, -1);
                lua_setiuservalue(L, 1, 1);
            }
            lua_pushvalue(L, 2);
            lua_pushvalue(L, 3);
            lua_rawset(L, -3);
        }
        return 0;
    }
    case LUA_TNUMBER: {
        lua_Integer i = check_index(L);
        lunet_tensor_t *r, *src = NULL;
        int ty = lua_type(L, 3);
        if (ty == LUA_TTABLE) {
            src = lb_astensor(L, 3, NULL);
            lb_pushtensor(L, src); /* boxed: the GC owns it */
        } else if (ty == LUA_TUSERDATA) {
            src = lb_checktensor(L, 3);
        } else if (ty != LUA_TNUMBER && ty != LUA_TBOOLEAN) {
            return luaL_error(L, "cannot assign a %s to a tensor element", luaL_typename(L, 3));
        }
        lbt_fill_t v = {false, 0, 0.0};
        if (!src)
            v = lbt_checkfill(L, 3);
        LB_CHECK(L, select_item(&r, t, i));
        lunet_status_t st = src ? assign_tensor(r, src) : lbt_fill_(r, &v);
        lunet_tensor_release(r);
        if (st)
            return lb_error(L);
        return 0;
    }
    case LUA_TUSERDATA: {
        /* t[mask] = v for a bool mask and a number. */
        lunet_tensor_t *mask = lb_checktensor(L, 2), *r;
        lbt_fill_t v = lbt_checkfill(L, 3);
        LB_CHECK(L, lbt_masked_fill(&r, t, mask, &v));
        lunet_status_t st = lunet_tensor_copy_(t, r);
        lunet_tensor_release(r);
        if (st)
            return lb_error(L);
        return 0;
    }
    default:
        return luaL_error(L, "a tensor cannot be indexed with a %s", luaL_typename(L, 2));
    }
}

/* ================================================================ registration ======= */

static const luaL_Reg methods[] = {
    {"size", m_size},
    {"stride", m_stride},
    {"dim", m_dim},
    {"ndimension", m_dim},
    {"numel", m_numel},
    {"nelement", m_numel},
    {"is_contiguous", m_is_contiguous},
    {"storage_offset", m_storage_offset},
    {"data_ptr", m_data_ptr},
    {"is_floating_point", m_is_floating_point},
    {"element_size", m_element_size},
    {"item", m_item},
    {"tolist", m_tolist},
    {"to", m_to},
    {"float", m_float},
    {"double", m_double},
    {"long", m_long},
    {"byte", m_byte},
    {"bool", m_bool},
    {"type", m_type},
    {"clone", m_clone},
    {"detach", m_detach},
    {"contiguous", m_contiguous},
    {"view", m_view},
    {"view_as", m_view},
    {"reshape", m_reshape},
    {"reshape_as", m_reshape},
    {"t", m_t},
    {"permute", m_permute},
    {"expand", m_expand},
    {"expand_as", m_expand_as},
    {"index", m_index},
    {"gather", m_gather},
    {"index_select", m_index_select},
    {"masked_fill", m_masked_fill},
    {NULL, NULL},
};

/* __index is a closure over the method table, set apart. */
static const luaL_Reg metamethods[] = {
    {"__newindex", t_newindex}, {"__gc", t_gc}, {"__tostring", t_tostring},
    {"__len", t_len},           {NULL, NULL},
};

/* Functions that are both lunet.name(t, ...) and t:name(...). */
static const char *const shared_names[] = {
    "clone",  "detach", "reshape", "transpose",    "permute",     "squeeze", "unsqueeze", "flatten",
    "narrow", "select", "gather",  "index_select", "masked_fill", "numel",   "t",         NULL,
};

static const luaL_Reg functions[] = {
    {"tensor", l_tensor},
    {"zeros", l_zeros},
    {"ones", l_ones},
    {"empty", l_empty},
    {"full", l_full},
    {"zeros_like", l_zeros_like},
    {"ones_like", l_ones_like},
    {"empty_like", l_empty_like},
    {"full_like", l_full_like},
    {"arange", l_arange},
    {"linspace", l_linspace},
    {"eye", l_eye},
    {"set_default_dtype", l_set_default_dtype},
    {"get_default_dtype", l_get_default_dtype},
    {"is_tensor", l_is_tensor},
    {"Size", l_size_new},
    {NULL, NULL},
};

void lb_open_tensor(lua_State *L)
{
    int module = lua_gettop(L);

    /* identity cache: tensor address -> box, weak values */
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "v");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &cache_key);

    /* lunet.Size metatable */
    lua_createtable(L, 0, 4);
    lua_pushcfunction(L, size_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, size_eq);
    lua_setfield(L, -2, "__eq");
    lua_pushliteral(L, "lunet.Size");
    lua_setfield(L, -2, "__name");
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, size_numel);
    lua_setfield(L, -2, "numel");
    lua_setfield(L, -2, "__index");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &size_mt_key);

    /* grad_fn objects print as <MulBackward0> */
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, gradfn_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "lunet.Node");
    lua_setfield(L, -2, "__name");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &gradfn_mt_key);

    /* method table, also lunet.Tensor so that Lua code can add methods */
    lua_newtable(L);
    int mt_methods = lua_gettop(L);
    luaL_setfuncs(L, methods, 0);
    for (size_t i = 0; i < sizeof int_shape_ops / sizeof int_shape_ops[0]; i++) {
        lua_pushlightuserdata(L, (void *)&int_shape_ops[i]);
        lua_pushcclosure(L, m_int_shape, 1);
        lua_setfield(L, mt_methods, int_shape_ops[i].name);
    }
    for (int i = 0; shared_names[i]; i++) {
        lua_getfield(L, mt_methods, shared_names[i]);
        lua_setfield(L, module, shared_names[i]);
    }

    luaL_newmetatable(L, LB_TENSOR_MT);
    int meta = lua_gettop(L);
    lua_pushvalue(L, mt_methods);
    lua_pushcclosure(L, t_index, 1);
    lua_setfield(L, meta, "__index");
    luaL_setfuncs(L, metamethods, 0);
    lua_pushvalue(L, mt_methods);
    lua_setfield(L, meta, "__methods");
    lua_pop(L, 1);

    lbt_open_math(L, module, mt_methods);

    lua_pushvalue(L, mt_methods);
    lua_setfield(L, module, "Tensor");
    lua_pop(L, 1);

    lua_pushvalue(L, module);
    luaL_setfuncs(L, functions, 0);
    lua_pop(L, 1);

    for (int d = 0; d < LUNET_DTYPE_COUNT; d++) {
        lb_pushdtype(L, (lunet_dtype_t)d);
        lua_setfield(L, module, lunet_dtype_name((lunet_dtype_t)d));
    }
    /* PyTorch's aliases */
    static const struct {
        const char *name;
        lunet_dtype_t dtype;
    } aliases[] = {{"float", LUNET_DTYPE_FLOAT32},
                   {"double", LUNET_DTYPE_FLOAT64},
                   {"long", LUNET_DTYPE_INT64}};
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
        lb_pushdtype(L, aliases[i].dtype);
        lua_setfield(L, module, aliases[i].name);
    }
}
