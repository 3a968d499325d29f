/* recipe.c - the training recipe: one table of its keys, from which [train]
 * is read (io/spec.c), a model file's recipe is written and read (model.c)
 * and the command line offers its options; the checks and the text parsing
 * that go with it, and the learning-rate schedule. */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const policies[] = {"const", "step", "onecycle", "cosine", NULL};
static const char *const optimizers[] = {"sgd", "adam", "adamw", NULL};

/* The largest whole number a double holds exactly: the seed's limit. */
#define MAX_EXACT 9007199254740992.0

/* The enum fields are read and written as int. */
_Static_assert(sizeof(cn_lr_policy) == sizeof(int) && sizeof(cn_optimizer) == sizeof(int),
               "cn_lr_policy and cn_optimizer have the size of an int");

/* The place and C type of field f of cn_train_opts; a field of another
 * type does not compile. */
/* clang-format off */
#define FIELD_TYPE(x)                                                                              \
    _Generic((x), int: CN_FIELD_INT, cn_lr_policy: CN_FIELD_INT, cn_optimizer: CN_FIELD_INT,       \
                  double: CN_FIELD_DOUBLE, uint64_t: CN_FIELD_U64)
/* clang-format on */
#define FIELD(f) .offset = offsetof(cn_train_opts, f), .field = FIELD_TYPE(((cn_train_opts *)0)->f)

/* The recipe.  Its order is the order of the keys in a model file's JSON
 * (and so part of the file's bytes) and of train's --help. */
static const cn_recipe_key recipe[] = {
    {.key = {"epochs", "epochs", "N", "total number of epochs (with --resume: train up to N)",
             CN_TRAIN_WHOLE, 1, 1000000, 10, NULL},
     FIELD(epochs),
     .json = "epochs",
     .json_absent = CN_JSON_REQUIRED},
    {.key = {"batch", "batch", "N", "minibatch size", CN_TRAIN_WHOLE, 1, CN_MAX_BATCH, 64, NULL},
     FIELD(batch),
     .json = "batch",
     .json_absent = CN_JSON_REQUIRED},
    {.key = {"lr", "lr", "X", "initial learning rate", CN_TRAIN_NUMBER, 1e-12, 100, 0.01, NULL},
     FIELD(lr),
     .json = "lr",
     .json_absent = CN_JSON_REQUIRED},
    {.key = {"momentum", "momentum", "X", "mu in m = mu*m + (1-mu)*g", CN_TRAIN_NUMBER, 0, 0.9999,
             0.9, NULL},
     FIELD(momentum),
     .json = "momentum",
     .json_absent = CN_JSON_REQUIRED},
    {.key = {"decay", "decay", "X", "weight decay lambda in theta -= lr*(m + lambda*theta)",
             CN_TRAIN_NUMBER, 0, 1, 0, NULL},
     FIELD(decay),
     .json = "decay",
     .json_absent = CN_JSON_REQUIRED},
    {.key = {"lr_policy", "lr-policy", "P",
             "const, step (lr * gamma every --lr-step epochs), onecycle (up from lr/10 over the "
             "warm-up, then down to lr/1000) or cosine (warm-up, then half a cosine down to 0)",
             CN_TRAIN_CHOICE, 0, CN_LR_COSINE, CN_LR_CONST, policies},
     FIELD(policy),
     .json = "lr_policy",
     .json_absent = CN_JSON_REQUIRED},
    {.key = {"lr_step", "lr-step", "N", "epochs between learning-rate steps", CN_TRAIN_WHOLE, 1,
             1000000, 1, NULL},
     FIELD(lr_step),
     .json = "lr_step",
     .json_absent = CN_JSON_REQUIRED},
    {.key = {"lr_gamma", "lr-gamma", "X", "factor of each learning-rate step", CN_TRAIN_NUMBER,
             1e-6, 1, 0.1, NULL},
     FIELD(lr_gamma),
     .json = "lr_gamma",
     .json_absent = CN_JSON_REQUIRED},
    {.key = {"lr_warmup", "lr-warmup", "F", "fraction of training that warms up (onecycle, cosine)",
             CN_TRAIN_NUMBER, 0, 0.99, 0.25, NULL},
     FIELD(lr_warmup),
     .json = "lr_warmup",
     .json_absent = CN_JSON_DEFAULT},
    {.key = {"seed", "seed", "N", "seed of weight initialisation and shuffling", CN_TRAIN_WHOLE, 0,
             MAX_EXACT, 1, NULL},
     FIELD(seed),
     .json = "seed",
     .json_absent = CN_JSON_REQUIRED},
    {.key = {"optimizer", "optimizer", "O",
             "sgd (the lecture's), adam or adamw (beta1 is --momentum)", CN_TRAIN_CHOICE, 0,
             CN_OPT_ADAMW, CN_OPT_SGD, optimizers},
     FIELD(optimizer),
     .json = "optimizer",
     .json_absent = CN_JSON_KEEP},
    {.key = {"beta2", NULL, "X", "Adam: decay of the squared-gradient average", CN_TRAIN_NUMBER, 0,
             0.999999, 0.999, NULL},
     FIELD(beta2),
     .json = "beta2",
     .json_absent = CN_JSON_KEEP},
    {.key = {"eps", NULL, "X", "Adam: added to the root of the squared-gradient average",
             CN_TRAIN_NUMBER, 1e-12, 1, 1e-8, NULL},
     FIELD(eps),
     .json = "eps",
     .json_absent = CN_JSON_KEEP},
    {.key = {"shift", "shift", "N", "augmentation: shift each image by up to N pixels each way",
             CN_TRAIN_WHOLE, 0, 64, 0, NULL},
     FIELD(shift),
     .json = "shift",
     .json_absent = CN_JSON_KEEP},
    {.key = {"flip", "flip", "0|1", "augmentation: mirror half the images left-right",
             CN_TRAIN_WHOLE, 0, 1, 0, NULL},
     FIELD(flip),
     .json = "flip",
     .json_absent = CN_JSON_KEEP},
    {.key = {"rotate", "rotate", "DEG",
             "augmentation: rotate each image about its centre by a random angle in -DEG..DEG "
             "degrees (bilinear; zeros come in at the border)",
             CN_TRAIN_NUMBER, 0, 180, 0, NULL},
     FIELD(rotate),
     .json = "rotate",
     .json_absent = CN_JSON_OPTIONAL},
    {.key = {"scale", "scale", "F",
             "augmentation: scale each image about its centre by a random factor in 1-F..1+F",
             CN_TRAIN_NUMBER, 0, 0.5, 0, NULL},
     FIELD(scale),
     .json = "scale",
     .json_absent = CN_JSON_OPTIONAL},
    {.key = {"shear", "shear", "DEG",
             "augmentation: shear each image across by a random angle in -DEG..DEG degrees",
             CN_TRAIN_NUMBER, 0, 60, 0, NULL},
     FIELD(shear),
     .json = "shear",
     .json_absent = CN_JSON_OPTIONAL},
    {.key = {"erase", "erase", "P",
             "augmentation (random erasing): with probability P, set a random rectangle of the "
             "image, 2% to 40% of it with sides in a ratio up to 3.3, to 0",
             CN_TRAIN_NUMBER, 0, 1, 0, NULL},
     FIELD(erase),
     .json = "erase",
     .json_absent = CN_JSON_OPTIONAL},
    {.key = {"label_smoothing", "label-smoothing", "EPS",
             "train against (1-EPS) for the true class and EPS/classes for every class instead "
             "of 1 and 0 (the loss shown while training is this cross-entropy; evaluation's is "
             "the plain one)",
             CN_TRAIN_NUMBER, 0, 0.5, 0, NULL},
     FIELD(label_smoothing),
     .json = "label_smoothing",
     .json_absent = CN_JSON_OPTIONAL},
    {.key = {"ema", "ema", "DECAY",
             "keep an exponential moving average of the weights (and batch-normalisation "
             "statistics), avg = DECAY*avg + (1-DECAY)*w after every step (DECAY warming up as "
             "(1+t)/(10+t)); validation, the model file, eval and predict use the average (0: "
             "none; 0.999 averages about the last 1000 steps)",
             CN_TRAIN_NUMBER, 0, 0.99999, 0, NULL},
     FIELD(ema),
     .json = "ema",
     .json_absent = CN_JSON_OPTIONAL},
    {.key = {"elastic", "elastic", "PIX",
             "augmentation (elastic distortion): bend each image by a smooth random field, "
             "the corners of a 4 x 4 grid over it moved by up to PIX pixels each way and "
             "every point in between by the blend of its cell's corners (2.5 moves 28 x 28 "
             "digits about as much as Simard et al.'s field)",
             CN_TRAIN_NUMBER, 0, 8, 0, NULL},
     FIELD(elastic),
     .json = "elastic",
     .json_absent = CN_JSON_OPTIONAL},
    {.key = {"mixup", "mixup", "P",
             "with probability P, blend each training image with another one drawn from the "
             "training set (itself shifted and flipped as training's images are): pixels w x "
             "+ (1-w) x' and target w of its label plus 1-w of the other's (with "
             "--label-smoothing on top), w uniform in 0..1; the loss shown while training is "
             "against that target, the accuracy against the label of the larger share",
             CN_TRAIN_NUMBER, 0, 1, 0, NULL},
     FIELD(mixup),
     .json = "mixup",
     .json_absent = CN_JSON_OPTIONAL},
};
_Static_assert(sizeof recipe / sizeof recipe[0] == CN_RECIPE_KEYS,
               "CN_RECIPE_KEYS is the number of keys in the table");

/* The index of name in the NULL-terminated list, or -1. */
static int index_of(const char *const *names, const char *name)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

const cn_recipe_key *cn_recipe_key_at(size_t i) { return i < CN_RECIPE_KEYS ? &recipe[i] : NULL; }

size_t cn_train_key_count(void) { return CN_RECIPE_KEYS; }

const cn_train_key *cn_train_key_at(size_t i) { return i < CN_RECIPE_KEYS ? &recipe[i].key : NULL; }

static const cn_recipe_key *find(const char *name)
{
    for (size_t i = 0; name && i < CN_RECIPE_KEYS; i++) {
        const cn_train_key *k = &recipe[i].key;
        if (strcmp(k->name, name) == 0 || (k->option && strcmp(k->option, name) == 0))
            return &recipe[i];
    }
    return NULL;
}

const cn_train_key *cn_train_key_find(const char *name)
{
    const cn_recipe_key *k = find(name);
    return k ? &k->key : NULL;
}

double cn_recipe_get(const cn_train_opts *o, const cn_recipe_key *k)
{
    const char *p = (const char *)o + k->offset;
    switch (k->field) {
    case CN_FIELD_INT: return *(const int *)p;
    case CN_FIELD_U64: return (double)*(const uint64_t *)p;
    default: return *(const double *)p;
    }
}

int cn_recipe_fits(const cn_recipe_key *k, double v)
{
    return v >= k->key.min && v <= k->key.max && (k->key.type == CN_TRAIN_NUMBER || v == floor(v));
}

int cn_recipe_word(const cn_recipe_key *k, const char *word)
{
    return k->key.choices ? index_of(k->key.choices, word) : -1;
}

void cn_recipe_put(cn_train_opts *o, const cn_recipe_key *k, double v)
{
    char *p = (char *)o + k->offset;
    switch (k->field) {
    case CN_FIELD_INT: *(int *)p = (int)v; break;
    case CN_FIELD_U64: *(uint64_t *)p = (uint64_t)v; break;
    default: *(double *)p = v; break;
    }
}

void cn_recipe_section_keys(cn_key keys[CN_RECIPE_KEYS])
{
    for (size_t i = 0; i < CN_RECIPE_KEYS; i++) {
        const cn_train_key *k = &recipe[i].key;
        keys[i] = (cn_key){.name = k->name,
                           .type = k->type == CN_TRAIN_NUMBER ? CN_KEY_NUMBER : CN_KEY_INT,
                           .min = k->min,
                           .max = k->max,
                           .def = k->def,
                           .choices = k->choices};
    }
}

void cn_train_opts_defaults(cn_train_opts *o)
{
    memset(o, 0, sizeof *o);
    for (size_t i = 0; i < CN_RECIPE_KEYS; i++)
        cn_recipe_put(o, &recipe[i], recipe[i].key.def);
}

cn_status cn_train_opts_check(const cn_train_opts *o)
{
    for (size_t i = 0; i < CN_RECIPE_KEYS; i++) {
        const cn_train_key *k = &recipe[i].key;
        double v = cn_recipe_get(o, &recipe[i]);
        if (!(v >= k->min && v <= k->max))
            return cn_fail(CN_ERR_ARG, "%s must be between %g and %g, got %g", k->name, k->min,
                           k->max, v);
    }
    return CN_OK;
}

/* "a, b or c" into buf. */
static const char *either(const char *const *words, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; words[i] && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%s",
                                i == 0         ? ""
                                : words[i + 1] ? ", "
                                               : " or ",
                                words[i]);
    return buf;
}

cn_status cn_train_opts_set(cn_train_opts *o, const char *key, const char *text)
{
    if (!o || !key || !text)
        return cn_fail(CN_ERR_ARG, "cn_train_opts_set: opts, key and text must not be NULL");
    const cn_recipe_key *rk = find(key);
    if (!rk) {
        char list[256];
        size_t len = 0;
        for (size_t i = 0; i < CN_RECIPE_KEYS && len < sizeof list; i++)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "",
                                    recipe[i].key.name);
        return cn_fail(CN_ERR_ARG, "the training recipe has no key '%s'; its keys are: %s", key,
                       list);
    }
    const cn_train_key *k = &rk->key;
    double v;
    if (k->type == CN_TRAIN_CHOICE) {
        int c = index_of(k->choices, text);
        if (c < 0) {
            char list[128];
            return cn_fail(CN_ERR_ARG, "%s is %s, not '%s'", key,
                           either(k->choices, list, sizeof list), text);
        }
        v = c;
    } else {
        char *end;
        errno = 0;
        v = strtod(text, &end);
        int ok =
            end != text && *end == '\0' && errno != ERANGE && isfinite(v) && cn_recipe_fits(rk, v);
        if (!ok) {
            if (k->type == CN_TRAIN_WHOLE && k->max == k->min + 1)
                return cn_fail(CN_ERR_ARG, "%s is %.15g or %.15g, not '%s'", key, k->min, k->max,
                               text);
            if (k->type == CN_TRAIN_WHOLE && k->max >= MAX_EXACT)
                return cn_fail(CN_ERR_ARG, "%s takes a whole number >= %.15g, not '%s'", key,
                               k->min, text);
            return cn_fail(CN_ERR_ARG, "%s takes a %s from %.15g to %.15g, not '%s'", key,
                           k->type == CN_TRAIN_WHOLE ? "whole number" : "number", k->min, k->max,
                           text);
        }
    }
    cn_recipe_put(o, rk, v);
    return CN_OK;
}

/* ------------------------------------------------- words and the schedule */

const char *cn_optimizer_name(cn_optimizer o)
{
    return o >= CN_OPT_SGD && o <= CN_OPT_ADAMW ? optimizers[o] : "?";
}

const char *cn_lr_policy_name(cn_lr_policy p)
{
    return p >= CN_LR_CONST && p <= CN_LR_COSINE ? policies[p] : "?";
}

int cn_lr_policy_by_name(const char *name) { return index_of(policies, name); }
int cn_optimizer_by_name(const char *name) { return index_of(optimizers, name); }

double cn_train_opts_lr(const cn_train_opts *o, double epoch)
{
    double t = epoch / o->epochs, w = o->lr_warmup;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    int warming = (o->policy == CN_LR_ONECYCLE || o->policy == CN_LR_COSINE) && t < w;
    if (warming) /* both: linearly up from lr / 10 */
        return o->lr / 10 + (o->lr - o->lr / 10) * t / w;
    switch (o->policy) {
    case CN_LR_STEP: return o->lr * pow(o->lr_gamma, floor(floor(epoch) / o->lr_step));
    case CN_LR_ONECYCLE: return o->lr + (o->lr / 1000 - o->lr) * (t - w) / (1 - w);
    case CN_LR_COSINE: return o->lr * 0.5 * (1 + cos(3.14159265358979323846 * (t - w) / (1 - w)));
    case CN_LR_CONST: break;
    }
    return o->lr;
}
