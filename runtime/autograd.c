/*
 * autograd.c - the reverse-mode engine: grad mode, recording nodes on op outputs, and
 * backward (a walk of the recorded graph in dependency order that accumulates gradients
 * into the leaves).  The per-op rules are in autograd_rules.c.
 *
 * Nodes come from the thread's free list and the walk reuses one work array per thread, so
 * a steady training loop records and runs its graph without calling malloc, and separate
 * graphs on separate threads share nothing.
 */
#include "autograd.h"
#include "internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local bool grad_disabled;

bool lunet_grad_enabled(void) { return !grad_disabled; }

bool lunet_set_grad_enabled(bool enabled)
{
    bool was = !grad_disabled;
    grad_disabled = !enabled;
    return was;
}

bool lunet_autograd_needed(const lunet_tensor_t *a, const lunet_tensor_t *b)
{
    return !grad_disabled && ((a && a->requires_grad) || (b && b->requires_grad));
}

bool lunet_tensor_is_leaf(const lunet_tensor_t *t) { return t->grad_fn == NULL; }

const char *lunet_tensor_grad_fn_name(const lunet_tensor_t *t)
{
    return t->grad_fn ? t->grad_fn->name : NULL;
}

lunet_status_t lunet_tensor_requires_grad_(lunet_tensor_t *t, bool requires_grad)
{
    if (t->grad_fn && !requires_grad)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "you can only change requires_grad flags of leaf variables. If you "
                               "want to use a computed variable in a subgraph that doesn't require "
                               "differentiation use var_no_grad = var.detach().");
    if (requires_grad && !lunet_dtype_is_floating(t->dtype))
        return lunet_error_set(
            LUNET_STATUS_RUNTIME,
            "Only Tensors of floating point and complex dtype can require gradients");
    if (!t->grad_fn)
        t->requires_grad = requires_grad;
    return LUNET_OK;
}

lunet_status_t lunet_tensor_retain_grad(lunet_tensor_t *t)
{
    if (!t->requires_grad)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "can't retain_grad on Tensor that has requires_grad=False");
    if (t->grad_fn) {
        t->retains_grad = true;
        t->grad_fn->retain_target = t;
    }
    return LUNET_OK;
}

lunet_status_t lunet_tensor_set_grad(lunet_tensor_t *t, lunet_tensor_t *g)
{
    if (g && !lunet_shape_equal(g->ndim, g->shape, t->ndim, t->shape))
        return lunet_error_set(LUNET_STATUS_RUNTIME, "assigned grad has data of a different size");
    if (g && g->dtype != t->dtype)
        return lunet_error_set(LUNET_STATUS_RUNTIME, "assigned grad has data of a different type");
    lunet_tensor_retain(g);
    lunet_tensor_release(t->grad);
    t->grad = g;
    return LUNET_OK;
}

/* t.data = src: t keeps its identity and autograd state (requires_grad, grad, grad_fn) but
   from now on views src's memory with src's dtype, shape and strides, as PyTorch's set_data
   does.  A packed parameter leaves its slab: its reserved gradient place is dropped. */
lunet_status_t lunet_tensor_set_data(lunet_tensor_t *t, lunet_tensor_t *src)
{
    if (t->requires_grad && !lunet_dtype_is_floating(src->dtype))
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "data set to a tensor that requires gradients must be floating "
                               "point or complex dtype");
    if (t == src)
        return LUNET_OK;
    lunet_storage_retain(src->storage);
    lunet_storage_release(t->storage);
    t->storage = src->storage;
    t->dtype = src->dtype;
    t->ndim = src->ndim;
    memcpy(t->shape, src->shape, sizeof(int64_t) * (size_t)src->ndim);
    memcpy(t->strides, src->strides, sizeof(int64_t) * (size_t)src->ndim);
    t->offset = src->offset;
    t->numel = src->numel;
    lunet_tensor_release(t->grad_home);
    t->grad_home = NULL;
    return LUNET_OK;
}

lunet_status_t lunet_autograd_check_inplace(const lunet_tensor_t *t, const char *op)
{
    if (grad_disabled || !t->requires_grad)
        return LUNET_OK;
    if (!t->grad_fn)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "a leaf Variable that requires grad is being used in an in-place "
                               "operation.");
    return lunet_error_set(
        LUNET_STATUS_RUNTIME,
        "%s: this in-place operation cannot be recorded on a tensor that requires "
        "grad (use the out-of-place form, or run it under no_grad)",
        op);
}

lunet_status_t lunet_autograd_check_inplace_recorded(const lunet_tensor_t *t, const char *op)
{
    if (t->requires_grad && !t->grad_fn)
        return lunet_error_set(LUNET_STATUS_RUNTIME,
                               "a leaf Variable that requires grad is being used in an in-place "
                               "operation.");
    /* Another tensor on the same memory (a view, or a value saved for backward) would keep
       a history that no longer matches the data (PyTorch rebases views; Lunet refuses). */
    if (t->storage->refcount > 1)
        return lunet_error_set(
            LUNET_STATUS_RUNTIME,
            "%s: in-place operation on a tensor that shares its memory with "
            "another (a view, or a value saved for backward) while gradients are "
            "recorded; use the out-of-place form or clone() first",
            op);
    return LUNET_OK;
}

lunet_status_t lunet_autograd_begin_inplace(bool *record, const lunet_tensor_t *t,
                                            const lunet_tensor_t *other, const char *op)
{
    *record = lunet_autograd_needed(t, other);
    return *record ? lunet_autograd_check_inplace_recorded(t, op)
                   : lunet_autograd_check_inplace(t, op);
}

/*
 * A node's retain_target is a weak pointer, cleared when its tensor is released; so when t
 * leaves a node (its grad_fn is replaced), the node must forget t, or backward through the
 * old node would write into t after t is freed (a use-after-free the API fuzzer found:
 * retain_grad, then an in-place op, then the tensor collected).  As in PyTorch, t keeps
 * retaining its gradient on its new node.
 */
static void move_retain(lunet_tensor_t *t, lunet_node_t *old, lunet_node_t *now)
{
    if (old && old->retain_target == t)
        old->retain_target = NULL;
    if (now && t->retains_grad)
        now->retain_target = t;
}

void lunet_autograd_rebase(lunet_tensor_t *t, lunet_tensor_t *result)
{
    lunet_node_t *old = t->grad_fn;
    t->grad_fn = result->grad_fn;
    lunet_node_retain(t->grad_fn);
    if (t->grad_fn && t->grad_fn->retain_target == result)
        t->grad_fn->retain_target = NULL;
    move_retain(t, old, t->grad_fn);
    t->requires_grad = result->requires_grad;
    lunet_node_release(old);
}

/* ---- nodes */

/* Nodes are recycled through the thread's free list (storage.c). */
static lunet_node_t *node_alloc(void)
{
    lunet_node_t *n = lunet_pool_get(LUNET_POOL_NODE, sizeof *n);
    if (n)
        memset(n, 0, sizeof *n);
    return n;
}

static void node_release_saved(lunet_node_t *n)
{
    for (int i = 0; i < n->nsaved; i++) {
        lunet_tensor_release(n->saved[i]);
        n->saved[i] = NULL;
    }
    n->nsaved = 0;
}

void lunet_node_retain(lunet_node_t *n)
{
    if (n)
        n->refcount++;
}

void lunet_node_release(lunet_node_t *n)
{
    /* iterative, so a long chain of nodes does not recurse deeply */
    while (n && --n->refcount == 0) {
        lunet_node_t *next = NULL;
        node_release_saved(n);
        lunet_tensor_release(n->grad);
        for (int i = 0; i < n->ninputs; i++) {
            lunet_tensor_release(n->in[i].leaf);
            if (n->in[i].node) {
                if (!next)
                    next = n->in[i].node;
                else
                    lunet_node_release(n->in[i].node);
            }
        }
        lunet_pool_put(LUNET_POOL_NODE, n);
        n = next;
    }
}

/* Whether input i, flagged in the row, is kept: always, or with LUNET_SAVE_CROSS only when
   another flagged input needs a gradient. */
static bool keep_input(const lunet_op_info_t *info, int ninputs, lunet_tensor_t **inputs, int i)
{
    if (!(info->saves & LUNET_SAVE_CROSS))
        return true;
    for (int j = 0; j < ninputs; j++)
        if (j != i && (info->saves & (LUNET_SAVE_IN0 << j)) && inputs[j] &&
            inputs[j]->requires_grad)
            return true;
    return false;
}

lunet_status_t lunet_autograd_record(lunet_tensor_t *out, lunet_op_t op, int ninputs,
                                     lunet_tensor_t **inputs, lunet_tensor_t **extra,
                                     const lunet_op_args_t *args)
{
    /* what the op's row says to keep, in the order its rule reads n->saved[] (a slot not
       kept stays NULL) */
    const lunet_op_info_t *info = &lunet_op_table[op];
    lunet_tensor_t *saved[LUNET_OP_MAX_SAVED];
    int nsaved = 0;
    for (int i = 0; i < ninputs; i++)
        if (info->saves & (LUNET_SAVE_IN0 << i))
            saved[nsaved++] = keep_input(info, ninputs, inputs, i) ? inputs[i] : NULL;
    if (info->saves & LUNET_SAVE_OUT)
        saved[nsaved++] = out;
    for (int i = 0; i < info->nextra; i++)
        saved[nsaved++] = extra[i];
    lunet_node_t *n = node_alloc();
    if (!n)
        return lunet_error_set(LUNET_STATUS_NOMEM, "autograd: out of memory");
    n->op = op;
    n->refcount = 1;
    n->name = args && args->name ? args->name : lunet_op_table[op].name;
    for (int i = 0; i < nsaved; i++)
        n->saved_fn[i] = !saved[i]           ? NULL
                         : saved[i] == out   ? n->name
                         : saved[i]->grad_fn ? saved[i]->grad_fn->name
                                             : NULL;
    if (args)
        n->args = *args;
    n->ninputs = ninputs;
    for (int i = 0; i < ninputs; i++) {
        lunet_tensor_t *t = inputs[i];
        lunet_edge_t *e = &n->in[i];
        if (!t)
            continue;
        e->dtype = t->dtype;
        e->ndim = t->ndim;
        memcpy(e->shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
        if (!t->requires_grad)
            continue;
        e->needs_grad = true;
        if (t->grad_fn) {
            e->node = t->grad_fn;
            lunet_node_retain(e->node);
        } else {
            e->leaf = t;
            lunet_tensor_retain(t);
        }
    }
    for (int i = 0; i < nsaved; i++) {
        if (!saved[i])
            continue;
        /* a detached view: shares the data, but not the history (no reference cycle) */
        lunet_status_t st = lunet_tensor_detach(&n->saved[i], saved[i]);
        if (st) {
            n->nsaved = i;
            lunet_node_release(n);
            return st;
        }
        n->saved_version[i] = lunet_tensor_version(saved[i]);
    }
    n->nsaved = nsaved;
    n->had_saved = nsaved > 0;
    n->out_dtype = out->dtype;
    n->out_ndim = out->ndim;
    memcpy(n->out_shape, out->shape, sizeof(int64_t) * (size_t)out->ndim);
    move_retain(out, out->grad_fn, n);
    lunet_node_release(out->grad_fn);
    out->grad_fn = n;
    out->requires_grad = true;
    return LUNET_OK;
}

lunet_status_t lunet_autograd_finish(lunet_tensor_t **out, lunet_tensor_t *result, lunet_op_t op,
                                     int ninputs, lunet_tensor_t **inputs, lunet_tensor_t **extra,
                                     const lunet_op_args_t *args)
{
    bool need = false;
    for (int i = 0; i < ninputs && !need; i++)
        need = lunet_autograd_needed(inputs[i], NULL);
    if (need) {
        lunet_status_t st = lunet_autograd_record(result, op, ninputs, inputs, extra, args);
        if (st) {
            lunet_tensor_release(result);
            return st;
        }
    }
    *out = result;
    return LUNET_OK;
}

/* ---- backward */

/* The walk's work list, kept between calls and freed when its thread exits. */
static _Thread_local lunet_node_t **work;
static _Thread_local size_t work_cap;
static pthread_once_t work_once = PTHREAD_ONCE_INIT;
static pthread_key_t work_key;
static bool work_key_ok;

static void work_destroy(void *p)
{
    free(p);
    work = NULL;
    work_cap = 0;
}

static void work_make_key(void) { work_key_ok = pthread_key_create(&work_key, work_destroy) == 0; }
/* Global (not per thread) so that a graph handed from one thread to another never meets a
   stale mark equal to the new walk's; atomic since several threads walk at once. */
static _Atomic uint32_t walk_mark;

static lunet_status_t work_reserve(size_t n)
{
    if (n <= work_cap)
        return LUNET_OK;
    size_t cap = work_cap ? work_cap * 2 : 256;
    while (cap < n)
        cap *= 2;
    lunet_node_t **w = realloc(work, cap * sizeof *w);
    if (!w)
        return lunet_error_set(LUNET_STATUS_NOMEM, "backward: out of memory");
    work = w;
    work_cap = cap;
    pthread_once(&work_once, work_make_key);
    if (work_key_ok)
        pthread_setspecific(work_key, w);
    return LUNET_OK;
}

/* Adds g into *slot (taking over g's reference). */
static lunet_status_t accumulate(lunet_tensor_t **slot, lunet_tensor_t *g)
{
    if (!*slot) {
        *slot = g;
        return LUNET_OK;
    }
    lunet_tensor_t *sum;
    lunet_status_t st = lunet_tensor_binary(&sum, LUNET_BINARY_ADD, *slot, g);
    lunet_tensor_release(g);
    if (st)
        return st;
    lunet_tensor_release(*slot);
    *slot = sum;
    return LUNET_OK;
}

/*
 * Fits a rule's gradient to its input: summed over the dims the input was broadcast along
 * (leading dims, and size-1 dims that grew), then converted to the input's dtype.  This is
 * the one place broadcasting is undone, so rules return g in the broadcast result's shape.
 */
static lunet_status_t fit_grad(lunet_tensor_t **g, const lunet_edge_t *e)
{
    lunet_tensor_t *c;
    lunet_status_t st;
    if (!lunet_shape_equal((*g)->ndim, (*g)->shape, e->ndim, e->shape)) {
        int64_t dims[LUNET_MAX_DIMS];
        int nd = 0, lead = (*g)->ndim - e->ndim;
        for (int d = 0; d < (*g)->ndim; d++)
            if (d < lead || (e->shape[d - lead] == 1 && (*g)->shape[d] != 1))
                dims[nd++] = d;
        lunet_tensor_t *s = NULL;
        if (nd && (st = lunet_tensor_reduce(&s, NULL, LUNET_REDUCE_SUM, *g, nd, dims, true)))
            return st;
        st = lunet_tensor_reshape(&c, s ? s : *g, e->ndim, e->shape);
        lunet_tensor_release(s);
        if (st)
            return st;
        lunet_tensor_release(*g);
        *g = c;
    }
    if ((*g)->dtype == e->dtype)
        return LUNET_OK;
    if ((st = lunet_tensor_to(&c, *g, e->dtype)))
        return st;
    lunet_tensor_release(*g);
    *g = c;
    return LUNET_OK;
}

/* leaf.grad += g; the leaf's grad is always a tensor of its own: a new one is g itself when
   nothing else holds g, else a copy, made in the place its slab keeps for it if it has one
   (slab.c; a place is used once: after a set_to_none the gradient is a new tensor, as in
   PyTorch, and the slab's one-loop paths skip it). */
static lunet_status_t accumulate_leaf(lunet_tensor_t *leaf, lunet_tensor_t *g)
{
    lunet_status_t st;
    if (leaf->grad) {
        st = lunet_tensor_binary_(leaf->grad, LUNET_BINARY_ADD, g);
        lunet_tensor_release(g);
        return st;
    }
    lunet_tensor_t *home = leaf->grad_home;
    leaf->grad_home = NULL;
    if (home && home->dtype == leaf->dtype &&
        lunet_shape_equal(home->ndim, home->shape, leaf->ndim, leaf->shape)) {
        lunet_copy_cast(home, g);
        lunet_tensor_bump_version(home);
        lunet_tensor_release(g);
        leaf->grad = home;
        return LUNET_OK;
    }
    lunet_tensor_release(home);
    if (g->refcount == 1 && !g->grad_fn && lunet_tensor_is_contiguous(g) &&
        lunet_shape_equal(g->ndim, g->shape, leaf->ndim, leaf->shape) && !g->storage->wrapped &&
        g->storage->refcount == 1) {
        leaf->grad = g;
        return LUNET_OK;
    }
    lunet_tensor_t *c;
    st = lunet_tensor_empty_like(&c, leaf, leaf->dtype);
    if (!st)
        lunet_copy_cast(c, g);
    lunet_tensor_release(g);
    if (st)
        return st;
    leaf->grad = c;
    return LUNET_OK;
}

static lunet_status_t check_saved(lunet_node_t *n)
{
    if (n->released && n->had_saved)
        return lunet_error_set(
            LUNET_STATUS_RUNTIME,
            "Trying to backward through the graph a second time (or directly "
            "access saved tensors after they have already been freed). Saved "
            "intermediate values of the graph are freed when you call .backward() "
            "or autograd.grad(). Specify retain_graph=True if you need to backward "
            "through the graph a second time or if you need to access saved tensors "
            "after calling backward.");
    for (int i = 0; i < n->nsaved; i++) {
        lunet_tensor_t *s = n->saved[i];
        if (s && lunet_tensor_version(s) != n->saved_version[i]) {
            char b[LUNET_SHAPE_BUF];
            return lunet_error_set(
                LUNET_STATUS_RUNTIME,
                "one of the variables needed for gradient computation has been "
                "modified by an inplace operation: [torch.%sTensor %s]%s%s%s is at version "
                "%u; expected version %u instead. "
                "Hint: enable anomaly detection to find the operation that failed "
                "to compute its gradient, with "
                "torch.autograd.set_detect_anomaly(True).",
                lunet_dtype_torch_name(s->dtype), lunet_shape_str(b, sizeof b, s->ndim, s->shape),
                n->saved_fn[i] ? ", which is output 0 of " : "",
                n->saved_fn[i] ? n->saved_fn[i] : "", n->saved_fn[i] ? "," : "",
                lunet_tensor_version(s), n->saved_version[i]);
        }
    }
    return LUNET_OK;
}

lunet_status_t lunet_tensor_backward(lunet_tensor_t *t, lunet_tensor_t *grad, bool retain_graph)
{
    lunet_status_t st;
    if (!t->requires_grad)
        return lunet_error_set(
            LUNET_STATUS_RUNTIME,
            "element 0 of tensors does not require grad and does not have a grad_fn");
    lunet_tensor_t *g0;
    if (!grad) {
        if (t->numel != 1)
            return lunet_error_set(LUNET_STATUS_RUNTIME,
                                   "grad can be implicitly created only for scalar outputs");
        if ((st = lunet_tensor_full(&g0, t->dtype, t->ndim, t->shape, 1.0)))
            return st;
    } else {
        if (!lunet_shape_equal(grad->ndim, grad->shape, t->ndim, t->shape)) {
            char b1[LUNET_SHAPE_BUF], b2[LUNET_SHAPE_BUF];
            return lunet_error_set(
                LUNET_STATUS_RUNTIME,
                "Mismatch in shape: grad_output[0] has a shape of torch.Size(%s) "
                "and output[0] has a shape of torch.Size(%s).",
                lunet_shape_str(b1, sizeof b1, grad->ndim, grad->shape),
                lunet_shape_str(b2, sizeof b2, t->ndim, t->shape));
        }
        if ((st = lunet_tensor_to(&g0, grad, t->dtype)))
            return st;
    }
    bool was = lunet_set_grad_enabled(false);
    if (!t->grad_fn) {
        st = accumulate_leaf(t, g0);
        lunet_set_grad_enabled(was);
        return st;
    }

    /* 1. collect the reachable nodes and count how many edges point at each */
    uint32_t mark = atomic_fetch_add_explicit(&walk_mark, 1, memory_order_relaxed) + 1;
    size_t count = 0, top = 0;
    lunet_node_t *root = t->grad_fn;
    if ((st = work_reserve(1)))
        goto out;
    work[count++] = root;
    root->mark = mark;
    root->deps = 0;
    while (top < count) {
        lunet_node_t *n = work[top++];
        for (int i = 0; i < n->ninputs; i++) {
            lunet_node_t *m = n->in[i].node;
            if (!m)
                continue;
            if (m->mark != mark) {
                if ((st = work_reserve(count + 1)))
                    goto out;
                m->mark = mark;
                m->deps = 0;
                work[count++] = m;
            }
            m->deps++;
        }
    }
    /* 2. run nodes whose every consumer has run; the ready stack lives after the list */
    if ((st = work_reserve(2 * count)))
        goto out;
    lunet_node_t **stack = work + count;
    size_t ready = 0;
    stack[ready++] = root;
    root->grad = g0;
    g0 = NULL;
    while (ready > 0) {
        lunet_node_t *n = stack[--ready];
        lunet_tensor_t *g = n->grad;
        n->grad = NULL;
        lunet_tensor_t *grads[LUNET_OP_MAX_INPUTS] = {NULL};
        if (g && n->retain_target) {
            lunet_tensor_t *keep;
            if ((st = lunet_tensor_clone(&keep, g)) ||
                (st = accumulate(&n->retain_target->grad, keep))) {
                lunet_tensor_release(g);
                goto out;
            }
        }
        if (!g) {
            /* no gradient reached this node (e.g. integer path); still release its inputs */
        } else if ((st = check_saved(n)) || (st = lunet_op_table[n->op].backward(n, g, grads))) {
            lunet_tensor_release(g);
            goto out;
        }
        lunet_tensor_release(g);
        if (!retain_graph) {
            node_release_saved(n);
            n->released = true;
        }
        for (int i = 0; i < n->ninputs; i++) {
            lunet_edge_t *e = &n->in[i];
            lunet_tensor_t *gi = grads[i];
            grads[i] = NULL;
            if (gi && !e->needs_grad) {
                lunet_tensor_release(gi);
                gi = NULL;
            }
            if (gi && (st = fit_grad(&gi, e))) {
                lunet_tensor_release(gi);
                for (int j = i + 1; j < n->ninputs; j++)
                    lunet_tensor_release(grads[j]);
                goto out;
            }
            if (e->leaf && gi) {
                if ((st = accumulate_leaf(e->leaf, gi))) {
                    for (int j = i + 1; j < n->ninputs; j++)
                        lunet_tensor_release(grads[j]);
                    goto out;
                }
            } else if (e->node) {
                if (gi && (st = accumulate(&e->node->grad, gi))) {
                    for (int j = i + 1; j < n->ninputs; j++)
                        lunet_tensor_release(grads[j]);
                    goto out;
                }
                if (--e->node->deps == 0)
                    stack[ready++] = e->node;
            } else {
                lunet_tensor_release(gi);
            }
        }
    }
out:
    /* on failure, drop any gradients parked on nodes */
    if (st) {
        for (size_t i = 0; i < count; i++) {
            lunet_tensor_release(work[i]->grad);
            work[i]->grad = NULL;
        }
    }
    lunet_tensor_release(g0);
    lunet_set_grad_enabled(was);
    return st;
}
