/*
 * l_tensor.h - argument helpers shared by the binding files (tensor, random).
 * Everything public goes through lbind.h; this only shares argument-parsing helpers.
 */
#ifndef LUNET_L_TENSOR_H
#define LUNET_L_TENSOR_H

#include "lbind.h"

/*
 * A Lua operand (tensor, number, boolean or nested table) as a tensor.  Numbers become
 * wrapped 0-d tensors (lowest promotion tier: Lua integers int64, floats float64, booleans
 * bool), as PyTorch treats Python scalars.  *owned is set when the caller must release the
 * result.  Raises "bad argument #idx to 'op' (tensor or number expected, got X)" for other
 * values; check every operand with lbt_checkoperand before converting any of them.
 */
void lbt_checkoperand(lua_State *L, int idx);
lunet_tensor_t *lbt_tooperand(lua_State *L, int idx, bool *owned);

/*
 * A shape given as varargs of integers starting at idx, or as one table (a lunet.Size or a
 * plain sequence).  Returns the index of the first argument after the shape.
 */
int lbt_checkshape(lua_State *L, int idx, int *ndim, int64_t *shape);
/* The same for the size of a new tensor: negative sizes raise PyTorch's message
   ("Trying to create tensor with negative dimension -3: [2, -3]"). */
int lbt_checksize(lua_State *L, int idx, int *ndim, int64_t *shape);

/* Options table {dtype=, requires_grad=} at idx (nil or none allowed). */
typedef struct lbt_create_opts {
    bool has_dtype;
    lunet_dtype_t dtype;
    bool requires_grad;
} lbt_create_opts_t;
void lbt_checkcreateopts(lua_State *L, int idx, lbt_create_opts_t *o);
/* A new tensor's size at idx (lbt_checksize) followed by its options table (lbt_checkcreateopts). */
void lbt_checksize_opts(lua_State *L, int idx, int *ndim, int64_t *shape, lbt_create_opts_t *o);
/* Applies requires_grad from opts to t (pushed at the top of the stack). */
void lbt_finish_create(lua_State *L, lunet_tensor_t *t, const lbt_create_opts_t *o);

/*
 * A fill value (fill_, full, masked_fill, t[i] = v): a number, a boolean or a one-element
 * tensor.  A Lua integer (or an int64 tensor's value) stays an integer, so it reaches an
 * int64 tensor exactly, as PyTorch keeps Python ints exact.  Raises for anything else.
 */
typedef struct lbt_fill {
    bool is_int;
    int64_t i;
    double d;
} lbt_fill_t;
lbt_fill_t lbt_checkfill(lua_State *L, int idx);
lunet_status_t lbt_fill_(lunet_tensor_t *t, const lbt_fill_t *v);
lunet_status_t lbt_masked_fill(lunet_tensor_t **out, lunet_tensor_t *t, lunet_tensor_t *mask,
                               const lbt_fill_t *v);

/* Pushes a lunet.Size for a shape. */
void lbt_pushsize(lua_State *L, int ndim, const int64_t *shape);

/* Number of array items of a table (0 if not a table). */
bool lbt_isoptstable(lua_State *L, int idx);

/* Registration of the math half (l_tensor_math.c) into the method table at top of stack
 * (methods) and the module table at `module_idx`. */
void lbt_open_math(lua_State *L, int module_idx, int methods_idx);

#endif
