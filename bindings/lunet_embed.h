/*
 * lunet_embed.h - Lunet for C programs that embed Lua (their own lua_State).
 *
 * Installed next to lunet.h.  Link with the Lua half of Lunet and the core:
 *     cc host.c $(pkg-config --cflags --libs lunet-lua)
 * (-llunet-lua -llunet -llua5.4 -lopenblas -lz -lm), or in-tree with build/liblunet-lua.a
 * build/liblunet.a.  The C core alone (no Lua) is lunet.h with `pkg-config lunet`.
 *
 * A minimal host:
 *
 *     lua_State *L = luaL_newstate();
 *     luaL_openlibs(L);
 *     char err[1024];
 *     if (lunet_lua_open(L, 1, err, sizeof err) != LUA_OK) { fprintf(stderr, "%s\n", err); ... }
 *     float buf[6] = {1, 2, 3, 4, 5, 6};
 *     lunet_tensor_t *t;
 *     if (lunet_tensor_wrap(&t, LUNET_DTYPE_FLOAT32, 2, (int64_t[]){2, 3}, buf, NULL, NULL))
 *         ...lunet_error_message()...
 *     lunet_lua_push_tensor(L, t);          // Lua gets its own reference
 *     lunet_tensor_release(t);              // the host drops its own
 *     if (lunet_lua_dofile(L, "train.lua", 1, 1, err, sizeof err) != LUA_OK) ...
 *     lunet_tensor_t *pred = lunet_lua_retain_tensor(L, -1);  // NULL if not a tensor
 *     lua_pop(L, 1);
 *     ... read pred with lunet_tensor_get / lunet_tensor_data ...
 *     lunet_tensor_release(pred);
 *     lua_close(L);                         // after this, wrapped buffers are unused
 *
 * Rules:
 *  - Errors never abort.  Every function that runs Lua code here does so in protected mode
 *    and returns a Lua status (LUA_OK = 0, else LUA_ERRRUN, LUA_ERRSYNTAX, LUA_ERRMEM,
 *    LUA_ERRFILE, ...), with the message (and a traceback for runtime errors) copied into
 *    err (errlen bytes, truncated, always NUL-terminated; err may be NULL).  Lunet's own
 *    failures inside Lua (shape mismatches, bad files, ...) arrive as these messages.
 *  - Tensor ownership follows lunet.h: a reference is owned by whoever received it.
 *    lunet_lua_push_tensor never takes the caller's reference; lunet_lua_to_tensor lends
 *    one; lunet_lua_retain_tensor gives one.
 *  - Host memory without copying: lunet_tensor_wrap(&t, dtype, ndim, shape, data,
 *    release_fn, ctx) makes a tensor that reads and writes `data` in place (row-major,
 *    contiguous, aligned for dtype).  The buffer must stay valid until the last tensor
 *    using it is released -- including every view made in Lua (x:view(...), x[i], a
 *    dataset holding it) and Lua values not yet collected.  Either pass release_fn (called
 *    as release_fn(data, ctx) when the last user goes away, the host then frees there), or
 *    pass NULL and keep the buffer alive until lua_close(L) has returned and the host has
 *    released its own references.  Lua code writing into the tensor (x:add_(1), x[0] = 5)
 *    writes into the host buffer; results of operations (x + 1) are new Lunet memory.
 *  - One lua_State is used by one thread at a time (as Lua requires); the runtime's
 *    per-thread error buffer and grad mode are per thread (lunet.h).
 */
#ifndef LUNET_EMBED_H
#define LUNET_EMBED_H

#include <stddef.h>

#include <lua.h>

#include "lunet.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The module's lua_CFunction, for hosts that register it themselves:
 *     luaL_requiref(L, "lunet", luaopen_lunet, 1);
 * (unprotected: it raises a Lua error on failure, so call it inside lua_pcall).  It also
 * puts lunet's Lua modules (lunet.nn, lunet.optim, ...) in package.preload, and those
 * modules use `require` and the string, table, math and io libraries: open the standard
 * libraries first (luaL_openlibs).
 */
int luaopen_lunet(lua_State *L);

/*
 * Opens lunet in L, in protected mode: registers it in package.preload and package.loaded
 * (so `require "lunet"` returns it) and, when set_global is non-zero, as the global `lunet`.
 * L needs the standard libraries (luaL_openlibs): `require` among them.  Leaves the stack as
 * it was.  Returns LUA_OK, or a Lua status with the message in err.
 */
int lunet_lua_open(lua_State *L, int set_global, char *err, size_t errlen);

/*
 * Pushes t onto L's stack as a Lua tensor (nil when t is NULL).  The Lua value takes its own
 * reference; the caller keeps its own and releases it when done.  Pushing the same tensor
 * twice gives the same Lua value.  Like any lua_push*, raises a Lua error only when Lua
 * runs out of memory.
 */
void lunet_lua_push_tensor(lua_State *L, lunet_tensor_t *t);

/*
 * The tensor at stack index idx, or NULL when that value is not a tensor.  Borrowed: valid
 * while the Lua value stays reachable (on the stack, in a global, in a table); retain it
 * (lunet_tensor_retain, or use lunet_lua_retain_tensor) to keep it longer.
 */
lunet_tensor_t *lunet_lua_to_tensor(lua_State *L, int idx);

/* Same, with a new reference the caller owns and releases (NULL when not a tensor). */
lunet_tensor_t *lunet_lua_retain_tensor(lua_State *L, int idx);

/* A message handler for lua_pcall: the error text (or its __tostring) plus a traceback. */
int lunet_lua_traceback(lua_State *L);

/*
 * Calls the function below the top nargs values, in protected mode with a traceback;
 * like lua_pcall, but on failure the error object is popped and its text copied into err.
 * On success the nresults results (LUA_MULTRET for all) replace the function and its
 * arguments; on failure both are removed and nothing is pushed.
 */
int lunet_lua_pcall(lua_State *L, int nargs, int nresults, char *err, size_t errlen);

/*
 * Loads the Lua file at path (NULL reads stdin) and calls it with the top nargs values as
 * its arguments (the chunk's `...`), as lunet_lua_pcall.  A missing file or a syntax error
 * comes back as LUA_ERRFILE / LUA_ERRSYNTAX with the message, the arguments removed.
 */
int lunet_lua_dofile(lua_State *L, const char *path, int nargs, int nresults, char *err,
                     size_t errlen);

/* Same for Lua source text; chunkname appears in messages (NULL: "=(lunet_lua_dostring)"). */
int lunet_lua_dostring(lua_State *L, const char *code, const char *chunkname, int nargs,
                       int nresults, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif /* LUNET_EMBED_H */
