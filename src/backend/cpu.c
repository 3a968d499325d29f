/* cpu.c - the CPU backend: fills the kernel table from kernels/, choosing the
 * GEMM variant from the processor's features at run time. */
#include "backend/backend.h"
#include "internal.h"
#include "kernels/kernels.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct isa_entry {
    const char *name;
    void (*fill)(cn_backend *be);
    int (*usable)(void);
} isa_entry;

static int always(void) { return 1; }

#if defined(__x86_64__) && defined(CN_HAVE_X86_KERNELS)
static int has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
static int has_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("fma");
}
static const isa_entry isas[] = {
    {"avx512", cn_cpu_fill_avx512, has_avx512},
    {"avx2", cn_cpu_fill_avx2, has_avx2},
    {"portable", cn_cpu_fill_portable, always},
};
#else
static const isa_entry isas[] = {
    {"portable", cn_cpu_fill_portable, always},
};
#endif

int cn_backend_cpu_init(cn_backend *be, int threads, const char *isa)
{
    memset(be, 0, sizeof *be);
    if (!isa || !*isa) {
        const char *env = getenv("CONVNET_ISA");
        isa = env && *env ? env : NULL;
    }
    const isa_entry *pick = NULL;
    for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
        if (isa ? strcmp(isa, isas[i].name) == 0 : isas[i].usable()) {
            pick = &isas[i];
            break;
        }
    }
    if (!pick || !pick->usable())
        return -1;
    if (threads <= 0) {
#ifdef _OPENMP
        threads = omp_get_num_procs();
#else
        long np = sysconf(_SC_NPROCESSORS_ONLN);
        threads = np > 0 ? (int)np : 1;
#endif
    }
#ifndef _OPENMP
    threads = 1;
#endif
    be->isa = pick->name;
    be->threads = threads;
    be->pack_floats = cn_gemm_pack_floats();
    be->pack = cn_alloc(cn_mul((size_t)threads, be->pack_floats), sizeof(float));
    if (!be->pack)
        return -2;
    pick->fill(be);
    return 0;
}

void cn_backend_free(cn_backend *be)
{
    if (!be)
        return;
    cn_free(be->pack);
    be->pack = NULL;
}
