/* model.c - a model: spec, network, optimizer and training state, the
 * moving average of its weights, and its file: safetensors with the weights
 * under PyTorch's names, the momentum as "optim.<tensor>.momentum", and in
 * __metadata__ the model description (convnet.model), the recipe
 * (convnet.train) and the training state (convnet.state), the last two as
 * JSON.  With a moving average (ema), the names hold the average and
 * "optim.<tensor>.raw" the trained weights that training goes on from. */
#include "internal.h"
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cn_model_free(cn_model *m)
{
    if (!m)
        return;
    if (m->net)
        cn_free_names(m->class_names, cn_net_classes(m->net));
    cn_net_free(m->net);
    if (m->be)
        m->be->free(m->be, m->ema_mem);
    cn_optim_free(&m->optim, m->be);
    cn_backend_destroy(m->be);
    cn_spec_free(m->spec);
    free(m->stage);
    free(m->stats);
    free(m->origin);
    for (size_t i = 0; i < 2 * m->n_info; i++)
        free(m->info[i]);
    free(m->info);
    free(m);
}

cn_net *cn_model_net(cn_model *m) { return m->net; }
const cn_spec *cn_model_spec(const cn_model *m) { return m->spec; }
cn_train_opts *cn_model_opts(cn_model *m) { return &m->opts; }
const cn_train_state *cn_model_state(const cn_model *m) { return &m->state; }

/* The communicator of a model that trains alone: nothing to exchange. */
static cn_status solo_allreduce(void *user, float *data, size_t count)
{
    (void)user, (void)data, (void)count;
    return CN_OK;
}
static cn_status solo_broadcast(void *user, float *data, size_t count, int root)
{
    (void)user, (void)data, (void)count, (void)root;
    return CN_OK;
}
static cn_status solo_barrier(void *user)
{
    (void)user;
    return CN_OK;
}
static const cn_comm solo = {.rank = 0,
                             .size = 1,
                             .allreduce = solo_allreduce,
                             .broadcast = solo_broadcast,
                             .barrier = solo_barrier};

cn_status cn_model_set_comm(cn_model *m, const cn_comm *comm)
{
    if (!comm)
        comm = &solo;
    if (comm->size < 1 || comm->rank < 0 || comm->rank >= comm->size || !comm->allreduce ||
        !comm->broadcast || !comm->barrier || !comm->allreduce_start != !comm->allreduce_wait)
        return cn_fail(CN_ERR_ARG,
                       "a communicator needs 0 <= rank < size, its three functions, and "
                       "allreduce_start and allreduce_wait both or neither (rank %d, size %d)",
                       comm->rank, comm->size);
    float *stage = NULL;
    if (comm->size > 1 && !m->be->host_memory) {
        stage = malloc((m->net->n_params + CN_GRAD_TAIL) * sizeof *stage);
        if (!stage)
            return cn_fail(CN_ERR_NOMEM, "out of memory for the gradients' host copy");
    }
    free(m->stage);
    m->stage = stage;
    m->comm = *comm;
    return CN_OK;
}

/* A model with a zeroed net and optimizer state on be, which it takes
 * over (and releases on failure). */
static cn_status model_new(const cn_spec *spec, const cn_train_opts *opts, cn_backend *be,
                           const cn_device *device, cn_model **out)
{
    *out = NULL;
    cn_status st = cn_train_opts_check(opts);
    cn_model *m = st ? NULL : calloc(1, sizeof *m);
    if (!m) {
        cn_backend_destroy(be);
        return st ? st : cn_fail(CN_ERR_NOMEM, "out of memory");
    }
    m->be = be; /* from here on, cn_model_free releases it */
    m->device = *device;
    m->opts = *opts;
    m->comm = solo;
    size_t olen = strlen(spec->source) + 1, batch, train;
    cn_model_batches((size_t)opts->batch, &batch, &train);
    if (!(m->origin = malloc(olen)))
        st = cn_fail(CN_ERR_NOMEM, "out of memory");
    else
        memcpy(m->origin, spec->source, olen);
    if (st || (st = cn_spec_clone(spec, &m->spec)) ||
        (st = cn_net_build(m->spec, batch, train, 1, be, device, &m->net)) ||
        (st = cn_optim_init(&m->optim, opts->optimizer, be, m->net->n_params))) {
        cn_model_free(m);
        return st;
    }
    *out = m;
    return CN_OK;
}

void cn_model_batches(size_t batch, size_t *max, size_t *train) { *max = *train = batch; }

cn_status cn_model_create(const cn_spec *spec, const cn_train_opts *opts, const cn_device *dev,
                          cn_model **out)
{
    *out = NULL;
    cn_train_opts o;
    if (opts)
        o = *opts;
    else
        cn_spec_train_opts(spec, &o);
    cn_backend *be;
    cn_device device;
    cn_status st = cn_backend_create(dev, &device, &be);
    if (st || (st = model_new(spec, &o, be, &device, out)))
        return st;
    cn_rng rng;
    cn_rng_seed(&rng, o.seed);
    cn_net_init((*out)->net, &rng);
    (*out)->state.rng = rng;
    return CN_OK;
}

/* ------------------------------------------------------- moving average */

/* Floats of one copy of the weights: the parameters, then the buffers. */
static size_t weight_floats(const cn_model *m) { return m->net->n_params + m->net->n_buffers; }

/* count floats at a and b change places, through tmp (room for chunk). */
static void swap_blocks(cn_backend *be, float *a, float *b, size_t count, float *tmp, size_t chunk)
{
    for (size_t i = 0; i < count; i += chunk) {
        size_t k = (count - i < chunk ? count - i : chunk) * sizeof(float);
        be->copy(be, tmp, a + i, k);
        be->copy(be, a + i, b + i, k);
        be->copy(be, b + i, tmp, k);
    }
}

/* The net's weights and the model's other copy change places. */
static void ema_swap(cn_model *m)
{
    cn_backend *be = m->be;
    cn_net *net = m->net;
    size_t np = net->n_params, n = weight_floats(m), room = cn_ema_room(n);
    swap_blocks(be, net->params, m->ema_mem, np, m->ema_mem + n, room);
    swap_blocks(be, net->buffers, m->ema_mem + np, net->n_buffers, m->ema_mem + n, room);
    cn_net_weights_changed(net);
    m->ema_live = !m->ema_live;
}

cn_status cn_model_ema_use(cn_model *m, int live)
{
    cn_backend *be = m->be;
    cn_net *net = m->net;
    size_t n = weight_floats(m);
    if (m->opts.ema > 0 && !m->ema_mem) {
        if (!(m->ema_mem = be->alloc(be, cn_ema_floats(n) * sizeof(float))))
            return cn_fail(CN_ERR_NOMEM,
                           "out of memory for the moving average of the weights (%zu floats)", n);
        be->copy(be, m->ema_mem, net->params, net->n_params * sizeof(float));
        be->copy(be, m->ema_mem + net->n_params, net->buffers, net->n_buffers * sizeof(float));
        m->ema_live = 0;
    }
    if (!m->ema_mem)
        return CN_OK;
    if (m->opts.ema <= 0) { /* no average any more: the trained weights go on */
        if (!m->ema_live)
            ema_swap(m);
        be->free(be, m->ema_mem);
        m->ema_mem = NULL;
        m->ema_live = 0;
        return CN_OK;
    }
    if (m->ema_live != (live != 0))
        ema_swap(m);
    return CN_OK;
}

void cn_model_ema_update(cn_model *m)
{
    cn_net *net = m->net;
    double t = (double)m->state.global_step, warm = (1.0 + t) / (10.0 + t);
    float keep = (float)(m->opts.ema < warm ? m->opts.ema : warm);
    m->be->ema(m->be, m->ema_mem, net->params, net->n_params, keep);
    m->be->ema(m->be, m->ema_mem + net->n_params, net->buffers, net->n_buffers, keep);
}

cn_status cn_model_evaluate(cn_model *m, const cn_data *data, cn_eval *out)
{
    int swap = m->ema_mem && m->ema_live;
    if (swap)
        ema_swap(m);
    cn_status st = cn_net_evaluate(m->net, data, out);
    if (swap)
        ema_swap(m);
    return st;
}

/* The model's net rebuilt for forward passes of max and backward passes of
 * train samples (0: forward only), lean or not (cn_net_build); the weights
 * are kept. */
static cn_status rebuild(cn_model *m, size_t max, size_t train, int lean)
{
    cn_net *old = m->net, *net;
    cn_status st = cn_net_build(m->spec, max, train, lean, m->be, &m->device, &net);
    if (st)
        return st;
    size_t c = m->spec->input.c;
    m->be->copy(m->be, net->params, old->params, net->n_params * sizeof(float));
    m->be->copy(m->be, net->buffers, old->buffers, net->n_buffers * sizeof(float));
    m->be->copy(m->be, net->norm, old->norm, 2 * c * sizeof(float));
    memcpy(net->norm_host, old->norm_host, 2 * c * sizeof(float));
    cn_net_weights_changed(net);
    cn_net_free(old);
    m->net = net;
    return CN_OK;
}

/* Rebuilds the net if it cannot take forward passes of n samples, or
 * backward passes of train samples; the weights are kept. */
cn_status cn_model_plan(cn_model *m, size_t n, size_t train, int lean)
{
    cn_net *old = m->net;
    if (n <= old->max_batch && train <= old->train_batch && (lean || !old->replays))
        return CN_OK;
    size_t max = n > old->max_batch ? n : old->max_batch;
    size_t tr = train > old->train_batch ? train : old->train_batch;
    return rebuild(m, max > tr ? max : tr, tr, lean);
}

cn_status cn_model_reserve(cn_model *m, size_t n)
{
    if (n == 0 || n > CN_MAX_BATCH)
        return cn_fail(CN_ERR_ARG, "a batch of %zu samples; at most %d", n, CN_MAX_BATCH);
    return cn_model_plan(m, n, n, 0);
}

cn_status cn_model_reserve_training(cn_model *m, size_t n)
{
    if (n == 0 || n > CN_MAX_BATCH)
        return cn_fail(CN_ERR_ARG, "a batch of %zu samples; at most %d", n, CN_MAX_BATCH);
    cn_net *old = m->net;
    if (old->lean && n <= old->max_batch && n <= old->train_batch)
        return CN_OK;
    return rebuild(m, n > old->max_batch ? n : old->max_batch, n, 1);
}

cn_status cn_model_reserve_inference(cn_model *m, size_t n)
{
    if (n == 0 || n > CN_MAX_BATCH)
        return cn_fail(CN_ERR_ARG, "a batch of %zu samples; at most %d", n, CN_MAX_BATCH);
    cn_net *old = m->net;
    if (old->train_batch == 0 && n <= old->max_batch)
        return CN_OK;
    return rebuild(m, old->train_batch == 0 && old->max_batch > n ? old->max_batch : n, 0, 0);
}

/* ------------------------------------------------------------ tensors */

/* What a model file holds: the net's parameters and buffers under their
 * names, then the optimizer's state of each parameter, "optim.<name>.<slot>"
 * (which a file may lack: weights only).  Each lives in the backend's
 * memory (dev) and passes through a host copy (host: at offset `at` of one
 * array for all of them) on its way to or from the file. */
typedef struct file_tensor {
    char name[96];
    int ndim;
    size_t dims[4];
    size_t count;
    float *dev;
    size_t at;
    int required;
    const float *absent; /* what dev gets when the file lacks it, or NULL */
} file_tensor;

/* The list for m (count in *n, floats of all of them in *total); NULL when
 * out of memory.  With a moving average: the average under the tensors'
 * names, the trained weights as optim.<name>.raw (the average where a file
 * lacks them), whichever of them the net holds now. */
static file_tensor *file_tensors(const cn_model *m, size_t *n, size_t *total)
{
    const cn_net *net = m->net;
    size_t nt = cn_net_num_tensors(net), k = 0;
    file_tensor *t = calloc(nt * (2 + m->optim.n_slots) + 2, sizeof *t);
    if (!t)
        return NULL;
    /* Where the weights under the names are, and the trained ones. */
    float *avg_p = net->params, *avg_b = net->buffers, *raw_p = NULL, *raw_b = NULL;
    if (m->ema_mem) {
        float *other_p = m->ema_mem, *other_b = m->ema_mem + net->n_params;
        raw_p = m->ema_live ? avg_p : other_p;
        raw_b = m->ema_live ? avg_b : other_b;
        avg_p = m->ema_live ? other_p : avg_p;
        avg_b = m->ema_live ? other_b : avg_b;
    }
    for (size_t slot = 0; slot <= m->optim.n_slots; slot++)
        for (size_t i = 0; i < nt; i++) {
            cn_tensor_info ti;
            cn_net_tensor(net, i, &ti);
            if (slot > 0 && !ti.trainable)
                continue;
            file_tensor *f = &t[k++];
            if (slot == 0)
                snprintf(f->name, sizeof f->name, "%s", ti.name);
            else
                snprintf(f->name, sizeof f->name, "optim.%s.%s", ti.name,
                         m->optim.slot_names[slot - 1]);
            f->ndim = ti.ndim;
            memcpy(f->dims, ti.dims, sizeof f->dims);
            f->count = ti.count;
            f->dev = slot > 0       ? m->optim.state + (slot - 1) * net->n_params + ti.offset
                     : ti.trainable ? avg_p + ti.offset
                                    : avg_b + ti.offset;
            f->required = slot == 0;
        }
    /* The input's normalisation (files written before it existed lack it:
     * the description's mean and std then stand). */
    size_t c = m->spec->input.c;
    for (int i = 0; i < 2; i++) {
        file_tensor *f = &t[k++];
        snprintf(f->name, sizeof f->name, "input.%s", i ? "std" : "mean");
        f->ndim = 1;
        f->dims[0] = c;
        f->count = c;
        f->dev = net->norm + (size_t)i * c;
        f->required = 0;
    }
    for (size_t i = 0; raw_p && i < nt; i++) {
        cn_tensor_info ti;
        cn_net_tensor(net, i, &ti);
        file_tensor *f = &t[k++];
        snprintf(f->name, sizeof f->name, "optim.%s.raw", ti.name);
        f->ndim = ti.ndim;
        memcpy(f->dims, ti.dims, sizeof f->dims);
        f->count = ti.count;
        f->dev = (ti.trainable ? raw_p : raw_b) + ti.offset;
        f->absent = (ti.trainable ? avg_p : avg_b) + ti.offset;
    }
    *n = k;
    *total = 0;
    for (size_t i = 0; i < k; i++) {
        t[i].at = *total;
        *total = cn_add(*total, t[i].count);
    }
    return t;
}

/* ------------------------------------------------------------------ save */

char *cn_train_opts_json(const cn_train_opts *o)
{
    cJSON *j = cJSON_CreateObject();
    int ok = j != NULL;
    for (size_t i = 0; ok && i < CN_RECIPE_KEYS; i++) {
        const cn_recipe_key *k = cn_recipe_key_at(i);
        double v = cn_recipe_get(o, k);
        if (k->json_absent == CN_JSON_OPTIONAL && v == k->key.def)
            continue;
        /* A choice as its word ("?" when a caller put the field out of
         * range: reading refuses it). */
        const char *word = NULL;
        if (k->key.type == CN_TRAIN_CHOICE)
            word = cn_recipe_fits(k, v) ? k->key.choices[(size_t)v] : "?";
        ok = (word ? cJSON_AddStringToObject(j, k->json, word)
                   : cJSON_AddNumberToObject(j, k->json, v)) != NULL;
    }
    char *s = ok ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    return s;
}

static char *state_json(const cn_model *m)
{
    const cn_train_state *s = &m->state;
    cJSON *j = cJSON_CreateObject();
    if (!j)
        return NULL;
    cJSON_AddNumberToObject(j, "epoch", s->epoch);
    cJSON_AddNumberToObject(j, "step", (double)s->step);
    cJSON_AddNumberToObject(j, "global_step", (double)s->global_step);
    cJSON_AddNumberToObject(j, "lr", cn_train_opts_lr(&m->opts, (double)s->epoch));
    cJSON *rng = cJSON_AddArrayToObject(j, "rng");
    for (int i = 0; rng && i < 4; i++) {
        char hex[17];
        snprintf(hex, sizeof hex, "%016" PRIx64, s->rng.s[i]);
        cJSON_AddItemToArray(rng, cJSON_CreateString(hex));
    }
    char *out = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return out;
}

/* ------------------------------------------------------------------ notes */

#define INFO_PREFIX "convnet.info."

static int good_key(const char *key)
{
    size_t n = key ? strlen(key) : 0;
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(key[i] >= 'a' && key[i] <= 'z') && !(key[i] >= 'A' && key[i] <= 'Z') &&
            !(key[i] >= '0' && key[i] <= '9') && !strchr("._-", key[i]))
            return 0;
    return 1;
}

static char *copy_text(const char *s)
{
    char *c = malloc(strlen(s) + 1);
    return c ? strcpy(c, s) : NULL;
}

cn_status cn_model_set_info(cn_model *m, const char *key, const char *value)
{
    if (!good_key(key))
        return cn_fail(CN_ERR_ARG,
                       "a model note's key is 1 to 64 letters, digits, '.', '_' or '-', not '%s'",
                       key ? key : "(null)");
    size_t i = 0;
    while (i < m->n_info && strcmp(m->info[2 * i], key) != 0)
        i++;
    if (!value) { /* removed: the last pair takes its place */
        if (i < m->n_info) {
            free(m->info[2 * i]);
            free(m->info[2 * i + 1]);
            m->n_info--;
            m->info[2 * i] = m->info[2 * m->n_info];
            m->info[2 * i + 1] = m->info[2 * m->n_info + 1];
        }
        return CN_OK;
    }
    char *v = copy_text(value);
    if (!v)
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    if (i < m->n_info) {
        free(m->info[2 * i + 1]);
        m->info[2 * i + 1] = v;
        return CN_OK;
    }
    char *k = copy_text(key);
    char **grown = k ? realloc(m->info, 2 * (m->n_info + 1) * sizeof *grown) : NULL;
    if (!grown) {
        free(k);
        free(v);
        return cn_fail(CN_ERR_NOMEM, "out of memory");
    }
    m->info = grown;
    m->info[2 * m->n_info] = k;
    m->info[2 * m->n_info + 1] = v;
    m->n_info++;
    return CN_OK;
}

const char *cn_model_info(const cn_model *m, const char *key)
{
    for (size_t i = 0; key && i < m->n_info; i++)
        if (strcmp(m->info[2 * i], key) == 0)
            return m->info[2 * i + 1];
    return NULL;
}

cn_status cn_model_set_class_names(cn_model *m, const char *const *names)
{
    size_t k = cn_net_classes(m->net);
    cn_status st = names ? cn_check_class_names(names, k) : CN_OK;
    if (st)
        return st;
    char **copy = NULL;
    if (names && !(copy = cn_copy_names(names, k)))
        return cn_fail(CN_ERR_NOMEM, "out of memory for %zu class names", k);
    cn_free_names(m->class_names, k);
    m->class_names = copy;
    return CN_OK;
}

const char *const *cn_model_class_names(const cn_model *m)
{
    return (const char *const *)m->class_names;
}

/* The class names as the file keeps them (convnet.classes: a JSON array of
 * strings), into m. */
static cn_status read_class_names(const char *path, const char *text, cn_model *m)
{
    size_t k = cn_net_classes(m->net);
    cJSON *j = cJSON_Parse(text);
    if (!j)
        return cn_fail(CN_ERR_FORMAT, "%s: metadata convnet.classes is not JSON", path);
    cn_status st = CN_OK;
    const char **names = calloc(k ? k : 1, sizeof *names);
    if (!names)
        st = cn_fail(CN_ERR_NOMEM, "out of memory");
    else if (!cJSON_IsArray(j) || (size_t)cJSON_GetArraySize(j) != k)
        st = cn_fail(CN_ERR_FORMAT,
                     "%s: metadata convnet.classes is not an array of the network's %zu class "
                     "names",
                     path, k);
    for (size_t i = 0; !st && i < k; i++) {
        const cJSON *e = cJSON_GetArrayItem(j, (int)i);
        if (!cJSON_IsString(e))
            st = cn_fail(CN_ERR_FORMAT, "%s: convnet.classes[%zu] is not a string", path, i);
        else
            names[i] = e->valuestring;
    }
    if (!st && (st = cn_model_set_class_names(m, names))) {
        char why[512];
        snprintf(why, sizeof why, "%s", cn_last_error());
        st = cn_fail(CN_ERR_FORMAT, "%s: convnet.classes: %s", path, why);
    }
    free(names);
    cJSON_Delete(j);
    return st;
}

/* The notes among a file's metadata, into m. */
static cn_status read_info(const char *path, const cn_st_file *f, cn_model *m)
{
    size_t plen = strlen(INFO_PREFIX);
    for (size_t i = 0; i < f->n_meta; i++) {
        const char *key = f->meta[2 * i];
        if (strncmp(key, INFO_PREFIX, plen) != 0)
            continue;
        if (!good_key(key + plen))
            return cn_fail(CN_ERR_FORMAT, "%s: metadata '%s': not a model note's key", path, key);
        cn_status st = cn_model_set_info(m, key + plen, f->meta[2 * i + 1]);
        if (st)
            return st;
    }
    return CN_OK;
}

uint64_t cn_data_fingerprint(const cn_data *d)
{
    uint64_t h = 0xcbf29ce484222325u;
    const size_t head[] = {d->n, d->shape.c, d->shape.h, d->shape.w, d->classes};
    const uint8_t *parts[] = {(const uint8_t *)head, d->pixels, (const uint8_t *)d->labels};
    size_t sizes[] = {sizeof head, d->n * cn_shape_size(d->shape), d->n * sizeof *d->labels};
    for (size_t p = 0; p < 3; p++)
        for (size_t i = 0; parts[p] && i < sizes[p]; i++)
            h = (h ^ parts[p][i]) * 0x100000001b3u;
    for (size_t k = 0; d->names && k < d->classes; k++) /* each with its '\0' */
        for (const char *c = d->names[k]; c; c = *c ? c + 1 : NULL)
            h = (h ^ (uint8_t)*c) * 0x100000001b3u;
    return h;
}

cn_status cn_model_save(const cn_model *m, const char *path)
{
    size_t n = 0, total = 0;
    file_tensor *ft = file_tensors(m, &n, &total);
    cn_st_tensor *t = calloc(n ? n : 1, sizeof *t);
    float *host = ft ? malloc((total ? total : 1) * sizeof *host) : NULL;
    char *opts = cn_train_opts_json(&m->opts), *state = state_json(m), *classes = NULL;
    const char **meta = NULL;
    char **keys = NULL;
    cn_status st = CN_OK;
    if (!ft || !t || !host || !opts || !state) {
        st = cn_fail(CN_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        m->be->download(m->be, host + ft[i].at, ft[i].dev, ft[i].count * sizeof *host);
    /* A file that cn_model_load would refuse is not written: a diverged
     * model must not replace the last good one. */
    for (size_t i = 0; i < n; i++)
        for (size_t q = 0; q < ft[i].count; q++)
            if (!isfinite(host[ft[i].at + q])) {
                st = cn_fail(CN_ERR_NUMERIC,
                             "%s: not saved: tensor '%s' holds NaN or infinite values (training "
                             "diverged); the file keeps its previous contents",
                             path, ft[i].name);
                goto done;
            }
    for (size_t i = 0; i < n; i++)
        t[i] = (cn_st_tensor){ft[i].name,
                              ft[i].ndim,
                              {ft[i].dims[0], ft[i].dims[1], ft[i].dims[2], ft[i].dims[3]},
                              host + ft[i].at};
    const char *base[] = {"format",         "pt",          "convnet.version", CN_VERSION,
                          "convnet.source", m->origin,     "convnet.model",   m->spec->text,
                          "convnet.optim",  m->optim.kind, "convnet.train",   opts,
                          "convnet.state",  state};
    size_t n_base = sizeof base / sizeof base[0] / 2, n_meta = n_base + m->n_info;
    meta = malloc(2 * (n_meta + 1) * sizeof *meta);
    keys = calloc(m->n_info ? m->n_info : 1, sizeof *keys);
    if (!meta || !keys) {
        st = cn_fail(CN_ERR_NOMEM, "out of memory");
        goto done;
    }
    memcpy(meta, base, sizeof base);
    for (size_t i = 0; i < m->n_info; i++) {
        if (!(keys[i] = malloc(strlen(INFO_PREFIX) + strlen(m->info[2 * i]) + 1))) {
            st = cn_fail(CN_ERR_NOMEM, "out of memory");
            goto done;
        }
        strcat(strcpy(keys[i], INFO_PREFIX), m->info[2 * i]);
        meta[2 * (n_base + i)] = keys[i];
        meta[2 * (n_base + i) + 1] = m->info[2 * i + 1];
    }
    if (m->class_names) {
        cJSON *a = cJSON_CreateStringArray((const char *const *)m->class_names,
                                           (int)cn_net_classes(m->net));
        classes = a ? cJSON_PrintUnformatted(a) : NULL;
        cJSON_Delete(a);
        if (!classes) {
            st = cn_fail(CN_ERR_NOMEM, "out of memory");
            goto done;
        }
        meta[2 * n_meta] = "convnet.classes";
        meta[2 * n_meta++ + 1] = classes;
    }
    st = cn_st_write(path, t, n, meta, n_meta);
done:
    for (size_t i = 0; keys && i < m->n_info; i++)
        free(keys[i]);
    free(keys);
    free(meta);
    free(ft);
    free(t);
    free(host);
    cJSON_free(opts);
    cJSON_free(state);
    cJSON_free(classes);
    return st;
}

/* ------------------------------------------------------------------ load */

static int json_num(const cJSON *obj, const char *key, double *v)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(it))
        return 0;
    *v = it->valuedouble;
    return 1;
}

cn_status cn_train_opts_read_json(const char *path, const char *text, cn_train_opts *o)
{
    cJSON *j = cJSON_Parse(text);
    cn_train_opts r = *o;
    int ok = cJSON_IsObject(j);
    for (size_t i = 0; ok && i < CN_RECIPE_KEYS; i++) {
        const cn_recipe_key *k = cn_recipe_key_at(i);
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(j, k->json);
        int choice = k->key.type == CN_TRAIN_CHOICE;
        double v;
        if (choice ? cJSON_IsString(it) : cJSON_IsNumber(it)) {
            v = choice ? cn_recipe_word(k, it->valuestring) : it->valuedouble;
            ok = cn_recipe_fits(k, v);
        } else if (it || k->json_absent == CN_JSON_REQUIRED) {
            ok = 0; /* there but of the wrong type, or missing where every file has it */
        } else if (k->json_absent == CN_JSON_DEFAULT || k->json_absent == CN_JSON_OPTIONAL) {
            v = k->key.def;
        } else {
            continue; /* CN_JSON_KEEP: the description's value stands */
        }
        if (ok)
            cn_recipe_put(&r, k, v);
    }
    cJSON_Delete(j);
    if (!ok)
        return cn_fail(CN_ERR_FORMAT, "%s: the training recipe (convnet.train) is damaged", path);
    *o = r;
    return CN_OK;
}

static cn_status read_state(const char *path, const char *text, const cn_train_opts *o,
                            cn_train_state *s)
{
    cJSON *j = cJSON_Parse(text);
    double epoch, step, global;
    const cJSON *rng = cJSON_GetObjectItemCaseSensitive(j, "rng");
    int ok = j && json_num(j, "epoch", &epoch) && json_num(j, "step", &step) &&
             json_num(j, "global_step", &global) && cJSON_IsArray(rng) &&
             cJSON_GetArraySize(rng) == 4 && epoch >= 0 && epoch <= 1e6 && step >= 0 &&
             step <= 9e15 && global >= step && global <= 9e15;
    for (int i = 0; ok && i < 4; i++) {
        const cJSON *h = cJSON_GetArrayItem(rng, i);
        char *end;
        ok = cJSON_IsString(h) && strlen(h->valuestring) == 16;
        if (ok) {
            s->rng.s[i] = strtoull(h->valuestring, &end, 16);
            ok = *end == '\0';
        }
    }
    ok = ok && (s->rng.s[0] | s->rng.s[1] | s->rng.s[2] | s->rng.s[3]) != 0;
    if (ok) {
        s->epoch = (int)epoch;
        s->step = (uint64_t)step;
        s->global_step = (uint64_t)global;
    }
    cJSON_Delete(j);
    (void)o;
    if (!ok)
        return cn_fail(CN_ERR_FORMAT, "%s: the training state (convnet.state) is damaged", path);
    return CN_OK;
}

cn_status cn_model_load(const char *path, const cn_device *dev, cn_model **out)
{
    *out = NULL;
    cn_st_file f;
    cn_status st = cn_st_open(path, &f);
    if (st)
        return st;
    cn_spec *spec = NULL;
    cn_model *m = NULL;
    cn_backend *be = NULL;
    cn_device device;
    float *host = NULL;
    file_tensor *ft = NULL;
    const char *text = cn_st_meta(&f, "convnet.model");
    if (!text) {
        st = cn_fail(CN_ERR_FORMAT,
                     "%s: a safetensors file but not a convnet model (no "
                     "convnet.model in its metadata)",
                     path);
        goto done;
    }
    char source[4200];
    snprintf(source, sizeof source, "%s (its model description)", path);
    if ((st = cn_spec_parse(text, source, &spec)))
        goto done;
    cn_train_opts opts;
    cn_spec_train_opts(spec, &opts);
    const char *otext = cn_st_meta(&f, "convnet.train");
    if (otext && (st = cn_train_opts_read_json(path, otext, &opts)))
        goto done;
    /* The weights the description needs must be in the file: a few bytes of
     * description must not make the net allocate gigabytes for them. */
    cn_net_plan plan;
    if ((st = cn_backend_create(dev, &device, &be)) ||
        (st = cn_net_plan_memory(spec, 1, 1, 0, be, &plan)))
        goto done;
    if (cn_mul(plan.weights, sizeof(float)) > f.data_len) {
        st = cn_fail(CN_ERR_FORMAT,
                     "%s: its model description needs %zu weights (%zu bytes) but the file holds "
                     "only %zu bytes of tensors",
                     path, plan.weights, cn_mul(plan.weights, sizeof(float)), f.data_len);
        goto done;
    }
    st = model_new(spec, &opts, be, &device, &m);
    be = NULL; /* the model's now, or released */
    if (st || (st = cn_model_ema_use(m, 0)))
        goto done;
    const char *origin = cn_st_meta(&f, "convnet.source");
    if (origin) {
        char *o = malloc(strlen(origin) + 1);
        if (!o) {
            st = cn_fail(CN_ERR_NOMEM, "out of memory");
            goto done;
        }
        strcpy(o, origin);
        free(m->origin);
        m->origin = o;
    }
    if ((st = read_info(path, &f, m)))
        goto done;
    const char *ctext = cn_st_meta(&f, "convnet.classes");
    if (ctext && (st = read_class_names(path, ctext, m)))
        goto done;
    const char *stext = cn_st_meta(&f, "convnet.state");
    if (stext) {
        if ((st = read_state(path, stext, &opts, &m->state)))
            goto done;
    } else {
        cn_rng_seed(&m->state.rng, opts.seed);
    }
    const char *okind = cn_st_meta(&f, "convnet.optim");
    if (okind && strcmp(okind, m->optim.kind) != 0) {
        st = cn_fail(CN_ERR_FORMAT, "%s: optimizer '%s' does not match the recipe's '%s'", path,
                     okind, m->optim.kind);
        goto done;
    }

    /* Every tensor of the net must be there; optimizer state may be; nothing
     * else may. */
    size_t n = 0, found = 0, total = 0;
    ft = file_tensors(m, &n, &total);
    host = ft ? malloc((total ? total : 1) * sizeof *host) : NULL;
    if (!host) {
        st = cn_fail(CN_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n && !st; i++) {
        const cn_st_entry *e = cn_st_find(&f, ft[i].name);
        if (!e) {
            if (ft[i].required)
                st = cn_fail(CN_ERR_FORMAT, "%s: tensor '%s' is missing", path, ft[i].name);
            continue;
        }
        found++;
        float *h = host + ft[i].at;
        if ((st = cn_st_read_f32(&f, e, ft[i].ndim, ft[i].dims, h)))
            break;
        for (size_t q = 0; q < ft[i].count && !st; q++)
            if (!isfinite(h[q]))
                st = cn_fail(CN_ERR_FORMAT, "%s: tensor '%s' holds NaN or infinite values", path,
                             ft[i].name);
        if (!st)
            m->be->upload(m->be, ft[i].dev, h, ft[i].count * sizeof *h);
    }
    /* The trained weights of a file without them (written before the
     * recipe kept an average): the weights it has. */
    for (size_t i = 0; i < n && !st; i++)
        if (ft[i].absent && !cn_st_find(&f, ft[i].name))
            m->be->copy(m->be, ft[i].dev, ft[i].absent, ft[i].count * sizeof(float));
    cn_net_weights_changed(m->net); /* (even a failed load may have written some) */
    for (size_t i = 0; i < f.n_entries && !st && found != f.n_entries; i++) {
        int known = 0;
        for (size_t j = 0; j < n && !known; j++)
            known = strcmp(ft[j].name, f.entries[i].name) == 0;
        if (!known)
            st = cn_fail(CN_ERR_FORMAT, "%s: tensor '%s' belongs to no layer of the model", path,
                         f.entries[i].name);
    }
    if (!st) /* the input's normalisation, as the file gave it */
        m->be->download(m->be, m->net->norm_host, m->net->norm,
                        2 * m->spec->input.c * sizeof(float));
done:
    free(ft);
    free(host);
    cn_st_close(&f);
    cn_backend_destroy(be);
    cn_spec_free(spec);
    if (st) {
        cn_model_free(m);
        return st;
    }
    *out = m;
    return CN_OK;
}
