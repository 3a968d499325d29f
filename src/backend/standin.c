/* standin.c - backends that only plan: the tables the planner (src/plan.c)
 * builds a network's layout with when the real backend cannot start here,
 * a GPU's on a machine without one.  They run nothing. */
#include "backend/cuda.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static void standin_free(cn_backend *be, void *p)
{
    (void)be;
    (void)p; /* a layout allocates nothing */
}

static void standin_destroy(cn_backend *be) { free(be); }

/* The CUDA backend's scratch (backend/cuda.cu, cu_conv_ws) is cuDNN's
 * workspace, which cuDNN's heuristics choose on the device, then the
 * gradient before the fused activation, (m, oh, ow) for up to a chunk of
 * samples (cn_cuda_conv_chunk) but no more than max_batch: only the
 * second is known here. */
static size_t cuda_conv_ws(const cn_backend *be, const cn_win *g, size_t m, size_t max_batch)
{
    (void)be;
    size_t n = max_batch ? max_batch : 1, chunk = cn_cuda_conv_chunk(g, m);
    return cn_mul(cn_mul(n < chunk ? n : chunk, m), g->oh * g->ow);
}

cn_backend *cn_backend_standin(const char *name, int *exact)
{
    *exact = 0;
    if (!name || strcmp(name, "cuda") != 0)
        return NULL;
    cn_backend *be = calloc(1, sizeof *be);
    if (!be)
        return NULL;
    be->name = "cuda";
    be->kernels = "cuda";
    be->host_memory = 0;
    be->conv_acts = 1u << CN_ACT_RELU; /* as backend/cuda.cu's */
    be->bn_acts = 0;
    be->bwd_in_place = 0; /* as backend/cuda.cu's */
    be->own_bytes = CN_CUDA_OWN_BYTES;
    be->free = standin_free;
    be->destroy = standin_destroy;
    be->conv_ws = cuda_conv_ws;
    return be;
}
