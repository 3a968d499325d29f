/* plain.c - see plain.h. */
#include "plain.h"

void cn_avgpool_fwd(const float *x, size_t planes, size_t h, size_t w, size_t k, size_t stride,
                    size_t oh, size_t ow, float *y)
{
    float inv = 1.0f / (float)(k * k);
    for (size_t p = 0; p < planes; p++) {
        const float *in = x + p * h * w;
        for (size_t i = 0; i < oh; i++)
            for (size_t j = 0; j < ow; j++) {
                float s = 0.0f;
                for (size_t a = 0; a < k; a++)
                    for (size_t b = 0; b < k; b++)
                        s += in[(i * stride + a) * w + j * stride + b];
                y[(p * oh + i) * ow + j] = s * inv;
            }
    }
}

void cn_avgpool_bwd(const float *dy, size_t planes, size_t h, size_t w, size_t k, size_t stride,
                    size_t oh, size_t ow, float *dx)
{
    float inv = 1.0f / (float)(k * k);
    for (size_t p = 0; p < planes; p++) {
        float *out = dx + p * h * w;
        for (size_t i = 0; i < oh; i++)
            for (size_t j = 0; j < ow; j++) {
                float g = dy[(p * oh + i) * ow + j] * inv;
                for (size_t a = 0; a < k; a++)
                    for (size_t b = 0; b < k; b++)
                        out[(i * stride + a) * w + j * stride + b] += g;
            }
    }
}

void cn_leaky_fwd(const float *x, size_t n, float slope, float *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : slope * x[i];
}

void cn_leaky_bwd(const float *y, const float *dy, size_t n, float slope, float *dx)
{
    for (size_t i = 0; i < n; i++)
        dx[i] = y[i] > 0.0f ? dy[i] : slope * dy[i];
}

void cn_dropout_mask(cn_rng *rng, size_t n, float rate, float *mask)
{
    float keep = 1.0f / (1.0f - rate);
    for (size_t i = 0; i < n; i++)
        mask[i] = cn_rng_uniform(rng) < (double)rate ? 0.0f : keep;
}

void cn_vmul(const float *a, const float *b, size_t n, float *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] * b[i];
}

void cn_add_to(const float *a, const float *b, size_t n, float *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = a[i] + b[i];
}
