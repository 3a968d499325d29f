/* net.c - a sequential network: built from a spec with every shape checked,
 * memory planned once for max_batch samples and allocated by the backend,
 * then forward and backward passes that allocate nothing.  Tensor memory is
 * the backend's: this file names it and hands it to the backend's
 * operations, and moves data in and out only by upload and download. */
#include "internal.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Parameter tensors start on 64-byte boundaries. */
#define ALIGN_FLOATS 16

size_t cn_net_align(size_t n)
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

/* The limit that applies on be and, for messages, where it comes from:
 * a device's free memory (below the process's limit, if one is set), or
 * the host's. */
static size_t memory_limit(const cn_backend *be, const char **from)
{
    size_t avail = 0;
    if (be->memory)
        be->memory(be, NULL, &avail, NULL);
    if (be->memory && (!memory_cap || avail < memory_cap)) {
        *from = "of memory free on the GPU";
        return avail;
    }
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
    cn_backend *be = net->be;
    if (be) { /* the outputs are in the arena */
        void *blocks[] = {net->ws,     net->input,         net->pixels,   net->labels,
                          net->params, net->grads,         net->buffers,  net->norm,
                          net->states, net->row_loss,      net->row_best, net->row_p,
                          net->arena,  net->buffers_before};
        for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++)
            be->free(be, blocks[i]);
    }
    free(net->act);
    free(net->arena_at);
    free(net->train_at);
    free(net->spans);
    free(net->dlater);
    free(net->norm_host);
    free(net->h_loss);
    free(net->h_best);
    free(net->h_labels);
    free(net->layers);
    if (net->owns_be)
        cn_backend_destroy(be);
    free(net);
}

/* ---------------------------------------------------------------- layers */

/* The layer that produces the output named name, among the first n, or
 * NULL. */
static const cn_layer *find_layer(const cn_net *net, size_t n, const char *name)
{
    for (size_t j = 0; j < n; j++)
        if (strcmp(net->layers[j].name, name) == 0)
            return &net->layers[j];
    return NULL;
}

/* The extra inputs of layer l: the earlier layers its CN_KEY_LAYER keys
 * name, whatever its kind. */
static cn_status resolve_extra(const cn_spec *spec, const cn_section *sec, cn_net *net, cn_layer *l)
{
    for (size_t k = 0; k < l->ops->n_keys; k++) {
        const cn_key *key = &l->ops->keys[k];
        const cn_entry *e = key->type == CN_KEY_LAYER ? cn_section_get(sec, key->name) : NULL;
        if (!e)
            continue; /* cn_section_read refused a missing required one */
        const cn_layer *src = find_layer(net, net->n_layers, e->value);
        if (!src)
            return cn_fail(CN_ERR_SPEC, "%s:%d: [%s] %s = %s: no earlier layer has that name",
                           spec->source, e->line, sec->kind, key->name, e->value);
        if (l->n_extra == CN_MAX_EXTRA)
            return cn_fail(CN_ERR_SPEC, "%s:%d: [%s] reads more than %d earlier layers",
                           spec->source, e->line, sec->kind, CN_MAX_EXTRA);
        size_t j = (size_t)(src - net->layers);
        l->extra_from[l->n_extra] = j;
        l->extra_in[l->n_extra] = src->out;
        l->extra_name[l->n_extra] = src->name;
        l->n_extra++;
        net->layers[j].read_later = 1;
    }
    return CN_OK;
}

/* Configures the next layer of net from section sec, with input shape in:
 * its kind, settings, name, extra inputs and shapes. */
static cn_status build_layer(const cn_spec *spec, const cn_section *sec, cn_net *net, cn_shape in,
                             size_t train_batch)
{
    cn_layer *l = &net->layers[net->n_layers];
    l->ops = cn_layer_find(sec->kind);
    l->line = sec->line;
    l->in = in;
    if (!l->ops) {
        const char *names[64] = {"net", "train"};
        size_t n_names = 2;
        for (size_t k = 0; cn_layer_kind_at(k) && n_names < 64; k++)
            names[n_names++] = cn_layer_kind_at(k)->kind;
        char hint[64];
        cn_suggest(hint, sizeof hint, sec->kind, names, n_names, "[", "]");
        return cn_fail(CN_ERR_SPEC,
                       "%s:%d: unknown section [%s]%s; expected [net], [train] or a layer: %s",
                       spec->source, sec->line, sec->kind, hint, cn_layer_kinds());
    }
    const cn_entry *name = cn_section_get(sec, "name");
    if (name) {
        snprintf(l->name, sizeof l->name, "%s", name->value);
    } else {
        unsigned count = 1;
        for (size_t j = 0; j < net->n_layers; j++)
            count += net->layers[j].ops == l->ops;
        snprintf(l->name, sizeof l->name, "%s%u", l->ops->kind, count);
    }
    const cn_layer *dup = find_layer(net, net->n_layers, l->name);
    if (dup)
        return cn_fail(CN_ERR_SPEC, "%s:%d: the name '%s' is already used on line %d", spec->source,
                       l->line, l->name, dup->line);
    cn_status st = cn_section_read(spec, sec, l->ops->keys, l->ops->n_keys, 1, l->v);
    if (st || (st = resolve_extra(spec, sec, net, l)))
        return st;
    st = l->ops->setup(l, net->be, train_batch);
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
    net->n_layers++;
    return CN_OK;
}

/* Every layer of spec, in order; the loss layer last. */
static cn_status build_layers(const cn_spec *spec, cn_net *net, size_t train_batch)
{
    cn_shape shape = spec->input;
    for (size_t i = 0; i < spec->n_sections; i++) {
        const cn_section *sec = &spec->sections[i];
        if (!cn_is_layer_section(sec))
            continue;
        if (net->n_layers && net->layers[net->n_layers - 1].ops->is_loss)
            return cn_fail(CN_ERR_SPEC, "%s:%d: [%s] must be the last layer", spec->source,
                           net->layers[net->n_layers - 1].line,
                           net->layers[net->n_layers - 1].ops->kind);
        cn_status st = build_layer(spec, sec, net, shape, train_batch);
        if (st)
            return st;
        shape = net->layers[net->n_layers - 1].out;
    }
    const cn_layer *last = &net->layers[net->n_layers - 1];
    if (!last->ops->is_loss)
        return cn_fail(CN_ERR_SPEC, "%s:%d: the last layer is [%s]; a network ends with [softmax]",
                       spec->source, last->line, last->ops->kind);
    if (spec->classes == 0) /* [net] left classes out: the outputs decide */
        ((cn_spec *)spec)->classes = cn_shape_size(last->out);
    if (cn_shape_size(last->out) != spec->classes)
        return cn_fail(CN_ERR_SPEC,
                       "%s:%d: the network ends with %zu outputs but [net] says classes = %zu",
                       spec->source, last->line, cn_shape_size(last->out), spec->classes);
    return CN_OK;
}

/* Layer i writes its output over its input when it may (element-wise) and
 * nothing needs that input afterwards: not its own backward pass, not the
 * layer before's (its output), not a later layer reading it.  The network's
 * input is never overwritten. */
static void decide_in_place(cn_net *net)
{
    for (size_t i = 1; i < net->n_layers; i++) {
        cn_layer *l = &net->layers[i];
        const cn_layer *prev = l - 1;
        l->shares_input =
            l->ops->elementwise && !l->ops->needs_x && !prev->ops->needs_y && !prev->read_later;
    }
}

/* Whether layer l's successor, an affine map in evaluation (batch
 * normalisation), can be folded into l's forward pass: only in a forward-only
 * network (no pass ever needs the map's input or the batch's statistics),
 * when l's output is read by nothing else and the backend can. */
static int folds_affine(const cn_net *net, size_t i)
{
    const cn_layer *l = &net->layers[i], *next = l + 1;
    return net->arena_at && i + 1 < net->n_layers && l->ops->fuses_affine && next->ops->affine &&
           net->be->conv_fwd_affine && net->be->bn_affine && !l->read_later &&
           next->in.h * next->in.w > 1;
}

/* Whether the max pooling at k can be folded into the forward pass of
 * layer i (a convolution, what lies between folded into it already): only
 * in a forward-only network, where no pass reads i's full output, when no
 * later layer reads it or the outputs between (nor the caller: the last
 * two layers' outputs are kept, and the pooling is not the last layer),
 * and the backend can. */
static int folds_pool(const cn_net *net, size_t i, size_t k)
{
    if (!net->arena_at || k + 1 >= net->n_layers || !net->layers[i].ops->fuses_pool ||
        !net->layers[k].ops->max_pool || !net->be->conv_fwd_pool)
        return 0;
    for (size_t j = i; j < k; j++)
        if (net->layers[j].read_later)
            return 0;
    return 1;
}

/* Whether layer l can apply the layer a after it in whole-network passes:
 * an activation it can apply, working in place (a past the last layer:
 * no). */
static int takes_act(const cn_net *net, const cn_layer *l, const cn_layer *a)
{
    return a < net->layers + net->n_layers && l->ops->fusable_acts && a->ops->act != CN_ACT_NONE &&
           (l->ops->fusable_acts(net->be) >> a->ops->act & 1u) && a->shares_input;
}

/* Whether the batch normalisation after the max pooling at k, folded into
 * layer i, can be folded in too (the convolution applies it before the
 * pooling: affine_after_pool): only when nothing lies between the convolution and the
 * pooling, the pooling's output is read by nothing else (not the caller's
 * either: a layer follows the normalisation) and the backend can. */
static int folds_affine_after_pool(const cn_net *net, size_t i, size_t k)
{
    const cn_layer *l = &net->layers[i], *pool = &net->layers[k], *next = pool + 1;
    return k + 2 < net->n_layers && k == i + 1 && l->ops->fuses_affine && next->ops->affine &&
           net->be->bn_affine && !pool->read_later && next->in.h * next->in.w > 1;
}

/* An activation that works in place after a layer that can apply it (and
 * whose backend can: a convolution, a batch normalisation) is done by that
 * layer in whole-network passes; in a forward-only network an affine layer
 * between a convolution and its activation (batch normalisation) is folded
 * into the convolution too, its output then the convolution's own, and so
 * is a max pooling after them, whose output then takes the convolution's
 * place (the scratch it needs added to the layer's), and a batch
 * normalisation right after a pooling that follows the convolution
 * directly, with its activation (applied in the pooling's place over its
 * output: affine_after_pool). */
static void decide_fusion(cn_net *net)
{
    for (size_t i = 0; i < net->n_layers; i++) {
        cn_layer *l = &net->layers[i], *next = l + 1, *end = net->layers + net->n_layers;
        l->fused_act = CN_ACT_NONE;
        l->fused_affine = l->fused_pool = NULL;
        l->affine_after_pool = 0;
        if (l->fused_away)
            continue; /* folded into the layer before, with what follows */
        if (folds_affine(net, i)) {
            l->fused_affine = next;
            next->fused_away = 1;
            next->shares_input = 1;
            next++;
        }
        if (takes_act(net, l, next)) {
            l->fused_act = next->ops->act;
            next->fused_away = 1;
            next++;
        }
        if (next < end && folds_pool(net, i, (size_t)(next - net->layers))) {
            cn_win g = l->ops->window(l);
            l->fused_pool = next;
            next->fused_away = 1;
            next->shares_input = 1;
            l->ws_floats = cn_add(l->ws_floats, net->be->conv_pool_ws(net->be, &g, l->out.c));
            if (folds_affine_after_pool(net, i, (size_t)(next - net->layers))) {
                next++;
                l->fused_affine = next;
                l->affine_after_pool = 1;
                next->fused_away = 1;
                next->shares_input = 1;
                if (next->ws_floats > l->ws_floats) /* its own pass, when it must */
                    l->ws_floats = next->ws_floats;
                next++;
                if (takes_act(net, l, next)) {
                    l->fused_act = next->ops->act;
                    next->fused_away = 1;
                }
            }
        }
    }
}

/* ---------------------------------------------------------------- memory */

/* A place in a training net's arena and its time (place_training). */
struct cn_span {
    size_t t0, t1, at, size;
};

/* Floats of layer l's own memory: parameters and their gradients, buffers,
 * state, and in a training net its output for max_batch samples unless it
 * works in place. */
static size_t layer_floats(const cn_net *net, const cn_layer *l)
{
    size_t n = l->shares_input || l->replayed || net->arena_at
                   ? 0
                   : cn_mul(cn_shape_size(l->out), net->max_batch);
    for (size_t t = 0; t < l->n_t; t++)
        n = cn_add(n, cn_mul(2, cn_net_align(l->t[t].count)));
    for (size_t t = 0; t < l->n_bt; t++)
        n = cn_add(n, cn_net_align(l->bt[t].count));
    return cn_add(n, cn_net_align(l->state_floats));
}

/* The largest per-sample size among the input and the outputs of the
 * layers before layer end. */
static size_t max_io(const cn_net *net, size_t end)
{
    size_t most = cn_shape_size(net->spec->input);
    for (size_t i = 0; i < end; i++)
        most = cn_shape_size(net->layers[i].out) > most ? cn_shape_size(net->layers[i].out) : most;
    return most;
}

/* Floats of what is not any one layer's: the input batch (floats and
 * pixels), backward's gradients and the outputs made again (a training
 * net's arena beyond the outputs kept), the input normalisation, labels and per-sample results. The
 * scratch space is the largest layer's own: it counts as that layer's in
 * messages. */
static size_t shared_floats(const cn_net *net)
{
    size_t in = cn_mul(net->max_batch, cn_shape_size(net->spec->input));
    size_t n = 0;
    if (net->train_at) { /* the arena past the outputs: backward's gradients */
        size_t outputs = 0;
        for (size_t i = 0; i < net->n_layers; i++)
            if (!net->layers[i].replayed)
                outputs = cn_add(outputs, net->spans[i].size);
        n = net->arena_floats > outputs ? net->arena_floats - outputs : 0;
    }
    n = cn_add(n, cn_add(in, in / sizeof(float) + 1));
    n = cn_add(n, cn_mul(2, net->spec->input.c));
    return cn_add(n, cn_mul(5, net->max_batch)); /* labels, loss (double), best, p */
}

/* A forward-only network's batch larger than this many samples goes
 * through the layers chunk by chunk (run_chunks), when the backend has
 * workers (be->each_worker): a chunk as large as the outputs of
 * CHUNK_BYTES take (2 of the largest per sample), in whole 16s, 32 to 64. */
#define CHUNK_BYTES (8u << 20)

static size_t chunk_workers(const cn_net *net)
{
    return net->be->workers > 1 ? net->be->workers : 1;
}

static size_t chunk_samples(const cn_net *net)
{
    size_t per = 2 * max_io(net, net->n_layers) * sizeof(float);
    size_t s = CHUNK_BYTES / per / 16 * 16;
    s = s < 32 ? 32 : s > 64 ? 64 : s;
    return net->arena_at && net->be->each_worker && net->max_batch > s ? s : 0;
}

/* Floats per sample of layer i's output as its place takes it (a folded
 * pooling's output in its place). */
static size_t output_size(const cn_net *net, size_t i)
{
    const cn_layer *l = net->layers[i].fused_pool ? net->layers[i].fused_pool : &net->layers[i];
    return cn_shape_size(l->out);
}

/* Floats of layer i's place: max_batch samples, or a chunk's (net->chunk)
 * unless the output is kept to the end of the pass (kept[i]). */
static size_t output_floats(const cn_net *net, size_t i)
{
    size_t batch =
        net->chunk && !net->arena_at[2 * net->n_layers + i] ? net->chunk : net->max_batch;
    return cn_net_align(cn_mul(output_size(net, i), batch));
}

/* A chunked pass (net->chunk: run_chunks) puts the outputs kept to the end
 * of the pass, the logits and the probabilities, each at its samples' place
 * in a buffer for max_batch, after the workers' areas: the outputs of one
 * chunk of samples each (chunk_floats), laid out as above for a chunk.
 * kept[i] (arena_at + 2n): floats per sample of layer i's kept output, 0
 * for the others (all 0 in a network without chunks).  No chunks (chunk 0)
 * where a layer reads a kept output as an extra input, whose pointer is
 * fixed. */
static void mark_kept(cn_net *net, const size_t *end)
{
    size_t n = net->n_layers, *kept = net->arena_at + 2 * n, owner = 0;
    for (size_t i = 0; i < n; i++) {
        if (!net->layers[i].shares_input)
            owner = i;
        kept[i] = end[owner] >= n ? output_size(net, owner) : 0;
    }
    for (size_t x = 0; x < n; x++)
        for (size_t k = 0; k < net->layers[x].n_extra; k++)
            if (kept[net->layers[x].extra_from[k]])
                net->chunk = 0;
    if (!net->chunk) /* all in one layout: nothing apart */
        for (size_t i = 0; i < n; i++)
            kept[i] = 0;
}

/* A forward-only net's outputs placed in one block.  The buffer of layer
 * i's output (i not in place) is written by i and by the layers in place
 * over it, i+1..j, and read up to layer j+1, or up to a later layer that
 * reads one of them as an extra input, or to the end of the pass when it
 * holds the logits or the probabilities (j >= n-2).  Each buffer gets the
 * lowest offset where it overlaps no buffer still to be read when it is
 * written (first fit, in the order of the layers).  end holds n sizes. */
static void place_outputs(cn_net *net, size_t *end)
{
    size_t n = net->n_layers, *kept = net->arena_at + 2 * n;
    net->arena_floats = 0;
    for (size_t i = 0; i < n; i++) { /* which buffers last to the end, first */
        size_t j = i;
        while (j + 1 < n && net->layers[j + 1].shares_input)
            j++;
        end[i] = net->layers[i].shares_input ? end[i - 1] : j + 2 >= n ? n : j + 1;
        for (size_t x = j + 1; !net->layers[i].shares_input && x < n; x++)
            for (size_t k = 0; k < net->layers[x].n_extra; k++)
                if (net->layers[x].extra_from[k] >= i && net->layers[x].extra_from[k] <= j)
                    end[i] = x > end[i] ? x : end[i];
    }
    mark_kept(net, end);
    for (size_t i = 0; i < n; i++) {
        const cn_layer *l = &net->layers[i];
        if (l->shares_input) {
            net->arena_at[i] = net->arena_at[i - 1];
            continue;
        }
        if (kept[i])
            continue; /* after the workers' areas, below */
        size_t size = output_floats(net, i), at = 0;
        for (int moved = 1; moved;) { /* past every clash, lowest first */
            moved = 0;
            for (size_t k = 0; k < i; k++) {
                if (net->layers[k].shares_input || end[k] < i || kept[k])
                    continue;
                size_t k_at = net->arena_at[k], k_end = cn_add(k_at, output_floats(net, k));
                if (at < k_end && k_at < cn_add(at, size)) {
                    at = k_end;
                    moved = 1;
                }
            }
        }
        net->arena_at[i] = at;
        if (cn_add(at, size) > net->arena_floats)
            net->arena_floats = cn_add(at, size);
    }
    if (!net->chunk)
        return;
    net->chunk_floats = cn_net_align(net->arena_floats);
    net->arena_floats = cn_mul(net->chunk_floats, chunk_workers(net));
    for (size_t i = 0; i < n; i++) {
        if (!kept[i])
            continue;
        if (net->layers[i].shares_input) {
            net->arena_at[i] = net->arena_at[i - 1];
            continue;
        }
        net->arena_at[i] = net->arena_floats;
        net->arena_floats = cn_add(net->arena_floats, output_floats(net, i));
    }
}

/* Whether nothing but the layer above reads layer l's output in a backward
 * pass once that layer has: l owns the buffer, its own backward reads no
 * output (but for act, its fused activation's gradient, which the layer
 * above would then apply), and no later layer reads it as an extra input. */
static int output_unread(const cn_layer *l, cn_act act)
{
    return !l->shares_input && !l->fused_away && l->fused_act == act && !l->fused_affine &&
           !l->ops->needs_y && !l->read_later;
}

/* Whether layer i's backward pass may write its input's gradient over its
 * input, the output of layer i-1 (not the caller's input). */
static int may_write_over_input(const cn_net *net, size_t i)
{
    return i > 0 && !net->layers[i].shares_input && output_unread(&net->layers[i - 1], CN_ACT_NONE);
}

/* Whether layer i's input is the output of a relu fused into the layer
 * before it (in place over that layer's output), which layer i may write
 * over once it applies the relu's gradient itself. */
static int relu_output_below(const cn_net *net, size_t i)
{
    if (i < 2)
        return 0;
    const cn_layer *l = &net->layers[i], *relu = l - 1;
    return !l->shares_input && relu->fused_away && relu->shares_input &&
           relu->ops->act == CN_ACT_RELU && !relu->read_later && output_unread(l - 2, CN_ACT_RELU);
}

/* The layer that owns the buffer of layer i's output. */
static size_t owner_of(const cn_net *net, size_t i)
{
    while (i > 0 && net->layers[i].shares_input)
        i--;
    return i;
}

/* Whether layer l's backward step is left out of a training pass: an
 * activation whose gradient the layer above applies (relu_layer_below),
 * its input's gradient its output's. */
static int left_out(const cn_layer *l) { return l->act_applied && l->ops->elementwise; }

/* Whether layer i's input is the output of a relu that is a layer of its
 * own, in place over the layers before it (a residual block's relu, after
 * its shortcut), and whose backward steps, and theirs, read nothing of that
 * buffer but the relu's: layer i may then apply the relu's gradient itself
 * and write over it, and the relu's step is left out (act_applied). */
static int relu_layer_below(const cn_net *net, size_t i)
{
    if (i < 2)
        return 0;
    const cn_layer *l = &net->layers[i], *relu = l - 1;
    if (l->shares_input || relu->fused_away || !relu->shares_input || relu->read_later ||
        !relu->ops->elementwise || relu->ops->act != CN_ACT_RELU)
        return 0;
    size_t o = owner_of(net, i - 1);
    for (size_t k = o; k + 1 < i; k++) {
        const cn_layer *m = &net->layers[k];
        if (m->fused_away)
            continue;
        if (m->read_later || m->ops->needs_y || (k > o && m->ops->needs_x) ||
            m->fused_act != CN_ACT_NONE || m->fused_affine)
            return 0;
    }
    return 1;
}

/* Where a training pass's backward writes each layer's input gradient
 * (cn_layer's grad_at), so that the two gradient buffers are as small as
 * the pass allows (their sizes per sample in net->gbuf_floats): over the
 * output's gradient where the layer computes it in place, over the input
 * where the layer can and nothing reads the input again (the memory of a
 * max pooling's input), else in the buffer that the output's gradient is
 * not in (the smaller one to grow when the output's gradient is in neither).
 * The layers' output_spent and net->gbuf_floats follow. */
static void plan_grads(cn_net *net)
{
    net->gbuf_floats[0] = net->gbuf_floats[1] = 0;
    int dy_at = -1; /* where the gradient of the current output is: -1 nowhere yet */
    for (size_t i = 0; i < net->n_layers; i++) {
        net->layers[i].output_spent = net->layers[i].act_applied = 0;
        net->layers[i].grad_act = CN_ACT_NONE;
    }
    for (size_t i = net->n_layers; i-- > 0;) {
        cn_layer *l = &net->layers[i];
        l->grad_at = CN_GRAD_BUF0;
        if (l->fused_away)
            continue; /* the layer before computes its gradient */
        /* left out (relu_layer_below, set above): its gradient is its output's */
        if (left_out(l) && dy_at >= 0) {
            l->grad_at = CN_GRAD_ON_DY;
            continue;
        }
        unsigned can = l->ops->dx_places ? l->ops->dx_places(l, net->be) : 0;
        size_t size = cn_shape_size(l->in);
        if (can & CN_DX_ON_DY && dy_at >= 0 && size == cn_shape_size(l->out)) {
            l->grad_at = CN_GRAD_ON_DY;
            continue;
        }
        if (can & CN_DX_ON_X && may_write_over_input(net, i)) {
            l->grad_at = CN_GRAD_ON_X;
            net->layers[i - 1].output_spent = 1;
            dy_at = CN_GRAD_ON_X;
            continue;
        }
        if (can & CN_DX_ON_RELU_X && relu_output_below(net, i)) {
            l->grad_at = CN_GRAD_ON_X;
            l->grad_act = CN_ACT_RELU;
            net->layers[i - 2].act_applied = 1;
            net->layers[i - 1].output_spent = net->layers[i - 2].output_spent = 1;
            dy_at = CN_GRAD_ON_X;
            continue;
        }
        if (can & CN_DX_ON_RELU_X && relu_layer_below(net, i)) {
            l->grad_at = CN_GRAD_ON_X;
            l->grad_act = CN_ACT_RELU;
            net->layers[i - 1].act_applied = 1;
            for (size_t k = owner_of(net, i - 1); k < i; k++)
                net->layers[k].output_spent = 1;
            dy_at = CN_GRAD_ON_X;
            continue;
        }
        int k;
        if (dy_at == CN_GRAD_BUF0 || dy_at == CN_GRAD_BUF1)
            k = !dy_at;
        else { /* the one that grows least */
            size_t grow0 = size > net->gbuf_floats[0] ? size - net->gbuf_floats[0] : 0;
            size_t grow1 = size > net->gbuf_floats[1] ? size - net->gbuf_floats[1] : 0;
            k = grow1 < grow0;
        }
        l->grad_at = k;
        if (size > net->gbuf_floats[k])
            net->gbuf_floats[k] = size;
        dy_at = k;
    }
}

/* ------------------------------------------------ a training net's arena
 *
 * A training net keeps the outputs from its forward pass that its backward
 * pass reads until it is done with them, so the outputs lie one after the
 * other in the arena, in the layers' order (the last two, the logits and
 * the probabilities, kept to the end, under them all).  Backward goes down
 * the layers: once layer k's backward step has run, nothing reads k's
 * output again (the layers above it have had theirs), and the outputs above
 * the highest one still read are free.  The rest are spans of time placed
 * over that free memory, each at the lowest offset that nothing else holds
 * in its time (first fit, in the order of their starts); the arena grows
 * where there is no such room:
 * - the gradients backward writes anew (plan_grads' CN_GRAD_BUF0/1; the
 *   others go over a gradient or an input in place), and the gradients of
 *   the outputs that later layers read as an extra input (dlater: a
 *   residual connection's), each for as long as it is read;
 * - in a lean net, the outputs that backward makes again instead of
 *   keeping them (replayed: a batch normalisation's, its relu applied, from
 *   the convolution's output that its own backward step reads anyway):
 *   such an output has a place for the forward steps that read it, and
 *   another from the backward step of the layer after it, which makes it
 *   again first, to its own backward step.  That takes a third of the
 *   memory of a convolution, batch normalisation and relu's outputs, for one
 *   pass of the normalisation more.
 * So a residual network's gradients, the two buffers of its top layers'
 * size and a dlater per shortcut that were blocks of their own, take the
 * memory of outputs already spent.  Time runs over the forward steps, 0 to
 * n-1 (layer i at i), then the backward steps (layer i at 2n-1-i), each in
 * two moments (AT_REMAKE, AT_LAYER, below); a span is read up to its t1
 * (inclusive).  Spans: [0, n) the outputs' (their
 * owners'), [n, 2n) the gradients', [2n, 3n) the dlaters', [3n, 4n) the
 * outputs made again, [4n, 5n) the outputs made again for a moment, for
 * them (a shortcut's input, when the shortcut's output is made again). */

#define NO_SPAN SIZE_MAX

static size_t larger(size_t a, size_t b) { return a > b ? a : b; }

/* The last layer in place over owner i's buffer. */
static size_t chain_end(const cn_net *net, size_t i)
{
    while (i + 1 < net->n_layers && net->layers[i + 1].shares_input)
        i++;
    return i;
}

/* Whether owner o's output is made again from an input that is kept (the
 * net's input, or an output not made again). */
static int input_kept(const cn_net *net, size_t o)
{
    return o == 0 || !net->layers[owner_of(net, o - 1)].replayed;
}

/* The owner of the output made again that a layer in owner i's chain reads
 * as an extra input (a shortcut's), which making i's again makes first (in
 * a place for that moment: temp_span); NO_SPAN: none. */
static size_t extra_made_again(const cn_net *net, size_t i)
{
    for (size_t k = i; k <= chain_end(net, i); k++)
        for (size_t x = 0; x < net->layers[k].n_extra; x++) {
            size_t s = owner_of(net, net->layers[k].extra_from[x]);
            if (net->layers[s].replayed)
                return s;
        }
    return NO_SPAN;
}

/* Whether a lean net may make owner i's output again in backward instead of
 * keeping it: the layer can, on this backend; its input is kept; the layers
 * in place over it are activations it applies itself (fused away) or
 * layers whose forward pass can run again (pure: a shortcut, a relu); what
 * they read as an extra input is kept, or made again from what is kept by
 * its own kept inputs alone (and one such at most); its chain ends before the last
 * two layers (kept to the end), so a layer after it reads it, whose
 * backward step makes it again. */
static int may_replay(const cn_net *net, size_t i)
{
    const cn_layer *l = &net->layers[i];
    size_t e = chain_end(net, i), again = NO_SPAN;
    if (!net->lean || l->shares_input || !l->ops->replay || !l->ops->can_replay(net->be) ||
        e + 3 > net->n_layers || !input_kept(net, i))
        return 0;
    for (size_t k = i + 1; k <= e; k++) {
        const cn_layer *m = &net->layers[k];
        if (!m->fused_away && !m->ops->pure)
            return 0;
        for (size_t x = 0; x < m->n_extra; x++) {
            size_t s = owner_of(net, m->extra_from[x]);
            if (!net->layers[s].replayed)
                continue;
            if ((again != NO_SPAN && again != s) || extra_made_again(net, s) != NO_SPAN)
                return 0;
            again = s;
        }
    }
    return 1;
}

/* Marks the outputs made again (all that may be when on, else none). */
static void decide_replay(cn_net *net, int on)
{
    net->replays = 0;
    for (size_t i = 0; i < net->n_layers; i++)
        net->layers[i].replayed = 0;
    for (size_t i = 0; on && i < net->n_layers; i++) {
        if (!may_replay(net, i))
            continue;
        for (size_t k = i; k <= chain_end(net, i); k++)
            net->layers[k].replayed = 1;
        net->replays++;
    }
}

/* The span that holds owner o's output in backward. */
static size_t back_span(const cn_net *net, size_t o)
{
    return net->layers[o].replayed ? 3 * net->n_layers + o : o;
}

/* Times (above): each step has two moments, the outputs made again before
 * the layer runs (2s), then the layer (2s + 1), so that what is made again
 * for a moment (temp spans) may lie where the step's layer then writes. */
#define AT_LAYER(s)  (2 * (s) + 1)
#define AT_REMAKE(s) (2 * (s))
#define T_END(n)     (4 * (n) + 1) /* past every step: the outputs kept to the end */

/* The lowest layer that reads owner i's buffer in backward: itself (its
 * output, or its fused activation's), a layer in place over it, or the
 * layer after them (its input); NO_SPAN: none.  Backward reads it last
 * there. */
static size_t lowest_reader(const cn_net *net, size_t i)
{
    const cn_layer *l = &net->layers[i];
    size_t e = chain_end(net, i);
    if (l->ops->needs_y || l->fused_act != CN_ACT_NONE)
        return i;
    for (size_t k = i + 1; k <= e; k++)
        if (!net->layers[k].fused_away && !left_out(&net->layers[k]) &&
            (net->layers[k].ops->needs_x || net->layers[k].ops->needs_y))
            return k;
    return e + 1 < net->n_layers && net->layers[e + 1].ops->needs_x ? e + 1 : NO_SPAN;
}

/* The lifetimes: the outputs' (their owners', to their last reading in
 * backward, extended where a gradient written over one in place is read
 * later; a replayed one's two, and what making it again reads first), the
 * gradients', the dlaters'. */
static void training_spans(cn_net *net)
{
    size_t n = net->n_layers, end = 2 * n, *last = net->train_at + 3 * n;
    struct cn_span *sp = net->spans, none = {0, 0, 0, 0};
    for (size_t i = 0; i < 5 * n; i++)
        sp[i] = none;
    for (size_t i = 0; i < n; i++)
        last[i] = NO_SPAN;
    for (size_t x = 0; x < n; x++)
        for (size_t k = 0; k < net->layers[x].n_extra; k++) {
            size_t from = net->layers[x].extra_from[k];
            last[from] = last[from] == NO_SPAN || x > last[from] ? x : last[from];
        }
    for (size_t i = 0; i < n; i++) {
        const cn_layer *l = &net->layers[i];
        size_t size = cn_net_align(cn_mul(cn_shape_size(l->out), net->max_batch));
        if (!l->shares_input) {
            /* forward: read by the layer after its chain and by later layers
             * as an extra input; backward: by its lowest reader */
            size_t e = chain_end(net, i), fwd = e + 1, low = lowest_reader(net, i);
            for (size_t k = i; k <= e; k++)
                fwd = last[k] == NO_SPAN ? fwd : larger(fwd, last[k]);
            size_t bwd = low == NO_SPAN ? 0 : AT_LAYER(end - 1 - low);
            if (i + 2 >= n) /* the last two, the logits and probabilities: to the end */
                sp[i] = (struct cn_span){AT_LAYER(i), T_END(n), 0, size};
            else if (!l->replayed)
                sp[i] = (struct cn_span){AT_LAYER(i), larger(AT_LAYER(fwd), bwd), 0, size};
            else { /* made again before the step of the layer after its chain */
                size_t again = AT_REMAKE(end - 2 - e);
                sp[i] = (struct cn_span){AT_LAYER(i), AT_LAYER(fwd), 0, size};
                sp[3 * n + i] = (struct cn_span){again, larger(again + 1, bwd), 0, size};
                size_t s = extra_made_again(net, i); /* made first, for that moment */
                if (s != NO_SPAN)
                    sp[4 * n + i] = (struct cn_span){
                        again, again, 0,
                        cn_net_align(cn_mul(cn_shape_size(net->layers[s].out), net->max_batch))};
            }
        }
        if (last[i] != NO_SPAN)
            sp[2 * n + i] =
                (struct cn_span){AT_LAYER(end - 1 - last[i]), AT_LAYER(end - 2 - i), 0,
                                 cn_net_align(cn_mul(cn_shape_size(l->out), net->train_batch))};
    }
    size_t cur = NO_SPAN; /* the span holding the current gradient */
    for (size_t i = n; i-- > 0;) {
        const cn_layer *l = &net->layers[i];
        size_t t = AT_LAYER(end - 1 - i);
        if (l->fused_away)
            continue;
        if (cur != NO_SPAN) /* read here as dy */
            sp[cur].t1 = larger(t, sp[cur].t1);
        if (l->grad_at == CN_GRAD_ON_DY && cur != NO_SPAN)
            continue;
        if (l->grad_at == CN_GRAD_ON_X) { /* written here over the input */
            cur = back_span(net, owner_of(net, i - 1));
            sp[cur].t1 = larger(t, sp[cur].t1);
        } else {
            cur = n + i;
            sp[cur] = (struct cn_span){
                t, t, 0, cn_net_align(cn_mul(cn_shape_size(l->in), net->train_batch))};
        }
    }
    if (cur != NO_SPAN) /* layer 0's: the input's gradient, for the caller */
        sp[cur].t1 = T_END(n);
}

/* Whether span s is kept in its place from its forward step on (an output
 * that is not made again). */
static int kept_span(const cn_net *net, size_t s)
{
    return s < net->n_layers && !net->layers[s].replayed;
}

/* Places span s at the lowest offset where it overlaps, in place and in
 * time, none of the spans placed before it, by_at[0, *m) in the order of
 * their offsets (s joins them).  Returns the end of its place. */
static size_t place_span(struct cn_span *sp, size_t s, size_t *by_at, size_t *m)
{
    size_t at = 0, k = 0, size = sp[s].size;
    for (; k < *m; k++) {
        const struct cn_span *o = &sp[by_at[k]];
        if (o->t1 < sp[s].t0 || sp[s].t1 < o->t0)
            continue; /* not in its time */
        if (o->at >= at + size)
            break; /* the room below o is enough */
        at = larger(at, o->at + o->size);
    }
    sp[s].at = at;
    for (k = *m; k > 0 && sp[by_at[k - 1]].at > at; k--)
        by_at[k] = by_at[k - 1];
    by_at[k] = s;
    (*m)++;
    return at + size;
}

/* The spans not kept from forward on, into ord (their count returned), in
 * the order they are placed: by their starts (bysize 0; at a step, what is
 * made again first, then the dlaters, then the gradients: an output made
 * again is made before the layer after it runs, a dlater starts with the
 * layer that reads it), or the largest first (bysize 1), the earlier first
 * among equals. */
static size_t transient_order(const cn_net *net, int bysize, size_t *ord)
{
    static const size_t kinds[5] = {0, 4, 3, 2, 1};
    const struct cn_span *sp = net->spans;
    size_t n = net->n_layers, count = 0;
    for (size_t q = 0; q < 5; q++)
        for (size_t i = 0; i < n; i++) {
            size_t s = kinds[q] * n + i;
            if (sp[s].size && !kept_span(net, s))
                ord[count++] = s;
        }
    for (size_t k = 1; k < count; k++) { /* stable: the kinds' order among equals */
        size_t v = ord[k], j = k;
        for (; j > 0; j--) {
            const struct cn_span *a = &sp[v], *b = &sp[ord[j - 1]];
            int before =
                bysize ? a->size > b->size || (a->size == b->size && a->t0 < b->t0) : a->t0 < b->t0;
            if (!before)
                break;
            ord[j] = ord[j - 1];
        }
        ord[j] = v;
    }
    return count;
}

/* Places the outputs kept one after the other (the ones kept to the end
 * first), then the other spans in the order transient_order gives; by_at
 * holds them all in the order of their places, *m of them.  Returns the
 * arena's floats. */
static size_t place_all(cn_net *net, int bysize, size_t *by_at, size_t *m, size_t *outputs)
{
    size_t n = net->n_layers, top = 0, *ord = net->train_at + 11 * n;
    struct cn_span *sp = net->spans;
    *m = 0;
    for (int kept = 1; kept >= 0; kept--)
        for (size_t i = 0; i < n; i++)
            if (sp[i].size && kept_span(net, i) && (sp[i].t1 == T_END(n)) == kept) {
                sp[i].at = top;
                top = cn_add(top, sp[i].size);
                by_at[(*m)++] = i;
            }
    size_t arena = *outputs = top, count = transient_order(net, bysize, ord);
    for (size_t k = 0; k < count; k++)
        arena = larger(arena, place_span(sp, ord[k], by_at, m));
    return arena;
}

/* One layout of the arena (above) for the outputs decide_replay marked:
 * the places of the spans (placed by their starts or the largest first,
 * whichever takes less), the outputs that a gradient or an output made
 * again takes the place of marked spent.  Without outputs made again, the
 * gradients apart, above the outputs, in plan_grads' two buffers (and the
 * dlaters after them), where that takes less, as in tiny networks whose
 * top layers' outputs are smaller than the gradients below them.  Returns
 * the arena's floats. */
static size_t lay_out(cn_net *net)
{
    size_t n = net->n_layers, *at = net->train_at, *by_at = at + 6 * n, m = 0, outputs = 0;
    struct cn_span *sp = net->spans;
    plan_grads(net);
    training_spans(net);
    size_t by_size = place_all(net, 1, by_at, &m, &outputs);
    size_t arena = place_all(net, 0, by_at, &m, &outputs); /* by their starts, on a tie */
    if (by_size < arena)
        arena = place_all(net, 1, by_at, &m, &outputs);
    size_t later = 0, g0 = cn_net_align(cn_mul(net->gbuf_floats[0], net->train_batch));
    size_t g1 = cn_net_align(cn_mul(net->gbuf_floats[1], net->train_batch));
    for (size_t i = 0; i < n; i++)
        later = cn_add(later, sp[2 * n + i].size);
    size_t apart = cn_add(cn_add(outputs, later), cn_add(g0, g1));
    if (!net->replays && apart <= arena) {
        arena = apart;
        for (size_t i = 0; i < n; i++) {
            if (sp[n + i].size)
                sp[n + i].at =
                    net->layers[i].grad_at == CN_GRAD_BUF1 ? cn_add(outputs, g0) : outputs;
            if (sp[2 * n + i].size) {
                apart -= sp[2 * n + i].size;
                sp[2 * n + i].at = apart;
            }
        }
    }
    net->gbuf_floats[0] = net->gbuf_floats[1] = 0; /* in the arena */
    /* The outputs under the place of a gradient or of an output made again,
     * and the layers in place over them, are spent: the outputs kept, in
     * the order of their offsets (by_at[0, outputs')), each span's first by
     * a binary search. */
    size_t kept = 0;
    for (size_t k = 0; k < m; k++) /* the kept ones to the front, in place order */
        if (kept_span(net, by_at[k]))
            by_at[kept++] = by_at[k];
    for (size_t g = n; g < 5 * n; g++) {
        if (!sp[g].size)
            continue;
        size_t lo = 0, hi = kept;
        while (lo < hi) { /* the first output that ends past the span's start */
            size_t mid = lo + (hi - lo) / 2;
            if (sp[by_at[mid]].at + sp[by_at[mid]].size <= sp[g].at)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (size_t k = lo; k < kept && sp[by_at[k]].at < sp[g].at + sp[g].size; k++)
            for (size_t j = by_at[k]; j < n && (j == by_at[k] || net->layers[j].shares_input); j++)
                net->layers[j].output_spent = 1;
    }
    for (size_t i = 0; i < 3 * n; i++)
        at[i] = i < n ? sp[owner_of(net, i)].at : sp[i].at;
    for (size_t i = 0; i < n; i++) {
        at[4 * n + i] = net->layers[i].replayed ? sp[back_span(net, owner_of(net, i))].at : 0;
        at[5 * n + i] = sp[4 * n + i].at;
    }
    return arena;
}

/* Marks owner o's chain made again (on) or kept. */
static void mark_replayed(cn_net *net, size_t o, int on)
{
    for (size_t k = o; k <= chain_end(net, o); k++)
        net->layers[k].replayed = on;
    net->replays = on ? net->replays + 1 : net->replays - 1;
}

/* The training net's arena (above): its size in net->arena_floats, the
 * places in net->train_at.  A lean net makes outputs again only where that
 * takes less memory, since making them again costs time: from every output
 * it may make again, each (the largest first, the last layers' first among
 * equals) is kept where the arena does not grow for it, and all are kept
 * where that takes no more.  (lean 2, for tests: every one it may.) */
static void place_training(cn_net *net)
{
    size_t n = net->n_layers;
    decide_replay(net, 0);
    size_t all_kept = lay_out(net), best = all_kept;
    decide_replay(net, net->lean);
    if (net->replays)
        best = lay_out(net);
    if (net->lean == 2) {
        net->arena_floats = best;
        return;
    }
    /* each tried once, in the order of (size, layer) downwards: the next is
     * the largest still made again below the one tried last */
    size_t last_size = SIZE_MAX, last = SIZE_MAX;
    while (net->replays && best < all_kept) {
        size_t o = NO_SPAN, most = 0;
        for (size_t i = n; i-- > 0;) {
            size_t size = cn_shape_size(net->layers[i].out);
            if (net->layers[i].replayed && !net->layers[i].shares_input && size > most &&
                (size < last_size || (size == last_size && i < last))) {
                o = i;
                most = size;
            }
        }
        if (o == NO_SPAN)
            break;
        last_size = most;
        last = o;
        mark_replayed(net, o, 0);
        size_t size = lay_out(net);
        if (size <= best)
            best = size;
        else
            mark_replayed(net, o, 1);
    }
    if (best >= all_kept)
        decide_replay(net, 0);
    net->arena_floats = lay_out(net);
}

/* Whether a training pass's backward writes gradients over outputs. */
static int spends_outputs(const cn_net *net)
{
    for (size_t i = 0; i < net->n_layers; i++)
        if (net->layers[i].output_spent)
            return 1;
    return 0;
}

/* Places the tensors in their blocks and sums the memory (saturating at
 * SIZE_MAX): the bytes of the blocks that allocate asks for, no more, no
 * less (cn_net_blocks lists them). */
static void plan_memory(cn_net *net, cn_net_plan *plan)
{
    *plan = (cn_net_plan){0, 0};
    net->ws_floats = 0;
    net->chunk = chunk_samples(net);
    net->chunk_floats = 0;
    if (net->arena_at)
        place_outputs(net, net->arena_at + net->n_layers);
    else {
        place_training(net);
    }
    for (size_t i = 0; i < net->n_layers; i++) {
        cn_layer *l = &net->layers[i];
        for (size_t t = 0; t < l->n_t; t++) {
            l->t[t].offset = net->n_params;
            net->n_params = cn_add(net->n_params, cn_net_align(l->t[t].count));
            plan->weights = cn_add(plan->weights, l->t[t].count);
        }
        for (size_t t = 0; t < l->n_bt; t++) {
            l->bt[t].offset = net->n_buffers;
            net->n_buffers = cn_add(net->n_buffers, cn_net_align(l->bt[t].count));
            plan->weights = cn_add(plan->weights, l->bt[t].count);
        }
        net->ws_floats = l->ws_floats > net->ws_floats ? l->ws_floats : net->ws_floats;
    }
    cn_net_blocks(net, &plan->bytes);
}

/* A description (a model file's too) can ask for more than any machine has:
 * that is refused before anything is allocated, naming what takes the most:
 * a layer, or the input and the buffers of the passes. */
static cn_status check_limit(const cn_net *net, const cn_net_plan *plan)
{
    const char *from;
    size_t limit = memory_limit(net->be, &from);
    if (plan->bytes <= limit)
        return CN_OK;
    const cn_spec *spec = net->spec;
    size_t shared = shared_floats(net), big = 0, most = 0;
    for (size_t i = 0; i < net->n_layers; i++) {
        size_t n = cn_add(layer_floats(net, &net->layers[i]), net->layers[i].ws_floats);
        big = n > most ? i : big;
        most = n > most ? n : most;
    }
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
    return cn_fail(
        CN_ERR_NOMEM,
        "%s needs %s for batches of %zu; the network needs %s in all, more than the "
        "%s %s",
        what, in_words(cn_mul(most > shared ? most : shared, sizeof(float)), mine, sizeof mine),
        net->max_batch, in_words(plan->bytes, need, sizeof need),
        in_words(limit, have, sizeof have), from);
}

/* ---------------------------------------------------------------- blocks */

/* The blocks of a network, in the order they are allocated (the layers'
 * outputs and backward's gradients in B_ARENA). */
enum {
    B_PARAMS,
    B_GRADS,
    B_BUFFERS,
    B_STATES,
    B_NORM,
    B_WS,
    B_INPUT,
    B_PIXELS,
    B_LABELS,
    B_ROW_LOSS,
    B_ROW_BEST,
    B_ROW_P,
    B_NORM_HOST,
    B_H_LOSS,
    B_H_BEST,
    B_H_LABELS,
    B_ARENA,          /* a forward-only net's outputs (none in other nets) */
    B_BUFFERS_BEFORE, /* the buffers before a training pass (nets that spend outputs) */
    B_COUNT
};

/* Bytes of count values of size bytes, as a block asks for them: an empty
 * block still takes one value (the backend returns a pointer for it). */
static size_t block_bytes(size_t count, size_t size) { return count ? cn_mul(count, size) : size; }

/* Floats of the layers' state areas, each aligned. */
static size_t state_floats(const cn_net *net)
{
    size_t n = 0;
    for (size_t i = 0; i < net->n_layers; i++)
        n = cn_add(n, cn_net_align(net->layers[i].state_floats));
    return n;
}

int cn_net_block_at(const cn_net *net, size_t b, cn_net_block *out)
{
    const cn_spec *spec = net->spec;
    size_t c = spec->input.c, in = cn_mul(net->max_batch, cn_shape_size(spec->input));
    size_t mb = net->max_batch;
    *out = (cn_net_block){0, CN_MEM_IO};
    switch (b) {
    case B_PARAMS: *out = (cn_net_block){block_bytes(net->n_params, 4), CN_MEM_WEIGHTS}; break;
    case B_GRADS:
        *out = (cn_net_block){block_bytes(cn_add(net->n_params, CN_GRAD_TAIL), 4), CN_MEM_GRADS};
        break;
    case B_BUFFERS: *out = (cn_net_block){block_bytes(net->n_buffers, 4), CN_MEM_WEIGHTS}; break;
    case B_STATES: *out = (cn_net_block){block_bytes(state_floats(net), 4), CN_MEM_ACT}; break;
    case B_NORM: out->bytes = block_bytes(2 * c, 4); break;
    case B_WS: /* a chunked pass's workers each have their own */
        *out = (cn_net_block){
            block_bytes(cn_mul(cn_net_align(net->ws_floats), net->chunk ? chunk_workers(net) : 1),
                        4),
            CN_MEM_SCRATCH};
        break;
    case B_INPUT: out->bytes = block_bytes(in, sizeof(float)); break;
    case B_PIXELS: out->bytes = block_bytes(in, 1); break;
    case B_LABELS: out->bytes = block_bytes(mb, sizeof(int32_t)); break;
    case B_ROW_LOSS: out->bytes = block_bytes(mb, sizeof(double)); break;
    case B_ROW_BEST: out->bytes = block_bytes(mb, sizeof(int32_t)); break;
    case B_ROW_P: out->bytes = block_bytes(mb, sizeof(float)); break;
    case B_NORM_HOST: *out = (cn_net_block){2 * c * sizeof(float), CN_MEM_HOST}; break;
    case B_H_LOSS: *out = (cn_net_block){mb * sizeof(double), CN_MEM_HOST}; break;
    case B_H_BEST:
    case B_H_LABELS: *out = (cn_net_block){mb * sizeof(int32_t), CN_MEM_HOST}; break;
    case B_BUFFERS_BEFORE:
        *out = (cn_net_block){spends_outputs(net) ? block_bytes(net->n_buffers, 4) : 0, CN_MEM_ACT};
        break;
    case B_ARENA: *out = (cn_net_block){block_bytes(net->arena_floats, 4), CN_MEM_ACT}; break;
    default: return 0;
    }
    return 1;
}

size_t cn_net_blocks(const cn_net *net, size_t *bytes)
{
    size_t n = B_COUNT;
    if (bytes) {
        *bytes = 0;
        cn_net_block one;
        for (size_t b = 0; b < n; b++)
            if (cn_net_block_at(net, b, &one) && one.what != CN_MEM_HOST)
                *bytes = cn_add(*bytes, one.bytes);
    }
    return n;
}

/* Memory for block b of net (as cn_net_block_at plans it), or NULL; a
 * block of no bytes (the replay's copy where nothing is spent) is none. */
static void *alloc_block(cn_net *net, size_t b)
{
    cn_net_block one;
    cn_net_block_at(net, b, &one);
    if (one.bytes == 0 || one.bytes == SIZE_MAX)
        return NULL;
    return one.what == CN_MEM_HOST ? malloc(one.bytes) : net->be->alloc(net->be, one.bytes);
}

/* Allocates every planned block (cn_net_block_at: the plan is the list) and
 * points the layers' views into them.  Returns 0 when memory ran out. */
static int allocate(cn_net *net)
{
    const cn_spec *spec = net->spec;
    size_t c = spec->input.c;
    void *p[B_COUNT];
    int ok = 1;
    for (size_t b = 0; b < B_COUNT; b++)
        ok &=
            (p[b] = alloc_block(net, b)) != NULL || (b == B_BUFFERS_BEFORE && !spends_outputs(net));
    net->params = p[B_PARAMS];
    net->grads = p[B_GRADS];
    net->buffers = p[B_BUFFERS];
    net->states = p[B_STATES];
    net->norm = p[B_NORM];
    net->ws = p[B_WS];
    net->input = p[B_INPUT];
    net->pixels = p[B_PIXELS];
    net->labels = p[B_LABELS];
    net->row_loss = p[B_ROW_LOSS];
    net->row_best = p[B_ROW_BEST];
    net->row_p = p[B_ROW_P];
    net->norm_host = p[B_NORM_HOST];
    net->h_loss = p[B_H_LOSS];
    net->h_best = p[B_H_BEST];
    net->h_labels = p[B_H_LABELS];
    net->arena = p[B_ARENA];
    net->buffers_before = p[B_BUFFERS_BEFORE];
    for (size_t i = 0, state = 0; ok && i < net->n_layers; i++) {
        cn_layer *l = &net->layers[i];
        net->act[i] = net->arena + (net->arena_at ? net->arena_at[i] : net->train_at[i]);
        if (l->read_later && net->train_at)
            net->dlater[i] = net->arena + net->train_at[2 * net->n_layers + i];
        for (size_t t = 0; t < l->n_t; t++) {
            l->p[t] = net->params + l->t[t].offset;
            l->g[t] = net->grads + l->t[t].offset;
        }
        for (size_t t = 0; t < l->n_bt; t++)
            l->b[t] = net->buffers + l->bt[t].offset;
        l->state = net->states + state;
        state += cn_net_align(l->state_floats);
    }
    for (size_t i = 0; ok && i < net->n_layers; i++) {
        cn_layer *l = &net->layers[i];
        for (size_t k = 0; k < l->n_extra; k++) {
            l->extra[k] = net->act[l->extra_from[k]];
            l->dextra[k] = net->dlater[l->extra_from[k]];
        }
    }
    if (ok) {
        for (size_t k = 0; k < c; k++) {
            net->norm_host[k] = spec->mean;
            net->norm_host[c + k] = spec->std;
        }
        net->be->upload(net->be, net->norm, net->norm_host, 2 * c * sizeof(float));
    }
    return ok;
}

/* The layers of spec on be, and their memory planned, in *out; with alloc,
 * the memory allocated too. */
/* A forward-only network's layers keep what they may between passes (a
 * convolution's filters as its kernels read them) in their state areas. */
static void decide_keep(cn_net *net)
{
    for (size_t i = 0; net->arena_at && i < net->n_layers; i++) {
        cn_layer *l = &net->layers[i];
        if (l->ops->keep_floats && !l->fused_away)
            l->state_floats = cn_add(l->state_floats, l->ops->keep_floats(l, net->be));
    }
}

static cn_status build(const cn_spec *spec, size_t max_batch, size_t train_batch, int lean,
                       cn_backend *be, int alloc, cn_net_plan *plan, cn_net **out)
{
    *out = NULL;
    if (!spec || max_batch == 0 || max_batch > CN_MAX_BATCH)
        return cn_fail(CN_ERR_ARG, "cn_net_create: the batch size must be 1..%d, got %zu",
                       CN_MAX_BATCH, max_batch);
    if (train_batch > max_batch)
        return cn_fail(CN_ERR_ARG,
                       "cn_net_build: the training batch must be 0 (forward only) to %zu, got %zu",
                       max_batch, train_batch);
    cn_net *net = calloc(1, sizeof *net);
    if (!net)
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    net->spec = (cn_spec *)spec;
    net->be = be;
    net->max_batch = max_batch;
    net->train_batch = train_batch;
    net->lean = train_batch ? lean : 0;
    size_t n_layers = 0;
    for (size_t i = 0; i < spec->n_sections; i++)
        n_layers += (size_t)cn_is_layer_section(&spec->sections[i]);
    net->layers = calloc(n_layers, sizeof *net->layers);
    net->act = calloc(n_layers, sizeof *net->act);
    net->dlater = calloc(n_layers, sizeof *net->dlater);
    if (train_batch == 0) /* the outputs' offsets, room for place_outputs, kept sizes */
        net->arena_at = calloc(3 * n_layers, sizeof *net->arena_at);
    else {                                                            /* place_training's */
        net->train_at = calloc(16 * n_layers, sizeof *net->train_at); /* 6n, 10n to place */
        net->spans = calloc(5 * n_layers, sizeof *net->spans);
    }
    cn_status st = CN_OK;
    if (!net->layers || !net->act || !net->dlater ||
        (train_batch == 0 ? !net->arena_at : !net->train_at || !net->spans))
        st = cn_fail(CN_ERR_NOMEM, "out of memory");
    /* A forward-only net's layers are set up for its forward passes. */
    if (!st && !(st = build_layers(spec, net, train_batch ? train_batch : max_batch))) {
        for (size_t i = 0; train_batch == 0 && i < net->n_layers; i++)
            if (net->layers[i].ops->train_state)
                net->layers[i].state_floats = 0;
        decide_in_place(net);
        decide_fusion(net);
        decide_keep(net);
        plan_memory(net, plan);
        if (alloc && !(st = check_limit(net, plan)) && !allocate(net))
            st = cn_fail(CN_ERR_NOMEM, "%s: out of memory for a batch of %zu", spec->source,
                         max_batch);
    }
    if (st) {
        cn_net_free(net);
        return st;
    }
    *out = net;
    return CN_OK;
}

cn_status cn_net_build(const cn_spec *spec, size_t max_batch, size_t train_batch, int lean,
                       cn_backend *be, const cn_device *device, cn_net **out)
{
    cn_net_plan plan;
    cn_status st = build(spec, max_batch, train_batch, lean, be, 1, &plan, out);
    if (!st)
        (*out)->device = *device;
    return st;
}

cn_status cn_net_plan_memory(const cn_spec *spec, size_t max_batch, size_t train_batch, int lean,
                             cn_backend *be, cn_net_plan *plan)
{
    cn_net *net;
    cn_status st = build(spec, max_batch, train_batch, lean, be, 0, plan, &net);
    cn_net_free(net);
    return st;
}

cn_status cn_net_layout(const cn_spec *spec, size_t max_batch, size_t train_batch, int lean,
                        cn_backend *be, cn_net **out)
{
    cn_net_plan plan;
    return build(spec, max_batch, train_batch, lean, be, 0, &plan, out);
}

cn_status cn_net_create(const cn_spec *spec, size_t max_batch, const cn_device *dev, cn_net **out)
{
    *out = NULL;
    cn_backend *be;
    cn_device device;
    cn_status st = cn_backend_create(dev, &device, &be);
    if (st)
        return st;
    if ((st = cn_net_build(spec, max_batch, max_batch, 0, be, &device, out))) {
        cn_backend_destroy(be);
        return st;
    }
    (*out)->owns_be = 1;
    return CN_OK;
}

/* ------------------------------------------------------------- weights */

/* Fills a tensor on the host a chunk at a time and uploads it: He
 * initialisation N(0, 2/fan_in), or its constant. */
static void init_tensor(const cn_backend *be, const cn_ltensor *t, float *p, cn_rng *rng)
{
    double std = t->fan_in ? sqrt(2.0 / (double)t->fan_in) : 0.0;
    float chunk[1024];
    for (size_t j0 = 0; j0 < t->count; j0 += 1024) {
        size_t n = t->count - j0 < 1024 ? t->count - j0 : 1024;
        for (size_t j = 0; j < n; j++)
            chunk[j] = t->fan_in ? (float)(std * cn_rng_normal(rng)) : t->init;
        be->upload(be, p + j0, chunk, n * sizeof(float));
    }
}

void cn_net_init(cn_net *net, cn_rng *rng)
{
    for (size_t i = 0; i < net->n_layers; i++) {
        cn_layer *l = &net->layers[i];
        for (size_t t = 0; t < l->n_t; t++)
            init_tensor(net->be, &l->t[t], l->p[t], rng);
        for (size_t t = 0; t < l->n_bt; t++)
            init_tensor(net->be, &l->bt[t], l->b[t], rng);
    }
    cn_net_weights_changed(net);
}

cn_shape cn_net_input_shape(const cn_net *net) { return net->spec->input; }
size_t cn_net_classes(const cn_net *net) { return net->spec->classes; }
size_t cn_net_max_batch(const cn_net *net) { return net->max_batch; }
cn_device cn_net_device(const cn_net *net) { return net->device; }
int cn_net_threads(const cn_net *net) { return net->device.threads; }
const char *cn_net_isa(const cn_net *net) { return net->be->kernels; }

size_t cn_net_device_peak(const cn_net *net)
{
    size_t peak = 0;
    if (net->be->memory)
        net->be->memory(net->be, NULL, NULL, &peak);
    return peak;
}
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
size_t cn_net_num_params(const cn_net *net) { return net->n_params; }

void cn_net_zero_grads(cn_net *net) { net->be->fill(net->be, net->grads, 0.0f, net->n_params); }

/* The block b of net and its size, or NULL for an unknown block. */
static float *block(const cn_net *net, cn_block b, size_t *size)
{
    *size = b == CN_BUFFERS ? net->n_buffers : net->n_params;
    return b == CN_PARAMS    ? net->params
           : b == CN_GRADS   ? net->grads
           : b == CN_BUFFERS ? net->buffers
                             : NULL;
}

static cn_status check_range(const float *p, size_t size, size_t offset, size_t count)
{
    if (!p || offset > size || count > size - offset)
        return cn_fail(CN_ERR_ARG, "floats %zu..%zu are outside the block of %zu", offset,
                       offset + count, size);
    return CN_OK;
}

cn_status cn_net_get(const cn_net *net, cn_block b, size_t offset, size_t count, float *dst)
{
    size_t size;
    const float *p = block(net, b, &size);
    cn_status st = check_range(p, size, offset, count);
    if (!st && count)
        net->be->download(net->be, dst, p + offset, count * sizeof(float));
    return st;
}

cn_status cn_net_set(cn_net *net, cn_block b, size_t offset, size_t count, const float *src)
{
    size_t size;
    float *p = block(net, b, &size);
    cn_status st = check_range(p, size, offset, count);
    if (!st && count) {
        net->be->upload(net->be, p + offset, src, count * sizeof(float));
        if (b != CN_GRADS)
            cn_net_weights_changed(net);
    }
    return st;
}

void cn_net_weights_changed(cn_net *net)
{
    for (size_t i = 0; i < net->n_layers; i++) {
        const cn_layer *l = &net->layers[i];
        /* a forward-only net's keep is the layer's whole state (decide_keep) */
        if (l->ops->keep_floats && l->state_floats && l->state && !net->train_batch)
            net->be->fill(net->be, l->state, 0.0f, 1);
    }
}

/* ----------------------------------------------------------------- input */

void cn_net_measure_input(cn_net *net, const cn_data *data)
{
    size_t c = net->spec->input.c, hw = net->spec->input.h * net->spec->input.w;
    float *norm = net->norm_host;
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
        norm[k] = (float)mean;
        norm[c + k] = (float)(var > 1e-12 ? sqrt(var) : 1.0);
    }
    net->be->upload(net->be, net->norm, norm, 2 * c * sizeof(float));
}

/* ---------------------------------------------------------------- passes */

static cn_ctx make_ctx(cn_net *net, int fuse, int train)
{
    return (cn_ctx){net->be,    net->ws,     net->labels,       fuse, train, net->seed,
                    net->first, net->smooth, net->target_delta, 0};
}

/* Per-layer times measure the layer's work, not its queueing. */
static double stamp(const cn_net *net, const double *times)
{
    if (!times)
        return 0.0;
    net->be->sync(net->be);
    return cn_now();
}

void cn_net_run_forward(cn_net *net, const float *x, size_t n, int train, double *times)
{
    cn_net_run_forward_from(net, 0, x, n, train, times);
}

/* ---------------------------------------------------------------- chunks
 *
 * A forward-only network built for more samples than a chunk (net->chunk,
 * chunk_samples) runs a larger pass chunk by chunk, each chunk through every
 * layer before the next: layer by layer over the whole batch, each layer's
 * outputs would go to memory (fashion-best's first layer: 75 MB at 1 000
 * images) and come back for the next, where a chunk's stay in the caches.
 * The first chunk goes through the layers on all the backend's threads
 * (what a layer keeps between passes is made there, once); the rest are cut
 * among the backend's workers, each taking a run of chunks through the
 * layers by itself, in its own area of the outputs and its own scratch, so
 * that no two cores write the same memory.  Every sample gives the bits
 * that one pass over the whole batch gives: the chunks are whole 16s but for
 * the batch's last, and no kernel sums a sample differently in a larger
 * batch (a fully connected layer's few-rows path, up to 8, is never taken
 * for more than 16). */

/* Chunk c of the k that [0, n) is cut into: whole 16s, at most net->chunk
 * (k at least ceil(n / chunk)), the last one ending at n. */
static void chunk_range(size_t n, size_t k, size_t c, size_t *s0, size_t *s1)
{
    size_t units = (n + 15) / 16;
    *s0 = units * c / k * 16;
    *s1 = units * (c + 1) / k * 16;
    *s1 = *s1 < n ? *s1 : n;
}

/* Where worker w puts layer i's output for the chunk from sample s0 (i ==
 * SIZE_MAX: where it finds the network's input x). */
static float *chunk_out(const cn_net *net, size_t i, size_t w, size_t s0, const float *x)
{
    if (i == SIZE_MAX)
        return (float *)x + s0 * cn_shape_size(net->spec->input);
    size_t kept = net->arena_at[2 * net->n_layers + i];
    return kept ? net->act[i] + s0 * kept : net->act[i] + w * net->chunk_floats;
}

typedef struct chunk_job {
    cn_net *net;
    const float *x;
    size_t n, k; /* the batch and its chunks */
    double *times;
    atomic_size_t next; /* the next chunk a worker takes */
} chunk_job;

/* Chunks [c0, c1) through every layer on backend be, worker w's areas. */
static void run_chunk_range(const chunk_job *j, const cn_backend *be, size_t w, size_t c0,
                            size_t c1)
{
    cn_net *net = j->net;
    cn_ctx ctx = make_ctx(net, 1, 0);
    ctx.be = be;
    ctx.ws = net->ws + w * cn_net_align(net->ws_floats);
    ctx.area = w * net->chunk_floats; /* the extra inputs: never kept (mark_kept) */
    for (size_t c = c0; c < c1; c++) {
        size_t s0, s1;
        chunk_range(j->n, j->k, c, &s0, &s1);
        for (size_t i = 0; i < net->n_layers; i++) {
            cn_layer *l = &net->layers[i];
            double t0 = stamp(net, j->times);
            if (!l->fused_away)
                l->ops->forward(l, &ctx, chunk_out(net, i - 1, w, s0, j->x),
                                chunk_out(net, i, w, s0, j->x), s1 - s0);
            if (j->times)
                j->times[i] += stamp(net, j->times) - t0;
        }
    }
}

/* Worker w's chunks: each the next not yet taken, so that a worker on a
 * slower core, or one the operating system takes off its core, takes fewer
 * (fixed ranges made the pass wait for it); every chunk gives the same bits
 * on any worker. */
static void chunk_worker(void *user, size_t w, const cn_backend *one)
{
    chunk_job *j = user;
    for (size_t c; (c = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed)) < j->k;)
        run_chunk_range(j, one, w, c, c + 1);
}

/* How many chunks a pass of n samples is cut into: as few as net->chunk
 * allows, or, where the chunks after the first would not share evenly
 * among the workers (LeNet's 1 000 images: 16 chunks, 7 and 8 after the
 * first), the next count that does, if its chunks still hold two 16s. */
static size_t chunk_count(const cn_net *net, size_t n)
{
    size_t k = (n + net->chunk - 1) / net->chunk, w = chunk_workers(net);
    size_t even = 1 + (k - 1 + w - 1) / w * w, units = (n + 15) / 16;
    return units / even >= 2 ? even : k;
}

static void run_chunks(cn_net *net, const float *x, size_t n, double *times)
{
    chunk_job j = {net, x, n, chunk_count(net, n), times, 0};
    atomic_init(&j.next, 1); /* the first chunk on all the threads, below */
    if (times) {             /* per-layer times: every chunk on all the threads, in turn */
        for (size_t i = 0; i < net->n_layers; i++)
            times[i] = 0.0;
        run_chunk_range(&j, net->be, 0, 0, j.k);
        return;
    }
    run_chunk_range(&j, net->be, 0, 0, 1);
    net->be->each_worker(net->be, chunk_worker, &j);
}

/* ------------------------------------------------------ small passes
 *
 * A pass over fewer samples than the backend has workers (one image on 2
 * threads) splits each layer's work among the threads (a convolution's
 * filters, a fully connected layer's rows), the other workers waiting for
 * their shares all through the pass (be->team: no OpenMP region a layer),
 * or runs on the calling thread alone (be->alone).  Which is faster depends
 * on how dear it is for one core to read what another has just written, and
 * on a shared machine that changes from minute to minute: fashion-best's one
 * image on 2 threads of an AMD EPYC (Zen 5) ran 1.00-1.15x faster alone in
 * one quarter hour, session 46 saw 0.81x in another.  So the network
 * measures: every SMALL_EPOCH such passes begin with SMALL_TRIES passes each
 * way, a run of one way then one of the other (a way's first passes move the
 * data between the cores' caches: the first SMALL_WARM of a run do not
 * count), and the way whose median pass was quicker runs the rest.  Both
 * give the same bits (every kernel sums an output as one thread does), so
 * the choice changes only the time.
 *
 * A median of a dozen passes does not see a busy machine's worst: beside
 * another process that keeps a core busy, the operating system takes a
 * worker off its core for milliseconds at a time, and every pass that needs
 * its share waits (fashion-best's one image on 2 threads beside `stress -c
 * 1`: 3 880 images/s and a 99th percentile of 4.1 ms, against 10 660 and
 * 0.12 ms alone).  So while the threads' way runs, the mean of every
 * CN_SMALL_WINDOW of its passes is checked against the median pass alone:
 * after SMALL_STRIKES windows in a row past SMALL_SLOWER times that, the
 * rest of the epoch runs alone, and so do the next epochs, without trials:
 * 1 after the first such epoch, then 2, 4, up to SMALL_BACKOFF, until an
 * epoch on all threads runs to its end.  (One window is not enough: a quiet
 * machine stalls a pass for a millisecond or more about once in 150
 * windows, beside `stress -c 1` nearly every window was slow.  And trials
 * every epoch were too many: LeNet's epoch is a tenth of a second, and each
 * went back to the threads for two windows of stalls.) */
#define SMALL_EPOCH   4096
#define SMALL_WARM    4
#define SMALL_TRIES   (SMALL_WARM + CN_SMALL_TIMED)
#define SMALL_SLOWER  1.25
#define SMALL_STRIKES 2
#define SMALL_BACKOFF 16

/* Whether the next small pass runs alone, and whether it is a counted
 * trial (*trial: 0, or 1 + the way tried). */
static int small_alone(cn_net *net, int *trial)
{
    unsigned k = net->small.pass;
    int alone = net->small.alone;
    *trial = 0;
    if (k < 2 * SMALL_TRIES) {
        alone = k >= SMALL_TRIES;
        *trial = k % SMALL_TRIES >= SMALL_WARM ? 1 + alone : 0;
    }
    return alone;
}

static int by_time(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A pass on all threads after the trials, seconds long, into its window;
 * at the window's end, SMALL_STRIKES slow ones in a row send the rest of
 * the epoch alone, and the next backoff epochs (doubled each time). */
static void small_window(cn_net *net, double seconds)
{
    net->small.window += seconds;
    if (++net->small.in_window < CN_SMALL_WINDOW)
        return;
    double alone = net->small.times[1][CN_SMALL_TIMED / 2];
    int slow = net->small.window > SMALL_SLOWER * alone * CN_SMALL_WINDOW;
    net->small.slow = slow ? net->small.slow + 1 : 0;
    net->small.window = 0.0, net->small.in_window = 0;
    if (net->small.slow < SMALL_STRIKES)
        return;
    unsigned b = net->small.backoff;
    net->small.alone = 1;
    net->small.backoff = b == 0 ? 1 : 2 * b < SMALL_BACKOFF ? 2 * b : SMALL_BACKOFF;
    net->small.rest = net->small.backoff;
}

/* A small pass's time: a trial's is kept for its way, and after the trials
 * the way with the quicker median is taken; a pass on all threads after
 * them counts towards its window (small_window). */
static void small_done(cn_net *net, int trial, double seconds)
{
    unsigned k = net->small.pass, counted = CN_SMALL_TIMED;
    if (trial)
        net->small.times[trial - 1][k % SMALL_TRIES - SMALL_WARM] = seconds;
    else if (k >= 2 * SMALL_TRIES && !net->small.alone)
        small_window(net, seconds);
    if (++net->small.pass == 2 * SMALL_TRIES) {
        for (int w = 0; w < 2; w++)
            qsort(net->small.times[w], counted, sizeof(double), by_time);
        net->small.alone = net->small.times[1][counted / 2] < net->small.times[0][counted / 2];
        net->small.window = 0.0, net->small.in_window = 0, net->small.slow = 0;
    }
    if (net->small.pass == SMALL_EPOCH) {
        net->small.pass = 0;
        if (!net->small.alone)
            net->small.backoff = 0;     /* an epoch on all threads to its end */
        else if (net->small.rest > 0) { /* alone again, without trials */
            net->small.rest--;
            net->small.pass = 2 * SMALL_TRIES;
        }
    }
}

/* Layers from..n-1 over the whole pass, each on its outputs' places. */
static void run_layers(cn_net *net, const cn_ctx *ctx, size_t from, const float *x, size_t n,
                       double *times)
{
    /* what the pass updates (running statistics), kept for a replay of it
     * (cn_net_trace_backward) once backward has written over outputs */
    if (ctx->train && from == 0 && net->buffers_before && net->n_buffers)
        net->be->copy(net->be, net->buffers_before, net->buffers, net->n_buffers * sizeof(float));
    for (size_t i = from; i < net->n_layers; i++) {
        cn_layer *l = &net->layers[i];
        double t0 = stamp(net, times);
        if (!l->fused_away)
            l->ops->forward(l, ctx, i ? net->act[i - 1] : x, net->act[i], n);
        if (times)
            times[i] = stamp(net, times) - t0;
    }
}

/* A small pass split among the threads: its layers on a team's lead
 * (backend.h, team). */
typedef struct team_job {
    cn_net *net;
    cn_ctx ctx;
    const float *x;
    size_t n;
} team_job;

static void team_layers(void *user, const cn_backend *lead)
{
    team_job *j = user;
    j->ctx.be = lead;
    run_layers(j->net, &j->ctx, 0, j->x, j->n, NULL);
}

void cn_net_run_forward_from(cn_net *net, size_t from, const float *x, size_t n, int train,
                             double *times)
{
    cn_ctx ctx = make_ctx(net, 1, train);
    /* Chunks (run_chunks) and small passes (small_pass) are for evaluation
     * passes from the first layer, and not while the backend is asked to be
     * exact (the gradient checks set be->exact, which the workers' one-thread
     * copies of the backend do not see). */
    int whole = !train && from == 0 && !net->be->exact;
    int trial = 0, small = whole && !times && net->be->alone && n < net->be->workers;
    int alone = small && small_alone(net, &trial);
    double began = small ? cn_now() : 0.0;
    if (alone)
        ctx.be = net->be->alone;
    if (whole && net->chunk && n > net->chunk) {
        run_chunks(net, x, n, times);
    } else if (small && !alone && net->be->team) {
        team_job j = {net, ctx, x, n};
        net->be->team(net->be, team_layers, &j);
    } else {
        run_layers(net, &ctx, from, x, n, times);
    }
    if (small)
        small_done(net, trial, cn_now() - began);
    net->n_last = n;
    net->x_last = x;
    net->train_last = train;
    net->spent = 0;
}

/* Where layer i's backward pass writes its input's gradient in a training
 * pass (plan_grads), dy being its output's. */
static float *grad_target(cn_net *net, size_t i, const float *dy)
{
    switch (net->layers[i].grad_at) {
    case CN_GRAD_ON_DY: return (float *)dy;
    case CN_GRAD_ON_X: return net->act[i - 1];
    default: return net->arena + net->train_at[net->n_layers + i];
    }
}

/* Owner o's output of the last forward pass made again into y (backend
 * memory): the owner as a training pass ran it (its replay, from the
 * batch's statistics) or an evaluation pass (its forward pass again, which
 * changes nothing in evaluation), then the layers in place over it that it
 * does not apply itself, each its forward pass again in place.  Its input
 * is kept (may_replay); an extra input made again (extra_made_again) is
 * made first into tmp. */
static void remake(cn_net *net, size_t o, float *y, float *tmp)
{
    size_t n = net->n_last, s = extra_made_again(net, o);
    cn_ctx ctx = make_ctx(net, 1, net->train_last);
    if (s != NO_SPAN)
        remake(net, s, tmp, NULL);
    for (size_t k = o; k <= chain_end(net, o); k++) {
        cn_layer *l = &net->layers[k];
        if (k == o && net->train_last)
            l->ops->replay(l, &ctx, o ? net->act[o - 1] : net->x_last, y, n);
        else if (k == o)
            l->ops->forward(l, &ctx, o ? net->act[o - 1] : net->x_last, y, n);
        else if (!l->fused_away) {
            for (size_t x = 0; x < l->n_extra; x++)
                if (owner_of(net, l->extra_from[x]) == s)
                    l->extra[x] = tmp;
            l->ops->forward(l, &ctx, y, y, n);
            for (size_t x = 0; x < l->n_extra; x++)
                l->extra[x] = net->act[l->extra_from[x]];
        }
    }
}

/* The layers over owner o's buffer pointed at its place in backward (until
 * forward_places). */
static void point_back(cn_net *net, size_t o)
{
    size_t nl = net->n_layers;
    for (size_t k = o; k <= chain_end(net, o); k++)
        net->act[k] = net->arena + net->train_at[4 * nl + k];
}

/* Owner o's output made again at its place in backward. */
static void remake_in_place(cn_net *net, size_t o)
{
    point_back(net, o);
    remake(net, o, net->act[o], net->arena + net->train_at[5 * net->n_layers + o]);
}

/* Before layer i's step of a pass down the layers: the output below it made
 * again where the net does not keep it (place_training), unless only layer
 * i reads it there and reads its switches instead (a max pooling's, in a
 * training pass: all of the output's place then holds is the gradient it
 * writes over it). */
static void remake_below(cn_net *net, size_t i, int training)
{
    if (i == 0 || net->layers[i].shares_input || !net->layers[i - 1].replayed)
        return;
    size_t o = owner_of(net, i - 1);
    if (training && net->layers[i].switched && lowest_reader(net, o) == i)
        point_back(net, o);
    else
        remake_in_place(net, o);
}

/* The outputs made again pointed back at their places in forward. */
static void forward_places(cn_net *net)
{
    for (size_t i = 0; net->replays && i < net->n_layers; i++)
        net->act[i] = net->arena + net->train_at[i];
}

const float *cn_net_output_view(cn_net *net, size_t i, float **tmp)
{
    *tmp = NULL;
    size_t o = owner_of(net, i);
    if (!net->layers[i].replayed)
        return net->act[i];
    size_t s = extra_made_again(net, o), n = net->n_last ? net->n_last : 1;
    size_t own = cn_net_align(cn_mul(n, cn_shape_size(net->layers[i].out)));
    size_t extra = s == NO_SPAN ? 0 : cn_net_align(cn_mul(n, cn_shape_size(net->layers[s].out)));
    if (!(*tmp = net->be->alloc(net->be, cn_mul(cn_add(own, extra), sizeof(float)))))
        return NULL;
    remake(net, o, *tmp, *tmp + own);
    return *tmp;
}

const float *cn_net_run_backward(cn_net *net, size_t n, int want_dx, double *times,
                                 void (*after)(void *user, size_t layer), void *user)
{
    cn_ctx ctx = make_ctx(net, 1, 1);
    const size_t *last = net->train_at ? net->train_at + 3 * net->n_layers : NULL;
    net->spent = spends_outputs(net);
    const float *dy = NULL; /* the gradient of the current layer's output */
    float *dx = NULL;
    for (size_t i = net->n_layers; i-- > 0;) {
        cn_layer *l = &net->layers[i];
        double t0 = stamp(net, times);
        remake_below(net, i, 1);
        /* The layers that later layers read start with no gradient from
         * them, set when the last of those (the first here) comes: their
         * places in the arena are someone else's until then. */
        for (size_t k = 0; last && k < l->n_extra; k++)
            if (last[l->extra_from[k]] == i)
                net->be->fill(net->be, net->dlater[l->extra_from[k]], 0.0f,
                              n * cn_shape_size(net->layers[l->extra_from[k]].out));
        /* A fused-away layer's output is the layer below's: its gradient too. */
        if (!l->fused_away) {
            float *d = i || want_dx ? grad_target(net, i, dy) : NULL;
            /* an activation whose gradient the layer above applied: left out */
            cn_ctx own = ctx;
            own.fuse = !l->act_applied;
            if (!left_out(l))
                l->ops->backward(l, &own, i ? net->act[i - 1] : net->x_last, net->act[i], dy, d, n);
            dy = d;
            dx = i ? NULL : d;
            net->d_last = d;
            /* The layer below's output is read later too: its gradient
             * from there joins. */
            if (i > 0 && net->layers[i - 1].read_later)
                net->be->add(net->be, d, net->dlater[i - 1], d, n * cn_shape_size(l->in));
        }
        if (times)
            times[i] = stamp(net, times) - t0;
        if (after)
            after(user, i);
    }
    forward_places(net);
    return dx;
}

size_t cn_net_rerun_start(const cn_net *net, size_t i)
{
    /* Outputs are separate buffers or share their input's (shares_input):
     * equal pointers are the only overlap; outputs made again in backward
     * (replayed) lie where later ones go. */
    if (net->replays)
        return 0;
    size_t s = i;
    for (size_t j = s; s > 0 && j < net->n_layers;) {
        if (net->act[j] == net->act[s - 1]) /* layer j writes over layer s's input */
            j = --s;
        else
            j++;
    }
    return s;
}

cn_status cn_net_check_batch(const cn_net *net, size_t n, int train)
{
    if (n == 0 || n > net->max_batch)
        return cn_fail(CN_ERR_ARG, "a batch of %zu samples; this network was built for 1..%zu", n,
                       net->max_batch);
    if (train && !net->train_batch)
        return cn_fail(CN_ERR_ARG, "a training pass; this network was built for evaluation "
                                   "only (forward passes, no gradients)");
    if (train && n > net->train_batch)
        return cn_fail(CN_ERR_ARG,
                       "a training pass over %zu samples; this network keeps "
                       "gradients for batches of up to %zu",
                       n, net->train_batch);
    return CN_OK;
}

cn_status cn_net_forward(cn_net *net, const float *x, size_t n, int train)
{
    return cn_net_profile_forward(net, x, n, train, NULL);
}

cn_status cn_net_profile_forward(cn_net *net, const float *x, size_t n, int train, double *times)
{
    cn_status st = cn_net_check_batch(net, n, train);
    if (st)
        return st;
    cn_net_run_forward(net, cn_net_put_input(net, x, n), n, train, times);
    return CN_OK;
}

cn_status cn_net_forward_pixels(cn_net *net, const uint8_t *pixels, size_t n, int train)
{
    cn_status st = cn_net_check_batch(net, n, train);
    if (st)
        return st;
    cn_net_put_pixels(net, pixels, n);
    cn_net_run_forward(net, net->input, n, train, NULL);
    return CN_OK;
}

/* Whether the last forward pass left outputs to read. */
static cn_status check_forward(const cn_net *net)
{
    if (!net->x_last)
        return cn_fail(CN_ERR_ARG, "no forward pass to read the outputs of");
    return CN_OK;
}

/* "conv2, conv4": the layers whose outputs the last backward pass wrote
 * gradients over, into buf. */
static const char *spent_names(const cn_net *net, char *buf, size_t size)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < net->n_layers && at < size; i++)
        if (net->layers[i].output_spent) {
            int k = snprintf(buf + at, size - at, "%s%s", at ? ", " : "", net->layers[i].name);
            at += k > 0 ? (size_t)k : 0;
        }
    return buf;
}

cn_status cn_net_check_output(const cn_net *net, size_t i)
{
    cn_status st = check_forward(net);
    if (st)
        return st;
    if (i >= net->n_layers)
        return cn_fail(CN_ERR_ARG, "layer %zu does not exist (the net has %zu)", i, net->n_layers);
    /* an output not kept is made again from its input: while that is there */
    size_t o = owner_of(net, i);
    if (net->spent && net->layers[i].replayed && o > 0 && net->layers[o - 1].output_spent)
        return cn_fail(CN_ERR_ARG,
                       "layer %s's output: training does not keep it but makes it again from "
                       "layer %s's, and the backward pass after the last forward pass wrote "
                       "gradients over that; run the forward pass again to read it",
                       net->layers[i].name, net->layers[o - 1].name);
    if (net->spent && net->layers[i].output_spent)
        return cn_fail(CN_ERR_ARG,
                       "layer %s's output: the backward pass after the last forward pass wrote "
                       "gradients over it (training keeps an output only while backward reads "
                       "it); run the forward pass again to read it",
                       net->layers[i].name);
    return CN_OK;
}

cn_status cn_net_get_output(const cn_net *net, float *dst)
{
    return cn_net_get_layer_output(net, net->n_layers - 1, 0, net->n_last, dst);
}

cn_status cn_net_get_layer_output(const cn_net *net, size_t i, size_t first, size_t count,
                                  float *dst)
{
    cn_status st = cn_net_check_output(net, i);
    if (st)
        return st;
    if (net->arena_at && i + 2 < net->n_layers)
        return cn_fail(CN_ERR_ARG,
                       "layer %s's output: this network was built for evaluation only and "
                       "keeps the last two layers' outputs (cn_model_reserve keeps all)",
                       net->layers[i].name);
    if (first > net->n_last || count > net->n_last - first)
        return cn_fail(CN_ERR_ARG, "samples %zu..%zu of a forward pass over %zu", first,
                       first + count, net->n_last);
    size_t per = cn_shape_size(net->layers[i].out);
    float *tmp;
    const float *y = cn_net_output_view((cn_net *)net, i, &tmp);
    if (!y)
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    net->be->download(net->be, dst, y + first * per, count * per * sizeof(float));
    net->be->free(net->be, tmp);
    return CN_OK;
}

const float *cn_net_put_input(cn_net *net, const float *x, size_t n)
{
    if (net->be->host_memory)
        return x; /* the CPU reads the caller's floats where they are */
    net->be->upload(net->be, net->input, x, n * cn_shape_size(net->spec->input) * sizeof *x);
    return net->input;
}

void cn_net_gather_pixels(cn_net *net, const uint8_t *data, const uint32_t *idx, size_t n,
                          const cn_aug *aug)
{
    net->be->gather_pixels(net->be, data, idx, n, net->spec->input, *aug, net->seed, net->first,
                           net->norm, net->pixels, net->input);
}

void cn_net_put_pixels(cn_net *net, const uint8_t *pixels, size_t n)
{
    cn_shape in = net->spec->input;
    net->be->upload(net->be, net->pixels, pixels, n * cn_shape_size(in));
    net->be->input_from_pixels(net->be, net->pixels, n, in.c, in.h * in.w, net->norm, net->input);
}

/* Labels for the last forward pass. */
static cn_status check_pass(const cn_net *net, size_t n)
{
    if (!net->x_last || n != net->n_last)
        return cn_fail(CN_ERR_ARG, "%zu labels for a forward pass of %zu samples", n, net->n_last);
    return CN_OK;
}

cn_status cn_net_put_labels(cn_net *net, const int32_t *labels, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (labels[i] < 0 || (size_t)labels[i] >= net->spec->classes)
            return cn_fail(CN_ERR_ARG, "label %d of sample %zu is outside 0..%zu", (int)labels[i],
                           i, net->spec->classes - 1);
    memcpy(net->h_labels, labels, n * sizeof *labels);
    net->be->upload(net->be, net->labels, labels, n * sizeof *labels);
    return CN_OK;
}

const float *cn_net_logits(const cn_net *net)
{
    return net->n_layers > 1 ? net->act[net->n_layers - 2] : net->x_last;
}

/* The per-sample losses and, unless NULL, best classes and their
 * probabilities of the last forward pass on its n samples, into the host
 * arrays net->h_loss, best and p; returns the losses' sum. */
static double row_results(cn_net *net, size_t n, int32_t *best, float *p)
{
    const cn_backend *be = net->be;
    be->nll_rows(be, cn_net_logits(net), net->act[net->n_layers - 1], net->labels, n,
                 net->spec->classes, net->smooth, net->row_loss, best ? net->row_best : NULL,
                 p ? net->row_p : NULL);
    be->download(be, net->h_loss, net->row_loss, n * sizeof *net->h_loss);
    if (best)
        be->download(be, best, net->row_best, n * sizeof *best);
    if (p)
        be->download(be, p, net->row_p, n * sizeof *p);
    double total = 0.0;
    for (size_t s = 0; s < n; s++)
        total += net->h_loss[s];
    return total;
}

double cn_net_loss_sum(cn_net *net, size_t n, size_t *correct)
{
    double total = row_results(net, n, correct ? net->h_best : NULL, NULL);
    if (correct) {
        *correct = 0;
        for (size_t s = 0; s < n; s++)
            *correct += net->h_best[s] == net->h_labels[s];
    }
    return total;
}

cn_status cn_net_loss(cn_net *net, const int32_t *labels, size_t n, double *loss)
{
    cn_status st = check_pass(net, n);
    if (!st)
        st = cn_net_put_labels(net, labels, n);
    if (!st)
        *loss = cn_net_loss_sum(net, n, NULL) / (double)n;
    return st;
}

cn_status cn_net_backward(cn_net *net, const int32_t *labels, size_t n, float *dx)
{
    cn_status st = check_pass(net, n);
    if (!st)
        st = cn_net_put_labels(net, labels, n);
    if (st)
        return st;
    if (!net->train_last)
        return cn_fail(CN_ERR_ARG, "a backward pass needs a training forward pass before it "
                                   "(cn_net_forward with train = 1)");
    char names[128];
    if (net->spent)
        return cn_fail(CN_ERR_ARG,
                       "a second backward pass needs a training forward pass before it: the "
                       "first wrote gradients over outputs that backward reads (%s's)",
                       spent_names(net, names, sizeof names));
    const float *d = cn_net_run_backward(net, n, dx != NULL, NULL, NULL, NULL);
    if (dx)
        net->be->download(net->be, dx, d, n * cn_shape_size(net->spec->input) * sizeof *dx);
    return CN_OK;
}

/* Checks for the passes that explain an evaluation pass over n samples. */
static cn_status check_explained(const cn_net *net, size_t n, const char *what)
{
    if (!net->x_last || n != net->n_last || net->train_last)
        return cn_fail(CN_ERR_ARG,
                       "%s needs an evaluation pass over its %zu samples "
                       "(cn_net_forward with train = 0) just before it",
                       what, n);
    if (!net->train_batch)
        return cn_fail(CN_ERR_ARG,
                       "%s: this network was built for evaluation only (no gradients; "
                       "cn_model_reserve keeps them)",
                       what);
    if (n > net->train_batch)
        return cn_fail(CN_ERR_ARG,
                       "%s over %zu samples; this network keeps "
                       "gradients for batches of up to %zu",
                       what, n, net->train_batch);
    return CN_OK;
}

/* The layer whose output the caller sees as layer's: the last of the
 * in-place layers writing over its buffer (the softmax excluded). */
static size_t seen_at(const cn_net *net, size_t layer)
{
    size_t at = layer;
    while (at + 1 < net->n_layers - 1 && net->act[at + 1] == net->act[layer])
        at++;
    return at;
}

/* Points dlater[i] of the layers before from that later layers read (and
 * those layers' dextra) at base, one after the other, n samples each; base
 * NULL: back at their places in the arena. */
static void point_dlater(cn_net *net, size_t from, float *base, size_t n)
{
    size_t nl = net->n_layers;
    for (size_t i = 0; i < from; i++) {
        if (!net->layers[i].read_later)
            continue;
        net->dlater[i] = base ? base : net->arena + net->train_at[2 * nl + i];
        if (base)
            base += cn_net_align(cn_mul(n, cn_shape_size(net->layers[i].out)));
    }
    for (size_t x = 0; x < nl; x++)
        for (size_t k = 0; k < net->layers[x].n_extra; k++)
            net->layers[x].dextra[k] = net->dlater[net->layers[x].extra_from[k]];
}

/* Carries signal (host memory), at layer from's output, back to the input
 * after an evaluation pass over n samples (cn_net_project's rules), handing
 * it to dlayer at layer at's output on the way (when dlayer is not NULL)
 * and to dx at the end (when dx is not NULL).  Every layer runs its own
 * backward pass, unfused (a fused activation is its own step here), in
 * evaluation mode, from one buffer of its own into the other (the arena's
 * gradients lie over the outputs that these passes read). */
static cn_status carry_back(cn_net *net, const float *signal, size_t from, size_t n,
                            cn_backrule rule, size_t at, float *dlayer, float *dx)
{
    cn_backend *be = net->be;
    size_t most = max_io(net, from + 1), later = 0;
    for (size_t i = 0; i < from; i++)
        if (net->layers[i].read_later)
            later = cn_add(later, cn_net_align(cn_mul(n, cn_shape_size(net->layers[i].out))));
    float *buf[2], *dlater = NULL;
    for (int k = 0; k < 2; k++)
        buf[k] = be->alloc(be, cn_mul(cn_mul(most, n), sizeof(float)));
    if (!buf[0] || !buf[1]) {
        be->free(be, buf[0]);
        be->free(be, buf[1]);
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    }
    /* The gradients of outputs read later, in a block of their own: their
     * places in the arena hold outputs that the layers' backward reads. */
    if (later && !(dlater = be->alloc(be, cn_mul(later, sizeof(float))))) {
        be->free(be, buf[0]);
        be->free(be, buf[1]);
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    }
    point_dlater(net, from, dlater, n);
    cn_ctx ctx = make_ctx(net, 0, 0);
    for (size_t i = 0; i < from; i++)
        if (net->layers[i].read_later)
            be->fill(be, net->dlater[i], 0.0f, n * cn_shape_size(net->layers[i].out));
    be->upload(be, buf[0], signal, n * cn_shape_size(net->layers[from].out) * sizeof *signal);
    const float *dy = buf[0];       /* the signal at layer i's output */
    if (net->layers[from].replayed) /* outputs not kept: made again on the way */
        remake_in_place(net, owner_of(net, from));
    for (size_t i = from + 1; i-- > 0;) {
        remake_below(net, i, 0);
        if (dlayer && i == at) {
            be->download(be, dlayer, dy, n * cn_shape_size(net->layers[i].out) * sizeof *dlayer);
            if (!dx)
                break;
        }
        cn_layer *l = &net->layers[i];
        float *d = buf[dy == buf[0]];
        size_t count = n * cn_shape_size(l->in);
        int rectifier = l->ops->act == CN_ACT_RELU || l->ops->act == CN_ACT_LEAKY;
        if (rule == CN_BACK_DECONV && rectifier) {
            be->act_fwd(be, CN_ACT_RELU, 0.0f, dy, d, count);
        } else {
            l->ops->backward(l, &ctx, i ? net->act[i - 1] : net->x_last, net->act[i], dy,
                             i || dx ? d : NULL, n);
            if (rule == CN_BACK_GUIDED && rectifier)
                be->act_fwd(be, CN_ACT_RELU, 0.0f, d, d, count);
        }
        dy = d;
        if (i > 0 && net->layers[i - 1].read_later)
            be->add(be, d, net->dlater[i - 1], d, count);
        if (i == 0 && dx)
            be->download(be, dx, dy, n * cn_shape_size(net->spec->input) * sizeof *dx);
    }
    forward_places(net);
    point_dlater(net, from, NULL, n);
    be->free(be, dlater);
    be->free(be, buf[0]);
    be->free(be, buf[1]);
    return CN_OK;
}

cn_status cn_net_class_gradient(cn_net *net, const int32_t *classes, size_t n, size_t layer,
                                float *dlayer, float *dx)
{
    size_t nl = net->n_layers, k = net->spec->classes;
    cn_status st = check_explained(net, n, "a class gradient");
    if (st)
        return st;
    if (nl < 2 || !net->layers[nl - 1].ops->is_loss)
        return cn_fail(CN_ERR_ARG, "a class gradient needs a network that ends in softmax");
    if (dlayer && layer >= nl - 1)
        return cn_fail(CN_ERR_ARG, "layer %zu: a class gradient reaches layers 0..%zu", layer,
                       nl - 2);
    for (size_t s = 0; s < n; s++)
        if (classes[s] < 0 || (size_t)classes[s] >= k)
            return cn_fail(CN_ERR_ARG, "class %d of sample %zu is outside 0..%zu", (int)classes[s],
                           s, k - 1);
    /* d logit_c / d logits: one-hot rows, (n, k), into a gradient buffer. */
    float *onehot = calloc(n * k, sizeof *onehot);
    if (!onehot)
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    for (size_t s = 0; s < n; s++)
        onehot[s * k + (size_t)classes[s]] = 1.0f;
    st = carry_back(net, onehot, nl - 2, n, CN_BACK_GRADIENT, dlayer ? seen_at(net, layer) : nl,
                    dlayer, dx);
    free(onehot);
    return st;
}

cn_status cn_net_project(cn_net *net, size_t layer, const float *signal, size_t n, cn_backrule rule,
                         float *dx)
{
    cn_status st = check_explained(net, n, "a projection");
    if (st)
        return st;
    if (layer + 1 >= net->n_layers || net->layers[layer].ops->is_loss)
        return cn_fail(CN_ERR_ARG, "layer %zu: a projection starts at layers 0..%zu", layer,
                       net->n_layers - 2);
    if (rule != CN_BACK_GRADIENT && rule != CN_BACK_DECONV && rule != CN_BACK_GUIDED)
        return cn_fail(CN_ERR_ARG, "%d is not a rule of cn_backrule", (int)rule);
    return carry_back(net, signal, seen_at(net, layer), n, rule, net->n_layers, NULL, dx);
}

cn_status cn_net_receptive_field(const cn_net *net, size_t layer, size_t row, size_t col,
                                 long box[4])
{
    if (layer >= net->n_layers)
        return cn_fail(CN_ERR_ARG, "layer %zu: the network has layers 0..%zu", layer,
                       net->n_layers - 1);
    const cn_layer *l = &net->layers[layer];
    if (row >= l->out.h || col >= l->out.w)
        return cn_fail(CN_ERR_ARG, "(%zu, %zu) is outside %s's %zux%zu output", row, col, l->name,
                       l->out.h, l->out.w);
    long r0 = (long)row, c0 = (long)col, r1 = r0 + 1, c1 = c0 + 1; /* half-open */
    for (size_t i = layer + 1; i-- > 0;) {
        l = &net->layers[i];
        if (l->ops->window) {
            cn_win g = l->ops->window(l);
            long s = (long)g.stride, p = (long)g.pad;
            r0 = r0 * s - p, c0 = c0 * s - p;
            r1 = (r1 - 1) * s - p + (long)g.kh, c1 = (c1 - 1) * s - p + (long)g.kw;
        } else if (l->in.h != l->out.h || l->in.w != l->out.w) {
            /* Fully connected and the like: every input. */
            r0 = 0, c0 = 0, r1 = (long)l->in.h, c1 = (long)l->in.w;
        }
    }
    box[0] = r0, box[1] = c0, box[2] = r1, box[3] = c1;
    return CN_OK;
}

void cn_net_layer_forward(cn_net *net, size_t i, const float *x, float *y, size_t n, int train)
{
    cn_ctx ctx = make_ctx(net, 0, train);
    net->layers[i].ops->forward(&net->layers[i], &ctx, x, y, n);
}

void cn_net_layer_backward(cn_net *net, size_t i, const float *x, const float *y, const float *dy,
                           float *dx, size_t n)
{
    cn_ctx ctx = make_ctx(net, 0, 1);
    net->layers[i].ops->backward(&net->layers[i], &ctx, x, y, dy, dx, n);
}

/* ------------------------------------------------------------ evaluation */

/* Whether data fits net: its images' shape, its number of classes. */
static cn_status eval_check(const cn_net *net, const cn_data *data)
{
    cn_shape in = net->spec->input;
    if (data->shape.c != in.c || data->shape.h != in.h || data->shape.w != in.w)
        return cn_fail(CN_ERR_SHAPE,
                       "the data's images are %zux%zux%zu but the network takes %zux%zux%zu",
                       data->shape.c, data->shape.h, data->shape.w, in.c, in.h, in.w);
    if (data->classes > net->spec->classes)
        return cn_fail(CN_ERR_SHAPE, "the data has %zu classes but the network only %zu",
                       data->classes, net->spec->classes);
    return CN_OK;
}

/* What an evaluation checks of data and allocates in out (zeroed first):
 * the images' shape and the class count against the network's, then the
 * confusion matrix and each image's answer (out's to free, also on a
 * failure). */
static cn_status eval_begin(const cn_net *net, const cn_data *data, cn_eval *out)
{
    size_t k = net->spec->classes, rows = data->n ? data->n : 1;
    cn_status st = eval_check(net, data);
    if (st)
        return st;
    out->confusion = calloc(k * k, sizeof *out->confusion);
    out->predicted = malloc(rows * sizeof *out->predicted);
    out->probability = malloc(rows * sizeof *out->probability);
    return CN_OK;
}

cn_status cn_net_evaluate(cn_net *net, const cn_data *data, cn_eval *out)
{
    memset(out, 0, sizeof *out);
    cn_status st0 = eval_begin(net, data, out);
    if (st0)
        return st0;
    cn_shape in = net->spec->input;
    size_t k = net->spec->classes;
    size_t bs = net->max_batch, in_size = cn_shape_size(in);
    int32_t *best = net->h_best;
    cn_status st = CN_OK;
    if (!out->confusion || !out->predicted || !out->probability) {
        st = cn_fail(CN_ERR_NOMEM, "out of memory");
        goto done;
    }
    out->n = data->n;
    out->classes = k;
    double loss_sum = 0.0;
    size_t correct = 0;
    for (size_t s0 = 0; s0 < data->n; s0 += bs) {
        size_t n = data->n - s0 < bs ? data->n - s0 : bs;
        cn_data_read_ahead(data, s0 + n, bs); /* the next batch */
        if ((st = cn_net_forward_pixels(net, data->pixels + s0 * in_size, n, 0)) ||
            (st = cn_net_put_labels(net, data->labels + s0, n)))
            goto done;
        double total = row_results(net, n, best, out->probability + s0);
        loss_sum += total / (double)n * (double)n; /* as the batch means always were */
        for (size_t s = 0; s < n; s++) {
            size_t truth = (size_t)data->labels[s0 + s];
            out->predicted[s0 + s] = (size_t)best[s];
            out->confusion[truth * k + (size_t)best[s]]++;
            correct += (size_t)best[s] == truth;
        }
    }
    out->loss = data->n ? loss_sum / (double)data->n : 0.0;
    out->accuracy = data->n ? (double)correct / (double)data->n : 0.0;
    if (net->be->status) /* a device's fault during the passes */
        st = net->be->status(net->be);
done:
    net->x_last = NULL;
    if (st)
        cn_eval_free(out);
    return st;
}

/* ------------------------------------------- test-time augmentation */

/* Each test-time augmentation, by cn_tta: its name and how many views of
 * an image it averages (tta_view draws them). */
static const struct {
    const char *name;
    size_t views;
} ttas[] = {{"none", 1}, {"flip", 2}, {"shift", 5}, {"flip-shift", 10}};
_Static_assert(sizeof ttas / sizeof ttas[0] == CN_TTA_FLIP_SHIFT + 1, "a row for each cn_tta");

const char *cn_tta_name(cn_tta tta)
{
    return tta >= CN_TTA_NONE && tta <= CN_TTA_FLIP_SHIFT ? ttas[tta].name : "?";
}

int cn_tta_by_name(const char *name)
{
    for (int i = 0; name && i <= CN_TTA_FLIP_SHIFT; i++)
        if (strcmp(ttas[i].name, name) == 0)
            return i;
    return -1;
}

static cn_status check_tta(cn_tta tta)
{
    if (tta < CN_TTA_NONE || tta > CN_TTA_FLIP_SHIFT)
        return cn_fail(CN_ERR_ARG,
                       "test-time augmentation %d: none (0), flip (1), shift (2) or flip-shift (3)",
                       (int)tta);
    return CN_OK;
}

/* The views a test-time augmentation averages over: the image itself, then
 * its mirror (flip), or its shifts by one pixel down, up, right and left
 * (shift; what comes in at the edge is 0, as in training's shifts), or
 * those five and then the same five mirrored (flip-shift). */
static size_t tta_views(cn_tta tta) { return ttas[tta].views; }

/* View v (1 .. tta_views - 1) of the n images pixels into out: training's
 * augmentation (augment.h) with a draw that only shifts, only mirrors, or
 * mirrors then shifts (the mirror of a shift is the opposite shift of the
 * mirror: the same ten views either way). */
static void tta_view(cn_tta tta, size_t v, const uint8_t *pixels, size_t n, cn_shape s,
                     uint8_t *out)
{
    static const int moves[4][2] = {{1, 0}, {-1, 0}, {0, 1}, {0, -1}}; /* (dy, dx) */
    cn_aug_draw d = {.m00 = 65536, .m11 = 65536};
    size_t move = tta == CN_TTA_FLIP ? 0 : v % 5; /* 0: none, else moves[move - 1] */
    d.mirror = tta == CN_TTA_FLIP || v >= 5;
    if (move) {
        d.dy = moves[move - 1][0];
        d.dx = moves[move - 1][1];
    }
    size_t size = cn_shape_size(s);
    for (size_t i = 0; i < n; i++)
        cn_aug_sample(pixels + i * size, out + i * size, (int64_t)s.c, (int64_t)s.h, (int64_t)s.w,
                      &d);
}

/* One evaluation pass over the n images pixels: their probabilities into
 * probs (host), added to what is there when add is set. */
static cn_status pass_probs(cn_net *net, const uint8_t *pixels, size_t n, int add, float *probs,
                            float *tmp)
{
    cn_status st = cn_net_forward_pixels(net, pixels, n, 0);
    if (st || (st = cn_net_get_output(net, add ? tmp : probs)))
        return st;
    for (size_t i = 0; add && i < n * net->spec->classes; i++)
        probs[i] += tmp[i];
    return CN_OK;
}

/* cn_net_classify_pixels for a valid tta, with the caller's buffers: view
 * (n images) and tmp (n * classes floats), both unused with none. */
static cn_status classify_views(cn_net *net, const uint8_t *pixels, size_t n, cn_tta tta,
                                float *probs, uint8_t *view, float *tmp)
{
    size_t views = tta_views(tta), count = n * net->spec->classes;
    cn_status st = pass_probs(net, pixels, n, 0, probs, tmp);
    for (size_t v = 1; !st && v < views; v++) {
        tta_view(tta, v, pixels, n, net->spec->input, view);
        st = pass_probs(net, view, n, 1, probs, tmp);
    }
    for (size_t i = 0; !st && i < count; i++)
        probs[i] /= (float)views;
    return st;
}

cn_status cn_net_classify_pixels(cn_net *net, const uint8_t *pixels, size_t n, cn_tta tta,
                                 float *probs)
{
    return cn_net_classify_ensemble(&net, 1, pixels, n, tta, probs);
}

/* Whether nets (count of them) make an ensemble: some, all taking the first's
 * input and classes.  *batch: the most samples a pass of every one takes. */
static cn_status check_ensemble(cn_net *const *nets, size_t count, size_t *batch)
{
    if (!nets || count == 0)
        return cn_fail(CN_ERR_ARG, "an ensemble of no networks");
    const cn_net *net = nets[0];
    cn_shape a = net->spec->input;
    size_t k = net->spec->classes;
    *batch = net->max_batch;
    for (size_t m = 1; m < count; m++) {
        const cn_net *o = nets[m];
        cn_shape b = o->spec->input;
        if (a.c != b.c || a.h != b.h || a.w != b.w || o->spec->classes != k)
            return cn_fail(CN_ERR_SHAPE,
                           "the ensemble's network %zu takes %zux%zux%zu images into %zu "
                           "classes, network 1 %zux%zux%zu into %zu",
                           m + 1, b.c, b.h, b.w, o->spec->classes, a.c, a.h, a.w, k);
        *batch = o->max_batch < *batch ? o->max_batch : *batch;
    }
    return CN_OK;
}

/* The mean over the count networks of classify_views' probabilities of the
 * n images pixels, into sum (n * classes floats), with the caller's buffers:
 * probs (n * classes floats; unused when count is 1: sum takes its place),
 * view and tmp as classify_views takes them. */
static cn_status classify_nets(cn_net *const *nets, size_t count, const uint8_t *pixels, size_t n,
                               cn_tta tta, float *sum, float *probs, uint8_t *view, float *tmp)
{
    size_t total = n * nets[0]->spec->classes;
    for (size_t m = 0; m < count; m++) {
        cn_status st = classify_views(nets[m], pixels, n, tta, count > 1 ? probs : sum, view, tmp);
        if (st)
            return st;
        for (size_t i = 0; count > 1 && i < total; i++)
            sum[i] = m ? sum[i] + probs[i] : probs[i];
    }
    for (size_t i = 0; count > 1 && i < total; i++)
        sum[i] /= (float)count;
    return CN_OK;
}

cn_status cn_net_classify_ensemble(cn_net *const *nets, size_t count, const uint8_t *pixels,
                                   size_t n, cn_tta tta, float *probs)
{
    size_t batch;
    cn_status st = check_tta(tta);
    if (st || (st = check_ensemble(nets, count, &batch)))
        return st;
    for (size_t m = 0; m < count; m++)
        if ((st = cn_net_check_batch(nets[m], n, 0)))
            return st;
    /* Buffers only for what is asked: one network's plain pass needs none. */
    size_t k = nets[0]->spec->classes, size = cn_shape_size(nets[0]->spec->input);
    int views = tta != CN_TTA_NONE;
    float *each = count > 1 ? malloc(n * k * sizeof *each) : NULL;
    float *tmp = views ? malloc(n * k * sizeof *tmp) : NULL;
    uint8_t *view = views ? malloc(n * size) : NULL;
    if ((count > 1 && !each) || (views && (!tmp || !view)))
        st = cn_fail(CN_ERR_NOMEM, "out of memory for the classes of %zu images", n);
    else
        st = classify_nets(nets, count, pixels, n, tta, probs, each, view, tmp);
    free(each);
    free(tmp);
    free(view);
    return st;
}

cn_status cn_net_evaluate_tta(cn_net *net, const cn_data *data, cn_tta tta, cn_eval *out)
{
    return cn_net_evaluate_ensemble(&net, 1, data, tta, out);
}

cn_status cn_net_evaluate_ensemble(cn_net *const *nets, size_t count, const cn_data *data,
                                   cn_tta tta, cn_eval *out)
{
    memset(out, 0, sizeof *out);
    size_t bs;
    cn_status st = check_tta(tta);
    if (st || (st = check_ensemble(nets, count, &bs)))
        return st;
    if (count == 1 && tta == CN_TTA_NONE) /* the loss from the logits */
        return cn_net_evaluate(nets[0], data, out);
    for (size_t m = 1; m < count; m++)
        if ((st = eval_check(nets[m], data)))
            return st;
    cn_net *net = nets[0];
    if ((st = eval_begin(net, data, out)))
        return st;
    size_t k = net->spec->classes, in_size = cn_shape_size(net->spec->input);
    /* The views and the probabilities: allocated once, not per batch. */
    int views = tta != CN_TTA_NONE;
    float *sum = malloc(bs * k * sizeof *sum);
    float *probs = count > 1 ? malloc(bs * k * sizeof *probs) : NULL;
    float *tmp = views ? malloc(bs * k * sizeof *tmp) : NULL;
    uint8_t *view = views ? malloc(bs * in_size) : NULL;
    if (!out->confusion || !out->predicted || !out->probability || !sum || (count > 1 && !probs) ||
        (views && (!tmp || !view))) {
        st = cn_fail(CN_ERR_NOMEM, "out of memory");
        goto done;
    }
    out->n = data->n;
    out->classes = k;
    double loss_sum = 0.0;
    size_t correct = 0;
    for (size_t s0 = 0; s0 < data->n; s0 += bs) {
        size_t n = data->n - s0 < bs ? data->n - s0 : bs;
        const uint8_t *pixels = data->pixels + s0 * in_size;
        cn_data_read_ahead(data, s0 + n, bs); /* the next batch */
        if ((st = classify_nets(nets, count, pixels, n, tta, sum, probs, view, tmp)))
            goto done;
        for (size_t s = 0; s < n; s++) {
            const float *p = sum + s * k;
            size_t truth = (size_t)data->labels[s0 + s], best = 0;
            for (size_t j = 1; j < k; j++)
                best = p[j] > p[best] ? j : best;
            double pl = p[truth] > 1e-30f ? (double)p[truth] : 1e-30;
            loss_sum -= log(pl);
            out->predicted[s0 + s] = best;
            out->probability[s0 + s] = p[best];
            out->confusion[truth * k + best]++;
            correct += best == truth;
        }
    }
    out->loss = data->n ? loss_sum / (double)data->n : 0.0;
    out->accuracy = data->n ? (double)correct / (double)data->n : 0.0;
    for (size_t m = 0; !st && m < count; m++)
        if (nets[m]->be->status) /* a device's fault during the passes */
            st = nets[m]->be->status(nets[m]->be);
done:
    for (size_t m = 0; m < count; m++)
        nets[m]->x_last = NULL;
    free(sum);
    free(probs);
    free(tmp);
    free(view);
    if (st)
        cn_eval_free(out);
    return st;
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
