/* gradcheck.c - central-difference checks of the backward passes.
 *
 * Numerical derivative of a coordinate t:  (L(t + eps) - L(t - eps)) / 2 eps.
 * The forward passes run in float32, so eps is large (1e-2) to keep rounding
 * small against the difference; the truncation error of the central
 * difference is eps^2 times the third derivative and vanishes for the
 * piecewise-linear layers.  Those have kinks (relu at 0, a change of winner
 * in max pooling) where the difference means nothing: each pass also hashes
 * the linear piece every such layer is in, and a step that changes a piece is
 * skipped and counted.
 *
 * A layer on its own is judged coordinate by coordinate, which catches a
 * mistake confined to a border or one channel: |a - g| / max(|a| + |g|, floor).
 * The floor is the larger of 1% of the tensor's largest analytic derivative
 * (at least 1e-6) and NOISE_MULT times the rounding noise expected in g.
 * That noise grows with the number of outputs a coordinate moves: each moved
 * output y_k is rounded to float32 (relative error up to 2^-24 per operation,
 * a few operations), so L = sum(r y) moves by about 2^-23 sqrt(sum (r_k y_k)^2)
 * over the moved outputs, divided by 2 eps in g.  A convolution's input moves
 * a few hundred outputs; a batch normalisation's input moves its whole
 * channel (through the mean and variance), thousands, and its noise is ten
 * times larger: without this floor a correct batch normalisation failed.
 *
 * A coordinate that still fails is measured again with half the step.  Where
 * the two differences disagree with each other by half or more of their
 * disagreement with the backward pass, the difference itself has not
 * converged (the function bends on a scale smaller than eps, as a batch
 * normalisation of two samples does: its outputs are +-1 with a transition
 * of width sqrt(var eps)); such a coordinate says nothing about the backward
 * pass and is skipped and counted like a kink.  A wrong backward pass leaves
 * the two differences in agreement and fails.
 *
 * Through a whole network rounding adds up layer after layer, so the network
 * is judged on each tensor's gradient vector instead: ||a - g|| / max(||a||,
 * ||g||, floor) over the checked coordinates.  When a tensor fails, its
 * coordinates are measured again with half the step and the floor rises to
 * NOISE_VEC ||g - g_half||: the numerical gradient's own instability (its
 * rounding noise, which doubles at half the step, and its truncation).  A
 * tensor whose true gradient is zero, such as the bias of a convolution
 * before a batch normalisation, then passes on rounding noise, while a wrong
 * gradient several times that noise still fails. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EPS        1e-2f
#define FLOOR_REL  1e-2
#define FLOOR_ABS  1e-6
#define NOISE_MULT 300.0
#define NOISE_VEC  200.0
#define ROUND      (1.0 / 8388608.0) /* 2^-23 */

/* loss() returns L and the linear piece (region); *moved receives the sum of
 * (r_k y_k)^2 over the outputs that differ from the first call's (0 where
 * not modelled). */
typedef struct evalf {
    double (*loss)(void *self, uint64_t *region, double *moved);
    void *self;
} evalf;

/* The central difference of coordinate j of dev at step h: 0 with *kink set
 * when a step changed a linear piece.  *noise: the rounding expected in it. */
static double difference(const cn_backend *be, float *dev, size_t j, float keep, float h, evalf f,
                         uint64_t r0, int *kink, double *noise)
{
    uint64_t rp, rm;
    double mp, mm;
    float plus = keep + h, minus = keep - h;
    be->upload(be, dev + j, &plus, sizeof plus);
    double lp = f.loss(f.self, &rp, &mp);
    be->upload(be, dev + j, &minus, sizeof minus);
    double lm = f.loss(f.self, &rm, &mm);
    be->upload(be, dev + j, &keep, sizeof keep);
    *kink = rp != r0 || rm != r0;
    *noise = ROUND * (sqrt(mp) + sqrt(mm)) / (2.0 * (double)h);
    return (lp - lm) / (2.0 * (double)h);
}

/* Compares analytic derivatives a[] of the coordinates of v[] (count
 * values: a host copy v of the backend's dev) with central differences of
 * f, moving one coordinate of dev at a time; samples up to max_coords
 * coordinates.  vector_floor > 0: judge the gradient vector, with norms
 * below vector_floor counted as vector_floor. */
static double check_coords(const cn_backend *be, float *dev, const float *v, const float *a,
                           size_t count, size_t max_coords, cn_rng *rng, evalf f,
                           double vector_floor, cn_gradcheck *out)
{
    double dd = 0.0, aa = 0.0, gg = 0.0;
    double worst = 0.0, amax = 0.0;
    for (size_t j = 0; j < count; j++)
        amax = fabs(a[j]) > amax ? fabs(a[j]) : amax;
    double floor = FLOOR_REL * amax > FLOOR_ABS ? FLOOR_REL * amax : FLOOR_ABS;
    size_t todo = max_coords && max_coords < count ? max_coords : count;
    /* The checked coordinates and their differences, for a second look. */
    size_t *idx = vector_floor > 0 ? malloc(todo * sizeof *idx) : NULL;
    double *g1 = vector_floor > 0 ? malloc(todo * sizeof *g1) : NULL;
    size_t kept = 0;
    uint64_t r0;
    double m0, noise;
    int kink;
    f.loss(f.self, &r0, &m0);
    for (size_t c = 0; c < todo; c++) {
        size_t j = todo == count ? c : (size_t)cn_rng_below(rng, count);
        double g = difference(be, dev, j, v[j], EPS, f, r0, &kink, &noise);
        if (kink) {
            out->skipped++;
            continue;
        }
        if (vector_floor > 0) {
            dd += (a[j] - g) * (a[j] - g);
            aa += (double)a[j] * a[j];
            gg += g * g;
            if (idx && g1) {
                idx[kept] = j;
                g1[kept++] = g;
            }
            out->checked++;
            continue;
        }
        double den = fabs(a[j]) + fabs(g),
               fl = floor > NOISE_MULT * noise ? floor : NOISE_MULT * noise;
        double e = fabs(a[j] - g) / (den > fl ? den : fl);
        if (e >= CN_GRADCHECK_TOL) {
            double gh = difference(be, dev, j, v[j], 0.5f * EPS, f, r0, &kink, &noise);
            if (kink || fabs(g - gh) >= 0.5 * fabs(a[j] - g)) {
                out->skipped++;
                continue;
            }
        }
        worst = e > worst ? e : worst;
        out->checked++;
    }
    if (vector_floor > 0) {
        double norm = sqrt(aa > gg ? aa : gg);
        double e = sqrt(dd) / (norm > vector_floor ? norm : vector_floor);
        if (e >= CN_GRADCHECK_TOL && idx && g1) {
            /* Measure again with half the step: the floor becomes the
             * difference's own instability. */
            double ss = 0.0;
            for (size_t c = 0; c < kept; c++) {
                double gh =
                    difference(be, dev, idx[c], v[idx[c]], 0.5f * EPS, f, r0, &kink, &noise);
                if (kink) /* no sign of instability from this coordinate */
                    gh = g1[c];
                ss += (g1[c] - gh) * (g1[c] - gh);
            }
            double fl = NOISE_VEC * sqrt(ss);
            fl = fl > vector_floor ? fl : vector_floor;
            e = sqrt(dd) / (norm > fl ? norm : fl);
        }
        free(idx);
        free(g1);
        return e;
    }
    return worst;
}

/* Training passes move the running statistics of batch normalisation, and a
 * training pass's rounding depends on them (its sums are shifted by the
 * running mean): every evaluation starts from the buffers as they were, so
 * that L(t + eps) and L(t - eps) differ by the step alone, and the check
 * leaves the network as it found it. */
static void restore_buffers(cn_net *net, const float *saved)
{
    if (saved && net->n_buffers)
        net->be->copy(net->be, net->buffers, saved, net->n_buffers * sizeof(float));
}

/* A copy of the network's buffers in backend memory (NULL if it has none). */
static float *save_buffers(cn_net *net)
{
    if (!net->n_buffers)
        return NULL;
    float *b = net->be->alloc(net->be, net->n_buffers * sizeof(float));
    if (b)
        net->be->copy(net->be, b, net->buffers, net->n_buffers * sizeof(float));
    return b;
}

/* A host copy of count floats of backend memory (NULL when out of memory). */
static float *download(const cn_backend *be, const float *dev, size_t count)
{
    float *h = malloc((count ? count : 1) * sizeof *h);
    if (h && count)
        be->download(be, h, dev, count * sizeof *h);
    return h;
}

/* ----------------------------------------------------------- one layer */

typedef struct layer_job {
    cn_net *net;
    size_t i, n;
    const float *x; /* backend memory: the input, the output, and dL/dy */
    float *y;
    const float *r;        /* host: L = sum(r * y) for hidden layers */
    const int32_t *labels; /* host: L = mean NLL for the loss layer (the
                              cross-entropy against the smoothed target when
                              net->smooth is set) */
    float *hx, *hy;        /* host copies of x and y */
    float *y0;             /* host: y of the first call, the unmoved point */
    int have_y0;
    const float *saved; /* the buffers as they were (restore_buffers) */
} layer_job;

static double layer_loss(void *self, uint64_t *region, double *moved)
{
    layer_job *j = self;
    cn_net *net = j->net;
    cn_layer *l = &net->layers[j->i];
    size_t out = cn_shape_size(l->out), in = cn_shape_size(l->in);
    restore_buffers(net, j->saved);
    cn_net_layer_forward(net, j->i, j->x, j->y, j->n, 1);
    net->be->download(net->be, j->hy, j->y, j->n * out * sizeof *j->hy);
    *region = 0;
    if (l->ops->region) {
        net->be->download(net->be, j->hx, j->x, j->n * in * sizeof *j->hx);
        *region = l->ops->region(l, j->hx, j->hy, j->n);
    }
    if (!j->have_y0) {
        memcpy(j->y0, j->hy, j->n * out * sizeof *j->y0);
        j->have_y0 = 1;
    }
    double sum = 0.0, m = 0.0;
    if (l->ops->is_loss) { /* - sum_k q_k log y_k, q the (smoothed) target */
        double eps = net->smooth, off = eps / (double)out;
        for (size_t s = 0; s < j->n; s++)
            for (size_t c = 0; c < out; c++) {
                size_t k = s * out + c;
                double q = off + (c == (size_t)j->labels[s] ? 1.0 - eps : 0.0);
                if (q == 0.0)
                    continue;
                sum -= q * log((double)j->hy[k]);
                m += j->hy[k] != j->y0[k] ? q * q / ((double)j->n * (double)j->n) : 0.0;
            }
        *moved = m;
        return sum / (double)j->n;
    }
    for (size_t k = 0; k < j->n * out; k++) {
        double ry = (double)j->r[k] * (double)j->hy[k];
        sum += ry;
        m += j->hy[k] != j->y0[k] ? ry * ry : 0.0;
    }
    *moved = m;
    return sum;
}

static cn_status check_layer(cn_net *net, size_t i, size_t n, size_t max_coords, cn_rng *rng,
                             cn_gradcheck *out)
{
    memset(out, 0, sizeof *out);
    if (i >= net->n_layers || n == 0 || n > net->max_batch || n > net->train_batch)
        return cn_fail(CN_ERR_ARG, "gradcheck: layer %zu of %zu, batch %zu of at most %zu", i,
                       net->n_layers, n, net->train_batch);
    cn_backend *be = net->be;
    cn_layer *l = &net->layers[i];
    size_t in = n * cn_shape_size(l->in), outn = n * cn_shape_size(l->out);
    float *saved = NULL; /* the buffers as they were */
    float *x = be->alloc(be, in * sizeof(float)), *dx = be->alloc(be, in * sizeof(float));
    float *y = be->alloc(be, outn * sizeof(float)), *r = be->alloc(be, outn * sizeof(float));
    float *hx = malloc(in * sizeof *hx), *hr = malloc(outn * sizeof *hr);
    float *hy = malloc(outn * sizeof *hy), *hdx = NULL, *hp = NULL, *hg = NULL;
    int32_t *labels = malloc(n * sizeof *labels);
    cn_status st = CN_OK;
    if (!x || !dx || !y || !r || !hx || !hr || !hy || !labels) {
        st = cn_fail(CN_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t k = 0; k < in; k++)
        hx[k] = (float)cn_rng_normal(rng);
    for (size_t k = 0; k < outn; k++)
        hr[k] = (float)cn_rng_normal(rng);
    for (size_t s = 0; s < n; s++)
        labels[s] = (int32_t)cn_rng_below(rng, cn_shape_size(l->out));
    be->upload(be, x, hx, in * sizeof *hx);
    be->upload(be, r, hr, outn * sizeof *hr);
    be->upload(be, net->labels, labels, n * sizeof *labels);
    /* The gradients the layer's extra inputs get go to the network's
     * buffers: clear them. */
    for (size_t k = 0; k < l->n_extra; k++)
        be->fill(be, l->dextra[k], 0.0f, n * cn_shape_size(l->extra_in[k]));

    saved = save_buffers(net);
    if (net->n_buffers && !saved) {
        st = cn_fail(CN_ERR_NOMEM, "out of memory");
        goto done;
    }
    cn_net_zero_grads(net);
    cn_net_layer_forward(net, i, x, y, n, 1);
    cn_net_layer_backward(net, i, x, y, l->ops->is_loss ? NULL : r, dx, n);
    hdx = download(be, dx, in);
    if (!hdx) {
        st = cn_fail(CN_ERR_NOMEM, "out of memory");
        goto done;
    }
    layer_job job = {.net = net,
                     .i = i,
                     .n = n,
                     .x = x,
                     .y = y,
                     .r = hr,
                     .labels = labels,
                     .hx = malloc(in * sizeof(float)),
                     .hy = hy,
                     .y0 = malloc(outn * sizeof(float)),
                     .saved = saved};
    evalf f = {layer_loss, &job};
    if (!job.hx || !job.y0) {
        free(job.hx);
        free(job.y0);
        st = cn_fail(CN_ERR_NOMEM, "out of memory");
        goto done;
    }
    out->input_err = check_coords(be, x, hx, hdx, in, max_coords, rng, f, 0.0, out);
    out->input_checked = out->checked;
    for (size_t t = 0; t < l->n_t; t++) {
        size_t count = l->t[t].count;
        free(hp);
        free(hg);
        hp = download(be, l->p[t], count);
        hg = download(be, l->g[t], count);
        if (!hp || !hg) {
            st = cn_fail(CN_ERR_NOMEM, "out of memory");
            break;
        }
        double e = check_coords(be, l->p[t], hp, hg, count, max_coords, rng, f, 0.0, out);
        out->param_err = e > out->param_err ? e : out->param_err;
    }
    free(job.hx);
    free(job.y0);
    cn_net_zero_grads(net);
done:
    restore_buffers(net, saved);
    be->free(be, saved);
    be->free(be, x);
    be->free(be, dx);
    be->free(be, y);
    be->free(be, r);
    free(hx);
    free(hr);
    free(hy);
    free(hdx);
    free(hp);
    free(hg);
    free(labels);
    return st;
}

/* -------------------------------------------------------- whole network */

typedef struct net_job {
    cn_net *net;
    size_t n;
    size_t from;        /* the first layer the moved coordinate changes */
    int whole;          /* the next pass runs from the first layer (see net_loss) */
    float *x;           /* the input in backend memory (where the first pass read it) */
    const float *saved; /* the buffers as they were (restore_buffers) */
    const int32_t *labels;
    float *hx, *hy;    /* host copies of a layer's input and output */
    uint64_t *regions; /* each layer's linear piece in the last pass */
} net_job;

static double net_loss(void *self, uint64_t *region, double *moved)
{
    *moved = 0.0; /* not modelled: the network is judged by its vectors */
    net_job *j = self;
    cn_net *net = j->net;
    double loss = 0.0;
    /* The input moves in backend memory (check_coords): run from there. */
    restore_buffers(net, j->saved);
    /* The last pass of the tensor checked before left the outputs of its
     * moved coordinate behind: the first pass of each tensor runs whole. */
    size_t from = j->whole ? 0 : j->from;
    cn_net_run_forward_from(net, from, j->x, j->n, 1, NULL);
    j->whole = 0;
    cn_net_loss(net, j->labels, j->n, &loss);
    /* The layers below from kept their input, output and piece. */
    *region = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < net->n_layers; i++) {
        const cn_layer *l = &net->layers[i];
        if (!l->ops->region)
            continue;
        if (i >= from) {
            /* (an output that a lean net does not keep, made again) */
            float *tx = NULL, *ty = NULL;
            const float *xi = i ? cn_net_output_view(net, i - 1, &tx) : j->x;
            const float *yi = cn_net_output_view(net, i, &ty);
            if (xi && yi) {
                net->be->download(net->be, j->hx, xi, j->n * cn_shape_size(l->in) * sizeof(float));
                net->be->download(net->be, j->hy, yi, j->n * cn_shape_size(l->out) * sizeof(float));
                j->regions[i] = l->ops->region(l, j->hx, j->hy, j->n);
            }
            net->be->free(net->be, tx);
            net->be->free(net->be, ty);
        }
        *region = cn_hash(*region, j->regions[i]);
    }
    return loss;
}

static cn_status check_net(cn_net *net, size_t n, size_t max_coords, cn_rng *rng, cn_gradcheck *out)
{
    memset(out, 0, sizeof *out);
    if (n == 0 || n > net->max_batch || n > net->train_batch)
        return cn_fail(CN_ERR_ARG, "gradcheck: batch %zu of at most %zu", n, net->train_batch);
    cn_backend *be = net->be;
    size_t in = n * cn_shape_size(net->spec->input), np = net->n_params;
    size_t io = n * cn_shape_size(net->spec->input);
    for (size_t i = 0; i < net->n_layers; i++)
        io =
            n * cn_shape_size(net->layers[i].out) > io ? n * cn_shape_size(net->layers[i].out) : io;
    float *saved = NULL; /* the buffers as they were */
    uint64_t *regions = calloc(net->n_layers, sizeof *regions);
    float *x = malloc(in * sizeof *x), *dx = malloc(in * sizeof *dx);
    float *g = malloc((np ? np : 1) * sizeof *g), *p = malloc((np ? np : 1) * sizeof *p);
    float *hx = malloc(io * sizeof *hx), *hy = malloc(io * sizeof *hy);
    int32_t *labels = malloc(n * sizeof *labels);
    cn_status st = CN_OK;
    if (!regions || !x || !dx || !g || !p || !hx || !hy || !labels) {
        st = cn_fail(CN_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t k = 0; k < in; k++)
        x[k] = (float)cn_rng_normal(rng);
    for (size_t s = 0; s < n; s++)
        labels[s] = (int32_t)cn_rng_below(rng, net->spec->classes);
    saved = save_buffers(net);
    if (net->n_buffers && !saved) {
        st = cn_fail(CN_ERR_NOMEM, "out of memory");
        goto done;
    }
    cn_net_zero_grads(net);
    cn_net_forward(net, x, n, 1);
    if ((st = cn_net_backward(net, labels, n, dx)))
        goto done;
    be->download(be, g, net->grads, np * sizeof *g);
    be->download(be, p, net->params, np * sizeof *p);

    /* The floor of the vector norms: 1e-3 of the largest gradient norm. */
    double scale = 0.0;
    for (size_t i = 0; i < net->n_layers; i++) {
        cn_layer *l = &net->layers[i];
        for (size_t t = 0; t < l->n_t; t++) {
            double ss = 0.0;
            for (size_t j = 0; j < l->t[t].count; j++)
                ss += (double)g[l->t[t].offset + j] * g[l->t[t].offset + j];
            scale = sqrt(ss) > scale ? sqrt(ss) : scale;
        }
    }
    double floor = 1e-3 * scale > FLOOR_ABS ? 1e-3 * scale : FLOOR_ABS;
    /* check_coords moves the backend's copy of the input; the host copy x
     * keeps the values (they are one and the same on the CPU). */
    net_job job = {net, n, 0, 1, (float *)net->x_last, saved, labels, hx, hy, regions};
    evalf f = {net_loss, &job};
    float *hx0 = malloc(in * sizeof *hx0);
    if (!hx0) {
        st = cn_fail(CN_ERR_NOMEM, "out of memory");
        goto done;
    }
    memcpy(hx0, x, in * sizeof *hx0);
    out->input_err = check_coords(be, job.x, hx0, dx, in, max_coords, rng, f, floor, out);
    out->input_checked = out->checked;
    free(hx0);
    for (size_t i = 0; i < net->n_layers; i++) {
        cn_layer *l = &net->layers[i];
        /* Only the layers from here on change: the pass starts here. */
        job.from = cn_net_rerun_start(net, i);
        for (size_t t = 0; t < l->n_t; t++) {
            size_t off = l->t[t].offset;
            job.whole = 1;
            double e = check_coords(be, l->p[t], p + off, g + off, l->t[t].count, max_coords, rng,
                                    f, floor, out);
            out->param_err = e > out->param_err ? e : out->param_err;
        }
    }
    cn_net_zero_grads(net);
done:
    restore_buffers(net, saved);
    be->free(be, saved);
    free(x);
    free(dx);
    free(g);
    free(p);
    free(hx);
    free(hy);
    free(labels);
    free(regions);
    return st;
}

/* The checks run the forward passes with the backend's exactly rounded
 * convolutions (cn_backend.exact): Winograd's transforms round about ten
 * times as coarsely as the direct sum, which this file's noise model does
 * not allow for; their own accuracy is tested against the direct sum. */
cn_status cn_gradcheck_layer(cn_net *net, size_t i, size_t n, size_t max_coords, cn_rng *rng,
                             cn_gradcheck *out)
{
    int was = net->be->exact;
    net->be->exact = 1;
    cn_status st = check_layer(net, i, n, max_coords, rng, out);
    net->be->exact = was;
    cn_net_weights_changed(net); /* nudged and put back, to the bit */
    return st;
}

cn_status cn_gradcheck_net(cn_net *net, size_t n, size_t max_coords, cn_rng *rng, cn_gradcheck *out)
{
    int was = net->be->exact;
    net->be->exact = 1;
    cn_status st = check_net(net, n, max_coords, rng, out);
    net->be->exact = was;
    cn_net_weights_changed(net); /* nudged and put back, to the bit */
    return st;
}
