/* counter_rng.h - random numbers as a pure function of a key and a counter:
 * the same bits on any device and in any order, so that a CPU thread, a GPU
 * thread or a backward pass computes a dropout decision without a shared
 * generator state.  A leaf: plain C99 that a CUDA file may include too.
 *
 * The mixing function is splitmix64's finaliser (Steele, Lea and Flood); a
 * key's stream is the finaliser of key + (i + 1) * golden ratio, as in
 * splitmix64 itself.
 *
 * Also the library's own generator, xoshiro256** seeded through splitmix64
 * (cn_rng, src/rng.c), as functions over its four words: the one
 * implementation that the host's cn_rng and a GPU thread both run, so that
 * the augmentation a device draws for a sample is the host's. */
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

/* xoshiro256** (Blackman and Vigna): s[0..4) from seed through splitmix64. */
CN_HD static inline void cn_xo_seed(uint64_t s[4], uint64_t seed)
{
    uint64_t z = seed;
    for (int i = 0; i < 4; i++) {
        z += CN_GOLDEN;
        s[i] = cn_mix64(z);
    }
}

CN_HD static inline uint64_t cn_xo_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* The next 64 bits; advances s. */
CN_HD static inline uint64_t cn_xo_next(uint64_t s[4])
{
    uint64_t result = cn_xo_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = cn_xo_rotl(s[3], 45);
    return result;
}

/* Uniform in [0, n), n > 0, without modulo bias: draws at or above the
 * largest multiple of n are rejected. */
CN_HD static inline uint64_t cn_xo_below(uint64_t s[4], uint64_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % n, r;
    do {
        r = cn_xo_next(s);
    } while (r >= limit);
    return r % n;
}

#endif
