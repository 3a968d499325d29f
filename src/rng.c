/* rng.c - xoshiro256** (Blackman and Vigna), seeded through splitmix64. */
#include "convnet.h"

#include <math.h>

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void cn_rng_seed(cn_rng *rng, uint64_t seed)
{
    uint64_t z = seed;
    for (int i = 0; i < 4; i++) {
        z += 0x9e3779b97f4a7c15ULL;
        uint64_t v = z;
        v = (v ^ (v >> 30)) * 0xbf58476d1ce4e5b9ULL;
        v = (v ^ (v >> 27)) * 0x94d049bb133111ebULL;
        rng->s[i] = v ^ (v >> 31);
    }
}

uint64_t cn_rng_next(cn_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t cn_rng_below(cn_rng *rng, uint64_t n)
{
    /* Rejection: accept only draws below the largest multiple of n. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t r;
    do {
        r = cn_rng_next(rng);
    } while (r >= limit);
    return r % n;
}

double cn_rng_uniform(cn_rng *rng) { return (double)(cn_rng_next(rng) >> 11) * 0x1.0p-53; }

double cn_rng_normal(cn_rng *rng)
{
    double u1 = cn_rng_uniform(rng), u2 = cn_rng_uniform(rng);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * 3.14159265358979323846 * u2);
}
