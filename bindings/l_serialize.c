/*
 * l_serialize.c - lunet.save / lunet.load (runtime/serialize.c does the file format), and
 * the small OS helpers the embedded Lua utilities need (_c.isatty, _c.monotonic,
 * _c.write_file_atomic, _c.save_fault).
 *
 * A Lua value becomes a lunet_value_t tree: integers and floats stay distinct, tables become
 * maps with their keys sorted (so the same state gives the same file), tensors are saved as
 * data with their requires_grad flag.  Functions, coroutines, userdata other than tensors,
 * unsupported keys and cycles are refused, naming the key path ("opt.param_groups[1].hook").
 * The tree under construction hangs from a userdata box whose __gc frees it, so even a Lua
 * memory error in the middle of a conversion leaks nothing.
 */
#include "lbind.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lualib.h>

#define LBS_BOX_MT "lunet.ValueBox"
#define LBS_MAX_DEPTH 200

typedef struct lbs_box {
    lunet_value_t *root;
} lbs_box_t;

static int box_gc(lua_State *L)
{
    lbs_box_t *b = luaL_checkudata(L, 1, LBS_BOX_MT);
    lunet_value_free(b->root);
    b->root = NULL;
    return 0;
}

static lbs_box_t *push_box(lua_State *L)
{
    lbs_box_t *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->root = NULL;
    if (luaL_newmetatable(L, LBS_BOX_MT)) {
        lua_pushcfunction(L, box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return b;
}

/* ---------------------------------------------------------------- Lua -> tree ---------- */

typedef struct lbs_key {
    bool is_int;
    lua_Integer i;
    const char *s; /* borrowed from the key string, which stays on the stack meanwhile */
    size_t len;
} lbs_key_t;

typedef struct lbs_conv {
    lua_State *L;
    int visiting; /* stack index of a table: tables being converted (cycle check) */
    int depth;
    lbs_key_t keys[LBS_MAX_DEPTH + 1];
    char msg[768];
} lbs_conv_t;

static const char *key_path(lbs_conv_t *c, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < c->depth && used + 1 < n; i++) {
        int w = c->keys[i].is_int
                    ? snprintf(buf + used, n - used, "[%lld]", (long long)c->keys[i].i)
                    : snprintf(buf + used, n - used, "%s%.*s", i ? "." : "",
                               (int)(c->keys[i].len > 120 ? 120 : c->keys[i].len), c->keys[i].s);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    return buf;
}

/* Sets the error message "save: <what>[ at key '<path>']" and returns -1. */
static int conv_fail(lbs_conv_t *c, const char *what)
{
    char path[512];
    if (c->depth == 0)
        snprintf(c->msg, sizeof c->msg, "save: %s", what);
    else
        snprintf(c->msg, sizeof c->msg, "save: %s at key '%s'", what,
                 key_path(c, path, sizeof path));
    return -1;
}

static int conv_status(lbs_conv_t *c)
{
    snprintf(c->msg, sizeof c->msg, "%s", lunet_error_message());
    return -1;
}

/* Appends an entry with a NULL value to m; returns its value slot or NULL (out of memory). */
static lunet_value_t **map_append(lunet_value_t *m, lunet_value_t *key)
{
    if (m->u.map.count == m->u.map.cap) {
        size_t cap = m->u.map.cap ? 2 * m->u.map.cap : 8;
        lunet_value_entry_t *e = realloc(m->u.map.entries, cap * sizeof *e);
        if (!e)
            return NULL;
        m->u.map.entries = e;
        m->u.map.cap = cap;
    }
    lunet_value_entry_t *e = &m->u.map.entries[m->u.map.count++];
    e->key = key;
    e->value = NULL;
    return &e->value;
}

static int to_value(lbs_conv_t *c, int idx, lunet_value_t **slot);

static int table_to_value(lbs_conv_t *c, int idx, lunet_value_t **slot)
{
    lua_State *L = c->L;
    if (c->depth >= LBS_MAX_DEPTH)
        return conv_fail(c, "tables nested deeper than 200 levels");
    lua_pushvalue(L, idx);
    if (lua_rawget(L, c->visiting) != LUA_TNIL) {
        lua_pop(L, 1);
        return conv_fail(c, "cannot save a table that contains itself (a cycle)");
    }
    lua_pop(L, 1);
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, c->visiting);
    luaL_checkstack(L, 4, "save: nesting");

    if (lunet_value_map(slot) != LUNET_OK)
        return conv_status(c);
    lunet_value_t *m = *slot;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        /* key at -2, value at -1 */
        lunet_value_t *k = NULL;
        lbs_key_t *kd = &c->keys[c->depth];
        int kt = lua_type(L, -2);
        if (kt == LUA_TNUMBER && lua_isinteger(L, -2)) {
            kd->is_int = true;
            kd->i = lua_tointeger(L, -2);
            if (lunet_value_int(&k, kd->i) != LUNET_OK)
                return conv_status(c);
        } else if (kt == LUA_TSTRING) {
            kd->is_int = false;
            kd->s = lua_tolstring(L, -2, &kd->len);
            if (lunet_value_string(&k, kd->s, kd->len) != LUNET_OK)
                return conv_status(c);
        } else {
            char what[160];
            if (kt == LUA_TNUMBER)
                snprintf(what, sizeof what, "cannot save a table key of type float (%.17g)",
                         (double)lua_tonumber(L, -2));
            else
                snprintf(what, sizeof what, "cannot save a table key of type %s",
                         luaL_typename(L, -2));
            return conv_fail(c, what);
        }
        lunet_value_t **vslot = map_append(m, k);
        if (!vslot) {
            lunet_value_free(k);
            snprintf(c->msg, sizeof c->msg, "save: out of memory");
            return -1;
        }
        c->depth++;
        int rc = to_value(c, lua_gettop(L), vslot);
        c->depth--;
        if (rc)
            return rc;
        lua_pop(L, 1);
    }
    lunet_value_map_sort(m);
    lua_pushvalue(L, idx);
    lua_pushnil(L);
    lua_rawset(L, c->visiting);
    return 0;
}

static int to_value(lbs_conv_t *c, int idx, lunet_value_t **slot)
{
    lua_State *L = c->L;
    lunet_status_t st;
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        st = lunet_value_bool(slot, lua_toboolean(L, idx));
        break;
    case LUA_TNUMBER:
        st = lua_isinteger(L, idx) ? lunet_value_int(slot, lua_tointeger(L, idx))
                                   : lunet_value_float(slot, lua_tonumber(L, idx));
        break;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        st = lunet_value_string(slot, s, len);
        break;
    }
    case LUA_TTABLE:
        return table_to_value(c, idx, slot);
    case LUA_TUSERDATA: {
        lunet_tensor_t *t = lb_totensor(L, idx);
        if (!t)
            return conv_fail(c, "cannot save a userdata (only tensors)");
        st = lunet_value_tensor(slot, t);
        break;
    }
    default: {
        char what[64];
        snprintf(what, sizeof what, "cannot save a %s", luaL_typename(L, idx));
        return conv_fail(c, what);
    }
    }
    return st == LUNET_OK ? 0 : conv_status(c);
}

/* lunet.save(value, path) */
static int l_save(lua_State *L)
{
    luaL_checkany(L, 1);
    const char *path = luaL_checkstring(L, 2);
    lua_settop(L, 2);
    lbs_box_t *box = push_box(L); /* 3 */
    lua_newtable(L);              /* 4: visiting */
    lbs_conv_t *c = malloc(sizeof *c);
    if (!c)
        return luaL_error(L, "save: out of memory");
    c->L = L;
    c->visiting = 4;
    c->depth = 0;
    c->msg[0] = 0;
    int rc = to_value(c, 1, &box->root);
    if (rc) {
        char msg[sizeof c->msg];
        memcpy(msg, c->msg, sizeof msg);
        free(c);
        lunet_value_free(box->root);
        box->root = NULL;
        return luaL_error(L, "%s", msg);
    }
    free(c);
    lunet_status_t st = lunet_value_save(path, box->root);
    lunet_value_free(box->root);
    box->root = NULL;
    if (st)
        return lb_error(L);
    return 0;
}

/* ---------------------------------------------------------------- tree -> Lua ---------- */

static void push_value(lua_State *L, const lunet_value_t *v)
{
    luaL_checkstack(L, 4, "load: nesting");
    switch (v->kind) {
    case LUNET_VALUE_BOOL:
        lua_pushboolean(L, v->u.b);
        break;
    case LUNET_VALUE_INT:
        lua_pushinteger(L, (lua_Integer)v->u.i);
        break;
    case LUNET_VALUE_FLOAT:
        lua_pushnumber(L, (lua_Number)v->u.f);
        break;
    case LUNET_VALUE_STRING:
        lua_pushlstring(L, v->u.str.data, v->u.str.len);
        break;
    case LUNET_VALUE_TENSOR:
        lunet_tensor_retain(v->u.tensor);
        lb_pushtensor(L, v->u.tensor);
        break;
    case LUNET_VALUE_MAP: {
        size_t narr = 0;
        for (size_t i = 0; i < v->u.map.count; i++)
            if (v->u.map.entries[i].key->kind == LUNET_VALUE_INT)
                narr++;
        int na = narr > INT32_MAX ? INT32_MAX : (int)narr;
        size_t nrec = v->u.map.count - narr;
        lua_createtable(L, na, nrec > INT32_MAX ? INT32_MAX : (int)nrec);
        for (size_t i = 0; i < v->u.map.count; i++) {
            push_value(L, v->u.map.entries[i].key);
            push_value(L, v->u.map.entries[i].value);
            lua_rawset(L, -3);
        }
        break;
    }
    default:
        lua_pushnil(L);
        break;
    }
}

/* lunet.load(path) */
static int l_load(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lbs_box_t *box = push_box(L);
    LB_CHECK(L, lunet_value_load(&box->root, path));
    push_value(L, box->root);
    lunet_value_free(box->root);
    box->root = NULL;
    return 1;
}

/* ---------------------------------------------------------------- helpers for Lua ------ */

/* _c.save_fault(n): saves fail after n bytes (testing aid); nil or a negative n: off. */
static int l_save_fault(lua_State *L)
{
    lunet_serialize_set_fault(lua_isnoneornil(L, 1) ? -1 : (int64_t)luaL_checkinteger(L, 1));
    return 0;
}

/* _c.isatty(file | fd) -> boolean */
static int l_isatty(lua_State *L)
{
    int fd;
    if (lua_type(L, 1) == LUA_TNUMBER) {
        fd = (int)luaL_checkinteger(L, 1);
    } else {
        luaL_Stream *s = luaL_testudata(L, 1, LUA_FILEHANDLE);
        if (!s || !s->closef || !s->f) {
            lua_pushboolean(L, 0);
            return 1;
        }
        fd = fileno(s->f);
    }
    lua_pushboolean(L, fd >= 0 && isatty(fd));
    return 1;
}

/* _c.monotonic() -> seconds (float) from a monotonic clock */
static int l_monotonic(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec * 1e-9);
    return 1;
}

/* _c.write_file_atomic(path, text): temp file, fsync, rename */
static int l_write_file_atomic(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    LB_CHECK(L, lunet_write_file_atomic(path, data, len));
    return 0;
}

void lb_open_serialize(lua_State *L)
{
    int module = lua_gettop(L);
    /* lunet.monotonic: seconds for timing epochs (os.clock is CPU time, os.time whole seconds) */
    static const luaL_Reg pub[] = {{"save", l_save},
                                   {"load", l_load},
                                   {"monotonic", l_monotonic},
                                   {NULL, NULL}};
    luaL_setfuncs(L, pub, 0);
    static const luaL_Reg priv[] = {{"save_fault", l_save_fault},
                                    {"isatty", l_isatty},
                                    {"monotonic", l_monotonic},
                                    {"write_file_atomic", l_write_file_atomic},
                                    {NULL, NULL}};
    lb_private_funcs(L, module, priv);
}
