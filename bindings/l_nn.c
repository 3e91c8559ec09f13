/*
 * l_nn.c - the C side of lunet.nn, nn.functional and nn.init: the fused Linear forward,
 * PyTorch's gains, fans and Kaiming / Xavier fills (runtime/init.c, from the default
 * generator), and the CNN layers: conv2d, pooling, batch norm, the extra activations and
 * dropout's mask.  The modules and F.* functions are Lua (bindings/lua/lunet/nn.lua and
 * the files of nn/); these take already-normalised arguments (pairs as two integers), so
 * argument parsing and PyTorch's Python-side checks live in one place, the Lua side.  The
 * optimizers' C side is l_optim.c.
 */
#include "lbind.h"

static int64_t checkint(lua_State *L, int idx) { return (int64_t)luaL_checkinteger(L, idx); }

static lunet_tensor_t *opttensor(lua_State *L, int idx)
{
    return lua_isnoneornil(L, idx) ? NULL : lb_checktensor(L, idx);
}

/* ---- Linear */

/* _c.linear(x, w [, b [, relu]]) -> y */
static int c_linear(lua_State *L)
{
    lunet_tensor_t *x = lb_checktensor(L, 1), *w = lb_checktensor(L, 2);
    lunet_tensor_t *b = opttensor(L, 3);
    bool relu = lua_toboolean(L, 4);
    lunet_tensor_t *y;
    return lb_result(L, lunet_nn_linear(&y, x, w, b, relu), &y);
}

/* ---- nn.init */

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

/* ---- the CNN layers */

/* _c.conv2d(x, w, b|nil, sh, sw, ph, pw, extra_h, extra_w, dh, dw, groups) -> y */
static int c_conv2d(lua_State *L)
{
    lunet_tensor_t *x = lb_checktensor(L, 1), *w = lb_checktensor(L, 2), *b = opttensor(L, 3);
    lunet_conv2d_options_t o = {.stride = {checkint(L, 4), checkint(L, 5)},
                                .padding = {checkint(L, 6), checkint(L, 7)},
                                .padding_extra = {checkint(L, 8), checkint(L, 9)},
                                .dilation = {checkint(L, 10), checkint(L, 11)},
                                .groups = checkint(L, 12)};
    lunet_tensor_t *y;
    return lb_result(L, lunet_nn_conv2d(&y, x, w, b, &o), &y);
}

/* reads kh, kw, sh, sw, ph, pw from idx on */
static void pool_opts(lua_State *L, int idx, lunet_pool2d_options_t *o)
{
    lunet_pool2d_options_init(o, checkint(L, idx), checkint(L, idx + 1));
    o->stride[0] = checkint(L, idx + 2);
    o->stride[1] = checkint(L, idx + 3);
    o->padding[0] = checkint(L, idx + 4);
    o->padding[1] = checkint(L, idx + 5);
}

/* _c.max_pool2d(x, kh, kw, sh, sw, ph, pw, dh, dw, ceil_mode) -> y, indices */
static int c_max_pool2d(lua_State *L)
{
    lunet_tensor_t *x = lb_checktensor(L, 1);
    lunet_pool2d_options_t o;
    pool_opts(L, 2, &o);
    o.dilation[0] = checkint(L, 8);
    o.dilation[1] = checkint(L, 9);
    o.ceil_mode = lua_toboolean(L, 10);
    lunet_tensor_t *y, *ind;
    LB_CHECK(L, lunet_nn_max_pool2d(&y, &ind, x, &o));
    lb_pushtensor(L, y);
    lb_pushtensor(L, ind);
    return 2;
}

/* _c.avg_pool2d(x, kh, kw, sh, sw, ph, pw, ceil_mode, count_include_pad, divisor|0) -> y */
static int c_avg_pool2d(lua_State *L)
{
    lunet_tensor_t *x = lb_checktensor(L, 1);
    lunet_pool2d_options_t o;
    pool_opts(L, 2, &o);
    o.ceil_mode = lua_toboolean(L, 8);
    o.count_include_pad = lua_toboolean(L, 9);
    o.divisor_override = checkint(L, 10);
    lunet_tensor_t *y;
    return lb_result(L, lunet_nn_avg_pool2d(&y, x, &o), &y);
}

/* _c.adaptive_avg_pool2d(x, oh, ow) -> y */
static int c_adaptive_avg_pool2d(lua_State *L)
{
    lunet_tensor_t *x = lb_checktensor(L, 1), *y;
    return lb_result(L, lunet_nn_adaptive_avg_pool2d(&y, x, checkint(L, 2), checkint(L, 3)), &y);
}

/* _c.leaky_relu(x, slope), elu(x, alpha), gelu(x, tanh), softplus(x, beta, threshold),
   log_sigmoid(x) -> y */
static int c_leaky_relu(lua_State *L)
{
    lunet_tensor_t *x = lb_checktensor(L, 1), *y;
    return lb_result(L, lunet_nn_leaky_relu(&y, x, luaL_checknumber(L, 2)), &y);
}

static int c_elu(lua_State *L)
{
    lunet_tensor_t *x = lb_checktensor(L, 1), *y;
    return lb_result(L, lunet_nn_elu(&y, x, luaL_checknumber(L, 2)), &y);
}

static int c_gelu(lua_State *L)
{
    lunet_tensor_t *x = lb_checktensor(L, 1), *y;
    return lb_result(L, lunet_nn_gelu(&y, x, lua_toboolean(L, 2)), &y);
}

static int c_softplus(lua_State *L)
{
    lunet_tensor_t *x = lb_checktensor(L, 1), *y;
    return lb_result(L, lunet_nn_softplus(&y, x, luaL_checknumber(L, 2), luaL_checknumber(L, 3)),
                     &y);
}

static int c_log_sigmoid(lua_State *L)
{
    lunet_tensor_t *x = lb_checktensor(L, 1), *y;
    return lb_result(L, lunet_nn_log_sigmoid(&y, x), &y);
}

/* _c.batch_norm(x, running_mean|nil, running_var|nil, w|nil, b|nil, training, momentum, eps) */
static int c_batch_norm(lua_State *L)
{
    lunet_tensor_t *x = lb_checktensor(L, 1), *rm = opttensor(L, 2), *rv = opttensor(L, 3);
    lunet_tensor_t *w = opttensor(L, 4), *b = opttensor(L, 5), *y;
    return lb_result(L,
                     lunet_nn_batch_norm(&y, x, rm, rv, w, b, lua_toboolean(L, 6),
                                         luaL_checknumber(L, 7), luaL_checknumber(L, 8)),
                     &y);
}

/* _c.dropout_mask(x, p) -> mask (0 or 1 / (1 - p), drawn from the default generator) */
static int c_dropout_mask(lua_State *L)
{
    lunet_tensor_t *x = lb_checktensor(L, 1), *m;
    return lb_result(
        L, lunet_nn_dropout_mask(&m, x, luaL_checknumber(L, 2), lunet_default_generator()), &m);
}

static const luaL_Reg nn_c[] = {
    {"linear", c_linear},
    {"init_gain", c_init_gain},
    {"init_fans", c_init_fans},
    {"init_kaiming", c_init_kaiming},
    {"init_xavier", c_init_xavier},
    {"conv2d", c_conv2d},
    {"max_pool2d", c_max_pool2d},
    {"avg_pool2d", c_avg_pool2d},
    {"adaptive_avg_pool2d", c_adaptive_avg_pool2d},
    {"leaky_relu", c_leaky_relu},
    {"elu", c_elu},
    {"gelu", c_gelu},
    {"softplus", c_softplus},
    {"log_sigmoid", c_log_sigmoid},
    {"batch_norm", c_batch_norm},
    {"dropout_mask", c_dropout_mask},
    {NULL, NULL},
};

void lb_open_nn(lua_State *L) { lb_private_funcs(L, lua_gettop(L), nn_c); }
