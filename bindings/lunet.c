/*
 * lunet.c - luaopen_lunet: builds the module table from the C binding files, registers the
 * embedded Lua modules (the .lua files under bindings/lua/lunet/, see tools/embed.lua) in package.preload
 * and loads the ones that are fields of the module (lunet.nn, lunet.optim, ...).
 *
 * Decisions:
 *  - Each Lua file is a module named by its path (bindings/lua/lunet/nn/functional.lua is
 *    "lunet.nn.functional") that `require`s what it uses, "lunet" included: while this
 *    function runs, package.loaded.lunet already holds the table being built, so those
 *    requires see the C functions and never recurse.
 *  - The submodules users reach as fields (`lunet.nn.Linear` with no require) are loaded
 *    here, in the order of `fields` below; any other module (lunet.repl) loads on first
 *    require.  To add a module: put the file under bindings/lua/lunet/ (the Makefile embeds
 *    every .lua file there), `require` it where it is used, and list it in `fields` only if
 *    it is a field of lunet.
 *  - luaopen_lunet_<sub> let plain lua5.4 `require "lunet.nn"` before `require "lunet"`
 *    (Lua's all-in-one C loader finds them in lunet.so).
 */
#include "lbind.h"

#include <stddef.h>

typedef struct {
    const char *module;
    const char *path;
    const unsigned char *code;
    size_t len;
} lunet_lua_source_t;

/* build/gen/lua_sources.c: one entry per .lua file of bindings/lua/, in file-name order. */
extern const lunet_lua_source_t lunet_lua_sources[];

/* The modules that are fields of lunet, loaded by luaopen_lunet. */
static const struct {
    const char *field;
    const char *module;
} fields[] = {
    {"nn", "lunet.nn"},           {"optim", "lunet.optim"},     {"data", "lunet.data"},
    {"metrics", "lunet.metrics"}, {"plot", "lunet.plot"},       {"progress", "lunet.progress"},
    {"py", "lunet.py"},           {"display", "lunet.display"}, {NULL, NULL},
};

void lb_private_funcs(lua_State *L, int module, const luaL_Reg *funcs)
{
    module = lua_absindex(L, module);
    if (lua_getfield(L, module, "_c") != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, module, "_c");
    }
    luaL_setfuncs(L, funcs, 0);
    lua_pop(L, 1);
}

/* Runs one binding file's lb_open_* (declared in lbind.h) with the module table on top. */
static void open_part(lua_State *L, void (*open)(lua_State *L))
{
    int top = lua_gettop(L);
    open(L);
    lua_settop(L, top); /* each part leaves the module table on top */
}

/* package.preload loader of one embedded file: (modname, extra) -> the chunk's result. */
static int load_embedded(lua_State *L)
{
    const lunet_lua_source_t *s = lua_touserdata(L, lua_upvalueindex(1));
    lua_pushfstring(L, "=%s", s->path);
    if (luaL_loadbufferx(L, (const char *)s->code, s->len, lua_tostring(L, -1), "t") != LUA_OK)
        return lua_error(L);
    lua_pushstring(L, s->module);
    lua_pushliteral(L, ":preload:");
    lua_call(L, 2, 1);
    return 1;
}

/* Pushes the embedded module `name`, loading it as `require` would if it is not loaded. */
static void require_embedded(lua_State *L, const char *name)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    if (lua_getfield(L, -1, name) == LUA_TNIL) {
        lua_pop(L, 1);
        luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
        if (lua_getfield(L, -1, name) != LUA_TFUNCTION)
            luaL_error(L, "lunet: no embedded module '%s'", name);
        lua_remove(L, -2);
        lua_pushstring(L, name);
        lua_pushliteral(L, ":preload:");
        lua_call(L, 2, 1);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_pushboolean(L, 1);
        }
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, name);
    }
    lua_remove(L, -2);
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
    open_part(L, lb_open_optim);
    open_part(L, lb_open_serialize);
    open_part(L, lb_open_distributed);
    open_part(L, lb_open_runtime);

    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushvalue(L, module);
    lua_setfield(L, -2, "lunet"); /* `require "lunet"` in the Lua modules below */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    for (const lunet_lua_source_t *s = lunet_lua_sources; s->module; s++) {
        lua_pushlightuserdata(L, (void *)s);
        lua_pushcclosure(L, load_embedded, 1);
        lua_setfield(L, -2, s->module);
    }
    lua_settop(L, module);

    for (int i = 0; fields[i].field; i++) {
        require_embedded(L, fields[i].module);
        lua_setfield(L, module, fields[i].field);
    }
    return 1;
}

/* `require "lunet.<sub>"` through Lua's all-in-one C loader: lunet first, then <sub>. */
static int open_submodule(lua_State *L, const char *name)
{
    luaL_requiref(L, "lunet", luaopen_lunet, 0);
    lua_pop(L, 1);
    require_embedded(L, name);
    return 1;
}

int luaopen_lunet_nn(lua_State *L) { return open_submodule(L, "lunet.nn"); }
int luaopen_lunet_nn_functional(lua_State *L) { return open_submodule(L, "lunet.nn.functional"); }
int luaopen_lunet_optim(lua_State *L) { return open_submodule(L, "lunet.optim"); }
int luaopen_lunet_data(lua_State *L) { return open_submodule(L, "lunet.data"); }
int luaopen_lunet_metrics(lua_State *L) { return open_submodule(L, "lunet.metrics"); }
int luaopen_lunet_plot(lua_State *L) { return open_submodule(L, "lunet.plot"); }
int luaopen_lunet_progress(lua_State *L) { return open_submodule(L, "lunet.progress"); }
int luaopen_lunet_nn_init(lua_State *L) { return open_submodule(L, "lunet.nn.init"); }
int luaopen_lunet_optim_lr_scheduler(lua_State *L)
{
    return open_submodule(L, "lunet.optim.lr_scheduler");
}
int luaopen_lunet_repl(lua_State *L) { return open_submodule(L, "lunet.repl"); }
