/*
 * nn_kernels.h - backward kernels of nn.c used by autograd_rules.c (not installed).
 */
#ifndef LUNET_NN_KERNELS_H
#define LUNET_NN_KERNELS_H

#include "lunet.h"

/*
 * Gradients of y = [relu](x @ w^T + b) for 2-D x: g (N, O), x (N, I), w (O, I); y (N, O) is
 * the saved output when relu was fused (else NULL).  dx, dw, db may be NULL (not needed).
 */
lunet_status_t lunet_linear_backward(lunet_tensor_t **dx, lunet_tensor_t **dw,
                                     lunet_tensor_t **db, lunet_tensor_t *g, lunet_tensor_t *x,
                                     lunet_tensor_t *w, lunet_tensor_t *y);

#endif
