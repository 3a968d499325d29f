/* internal.h - what the library's files share and callers do not see. */
#ifndef CN_INTERNAL_H
#define CN_INTERNAL_H

#include "backend/backend.h"
#include "convnet.h"

#include <stdarg.h>

/* ---------------------------------------------------------------- errors */

/* cn_fail_at (convnet.h) with this file and line: a message for
 * cn_last_error(), the status returned.  cn_error_prefix (convnet.h) says
 * what was being done ("while loading x: ..."). */
#define cn_fail(st, ...) cn_fail_at(__FILE__, __LINE__, st, __VA_ARGS__)
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

/* What a key's value is: a number, a whole number, or the name of an
 * earlier layer whose output this layer reads besides its input (an extra
 * input, as [shortcut]'s 'from': its value in vals is 0; the network
 * resolves the name and gives the layer that output). */
enum { CN_KEY_NUMBER = 0, CN_KEY_INT = 1, CN_KEY_LAYER = 2 };

/* A key a section accepts: its name, type, range and default.  A key with
 * choices takes one of those words; its value is the index. */
typedef struct cn_key {
    const char *name;
    int type; /* CN_KEY_NUMBER, CN_KEY_INT or CN_KEY_LAYER */
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
/* " (did you mean 'x'?)" into buf for the nearest of the n words (at most
 * 2 edits away, and fewer than half of word's letters), with open and close
 * around it ("'" or "[" and "]"), or "". */
void cn_suggest(char *buf, size_t size, const char *word, const char *const *words, size_t n,
                const char *open, const char *close);
/* The entry of key in sec, or NULL. */
const cn_entry *cn_section_get(const cn_section *sec, const char *key);
/* 1 unless sec is [net] or [train]. */
int cn_is_layer_section(const cn_section *sec);

/* ----------------------------------------------------------------- recipe */

/* The number of keys of the training recipe (recipe.c's table has these). */
#define CN_RECIPE_KEYS 23
/* Floats after the gradient block that the step's allreduce carries with it
 * (cn_model_train_step): the global batch's summed loss, its count of
 * correct answers, and how many workers want to stop. */
#define CN_GRAD_TAIL 3
/* The largest batch: the recipe's range for batch and what a network takes. */
#define CN_MAX_BATCH 65536

/* The C type of a cn_train_opts field: int (the enums too), double or
 * uint64_t. */
enum { CN_FIELD_INT, CN_FIELD_DOUBLE, CN_FIELD_U64 };

/* What reading a model file's recipe does with a key the file lacks (the
 * first files were written before some keys existed). */
enum {
    CN_JSON_REQUIRED, /* every file has it: without it the recipe is damaged */
    CN_JSON_DEFAULT,  /* the key's default: what files without it trained with */
    CN_JSON_KEEP,     /* the value of the file's description stands */
    CN_JSON_OPTIONAL  /* written only when it is not its default, so that the
                         files of recipes that do not use it keep their bytes;
                         read as the default when absent */
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

/* What a layer's passes get besides their tensors.  Every pointer a layer
 * sees into tensors (its input and output, its parameters, the scratch
 * space, labels) is backend memory: the layer hands it to the backend's
 * operations and never reads or writes it itself. */
/* The timed trials of each way of running an evaluation pass over fewer
 * samples than the backend's workers (net.c, small_pass), and the passes
 * on all threads whose mean time is checked against a pass alone. */
#define CN_SMALL_TIMED  12
#define CN_SMALL_WINDOW 64

typedef struct cn_ctx {
    const cn_backend *be;
    float *ws;                 /* scratch memory, the largest layer's ws_floats */
    const int32_t *labels;     /* true classes during backward (loss layer) */
    int fuse;                  /* whole-network pass: fused activations apply */
    int train;                 /* training pass: batch statistics, buffers update */
    uint64_t seed;             /* the training step's seed (dropout masks) */
    uint64_t first;            /* the index of the pass's first sample in the global
                                  batch (where a data-parallel worker's share starts) */
    float smooth;              /* label smoothing of the loss layer's target (net->smooth) */
    const float *target_delta; /* added to the loss layer's input gradient
                                  (net->target_delta), or NULL */
    size_t area;               /* where a chunked pass's worker keeps its outputs
                                  (net.c, run_chunks): floats from the places
                                  that a layer's extra inputs point at (0 in
                                  other passes) */
} cn_ctx;

/* The behaviour of a layer kind: one file defines it (with designated
 * initializers) and one line of layers/kinds.h registers it. */
typedef struct cn_layer_ops {
    const char *kind;   /* section name in the model description */
    const cn_key *keys; /* accepted settings; CN_KEY_LAYER keys are extra inputs */
    size_t n_keys;
    int is_loss;     /* the loss layer must be the last one */
    int elementwise; /* output value i depends on input value i only: the
                        network may let it write over its input */
    int needs_x;     /* backward reads the layer's input */
    int needs_y;     /* backward reads the layer's output */
    int pure;        /* forward is a function of its input and extra inputs
                        alone (nothing random, no statistics kept): a lean
                        training net may run it again (net.c, may_replay) */
    /* The activations that forward and backward can apply for a layer that
     * follows (bits 1u << a, as the backend's conv_acts); NULL: none. */
    unsigned (*fusable_acts)(const cn_backend *be);
    int fuses_affine; /* forward can apply a per-channel affine map after
                         its bias (a layer with .affine folded into it) */
    int fuses_pool;   /* forward can pool its output by the backend's
                         conv_fwd_pool (a max pooling folded into it) */
    int max_pool;     /* forward is max pooling over .window's windows */
    int train_state;  /* its state area is what backward reads alone: a
                         forward-only network leaves it out */
    cn_act act;       /* an activation layer's function, else CN_ACT_NONE */
    /* Where backward may write dx besides a buffer of its own, on this
     * backend (CN_DX_ON_DY, CN_DX_ON_X bits); NULL: nowhere else.  The
     * network's plan of a training pass's gradients (net.c, plan_grads)
     * uses them to keep its gradient buffers small. */
    unsigned (*dx_places)(const cn_layer *l, const cn_backend *be);
    /* Shapes, parameters and scratch size (which may depend on the backend)
     * from l->in, l->extra_in and l->v; on an impossible shape returns
     * CN_ERR_SPEC with a message (no file/line: the caller adds them). */
    cn_status (*setup)(cn_layer *l, const cn_backend *be, size_t train_batch);
    /* Forward and backward cannot fail: everything was checked in setup.
     * x (n, in), y (n, out).  backward writes dx (skipped when NULL), adds
     * into the parameter gradients and into l->dextra (the gradients of the
     * extra inputs). */
    void (*forward)(cn_layer *l, const cn_ctx *ctx, const float *x, float *y, size_t n);
    void (*backward)(cn_layer *l, const cn_ctx *ctx, const float *x, const float *y,
                     const float *dy, float *dx, size_t n);
    /* Piecewise-linear layers (relu, max pooling): a hash of the linear piece
     * that x falls in (which units are on, which inputs win), so that the
     * gradient check can skip steps that cross a kink.  x and y are host
     * copies (the gradient check downloads them).  NULL when smooth. */
    uint64_t (*region)(const cn_layer *l, const float *x, const float *y, size_t n);
    /* Forward-only networks: floats the layer keeps from one pass to the
     * next in its state area (a convolution's filters in the form its
     * kernels read, made again when the weights change); NULL: none. */
    size_t (*keep_floats)(const cn_layer *l, const cn_backend *be);
    /* Windowed layers (convolution, pooling): output (i, j) reads input rows
     * i*stride - pad .. + kh - 1 and the like columns (receptive fields).
     * NULL for the others. */
    cn_win (*window)(const cn_layer *l);
    /* A layer whose evaluation pass is a per-channel affine map of its
     * input, y = x scale[c] + shift[c], when its input has more than one
     * position per channel (batch normalisation): writes scale and shift
     * (l->in.c each, backend memory), computed as its own evaluation pass
     * computes them, so that a layer with fuses_affine gives the same bits.
     * NULL for the others. */
    void (*affine)(const cn_layer *l, const cn_ctx *ctx, float *scale, float *shift);
    /* A layer whose training pass's output can be made again from its input
     * and what forward kept, the same bits, its fused activation applied
     * (batch normalisation, from the batch's statistics): replay writes it,
     * when can_replay says the backend can.  A training network then keeps
     * the input alone and makes the output again in backward, where it is
     * read (net.c, place_training).  NULL for the others. */
    void (*replay)(const cn_layer *l, const cn_ctx *ctx, const float *x, float *y, size_t n);
    int (*can_replay)(const cn_backend *be);
} cn_layer_ops;

/* dx_places bits: dx may be dy itself (the gradient computed in place: an
 * element-wise map of dy, its shape the input's); dx may be x (written over
 * the layer's input, which backward then reads no more). */
#define CN_DX_ON_DY 1u
#define CN_DX_ON_X  2u
/* ... and over x also when x is the output of a relu fused into the layer
 * below, whose gradient backward then applies (cn_layer's grad_act). */
#define CN_DX_ON_RELU_X 4u

/* cn_layer's grad_at. */
enum { CN_GRAD_BUF0, CN_GRAD_BUF1, CN_GRAD_ON_DY, CN_GRAD_ON_X };

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
#define CN_MAX_EXTRA   2

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
    double v[CN_MAX_KEYS]; /* settings in the order of ops->keys */
    /* Extra inputs: the outputs of the earlier layers its CN_KEY_LAYER keys
     * name, in key order (the network resolves them before setup). */
    size_t n_extra;
    size_t extra_from[CN_MAX_EXTRA];      /* their indices */
    cn_shape extra_in[CN_MAX_EXTRA];      /* their shapes */
    const char *extra_name[CN_MAX_EXTRA]; /* their names (for messages) */
    const float *extra[CN_MAX_EXTRA];     /* their outputs */
    float *dextra[CN_MAX_EXTRA];          /* where backward adds their gradients */
    cn_ltensor t[CN_MAX_TENSORS];         /* trainable parameters */
    size_t n_t;
    float *p[CN_MAX_TENSORS];      /* views into the parameter block */
    float *g[CN_MAX_TENSORS];      /* views into the gradient block */
    cn_ltensor bt[CN_MAX_TENSORS]; /* buffers: saved with the model, not trained */
    size_t n_bt;
    float *b[CN_MAX_TENSORS]; /* views into the buffer block */
    size_t state_floats;      /* what forward keeps for backward (or, in a forward-only
                                 network, for the next pass: keep_floats) */
    float *state;
    size_t ws_floats; /* scratch needed for the passes */
    uint64_t macs;    /* per sample, forward */
    /* Decided by the network: */
    int shares_input; /* its output buffer is its input's (in place) */
    int read_later;   /* a later layer reads its output as an extra input */
    cn_act fused_act; /* an activation this layer applies in whole-net passes */
    int fused_away;   /* done by the layer before in whole-net passes */
    /* Where a training pass's backward writes the gradient of its input
     * (plan_grads): CN_GRAD_BUF0 or CN_GRAD_BUF1 (a new gradient, at its own
     * place in the arena: place_training),
     * CN_GRAD_ON_DY (over the gradient of its output), CN_GRAD_ON_X (over its
     * input, the layer before's output, which then holds a gradient:
     * output_spent). */
    int grad_at;
    int output_spent; /* a backward pass writes a gradient over its output (or a
                         training net's gradient takes its place once it is read
                         no more) */
    /* A relu fused into the layer below the one below (its output this
     * layer's input) whose gradient this layer's backward applies in a
     * training pass, so that it may write over that output (CN_ACT_RELU);
     * that layer then leaves its activation's gradient out (act_applied). */
    cn_act grad_act;
    int act_applied; /* the layer above applies its fused activation's gradient */
    int switched;    /* its last forward pass noted which input won each window
                        (a max pooling's switches, in its state area), which its
                        backward reads instead of the input */
    int replayed;    /* a lean training net makes its output (its owner's) again
                        in backward instead of keeping it (place_training): the
                        caller cannot read it */
    /* The layer after, folded into this one's forward pass (its .affine):
     * only in forward-only networks, where every pass is an evaluation. */
    const cn_layer *fused_affine;
    /* The max pooling after, folded into this one's forward pass (its output
     * then the pooling's, the full one made a few samples at a time in
     * scratch): only in forward-only networks. */
    const cn_layer *fused_pool;
    /* fused_affine is the layer after fused_pool (a convolution, a max
     * pooling, a batch normalisation): the convolution applies it before
     * pooling, which gives the same bits while no scale is negative (max and
     * a rising map commute, rounding included), and after, as the layer
     * itself would, otherwise. */
    int affine_after_pool;
};

/* Pooling over k x k windows with stride st (no padding): checks the window
 * fits and sets l->out.  Shared by [maxpool] and [avgpool]. */
cn_status cn_pool_setup(cn_layer *l, size_t k, size_t st);

const cn_layer_ops *cn_layer_find(const char *kind);
/* The i-th kind of the registry, or NULL past the last. */
const cn_layer_ops *cn_layer_kind_at(size_t i);
/* "[conv], [fc], [maxpool], ..." for error messages. */
const char *cn_layer_kinds(void);

#include "layers/kinds.h"
#define CN_DECLARE_KIND(k) extern const cn_layer_ops cn_##k##_ops;
CN_LAYER_KINDS(CN_DECLARE_KIND)
#undef CN_DECLARE_KIND

/* -------------------------------------------------------------------- net */

struct cn_net {
    cn_spec *spec; /* borrowed from the creator, who keeps it alive */
    cn_layer *layers;
    size_t n_layers;
    size_t max_batch;   /* largest batch of a forward pass */
    size_t train_batch; /* largest batch of a backward pass */
    cn_backend *be;
    int owns_be;      /* made by cn_net_create (a model's nets share its own) */
    cn_device device; /* where it runs, threads resolved */
    /* Everything below in backend memory but norm_host. */
    size_t n_params;
    float *params, *grads;
    size_t n_buffers;
    float *buffers;
    float *buffers_before;               /* the buffers as the last training pass found them, where
                                            backward writes over outputs (cn_net_trace_backward's
                                            replay of that pass); else NULL */
    float *norm;                         /* the input's mean (c floats) then std (c floats) */
    float *norm_host;                    /* the same, on the host (cn_net_prepare) */
    float *states;                       /* the layers' state areas */
    float **act;                         /* act[i]: output of layer i, (max_batch, out_i) */
    float *arena;                        /* a forward-only net's outputs (train_batch 0): each
                                            at its place in one block, kept only while a later
                                            layer reads it (the last two, the logits and the
                                            probabilities, to the end); a training net's outputs
                                            and backward's gradients (place_training) */
    size_t *arena_at;                    /* arena_at[i]: offset (floats) of layer i's output;
                                            then (place_outputs) end[n], kept[n] */
    size_t *train_at;                    /* a training net's offsets (floats) in the arena:
                                            [0, n) layer i's output (its owner's when in place),
                                            [n, 2n) the gradient layer i's backward writes when
                                            it writes a new one (grad_at CN_GRAD_BUF0/1),
                                            [2n, 3n) dlater[i]; then [3n, 4n) the last layer
                                            that reads layer i's output as an extra input
                                            (SIZE_MAX: none); [4n, 5n) where backward makes
                                            layer i's output again (layers' replayed), [5n,
                                            6n) where what that reads first is made; then
                                            room for place_training's lists (10n) */
    struct cn_span *spans;               /* place_training's lifetimes, 5n */
    int lean;                            /* a training net that makes outputs again in
                                            backward where that takes less memory (2:
                                            every one it may; cn_net_build) */
    size_t replays;                      /* how many owners it makes again */
    size_t chunk;                        /* a forward-only net's samples per chunk of a larger
                                            pass (run_chunks), 0: passes run whole */
    size_t chunk_floats;                 /* the floats of a worker's area for a chunk's outputs */
    struct {                             /* evaluation passes over fewer samples than the
                                            backend's workers: on all threads or on one
                                            (net.c, small_pass) */
        unsigned pass;                   /* passes since the last trials began */
        int alone;                       /* the way taken: 1 on one thread */
        double times[2][CN_SMALL_TIMED]; /* the trials' times, each way's */
        double window;                   /* the time of the passes on all threads since
                                            the trials or the last check... */
        unsigned in_window;              /* ...and how many there were */
        int slow;                        /* windows in a row slower than a pass alone */
        unsigned backoff, rest;          /* epochs alone, without trials, after the last
                                            one sent alone by slow windows; of them left */
    } small;
    size_t arena_floats;
    float **dlater;        /* dlater[i]: gradient of a read_later layer's output
                              from the layers that read it, (train_batch, out_i) */
    size_t gbuf_floats[2]; /* plan_grads' two gradient buffers' sizes, per sample (0
                              once place_training has put the gradients in the arena) */
    int spent;             /* a backward pass since the last forward pass wrote
                              gradients over outputs (layers' output_spent) */
    float *ws;
    size_t ws_floats;
    float *input;      /* (max_batch, C, H, W): the input of forward passes */
    uint8_t *pixels;   /* (max_batch, C, H, W): pixels on their way in */
    int32_t *labels;   /* (max_batch): labels of the last loss or backward */
    double *row_loss;  /* (max_batch): per-sample loss, best class and its */
    int32_t *row_best; /* probability (nll_rows) */
    float *row_p;
    double *h_loss;  /* (max_batch) host copies of row_loss, row_best and */
    int32_t *h_best; /* of the labels */
    int32_t *h_labels;
    size_t n_last;             /* batch size of the last forward pass */
    int train_last;            /* whether it was a training pass */
    uint64_t seed;             /* seed of the next training pass's random choices */
    uint64_t first;            /* and the index of its first sample in the global batch */
    float smooth;              /* label smoothing of the loss and its gradient: 0 but
                                  inside a training step (cn_model_train_step sets the
                                  recipe's), so that evaluation's loss is the plain
                                  negative log-likelihood */
    const float *target_delta; /* (n_last, classes), backend memory: added to the
                                  loss layer's input gradient, the gradient's share
                                  of a target other than the labels' (mixup); NULL
                                  but inside such a training step */
    const float *x_last;       /* the input of the last forward pass (backend memory) */
    const float *d_last;       /* the input gradient the last layer of a backward pass
                                  wrote (for the doctor's trace, src/doctor.c) */
};

/* What a network takes, known before anything of it is allocated. */
typedef struct cn_net_plan {
    size_t weights; /* floats of its parameters and buffers: what a model file
                       must hold */
    size_t bytes;   /* memory for the whole net: blocks, activations, scratch
                       (SIZE_MAX when the sizes overflow) */
} cn_net_plan;

/* Sets up the layers of spec and plans the memory of a net for batches of
 * max_batch (train_batch for backward) on be without allocating it.
 * Errors: as cn_net_build, except that the memory is not checked against
 * the limit. */
cn_status cn_net_plan_memory(const cn_spec *spec, size_t max_batch, size_t train_batch, int lean,
                             cn_backend *be, cn_net_plan *plan);
/* The same, giving the network itself, its layers set up and its memory
 * planned but not allocated (the layout: what cn_net_block_at lists): for
 * the planner (src/plan.c) to read; cn_net_free releases it. */
cn_status cn_net_layout(const cn_spec *spec, size_t max_batch, size_t train_batch, int lean,
                        cn_backend *be, cn_net **out);

/* n floats rounded up to whole 64-byte blocks, as each parameter tensor and
 * each layer's state area is; SIZE_MAX stays SIZE_MAX (sizes from a
 * description saturate rather than wrap: see cn_mul). */
size_t cn_net_align(size_t n);

/* What a block of a network's memory holds. */
typedef enum cn_mem {
    CN_MEM_WEIGHTS, /* the parameter and buffer blocks */
    CN_MEM_GRADS,   /* the gradient block */
    CN_MEM_ACT,     /* layers' outputs and kept state, the gradients of backward */
    CN_MEM_SCRATCH, /* the scratch space (the largest layer's) */
    CN_MEM_IO,      /* the input, its pixels, labels, per-sample results */
    CN_MEM_HOST     /* host copies (malloc'd whatever the backend) */
} cn_mem;

/* One block of a network's memory, allocated as one piece. */
typedef struct cn_net_block {
    size_t bytes; /* what it asks the backend (or malloc) for; 0: none */
    cn_mem what;
} cn_net_block;

/* The plan of a network's memory is a list of blocks, which the network
 * allocates one by one and nothing else: the same list is the planner's
 * figure.  cn_net_blocks gives how many there are (and, unless bytes is
 * NULL, the sum of those not CN_MEM_HOST: what the backend is asked for);
 * cn_net_block_at block b of them (0 past the last). */
size_t cn_net_blocks(const cn_net *net, size_t *bytes);
int cn_net_block_at(const cn_net *net, size_t b, cn_net_block *out);

/* What a cn_data's store points to: its first member, release, frees the
 * store and the memory behind the data's pixels and labels (a mapped file
 * and what goes with it); cn_data_free calls it instead of free. */
typedef struct cn_data_store {
    void (*release)(struct cn_data_store *store);
} cn_data_store;

/* Asks the system to read samples [first, first + count) of data ahead
 * (clamped to what exists) when data is a mapped file (data->store); nothing
 * for data held in memory.  Data caches are mapped without read-ahead, for
 * training's shuffled order: training and evaluation ask for what comes next. */
void cn_data_read_ahead(const cn_data *data, size_t first, size_t count);

/* CN_OK if names[0..k) are fit to be class names (1 to 255 bytes, no
 * control characters, none missing, all different); else CN_ERR_ARG with
 * what is wrong. */
cn_status cn_check_class_names(const char *const *names, size_t k);
/* A copy of names[0..k) (NULL when out of memory), and its release. */
char **cn_copy_names(const char *const *names, size_t k);
void cn_free_names(char **names, size_t k);

/* Reads the names of data's classes from path, a text file of one name per
 * line (blank lines skipped), at least data->classes of them (more make
 * more classes: labels need not use them all); a missing file is not an
 * error (the data then stay without names).  Errors:
 * CN_ERR_IO, CN_ERR_FORMAT (with the file and line), and as
 * cn_data_set_names. */
cn_status cn_data_read_names(cn_data *data, const char *path);

/* Sets the input's per-channel mean and std (of p / 255) to data's. */
void cn_net_measure_input(cn_net *net, const cn_data *data);
/* Says that the net's parameters or buffers may have changed: what its
 * layers keep made from them between passes (a forward-only network's
 * convolution filters in its kernels' form: conv_fwd's keep) is made again
 * at the next pass.  Every place that writes the weights calls it (setting,
 * initialising, loading, swapping in a moving average, rebuilding, the
 * optimizer's step, a data-parallel exchange, the gradient checks'
 * nudges). */
void cn_net_weights_changed(cn_net *net);

/* A network on the backend be, which the caller keeps alive (a model's
 * nets share one), with gradient memory for batches of up to train_batch
 * only (<= max_batch): a model evaluates larger batches than it trains on.
 * train_batch 0: a forward-only net, for evaluation and prediction: no
 * gradients, and its outputs share one block (arena) by when they are
 * read, so that only the network's result and logits can be read back.
 * lean (a training net): 1, outputs that backward can make again from
 * their inputs (a batch normalisation's) are not kept where that takes
 * less memory (every output can still be read: the ones not kept are made
 * again for that); 2, none of those is kept (for tests); 0, all are.
 * A plan larger than the machine's memory (or cn_set_memory_limit's) is
 * refused with CN_ERR_NOMEM before anything is allocated. */
cn_status cn_net_build(const cn_spec *spec, size_t max_batch, size_t train_batch, int lean,
                       cn_backend *be, const cn_device *device, cn_net **out);

/* Whole-network passes on backend memory: forward from x (net->input or
 * any (n, C, H, W) of the backend's), backward with labels already in
 * net->labels (cn_net_run_backward below); per-layer times (seconds)
 * when times is not NULL (a fused-away layer's time is 0: it is in the
 * layer before). */
void cn_net_run_forward(cn_net *net, const float *x, size_t n, int train, double *times);
/* The same from layer `from` on, the outputs of the layers below kept from
 * the last pass (gradcheck moves one layer's parameter at a time). */
void cn_net_run_forward_from(cn_net *net, size_t from, const float *x, size_t n, int train,
                             double *times);
/* The first layer a pass must rerun from when layer i's parameters change:
 * i, or lower when a layer from there on writes over its input in place. */
size_t cn_net_rerun_start(const cn_net *net, size_t i);
/* Layer i's output of the last forward pass (all its samples), in backend
 * memory: at its place, or, where a lean net does not keep it (replayed),
 * made again into a block of the backend's that *tmp holds for the caller
 * to free (be->free); NULL when out of memory. */
const float *cn_net_output_view(cn_net *net, size_t i, float **tmp);
/* The backward pass of a training pass over n samples, adding into the
 * gradient block; with want_dx, returns where the gradient of the input is
 * (backend memory, until the next pass), else NULL.  It may write gradients
 * over outputs (plan_grads: the layers' output_spent): a second backward
 * pass, or reading those outputs, then needs a forward pass first.  after
 * (NULL: none) is called with each layer's index once its backward pass is
 * done: its parameters' gradients, and those of every layer above, are then
 * final (the blocks are laid out in layer order). */
const float *cn_net_run_backward(cn_net *net, size_t n, int want_dx, double *times,
                                 void (*after)(void *user, size_t layer), void *user);
/* Whether layer i's output of the last forward pass can be read: a layer
 * there, a forward pass, and no backward pass since that wrote over it.
 * Errors: CN_ERR_ARG with the reason. */
cn_status cn_net_check_output(const cn_net *net, size_t i);

/* Whether a forward pass (train: a training pass) may take n samples.
 * Errors: CN_ERR_ARG. */
cn_status cn_net_check_batch(const cn_net *net, size_t n, int train);
/* The input of a forward pass over n samples x (n, C, H, W) of host
 * memory, in backend memory: x itself where the backend's memory is the
 * host's, else x copied into net->input. */
const float *cn_net_put_input(cn_net *net, const float *x, size_t n);
/* n samples of 8-bit pixels prepared into net->input on the device (as
 * cn_net_prepare does on the host). */
void cn_net_put_pixels(cn_net *net, const uint8_t *pixels, size_t n);
/* The same for a batch gathered on the device from a data set there: the
 * samples idx[0, n) (backend memory) of data, augmented as cn_augment does
 * with net->seed and net->first (the backend's gather_pixels). */
void cn_net_gather_pixels(cn_net *net, const uint8_t *data, const uint32_t *idx, size_t n,
                          const cn_aug *aug);
/* Checks n labels and copies them into net->labels (and its host copy).
 * Errors: CN_ERR_ARG. */
cn_status cn_net_put_labels(cn_net *net, const int32_t *labels, size_t n);
/* The loss of the last forward pass summed over its n samples (labels in
 * net->labels), and how many of them have their label as the best class
 * (correct may be NULL).  Copies only the per-sample results. */
double cn_net_loss_sum(cn_net *net, size_t n, size_t *correct);
/* The loss layer's input (the logits) of the last forward pass, backend
 * memory. */
const float *cn_net_logits(const cn_net *net);

/* Layer-level passes for gradcheck: forward/backward of layer i alone, with
 * no fusion, on backend memory. */
void cn_net_layer_forward(cn_net *net, size_t i, const float *x, float *y, size_t n, int train);
void cn_net_layer_backward(cn_net *net, size_t i, const float *x, const float *y, const float *dy,
                           float *dx, size_t n);

/* ------------------------------------------------------------------ model */

typedef struct cn_optim {
    cn_optimizer which;
    const char *kind;          /* "sgd", "adam", "adamw" */
    size_t n_slots;            /* state buffers per parameter */
    const char *slot_names[2]; /* "momentum"; Adam: "exp_avg", "exp_avg_sq" */
    float *state;              /* n_slots * n_params, backend memory */
} cn_optim;

struct cn_model {
    cn_spec *spec;
    char *origin;     /* where the description first came from (convnet.source) */
    cn_backend *be;   /* the model's backend: its nets and optimizer state live there */
    cn_device device; /* where it runs, threads resolved */
    cn_net *net;
    cn_train_opts opts;
    cn_train_state state;
    cn_optim optim;
    cn_comm comm;
    float *stage; /* a host copy of the gradient block for comm, when the
                     backend's memory is not the host's and size > 1 */
    char **info;  /* the caller's notes: key, value, key, value ... */
    size_t n_info;
    char **class_names; /* cn_net_classes(net) names, or NULL */
    int watch;          /* cn_model_set_watch: steps check for non-finite values */
    int keep_stats;     /* cn_model_keep_stats: steps keep their layers' figures */
    cn_stats *stats;    /* n_layers of them, from the step stats_step (0: none yet) */
    uint64_t stats_step;
    cn_trace trace; /* where the last watched step found one */
    /* The moving average of the weights (opts.ema > 0; cn_model_ema_use):
     * ema_mem (backend memory, cn_ema_floats) holds n_params + n_buffers
     * floats, the parameters then the buffers: the other copy of the
     * weights (the net holds one); then room to swap the two a part at a
     * time (cn_ema_room).  ema_live: 1 while the net holds the trained
     * weights and ema_mem the average (during training steps), 0 while the
     * net holds the average (the model as it is used and saved). */
    float *ema_mem;
    int ema_live;
    /* The training step's mixed targets (opts.mixup, cn_model_train): sample
     * s trains against mix_keep[s] of its label and 1 - mix_keep[s] of
     * mix_other[s]'s; mix_other NULL: none.  mix_delta (backend memory) and
     * mix_host (host) hold the gradient's correction, (batch, classes), and
     * mix_logits a host copy of the logits. */
    const int32_t *mix_other;
    const float *mix_keep;
    float *mix_delta, *mix_host, *mix_logits;
};

/* The most floats the moving average's swap moves at a time. */
#define CN_EMA_SWAP_FLOATS 65536

/* Floats of the room to swap n floats of weights with their average. */
static inline size_t cn_ema_room(size_t n)
{
    return n < CN_EMA_SWAP_FLOATS ? n : CN_EMA_SWAP_FLOATS;
}

/* Floats of a model's moving average for n floats of weights: the average
 * and the room to swap it, one more so that it is never empty. */
static inline size_t cn_ema_floats(size_t n) { return n + cn_ema_room(n) + 1; }

/* The state buffers the optimizer which keeps per parameter (SGD: its
 * momentum; Adam: two averages). */
size_t cn_optim_slots(cn_optimizer which);

/* Makes the model's net hold the trained weights (live = 1: for training
 * steps) or their average (live = 0: for evaluation, validation and the
 * file), swapping them with the model's other copy.  With opts.ema > 0 and
 * no average yet, it is made first, a copy of the net's weights; with
 * opts.ema = 0 and an average (a recipe changed on resume), the net keeps
 * the trained weights and the average is dropped.  Nothing without an
 * average.  Errors: CN_ERR_NOMEM (the average could not be made). */
cn_status cn_model_ema_use(cn_model *m, int live);
/* After a training step (the net holding the trained weights): the
 * average moves towards them, avg = d avg + (1 - d) w for the parameters
 * and the buffers, d = min(opts.ema, (1 + t) / (10 + t)) with t the steps
 * taken before this one (m->state.global_step), so that the average of a
 * short run does not keep its random start. */
void cn_model_ema_update(cn_model *m);

/* The optimizer: its state in be's memory, n_params floats per slot. */
cn_status cn_optim_init(cn_optim *o, cn_optimizer which, cn_backend *be, size_t n_params);
void cn_optim_free(cn_optim *o, cn_backend *be);
/* Updates params from grads.  t counts the steps taken, this one included
 * (from 1): Adam's bias correction needs it.  It knows nothing of workers:
 * the gradients it gets are already combined. */
void cn_optim_step(cn_optim *o, const cn_backend *be, const cn_train_opts *opts, double lr,
                   uint64_t t, float *params, const float *grads, size_t n);

/* One training step of m on the n samples x (backend memory, as
 * cn_net_put_input or cn_net_put_pixels leave them: this worker's share of
 * the global batch) with their labels in m->net->labels (the only one: cn_model_train,
 * cn_model_step and cn_model_profile all take it): forward, loss, gradients zeroed, backward, the
 * gradients combined across workers (m->comm), the optimizer.  The loss and its gradient are the
 * cross-entropy against the target smoothed by the recipe's label_smoothing (net->smooth during
 * the step only).  loss (the mean over the global
 * batch) and correct (its samples whose best class is their label) may be NULL: the loss is then
 * not computed (a NaN or infinite one is the caller's to judge; every
 * worker sees the same).  *stop (unless NULL) says whether this worker
 * wants to stop, and becomes whether any does.  With fwd, bwd and update,
 * the time of each layer's passes and of the update.  Errors: a
 * communicator's. */
/* For a watched model (cn_model_set_watch, one worker): after the forward
 * pass with the loss sum, and after the backward pass, whether a non-finite
 * value appeared; if so m->trace says where and a CN_ERR_NUMERIC is
 * returned that names it (src/doctor.c). */
cn_status cn_model_watch_forward(cn_model *m, double loss_sum, double lr);
/* For a model that keeps its steps' figures (cn_model_keep_stats): after
 * the forward pass, every layer's output's. */
void cn_model_take_stats(cn_model *m);
cn_status cn_model_watch_backward(cn_model *m, size_t n, double lr);

cn_status cn_model_train_step(cn_model *m, const float *x, size_t n, double lr, double *loss,
                              size_t *correct, int *stop, double *fwd, double *bwd, double *update);

/* The recipe as a model file keeps it (metadata convnet.train): one JSON
 * object, unformatted, its keys in a fixed order, those added since the
 * augmentation of rotations (CN_JSON_OPTIONAL) only when they are not their
 * defaults.  NULL when out of memory; free with cJSON_free. */
char *cn_train_opts_json(const cn_train_opts *o);
/* Reads that JSON over o, which holds the recipe of the file's description:
 * keys added after the first files were written may be missing (lr_warmup is
 * then 0.25; optimizer, beta2, eps, shift and flip keep o's values; the
 * later ones are their defaults, off).
 * Errors: CN_ERR_FORMAT "path: the training recipe (convnet.train) is
 * damaged". */
cn_status cn_train_opts_read_json(const char *path, const char *text, cn_train_opts *o);

/* A block of backend memory exchanged among m's workers: summed over them
 * (root < 0: an allreduce) or set to worker root's (a broadcast), through
 * the communicator, which gets host memory (the backend's own where the
 * host can reach it, else a host copy).  Nothing with one worker.  Errors:
 * the communicator's, CN_ERR_NOMEM. */
cn_status cn_model_exchange(cn_model *m, float *dev, size_t count, int root);

/* The batches a new model's network is built for when its recipe trains on
 * batches of batch: forward passes of up to *max samples and backward passes
 * of up to *train, both the training batch: evaluation goes through its data
 * that many at a time, so that its activations cost no more than
 * training's (a caller that wants larger passes reserves them,
 * cn_model_reserve).  Training keeps that network (its batch fits). */
void cn_model_batches(size_t batch, size_t *max, size_t *train);

/* Rebuilds the model's net, if needed, for forward passes of n and backward
 * passes of train samples: lean (cn_net_build) if it rebuilds; not lean, a
 * net that does not keep every output is rebuilt. */
cn_status cn_model_plan(cn_model *m, size_t n, size_t train, int lean);

/* Spec copy (the parse is repeated from the text). */
cn_status cn_spec_clone(const cn_spec *spec, cn_spec **out);

/* The recipe's augmentation in the whole numbers that augment.h computes
 * with (angles in radians * 2^16, the scale * 2^16, the erasing's
 * probability * 2^24, each rounded). */
cn_aug cn_aug_of(const cn_train_opts *o);
/* Augmentation of n samples of shape s in place, as augment.h says: each
 * moved by up to shift pixels each way (zeros come in at the border),
 * mirrored, rotated, scaled and sheared as aug asks.  Sample i draws from a
 * generator seeded with cn_step_seed(seed, first + i): its draws depend on
 * its place in the global batch only, not on which worker has it.  tmp
 * holds one sample. */
void cn_augment(uint8_t *pix, size_t n, cn_shape s, const cn_aug *aug, uint64_t seed, size_t first,
                uint8_t *tmp);

/* Seconds from a monotonic clock. */
double cn_now(void);

#endif
