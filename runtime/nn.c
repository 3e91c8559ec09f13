/*
 * nn.c - the Linear layer's fused forward (GEMM + bias [+ relu]) and backward, and its
 * PyTorch-exact default initialisation.
 */
#include "autograd.h"
#include "internal.h"
#include "nn_kernels.h"

#include <stdlib.h>
#include <string.h>

#ifndef LUNET_NO_BLAS
#include <cblas.h>
#endif

static lunet_status_t linear_2d(lunet_tensor_t **out, lunet_tensor_t *x, lunet_tensor_t *w,
                                lunet_tensor_t *b, bool relu)
{
    /* one pass per output block: bias rows, the product (beta = 1), the ReLU */
    lunet_tensor_t *wt = NULL, *y = NULL, *bc = NULL;
    lunet_status_t st;
    int64_t shape[2] = {x->shape[0], w->shape[0]};
    bool was = lunet_set_grad_enabled(false);
    if (!(st = lunet_tensor_transpose(&wt, w, 0, 1)) &&
        !(st = lunet_tensor_empty(&y, w->dtype, 2, shape)) &&
        !(st = b ? lunet_tensor_contiguous(&bc, b) : LUNET_OK))
        st = lunet_gemm_bias_relu(y, x, wt, bc, relu);
    lunet_set_grad_enabled(was);
    lunet_tensor_release(wt);
    lunet_tensor_release(bc);
    if (st) {
        lunet_tensor_release(y);
        return st;
    }
    lunet_tensor_t *in[3] = {x, w, b};
    lunet_tensor_t *extra[1] = {relu ? y : NULL};
    lunet_op_args_t args = {.i = {relu},
                            .name = relu ? "ReluBackward0"
                                         : (b ? "AddmmBackward0" : "MmBackward0")};
    return lunet_autograd_finish(out, y, LUNET_OP_LINEAR, 3, in, extra, &args);
}

lunet_status_t lunet_nn_linear(lunet_tensor_t **out, lunet_tensor_t *x, lunet_tensor_t *w,
                               lunet_tensor_t *b, bool relu)
{
    if (w->ndim != 2)
        return lunet_error_set(LUNET_STATUS_RUNTIME, "linear: weight must be 2-D, got %dD",
                               w->ndim);
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
        return lunet_error_set(LUNET_STATUS_RUNTIME, "linear: bias must have shape [%lld]",
                               (long long)w->shape[0]);
    if (x->ndim == 0)
        return lunet_error_set(
            LUNET_STATUS_RUNTIME,
            "linear: both arguments to linear need to be at least 1D, but they are "
            "0D and 2D");
    int64_t k = x->shape[x->ndim - 1];
    int64_t rows = k ? x->numel / k : lunet_shape_numel(x->ndim - 1, x->shape);
    if (k != w->shape[1])
        return lunet_error_set(
            LUNET_STATUS_RUNTIME,
            "mat1 and mat2 shapes cannot be multiplied (%lldx%lld and %lldx%lld)", (long long)rows,
            (long long)k, (long long)w->shape[1], (long long)w->shape[0]);
    if (x->dtype != w->dtype || (b && b->dtype != w->dtype))
        return lunet_error_set(LUNET_STATUS_RUNTIME, "mat1 and mat2 must have the same dtype");
    if (x->ndim == 2)
        return linear_2d(out, x, w, b, relu);
    /* (*, in): fold leading dims into rows, then restore them */
    int64_t s2[2] = {rows, k};
    lunet_tensor_t *x2, *y2;
    lunet_status_t st = lunet_tensor_reshape(&x2, x, 2, s2);
    if (st)
        return st;
    st = linear_2d(&y2, x2, w, b, relu);
    lunet_tensor_release(x2);
    if (st)
        return st;
    int64_t shape[LUNET_MAX_DIMS];
    memcpy(shape, x->shape, sizeof(int64_t) * (size_t)(x->ndim - 1));
    shape[x->ndim - 1] = w->shape[0];
    st = lunet_tensor_reshape(out, y2, x->ndim, shape);
    lunet_tensor_release(y2);
    return st;
}

// gm (N, O) = y <= 0 ? 0 : g (relu's gradient; gm == g when y is NULL), and when db is
// given, db (O) += the column sums of gm, row after row (the order of a plain column sum):
// one pass over the block instead of two
#define MASK_SUM(T)                                                                                \
    do {                                                                                           \
        const T *pg = lunet_tensor_data(gc), *py = y ? lunet_tensor_data(y) : NULL;                \
        T *pm = lunet_tensor_data(*gm), *pb = db ? lunet_tensor_data(db) : NULL;                   \
        for (int64_t i = 0; i < n; i++) {                                                          \
            const T *gi = pg + i * o, *yi = py ? py + i * o : NULL;                                \
            T *mi = pm + i * o;                                                                    \
            if (yi)                                                                                \
                for (int64_t j = 0; j < o; j++) { /* g read always: a select, not a branch */      \
                    T gv = gi[j];                                                                  \
                    mi[j] = yi[j] <= 0 ? (T)0 : gv;                                                \
                }                                                                                  \
            if (pb)                                                                                \
                for (int64_t j = 0; j < o; j++)                                                    \
                    pb[j] += mi[j];                                                                \
        }                                                                                          \
    } while (0)

static lunet_status_t mask_and_bias_sum(lunet_tensor_t **gm, lunet_tensor_t *g, lunet_tensor_t *y,
                                        lunet_tensor_t *db)
{
    lunet_tensor_t *gc;
    lunet_status_t st = lunet_tensor_contiguous(&gc, g);
    if (st)
        return st;
    if (!y) {
        lunet_tensor_retain(gc);
        *gm = gc;
    } else if ((st = lunet_tensor_empty_like(gm, g, g->dtype))) {
        lunet_tensor_release(gc);
        return st;
    }
    int64_t n = g->shape[0], o = g->shape[1];
    if (g->dtype == LUNET_DTYPE_FLOAT32)
        MASK_SUM(float);
    else
        MASK_SUM(double);
    lunet_tensor_release(gc);
    return LUNET_OK;
}

/* A leaf gradient that can take an in-place sum of shape `like`. */
static bool can_accumulate(const lunet_tensor_t *into, lunet_dtype_t dt, int ndim,
                           const int64_t *shape)
{
    return into && into->dtype == dt && lunet_tensor_is_contiguous(into) &&
           lunet_shape_equal(into->ndim, into->shape, ndim, shape) && !into->grad_fn &&
           !into->requires_grad;
}

lunet_status_t lunet_linear_backward(lunet_tensor_t **dx, lunet_tensor_t **dw, lunet_tensor_t **db,
                                     lunet_tensor_t *g, lunet_tensor_t *x, lunet_tensor_t *w,
                                     lunet_tensor_t *y, lunet_tensor_t *dw_into,
                                     lunet_tensor_t *db_into)
{
    lunet_tensor_t *gm = NULL, *t = NULL, *bsum = NULL;
    lunet_status_t st;
    int64_t o = g->shape[1];
    bool b_into = db && db_into && db_into->ndim == 1 && db_into->shape[0] == o &&
                  db_into->dtype == g->dtype && lunet_tensor_is_contiguous(db_into) &&
                  !db_into->grad_fn && !db_into->requires_grad;
    if (db && !b_into && (st = lunet_tensor_zeros(&bsum, g->dtype, 1, &o)))
        return st;
    if ((st = mask_and_bias_sum(&gm, g, y, b_into ? db_into : bsum))) {
        lunet_tensor_release(bsum);
        return st;
    }
    if (db) {
        if (b_into)
            lunet_tensor_bump_version(db_into);
        *db = bsum; /* NULL when added into the leaf's gradient */
        bsum = NULL;
    }
    /* dX = gm (N, O) @ w (O, I) and dW = gm^T (O, N) @ x (N, I), straight into the leaf's
       gradient when it has one: independent products, so one parallel region for both */
    lunet_gemm_task_t task[2];
    int ntask = 0;
    /* w is NULL when x needs no gradient (LUNET_SAVE_CROSS), x when w needs none */
    int64_t sw[2] = {o, dw ? x->shape[1] : 0};
    bool w_into = dw && can_accumulate(dw_into, g->dtype, 2, sw);
    if (dx) {
        int64_t sx[2] = {g->shape[0], w->shape[1]};
        if ((st = lunet_tensor_empty(dx, g->dtype, 2, sx)))
            goto done;
        task[ntask++] = (lunet_gemm_task_t){*dx, gm, w, 1.0, 0.0};
    }
    if (dw) {
        if ((st = lunet_tensor_transpose(&t, gm, 0, 1)))
            goto done;
        if (!w_into && (st = lunet_tensor_empty(dw, g->dtype, 2, sw)))
            goto done;
        task[ntask++] = (lunet_gemm_task_t){w_into ? dw_into : *dw, t, x, 1.0, w_into ? 1.0 : 0.0};
    }
    if ((st = lunet_gemm_tasks(ntask, task)))
        goto done;
    if (w_into) {
        lunet_tensor_bump_version(dw_into);
        *dw = NULL;
    }
done:
    if (st) /* no half-made results: every output is NULL */
        for (int i = 0; i < 3; i++) {
            lunet_tensor_t **out = i == 0 ? dx : i == 1 ? dw : db;
            if (out && *out) {
                lunet_tensor_release(*out);
                *out = NULL;
            }
        }
    lunet_tensor_release(gm);
    lunet_tensor_release(t);
    return st;
}

lunet_status_t lunet_nn_linear_reset(lunet_tensor_t *w, lunet_tensor_t *b, lunet_generator_t *g)
{
    if (w->ndim != 2)
        return lunet_error_set(LUNET_STATUS_RUNTIME, "linear init: weight must be 2-D");
    return lunet_init_layer_reset(w, b, g); /* nn.init's code, as PyTorch's reset_parameters */
}

/* ---- MLP builder (C hosts) */

void lunet_mlp_free(lunet_mlp_t *m)
{
    if (!m)
        return;
    lunet_tensors_release((size_t)m->nlayers, m->weight);
    lunet_tensors_release((size_t)m->nlayers, m->bias);
    free(m->weight);
    free(m->bias);
    free(m);
}

lunet_status_t lunet_mlp_new(lunet_mlp_t **out, int nsizes, const int64_t *sizes,
                             lunet_activation_t activation, lunet_dtype_t dt, lunet_generator_t *g)
{
    if (nsizes < 2)
        return lunet_error_set(LUNET_STATUS_VALUE, "mlp: expected at least two layer sizes, got %d",
                               nsizes);
    if ((unsigned)activation >= LUNET_ACTIVATION_COUNT)
        return lunet_error_set(LUNET_STATUS_VALUE, "mlp: unknown activation %d", (int)activation);
    if (!lunet_dtype_is_floating(dt))
        return lunet_error_set(LUNET_STATUS_TYPE, "mlp: parameters must be floating point, got %s",
                               lunet_dtype_name(dt));
    for (int i = 0; i < nsizes; i++)
        if (sizes[i] <= 0)
            return lunet_error_set(LUNET_STATUS_VALUE, "mlp: layer size %d is %lld", i,
                                   (long long)sizes[i]);
    lunet_mlp_t *m = calloc(1, sizeof *m);
    if (!m)
        return lunet_error_set(LUNET_STATUS_NOMEM, "mlp: out of memory");
    m->nlayers = nsizes - 1;
    m->activation = activation;
    m->weight = calloc((size_t)m->nlayers, sizeof *m->weight);
    m->bias = calloc((size_t)m->nlayers, sizeof *m->bias);
    if (!m->weight || !m->bias) {
        lunet_mlp_free(m);
        return lunet_error_set(LUNET_STATUS_NOMEM, "mlp: out of memory");
    }
    lunet_status_t st = LUNET_OK;
    for (int l = 0; l < m->nlayers && !st; l++) {
        int64_t sw[2] = {sizes[l + 1], sizes[l]}, sb[1] = {sizes[l + 1]};
        if ((st = lunet_tensor_empty(&m->weight[l], dt, 2, sw)) ||
            (st = lunet_tensor_empty(&m->bias[l], dt, 1, sb)) ||
            (st = lunet_nn_linear_reset(m->weight[l], m->bias[l], g)))
            break;
        m->weight[l]->requires_grad = true;
        m->bias[l]->requires_grad = true;
    }
    if (st) {
        lunet_mlp_free(m);
        return st;
    }
    *out = m;
    return LUNET_OK;
}

int lunet_mlp_parameter_count(const lunet_mlp_t *m) { return 2 * m->nlayers; }

lunet_tensor_t *lunet_mlp_parameter(const lunet_mlp_t *m, int i)
{
    if (i < 0 || i >= 2 * m->nlayers)
        return NULL;
    return i % 2 == 0 ? m->weight[i / 2] : m->bias[i / 2];
}

lunet_status_t lunet_mlp_forward(lunet_tensor_t **out, lunet_mlp_t *m, lunet_tensor_t *x)
{
    int64_t in = m->weight[0]->shape[1];
    lunet_tensor_t *h;
    lunet_status_t st;
    if (x->ndim > 2) {
        int64_t s2[2] = {x->shape[0], -1};
        if ((st = lunet_tensor_reshape(&h, x, 2, s2)))
            return st;
    } else {
        lunet_tensor_retain(x);
        h = x;
    }
    if (h->ndim != 2 || h->shape[1] != in) {
        char b[LUNET_SHAPE_BUF];
        lunet_tensor_release(h);
        return lunet_error_set(LUNET_STATUS_RUNTIME, "mlp: expected input (N, %lld), got %s",
                               (long long)in, lunet_shape_str(b, sizeof b, x->ndim, x->shape));
    }
    for (int l = 0; l < m->nlayers; l++) {
        bool last = l == m->nlayers - 1;
        bool fuse = !last && m->activation == LUNET_ACTIVATION_RELU;
        lunet_tensor_t *y;
        st = lunet_nn_linear(&y, h, m->weight[l], m->bias[l], fuse);
        lunet_tensor_release(h);
        if (st)
            return st;
        h = y;
        if (!last && !fuse && m->activation != LUNET_ACTIVATION_NONE) {
            lunet_unary_op_t op = m->activation == LUNET_ACTIVATION_SIGMOID ? LUNET_UNARY_SIGMOID
                                                                            : LUNET_UNARY_TANH;
            st = lunet_tensor_unary(&y, op, h);
            lunet_tensor_release(h);
            if (st)
                return st;
            h = y;
        }
    }
    *out = h;
    return LUNET_OK;
}
