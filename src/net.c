/* net.c - a sequential network: built from a spec with every shape checked,
 * memory planned once for max_batch samples, then forward and backward
 * passes that allocate nothing. */
#include "internal.h"
#include "kernels/plain.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Parameter tensors start on 64-byte boundaries. */
#define ALIGN_FLOATS 16

/* n rounded up to whole 64-byte blocks; SIZE_MAX stays SIZE_MAX (sizes from a
 * description saturate rather than wrap: see cn_mul). */
static size_t align_up(size_t n)
{
    return n > SIZE_MAX - ALIGN_FLOATS ? SIZE_MAX
                                       : (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
}

/* The most memory a network may plan, in bytes: 0 means the machine's
 * physical memory.  One setting for the process, like SQLite's heap limit:
 * the library reads no environment variable (the CLI reads
 * CONVNET_MAX_MEMORY and sets it). */
static size_t memory_cap;

void cn_set_memory_limit(size_t bytes) { memory_cap = bytes; }

/* The limit that applies and, for messages, where it comes from. */
static size_t memory_limit(const char **from)
{
    if (memory_cap) {
        *from = "limit set for this process";
        return memory_cap;
    }
    *from = "of memory this machine has";
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? cn_mul((size_t)pages, (size_t)page) : SIZE_MAX;
}

/* bytes in words: "3.2 GiB", "120.0 MiB", "more than 2^64 bytes". */
static const char *in_words(size_t bytes, char *buf, size_t size)
{
    if (bytes == SIZE_MAX)
        snprintf(buf, size, "more than 2^64 bytes");
    else if (bytes >= (size_t)1 << 30)
        snprintf(buf, size, "%.1f GiB", (double)bytes / (1 << 30));
    else
        snprintf(buf, size, "%.1f MiB", (double)bytes / (1 << 20));
    return buf;
}

void cn_net_free(cn_net *net)
{
    if (!net)
        return;
    if (net->act)
        for (size_t i = 0; i < net->n_layers; i++)
            if (!net->layers[i].shares_input)
                cn_free(net->act[i]);
    free(net->act);
    cn_free(net->gbuf[0]);
    cn_free(net->gbuf[1]);
    cn_free(net->ws);
    cn_free(net->input);
    cn_free(net->params);
    cn_free(net->grads);
    cn_free(net->buffers);
    cn_free(net->norm);
    cn_free(net->states);
    free(net->layers);
    cn_backend_free(&net->be);
    free(net);
}

/* Configures layer l from section sec with input shape in. */
static cn_status build_layer(const cn_spec *spec, const cn_section *sec, cn_layer *l, cn_shape in,
                             const cn_backend *be, size_t train_batch, unsigned *count)
{
    l->ops = cn_layer_find(sec->kind);
    l->line = sec->line;
    l->in = in;
    const cn_entry *name = cn_section_get(sec, "name");
    if (name)
        snprintf(l->name, sizeof l->name, "%s", name->value);
    else
        snprintf(l->name, sizeof l->name, "%s%u", l->ops->kind, *count);
    cn_status st = cn_section_read(spec, sec, l->ops->keys, l->ops->n_keys, 1, l->v);
    if (st)
        return st;
    st = l->ops->setup(l, be, train_batch);
    if (st) {
        cn_error_prefix("%s:%d: [%s] %s with input %zux%zux%zu: ", spec->source, sec->line,
                        sec->kind, l->name, in.c, in.h, in.w);
        return st;
    }
    if (l->out.c == 0 || l->out.h == 0 || l->out.w == 0)
        return cn_fail(CN_ERR_SPEC, "%s:%d: [%s] %s: empty output", spec->source, sec->line,
                       sec->kind, l->name);
    for (size_t t = 0; t < l->n_t + l->n_bt; t++) {
        cn_ltensor *lt = t < l->n_t ? &l->t[t] : &l->bt[t - l->n_t];
        char suffix[sizeof lt->name];
        memcpy(suffix, lt->name, sizeof suffix);
        snprintf(lt->name, sizeof lt->name, "%s.%.15s", l->name, suffix);
    }
    return CN_OK;
}

/* A shortcut's 'from': an earlier layer with the same output shape. */
static cn_status resolve_from(const cn_spec *spec, const cn_section *sec, cn_net *net, cn_layer *l)
{
    const cn_entry *from = cn_section_get(sec, "from");
    if (!from)
        return cn_fail(CN_ERR_SPEC,
                       "%s:%d: [shortcut] needs the key 'from' naming the earlier layer whose "
                       "output it adds",
                       spec->source, sec->line);
    for (size_t j = 0; j < net->n_layers; j++) {
        const cn_layer *e = &net->layers[j];
        if (strcmp(e->name, from->value) != 0)
            continue;
        if (e->out.c != l->in.c || e->out.h != l->in.h || e->out.w != l->in.w)
            return cn_fail(CN_ERR_SPEC,
                           "%s:%d: [shortcut] adds %s's output (%zux%zux%zu) to an input of "
                           "%zux%zux%zu: the shapes must be equal",
                           spec->source, from->line, e->name, e->out.c, e->out.h, e->out.w, l->in.c,
                           l->in.h, l->in.w);
        l->from = j;
        return CN_OK;
    }
    return cn_fail(CN_ERR_SPEC, "%s:%d: [shortcut] from = %s: no earlier layer has that name",
                   spec->source, from->line, from->value);
}

/* Floats of layer l's own memory: parameters and their gradients, buffers,
 * state, and its output for max_batch samples unless it works in place. */
static size_t layer_floats(const cn_net *net, const cn_layer *l)
{
    size_t n = l->shares_input ? 0 : cn_mul(cn_shape_size(l->out), net->max_batch);
    for (size_t t = 0; t < l->n_t; t++)
        n = cn_add(n, cn_mul(2, align_up(l->t[t].count)));
    for (size_t t = 0; t < l->n_bt; t++)
        n = cn_add(n, align_up(l->bt[t].count));
    return cn_add(n, align_up(l->state_floats));
}

cn_status cn_net_create(const cn_spec *spec, size_t max_batch, int threads, cn_net **out)
{
    return cn_net_build(spec, max_batch, max_batch, threads, out);
}

/* cn_net_build, and cn_net_plan_memory when out is NULL: then the layers are
 * set up and the memory planned, but nothing is allocated for it. */
static cn_status build(const cn_spec *spec, size_t max_batch, size_t train_batch, int threads,
                       cn_net_plan *plan, cn_net **out)
{
    if (out)
        *out = NULL;
    if (!spec || max_batch == 0 || max_batch > 65536)
        return cn_fail(CN_ERR_ARG, "cn_net_create: the batch size must be 1..65536, got %zu",
                       max_batch);
    if (train_batch == 0 || train_batch > max_batch)
        return cn_fail(CN_ERR_ARG, "cn_net_build: the training batch must be 1..%zu, got %zu",
                       max_batch, train_batch);
    cn_net *net = calloc(1, sizeof *net);
    if (!net)
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    cn_status st = CN_OK;
    int rc = cn_backend_cpu_init(&net->be, threads, NULL);
    if (rc) {
        free(net);
        if (rc == -2)
            return cn_fail(CN_ERR_NOMEM, "out of memory for the GEMM buffers");
        return cn_fail(CN_ERR_ARG,
                       "CONVNET_ISA=%s names a kernel set this processor or build cannot run "
                       "(choose avx512, avx2 or portable)",
                       getenv("CONVNET_ISA") ? getenv("CONVNET_ISA") : "");
    }
    net->spec = (cn_spec *)spec;
    net->max_batch = max_batch;
    net->train_batch = train_batch;
    size_t n_layers = 0;
    for (size_t i = 0; i < spec->n_sections; i++)
        n_layers += (size_t)cn_is_layer_section(&spec->sections[i]);
    net->layers = calloc(n_layers, sizeof *net->layers);
    net->act = calloc(n_layers, sizeof *net->act);
    if (!net->layers || !net->act) {
        st = cn_fail(CN_ERR_NOMEM, "out of memory");
        goto fail;
    }

    /* Layers, shapes and names. */
    cn_shape shape = spec->input;
    size_t max_io = cn_shape_size(shape), ws = 0;
    for (size_t i = 0; i < spec->n_sections; i++) {
        const cn_section *sec = &spec->sections[i];
        if (!cn_is_layer_section(sec))
            continue;
        cn_layer *l = &net->layers[net->n_layers];
        unsigned count = 1;
        for (size_t j = 0; j < net->n_layers; j++)
            count += strcmp(net->layers[j].ops->kind, sec->kind) == 0;
        if ((st = build_layer(spec, sec, l, shape, &net->be, train_batch, &count)))
            goto fail;
        for (size_t j = 0; j < net->n_layers; j++)
            if (strcmp(net->layers[j].name, l->name) == 0) {
                st = cn_fail(CN_ERR_SPEC, "%s:%d: the name '%s' is already used on line %d",
                             spec->source, l->line, l->name, net->layers[j].line);
                goto fail;
            }
        if (l->ops == &cn_shortcut_ops) {
            if ((st = resolve_from(spec, sec, net, l)))
                goto fail;
            net->layers[l->from].skip_source = 1;
        }
        net->n_layers++;
        if (l->ops->is_loss && i + 1 < spec->n_sections) {
            for (size_t j = i + 1; j < spec->n_sections; j++)
                if (cn_is_layer_section(&spec->sections[j])) {
                    st = cn_fail(CN_ERR_SPEC, "%s:%d: [%s] must be the last layer", spec->source,
                                 l->line, l->ops->kind);
                    goto fail;
                }
        }
        shape = l->out;
        size_t sz = cn_shape_size(shape);
        max_io = sz > max_io ? sz : max_io;
        ws = l->ws_floats > ws ? l->ws_floats : ws;
    }
    cn_layer *last = &net->layers[net->n_layers - 1];
    if (!last->ops->is_loss) {
        st = cn_fail(CN_ERR_SPEC, "%s:%d: the last layer is [%s]; a network ends with [softmax]",
                     spec->source, last->line, last->ops->kind);
        goto fail;
    }
    if (cn_shape_size(last->out) != spec->classes) {
        st = cn_fail(CN_ERR_SPEC,
                     "%s:%d: the network ends with %zu outputs but [net] says classes = %zu",
                     spec->source, last->line, cn_shape_size(last->out), spec->classes);
        goto fail;
    }

    /* Memory plan: parameters, gradients, buffers, layer states,
     * activations, scratch; every sum saturates at SIZE_MAX. */
    size_t n_states = 0;
    *plan = (cn_net_plan){0, 0};
    for (size_t i = 0; i < net->n_layers; i++) {
        cn_layer *l = &net->layers[i];
        for (size_t t = 0; t < l->n_t; t++) {
            l->t[t].offset = net->n_params;
            net->n_params = cn_add(net->n_params, align_up(l->t[t].count));
            plan->weights = cn_add(plan->weights, l->t[t].count);
        }
        for (size_t t = 0; t < l->n_bt; t++) {
            l->bt[t].offset = net->n_buffers;
            net->n_buffers = cn_add(net->n_buffers, align_up(l->bt[t].count));
            plan->weights = cn_add(plan->weights, l->bt[t].count);
        }
        n_states = cn_add(n_states, align_up(l->state_floats));
        /* An element-wise layer writes over its input when the layer before
         * does not need its own output in backward. */
        l->shares_input = i > 0 && l->ops->in_place && !net->layers[i - 1].ops->uses_y &&
                          !net->layers[i - 1].skip_source;
    }
    /* What is not any one layer's: the input batch, the two gradient
     * buffers of backward, the input normalisation.  The scratch space is
     * the largest layer's own: it counts as that layer's in messages. */
    size_t shared = cn_mul(2, cn_mul(max_io, train_batch));
    shared = cn_add(shared, cn_mul(max_batch, cn_shape_size(spec->input)));
    shared = cn_add(shared, cn_mul(2, spec->input.c));
    size_t floats = cn_add(shared, ws), big = 0, most = 0;
    for (size_t i = 0; i < net->n_layers; i++) {
        size_t n = layer_floats(net, &net->layers[i]);
        floats = cn_add(floats, n);
        n = cn_add(n, net->layers[i].ws_floats);
        big = n > most ? i : big;
        most = n > most ? n : most;
    }
    plan->bytes = cn_mul(floats, sizeof(float));
    if (!out) {
        cn_net_free(net);
        return CN_OK;
    }
    /* A description (a model file's too) can ask for more than any machine
     * has: that is refused before anything is allocated, naming what takes
     * the most: a layer, or the input and the buffers of the passes. */
    const char *from;
    size_t limit = memory_limit(&from);
    if (plan->bytes > limit) {
        const cn_layer *l = &net->layers[big];
        char what[160], mine[32], need[32], have[32];
        if (most > shared)
            snprintf(what, sizeof what, "%s:%d: [%s] %s (output %zux%zux%zu, %zu parameters)",
                     spec->source, l->line, l->ops->kind, l->name, l->out.c, l->out.h, l->out.w,
                     cn_add(l->t[0].count, l->t[1].count));
        else
            snprintf(what, sizeof what,
                     "%s:%d: [net] the input (%zux%zux%zu) with the buffers of the passes",
                     spec->source, spec->net_line, spec->input.c, spec->input.h, spec->input.w);
        st = cn_fail(
            CN_ERR_NOMEM,
            "%s needs %s for batches of %zu; the network needs %s in all, more than the "
            "%s %s",
            what, in_words(cn_mul(most > shared ? most : shared, sizeof(float)), mine, sizeof mine),
            max_batch, in_words(plan->bytes, need, sizeof need), in_words(limit, have, sizeof have),
            from);
        goto fail;
    }
    net->params = cn_alloc(net->n_params, sizeof(float));
    net->grads = cn_alloc(net->n_params, sizeof(float));
    net->buffers = cn_alloc(net->n_buffers, sizeof(float));
    net->states = cn_alloc(n_states, sizeof(float));
    net->norm = cn_alloc(2 * spec->input.c, sizeof(float));
    for (size_t c = 0; net->norm && c < spec->input.c; c++) {
        net->norm[c] = spec->mean;
        net->norm[spec->input.c + c] = spec->std;
    }
    net->gbuf[0] = cn_alloc(cn_mul(max_io, train_batch), sizeof(float));
    net->gbuf[1] = cn_alloc(cn_mul(max_io, train_batch), sizeof(float));
    net->ws = cn_alloc(ws, sizeof(float));
    net->ws_floats = ws;
    net->input = cn_alloc(cn_mul(max_batch, cn_shape_size(spec->input)), sizeof(float));
    int ok = net->params && net->grads && net->buffers && net->norm && net->states &&
             net->gbuf[0] && net->gbuf[1] && net->ws && net->input;
    for (size_t i = 0, state = 0; ok && i < net->n_layers; i++) {
        cn_layer *l = &net->layers[i];
        if (l->shares_input)
            net->act[i] = net->act[i - 1];
        else
            net->act[i] = cn_alloc(cn_mul(cn_shape_size(l->out), max_batch), sizeof(float));
        ok = net->act[i] != NULL;
        for (size_t t = 0; t < l->n_t; t++) {
            l->p[t] = net->params + l->t[t].offset;
            l->g[t] = net->grads + l->t[t].offset;
        }
        for (size_t t = 0; t < l->n_bt; t++)
            l->b[t] = net->buffers + l->bt[t].offset;
        l->state = net->states + state;
        state += align_up(l->state_floats);
        if (l->ops == &cn_shortcut_ops)
            l->skip = net->act[l->from];
    }
    /* A relu working in place after a convolution is done by the convolution. */
    for (size_t i = 0; i < net->n_layers; i++) {
        cn_layer *l = &net->layers[i], *next = l + 1;
        l->fused_act = CN_ACT_NONE; /* calloc's 0 would be CN_ACT_RELU */
        if (i + 1 < net->n_layers && l->ops == &cn_conv_ops && next->ops == &cn_relu_ops &&
            next->shares_input) {
            l->fused_act = CN_ACT_RELU;
            next->fused_away = 1;
        }
    }
    if (!ok) {
        st = cn_fail(CN_ERR_NOMEM, "%s: out of memory for a batch of %zu", spec->source, max_batch);
        goto fail;
    }
    *out = net;
    return CN_OK;
fail:
    cn_net_free(net);
    return st;
}

cn_status cn_net_build(const cn_spec *spec, size_t max_batch, size_t train_batch, int threads,
                       cn_net **out)
{
    cn_net_plan plan;
    return build(spec, max_batch, train_batch, threads, &plan, out);
}

cn_status cn_net_plan_memory(const cn_spec *spec, size_t max_batch, size_t train_batch,
                             cn_net_plan *plan)
{
    return build(spec, max_batch, train_batch, 1, plan, NULL);
}

static void init_tensor(const cn_ltensor *t, float *p, cn_rng *rng)
{
    double std = t->fan_in ? sqrt(2.0 / (double)t->fan_in) : 0.0;
    for (size_t j = 0; j < t->count; j++)
        p[j] = t->fan_in ? (float)(std * cn_rng_normal(rng)) : t->init;
}

void cn_net_init(cn_net *net, cn_rng *rng)
{
    for (size_t i = 0; i < net->n_layers; i++) {
        cn_layer *l = &net->layers[i];
        for (size_t t = 0; t < l->n_t; t++)
            init_tensor(&l->t[t], l->p[t], rng);
        for (size_t t = 0; t < l->n_bt; t++)
            init_tensor(&l->bt[t], l->b[t], rng);
    }
}

cn_shape cn_net_input_shape(const cn_net *net) { return net->spec->input; }
size_t cn_net_classes(const cn_net *net) { return net->spec->classes; }
size_t cn_net_max_batch(const cn_net *net) { return net->max_batch; }
int cn_net_threads(const cn_net *net) { return net->be.threads; }
const char *cn_net_isa(const cn_net *net) { return net->be.isa; }
size_t cn_net_num_layers(const cn_net *net) { return net->n_layers; }

cn_status cn_net_layer(const cn_net *net, size_t i, cn_layer_info *info)
{
    if (i >= net->n_layers)
        return cn_fail(CN_ERR_ARG, "layer %zu does not exist (the net has %zu)", i, net->n_layers);
    const cn_layer *l = &net->layers[i];
    size_t params = 0;
    for (size_t t = 0; t < l->n_t; t++)
        params += l->t[t].count;
    *info = (cn_layer_info){l->name, l->ops->kind, l->line, l->in, l->out, params, l->macs};
    return CN_OK;
}

/* Tensors are numbered layer by layer: a layer's parameters, then its
 * buffers. */
static const cn_ltensor *tensor_at(const cn_net *net, size_t i, int *trainable)
{
    for (size_t j = 0; j < net->n_layers; j++) {
        const cn_layer *l = &net->layers[j];
        if (i < l->n_t + l->n_bt) {
            *trainable = i < l->n_t;
            return i < l->n_t ? &l->t[i] : &l->bt[i - l->n_t];
        }
        i -= l->n_t + l->n_bt;
    }
    return NULL;
}

size_t cn_net_num_tensors(const cn_net *net)
{
    size_t n = 0;
    for (size_t j = 0; j < net->n_layers; j++)
        n += net->layers[j].n_t + net->layers[j].n_bt;
    return n;
}

cn_status cn_net_tensor(const cn_net *net, size_t i, cn_tensor_info *info)
{
    int trainable;
    const cn_ltensor *t = tensor_at(net, i, &trainable);
    if (!t)
        return cn_fail(CN_ERR_ARG, "tensor %zu does not exist", i);
    info->name = t->name;
    info->ndim = t->ndim;
    memcpy(info->dims, t->dims, sizeof info->dims);
    info->count = t->count;
    info->offset = t->offset;
    info->trainable = trainable;
    return CN_OK;
}

size_t cn_net_find_tensor(const cn_net *net, const char *name)
{
    size_t n = cn_net_num_tensors(net);
    int trainable;
    for (size_t i = 0; i < n; i++)
        if (strcmp(tensor_at(net, i, &trainable)->name, name) == 0)
            return i;
    return (size_t)-1;
}

size_t cn_net_num_buffers(const cn_net *net) { return net->n_buffers; }
float *cn_net_buffers(cn_net *net) { return net->buffers; }

size_t cn_net_num_params(const cn_net *net) { return net->n_params; }
float *cn_net_params(cn_net *net) { return net->params; }
float *cn_net_grads(cn_net *net) { return net->grads; }
void cn_net_zero_grads(cn_net *net) { memset(net->grads, 0, net->n_params * sizeof(float)); }

void cn_net_prepare(const cn_net *net, const uint8_t *pixels, size_t n, float *x)
{
    size_t c = net->spec->input.c, hw = net->spec->input.h * net->spec->input.w;
    for (size_t s = 0; s < n; s++)
        for (size_t k = 0; k < c; k++) {
            float scale = 1.0f / (255.0f * net->norm[c + k]),
                  shift = net->norm[k] / net->norm[c + k];
            const uint8_t *p = pixels + (s * c + k) * hw;
            float *o = x + (s * c + k) * hw;
            for (size_t i = 0; i < hw; i++)
                o[i] = (float)p[i] * scale - shift;
        }
}

void cn_net_measure_input(cn_net *net, const cn_data *data)
{
    size_t c = net->spec->input.c, hw = net->spec->input.h * net->spec->input.w;
    for (size_t k = 0; k < c; k++) {
        double sum = 0.0, sum2 = 0.0;
        for (size_t s = 0; s < data->n; s++) {
            const uint8_t *p = data->pixels + (s * c + k) * hw;
            uint64_t a = 0, b = 0; /* exact integer sums per image */
            for (size_t i = 0; i < hw; i++) {
                a += p[i];
                b += (uint64_t)p[i] * p[i];
            }
            sum += (double)a;
            sum2 += (double)b;
        }
        double count = (double)data->n * (double)hw, mean = sum / count / 255.0;
        double var = sum2 / count / (255.0 * 255.0) - mean * mean;
        net->norm[k] = (float)mean;
        net->norm[c + k] = (float)(var > 1e-12 ? sqrt(var) : 1.0);
    }
}

static cn_ctx make_ctx(cn_net *net, const int32_t *labels, int fuse, int train)
{
    return (cn_ctx){&net->be, net->ws, labels, fuse, train, net->seed};
}

void cn_net_run_forward(cn_net *net, const float *x, size_t n, int train, double *times)
{
    cn_ctx ctx = make_ctx(net, NULL, 1, train);
    for (size_t i = 0; i < net->n_layers; i++) {
        cn_layer *l = &net->layers[i];
        double t0 = times ? cn_now() : 0;
        if (!l->fused_away)
            l->ops->forward(l, &ctx, i ? net->act[i - 1] : x, net->act[i], n);
        if (times)
            times[i] = cn_now() - t0;
    }
    net->n_last = n;
    net->x_last = x;
    net->train_last = train;
}

void cn_net_run_backward(cn_net *net, const int32_t *labels, size_t n, float *dx, double *times)
{
    cn_ctx ctx = make_ctx(net, labels, 1, 1);
    const float *dy = NULL; /* the gradient of the current layer's output */
    for (size_t i = net->n_layers; i-- > 0;) {
        cn_layer *l = &net->layers[i];
        double t0 = times ? cn_now() : 0;
        /* A fused-away layer's output is the layer below's: its gradient too. */
        if (!l->fused_away) {
            float *d = i ? net->gbuf[dy == net->gbuf[0]] : dx;
            l->ops->backward(l, &ctx, i ? net->act[i - 1] : net->x_last, net->act[i], dy, d, n);
            dy = d;
            /* Shortcuts that add layer i - 1's output send it their gradient. */
            for (size_t k = i + 1; i > 0 && net->layers[i - 1].skip_source && k < net->n_layers;
                 k++)
                if (net->layers[k].ops == &cn_shortcut_ops && net->layers[k].from == i - 1)
                    cn_add_to(d, net->layers[k].state, n * cn_shape_size(l->in), d);
        }
        if (times)
            times[i] = cn_now() - t0;
    }
}

cn_status cn_net_forward(cn_net *net, const float *x, size_t n, int train)
{
    if (n == 0 || n > net->max_batch)
        return cn_fail(CN_ERR_ARG, "a batch of %zu samples; this network was built for 1..%zu", n,
                       net->max_batch);
    if (train && n > net->train_batch)
        return cn_fail(CN_ERR_ARG,
                       "a training pass over %zu samples; this network keeps "
                       "gradients for batches of up to %zu",
                       n, net->train_batch);
    cn_net_run_forward(net, x, n, train, NULL);
    return CN_OK;
}

const float *cn_net_output(const cn_net *net) { return net->act[net->n_layers - 1]; }

const float *cn_net_layer_output(const cn_net *net, size_t i)
{
    return i < net->n_layers ? net->act[i] : NULL;
}

static cn_status check_labels(const cn_net *net, const int32_t *labels, size_t n)
{
    if (!net->x_last || n != net->n_last)
        return cn_fail(CN_ERR_ARG, "%zu labels for a forward pass of %zu samples", n, net->n_last);
    for (size_t i = 0; i < n; i++)
        if (labels[i] < 0 || (size_t)labels[i] >= net->spec->classes)
            return cn_fail(CN_ERR_ARG, "label %d of sample %zu is outside 0..%zu", (int)labels[i],
                           i, net->spec->classes - 1);
    return CN_OK;
}

/* The input of the loss layer (the logits). */
static const float *logits(const cn_net *net)
{
    return net->n_layers > 1 ? net->act[net->n_layers - 2] : net->x_last;
}

cn_status cn_net_loss(const cn_net *net, const int32_t *labels, size_t n, double *loss)
{
    cn_status st = check_labels(net, labels, n);
    if (st)
        return st;
    size_t k = net->spec->classes;
    const float *z = logits(net);
    double total = 0.0;
    for (size_t s = 0; s < n; s++) {
        const float *row = z + s * k;
        float mx = row[0];
        for (size_t j = 1; j < k; j++)
            mx = row[j] > mx ? row[j] : mx;
        double sum = 0.0;
        for (size_t j = 0; j < k; j++)
            sum += exp((double)row[j] - mx);
        total += log(sum) - ((double)row[labels[s]] - mx);
    }
    *loss = total / (double)n;
    return CN_OK;
}

cn_status cn_net_backward(cn_net *net, const int32_t *labels, size_t n, float *dx)
{
    cn_status st = check_labels(net, labels, n);
    if (st)
        return st;
    if (!net->train_last)
        return cn_fail(CN_ERR_ARG, "a backward pass needs a training forward pass before it "
                                   "(cn_net_forward with train = 1)");
    cn_net_run_backward(net, labels, n, dx, NULL);
    return CN_OK;
}

void cn_net_layer_forward(cn_net *net, size_t i, const float *x, float *y, size_t n, int train)
{
    cn_ctx ctx = make_ctx(net, NULL, 0, train);
    net->layers[i].ops->forward(&net->layers[i], &ctx, x, y, n);
}

void cn_net_layer_backward(cn_net *net, size_t i, const int32_t *labels, const float *x,
                           const float *y, const float *dy, float *dx, size_t n)
{
    cn_ctx ctx = make_ctx(net, labels, 0, 1);
    net->layers[i].ops->backward(&net->layers[i], &ctx, x, y, dy, dx, n);
}

cn_status cn_net_evaluate(cn_net *net, const cn_data *data, cn_eval *out)
{
    memset(out, 0, sizeof *out);
    cn_shape in = net->spec->input;
    size_t k = net->spec->classes;
    if (data->shape.c != in.c || data->shape.h != in.h || data->shape.w != in.w)
        return cn_fail(CN_ERR_SHAPE,
                       "the data's images are %zux%zux%zu but the network takes %zux%zux%zu",
                       data->shape.c, data->shape.h, data->shape.w, in.c, in.h, in.w);
    if (data->classes > k)
        return cn_fail(CN_ERR_SHAPE, "the data has %zu classes but the network only %zu",
                       data->classes, k);
    size_t bs = net->max_batch, in_size = cn_shape_size(in);
    float *x = net->input; /* planned with the net: evaluating allocates no batch */
    out->confusion = calloc(k * k, sizeof *out->confusion);
    out->predicted = malloc((data->n ? data->n : 1) * sizeof *out->predicted);
    out->probability = malloc((data->n ? data->n : 1) * sizeof *out->probability);
    if (!out->confusion || !out->predicted || !out->probability) {
        cn_eval_free(out);
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    }
    out->n = data->n;
    out->classes = k;
    double loss_sum = 0.0;
    size_t correct = 0;
    for (size_t s0 = 0; s0 < data->n; s0 += bs) {
        size_t n = data->n - s0 < bs ? data->n - s0 : bs;
        cn_net_prepare(net, data->pixels + s0 * in_size, n, x);
        cn_net_forward(net, x, n, 0);
        double loss;
        cn_status st = cn_net_loss(net, data->labels + s0, n, &loss);
        if (st) {
            cn_eval_free(out);
            return st;
        }
        loss_sum += loss * (double)n;
        const float *p = cn_net_output(net);
        for (size_t s = 0; s < n; s++) {
            size_t best = cn_argmax(p + s * k, k);
            out->predicted[s0 + s] = best;
            out->probability[s0 + s] = p[s * k + best];
            size_t truth = (size_t)data->labels[s0 + s];
            out->confusion[truth * k + best]++;
            correct += best == truth;
        }
    }
    net->x_last = NULL;
    out->loss = data->n ? loss_sum / (double)data->n : 0.0;
    out->accuracy = data->n ? (double)correct / (double)data->n : 0.0;
    return CN_OK;
}

void cn_eval_free(cn_eval *ev)
{
    if (!ev)
        return;
    free(ev->confusion);
    free(ev->predicted);
    free(ev->probability);
    ev->confusion = NULL;
    ev->predicted = NULL;
    ev->probability = NULL;
}
