/* conv.c - 2-d convolution on the CPU, one sample per thread.
 *
 * With K = c*kh*kw and P = oh*ow, for each sample s (in parallel):
 *   forward   col (K, P) = im2col(x_s);  y_s (m, P) = W (m, K) col + b
 *   backward  row (P, K) = im2row(x_s);  dW_chunk += dy_s (m, P) row
 *             dcol (K, P) = W^T dy_s;    dx_s = col2im(dcol)
 * Each product is a single-threaded GEMM whose operands stay in the thread's
 * cache: W (and W^T) is packed once per call and shared, col, row and dy_s
 * are read in place.  y_s is written in NCHW order directly.  A 1x1
 * convolution with stride 1 and no padding uses x_s itself for col.  A relu
 * that follows can be fused: applied to y_s in forward, undone from y in
 * backward.  With "same" padding, dx is computed as a convolution instead
 * (dx_by_conv).
 *
 * A batch with fewer samples than threads (one image at a time, as a
 * deployed model is asked) is worked on sample by sample, each split among
 * the threads instead: each thread takes a share of the filters, with its
 * own copy of the padded sample (or col) and of its filters' weights, so
 * that the threads share nothing they write (on a processor whose cores
 * are far apart, one core reading what another just wrote costs more than
 * making it again).  In a team pass (backend.h, team) the shares go to
 * workers that wait for them (cn_cpu_shares).  Every output is summed as one
 * thread sums it.
 *
 * Weight gradients are summed per chunk of samples, then the chunks in
 * order.  Chunks are cut from the batch size alone, so the sums, and the
 * result, do not depend on the number of threads.
 *
 * Where the kernel set has them (AVX-512), two faster paths come first: the
 * direct convolution (dconv_*: stride 1, rows of 12 outputs or more) and,
 * before it, Winograd's F(4x4, 3x3) for 3x3 convolutions with stride 1 and
 * enough channels (kernels/winograd_avx512.c; forward, input gradient and
 * weight gradient, each chosen by its shape alone) and F(2x2, 5x5) for the
 * forward pass of 5x5 ones on planes of up to 8 x 8 outputs
 * (kernels/winograd5_avx512.c: LeNet's second layer), unless the backend is
 * asked to be exact (cn_backend.exact); a forward-only network's pass over
 * one image on a plane of up to 7 x 7 tiles takes F(4x4, 3x3) with vectors
 * along the filters (kernels/winograd1_avx512.c).  Part of the CPU
 * kernels compiled once per instruction set (kernels/cpu_kernels.h). */

/* Gradients of a batch are summed in at most this many partial sums. */
#define MAX_CHUNKS 16

/* Brings the next sample's data towards the cache while this one is worked
 * on: it was written long ago (the forward pass, the layer above) and would
 * otherwise arrive a cache line at a time, on demand. */
static void prefetch(const float *p, size_t floats)
{
    for (size_t i = 0; i < floats; i += 16)
        __builtin_prefetch(p + i, 0, 2);
}

/* Threads for one sample's forward pass when the batch has fewer samples
 * than threads: none (1) below SPLIT_MACS multiply-adds, where waking them
 * and then reading the output the other thread wrote (the next layer, on
 * far-apart cores) costs more than the split saves.  LeNet's first layer
 * (288 K) took 9 us split against 5 on one thread, and the pooling after it
 * 3 us against 1 (AMD EPYC Zen 5, batch 1, 2 threads): 512 K gave LeNet at
 * batch 1 12% more images a second and fashion-best the same. */
#define SPLIT_MACS (512 * 1024)
static int split_threads(const cn_backend *be, size_t n, size_t m, size_t macs)
{
    int nt = cn_cpu_split_threads(cn_cpu_of(be));
    if ((size_t)nt <= n || macs < SPLIT_MACS)
        return 1;
    return (size_t)nt < m ? nt : (int)m;
}

/* A thread's part s of m filters: filters [*first, *first + the count
 * returned). */
static size_t filter_part(size_t m, const cn_share *s, size_t *first)
{
    *first = cn_share_at(m, s->lo);
    return cn_share_at(m, s->hi) - *first;
}

static int col_is_x(const cn_win *g)
{
    return g->kh == 1 && g->kw == 1 && g->stride == 1 && g->pad == 0;
}

/* The sum of d[0, count) in LANES partial sums, added up in a fixed order:
 * a loop that vectorises, with a result independent of threads. */
static float lane_sum(const float *restrict d, size_t count)
{
    float part[LANES] = {0};
    size_t j = 0;
    for (; j + LANES <= count; j += LANES)
        for (int l = 0; l < LANES; l++)
            part[l] += d[j + l];
    for (; j < count; j++)
        part[0] += d[j];
    float sum = 0.0f;
    for (int l = 0; l < LANES; l++)
        sum += part[l];
    return sum;
}

static size_t n_chunks(size_t n) { return n < MAX_CHUNKS ? n : MAX_CHUNKS; }

/* Partial sums this large (32 K floats: a 3x3 convolution of 64 channels
 * to 64 or more) are summed in rounds of one chunk per thread (FOR_CHUNKS);
 * smaller ones are all kept until the end, a thread's chunks in one run: the
 * rounds' waits cost mnist-best's step 5% (AMD EPYC Zen 5, 2 threads), and
 * would save under 2 MB there. */
#define ROUND_PART (32 * 1024)

/* Chunks at a time in one of FOR_CHUNKS's rounds, on nt threads: one a
 * thread, or all in one round. */
static size_t chunk_round(size_t chunks, size_t part, size_t nt)
{
    return part >= ROUND_PART ? nt : (chunks + nt - 1) / nt * nt;
}

/* Floats of FOR_CHUNKS's area for batches of up to max_chunks chunks, on up
 * to slots threads: the running sum and a slot for each chunk of a round. */
static size_t chunk_area(size_t max_chunks, size_t slots, size_t part)
{
    size_t round = part >= ROUND_PART && slots < max_chunks ? slots : max_chunks;
    return (round + 1) * part;
}

/* For a stride-1 convolution dx is itself a convolution: of dy, padded by
 * k - 1 - pad, with the filters flipped and their channels swapped.  It costs
 * h*w / (oh*ow) times the dcol product but needs no col2im: worth it when the
 * input is not much larger than the output ("same" padding). */
static int dx_by_conv(const cn_win *g)
{
    return g->stride == 1 && !col_is_x(g) && 4 * g->h * g->w <= 5 * g->oh * g->ow;
}

static cn_win flipped(const cn_win *g, size_t m)
{
    return (cn_win){m, g->oh, g->ow, g->kh, g->kw, 1, g->kh - 1 - g->pad, g->h, g->w};
}

/* The filters of flipped(): wf[c][f][a][b] = w[f][c][kh-1-a][kw-1-b], c
 * filters of m channels. */
static void flip_filters(const cn_win *g, size_t m, const float *w, float *wf)
{
    size_t kh = g->kh, kw = g->kw;
    for (size_t f = 0; f < m; f++)
        for (size_t c = 0; c < g->c; c++)
            for (size_t a = 0; a < kh; a++)
                for (size_t e = 0; e < kw; e++)
                    wf[((c * m + f) * kh + a) * kw + e] =
                        w[((f * g->c + c) * kh + kh - 1 - a) * kw + kw - 1 - e];
}

/* Accumulators of the direct weight gradient per (c, ki): at most this many
 * vectors of 16 lanes (filters per group times kernel width, dw_group). */
#define DW_VECS 24

#ifdef HAVE_DIRECT_CONV
/* The direct path's area per thread, in floats, as conv_fwd_direct and
 * conv_bwd_direct lay it out: padded inputs (hp x wp) each followed by its
 * output gradient in rows of wp (one: a sample's pair), a padded gradient
 * (dq, hq x wq, for dx), the flat outputs of dconv_sample (forward's, flat_y,
 * or dx's, flat_x) and the weight gradient's accumulators (acc). */
typedef struct dconv_area {
    size_t hp, wp, hq, wq, one, dq, flat_y, flat_x, acc, shift;
} dconv_area;

static dconv_area direct_area(const cn_win *g, size_t m)
{
    dconv_area a;
    a.hp = g->h + 2 * g->pad, a.wp = g->w + 2 * g->pad;
    a.hq = g->oh + 2 * (g->kh - 1 - g->pad), a.wq = g->ow + 2 * (g->kw - 1 - g->pad);
    a.one = g->c * a.hp * a.wp + m * g->oh * a.wp;
    a.dq = m * a.hq * a.wq;
    a.flat_y = dconv_scratch(g->oh, g->ow, a.wp);
    a.flat_x = dconv_scratch(g->h, g->w, a.wq);
    a.acc = g->c * g->kh * DW_VECS * 16;
    /* The forward pass's shifted copies, where that layout pays. */
    a.shift = dconv_shift_pays(g, m) ? dconv_shift_floats(g) : 0;
    return a;
}
#endif

/* The direct path's area per thread (0 where there is none): at least one
 * sample's pair. */
static size_t direct_floats(const cn_win *g, size_t m)
{
#ifdef HAVE_DIRECT_CONV
    dconv_area a = direct_area(g, m);
    return a.one + a.dq + (a.flat_y > a.flat_x ? a.flat_y : a.flat_x) + a.acc + a.shift;
#else
    (void)g, (void)m;
    return 0;
#endif
}

#ifdef HAVE_LANE_CONV
/* The batch along the lanes (kernels/lanes_avx512.c) can take the layer:
 * its window's offsets fit the kernel's table and a thread's area for a
 * block of 16 samples stays within LC_MAX_FLOATS (1 MB: LeNet's second
 * layer needs 0.57 MB). */
#define LC_MAX_FLOATS (256 * 1024)
static int lanes_fit(const cn_win *g, size_t m)
{
    return g->c * g->kh * g->kw <= LC_MAX_K && lc_thread_floats(g, m) <= LC_MAX_FLOATS;
}

#endif

#ifdef HAVE_WINOGRAD
/* The forward pass's Winograd kernels for a window: F(4x4, 3x3)'s
 * (winograd_avx512.c) or, for a 5x5 window on a small plane, F(2x2, 5x5)'s
 * (winograd5_avx512.c), whichever use_wino_fwd took (the two files come
 * together, with AVX-512). */
static int five(const cn_win *g) { return g->kh == 5; }

static int use_wino_fwd(const cn_win *g, size_t m)
{
    return use_winograd5(g, m) || use_winograd(g, m);
}

static size_t wk_unit(const cn_win *g)
{
    if (five(g))
        return w5_unit(g);
    wg_shape sh = wg_shape_of(g);
    return wg_unit(g, &sh);
}

/* A thread's area (wk_area). */
static size_t wk_thread_floats(const cn_win *g)
{
    return five(g) ? w5_thread_floats(g) : wg_thread_floats(g);
}

static wg_area wk_area(const cn_win *g, float *area)
{
    return five(g) ? w5_area_of(g, area) : wg_area_of(g, area);
}

static void wk_filters(const cn_win *g, const float *w, size_t m, size_t k0, size_t k1, float *u)
{
    if (five(g))
        w5_filters(w, m, g->c, k0, k1, u);
    else
        wg_filters(w, m, g->c, k0, k1, u);
}

/* The unit's input transforms: cnt samples from x (and xm, F(4x4, 3x3)'s
 * mask; the 5x5 kernels run forward only, without one); of one sample,
 * only vectors [k0, k1) of its tiles where wk_shared_vecs has some. */
static void wk_inputs(const cn_win *g, const float *x, const float *xm, size_t cnt,
                      const wg_area *a, size_t k0, size_t k1)
{
    if (five(g))
        w5_inputs(g, x, cnt, a->v, a->ldv);
    else
        wg_inputs(g, x, xm, cnt, a->xs, a->v, a->ldv, k0, k1);
}

static void wk_outputs(const cn_win *g, size_t m, size_t cnt, const wg_area *a, const float *u,
                       size_t fa, size_t mt, const float *b, const float *scale, const float *shift,
                       int relu, int pool, float *y, size_t k0, size_t k1)
{
    if (five(g))
        w5_outputs(g, m, cnt, a->v, a->ldv, u, fa, mt, b, scale, shift, relu, pool, y, a->mb,
                   a->yd);
    else
        wg_outputs(g, m, cnt, a->v, a->ldv, u, fa, mt, b, scale, shift, relu, pool, y, a->mb, a->yd,
                   k0, k1);
}

/* Vectors of one sample's tiles that the threads can share out instead of
 * the filters (wg_shared_vecs), 0 if none. */
static size_t wk_shared_vecs(const cn_win *g) { return five(g) ? 0 : wg_shared_vecs(g); }

#endif

/* Per thread: two buffers, each the larger of K x P and (m*kh*kw) x (h*w),
 * and m x P for a masked dy, or the direct path's area; shared: W packed (or
 * W^T, or W flipped, packed, and W flipped itself); per chunk: dW and db. */
static size_t thread_floats(const cn_win *g, size_t m)
{
    size_t kk = g->c * g->kh * g->kw, p = g->oh * g->ow, fk = m * g->kh * g->kw * g->h * g->w;
    size_t buf = kk * p > fk ? kk * p : fk, direct = direct_floats(g, m);
    size_t t = (2 * buf > direct ? 2 * buf : direct) + m * p;
#ifdef HAVE_WINOGRAD
    if (use_wino_fwd(g, m) && wk_thread_floats(g) > t)
        t = wk_thread_floats(g);
    if (wg1_fits(g, m) && wg1_thread_floats(g, m) > t)
        t = wg1_thread_floats(g, m);
    if (w5f_fits(g, m) && w5f_thread_floats(g, m) > t)
        t = w5f_thread_floats(g, m);
#endif
#ifdef HAVE_LANE_CONV
    if (lanes_fit(g, m) && lc_thread_floats(g, m) > t)
        t = lc_thread_floats(g, m);
#endif
    return (t + 15) / 16 * 16; /* so that every thread's area starts on a cache line */
}

/* Shared by the threads: W packed and W rearranged (2 m K), or the
 * filters' Winograd transforms (36 m c = 4 m K), up to a whole cache line:
 * the threads' areas follow, and a vector loaded across two cache lines
 * costs two loads (LeNet's second layer took 1.5x as long backward with its
 * areas 16 bytes off the lines). */
static size_t shared_floats(const cn_win *g, size_t m)
{
    size_t kk = g->c * g->kh * g->kw;
#ifdef HAVE_WINOGRAD
    if (use_winograd(g, m))
        return (4 * m * kk + 15) / 16 * 16;
#endif
    return (2 * m * kk + 15) / 16 * 16;
}

#ifdef HAVE_WINOGRAD
/* dx by Winograd (conv_dx_winograd): a 3x3 convolution with stride 1 whose
 * flipped convolution (of dy, m channels, into c) is worth it. */
static int wg_dx_ok(const cn_win *g, size_t m)
{
    cn_win fg = flipped(g, m);
    return g->stride == 1 && use_winograd(&fg, g->c); /* fg keeps the kernel's size */
}
#endif

static size_t conv_ws(const cn_backend *be, const cn_win *g, size_t m, size_t max_batch)
{
    size_t kk = g->c * g->kh * g->kw, threads = (size_t)cn_cpu_of(be)->slots;
    size_t part = m * kk + m, chunks = chunk_area(n_chunks(max_batch), threads, part);
    size_t ws = shared_floats(g, m) + threads * thread_floats(g, m) + chunks;
#ifdef HAVE_WINOGRAD
    /* dx by Winograd runs alone, before the weight gradient: its filters'
     * transforms, the flipped filters and the threads' areas; the weight
     * gradient by Winograd: the chunks' partial sums and the threads'
     * areas. */
    if (wg_dx_ok(g, m)) {
        cn_win fg = flipped(g, m);
        size_t dx = 5 * m * kk + threads * wg_thread_floats(&fg);
        ws = dx > ws ? dx : ws;
    }
    if (use_winograd(g, m)) {
        size_t dw = chunks + threads * wg_dw_thread_floats(g, m);
        ws = dw > ws ? dw : ws;
    }
#endif
    return ws;
}

/* dw += the chunks' weight sums, db += their bias sums, in chunk order:
 * each element summed from 0 over the chunks in turn, as one scalar loop
 * would, but a block of elements at a time, so that the sums run in vectors
 * along rows of the partials instead of down their columns. */
#define REDUCE_BLOCK 512
static void reduce_chunks(const cn_backend *be, const float *partial, size_t chunks, size_t part,
                          size_t nw, float *dw, float *db)
{
    size_t blocks = (part + REDUCE_BLOCK - 1) / REDUCE_BLOCK;
    PARALLEL_FOR(part > 4096 ? cn_cpu_of(be)->threads : 1, k, blocks, {
        float sum[REDUCE_BLOCK];
        size_t e0 = (size_t)k * REDUCE_BLOCK,
               len = part - e0 < REDUCE_BLOCK ? part - e0 : REDUCE_BLOCK;
        for (size_t e = 0; e < len; e++)
            sum[e] = 0.0f;
        for (size_t c = 0; c < chunks; c++) {
            const float *pc = partial + c * part + e0;
            for (size_t e = 0; e < len; e++)
                sum[e] += pc[e];
        }
        for (size_t e = 0; e < len; e++) {
            if (e0 + e < nw)
                dw[e0 + e] += sum[e];
            else
                db[e0 + e - nw] += sum[e];
        }
    });
}

/* Threads for a batch's chunks: no more than there are chunks. */
static int chunk_threads(const cn_backend *be, size_t chunks)
{
    int nt = cn_cpu_of(be)->threads;
    return (size_t)nt < chunks ? nt : (int)chunks;
}

/* sum (part floats, the k slots of part floats after it): thread t of nt
 * adds its range of the elements of the slots in turn to sum, which starts
 * from 0 when first. */
static void fold_slots(float *sum, size_t part, size_t k, int first, size_t t, size_t nt)
{
    size_t lo = part * t / nt, hi = part * (t + 1) / nt;
    for (size_t e0 = lo; e0 < hi; e0 += REDUCE_BLOCK) {
        size_t len = hi - e0 < REDUCE_BLOCK ? hi - e0 : REDUCE_BLOCK;
        float *restrict s = sum + e0;
        if (first)
            memset(s, 0, len * sizeof *s);
        for (size_t j = 0; j < k; j++) {
            const float *restrict pc = sum + (1 + j) * part + e0;
            for (size_t e = 0; e < len; e++)
                s[e] += pc[e];
        }
    }
}

/* Runs the body (the trailing arguments) for each chunk c < chunks with pc
 * at part floats for its partial sums (weights, then biases), which it
 * fills, then adds them up into dw (the first nw) and db (the rest) in chunk
 * order.  The chunks go in rounds (chunk_round), each thread filling the
 * slots of area of its chunks of the round, a run of them; after each round
 * the threads add the round's slots to the running sum at the start of
 * area, in chunk order, each thread a range of the elements.  Every element
 * is summed from 0 over the chunks in turn, as reduce_chunks sums them, so
 * the bits depend on neither the thread count nor the rounds; in rounds of
 * one chunk a thread, the scratch holds a partial sum per thread instead of
 * one per chunk (cifar10's 128-channel layers at batch 128 on 2 threads: 3
 * of 0.59 MB instead of 16; chunk_area). */
#define FOR_CHUNKS(be, chunks, part, nw, area, dw, db, c, pc, ...)                                 \
    do {                                                                                           \
        size_t ch_ = (chunks), pt_ = (part);                                                       \
        int tn_ = chunk_threads(be, ch_);                                                          \
        size_t rd_ = chunk_round(ch_, pt_, (size_t)tn_), per_ = rd_ / (size_t)tn_;                 \
        float *sum_ = (area);                                                                      \
        PARALLEL_TEAM(tn_, {                                                                       \
            size_t t_ = (size_t)thread_id();                                                       \
            for (size_t r_ = 0; r_ < ch_; r_ += rd_) {                                             \
                for (size_t q_ = t_ * per_; q_ < (t_ + 1) * per_ && r_ + q_ < ch_; q_++) {         \
                    size_t c = r_ + q_;                                                            \
                    float *pc = sum_ + (1 + q_) * pt_;                                             \
                    __VA_ARGS__                                                                    \
                }                                                                                  \
                team_barrier();                                                                    \
                fold_slots(sum_, pt_, ch_ - r_ < rd_ ? ch_ - r_ : rd_, r_ == 0, t_, (size_t)tn_);  \
                team_barrier();                                                                    \
            }                                                                                      \
        });                                                                                        \
        reduce_chunks(be, sum_, 1, pt_, nw, dw, db);                                               \
    } while (0)

#ifdef HAVE_WINOGRAD
/* What a forward-only network's convolution keeps between passes
 * (conv_keep): KEEP_HEAD floats (the first 1 once the rest is made), then
 * the filters' transforms. */
#define KEEP_HEAD 16

/* The transforms kept, with *fresh set when they are to be made (in the
 * same place): none made yet, or the network has said its weights changed
 * since (the head's 1 cleared: conv_fwd's keep in backend.h).  Checking the
 * weights against a copy instead, at every pass, cost LeNet's one-image pass
 * 11% and fashion-best's 8% (the compare itself, and the copy taking L2
 * cache from fc1's weights). */
static float *kept(float *keep, int *fresh)
{
    *fresh = keep[0] != 1.0f;
    keep[0] = 1.0f;
    return keep + KEEP_HEAD;
}
#endif

/* Samples whose padded inputs the direct weight gradient takes at once: at
 * most MAX_RUN, and as many as fit in RUN_FLOATS (half of a 2 MB L2 cache),
 * where the kernel finds them again for every filter group. */
#define MAX_RUN    16
#define RUN_FLOATS (256 * 1024)

/* A pooled forward pass (conv_fwd_pool): its windows, and the threads'
 * buffers for the full outputs of a unit of samples (floats each, from
 * bufs: pool_unit samples of m planes, pool_floats), which each path fills
 * where it would have filled y, then pools into y (pool_out).  NULL in a
 * plain forward pass. */
typedef struct pool_to {
    const cn_win *win;
    float *bufs;
    size_t floats;
} pool_to;

/* Where the outputs of samples from s on go: y's, or the buffer of thread
 * (or area) t in a pooled pass.  mp: a sample's outputs. */
static float *out_at(const pool_to *po, float *y, size_t s, size_t mp, size_t t)
{
    return po ? po->bufs + t * po->floats : y + s * mp;
}

/* Planes [fa, fa + mt) of cnt samples (m planes each) in a thread's buffer
 * pooled into y from sample s on, as maxpool_fwd pools them; nothing in a
 * plain pass. */
static void pool_out(const pool_to *po, const float *buf, size_t m, size_t fa, size_t mt,
                     size_t cnt, float *y, size_t s)
{
    if (!po)
        return;
    const cn_win *pw = po->win;
    size_t p = pw->h * pw->w, pp = pw->oh * pw->ow;
    for (size_t k = 0; k < cnt; k++)
        for (size_t f = fa; f < fa + mt; f++)
            maxpool_plane(pw, buf + (k * m + f) * p, y + ((s + k) * m + f) * pp);
}

/* A forward pass split among threads, by filters or by rows (direct_share,
 * rows_share, gemm_share): the layer's arguments, and the threads' areas
 * (tf floats each from bufs; pw: the GEMM's packed weights). */
typedef struct fwd_job {
    const cn_cpu *cpu;
    const cn_win *g;
    size_t m, n, tf;
    const float *x, *w, *b, *scale, *shift;
    cn_act act;
    const pool_to *po;
    float *y, *pw, *bufs;
} fwd_job;

#ifdef HAVE_DIRECT_CONV
/* Outputs larger than this (bytes) are stored past the caches (the direct
 * path's whole aligned vectors, where its rows are the output's): more than
 * a last-level cache holds, so that they would reach memory before the next
 * layer reads them anyway, and the stores' reading of each line first (to
 * own it) is saved: fashion-best's first layer over 1 000 images at once
 * (75 MB) took 3.2 ms instead of 5.9 on 2 threads (AMD EPYC Zen 5).  A
 * forward-only network's passes go in chunks that stay in the caches
 * (net.c); a training pass over large images or batches does not. */
#define STREAM_BYTES (32u << 20)
static int streams_output(size_t floats) { return floats * sizeof(float) > STREAM_BYTES; }

/* w (m, c, kh, kw) flipped, tap by tap, with the channels swapped, for the
 * input gradient: out[f][ki][kj][c] = w[f][c][kh-1-ki][kw-1-kj].  (The
 * forward pass reads w as it is: dconv_sample.) */
static void taps_flipped(const float *w, size_t m, size_t c, size_t kh, size_t kw, float *out)
{
    for (size_t f = 0; f < m; f++)
        for (size_t ch = 0; ch < c; ch++)
            for (size_t a = 0; a < kh; a++)
                for (size_t e = 0; e < kw; e++)
                    out[((f * kh + kh - 1 - a) * kw + kw - 1 - e) * c + ch] =
                        w[((f * c + ch) * kh + a) * kw + e];
}

/* Whether the direct sum pools a pooled pass's windows pw itself as it
 * stores the outputs of g (dconv_pools: 2x2 windows with stride 2 over the
 * whole of each pair of rows), rather than into a buffer pooled after. */
static int direct_pools(const cn_win *g, const dconv_area *a, const cn_win *pw)
{
    return pw && pw->kh == 2 && pw->kw == 2 && pw->stride == 2 && pw->pad == 0 &&
           2 * pw->ow == g->ow && dconv_pools(g->oh, g->ow, a->shift > 0);
}

/* One sample xs by the direct sum, filters [fa, fa + mt) into ys (the
 * sample's outputs, all m filters' planes, each p floats on: oh x ow, or
 * more for a band of a larger plane's rows, rows_share), in a thread's area:
 * the sample padded, laid out shifted where that pays, then dconv_sample.
 * py: NULL, or (direct_pools) the m planes, pp floats apart, that the
 * outputs are pooled into instead of ys. */
static void direct_fwd_sample(const cn_win *g, const dconv_area *a, const float *xs, const float *w,
                              const float *b, const float *scale, const float *shift, cn_act act,
                              int stream, size_t fa, size_t mt, float *area, float *ys, size_t p,
                              float *py, size_t pp)
{
    size_t kk = g->c * g->kh * g->kw;
    float *flat = area + g->c * a->hp * a->wp, *xsh = flat + a->flat_y;
    const float *xp = xs; /* without padding the sample is its padded copy */
    int shifted = a->shift > 0;
    if (g->pad) {
        pad_sample(xs, g->c, g->h, g->w, g->w, g->pad, area);
        xp = area;
    }
    if (shifted)
        dconv_shift(xp, g->c, a->hp, a->wp, g->kw, g->ow, xsh);
    dconv_sample(shifted ? xsh : xp, shifted, g->c, a->hp, a->wp, g->kh, g->kw, w + fa * kk, 0, mt,
                 b + fa, scale ? scale + fa : NULL, scale ? shift + fa : NULL, act == CN_ACT_RELU,
                 stream, ys + fa * p, p, g->oh, g->ow, flat, py ? py + fa * pp : NULL, pp);
}

/* A thread's part of the filters, with its own copy of the padded sample
 * (and of its shifted layout). */
static void direct_share(void *arg, const cn_share *sh)
{
    const fwd_job *j = arg;
    const cn_win *g = j->g;
    size_t p = g->oh * g->ow, in = g->c * g->h * g->w, m = j->m, t = (size_t)sh->t;
    size_t fa, mt = filter_part(m, sh, &fa);
    dconv_area a = direct_area(g, m);
    const cn_win *pw = j->po ? j->po->win : NULL;
    int pools = direct_pools(g, &a, pw);
    size_t pp = pw ? pw->oh * pw->ow : 0;
    for (size_t s = 0; s < j->n; s++) {
        float *ys = out_at(j->po, j->y, s, m * p, t);
        direct_fwd_sample(g, &a, j->x + s * in, j->w, j->b, j->scale, j->shift, j->act, 0, fa, mt,
                          j->bufs + t * j->tf, ys, p, pools ? j->y + s * m * pp : NULL, pp);
        if (!pools)
            pool_out(j->po, ys, m, fa, mt, 1, j->y, s);
    }
}

/* The band of output rows [r0, r1) of one sample as a convolution of its
 * own (stride 1): its padded input rows, unpadded, as the band's input. */
static cn_win band_of(const cn_win *g, size_t r0, size_t r1)
{
    cn_win gb = *g;
    gb.h = r1 - r0 + g->kh - 1, gb.w = g->w + 2 * g->pad, gb.pad = 0, gb.oh = r1 - r0;
    return gb;
}

/* Unpooled bands of rows start and end on multiples of this many rows: a
 * 28 x 28 Winograd layer's vector of tiles covers 8 rows (wg_eight), so
 * that each thread of the next layer split by tiles reads rows it made
 * itself.  fashion-best's first layer's bands cut at row 16 instead of 14:
 * its one image on 2 threads 1.07x (a team pass, cut evenly). */
#define BAND_ALIGN 8

/* The row a cut at falls on, of rows, moved to the nearest multiple of
 * align (the last cut, at CN_SHARE_ONE, on rows). */
static size_t band_cut(size_t rows, unsigned at, size_t align)
{
    if (at >= CN_SHARE_ONE)
        return rows;
    size_t q = (cn_share_at(rows, at) + align / 2) / align * align;
    return q < rows ? q : rows;
}

/* The band of output rows [*r0, *r1) between the cuts lo and hi (in
 * CN_SHARE_ONE units); with a pooling's windows pw (else NULL), the rows
 * under its band of pooled rows [*q0, *q1) (a row under two windows in both
 * bands). */
static void band_rows(const cn_win *g, const cn_win *pw, unsigned lo, unsigned hi, size_t *r0,
                      size_t *r1, size_t *q0, size_t *q1)
{
    size_t rows = pw ? pw->oh : g->oh, align = pw ? 1 : BAND_ALIGN;
    *q0 = band_cut(rows, lo, align), *q1 = band_cut(rows, hi, align);
    *r0 = *q0, *r1 = *q1;
    if (pw)
        *r0 = *q0 * pw->stride, *r1 = *q1 > *q0 ? (*q1 - 1) * pw->stride + pw->kh : *r0;
}

/* Whether each of nt threads gets a band of 4 rows or more (2 pooled rows
 * or more under a pooling's windows pw). */
static int bands_fit(const cn_win *g, const cn_win *pw, int nt)
{
    return g->oh >= 4 * (size_t)nt && (!pw || pw->oh >= 2 * (size_t)nt);
}

/* Floats a thread needs for a band of rows by the direct sum (rows_share):
 * the band's padded input and the sum's area, for a band of every row (the
 * cuts may fall anywhere). */
static size_t band_floats(const cn_win *g, const cn_win *pw, size_t m)
{
    size_t r0, r1, q0, q1;
    band_rows(g, pw, 0, CN_SHARE_ONE, &r0, &r1, &q0, &q1);
    cn_win gb = band_of(g, r0, r1);
    return gb.c * gb.h * gb.w + direct_floats(&gb, m);
}

/* A thread's band of output rows of one sample by the direct sum (every
 * output summed as the whole sample's pass sums it), into those rows of
 * y's planes, or pooled (in the thread's buffer, then its band of pooled
 * rows into y's): in a team pass, a layer too small to split by filters is
 * split so, and each core then holds the rows of its band, which the next
 * layer split by tiles (wg_share) reads where they are. */
static void rows_share(void *arg, const cn_share *sh)
{
    const fwd_job *j = arg;
    size_t t = (size_t)sh->t;
    const cn_win *g = j->g, *pw = j->po ? j->po->win : NULL;
    size_t r0, r1, q0, q1, m = j->m, p = g->oh * g->ow;
    band_rows(g, pw, sh->lo, sh->hi, &r0, &r1, &q0, &q1);
    if (q1 <= q0)
        return;
    cn_win gb = band_of(g, r0, r1);
    dconv_area ab = direct_area(&gb, m);
    float *xb = j->bufs + t * j->tf, *area = xb + gb.c * gb.h * gb.w;
    for (size_t ch = 0; ch < g->c; ch++)
        for (size_t i = 0; i < gb.h; i++) {
            /* padded row r0 + i: input row r0 + i - pad */
            float *row = xb + (ch * gb.h + i) * gb.w;
            size_t r = r0 + i;
            if (r < g->pad || r - g->pad >= g->h) {
                memset(row, 0, gb.w * sizeof *row);
                continue;
            }
            memset(row, 0, g->pad * sizeof *row);
            memcpy(row + g->pad, j->x + (ch * g->h + r - g->pad) * g->w, g->w * sizeof *row);
            memset(row + g->pad + g->w, 0, g->pad * sizeof *row);
        }
    if (!pw) {
        direct_fwd_sample(&gb, &ab, xb, j->w, j->b, j->scale, j->shift, j->act, 0, 0, m, area,
                          j->y + r0 * g->ow, p, NULL, 0);
        return;
    }
    /* the band's planes one after another, then their pooled rows (or
     * those rows as the sums are stored) */
    float *ys = j->po->bufs + t * j->po->floats;
    size_t pb = gb.oh * g->ow, pp = pw->oh * pw->ow;
    int pools = direct_pools(&gb, &ab, pw);
    direct_fwd_sample(&gb, &ab, xb, j->w, j->b, j->scale, j->shift, j->act, 0, 0, m, area, ys, pb,
                      pools ? j->y + q0 * pw->ow : NULL, pp);
    if (pools)
        return;
    cn_win wb = *pw;
    wb.h = gb.oh, wb.oh = q1 - q0;
    for (size_t f = 0; f < m; f++)
        maxpool_plane(&wb, ys + f * pb, j->y + f * pp + q0 * pw->ow);
}

static void conv_fwd_direct(const cn_backend *be, const cn_win *g, size_t m, const float *x,
                            size_t n, const float *w, const float *b, const float *scale,
                            const float *shift, float *y, float *ws, cn_act act, const pool_to *po)
{
    size_t p = g->oh * g->ow, in = g->c * g->h * g->w, kk = g->c * g->kh * g->kw;
    dconv_area a = direct_area(g, m);
    float *bufs = ws + shared_floats(g, m);
    size_t tf = thread_floats(g, m);
    int split = split_threads(be, n, m, m * p * kk), team = cn_cpu_split_threads(cn_cpu_of(be));
    const cn_win *pw = po ? po->win : NULL;
    if (split == 1 && cn_cpu_of(be)->team && n == 1 && bands_fit(g, pw, team) &&
        band_floats(g, pw, m) <= tf) {
        fwd_job j = {cn_cpu_of(be), g, m, n, tf, x, w, b, scale, shift, act, po, y, NULL, bufs};
        cn_cpu_shares_even(be, team, rows_share, &j);
        return;
    }
    if (split > 1) {
        fwd_job j = {cn_cpu_of(be), g, m, n, tf, x, w, b, scale, shift, act, po, y, NULL, bufs};
        cn_cpu_shares(be, split, direct_share, &j);
        return;
    }
    int stream = !po && streams_output(n * m * p), pools = direct_pools(g, &a, pw);
    size_t pp = pw ? pw->oh * pw->ow : 0;
    PARALLEL_FOR(cn_cpu_of(be)->threads, s, n, {
        const float *xs = x + (size_t)s * in;
        float *ys = out_at(po, y, (size_t)s, m * p, (size_t)thread_id());
        if (s + 1 < (long)n)
            prefetch(xs + in, in);
        direct_fwd_sample(g, &a, xs, w, b, scale, shift, act, stream, 0, m,
                          bufs + (size_t)thread_id() * tf, ys, p,
                          pools ? y + (size_t)s * m * pp : NULL, pp);
        if (!pools)
            pool_out(po, ys, m, 0, m, 1, y, (size_t)s);
    });
    if (stream)
        _mm_sfence();
}

/* Weight gradients straight from padded inputs and output gradients, a run
 * of samples at a time; dx (same padding only) as the direct convolution of
 * the padded gradient with the flipped filters. */
static void conv_bwd_direct(const cn_backend *be, const cn_win *g, size_t m, const float *x,
                            const float *y, const float *dy, size_t n, const float *w, float *dw,
                            float *db, float *dx, float *ws, cn_act act)
{
    const cn_cpu *cpu = cn_cpu_of(be);
    size_t kk = g->c * g->kh * g->kw, p = g->oh * g->ow, in = g->c * g->h * g->w;
    size_t chunks = n_chunks(n), part = m * kk + m;
    size_t fp = g->kh - 1 - g->pad;
    dconv_area a = direct_area(g, m);
    size_t hp = a.hp, wp = a.wp, one = a.one;
    size_t tf = thread_floats(g, m);
    float *wf = ws, *bufs = ws + shared_floats(g, m), *partial = bufs + (size_t)cpu->slots * tf;
    if (dx)
        taps_flipped(w, m, g->c, g->kh, g->kw, wf);
    /* Samples per run: as many padded inputs and widened gradients as the
     * thread's area holds besides one padded gradient, the flat outputs and
     * the accumulators, and as RUN_FLOATS holds; shapes alone decide it. */
    size_t run = (tf - a.dq - a.flat_x - a.acc) / one;
    run = run > RUN_FLOATS / one ? RUN_FLOATS / one : run;
    run = run < 1 ? 1 : run > MAX_RUN ? MAX_RUN : run;
    FOR_CHUNKS(be, chunks, part, m * kk, partial, dw, db, c, pdw, {
        float *area = bufs + (size_t)thread_id() * tf, *dq = area + run * one;
        float *flat = dq + a.dq, *acc = flat + a.flat_x, *pdb = pdw + m * kk;
        size_t s0 = c * n / chunks, s1 = (c + 1) * n / chunks;
        memset(pdw, 0, part * sizeof(float));
        for (size_t r0 = s0; r0 < s1; r0 += run) {
            size_t cnt = s1 - r0 < run ? s1 - r0 : run;
            const float *xps[MAX_RUN], *dms[MAX_RUN];
            for (size_t k = 0; k < cnt; k++) {
                size_t s = r0 + k;
                float *xp = area + k * one, *dm = xp + g->c * hp * wp;
                pad_sample(x + s * in, g->c, g->h, g->w, g->w, g->pad, xp);
                /* The gradient (before the relu, if fused) in rows of wp. */
                widen_grad(dy + s * m * p, act == CN_ACT_RELU ? y + s * m * p : NULL, m, g->oh,
                           g->ow, wp, dm);
                for (size_t f = 0; f < m; f++)
                    pdb[f] += lane_sum(dm + f * g->oh * wp, g->oh * wp);
                xps[k] = xp;
                dms[k] = dm;
            }
            dconv_dw_samples(xps, dms, cnt, g->c, hp, wp, g->kh, g->kw, m, g->oh, g->ow, pdw, acc);
            for (size_t k = 0; dx && k < cnt; k++) {
                pad_sample(dms[k], m, g->oh, g->ow, wp, fp, dq);
                dconv_sample(dq, 0, m, a.hq, a.wq, g->kh, g->kw, wf, 1, g->c, NULL, NULL, NULL, 0,
                             0, dx + (r0 + k) * in, g->h * g->w, g->h, g->w, flat, NULL, 0);
            }
        }
    });
}

/* Direct when the kernels apply; dx needs "same" padding (its rows are then
 * as wide as the output's). */
static int use_direct(const cn_win *g, int need_dx)
{
    return direct_conv_ok(g) && g->kh == g->kw && (!need_dx || (g->h == g->oh && g->w == g->ow));
}

/* The forward pass direct also for rows narrower than the backward kernels
 * take, where the shifted layout pays (LeNet's second layer at batch 1, 8 x 8
 * outputs: 0.042 ms by im2col's GEMM, 0.027 ms direct, Ice Lake Xeon). */
static int use_direct_fwd(const cn_win *g, size_t m)
{
    return use_direct(g, 0) || (g->kh == g->kw && g->kh <= 16 && dconv_shift_pays(g, m));
}
#endif

#ifdef HAVE_WINOGRAD
/* y (n, m, oh, ow) from x (n, c, h, w; masked by xm as wg_split) by
 * Winograd's F(4x4, 3x3) or F(2x2, 5x5) (the wk_ kernels above): the
 * filters' transforms into u (with make; else u holds them already), then
 * units of samples in parallel, each thread in its area (tf floats from
 * bufs).  With fewer samples than threads, each thread makes its share of
 * the filters' transforms, and transforms the whole input itself:
 * sharing the input transforms through memory (one round by channels, then
 * one by filters) was slower, the other core's writes arriving slowly.  One
 * image whose plane has a vector of tiles or more for each thread shares
 * them out instead (by_tiles).  But first: one image with its transforms
 * kept (a forward-only network) on a plane that wg1_fits goes to
 * winograd1_avx512.c, vectors along the filters, whose threads take rows
 * of tiles: fashion-best's 14 x 14 layers on 2 threads took 9.8 and 13.2 us
 * there against 11.9 and 16.2 by filters, and on one thread 10.3 and 16.3
 * against 13 and 21; its 28 x 28 layer 21 against 23 (AMD EPYC Zen 5).
 * Likewise F(2x2, 5x5) on one thread, its whole vectors of filters along
 * the lanes (w5f_pass, winograd1_avx512.c). */
/* A Winograd forward pass split by filters (wg_share). */
typedef struct wg_job {
    const cn_win *g;
    size_t m, n, tf;
    const float *x, *xm, *w, *b, *scale, *shift;
    float *y, *u, *bufs;
    int make, relu, in_tiles;
    const pool_to *po;
    size_t by_tiles; /* a sample's vectors of tiles shared out, or 0: filters */
} wg_job;

/* A thread's share: of the filters (their transforms, if made, and the
 * whole input transformed in its own area), or with by_tiles of one
 * sample's vectors of tiles (wk_shared_vecs: its vectors [k0, k1)
 * transformed, then every filter's outputs there; the filters' transforms
 * made before). */
static void wg_share(void *arg, const cn_share *sh)
{
    const wg_job *j = arg;
    const cn_win *g = j->g;
    const pool_to *po = j->po;
    size_t m = j->m, n = j->n, in = g->c * g->h * g->w, p = g->oh * g->ow, unit = wk_unit(g);
    size_t pp = j->in_tiles ? po->win->oh * po->win->ow : 0, t = (size_t)sh->t;
    wg_area a = wk_area(g, j->bufs + t * j->tf);
    if (j->by_tiles) { /* whole vectors: rows_share's bands end where they do */
        size_t k0 = cn_share_at(j->by_tiles, sh->lo), k1 = cn_share_at(j->by_tiles, sh->hi);
        float *ys = j->in_tiles ? j->y : out_at(po, j->y, 0, m * p, t);
        if (k0 < k1) {
            wk_inputs(g, j->x, j->xm, 1, &a, k0, k1);
            wk_outputs(g, m, 1, &a, j->u, 0, m, j->b, j->scale, j->shift, j->relu, j->in_tiles, ys,
                       k0, k1);
        }
        return;
    }
    size_t fa, mt = filter_part(m, sh, &fa);
    if (j->make)
        wk_filters(g, j->w, m, fa, fa + mt, j->u);
    for (size_t s0 = 0; s0 < n; s0 += unit) {
        size_t cnt = n - s0 < unit ? n - s0 : unit;
        float *ys = j->in_tiles ? j->y + s0 * m * pp : out_at(po, j->y, s0, m * p, t);
        wk_inputs(g, j->x + s0 * in, j->xm ? j->xm + s0 * in : NULL, cnt, &a, 0, SIZE_MAX);
        wk_outputs(g, m, cnt, &a, j->u, fa, mt, j->b, j->scale, j->shift, j->relu, j->in_tiles, ys,
                   0, SIZE_MAX);
        if (!j->in_tiles)
            pool_out(po, ys, m, fa, mt, cnt, j->y, s0);
    }
}

/* One image's pass by winograd1_avx512.c, split by rows of tiles
 * (wg1_share). */
typedef struct wg1_job {
    const cn_win *g;
    size_t m, tf, th; /* th: the plane's rows of tiles */
    const float *x, *u1, *b, *scale, *shift;
    float *y, *bufs;
    int relu, pool;
} wg1_job;

static void wg1_share(void *arg, const cn_share *sh)
{
    const wg1_job *j = arg;
    size_t r0 = cn_share_at(j->th, sh->lo), r1 = cn_share_at(j->th, sh->hi);
    if (r0 < r1)
        wg1_rows(j->g, j->m, j->x, j->u1, j->b, j->scale, j->shift, j->relu, j->pool, j->y,
                 j->bufs + (size_t)sh->t * j->tf, r0, r1);
}

/* u1: the filters' transforms along the filters (wg1_filters) where a
 * forward-only network keeps them for a layer that wg1_fits, else NULL. */
static void winograd(const cn_backend *be, const cn_win *g, size_t m, const float *x,
                     const float *xm, size_t n, const float *w, const float *b, const float *scale,
                     const float *shift, float *y, float *u, float *u1, int make, float *bufs,
                     size_t tf, cn_act act, const pool_to *po)
{
    int threads = cn_cpu_of(be)->threads, relu = act == CN_ACT_RELU;
    size_t in = g->c * g->h * g->w, p = g->oh * g->ow;
    /* 2x2 pooling with stride 2 inside the tiles (wg_outputs; F(2x2, 5x5)'s
     * tiles are the windows, of even planes): only the pooled outputs are
     * written */
    int in_tiles = po && is_pool2(po->win) && (!five(g) || (g->oh % 2 == 0 && g->ow % 2 == 0));
    size_t pp = in_tiles ? po->win->oh * po->win->ow : 0;
    size_t unit = wk_unit(g);
    int split = split_threads(be, n, m, m * p * g->c * g->kh * g->kw);
    /* One image on a plane that wg1_fits, its transforms kept, pooled
     * within the tiles if at all: vectors along the filters, threads taking
     * rows of tiles (winograd1_avx512.c). */
    if (u1 && make) { /* both ways' transforms, whichever way this pass goes */
        wk_filters(g, w, m, 0, m, u);
        if (five(g))
            w5f_make(u, m, g->c, u1);
        else
            wg1_filters(u, m, g->c, u1);
        make = 0;
    }
    /* F(2x2, 5x5) likewise on one thread (winograd1_avx512.c, w5f_pass); on
     * more, split by filters below. */
    int one = n == 1 && u1 && !xm && (in_tiles || !po);
    if (one && five(g) && split == 1) {
        w5f_pass(g, m, x, u, u1, b, scale, shift, relu, in_tiles, y, bufs);
        return;
    }
    if (one && !five(g)) {
        size_t th = wg1_shape_of(g).th;
        wg1_job j = {g, m, tf, th, x, u1, b, scale, shift, y, bufs, relu, in_tiles};
        int nt = split < (int)th ? split : (int)th;
        if (nt > 1) {
            cn_cpu_shares_even(be, nt, wg1_share, &j);
        } else {
            wg1_rows(g, m, x, u1, b, scale, shift, relu, in_tiles, y, bufs, 0, th);
        }
        return;
    }
    if (split > 1) {
        /* One sample with a vector of tiles for each thread at least: its
         * tiles shared out, so that no thread transforms the whole input
         * (with the filters' transforms made first), unless a pooling
         * outside the tiles would read the other threads' outputs. */
        size_t vecs = wk_shared_vecs(g);
        int by_tiles = n == 1 && vecs >= (size_t)split && (in_tiles || !po);
        if (by_tiles && make)
            wk_filters(g, w, m, 0, m, u);
        wg_job j = {g,     m, n, tf,   x,    xm,   w,        b,  scale,
                    shift, y, u, bufs, make, relu, in_tiles, po, by_tiles ? vecs : 0};
        /* Tiles cut evenly: a 28 x 28 plane has 4 vectors of them, and a
         * cut moved by the threads' times (in units of the whole) flipped
         * between 2 + 2 and 1 + 3 vectors, the lead then waiting 10 us for
         * the worker in a tenth of fashion-best's one-image passes. */
        if (by_tiles)
            cn_cpu_shares_even(be, split, wg_share, &j);
        else
            cn_cpu_shares(be, split, wg_share, &j);
        return;
    }
    if (make)
        wk_filters(g, w, m, 0, m, u);
    /* Units no larger than the threads' fair shares. */
    size_t fair = (n + (size_t)threads - 1) / (size_t)threads;
    unit = unit > fair ? fair : unit;
    size_t units = (n + unit - 1) / unit;
    PARALLEL_FOR(threads, k, units, {
        size_t s0 = (size_t)k * unit, cnt = n - s0 < unit ? n - s0 : unit;
        wg_area a = wk_area(g, bufs + (size_t)thread_id() * tf);
        float *ys = in_tiles ? y + s0 * m * pp : out_at(po, y, s0, m * p, (size_t)thread_id());
        wk_inputs(g, x + s0 * in, xm ? xm + s0 * in : NULL, cnt, &a, 0, SIZE_MAX);
        wk_outputs(g, m, cnt, &a, u, 0, m, b, scale, shift, relu, in_tiles, ys, 0, SIZE_MAX);
        if (!in_tiles)
            pool_out(po, ys, m, 0, m, cnt, y, s0);
    });
}

static void conv_fwd_winograd(const cn_backend *be, const cn_win *g, size_t m, const float *x,
                              size_t n, const float *w, const float *b, const float *scale,
                              const float *shift, float *y, float *ws, float *keep, cn_act act,
                              const pool_to *po)
{
    /* A forward-only network's transforms live in keep, made again only
     * when the weights changed; otherwise they are made into ws. */
    int fresh = 1;
    float *u = keep ? kept(keep, &fresh) : ws;
    float *u1 = keep && (wg1_fits(g, m) || w5f_fits(g, m)) ? u + 36 * m * g->c : NULL;
    winograd(be, g, m, x, NULL, n, w, b, scale, shift, y, u, u1, fresh, ws + shared_floats(g, m),
             thread_floats(g, m), act, po);
}

/* dx as the convolution of dy (masked where a fused relu's y is 0) with the
 * filters flipped and their channels swapped (flipped()): wf (c filters of m
 * channels) after the transforms, then the threads' areas. */
static void conv_dx_winograd(const cn_backend *be, const cn_win *g, size_t m, const float *y,
                             const float *dy, size_t n, const float *w, float *dx, float *ws,
                             cn_act act)
{
    cn_win fg = flipped(g, m);
    size_t kk = g->c * 9;
    float *wf = ws + 4 * m * kk;
    flip_filters(g, m, w, wf);
    winograd(be, &fg, g->c, dy, act == CN_ACT_RELU ? y : NULL, n, wf, NULL, NULL, NULL, dx, ws,
             NULL, 1, wf + m * kk, wg_thread_floats(&fg), CN_ACT_NONE, NULL);
}

/* The sum of d[0, count) where y > 0 (all of it when y is NULL), in LANES
 * partial sums as lane_sum. */
static float relu_lane_sum(const float *restrict d, const float *restrict y, size_t count)
{
    if (!y)
        return lane_sum(d, count);
    float part[LANES] = {0};
    size_t j = 0;
    for (; j + LANES <= count; j += LANES)
        for (int l = 0; l < LANES; l++)
            part[l] += y[j + l] > 0.0f ? d[j + l] : 0.0f;
    for (; j < count; j++)
        part[0] += y[j] > 0.0f ? d[j] : 0.0f;
    float sum = 0.0f;
    for (int l = 0; l < LANES; l++)
        sum += part[l];
    return sum;
}

/* The weight and bias gradients by Winograd (winograd_avx512.c, "weight
 * gradient"): per chunk of samples, cut as the other paths cut them, units
 * of samples transformed (x's tiles into V, dy's into D, masked where a
 * fused relu's output is 0), their products summed into Z (by
 * wg_dw_products along the tiles, or by the GEMM: wg_dw_by_lanes), then
 * G^T Z G into the chunk's partial sums, added up in chunk order. */
static void conv_dw_winograd(const cn_backend *be, const cn_win *g, size_t m, const float *x,
                             const float *y, const float *dy, size_t n, float *dw, float *db,
                             float *ws, cn_act act)
{
    const cn_cpu *cpu = cn_cpu_of(be);
    size_t kk = g->c * 9, p = g->oh * g->ow, in = g->c * g->h * g->w;
    size_t chunks = n_chunks(n), part = m * kk + m;
    wg_shape s = wg_shape_of(g);
    size_t unit = wg_dw_unit(g, m), tf = wg_dw_thread_floats(g, m), ldv = wg_row(unit * s.tiles);
    int by_lanes = wg_dw_by_lanes(g, m);
    /* dy's planes split as an unpadded input of oh x ow. */
    cn_win gd = {m, g->oh, g->ow, 3, 3, 1, 0, g->oh, g->ow};
    int two = wg_two(&gd, &s);
    float *partial = ws, *bufs = ws + chunk_area(chunks, (size_t)cpu->slots, part);
    const float *ym = act == CN_ACT_RELU ? y : NULL;
    FOR_CHUNKS(be, chunks, part, m * kk, partial, dw, db, c, pdw, {
        int tid = thread_id();
        float *xs = bufs + (size_t)tid * tf, *pack = cpu->pack + (size_t)tid * cpu->pack_floats;
        float *v = xs + WG_PLANES * s.q, *d = v + 36 * g->c * ldv, *z = d + 36 * m * ldv;
        float *pdb = pdw + m * kk;
        size_t s0 = c * n / chunks, s1 = (c + 1) * n / chunks;
        memset(pdb, 0, m * sizeof(float));
        for (size_t b0 = s0; b0 < s1; b0 += unit) {
            size_t cnt = s1 - b0 < unit ? s1 - b0 : unit, tt = cnt * s.tiles;
            wg_inputs(g, x + b0 * in, NULL, cnt, xs, v, ldv, 0, SIZE_MAX);
            /* Planes of 2 x 2 tiles: four samples of a filter at a time. */
            for (size_t g0 = 0; two && g0 < cnt; g0 += 4)
                for (size_t f = 0; f < m; f++) {
                    const float *dq[4] = {NULL, NULL, NULL, NULL},
                                *yq[4] = {NULL, NULL, NULL, NULL};
                    for (size_t q = 0; q < 4 && g0 + q < cnt; q++) {
                        size_t at = ((b0 + g0 + q) * m + f) * p;
                        dq[q] = dy + at;
                        yq[q] = ym ? ym + at : NULL;
                        pdb[f] += relu_lane_sum(dq[q], yq[q], p);
                    }
                    wg_grad2(dq, ym ? yq : NULL, &gd, d + f * ldv + g0 * s.tiles, m * ldv);
                }
            for (size_t sm = 0; !two && sm < cnt; sm++)
                for (size_t f = 0; f < m; f++) {
                    size_t at = ((b0 + sm) * m + f) * p;
                    wg_grad_plane(dy + at, ym ? ym + at : NULL, &gd, &s, xs,
                                  d + f * ldv + sm * s.tiles, m * ldv);
                    pdb[f] += relu_lane_sum(dy + at, ym ? ym + at : NULL, p);
                }
            if (by_lanes) {
                wg_dw_products(d, v, ldv, m, g->c, tt, z, b0 == s0);
                continue;
            }
            for (size_t e = 0; e < 36; e++)
                cpu->gemm_st(pack, 0, 1, m, g->c, tt, 1.0f, d + e * m * ldv, ldv,
                             v + e * g->c * ldv, ldv, b0 == s0 ? 0.0f : 1.0f, z + e * m * g->c,
                             g->c);
        }
        wg_filters_back(z, m, g->c, pdw);
    });
}
#endif

/* y (m rows of p) plus the bias, then times scale plus shift per row when
 * scale is not NULL (as bn_fwd computes it: the same expression, contracted
 * into the same FMA), relu'd if asked. */
static void bias_act(float *y, size_t m, size_t p, const float *b, const float *scale,
                     const float *shift, cn_act act)
{
    for (size_t f = 0; f < m; f++) {
        float bias = b[f], *row = y + f * p;
        if (scale) {
            float sc = scale[f], sh = shift[f];
            for (size_t j = 0; j < p; j++) {
                float v = row[j] + bias;
                v = v * sc + sh;
                row[j] = act == CN_ACT_RELU && !(v > 0.0f) ? 0.0f : v;
            }
        } else if (act == CN_ACT_RELU)
            for (size_t j = 0; j < p; j++) {
                float v = row[j] + bias;
                row[j] = v > 0.0f ? v : 0.0f;
            }
        else
            for (size_t j = 0; j < p; j++)
                row[j] += bias;
    }
}

#ifdef HAVE_LANE_CONV
/* The batch along the lanes (kernels/lanes_avx512.c), for a batch of 16
 * samples or more where it fits: ahead of im2col's GEMM always (LeNet's
 * second layer, 8 x 8 outputs: 1.9x forward, 1.4x backward), ahead of the
 * direct sum when the window has min_k elements or more: 16 forward (LeNet's
 * first layer, one channel of 5 x 5: 1.2x at batch 1000), 64 backward
 * (small's second layer, 16 channels of 5 x 5 on 14 x 14: 1.6x forward and
 * backward; LeNet's first layer was 1.15x slower backward). */
static int use_lanes(const cn_win *g, size_t m, size_t n, int direct, size_t min_k)
{
    return n >= 16 && lanes_fit(g, m) && (!direct || g->c * g->kh * g->kw >= min_k);
}

/* y from x with 16 samples to a vector: blocks of 16 samples in parallel,
 * at least one to a thread (conv_fwd_any sends a batch of fewer blocks than
 * threads down the path of a batch smaller than the lanes).  Each output
 * sums its window in runs of slice elements, the path's order that a batch
 * smaller than the lanes takes (the direct sum's or the GEMM's), so a
 * sample's outputs do not depend on the batch. */
static void conv_fwd_lanes(const cn_backend *be, const cn_win *g, size_t m, const float *x,
                           size_t n, const float *w, const float *b, const float *scale,
                           const float *shift, float *y, float *ws, cn_act act, size_t slice,
                           const cn_win *pool)
{
    size_t in = g->c * g->h * g->w, kk = g->c * g->kh * g->kw, groups = lc_groups(g, m);
    size_t out1 = m * (pool ? pool->oh * pool->ow : g->oh * g->ow); /* a sample's outputs */
    size_t blocks = (n + 15) / 16, tf = thread_floats(g, m);
    size_t xl_floats = lc_xl_floats(g);
    float *wgs = ws, *bufs = ws + shared_floats(g, m);
    lc_weights(w, m, kk, groups, wgs);
    PARALLEL_FOR(cn_cpu_of(be)->threads, bk, blocks, {
        size_t s0 = (size_t)bk * 16, cnt = n - s0 < 16 ? n - s0 : 16;
        float *xl = bufs + (size_t)thread_id() * tf;
        lc_pack(g, x + s0 * in, cnt, xl);
        lc_block(g, m, xl, cnt, wgs, b, scale, shift, act == CN_ACT_RELU, slice, pool,
                 xl + xl_floats, y + s0 * out1);
    });
}
#endif

/* A thread's part of the filters, packing its own rows of W and making its
 * own col. */
static void gemm_share(void *arg, const cn_share *sh)
{
    const fwd_job *j = arg;
    const cn_cpu *cpu = j->cpu;
    const cn_win *g = j->g;
    size_t m = j->m, kk = g->c * g->kh * g->kw, p = g->oh * g->ow, in = g->c * g->h * g->w;
    size_t t = (size_t)sh->t, fa, mt = filter_part(m, sh, &fa);
    float *pw_t = j->pw + fa * kk, *buf = j->bufs + t * j->tf;
    const float *wt = j->w + fa * kk, *scale = j->scale ? j->scale + fa : NULL;
    cpu->gemm_pack_a(0, mt, kk, wt, kk, pw_t);
    for (size_t s = 0; s < j->n; s++) {
        const float *xs = j->x + s * in, *col = xs;
        float *ys0 = out_at(j->po, j->y, s, m * p, t), *ys = ys0 + fa * p;
        if (!col_is_x(g)) {
            im2col_one(g, xs, buf, p);
            col = buf;
        }
        cpu->gemm_st_pre(cpu->pack + t * cpu->pack_floats, pw_t, 0, 0, mt, p, kk, 1.0f, wt, kk, col,
                         p, 0.0f, ys, p);
        bias_act(ys, mt, p, j->b + fa, scale, scale ? j->shift + fa : NULL, j->act);
        pool_out(j->po, ys0, m, fa, mt, 1, j->y, s);
    }
}

/* The forward pass on every path, pooled when po is not NULL (the lanes
 * pool in their own layout, lc_unpack_pool, and need only po's windows). */
static void conv_fwd_any(const cn_backend *be, const cn_win *g, size_t m, const float *x, size_t n,
                         const float *w, const float *b, const float *scale, const float *shift,
                         float *y, float *ws, float *keep, cn_act act, const pool_to *po)
{
    const cn_cpu *cpu = cn_cpu_of(be);
#ifdef HAVE_WINOGRAD
    if (use_wino_fwd(g, m) && !be->exact) {
        conv_fwd_winograd(be, g, m, x, n, w, b, scale, shift, y, ws, keep, act, po);
        return;
    }
#endif
#ifdef HAVE_LANE_CONV /* (with the direct path) */
    /* With fewer blocks of 16 samples than threads (LeNet at a batch of 16
     * on 2 threads), the threads would share each block's filters: each
     * then writes a part of every sample's planes, which the layer above
     * (split by samples) reads from the other core; by samples on the
     * direct path LeNet's first layer and the pooling after it took 0.043
     * and 0.012 ms against 0.065 and 0.030 (Zen 5; training 1.03-1.11x). */
    if (use_lanes(g, m, n, use_direct_fwd(g, m), 16) && (n + 15) / 16 >= (size_t)cpu->threads) {
        /* The direct sum's order (one run over the window) or the GEMM's. */
        conv_fwd_lanes(be, g, m, x, n, w, b, scale, shift, y, ws, act,
                       use_direct_fwd(g, m) ? g->c * g->kh * g->kw : KC, po ? po->win : NULL);
        return;
    }
#endif
#ifdef HAVE_DIRECT_CONV
    if (use_direct_fwd(g, m)) {
        conv_fwd_direct(be, g, m, x, n, w, b, scale, shift, y, ws, act, po);
        return;
    }
#endif
    (void)keep; /* only Winograd's transforms are kept (conv_keep) */
    size_t kk = g->c * g->kh * g->kw, p = g->oh * g->ow, in = g->c * g->h * g->w;
    size_t tf = thread_floats(g, m);
    float *pw = ws, *bufs = ws + shared_floats(g, m);
    int split = split_threads(be, n, m, m * p * kk);
    if (split > 1) {
        fwd_job j = {cpu, g, m, n, tf, x, w, b, scale, shift, act, po, y, pw, bufs};
        cn_cpu_shares(be, split, gemm_share, &j);
        return;
    }
    cpu->gemm_pack_a(0, m, kk, w, kk, pw);
    PARALLEL_FOR(cpu->threads, s, n, {
        int tid = thread_id();
        const float *xs = x + (size_t)s * in, *col = xs;
        float *ys = out_at(po, y, (size_t)s, m * p, (size_t)tid);
        if (s + 1 < (long)n)
            prefetch(xs + in, in);
        if (!col_is_x(g)) {
            float *buf = bufs + (size_t)tid * tf;
            im2col_one(g, xs, buf, p);
            col = buf;
        }
        cpu->gemm_st_pre(cpu->pack + (size_t)tid * cpu->pack_floats, pw, 0, 0, m, p, kk, 1.0f, w,
                         kk, col, p, 0.0f, ys, p);
        bias_act(ys, m, p, b, scale, shift, act);
        pool_out(po, ys, m, 0, m, 1, y, (size_t)s);
    });
}

static void conv_fwd_affine(const cn_backend *be, const cn_win *g, size_t m, const float *x,
                            size_t n, const float *w, const float *b, const float *scale,
                            const float *shift, float *y, float *ws, float *keep, cn_act act)
{
    conv_fwd_any(be, g, m, x, n, w, b, scale, shift, y, ws, keep, act, NULL);
}

static void conv_fwd(const cn_backend *be, const cn_win *g, size_t m, const float *x, size_t n,
                     const float *w, const float *b, float *y, float *ws, float *keep, cn_act act)
{
    conv_fwd_any(be, g, m, x, n, w, b, NULL, NULL, y, ws, keep, act, NULL);
}

/* Samples whose full outputs a thread holds at once in a pooled pass:
 * Winograd's unit, else one (the lanes pool in their own area). */
static size_t pool_unit(const cn_win *g, size_t m)
{
#ifdef HAVE_WINOGRAD
    if (use_wino_fwd(g, m))
        return wk_unit(g);
#endif
    (void)g, (void)m;
    return 1;
}

/* A thread's buffer in a pooled pass, up to a whole cache line. */
static size_t pool_floats(const cn_win *g, size_t m)
{
    return (pool_unit(g, m) * m * g->oh * g->ow + 15) / 16 * 16;
}

static size_t conv_pool_ws(const cn_backend *be, const cn_win *g, size_t m)
{
    return (size_t)cn_cpu_of(be)->slots * pool_floats(g, m);
}

/* The buffers come after what every forward path uses of ws (the shared
 * part and the threads' areas), which conv_ws covers. */
static void conv_fwd_pool(const cn_backend *be, const cn_win *g, size_t m, const float *x, size_t n,
                          const float *w, const float *b, const float *scale, const float *shift,
                          const cn_win *pool, float *y, float *ws, float *keep, cn_act act)
{
    size_t slots = (size_t)cn_cpu_of(be)->slots;
    pool_to po = {pool, ws + shared_floats(g, m) + slots * thread_floats(g, m), pool_floats(g, m)};
    conv_fwd_any(be, g, m, x, n, w, b, scale, shift, y, ws, keep, act, &po);
}

/* Only Winograd's transforms are kept (fashion-best's one-image pass 6-7%
 * faster, session 39): the direct sum reads the filters in place, and the
 * GEMM's packing of them is a small part of its layers' time. */
static size_t conv_keep(const cn_backend *be, const cn_win *g, size_t m)
{
    (void)be;
#ifdef HAVE_WINOGRAD
    if (wg1_fits(g, m)) /* and the same along the filters (winograd1_avx512.c) */
        return KEEP_HEAD + 36 * m * g->c + 36 * g->c * wg1_round(m);
    if (w5f_fits(g, m)) /* and its whole vectors of filters along them */
        return KEEP_HEAD + 36 * m * g->c + 36 * g->c * w5f_filters_of(m);
    if (use_wino_fwd(g, m))
        return KEEP_HEAD + 36 * m * g->c;
#endif
    (void)g, (void)m;
    return 0;
}

#ifdef HAVE_LANE_CONV
/* One chunk's blocks of 16 samples (lanes_avx512.c) by one thread: their
 * weight and bias sums for filters [fa, fb) into pdw and pdb, and dx for
 * channels [ca, cb). */
static void lanes_chunk(const cn_win *g, size_t m, const float *x, const float *y, const float *dy,
                        size_t n, const float *wk, size_t b0, size_t b1, size_t fa, size_t fb,
                        size_t ca, size_t cb, float *pdw, float *pdb, float *dx, float *area,
                        cn_act act)
{
    size_t in = g->c * g->h * g->w, p = g->oh * g->ow, kk = g->c * g->kh * g->kw;
    float *xl = area, *dyl = xl + lc_xl_floats(g), *dxl = dyl + 16 * m * p;
    memset(pdw + fa * kk, 0, (fb - fa) * kk * sizeof *pdw);
    memset(pdb + fa, 0, (fb - fa) * sizeof *pdb);
    for (size_t bk = b0; bk < b1; bk++) {
        size_t s0 = bk * 16, cnt = n - s0 < 16 ? n - s0 : 16;
        lc_pack(g, x + s0 * in, cnt, xl);
        lc_pack_dy(dy + s0 * m * p, act == CN_ACT_RELU ? y + s0 * m * p : NULL, m, p, cnt, dyl);
        lc_bwd_block(g, m, xl, dyl, wk, fa, fb, ca, cb, cnt, pdw, pdb, dx ? dxl : NULL,
                     dx ? dx + s0 * in : NULL);
    }
}

/* dw, db and dx with 16 samples to a vector (kernels/lanes_avx512.c): the
 * weight gradients summed per chunk of blocks of 16 samples (chunks cut from
 * the batch size alone), the chunks in parallel, then added up in order
 * (FOR_CHUNKS); with fewer chunks than threads, each chunk's filters and
 * channels shared among threads that each rearrange its blocks themselves
 * (reduce_chunks).  The sums' order depends on neither. */
static void conv_bwd_lanes(const cn_backend *be, const cn_win *g, size_t m, const float *x,
                           const float *y, const float *dy, size_t n, const float *w, float *dw,
                           float *db, float *dx, float *ws, cn_act act)
{
    size_t threads = (size_t)cn_cpu_of(be)->threads, kk = g->c * g->kh * g->kw;
    size_t part = m * kk + m, blocks = (n + 15) / 16, chunks = n_chunks(blocks);
    size_t tf = thread_floats(g, m), split = chunks >= threads ? 1 : threads / chunks;
    float *wk = ws, *bufs = ws + shared_floats(g, m);
    float *partial = bufs + (size_t)cn_cpu_of(be)->slots * tf;
    if (dx)
        lc_dx_weights(w, m, kk, wk);
    if (split == 1) {
        FOR_CHUNKS(be, chunks, part, m * kk, partial, dw, db, c, pdw, {
            lanes_chunk(g, m, x, y, dy, n, wk, c * blocks / chunks, (c + 1) * blocks / chunks, 0, m,
                        0, g->c, pdw, pdw + m * kk, dx, bufs + (size_t)thread_id() * tf, act);
        });
        return;
    }
    PARALLEL_FOR((int)threads, it, chunks * split, {
        size_t ch = (size_t)it / split, sh = (size_t)it % split;
        float *pdw = partial + ch * part;
        lanes_chunk(g, m, x, y, dy, n, wk, ch * blocks / chunks, (ch + 1) * blocks / chunks,
                    m * sh / split, m * (sh + 1) / split, g->c * sh / split,
                    g->c * (sh + 1) / split, pdw, pdw + m * kk, dx, bufs + (size_t)thread_id() * tf,
                    act);
    });
    reduce_chunks(be, partial, chunks, part, m * kk, dw, db);
}
#endif

static void conv_bwd(const cn_backend *be, const cn_win *g, size_t m, const float *x,
                     const float *y, const float *dy, size_t n, const float *w, float *dw,
                     float *db, float *dx, float *ws, cn_act act)
{
    const cn_cpu *cpu = cn_cpu_of(be);
#ifdef HAVE_WINOGRAD
    if (dx && wg_dx_ok(g, m) && !be->exact) {
        conv_dx_winograd(be, g, m, y, dy, n, w, dx, ws, act);
        dx = NULL; /* the weight gradient follows as without dx */
    }
    /* Winograd's weight gradient also for the planes of up to 14 x 14 with
     * fewer channels in than out that the lanes' took until session 44: with
     * its products along the tiles' lanes (wg_dw_by_lanes) it is ahead on
     * every such shape measured (Ice Lake Xeon, 2 threads, batch 128, the
     * weight gradient alone: fashion-best's third layer 2.5-2.7 ms against
     * 3.3-4.4, mnist-best's 1.1-1.3 against 1.4-2.0, cifar10's seventh, 64
     * to 128 channels at 8 x 8, 4.1-5.3 against 6.7-6.8). */
    if (!dx && use_winograd(g, m) && !be->exact) {
        conv_dw_winograd(be, g, m, x, y, dy, n, dw, db, ws, act);
        return;
    }
#endif
#ifdef HAVE_LANE_CONV /* (with the direct path) */
    if (use_lanes(g, m, n, use_direct(g, dx != NULL), 64)) {
        conv_bwd_lanes(be, g, m, x, y, dy, n, w, dw, db, dx, ws, act);
        return;
    }
#endif
#ifdef HAVE_DIRECT_CONV
    if (use_direct(g, dx != NULL)) {
        conv_bwd_direct(be, g, m, x, y, dy, n, w, dw, db, dx, ws, act);
        return;
    }
#endif
    size_t kk = g->c * g->kh * g->kw, p = g->oh * g->ow, in = g->c * g->h * g->w;
    size_t chunks = n_chunks(n), part = m * kk + m, mk = m * g->kh * g->kw;
    size_t tf = thread_floats(g, m), buf = (tf - m * p) / 2;
    float *pre = ws, *wf = ws + m * kk, *bufs = ws + shared_floats(g, m);
    float *partial = bufs + (size_t)cpu->slots * tf;
    int by_conv = dx && dx_by_conv(g);
    cn_win fg = flipped(g, m);
    if (by_conv) {
        flip_filters(g, m, w, wf); /* then packed: (c, m*kh*kw) */
        cpu->gemm_pack_a(0, g->c, mk, wf, mk, pre);
    } else if (dx) {
        cpu->gemm_pack_a(1, kk, m, w, kk, pre); /* W^T (K, m) */
    }
    FOR_CHUNKS(be, chunks, part, m * kk, partial, dw, db, c, pdw, {
        int tid = thread_id();
        float *row = bufs + (size_t)tid * tf, *dcol = row + buf, *dmask = dcol + buf;
        float *pack = cpu->pack + (size_t)tid * cpu->pack_floats, *pdb = pdw + m * kk;
        size_t s0 = c * n / chunks, s1 = (c + 1) * n / chunks;
        memset(pdb, 0, m * sizeof(float));
        for (size_t s = s0; s < s1; s++) {
            const float *xs = x + s * in, *dys = dy + s * m * p;
            if (s + 1 < s1) {
                prefetch(xs + in, in);
                prefetch(dys + m * p, m * p);
                if (act == CN_ACT_RELU)
                    prefetch(y + (s + 1) * m * p, m * p);
            }
            if (act == CN_ACT_RELU) { /* the gradient before the relu */
                relu_bwd(y + s * m * p, dys, dmask, 0, (long)(m * p));
                dys = dmask;
            }
            /* dW += dy_s row, row = x_s^T for a 1x1 convolution. */
            if (col_is_x(g)) {
                cpu->gemm_st(pack, 0, 1, m, kk, p, 1.0f, dys, p, xs, p, s == s0 ? 0.0f : 1.0f, pdw,
                             kk);
            } else {
                im2row_one(g, xs, row);
                cpu->gemm_st(pack, 0, 0, m, kk, p, 1.0f, dys, p, row, kk, s == s0 ? 0.0f : 1.0f,
                             pdw, kk);
            }
            for (size_t f = 0; f < m; f++)
                pdb[f] += lane_sum(dys + f * p, p);
            if (!dx)
                continue;
            if (by_conv) {
                size_t hw = g->h * g->w;
                im2col_one(&fg, dys, dcol, hw);
                cpu->gemm_st_pre(pack, pre, 0, 0, g->c, hw, mk, 1.0f, wf, mk, dcol, hw, 0.0f,
                                 dx + s * in, hw);
            } else if (col_is_x(g)) {
                cpu->gemm_st_pre(pack, pre, 1, 0, kk, p, m, 1.0f, w, kk, dys, p, 0.0f, dx + s * in,
                                 p);
            } else {
                cpu->gemm_st_pre(pack, pre, 1, 0, kk, p, m, 1.0f, w, kk, dys, p, 0.0f, dcol, p);
                col2im_one(g, dcol, p, dx + s * in);
            }
        }
    });
}
