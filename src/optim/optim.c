/* optim.c - the optimizers: where gradients become updates.  They know
 * nothing of workers: the training step (step.c) combines the gradients of
 * all workers before the optimizer sees them.
 *
 * sgd, as in the lecture:
 *   m     = mu * m + (1 - mu) * g
 *   theta = theta - lr * (m + lambda * theta)
 * adam, with beta1 = mu, bias corrections c1 = 1 / (1 - beta1^t),
 * c2 = 1 / (1 - beta2^t) and the L2 term in the gradient (PyTorch's Adam):
 *   g' = g + lambda * theta
 *   m  = beta1 * m + (1 - beta1) * g';   v = beta2 * v + (1 - beta2) * g'^2
 *   theta = theta - lr * c1 * m / (sqrt(c2 * v) + eps)
 * adamw: the same with g' = g and decoupled decay, theta -= lr * lambda * theta
 * (PyTorch's AdamW).
 * Each is one flat loop over the parameter block: every parameter alike. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

size_t cn_optim_slots(cn_optimizer which) { return which == CN_OPT_SGD ? 1 : 2; }

cn_status cn_optim_init(cn_optim *o, cn_optimizer which, cn_backend *be, size_t n_params)
{
    memset(o, 0, sizeof *o);
    if (which < CN_OPT_SGD || which > CN_OPT_ADAMW)
        return cn_fail(CN_ERR_ARG, "unknown optimizer %d", (int)which);
    o->which = which;
    o->kind = cn_optimizer_name(which);
    o->n_slots = cn_optim_slots(which);
    if (which == CN_OPT_SGD) {
        o->slot_names[0] = "momentum";
    } else { /* PyTorch's names */
        o->slot_names[0] = "exp_avg";
        o->slot_names[1] = "exp_avg_sq";
    }
    size_t bytes = cn_mul(cn_mul(o->n_slots, n_params), sizeof(float));
    o->state = bytes == SIZE_MAX ? NULL : be->alloc(be, bytes ? bytes : sizeof(float));
    if (!o->state)
        return cn_fail(CN_ERR_NOMEM, "out of memory for the optimizer state");
    return CN_OK;
}

void cn_optim_free(cn_optim *o, cn_backend *be)
{
    if (!o || !be)
        return;
    be->free(be, o->state);
    o->state = NULL;
}

void cn_optim_step(cn_optim *o, const cn_backend *be, const cn_train_opts *opts, double lr,
                   uint64_t t, float *params, const float *grads, size_t n)
{
    if (o->which == CN_OPT_SGD) {
        be->sgd(be, n, params, grads, o->state, (float)lr, (float)opts->momentum,
                (float)opts->decay);
        return;
    }
    double b1 = opts->momentum, b2 = opts->beta2, tt = (double)(t ? t : 1);
    int w = o->which == CN_OPT_ADAMW;
    const float hyper[8] = {(float)lr,
                            (float)b1,
                            (float)b2,
                            (float)opts->eps,
                            w ? 0.0f : (float)opts->decay,
                            w ? (float)opts->decay : 0.0f,
                            (float)(1.0 / (1.0 - pow(b1, tt))),
                            (float)(1.0 / (1.0 - pow(b2, tt)))};
    /* The slots are n_params apart; n may be the whole block only. */
    be->adam(be, n, params, grads, o->state, o->state + n, hyper);
}
