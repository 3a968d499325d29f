/* cpu.h - the CPU backend's own state, seen by the CPU backend and its
 * kernels only (kernels/): nothing above the backend includes this. */
#ifndef CN_BACKEND_CPU_H
#define CN_BACKEND_CPU_H

#include "backend/backend.h"

/* The single-threaded GEMM, for kernels that run one per thread; pack is
 * the calling thread's packing buffer. */
typedef void (*cn_gemm_st_fn)(float *pack, int ta, int tb, size_t m, size_t n, size_t k,
                              float alpha, const float *a, size_t lda, const float *b, size_t ldb,
                              float beta, float *c, size_t ldc);

/* Thread t's share, of nt, of a piece of work split among threads: its
 * part [lo, hi) of the whole, in CN_SHARE_ONE units (even, or as a team
 * pass moved the cuts: kernels/team.c).  The parts cover the whole, in the
 * threads' order, each cut at the same point by both threads beside it. */
#define CN_SHARE_ONE 65536u
typedef struct cn_share {
    int t, nt;
    unsigned lo, hi;
} cn_share;
typedef void (*cn_share_fn)(void *arg, const cn_share *s);

/* Where thread t's part starts in an even split among nt. */
static inline unsigned cn_share_even(long t, int nt)
{
    return (unsigned)((unsigned long long)CN_SHARE_ONE * (unsigned long long)t /
                      (unsigned long long)nt);
}

/* The item a cut at falls on, of items: the first of the part after it. */
static inline size_t cn_share_at(size_t items, unsigned at)
{
    return (size_t)(((unsigned long long)items * at + CN_SHARE_ONE / 2) / CN_SHARE_ONE);
}

/* The waiting workers of a team pass (backend.h, team; cpu.c). */
typedef struct cn_team cn_team;

typedef struct cn_cpu {
    cn_backend base; /* first: kernels given the backend find this struct */
    int threads;     /* how many run the kernels' loops */
    int slots;       /* how many threads the buffers cut per thread are cut for
                        (the packing buffers, the areas in a kernel's scratch),
                        each found by its thread's number: threads, or in a
                        view of one worker (views), the backend's */
    float *pack;     /* GEMM packing buffers, pack_floats per thread */
    size_t pack_floats;
    cn_gemm_st_fn gemm_st;
    /* The GEMM's few-rows path sweeps the rows of each B (a layer's
     * weights) the other way from its last call (gemm_driver.h, dot_cols):
     * the last B matrices seen and which way each went last, replaced in
     * turn.  The backend serves one caller at a time (its packing buffers
     * already ask that). */
    struct {
        const float *b;
        int rev;
    } dot_seen[8];
    unsigned dot_next;
    /* op(A) (m, k) packed once (m * k floats) for repeated products... */
    void (*gemm_pack_a)(int ta, size_t m, size_t k, const float *a, size_t lda, float *pre);
    /* ...by gemm_st with that A: a and lda are ignored when pre is given. */
    void (*gemm_st_pre)(float *pack, const float *pre, int ta, int tb, size_t m, size_t n, size_t k,
                        float alpha, const float *a, size_t lda, const float *b, size_t ldb,
                        float beta, float *c, size_t ldc);
    /* A fully connected layer's weights (m, k) kept transposed for its
     * forward pass on one sample (gemm_driver.h): the floats they take with
     * the kernel's scratch for up to threads threads, and that pass,
     * y = W x + b: 1, or 0 where it leaves the pass to the GEMM (more than
     * one sample, or inputs mostly not 0 on more than one thread).  The
     * backend's fc_keep chooses the layers that keep them (cpu_kernels.h). */
    size_t (*fc_floats)(size_t m, size_t k, int threads);
    int (*fc_one)(const cn_backend *be, size_t n, size_t m, size_t k, const float *x,
                  const float *w, const float *b, float *y, float *keep);
    /* "guard" only: the kernels' own table, called between unlocking and
     * locking the memory (backend/guard.c). */
    cn_backend inner;
    struct cn_guard_region *regions; /* the guard's memory */
    /* each_worker's backends: threads copies of this one, each of one
     * thread (threads 1, views NULL), made with it. */
    struct cn_cpu *views;
    /* A team pass's lead (team_view, made with the backend when it has more
     * than one thread: a view of one thread whose kernels that split a
     * sample's work hand team_size - 1 waiting workers, the team's own
     * threads, their shares through team, cn_cpu_shares); team is
     * NULL in every other backend. */
    struct cn_cpu *team_view;
    cn_team *team;
    int team_size;
} cn_cpu;

/* The CPU state of a backend made by cn_cpu_create. */
static inline const cn_cpu *cn_cpu_of(const cn_backend *be) { return (const cn_cpu *)be; }

/* Threads to split one sample's work among: the team's in a team pass's
 * lead, else the backend's. */
static inline int cn_cpu_split_threads(const cn_cpu *cpu)
{
    return cpu->team ? cpu->team_size : cpu->threads;
}

/* Runs fn(arg, share t of nt) for every t < nt, each on its own thread: in
 * a team pass's lead on the waiting workers (t > 0) and the calling thread
 * (t 0), the cuts moved to where the threads finish together; elsewhere in
 * an OpenMP region, cut evenly.  Returns when all have. */
void cn_cpu_shares(const cn_backend *be, int nt, cn_share_fn fn, void *arg);

/* The same, cut evenly in a team pass too (where fn moves its parts to
 * boundaries of its own, which the team's times would not follow). */
void cn_cpu_shares_even(const cn_backend *be, int nt, cn_share_fn fn, void *arg);

/* The waiting workers of a backend of threads threads (kernels/team.c), or
 * NULL when memory runs out; cn_team_free(NULL) does nothing (else it ends
 * the workers' threads). */
cn_team *cn_team_create(int threads);
void cn_team_free(cn_team *tm);

/* Forces the cut of a team's shares among 2 threads at at (0 < at <
 * CN_SHARE_ONE; 0: moved as the threads' times say again), for tests. */
void cn_team_fix_cut(cn_team *tm, unsigned at);

/* The team's workers running in this process, and in *asleep how many of
 * them sleep (handed nothing for a while), for tests. */
int cn_team_workers(cn_team *tm, int *asleep);

/* A team pass on lead (a view with its team): fn(user, lead's backend) on
 * the calling thread, the team's workers (threads of its own, started at
 * its first pass) waiting for shares meanwhile. */
void cn_team_run(cn_cpu *lead, void (*fn)(void *user, const cn_backend *lead), void *user);

/* Makes the CPU backend with threads threads (0: one per core); isa forces a
 * kernel set ("avx512", "avx2", "portable") or NULL picks the best the
 * processor has (CONVNET_ISA overrides).  Returns 0, -1 when isa names a
 * kernel set this processor or build cannot run, -2 when memory runs out. */
int cn_cpu_create(int threads, const char *isa, cn_cpu **out);

/* Makes cpu a "guard" backend: its memory is inaccessible except inside its
 * own operations (backend/guard.c).  Returns 0, or -1 when no address space
 * could be reserved. */
int cn_guard_wrap(cn_cpu *cpu);

#endif
