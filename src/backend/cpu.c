/* cpu.c - the CPU backend: host memory, and the kernels of kernels/ chosen
 * from the processor's features at run time. */
#include "backend/cpu.h"
#include "backend/cuda.h"
#include "internal.h"
#include "kernels/kernels.h"
#include "kernels/parallel.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct isa_entry {
    const char *name;
    void (*fill)(cn_cpu *cpu);
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

/* ------------------------------------------------------------------ memory */

static void *cpu_alloc(cn_backend *be, size_t bytes)
{
    (void)be;
    return cn_alloc(bytes, 1);
}

static void cpu_free(cn_backend *be, void *p)
{
    (void)be;
    cn_free(p);
}

static void cpu_move(const cn_backend *be, void *dst, const void *src, size_t bytes)
{
    (void)be;
    if (bytes)
        memcpy(dst, src, bytes);
}

/* Large fills are cut among the threads as the optimizer's update cuts the
 * parameters (FOR_RANGES, the same ranges): zeroing the gradients before a
 * backward pass then leaves each range in the cache of the core whose update
 * reads it (and whose share of a fully connected layer's weight gradient
 * mostly lands there), not all of it in the calling thread's, from where the
 * other core would have to fetch every line it writes. */
static void fill_range(float *x, float value, long lo, long hi)
{
    if (value == 0.0f) { /* all bits zero: +0.0f */
        memset(x + lo, 0, (size_t)(hi - lo) * sizeof *x);
        return;
    }
    for (long i = lo; i < hi; i++)
        x[i] = value;
}

static void cpu_fill(const cn_backend *be, float *x, float value, size_t count)
{
    FOR_RANGES(be, count, PAR_MIN, lo, hi, fill_range(x, value, lo, hi));
}

static void cpu_sync(const cn_backend *be) { (void)be; }

/* Team passes (backend.h, team): kernels/team.c. */
static void cpu_team(const cn_backend *be, void (*fn)(void *user, const cn_backend *lead),
                     void *user)
{
    const cn_cpu *cpu = cn_cpu_of(be);
    if (!cpu->team_view) { /* one thread */
        fn(user, be);
        return;
    }
    cn_team_run(cpu->team_view, fn, user);
}

static void cpu_destroy(cn_backend *be)
{
    cn_cpu *cpu = (cn_cpu *)be;
    cn_free(cpu->pack);
    if (cpu->team_view)
        cn_team_free(cpu->team_view->team);
    free(cpu->team_view);
    free(cpu->views);
    free(cpu);
}

/* Each thread runs fn with its own copy of the backend, of one thread: the
 * kernels' loops then stay on it (PARALLEL_FOR and FOR_RANGES see 1), and
 * the buffers they cut per thread (the GEMM's packing buffers, the
 * convolutions' areas in the scratch) are still found by the thread's
 * number in this team, so that no two threads share one. */
static void cpu_each_worker(const cn_backend *be,
                            void (*fn)(void *user, size_t w, const cn_backend *one), void *user)
{
    const cn_cpu *cpu = cn_cpu_of(be);
    if (cpu->threads <= 1) {
        fn(user, 0, &cpu->views[0].base);
        return;
    }
#pragma omp parallel num_threads(cpu->threads)
    {
        size_t w = (size_t)thread_id();
        fn(user, w, &cpu->views[w].base);
    }
}

int cn_cpu_create(int threads, const char *isa, cn_cpu **out)
{
    *out = NULL;
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
    cn_cpu *cpu = calloc(1, sizeof *cpu);
    if (!cpu)
        return -2;
    cpu->threads = cpu->slots = threads;
    cpu->pack_floats = cn_gemm_pack_floats();
    cpu->pack = cn_alloc(cn_mul((size_t)threads, cpu->pack_floats), sizeof(float));
    cpu->base.own_bytes = cn_mul(cn_mul((size_t)threads, cpu->pack_floats), sizeof(float));
    if (!cpu->pack) {
        free(cpu);
        return -2;
    }
    cn_backend *be = &cpu->base;
    be->name = "cpu";
    be->kernels = pick->name;
    be->host_memory = 1;
    be->conv_acts = 1u << CN_ACT_RELU;
    be->bn_acts = 1u << CN_ACT_RELU;
    be->bwd_in_place = CN_BWD_BN | CN_BWD_POOL;
    be->alloc = cpu_alloc;
    be->free = cpu_free;
    be->upload = cpu_move;
    be->download = cpu_move;
    be->copy = cpu_move;
    be->fill = cpu_fill;
    be->sync = cpu_sync;
    be->destroy = cpu_destroy;
    pick->fill(cpu);
    cpu->views = calloc((size_t)threads, sizeof *cpu->views);
    if (!cpu->views) {
        cpu_destroy(be);
        return -2;
    }
    be->workers = (size_t)threads;
    be->each_worker = cpu_each_worker;
    be->alone = &cpu->views[0].base;
    be->team = cpu_team;
    for (int t = 0; t < threads; t++) {
        cpu->views[t] = *cpu;
        cpu->views[t].threads = 1;
        cpu->views[t].views = NULL;
        cpu->views[t].base.workers = 1;
        cpu->views[t].base.each_worker = NULL;
        cpu->views[t].base.alone = NULL;
        cpu->views[t].base.team = NULL;
    }
    if (threads > 1) {
        /* A team pass's lead: the first worker's view, with the team. */
        cn_cpu *lead = malloc(sizeof *lead);
        cn_team *tm = cn_team_create(threads);
        if (!lead || !tm) {
            free(lead);
            cn_team_free(tm);
            cpu_destroy(be);
            return -2;
        }
        *lead = cpu->views[0];
        lead->team = tm;
        lead->team_size = threads;
        cpu->team_view = lead;
    }
    *out = cpu;
    return 0;
}

/* --------------------------------------------------------------- registry */

cn_status cn_backend_create(const cn_device *dev, cn_device *resolved, cn_backend **out)
{
    *out = NULL;
    static const cn_device cpu_default = {"cpu", 0, 0};
    if (!dev)
        dev = &cpu_default;
    const char *name = dev->backend && *dev->backend ? dev->backend : "cpu";
    int guard = strcmp(name, "guard") == 0, cuda = strcmp(name, "cuda") == 0;
    if (strcmp(name, "cpu") != 0 && !guard && !cuda)
        return cn_fail(CN_ERR_ARG, "no backend called '%s' (there are: cpu, cuda, guard)", name);
    if (dev->index != 0 && !cuda)
        return cn_fail(CN_ERR_ARG, "the %s backend has one device, 0; there is no device %d", name,
                       dev->index);
    if (dev->threads < 0 || dev->threads > 1024)
        return cn_fail(CN_ERR_ARG, "threads must be 0 (one per core) to 1024, got %d",
                       dev->threads);
    if (cuda) { /* backend/cuda.cu, or backend/nocuda.c's message */
        cn_backend *be;
        cn_status st = cn_cuda_create(dev->index, &be);
        if (st)
            return st;
        if (resolved)
            *resolved = (cn_device){be->name, dev->index, 1};
        *out = be;
        return CN_OK;
    }
    cn_cpu *cpu;
    int rc = cn_cpu_create(dev->threads, NULL, &cpu);
    if (rc == -2)
        return cn_fail(CN_ERR_NOMEM, "out of memory for the GEMM buffers");
    if (rc)
        return cn_fail(CN_ERR_ARG,
                       "CONVNET_ISA=%s names a kernel set this processor or build cannot run "
                       "(choose avx512, avx2 or portable)",
                       getenv("CONVNET_ISA") ? getenv("CONVNET_ISA") : "");
    if (guard && cn_guard_wrap(cpu)) {
        cpu->base.destroy(&cpu->base);
        return cn_fail(CN_ERR_NOMEM, "the guard backend could not reserve its address space");
    }
    if (resolved)
        *resolved = (cn_device){cpu->base.name, 0, cpu->threads};
    *out = &cpu->base;
    return CN_OK;
}

void cn_backend_destroy(cn_backend *be)
{
    if (be)
        be->destroy(be);
}
