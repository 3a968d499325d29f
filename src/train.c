/* train.c - the training loop: shuffled epochs of minibatches, the
 * learning-rate schedule, validation, hooks, and exact resume.
 *
 * Resume is exact because the state is small: the RNG as it was at the start
 * of the current epoch (the epoch's permutation is drawn from it again) and
 * the number of batches already done in that epoch. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The data must fit the description's [net]: the messages point there. */
static cn_status check_data(const cn_net *net, const cn_data *d, const char *what)
{
    const cn_spec *spec = net->spec;
    cn_shape in = spec->input;
    if (d->shape.c != in.c || d->shape.h != in.h || d->shape.w != in.w)
        return cn_fail(CN_ERR_SHAPE,
                       "%s:%d: [net] takes images of %zux%zux%zu (channels x height x width) "
                       "but the %s images are %zux%zux%zu",
                       spec->source, spec->net_line, in.c, in.h, in.w, what, d->shape.c, d->shape.h,
                       d->shape.w);
    if (d->classes > spec->classes)
        return cn_fail(CN_ERR_SHAPE,
                       "%s:%d: classes = %zu, but the %s data has %zu classes: the network "
                       "needs an output for each",
                       spec->source, spec->classes_line, spec->classes, what, d->classes);
    return CN_OK;
}

size_t cn_argmax(const float *row, size_t k)
{
    size_t best = 0;
    for (size_t j = 1; j < k; j++)
        if (row[j] > row[best])
            best = j;
    return best;
}

void cn_augment(uint8_t *pix, size_t n, cn_shape s, int shift, int flip, cn_rng *rng, uint8_t *tmp)
{
    size_t hw = s.h * s.w, size = s.c * hw;
    for (size_t i = 0; i < n; i++) {
        long dy = shift ? (long)cn_rng_below(rng, 2 * (uint64_t)shift + 1) - shift : 0;
        long dx = shift ? (long)cn_rng_below(rng, 2 * (uint64_t)shift + 1) - shift : 0;
        int mirror = flip && (cn_rng_next(rng) >> 63);
        if (!dy && !dx && !mirror)
            continue;
        uint8_t *p = pix + i * size;
        memcpy(tmp, p, size);
        for (size_t c = 0; c < s.c; c++)
            for (long y = 0; y < (long)s.h; y++) {
                long sy = y - dy;
                uint8_t *row = p + c * hw + (size_t)y * s.w;
                if (sy < 0 || sy >= (long)s.h) {
                    memset(row, 0, s.w);
                    continue;
                }
                const uint8_t *src = tmp + c * hw + (size_t)sy * s.w;
                for (long x = 0; x < (long)s.w; x++) {
                    long sx = x - dx;
                    if (mirror)
                        sx = (long)s.w - 1 - sx;
                    row[x] = sx >= 0 && sx < (long)s.w ? src[sx] : 0;
                }
            }
    }
}

uint64_t cn_step_seed(uint64_t seed, uint64_t step)
{
    uint64_t z = seed ^ (step + 1) * 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Whether n floats are all finite. */
static int all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

/* An epoch ends: the next one shuffles with the generator as it was left. */
static void close_epoch(cn_train_state *s, const cn_rng *rng)
{
    s->rng = *rng;
    s->epoch++;
    s->step = 0;
}

cn_status cn_model_train(cn_model *m, const cn_data *train, const cn_data *val,
                         const cn_train_hooks *hooks)
{
    static const cn_train_hooks none = {0};
    if (!hooks)
        hooks = &none;
    const cn_train_opts *o = &m->opts;
    cn_status st = cn_train_opts_check(o);
    if (st)
        return st;
    if ((st = check_data(m->net, train, "training")) ||
        (val && (st = check_data(m->net, val, "validation"))))
        return st;
    size_t batch = (size_t)o->batch, steps = train->n / batch;
    if (steps == 0)
        return cn_fail(CN_ERR_SHAPE,
                       "the training set has %zu samples, fewer than one batch of %zu", train->n,
                       batch);
    if (train->n > UINT32_MAX)
        return cn_fail(CN_ERR_SHAPE, "more than 2^32 training samples");
    if (m->state.step >= steps)
        return cn_fail(CN_ERR_ARG,
                       "the model stopped at batch %llu of an epoch that now has %zu "
                       "batches: resume with the batch size it was trained with",
                       (unsigned long long)m->state.step, steps);
    if ((st = cn_model_plan(m, batch, batch)))
        return st;
    /* normalise = channel: measured on the training set at the start. */
    if (m->spec->norm_channel && m->state.global_step == 0)
        cn_net_measure_input(m->net, train);
    cn_net *net = m->net;
    size_t in_size = cn_shape_size(cn_net_input_shape(net)), k = cn_net_classes(net);
    uint32_t *perm = malloc(train->n * sizeof *perm);
    uint8_t *pix = malloc(batch * in_size), *tmp = malloc(in_size);
    float *x = cn_alloc(batch * in_size, sizeof(float));
    int32_t *labels = malloc(batch * sizeof *labels);
    if (!perm || !pix || !tmp || !x || !labels) {
        st = cn_fail(CN_ERR_NOMEM, "out of memory");
        goto done;
    }

    cn_progress p = {0};
    p.epochs = o->epochs;
    p.steps = steps;
    p.batch = o->batch;
    double run_start = cn_now();
    while (m->state.epoch < o->epochs) {
        cn_train_state *s = &m->state;
        cn_rng rng = s->rng;
        for (size_t i = 0; i < train->n; i++)
            perm[i] = (uint32_t)i;
        for (size_t i = train->n - 1; i > 0; i--) {
            size_t j = (size_t)cn_rng_below(&rng, i + 1);
            uint32_t t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        double loss_sum = 0.0, epoch_start = cn_now();
        size_t correct = 0, seen = 0;
        p.epoch = s->epoch;
        p.val_loss = p.val_accuracy = -1.0;
        while (s->step < steps) {
            const uint32_t *idx = perm + s->step * batch;
            double lr = cn_train_opts_lr(o, s->epoch + (double)s->step / (double)steps);
            p.lr = lr;
            for (size_t b = 0; b < batch; b++) {
                memcpy(pix + b * in_size, train->pixels + (size_t)idx[b] * in_size, in_size);
                labels[b] = train->labels[idx[b]];
            }
            /* Augmentation and dropout draw from the step's own generator,
             * so that a resumed run repeats them exactly. */
            net->seed = cn_step_seed(o->seed, s->global_step);
            if (o->shift || o->flip) {
                cn_rng arng;
                cn_rng_seed(&arng, net->seed);
                cn_augment(pix, batch, net->spec->input, o->shift, o->flip, &arng, tmp);
            }
            cn_net_prepare(net, pix, batch, x);
            cn_net_forward(net, x, batch, 1);
            double loss;
            if ((st = cn_net_loss(net, labels, batch, &loss)))
                goto done;
            if (!isfinite(loss)) {
                st = cn_fail(CN_ERR_NUMERIC,
                             "the loss became %s at epoch %d, batch %llu (learning rate %g): "
                             "training diverged; try a learning rate about ten times smaller "
                             "(--lr %g)",
                             isnan(loss) ? "NaN" : "infinite", s->epoch + 1,
                             (unsigned long long)s->step + 1, lr, o->lr / 10);
                goto done;
            }
            const float *out = cn_net_output(net);
            for (size_t b = 0; b < batch; b++)
                correct += cn_argmax(out + b * k, k) == (size_t)labels[b];
            cn_net_zero_grads(net);
            cn_net_backward(net, labels, batch, NULL);
            cn_optim_step(&m->optim, &net->be, o, lr, s->global_step + 1, net->params, net->grads,
                          net->n_params);
            /* The batch is done: the state moves before anyone can stop. */
            s->step++;
            s->global_step++;
            loss_sum += loss;
            seen += batch;
            double now = cn_now();
            p.step = s->step;
            p.global_step = s->global_step;
            p.batches = seen / batch;
            p.loss = loss_sum * (double)batch / (double)seen;
            p.accuracy = (double)correct / (double)seen;
            p.images_per_s = (double)seen / (now - epoch_start);
            p.elapsed_s = now - run_start - p.val_s;
            cn_status hook = hooks->on_batch ? hooks->on_batch(hooks->user, &p) : CN_OK;
            /* A stop in the last batch lets the epoch end normally. */
            if (!hook && hooks->stop && *hooks->stop && s->step < steps)
                hook = cn_fail(CN_ERR_STOPPED, "training stopped at epoch %d, batch %llu of %zu",
                               s->epoch + 1, (unsigned long long)s->step, steps);
            if (hook) {
                if (s->step == steps) /* the epoch is complete: close it */
                    close_epoch(s, &rng);
                st = hook;
                goto done;
            }
        }
        /* The loss of every batch was finite, but the last update may not
         * be: the end of an epoch (a checkpoint) must not keep it. */
        if (!all_finite(net->params, net->n_params) || !all_finite(net->buffers, net->n_buffers) ||
            !all_finite(m->optim.state, m->optim.n_slots * net->n_params)) {
            st = cn_fail(CN_ERR_NUMERIC,
                         "the weights became NaN or infinite in epoch %d (learning rate %g): "
                         "training diverged; try a learning rate about ten times smaller "
                         "(--lr %g)",
                         s->epoch + 1, p.lr, o->lr / 10);
            goto done;
        }
        close_epoch(s, &rng);
        if (val && val->n) {
            double v0 = cn_now();
            cn_eval ev;
            if ((st = cn_net_evaluate(net, val, &ev)))
                goto done;
            p.val_loss = ev.loss;
            p.val_accuracy = ev.accuracy;
            cn_eval_free(&ev);
            p.val_s += cn_now() - v0;
        }
        p.elapsed_s = cn_now() - run_start - p.val_s;
        if (hooks->on_epoch && (st = hooks->on_epoch(hooks->user, m, &p)))
            goto done;
        if (hooks->stop && *hooks->stop) {
            st = cn_fail(CN_ERR_STOPPED, "training stopped after epoch %d", s->epoch);
            goto done;
        }
    }
done:
    net->x_last = NULL;
    free(perm);
    free(pix);
    free(tmp);
    cn_free(x);
    free(labels);
    return st;
}

/* One step, timed per layer when the arrays are given. */
static cn_status step(cn_model *m, const float *x, const int32_t *labels, size_t n, double lr,
                      double *loss, double *fwd, double *bwd, double *update)
{
    cn_status st = cn_model_plan(m, n, n);
    if (st)
        return st;
    cn_net *net = m->net;
    if (n == 0 || n > net->max_batch)
        return cn_fail(CN_ERR_ARG, "a batch of %zu samples", n);
    for (size_t i = 0; i < n; i++)
        if (labels[i] < 0 || (size_t)labels[i] >= cn_net_classes(net))
            return cn_fail(CN_ERR_ARG, "label %d of sample %zu is outside 0..%zu", (int)labels[i],
                           i, cn_net_classes(net) - 1);
    cn_net_run_forward(net, x, n, 1, fwd);
    if (loss && (st = cn_net_loss(net, labels, n, loss)))
        return st;
    cn_net_zero_grads(net);
    cn_net_run_backward(net, labels, n, NULL, bwd);
    double t0 = cn_now();
    cn_optim_step(&m->optim, &net->be, &m->opts, lr, m->state.global_step + 1, net->params,
                  net->grads, net->n_params);
    if (update)
        *update = cn_now() - t0;
    net->x_last = NULL;
    return CN_OK;
}

cn_status cn_model_step(cn_model *m, const float *x, const int32_t *labels, size_t n, double lr,
                        double *loss)
{
    return step(m, x, labels, n, lr, loss, NULL, NULL, NULL);
}

cn_status cn_model_profile(cn_model *m, const float *x, const int32_t *labels, size_t n,
                           double *forward, double *backward, double *update)
{
    double loss;
    return step(m, x, labels, n, m->opts.lr, &loss, forward, backward, update);
}
