/* team.c - team passes: one image's layers split among the CPU's threads
 * without an OpenMP region for every layer (backend.h, team).
 *
 * A pass over one image on 2 threads splits each large layer's work in two
 * (kernels/conv.c, the GEMM's few-rows path).  Opening an OpenMP region for
 * every such layer cost about 3.3 us on the AMD EPYC (Zen 5) virtual machine
 * (its barrier alone 1.7 us): fashion-best's one-image pass has five.  A team
 * pass opens one region for the whole pass instead: the calling thread runs
 * the pass, and the others spin on one cache line (posted) until it hands
 * them a share, then say on their own line (done) that it is finished.  One
 * handing over then costs a line each way (0.5 us on that machine).
 *
 * What a team does not save is the data that crosses between the cores: a
 * layer split by filters reads the other core's half of its input, and in
 * the next pass the other core's writes to those lines wait for them to be
 * taken back (about 6 GB/s on that machine, against 24 GB/s to read them).
 * Hence the splits that keep data where it was made (conv.c: a small first
 * layer's rows, a 28 x 28 Winograd layer's tiles); even so, each core's share
 * of fashion-best's layers ran 1.3-2.6x slower beside the other core's than
 * alone, where two one-thread processes side by side lose nothing.  So the
 * network still times both ways (net.c, small passes). */

#include "backend/cpu.h"
#include "internal.h"
#include "kernels/parallel.h"

#include <stdatomic.h>

typedef struct team_slot {
    _Alignas(64) atomic_uint done; /* the last share this worker finished */
} team_slot;

struct cn_team {
    _Alignas(64) atomic_uint posted; /* shares handed out so far */
    cn_share_fn fn;                  /* the latest, or NULL: the pass is over */
    void *arg;
    int nt;          /* threads taking part in it (workers beyond wait it out) */
    team_slot *slot; /* one per thread (the lead's unused) */
};

static void spin_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Hands the size - 1 waiting workers fn and waits for them; the calling
 * thread does share 0 meanwhile. */
static void team_hand(cn_team *tm, int size, int nt, cn_share_fn fn, void *arg)
{
    tm->fn = fn;
    tm->arg = arg;
    tm->nt = nt;
    unsigned seq = atomic_load_explicit(&tm->posted, memory_order_relaxed) + 1;
    atomic_store_explicit(&tm->posted, seq, memory_order_release);
    if (fn)
        fn(arg, 0, nt);
    for (int h = 1; h < size; h++)
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
    const cn_cpu *cpu = cn_cpu_of(be);
    if (cpu->team && nt > 1) {
        int size = cpu->team_size;
        team_hand(cpu->team, size, nt < size ? nt : size, fn, arg);
        return;
    }
    PARALLEL_FOR(nt, t, nt, { fn(arg, (int)t, nt); });
}

cn_team *cn_team_create(int threads)
{
    cn_team *tm = cn_alloc(1, sizeof *tm);
    team_slot *slot = cn_alloc((size_t)threads, sizeof *slot);
    if (!tm || !slot) {
        cn_free(tm);
        cn_free(slot);
        return NULL;
    }
    tm->slot = slot;
    return tm;
}

void cn_team_free(cn_team *tm)
{
    if (!tm)
        return;
    cn_free(tm->slot);
    cn_free(tm);
}

void cn_team_run(cn_cpu *lead, int threads, void (*fn)(void *user, const cn_backend *lead),
                 void *user)
{
    cn_team *tm = lead->team;
    unsigned start = atomic_load_explicit(&tm->posted, memory_order_relaxed);
#pragma omp parallel num_threads(threads)
    {
        int t = thread_id();
        if (t == 0) {
            /* Only the threads the region has are waited for. */
            lead->team_size = region_threads();
            fn(user, &lead->base);
            team_hand(tm, lead->team_size, 0, NULL, NULL);
        } else {
            team_wait(tm, t, start);
        }
    }
}
