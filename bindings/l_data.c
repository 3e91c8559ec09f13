/*
 * l_data.c - C helpers behind lunet.data (bindings/lua/lunet/data.lua), under lunet._c:
 * IDX read/write, the one-call-per-batch image kernel, the single-image transforms, label
 * checks, and the DataLoader's draws from the global generator (docs/pytorch-parity.md §14.6).
 */
#include <stdlib.h>
#include <string.h>

#include "lbind.h"

/* _c.read_idx(path) -> tensor */
static int l_read_idx(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lunet_tensor_t *t;
    return lb_result(L, lunet_idx_read(&t, path), &t);
}

/* _c.read_idx_string(bytes [, name]) -> tensor */
static int l_read_idx_string(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    const char *name = luaL_optstring(L, 2, "<string>");
    lunet_tensor_t *t;
    return lb_result(L, lunet_idx_read_buffer(&t, s, n, name), &t);
}

/* _c.write_idx(path, t [, type_code [, gzip]]) */
static int l_write_idx(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lunet_tensor_t *t = lb_checktensor(L, 2);
    lua_Integer code = luaL_optinteger(L, 3, 0);
    int gz = lua_toboolean(L, 4);
    luaL_argcheck(L, code >= 0 && code <= 255, 3, "type code must be a byte");
    LB_CHECK(L, lunet_idx_write(path, t, (int)code, gz != 0));
    return 0;
}

/* Reads an optional array of numbers (mean or std) into buf; returns its length. */
static int check_numbers(lua_State *L, int idx, double *buf, int cap, const char *what)
{
    if (lua_isnoneornil(L, idx))
        return 0;
    if (lua_isnumber(L, idx)) {
        buf[0] = lua_tonumber(L, idx);
        return 1;
    }
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_Integer n = luaL_len(L, idx);
    if (n < 1 || n > cap)
        return luaL_error(L, "%s must hold 1 to %d numbers, got %d", what, cap, (int)n);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, idx, i);
        int ok;
        buf[i - 1] = lua_tonumberx(L, -1, &ok);
        lua_pop(L, 1);
        if (!ok)
            return luaL_error(L, "%s[%d] is not a number", what, (int)i);
    }
    return (int)n;
}

#define MAX_CHANNELS 64

/*
 * _c.image_batch(images_u8, labels_or_nil, order, start, count, scale_div, mean, std)
 *   -> X float32 (count, C, H, W), y int64 (count) or nil
 * order: int64 1-D tensor of sample positions (the epoch's permutation, or nil for
 * start, start+1, ...); the batch is order[start : start + count].
 */
static int l_image_batch(lua_State *L)
{
    lunet_tensor_t *im = lb_checktensor(L, 1);
    lunet_tensor_t *labels = lua_isnoneornil(L, 2) ? NULL : lb_checktensor(L, 2);
    lunet_tensor_t *order = lua_isnoneornil(L, 3) ? NULL : lb_checktensor(L, 3);
    lua_Integer start = luaL_checkinteger(L, 4);
    lua_Integer count = luaL_checkinteger(L, 5);
    double div = luaL_checknumber(L, 6);
    double mean[MAX_CHANNELS], std[MAX_CHANNELS];
    int nm = check_numbers(L, 7, mean, MAX_CHANNELS, "mean");
    int ns = check_numbers(L, 8, std, MAX_CHANNELS, "std");
    if (im->dtype != LUNET_DTYPE_UINT8 || (im->ndim != 3 && im->ndim != 4))
        return luaL_argerror(L, 1, "images must be a uint8 (N, H, W) or (N, C, H, W) tensor");
    if (nm != ns)
        return luaL_error(L, "Normalize: mean has %d values but std has %d", nm, ns);
    if (count < 0 || start < 0)
        return luaL_error(L, "image_batch: bad range start %I count %I", start, count);
    if (order) {
        if (order->dtype != LUNET_DTYPE_INT64 || order->ndim != 1 ||
            !lunet_tensor_is_contiguous(order))
            return luaL_argerror(L, 3, "order must be a contiguous int64 1-D tensor");
        if (count > order->shape[0] - start) /* start + count could overflow */
            return luaL_error(L, "image_batch: %I samples from %I are outside the order of size %I",
                              count, start, (lua_Integer)order->shape[0]);
    }
    int64_t C = im->ndim == 4 ? im->shape[1] : 1;
    int64_t xs[4] = {count, C, im->shape[im->ndim - 2], im->shape[im->ndim - 1]};
    int64_t *idx = NULL;
    const int64_t *ip;
    if (order) {
        ip = (const int64_t *)lunet_tensor_data(order) + start;
    } else {
        /* sequential batches; small and short-lived */
        idx = malloc((size_t)(count > 0 ? count : 1) * sizeof *idx);
        if (!idx)
            return luaL_error(L, "image_batch: out of memory");
        for (lua_Integer i = 0; i < count; i++)
            idx[i] = start + i;
        ip = idx;
    }
    lunet_tensor_t *x = NULL, *y = NULL;
    lunet_status_t st = lunet_tensor_empty(&x, LUNET_DTYPE_FLOAT32, 4, xs);
    if (!st && labels)
        st = lunet_tensor_empty(&y, LUNET_DTYPE_INT64, 1, xs);
    if (!st)
        st = lunet_data_image_batch(x, y, im, labels, ip, count, div, nm, mean, std);
    free(idx);
    if (st) {
        lunet_tensor_release(x);
        lunet_tensor_release(y);
        return lb_error(L);
    }
    lb_pushtensor(L, x);
    lb_pushtensor(L, y);
    return 2;
}

/* _c.to_tensor(img_u8) -> float32 (C, H, W) */
static int l_to_tensor(lua_State *L)
{
    lunet_tensor_t *img = lb_checktensor(L, 1);
    lunet_tensor_t *r;
    return lb_result(L, lunet_data_to_tensor(&r, img), &r);
}

/* _c.normalize(x, mean, std) -> new tensor */
static int l_normalize(lua_State *L)
{
    lunet_tensor_t *x = lb_checktensor(L, 1);
    double mean[MAX_CHANNELS], std[MAX_CHANNELS];
    int nm = check_numbers(L, 2, mean, MAX_CHANNELS, "mean");
    int ns = check_numbers(L, 3, std, MAX_CHANNELS, "std");
    lunet_tensor_t *r;
    return lb_result(L, lunet_data_normalize(&r, x, nm, mean, ns, std), &r);
}

/* _c.label_histogram(labels, nclass) -> array of nclass counts (errors on a bad label) */
static int l_label_histogram(lua_State *L)
{
    lunet_tensor_t *t = lb_checktensor(L, 1);
    lua_Integer nc = luaL_checkinteger(L, 2);
    luaL_argcheck(L, nc > 0 && nc <= 65536, 2, "class count out of range");
    int64_t *h = lua_newuserdatauv(L, (size_t)nc * sizeof *h, 0);
    LB_CHECK(L, lunet_data_label_histogram(h, t, nc));
    lua_createtable(L, (int)nc, 0);
    for (lua_Integer k = 0; k < nc; k++) {
        lua_pushinteger(L, h[k]);
        lua_rawseti(L, -2, k + 1);
    }
    return 1;
}

/* _c.loader_base_seed() -> random64 % 2^63 from the global generator (one per iterator) */
static int l_loader_base_seed(lua_State *L)
{
    uint64_t s = lunet_generator_random64(lunet_default_generator()) % ((uint64_t)1 << 63);
    lua_pushinteger(L, (lua_Integer)s);
    return 1;
}

/* _c.shuffle_order(n) -> int64 permutation: s = random64 % 2^63 from the global generator,
 * then randperm(n) from a private MT19937 seeded with s (RandomSampler's draw). */
static int l_shuffle_order(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 0, 1, "size must be non-negative");
    uint64_t s = lunet_generator_random64(lunet_default_generator()) % ((uint64_t)1 << 63);
    lunet_generator_t g;
    lunet_generator_seed(&g, s);
    lunet_tensor_t *p;
    return lb_result(L, lunet_tensor_randperm(&p, &g, n), &p);
}

/* _c.index_range(order_or_nil, start, count) -> int64 (count): order[start:start+count] or
 * start, start+1, ... (a DataLoader batch's sample positions) */
static int l_index_range(lua_State *L)
{
    lunet_tensor_t *order = lua_isnoneornil(L, 1) ? NULL : lb_checktensor(L, 1);
    lua_Integer start = luaL_checkinteger(L, 2), count = luaL_checkinteger(L, 3);
    luaL_argcheck(L, start >= 0, 2, "negative start");
    luaL_argcheck(L, count >= 0, 3, "negative count");
    if (order && (order->dtype != LUNET_DTYPE_INT64 || order->ndim != 1 ||
                  !lunet_tensor_is_contiguous(order) || count > order->shape[0] - start))
        return luaL_argerror(L, 1,
                             "order must be a contiguous int64 1-D tensor covering the range");
    int64_t n = count;
    lunet_tensor_t *t;
    LB_CHECK(L, lunet_tensor_empty(&t, LUNET_DTYPE_INT64, 1, &n));
    int64_t *d = lunet_tensor_data(t);
    const int64_t *o = order ? (const int64_t *)lunet_tensor_data(order) : NULL;
    for (int64_t i = 0; i < n; i++)
        d[i] = o ? o[start + i] : start + i;
    lb_pushtensor(L, t);
    return 1;
}

/* _c.write_png(path, img_u8 (H, W) or (H, W, 3)) */
static int l_write_png(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lunet_tensor_t *t = lb_checktensor(L, 2);
    LB_CHECK(L, lunet_data_write_png(path, t));
    return 0;
}

/* _c.base64(bytes) -> RFC 4648 base64 text (a PNG in a notebook's image/png output) */
static int l_base64(lua_State *L)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    luaL_argcheck(L, n / 3 < ((size_t)-1) / 4 - 1, 1, "string too long");
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, (n + 2) / 3 * 4);
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 | s[i + 2];
        out[o++] = digits[v >> 18];
        out[o++] = digits[v >> 12 & 63];
        out[o++] = digits[v >> 6 & 63];
        out[o++] = digits[v & 63];
    }
    if (i < n) {
        unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0);
        out[o++] = digits[v >> 18];
        out[o++] = digits[v >> 12 & 63];
        out[o++] = i + 1 < n ? digits[v >> 6 & 63] : '=';
        out[o++] = '=';
    }
    luaL_pushresultsize(&b, o);
    return 1;
}

/* _c.u8_to_string(t) -> the bytes of a uint8 tensor in row-major order (for PNG writing) */
static int l_u8_to_string(lua_State *L)
{
    lunet_tensor_t *t = lb_checktensor(L, 1);
    luaL_argcheck(L, t->dtype == LUNET_DTYPE_UINT8, 1, "uint8 tensor expected");
    lunet_tensor_t *c;
    LB_CHECK(L, lunet_tensor_contiguous(&c, t));
    lua_pushlstring(L, lunet_tensor_data(c), (size_t)c->numel);
    lunet_tensor_release(c);
    return 1;
}

/* _c.u8_from_string(bytes, d0, d1, ...) -> uint8 tensor of that shape (for the converters) */
static int l_u8_from_string(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    int nd = lua_gettop(L) - 1;
    luaL_argcheck(L, nd >= 1 && nd <= LUNET_MAX_DIMS, 2, "1 to 16 sizes expected");
    int64_t shape[LUNET_MAX_DIMS];
    int64_t numel = 1;
    for (int i = 0; i < nd; i++) {
        lua_Integer d = luaL_checkinteger(L, i + 2);
        luaL_argcheck(L, d >= 0 && d <= INT32_MAX, i + 2, "bad size");
        shape[i] = d;
        if (__builtin_mul_overflow(numel, (int64_t)d, &numel))
            return luaL_error(L, "u8_from_string: sizes overflow");
    }
    if ((size_t)numel != n)
        return luaL_error(L, "u8_from_string: %d bytes for %d elements", (int)n, (int)numel);
    lunet_tensor_t *t;
    return lb_result(L, lunet_tensor_from_data(&t, LUNET_DTYPE_UINT8, nd, shape, s), &t);
}

static const luaL_Reg data_funcs[] = {
    {"base64", l_base64},
    {"write_png", l_write_png},
    {"index_range", l_index_range},
    {"read_idx", l_read_idx},
    {"read_idx_string", l_read_idx_string},
    {"write_idx", l_write_idx},
    {"image_batch", l_image_batch},
    {"to_tensor", l_to_tensor},
    {"normalize", l_normalize},
    {"label_histogram", l_label_histogram},
    {"loader_base_seed", l_loader_base_seed},
    {"shuffle_order", l_shuffle_order},
    {"u8_from_string", l_u8_from_string},
    {"u8_to_string", l_u8_to_string},
    {NULL, NULL},
};

void lb_open_data(lua_State *L) { lb_private_funcs(L, lua_gettop(L), data_funcs); }
