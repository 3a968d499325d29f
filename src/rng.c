/* rng.c - xoshiro256** (Blackman and Vigna), seeded through splitmix64: the
 * functions of counter_rng.h, which a GPU runs too. */
#include "convnet.h"
#include "counter_rng.h"

#include <math.h>

void cn_rng_seed(cn_rng *rng, uint64_t seed) { cn_xo_seed(rng->s, seed); }

uint64_t cn_rng_next(cn_rng *rng) { return cn_xo_next(rng->s); }

uint64_t cn_rng_below(cn_rng *rng, uint64_t n) { return cn_xo_below(rng->s, n); }

double cn_rng_uniform(cn_rng *rng) { return (double)(cn_rng_next(rng) >> 11) * 0x1.0p-53; }

double cn_rng_normal(cn_rng *rng)
{
    double u1 = cn_rng_uniform(rng), u2 = cn_rng_uniform(rng);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * 3.14159265358979323846 * u2);
}
