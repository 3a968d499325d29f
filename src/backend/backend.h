/* backend.h - the device seam.
 *
 * A backend owns the memory of every tensor a network uses and does every
 * operation on it.  Above this table (the network, the layers, training,
 * model files, gradient checks) tensor memory is only ever named, never
 * read or written: pointers into it are handles that may live on another
 * device.  They may be offset (a view of a block is p + offset) and passed
 * to the operations below, nothing else.  Data comes in and goes out through
 * upload and download.
 *
 * Every operation works on whole batches, does its own threading, and
 * cannot fail: what could go wrong was checked when the network was built.
 * Operations run in order; download waits for those before it, and sync
 * waits for all.  The CPU backend (backend/cpu.c) fills the table from
 * kernels/ according to the processor's features; its threads and buffers
 * are its own (backend/cpu.h). */
#ifndef CN_BACKEND_H
#define CN_BACKEND_H

#include "augment.h"
#include "convnet.h"

#include <stddef.h>
#include <stdint.h>

/* Element-wise activations.  CN_ACT_NONE is the identity (a convolution
 * with no activation fused into it). */
typedef enum cn_act {
    CN_ACT_NONE = 0,
    CN_ACT_RELU,    /* max(0, x) */
    CN_ACT_SIGMOID, /* 1 / (1 + e^-x) */
    CN_ACT_TANH,    /* tanh x */
    CN_ACT_LEAKY,   /* x > 0 ? x : param x (param > 0) */
    CN_ACT_GELU,    /* x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), PyTorch's 'tanh' */
    CN_ACT_SILU,    /* x / (1 + e^-x) */
    CN_ACT_COUNT
} cn_act;

/* Whether act's derivative needs its input (GELU, SiLU) rather than only its
 * output. */
static inline int cn_act_needs_input(cn_act a) { return a == CN_ACT_GELU || a == CN_ACT_SILU; }

/* Geometry of a 2-d window operation (convolution or pooling). */
typedef struct cn_win {
    size_t c, h, w;     /* input channels, height, width */
    size_t kh, kw;      /* window */
    size_t stride, pad; /* same in both directions; pad is zero padding */
    size_t oh, ow;      /* output height and width */
} cn_win;

/* Batch normalisation's scratch for c channels, in doubles: the sums of
 * up to CN_BN_CHUNKS chunks of samples and their total. */
#define CN_BN_CHUNKS     16
#define CN_BN_SCRATCH(c) (2 * (size_t)(c) * (1 + CN_BN_CHUNKS))

/* cn_backend's bwd_in_place bits.  CN_BWD_BN: bn_bwd's dx may be dy.
 * CN_BWD_POOL: maxpool_bwd's dx may be x when no two windows overlap
 * (stride >= kh and stride >= kw), and it takes CN_ACT_RELU. */
#define CN_BWD_BN   1u
#define CN_BWD_POOL 2u

/* maxpool_fwd_sw's switches: the winner's index in its window (below
 * CN_SW_ON), with CN_SW_ON set when the window's maximum is above 0. */
#define CN_SW_ON  0x80u
#define CN_SW_MAX 128u /* the most inputs a window with switches holds */

typedef struct cn_backend cn_backend;

struct cn_backend {
    const char *name;    /* "cpu", "guard", "cuda" */
    const char *kernels; /* the kernel set in use: "avx512", "avx2", "portable", "cuda" */
    /* 1 when the host may read and write the backend's memory directly (the
     * CPU's): a data exchange (cn_comm) then needs no staging copy. */
    int host_memory;
    /* The activations that conv_fwd and conv_bwd can apply themselves: bit
     * (1u << a) for cn_act a.  The network fuses an activation layer into
     * the convolution before it when it is listed here. */
    unsigned conv_acts;
    /* The same for bn_fwd and bn_bwd: a relu after a batch normalisation. */
    unsigned bn_acts;
    /* The backward operations that may write their result over an input
     * (CN_BWD_* bits): the network then plans less memory for gradients. */
    unsigned bwd_in_place;
    /* 1 where the convolutions must use their most exactly rounded
     * algorithm (the direct sum), not a faster one that rounds more
     * coarsely (Winograd's F(4x4, 3x3) on AVX-512): set by the gradient
     * checks while they run.  The memory planned covers both. */
    int exact;

    /* ------------------------------------------------------------ memory */

    /* bytes of zeroed memory aligned for any kernel, or NULL when there is
     * not enough.  Released with free (NULL is a no-op). */
    void *(*alloc)(cn_backend *be, size_t bytes);
    void (*free)(cn_backend *be, void *p);
    /* Host memory src into backend memory dst, and back. */
    void (*upload)(const cn_backend *be, void *dst, const void *src, size_t bytes);
    void (*download)(const cn_backend *be, void *dst, const void *src, size_t bytes);
    /* Backend memory to backend memory (the two do not overlap). */
    void (*copy)(const cn_backend *be, void *dst, const void *src, size_t bytes);
    /* x[0, count) = value. */
    void (*fill)(const cn_backend *be, float *x, float value, size_t count);
    /* Waits until every operation so far is done. */
    void (*sync)(const cn_backend *be);
    /* Releases the backend itself (its memory must have been freed). */
    void (*destroy)(cn_backend *be);
    /* NULL where nothing can go wrong after creation (the CPU).  A device
     * that runs the operations asynchronously (CUDA) may find a fault only
     * later: this returns CN_OK, or the first such error since the backend
     * was made, with its message (cn_last_error), and the backend's results
     * since then are not to be trusted.  Training asks after every step. */
    cn_status (*status)(const cn_backend *be);
    /* NULL where the memory is the host's (the CPU's).  Otherwise the bytes
     * the device has in all (*total) and free now (*avail), and the most
     * that this backend has held at once (*peak); any may be NULL.  The
     * network's memory plan is checked against *avail. */
    void (*memory)(const cn_backend *be, size_t *total, size_t *avail, size_t *peak);
    /* Bytes the backend holds for itself while it lives, in its own memory
     * (the CPU's GEMM packing buffers, one per thread; the GPU's reduction
     * results and cuDNN's workspace, as large as the networks built so far
     * need): what the planner (src/plan.c) adds to a network's blocks. */
    size_t own_bytes;
    /* Workers that can each run operations alone at the same time (the
     * CPU's threads), or NULL each_worker where the backend has no such
     * thing (a GPU; the guard, whose memory opens for one operation at a
     * time).  each_worker calls fn(user, w, one) for every w < workers at
     * once and returns when all have: one is worker w's own backend, whose
     * operations run on that worker alone (the CPU: on its thread, using
     * its thread's share of the buffers that the backend cuts per thread,
     * the scratch its callers give it excepted: each worker needs its own).
     * A forward-only network runs a large batch as chunks of samples, each
     * through every layer, a run of chunks per worker (net.c). */
    size_t workers;
    void (*each_worker)(const cn_backend *be,
                        void (*fn)(void *user, size_t w, const cn_backend *one), void *user);
    /* The backend on the calling thread alone (the CPU's first worker), for
     * work too small to split: the same results, as every kernel sums an
     * output the same way on any number of threads.  NULL where each_worker
     * is. */
    const cn_backend *alone;
    /* For a pass over fewer samples than workers (one image on 2 threads):
     * runs fn(user, lead) on the calling thread while the other workers wait
     * for work, spinning.  The operations called with lead that split one
     * sample's work (a convolution's filters, a fully connected layer's
     * outputs) hand each waiting worker its share through memory and wait
     * for them all, at the cost of a cache line each way instead of waking
     * threads for every operation; the rest run on the calling thread.  The
     * results are those of be's own operations.  NULL where each_worker is. */
    void (*team)(const cn_backend *be, void (*fn)(void *user, const cn_backend *lead), void *user);

    /* ---------------------------------------------------- linear algebra */

    /* C (m, n) = alpha * op(A) (m, k) * op(B) (k, n) + beta * C.
     * ta: A is stored transposed, (k, m) with leading dimension lda; likewise
     * tb.  beta == 0 means C is not read. */
    void (*gemm)(const cn_backend *be, int ta, int tb, size_t m, size_t n, size_t k, float alpha,
                 const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
                 size_t ldc);
    /* Floats that fc_fwd may keep between the passes of a forward-only
     * network (its keep argument) for weights of m x k: the weights in the
     * form its kernel for one sample reads; 0 where it keeps nothing.
     * NULL: nothing, ever. */
    size_t (*fc_keep)(const cn_backend *be, size_t m, size_t k);
    /* A fully connected layer's forward pass, y (n, m) = x (n, k) w^T + b
     * with w (m, k) and b (m): the bits of gemm (0, 1, ...) and then
     * add_bias.  keep: NULL, or fc_keep() floats kept as conv_fwd's keep
     * is (made when its first float is not 1; the caller sets that float to
     * 0 whenever w may have changed).  NULL where the backend has none (the
     * layer then calls gemm and add_bias). */
    void (*fc_fwd)(const cn_backend *be, size_t n, size_t m, size_t k, const float *x,
                   const float *w, const float *b, float *y, float *keep);
    /* y (n, m, p) += bias (m). */
    void (*add_bias)(const cn_backend *be, float *y, size_t n, size_t m, size_t p,
                     const float *bias);
    /* db (m) += sum over n and p of dy (n, m, p). */
    void (*bias_grad)(const cn_backend *be, const float *dy, size_t n, size_t m, size_t p,
                      float *db);
    /* y = a + b over count values; y may be a or b. */
    void (*add)(const cn_backend *be, const float *a, const float *b, float *y, size_t count);
    /* x *= alpha over count values. */
    void (*scale)(const cn_backend *be, float *x, float alpha, size_t count);

    /* ------------------------------------------------------- convolution */

    /* Scratch floats that conv_fwd and conv_bwd need for this geometry and
     * batches of up to max_batch (asked when the network is planned). */
    size_t (*conv_ws)(const cn_backend *be, const cn_win *g, size_t m, size_t max_batch);
    /* Floats that conv_fwd and conv_fwd_affine may keep between the passes
     * of a forward-only network (its keep argument): the filters in the form
     * the kernels read, made once instead of at every pass; 0 when they
     * keep nothing for this geometry.  NULL: nothing, ever. */
    size_t (*conv_keep)(const cn_backend *be, const cn_win *g, size_t m);
    /* Convolution of x (n, c, h, w) with m filters w (m, c, kh, kw) and bias
     * b (m) into y (n, m, oh, ow), followed by act (CN_ACT_NONE or one of
     * conv_acts).  ws: conv_ws() floats of scratch.  keep: NULL, or
     * conv_keep() floats that belong to this layer alone, zero at first and
     * left untouched by everything else: the operation makes the filters'
     * form there when the area's first float is not 1, sets it to 1, and
     * otherwise takes the form as it is.  The caller sets that float to 0
     * whenever w may have changed (the network: cn_net_weights_changed,
     * from every place that writes its weights). */
    void (*conv_fwd)(const cn_backend *be, const cn_win *g, size_t m, const float *x, size_t n,
                     const float *w, const float *b, float *y, float *ws, float *keep, cn_act act);
    /* conv_fwd with y = y scale[f] + shift[f] per filter f after the bias
     * and before act: an evaluation's batch normalisation folded in, the
     * same bits as bn_fwd after conv_fwd (scale and shift from bn_affine).
     * NULL where the backend has none (the network then keeps the two
     * apart). */
    void (*conv_fwd_affine)(const cn_backend *be, const cn_win *g, size_t m, const float *x,
                            size_t n, const float *w, const float *b, const float *scale,
                            const float *shift, float *y, float *ws, float *keep, cn_act act);
    /* conv_fwd_affine (scale NULL: conv_fwd) straight into max pooling over
     * pool's windows (pool->c, h and w are the convolution's m, oh and ow;
     * no padding), y (n, m, pool->oh, pool->ow): the bits of maxpool_fwd
     * after the convolution, whose full output is only ever in scratch, a
     * few samples at a time (a forward-only network's pooling after a
     * convolution, which then neither writes nor reads it back).  ws:
     * conv_ws() + conv_pool_ws() floats.  NULL where the backend has none
     * (the network then keeps the two apart). */
    void (*conv_fwd_pool)(const cn_backend *be, const cn_win *g, size_t m, const float *x, size_t n,
                          const float *w, const float *b, const float *scale, const float *shift,
                          const cn_win *pool, float *y, float *ws, float *keep, cn_act act);
    /* The scratch floats conv_fwd_pool needs beyond conv_ws's. */
    size_t (*conv_pool_ws)(const cn_backend *be, const cn_win *g, size_t m);
    /* Adds the gradients of w and b to dw and db, and writes dx (n, c, h, w)
     * unless it is NULL.  dy is the gradient of the layer's output y (after
     * act, which backward undoes from y). */
    void (*conv_bwd)(const cn_backend *be, const cn_win *g, size_t m, const float *x,
                     const float *y, const float *dy, size_t n, const float *w, float *dw,
                     float *db, float *dx, float *ws, cn_act act);

    /* ----------------------------------------------------------- pooling */

    /* Max pooling of x (n, c, h, w) into y (n, c, oh, ow); no padding. */
    void (*maxpool_fwd)(const cn_backend *be, const cn_win *g, const float *x, size_t n, float *y);
    /* dx (overwritten) gets dy at the first maximum of each window; dx may
     * be x where bwd_in_place has CN_BWD_POOL and no windows overlap.  act:
     * CN_ACT_NONE, or CN_ACT_RELU (where bwd_in_place has CN_BWD_POOL) when
     * x is a relu's output whose gradient this pass applies too: a window
     * whose maximum is not above 0 passes no gradient on. */
    void (*maxpool_bwd)(const cn_backend *be, const cn_win *g, const float *x, const float *dy,
                        size_t n, float *dx, cn_act act);
    /* Max pooling that notes which input wins each window, for windows
     * that do not overlap and hold at most 128 inputs (the layer checks,
     * pool_switches): y as maxpool_fwd, the same bits, and sw (a byte per
     * output) the first maximum's index in its window in row-major order,
     * plus CN_SW_ON when that maximum is above 0.  NULL where the backend
     * has none (backward then reads x). */
    void (*maxpool_fwd_sw)(const cn_backend *be, const cn_win *g, const float *x, size_t n,
                           float *y, uint8_t *sw);
    /* maxpool_bwd from maxpool_fwd_sw's switches instead of x: the same
     * dx, every input written (dx may be where x was). */
    void (*maxpool_bwd_sw)(const cn_backend *be, const cn_win *g, const uint8_t *sw,
                           const float *dy, size_t n, float *dx, cn_act act);
    /* Average pooling; backward overwrites dx with dy / (kh kw) spread over
     * each window (summed where windows overlap). */
    void (*avgpool_fwd)(const cn_backend *be, const cn_win *g, const float *x, size_t n, float *y);
    void (*avgpool_bwd)(const cn_backend *be, const cn_win *g, const float *dy, size_t n,
                        float *dx);

    /* -------------------------------------------------------- element-wise */

    /* y = f(x) over count values (y may be x); param: leaky relu's slope. */
    void (*act_fwd)(const cn_backend *be, cn_act a, float param, const float *x, float *y,
                    size_t count);
    /* dx = dy * f'(x), from the output y, or from the input x where
     * cn_act_needs_input(a) (x is not read otherwise and may be NULL). */
    void (*act_bwd)(const cn_backend *be, cn_act a, float param, const float *x, const float *y,
                    const float *dy, float *dx, size_t count);
    /* Inverted dropout of count values: each kept with probability 1 - rate
     * and scaled by 1 / (1 - rate), or zeroed.  Whether value i is kept is
     * cn_counter_uniform(key, first + i) >= rate (counter_rng.h): the same
     * bits on every device, in forward and backward alike, and for a sample
     * whichever worker of a data-parallel run has it (first counts the
     * values of the samples before this pass's in the global batch). */
    void (*dropout_fwd)(const cn_backend *be, const float *x, float *y, size_t count, float rate,
                        uint64_t key, uint64_t first);
    void (*dropout_bwd)(const cn_backend *be, const float *dy, float *dx, size_t count, float rate,
                        uint64_t key, uint64_t first);
    /* Batch normalisation of x (n, c, hw) per channel: with train, the
     * batch's mean and variance (kept in save_mean and save_invstd for
     * backward; the running ones move by momentum), otherwise the running
     * ones; then y = gamma (x - mean) / sqrt(var + eps) + beta, and act
     * applied to it (one that bn_acts lists, or CN_ACT_NONE).  scratch:
     * CN_BN_SCRATCH(c) doubles (the CPU sums a batch in chunks of samples). */
    void (*bn_fwd)(const cn_backend *be, const float *x, size_t n, size_t c, size_t hw,
                   const float *gamma, const float *beta, float *run_mean, float *run_var,
                   float momentum, float eps, int train, float *save_mean, float *save_invstd,
                   double *scratch, float *y, cn_act act);
    /* Evaluation's batch normalisation of c channels as an affine map,
     * y = x scale + shift, from the running statistics, as bn_fwd applies
     * it (for conv_fwd_affine); NULL where conv_fwd_affine is. */
    void (*bn_affine)(const cn_backend *be, const float *gamma, const float *beta,
                      const float *run_mean, const float *run_var, float eps, size_t c,
                      float *scale, float *shift);
    /* bn_fwd's training pass made again without its statistics: x
     * normalised by the batch's mean and 1/std that bn_fwd kept, then act,
     * the same bits as bn_fwd wrote (a training network makes such outputs
     * again in backward instead of keeping them: net.c, place_training).
     * NULL where the backend cannot: the outputs are kept. */
    void (*bn_apply)(const cn_backend *be, const float *x, size_t n, size_t c, size_t hw,
                     const float *gamma, const float *beta, const float *save_mean,
                     const float *save_invstd, float *y, cn_act act);
    /* Adds the gradients of gamma and beta; writes dx unless it is NULL.
     * With act (as bn_fwd's), dy is the gradient after it and y bn_fwd's
     * output (for the relu: dy counts where y > 0); otherwise y is not read.
     * scratch: CN_BN_SCRATCH(c) doubles.  dx may be dy where bwd_in_place
     * has CN_BWD_BN. */
    void (*bn_bwd)(const cn_backend *be, const float *x, const float *y, const float *dy, size_t n,
                   size_t c, size_t hw, const float *gamma, const float *save_mean,
                   const float *save_invstd, double *scratch, float *dgamma, float *dbeta,
                   float *dx, cn_act act);

    /* ------------------------------------------------------ input and loss */

    /* x (n, c, hw) = (pix / 255 - mean[c]) / std[c] for 8-bit pixels pix
     * (n, c, hw); norm holds the c means, then the c standard deviations. */
    void (*input_from_pixels)(const cn_backend *be, const uint8_t *pix, size_t n, size_t c,
                              size_t hw, const float *norm, float *x);
    /* A training batch from a data set already in the backend's memory, so
     * that only the indices travel each step: pix (n, s) = the samples
     * idx[0, n) of data (N, s), each augmented as cn_augment (train.c)
     * augments it (augment.h's draws and pixels, with cn_step_seed(seed,
     * first + i)), then x = input_from_pixels(pix).  The same bits as
     * gathering, augmenting and preparing on the host.  idx is backend
     * memory too. */
    void (*gather_pixels)(const cn_backend *be, const uint8_t *data, const uint32_t *idx, size_t n,
                          cn_shape s, cn_aug aug, uint64_t seed, uint64_t first, const float *norm,
                          uint8_t *pix, float *x);
    /* Row-wise softmax of x (rows, cols), computed stably. */
    void (*softmax)(const cn_backend *be, const float *x, float *y, size_t rows, size_t cols);
    /* Gradient of the mean cross-entropy against the smoothed target q =
     * (1 - smooth) onehot(labels) + smooth / cols with respect to the
     * softmax input: dx = (y - q) / rows, computed as y / rows - (smooth /
     * cols) / rows, less (1 - smooth) / rows at the label (smooth = 0: the
     * negative log-likelihood's (y - onehot) / rows, the same bits). */
    void (*softmax_nll_bwd)(const cn_backend *be, const float *y, const int32_t *labels,
                            size_t rows, size_t cols, float smooth, float *dx);
    /* Per row r of the logits z (rows, cols) and their softmax y: loss[r] =
     * sum_j q_j (lse - z[r][j]) with lse = log sum_j e^z[r][j] and q the
     * smoothed target above, that is lse - (1 - smooth) z[r][labels[r]] -
     * (smooth / cols) sum_j z[r][j] (in double, stably; smooth = 0: lse -
     * z[r][labels[r]], the negative log-likelihood); best[r] the first
     * column of the largest y[r] and best_p[r] that y.  best and best_p may
     * be NULL. */
    void (*nll_rows)(const cn_backend *be, const float *z, const float *y, const int32_t *labels,
                     size_t rows, size_t cols, float smooth, double *loss, int32_t *best,
                     float *best_p);

    /* --------------------------------------------------------- optimizers */

    /* The lecture's SGD step over n parameters:
     * m = mu m + (1 - mu) g;  theta -= lr (m + lambda theta). */
    void (*sgd)(const cn_backend *be, size_t n, float *theta, const float *g, float *m, float lr,
                float mu, float lambda);
    /* Adam: m = b1 m + (1 - b1) g', v = b2 v + (1 - b2) g'^2 with g' = g +
     * l2 theta; theta -= lr (c1 m / (sqrt(c2 v) + eps) + wd theta), c1 and c2
     * the bias corrections 1 / (1 - b^t).  hyper: lr, b1, b2, eps, l2, wd,
     * c1, c2. */
    void (*adam)(const cn_backend *be, size_t n, float *theta, const float *g, float *m, float *v,
                 const float hyper[8]);
    /* The exponential moving average of count values: avg = keep avg +
     * (1 - keep) x, with 1 - keep rounded to a float first and each product
     * and the sum rounded once (no fused multiply-add): the same bits on
     * every device. */
    void (*ema)(const cn_backend *be, float *avg, const float *x, size_t count, float keep);
    /* How many of x[0, count) are NaN or infinite (a result on the host). */
    size_t (*count_nonfinite)(const cn_backend *be, const float *x, size_t count);
    /* Figures of x (rows, units, size) for the doctor, on the host in out:
     * [0] the sum and [1] the sum of squares of the finite values, [2] their
     * largest |x|, [3] how many values are NaN or infinite, [4] how many
     * units hold no value above 0 in any row (a channel of a layer's output,
     * size its positions, that no sample of the batch activates). */
    void (*stats)(const cn_backend *be, const float *x, size_t rows, size_t units, size_t size,
                  double out[5]);
};

/* The backend that dev names (NULL: the CPU with one thread per core).
 * dev->threads of 0 is resolved to the number it chose, in *resolved.
 * Errors: CN_ERR_ARG (an unknown backend, or a kernel set this processor
 * cannot run), CN_ERR_NOMEM. */
cn_status cn_backend_create(const cn_device *dev, cn_device *resolved, cn_backend **out);
/* NULL is a no-op. */
void cn_backend_destroy(cn_backend *be);

/* A stand-in for the backend called name ("cuda") where the real one cannot
 * start (no GPU here, a build without CUDA), for planning a network's
 * memory only (cn_net_layout): its name, host_memory, conv_acts, own_bytes
 * and conv_ws as far as they are known without the device, a free that
 * does nothing, and no operations.  *exact is 0 when some of the scratch
 * sizes are not known (cuDNN's workspace is chosen on the device): they
 * then count what is known.  NULL for a name without a stand-in, or when
 * memory runs out; released with cn_backend_destroy. */
cn_backend *cn_backend_standin(const char *name, int *exact);

#endif
