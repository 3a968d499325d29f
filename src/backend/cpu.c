/* cpu.c - the CPU backend: host memory, and the kernels of kernels/ chosen
 * from the processor's features at run time. */
#include "backend/cpu.h"
#include "backend/cuda.h"
#include "internal.h"
#include "kernels/kernels.h"
#include "kernels/parallel.h"

#include <stdatomic.h>
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

/* ------------------------------------------------------------ team passes
 *
 * A pass over one image on 2 threads splits each large layer's work in two
 * (kernels/conv.c, the GEMM's few-rows path).  Opening an OpenMP region for
 * every such layer cost about 3.3 us on the AMD EPYC (Zen 5) virtual machine
 * (its barrier alone 1.7 us): fashion-best's one-image pass has five.  A team
 * pass opens one region for the whole pass instead: the calling thread runs
 * the pass, and the others spin on one cache line (posted) until it hands
 * them a share, then say on their own line (done) that it is finished.  One
 * handing over then costs a line each way (0.5 us on that machine). */

typedef struct team_slot {
    _Alignas(64) atomic_uint done; /* the last share this worker finished */
} team_slot;

struct cn_team {
    _Alignas(64) atomic_uint posted; /* shares handed out so far */
    cn_share_fn fn;                  /* the latest, or NULL: the pass is over */
    void *arg;
    int nt;          /* threads taking part in it (workers beyond wait it out) */
    int size;        /* the threads in the pass's region */
    team_slot *slot; /* one per thread (the lead's unused) */
};

static void spin_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Hands the waiting workers fn and waits for them; the calling thread does
 * share 0 meanwhile. */
static void team_hand(cn_team *tm, int nt, cn_share_fn fn, void *arg)
{
    tm->fn = fn;
    tm->arg = arg;
    tm->nt = nt;
    unsigned seq = atomic_load_explicit(&tm->posted, memory_order_relaxed) + 1;
    atomic_store_explicit(&tm->posted, seq, memory_order_release);
    if (fn)
        fn(arg, 0, nt);
    for (int h = 1; h < tm->size; h++)
        while (atomic_load_explicit(&tm->slot[h].done, memory_order_acquire) != seq)
            spin_pause();
}

/* A waiting worker: its share of everything handed out after seen, until
 * the pass is over. */
static void team_wait(cn_team *tm, int h, unsigned seen)
{
    for (;;) {
        unsigned p;
        while ((p = atomic_load_explicit(&tm->posted, memory_order_acquire)) == seen)
            spin_pause();
        seen = p;
        cn_share_fn fn = tm->fn;
        if (fn && h < tm->nt)
            fn(tm->arg, h, tm->nt);
        atomic_store_explicit(&tm->slot[h].done, seen, memory_order_release);
        if (!fn)
            return;
    }
}

void cn_cpu_shares(const cn_backend *be, int nt, cn_share_fn fn, void *arg)
{
    cn_team *tm = cn_cpu_of(be)->team;
    if (tm && nt > 1) {
        team_hand(tm, nt < tm->size ? nt : tm->size, fn, arg);
        return;
    }
    PARALLEL_FOR(nt, t, nt, { fn(arg, (int)t, nt); });
}

static void cpu_team(const cn_backend *be, void (*fn)(void *user, const cn_backend *lead),
                     void *user)
{
    const cn_cpu *cpu = cn_cpu_of(be);
    if (cpu->threads <= 1 || !cpu->team_view) {
        fn(user, be);
        return;
    }
    cn_team *tm = cpu->team_view->team;
    unsigned start = atomic_load_explicit(&tm->posted, memory_order_relaxed);
#pragma omp parallel num_threads(cpu->threads)
    {
        int t = thread_id();
        if (t == 0) {
            /* Only the threads the region has are waited for. */
            tm->size = region_threads();
            cpu->team_view->team_size = tm->size;
            fn(user, &cpu->team_view->base);
            team_hand(tm, 0, NULL, NULL);
        } else {
            team_wait(tm, t, start);
        }
    }
}

static void cpu_destroy(cn_backend *be)
{
    cn_cpu *cpu = (cn_cpu *)be;
    cn_free(cpu->pack);
    if (cpu->team_view && cpu->team_view->team) {
        cn_free(cpu->team_view->team->slot);
        cn_free(cpu->team_view->team);
    }
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
        cn_cpu *lead = malloc(sizeof *lead);
        cn_team *tm = cn_alloc(1, sizeof *tm);
        team_slot *slot = cn_alloc((size_t)threads, sizeof *slot);
        if (!lead || !tm || !slot) {
            free(lead);
            cn_free(tm);
            cn_free(slot);
            cpu_destroy(be);
            return -2;
        }
        *lead = cpu->views[0];
        tm->slot = slot;
        tm->size = threads;
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
