/* backend.h - the kernel table.
 *
 * Layers never call a kernel directly: they go through a cn_backend, so that
 * a faster CPU path or another device slots in here without touching layer
 * code.  Every entry works on whole batches and does its own threading.
 * The CPU backend fills the table from kernels/ at run time according to the
 * processor's features (or CONVNET_ISA=avx512|avx2|portable). */
#ifndef CN_BACKEND_H
#define CN_BACKEND_H

#include <stddef.h>
#include <stdint.h>

/* Element-wise activations; CN_ACT_NONE where a kernel may fuse one. */
typedef enum cn_act { CN_ACT_RELU, CN_ACT_SIGMOID, CN_ACT_TANH, CN_ACT_NONE } cn_act;

typedef struct cn_backend cn_backend;

/* C (m, n) = alpha * op(A) (m, k) * op(B) (k, n) + beta * C.
 * ta: A is stored transposed, (k, m) with leading dimension lda; likewise tb.
 * beta == 0 means C is not read. */
typedef void (*cn_gemm_fn)(const cn_backend *be, int ta, int tb, size_t m, size_t n, size_t k,
                           float alpha, const float *a, size_t lda, const float *b, size_t ldb,
                           float beta, float *c, size_t ldc);

/* Geometry of a 2-d window operation (convolution or pooling). */
typedef struct cn_win {
    size_t c, h, w;     /* input channels, height, width */
    size_t kh, kw;      /* window */
    size_t stride, pad; /* same in both directions; pad is zero padding */
    size_t oh, ow;      /* output height and width */
} cn_win;

/* The single-threaded GEMM, for kernels that run one per thread; pack is
 * the calling thread's packing buffer. */
typedef void (*cn_gemm_st_fn)(float *pack, int ta, int tb, size_t m, size_t n, size_t k,
                              float alpha, const float *a, size_t lda, const float *b, size_t ldb,
                              float beta, float *c, size_t ldc);

struct cn_backend {
    const char *isa; /* "avx512", "avx2", "portable" */
    int threads;
    float *pack; /* GEMM packing buffers, pack_floats per thread */
    size_t pack_floats;
    cn_gemm_fn gemm;
    cn_gemm_st_fn gemm_st;
    /* op(A) (m, k) packed once (m * k floats) for repeated products... */
    void (*gemm_pack_a)(int ta, size_t m, size_t k, const float *a, size_t lda, float *pre);
    /* ...by gemm_st with that A: a and lda are ignored when pre is given. */
    void (*gemm_st_pre)(float *pack, const float *pre, int ta, int tb, size_t m, size_t n, size_t k,
                        float alpha, const float *a, size_t lda, const float *b, size_t ldb,
                        float beta, float *c, size_t ldc);
    /* Convolution of x (n, c, h, w) with m filters w (m, c, kh, kw) and bias
     * b (m) into y (n, m, oh, ow), followed by act (CN_ACT_NONE or
     * CN_ACT_RELU).  ws: conv_ws() floats of scratch. */
    size_t (*conv_ws)(const cn_backend *be, const cn_win *g, size_t m, size_t max_batch);
    void (*conv_fwd)(const cn_backend *be, const cn_win *g, size_t m, const float *x, size_t n,
                     const float *w, const float *b, float *y, float *ws, cn_act act);
    /* Adds the gradients of w and b to dw and db, and writes dx (n, c, h, w)
     * unless it is NULL.  dy is the gradient of the layer's output y (after
     * act, which backward undoes from y). */
    void (*conv_bwd)(const cn_backend *be, const cn_win *g, size_t m, const float *x,
                     const float *y, const float *dy, size_t n, const float *w, float *dw,
                     float *db, float *dx, float *ws, cn_act act);
    /* y (n, m, p) += bias (m). */
    void (*add_bias)(const cn_backend *be, float *y, size_t n, size_t m, size_t p,
                     const float *bias);
    /* db (m) += sum over n and p of dy (n, m, p). */
    void (*bias_grad)(const cn_backend *be, const float *dy, size_t n, size_t m, size_t p,
                      float *db);
    /* Max pooling of x (n, c, h, w) into y (n, c, oh, ow); no padding. */
    void (*maxpool_fwd)(const cn_backend *be, const cn_win *g, const float *x, size_t n, float *y);
    /* dx (overwritten) gets dy at the first maximum of each window. */
    void (*maxpool_bwd)(const cn_backend *be, const cn_win *g, const float *x, const float *dy,
                        size_t n, float *dx);
    void (*act_fwd)(const cn_backend *be, cn_act a, const float *x, float *y, size_t count);
    /* dx = dy * f'(x), written in terms of the output y. */
    void (*act_bwd)(const cn_backend *be, cn_act a, const float *y, const float *dy, float *dx,
                    size_t count);
    /* Row-wise softmax of x (rows, cols), computed stably. */
    void (*softmax)(const cn_backend *be, const float *x, float *y, size_t rows, size_t cols);
    /* Batch normalisation of x (n, c, hw) per channel: with train, the
     * batch's mean and variance (kept in save_mean and save_invstd for
     * backward; the running ones move by momentum), otherwise the running
     * ones; then y = gamma (x - mean) / sqrt(var + eps) + beta.  scratch: 2c
     * doubles. */
    void (*bn_fwd)(const cn_backend *be, const float *x, size_t n, size_t c, size_t hw,
                   const float *gamma, const float *beta, float *run_mean, float *run_var,
                   float momentum, float eps, int train, float *save_mean, float *save_invstd,
                   double *scratch, float *y);
    /* Adds the gradients of gamma and beta; writes dx unless it is NULL. */
    void (*bn_bwd)(const cn_backend *be, const float *x, const float *dy, size_t n, size_t c,
                   size_t hw, const float *gamma, const float *save_mean, const float *save_invstd,
                   double *scratch, float *dgamma, float *dbeta, float *dx);
    /* The lecture's SGD step over n parameters:
     * m = mu m + (1 - mu) g;  theta -= lr (m + lambda theta). */
    void (*sgd)(const cn_backend *be, size_t n, float *theta, const float *g, float *m, float lr,
                float mu, float lambda);
    /* Adam: m = b1 m + (1 - b1) g', v = b2 v + (1 - b2) g'^2 with g' = g +
     * l2 theta; theta -= lr (c1 m / (sqrt(c2 v) + eps) + wd theta), c1 and c2
     * the bias corrections 1 / (1 - b^t). */
    void (*adam)(const cn_backend *be, size_t n, float *theta, const float *g, float *m, float *v,
                 const float hyper[8]);
    /* Gradient of the mean negative log-likelihood with respect to the
     * softmax input: dx = (y - onehot(labels)) / rows. */
    void (*softmax_nll_bwd)(const cn_backend *be, const float *y, const int32_t *labels,
                            size_t rows, size_t cols, float *dx);
};

/* Fills be for the CPU with threads threads (0: one per core); isa forces a
 * kernel set ("avx512", "avx2", "portable") or NULL picks the best the CPU
 * has (overridden by the environment variable CONVNET_ISA).  Returns 0 on
 * success, -1 if isa names a kernel set this CPU or build cannot run, -2
 * when memory runs out. */
int cn_backend_cpu_init(cn_backend *be, int threads, const char *isa);
void cn_backend_free(cn_backend *be);

#endif
