/*
 * nn_kernels.h - backward kernels of nn.c used by autograd_rules.c (not installed).
 */
#ifndef LUNET_NN_KERNELS_H
#define LUNET_NN_KERNELS_H

#include "lunet.h"

/*
 * Gradients of y = [relu](x @ w^T + b) for 2-D x: g (N, O), x (N, I), w (O, I); y (N, O) is
 * the saved output when relu was fused (else NULL).  dx, dw, db may be NULL (not needed).
 * When dw_into / db_into are given (the leaves' existing .grad), the weight and bias
 * gradients are added into them in place -- the GEMM accumulates with beta = 1 -- and
 * *dw / *db are set to NULL: no temporary and no separate add per step.
 */
LUNET_MUST_CHECK lunet_status_t lunet_linear_backward(lunet_tensor_t **dx, lunet_tensor_t **dw,
                                                      lunet_tensor_t **db, lunet_tensor_t *g,
                                                      lunet_tensor_t *x, lunet_tensor_t *w,
                                                      lunet_tensor_t *y, lunet_tensor_t *dw_into,
                                                      lunet_tensor_t *db_into);

/* ---- conv.c, pool.c: gradients for autograd_rules.c; options travel in node args */
/* dx (like x), dw (like w), db (O): each may be NULL when not needed. */
LUNET_MUST_CHECK lunet_status_t lunet_nn_conv2d_backward(lunet_tensor_t **dx, lunet_tensor_t **dw,
                                                         lunet_tensor_t **db, lunet_tensor_t *gy,
                                                         lunet_tensor_t *x, lunet_tensor_t *w,
                                                         const lunet_conv2d_options_t *o);
void lunet_conv2d_options_from_args(lunet_conv2d_options_t *o, const int64_t *i);
void lunet_pool2d_options_from_args(lunet_pool2d_options_t *o, const int64_t *i);
/* dx of the input shape (ndim, shape) and dtype dt */
LUNET_MUST_CHECK lunet_status_t lunet_nn_max_pool2d_backward(lunet_tensor_t **dx, lunet_tensor_t *g,
                                                             lunet_tensor_t *indices, int ndim,
                                                             const int64_t *shape,
                                                             lunet_dtype_t dt);
LUNET_MUST_CHECK lunet_status_t lunet_nn_avg_pool2d_backward(lunet_tensor_t **dx,
                                                             lunet_tensor_t *gy, int ndim,
                                                             const int64_t *shape, lunet_dtype_t dt,
                                                             const lunet_pool2d_options_t *o);
LUNET_MUST_CHECK lunet_status_t lunet_nn_adaptive_avg_pool2d_backward(lunet_tensor_t **dx,
                                                                      lunet_tensor_t *gy, int ndim,
                                                                      const int64_t *shape,
                                                                      lunet_dtype_t dt);

/* ---- activation.c, norm.c */
#include "autograd.h"
LUNET_MUST_CHECK lunet_status_t lunet_nn_activation_backward(lunet_tensor_t **dx, lunet_tensor_t *g,
                                                             lunet_tensor_t *x,
                                                             const lunet_op_args_t *args);
/* stats (C, 2) float64: the forward's (mean, invstd) per channel */
LUNET_MUST_CHECK lunet_status_t lunet_nn_batch_norm_backward(
    lunet_tensor_t **dx, lunet_tensor_t **dw, lunet_tensor_t **db, lunet_tensor_t *g,
    lunet_tensor_t *x, lunet_tensor_t *weight, lunet_tensor_t *stats, bool training);

#endif
