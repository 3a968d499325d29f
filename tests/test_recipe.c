/* test_recipe.c - the training recipe: its JSON in model files (which must
 * not change: a model file's bytes depend on it), old files that lack later
 * keys, and damaged recipes. */
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
    cn_train_opts o = (cn_train_opts){
        3, 17, 0.125, 0.5, 0.001, CN_LR_COSINE, 4, 0.5, 0.1, 42, CN_OPT_ADAMW, 0.99, 1e-6, 3, 1};
    return o;
}

static int same_opts(const cn_train_opts *a, const cn_train_opts *b)
{
    return a->epochs == b->epochs && a->batch == b->batch && a->lr == b->lr &&
           a->momentum == b->momentum && a->decay == b->decay && a->policy == b->policy &&
           a->lr_step == b->lr_step && a->lr_gamma == b->lr_gamma && a->lr_warmup == b->lr_warmup &&
           a->seed == b->seed && a->optimizer == b->optimizer && a->beta2 == b->beta2 &&
           a->eps == b->eps && a->shift == b->shift && a->flip == b->flip;
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
    cn_status st = cn_model_create(spec, NULL, 1, &m);
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
 * existed: lr_warmup was 0.25, the others keep the description's values. */
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
    CHECK(same_opts(&o, &want));
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

const th_test th_recipe[] = {
    {"recipe/json_of_default_recipe", json_of_default_recipe},
    {"recipe/json_in_model_file", json_in_model_file},
    {"recipe/json_round_trip", json_round_trip},
    {"recipe/json_of_old_files", json_of_old_files},
    {"recipe/refuses_damaged_recipes", refuses_damaged_recipes},
    {NULL, NULL},
};
