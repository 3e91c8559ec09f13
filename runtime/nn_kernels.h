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
lunet_status_t lunet_linear_backward(lunet_tensor_t **dx, lunet_tensor_t **dw,
                                     lunet_tensor_t **db, lunet_tensor_t *g, lunet_tensor_t *x,
                                     lunet_tensor_t *w, lunet_tensor_t *y,
                                     lunet_tensor_t *dw_into, lunet_tensor_t *db_into);

#endif
