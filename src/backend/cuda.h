/* cuda.h - the CUDA backend's entry point for the registry (backend/cpu.c).
 *
 * backend/cuda.cu defines it in a build with CUDA=1 (NVIDIA's runtime,
 * cuBLAS and cuDNN); backend/nocuda.c otherwise, where it fails with the
 * message that says how to get one.  Plain C: the registry and the CUDA
 * file both include it. */
#ifndef CN_BACKEND_CUDA_H
#define CN_BACKEND_CUDA_H

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The backend of GPU index (cuda:INDEX), in *out.  Errors: CN_ERR_ARG (a
 * build without CUDA, no GPU or no driver on this machine, no GPU of that
 * index), CN_ERR_NOMEM (the GPU's memory or the host's ran out while
 * starting). */
cn_status cn_cuda_create(int index, cn_backend **out);

/* What the CUDA backend holds for itself (its own_bytes): the reductions'
 * partial sums, STAT_BLOCKS (256) * 5 + 5 doubles, and a counter. */
#define CN_CUDA_OWN_BYTES ((5 * 256 + 5) * sizeof(double) + sizeof(unsigned long long))

#ifdef __cplusplus
}
#endif

#endif
