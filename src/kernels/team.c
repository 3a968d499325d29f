/* team.c - team passes: one image's layers split among the CPU's threads
 * without an OpenMP region for every layer (backend.h, team).
 *
 * A pass over one image on 2 threads splits each large layer's work in two
 * (kernels/conv.c, the GEMM's few-rows path).  Opening an OpenMP region for
 * every such layer cost about 3.3 us on the AMD EPYC (Zen 5) virtual machine
 * (its barrier alone 1.7 us): fashion-best's one-image pass has five.  Nor
 * does a team open one for the whole pass (4-4.7 us a region there, also
 * with OMP_WAIT_POLICY=active: 5% of fashion-best's pass, 12% of LeNet's).
 * Its workers are threads of its own instead, started at its first pass and
 * kept until the backend goes: the calling thread runs the pass, and the
 * workers spin on one cache line (posted) until it hands them a share, then
 * say on their own line (done) that it is finished.  One handing over then
 * costs a line each way (0.5-1 us on that machine).  A worker handed nothing
 * for TEAM_SPIN_S sleeps until the next share (as OpenMP's threads do after
 * a region), so that an idle backend costs no processor time.
 *
 * What a team does not save is the data that crosses between the cores: a
 * layer split by filters reads the other core's half of its input, and in
 * the next pass the other core's writes to those lines wait for them to be
 * taken back (about 6 GB/s on that machine, against 24 GB/s to read them).
 * Hence the splits that keep data where it was made (conv.c: a small first
 * layer's rows, a 28 x 28 Winograd layer's tiles); even so, each core's share
 * of fashion-best's layers ran 1.3-2.6x slower beside the other core's than
 * alone, where two one-thread processes side by side lose nothing.  So the
 * network still times both ways (net.c, small passes).
 *
 * Nor are the cores equal: on that machine one ran a one-image pass 10-15%
 * slower than the other, which one changing from minute to minute, and a
 * core's share of a layer took 1.1-1.6x the other's.  With even shares the
 * faster core then waits.  So a team moves its cuts: each share call of a
 * pass (the k-th of the pass, up to TEAM_CALLS) keeps each thread's time
 * per unit of work, a moving average, and hands out the next pass's shares
 * in inverse proportion, each thread's at least a quarter of an even one.
 * Every output is still made by one thread, as the whole layer's pass makes
 * it, so the bits do not depend on the cuts (the share functions see to
 * that; tests/test_infer.c moves the cuts by force). */

#include "backend/cpu.h"
#include "internal.h"
#include "kernels/parallel.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* Share calls of a pass whose cuts move (later ones are cut evenly), and
 * threads whose times are kept (a team of more shares out evenly). */
#define TEAM_CALLS      32
#define TEAM_MAX_LEARNT 16

/* Seconds a worker spins for the next share before it sleeps: a few passes
 * of a large network, so that passes one after another never wait for a
 * thread to wake (21 us on average under that virtual machine, up to 3 ms). */
#define TEAM_SPIN_S 2e-3

typedef struct cn_team cn_team;

typedef struct team_slot {
    _Alignas(64) atomic_uint done; /* the last share this worker finished */
    uint64_t took;                 /* its ticks, written before done */
    cn_team *tm;                   /* the worker's team */
    unsigned seen;                 /* posted when it was started */
} team_slot;

/* What the team learnt of one share call of the pass: the function it
 * was (a pass that calls another starts afresh), and each thread's ticks
 * per unit of work, a CN_SHARE_ONE-th of the whole (0: not yet measured). */
typedef struct team_call {
    cn_share_fn fn;
    int nt;
    double *rate;
} team_call;

struct cn_team {
    _Alignas(64) atomic_uint posted; /* shares handed out so far */
    cn_share_fn fn;                  /* the latest share call's */
    void *arg;
    int nt;          /* threads taking part in it (workers beyond wait it out) */
    unsigned *cut;   /* its cuts: thread t's part [cut[t], cut[t + 1]) */
    team_slot *slot; /* one per thread (the lead's unused) */
    int threads;
    int call;       /* the next share call's number in the pass */
    unsigned fixed; /* a forced first cut (cn_team_fix_cut), or 0 */
    team_call calls[TEAM_CALLS];
    /* The workers: started (1 to threads - 1 of them) in the process's
     * fork generation born - 1 (born 0: never tried); asleep of them on
     * wake, under lock; quit tells them to end. */
    pthread_t *workers;
    int started;
    unsigned born;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    _Alignas(64) atomic_int asleep;
    atomic_int quit;
};

/* A child of fork() has none of its parent's threads: each fork counts a
 * generation, and a team started in an earlier one starts its workers
 * again. */
static atomic_uint forks;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static void forked(void) { atomic_fetch_add(&forks, 1); }
static void watch_forks(void) { pthread_atfork(NULL, NULL, forked); }

/* Whether tm's workers were started (or tried to be) in this process. */
static int born_here(const cn_team *tm) { return tm->born == atomic_load(&forks) + 1; }

static void spin_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* A clock for the shares' times: the time-stamp counter where there is one
 * (a few nanoseconds to read, where clock_gettime takes 20-30), else
 * nanoseconds.  Only ratios of its readings on one thread are used. */
static uint64_t ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_ia32_rdtsc();
#else
    return (uint64_t)(cn_now() * 1e9);
#endif
}

/* Thread t's part of share call c in inverse proportion to its time per
 * unit (sum: the threads' 1 / time), at least a quarter of an even one. */
static double part_of(const team_call *c, int t, double sum, int nt)
{
    double f = 1.0 / c->rate[t] / sum, least = 0.25 / nt;
    return f > least ? f : least;
}

/* The cuts of share call c among nt threads into tm->cut: by part_of, or
 * even while a thread's time is unknown (or c is NULL). */
static void set_cuts(cn_team *tm, const team_call *c, int nt)
{
    unsigned *cut = tm->cut;
    int known = c != NULL;
    for (int t = 0; known && t < nt; t++)
        known = c->rate[t] > 0.0;
    cut[0] = 0;
    cut[nt] = CN_SHARE_ONE;
    if (known) {
        double sum = 0.0, total = 0.0, acc = 0.0;
        for (int t = 0; t < nt; t++)
            sum += 1.0 / c->rate[t];
        for (int t = 0; t < nt; t++)
            total += part_of(c, t, sum, nt);
        for (int t = 1; t < nt; t++) {
            acc += part_of(c, t - 1, sum, nt);
            cut[t] = (unsigned)(acc / total * CN_SHARE_ONE + 0.5);
        }
    } else {
        for (int t = 1; t < nt; t++)
            cut[t] = cn_share_even(t, nt);
    }
    if (tm->fixed && nt == 2)
        cut[1] = tm->fixed;
}

/* Each thread's time per unit of c's work, from its latest share (took[t]
 * ticks for its part of tm->cut): a moving average over about 16 passes, a
 * share taken over 3 times as long as the average (the thread preempted)
 * counted as 3 times. */
static void learn(const cn_team *tm, team_call *c, int nt, const uint64_t *took)
{
    for (int t = 0; t < nt; t++) {
        unsigned part = tm->cut[t + 1] - tm->cut[t];
        if (part == 0)
            continue;
        double r = (double)took[t] / part, *avg = &c->rate[t];
        if (*avg <= 0.0)
            *avg = r;
        else
            *avg += ((r < 3.0 * *avg ? r : 3.0 * *avg) - *avg) / 16.0;
    }
}

static unsigned post(cn_team *tm);

/* Hands the size - 1 waiting workers fn and waits for them; the calling
 * thread does share 0 meanwhile.  The pass's share calls after the first
 * TEAM_CALLS are cut evenly. */
static void team_hand(cn_team *tm, int size, int nt, cn_share_fn fn, void *arg, int adapt)
{
    team_call *c = NULL;
    if (adapt && tm->call < TEAM_CALLS) {
        c = &tm->calls[tm->call];
        if (c->fn != fn || c->nt != nt) { /* another pass: start afresh */
            c->fn = fn, c->nt = nt;
            for (int t = 0; t < tm->threads; t++)
                c->rate[t] = 0.0;
        }
    }
    tm->call++;
    set_cuts(tm, c, nt);
    tm->fn = fn;
    tm->arg = arg;
    tm->nt = nt;
    unsigned seq = post(tm);
    uint64_t took[TEAM_MAX_LEARNT];
    cn_share s = {0, nt, tm->cut[0], tm->cut[1]};
    uint64_t t0 = ticks();
    fn(arg, &s);
    took[0] = ticks() - t0;
    for (int h = 1; h < size; h++) {
        while (atomic_load_explicit(&tm->slot[h].done, memory_order_acquire) != seq)
            spin_pause();
        if (h < TEAM_MAX_LEARNT)
            took[h] = tm->slot[h].took;
    }
    if (c && nt <= TEAM_MAX_LEARNT)
        learn(tm, c, nt, took);
}

/* The next post after seen (a worker's): spun for up to TEAM_SPIN_S, then
 * asleep on wake.  asleep is counted before posted is read again, and
 * post() reads asleep after it changes posted (both sequentially
 * consistent), so that a worker going to sleep either sees the new post or
 * is woken. */
static unsigned next_post(cn_team *tm, unsigned seen)
{
    unsigned p;
    double until = 0.0;
    for (unsigned i = 1;; i++) {
        if ((p = atomic_load_explicit(&tm->posted, memory_order_acquire)) != seen)
            return p;
        spin_pause();
        if (i % 1024 == 0) {
            double now = cn_now();
            if (until == 0.0)
                until = now + TEAM_SPIN_S;
            else if (now > until)
                break;
        }
    }
    pthread_mutex_lock(&tm->lock);
    atomic_fetch_add(&tm->asleep, 1);
    while ((p = atomic_load(&tm->posted)) == seen)
        pthread_cond_wait(&tm->wake, &tm->lock);
    atomic_fetch_sub(&tm->asleep, 1);
    pthread_mutex_unlock(&tm->lock);
    return p;
}

/* Posts the next handing over (the lead's), waking the workers asleep. */
static unsigned post(cn_team *tm)
{
    unsigned seq = atomic_load_explicit(&tm->posted, memory_order_relaxed) + 1;
    atomic_store(&tm->posted, seq);
    if (atomic_load(&tm->asleep) > 0) {
        pthread_mutex_lock(&tm->lock);
        pthread_cond_broadcast(&tm->wake);
        pthread_mutex_unlock(&tm->lock);
    }
    return seq;
}

/* A worker: its share of everything handed out, until the team goes. */
static void *team_worker(void *arg)
{
    team_slot *me = arg;
    cn_team *tm = me->tm;
    int h = (int)(me - tm->slot);
    for (unsigned seen = me->seen;;) {
        seen = next_post(tm, seen);
        if (atomic_load_explicit(&tm->quit, memory_order_relaxed))
            return NULL;
        if (h < tm->nt) {
            cn_share s = {h, tm->nt, tm->cut[h], tm->cut[h + 1]};
            uint64_t t0 = ticks();
            tm->fn(tm->arg, &s);
            me->took = ticks() - t0;
        }
        atomic_store_explicit(&me->done, seen, memory_order_release);
    }
}

static void shares(const cn_backend *be, int nt, cn_share_fn fn, void *arg, int adapt)
{
    const cn_cpu *cpu = cn_cpu_of(be);
    if (cpu->team && nt > 1) {
        int size = cpu->team_size;
        team_hand(cpu->team, size, nt < size ? nt : size, fn, arg, adapt);
        return;
    }
    PARALLEL_FOR(nt, t, nt, {
        cn_share s = {(int)t, nt, cn_share_even(t, nt), cn_share_even(t + 1, nt)};
        fn(arg, &s);
    });
}

void cn_cpu_shares(const cn_backend *be, int nt, cn_share_fn fn, void *arg)
{
    shares(be, nt, fn, arg, 1);
}

void cn_cpu_shares_even(const cn_backend *be, int nt, cn_share_fn fn, void *arg)
{
    shares(be, nt, fn, arg, 0);
}

cn_team *cn_team_create(int threads)
{
    cn_team *tm = cn_alloc(1, sizeof *tm);
    team_slot *slot = cn_alloc((size_t)threads, sizeof *slot);
    unsigned *cut = cn_alloc((size_t)threads + 1, sizeof *cut);
    double *rate = cn_alloc((size_t)TEAM_CALLS * (size_t)threads, sizeof *rate);
    pthread_t *workers = cn_alloc((size_t)threads, sizeof *workers);
    if (!tm || !slot || !cut || !rate || !workers) {
        cn_free(tm);
        cn_free(slot);
        cn_free(cut);
        cn_free(rate);
        cn_free(workers);
        return NULL;
    }
    tm->slot = slot;
    tm->cut = cut;
    tm->threads = threads;
    tm->workers = workers;
    for (int k = 0; k < TEAM_CALLS; k++)
        tm->calls[k].rate = rate + (size_t)k * (size_t)threads;
    pthread_once(&fork_once, watch_forks);
    return tm;
}

/* Starts the workers (those it can: returns how many), with a lock and a
 * condition of their own (kept while any worker runs). */
static int start_workers(cn_team *tm)
{
    tm->started = 0;
    tm->born = atomic_load(&forks) + 1;
    atomic_store(&tm->asleep, 0);
    atomic_store(&tm->quit, 0);
    if (pthread_mutex_init(&tm->lock, NULL) != 0)
        return 0;
    if (pthread_cond_init(&tm->wake, NULL) != 0) {
        pthread_mutex_destroy(&tm->lock);
        return 0;
    }
    unsigned now = atomic_load(&tm->posted);
    for (int h = 1; h < tm->threads; h++) {
        team_slot *sl = &tm->slot[h];
        sl->tm = tm, sl->seen = now;
        atomic_store(&sl->done, now);
        if (pthread_create(&tm->workers[h], NULL, team_worker, sl) != 0)
            break;
        tm->started = h;
    }
    if (tm->started == 0) { /* the passes run on the calling thread alone */
        pthread_cond_destroy(&tm->wake);
        pthread_mutex_destroy(&tm->lock);
    }
    return tm->started;
}

static void stop_workers(cn_team *tm)
{
    if (tm->started == 0)
        return;
    atomic_store(&tm->quit, 1);
    post(tm);
    for (int h = 1; h <= tm->started; h++)
        pthread_join(tm->workers[h], NULL);
    pthread_cond_destroy(&tm->wake);
    pthread_mutex_destroy(&tm->lock);
    tm->started = 0;
}

void cn_team_free(cn_team *tm)
{
    if (!tm)
        return;
    if (born_here(tm))
        stop_workers(tm);
    cn_free(tm->slot);
    cn_free(tm->cut);
    cn_free(tm->calls[0].rate);
    cn_free(tm->workers);
    cn_free(tm);
}

void cn_team_fix_cut(cn_team *tm, unsigned at) { tm->fixed = at; }

int cn_team_workers(cn_team *tm, int *asleep)
{
    *asleep = atomic_load(&tm->asleep);
    return born_here(tm) ? tm->started : 0;
}

void cn_team_run(cn_cpu *lead, void (*fn)(void *user, const cn_backend *lead), void *user)
{
    cn_team *tm = lead->team;
    if (!born_here(tm)) {
        /* not yet, or before a fork: the threads are not there */
        lead->team_size = 1 + start_workers(tm);
    }
    tm->call = 0;
    fn(user, &lead->base);
}
