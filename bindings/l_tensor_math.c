/*
 * l_tensor_math.c - element-wise math, comparisons, reductions, matmul, in-place ops and the
 * autograd surface of the tensor binding.  Each function is both a method (t:add(u)) and a
 * module function (lunet.add(t, u)); operators call the same functions.
 *
 * Lua's == < <= metamethods must return booleans, so tensors keep == as identity and have
 * no ordering; element-wise comparisons are the methods eq ne lt le gt ge.
 */
#include "l_tensor.h"

#include <math.h>
#include <string.h>

/* ================================================================ operands =========== */

/* Converts an already checked number/boolean/tensor operand without raising. */
static lunet_status_t operand_noraise(lua_State *L, int idx, lunet_tensor_t **t, bool *owned)
{
    *owned = false;
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
        *owned = true;
        if (lua_isinteger(L, idx))
            return lunet_tensor_scalar_int(t, LUNET_DTYPE_INT64, lua_tointeger(L, idx), true);
        return lunet_tensor_scalar(t, LUNET_DTYPE_FLOAT64, lua_tonumber(L, idx), true);
    case LUA_TBOOLEAN:
        *owned = true;
        return lunet_tensor_scalar(t, LUNET_DTYPE_BOOL, lua_toboolean(L, idx) ? 1 : 0, true);
    default:
        *t = lb_totensor(L, idx);
        return LUNET_OK;
    }
}

typedef struct operands {
    lunet_tensor_t *t[3];
    bool owned[3];
    int n;
} operands_t;

static void operands_release(operands_t *o)
{
    for (int i = 0; i < o->n; i++)
        if (o->owned[i])
            lunet_tensor_release(o->t[i]);
    o->n = 0;
}

/*
 * Operands at the given stack positions.  Everything is validated first; tables are boxed
 * into their stack slots (the GC owns them); numbers become wrapped scalars that the
 * caller releases with operands_release.
 */
static void get_operands(lua_State *L, operands_t *o, int n, const int *pos)
{
    for (int i = 0; i < n; i++)
        lbt_checkoperand(L, pos[i]);
    for (int i = 0; i < n; i++) {
        if (lua_type(L, pos[i]) == LUA_TTABLE) {
            bool owned;
            lbt_tooperand(L, pos[i], &owned);
        }
    }
    o->n = 0;
    for (int i = 0; i < n; i++) {
        lunet_status_t st = operand_noraise(L, pos[i], &o->t[i], &o->owned[i]);
        if (st) {
            operands_release(o);
            lb_error(L);
        }
        o->n = i + 1;
    }
}

/* Pushes the result of a core call made on operands, releasing them in every case. */
static int finish(lua_State *L, operands_t *o, lunet_status_t st, lunet_tensor_t *r)
{
    operands_release(o);
    if (st)
        return lb_error(L);
    lb_pushtensor(L, r);
    return 1;
}

static double opt_number(lua_State *L, int idx, const char *name, double def)
{
    double v = def;
    if (lua_type(L, idx) != LUA_TTABLE)
        return v;
    if (lua_getfield(L, idx, name) != LUA_TNIL) {
        if (!lua_isnumber(L, -1))
            luaL_error(L, "option '%s' must be a number", name);
        v = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

/* ================================================================ binary ============= */

static int binary(lua_State *L, lunet_binary_op_t op)
{
    static const int pos[2] = {1, 2};
    operands_t o;
    lunet_tensor_t *r = NULL;
    get_operands(L, &o, 2, pos);
    lunet_status_t st = lunet_tensor_binary(&r, op, o.t[0], o.t[1]);
    return finish(L, &o, st, r);
}

/* True when opts at idx has an integer alpha (a Lua integer), into *alpha. */
static bool int_alpha(lua_State *L, int idx, lua_Integer *alpha)
{
    if (lua_type(L, idx) != LUA_TTABLE)
        return false;
    lua_getfield(L, idx, "alpha");
    int isint = lua_isinteger(L, -1);
    *alpha = isint ? lua_tointeger(L, -1) : 0;
    lua_pop(L, 1);
    return isint;
}

/* a +- b * alpha for an int64 result with an integer alpha, exact beyond 2^53 (the double
   alpha of lunet_tensor_add_scaled is not); int64 math wraps as PyTorch's does. */
static lunet_status_t add_scaled_int(lunet_tensor_t **out, lunet_binary_op_t op, lunet_tensor_t *a,
                                     lunet_tensor_t *b, lua_Integer alpha)
{
    lunet_tensor_t *s = NULL, *bs = NULL;
    lunet_status_t st = lunet_tensor_scalar_int(&s, LUNET_DTYPE_INT64, alpha, true);
    if (!st)
        st = lunet_tensor_binary(&bs, LUNET_BINARY_MUL, b, s);
    if (!st)
        st = lunet_tensor_binary(out, op, a, bs);
    lunet_tensor_release(s);
    lunet_tensor_release(bs);
    return st;
}

/* PyTorch refuses a Python float alpha (2.0 too) when the result is integral; it checks
   after broadcasting and sub's bool check, so this runs on the op's result r (released when
   refused). The runtime sees only alpha's value, so a non-integral one is all it can catch. */
static lunet_status_t check_alpha_kind(lua_State *L, int idx, lunet_tensor_t **r)
{
    if (!*r || lua_type(L, idx) != LUA_TTABLE)
        return LUNET_OK;
    lua_getfield(L, idx, "alpha");
    bool is_float = lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1);
    lua_pop(L, 1);
    if (!is_float || lunet_dtype_is_floating((*r)->dtype))
        return LUNET_OK;
    lunet_tensor_release(*r);
    *r = NULL;
    return lunet_error_set(LUNET_STATUS_RUNTIME, "For integral input tensors, argument alpha must "
                                                 "not be a floating point number.");
}

/* add/sub with an optional {alpha=} */
static int add_sub(lua_State *L, double sign)
{
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TTABLE);
    double alpha = opt_number(L, 3, "alpha", 1.0);
    static const int pos[2] = {1, 2};
    operands_t o;
    lunet_tensor_t *r = NULL;
    get_operands(L, &o, 2, pos);
    lunet_status_t st;
    lunet_binary_op_t op = sign > 0 ? LUNET_BINARY_ADD : LUNET_BINARY_SUB;
    lua_Integer ialpha;
    if (alpha == 1.0)
        st = lunet_tensor_binary(&r, op, o.t[0], o.t[1]);
    else if (int_alpha(L, 3, &ialpha) && lunet_result_dtype(o.t[0], o.t[1]) == LUNET_DTYPE_INT64)
        st = add_scaled_int(&r, op, o.t[0], o.t[1], ialpha);
    else
        st = lunet_tensor_add_scaled(&r, o.t[0], o.t[1], sign * alpha);
    if (!st)
        st = check_alpha_kind(L, 3, &r);
    return finish(L, &o, st, r);
}

static int f_add(lua_State *L) { return add_sub(L, 1.0); }
static int f_sub(lua_State *L) { return add_sub(L, -1.0); }
/* lunet.name(a, b) and t:name(b) for every binary op but add and sub (whose alpha add_sub
   reads): closures over the op, registered in lbt_open_math; some are also Lua operators. */
static int l_binary(lua_State *L)
{
    return binary(L, (lunet_binary_op_t)lua_tointeger(L, lua_upvalueindex(2)));
}

static const char *const binary_operator[LUNET_BINARY_COUNT] = {
    [LUNET_BINARY_MUL] = "__mul",
    [LUNET_BINARY_DIV] = "__div",
    [LUNET_BINARY_POW] = "__pow",
    [LUNET_BINARY_FLOOR_DIV] = "__idiv",
};

/* t:equal(u): true when shapes and all elements are equal (a Lua boolean). */
static int f_equal(lua_State *L)
{
    lunet_tensor_t *a = lb_checktensor(L, 1), *b = lb_checktensor(L, 2), *e = NULL, *all = NULL;
    if (a->ndim != b->ndim || memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim)) {
        lua_pushboolean(L, 0);
        return 1;
    }
    LB_CHECK(L, lunet_tensor_binary(&e, LUNET_BINARY_EQ, a, b));
    lunet_status_t st = lunet_tensor_reduce(&all, NULL, LUNET_REDUCE_ALL, e, 0, NULL, false);
    lunet_tensor_release(e);
    if (st)
        return lb_error(L);
    lua_pushboolean(L, lunet_tensor_get(all, 0) != 0);
    lunet_tensor_release(all);
    return 1;
}

/* ================================================================ unary ============== */

static int unary(lua_State *L, lunet_unary_op_t op)
{
    lunet_tensor_t *t = lb_checktensor(L, 1), *r;
    return lb_result(L, lunet_tensor_unary(&r, op, t), &r);
}

static int unary_(lua_State *L, lunet_unary_op_t op)
{
    LB_CHECK(L, lunet_tensor_unary_(lb_checktensor(L, 1), op));
    lua_settop(L, 1);
    return 1;
}

/* t:name() and lunet.name(t), t:name_(): closures over the op (registered in lbt_open_math). */
static int l_unary(lua_State *L)
{
    return unary(L, (lunet_unary_op_t)lua_tointeger(L, lua_upvalueindex(2)));
}

static int l_unary_(lua_State *L)
{
    return unary_(L, (lunet_unary_op_t)lua_tointeger(L, lua_upvalueindex(1)));
}

/* One bound of clamp at stack index idx (absent: NaN); a Lua float sets *is_float, a number
   (not a boolean, which is a Python bool: 0 or 1) clears *all_bool. */
static double clamp_bound(lua_State *L, int idx, bool *is_float, bool *all_bool)
{
    if (lua_isnoneornil(L, idx))
        return NAN;
    if (lua_isboolean(L, idx))
        return lua_toboolean(L, idx);
    double v = luaL_checknumber(L, idx);
    *is_float = *is_float || !lua_isinteger(L, idx);
    *all_bool = false;
    return v;
}

/* PyTorch's kernel names in the error for a bool tensor clamped by bools. */
static int clamp_bool_error(lua_State *L, double lo, double hi)
{
    return luaL_error(L, "\"%s\" not implemented for 'Bool'",
                      isnan(hi)   ? "clamp_min_cpu"
                      : isnan(lo) ? "clamp_max_scalar_cpu"
                                  : "clamp_scalar_cpu");
}

/* Bounds of clamp: (min, max) positionally or {min=, max=}; nil leaves a side open.
   Returns the result dtype by PyTorch's promotion of t with the bounds as Python scalars: a
   float bound makes an integer or bool t's result the default float; an integer bound makes
   a bool t's result int64. */
static lunet_dtype_t clamp_bounds(lua_State *L, lunet_tensor_t *t, double *lo, double *hi)
{
    bool is_float = false, all_bool = true;
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_getfield(L, 2, "min");
        lua_getfield(L, 2, "max");
        *lo = clamp_bound(L, -2, &is_float, &all_bool);
        *hi = clamp_bound(L, -1, &is_float, &all_bool);
        lua_pop(L, 2);
    } else {
        *lo = clamp_bound(L, 2, &is_float, &all_bool);
        *hi = clamp_bound(L, 3, &is_float, &all_bool);
    }
    if (isnan(*lo) && isnan(*hi))
        luaL_error(L, "torch.clamp: At least one of 'min' or 'max' must not be None");
    if (lunet_dtype_is_floating(t->dtype))
        return t->dtype;
    if (is_float)
        return lunet_default_dtype();
    if (t->dtype == LUNET_DTYPE_BOOL && all_bool)
        clamp_bool_error(L, *lo, *hi);
    return t->dtype == LUNET_DTYPE_BOOL ? LUNET_DTYPE_INT64 : t->dtype;
}

static int f_clamp(lua_State *L)
{
    lunet_tensor_t *t = lb_checktensor(L, 1), *c = NULL, *r;
    double lo, hi;
    lunet_dtype_t rdt = clamp_bounds(L, t, &lo, &hi);
    if (rdt != t->dtype) {
        LB_CHECK(L, lunet_tensor_to(&c, t, rdt));
        lb_pushtensor(L, c); /* boxed: the GC owns it if clamp fails */
    }
    return lb_result(L, lunet_tensor_clamp(&r, c ? c : t, lo, hi), &r);
}

/* PyTorch names the output by its C++ element type in clamp_'s cast error. */
static const char *const clamp_cpp_type[LUNET_DTYPE_COUNT] = {
    [LUNET_DTYPE_INT64] = "long int",
    [LUNET_DTYPE_UINT8] = "unsigned char",
    [LUNET_DTYPE_BOOL] = "bool",
};

static int f_clamp_(lua_State *L)
{
    lunet_tensor_t *t = lb_checktensor(L, 1);
    double lo, hi;
    lunet_dtype_t rdt = clamp_bounds(L, t, &lo, &hi);
    if (rdt != t->dtype)
        return luaL_error(L, "result type %s can't be cast to the desired output type %s",
                          lunet_dtype_torch_name(rdt), clamp_cpp_type[t->dtype]);
    LB_CHECK(L, lunet_tensor_clamp_(t, lo, hi));
    lua_settop(L, 1);
    return 1;
}

/* lunet.where(cond, a, b): the operands are taken from the stack positions in pos. */
static int where_at(lua_State *L, const int pos[3])
{
    operands_t o;
    lunet_tensor_t *r = NULL;
    get_operands(L, &o, 3, pos);
    lunet_status_t st = lunet_tensor_where(&r, o.t[0], o.t[1], o.t[2]);
    return finish(L, &o, st, r);
}

static int f_where(lua_State *L)
{
    static const int pos[3] = {1, 2, 3};
    return where_at(L, pos);
}

/* x:where(cond, y) is PyTorch's Tensor.where: where(cond, x, y), not where(x, cond, y). */
static int f_where_method(lua_State *L)
{
    static const int pos[3] = {2, 1, 3};
    lb_checktensor(L, 1);
    return where_at(L, pos);
}

/* ================================================================ in place =========== */

static int inplace_binary(lua_State *L, lunet_binary_op_t op)
{
    lunet_tensor_t *t = lb_checktensor(L, 1);
    (void)t;
    static const int pos[2] = {1, 2};
    operands_t o;
    get_operands(L, &o, 2, pos);
    lunet_status_t st = lunet_tensor_binary_(o.t[0], op, o.t[1]);
    operands_release(&o);
    if (st)
        return lb_error(L);
    lua_settop(L, 1);
    return 1;
}

/* add_/sub_ with {alpha=}: a fused a + alpha*b computed out of place, then copied back. */
static int inplace_add_sub(lua_State *L, double sign)
{
    lunet_tensor_t *t = lb_checktensor(L, 1);
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TTABLE);
    double alpha = opt_number(L, 3, "alpha", 1.0);
    if (alpha == 1.0)
        return inplace_binary(L, sign > 0 ? LUNET_BINARY_ADD : LUNET_BINARY_SUB);
    static const int pos[2] = {1, 2};
    operands_t o;
    lunet_tensor_t *r = NULL;
    get_operands(L, &o, 2, pos);
    lunet_status_t st;
    lunet_dtype_t rt = lunet_result_dtype(t, o.t[1]);
    if (lunet_dtype_is_floating(rt) && !lunet_dtype_is_floating(t->dtype))
        st = lunet_error_set(LUNET_STATUS_RUNTIME,
                             "result type %s can't be cast to the desired output type %s",
                             lunet_dtype_torch_name(rt), lunet_dtype_torch_name(t->dtype));
    else
        st = lunet_tensor_add_scaled(&r, t, o.t[1], sign * alpha);
    if (st == LUNET_OK)
        st = check_alpha_kind(L, 3, &r);
    if (st == LUNET_OK) {
        st = lunet_tensor_copy_(t, r);
        lunet_tensor_release(r);
    }
    operands_release(&o);
    if (st)
        return lb_error(L);
    lua_settop(L, 1);
    return 1;
}

static int f_add_(lua_State *L) { return inplace_add_sub(L, 1.0); }
static int f_sub_(lua_State *L) { return inplace_add_sub(L, -1.0); }
static int f_mul_(lua_State *L) { return inplace_binary(L, LUNET_BINARY_MUL); }
static int f_div_(lua_State *L) { return inplace_binary(L, LUNET_BINARY_DIV); }
static int f_pow_(lua_State *L) { return inplace_binary(L, LUNET_BINARY_POW); }

static int f_zero_(lua_State *L)
{
    LB_CHECK(L, lunet_tensor_fill_(lb_checktensor(L, 1), 0.0));
    lua_settop(L, 1);
    return 1;
}

static int f_fill_(lua_State *L)
{
    lunet_tensor_t *t = lb_checktensor(L, 1);
    lbt_fill_t v = lbt_checkfill(L, 2);
    LB_CHECK(L, lbt_fill_(t, &v));
    lua_settop(L, 1);
    return 1;
}

static int f_copy_(lua_State *L)
{
    lunet_tensor_t *t = lb_checktensor(L, 1);
    static const int pos[1] = {2};
    operands_t o;
    get_operands(L, &o, 1, pos);
    lunet_status_t st = lunet_tensor_copy_(t, o.t[0]);
    operands_release(&o);
    if (st)
        return lb_error(L);
    lua_settop(L, 1);
    return 1;
}

/* ================================================================ reductions ========= */

typedef struct reduce_args {
    int ndims;
    int64_t dims[LUNET_MAX_DIMS];
    bool keepdim;
    bool has_dtype;
    lunet_dtype_t dtype;
} reduce_args_t;

static void read_dims(lua_State *L, int idx, reduce_args_t *a)
{
    if (lua_type(L, idx) == LUA_TNUMBER) {
        a->dims[0] = (int64_t)luaL_checkinteger(L, idx);
        a->ndims = 1;
        return;
    }
    if (lua_type(L, idx) != LUA_TTABLE)
        luaL_error(L, "dim must be an integer or a table of integers (got %s)",
                   luaL_typename(L, idx));
    int n = (int)lua_rawlen(L, idx);
    if (n > LUNET_MAX_DIMS)
        luaL_error(L, "too many dims");
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, idx, i + 1);
        int isint;
        lua_Integer d = lua_tointegerx(L, -1, &isint);
        if (!isint)
            luaL_error(L, "dim must be an integer or a table of integers");
        a->dims[i] = (int64_t)d;
        lua_pop(L, 1);
    }
    a->ndims = n;
}

/* Options {dim=|axis=, keepdim=|keepdims=, dtype=} at idx. */
static void read_reduce_opts(lua_State *L, int idx, reduce_args_t *a)
{
    idx = lua_absindex(L, idx);
    static const char *const dim_keys[] = {"dim", "axis"};
    for (int k = 0; k < 2; k++) {
        if (lua_getfield(L, idx, dim_keys[k]) != LUA_TNIL)
            read_dims(L, lua_gettop(L), a);
        lua_pop(L, 1);
    }
    static const char *const kd_keys[] = {"keepdim", "keepdims"};
    for (int k = 0; k < 2; k++) {
        if (lua_getfield(L, idx, kd_keys[k]) != LUA_TNIL)
            a->keepdim = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    if (lua_getfield(L, idx, "dtype") != LUA_TNIL) {
        a->dtype = lb_checkdtype(L, -1);
        a->has_dtype = true;
    }
    lua_pop(L, 1);
}

/* (dim, keepdim) or {dim=, keepdim=} or (dims_table [, keepdim]) starting at arg 2. */
static void reduce_parse(lua_State *L, reduce_args_t *a)
{
    memset(a, 0, sizeof *a);
    int ty = lua_type(L, 2);
    if (ty == LUA_TNUMBER) {
        read_dims(L, 2, a);
    } else if (ty == LUA_TTABLE) {
        if (lua_rawlen(L, 2) > 0)
            read_dims(L, 2, a);
        else
            read_reduce_opts(L, 2, a);
    } else if (ty != LUA_TNIL && ty != LUA_TNONE) {
        luaL_typeerror(L, 2, "dim (integer or table)");
    }
    if (lua_type(L, 3) == LUA_TBOOLEAN)
        a->keepdim = lua_toboolean(L, 3);
    else if (lua_type(L, 3) == LUA_TTABLE)
        read_reduce_opts(L, 3, a);
    else if (!lua_isnoneornil(L, 3))
        luaL_typeerror(L, 3, "boolean");
}

static int reduce(lua_State *L, lunet_reduce_op_t op, bool single_dim, bool pair)
{
    lunet_tensor_t *x = lb_checktensor(L, 1), *r = NULL, *idx = NULL, *conv = NULL;
    reduce_args_t a;
    reduce_parse(L, &a);
    if (single_dim && a.ndims > 1)
        return luaL_error(L, "%s: dim must be a single integer",
                          lua_tostring(L, lua_upvalueindex(1)));
    if (a.has_dtype && op == LUNET_REDUCE_MEAN && !lunet_dtype_is_floating(a.dtype))
        return luaL_error(L,
                          "mean(): could not infer output dtype. Optional dtype must be either "
                          "a floating point or complex dtype. Got: %s",
                          lunet_dtype_torch_name(a.dtype));
    if (a.has_dtype) {
        LB_CHECK(L, lunet_tensor_to(&conv, x, a.dtype));
        x = conv;
    }
    bool want_idx = pair && a.ndims == 1;
    lunet_status_t st = lunet_tensor_reduce(&r, want_idx ? &idx : NULL, op, x, a.ndims, a.dims,
                                            a.keepdim);
    lunet_tensor_release(conv);
    if (st)
        return lb_error(L);
    lb_pushtensor(L, r);
    if (want_idx) {
        lb_pushtensor(L, idx);
        return 2;
    }
    return 1;
}

static int f_sum(lua_State *L) { return reduce(L, LUNET_REDUCE_SUM, false, false); }
static int f_mean(lua_State *L) { return reduce(L, LUNET_REDUCE_MEAN, false, false); }
static int f_prod(lua_State *L) { return reduce(L, LUNET_REDUCE_PROD, true, false); }
static int f_argmax(lua_State *L) { return reduce(L, LUNET_REDUCE_ARGMAX, true, false); }
static int f_argmin(lua_State *L) { return reduce(L, LUNET_REDUCE_ARGMIN, true, false); }
static int f_all(lua_State *L) { return reduce(L, LUNET_REDUCE_ALL, false, false); }
static int f_any(lua_State *L) { return reduce(L, LUNET_REDUCE_ANY, false, false); }

/* max(t) -> 0-d; max(t, dim [, keepdim]) -> values, indices; max(a, b) -> maximum. */
static int f_max(lua_State *L)
{
    if (lb_totensor(L, 2))
        return binary(L, LUNET_BINARY_MAXIMUM);
    return reduce(L, LUNET_REDUCE_MAX, true, true);
}

static int f_min(lua_State *L)
{
    if (lb_totensor(L, 2))
        return binary(L, LUNET_BINARY_MINIMUM);
    return reduce(L, LUNET_REDUCE_MIN, true, true);
}

/* ================================================================ matmul ============= */

static int f_matmul(lua_State *L)
{
    lunet_tensor_t *a = lb_checktensor(L, 1), *b = lb_checktensor(L, 2), *r;
    return lb_result(L, lunet_tensor_matmul(&r, a, b), &r);
}

static int f_mm(lua_State *L)
{
    lunet_tensor_t *a = lb_checktensor(L, 1), *b = lb_checktensor(L, 2), *r;
    return lb_result(L, lunet_tensor_mm(&r, a, b), &r);
}

/* addmm(c, a, b [, {beta=, alpha=}]) = beta*c + alpha*(a @ b) */
static int f_addmm(lua_State *L)
{
    lunet_tensor_t *c = lb_checktensor(L, 1), *a = lb_checktensor(L, 2), *b = lb_checktensor(L, 3),
                   *r;
    if (!lua_isnoneornil(L, 4))
        luaL_checktype(L, 4, LUA_TTABLE);
    double beta = opt_number(L, 4, "beta", 1.0), alpha = opt_number(L, 4, "alpha", 1.0);
    return lb_result(L, lunet_tensor_addmm(&r, c, a, b, beta, alpha), &r);
}

/* ================================================================ autograd =========== */

static int f_requires_grad_(lua_State *L)
{
    lunet_tensor_t *t = lb_checktensor(L, 1);
    bool b = lua_isnoneornil(L, 2) ? true : lua_toboolean(L, 2);
    LB_CHECK(L, lunet_tensor_requires_grad_(t, b));
    lua_settop(L, 1);
    return 1;
}

/* t:backward([grad] [, {retain_graph = true}]) */
static int f_backward(lua_State *L)
{
    lunet_tensor_t *t = lb_checktensor(L, 1), *g = NULL;
    int optidx = 3;
    if (lbt_isoptstable(L, 2)) {
        optidx = 2;
    } else if (!lua_isnoneornil(L, 2)) {
        g = lb_totensor(L, 2);
        if (!g) {
            int ty = lua_type(L, 2);
            if (ty != LUA_TTABLE && ty != LUA_TNUMBER)
                return luaL_typeerror(L, 2, "tensor");
            lunet_dtype_t dt = t->dtype;
            g = lb_astensor(L, 2, &dt);
            lb_pushtensor(L, g);
            lua_replace(L, 2);
        }
    }
    bool retain = false;
    if (lua_type(L, optidx) == LUA_TTABLE) {
        lua_getfield(L, optidx, "retain_graph");
        retain = lua_toboolean(L, -1);
        lua_pop(L, 1);
    } else if (!lua_isnoneornil(L, optidx)) {
        return luaL_typeerror(L, optidx, "table");
    }
    LB_CHECK(L, lunet_tensor_backward(t, g, retain));
    lb_post_backward(L); /* DistributedDataParallel's gradient reduction */
    return 0;
}

/* Keeps .grad on a non-leaf after backward (a leaf keeps it anyway). */
static int f_retain_grad(lua_State *L)
{
    lunet_tensor_t *t = lb_checktensor(L, 1);
    if (!t->requires_grad)
        return luaL_error(L, "can't retain_grad on Tensor that has requires_grad=False");
    LB_CHECK(L, lunet_tensor_retain_grad(t));
    lua_settop(L, 1);
    return 1;
}

/* Runs fn(...) with grad mode `enabled`, restoring the mode even if fn raises. */
static int with_grad_mode(lua_State *L, bool enabled)
{
    int ty = lua_type(L, 1);
    if (ty != LUA_TFUNCTION && ty != LUA_TTABLE && ty != LUA_TUSERDATA)
        return luaL_typeerror(L, 1, "function");
    bool prev = lunet_set_grad_enabled(enabled);
    int st = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    lunet_set_grad_enabled(prev);
    if (st != LUA_OK)
        return lua_error(L);
    return lua_gettop(L);
}

static int f_no_grad(lua_State *L) { return with_grad_mode(L, false); }
static int f_enable_grad(lua_State *L) { return with_grad_mode(L, true); }

static int f_is_grad_enabled(lua_State *L)
{
    lua_pushboolean(L, lunet_grad_enabled());
    return 1;
}

static int f_set_grad_enabled(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_pushboolean(L, lunet_set_grad_enabled(lua_toboolean(L, 1)));
    return 1;
}

/* ================================================================ metamethods ======== */

static int mm_unm(lua_State *L)
{
    lua_settop(L, 1);
    return unary(L, LUNET_UNARY_NEG);
}

static int mm_add(lua_State *L)
{
    lua_settop(L, 2);
    return binary(L, LUNET_BINARY_ADD);
}

static int mm_sub(lua_State *L)
{
    lua_settop(L, 2);
    return binary(L, LUNET_BINARY_SUB);
}

/* ================================================================ registration ======= */

/* Both t:name(...) and lunet.name(...). */
static const luaL_Reg both[] = {
    {"add", f_add}, {"sub", f_sub},       {"equal", f_equal},   {"clamp", f_clamp},
    {"sum", f_sum}, {"mean", f_mean},     {"prod", f_prod},     {"max", f_max},
    {"min", f_min}, {"argmax", f_argmax}, {"argmin", f_argmin}, {"all", f_all},
    {"any", f_any}, {"matmul", f_matmul}, {"mm", f_mm},         {"addmm", f_addmm},
    {NULL, NULL},
};

/* Methods only. */
static const luaL_Reg methods_only[] = {
    {"add_", f_add_},          {"sub_", f_sub_},
    {"mul_", f_mul_},          {"div_", f_div_},
    {"pow_", f_pow_},          {"clamp_", f_clamp_},
    {"zero_", f_zero_},        {"fill_", f_fill_},
    {"copy_", f_copy_},        {"requires_grad_", f_requires_grad_},
    {"backward", f_backward},  {"retain_grad", f_retain_grad},
    {"where", f_where_method}, {NULL, NULL},
};

static const luaL_Reg module_only[] = {
    {"where", f_where},
    {"no_grad", f_no_grad},
    {"enable_grad", f_enable_grad},
    {"is_grad_enabled", f_is_grad_enabled},
    {"set_grad_enabled", f_set_grad_enabled},
    {NULL, NULL},
};

static const luaL_Reg metamethods[] = {
    {"__add", mm_add},
    {"__sub", mm_sub},
    {"__unm", mm_unm},
    {NULL, NULL},
};

/* The in-place methods' names, written out so that a search for "sigmoid_" finds them. */
static const char *const unary_inplace_name[] = {
    [LUNET_UNARY_NEG] = "neg_",   [LUNET_UNARY_EXP] = "exp_",   [LUNET_UNARY_LOG] = "log_",
    [LUNET_UNARY_SQRT] = "sqrt_", [LUNET_UNARY_ABS] = "abs_",   [LUNET_UNARY_SIGMOID] = "sigmoid_",
    [LUNET_UNARY_TANH] = "tanh_", [LUNET_UNARY_RELU] = "relu_",
};
_Static_assert(sizeof unary_inplace_name / sizeof unary_inplace_name[0] == LUNET_UNARY_COUNT,
               "one in-place method name per unary op");

void lbt_open_math(lua_State *L, int module_idx, int methods_idx)
{
    for (const luaL_Reg *r = both; r->name; r++) {
        /* The name as an upvalue lets shared helpers name the function in messages. */
        lua_pushstring(L, r->name);
        lua_pushcclosure(L, r->func, 1);
        lua_pushvalue(L, -1);
        lua_setfield(L, methods_idx, r->name);
        lua_setfield(L, module_idx, r->name);
    }
    luaL_getmetatable(L, LB_TENSOR_MT);
    int meta = lua_gettop(L);
    for (int op = 0; op < LUNET_BINARY_COUNT; op++) {
        if (op == LUNET_BINARY_ADD || op == LUNET_BINARY_SUB)
            continue;
        const char *name = lunet_binary_op_name((lunet_binary_op_t)op);
        lua_pushstring(L, name);
        lua_pushinteger(L, op);
        lua_pushcclosure(L, l_binary, 2);
        if (binary_operator[op]) {
            lua_pushvalue(L, -1);
            lua_setfield(L, meta, binary_operator[op]);
        }
        lua_pushvalue(L, -1);
        lua_setfield(L, methods_idx, name);
        lua_setfield(L, module_idx, name);
    }
    lua_pop(L, 1);
    /* every unary op of the runtime under its name: lunet.name(t), t:name() and t:name_() */
    for (int op = 0; op < LUNET_UNARY_COUNT; op++) {
        const char *name = lunet_unary_op_name((lunet_unary_op_t)op);
        const char *inplace = unary_inplace_name[op];
        lua_pushstring(L, name);
        lua_pushinteger(L, op);
        lua_pushcclosure(L, l_unary, 2);
        lua_pushvalue(L, -1);
        lua_setfield(L, methods_idx, name);
        lua_setfield(L, module_idx, name);
        lua_pushinteger(L, op);
        lua_pushcclosure(L, l_unary_, 1);
        lua_setfield(L, methods_idx, inplace);
    }
    lua_pushvalue(L, methods_idx);
    luaL_setfuncs(L, methods_only, 0);
    lua_pop(L, 1);
    lua_pushvalue(L, module_idx);
    luaL_setfuncs(L, module_only, 0);
    lua_pop(L, 1);
    luaL_getmetatable(L, LB_TENSOR_MT);
    luaL_setfuncs(L, metamethods, 0);
    lua_pop(L, 1);
}
