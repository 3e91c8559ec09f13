/*
 * lunet.c - luaopen_lunet: builds the module table from the C binding files, then runs the
 * embedded Lua sources (bindings/lua/ sources, see tools/embed.lua) that add nn, optim, data.
 */
#include "lbind.h"

#include <stddef.h>

typedef struct {
    const char *name;
    const unsigned char *code;
    size_t len;
} lunet_lua_source_t;

/* build/gen/lua_sources.c: one entry per .lua file of bindings/lua/, in file-name order. */
extern const lunet_lua_source_t lunet_lua_sources[];

/* Runs one binding file's lb_open_* (declared in lbind.h) with the module table on top. */
static void open_part(lua_State *L, void (*open)(lua_State *L))
{
    int top = lua_gettop(L);
    open(L);
    lua_settop(L, top); /* each part leaves the module table on top */
}

int luaopen_lunet(lua_State *L)
{
    lua_newtable(L);
    int module = lua_gettop(L);
    lua_pushliteral(L, LUNET_VERSION);
    lua_setfield(L, module, "_VERSION");
    lua_newtable(L);
    lua_setfield(L, module, "_c"); /* C functions for the embedded Lua code only */

    lb_open_tensor(L);
    lua_settop(L, module);
    open_part(L, lb_open_random);
    open_part(L, lb_open_loss);
    open_part(L, lb_open_data);
    open_part(L, lb_open_nn);
    open_part(L, lb_open_serialize);

    for (const lunet_lua_source_t *s = lunet_lua_sources; s->name; s++) {
        lua_pushfstring(L, "=lunet/%s.lua", s->name);
        const char *chunkname = lua_tostring(L, -1);
        if (luaL_loadbufferx(L, (const char *)s->code, s->len, chunkname, "t") != LUA_OK)
            return lua_error(L);
        lua_remove(L, -2);
        lua_pushvalue(L, module);
        lua_call(L, 1, 0);
    }
    lua_settop(L, module);
    return 1;
}
