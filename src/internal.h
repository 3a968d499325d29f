/* internal.h - what the library's files share and callers do not see. */
#ifndef CN_INTERNAL_H
#define CN_INTERNAL_H

#include "backend/backend.h"
#include "convnet.h"

#include <stdarg.h>

/* ---------------------------------------------------------------- errors */

/* Records a message for cn_last_error() and returns st.  The message is
 * written for the user; the C source location is appended only when the
 * environment variable CONVNET_DEBUG is set. */
cn_status cn_fail_at(const char *file, int line, cn_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define cn_fail(st, ...) cn_fail_at(__FILE__, __LINE__, st, __VA_ARGS__)
/* Prefixes the current message with text ("while loading x: ..."). */
void cn_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* v[0..n) joined by sep ("2 x 28 x 28", "2,3") into buf, cut to its size. */
const char *cn_join_sizes(const size_t *v, int n, const char *sep, char *buf, size_t size);

/* Allocation that is 64-byte aligned and zeroed; NULL on failure or when the
 * byte count overflows.  Free with cn_free. */
void *cn_alloc(size_t count, size_t size);
void cn_free(void *p);
/* a * b, or SIZE_MAX when it overflows. */
size_t cn_mul(size_t a, size_t b);
size_t cn_add(size_t a, size_t b);

static inline size_t cn_shape_size(cn_shape s) { return s.c * s.h * s.w; }

/* ------------------------------------------------------------------ spec */

typedef struct cn_entry {
    char *key, *value;
    int line;
} cn_entry;

typedef struct cn_section {
    char *kind;
    int line;
    cn_entry *entries;
    size_t n_entries;
} cn_section;

struct cn_spec {
    char *text, *source;
    cn_section *sections;
    size_t n_sections;
    /* [net] */
    int net_line, classes_line; /* where [net] and its 'classes' are */
    cn_shape input;
    size_t classes;
    float mean, std;
    int norm_channel; /* normalise = channel: per-channel mean and std measured
                         on the training set when training starts */
    cn_train_opts train;
};

/* What a key's value is: a number, a whole number, or a name (any word;
 * its value in vals is 0 and the section's text is read where it is used,
 * as [shortcut] does with 'from'). */
enum { CN_KEY_NUMBER = 0, CN_KEY_INT = 1, CN_KEY_NAME = 2 };

/* A key a section accepts: its name, type, range and default.  A key with
 * choices takes one of those words; its value is the index. */
typedef struct cn_key {
    const char *name;
    int type; /* CN_KEY_NUMBER, CN_KEY_INT or CN_KEY_NAME */
    double min, max, def;
    int required;
    const char *const *choices; /* NULL-terminated, or NULL for numbers */
} cn_key;

#define CN_MAX_KEYS 8

/* Looks up every key of keys in sec and stores its value (or default) in
 * vals; unknown keys, missing required keys, non-numbers and values out of
 * range are errors with source:line.  Layer sections also accept "name". */
cn_status cn_section_read(const cn_spec *spec, const cn_section *sec, const cn_key *keys,
                          size_t nkeys, int is_layer, double *vals);
/* The entry of key in sec, or NULL. */
const cn_entry *cn_section_get(const cn_section *sec, const char *key);
/* 1 unless sec is [net] or [train]. */
int cn_is_layer_section(const cn_section *sec);

/* ----------------------------------------------------------------- recipe */

/* The number of keys of the training recipe (recipe.c's table has these). */
#define CN_RECIPE_KEYS 15

/* The C type of a cn_train_opts field: int (the enums too), double or
 * uint64_t. */
enum { CN_FIELD_INT, CN_FIELD_DOUBLE, CN_FIELD_U64 };

/* What reading a model file's recipe does with a key the file lacks (the
 * first files were written before some keys existed). */
enum {
    CN_JSON_REQUIRED, /* every file has it: without it the recipe is damaged */
    CN_JSON_DEFAULT,  /* the key's default: what files without it trained with */
    CN_JSON_KEEP      /* the value of the file's description stands */
};

/* A key of the recipe: what callers see of it, and where it is kept. */
typedef struct cn_recipe_key {
    cn_train_key key;
    size_t offset;    /* of its field in cn_train_opts */
    int field;        /* CN_FIELD_*: the C type of that field */
    const char *json; /* its name in a model file's recipe (convnet.train) */
    int json_absent;  /* CN_JSON_*: when a model file lacks it */
} cn_recipe_key;

/* Key i of the table, 0 <= i < CN_RECIPE_KEYS, in the order of the JSON. */
const cn_recipe_key *cn_recipe_key_at(size_t i);
/* The value of k's field in o as a number (a choice: the word's index). */
double cn_recipe_get(const cn_train_opts *o, const cn_recipe_key *k);
/* Whether k takes the value v: in its range, and whole unless k is a
 * number. */
int cn_recipe_fits(const cn_recipe_key *k, double v);
/* The index of word among the choices of k, or -1. */
int cn_recipe_word(const cn_recipe_key *k, const char *word);
/* Sets k's field of o to v, a value that fits. */
void cn_recipe_put(cn_train_opts *o, const cn_recipe_key *k, double v);
/* The recipe's keys as cn_section_read takes them, for [train]. */
void cn_recipe_section_keys(cn_key keys[CN_RECIPE_KEYS]);

/* ----------------------------------------------------------------- layers */

typedef struct cn_layer cn_layer;

/* What a layer's passes get besides their tensors. */
typedef struct cn_ctx {
    const cn_backend *be;
    float *ws;             /* scratch memory, the largest layer's ws_floats */
    const int32_t *labels; /* true classes during backward (loss layer) */
    int fuse;              /* whole-network pass: fused activations apply */
    int train;             /* training pass: batch statistics, buffers update */
    uint64_t seed;         /* the training step's seed (dropout masks) */
} cn_ctx;

/* The behaviour of a layer kind.  Adding a kind means one file defining one
 * of these and one line in layers/registry.c. */
typedef struct cn_layer_ops {
    const char *kind;   /* section name in the model description */
    const cn_key *keys; /* accepted settings */
    size_t n_keys;
    int is_loss;  /* the loss layer must be the last one */
    int in_place; /* may write its output over its input (element-wise) */
    int uses_y;   /* backward reads this layer's output */
    /* Shapes, parameters and scratch size (which may depend on the backend)
     * from l->in and l->v; on an
     * impossible shape returns CN_ERR_SPEC with a message (no file/line:
     * the caller adds them). */
    cn_status (*setup)(cn_layer *l, const cn_backend *be, size_t train_batch);
    /* Forward and backward cannot fail: everything was checked in setup.
     * x (n, in), y (n, out).  backward writes dx (skipped when NULL) and adds
     * into the parameter gradients. */
    void (*forward)(cn_layer *l, const cn_ctx *ctx, const float *x, float *y, size_t n);
    void (*backward)(cn_layer *l, const cn_ctx *ctx, const float *x, const float *y,
                     const float *dy, float *dx, size_t n);
    /* Piecewise-linear layers (relu, max pooling): a hash of the linear piece
     * that x falls in (which units are on, which inputs win), so that the
     * gradient check can skip steps that cross a kink.  NULL when smooth. */
    uint64_t (*region)(const cn_layer *l, const float *x, const float *y, size_t n);
} cn_layer_ops;

/* The region of an element-wise layer whose pieces are y > 0 and y <= 0
 * (relu, leaky relu): a hash of which outputs are positive. */
uint64_t cn_positive_region(const cn_layer *l, const float *x, const float *y, size_t n);

/* FNV-1a over a value, for region hashes. */
static inline uint64_t cn_hash(uint64_t h, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        h = (h ^ ((v >> (8 * i)) & 0xff)) * 0x100000001b3ULL;
    return h;
}

#define CN_MAX_TENSORS 2

typedef struct cn_ltensor {
    char name[48];
    int ndim;
    size_t dims[4];
    size_t count;
    size_t fan_in; /* He initialisation N(0, 2/fan_in); 0: the constant init */
    float init;    /* initial value when fan_in is 0 */
    size_t offset; /* into the parameter block (or the buffer block) */
} cn_ltensor;

struct cn_layer {
    const cn_layer_ops *ops;
    char name[32];
    int line;
    cn_shape in, out;
    double v[CN_MAX_KEYS];        /* settings in the order of ops->keys */
    cn_ltensor t[CN_MAX_TENSORS]; /* trainable parameters */
    size_t n_t;
    float *p[CN_MAX_TENSORS];      /* views into the parameter block */
    float *g[CN_MAX_TENSORS];      /* views into the gradient block */
    cn_ltensor bt[CN_MAX_TENSORS]; /* buffers: saved with the model, not trained */
    size_t n_bt;
    float *b[CN_MAX_TENSORS]; /* views into the buffer block */
    size_t state_floats;      /* what forward keeps for backward */
    float *state;
    size_t ws_floats;  /* scratch needed for the passes */
    int shares_input;  /* its output buffer is its input's (in place) */
    cn_act fused_act;  /* an activation this layer applies in whole-net passes */
    int fused_away;    /* done by the layer before in whole-net passes */
    uint64_t macs;     /* per sample, forward */
    size_t from;       /* [shortcut]: the layer whose output is added */
    int skip_source;   /* a shortcut adds this layer's output: it is kept intact */
    const float *skip; /* [shortcut]: that output */
};

/* Pooling over k x k windows with stride st (no padding): checks the window
 * fits and sets l->out.  Shared by [maxpool] and [avgpool]. */
cn_status cn_pool_setup(cn_layer *l, size_t k, size_t st);

const cn_layer_ops *cn_layer_find(const char *kind);
/* The i-th kind of the registry, or NULL past the last. */
const cn_layer_ops *cn_layer_kind_at(size_t i);
/* "conv, fc, maxpool, ..." for error messages. */
const char *cn_layer_kinds(void);

extern const cn_layer_ops cn_conv_ops, cn_maxpool_ops, cn_fc_ops, cn_relu_ops, cn_sigmoid_ops,
    cn_tanh_ops, cn_softmax_ops, cn_batchnorm_ops, cn_avgpool_ops, cn_leaky_ops, cn_dropout_ops,
    cn_shortcut_ops;

/* -------------------------------------------------------------------- net */

struct cn_net {
    cn_spec *spec; /* borrowed from the creator, who keeps it alive */
    cn_layer *layers;
    size_t n_layers;
    size_t max_batch;   /* largest batch of a forward pass */
    size_t train_batch; /* largest batch of a backward pass */
    cn_backend be;
    size_t n_params;
    float *params, *grads;
    size_t n_buffers;
    float *buffers;
    float *norm;    /* the input's mean (c floats) then std (c floats) */
    float *states;  /* the layers' state areas */
    float **act;    /* act[i]: output of layer i, (max_batch, out_i) */
    float *gbuf[2]; /* ping-pong activation gradients */
    float *ws;
    size_t ws_floats;
    float *input;   /* (max_batch, C, H, W): cn_net_evaluate's prepared input */
    size_t n_last;  /* batch size of the last forward pass */
    int train_last; /* whether it was a training pass */
    uint64_t seed;  /* seed of the next training pass's random choices */
    const float *x_last;
};

/* What a network takes, known before anything of it is allocated. */
typedef struct cn_net_plan {
    size_t weights; /* floats of its parameters and buffers: what a model file
                       must hold */
    size_t bytes;   /* memory for the whole net: blocks, activations, scratch
                       (SIZE_MAX when the sizes overflow) */
} cn_net_plan;

/* Sets up the layers of spec and plans the memory of a net for batches of
 * max_batch (train_batch for backward) without allocating it.  Errors: as
 * cn_net_build, except that the memory is not checked against the limit. */
cn_status cn_net_plan_memory(const cn_spec *spec, size_t max_batch, size_t train_batch,
                             cn_net_plan *plan);

/* Sets the input's per-channel mean and std (of p / 255) to data's. */
void cn_net_measure_input(cn_net *net, const cn_data *data);

/* cn_net_create with gradient memory for batches of up to train_batch only
 * (<= max_batch): a model evaluates larger batches than it trains on.  A
 * plan larger than the machine's memory (or cn_set_memory_limit's) is refused
 * with CN_ERR_NOMEM before anything is allocated. */
cn_status cn_net_build(const cn_spec *spec, size_t max_batch, size_t train_batch, int threads,
                       cn_net **out);

/* Whole-network passes, with per-layer times (seconds) when times is not
 * NULL (a fused-away layer's time is 0: it is in the layer before). */
void cn_net_run_forward(cn_net *net, const float *x, size_t n, int train, double *times);
void cn_net_run_backward(cn_net *net, const int32_t *labels, size_t n, float *dx, double *times);

/* Layer-level passes for gradcheck: forward/backward of layer i alone, with
 * no fusion. */
void cn_net_layer_forward(cn_net *net, size_t i, const float *x, float *y, size_t n, int train);
void cn_net_layer_backward(cn_net *net, size_t i, const int32_t *labels, const float *x,
                           const float *y, const float *dy, float *dx, size_t n);

/* ------------------------------------------------------------------ model */

typedef struct cn_optim {
    cn_optimizer which;
    const char *kind;          /* "sgd", "adam", "adamw" */
    size_t n_slots;            /* state buffers per parameter */
    const char *slot_names[2]; /* "momentum"; Adam: "exp_avg", "exp_avg_sq" */
    float *state;              /* n_slots * n_params */
} cn_optim;

struct cn_model {
    cn_spec *spec;
    char *origin; /* where the description first came from (convnet.source) */
    cn_net *net;
    int threads;
    cn_train_opts opts;
    cn_train_state state;
    cn_optim optim;
};

/* The optimizer: updates params from grads.  t counts the steps taken,
 * this one included (from 1): Adam's bias correction needs it. */
cn_status cn_optim_init(cn_optim *o, cn_optimizer which, size_t n_params);
void cn_optim_free(cn_optim *o);
void cn_optim_step(cn_optim *o, const cn_backend *be, const cn_train_opts *opts, double lr,
                   uint64_t t, float *params, const float *grads, size_t n);

/* The recipe as a model file keeps it (metadata convnet.train): one JSON
 * object, unformatted, its keys in a fixed order.  NULL when out of memory;
 * free with cJSON_free. */
char *cn_train_opts_json(const cn_train_opts *o);
/* Reads that JSON over o, which holds the recipe of the file's description:
 * keys added after the first files were written may be missing (lr_warmup is
 * then 0.25; optimizer, beta2, eps, shift and flip keep o's values).
 * Errors: CN_ERR_FORMAT "path: the training recipe (convnet.train) is
 * damaged". */
cn_status cn_train_opts_read_json(const char *path, const char *text, cn_train_opts *o);

/* Rebuilds the model's net, if needed, for forward passes of n and backward
 * passes of train samples. */
cn_status cn_model_plan(cn_model *m, size_t n, size_t train);

/* Spec copy (the parse is repeated from the text). */
cn_status cn_spec_clone(const cn_spec *spec, cn_spec **out);

/* The index of the largest of k values (the first, on ties). */
size_t cn_argmax(const float *row, size_t k);

/* Augmentation of n samples of shape s in place: each moved by up to shift
 * pixels each way (zeros come in at the border) and, with flip, mirrored
 * left-right with probability 1/2.  tmp holds one sample. */
void cn_augment(uint8_t *pix, size_t n, cn_shape s, int shift, int flip, cn_rng *rng, uint8_t *tmp);
/* A seed for training step `step` of a run seeded with seed. */
uint64_t cn_step_seed(uint64_t seed, uint64_t step);

/* Seconds from a monotonic clock. */
double cn_now(void);

#endif
