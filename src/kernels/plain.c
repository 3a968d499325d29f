/* plain.c - see plain.h.  Compiled once, for the baseline instruction set,
 * without contraction into fused multiply-adds: the input's preparation and
 * the loss must give the same bits as they always have. */
#include "kernels/plain.h"
#include "counter_rng.h"

#include <math.h>
#include <string.h>

void cn_plain_avgpool_fwd(const cn_backend *be, const cn_win *g, const float *x, size_t n, float *y)
{
    (void)be;
    float inv = 1.0f / (float)(g->kh * g->kw);
    for (size_t p = 0; p < n * g->c; p++) {
        const float *in = x + p * g->h * g->w;
        for (size_t i = 0; i < g->oh; i++)
            for (size_t j = 0; j < g->ow; j++) {
                float s = 0.0f;
                for (size_t a = 0; a < g->kh; a++)
                    for (size_t b = 0; b < g->kw; b++)
                        s += in[(i * g->stride + a) * g->w + j * g->stride + b];
                y[(p * g->oh + i) * g->ow + j] = s * inv;
            }
    }
}

void cn_plain_avgpool_bwd(const cn_backend *be, const cn_win *g, const float *dy, size_t n,
                          float *dx)
{
    (void)be;
    float inv = 1.0f / (float)(g->kh * g->kw);
    memset(dx, 0, n * g->c * g->h * g->w * sizeof *dx);
    for (size_t p = 0; p < n * g->c; p++) {
        float *out = dx + p * g->h * g->w;
        for (size_t i = 0; i < g->oh; i++)
            for (size_t j = 0; j < g->ow; j++) {
                float d = dy[(p * g->oh + i) * g->ow + j] * inv;
                for (size_t a = 0; a < g->kh; a++)
                    for (size_t b = 0; b < g->kw; b++)
                        out[(i * g->stride + a) * g->w + j * g->stride + b] += d;
            }
    }
}

void cn_plain_dropout_fwd(const cn_backend *be, const float *x, float *y, size_t count, float rate,
                          uint64_t key, uint64_t first)
{
    (void)be;
    float keep = 1.0f / (1.0f - rate);
    for (size_t i = 0; i < count; i++)
        y[i] = cn_counter_uniform(key, first + i) < rate ? 0.0f : x[i] * keep;
}

void cn_plain_dropout_bwd(const cn_backend *be, const float *dy, float *dx, size_t count,
                          float rate, uint64_t key, uint64_t first)
{
    cn_plain_dropout_fwd(be, dy, dx, count, rate, key, first); /* the same mask and scale */
}

void cn_plain_add(const cn_backend *be, const float *a, const float *b, float *y, size_t count)
{
    (void)be;
    for (size_t i = 0; i < count; i++)
        y[i] = a[i] + b[i];
}

void cn_plain_scale(const cn_backend *be, float *x, float alpha, size_t count)
{
    (void)be;
    for (size_t i = 0; i < count; i++)
        x[i] *= alpha;
}

void cn_pixels_to_input(const uint8_t *pix, size_t n, size_t c, size_t hw, const float *norm,
                        float *x)
{
    for (size_t s = 0; s < n; s++)
        for (size_t k = 0; k < c; k++) {
            float scale = 1.0f / (255.0f * norm[c + k]), shift = norm[k] / norm[c + k];
            const uint8_t *p = pix + (s * c + k) * hw;
            float *o = x + (s * c + k) * hw;
            for (size_t i = 0; i < hw; i++)
                o[i] = (float)p[i] * scale - shift;
        }
}

void cn_plain_input_from_pixels(const cn_backend *be, const uint8_t *pix, size_t n, size_t c,
                                size_t hw, const float *norm, float *x)
{
    (void)be;
    cn_pixels_to_input(pix, n, c, hw, norm, x);
}

void cn_plain_gather_pixels(const cn_backend *be, const uint8_t *data, const uint32_t *idx,
                            size_t n, cn_shape s, cn_aug aug, uint64_t seed, uint64_t first,
                            const float *norm, uint8_t *pix, float *x)
{
    size_t hw = s.h * s.w, size = s.c * hw;
    int on = cn_aug_any(&aug);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *src = data + (size_t)idx[i] * size;
        uint8_t *out = pix + i * size;
        if (!on) {
            memcpy(out, src, size);
            continue;
        }
        cn_aug_draw d;
        cn_aug_draw_for(&aug, (int64_t)s.h, (int64_t)s.w, seed, first + i, &d);
        cn_aug_sample(src, out, (int64_t)s.c, (int64_t)s.h, (int64_t)s.w, &d);
    }
    cn_plain_input_from_pixels(be, pix, n, s.c, hw, norm, x);
}

void cn_plain_nll_rows(const cn_backend *be, const float *z, const float *y, const int32_t *labels,
                       size_t rows, size_t cols, float smooth, double *loss, int32_t *best,
                       float *best_p)
{
    (void)be;
    for (size_t r = 0; r < rows; r++) {
        const float *row = z + r * cols, *p = y + r * cols;
        float mx = row[0];
        for (size_t j = 1; j < cols; j++)
            mx = row[j] > mx ? row[j] : mx;
        double sum = 0.0, all = 0.0;
        for (size_t j = 0; j < cols; j++)
            sum += exp((double)row[j] - mx);
        loss[r] = log(sum) - ((double)row[labels[r]] - mx);
        if (smooth != 0.0f) { /* lse - (1 - s) z_label - (s / cols) sum z, from mx */
            for (size_t j = 0; j < cols; j++)
                all += (double)row[j] - mx;
            loss[r] = log(sum) - (1.0 - (double)smooth) * ((double)row[labels[r]] - mx) -
                      (double)smooth / (double)cols * all;
        }
        size_t arg = 0;
        for (size_t j = 1; j < cols; j++)
            if (p[j] > p[arg])
                arg = j;
        if (best)
            best[r] = (int32_t)arg;
        if (best_p)
            best_p[r] = p[arg];
    }
}

void cn_plain_ema(const cn_backend *be, float *avg, const float *x, size_t count, float keep)
{
    (void)be;
    float take = 1.0f - keep;
    for (size_t i = 0; i < count; i++)
        avg[i] = keep * avg[i] + take * x[i];
}

size_t cn_plain_count_nonfinite(const cn_backend *be, const float *x, size_t count)
{
    (void)be;
    size_t bad = 0;
    for (size_t i = 0; i < count; i++)
        bad += !isfinite(x[i]);
    return bad;
}

void cn_plain_stats(const cn_backend *be, const float *x, size_t rows, size_t units, size_t size,
                    double out[5])
{
    (void)be;
    double sum = 0.0, sum2 = 0.0, most = 0.0, bad = 0.0, dead = 0.0;
    /* Units a block at a time, so that each row's values are read in order. */
    enum { BLOCK = 256 };
    size_t cols = units * size;
    for (size_t u0 = 0; u0 < units; u0 += BLOCK) {
        size_t nu = units - u0 < BLOCK ? units - u0 : BLOCK;
        unsigned char alive[BLOCK] = {0};
        for (size_t r = 0; r < rows; r++) {
            const float *row = x + r * cols + u0 * size;
            for (size_t j = 0; j < nu * size; j++) {
                float v = row[j];
                if (!isfinite(v)) {
                    bad += 1.0;
                    continue;
                }
                sum += v;
                sum2 += (double)v * v;
                most = fabs(v) > most ? fabs(v) : most;
                alive[j / size] |= v > 0.0f;
            }
        }
        for (size_t j = 0; j < nu; j++)
            dead += !alive[j];
    }
    out[0] = sum;
    out[1] = sum2;
    out[2] = most;
    out[3] = bad;
    out[4] = dead;
}
