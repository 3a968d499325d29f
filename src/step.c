/* step.c - the training step: the one place where a batch becomes an
 * update, for cn_model_train, cn_model_step and cn_model_profile alike.
 *
 *   forward -> loss -> gradients zeroed -> backward
 *           -> gradients combined across workers (cn_comm) -> optimizer
 *
 * The combining is the only thing that knows how many workers there are;
 * with one (the solo communicator) it does nothing.  With a moving average
 * of the weights (ema), it follows the update. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

cn_status cn_model_exchange(cn_model *m, float *dev, size_t count, int root)
{
    const cn_comm *c = &m->comm;
    if (c->size == 1 || count == 0)
        return CN_OK;
    cn_backend *be = m->be;
    /* The backend's memory, where the host can reach it; else a host copy:
     * the step's own (m->stage, sized for the gradient block and its tail)
     * when it fits, so that steps allocate nothing. */
    float *host = dev;
    if (be->host_memory)
        be->sync(be);
    else if (m->stage && count <= m->net->n_params + CN_GRAD_TAIL)
        host = m->stage;
    else if (!(host = malloc(count * sizeof *host)))
        return cn_fail(CN_ERR_NOMEM, "out of memory for a host copy of %zu floats", count);
    if (host != dev)
        be->download(be, host, dev, count * sizeof *host);
    cn_status st =
        root < 0 ? c->allreduce(c->user, host, count) : c->broadcast(c->user, host, count, root);
    if (!st && host != dev)
        be->upload(be, dev, host, count * sizeof *host);
    if (host != dev && host != m->stage)
        free(host);
    return st;
}

/* The gradient block becomes the mean of every worker's, with the sums of
 * the workers' losses, correct answers and wishes to stop (the CN_GRAD_TAIL
 * floats after the block) summed with it.  Either one allreduce after the
 * backward pass, or buckets started during it (cn_comm's bucket): grads[0,
 * unsent) is what no bucket has started yet. */
typedef struct combine {
    cn_model *m;
    size_t unsent;
    int started; /* buckets in flight */
    cn_status st;
} combine;

static void put_tail(cn_model *m, double loss_sum, size_t correct, int stop)
{
    float tail[CN_GRAD_TAIL] = {(float)loss_sum, (float)correct, (float)(stop != 0)};
    m->be->upload(m->be, m->net->grads + m->net->n_params, tail, sizeof tail);
}

static void take_tail(cn_model *m, double *loss_sum, size_t *correct, int *stop)
{
    float tail[CN_GRAD_TAIL];
    m->be->download(m->be, tail, m->net->grads + m->net->n_params, sizeof tail);
    *loss_sum = tail[0];
    *correct = (size_t)tail[1];
    *stop = tail[2] > 0;
    m->be->scale(m->be, m->net->grads, 1.0f / (float)m->comm.size, m->net->n_params);
}

/* Starts the sum of grads[lo, unsent): in place where the backend's memory
 * is the host's, else in the step's host copy (uploaded after the wait). */
static void start_bucket(combine *b, size_t lo)
{
    cn_model *m = b->m;
    cn_backend *be = m->be;
    size_t count = b->unsent - lo;
    float *p = m->net->grads + lo;
    b->unsent = lo;
    if (b->st || count == 0)
        return;
    if (be->host_memory) {
        be->sync(be);
    } else {
        be->download(be, m->stage + lo, p, count * sizeof *p);
        p = m->stage + lo;
    }
    b->st = m->comm.allreduce_start(m->comm.user, p, count);
    b->started += b->st == CN_OK;
}

/* After layer i's backward pass: the gradients from its parameters up are
 * final; a bucket starts when they make one. */
static void after_layer(void *user, size_t i)
{
    combine *b = user;
    const cn_layer *l = &b->m->net->layers[i];
    const cn_comm *c = &b->m->comm;
    if (l->n_t > 0 && b->unsent - l->t[0].offset >= c->bucket)
        start_bucket(b, l->t[0].offset);
    if (b->started && c->progress)
        c->progress(c->user);
}

/* The backward pass, and the gradients combined across the workers. */
static cn_status backward_combined(cn_model *m, size_t n, double *bwd, double *loss_sum,
                                   size_t *correct, int *stop)
{
    cn_net *net = m->net;
    const cn_comm *c = &m->comm;
    if (c->size == 1) {
        cn_net_run_backward(net, n, 0, bwd, NULL, NULL);
        return CN_OK;
    }
    put_tail(m, *loss_sum, *correct, *stop);
    if (!c->allreduce_start || c->bucket == 0) {
        cn_net_run_backward(net, n, 0, bwd, NULL, NULL);
        cn_status st = cn_model_exchange(m, net->grads, net->n_params + CN_GRAD_TAIL, -1);
        if (!st)
            take_tail(m, loss_sum, correct, stop);
        return st;
    }
    combine b = {m, net->n_params + CN_GRAD_TAIL, 0, CN_OK};
    cn_net_run_backward(net, n, 0, bwd, after_layer, &b);
    start_bucket(&b, 0);
    cn_status st = c->allreduce_wait(c->user);
    if (b.st)
        st = b.st;
    if (st)
        return st;
    if (!m->be->host_memory)
        m->be->upload(m->be, net->grads, m->stage, (net->n_params + CN_GRAD_TAIL) * sizeof(float));
    take_tail(m, loss_sum, correct, stop);
    return CN_OK;
}

/* Mixup's targets for the pass just made (m->mix_other, m->mix_keep):
 * sample s trains against q = w q_a + (1 - w) q_b, q_a and q_b the
 * (smoothed) targets of its label a and of b.  The gradient is linear in
 * the target: (y - q) / n = (y - q_a) / n + (1 - w)(1 - eps) / n (e_a -
 * e_b), so the loss layer's own gradient for a is corrected by the second
 * term (net->target_delta), made here.  The loss likewise: L_q = L_a + (1 -
 * w)(1 - eps)(z_a - z_b) from the logits z; sum (the L_a of every sample)
 * becomes the sum of the L_q.  A sample counts as right when its best
 * class is the label of the larger share (*right, unless NULL). */
static double mix_targets(cn_model *m, size_t n, double sum, size_t *right)
{
    cn_net *net = m->net;
    const cn_backend *be = m->be;
    size_t k = net->layers[net->n_layers - 1].out.c;
    double eps = net->smooth;
    be->download(be, m->mix_logits, cn_net_logits(net), n * k * sizeof *m->mix_logits);
    memset(m->mix_host, 0, n * k * sizeof *m->mix_host);
    size_t ok = 0;
    for (size_t s = 0; s < n; s++) {
        int32_t a = net->h_labels[s], b = m->mix_other[s];
        double take = 1.0 - (double)m->mix_keep[s];
        if (right)
            ok += net->h_best[s] == (m->mix_keep[s] >= 0.5f ? a : b);
        if (a == b || take == 0.0)
            continue;
        float c = (float)(take * (1.0 - eps) / (double)n);
        m->mix_host[s * k + (size_t)a] = c;
        m->mix_host[s * k + (size_t)b] = -c;
        const float *z = m->mix_logits + s * k;
        sum += take * (1.0 - eps) * ((double)z[a] - (double)z[b]);
    }
    be->upload(be, m->mix_delta, m->mix_host, n * k * sizeof *m->mix_host);
    net->target_delta = m->mix_delta;
    if (right)
        *right = ok;
    return sum;
}

cn_status cn_model_train_step(cn_model *m, const float *x, size_t n, double lr, double *loss,
                              size_t *correct, int *stop, double *fwd, double *bwd, double *update)
{
    cn_net *net = m->net;
    net->smooth = (float)m->opts.label_smoothing; /* this step's loss and gradient only */
    cn_net_run_forward(net, x, n, 1, fwd);
    if (m->keep_stats)
        cn_model_take_stats(m); /* before backward writes over some outputs */
    size_t right = 0;
    int watch = m->watch && m->comm.size == 1, mix = m->mix_other != NULL;
    double sum =
        loss || watch || mix ? cn_net_loss_sum(net, n, correct || mix ? &right : NULL) : 0.0;
    if (mix)
        sum = mix_targets(m, n, sum, &right);
    cn_status st = watch ? cn_model_watch_forward(m, sum, lr) : CN_OK;
    if (st) {
        net->smooth = 0.0f;
        net->target_delta = NULL;
        return st;
    }
    cn_net_zero_grads(net);
    int no = 0;
    st = backward_combined(m, n, bwd, &sum, &right, stop ? stop : &no);
    net->smooth = 0.0f;
    net->target_delta = NULL;
    if (!st && watch)
        st = cn_model_watch_backward(m, n, lr);
    if (st)
        return st;
    if (loss)
        *loss = sum / (double)(n * (size_t)m->comm.size);
    if (correct)
        *correct = right;
    double t0 = update ? cn_now() : 0.0;
    cn_optim_step(&m->optim, m->be, &m->opts, lr, m->state.global_step + 1, net->params, net->grads,
                  net->n_params);
    cn_net_weights_changed(net);
    if (m->ema_mem && m->ema_live)
        cn_model_ema_update(m);
    if (update) {
        m->be->sync(m->be);
        *update = cn_now() - t0;
    }
    /* A device that runs asynchronously tells its faults here. */
    return m->be->status ? m->be->status(m->be) : CN_OK;
}

/* cn_model_step's checks and inputs, then the step. */
static cn_status step_on(cn_model *m, const float *x, const int32_t *labels, size_t n, double lr,
                         double *loss, double *fwd, double *bwd, double *update)
{
    cn_status st = cn_model_plan(m, n, n, 1);
    if (st || (st = cn_net_check_batch(m->net, n, 1)) ||
        (st = cn_net_put_labels(m->net, labels, n)) || (st = cn_model_ema_use(m, 1)))
        return st;
    st = cn_model_train_step(m, cn_net_put_input(m->net, x, n), n, lr, loss, NULL, NULL, fwd, bwd,
                             update);
    m->net->x_last = NULL;
    m->state.global_step += st == CN_OK;
    cn_model_ema_use(m, 0); /* cannot fail: the average exists */
    return st;
}

cn_status cn_model_step(cn_model *m, const float *x, const int32_t *labels, size_t n, double lr,
                        double *loss)
{
    return step_on(m, x, labels, n, lr, loss, NULL, NULL, NULL);
}

cn_status cn_model_profile(cn_model *m, const float *x, const int32_t *labels, size_t n,
                           double *forward, double *backward, double *update)
{
    double loss;
    return step_on(m, x, labels, n, m->opts.lr, &loss, forward, backward, update);
}
