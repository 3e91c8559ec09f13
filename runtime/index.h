/*
 * index.h - gradient helpers of index.c used by autograd_rules.c (not installed).
 */
#ifndef LUNET_INDEX_H
#define LUNET_INDEX_H

#include "lunet.h"

/* dx (x shape) = zeros; dx[.. index ..] += g along dim (gather's gradient). */
LUNET_MUST_CHECK lunet_status_t lunet_gather_backward(lunet_tensor_t **dx, lunet_tensor_t *g,
                                                      int xnd, const int64_t *xshape, int64_t dim,
                                                      lunet_tensor_t *index);
/* dx (x shape) = zeros; block-rows pos[i] of dx += block-row i of g (advanced indexing). */
LUNET_MUST_CHECK lunet_status_t lunet_index_backward(lunet_tensor_t **dx, lunet_tensor_t *g,
                                                     int xnd, const int64_t *xshape,
                                                     lunet_tensor_t *pos, int64_t block);

#endif
