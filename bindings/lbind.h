/*
 * lbind.h - shared by the Lua binding files (bindings/l_*.c); not installed.
 *
 * Each binding file exports one lb_open_<part>(L) that adds its functions to the module
 * table on top of the stack; bindings/lunet.c calls them all, then registers the embedded Lua
 * modules (the .lua files under bindings/lua/lunet/: lunet.nn, lunet.nn.functional, lunet.optim, lunet.data,
 * ...) in package.preload and loads those that are fields of lunet.  C functions meant only
 * for those Lua modules live in the module table under `_c` (lb_private_funcs).
 */
#ifndef LUNET_LBIND_H
#define LUNET_LBIND_H

#include <lauxlib.h>
#include <lua.h>

#include "lunet.h"

#define LB_TENSOR_MT "lunet.Tensor"

/* Boxed tensor: the userdata holds one reference, dropped by __gc. */
typedef struct lb_tensor {
    lunet_tensor_t *t;
} lb_tensor_t;

/* The tensor at idx, or a Lua error naming the argument. */
lunet_tensor_t *lb_checktensor(lua_State *L, int idx);
/* The tensor at idx, or NULL if the value is not a tensor. */
lunet_tensor_t *lb_totensor(lua_State *L, int idx);
/* Pushes t as a Lua value, taking over the caller's reference (t == NULL pushes nil). */
void lb_pushtensor(lua_State *L, lunet_tensor_t *t);
/* A tensor from a tensor, number, boolean or nested table at idx (new reference). */
lunet_tensor_t *lb_astensor(lua_State *L, int idx, lunet_dtype_t *dtype_or_null);
/* Raises the runtime's last error as a Lua error (never returns). */
int lb_error(lua_State *L);
/* dtype from a lunet.<dtype> value (they are strings like "float32") at idx. */
lunet_dtype_t lb_checkdtype(lua_State *L, int idx);
void lb_pushdtype(lua_State *L, lunet_dtype_t dt);

/*
 * The ending of a binding that made one tensor r: `return lb_result(L, lunet_x(&r, ...), &r);`
 * pushes r (taking over its reference) when the call returned LUNET_OK, else raises the
 * runtime's error.  r goes by address: the call has run before it is read.
 */
static inline int lb_result(lua_State *L, lunet_status_t st, lunet_tensor_t **r)
{
    if (st != LUNET_OK)
        return lb_error(L);
    lb_pushtensor(L, *r);
    return 1;
}

#define LB_CHECK(L, expr)                                                                          \
    do {                                                                                           \
        if ((expr) != LUNET_OK)                                                                    \
            return lb_error(L);                                                                    \
    } while (0)

/* Adds funcs to the table module._c (created if missing); module is a stack index. */
void lb_private_funcs(lua_State *L, int module, const luaL_Reg *funcs);

/* Registration entry points, one per binding file. */
void lb_open_tensor(lua_State *L);
void lb_open_random(lua_State *L);
void lb_open_nn(lua_State *L);
void lb_open_optim(lua_State *L);
void lb_open_data(lua_State *L);
void lb_open_serialize(lua_State *L);
void lb_open_loss(lua_State *L);
void lb_open_distributed(lua_State *L);
void lb_open_runtime(lua_State *L);
/* Runs the function set by _c.set_post_backward, if any (after Tensor:backward()). */
void lb_post_backward(lua_State *L);

/* `require "lunet.<sub>"` from plain lua5.4 before `require "lunet"` (bindings/lunet.c). */
int luaopen_lunet_nn(lua_State *L);
int luaopen_lunet_nn_functional(lua_State *L);
int luaopen_lunet_optim(lua_State *L);
int luaopen_lunet_data(lua_State *L);
int luaopen_lunet_metrics(lua_State *L);
int luaopen_lunet_plot(lua_State *L);
int luaopen_lunet_progress(lua_State *L);
int luaopen_lunet_optim_lr_scheduler(lua_State *L);
int luaopen_lunet_repl(lua_State *L);
int luaopen_lunet_distributed(lua_State *L); /* bindings/l_distributed.c */

#endif
