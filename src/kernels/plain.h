/* plain.h - kernels with one plain C implementation (no instruction-set
 * variants: they are memory-bound and cheap next to the convolutions):
 * average pooling, leaky relu, dropout masks, element-wise sums. */
#ifndef CN_KERNELS_PLAIN_H
#define CN_KERNELS_PLAIN_H

#include <stddef.h>
#include <stdint.h>

#include "convnet.h"

/* Average pooling of planes (h, w) into (oh, ow) over k x k windows with the
 * given stride, for `planes` planes.  Backward spreads dy / k^2 over each
 * window and adds into dx (which the caller clears). */
void cn_avgpool_fwd(const float *x, size_t planes, size_t h, size_t w, size_t k, size_t stride,
                    size_t oh, size_t ow, float *y);
void cn_avgpool_bwd(const float *dy, size_t planes, size_t h, size_t w, size_t k, size_t stride,
                    size_t oh, size_t ow, float *dx);

/* y = x > 0 ? x : slope x;  dx = dy * (y > 0 ? 1 : slope) (slope > 0). */
void cn_leaky_fwd(const float *x, size_t n, float slope, float *y);
void cn_leaky_bwd(const float *y, const float *dy, size_t n, float slope, float *dx);

/* Inverted dropout: mask[i] = 0 with probability rate, else 1 / (1 - rate),
 * drawn from rng; y = x * mask. */
void cn_dropout_mask(cn_rng *rng, size_t n, float rate, float *mask);
void cn_vmul(const float *a, const float *b, size_t n, float *y);

/* y = a + b;  y may be a or b. */
void cn_add_to(const float *a, const float *b, size_t n, float *y);

#endif
