/* plain.h - CPU kernels with one plain C implementation (no instruction-set
 * variants: they are memory-bound or cheap next to the convolutions), in the
 * backend table's signatures: average pooling, dropout, sums, the input's
 * preparation, the loss per row, the weights' moving average, the
 * finiteness check. */
#ifndef CN_KERNELS_PLAIN_H
#define CN_KERNELS_PLAIN_H

#include "backend/backend.h"

void cn_plain_avgpool_fwd(const cn_backend *be, const cn_win *g, const float *x, size_t n,
                          float *y);
void cn_plain_avgpool_bwd(const cn_backend *be, const cn_win *g, const float *dy, size_t n,
                          float *dx);
void cn_plain_dropout_fwd(const cn_backend *be, const float *x, float *y, size_t count, float rate,
                          uint64_t key, uint64_t first);
void cn_plain_dropout_bwd(const cn_backend *be, const float *dy, float *dx, size_t count,
                          float rate, uint64_t key, uint64_t first);
void cn_plain_add(const cn_backend *be, const float *a, const float *b, float *y, size_t count);
void cn_plain_scale(const cn_backend *be, float *x, float alpha, size_t count);
void cn_plain_input_from_pixels(const cn_backend *be, const uint8_t *pix, size_t n, size_t c,
                                size_t hw, const float *norm, float *x);
void cn_plain_gather_pixels(const cn_backend *be, const uint8_t *data, const uint32_t *idx,
                            size_t n, cn_shape s, cn_aug aug, uint64_t seed, uint64_t first,
                            const float *norm, uint8_t *pix, float *x);
void cn_plain_nll_rows(const cn_backend *be, const float *z, const float *y, const int32_t *labels,
                       size_t rows, size_t cols, float smooth, double *loss, int32_t *best,
                       float *best_p);
void cn_plain_ema(const cn_backend *be, float *avg, const float *x, size_t count, float keep);
size_t cn_plain_count_nonfinite(const cn_backend *be, const float *x, size_t count);
void cn_plain_stats(const cn_backend *be, const float *x, size_t rows, size_t units, size_t size,
                    double out[5]);

/* The same preparation of pixels on the host, for cn_net_prepare: one
 * formula, so that both give the same bits. */
void cn_pixels_to_input(const uint8_t *pix, size_t n, size_t c, size_t hw, const float *norm,
                        float *x);

#endif
