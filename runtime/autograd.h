/*
 * autograd.h - the op table and the recording API the runtime's ops use (not installed).
 *
 * An op ends with lunet_autograd_finish(out, result, op, inputs, ...): when grad mode is on
 * and an input requires grad, it records a node on the result, then hands the result over
 * (or releases it on failure).  Each op has one row in the table of autograd_rules.c
 * (checked at compile time against LUNET_OP_COUNT) giving its grad_fn name, what its node
 * saves for backward (lunet_save_t flags, plus a fixed number of extra tensors the op
 * passes, such as indices or targets) and its backward rule.
 *
 * A backward rule returns each input's gradient in the shape of the op's broadcast result
 * or already in the input's shape: the engine reduces (sums) it to the input's shape and
 * converts it to the input's dtype, once, where gradients are accumulated.
 */
#ifndef LUNET_AUTOGRAD_H
#define LUNET_AUTOGRAD_H

#include "lunet.h"

typedef enum lunet_op {
    LUNET_OP_ADD = 0, /* inputs a, b; arg d[0] = alpha */
    LUNET_OP_SUB,
    LUNET_OP_MUL,          /* saves a, b */
    LUNET_OP_DIV,          /* saves a, b */
    LUNET_OP_POW,          /* saves a, b, out */
    LUNET_OP_MAXIMUM,      /* saves a, b */
    LUNET_OP_MINIMUM,      /* saves a, b */
    LUNET_OP_FLOOR_DIVIDE, /* no derivative: backward fails, as PyTorch's NotImplemented node */
    LUNET_OP_NEG,
    LUNET_OP_EXP,     /* saves out */
    LUNET_OP_LOG,     /* saves x */
    LUNET_OP_SQRT,    /* saves out */
    LUNET_OP_ABS,     /* saves x */
    LUNET_OP_SIGMOID, /* saves out */
    LUNET_OP_TANH,    /* saves out */
    LUNET_OP_RELU,    /* saves out */
    LUNET_OP_CLAMP,   /* saves x; d[0], d[1] = bounds */
    LUNET_OP_WHERE,   /* inputs a, b; saves cond */
    LUNET_OP_SUM,     /* i[] = reduced dims mask, keepdim */
    LUNET_OP_MEAN,
    LUNET_OP_PROD,         /* saves x, out; same args as SUM */
    LUNET_OP_MAX_ALL,      /* saves x, out: gradient split evenly among the maxima */
    LUNET_OP_MAX_DIM,      /* saves indices; i[0] = dim, i[1] = keepdim */
    LUNET_OP_VIEW,         /* any reshape-like view: backward reshapes to the input's shape */
    LUNET_OP_PERMUTE,      /* i[] = permutation */
    LUNET_OP_EXPAND,       /* backward sums to the input's shape */
    LUNET_OP_NARROW,       /* i[0] = dim, i[1] = start */
    LUNET_OP_SELECT,       /* i[0] = dim, i[1] = index */
    LUNET_OP_INDEX_SELECT, /* saves index; i[0] = dim */
    LUNET_OP_GATHER,       /* saves index; i[0] = dim */
    LUNET_OP_INDEX,        /* saves the broadcast flat positions */
    LUNET_OP_MM,           /* saves a, b */
    LUNET_OP_ADDMM,        /* inputs c, a, b; saves a, b; d[0] = beta, d[1] = alpha */
    LUNET_OP_BMM,          /* batched matmul (..., n, k) @ (..., k, m), batch dims broadcast */
    LUNET_OP_TO,           /* dtype conversion */
    LUNET_OP_CLONE,
    LUNET_OP_SOFTMAX,       /* saves out; i[0] = dim */
    LUNET_OP_LOG_SOFTMAX,   /* saves out; i[0] = dim */
    LUNET_OP_NLL_LOSS,      /* saves target, weight; options in args */
    LUNET_OP_CROSS_ENTROPY, /* fused: saves logits, target, weight */
    LUNET_OP_MSE_LOSS,      /* saves a, b; i[0] = reduction */
    LUNET_OP_LINEAR,        /* inputs x, w, b; saves x, w; fused bias (+ relu when i[0]) */
    LUNET_OP_CONV2D,        /* inputs x, w, b; saves x, w; i[0..8] = conv options */
    LUNET_OP_MAX_POOL2D,    /* saves indices; i[] = pool options */
    LUNET_OP_AVG_POOL2D,    /* i[] = pool options */
    LUNET_OP_ADAPTIVE_AVG_POOL2D,
    /* leaky_relu, elu, gelu, softplus, log_sigmoid (activation.c): saves x; i[1] = the kind,
       i[0] = gelu's tanh flag, d[] = negative_slope, alpha, or beta and threshold */
    LUNET_OP_ACTIVATION,
    LUNET_OP_BATCH_NORM, /* inputs x, w, b; saves x, w, (mean, invstd); i[0] = training */
    LUNET_OP_COUNT
} lunet_op_t;

#define LUNET_OP_MAX_INPUTS 3
#define LUNET_OP_MAX_SAVED 4

/* What a node saves for backward, in this order: flagged inputs, the output, then the op's
   nextra extra tensors; a rule finds them in n->saved[] in the same order. */
typedef enum lunet_save {
    LUNET_SAVE_NONE = 0,
    LUNET_SAVE_IN0 = 1 << 0,
    LUNET_SAVE_IN1 = 1 << 1,
    LUNET_SAVE_IN2 = 1 << 2,
    LUNET_SAVE_OUT = 1 << 3,
    /* each flagged input is kept only when the other flagged input needs a gradient: the
       rule reads it for that gradient alone (x @ w keeps x for dw and w for dx), and PyTorch
       saves it only then, so changing it in place before backward is no error */
    LUNET_SAVE_CROSS = 1 << 4,
} lunet_save_t;

/* Small per-node arguments: integers (dims, flags) and doubles (scales, bounds). */
typedef struct lunet_op_args {
    int64_t i[LUNET_MAX_DIMS + 4];
    double d[4];
    const char *name; /* overrides the table's grad_fn name when not NULL */
} lunet_op_args_t;

/* One input edge of a node: the producing node, or the leaf that accumulates. */
typedef struct lunet_edge {
    lunet_node_t *node;   /* owned ref, or NULL */
    lunet_tensor_t *leaf; /* owned ref to a leaf requiring grad, or NULL */
    bool needs_grad;
    lunet_dtype_t dtype; /* the input's dtype and shape, for reducing gradients back */
    int ndim;
    int64_t shape[LUNET_MAX_DIMS];
} lunet_edge_t;

struct lunet_node {
    lunet_op_t op;
    int refcount;
    const char *name;
    int ninputs;
    lunet_edge_t in[LUNET_OP_MAX_INPUTS];
    int nsaved;
    bool had_saved; /* saved tensors existed (so a second backward is an error) */
    bool released;  /* saved tensors were freed by a backward without retain_graph */
    lunet_tensor_t *saved[LUNET_OP_MAX_SAVED]; /* detached views, never the output itself */
    uint32_t saved_version[LUNET_OP_MAX_SAVED];
    /* the grad_fn a saved tensor was output 0 of (this node for its own output; NULL for a
       leaf or a tensor without history), named by the in-place error as PyTorch does */
    const char *saved_fn[LUNET_OP_MAX_SAVED];
    lunet_op_args_t args;
    lunet_dtype_t out_dtype;
    int out_ndim;
    int64_t out_shape[LUNET_MAX_DIMS];
    /* the output tensor when it asked for retain_grad (not owned: the tensor clears it when
       it goes away) */
    lunet_tensor_t *retain_target;
    /* backward scratch */
    lunet_tensor_t *grad;
    int deps;
    uint32_t mark;
};

/* A backward rule: grads[i] (new refs, or NULL) for each input i, from upstream g. */
typedef lunet_status_t (*lunet_backward_fn)(lunet_node_t *n, lunet_tensor_t *g,
                                            lunet_tensor_t **grads);
typedef struct lunet_op_info {
    const char *name; /* PyTorch's grad_fn name (lunet_op_args_t.name may override it) */
    lunet_backward_fn backward;
    unsigned saves; /* lunet_save_t flags */
    int nextra;     /* extra tensors the forward passes to save (after the flagged ones) */
} lunet_op_info_t;
/* The table of autograd_rules.c, indexed by lunet_op_t. */
extern const lunet_op_info_t lunet_op_table[];

/* true when grad mode is on and a or b (either may be NULL) requires grad. */
bool lunet_autograd_needed(const lunet_tensor_t *a, const lunet_tensor_t *b);
/*
 * Gives `out` a grad_fn node for op, with edges to the inputs (any may be NULL) that
 * require grad.  The node keeps detached views of what op's table row says it saves: the
 * flagged inputs, out, and extra[0 .. nextra-1] (entries may be NULL; extra may be NULL when
 * nextra is 0), until backward frees them.
 */
LUNET_MUST_CHECK lunet_status_t lunet_autograd_record(lunet_tensor_t *out, lunet_op_t op,
                                                      int ninputs, lunet_tensor_t **inputs,
                                                      lunet_tensor_t **extra,
                                                      const lunet_op_args_t *args);
/*
 * The ending of every op that may be differentiated: when grad mode is on and one of the
 * inputs requires grad, records op on result (lunet_autograd_record); then *out = result.
 * Takes over the caller's reference to result: on failure result is released and *out is
 * left alone.
 */
LUNET_MUST_CHECK lunet_status_t lunet_autograd_finish(lunet_tensor_t **out, lunet_tensor_t *result,
                                                      lunet_op_t op, int ninputs,
                                                      lunet_tensor_t **inputs,
                                                      lunet_tensor_t **extra,
                                                      const lunet_op_args_t *args);
/* Fails if t is a leaf requiring grad and grad mode is on (PyTorch's in-place rule). */
LUNET_MUST_CHECK lunet_status_t lunet_autograd_check_inplace(const lunet_tensor_t *t,
                                                             const char *op);
/*
 * In-place ops that record themselves (add_, mul_, relu_, copy_, ...): the check refuses a
 * leaf requiring grad, and a tensor whose memory another tensor shares; after the op has
 * computed `result` out of place (with its history) and copied it into t, rebase makes t
 * take over result's history.  Other in-place ops use lunet_autograd_check_inplace, which
 * refuses any tensor requiring grad while grad mode is on.
 */
LUNET_MUST_CHECK lunet_status_t lunet_autograd_check_inplace_recorded(const lunet_tensor_t *t,
                                                                      const char *op);
void lunet_autograd_rebase(lunet_tensor_t *t, lunet_tensor_t *result);
/*
 * The start of an in-place op that records itself, written with `other` (NULL for none):
 * *record = whether the op goes into the graph (lunet_autograd_needed), and the check that
 * goes with it (lunet_autograd_check_inplace_recorded when it does, else
 * lunet_autograd_check_inplace).
 */
LUNET_MUST_CHECK lunet_status_t lunet_autograd_begin_inplace(bool *record, const lunet_tensor_t *t,
                                                             const lunet_tensor_t *other,
                                                             const char *op);
void lunet_node_release(lunet_node_t *n);
void lunet_node_retain(lunet_node_t *n);

#endif
