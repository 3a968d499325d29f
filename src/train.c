/* train.c - the training loop: shuffled epochs of minibatches, the
 * learning-rate schedule, validation, hooks, and exact resume.
 *
 * Resume is exact because the state is small: the RNG as it was at the start
 * of the current epoch (the epoch's permutation is drawn from it again) and
 * the number of batches already done in that epoch. */
#include "counter_rng.h"
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

cn_aug cn_aug_of(const cn_train_opts *o)
{
    const double radians = 3.14159265358979323846 / 180.0 * 65536.0;
    cn_aug a = {o->shift,
                o->flip,
                (int32_t)lround(o->rotate * radians),
                (int32_t)lround(o->scale * 65536.0),
                (int32_t)lround(o->shear * radians),
                (uint32_t)lround(o->erase * 16777216.0),
                (int32_t)lround(o->elastic * 65536.0)};
    return a;
}

void cn_augment(uint8_t *pix, size_t n, cn_shape s, const cn_aug *aug, uint64_t seed, size_t first,
                uint8_t *tmp)
{
    size_t size = cn_shape_size(s);
    for (size_t i = 0; i < n && cn_aug_any(aug); i++) {
        cn_aug_draw d;
        cn_aug_draw_for(aug, (int64_t)s.h, (int64_t)s.w, seed, first + i, &d);
        uint8_t *p = pix + i * size;
        memcpy(tmp, p, size);
        cn_aug_sample(tmp, p, (int64_t)s.c, (int64_t)s.h, (int64_t)s.w, &d);
    }
}

/* The probability of mixup in 2^-24. */
static uint32_t mix_p24(const cn_train_opts *o) { return (uint32_t)lround(o->mixup * 16777216.0); }

/* Mixup over the n augmented samples pix at places first.. of a step
 * seeded seed: each one drawn for it is blended with its partner from
 * from (count samples; labels from_labels, or NULL), the partner taken as
 * it is in from and augmented with its own draws.  other and keep (unless
 * NULL) get each sample's other label and own share (its own label and 1
 * where it is not blended).  part and tmp: a sample's room each. */
static void mix_batch(uint8_t *pix, size_t n, cn_shape s, const cn_aug *aug, uint32_t p24,
                      const uint8_t *from, const int32_t *from_labels, size_t count, uint64_t seed,
                      size_t first, const int32_t *labels, int32_t *other, float *keep,
                      uint8_t *part, uint8_t *tmp)
{
    size_t size = cn_shape_size(s);
    for (size_t i = 0; i < n; i++) {
        cn_mix_draw d;
        cn_mix_draw_for(p24, count, seed, first + i, &d);
        if (other)
            other[i] = labels[i];
        if (keep)
            keep[i] = 1.0f;
        if (!d.on)
            continue;
        memcpy(part, from + (size_t)d.partner * size, size);
        cn_augment(part, 1, s, aug, seed, first + i + CN_MIX_PARTNER_AT, tmp);
        cn_mix_pixels(pix + i * size, part, size, d.w24);
        if (other)
            other[i] = from_labels[d.partner];
        if (keep)
            keep[i] = (float)d.w24 / 16777216.0f;
    }
}

cn_status cn_train_opts_augment(const cn_train_opts *o, uint8_t *pixels, size_t n, cn_shape s,
                                uint64_t step, size_t first)
{
    cn_status st = cn_train_opts_check(o);
    if (st)
        return st;
    size_t size = cn_shape_size(s) ? cn_shape_size(s) : 1;
    int mix = o->mixup > 0 && n > 0;
    uint8_t *tmp = malloc(size), *part = malloc(size), *orig = mix ? malloc(n * size) : NULL;
    if (!tmp || !part || (mix && !orig)) {
        free(tmp);
        free(part);
        free(orig);
        return cn_fail(CN_ERR_NOMEM, "out of memory for %zu samples of %zu bytes", n, size);
    }
    if (mix) /* the partners as they were */
        memcpy(orig, pixels, n * cn_shape_size(s));
    const cn_aug aug = cn_aug_of(o);
    uint64_t seed = cn_step_seed(o->seed, step);
    cn_augment(pixels, n, s, &aug, seed, first, tmp);
    if (mix)
        mix_batch(pixels, n, s, &aug, mix_p24(o), orig, NULL, n, seed, first, NULL, NULL, NULL,
                  part, tmp);
    free(tmp);
    free(part);
    free(orig);
    return CN_OK;
}

/* Whether the parameters, buffers, optimizer state and moving average are
 * all finite. */
static int model_finite(const cn_model *m)
{
    const cn_net *net = m->net;
    const cn_backend *be = m->be;
    size_t avg = m->ema_mem ? net->n_params + net->n_buffers : 0;
    return be->count_nonfinite(be, net->params, net->n_params) == 0 &&
           be->count_nonfinite(be, net->buffers, net->n_buffers) == 0 &&
           be->count_nonfinite(be, m->optim.state, m->optim.n_slots * net->n_params) == 0 &&
           (!avg || be->count_nonfinite(be, m->ema_mem, avg) == 0);
}

/* Every worker starts from worker 0's model. */
static cn_status broadcast_model(cn_model *m)
{
    cn_net *net = m->net;
    cn_status st;
    size_t avg = m->ema_mem ? net->n_params + net->n_buffers : 0;
    if ((st = cn_model_exchange(m, net->params, net->n_params, 0)) ||
        (st = cn_model_exchange(m, net->buffers, net->n_buffers, 0)) ||
        (st = cn_model_exchange(m, m->optim.state, m->optim.n_slots * net->n_params, 0)) ||
        (st = cn_model_exchange(m, net->norm, 2 * m->spec->input.c, 0)) ||
        (avg && (st = cn_model_exchange(m, m->ema_mem, avg, 0))))
        return st;
    cn_net_weights_changed(net);
    m->be->download(m->be, net->norm_host, net->norm, 2 * m->spec->input.c * sizeof(float));
    return CN_OK;
}

/* An epoch ends: the next one shuffles with the generator as it was left. */
static void close_epoch(cn_train_state *s, const cn_rng *rng)
{
    s->rng = *rng;
    s->epoch++;
    s->step = 0;
}

/* Workers go on together or not at all: st, this worker's verdict, becomes
 * every worker's (one allreduce; nothing with one worker).  The data a
 * worker trains on must be every other's too: its size and a sum of its
 * labels are compared. */
static cn_status agree(cn_model *m, cn_status st, const cn_data *train)
{
    const cn_comm *c = &m->comm;
    if (c->size == 1)
        return st;
    double labels = 0.0;
    for (size_t i = 0; train && i < train->n; i++)
        labels += (double)train->labels[i] * (double)(i % 7 + 1);
    float v[3] = {st != CN_OK, train ? (float)train->n : 0.0f, (float)labels};
    float mine[3] = {v[0], v[1], v[2]};
    cn_status cst = c->allreduce(c->user, v, 3);
    if (cst)
        return cst;
    if (st)
        return st;
    if (v[0] > 0)
        return cn_fail(CN_ERR_STOPPED, "another worker refused to go on (its message says why)");
    if (v[1] != mine[1] * (float)c->size || v[2] != mine[2] * (float)c->size)
        return cn_fail(CN_ERR_SHAPE,
                       "worker %d: the training data differs from the other workers' (each "
                       "must read the same data set)",
                       c->rank);
    return CN_OK;
}

/* Whether every worker holds the same weights (they take the same steps;
 * an exchange that summed differently on different workers would part
 * them): each puts a 48-bit hash of its parameters in its own slots, and
 * one allreduce shows all of them to all. */
static cn_status same_everywhere(cn_model *m)
{
    const cn_comm *c = &m->comm;
    cn_net *net = m->net;
    size_t k = (size_t)c->size;
    float *host = malloc(net->n_params * sizeof *host), *slots = calloc(2 * k, sizeof *slots);
    cn_status st = host && slots ? CN_OK : cn_fail(CN_ERR_NOMEM, "out of memory");
    if (!st) {
        m->be->download(m->be, host, net->params, net->n_params * sizeof *host);
        uint64_t h = 0xcbf29ce484222325ULL;
        for (size_t i = 0; i < net->n_params; i++) {
            uint32_t bits;
            memcpy(&bits, &host[i], sizeof bits);
            h = cn_hash(h, bits);
        }
        slots[2 * (size_t)c->rank] = (float)(h & 0xffffff); /* 24 bits: exact in a float */
        slots[2 * (size_t)c->rank + 1] = (float)(h >> 24 & 0xffffff);
        st = c->allreduce(c->user, slots, 2 * k);
    }
    for (size_t r = 0; !st && r < k; r++)
        if (slots[2 * r] != slots[2 * (size_t)c->rank] ||
            slots[2 * r + 1] != slots[2 * (size_t)c->rank + 1])
            st = cn_fail(CN_ERR_NUMERIC,
                         "the workers' weights have parted (worker %zu's differ from worker "
                         "%d's): their exchange did not give every worker the same sums",
                         r, c->rank);
    free(host);
    free(slots);
    return st;
}

/* The batch-normalisation running statistics of every worker, averaged
 * (each worker's batches move its own), and their moving averages: before
 * evaluation and saves. */
static cn_status average_buffers(cn_model *m)
{
    cn_net *net = m->net;
    float *blocks[2] = {net->buffers, m->ema_mem ? m->ema_mem + net->n_params : NULL};
    cn_status st = CN_OK;
    for (int b = 0; b < 2 && !st && blocks[b]; b++) {
        st = cn_model_exchange(m, blocks[b], net->n_buffers, -1);
        if (!st && m->comm.size > 1)
            m->be->scale(m->be, blocks[b], 1.0f / (float)m->comm.size, net->n_buffers);
    }
    cn_net_weights_changed(net);
    return st;
}

/* Asks the system to read the samples idx[0..count) of a mapped data set
 * (a data cache) ahead, all at once: a data set larger than memory is read
 * from disk page by page in the shuffled order, and waiting for each page in
 * turn would leave the disk idle between requests. */
static void prefetch(const cn_data *d, const uint32_t *idx, size_t count)
{
    for (size_t b = 0; d->store && b < count; b++)
        cn_data_read_ahead(d, idx[b], 1);
}

/* A device whose memory is not the host's gets the training set once, when
 * it has the room (a data set larger than memory stays mapped on the host),
 * and a place for each step's indices: then only those travel (the pixels
 * are gathered, augmented and prepared there, the same bits as on the
 * host).  NULL in *data: batches go up from the host (always with mixup). */
static void data_on_device(cn_model *m, const cn_data *train, size_t local, uint8_t **data,
                           uint32_t **idx)
{
    cn_backend *be = m->be;
    *data = NULL;
    *idx = NULL;
    size_t bytes = train->n * cn_shape_size(train->shape), avail = 0;
    if (be->host_memory || !be->gather_pixels || train->store || bytes == 0 ||
        m->opts.mixup > 0) /* mixup's blends are made on the host */
        return;
    if (be->memory) { /* leave the device at least a quarter of what it has free */
        be->memory(be, NULL, &avail, NULL);
        if (bytes > avail / 4 * 3)
            return;
    }
    *data = be->alloc(be, bytes);
    *idx = *data ? be->alloc(be, local * sizeof **idx) : NULL;
    if (!*idx) {
        be->free(be, *data);
        *data = NULL;
        return;
    }
    be->upload(be, *data, train->pixels, bytes);
}

/* The checks before the first step; each worker makes them all. */
static cn_status check_start(cn_model *m, const cn_data *train, const cn_data *val)
{
    const cn_train_opts *o = &m->opts;
    cn_status st = cn_train_opts_check(o);
    if (st || (st = check_data(m->net, train, "training")) ||
        (val && (st = check_data(m->net, val, "validation"))))
        return st;
    size_t batch = (size_t)o->batch, steps = train->n / batch, k = (size_t)m->comm.size;
    if (steps == 0)
        return cn_fail(CN_ERR_SHAPE,
                       "the training set has %zu samples, fewer than one batch of %zu", train->n,
                       batch);
    if (batch % k)
        return cn_fail(CN_ERR_ARG,
                       "a batch of %zu cannot be split evenly over %zu workers: choose a batch "
                       "that %zu divides",
                       batch, k, k);
    if (train->n > UINT32_MAX)
        return cn_fail(CN_ERR_SHAPE, "more than 2^32 training samples");
    if (m->state.step >= steps)
        return cn_fail(CN_ERR_ARG,
                       "the model stopped at batch %llu of an epoch that now has %zu "
                       "batches: resume with the batch size it was trained with",
                       (unsigned long long)m->state.step, steps);
    return cn_model_plan(m, batch / k, batch / k, 1);
}

cn_status cn_model_train(cn_model *m, const cn_data *train, const cn_data *val,
                         const cn_train_hooks *hooks)
{
    static const cn_train_hooks none = {0};
    if (!hooks)
        hooks = &none;
    const cn_train_opts *o = &m->opts;
    /* A worker of a data-parallel run trains on its share of every global
     * batch: samples [rank * local, (rank + 1) * local) of it. */
    const cn_comm *comm = &m->comm;
    int solo = comm->size == 1;
    cn_status pending = CN_OK; /* a hook's failure, told to the others at the next step */
    int together = 0;          /* every worker leaves at this point: a collective exit */
    cn_status st = check_start(m, train, val);
    /* The net trains the weights; the moving average (ema) waits aside. */
    st = agree(m, st ? st : cn_model_ema_use(m, 1), train);
    if (st) {
        cn_model_ema_use(m, 0);
        return st;
    }
    size_t batch = (size_t)o->batch, steps = train->n / batch;
    size_t local = batch / (size_t)comm->size, first = (size_t)comm->rank * local;
    /* normalise = channel: measured on the training set at the start. */
    if (m->spec->norm_channel && m->state.global_step == 0)
        cn_net_measure_input(m->net, train);
    if ((st = broadcast_model(m))) {
        cn_model_ema_use(m, 0);
        return st;
    }
    cn_net *net = m->net;
    net->first = first;
    size_t in_size = cn_shape_size(cn_net_input_shape(net));
    uint32_t *perm = malloc(train->n * sizeof *perm);
    uint8_t *pix = malloc(local * in_size), *tmp = malloc(in_size);
    int32_t *labels = malloc(local * sizeof *labels);
    uint8_t *dev_data;
    uint32_t *dev_idx;
    data_on_device(m, train, local, &dev_data, &dev_idx);
    /* Mixup: each step's other labels and shares, a partner's pixels, and
     * the room of the gradient's correction (src/step.c). */
    const uint32_t p24 = mix_p24(o);
    size_t classes = m->spec->classes;
    int32_t *other = p24 ? malloc(local * sizeof *other) : NULL;
    float *keep = p24 ? malloc(local * sizeof *keep) : NULL;
    uint8_t *part = p24 ? malloc(in_size) : NULL;
    if (p24) {
        m->mix_host = malloc(local * classes * sizeof *m->mix_host);
        m->mix_logits = malloc(local * classes * sizeof *m->mix_logits);
        m->mix_delta = m->be->alloc(m->be, local * classes * sizeof *m->mix_delta);
    }
    if (!perm || !pix || !tmp || !labels ||
        (p24 && (!other || !keep || !part || !m->mix_host || !m->mix_logits || !m->mix_delta))) {
        st = cn_fail(CN_ERR_NOMEM, "out of memory");
        goto done;
    }

    cn_progress p = {0};
    p.epochs = o->epochs;
    p.steps = steps;
    p.batch = o->batch;
    double run_start = cn_now();
    const cn_aug aug = cn_aug_of(o);
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
        uint64_t start_step = s->step;
        while (s->step < steps) {
            const uint32_t *idx = perm + s->step * batch + first;
            double lr = cn_train_opts_lr(o, s->epoch + (double)s->step / (double)steps);
            p.lr = lr;
            if (!dev_data && (s->step == 0 || s->step == start_step))
                prefetch(train, idx, local);
            if (!dev_data && s->step + 1 < steps) /* read while this batch is computed */
                prefetch(train, idx + batch, local);
            for (size_t b = 0; b < local; b++) {
                if (!dev_data)
                    memcpy(pix + b * in_size, train->pixels + (size_t)idx[b] * in_size, in_size);
                labels[b] = train->labels[idx[b]];
            }
            /* Augmentation and dropout draw from the step's own seed and
             * each sample's place in the global batch, so that a resumed
             * run, or one on another number of workers, repeats them. */
            net->seed = cn_step_seed(o->seed, s->global_step);
            if (dev_data) {
                m->be->upload(m->be, dev_idx, idx, local * sizeof *idx);
                cn_net_gather_pixels(net, dev_data, dev_idx, local, &aug);
            } else {
                if (cn_aug_any(&aug))
                    cn_augment(pix, local, net->spec->input, &aug, net->seed, first, tmp);
                if (p24) {
                    mix_batch(pix, local, net->spec->input, &aug, p24, train->pixels, train->labels,
                              train->n, net->seed, first, labels, other, keep, part, tmp);
                    m->mix_other = other;
                    m->mix_keep = keep;
                }
                cn_net_put_pixels(net, pix, local);
            }
            if ((st = cn_net_put_labels(net, labels, local)))
                goto done;
            double loss;
            size_t right;
            int stop = pending || (hooks->stop && *hooks->stop);
            st = cn_model_train_step(m, net->input, local, lr, &loss, &right, &stop, NULL, NULL,
                                     NULL);
            m->mix_other = NULL;
            m->mix_keep = NULL;
            if (st)
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
            correct += right;
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
            /* Alone, a hook's failure or a stop ends training now; among
             * workers, every one stops after the step that told them all
             * (stop is what they agreed on). */
            together = !solo && stop;
            if (pending && stop) {
                st = pending;
                goto done;
            }
            cn_status hook = hooks->on_batch ? hooks->on_batch(hooks->user, &p) : CN_OK;
            if (hook && !solo) {
                pending = hook;
                hook = CN_OK;
            }
            /* A stop in the last batch lets the epoch end normally. */
            int stopping = solo ? hooks->stop && *hooks->stop : stop;
            if (!hook && stopping && s->step < steps)
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
        if (!model_finite(m)) {
            st = cn_fail(CN_ERR_NUMERIC,
                         "the weights became NaN or infinite in epoch %d (learning rate %g): "
                         "training diverged; try a learning rate about ten times smaller "
                         "(--lr %g)",
                         s->epoch + 1, p.lr, o->lr / 10);
            goto done;
        }
        close_epoch(s, &rng);
        if (!solo && ((st = same_everywhere(m)) || (st = average_buffers(m))))
            goto done;
        /* Validation and the hook see the model as it is used: its moving
         * average where it keeps one. */
        cn_model_ema_use(m, 0);
        /* Validation: worker 0's (the others have the same model). */
        if (val && val->n && comm->rank == 0) {
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
        cn_status hook = hooks->on_epoch ? hooks->on_epoch(hooks->user, m, &p) : CN_OK;
        int stopping = pending || (hooks->stop && *hooks->stop);
        if (!solo) { /* a save that failed anywhere, or a stop, ends every worker */
            cn_status all = agree(m, hook || stopping ? CN_ERR_STOPPED : CN_OK, NULL);
            hook = hook ? hook : pending;
            stopping = all != CN_OK;
            together = stopping;
        }
        if ((st = hook))
            goto done;
        if (stopping) {
            st = cn_fail(CN_ERR_STOPPED, "training stopped after epoch %d", s->epoch);
            goto done;
        }
        cn_model_ema_use(m, 1);
    }
done:
    /* Workers that stop together average the running statistics a save
     * keeps (each, whatever its own status: it is a collective call). */
    if (together)
        average_buffers(m);
    cn_model_ema_use(m, 0); /* the model as it is used and saved */
    net = m->net;
    net->x_last = NULL;
    net->first = 0;
    free(perm);
    free(pix);
    free(tmp);
    free(labels);
    free(other);
    free(keep);
    free(part);
    free(m->mix_host);
    free(m->mix_logits);
    m->be->free(m->be, m->mix_delta);
    m->mix_host = m->mix_logits = m->mix_delta = NULL;
    m->mix_other = NULL;
    m->mix_keep = NULL;
    m->be->free(m->be, dev_idx);
    m->be->free(m->be, dev_data);
    return st;
}
