/* counter_rng.h - random numbers as a pure function of a key and a counter:
 * the same bits on any device and in any order, so that a CPU thread, a GPU
 * thread or a backward pass computes a dropout decision without a shared
 * generator state.  A leaf: plain C99 that a CUDA file may include too.
 *
 * The mixing function is splitmix64's finaliser (Steele, Lea and Flood); a
 * key's stream is the finaliser of key + (i + 1) * golden ratio, as in
 * splitmix64 itself. */
#ifndef CN_COUNTER_RNG_H
#define CN_COUNTER_RNG_H

#include <stdint.h>

/* The CUDA backend calls these on the GPU as well as on the host. */
#ifdef __CUDACC__
#define CN_HD __host__ __device__
#else
#define CN_HD
#endif

#define CN_GOLDEN 0x9e3779b97f4a7c15ULL

CN_HD static inline uint64_t cn_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A seed for training step `step` of a run seeded with seed (and, with the
 * step's seed as seed and a layer's line as step, for that layer). */
CN_HD static inline uint64_t cn_step_seed(uint64_t seed, uint64_t step)
{
    return cn_mix64(seed ^ (step + 1) * CN_GOLDEN);
}

/* The i-th uniform number in [0, 1) of key's stream, with 24 random bits
 * (every value is a float exactly). */
CN_HD static inline float cn_counter_uniform(uint64_t key, uint64_t i)
{
    return (float)(cn_mix64(key + (i + 1) * CN_GOLDEN) >> 40) * 0x1p-24f;
}

#endif
