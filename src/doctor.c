/* doctor.c - what the doctor measures: the figures of layer outputs and of
 * the parameter and gradient blocks (the backend's stats operation: the
 * values never leave its memory), and where a NaN or infinite value first
 * appeared in a forward or backward pass.  A watched model (cn_model_set_watch)
 * checks every training step and traces the first non-finite value. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cn_stats from the backend's five figures of rows x units x size values. */
static void fill_stats(const cn_backend *be, const float *x, size_t rows, size_t units, size_t size,
                       cn_stats *out)
{
    double f[5] = {0, 0, 0, 0, 0};
    if (rows && units && size)
        be->stats(be, x, rows, units, size, f);
    size_t count = rows * units * size, finite = count - (size_t)f[3];
    double mean = finite ? f[0] / (double)finite : 0.0;
    double var = finite ? f[1] / (double)finite - mean * mean : 0.0;
    *out = (cn_stats){count, (size_t)f[3], mean, var > 0 ? sqrt(var) : 0.0, sqrt(f[1]), f[2],
                      units, (size_t)f[4], 0};
}

cn_status cn_net_layer_stats(const cn_net *net, size_t i, cn_stats *out)
{
    cn_status st = cn_net_check_output(net, i);
    if (st)
        return st;
    cn_shape s = net->layers[i].out;
    float *tmp; /* an output a lean net does not keep, made again */
    const float *y = cn_net_output_view((cn_net *)net, i, &tmp);
    if (!y)
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    fill_stats(net->be, y, net->n_last, s.c, s.h * s.w, out);
    net->be->free(net->be, tmp);
    out->in_place = i + 1 < net->n_layers && net->act[i + 1] == net->act[i];
    return CN_OK;
}

cn_status cn_net_block_stats(const cn_net *net, cn_block b, size_t offset, size_t count,
                             cn_stats *out)
{
    size_t size = b == CN_BUFFERS ? net->n_buffers : net->n_params;
    const float *p = b == CN_PARAMS    ? net->params
                     : b == CN_GRADS   ? net->grads
                     : b == CN_BUFFERS ? net->buffers
                                       : NULL;
    if (!p || offset > size || count > size - offset)
        return cn_fail(CN_ERR_ARG, "floats %zu..%zu are outside the block of %zu", offset,
                       offset + count, size);
    fill_stats(net->be, p + offset, 1, count, 1, out);
    return CN_OK;
}

/* Whether count values at x hold a non-finite one: if so, out says where. */
static int check(const cn_net *net, const float *x, size_t count, int backward, size_t layer,
                 const char *what, cn_trace *out)
{
    size_t bad = count ? net->be->count_nonfinite(net->be, x, count) : 0;
    if (!bad || out->found)
        return out->found;
    out->found = 1;
    out->backward = backward;
    out->layer = layer;
    snprintf(out->tensor, sizeof out->tensor, "%s", what);
    out->nonfinite = bad;
    out->count = count;
    return 1;
}

cn_status cn_net_trace_forward(const cn_net *net, cn_trace *out)
{
    memset(out, 0, sizeof *out);
    if (!net->x_last)
        return cn_fail(CN_ERR_ARG, "no forward pass to trace");
    size_t n = net->n_last;
    if (check(net, net->x_last, n * cn_shape_size(net->spec->input), 0, 0, "input", out))
        return CN_OK;
    char what[80];
    for (size_t i = 0; i < net->n_layers; i++) {
        const cn_layer *l = &net->layers[i];
        for (size_t t = 0; t < l->n_t; t++)
            if (check(net, l->p[t], l->t[t].count, 0, i, l->t[t].name, out))
                return CN_OK;
        for (size_t t = 0; t < l->n_bt; t++)
            if (check(net, l->b[t], l->bt[t].count, 0, i, l->bt[t].name, out))
                return CN_OK;
        snprintf(what, sizeof what, "%s output", l->name);
        float *tmp; /* an output a lean net does not keep, made again */
        const float *y = cn_net_output_view((cn_net *)net, i, &tmp);
        if (!y)
            return cn_fail(CN_ERR_NOMEM, "out of memory");
        int found = check(net, y, n * cn_shape_size(l->out), 0, i, what, out);
        net->be->free(net->be, tmp);
        if (found)
            return CN_OK;
    }
    return CN_OK;
}

/* The backward pass's check after each layer: its parameters' gradients,
 * then the gradient of its input that it wrote. */
typedef struct bwd_check {
    cn_net *net;
    size_t n;
    cn_trace *out;
} bwd_check;

static void after_layer(void *user, size_t i)
{
    bwd_check *b = user;
    const cn_layer *l = &b->net->layers[i];
    if (b->out->found)
        return;
    char what[80];
    for (size_t t = 0; t < l->n_t; t++) {
        snprintf(what, sizeof what, "%s gradient", l->t[t].name);
        if (check(b->net, l->g[t], l->t[t].count, 1, i, what, b->out))
            return;
    }
    snprintf(what, sizeof what, "%s input gradient", l->name);
    if (i > 0 && !l->fused_away && b->net->d_last)
        check(b->net, b->net->d_last, b->n * cn_shape_size(l->in), 1, i, what, b->out);
}

cn_status cn_net_trace_backward(cn_net *net, const int32_t *labels, size_t n, cn_trace *out)
{
    memset(out, 0, sizeof *out);
    if (!net->x_last || n != net->n_last || !net->train_last)
        return cn_fail(CN_ERR_ARG, "a backward trace needs a training forward pass of %zu samples",
                       n);
    cn_status st = cn_net_put_labels(net, labels, n);
    if (st)
        return st;
    if (net->spent) {
        /* The pass wrote gradients over outputs it reads: the forward pass
         * again first, from the buffers (running statistics) it found, so
         * the same bits, and the same buffers after it. */
        if (net->n_buffers)
            net->be->copy(net->be, net->buffers, net->buffers_before,
                          net->n_buffers * sizeof(float));
        cn_net_run_forward(net, net->x_last, n, 1, NULL);
    }
    cn_net_zero_grads(net);
    bwd_check b = {net, n, out};
    net->d_last = NULL;
    cn_net_run_backward(net, n, 0, NULL, after_layer, &b);
    return CN_OK;
}

void cn_model_set_watch(cn_model *model, int on) { model->watch = on != 0; }

cn_status cn_model_keep_stats(cn_model *model, int on)
{
    model->keep_stats = 0;

    if (on && !model->stats && !(model->stats = calloc(model->net->n_layers, sizeof *model->stats)))
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    model->keep_stats = on != 0;
    return CN_OK;
}

void cn_model_take_stats(cn_model *m)
{
    for (size_t i = 0; i < m->net->n_layers; i++)
        cn_net_layer_stats(m->net, i, &m->stats[i]);
    m->stats_step = m->state.global_step + 1;
}

cn_status cn_model_layer_stats(const cn_model *model, size_t i, cn_stats *out)
{
    if (!model->stats_step)
        return cn_fail(CN_ERR_ARG, "no training step has kept its layers' figures yet "
                                   "(cn_model_keep_stats)");
    if (i >= model->net->n_layers)
        return cn_fail(CN_ERR_ARG, "layer %zu does not exist (the net has %zu)", i,
                       model->net->n_layers);
    *out = model->stats[i];
    return CN_OK;
}

const cn_trace *cn_model_trace(const cn_model *model) { return &model->trace; }

/* The message of a watched step that found a non-finite value. */
static cn_status numeric(const cn_model *m, const char *what)
{
    const cn_trace *t = &m->trace;
    const cn_layer *l = &m->net->layers[t->layer];
    return cn_fail(CN_ERR_NUMERIC,
                   "%s at step %llu (learning rate %g): the first NaN or infinite value appeared "
                   "in the %s pass, in layer %s ([%s], line %d): %s, %zu of %zu values; the "
                   "weights are left as they were before the step; try a learning rate about "
                   "ten times smaller (%g)",
                   what, (unsigned long long)t->step, t->lr, t->backward ? "backward" : "forward",
                   l->name, l->ops->kind, l->line, t->tensor, t->nonfinite, t->count,
                   m->opts.lr / 10);
}

cn_status cn_model_watch_forward(cn_model *m, double loss_sum, double lr)
{
    if (isfinite(loss_sum))
        return CN_OK;
    cn_status st = cn_net_trace_forward(m->net, &m->trace);
    if (st)
        return st;
    m->trace.step = m->state.global_step + 1;
    m->trace.lr = lr;
    if (!m->trace.found) { /* the loss alone overflowed: name the loss layer */
        m->trace = (cn_trace){1, 0, m->net->n_layers - 1, "the loss", 1, 1, m->trace.step, lr};
    }
    return numeric(m, isnan(loss_sum) ? "the loss became NaN" : "the loss became infinite");
}

cn_status cn_model_watch_backward(cn_model *m, size_t n, double lr)
{
    cn_net *net = m->net;
    if (m->be->count_nonfinite(m->be, net->grads, net->n_params) == 0)
        return CN_OK;
    /* Run the pass again with a check after each layer: the same bits. */
    cn_status st = cn_net_trace_backward(net, net->h_labels, n, &m->trace);
    if (st)
        return st;
    m->trace.step = m->state.global_step + 1;
    m->trace.lr = lr;
    return numeric(m, "the gradients became NaN or infinite");
}
