/* test_recipe.c - the training recipe: the table of its keys, setting keys
 * from text, its JSON in model files (which must not change: a model file's
 * bytes depend on it), old files that lack later keys, and damaged recipes. */
#include "harness.h"
#include "internal.h"
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#define NET    "[net]\nchannels=1\nheight=4\nwidth=4\nclasses=2\n"
#define LAYERS "[fc]\noutputs=2\n[softmax]\n"

/* The JSON of the recipe of a [train] section that sets nothing. */
static const char DEFAULT_JSON[] =
    "{\"epochs\":10,\"batch\":64,\"lr\":0.01,\"momentum\":0.9,\"decay\":0,\"lr_policy\":\"const\","
    "\"lr_step\":1,\"lr_gamma\":0.1,\"lr_warmup\":0.25,\"seed\":1,\"optimizer\":\"sgd\","
    "\"beta2\":0.999,\"eps\":1e-08,\"shift\":0,\"flip\":0}";

/* The recipe of a description without [train]. */
static int default_opts(cn_train_opts *o)
{
    cn_spec *spec = th_spec(NET LAYERS);
    if (!spec)
        return 0;
    cn_spec_train_opts(spec, o);
    cn_spec_free(spec);
    return 1;
}

/* A recipe with every key away from its default. */
static cn_train_opts other_opts(void)
{
    cn_train_opts o = (cn_train_opts){.epochs = 3,
                                      .batch = 17,
                                      .lr = 0.125,
                                      .momentum = 0.5,
                                      .decay = 0.001,
                                      .policy = CN_LR_COSINE,
                                      .lr_step = 4,
                                      .lr_gamma = 0.5,
                                      .lr_warmup = 0.1,
                                      .seed = 42,
                                      .optimizer = CN_OPT_ADAMW,
                                      .beta2 = 0.99,
                                      .eps = 1e-6,
                                      .shift = 3,
                                      .flip = 1,
                                      .rotate = 12.5,
                                      .scale = 0.25,
                                      .shear = 7.5,
                                      .erase = 0.5,
                                      .label_smoothing = 0.125,
                                      .ema = 0.99,
                                      .elastic = 2.5,
                                      .mixup = 0.375};
    return o;
}

static int same_opts(const cn_train_opts *a, const cn_train_opts *b)
{
    return a->epochs == b->epochs && a->batch == b->batch && a->lr == b->lr &&
           a->momentum == b->momentum && a->decay == b->decay && a->policy == b->policy &&
           a->lr_step == b->lr_step && a->lr_gamma == b->lr_gamma && a->lr_warmup == b->lr_warmup &&
           a->seed == b->seed && a->optimizer == b->optimizer && a->beta2 == b->beta2 &&
           a->eps == b->eps && a->shift == b->shift && a->flip == b->flip &&
           a->rotate == b->rotate && a->scale == b->scale && a->shear == b->shear &&
           a->erase == b->erase && a->label_smoothing == b->label_smoothing && a->ema == b->ema &&
           a->elastic == b->elastic && a->mixup == b->mixup;
}

static void json_of_default_recipe(void)
{
    cn_train_opts o;
    CHECK(default_opts(&o));
    char *json = cn_train_opts_json(&o);
    CHECK(json);
    int same = strcmp(json, DEFAULT_JSON) == 0;
    CHECK_MSG(same, "got %s", json);
    cJSON_free(json);
}

/* The same text is what a model file holds. */
static void json_in_model_file(void)
{
    cn_spec *spec = th_spec(NET LAYERS);
    CHECK(spec);
    cn_model *m = NULL;
    cn_status st = cn_model_create(spec, NULL, th_dev(1), &m);
    cn_spec_free(spec);
    CHECK_OK(st);
    const char *path = th_path("recipe.safetensors");
    st = cn_model_save(m, path);
    cn_model_free(m);
    CHECK_OK(st);
    cn_st_file f;
    CHECK_OK(cn_st_open(path, &f));
    const char *json = cn_st_meta(&f, "convnet.train");
    int same = json && strcmp(json, DEFAULT_JSON) == 0;
    if (!same)
        th_fail(__FILE__, __LINE__, "convnet.train is %s", json ? json : "missing");
    cn_st_close(&f);
}

static void json_round_trip(void)
{
    cn_train_opts o = other_opts(), back;
    CHECK(default_opts(&back));
    char *json = cn_train_opts_json(&o);
    CHECK(json);
    cn_status st = cn_train_opts_read_json("m.safetensors", json, &back);
    cJSON_free(json);
    CHECK_OK(st);
    CHECK(same_opts(&o, &back));
}

/* Files written before lr_warmup, optimizer, beta2, eps, shift and flip
 * existed: lr_warmup was 0.25, the others keep the description's values;
 * before rotate, scale, shear, erase, label_smoothing, ema, elastic and
 * mixup: they were off. */
static void json_of_old_files(void)
{
    cn_train_opts o = other_opts(), want = other_opts();
    const char *old = "{\"epochs\":5,\"batch\":32,\"lr\":0.5,\"momentum\":0.8,\"decay\":0.01,"
                      "\"lr_policy\":\"step\",\"lr_step\":2,\"lr_gamma\":0.3,\"seed\":7}";
    CHECK_OK(cn_train_opts_read_json("old.safetensors", old, &o));
    want.epochs = 5;
    want.batch = 32;
    want.lr = 0.5;
    want.momentum = 0.8;
    want.decay = 0.01;
    want.policy = CN_LR_STEP;
    want.lr_step = 2;
    want.lr_gamma = 0.3;
    want.seed = 7;
    want.lr_warmup = 0.25;
    want.rotate = want.scale = want.shear = want.erase = want.label_smoothing = want.ema = 0;
    want.elastic = want.mixup = 0;
    CHECK(same_opts(&o, &want));
}

/* The keys added since rotate are written only when set: a recipe that
 * does not use them gives the JSON (and the model file) it always gave. */
static void json_has_optional_keys_when_set(void)
{
    cn_train_opts o;
    cn_train_opts_defaults(&o);
    CHECK_OK(cn_train_opts_set(&o, "rotate", "10"));
    CHECK_OK(cn_train_opts_set(&o, "shear", "2.5"));
    char *json = cn_train_opts_json(&o);
    CHECK(json);
    CHECK_MSG(th_contains(json, ",\"flip\":0,\"rotate\":10,\"shear\":2.5}"), "got %s", json);
    CHECK(!th_contains(json, "scale"));
    cn_train_opts back = other_opts();
    CHECK_OK(cn_train_opts_read_json("m.safetensors", json, &back));
    CHECK(back.rotate == 10 && back.shear == 2.5 && back.scale == 0);
    cJSON_free(json);
}

static void refuses_damaged_recipes(void)
{
    static const char *const damaged[] = {
        "not json",
        "[1, 2]",
        /* a key that every file has is missing, or of the wrong type */
        "{\"batch\":64,\"lr\":0.01,\"momentum\":0.9,\"decay\":0,\"lr_policy\":\"const\","
        "\"lr_step\":1,\"lr_gamma\":0.1,\"seed\":1}",
        "{\"epochs\":10,\"batch\":64,\"lr\":0.01,\"momentum\":0.9,\"decay\":0,\"lr_policy\":0,"
        "\"lr_step\":1,\"lr_gamma\":0.1,\"seed\":1}",
        "{\"epochs\":\"10\",\"batch\":64,\"lr\":0.01,\"momentum\":0.9,\"decay\":0,"
        "\"lr_policy\":\"const\",\"lr_step\":1,\"lr_gamma\":0.1,\"seed\":1}",
        /* values out of range, or unknown words */
        "{\"epochs\":0,\"batch\":64,\"lr\":0.01,\"momentum\":0.9,\"decay\":0,\"lr_policy\":"
        "\"const\","
        "\"lr_step\":1,\"lr_gamma\":0.1,\"seed\":1}",
        "{\"epochs\":10,\"batch\":65537,\"lr\":0.01,\"momentum\":0.9,\"decay\":0,"
        "\"lr_policy\":\"const\",\"lr_step\":1,\"lr_gamma\":0.1,\"seed\":1}",
        "{\"epochs\":10,\"batch\":64,\"lr\":-1,\"momentum\":0.9,\"decay\":0,\"lr_policy\":"
        "\"const\","
        "\"lr_step\":1,\"lr_gamma\":0.1,\"seed\":1}",
        "{\"epochs\":10,\"batch\":64,\"lr\":0.01,\"momentum\":0.9,\"decay\":0,"
        "\"lr_policy\":\"linear\",\"lr_step\":1,\"lr_gamma\":0.1,\"seed\":1}",
        "{\"epochs\":10,\"batch\":64,\"lr\":0.01,\"momentum\":0.9,\"decay\":0,\"lr_policy\":"
        "\"const\","
        "\"lr_step\":1,\"lr_gamma\":0.1,\"seed\":-1}",
        "{\"epochs\":10,\"batch\":64,\"lr\":0.01,\"momentum\":0.9,\"decay\":0,\"lr_policy\":"
        "\"const\","
        "\"lr_step\":1,\"lr_gamma\":0.1,\"seed\":1,\"lr_warmup\":1}",
        "{\"epochs\":10,\"batch\":64,\"lr\":0.01,\"momentum\":0.9,\"decay\":0,\"lr_policy\":"
        "\"const\","
        "\"lr_step\":1,\"lr_gamma\":0.1,\"seed\":1,\"optimizer\":\"rmsprop\"}",
        "{\"epochs\":10,\"batch\":64,\"lr\":0.01,\"momentum\":0.9,\"decay\":0,\"lr_policy\":"
        "\"const\","
        "\"lr_step\":1,\"lr_gamma\":0.1,\"seed\":1,\"beta2\":1}",
        "{\"epochs\":10,\"batch\":64,\"lr\":0.01,\"momentum\":0.9,\"decay\":0,\"lr_policy\":"
        "\"const\","
        "\"lr_step\":1,\"lr_gamma\":0.1,\"seed\":1,\"shift\":65}",
        "{\"epochs\":10,\"batch\":64,\"lr\":0.01,\"momentum\":0.9,\"decay\":0,\"lr_policy\":"
        "\"const\","
        "\"lr_step\":1,\"lr_gamma\":0.1,\"seed\":1,\"flip\":2}",
        "{\"epochs\":10,\"batch\":64,\"lr\":0.01,\"momentum\":0.9,\"decay\":0,\"lr_policy\":"
        "\"const\",\"lr_step\":1,\"lr_gamma\":0.1,\"seed\":1,\"rotate\":181}",
        "{\"epochs\":10,\"batch\":64,\"lr\":0.01,\"momentum\":0.9,\"decay\":0,\"lr_policy\":"
        "\"const\",\"lr_step\":1,\"lr_gamma\":0.1,\"seed\":1,\"scale\":0.75}",
        "{\"epochs\":10,\"batch\":64,\"lr\":0.01,\"momentum\":0.9,\"decay\":0,\"lr_policy\":"
        "\"const\",\"lr_step\":1,\"lr_gamma\":0.1,\"seed\":1,\"shear\":\"5\"}",
        "{\"epochs\":10,\"batch\":64,\"lr\":0.01,\"momentum\":0.9,\"decay\":0,\"lr_policy\":"
        "\"const\",\"lr_step\":1,\"lr_gamma\":0.1,\"seed\":1,\"erase\":-0.5}",
        "{\"epochs\":10,\"batch\":64,\"lr\":0.01,\"momentum\":0.9,\"decay\":0,\"lr_policy\":"
        "\"const\",\"lr_step\":1,\"lr_gamma\":0.1,\"seed\":1,\"ema\":1}",
        /* whole numbers that are not whole */
        "{\"epochs\":2.5,\"batch\":64,\"lr\":0.01,\"momentum\":0.9,\"decay\":0,"
        "\"lr_policy\":\"const\",\"lr_step\":1,\"lr_gamma\":0.1,\"seed\":1}",
        "{\"epochs\":10,\"batch\":64,\"lr\":0.01,\"momentum\":0.9,\"decay\":0,\"lr_policy\":"
        "\"const\","
        "\"lr_step\":1,\"lr_gamma\":0.1,\"seed\":1,\"flip\":0.5}",
    };
    for (size_t i = 0; i < sizeof damaged / sizeof damaged[0]; i++) {
        cn_train_opts o;
        CHECK(default_opts(&o));
        cn_status st = cn_train_opts_read_json("d.safetensors", damaged[i], &o);
        CHECK_MSG(st == CN_ERR_FORMAT, "recipe %zu (%s) was read: %s", i, damaged[i],
                  cn_status_name(st));
        CHECK(strcmp(cn_last_error(), "d.safetensors: the training recipe (convnet.train) is "
                                      "damaged") == 0);
    }
}

/* The keys in the order of the JSON, each with a default in its range. */
static void keys_describe_the_recipe(void)
{
    static const char *const names[] = {
        "epochs",  "batch",           "lr",        "momentum", "decay",     "lr_policy",
        "lr_step", "lr_gamma",        "lr_warmup", "seed",     "optimizer", "beta2",
        "eps",     "shift",           "flip",      "rotate",   "scale",     "shear",
        "erase",   "label_smoothing", "ema",       "elastic",  "mixup"};
    CHECK(cn_train_key_count() == sizeof names / sizeof names[0]);
    CHECK(cn_train_key_at(cn_train_key_count()) == NULL);
    for (size_t i = 0; i < cn_train_key_count(); i++) {
        const cn_train_key *k = cn_train_key_at(i);
        CHECK(k && strcmp(k->name, names[i]) == 0);
        CHECK_MSG(k->help && *k->help && k->arg && *k->arg, "%s lacks its help", k->name);
        CHECK_MSG(k->min <= k->def && k->def <= k->max, "%s: default out of range", k->name);
        CHECK(cn_train_key_find(k->name) == k);
        if (k->option)
            CHECK(cn_train_key_find(k->option) == k);
        if (k->type == CN_TRAIN_CHOICE) {
            size_t n = 0;
            while (k->choices[n])
                n++;
            CHECK_MSG(k->min == 0 && k->max == (double)(n - 1), "%s: range is not its words",
                      k->name);
        } else {
            CHECK(k->choices == NULL);
        }
        for (size_t j = 0; j < i; j++) {
            const cn_train_key *o = cn_train_key_at(j);
            CHECK(!k->option || !o->option || strcmp(k->option, o->option) != 0);
        }
    }
    CHECK(cn_train_key_find("lr-policy") == cn_train_key_find("lr_policy"));
    CHECK(cn_train_key_find("epoch") == NULL && cn_train_key_find(NULL) == NULL);
    /* The defaults are the recipe of a description without [train]. */
    cn_train_opts d, s;
    cn_train_opts_defaults(&d);
    CHECK(default_opts(&s));
    CHECK(same_opts(&d, &s));
    CHECK_OK(cn_train_opts_check(&d));
}

/* text: the value of k at its minimum (which = 0) or maximum, as
 * cn_train_opts_set takes it. */
static const char *bound(const cn_train_key *k, int which, char *buf, size_t size)
{
    double v = which ? k->max : k->min;
    if (k->type == CN_TRAIN_CHOICE)
        return k->choices[(size_t)v];
    snprintf(buf, size, "%.17g", v);
    return buf;
}

/* Every key's default, and each key at either end of its range, written
 * and read back.  (cJSON writes 15 significant digits: a seed above 10^15 is
 * written rounded, so the largest seed tried is 10^15 - 1.) */
static void every_key_round_trips(void)
{
    for (size_t i = 0; i <= cn_train_key_count(); i++)
        for (int which = 0; which < 2; which++) {
            cn_train_opts o, back = other_opts();
            cn_train_opts_defaults(&o);
            if (i < cn_train_key_count()) {
                const cn_train_key *k = cn_train_key_at(i);
                char buf[64];
                const char *text = bound(k, which, buf, sizeof buf);
                if (strcmp(k->name, "seed") == 0 && which)
                    text = "999999999999999";
                CHECK_OK(cn_train_opts_set(&o, k->name, text));
            }
            char *json = cn_train_opts_json(&o);
            CHECK(json);
            cn_status st = cn_train_opts_read_json("m.safetensors", json, &back);
            cJSON_free(json);
            CHECK_OK(st);
            CHECK_MSG(same_opts(&o, &back), "key %zu (%s) did not come back", i,
                      which ? "max" : "min");
        }
}

static void set_reads_values(void)
{
    cn_train_opts o;
    cn_train_opts_defaults(&o);
    CHECK_OK(cn_train_opts_set(&o, "lr-policy", "onecycle"));
    CHECK(o.policy == CN_LR_ONECYCLE);
    CHECK_OK(cn_train_opts_set(&o, "lr_policy", "step"));
    CHECK(o.policy == CN_LR_STEP);
    CHECK_OK(cn_train_opts_set(&o, "optimizer", "adamw"));
    CHECK(o.optimizer == CN_OPT_ADAMW);
    CHECK_OK(cn_train_opts_set(&o, "lr", "0.05"));
    CHECK(o.lr == 0.05);
    CHECK_OK(cn_train_opts_set(&o, "batch", "65536"));
    CHECK(o.batch == 65536);
    CHECK_OK(cn_train_opts_set(&o, "seed", "9007199254740992"));
    CHECK(o.seed == 9007199254740992ULL);
    CHECK_OK(cn_train_opts_set(&o, "lr-warmup", "0.5"));
    CHECK(o.lr_warmup == 0.5);
    CHECK_OK(cn_train_opts_set(&o, "eps", "1e-7"));
    CHECK(o.eps == 1e-7);
    CHECK_OK(cn_train_opts_set(&o, "flip", "1"));
    CHECK(o.flip == 1);
}

/* key=text must be refused, o left as it was, with message. */
static int refused(const char *key, const char *text, const char *message)
{
    cn_train_opts o, before;
    cn_train_opts_defaults(&o);
    before = o;
    cn_status st = cn_train_opts_set(&o, key, text);
    if (st != CN_ERR_ARG || memcmp(&o, &before, sizeof o) != 0 ||
        (message && strcmp(cn_last_error(), message) != 0)) {
        th_fail(__FILE__, __LINE__, "%s = '%s': %s: %s", key, text, cn_status_name(st),
                cn_last_error());
        return 0;
    }
    /* What is refused names the key as given and the value. */
    char quoted[64];
    snprintf(quoted, sizeof quoted, "'%s'", text);
    if (strncmp(cn_last_error(), key, strlen(key)) != 0 || !th_contains(cn_last_error(), quoted)) {
        th_fail(__FILE__, __LINE__, "%s = '%s': %s", key, text, cn_last_error());
        return 0;
    }
    return 1;
}

static void set_refuses_bad_values(void)
{
    /* The messages say what the key takes. */
    CHECK(refused("lr", "fast", "lr takes a number from 1e-12 to 100, not 'fast'"));
    CHECK(refused("lr-policy", "linear",
                  "lr-policy is const, step, onecycle or cosine, not 'linear'"));
    CHECK(refused("optimizer", "rmsprop", "optimizer is sgd, adam or adamw, not 'rmsprop'"));
    CHECK(refused("flip", "2", "flip is 0 or 1, not '2'"));
    CHECK(refused("seed", "-1", "seed takes a whole number >= 0, not '-1'"));
    CHECK(refused("epochs", "2.5", "epochs takes a whole number from 1 to 1000000, not '2.5'"));
    CHECK(refused("momentum", "1", "momentum takes a number from 0 to 0.9999, not '1'"));
    CHECK(refused("rotate", "200", "rotate takes a number from 0 to 180, not '200'"));
    CHECK(refused("scale", "-0.1", "scale takes a number from 0 to 0.5, not '-0.1'"));
    CHECK(refused("shear", "90", "shear takes a number from 0 to 60, not '90'"));
    CHECK(refused("erase", "1.5", "erase takes a number from 0 to 1, not '1.5'"));
    CHECK(refused("label-smoothing", "0.6",
                  "label-smoothing takes a number from 0 to 0.5, not '0.6'"));
    CHECK(refused("ema", "1", "ema takes a number from 0 to 0.99999, not '1'"));
    /* Malformed values, for every key. */
    static const char *const malformed[] = {"", "x", "1x", "nan", "inf", "1e999", " ", "0.5.1"};
    for (size_t i = 0; i < cn_train_key_count(); i++) {
        const cn_train_key *k = cn_train_key_at(i);
        for (size_t m = 0; m < sizeof malformed / sizeof malformed[0]; m++)
            CHECK(refused(k->name, malformed[m], NULL));
        /* Out of range at both ends; not whole where whole numbers are due. */
        char text[64];
        if (k->type == CN_TRAIN_CHOICE) {
            CHECK(refused(k->name, "0", NULL));
            continue;
        }
        snprintf(text, sizeof text, "%.17g", k->min > 0 ? k->min / 2 : k->min - 1);
        CHECK(refused(k->name, text, NULL));
        snprintf(text, sizeof text, "%.17g", k->max * 2 + 1);
        CHECK(refused(k->name, text, NULL));
        if (k->type == CN_TRAIN_WHOLE) {
            snprintf(text, sizeof text, "%.17g", k->min + 0.5);
            CHECK(refused(k->name, text, NULL));
        }
    }
    /* An unknown key lists the keys. */
    cn_train_opts o;
    cn_train_opts_defaults(&o);
    CHECK_ERR(cn_train_opts_set(&o, "epoch", "3"), CN_ERR_ARG);
    CHECK(th_contains(cn_last_error(), "no key 'epoch'") &&
          th_contains(cn_last_error(), "epochs, batch, lr,"));
    CHECK_ERR(cn_train_opts_set(&o, "lr", NULL), CN_ERR_ARG);
}

/* cn_train_opts_check checks every field against its key's range. */
static void check_covers_every_key(void)
{
    for (size_t i = 0; i < CN_RECIPE_KEYS; i++) {
        const cn_recipe_key *k = cn_recipe_key_at(i);
        double outside[2] = {k->key.min > 0 ? k->key.min / 2 : k->key.min - 1, k->key.max * 2 + 1};
        for (int end = k->field == CN_FIELD_U64 && k->key.min == 0; end < 2; end++) {
            cn_train_opts o;
            cn_train_opts_defaults(&o);
            cn_recipe_put(&o, k, outside[end]);
            CHECK_ERR(cn_train_opts_check(&o), CN_ERR_ARG);
            char want[64];
            snprintf(want, sizeof want, "%s must be between", k->key.name);
            CHECK_MSG(strncmp(cn_last_error(), want, strlen(want)) == 0, "%s", cn_last_error());
        }
    }
}

const th_test th_recipe[] = {
    {"recipe/keys_describe_the_recipe", keys_describe_the_recipe},
    {"recipe/every_key_round_trips", every_key_round_trips},
    {"recipe/set_reads_values", set_reads_values},
    {"recipe/set_refuses_bad_values", set_refuses_bad_values},
    {"recipe/check_covers_every_key", check_covers_every_key},
    {"recipe/json_of_default_recipe", json_of_default_recipe},
    {"recipe/json_in_model_file", json_in_model_file},
    {"recipe/json_round_trip", json_round_trip},
    {"recipe/json_of_old_files", json_of_old_files},
    {"recipe/json_has_optional_keys_when_set", json_has_optional_keys_when_set},
    {"recipe/refuses_damaged_recipes", refuses_damaged_recipes},
    {NULL, NULL},
};
