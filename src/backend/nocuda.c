/* nocuda.c - the CUDA backend's entry points in a build without CUDA (plain
 * make): they say how to get one.  make CUDA=1 compiles backend/cuda.cu
 * instead of this file. */
#include "backend/cuda.h"
#include "internal.h"

#define NO_CUDA "this convnet was built without CUDA: rebuild with make CUDA=1"

cn_status cn_cuda_create(int index, cn_backend **out)
{
    (void)index;
    *out = NULL;
    return cn_fail(CN_ERR_ARG, "--device cuda: " NO_CUDA);
}

cn_status cn_gpu_list(cn_gpu *gpus, int max, int *count)
{
    (void)gpus;
    (void)max;
    *count = 0;
    return cn_fail(CN_ERR_ARG, NO_CUDA);
}
