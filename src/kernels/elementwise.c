/* elementwise.c - activations, softmax and bias.  Part of the CPU kernels
 * compiled once per instruction set (kernels/cpu_kernels.h). */

/* Below this many elements a loop is not worth waking the threads for. */
#define PAR_MIN 32768

static void act_fwd(const cn_backend *be, cn_act a, const float *x, float *y, size_t count)
{
    long n = (long)count;
    switch (a) {
    case CN_ACT_RELU:
#pragma omp parallel for simd num_threads(be->threads) schedule(static) if (n > PAR_MIN)
        for (long i = 0; i < n; i++) {
            float v = x[i];
            y[i] = v > 0.0f ? v : 0.0f;
        }
        break;
    case CN_ACT_SIGMOID:
#pragma omp parallel for num_threads(be->threads) schedule(static) if (n > PAR_MIN / 8)
        for (long i = 0; i < n; i++)
            y[i] = 1.0f / (1.0f + expf(-x[i]));
        break;
    case CN_ACT_TANH:
#pragma omp parallel for num_threads(be->threads) schedule(static) if (n > PAR_MIN / 8)
        for (long i = 0; i < n; i++)
            y[i] = tanhf(x[i]);
        break;
    case CN_ACT_NONE:
        if (x != y)
            memcpy(y, x, count * sizeof(float));
        break;
    }
}

static void act_bwd(const cn_backend *be, cn_act a, const float *y, const float *dy, float *dx,
                    size_t count)
{
    long n = (long)count;
    switch (a) {
    case CN_ACT_RELU:
#pragma omp parallel for simd num_threads(be->threads) schedule(static) if (n > PAR_MIN)
        for (long i = 0; i < n; i++) {
            float d = dy[i]; /* loaded unconditionally, so that this is a vector blend */
            dx[i] = y[i] > 0.0f ? d : 0.0f;
        }
        break;
    case CN_ACT_SIGMOID:
#pragma omp parallel for simd num_threads(be->threads) schedule(static) if (n > PAR_MIN)
        for (long i = 0; i < n; i++)
            dx[i] = dy[i] * y[i] * (1.0f - y[i]);
        break;
    case CN_ACT_TANH:
#pragma omp parallel for simd num_threads(be->threads) schedule(static) if (n > PAR_MIN)
        for (long i = 0; i < n; i++)
            dx[i] = dy[i] * (1.0f - y[i] * y[i]);
        break;
    case CN_ACT_NONE:
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
    long blocks = (long)(n * m);
#pragma omp parallel for num_threads(be->threads) schedule(static) if (blocks * (long)p > PAR_MIN)
    for (long t = 0; t < blocks; t++) {
        float *row = y + (size_t)t * p, bv = bias[(size_t)t % m];
        for (size_t j = 0; j < p; j++)
            row[j] += bv;
    }
}

static void bias_grad(const cn_backend *be, const float *dy, size_t n, size_t m, size_t p,
                      float *db)
{
#pragma omp parallel for num_threads(be->threads) schedule(static) if (n * m * p > PAR_MIN)
    for (long c = 0; c < (long)m; c++) {
        float sum = 0.0f;
        for (size_t s = 0; s < n; s++) {
            const float *row = dy + (s * m + (size_t)c) * p;
            for (size_t j = 0; j < p; j++)
                sum += row[j];
        }
        db[c] += sum;
    }
}

static void softmax_nll_bwd(const cn_backend *be, const float *y, const int32_t *labels,
                            size_t rows, size_t cols, float *dx)
{
    (void)be;
    float inv = 1.0f / (float)rows;
    for (size_t r = 0; r < rows; r++) {
        for (size_t j = 0; j < cols; j++)
            dx[r * cols + j] = y[r * cols + j] * inv;
        dx[r * cols + (size_t)labels[r]] -= inv;
    }
}

static void sgd(const cn_backend *be, size_t n, float *theta, const float *g, float *m, float lr,
                float mu, float lambda)
{
    float one_mu = 1.0f - mu;
    long count = (long)n;
#pragma omp parallel for simd num_threads(be->threads) schedule(static) if (count > PAR_MIN)
    for (long i = 0; i < count; i++) {
        m[i] = mu * m[i] + one_mu * g[i];
        theta[i] -= lr * (m[i] + lambda * theta[i]);
    }
}

static void bn_fwd(const cn_backend *be, const float *x, size_t n, size_t c, size_t hw,
                   const float *gamma, const float *beta, float *run_mean, float *run_var,
                   float momentum, float eps, int train, float *save_mean, float *save_invstd,
                   float *y)
{
    size_t count = n * hw;
#pragma omp parallel for num_threads(be->threads) schedule(static) if (n * c * hw > PAR_MIN)
    for (long ch = 0; ch < (long)c; ch++) {
        float mean, invstd;
        if (train) {
            /* Two passes in double: the mean, then the spread around it. */
            double s = 0, s2 = 0;
            for (size_t i = 0; i < n; i++) {
                const float *row = x + (i * c + (size_t)ch) * hw;
                for (size_t j = 0; j < hw; j++)
                    s += row[j];
            }
            double m = s / (double)count;
            for (size_t i = 0; i < n; i++) {
                const float *row = x + (i * c + (size_t)ch) * hw;
                for (size_t j = 0; j < hw; j++)
                    s2 += (row[j] - m) * (row[j] - m);
            }
            double var = s2 / (double)count;
            mean = (float)m;
            invstd = (float)(1.0 / sqrt(var + eps));
            save_mean[ch] = mean;
            save_invstd[ch] = invstd;
            /* The running variance is unbiased, as PyTorch keeps it. */
            double unbiased = count > 1 ? var * (double)count / (double)(count - 1) : var;
            run_mean[ch] = (float)((1 - momentum) * run_mean[ch] + momentum * m);
            run_var[ch] = (float)((1 - momentum) * run_var[ch] + momentum * unbiased);
        } else {
            mean = run_mean[ch];
            invstd = (float)(1.0 / sqrt((double)run_var[ch] + eps));
        }
        float scale = gamma[ch] * invstd, shift = beta[ch] - mean * scale;
        for (size_t i = 0; i < n; i++) {
            const float *in = x + (i * c + (size_t)ch) * hw;
            float *out = y + (i * c + (size_t)ch) * hw;
            for (size_t j = 0; j < hw; j++)
                out[j] = in[j] * scale + shift;
        }
    }
}

static void bn_bwd(const cn_backend *be, const float *x, const float *dy, size_t n, size_t c,
                   size_t hw, const float *gamma, const float *save_mean, const float *save_invstd,
                   float *dgamma, float *dbeta, float *dx)
{
    double count = (double)(n * hw);
#pragma omp parallel for num_threads(be->threads) schedule(static) if (n * c * hw > PAR_MIN)
    for (long ch = 0; ch < (long)c; ch++) {
        float mean = save_mean[ch], invstd = save_invstd[ch];
        double sd = 0, sdx = 0; /* sum of dy and of dy * xhat */
        for (size_t i = 0; i < n; i++) {
            const float *in = x + (i * c + (size_t)ch) * hw, *d = dy + (i * c + (size_t)ch) * hw;
            for (size_t j = 0; j < hw; j++) {
                sd += d[j];
                sdx += d[j] * (in[j] - mean);
            }
        }
        sdx *= invstd;
        dbeta[ch] += (float)sd;
        dgamma[ch] += (float)sdx;
        if (!dx)
            continue;
        /* dx = gamma invstd (dy - mean(dy) - xhat mean(dy xhat)) */
        float k = gamma[ch] * invstd, md = (float)(sd / count), mdx = (float)(sdx / count);
        for (size_t i = 0; i < n; i++) {
            const float *in = x + (i * c + (size_t)ch) * hw, *d = dy + (i * c + (size_t)ch) * hw;
            float *out = dx + (i * c + (size_t)ch) * hw;
            for (size_t j = 0; j < hw; j++)
                out[j] = k * (d[j] - md - (in[j] - mean) * invstd * mdx);
        }
    }
}
