/* conv_ref.c - direct convolution by its definition: the oracle for the
 * fast paths (and the GPU backend's reference).
 *   y[s][f][i][j] = b[f] + sum_{c,a,e} w[f][c][a][e] x[s][c][i*st+a-pad][j*st+e-pad] */
#include "kernels/kernels.h"

#include <stdlib.h>
#include <string.h>

/* Input index of output (i, j) and window offset (a, e), or -1 if padding. */
static long at(const cn_win *g, size_t i, size_t j, size_t a, size_t e)
{
    long ii = (long)(i * g->stride + a) - (long)g->pad,
         jj = (long)(j * g->stride + e) - (long)g->pad;
    if (ii < 0 || jj < 0 || ii >= (long)g->h || jj >= (long)g->w)
        return -1;
    return ii * (long)g->w + jj;
}

void cn_conv_ref_fwd(const cn_win *g, size_t m, const float *x, size_t n, const float *w,
                     const float *b, float *y)
{
    size_t in = g->c * g->h * g->w, hw = g->h * g->w, kk = g->kh * g->kw;
    for (size_t s = 0; s < n; s++)
        for (size_t f = 0; f < m; f++)
            for (size_t i = 0; i < g->oh; i++)
                for (size_t j = 0; j < g->ow; j++) {
                    double sum = b[f];
                    for (size_t c = 0; c < g->c; c++)
                        for (size_t a = 0; a < g->kh; a++)
                            for (size_t e = 0; e < g->kw; e++) {
                                long t = at(g, i, j, a, e);
                                if (t >= 0)
                                    sum += (double)w[(f * g->c + c) * kk + a * g->kw + e] *
                                           x[s * in + c * hw + (size_t)t];
                            }
                    y[((s * m + f) * g->oh + i) * g->ow + j] = (float)sum;
                }
}

void cn_conv_ref_bwd(const cn_win *g, size_t m, const float *x, const float *dy, size_t n,
                     const float *w, float *dw, float *db, float *dx)
{
    size_t in = g->c * g->h * g->w, hw = g->h * g->w, kk = g->kh * g->kw;
    /* Sums in double: the oracle should be more exact than what it judges. */
    double *sw = calloc(m * g->c * kk, sizeof *sw), *sb = calloc(m, sizeof *sb);
    double *sx = dx ? calloc(n * in, sizeof *sx) : NULL;
    if (!sw || !sb || (dx && !sx)) {
        free(sw), free(sb), free(sx);
        return;
    }
    for (size_t s = 0; s < n; s++)
        for (size_t f = 0; f < m; f++)
            for (size_t i = 0; i < g->oh; i++)
                for (size_t j = 0; j < g->ow; j++) {
                    double d = dy[((s * m + f) * g->oh + i) * g->ow + j];
                    sb[f] += d;
                    for (size_t c = 0; c < g->c; c++)
                        for (size_t a = 0; a < g->kh; a++)
                            for (size_t e = 0; e < g->kw; e++) {
                                long t = at(g, i, j, a, e);
                                if (t < 0)
                                    continue;
                                size_t wi = (f * g->c + c) * kk + a * g->kw + e;
                                sw[wi] += d * x[s * in + c * hw + (size_t)t];
                                if (sx)
                                    sx[s * in + c * hw + (size_t)t] += d * w[wi];
                            }
                }
    for (size_t i = 0; i < m * g->c * kk; i++)
        dw[i] += (float)sw[i];
    for (size_t f = 0; f < m; f++)
        db[f] += (float)sb[f];
    for (size_t i = 0; dx && i < n * in; i++)
        dx[i] = (float)sx[i];
    free(sw), free(sb), free(sx);
}
