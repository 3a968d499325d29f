/* gemm_driver.h - the blocked GEMM loops around a register kernel.
 *
 * Included by each instruction set's GEMM file after it defines:
 *   NR          columns of the register tile
 *   MR_MAX      most rows of the register tile
 *   KC, MC, NC  block sizes: depth, rows and columns
 *   DIRECT_B    1 if the kernel can read B in place (row stride ldb, masked
 *               at the column edge), 0 if B must be packed and zero-padded
 *   kernel(mr, kc, pa, pb, ldb, c, ldc, nr, alpha, beta)
 *               C (mr, nr) = beta * C + alpha * pa (mr, kc) pb (kc, nr), with
 *               pa packed (kc groups of mr values) and row p of pb at pb + p*ldb;
 *               beta == 0: C is not read
 *   GEMM_NAME   the name stem of the entry points
 *
 * Goto's scheme: C is cut into tiles that threads take independently; for
 * each KC-deep slice a tile packs A into row panels of MR_MAX rows or fewer
 * (split evenly, so that no panel is short) and, unless the kernel reads it in
 * place, B into NR-column panels, then runs the register kernel over them.
 * A can also be packed once in advance (pack_a entry point) and reused, which
 * is what the convolution does with its weights.  Every element of C sums
 * its KC slices in the same order whatever the tiling, so results do not
 * depend on the number of threads. */
#include "kernels/kernels.h"

#include <string.h>

#include "kernels/parallel.h"

#define GEMM_CAT2(a, b) a##b
#define GEMM_CAT(a, b)  GEMM_CAT2(a, b)

/* Row panels of mc rows: count and the size of panel r (even split). */
static inline size_t n_panels(size_t mc) { return (mc + MR_MAX - 1) / MR_MAX; }
static inline size_t panel_rows(size_t mc, size_t np, size_t r) { return mc / np + (r < mc % np); }

/* dst[p * width + i] = src[i * ld + p] for i < rows, p < kc: rows of src
 * become columns of a panel, four at a time (contiguous reads, short strided
 * writes).  Both packings of a transposed operand use it. */
static void pack_transposed(const float *src, size_t ld, size_t rows, size_t kc, size_t width,
                            float *restrict dst)
{
    size_t i = 0;
    for (; i + 4 <= rows; i += 4) {
        const float *s0 = src + i * ld, *s1 = s0 + ld, *s2 = s1 + ld, *s3 = s2 + ld;
        for (size_t p = 0; p < kc; p++) {
            float *d = dst + p * width + i;
            d[0] = s0[p];
            d[1] = s1[p];
            d[2] = s2[p];
            d[3] = s3[p];
        }
    }
    for (; i < rows; i++) {
        const float *s = src + i * ld;
        for (size_t p = 0; p < kc; p++)
            dst[p * width + i] = s[p];
    }
}

/* Packs rows [i0, i0+mc) x columns [p0, p0+kc) of op(A) into row panels;
 * panel r holds kc groups of its rows' values. */
static void pack_a(int ta, const float *a, size_t lda, size_t i0, size_t mc, size_t p0, size_t kc,
                   float *restrict pa)
{
    size_t np = n_panels(mc), row = i0;
    for (size_t r = 0; r < np; r++) {
        size_t mr = panel_rows(mc, np, r);
        if (ta) {
            for (size_t p = 0; p < kc; p++)
                memcpy(pa + p * mr, a + (p0 + p) * lda + row, mr * sizeof(float));
        } else {
            pack_transposed(a + row * lda + p0, lda, mr, kc, mr, pa);
        }
        pa += mr * kc;
        row += mr;
    }
}

/* Packs rows [p0, p0+kc) x columns [j0, j0+nc) of op(B) into NR-column
 * panels, zero-padded to NR. */
static void pack_b(int tb, const float *b, size_t ldb, size_t p0, size_t kc, size_t j0, size_t nc,
                   float *restrict pb)
{
#ifdef HAVE_PACK_B_T
    if (tb) {
        pack_b_t(b, ldb, p0, kc, j0, nc, pb);
        return;
    }
#endif
    for (size_t jr = 0; jr < nc; jr += NR) {
        size_t nr = nc - jr < NR ? nc - jr : NR;
        if (!tb) {
            for (size_t p = 0; p < kc; p++) {
                const float *src = b + (p0 + p) * ldb + j0 + jr;
                float *dst = pb + p * NR;
                memcpy(dst, src, nr * sizeof(float));
                for (size_t j = nr; j < NR; j++)
                    dst[j] = 0.0f;
            }
        } else {
            pack_transposed(b + (j0 + jr) * ldb + p0, ldb, nr, kc, NR, pb);
            for (size_t j = nr; j < NR; j++)
                for (size_t p = 0; p < kc; p++)
                    pb[p * NR + j] = 0.0f;
        }
        pb += kc * NR;
    }
}

/* B is read in place when the kernel can and its rows are close enough
 * together that a KC x NR panel stays within a few pages. */
static inline int direct_b(int tb, size_t ldb) { return DIRECT_B && !tb && ldb <= 1024; }

/* The KC-deep slice [p0, p0+kc) of one tile of C, rows [i0, i0+mc) and
 * columns [j0, j0+nc): A's rows packed into pa (or pre-packed: pre), then
 * the register kernel over B's panels, packed in pb (NR-column panels of
 * kc rows, from column j0) or, with direct, B itself.  bt: C's beta. */
static void tile_slice(float *pa, const float *pre, int ta, size_t i0, size_t mc, size_t j0,
                       size_t nc, size_t k, size_t p0, size_t kc, float alpha, const float *a,
                       size_t lda, const float *b, size_t ldb, int direct, const float *pb,
                       float bt, float *c, size_t ldc)
{
    size_t np = n_panels(mc);
    const float *ablk = pa;
    if (pre)
        ablk = pre + i0 * k + p0 * mc;
    else
        pack_a(ta, a, lda, i0, mc, p0, kc, pa);
    for (size_t jr = 0; jr < nc; jr += NR) {
        size_t nr = nc - jr < NR ? nc - jr : NR;
        const float *bp = direct ? b + p0 * ldb + j0 + jr : pb + jr * kc;
        const float *panel_a = ablk;
        size_t row = i0;
        for (size_t r = 0; r < np; r++) {
            size_t mr = panel_rows(mc, np, r);
            kernel(mr, kc, panel_a, bp, direct ? ldb : NR, c + row * ldc + j0 + jr, ldc, nr, alpha,
                   bt);
            panel_a += mr * kc;
            row += mr;
        }
    }
}

/* One tile of C: rows [i0, i0+mc), columns [j0, j0+nc), mc <= MC, nc <= NC.
 * pre: A packed in advance (GEMM_NAME_pack_a), or NULL. */
static void tile(float *pack, const float *pre, int ta, int tb, size_t i0, size_t mc, size_t j0,
                 size_t nc, size_t k, float alpha, const float *a, size_t lda, const float *b,
                 size_t ldb, float beta, float *c, size_t ldc)
{
    float *pa = pack, *pb = pack + (size_t)MC * KC;
    int direct = direct_b(tb, ldb);
    for (size_t p0 = 0; p0 < k; p0 += KC) {
        size_t kc = k - p0 < KC ? k - p0 : KC;
        if (!direct)
            pack_b(tb, b, ldb, p0, kc, j0, nc, pb);
        tile_slice(pa, pre, ta, i0, mc, j0, nc, k, p0, kc, alpha, a, lda, b, ldb, direct, pb,
                   p0 == 0 ? beta : 1.0f, c, ldc);
    }
}

/* Tiles [t, t + nt, ...) of a grid of tiles_m rows (of m rows of C, as the
 * threaded GEMM cuts them) by columns of NC, B packed once per slice for
 * all of them rather than once per tile: for a B that is packed (not read in
 * place) and more rows of tiles than threads, as a fully connected layer's
 * forward pass at a large batch (y = x W^T, W transposed as it is packed:
 * LeNet's fc1 at a batch of 1000 packed all of W eight times a call).  The
 * same slices in the same order, so the same bits as tile(). */
static void tiles_sharing_b(float *pack, int ta, int tb, size_t m, size_t n, size_t k,
                            size_t tiles_m, size_t t, size_t nt, float alpha, const float *a,
                            size_t lda, const float *b, size_t ldb, float beta, float *c,
                            size_t ldc)
{
    float *pa = pack, *pb = pack + (size_t)MC * KC;
    for (size_t j0 = 0; j0 < n; j0 += NC) {
        size_t nc = n - j0 < NC ? n - j0 : NC;
        for (size_t p0 = 0; p0 < k; p0 += KC) {
            size_t kc = k - p0 < KC ? k - p0 : KC;
            pack_b(tb, b, ldb, p0, kc, j0, nc, pb);
            for (size_t it = t; it < tiles_m; it += nt) {
                size_t i0 = m * it / tiles_m, i1 = m * (it + 1) / tiles_m;
                tile_slice(pa, NULL, ta, i0, i1 - i0, j0, nc, k, p0, kc, alpha, a, lda, b, ldb, 0,
                           pb, p0 == 0 ? beta : 1.0f, c, ldc);
            }
        }
    }
}

static void scale_c(size_t m, size_t n, float beta, float *c, size_t ldc)
{
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++)
            c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
}

/* ------------------------------------------------- few rows, B transposed
 *
 * C (m, n) = alpha A B^T + beta C with m <= DOT_MAX and A, B both row-major
 * (ta = 0, tb = 1): a fully connected layer's forward pass on a handful of
 * samples, y = x W^T.  Packing B would copy all of W on every call to use
 * each value m times; here each row of W is read once, in place, and dotted
 * with the m rows of A.  A block is mr rows of A by DOT_J rows of B, each
 * pair summed in DOT_L lanes (p = l mod DOT_L, the vector unit's width), the
 * lanes then halved pairwise, the last k mod DOT_L products added in order.
 * Every element is summed the same way wherever its block falls, so the
 * result does not depend on the number of threads. */
#ifndef DOT_L
#define DOT_L (NR / 2)
#endif
#define DOT_M   4 /* rows of A at a time */
#define DOT_MAX 8 /* the most rows of A taken this way */
#define DOT_J   4 /* rows of B at a time */

/* One vector of DOT_L floats (GCC's vector extension: zmm, ymm or xmm
 * registers as the instruction set has them). */
typedef float dot_vec __attribute__((vector_size(DOT_L * sizeof(float))));
static inline dot_vec dot_load(const float *p)
{
    dot_vec v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* A vector of DOT_L copies of v: one broadcast (v - 0 is v, -0 and NaN
 * included, so the compiler drops the subtraction; 0 + v would make -0 +0).
 * Set lane by lane, GCC 12 made it 16 masked broadcasts: LeNet's fc1 took
 * 20 us for its 1.6 MB of weights instead of 16. */
static inline dot_vec dot_splat(float v) { return v - (dot_vec){0}; }

/* The DOT_J sums of acc[j]'s lanes, each lane l < w taking lane l + w for
 * w = DOT_L / 2 down to 1.  An instruction set may give its own (DOT_HALVE:
 * the DOT_J vectors halved together in shuffles, the same sums in the same
 * order); one of them at a time through memory costs LeNet's fc1 at batch 1
 * a sixth of its time. */
#ifdef DOT_HALVE
#define dot_halve DOT_HALVE
#else
static inline void dot_halve(const dot_vec acc[DOT_J], float sums[DOT_J])
{
    for (int j = 0; j < DOT_J; j++) {
        float v[DOT_L];
        memcpy(v, &acc[j], sizeof v);
        for (int w = DOT_L / 2; w >= 1; w /= 2)
            for (int l = 0; l < w; l++)
                v[l] += v[l + w];
        sums[j] = v[0];
    }
}
#endif

/* s plus the products a[p] b[p] for p < n, in order: the few-rows
 * product's last k mod DOT_L columns.  Out of line, so that every caller
 * (dot_rows, fc_share) sums them with the same instructions: inlined, the
 * compiler multiplied them four at a time in one place and contracted each
 * product and sum into one multiply-add in another, which round apart. */
static __attribute__((noinline)) float dot_tail(float s, const float *a, const float *b, size_t n)
{
    for (size_t p = 0; p < n; p++)
        s += a[p] * b[p];
    return s;
}

static inline __attribute__((always_inline)) void dot_rows(const int mr, size_t k, float alpha,
                                                           const float *a, size_t lda,
                                                           const float *b, size_t ldb, size_t nj,
                                                           float beta, float *c, size_t ldc)
{
    dot_vec acc[DOT_M][DOT_J], wj[DOT_J];
    const float *bj[DOT_J];
    /* Past the edge (nj < DOT_J) the last row is dotted again and dropped. */
#pragma GCC unroll 4
    for (int j = 0; j < DOT_J; j++)
        bj[j] = b + ((size_t)j < nj ? (size_t)j : nj - 1) * ldb;
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int j = 0; j < DOT_J; j++)
            acc[i][j] = (dot_vec){0};
    size_t kv = k / DOT_L * DOT_L;
    for (size_t p = 0; p < kv; p += DOT_L) {
#pragma GCC unroll 4
        for (int j = 0; j < DOT_J; j++)
            wj[j] = dot_load(bj[j] + p);
        for (int i = 0; i < mr; i++) {
            dot_vec x = dot_load(a + (size_t)i * lda + p);
#pragma GCC unroll 4
            for (int j = 0; j < DOT_J; j++)
                acc[i][j] += x * wj[j];
        }
    }
    for (int i = 0; i < mr; i++) {
        float sums[DOT_J];
        dot_halve(acc[i], sums);
        for (size_t j = 0; j < nj; j++) {
            float s =
                kv < k ? dot_tail(sums[j], a + (size_t)i * lda + kv, bj[j] + kv, k - kv) : sums[j];
            float *cij = c + (size_t)i * ldc + j;
            *cij = beta == 0.0f ? alpha * s : beta * *cij + alpha * s;
        }
    }
}

/* Columns [j0, j1) of C, DOT_J at a time: from j0 up, or (rev) from the
 * last block down.  A layer's weights larger than the core's L2 cache
 * (LeNet's fc1, 1.6 MB, at batch 1 on one thread) stream in from L3 at every
 * call when every call sweeps them the same way, since each row has left
 * the cache when it comes round again; sweeping them up and down in turn
 * finds the rows the last call read last still there (a quarter less time
 * for 500 x 800 weights on the Ice Lake Xeon).  Every element is the same
 * sum either way. */
static void dot_cols(size_t m, size_t k, float alpha, const float *a, size_t lda, const float *b,
                     size_t ldb, size_t j0, size_t j1, int rev, float beta, float *c, size_t ldc)
{
    size_t nb = (j1 - j0 + DOT_J - 1) / DOT_J;
    for (size_t q = 0; q < nb; q++) {
        size_t j = j0 + (rev ? nb - 1 - q : q) * DOT_J;
        size_t nj = j1 - j < DOT_J ? j1 - j : DOT_J;
        const float *bj = b + j * ldb;
        /* Rows of A DOT_M at a time (each group reads these rows of B again). */
        for (size_t i = 0; i < m; i += DOT_M) {
            const float *ai = a + i * lda;
            float *cij = c + i * ldc + j;
            switch (m - i < DOT_M ? m - i : DOT_M) {
            case 1: dot_rows(1, k, alpha, ai, lda, bj, ldb, nj, beta, cij, ldc); break;
            case 2: dot_rows(2, k, alpha, ai, lda, bj, ldb, nj, beta, cij, ldc); break;
            case 3: dot_rows(3, k, alpha, ai, lda, bj, ldb, nj, beta, cij, ldc); break;
            default: dot_rows(4, k, alpha, ai, lda, bj, ldb, nj, beta, cij, ldc); break;
            }
        }
    }
}

/* Which way dot_cols sweeps B this time: the other way from the last call
 * with the same B, or up for a B not among the last few seen. */
static int dot_direction(cn_cpu *cpu, const float *b)
{
    size_t n = sizeof cpu->dot_seen / sizeof cpu->dot_seen[0];
    for (size_t i = 0; i < n; i++)
        if (cpu->dot_seen[i].b == b)
            return cpu->dot_seen[i].rev ^= 1;
    size_t i = cpu->dot_next++ % n;
    cpu->dot_seen[i].b = b;
    cpu->dot_seen[i].rev = 0;
    return 0;
}

/* Threads for a product of macs multiply-adds split in pieces: the split
 * threads (a team's in a team pass), no more than 64 K multiply-adds each
 * keep busy, nor than pieces. */
static int dot_threads(const cn_cpu *cpu, size_t macs, size_t pieces)
{
    size_t most = macs / 65536 + 1;
    most = pieces < most ? pieces : most;
    int dt = cn_cpu_split_threads(cpu);
    return (size_t)dt > most ? (int)most : dt;
}

/* A few-rows product split among threads by whole DOT_J blocks of columns
 * (dot_share). */
typedef struct dot_job {
    size_t m, n, k, lda, ldb, ldc;
    float alpha, beta;
    const float *a, *b;
    float *c;
    int rev;
} dot_job;

static void dot_share(void *arg, const cn_share *s)
{
    const dot_job *j = arg;
    size_t blocks = (j->n + DOT_J - 1) / DOT_J;
    size_t b0 = cn_share_at(blocks, s->lo), b1 = cn_share_at(blocks, s->hi);
    size_t j1 = b1 * DOT_J < j->n ? b1 * DOT_J : j->n;
    dot_cols(j->m, j->k, j->alpha, j->a, j->lda, j->b, j->ldb, b0 * DOT_J, j1, j->rev, j->beta,
             j->c, j->ldc);
}

/* ------------------------------------------------- one row, weights kept by column
 *
 * A fully connected layer's forward pass on one sample, y = W x + b, with
 * W (m, k) kept transposed (fc_keep, backend.h: in a forward-only network):
 * the weights that input i meets, row i of W^T, are read only where x[i]
 * is not 0, and after a relu most are 0 (LeNet's fc1 once trained: 89% of
 * its 800 inputs over MNIST's test images; fashion-best's: 52%; with the
 * weights they start from and random inputs 25% and 33%).  The product
 * above reads all of W in any case.
 *
 * The sums are the product above's, bit for bit: there output j sums its
 * products in DOT_L lanes, lane l taking the inputs i = l mod DOT_L in
 * order, and then halves the lanes (dot_halve).  Here the outputs go in
 * chunks of FC_CW (FC_NV vectors, whose sums stay in registers), and for
 * each lane l a chunk's sums run over the inputs i = l mod DOT_L that are
 * not 0, in order, into row l of a table (DOT_L rows of the chunk's
 * width), whose rows are then halved as the lanes are; the inputs past
 * the last whole vector are added in order, then the bias.  W^T is kept
 * in that order, chunk by chunk and in a chunk lane by lane, so that each
 * run is one stream: row (l, t) of chunk c holds the chunk's weights of
 * input i = t DOT_L + l.  An input of 0 adds +-0 to a partial sum that is
 * never -0 (it starts at +0): skipping it changes nothing, but where a
 * weight is infinite or NaN (the product would have been NaN). */
#define FC_HEAD 16 /* keep's head: its first float 1 once W^T is made */
#define FC_NV   8  /* vectors of outputs in a chunk */
#define FC_CW   (FC_NV * DOT_L)

/* The share of inputs 0 from which they are skipped: on one thread, with
 * W^T of FC_BIG bytes or more, and smaller; on more threads (see
 * GEMM_NAME_fc). */
#define FC_SPARSE_BIG   0.2
#define FC_SPARSE       0.3
#define FC_SPARSE_SPLIT 0.4
#define FC_BIG          ((size_t)512 << 10)

/* Outputs rounded up to whole vectors. */
static size_t fc_mp(size_t m) { return (m + DOT_L - 1) / DOT_L * DOT_L; }

/* keep: the head, W^T (kv rows of mp, kv = k - k mod DOT_L, chunk by
 * chunk), the table (DOT_L rows of FC_CW for each chunk), and room for
 * each of threads threads' lists of the inputs that count (kv indices). */
size_t GEMM_CAT(GEMM_NAME, _fc_floats)(size_t m, size_t k, int threads)
{
    size_t kv = k / DOT_L * DOT_L, chunks = (fc_mp(m) + FC_CW - 1) / FC_CW;
    return FC_HEAD + kv * fc_mp(m) + chunks * DOT_L * FC_CW + (size_t)threads * kv;
}

/* Lane l's sums of one chunk (NV vectors wide: lane l's T rows of W^T from
 * wl, NV DOT_L floats each) over the inputs t DOT_L + l for the cnt t in
 * list, into row; where cnt is T, over every t < T without reading the
 * list (an index read before each row's weights: a quarter more time). */
static inline __attribute__((always_inline)) void fc_lane(const int NV, const float *x, size_t l,
                                                          const float *wl, const uint32_t *list,
                                                          size_t cnt, size_t T, float *row)
{
    dot_vec acc[FC_NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++)
        acc[v] = (dot_vec){0};
    for (size_t q = 0; q < cnt; q++) {
        size_t t = cnt == T ? q : list[q];
        dot_vec xi = dot_splat(x[t * DOT_L + l]);
        const float *r = wl + t * NV * DOT_L;
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++)
            acc[v] += xi * dot_load(r + v * DOT_L);
    }
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++)
        memcpy(row + v * DOT_L, &acc[v], sizeof acc[v]);
}

/* The forward pass of one sample, split among threads by chunks of
 * outputs (fc_share). */
typedef struct fc_job {
    size_t m, k, mp;
    const float *x, *w, *wt, *b;
    float *pt, *y;
    uint32_t *lists; /* thread t's: kv indices from lists + t kv */
    int rev;         /* chunks and lanes from the last down (dot_cols' sweeps) */
    int sparse;      /* the inputs 0 skipped (lists), else all taken */
} fc_job;

static void fc_share(void *arg, const cn_share *s)
{
    const fc_job *j = arg;
    size_t kv = j->k / DOT_L * DOT_L, T = kv / DOT_L, chunks = (j->mp + FC_CW - 1) / FC_CW;
    size_t c0 = cn_share_at(chunks, s->lo), c1 = cn_share_at(chunks, s->hi);
    if (c1 <= c0)
        return;
    /* Each lane's inputs that count, in order, without a branch on each
     * (lane l's list from lists + l T), made by each thread for itself
     * (made by one and read by the other from its core, LeNet's one image
     * on 2 threads took 4-8% longer).  Not sparse: every input taken. */
    uint32_t *lists = j->lists + (size_t)s->t * kv;
    size_t cnt[DOT_L];
    for (size_t l = 0; l < DOT_L; l++)
        cnt[l] = j->sparse ? 0 : T;
    for (size_t t = 0; j->sparse && t < T; t++)
        for (size_t l = 0; l < DOT_L; l++) {
            lists[l * T + cnt[l]] = (uint32_t)t;
            cnt[l] += j->x[t * DOT_L + l] != 0.0f;
        }
    for (size_t ci = c0; ci < c1; ci++) {
        size_t c = j->rev ? c0 + c1 - 1 - ci : ci;
        size_t j0 = c * FC_CW, cw = j->mp - j0 < FC_CW ? j->mp - j0 : FC_CW, nv = cw / DOT_L;
        const float *wc = j->wt + j0 * kv;
        float *pc = j->pt + c * DOT_L * FC_CW;
        for (size_t li = 0; li < DOT_L; li++) {
            size_t l = j->rev ? DOT_L - 1 - li : li;
            const float *wl = wc + l * T * cw;
            const uint32_t *list = lists + l * T;
            float *row = pc + l * FC_CW;
            switch (nv) {
            case 1: fc_lane(1, j->x, l, wl, list, cnt[l], T, row); break;
            case 2: fc_lane(2, j->x, l, wl, list, cnt[l], T, row); break;
            case 3: fc_lane(3, j->x, l, wl, list, cnt[l], T, row); break;
            case 4: fc_lane(4, j->x, l, wl, list, cnt[l], T, row); break;
            case 5: fc_lane(5, j->x, l, wl, list, cnt[l], T, row); break;
            case 6: fc_lane(6, j->x, l, wl, list, cnt[l], T, row); break;
            case 7: fc_lane(7, j->x, l, wl, list, cnt[l], T, row); break;
            default: fc_lane(8, j->x, l, wl, list, cnt[l], T, row); break;
            }
        }
        /* the lanes halved: row l takes row l + h for h = DOT_L / 2 down to 1 */
        for (size_t h = DOT_L / 2; h >= 1; h /= 2)
            for (size_t l = 0; l < h; l++)
                for (size_t v = 0; v < cw; v += DOT_L) {
                    dot_vec sum = dot_load(pc + l * FC_CW + v) + dot_load(pc + (l + h) * FC_CW + v);
                    memcpy(pc + l * FC_CW + v, &sum, sizeof sum);
                }
        size_t jn = j0 + cw < j->m ? j0 + cw : j->m;
        for (size_t o = j0; o < jn; o++) {
            float sum = pc[o - j0];
            if (kv < j->k)
                sum = dot_tail(sum, j->x + kv, j->w + o * j->k + kv, j->k - kv);
            j->y[o] = sum + j->b[o];
        }
    }
}

/* W (m, k) into keep's W^T: chunk by chunk, lane by lane (see above). */
static void fc_transpose(size_t m, size_t k, const float *w, float *wt)
{
    size_t kv = k / DOT_L * DOT_L, T = kv / DOT_L, mp = fc_mp(m);
    for (size_t j0 = 0; j0 < mp; j0 += FC_CW) {
        size_t cw = mp - j0 < FC_CW ? mp - j0 : FC_CW;
        float *wc = wt + j0 * kv;
        for (size_t l = 0; l < DOT_L; l++)
            for (size_t t = 0; t < T; t++) {
                float *r = wc + (l * T + t) * cw;
                size_t i = t * DOT_L + l;
                for (size_t o = 0; o < cw; o++)
                    r[o] = j0 + o < m ? w[(j0 + o) * k + i] : 0.0f;
            }
    }
}

/* y (n, m) = x (n, k) w^T + b with keep (W^T made first where its head
 * says so), for one sample: 1 done, 0 not (n is not 1, or below). */
int GEMM_CAT(GEMM_NAME, _fc)(const cn_backend *be, size_t n, size_t m, size_t k, const float *x,
                             const float *w, const float *b, float *y, float *keep)
{
    if (n != 1)
        return 0;
    const cn_cpu *cpu = cn_cpu_of(be);
    size_t mp = fc_mp(m), kv = k / DOT_L * DOT_L, chunks = (mp + FC_CW - 1) / FC_CW;
    float *wt = keep + FC_HEAD, *pt = wt + kv * mp;
    uint32_t *lists = (uint32_t *)(pt + chunks * DOT_L * FC_CW); /* only ever indices */
    if (keep[0] != 1.0f) {
        fc_transpose(m, k, w, wt);
        keep[0] = 1.0f;
    }
    /* Where fewer than FC_SPARSE of the inputs are 0, every input is taken
     * (the same sums): the lists and the index before each row cost more
     * than the reads they save.  Where they count depends on where the
     * weights come from.  In a loop of its own, the part of W^T that the
     * last pass read last is still in L2 (the sweeps alternate), and the
     * lists pay from a quarter of the inputs 0 or more (AMD EPYC Zen 5, each
     * against all rows: 500 x 800 20% 0.97x, 25% 1.00x, 50% 1.40x; 256 x
     * 2 352 20% 0.98x, 25% 1.02x, 50% 1.36x; 128 x 256 20% 0.93x, 25% 0.97x,
     * 50% 1.16x).  In a network's pass the layers before it leave less of a
     * large W^T in L2, and the rows skipped are reads from L3 saved: LeNet's
     * fc1 (1.6 MB, a quarter of its inputs 0 with its starting weights) and
     * mnist-best's (800 KB, 24.5%) made the one image's pass 1.07x and 1.06x
     * as fast; so from a fifth with W^T of FC_BIG or more.  (Fetching the
     * rows 4 ahead of the one read, for the prefetchers' sake, made it
     * slower: 0.96-0.98x at half the inputs 0, fashion-best's pass 0.98x.)
     * On more threads, where fewer than FC_SPARSE_SPLIT are 0, the product
     * above: split by its blocks of 4 outputs, moved by the threads' times,
     * it took LeNet's and fashion-best's one image on 2 threads 5-6% less
     * time than whole chunks do (from 30%, fashion-best 0.98x). */
    size_t nz = 0;
    for (size_t i = 0; i < kv; i++)
        nz += x[i] != 0.0f;
    int split = cn_cpu_split_threads(cpu) > 1;
    double share = FC_SPARSE;
    if (split)
        share = FC_SPARSE_SPLIT;
    else if (kv * mp * sizeof(float) >= FC_BIG)
        share = FC_SPARSE_BIG;
    int sparse = (double)nz < (1.0 - share) * (double)kv;
    if (!sparse && split)
        return 0;
    fc_job j = {m, k, mp, x, w, wt, b, pt, y, lists, dot_direction((cn_cpu *)cpu, keep), sparse};
    /* Threads as the product above takes them, by chunks, cut evenly (a
     * team's cuts, moved by the threads' times, flip between 1 + 3 and
     * 2 + 2 of LeNet's 4 chunks). */
    cn_cpu_shares_even(be, dot_threads(cpu, kv * m, chunks), fc_share, &j);
    return 1;
}

/* ------------------------------------------------- depth split among threads
 *
 * C (m, n) = A B + beta C with A and B untransposed, B read in place, alpha
 * 1 and at most MC rows: a fully connected layer's input gradient, dx = dy W.
 * Split by columns, each thread would read a column strip of every row of
 * W, rows that the other core's share of the optimizer's update then writes
 * (each written line first taken out of the reader's cache: three times the
 * update's time on a 2-core AMD EPYC); split by depth, each thread reads only
 * a band of W's rows, as its share of the forward pass and of the update do.
 * Thread t takes the KC-deep slices [S t / nk, S (t + 1) / nk) of the S: the
 * first thread sums its slices into C, the others each slice into its own
 * area of their packing buffer, and C then adds those in slice order.  With
 * alpha 1 a slice's sum is added to C in one rounding either way (the kernel
 * adds beta C to it, beta 1 past the first slice), so the bits are tile()'s. */

/* The first of thread t's slices of the S among nk threads (t = nk: S). */
static inline size_t first_slice(size_t slices, size_t t, size_t nk) { return slices * t / nk; }

/* Slices [s0, s1) of C's m rows (m <= MC) into c: beta for the first. */
static void depth_slices(float *pa, size_t m, size_t n, size_t k, size_t s0, size_t s1,
                         const float *a, size_t lda, const float *b, size_t ldb, float beta,
                         float *c, size_t ldc)
{
    for (size_t j0 = 0; j0 < n; j0 += NC) {
        size_t nc = n - j0 < NC ? n - j0 : NC;
        for (size_t s = s0; s < s1; s++) {
            size_t p0 = s * KC, kc = k - p0 < KC ? k - p0 : KC;
            tile_slice(pa, NULL, 0, 0, m, j0, nc, k, p0, kc, 1.0f, a, lda, b, ldb, 1, NULL,
                       s == s0 ? beta : 1.0f, c, ldc);
        }
    }
}

/* Threads for the depth split of an m x n x k product (0: not taken): as
 * many as there are slices, when each thread's slices fit its packing
 * buffer beyond the packed A. */
static int depth_threads(const cn_cpu *cpu, int nt, int ta, int tb, size_t m, size_t n, size_t k,
                         float alpha, size_t ldb)
{
    size_t slices = (k + KC - 1) / KC, nk = slices < (size_t)nt ? slices : (size_t)nt;
    if (ta || tb || alpha != 1.0f || !direct_b(tb, ldb) || m > MC || nk < 2)
        return 0;
    size_t most = (slices + nk - 1) / nk; /* slices of the busiest thread */
    return m * n <= (cpu->pack_floats - (size_t)MC * KC) / most ? (int)nk : 0;
}

static void gemm_by_depth(const cn_cpu *cpu, int nk, size_t m, size_t n, size_t k, const float *a,
                          size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc)
{
    size_t slices = (k + KC - 1) / KC;
    PARALLEL_FOR(nk, t, nk, {
        float *pack = cpu->pack + (size_t)t * cpu->pack_floats, *own = pack + MC * KC;
        size_t s0 = first_slice(slices, (size_t)t, (size_t)nk);
        size_t s1 = first_slice(slices, (size_t)t + 1, (size_t)nk);
        if (t == 0)
            depth_slices(pack, m, n, k, s0, s1, a, lda, b, ldb, beta, c, ldc);
        else
            for (size_t s = s0; s < s1; s++)
                depth_slices(pack, m, n, k, s, s + 1, a, lda, b, ldb, 0.0f, own + (s - s0) * m * n,
                             n);
    });
    /* C adds the other threads' slices in order, its rows shared out as the
     * layers below share out samples. */
    PARALLEL_FOR(nk, t, nk, {
        size_t i0 = m * (size_t)t / (size_t)nk, i1 = m * (size_t)(t + 1) / (size_t)nk;
        for (size_t o = 1; o < (size_t)nk; o++) {
            const float *part = cpu->pack + o * cpu->pack_floats + MC * KC;
            size_t count =
                first_slice(slices, o + 1, (size_t)nk) - first_slice(slices, o, (size_t)nk);
            for (size_t q = 0; q < count; q++, part += m * n)
                for (size_t i = i0; i < i1; i++)
                    for (size_t j = 0; j < n; j++)
                        c[i * ldc + j] += part[i * n + j];
        }
    });
}

/* Packs all of op(A) (m x k) for GEMM_NAME_st_pre: m * k floats, laid out
 * block by block as tile() reads them. */
void GEMM_CAT(GEMM_NAME, _pack_a)(int ta, size_t m, size_t k, const float *a, size_t lda,
                                  float *pre)
{
    for (size_t i0 = 0; i0 < m; i0 += MC) {
        size_t mc = m - i0 < MC ? m - i0 : MC;
        for (size_t p0 = 0; p0 < k; p0 += KC) {
            size_t kc = k - p0 < KC ? k - p0 : KC;
            pack_a(ta, a, lda, i0, mc, p0, kc, pre + i0 * k + p0 * mc);
        }
    }
}

/* Single-threaded, with A packed in advance (pre) or packed here (pre NULL,
 * from a, lda, ta); the caller owns pack (cn_gemm_pack_floats() floats). */
void GEMM_CAT(GEMM_NAME, _st_pre)(float *pack, const float *pre, int ta, int tb, size_t m, size_t n,
                                  size_t k, float alpha, const float *a, size_t lda, const float *b,
                                  size_t ldb, float beta, float *c, size_t ldc)
{
    if (m == 0 || n == 0)
        return;
    if (k == 0 || alpha == 0.0f) {
        scale_c(m, n, beta, c, ldc);
        return;
    }
    for (size_t i0 = 0; i0 < m; i0 += MC)
        for (size_t j0 = 0; j0 < n; j0 += NC)
            tile(pack, pre, ta, tb, i0, m - i0 < MC ? m - i0 : MC, j0, n - j0 < NC ? n - j0 : NC, k,
                 alpha, a, lda, b, ldb, beta, c, ldc);
}

void GEMM_CAT(GEMM_NAME, _st)(float *pack, int ta, int tb, size_t m, size_t n, size_t k,
                              float alpha, const float *a, size_t lda, const float *b, size_t ldb,
                              float beta, float *c, size_t ldc)
{
    GEMM_CAT(GEMM_NAME, _st_pre)(pack, NULL, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void GEMM_NAME(const cn_backend *be, int ta, int tb, size_t m, size_t n, size_t k, float alpha,
               const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
               size_t ldc)
{
    const cn_cpu *cpu = cn_cpu_of(be);
    if (m == 0 || n == 0)
        return;
    if (k == 0 || alpha == 0.0f) {
        scale_c(m, n, beta, c, ldc);
        return;
    }
    int nt = cpu->threads > 0 ? cpu->threads : 1;
    if (m <= DOT_MAX && !ta && tb) {
        dot_job j = {m, n, k, lda, ldb, ldc, alpha, beta, a, b, c, 0};
        j.rev = dot_direction((cn_cpu *)cpu, b);
        /* Column ranges of whole DOT_J blocks, one per thread (a team
         * pass's too). */
        cn_cpu_shares(be, dot_threads(cpu, m * n * k, (n + DOT_J - 1) / DOT_J), dot_share, &j);
        return;
    }
    int nk = depth_threads(cpu, nt, ta, tb, m, n, k, alpha, ldb);
    if (nk) {
        gemm_by_depth(cpu, nk, m, n, k, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    size_t tn = NC, tiles_m = (m + MC - 1) / MC;
    if (!direct_b(tb, ldb) && tiles_m >= 2 * (size_t)nt) {
        PARALLEL_FOR(nt, t, nt, {
            tiles_sharing_b(cpu->pack + (size_t)thread_id() * cpu->pack_floats, ta, tb, m, n, k,
                            tiles_m, (size_t)t, (size_t)nt, alpha, a, lda, b, ldb, beta, c, ldc);
        });
        return;
    }
    /* Tiles of up to MC x tn, with tn halved (in whole NR panels) until every
     * thread has work, as far as the shape allows. */
    while (tiles_m * ((n + tn - 1) / tn) < (size_t)nt * 2 && tn > NR * 2)
        tn = (tn / 2 + NR - 1) / NR * NR;
    /* The rows shared evenly among the rows of tiles, each at most MC (128
     * rows: 64 and 64, not 126 and 2, which left one of 2 threads all the
     * work of a batch of 128 in a fully connected layer), and the columns'
     * NR panels among the tiles of a row (800 columns in 4 tiles: 6, 6, 6
     * and 7 panels, not 8, 8, 8 and 1); each tile at most tn wide. */
    size_t tiles_n = (n + tn - 1) / tn, panels = (n + NR - 1) / NR;
    long tiles = (long)(tiles_m * tiles_n);
    if (tiles < nt)
        nt = (int)tiles;
    PARALLEL_FOR(nt, t, tiles, {
        int tid = thread_id();
        size_t jt = (size_t)t % tiles_n, it = (size_t)t / tiles_n;
        size_t i0 = m * it / tiles_m, i1 = m * (it + 1) / tiles_m;
        size_t j0 = panels * jt / tiles_n * NR, j1 = panels * (jt + 1) / tiles_n * NR;
        tile(cpu->pack + (size_t)tid * cpu->pack_floats, NULL, ta, tb, i0, i1 - i0, j0,
             (j1 < n ? j1 : n) - j0, k, alpha, a, lda, b, ldb, beta, c, ldc);
    });
}
