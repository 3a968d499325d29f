/* plan.c - the planner: what training a network will take, before it is
 * trained.  Memory comes from the network's own list of blocks
 * (cn_net_block_at, the list that net.c allocates from), built for the
 * batches a model builds it for (cn_model_batches), with what a training
 * process holds around it; time from a roofline of this machine's rates or
 * from timed steps of the network itself. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The backend of dev, or its stand-in when it cannot start here (a GPU on a
 * machine without one): *standin says which, *exact whether the stand-in
 * knows every scratch size. */
static cn_status plan_backend(const cn_device *dev, cn_backend **be, cn_device *resolved,
                              int *standin, int *exact)
{
    *standin = 0;
    *exact = 1;
    cn_status st = cn_backend_create(dev, resolved, be);
    const char *name = dev && dev->backend && *dev->backend ? dev->backend : "cpu";
    if (st == CN_OK || strcmp(name, "cuda") != 0)
        return st;
    if (dev->index < 0)
        return st;
    if (!(*be = cn_backend_standin(name, exact)))
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    *standin = 1;
    *resolved = (cn_device){(*be)->name, dev->index, 1};
    return CN_OK;
}

/* The recipe of opts (the spec's when it gives none), checked. */
static cn_status plan_recipe(const cn_spec *spec, const cn_plan_opts *po, cn_train_opts *o)
{
    if (po && po->recipe)
        *o = *po->recipe;
    else
        cn_spec_train_opts(spec, o);
    return cn_train_opts_check(o);
}

/* The floats of tensor t of layer l as the blocks hold it: from its offset
 * to the next tensor's (the block's end for the last). */
static size_t held(const cn_net *net, size_t li, size_t t, int buffer)
{
    const cn_layer *l = &net->layers[li];
    const cn_ltensor *lt = buffer ? &l->bt[t] : &l->t[t];
    for (size_t j = li; j < net->n_layers; j++) {
        const cn_layer *m = &net->layers[j];
        size_t next = j == li ? t + 1 : 0, n = buffer ? m->n_bt : m->n_t;
        if (next < n)
            return (buffer ? m->bt[next] : m->t[next]).offset - lt->offset;
    }
    return (buffer ? net->n_buffers : net->n_params) - lt->offset;
}

/* A layer whose operations are products of matrices (convolution, fully
 * connected). */
static int is_product(const cn_layer *l) { return l->macs > 0; }

/* The rows of p from net, planned for training batches of b. */
static void plan_rows(cn_plan *p, const cn_net *net, size_t b, size_t slots)
{
    for (size_t i = 0; i < net->n_layers; i++) {
        const cn_layer *l = &net->layers[i];
        cn_plan_layer *r = &p->layers[i];
        memset(r, 0, sizeof *r);
        snprintf(r->name, sizeof r->name, "%s", l->name);
        r->kind = l->ops->kind;
        r->out = l->out;
        for (size_t t = 0; t < l->n_t; t++) {
            r->params += l->t[t].count;
            r->param_bytes += held(net, i, t, 0) * (2 + slots) * sizeof(float);
        }
        for (size_t t = 0; t < l->n_bt; t++)
            r->param_bytes += held(net, i, t, 1) * sizeof(float);
        /* a training net's outputs are in its arena (net.c, place_training),
         * with backward's gradients over those it no longer reads */
        if (net->train_at && !l->shares_input && !l->replayed)
            r->act_bytes +=
                cn_net_align(cn_mul(cn_shape_size(l->out), net->max_batch)) * sizeof(float);
        r->act_bytes += cn_net_align(l->state_floats) * sizeof(float);
        r->scratch_bytes = l->ws_floats * sizeof(float);
        double in = (double)cn_shape_size(l->in), out = (double)cn_shape_size(l->out);
        double weights = 4.0 * (double)r->params;
        if (!l->fused_away) {
            /* forward reads the input and the weights and writes the output;
             * backward reads them and the output's gradient, and writes the
             * input's and the weights' gradients */
            r->bytes_fwd = 4.0 * (double)b * (in + out) + weights;
            r->bytes_bwd = 4.0 * (double)b * 2.0 * (in + out) + 2.0 * weights;
        }
        if (is_product(l)) {
            /* forward: a multiply-add per mac and sample, and the bias;
             * backward: the weights' gradient, and the input's but for the
             * first layer (training asks for no dx there). */
            r->flops_fwd = (2.0 * (double)l->macs + out) * (double)b;
            r->flops_bwd = ((i ? 4.0 : 2.0) * (double)l->macs + out) * (double)b;
        } else if (!l->fused_away) {
            r->flops_fwd = (in > out ? in : out) * (double)b;
            r->flops_bwd = r->flops_fwd;
        }
        r->fwd_s = r->bwd_s = -1.0;
    }
}

/* The sum of n sizes, saturating at SIZE_MAX as the layout's sizes do (a
 * description may ask for more than any machine has). */
static size_t sum(size_t n, const size_t *v)
{
    size_t s = 0;
    for (size_t i = 0; i < n; i++)
        s = cn_add(s, v[i]);
    return s;
}
#define SUM(...) sum(sizeof((size_t[]){__VA_ARGS__}) / sizeof(size_t), (size_t[]){__VA_ARGS__})

/* The memory of training spec with recipe o at batch b on be, into p (the
 * rows too when rows is not 0). */
static cn_status plan_at(const cn_spec *spec, const cn_train_opts *o, const cn_plan_opts *po,
                         cn_backend *be, size_t b, int rows, cn_plan *p)
{
    size_t max, train;
    cn_model_batches(b, &max, &train);
    cn_net *net;
    cn_status st = cn_net_layout(spec, max, train, 1, be, &net);
    if (st)
        return st;
    p->batch = b;
    p->net_batch = max;
    p->host_memory = be->host_memory;
    size_t by[CN_MEM_HOST + 1] = {0}, n = cn_net_blocks(net, NULL);
    for (size_t k = 0; k < n; k++) {
        cn_net_block blk;
        if (cn_net_block_at(net, k, &blk))
            by[blk.what] = cn_add(by[blk.what], blk.bytes);
    }
    size_t slots = cn_optim_slots(o->optimizer), k = spec->classes;
    size_t in = cn_shape_size(spec->input), opt = cn_mul(cn_mul(slots, net->n_params), 4);
    p->weights = by[CN_MEM_WEIGHTS];
    p->gradients = by[CN_MEM_GRADS];
    p->optimizer = opt ? opt : sizeof(float); /* as cn_optim_init asks */
    /* [train] ema: the average and room to swap it with the trained weights
     * (cn_model_ema_use) */
    if (o->ema > 0)
        p->optimizer =
            SUM(p->optimizer,
                cn_mul(cn_ema_floats(cn_add(net->n_params, net->n_buffers)), sizeof(float)));
    p->activations = by[CN_MEM_ACT];
    p->scratch = by[CN_MEM_SCRATCH];
    p->io = by[CN_MEM_IO];
    p->backend = be->own_bytes;
    p->model =
        SUM(p->weights, p->gradients, p->optimizer, p->activations, p->scratch, p->io, p->backend);
    p->host_arrays = by[CN_MEM_HOST];

    /* Around the model, on the host. */
    size_t train_n = po ? po->train_n : 0, val_n = po ? po->val_n : 0;
    size_t data_n = po && po->data_n ? po->data_n : train_n + val_n, test_n = po ? po->test_n : 0;
    p->baseline = po ? po->baseline : 0;
    p->data = cn_mul(data_n, in + sizeof(int32_t)); /* pixels, labels as int32 */
    p->steps = train_n / b;
    /* The epoch's permutation and a batch's labels, pixels (gathered on
     * the device instead when its memory is not the host's) and one sample
     * for augmentation. */
    p->loop = train_n ? SUM(cn_mul(train_n, sizeof(uint32_t)), b * sizeof(int32_t),
                            p->host_memory ? cn_mul(b + 1, in) : 0)
                      : 0;
    p->device_data =
        !p->host_memory && train_n ? cn_add(cn_mul(train_n, in), b * sizeof(uint32_t)) : 0;
    /* A checkpoint copies every tensor of the model file to the host (the
     * weights, buffers and optimizer state, unpadded, and the input's
     * normalisation); a validation keeps each image's answer and its
     * probability, and the confusion matrix. */
    size_t saved = 2 * spec->input.c, trained = 0;
    for (size_t i = 0; i < net->n_layers; i++) {
        const cn_layer *l = &net->layers[i];
        for (size_t t = 0; t < l->n_t; t++)
            trained += l->t[t].count;
        for (size_t t = 0; t < l->n_bt; t++)
            saved += l->bt[t].count;
    }
    /* with ema, the trained weights go into the file too (optim.NAME.raw) */
    size_t copies = 1 + slots + (o->ema > 0);
    size_t checkpoint = cn_mul(cn_add(saved, cn_mul(trained, copies)), sizeof(float));
    size_t answers = k * k * sizeof(size_t), val = val_n ? val_n * 12 + answers : 0;
    p->transient = checkpoint > val ? checkpoint : val;
    size_t host_model = p->host_memory ? p->model : 0;
    p->train_peak = SUM(p->baseline, host_model, p->host_arrays, p->data, p->loop, p->transient);
    /* An evaluation loads the model file (read whole, then copied out of
     * it) before it reads the test images and keeps the answers. */
    size_t load = SUM(checkpoint, checkpoint, strlen(spec->text), 4096);
    size_t test = test_n ? cn_add(cn_mul(test_n, in + sizeof(int32_t) + 12), answers) : 0;
    p->infer_peak = SUM(p->baseline, host_model, p->host_arrays, load > test ? load : test);
    p->device_train_peak = p->host_memory ? 0 : cn_add(p->model, p->device_data);
    p->device_infer_peak = p->host_memory ? 0 : p->model;

    p->flops_step = 0.0;
    p->recipe = *o;
    p->recipe.batch = (int)b;
    p->val_n = val_n;
    p->input = spec->input;
    p->params = 0;
    for (size_t i = 0; i < net->n_layers; i++)
        for (size_t t = 0; t < net->layers[i].n_t; t++)
            p->params += net->layers[i].t[t].count;
    if (rows) {
        p->n_layers = net->n_layers;
        p->layers = calloc(net->n_layers, sizeof *p->layers);
        if (!p->layers) {
            cn_net_free(net);
            return cn_fail(CN_ERR_NOMEM, "out of memory");
        }
        plan_rows(p, net, b, slots);
        for (size_t i = 0; i < p->n_layers; i++)
            p->flops_step += p->layers[i].flops_fwd + p->layers[i].flops_bwd;
    }
    cn_net_free(net);
    return CN_OK;
}

/* The times, not yet known. */
static void untimed(cn_plan *p)
{
    p->timing = CN_PLAN_UNTIMED;
    p->step_s = p->eval_s = p->train_s = p->val_s = p->epoch_s = -1.0;
    p->gflops = p->gbytes = 0.0;
    for (size_t i = 0; i < p->n_layers; i++)
        p->layers[i].fwd_s = p->layers[i].bwd_s = -1.0;
}

cn_status cn_plan_training(const cn_spec *spec, const cn_plan_opts *opts, cn_plan **out)
{
    *out = NULL;
    cn_train_opts o;
    cn_status st = plan_recipe(spec, opts, &o);
    if (st)
        return st;
    cn_plan *p = calloc(1, sizeof *p);
    if (!p)
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    cn_backend *be;
    if ((st = plan_backend(opts ? opts->device : NULL, &be, &p->device, &p->standin, &p->exact))) {
        free(p);
        return st;
    }
    st = plan_at(spec, &o, opts, be, (size_t)o.batch, 1, p);
    cn_backend_destroy(be);
    if (st) {
        cn_plan_free(p);
        return st;
    }
    untimed(p);
    *out = p;
    return CN_OK;
}

void cn_plan_free(cn_plan *plan)
{
    if (!plan)
        return;
    free(plan->layers);
    free(plan);
}

cn_status cn_plan_max_batch(const cn_spec *spec, const cn_plan_opts *opts, size_t memory,
                            size_t *batch)
{
    *batch = 0;
    cn_train_opts o;
    cn_status st = plan_recipe(spec, opts, &o);
    if (st)
        return st;
    cn_backend *be;
    cn_device dev;
    int standin, exact;
    if ((st = plan_backend(opts ? opts->device : NULL, &be, &dev, &standin, &exact)))
        return st;
    /* The peak grows with the batch: the largest batch that fits lies
     * between one that fits (lo, or none) and one that does not (hi). */
    size_t lo = 0, hi = (size_t)CN_MAX_BATCH + 1;
    while (hi - lo > 1 && !st) {
        size_t mid = lo + (hi - lo) / 2;
        cn_plan p = {0};
        if ((st = plan_at(spec, &o, opts, be, mid, 0, &p)))
            break;
        size_t peak = p.host_memory ? p.train_peak : p.device_train_peak;
        if (peak <= memory)
            lo = mid;
        else
            hi = mid;
    }
    cn_backend_destroy(be);
    if (!st)
        *batch = lo;
    return st;
}

/* ---------------------------------------------------------------- timing */

/* The backend of the plan's device, for timing: the device must be here. */
static cn_status timing_backend(const cn_plan *p, cn_backend **be)
{
    if (p->standin)
        return cn_fail(CN_ERR_ARG,
                       "%s:%d cannot be timed: it cannot start on this machine (its memory is "
                       "planned here; time it on a machine that has it)",
                       p->device.backend, p->device.index);
    return cn_backend_create(&p->device, NULL, be);
}

/* The train and validation times of an epoch, from step_s and eval_s. */
static void epoch_times(cn_plan *p)
{
    p->train_s = (double)p->steps * p->step_s;
    p->val_s = (double)p->val_n / (double)p->net_batch * p->eval_s;
    p->epoch_s = p->train_s + p->val_s;
}

/* ---------------------------------------------------------------- roofline */

/* The best rate of op (work units per second) over runs of at least min_s
 * seconds in all, three runs at least. */
static double best_rate(cn_backend *be, void (*op)(cn_backend *be, float **buf, size_t n),
                        float **buf, size_t n, double work, double min_s)
{
    double best = 0.0, start = cn_now();
    for (int r = 0; r < 3 || (cn_now() - start < min_s && r < 10000); r++) {
        double t0 = cn_now();
        op(be, buf, n);
        be->sync(be);
        double t = cn_now() - t0;
        if (t > 0 && work / t > best)
            best = work / t;
    }
    return best;
}

static void gemm_op(cn_backend *be, float **buf, size_t n)
{
    be->gemm(be, 0, 0, n, n, n, 1.0f, buf[0], n, buf[1], n, 0.0f, buf[2], n);
}

static void add_op(cn_backend *be, float **buf, size_t n)
{
    be->add(be, buf[0], buf[1], buf[2], n);
}

/* Seconds of flops operations and bytes of memory traffic at g operations
 * and m bytes per second: the longer of the two. */
static double roof(double flops, double bytes, double g, double m)
{
    double t_op = flops / g, t_mem = bytes / m;
    return t_op > t_mem ? t_op : t_mem;
}

cn_status cn_plan_roofline(cn_plan *p)
{
    cn_backend *be;
    cn_status st = timing_backend(p, &be);
    if (st)
        return st;
    const size_t n = 256, big = (size_t)4 << 20; /* 16 MiB arrays: 48 MiB, past the caches */
    float *mat[3], *vec[3];
    int ok = 1;
    for (int i = 0; i < 3; i++) {
        ok &= (mat[i] = be->alloc(be, n * n * sizeof(float))) != NULL;
        ok &= (vec[i] = be->alloc(be, big * sizeof(float))) != NULL;
    }
    double g = 0.0, m = 0.0;
    if (ok) {
        be->fill(be, mat[0], 0.5f, n * n);
        be->fill(be, mat[1], 0.25f, n * n);
        g = best_rate(be, gemm_op, mat, n, 2.0 * (double)n * (double)n * (double)n, 0.1);
        m = best_rate(be, add_op, vec, big, 3.0 * sizeof(float) * (double)big, 0.1);
    }
    for (int i = 0; i < 3; i++) {
        be->free(be, mat[i]);
        be->free(be, vec[i]);
    }
    cn_backend_destroy(be);
    if (!ok || g <= 0.0 || m <= 0.0)
        return cn_fail(CN_ERR_NOMEM, "out of memory for the roofline's probe (48 MiB)");
    /* Each pass at its bound; an evaluation pass is the forward passes at
     * net_batch images (work grows with the images, the weights' traffic
     * does not). */
    double ratio = (double)p->net_batch / (double)p->batch, step = 0.0, pass = 0.0;
    for (size_t i = 0; i < p->n_layers; i++) {
        cn_plan_layer *r = &p->layers[i];
        r->fwd_s = roof(r->flops_fwd, r->bytes_fwd, g, m);
        r->bwd_s = roof(r->flops_bwd, r->bytes_bwd, g, m);
        step += r->fwd_s + r->bwd_s;
        double weights = 4.0 * (double)r->params;
        pass += roof(r->flops_fwd * ratio, (r->bytes_fwd - weights) * ratio + weights, g, m);
    }
    /* The update reads the parameters, gradients and state and writes the
     * parameters and state; a batch is copied out of the data set (bytes
     * read and written), augmented and prepared (bytes in, floats out). */
    double slots = (double)cn_optim_slots(p->recipe.optimizer),
           in = (double)cn_shape_size(p->input);
    step += 4.0 * (double)p->params * (3.0 + 2.0 * slots) / m;
    step += (double)p->batch * in * 7.0 / m;
    pass += (double)p->net_batch * in * 5.0 / m;
    p->timing = CN_PLAN_ROOFLINE;
    p->gflops = g / 1e9;
    p->gbytes = m / 1e9;
    p->step_s = step;
    p->eval_s = pass;
    epoch_times(p);
    return CN_OK;
}

/* -------------------------------------------------------------- calibration */

/* What the calibration's training hook keeps: each step's time after the
 * first (which pays for first touches of memory). */
enum { CALIB_STEPS = 1024 };
typedef struct calib {
    double budget;            /* seconds of steps wanted */
    uint64_t steps;           /* steps done */
    double prev;              /* training time after the previous step */
    size_t n;                 /* step times kept */
    double took[CALIB_STEPS]; /* steps 2, 3, ...: their times */
} calib;

static cn_status calib_batch(void *user, const cn_progress *pr)
{
    calib *c = user;
    c->steps = pr->step;
    if (pr->step > 1 && c->n < CALIB_STEPS)
        c->took[c->n++] = pr->elapsed_s - c->prev;
    c->prev = pr->elapsed_s;
    if ((pr->step >= 3 && pr->elapsed_s >= c->budget) || c->n == CALIB_STEPS)
        return cn_fail(CN_ERR_STOPPED, "calibrated");
    return CN_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* n random images of shape s with labels below k, in *d (owned). */
static cn_status random_data(size_t n, cn_shape s, size_t k, cn_rng *rng, cn_data *d)
{
    memset(d, 0, sizeof *d);
    size_t in = cn_shape_size(s);
    d->pixels = malloc(cn_mul(n, in));
    d->labels = malloc(n * sizeof *d->labels);
    d->owned = 1;
    if (!d->pixels || !d->labels) {
        cn_data_free(d);
        return cn_fail(CN_ERR_NOMEM, "out of memory for the calibration's images");
    }
    d->n = n;
    d->shape = s;
    d->classes = k;
    for (size_t i = 0; i < n * in; i += 8) {
        uint64_t v = cn_rng_next(rng);
        for (size_t j = 0; j < 8 && i + j < n * in; j++)
            d->pixels[i + j] = (uint8_t)(v >> (8 * j));
    }
    for (size_t i = 0; i < n; i++)
        d->labels[i] = (int32_t)cn_rng_below(rng, k);
    return CN_OK;
}

/* Times steps of model on data for about c->budget seconds: the median of
 * the steps after the first, which a burst of other work on the machine
 * moves less than the mean. */
static cn_status time_steps(cn_model *model, const cn_data *data, calib *c, double *step_s)
{
    cn_train_hooks hooks = {c, calib_batch, NULL, NULL};
    cn_status st = cn_model_train(model, data, NULL, &hooks);
    if (st && st != CN_ERR_STOPPED)
        return st;
    if (c->steps < 2)
        return cn_fail(CN_ERR_ARG, "the calibration ran %llu step%s: too few to time",
                       (unsigned long long)c->steps, c->steps == 1 ? "" : "s");
    qsort(c->took, c->n, sizeof c->took[0], cmp_double);
    *step_s = c->n % 2 ? c->took[c->n / 2] : 0.5 * (c->took[c->n / 2 - 1] + c->took[c->n / 2]);
    return CN_OK;
}

/* Times evaluation passes of the model's network over val (its images a
 * whole number of passes) for about budget seconds, at least twice: the
 * mean time of a pass, the first evaluation left out. */
static cn_status time_passes(cn_model *model, const cn_data *val, double budget, double *pass_s)
{
    cn_net *net = cn_model_net(model);
    double passes = (double)val->n / (double)cn_net_max_batch(net), spent = 0.0;
    int timed = 0;
    for (int r = 0; r < 2 || (spent < budget && r < 50); r++) {
        cn_eval ev;
        double t0 = cn_now();
        cn_status st = cn_net_evaluate(net, val, &ev);
        double t = cn_now() - t0;
        if (st)
            return st;
        cn_eval_free(&ev);
        if (r > 0) {
            spent += t;
            timed++;
        }
    }
    *pass_s = spent / timed / passes;
    return CN_OK;
}

cn_status cn_plan_calibrate(cn_plan *p, const cn_spec *spec, const cn_data *data, double seconds)
{
    cn_backend *probe;
    cn_status st = timing_backend(p, &probe);
    if (st)
        return st;
    cn_backend_destroy(probe);
    cn_shape s = spec->input;
    if (data && (data->shape.c != s.c || data->shape.h != s.h || data->shape.w != s.w ||
                 data->classes > spec->classes))
        return cn_fail(CN_ERR_SHAPE,
                       "the calibration's data (%zux%zux%zu images, %zu classes) do not fit the "
                       "network (%zux%zux%zu, %zu classes)",
                       data->shape.c, data->shape.h, data->shape.w, data->classes, s.c, s.h, s.w,
                       spec->classes);
    if (!(seconds > 0.0))
        seconds = 2.0;
    /* The recipe's model (its network, optimizer and data path are what
     * training runs), with a small constant rate: random labels must not
     * make it diverge, and the rate does not change the time. */
    cn_train_opts o = p->recipe;
    o.epochs = 1;
    o.lr = 1e-4;
    o.policy = CN_LR_CONST;
    cn_model *model = NULL;
    cn_data own = {0};
    cn_rng rng;
    cn_rng_seed(&rng, 1);
    size_t b = p->batch, in = cn_shape_size(s);
    /* Enough batches to run for the budget, within 64 MiB of pixels (the
     * order is shuffled each epoch: a few batches do), and two evaluation
     * passes. */
    size_t per_batch = b * in > 0 ? b * in : 1;
    size_t batches = ((size_t)64 << 20) / per_batch;
    batches = batches < 4 ? 4 : batches > 64 ? 64 : batches;
    size_t n = batches * b > 2 * p->net_batch ? batches * b : 2 * p->net_batch;
    float *x = malloc(cn_mul(b, in) * sizeof *x);
    int32_t *labels = malloc(b * sizeof *labels);
    double *fwd = calloc(p->n_layers, sizeof *fwd), *bwd = calloc(p->n_layers, sizeof *bwd);
    calib *c = calloc(1, sizeof *c);
    if (!x || !labels || !fwd || !bwd || !c) {
        st = cn_fail(CN_ERR_NOMEM, "out of memory for the calibration");
        goto done;
    }
    if (!data || data->n < b) {
        if ((st = random_data(n, s, spec->classes, &rng, &own)))
            goto done;
        data = &own;
    }
    if ((st = cn_model_create(spec, &o, &p->device, &model)))
        goto done;
    c->budget = seconds * 0.7;
    double step_s = 0.0, pass_s = 0.0, update = 0.0;
    cn_data train = cn_data_slice(data, 0, n), val = cn_data_slice(data, 0, 2 * p->net_batch);
    if ((st = time_steps(model, &train, c, &step_s)) ||
        (st = time_passes(model, &val, seconds * 0.2, &pass_s)))
        goto done;
    /* Each layer's share, from one profiled step on the first batch. */
    cn_net_prepare(cn_model_net(model), data->pixels, b, x);
    for (size_t i = 0; i < b; i++)
        labels[i] = data->labels[i];
    if ((st = cn_model_profile(model, x, labels, b, fwd, bwd, &update)))
        goto done;
    for (size_t i = 0; i < p->n_layers; i++) {
        p->layers[i].fwd_s = fwd[i];
        p->layers[i].bwd_s = bwd[i];
    }
    p->timing = CN_PLAN_CALIBRATED;
    p->gflops = p->gbytes = 0.0;
    p->step_s = step_s;
    p->eval_s = pass_s;
    epoch_times(p);
done:
    cn_model_free(model);
    cn_data_free(&own);
    free(x);
    free(labels);
    free(fwd);
    free(bwd);
    free(c);
    return st;
}
