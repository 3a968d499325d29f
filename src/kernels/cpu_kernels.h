/* cpu_kernels.h - the CPU kernels that are not the GEMM's register kernel,
 * and the function that puts one instruction set's kernels into the table.
 *
 * Included at the end of each kernels/cpu_<isa>.c after CN_ISA is defined, so
 * that the same C is compiled once per instruction set (the compiler
 * vectorises it for that width) and the whole set lives in one translation
 * unit.  The included files' functions are all static. */
#include "kernels/kernels.h"
#include "kernels/plain.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/parallel.h"

/* In this order: conv.c uses window.c. */
#include "kernels/window.c"

#include "kernels/elementwise.c"

#include "kernels/conv.c"

#define CN_FILL_CAT2(a, b) a##b
#define CN_FILL_CAT(a, b)  CN_FILL_CAT2(a, b)
#define CN_GEMM(suffix)    CN_FILL_CAT(CN_FILL_CAT(cn_gemm_, CN_ISA), suffix)

/* A fully connected layer's forward pass (backend.h): one sample with the
 * weights kept transposed (gemm_driver.h) where it applies, else the GEMM
 * and the bias.  Weights are kept from FC_KEEP_MIN bytes (a core's L1 data
 * cache: smaller ones come from there whatever their layout, and a copy
 * would only take memory) to FC_KEEP_MAX (beyond, a second copy of so much
 * is more memory than a pass over a few samples should cost), for layers of
 * a chunk of outputs (FC_CW) or more: a narrower one's sums run one vector
 * at a time, each waiting on the last (LeNet's fc1 cut to 16 outputs took
 * 0.9 us, 0.4 by the GEMM). */
#define FC_KEEP_MIN ((size_t)32 << 10)
#define FC_KEEP_MAX ((size_t)64 << 20)

static size_t fc_keep(const cn_backend *be, size_t m, size_t k)
{
    if (k == 0 || m < FC_CW || m > FC_KEEP_MAX / sizeof(float) / k)
        return 0;
    const cn_cpu *cpu = cn_cpu_of(be);
    return m * k * sizeof(float) > FC_KEEP_MIN ? cpu->fc_floats(m, k, cpu->threads) : 0;
}

static void fc_fwd(const cn_backend *be, size_t n, size_t m, size_t k, const float *x,
                   const float *w, const float *b, float *y, float *keep)
{
    if (keep && CN_GEMM(_fc)(be, n, m, k, x, w, b, y, keep))
        return;
    CN_GEMM()(be, 0, 1, n, m, k, 1.0f, x, k, w, k, 0.0f, y, m);
    add_bias(be, y, n, m, 1, b);
}

void CN_FILL_CAT(cn_cpu_fill_, CN_ISA)(cn_cpu *cpu)
{
    cn_backend *be = &cpu->base;
    cpu->gemm_st = CN_GEMM(_st);
    cpu->gemm_pack_a = CN_GEMM(_pack_a);
    cpu->gemm_st_pre = CN_GEMM(_st_pre);
    cpu->fc_floats = CN_GEMM(_fc_floats);
    cpu->fc_one = CN_GEMM(_fc);
    be->gemm = CN_GEMM();
    be->fc_keep = fc_keep;
    be->fc_fwd = fc_fwd;
    be->add_bias = add_bias;
    be->bias_grad = bias_grad;
    be->add = cn_plain_add;
    be->scale = cn_plain_scale;
    be->conv_ws = conv_ws;
    be->conv_keep = conv_keep;
    be->conv_fwd = conv_fwd;
    be->conv_fwd_affine = conv_fwd_affine;
    be->conv_fwd_pool = conv_fwd_pool;
    be->conv_pool_ws = conv_pool_ws;
    be->conv_bwd = conv_bwd;
    be->maxpool_fwd = maxpool_fwd;
    be->maxpool_bwd = maxpool_bwd;
    be->maxpool_fwd_sw = maxpool_fwd_sw;
    be->maxpool_bwd_sw = maxpool_bwd_sw;
    be->avgpool_fwd = cn_plain_avgpool_fwd;
    be->avgpool_bwd = cn_plain_avgpool_bwd;
    be->act_fwd = act_fwd;
    be->act_bwd = act_bwd;
    be->dropout_fwd = cn_plain_dropout_fwd;
    be->dropout_bwd = cn_plain_dropout_bwd;
    be->bn_fwd = bn_fwd;
    be->bn_bwd = bn_bwd;
    be->bn_apply = bn_apply;
    be->bn_affine = bn_affine;
    be->input_from_pixels = cn_plain_input_from_pixels;
    be->gather_pixels = cn_plain_gather_pixels;
    be->softmax = softmax;
    be->softmax_nll_bwd = softmax_nll_bwd;
    be->nll_rows = cn_plain_nll_rows;
    be->sgd = sgd;
    be->adam = adam;
    be->ema = cn_plain_ema;
    be->count_nonfinite = count_nonfinite;
    be->stats = stats;
}
