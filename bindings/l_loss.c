/*
 * l_loss.c - C entry points behind F.softmax, F.log_softmax, F.cross_entropy, F.nll_loss and
 * F.mse_loss.  They live in lunet._c; bindings/lua/lunet/nn/functional.lua builds the public API
 * (argument forms, tensor methods; the modules in nn.lua) on top.
 *
 *   _c.softmax(x, dim)            _c.log_softmax(x, dim)
 *   _c.cross_entropy(x, y [, {weight=, ignore_index=, reduction=, label_smoothing=}])
 *   _c.nll_loss(x, y [, {weight=, ignore_index=, reduction=}])
 *   _c.mse_loss(a, b [, reduction])
 */
#include "lbind.h"

static int l_softmax_common(lua_State *L, bool log_out)
{
    lunet_tensor_t *x = lb_checktensor(L, 1);
    lua_Integer dim = luaL_checkinteger(L, 2);
    lunet_tensor_t *y;
    return lb_result(L,
                     log_out ? lunet_tensor_log_softmax(&y, x, dim)
                             : lunet_tensor_softmax(&y, x, dim),
                     &y);
}

static int l_softmax(lua_State *L) { return l_softmax_common(L, false); }
static int l_log_softmax(lua_State *L) { return l_softmax_common(L, true); }

/* reduction string at idx (nil = "mean") */
static lunet_reduction_t check_reduction(lua_State *L, int idx)
{
    lunet_reduction_t r = LUNET_REDUCTION_MEAN;
    if (!lua_isnoneornil(L, idx) && lunet_reduction_parse(&r, luaL_checkstring(L, idx)) != LUNET_OK)
        lb_error(L);
    return r;
}

/* A Lua error for the option `name` (its value on top of the stack) of the wrong kind. */
static int bad_option(lua_State *L, const char *name, const char *expected)
{
    return luaL_error(L, "bad option '%s' (%s expected, got %s)", name, expected,
                      luaL_typename(L, -1));
}

/*
 * Reads the options table at idx into o (all fields optional; nil fields keep defaults).  The
 * fields read stay on the stack until the binding returns (the table holds them anyway).
 */
static void check_options(lua_State *L, int idx, lunet_loss_options_t *o, bool smoothing)
{
    lunet_loss_options_init(o);
    if (lua_isnoneornil(L, idx))
        return;
    luaL_checktype(L, idx, LUA_TTABLE);
    int isnum;
    if (lua_getfield(L, idx, "weight") != LUA_TNIL && !(o->weight = lb_totensor(L, -1)))
        bad_option(L, "weight", "tensor");
    if (lua_getfield(L, idx, "ignore_index") != LUA_TNIL) {
        o->ignore_index = lua_tointegerx(L, -1, &isnum);
        if (!isnum)
            bad_option(L, "ignore_index", "integer");
    }
    if (lua_getfield(L, idx, "reduction") != LUA_TNIL) {
        if (lua_type(L, -1) != LUA_TSTRING)
            bad_option(L, "reduction", "string");
        if (lunet_reduction_parse(&o->reduction, lua_tostring(L, -1)) != LUNET_OK)
            lb_error(L);
    }
    if (smoothing && lua_getfield(L, idx, "label_smoothing") != LUA_TNIL) {
        o->label_smoothing = lua_tonumberx(L, -1, &isnum);
        if (!isnum)
            bad_option(L, "label_smoothing", "number");
    }
}

/* _c.cross_entropy(x, y [, opts]) and _c.nll_loss(x, y [, opts]) (no label_smoothing) */
static int class_loss(lua_State *L, bool cross_entropy)
{
    lunet_tensor_t *x = lb_checktensor(L, 1), *y = lb_checktensor(L, 2), *r;
    lunet_loss_options_t o;
    check_options(L, 3, &o, cross_entropy);
    return lb_result(L,
                     cross_entropy ? lunet_loss_cross_entropy(&r, x, y, &o)
                                   : lunet_loss_nll(&r, x, y, &o),
                     &r);
}

static int l_cross_entropy(lua_State *L) { return class_loss(L, true); }
static int l_nll_loss(lua_State *L) { return class_loss(L, false); }

static int l_mse_loss(lua_State *L)
{
    lunet_tensor_t *a = lb_checktensor(L, 1), *b = lb_checktensor(L, 2), *r;
    lunet_reduction_t red = check_reduction(L, 3);
    return lb_result(L, lunet_loss_mse(&r, a, b, red), &r);
}

static const luaL_Reg loss_funcs[] = {
    {"softmax", l_softmax},   {"log_softmax", l_log_softmax}, {"cross_entropy", l_cross_entropy},
    {"nll_loss", l_nll_loss}, {"mse_loss", l_mse_loss},       {NULL, NULL},
};

void lb_open_loss(lua_State *L) { lb_private_funcs(L, lua_gettop(L), loss_funcs); }
