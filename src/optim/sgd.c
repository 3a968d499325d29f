/* sgd.c - minibatch SGD with momentum and weight decay, as in the lecture:
 *
 *   m     = mu * m + (1 - mu) * g
 *   theta = theta - lr * (m + lambda * theta)
 *
 * One flat loop over the parameter block: every parameter is treated alike.
 * This is the single place where gradients are turned into updates (and,
 * later, where gradients from several workers would be combined). */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

cn_status cn_optim_init(cn_optim *o, size_t n_params)
{
    memset(o, 0, sizeof *o);
    o->kind = "sgd";
    o->n_slots = 1;
    o->slot_names[0] = "momentum";
    o->state = cn_alloc(n_params, sizeof(float));
    if (!o->state)
        return cn_fail(CN_ERR_NOMEM, "out of memory for the optimizer state");
    return CN_OK;
}

void cn_optim_free(cn_optim *o)
{
    if (!o)
        return;
    cn_free(o->state);
    o->state = NULL;
}

void cn_optim_step(cn_optim *o, const cn_backend *be, const cn_train_opts *opts, double lr,
                   float *params, const float *grads, size_t n)
{
    be->sgd(be, n, params, grads, o->state, (float)lr, (float)opts->momentum, (float)opts->decay);
}
