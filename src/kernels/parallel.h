/* parallel.h - the CPU kernels' loops over independent items.
 *
 * PARALLEL_FOR(nt, i, n, body) runs for (long i = 0; i < n; i++) body,
 * spread over nt threads in OpenMP's static schedule, or on the calling
 * thread without entering the OpenMP runtime when nt <= 1 or n <= 1.  The
 * runtime is kept out of the serial case on purpose: libgomp allocates a
 * team (malloc) for every parallel region, even a region of one thread, and
 * a forward or backward pass must not allocate (a network on one thread in
 * a control loop; tests/examples.sh counts the mallocs of examples/embedded.c
 * to check it).  The body may hold commas but no preprocessor directives;
 * thread_id() gives the thread's index, 0 on the calling thread.
 *
 * FOR_RANGES(be, n, min_n, lo, hi, body) cuts [0, n) into one range per
 * thread instead (the element-wise kernels, the SGD update, the backend's
 * fill): the same n cuts the same way wherever it is used, so two passes over
 * one array give each core the same part of it. */
#ifndef CN_KERNELS_PARALLEL_H
#define CN_KERNELS_PARALLEL_H

#ifdef _OPENMP
#include <omp.h>
#endif

static inline int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* The threads of the region the caller is in (1 outside any). */
static inline int region_threads(void)
{
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

/* clang-format off */
#define PARALLEL_FOR(nt, i, n, ...)                                             \
    do {                                                                        \
        int nt_ = (nt);                                                         \
        long n_ = (long)(n);                                                    \
        if (nt_ <= 1 || n_ <= 1) {                                              \
            for (long i = 0; i < n_; i++)                                       \
                __VA_ARGS__                                                     \
        } else {                                                                \
            _Pragma("omp parallel for num_threads(nt_) schedule(static)")       \
            for (long i = 0; i < n_; i++)                                       \
                __VA_ARGS__                                                     \
        }                                                                       \
    } while (0)
/* clang-format on */

/* Below this many elements a loop is not worth waking the threads for. */
#define PAR_MIN 32768

/* Runs the body (the trailing arguments, which may hold commas) over [0, n)
 * cut into one contiguous range [lo, hi) per thread, or over all of it on the
 * calling thread when n is at most min_n.  Either way the body is the same
 * plain loop, which the compiler vectorises (OpenMP's "parallel for simd
 * if(...)" made a branchy scalar copy for the serial case). */
#define FOR_RANGES(be, n, min_n, lo, hi, ...)                                                      \
    do {                                                                                           \
        long n_ = (long)(n);                                                                       \
        int nt_ = n_ > (long)(min_n) ? cn_cpu_of(be)->threads : 1;                                 \
        if (nt_ <= 1) {                                                                            \
            long lo = 0, hi = n_;                                                                  \
            __VA_ARGS__;                                                                           \
        } else {                                                                                   \
            _Pragma("omp parallel num_threads(nt_)")                                               \
            {                                                                                      \
                long t_ = thread_id(), lo = n_ * t_ / nt_, hi = n_ * (t_ + 1) / nt_;               \
                __VA_ARGS__;                                                                       \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* Runs the body (the trailing arguments) once on each of nt threads, or
 * once on the calling thread when nt <= 1; thread_id() tells them apart and
 * team_barrier() waits for the whole team (nothing on one thread). */
#define PARALLEL_TEAM(nt, ...)                                                                     \
    do {                                                                                           \
        int nt_ = (nt);                                                                            \
        if (nt_ <= 1) {                                                                            \
            __VA_ARGS__;                                                                           \
        } else {                                                                                   \
            _Pragma("omp parallel num_threads(nt_)") { __VA_ARGS__; }                              \
        }                                                                                          \
    } while (0)

static inline void team_barrier(void)
{
#ifdef _OPENMP
#pragma omp barrier
#endif
}

#endif
