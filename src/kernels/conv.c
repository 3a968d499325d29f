/* conv.c - 2-d convolution on the CPU, one sample per thread.
 *
 * With K = c*kh*kw and P = oh*ow, for each sample s (in parallel):
 *   forward   col (K, P) = im2col(x_s);  y_s (m, P) = W (m, K) col + b
 *   backward  row (P, K) = im2row(x_s);  dW_chunk += dy_s (m, P) row
 *             dcol (K, P) = W^T dy_s;    dx_s = col2im(dcol)
 * Each product is a single-threaded GEMM whose operands stay in the thread's
 * cache: W (and W^T) is packed once per call and shared, col, row and dy_s
 * are read in place.  y_s is written in NCHW order directly.  A 1x1
 * convolution with stride 1 and no padding uses x_s itself for col.
 *
 * Weight gradients are summed per chunk of samples, then the chunks in
 * order.  Chunks are cut from the batch size alone, so the sums, and the
 * result, do not depend on the number of threads.  Part of the CPU kernels
 * compiled once per instruction set (kernels/cpu_kernels.h). */

/* Gradients of a batch are summed in at most this many partial sums. */
#define MAX_CHUNKS 16

static int col_is_x(const cn_win *g)
{
    return g->kh == 1 && g->kw == 1 && g->stride == 1 && g->pad == 0;
}

static size_t n_chunks(size_t n) { return n < MAX_CHUNKS ? n : MAX_CHUNKS; }

/* Scratch: packed W; per thread two K x P buffers; per chunk dW and db. */
static size_t conv_ws(const cn_backend *be, const cn_win *g, size_t m, size_t max_batch)
{
    size_t kk = g->c * g->kh * g->kw, p = g->oh * g->ow;
    return m * kk + (size_t)be->threads * 2 * kk * p + n_chunks(max_batch) * (m * kk + m);
}

static void conv_fwd(const cn_backend *be, const cn_win *g, size_t m, const float *x, size_t n,
                     const float *w, const float *b, float *y, float *ws)
{
    size_t kk = g->c * g->kh * g->kw, p = g->oh * g->ow, in = g->c * g->h * g->w;
    float *pw = ws, *cols = ws + m * kk;
    be->gemm_pack_a(0, m, kk, w, kk, pw);
#pragma omp parallel for num_threads(be->threads) schedule(static)
    for (long s = 0; s < (long)n; s++) {
        int tid = thread_id();
        const float *xs = x + (size_t)s * in, *col = xs;
        float *ys = y + (size_t)s * m * p;
        if (!col_is_x(g)) {
            float *buf = cols + (size_t)tid * 2 * kk * p;
            im2col_one(g, xs, buf, p);
            col = buf;
        }
        be->gemm_st_pre(be->pack + (size_t)tid * be->pack_floats, pw, 0, 0, m, p, kk, 1.0f, w, kk,
                        col, p, 0.0f, ys, p);
        for (size_t f = 0; f < m; f++) {
            float bias = b[f], *row = ys + f * p;
            for (size_t j = 0; j < p; j++)
                row[j] += bias;
        }
    }
}

static void conv_bwd(const cn_backend *be, const cn_win *g, size_t m, const float *x,
                     const float *dy, size_t n, const float *w, float *dw, float *db, float *dx,
                     float *ws)
{
    size_t kk = g->c * g->kh * g->kw, p = g->oh * g->ow, in = g->c * g->h * g->w;
    size_t chunks = n_chunks(n), part = m * kk + m;
    float *pwt = ws, *bufs = ws + m * kk, *partial = bufs + (size_t)be->threads * 2 * kk * p;
    if (dx)
        be->gemm_pack_a(1, kk, m, w, kk, pwt); /* W^T (K, m) */
#pragma omp parallel for num_threads(be->threads) schedule(static)
    for (long c = 0; c < (long)chunks; c++) {
        int tid = thread_id();
        float *row = bufs + (size_t)tid * 2 * kk * p, *dcol = row + kk * p;
        float *pack = be->pack + (size_t)tid * be->pack_floats;
        float *pdw = partial + (size_t)c * part, *pdb = pdw + m * kk;
        size_t s0 = (size_t)c * n / chunks, s1 = ((size_t)c + 1) * n / chunks;
        memset(pdb, 0, m * sizeof(float));
        for (size_t s = s0; s < s1; s++) {
            const float *xs = x + s * in, *dys = dy + s * m * p;
            /* dW += dy_s row, row = x_s^T for a 1x1 convolution. */
            if (col_is_x(g)) {
                be->gemm_st(pack, 0, 1, m, kk, p, 1.0f, dys, p, xs, p, s == s0 ? 0.0f : 1.0f, pdw,
                            kk);
            } else {
                im2row_one(g, xs, row);
                be->gemm_st(pack, 0, 0, m, kk, p, 1.0f, dys, p, row, kk, s == s0 ? 0.0f : 1.0f, pdw,
                            kk);
            }
            for (size_t f = 0; f < m; f++) {
                const float *d = dys + f * p;
                float sum = 0.0f;
                for (size_t j = 0; j < p; j++)
                    sum += d[j];
                pdb[f] += sum;
            }
            if (dx) {
                float *target = col_is_x(g) ? dx + s * in : dcol;
                be->gemm_st_pre(pack, pwt, 1, 0, kk, p, m, 1.0f, w, kk, dys, p, 0.0f, target, p);
                if (!col_is_x(g))
                    col2im_one(g, dcol, p, dx + s * in);
            }
        }
    }
    /* The chunks' sums, in chunk order. */
#pragma omp parallel for num_threads(be->threads) schedule(static) if (part > 4096)
    for (long e = 0; e < (long)part; e++) {
        float sum = 0.0f;
        for (size_t c = 0; c < chunks; c++)
            sum += partial[c * part + (size_t)e];
        if ((size_t)e < m * kk)
            dw[e] += sum;
        else
            db[(size_t)e - m * kk] += sum;
    }
}
