/*
 * l_embed.c - the embedding API of lunet_embed.h: thin, protected wrappers over the
 * binding helpers (lb_pushtensor, lb_totensor) and lua_pcall for C hosts that own a
 * lua_State.  Nothing here raises into an unprotected host: errors become messages.
 */
#include "lunet_embed.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>

#include "lbind.h"

/* Copies the error object at the top of L into err (always terminated), then pops it. */
static void take_error(lua_State *L, char *err, size_t errlen)
{
    if (err && errlen > 0) {
        const char *msg = lua_tostring(L, -1);
        if (!msg)
            msg = lua_type(L, -1) == LUA_TNIL ? "(no error message)"
                                              : "(error object is not a string)";
        size_t n = strlen(msg);
        if (n >= errlen)
            n = errlen - 1;
        memcpy(err, msg, n);
        err[n] = '\0';
    }
    lua_pop(L, 1);
}

int lunet_lua_traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Runs in protected mode: luaL_requiref plus package.preload and the optional global. */
static int open_protected(lua_State *L)
{
    int set_global = lua_toboolean(L, 1);
    luaL_requiref(L, "lunet", luaopen_lunet, set_global);
    if (luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE)) {
        lua_pushcfunction(L, luaopen_lunet);
        lua_setfield(L, -2, "lunet");
    }
    return 0;
}

int lunet_lua_open(lua_State *L, int set_global, char *err, size_t errlen)
{
    if (!lua_checkstack(L, 4)) {
        if (err && errlen > 0)
            snprintf(err, errlen, "lunet_lua_open: Lua stack overflow");
        return LUA_ERRMEM;
    }
    lua_pushcfunction(L, open_protected);
    lua_pushboolean(L, set_global);
    return lunet_lua_pcall(L, 1, 0, err, errlen);
}

void lunet_lua_push_tensor(lua_State *L, lunet_tensor_t *t)
{
    lunet_tensor_retain(t); /* lb_pushtensor takes over a reference: give it its own */
    lb_pushtensor(L, t);
}

lunet_tensor_t *lunet_lua_to_tensor(lua_State *L, int idx) { return lb_totensor(L, idx); }

lunet_tensor_t *lunet_lua_retain_tensor(lua_State *L, int idx)
{
    lunet_tensor_t *t = lb_totensor(L, idx);
    if (t)
        lunet_tensor_retain(t);
    return t;
}

int lunet_lua_pcall(lua_State *L, int nargs, int nresults, char *err, size_t errlen)
{
    if (!lua_checkstack(L, 2)) {
        if (err && errlen > 0)
            snprintf(err, errlen, "lunet_lua_pcall: Lua stack overflow");
        lua_pop(L, nargs + 1);
        return LUA_ERRMEM;
    }
    int base = lua_gettop(L) - nargs; /* the function */
    lua_pushcfunction(L, lunet_lua_traceback);
    lua_insert(L, base);
    int status = lua_pcall(L, nargs, nresults, base);
    lua_remove(L, base);
    if (status != LUA_OK)
        take_error(L, err, errlen);
    return status;
}

/* A load failure: drop the arguments as a failed call would. */
static int load_failed(lua_State *L, int nargs, char *err, size_t errlen, int status)
{
    take_error(L, err, errlen);
    lua_pop(L, nargs);
    return status;
}

int lunet_lua_dofile(lua_State *L, const char *path, int nargs, int nresults, char *err,
                     size_t errlen)
{
    int status = luaL_loadfile(L, path);
    if (status != LUA_OK)
        return load_failed(L, nargs, err, errlen, status);
    lua_insert(L, -(nargs + 1));
    return lunet_lua_pcall(L, nargs, nresults, err, errlen);
}

int lunet_lua_dostring(lua_State *L, const char *code, const char *chunkname, int nargs,
                       int nresults, char *err, size_t errlen)
{
    int status = luaL_loadbuffer(L, code, strlen(code),
                                 chunkname ? chunkname : "=(lunet_lua_dostring)");
    if (status != LUA_OK)
        return load_failed(L, nargs, err, errlen, status);
    lua_insert(L, -(nargs + 1));
    return lunet_lua_pcall(L, nargs, nresults, err, errlen);
}
