/* elementwise.c - activations, softmax, bias, the SGD update and batch
 * normalisation.  Part of the CPU kernels compiled once per instruction set
 * (kernels/cpu_kernels.h). */

/* PAR_MIN and FOR_RANGES: kernels/parallel.h. */

/* FOR_RANGES's min_n for items of per_item elements each: threads for more
 * than min_items items, but only when all of them together are more than
 * PAR_MIN elements (batch normalisation of one sample is not). */
static size_t par_items(size_t items, size_t per_item, size_t min_items)
{
    return items * per_item > PAR_MIN ? min_items : items;
}

static void relu_fwd(const float *restrict x, float *restrict y, long lo, long hi)
{
    for (long i = lo; i < hi; i++) {
        float v = x[i];
        y[i] = v > 0.0f ? v : 0.0f;
    }
}

static void relu_bwd(const float *restrict y, const float *restrict dy, float *restrict dx, long lo,
                     long hi)
{
    for (long i = lo; i < hi; i++) {
        float d = dy[i]; /* loaded unconditionally, so that this is a vector blend */
        dx[i] = y[i] > 0.0f ? d : 0.0f;
    }
}

/* GELU with PyTorch's tanh approximation, and its derivative:
 *   u = k (x + 0.044715 x^3), k = sqrt(2/pi), t = tanh u
 *   y = x (1 + t) / 2,  y' = (1 + t) / 2 + x (1 - t^2) k (1 + 3 * 0.044715 x^2) / 2 */
#define GELU_K 0.7978845608028654f
#define GELU_A 0.044715f
static inline float gelu(float x)
{
    return 0.5f * x * (1.0f + tanhf(GELU_K * (x + GELU_A * x * x * x)));
}
static inline float gelu_grad(float x)
{
    float t = tanhf(GELU_K * (x + GELU_A * x * x * x));
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * GELU_A * x * x);
}
/* SiLU y = x s(x) with s the sigmoid; y' = s (1 + x (1 - s)). */
static inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
static inline float silu_grad(float x)
{
    float s = sigmoid(x);
    return s * (1.0f + x * (1.0f - s));
}

static void act_fwd(const cn_backend *be, cn_act a, float param, const float *x, float *y,
                    size_t count)
{
    switch (a) {
    case CN_ACT_RELU:
        /* In place (x == y) is fine: element by element. */
        FOR_RANGES(be, count, PAR_MIN, lo, hi, relu_fwd(x, y, lo, hi));
        break;
    case CN_ACT_SIGMOID:
        FOR_RANGES(be, count, PAR_MIN / 8, lo, hi,
                   for (long i = lo; i < hi; i++) y[i] = 1.0f / (1.0f + expf(-x[i])));
        break;
    case CN_ACT_TANH:
        FOR_RANGES(be, count, PAR_MIN / 8, lo, hi,
                   for (long i = lo; i < hi; i++) y[i] = tanhf(x[i]));
        break;
    case CN_ACT_LEAKY:
        FOR_RANGES(be, count, PAR_MIN, lo, hi,
                   for (long i = lo; i < hi; i++) y[i] = x[i] > 0.0f ? x[i] : param * x[i]);
        break;
    case CN_ACT_GELU:
        FOR_RANGES(be, count, PAR_MIN / 8, lo, hi,
                   for (long i = lo; i < hi; i++) y[i] = gelu(x[i]));
        break;
    case CN_ACT_SILU:
        FOR_RANGES(be, count, PAR_MIN / 8, lo, hi,
                   for (long i = lo; i < hi; i++) y[i] = x[i] * sigmoid(x[i]));
        break;
    case CN_ACT_NONE:
    case CN_ACT_COUNT:
        if (x != y)
            memcpy(y, x, count * sizeof(float));
        break;
    }
}

static void act_bwd(const cn_backend *be, cn_act a, float param, const float *x, const float *y,
                    const float *dy, float *dx, size_t count)
{
    switch (a) {
    case CN_ACT_RELU: FOR_RANGES(be, count, PAR_MIN, lo, hi, relu_bwd(y, dy, dx, lo, hi)); break;
    case CN_ACT_SIGMOID:
        FOR_RANGES(be, count, PAR_MIN, lo, hi,
                   for (long i = lo; i < hi; i++) dx[i] = dy[i] * y[i] * (1.0f - y[i]));
        break;
    case CN_ACT_TANH:
        FOR_RANGES(be, count, PAR_MIN, lo, hi,
                   for (long i = lo; i < hi; i++) dx[i] = dy[i] * (1.0f - y[i] * y[i]));
        break;
    case CN_ACT_LEAKY: /* for slope > 0, y > 0 exactly when x > 0 */
        FOR_RANGES(be, count, PAR_MIN, lo, hi,
                   for (long i = lo; i < hi; i++) dx[i] = y[i] > 0.0f ? dy[i] : param * dy[i]);
        break;
    case CN_ACT_GELU:
        FOR_RANGES(be, count, PAR_MIN / 8, lo, hi,
                   for (long i = lo; i < hi; i++) dx[i] = dy[i] * gelu_grad(x[i]));
        break;
    case CN_ACT_SILU:
        FOR_RANGES(be, count, PAR_MIN / 8, lo, hi,
                   for (long i = lo; i < hi; i++) dx[i] = dy[i] * silu_grad(x[i]));
        break;
    case CN_ACT_NONE:
    case CN_ACT_COUNT:
        if (dx != dy)
            memcpy(dx, dy, count * sizeof(float));
        break;
    }
}

static void softmax(const cn_backend *be, const float *x, float *y, size_t rows, size_t cols)
{
    (void)be;
    for (size_t r = 0; r < rows; r++) {
        const float *in = x + r * cols;
        float *out = y + r * cols;
        float mx = in[0];
        for (size_t j = 1; j < cols; j++)
            mx = in[j] > mx ? in[j] : mx;
        double sum = 0.0;
        for (size_t j = 0; j < cols; j++) {
            out[j] = expf(in[j] - mx);
            sum += out[j];
        }
        float inv = (float)(1.0 / sum);
        for (size_t j = 0; j < cols; j++)
            out[j] *= inv;
    }
}

static void add_bias(const cn_backend *be, float *y, size_t n, size_t m, size_t p,
                     const float *bias)
{
    int nt = n * m * p > PAR_MIN ? cn_cpu_of(be)->threads : 1;
    if (p == 1) {
        /* Features (a fully connected layer): rows of m, each a vector add. */
        PARALLEL_FOR(nt, i, n, {
            float *restrict row = y + (size_t)i * m;
            for (size_t j = 0; j < m; j++)
                row[j] += bias[j];
        });
        return;
    }
    long blocks = (long)(n * m);
    PARALLEL_FOR(nt, t, blocks, {
        float *row = y + (size_t)t * p, bv = bias[(size_t)t % m];
        for (size_t j = 0; j < p; j++)
            row[j] += bv;
    });
}

static void bias_grad(const cn_backend *be, const float *dy, size_t n, size_t m, size_t p,
                      float *db)
{
    PARALLEL_FOR(n * m * p > PAR_MIN ? cn_cpu_of(be)->threads : 1, c, m, {
        float sum = 0.0f;
        for (size_t s = 0; s < n; s++) {
            const float *row = dy + (s * m + (size_t)c) * p;
            for (size_t j = 0; j < p; j++)
                sum += row[j];
        }
        db[c] += sum;
    });
}

static void softmax_nll_bwd(const cn_backend *be, const float *y, const int32_t *labels,
                            size_t rows, size_t cols, float smooth, float *dx)
{
    (void)be;
    float inv = 1.0f / (float)rows;
    float off = smooth / (float)cols * inv, on = (1.0f - smooth) * inv;
    for (size_t r = 0; r < rows; r++) {
        for (size_t j = 0; j < cols; j++)
            dx[r * cols + j] = y[r * cols + j] * inv - off;
        dx[r * cols + (size_t)labels[r]] -= on;
    }
}

static void sgd_range(float *restrict theta, const float *restrict g, float *restrict m, float lr,
                      float mu, float lambda, long lo, long hi)
{
    float one_mu = 1.0f - mu;
    for (long i = lo; i < hi; i++) {
        float mi = mu * m[i] + one_mu * g[i];
        m[i] = mi;
        theta[i] -= lr * (mi + lambda * theta[i]);
    }
}

static void sgd(const cn_backend *be, size_t n, float *theta, const float *g, float *m, float lr,
                float mu, float lambda)
{
    FOR_RANGES(be, n, PAR_MIN, lo, hi, sgd_range(theta, g, m, lr, mu, lambda, lo, hi));
}

/* hyper: lr, b1, b2, eps, l2 decay (Adam), decoupled decay (AdamW), c1, c2. */
static void adam_range(float *restrict theta, const float *restrict g, float *restrict m,
                       float *restrict v, const float *hyper, long lo, long hi)
{
    float lr = hyper[0], b1 = hyper[1], b2 = hyper[2], eps = hyper[3], l2 = hyper[4];
    float wd = hyper[5], c1 = hyper[6], c2 = hyper[7];
    for (long i = lo; i < hi; i++) {
        float gi = g[i] + l2 * theta[i];
        float mi = b1 * m[i] + (1.0f - b1) * gi, vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        theta[i] -= lr * (c1 * mi / (sqrtf(c2 * vi) + eps) + wd * theta[i]);
    }
}

static void adam(const cn_backend *be, size_t n, float *theta, const float *g, float *m, float *v,
                 const float hyper[8])
{
    FOR_RANGES(be, n, PAR_MIN, lo, hi, adam_range(theta, g, m, v, hyper, lo, hi));
}

/* A fused relu's gradient, y > 0 ? d : 0, as bits masked: a select that
 * the compiler vectorises, where a conditional expression stayed scalar. */
static inline float relu_grad(float d, float y)
{
    uint32_t bits;
    memcpy(&bits, &d, sizeof bits);
    bits &= (uint32_t)0 - (uint32_t)(y > 0.0f);
    memcpy(&d, &bits, sizeof d);
    return d;
}

/* Batch normalisation statistics in one pass over a row of hw values: adds
 * the sums of v = x - k and of v^2 (forward, k a shift near the mean: the
 * running mean), or of dy and dy (x - k) (backward, k the mean), to the
 * LANES float partial sums a and b, lane by lane (the last hw mod LANES
 * values to lane 0): a loop that vectorises, with a result independent of
 * threads.  A chunk of samples sums its rows of a channel this way, then
 * folds the lanes into doubles in a fixed order (bn_chunk_sums). */
#define LANES 16
typedef float lanes_vec __attribute__((vector_size(LANES * sizeof(float))));
typedef int32_t lanes_mask __attribute__((vector_size(LANES * sizeof(int32_t))));
/* A macro: a function returning a vector of 16 floats would change the ABI
 * for the instruction sets narrower than AVX-512. */
#define LANES_LOAD(v, p) memcpy(&(v), (p), sizeof(lanes_vec))

static void row_sums(const float *restrict xr, const float *dr, const float *restrict yr, float *mo,
                     size_t hw, float k, float *restrict sa, float *restrict sb)
{
    /* GCC's vector extension: a loop over 16 lanes of arrays behind
     * pointers was compiled to scalar code. */
    lanes_vec a, b, d, v, kv = (lanes_vec){0} + k;
    LANES_LOAD(a, sa);
    LANES_LOAD(b, sb);
    size_t j = 0;
    if (dr) {
        /* With yr, dy where y > 0 (a fused relu's gradient), kept in mo
         * when mo is given. */
        for (; j + LANES <= hw; j += LANES) {
            LANES_LOAD(d, dr + j);
            LANES_LOAD(v, xr + j);
            if (yr) {
                lanes_vec yv;
                LANES_LOAD(yv, yr + j);
                d = (lanes_vec)((lanes_mask)d & (yv > (lanes_vec){0}));
                if (mo)
                    memcpy(mo + j, &d, sizeof d);
            }
            a += d;
            b += d * (v - kv);
        }
        for (; j < hw; j++) {
            float e = yr ? relu_grad(dr[j], yr[j]) : dr[j];
            if (yr && mo)
                mo[j] = e;
            a[0] += e;
            b[0] += e * (xr[j] - k);
        }
    } else {
        for (; j + LANES <= hw; j += LANES) {
            LANES_LOAD(v, xr + j);
            v -= kv;
            a += v;
            b += v * v;
        }
        for (; j < hw; j++) {
            float e = xr[j] - k;
            a[0] += e;
            b[0] += e * e;
        }
    }
    memcpy(sa, &a, sizeof a);
    memcpy(sb, &b, sizeof b);
}

/* The same sums for hw == 1 (after a fully connected layer), vectorised
 * across the channels [c0, c1) instead. */
static void feature_sums(const float *x, const float *dy, const float *y, size_t n, size_t c,
                         size_t c0, size_t c1, const float *k, double *s1, double *s2)
{
    for (size_t f = c0; f < c1; f++)
        s1[f] = s2[f] = 0;
    for (size_t i = 0; i < n; i++) {
        const float *xr = x + i * c, *dr = dy ? dy + i * c : NULL, *yr = y ? y + i * c : NULL;
        if (dr) /* with yr, dy where y > 0: a fused relu's gradient */
            for (size_t f = c0; f < c1; f++) {
                float d = yr ? relu_grad(dr[f], yr[f]) : dr[f];
                s1[f] += d;
                s2[f] += (double)d * (xr[f] - k[f]);
            }
        else
            for (size_t f = c0; f < c1; f++) {
                double v = xr[f] - k[f];
                s1[f] += v;
                s2[f] += v * v;
            }
    }
}

/* row_sums of every channel of x (n, c, hw) (with dy: the backward sums)
 * into s1 and s2 (c doubles each): per chunk of samples first, into the
 * doubles after s1 and s2 in scratch (CN_BN_CHUNKS x 2c), then the chunks
 * added up in order.  The chunks are cut from n alone, so the result does
 * not depend on the number of threads, and each thread reads the samples
 * that it wrote in the layer before (the layers' loops over samples give
 * thread t the same share), not another core's. */
static void bn_chunk_sums(const cn_backend *be, const float *x, const float *dy, const float *y,
                          float *mo, size_t n, size_t c, size_t hw, const float *k, double *s1,
                          double *s2)
{
    size_t chunks = n < CN_BN_CHUNKS ? n : CN_BN_CHUNKS;
    double *part = s1 + 2 * c;
    PARALLEL_FOR(n * c * hw > PAR_MIN ? cn_cpu_of(be)->threads : 1, q, chunks, {
        double *p1 = part + (size_t)q * 2 * c, *p2 = p1 + c;
        size_t i0 = (size_t)q * n / chunks, i1 = ((size_t)q + 1) * n / chunks;
        for (size_t ch = 0; ch < c; ch++) {
            float a[LANES] = {0}, b[LANES] = {0};
            for (size_t i = i0; i < i1; i++) {
                size_t at = (i * c + ch) * hw;
                row_sums(x + at, dy ? dy + at : NULL, y ? y + at : NULL, mo ? mo + at : NULL, hw,
                         k[ch], a, b);
            }
            double sa = 0, sb = 0;
            for (int l = 0; l < LANES; l++) {
                sa += a[l];
                sb += b[l];
            }
            p1[ch] = sa;
            p2[ch] = sb;
        }
    });
    for (size_t ch = 0; ch < c; ch++) {
        double a = 0, b = 0;
        for (size_t q = 0; q < chunks; q++) {
            a += part[q * 2 * c + ch];
            b += part[q * 2 * c + c + ch];
        }
        s1[ch] = a;
        s2[ch] = b;
    }
}

/* From the sums around k, the batch's mean and 1/std, and the running
 * statistics' update (the running variance is unbiased, as PyTorch keeps
 * it). */
static void bn_stats(double s1, double s2, double count, float k, float momentum, float eps,
                     float *mean, float *invstd, float *run_mean, float *run_var)
{
    double d = s1 / count, var = s2 / count - d * d;
    var = var > 0 ? var : 0;
    double m = k + d;
    *mean = (float)m;
    *invstd = (float)(1.0 / sqrt(var + eps));
    double unbiased = count > 1 ? var * count / (count - 1) : var;
    *run_mean = (float)((1 - momentum) * *run_mean + momentum * m);
    *run_var = (float)((1 - momentum) * *run_var + momentum * unbiased);
}

/* Evaluation's batch normalisation of one channel as the affine map
 * y = x scale + shift, from the running statistics. */
static inline void bn_eval_affine(float gamma, float beta, float mean, float var, float eps,
                                  float *scale, float *shift)
{
    float is = (float)(1.0 / sqrt((double)var + eps));
    *scale = gamma * is;
    *shift = beta - mean * *scale;
}

static void bn_affine(const cn_backend *be, const float *gamma, const float *beta,
                      const float *run_mean, const float *run_var, float eps, size_t c,
                      float *scale, float *shift)
{
    (void)be;
    for (size_t ch = 0; ch < c; ch++)
        bn_eval_affine(gamma[ch], beta[ch], run_mean[ch], run_var[ch], eps, &scale[ch], &shift[ch]);
}

/* bn_fwd, and with stats 0 (train 1) its training pass's normalisation
 * alone, from the mean and 1/std it kept (bn_apply): the same loops, so the
 * same bits. */
static void bn_pass(const cn_backend *be, const float *x, size_t n, size_t c, size_t hw,
                    const float *gamma, const float *beta, float *run_mean, float *run_var,
                    float momentum, float eps, int train, int stats, float *save_mean,
                    float *save_invstd, double *scratch, float *y, cn_act act)
{
    /* A fused relu: as relu_fwd, v > 0 ? v : 0 (a NaN to 0). */
    int relu = act == CN_ACT_RELU;
    double count = (double)(n * hw);
    if (hw == 1) {
        /* Features: statistics over the rows, vectorised across features. */
        FOR_RANGES(be, c, par_items(c, n, 64), lo, hi, {
            if (train && stats) {
                double *s1 = scratch, *s2 = scratch + c;
                feature_sums(x, NULL, NULL, n, c, (size_t)lo, (size_t)hi, run_mean, s1, s2);
                for (long f = lo; f < hi; f++) {
                    float k = run_mean[f];
                    bn_stats(s1[f], s2[f], count, k, momentum, eps, &save_mean[f], &save_invstd[f],
                             &run_mean[f], &run_var[f]);
                }
            }
            /* The mean and 1 / std: the batch's, or the running ones (one
             * vectorised pass for the sqrt and the division). */
            const float *mean = save_mean, *is = save_invstd;
            if (!train) {
                float *run_is = (float *)(scratch + c);
                for (long f = lo; f < hi; f++)
                    run_is[f] = 1.0f / sqrtf(run_var[f] + eps);
                mean = run_mean;
                is = run_is;
            }
            for (size_t i = 0; i < n; i++) {
                const float *restrict in = x + i * c;
                float *restrict out = y + i * c;
                for (long f = lo; f < hi; f++) {
                    float v = (in[f] - mean[f]) * is[f] * gamma[f] + beta[f];
                    out[f] = relu && !(v > 0.0f) ? 0.0f : v;
                }
            }
        });
        return;
    }
    /* Channels: the sums per chunk of samples, then added up chunk by chunk
     * (bn_chunk_sums); each thread normalises its own samples. */
    if (train && stats) {
        double *s1 = scratch, *s2 = scratch + c;
        bn_chunk_sums(be, x, NULL, NULL, NULL, n, c, hw, run_mean, s1, s2);
        for (size_t ch = 0; ch < c; ch++) {
            float k = run_mean[ch];
            bn_stats(s1[ch], s2[ch], count, k, momentum, eps, &save_mean[ch], &save_invstd[ch],
                     &run_mean[ch], &run_var[ch]);
        }
    }
    FOR_RANGES(be, n, par_items(n, c * hw, 1), lo, hi, {
        for (long i = lo; i < hi; i++)
            for (size_t ch = 0; ch < c; ch++) {
                float scale, shift;
                if (train) {
                    scale = gamma[ch] * save_invstd[ch];
                    shift = beta[ch] - save_mean[ch] * scale;
                } else
                    bn_eval_affine(gamma[ch], beta[ch], run_mean[ch], run_var[ch], eps, &scale,
                                   &shift);
                const float *restrict in = x + ((size_t)i * c + ch) * hw;
                float *restrict out = y + ((size_t)i * c + ch) * hw;
                for (size_t j = 0; j < hw; j++) {
                    float v = in[j] * scale + shift;
                    out[j] = relu && !(v > 0.0f) ? 0.0f : v;
                }
            }
    });
}

static void bn_fwd(const cn_backend *be, const float *x, size_t n, size_t c, size_t hw,
                   const float *gamma, const float *beta, float *run_mean, float *run_var,
                   float momentum, float eps, int train, float *save_mean, float *save_invstd,
                   double *scratch, float *y, cn_act act)
{
    bn_pass(be, x, n, c, hw, gamma, beta, run_mean, run_var, momentum, eps, train, 1, save_mean,
            save_invstd, scratch, y, act);
}

static void bn_apply(const cn_backend *be, const float *x, size_t n, size_t c, size_t hw,
                     const float *gamma, const float *beta, const float *save_mean,
                     const float *save_invstd, float *y, cn_act act)
{
    bn_pass(be, x, n, c, hw, gamma, beta, NULL, NULL, 0.0f, 0.0f, 1, 0, (float *)save_mean,
            (float *)save_invstd, NULL, y, act);
}

static void bn_bwd(const cn_backend *be, const float *x, const float *y, const float *dy, size_t n,
                   size_t c, size_t hw, const float *gamma, const float *save_mean,
                   const float *save_invstd, double *scratch, float *dgamma, float *dbeta,
                   float *dx, cn_act act)
{
    /* A fused relu: dy counts where y > 0, as relu_bwd passes it. */
    const float *ym = act == CN_ACT_RELU ? y : NULL;
    double count = (double)(n * hw);
    if (hw == 1) {
        double *s1 = scratch, *s2 = scratch + c;
        FOR_RANGES(be, c, par_items(c, n, 64), lo, hi, {
            feature_sums(x, dy, ym, n, c, (size_t)lo, (size_t)hi, save_mean, s1, s2);
            for (long f = lo; f < hi; f++) {
                s2[f] *= save_invstd[f]; /* sum of dy * xhat */
                dbeta[f] += (float)s1[f];
                dgamma[f] += (float)s2[f];
            }
            for (size_t i = 0; dx && i < n; i++) {
                /* dx may be dy: each value is read before it is written */
                const float *restrict in = x + i * c, *d = dy + i * c;
                const float *restrict yr = ym ? ym + i * c : NULL;
                float *out = dx + i * c;
                for (long f = lo; f < hi; f++) {
                    float is = save_invstd[f], df = yr ? relu_grad(d[f], yr[f]) : d[f];
                    out[f] = gamma[f] * is *
                             (df - (float)(s1[f] / count) -
                              (in[f] - save_mean[f]) * is * (float)(s2[f] / count));
                }
            }
        });
        return;
    }
    double *s1 = scratch, *s2 = scratch + c;
    /* With a fused relu the sums' pass keeps dy where y > 0 in dx, for the
     * pass that computes dx from it in place: y is read once. */
    bn_chunk_sums(be, x, dy, ym, ym ? dx : NULL, n, c, hw, save_mean, s1, s2);
    for (size_t ch = 0; ch < c; ch++) {
        s2[ch] *= save_invstd[ch]; /* sum of dy * xhat */
        dbeta[ch] += (float)s1[ch];
        dgamma[ch] += (float)s2[ch];
    }
    if (!dx)
        return;
    FOR_RANGES(be, n, par_items(n, c * hw, 1), lo, hi, {
        for (long i = lo; i < hi; i++)
            for (size_t ch = 0; ch < c; ch++) {
                /* dx = gamma invstd (dy - mean(dy) - xhat mean(dy xhat)) */
                float mean = save_mean[ch], is = save_invstd[ch];
                float k = gamma[ch] * is, md = (float)(s1[ch] / count);
                float mdx = (float)(s2[ch] / count) * is;
                size_t at = ((size_t)i * c + ch) * hw;
                /* with a fused relu, in place: dy where y > 0, from the sums' pass */
                const float *restrict in = x + at, *d = ym ? dx + at : dy + at;
                float *out = dx + at;
                for (size_t j = 0; j < hw; j++)
                    out[j] = k * (d[j] - md - (in[j] - mean) * mdx);
            }
    });
}

/* ------------------------------------------------------ the doctor's figures */

/* Whether the float with these bits is NaN or infinite (all exponent bits
 * set): an integer test the compiler vectorises, where isfinite() would not. */
static inline uint32_t nonfinite_bits(uint32_t bits) { return (bits & 0x7f800000u) == 0x7f800000u; }

/* How many of x[0, count) are NaN or infinite: checked every training step of
 * a watched model (train --doctor), so in LANES lanes of integer tests. */
static size_t count_nonfinite(const cn_backend *be, const float *x, size_t count)
{
    (void)be;
    size_t bad = 0, j = 0;
    while (j < count) {
        /* lanes of 32 bits: at most 2^16 values a block before they are added up */
        size_t end = count - j > (1u << 16) ? j + (1u << 16) : count;
        uint32_t lane[LANES] = {0};
        for (; j + LANES <= end; j += LANES)
            for (int l = 0; l < LANES; l++) {
                uint32_t bits;
                memcpy(&bits, x + j + l, sizeof bits);
                lane[l] += nonfinite_bits(bits);
            }
        for (; j < end; j++) {
            uint32_t bits;
            memcpy(&bits, x + j, sizeof bits);
            lane[0] += nonfinite_bits(bits);
        }
        for (int l = 0; l < LANES; l++)
            bad += lane[l];
    }
    return bad;
}

/* The sums of one run v[0, n) (n <= STATS_RUN): non-finite values counted
 * and left out of the sum and of the sum of squares, and the largest
 * magnitude.  LANES float partial sums folded into doubles, as in bn_chunk_sums. */
enum { STATS_RUN = 4096 };
static void stats_run(const float *restrict v, size_t n, double *sum, double *sum2, float *most,
                      size_t *bad)
{
    float a[LANES] = {0}, b[LANES] = {0}, m[LANES] = {0};
    uint32_t nb[LANES] = {0};
    size_t j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int l = 0; l < LANES; l++) {
            uint32_t bits;
            memcpy(&bits, v + j + l, sizeof bits);
            uint32_t nf = nonfinite_bits(bits);
            float x = nf ? 0.0f : v[j + l];
            a[l] += x;
            b[l] += x * x;
            m[l] = fabsf(x) > m[l] ? fabsf(x) : m[l];
            nb[l] += nf;
        }
    for (; j < n; j++) {
        uint32_t bits;
        memcpy(&bits, v + j, sizeof bits);
        uint32_t nf = nonfinite_bits(bits);
        float x = nf ? 0.0f : v[j];
        a[0] += x;
        b[0] += x * x;
        m[0] = fabsf(x) > m[0] ? fabsf(x) : m[0];
        nb[0] += nf;
    }
    for (int l = 0; l < LANES; l++) {
        *sum += a[l];
        *sum2 += b[l];
        *most = m[l] > *most ? m[l] : *most;
        *bad += nb[l];
    }
}

/* The doctor's five figures of x (rows, units, size): sum and sum of squares
 * of the finite values, the largest magnitude, the count of non-finite ones
 * and of units with no finite value above zero in any row.  cn_plain_stats
 * sums in double in another order: the figures agree to float rounding. */
static void stats(const cn_backend *be, const float *x, size_t rows, size_t units, size_t size,
                  double out[5])
{
    (void)be;
    double sum = 0.0, sum2 = 0.0;
    float most = 0.0f;
    size_t bad = 0, dead = 0, count = rows * units * size;
    for (size_t j = 0; j < count; j += STATS_RUN)
        stats_run(x + j, count - j < STATS_RUN ? count - j : STATS_RUN, &sum, &sum2, &most, &bad);
    /* a unit is alive at its first finite value above zero: most are found
     * in their first row */
    for (size_t u = 0; u < units; u++) {
        int alive = 0;
        for (size_t r = 0; r < rows && !alive; r++) {
            const float *v = x + (r * units + u) * size;
            for (size_t j = 0; j < size && !alive; j++)
                alive = v[j] > 0.0f && v[j] <= FLT_MAX;
        }
        dead += !alive;
    }
    out[0] = sum;
    out[1] = sum2;
    out[2] = most;
    out[3] = (double)bad;
    out[4] = (double)dead;
}
