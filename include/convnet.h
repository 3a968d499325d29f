/*
 * convnet.h - the public interface of the convnet library.
 *
 * convnet defines, trains and evaluates convolutional neural networks in C11.
 * This header is the only one a program needs and is its documentation.
 *
 * Conventions
 * - Tensors are float32 in NCHW order: batch, channels, height, width.
 * - Functions that can fail return a cn_status.  CN_OK is 0.  On failure the
 *   library keeps a readable message (with the file name and line where that
 *   makes sense) that cn_last_error() returns; it never prints, exits or
 *   aborts on the caller's behalf.  The message is per thread.
 * - Objects are opaque handles made by cn_<object>_create/_load and released
 *   by cn_<object>_free; every free function accepts NULL.
 * - Randomness comes only from an explicit cn_rng: the same seed and thread
 *   count give the same results bit for bit.
 * - Gradients are the true derivative dL/dtheta of the mean loss over the
 *   batch.  Backward passes add into the gradient block, cn_net_zero_grads()
 *   clears it, the optimizer subtracts.
 */
#ifndef CONVNET_H
#define CONVNET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header; the Makefile's VERSION, the shared library's
 * file name (libconvnet.so.0.1.0) and convnet.pc's Version are this one. */
#define CN_VERSION "0.1.0"

/* ---------------------------------------------------------------- status */

/* What a function that can fail returns: CN_OK, or what went wrong (the
 * message, cn_last_error, says more). */
typedef enum cn_status {
    CN_OK = 0,
    CN_ERR_ARG,     /* the caller passed an invalid argument */
    CN_ERR_NOMEM,   /* an allocation failed or a size overflowed */
    CN_ERR_IO,      /* a file could not be opened, read or written */
    CN_ERR_FORMAT,  /* a file's content is malformed or not what was expected */
    CN_ERR_SPEC,    /* a model description is invalid */
    CN_ERR_SHAPE,   /* tensor shapes do not fit together */
    CN_ERR_NUMERIC, /* training diverged: the loss became NaN or infinite */
    CN_ERR_STOPPED  /* training stopped because the caller asked it to */
} cn_status;

/* A short constant name for a status ("CN_ERR_IO"). */
const char *cn_status_name(cn_status st);

/* The message of the last failure in this thread ("" if none).  The pointer
 * stays valid until the next failing call in the same thread. */
const char *cn_last_error(void);

/* The version of the library that runs (CN_VERSION of the header it was
 * built with): a program linked against the shared library may compare it
 * with the CN_VERSION it was compiled with. */
const char *cn_version(void);

/* The compiler checks the arguments of the printf-like functions below. */
#if defined(__GNUC__)
#define CN_PRINTF(fmt, first) __attribute__((format(printf, fmt, first)))
#else
#define CN_PRINTF(fmt, first)
#endif

/* For code built on the library that keeps its conventions (the pictures,
 * convnet_vis.h, do; so may a program's own functions): records the
 * message fmt, ... (printf's format) for cn_last_error() in this thread
 * and returns st.  file and line, the C source that failed, are appended
 * to the message ("[file:line]") only when the environment variable
 * CONVNET_DEBUG is set; file may be NULL. */
cn_status cn_fail_at(const char *file, int line, cn_status st, const char *fmt, ...)
    CN_PRINTF(4, 5);
/* Puts text (printf's format) before this thread's current message, to say
 * what was being done: "drawing feature maps: " + the message. */
void cn_error_prefix(const char *fmt, ...) CN_PRINTF(1, 2);

/* ------------------------------------------------------------------- rng */

/* xoshiro256** generator.  Plain data: copy it to save or restore a stream. */
typedef struct cn_rng {
    uint64_t s[4];
} cn_rng;

/* Sets rng's state from seed (splitmix64 spreads it over the four words):
 * the same seed gives the same stream. */
void cn_rng_seed(cn_rng *rng, uint64_t seed);
/* The next 64 random bits; advances rng. */
uint64_t cn_rng_next(cn_rng *rng);
/* Uniform integer in [0, n), without modulo bias.  n must be > 0. */
uint64_t cn_rng_below(cn_rng *rng, uint64_t n);
/* Uniform double in [0, 1). */
double cn_rng_uniform(cn_rng *rng);
/* Standard normal deviate (Box-Muller). */
double cn_rng_normal(cn_rng *rng);

/* ----------------------------------------------------------------- shape */

/* The shape of one sample: channels, height, width. */
typedef struct cn_shape {
    size_t c, h, w;
} cn_shape;

/* ------------------------------------------------------------------ spec */

/* A parsed model description (the text of a models/<name>.cfg file): the
 * input in [net], the training recipe in [train], then one section per layer.
 * README.md, "Model descriptions", describes the format. */
typedef struct cn_spec cn_spec;

/* Parses text.  source names the text in error messages ("models/a.cfg").
 * Errors: CN_ERR_SPEC with "source:line: what was expected". */
cn_status cn_spec_parse(const char *text, const char *source, cn_spec **out);
/* Reads and parses a file.  Errors: CN_ERR_IO, CN_ERR_SPEC. */
cn_status cn_spec_load(const char *path, cn_spec **out);
/* Releases spec (NULL: nothing).  A network made by cn_net_create reads
 * its spec while it lives: free the spec after the network.  A model keeps
 * a copy of its own. */
void cn_spec_free(cn_spec *spec);
/* The text the spec was parsed from; owned by the spec. */
const char *cn_spec_text(const cn_spec *spec);
/* The name given to cn_spec_parse (or the path given to cn_spec_load). */
const char *cn_spec_source(const cn_spec *spec);

/* The learning-rate schedule ([train] lr_policy). */
typedef enum cn_lr_policy {
    CN_LR_CONST = 0, /* lr stays at its initial value */
    CN_LR_STEP,      /* lr = lr0 * gamma ^ floor(epoch / lr_step) */
    CN_LR_ONECYCLE,  /* up linearly from lr0 / 10 to lr0 over the warm-up, then
                        down linearly to lr0 / 1000 at the end */
    CN_LR_COSINE     /* up linearly from lr0 / 10 over the warm-up, then
                        lr0 (1 + cos(pi u)) / 2 with u from 0 to 1 */
} cn_lr_policy;

/* "const", "step", "onecycle", "cosine". */
const char *cn_lr_policy_name(cn_lr_policy p);
/* The policy called name, or -1. */
int cn_lr_policy_by_name(const char *name);

/* The optimizer ([train] optimizer). */
typedef enum cn_optimizer {
    CN_OPT_SGD = 0, /* the lecture's: m = mu*m + (1-mu)*g; theta -= lr*(m + lambda*theta) */
    CN_OPT_ADAM,    /* Adam (Kingma and Ba) with bias correction; beta1 = momentum;
                       weight decay added to the gradient (L2), as PyTorch's Adam */
    CN_OPT_ADAMW    /* Adam with decoupled weight decay: theta -= lr*lambda*theta */
} cn_optimizer;

/* "sgd", "adam", "adamw". */
const char *cn_optimizer_name(cn_optimizer o);
/* The optimizer called name, or -1. */
int cn_optimizer_by_name(const char *name);

/* The training recipe: the [train] section, with defaults for missing keys.
 * Plain data: a program may change fields (command-line overrides) before
 * training. */
typedef struct cn_train_opts {
    int epochs;          /* total number of epochs to train */
    int batch;           /* minibatch size */
    double lr;           /* initial learning rate */
    double momentum;     /* mu in m = mu*m + (1-mu)*g */
    double decay;        /* lambda in theta -= lr*(m + lambda*theta) */
    cn_lr_policy policy; /* learning-rate schedule */
    int lr_step;         /* CN_LR_STEP: epochs between decays */
    double lr_gamma;     /* CN_LR_STEP: factor applied at each decay */
    double lr_warmup;    /* onecycle, cosine: fraction of training warming up */
    uint64_t seed;       /* seeds weight initialisation and shuffling */
    cn_optimizer optimizer;
    double beta2;           /* Adam: decay of the squared-gradient average */
    double eps;             /* Adam: added to the root of that average */
    int shift;              /* augmentation: random shifts of up to this many pixels
                               each way, the border filled with zeros (0: none) */
    int flip;               /* augmentation: 1 flips half the images left-right */
    double rotate;          /* augmentation: rotations by up to this many degrees
                               either way about the image's centre (0: none) */
    double scale;           /* augmentation: scaling by a factor in [1 - scale,
                               1 + scale] about the centre (0: none) */
    double shear;           /* augmentation: shearing across by up to this many
                               degrees either way (0: none) */
    double erase;           /* augmentation: the probability that a random rectangle
                               of each image is set to 0 (random erasing; 0: none) */
    double label_smoothing; /* eps: training's loss is the cross-entropy
                               against (1 - eps) onehot + eps / classes */
    double ema;             /* d > 0: an exponential moving average of the weights and
                               the batch-normalisation statistics, avg = d' avg +
                               (1 - d') w after every step (d' = min(d, (1 + t) /
                               (10 + t)) at step t), which evaluation, validation and
                               the model file use (0: none) */
    double elastic;         /* augmentation: elastic distortion, the control points
                               of a smooth field moved by up to this many pixels
                               each way (src/augment.h; 0: none) */
    double mixup;           /* the probability that a training image is blended with
                               another (mixup): its pixels w x + (1 - w) x' and its
                               target w of its label and 1 - w of the other's, w
                               uniform in [0, 1) (0: none) */
} cn_train_opts;

/* Fills opts from the spec's [train] section.  Cannot fail for a parsed
 * spec (values were checked by cn_spec_parse). */
void cn_spec_train_opts(const cn_spec *spec, cn_train_opts *opts);
/* Checks that every field of opts is in range.  Errors: CN_ERR_ARG. */
cn_status cn_train_opts_check(const cn_train_opts *opts);
/* The learning rate at a point of training: epoch counts from 0 and may be
 * fractional (2.5: half way through the third epoch). */
double cn_train_opts_lr(const cn_train_opts *opts, double epoch);

/* The recipe's keys.  One table describes each field of cn_train_opts: its
 * key in [train] (and in a model file), its command-line option, its type,
 * range and default, and a line of help.  A program reads it to offer the
 * recipe as options without copies of names and ranges of its own. */
typedef enum cn_train_key_type {
    CN_TRAIN_NUMBER = 0, /* a number in [min, max] */
    CN_TRAIN_WHOLE,      /* a whole number in [min, max] */
    CN_TRAIN_CHOICE      /* one of the words in choices; min, max and def are
                            indices into them */
} cn_train_key_type;

/* One key of the recipe, as cn_train_key_at gives it. */
typedef struct cn_train_key {
    const char *name;   /* the key in [train]: "lr_policy" */
    const char *option; /* the command-line option without its dashes
                           ("lr-policy"), or NULL for a key that convnet train
                           does not offer as one (beta2, eps) */
    const char *arg;    /* what help calls the option's value: "N", "X", "P" */
    const char *help;   /* one line for the option's help, written for the
                           command line (it names other keys by their options) */
    cn_train_key_type type;
    double min, max;            /* the values allowed, both included */
    double def;                 /* the value when [train] does not set the key */
    const char *const *choices; /* CN_TRAIN_CHOICE: the words, NULL-terminated;
                                   NULL for the others */
} cn_train_key;

/* The number of keys (cn_train_key_count), and key i (cn_train_key_at) in
 * the order a model file lists them
 * (epochs, batch, lr, momentum, decay, lr_policy, lr_step, lr_gamma,
 * lr_warmup, seed, optimizer, beta2, eps, shift, flip, rotate, scale,
 * shear, erase, label_smoothing, ema, elastic, mixup); NULL when i is past
 * the last.  The keys are static: never freed. */
size_t cn_train_key_count(void);
const cn_train_key *cn_train_key_at(size_t i);
/* The key called name, in [train]'s spelling ("lr_policy") or the option's
 * ("lr-policy"), or NULL. */
const cn_train_key *cn_train_key_find(const char *name);

/* The augmentation of the recipe opts (shift, flip, rotate, scale, shear,
 * erase, elastic) applied in place to n samples of 8-bit pixels (n, C, H, W) of
 * the given shape, as training step `step` (from 0) of a run seeded with
 * opts->seed applies it to the samples at places first .. first + n - 1 of
 * its global batch: the same draws, the same pixels.  With mixup, the
 * partners are drawn from the n samples given (training draws them from the
 * whole training set), each augmented with its own draws, as training does.  For pictures of what a
 * recipe does (convnet viz --augment).  Errors: CN_ERR_ARG (opts out of
 * range), CN_ERR_NOMEM. */
cn_status cn_train_opts_augment(const cn_train_opts *opts, uint8_t *pixels, size_t n,
                                cn_shape shape, uint64_t step, size_t first);

/* Fills opts with every key's default: the recipe of a description whose
 * [train] sets nothing (or that has no [train]). */
void cn_train_opts_defaults(cn_train_opts *opts);
/* Sets one key of opts from text, read as [train] reads a value: a number, a
 * whole number or one of the key's words, within the key's range.  key is
 * the key's name or its option.  On failure opts is unchanged.
 * Errors: CN_ERR_ARG with a message for the user that begins with key as it
 * was given, so that a command line may put its dashes in front: "lr takes a
 * number from 1e-12 to 100, not 'fast'", "lr-policy is const, step, onecycle
 * or cosine, not 'linear'"; an unknown key lists the keys. */
cn_status cn_train_opts_set(cn_train_opts *opts, const char *key, const char *text);

/* ---------------------------------------------------------------- device */

/* Where a network runs: one set of options, given when a network or a
 * model is created or loaded (NULL: the CPU with one thread per core).
 * Every tensor of the network lives in its backend's memory, which the
 * program reaches only by copying (cn_net_get, cn_net_set, cn_net_forward,
 * cn_net_get_output, ...). */
typedef struct cn_device {
    const char *backend; /* "cpu" (NULL or "" too); "cuda": an NVIDIA GPU
                            (a build with make CUDA=1; cn_gpu_list); or
                            "guard": the CPU with its tensor memory locked
                            except inside its own operations, as a GPU's is
                            out of the host's reach (a check of the
                            library's device seam; slow) */
    int index;           /* which device of the backend: the GPU's number
                            (cuda:1 is 1), else 0 (the CPU has one) */
    int threads;         /* worker threads on the host (0: one per core;
                            the CUDA backend uses one) */
} cn_device;

/* A GPU that the CUDA backend can use. */
typedef struct cn_gpu {
    int index;        /* cn_device's index: cuda:INDEX */
    char name[256];   /* "NVIDIA H100 80GB HBM3" */
    size_t memory;    /* bytes of device memory */
    int major, minor; /* compute capability, 9.0 for an H100 */
    int driver;       /* the CUDA version the driver supports, 1000 major +
                         10 minor (12040 is 12.4); 0 without a driver */
    int runtime;      /* the CUDA runtime convnet was built with, likewise */
} cn_gpu;

/* The GPUs of this machine: up to max into gpus, how many there are in
 * *count.  Errors: CN_ERR_ARG when there is none to use (*count 0), with
 * the reason: a build without CUDA ("rebuild with make CUDA=1"), no
 * driver, or no GPU. */
cn_status cn_gpu_list(cn_gpu *gpus, int max, int *count);

/* ------------------------------------------------------------------- net */

/* A network built from a spec: layers with their shapes checked, one
 * parameter block, one gradient block, activations and scratch memory, all
 * planned for batches of up to max_batch samples. */
typedef struct cn_net cn_net;

/* Builds the network of spec for batches of 1..max_batch samples on the
 * device dev (NULL: the CPU, one thread per core).  Parameters are zero: call
 * cn_net_init or load them.  The memory is planned first: a network that
 * needs more than the machine's memory, or than cn_set_memory_limit allows, is
 * refused before anything is allocated.  The network keeps a pointer to
 * spec, which must outlive it.  Errors: CN_ERR_SPEC (impossible
 * shapes, with the line of the offending layer), CN_ERR_NOMEM (naming the
 * layer that needs the most, what the net needs and what there is),
 * CN_ERR_ARG (a device this build or machine does not have). */
cn_status cn_net_create(const cn_spec *spec, size_t max_batch, const cn_device *dev, cn_net **out);
/* Releases net and all its memory (NULL: nothing). */
void cn_net_free(cn_net *net);

/* The most memory, in bytes, that a network built afterwards may plan (0, the
 * default: the machine's physical memory).  One setting for the whole
 * process; the convnet command sets it from $CONVNET_MAX_MEMORY. */
void cn_set_memory_limit(size_t bytes);

/* He initialisation: weights ~ N(0, 2/n_in), biases 0, drawn from rng. */
void cn_net_init(cn_net *net, cn_rng *rng);

/* The shape of one input sample, from the spec's [net] section. */
cn_shape cn_net_input_shape(const cn_net *net);
/* The number of classes: the length of each sample's output. */
size_t cn_net_classes(const cn_net *net);
/* The most samples a forward pass may take (the max_batch it was built for). */
size_t cn_net_max_batch(const cn_net *net);
/* Where the network runs (cn_net_device), with the thread count resolved
 * ("cpu", 0, 2); cn_net_threads gives that thread count alone. */
cn_device cn_net_device(const cn_net *net);
int cn_net_threads(const cn_net *net);
/* The name of the backend's kernel set: "avx512", "avx2" or "portable"
 * on the CPU, "cuda" on a GPU. */
const char *cn_net_isa(const cn_net *net);
/* The most device memory, in bytes, that the network's backend has held
 * at once since it was made; 0 where the memory is the host's (the CPU's:
 * the process's peak resident size tells). */
size_t cn_net_device_peak(const cn_net *net);

/* A layer as cn_net_layer describes it. */
typedef struct cn_layer_info {
    const char *name; /* unique name, e.g. "conv1"; owned by the net */
    const char *kind; /* section name, e.g. "conv" */
    int line;         /* line of its section in the model description */
    cn_shape in, out; /* per-sample shapes */
    size_t params;    /* number of parameters */
    uint64_t macs;    /* multiply-adds per sample in the forward pass */
} cn_layer_info;

/* The number of layers, the softmax at the end included. */
size_t cn_net_num_layers(const cn_net *net);
/* Fills info with layer i's description (0 <= i < cn_net_num_layers).
 * Errors: CN_ERR_ARG when i is out of range. */
cn_status cn_net_layer(const cn_net *net, size_t i, cn_layer_info *info);

/* A named parameter tensor, e.g. "conv1.weight" [20, 1, 5, 5], in PyTorch's
 * layout: conv weight [out, in, kh, kw], fc weight [out, in], bias [out]. */
typedef struct cn_tensor_info {
    const char *name; /* owned by the net */
    int ndim;         /* 1..4 */
    size_t dims[4];   /* sizes, outermost first */
    size_t count;     /* number of elements */
    size_t offset;    /* position in the parameter and gradient blocks, or in
                         the buffer block when not trainable */
    int trainable;    /* 0 for buffers such as batch-norm running statistics */
} cn_tensor_info;

/* Parameters and buffers, layer by layer: how many (cn_net_num_tensors),
 * and tensor i's description (cn_net_tensor; CN_ERR_ARG when i is out of
 * range). */
size_t cn_net_num_tensors(const cn_net *net);
cn_status cn_net_tensor(const cn_net *net, size_t i, cn_tensor_info *info);
/* Index of the tensor called name, or (size_t)-1. */
size_t cn_net_find_tensor(const cn_net *net, const char *name);

/* The parameter and gradient blocks: cn_net_num_params() floats each, laid
 * out tensor after tensor as cn_net_tensor() describes (each tensor starts
 * on a 16-float boundary; the floats between tensors are zero). */
size_t cn_net_num_params(const cn_net *net);
/* Sets the gradient block to zero (backward passes add into it). */
void cn_net_zero_grads(cn_net *net);
/* The buffer block: state that is saved but not trained (batch-norm running
 * mean and variance), cn_net_num_buffers() floats. */
size_t cn_net_num_buffers(const cn_net *net);

/* The network's blocks of floats, which live in its backend's memory. */
typedef enum cn_block {
    CN_PARAMS,  /* cn_net_num_params() */
    CN_GRADS,   /* cn_net_num_params() */
    CN_BUFFERS, /* cn_net_num_buffers() */
} cn_block;

/* cn_net_get copies count floats at offset of block out to dst, cn_net_set
 * copies them in from src.
 * Tensor i is count = info.count at offset = info.offset of CN_PARAMS (or
 * CN_BUFFERS when not trainable).  Errors: CN_ERR_ARG (outside the block). */
cn_status cn_net_get(const cn_net *net, cn_block block, size_t offset, size_t count, float *dst);
cn_status cn_net_set(cn_net *net, cn_block block, size_t offset, size_t count, const float *src);

/* Converts n samples of 8-bit pixels (n, C, H, W) into the network's input
 * as the spec's [net] section says: x = (p / 255 - mean) / std. */
void cn_net_prepare(const cn_net *net, const uint8_t *pixels, size_t n, float *x);

/* Runs the network on x (n, C, H, W), 1 <= n <= max_batch, copied into the
 * device's memory; on the CPU, whose memory is the host's, x is read where
 * it is (no copy), so it must stay unchanged until cn_net_backward returns.
 * train = 1 for a training pass (batch normalisation uses the batch's
 * statistics and updates its running ones; cn_net_backward may follow), 0
 * for evaluation.  Errors: CN_ERR_ARG. */
cn_status cn_net_forward(cn_net *net, const float *x, size_t n, int train);
/* The same pass with each layer's time in seconds (times: cn_net_num_layers()
 * entries; a layer computed inside the one before it, a relu after a
 * convolution say, shows 0), each layer waiting for the device: for timing
 * (convnet bench --infer).  Errors: CN_ERR_ARG. */
cn_status cn_net_profile_forward(cn_net *net, const float *x, size_t n, int train, double *times);
/* The same on 8-bit pixels (n, C, H, W), prepared as cn_net_prepare does
 * but on the network's device. */
cn_status cn_net_forward_pixels(cn_net *net, const uint8_t *pixels, size_t n, int train);
/* Copies the class probabilities of the last forward pass, (n, classes),
 * to dst.  Errors: CN_ERR_ARG (no forward pass yet). */
cn_status cn_net_get_output(const cn_net *net, float *dst);
/* Copies the output of layer i for samples [first, first + count) of the
 * last forward pass, (count, out.c, out.h, out.w), to dst.  An element-wise
 * layer that works in place (relu after a convolution, say) shares its
 * output with the layer before: both then show it.  A training pass's
 * backward pass writes gradients over outputs it reads no more: a max
 * pooling's input gradient over that input (over windows apart), the other
 * gradients over the outputs of layers above the ones it is at.  Those
 * outputs are refused from then until the next forward pass.  A model's
 * network built for training (cn_model_reserve_training) does not keep a
 * batch normalisation's output that its backward pass makes again: that
 * one is always refused (cn_model_reserve keeps every output).  Errors:
 * CN_ERR_ARG (no such layer or samples, an output written over or not
 * kept). */
cn_status cn_net_get_layer_output(const cn_net *net, size_t i, size_t first, size_t count,
                                  float *dst);
/* Mean negative log-likelihood of labels under the last forward pass,
 * computed stably (log-sum-exp).  Errors: CN_ERR_ARG (bad label or n). */
cn_status cn_net_loss(cn_net *net, const int32_t *labels, size_t n, double *loss);
/* Adds the gradient of the mean loss of the last forward pass (a training
 * pass) to the gradient block.  labels: n true classes.  If dx is not NULL it
 * receives dL/dx, (n, C, H, W).  Called again without a forward pass in
 * between, it adds the same gradients once more, unless the first wrote
 * gradients over outputs (as most networks' do: cn_net_get_layer_output):
 * then it needs the forward pass again and says so.  Errors: CN_ERR_ARG. */
cn_status cn_net_backward(cn_net *net, const int32_t *labels, size_t n, float *dx);
/* Why the network chose: the gradient of each sample's class score, the
 * logit of classes[s] (the input of the final softmax, before
 * normalisation), after an evaluation pass (cn_net_forward with train = 0)
 * over n samples, n <= the training batch the net was built for.  The
 * backward pass runs in evaluation mode: batch normalisation as the affine
 * map of its running statistics, dropout as the identity.  dlayer (NULL: not
 * wanted) receives d score / d (layer's output as cn_net_get_layer_output
 * shows it, after any in-place layer that follows), (n, out.c, out.h,
 * out.w); dx (NULL: not wanted) receives d score / d x, (n, C, H, W).  The
 * gradient block is left unspecified: zero it before training on.
 * Errors: CN_ERR_ARG (no evaluation pass over n samples, n too large, a
 * class out of range, layer not before the last, the last layer not the
 * softmax). */
cn_status cn_net_class_gradient(cn_net *net, const int32_t *classes, size_t n, size_t layer,
                                float *dlayer, float *dx);

/* How cn_net_project carries a signal back through the rectifiers (relu
 * and leaky relu); every other layer passes it by its evaluation-mode
 * derivative: convolution by its transposed filters, fully connected by
 * the transposed weights, max pooling by unpooling through the positions
 * that won the forward pass (its "switches"), average pooling by spreading,
 * batch normalisation as its affine map without the shift, dropout as the
 * identity, sigmoid and the like by their derivative. */
typedef enum cn_backrule {
    CN_BACK_GRADIENT, /* the chain rule: the gradient of the signal's sum */
    CN_BACK_DECONV,   /* Zeiler and Fergus's deconvnet: a rectifier passes
                         relu(signal), whatever its forward input was */
    CN_BACK_GUIDED    /* guided backpropagation (Springenberg et al.): the
                         gradient's and the deconvnet's masks both */
} cn_backrule;

/* Projects signal, (n, out.c, out.h, out.w) at layer's output as
 * cn_net_get_layer_output shows it (after any in-place layer that follows),
 * back to the input by rule, after an evaluation pass over those n samples
 * (n <= the training batch the net was built for); dx receives (n, C, H,
 * W) in the network's input units (normalised pixels).  A signal that is
 * the activation at one position and zero elsewhere gives Zeiler and
 * Fergus's picture of what that unit sees.  The gradient block is left
 * unspecified.  Errors: CN_ERR_ARG (no evaluation pass over n samples, n
 * too large, layer not before the last, an unknown rule). */
cn_status cn_net_project(cn_net *net, size_t layer, const float *signal, size_t n, cn_backrule rule,
                         float *dx);

/* The input rows box[0] .. box[2] - 1 and columns box[1] .. box[3] - 1 that
 * position (row, col) of layer's output depends on through the chain of
 * layers before it (its receptive field; after a fully connected layer, all
 * of the input).  It may reach outside the input, into the zero padding.
 * Errors: CN_ERR_ARG (no such layer or position). */
cn_status cn_net_receptive_field(const cn_net *net, size_t layer, size_t row, size_t col,
                                 long box[4]);

/* The word of words[0..n) nearest to word, for "did you mean" hints: at
 * most 2 edits away (insertions, deletions, substitutions and swaps of
 * neighbours, case aside) and fewer edits than half of word's letters; NULL
 * when none is that near.  The model description's messages use it, and
 * the command line's. */
const char *cn_nearest(const char *word, const char *const *words, size_t n);

/* -------------------------------------------------------------- gradcheck */

/* Central-difference gradient check with step eps = 1e-2 (float32 forward
 * passes, losses summed in double).  A layer on its own is judged coordinate
 * by coordinate: |a - g| / max(|a| + |g|, floor), a the analytic and g the
 * numerical derivative, floor the larger of 1% of the tensor's largest |a|
 * (at least 1e-6) and 300 times the rounding expected in g (which grows with
 * the number of outputs the coordinate moves).  The whole network is judged
 * per tensor on the gradient vector, ||a - g|| / max(||a||, ||g||, floor),
 * since rounding adds up through the layers.  What fails is measured again
 * with half the step, and the difference's own instability (rounding and
 * truncation) widens the floor: a coordinate whose two differences disagree
 * with each other as much as with a is skipped and counted; a tensor's floor
 * becomes 200 ||g - g_half||.  The worst value is reported; values below
 * CN_GRADCHECK_TOL pass.  A step that crosses a kink of relu or max pooling
 * (where no derivative exists) is skipped and counted. */
#define CN_GRADCHECK_TOL 1e-2
typedef struct cn_gradcheck {
    double input_err;     /* worst relative error of dL/dx */
    double param_err;     /* worst relative error of dL/dtheta (0 if none) */
    size_t checked;       /* coordinates compared, input and parameters */
    size_t input_checked; /* of those, coordinates of the input gradient */
    size_t skipped;       /* coordinates on a kink or unresolved */
} cn_gradcheck;

/* Checks layer i on its own with random input, random labels for the loss
 * layer and the loss L = sum(r * y) with a random r for the others.
 * max_coords bounds the coordinates sampled per tensor (0: all).
 * Errors: CN_ERR_ARG, CN_ERR_NOMEM. */
cn_status cn_gradcheck_layer(cn_net *net, size_t i, size_t n, size_t max_coords, cn_rng *rng,
                             cn_gradcheck *out);
/* Checks the whole network: mean NLL of random labels on random input. */
cn_status cn_gradcheck_net(cn_net *net, size_t n, size_t max_coords, cn_rng *rng,
                           cn_gradcheck *out);

/* ------------------------------------------------------------------ data */

/* A labelled image data set held as 8-bit pixels.  Data from a loader owns
 * its memory and is released by cn_data_free; a slice shares its parent's
 * memory and must not outlive it (cn_data_free on a slice does nothing). */
typedef struct cn_data {
    size_t n;        /* number of samples */
    cn_shape shape;  /* per-sample shape */
    size_t classes;  /* labels are in [0, classes) */
    uint8_t *pixels; /* (n, C, H, W) */
    int32_t *labels; /* (n) */
    int owned;       /* 1 if cn_data_free releases pixels, labels and names */
    char **names;    /* names[k] of class k, k < classes, or NULL when the data
                        do not name their classes */
    void *store;     /* private to the library: a mapped file that cn_data_free
                        releases (NULL for data held in memory) */
} cn_data;

/* Reads an IDX image file (n, h, w) or (n, c, h, w) of unsigned bytes and an
 * IDX label file (n) of unsigned bytes, raw or gzip-compressed.
 * Errors: CN_ERR_IO, CN_ERR_FORMAT (with the file name and what is wrong). */
cn_status cn_data_load_idx(const char *images, const char *labels, cn_data *out);
/* Reads MNIST-layout files from dir: which is "train" or "t10k".  Accepts
 * train-images-idx3-ubyte, train-images.idx3-ubyte and the .gz forms.  A
 * file classes.txt in dir (one name per line, class 0 first) names the
 * classes. */
cn_status cn_data_load_mnist(const char *dir, const char *which, cn_data *out);
/* Reads CIFAR-10's binary batches from dir: which is "train" (data_batch_1.bin
 * to data_batch_5.bin, in that order) or "test" (test_batch.bin).  Each record
 * is a label byte and 3072 pixel bytes (the red, green and blue 32x32 planes),
 * giving samples of shape (3, 32, 32) and 10 classes, named by
 * batches.meta.txt (part of the download) when dir holds it.
 * Errors: CN_ERR_IO, CN_ERR_FORMAT (with the file name and what is wrong). */
cn_status cn_data_load_cifar10(const char *dir, const char *which, cn_data *out);
/* Reads whichever data set dir holds, MNIST's IDX layout or CIFAR-10's
 * binary batches: split is "train" or "test".  Errors: as the loaders, and
 * CN_ERR_IO naming the files looked for when dir holds neither. */
cn_status cn_data_load(const char *dir, const char *split, cn_data *out);
/* Releases the pixels and labels of data from a loader and zeroes it;
 * nothing for a slice, a zeroed cn_data or NULL. */
void cn_data_free(cn_data *data);
/* Samples [first, first + count) of data; count is clamped to what exists. */
cn_data cn_data_slice(const cn_data *data, size_t first, size_t count);
/* Gives data the class names names[0..data->classes) (copied; NULL removes
 * them).  Names are 1 to 255 bytes of UTF-8 without control characters
 * and distinct.  Errors: CN_ERR_ARG (a bad or repeated name, or data not
 * owning its memory: a slice), CN_ERR_NOMEM. */
cn_status cn_data_set_names(cn_data *data, const char *const *names);

/* --------------------------------------------------------- data caches */

/* A data cache holds a data set's pixels once decoded, for data sets read
 * from image files (convnet_vis.h's cn_data_load_folder), so that they are
 * decoded once and read back mapped.  It is a safetensors file: "pixels",
 * U8 (n, C, H, W), then "labels", I32 (n); its metadata holds
 * "convnet.format" ("convnet-data-cache 1"), "convnet.classes" (the class
 * names, a JSON array of strings) and whatever the writer adds. */

/* What cn_data_cache_write asks for: up to max samples, written to pixels
 * ((max, C, H, W)) and labels ((max), each in [0, classes)), and their
 * number in *got; *got = 0 ends the data.  A status other than CN_OK (with
 * its message) abandons the file. */
typedef cn_status (*cn_data_source)(void *user, uint8_t *pixels, int32_t *labels, size_t max,
                                    size_t *got);

/* Writes a data cache to path from next's samples, at most max_n of them,
 * streamed: only a batch of samples is held in memory at a time.  names:
 * the classes' names (classes of them; rules as cn_data_set_names); meta:
 * n_meta more key/value pairs of metadata, whose values are read twice:
 * when the room for the header is set aside, and once the source has ended,
 * when the header is written (so the source may update them, as long as no
 * value grows longer than it was at the start).  The file is written as
 * cn_model_save writes models: a temporary file renamed over path once
 * complete, so that a failure or a crash leaves path as it was.  *written
 * (optional) receives the number of samples.  Errors: CN_ERR_ARG (a bad
 * shape, name or label; more than max_n samples), CN_ERR_IO (naming path and
 * the system's reason), CN_ERR_NOMEM, or next's status and message. */
cn_status cn_data_cache_write(const char *path, cn_shape shape, size_t max_n,
                              const char *const *names, size_t classes, const char *const *meta,
                              size_t n_meta, cn_data_source next, void *user, size_t *written);
/* Opens the data cache at path as a data set without reading its pixels:
 * out->pixels points into a read-only mapping of the file (so a data set
 * larger than memory can be used: the system reads pages as they are
 * touched and drops them under pressure), its labels are copied (4 bytes a
 * sample) and checked, and its classes are named.  cn_data_free unmaps it.
 * The file must not be truncated while it is open (the cache writer
 * replaces files, never rewrites them).  Errors: CN_ERR_IO, CN_ERR_FORMAT
 * (not a data cache, a damaged or truncated one: the message says which),
 * CN_ERR_NOMEM. */
cn_status cn_data_cache_open(const char *path, cn_data *out);
/* The metadata value of key in the data cache at path, read from the header
 * alone, in *value (malloc'd, the caller frees it; NULL when the file has no
 * such key).  Errors: as cn_data_cache_open. */
cn_status cn_data_cache_meta(const char *path, const char *key, char **value);

/* Evaluation of a network on a data set. */
typedef struct cn_eval {
    size_t n, classes;
    double loss;        /* mean negative log-likelihood */
    double accuracy;    /* fraction of samples whose best class is the label */
    size_t *confusion;  /* classes x classes, [true][predicted]; owned */
    size_t *predicted;  /* n: each sample's best class; owned */
    float *probability; /* n: the probability of that class; owned */
} cn_eval;

/* Runs net over data (evaluation passes, in batches of up to
 * cn_net_max_batch samples) and fills out, whose arrays the caller releases
 * with cn_eval_free.  The outputs of the last pass are not kept: call
 * cn_net_forward again before cn_net_get_output.  Errors: CN_ERR_SHAPE (the
 * data does not fit the net), CN_ERR_NOMEM; out then holds nothing. */
cn_status cn_net_evaluate(cn_net *net, const cn_data *data, cn_eval *out);
/* Releases the arrays of ev (NULL: nothing). */
void cn_eval_free(cn_eval *ev);

/* Test-time augmentation: what an evaluation or a classification averages
 * over. */
typedef enum cn_tta {
    CN_TTA_NONE = 0,  /* each image as it is */
    CN_TTA_FLIP,      /* the mean of the class probabilities of each image and
                         of its left-right mirror (for pictures whose mirror
                         is as likely, as clothes; not for digits) */
    CN_TTA_SHIFT,     /* the mean over each image and its four shifts by one
                         pixel (down, up, right, left; 0 comes in at the
                         edge): for pictures a pixel's move does not change,
                         as digits */
    CN_TTA_FLIP_SHIFT /* the mean over the five views of CN_TTA_SHIFT and
                         their mirrors (ten): for clothes trained with
                         shifts and flips */
} cn_tta;

/* "none", "flip", "shift", "flip-shift". */
const char *cn_tta_name(cn_tta tta);
/* The test-time augmentation called name, or -1. */
int cn_tta_by_name(const char *name);

/* The class probabilities, probs (n, classes), of n images of 8-bit
 * pixels (n, C, H, W), prepared as cn_net_prepare does, from evaluation
 * passes: with CN_TTA_FLIP the mean of each image's and its mirror's (two
 * passes), with CN_TTA_SHIFT of each image's and its four shifts' (five),
 * with CN_TTA_FLIP_SHIFT of those five and their mirrors' (ten).  The
 * outputs of the last pass are left as cn_net_get_output reads them (the
 * mirrors' with CN_TTA_FLIP, the shifts to the left with CN_TTA_SHIFT, the
 * mirrors shifted to the left with CN_TTA_FLIP_SHIFT).  Errors: CN_ERR_ARG
 * (n not in 1..cn_net_max_batch, an unknown tta), CN_ERR_NOMEM. */
cn_status cn_net_classify_pixels(cn_net *net, const uint8_t *pixels, size_t n, cn_tta tta,
                                 float *probs);

/* cn_net_evaluate with test-time augmentation: each image's class
 * probabilities are cn_net_classify_pixels's, its best class the first
 * largest of them and its loss -log of its label's (at most -log 1e-30).
 * CN_TTA_NONE is cn_net_evaluate itself (the loss from the logits).
 * Errors: as cn_net_evaluate, CN_ERR_ARG (an unknown tta). */
cn_status cn_net_evaluate_tta(cn_net *net, const cn_data *data, cn_tta tta, cn_eval *out);
/* cn_net_classify_pixels of an ensemble: probs (n, classes) the mean of the
 * count networks' class probabilities of the n images (each with the
 * test-time augmentation tta).  The networks take the same input and have
 * the same classes; n must be within every one's cn_net_max_batch.
 * Errors: as cn_net_classify_pixels, CN_ERR_ARG (count 0), CN_ERR_SHAPE (the
 * networks' inputs or classes differ). */
cn_status cn_net_classify_ensemble(cn_net *const *nets, size_t count, const uint8_t *pixels,
                                   size_t n, cn_tta tta, float *probs);
/* cn_net_evaluate_tta of an ensemble: each image's class probabilities are
 * the mean of the count networks' (each with the test-time augmentation
 * tta; CN_TTA_NONE: plain passes), its best class the first largest of them
 * and its loss -log of its label's (at most -log 1e-30).  The networks take
 * the same input and have the same classes; they may differ in anything
 * else.  Errors: as cn_net_evaluate_tta, CN_ERR_ARG (count 0), CN_ERR_SHAPE
 * (the networks' inputs or classes differ). */
cn_status cn_net_evaluate_ensemble(cn_net *const *nets, size_t count, const cn_data *data,
                                   cn_tta tta, cn_eval *out);

/* ----------------------------------------------------------------- model */

/* A model: a spec, its network, the optimizer state and the training state.
 * It is what a model file (safetensors) holds. */
typedef struct cn_model cn_model;

/* Where training stands: saved in the model file, so that training resumes
 * where it stopped. */
typedef struct cn_train_state {
    int epoch;            /* completed epochs */
    uint64_t step;        /* batches done in the current epoch */
    uint64_t global_step; /* batches done in all */
    cn_rng rng;           /* state at the start of the current epoch */
} cn_train_state;

/* A new model with He-initialised weights drawn from opts->seed (opts NULL:
 * the spec's [train] section), on the device dev (NULL: the CPU, one thread
 * per core).  The spec is copied.  Errors: as cn_net_create, CN_ERR_ARG for
 * bad opts. */
cn_status cn_model_create(const cn_spec *spec, const cn_train_opts *opts, const cn_device *dev,
                          cn_model **out);
/* Reads a model file written by cn_model_save.  Every header field, dtype
 * and shape is checked against the architecture in the file, and the weights
 * that architecture needs against the file's size before the network is
 * built.  Errors: CN_ERR_IO, CN_ERR_FORMAT, CN_ERR_SPEC, and as
 * cn_net_create. */
cn_status cn_model_load(const char *path, const cn_device *dev, cn_model **out);
/* Writes weights, optimizer state, recipe and training state to path (with
 * a moving average of the weights, ema: the average under the tensors'
 * names and the trained weights as optim.<name>.raw)
 * atomically (temporary file path.tmp-PID, fsync, rename): a save that is
 * interrupted (the process killed, the disk full, a write error reported by
 * write, fsync or close) leaves the previous file intact and loadable.  A
 * temporary file left by a process that died before its rename is removed by
 * the next save to path.  A model whose weights or optimizer state hold NaN
 * or infinite values is not written.  Errors: CN_ERR_IO (with path, the step
 * that failed and the system's reason), CN_ERR_NUMERIC, CN_ERR_NOMEM. */
cn_status cn_model_save(const cn_model *model, const char *path);
/* Releases model with its network, spec and optimizer state (NULL: nothing). */
void cn_model_free(cn_model *model);

/* A caller's notes kept with the model: short strings under keys of
 * letters, digits, '.', '_' and '-' (1 to 64 characters), saved in the
 * file's metadata as "convnet.info.KEY" and read back by cn_model_load.
 * The library does not interpret them (the command line keeps there the
 * data a model was trained on: data.dir, data.limit, data.val,
 * data.fingerprint, data.kind).  value NULL removes the key.
 * Errors: CN_ERR_ARG (a bad key), CN_ERR_NOMEM. */
cn_status cn_model_set_info(cn_model *model, const char *key, const char *value);
/* The note under key, or NULL; valid until the key is set again or the
 * model is freed. */
const char *cn_model_info(const cn_model *model, const char *key);

/* Names the model's classes: names[k] for class k, k < cn_net_classes
 * (copied; NULL removes them).  Saved in the model file's metadata as
 * "convnet.classes" (a JSON array), read back by cn_model_load, and written
 * into ONNX files.  Names are 1 to 255 bytes of UTF-8 without control
 * characters, and distinct.  Errors: CN_ERR_ARG (a bad, missing or
 * repeated name), CN_ERR_NOMEM. */
cn_status cn_model_set_class_names(cn_model *model, const char *const *names);
/* The model's class names (cn_net_classes of them), or NULL when it has
 * none: valid until they are set again or the model is freed. */
const char *const *cn_model_class_names(const cn_model *model);

/* A 64-bit fingerprint of a data set's shape, classes, pixels, labels and
 * class names (FNV-1a): equal data give equal fingerprints wherever they
 * are stored. */
uint64_t cn_data_fingerprint(const cn_data *data);

/* Makes the model's network take batches of up to n samples, forward and
 * backward (rebuilding it if it was planned for fewer; the weights are
 * kept): every layer's output can be read after a forward pass, and an
 * evaluation pass explained (cn_net_class_gradient).  Errors: CN_ERR_ARG,
 * CN_ERR_NOMEM. */
cn_status cn_model_reserve(cn_model *model, size_t n);

/* Makes the model's network take training passes of up to n samples with
 * the memory training needs (rebuilding it unless it was built so, for as
 * many; the weights are kept), as cn_model_create and cn_model_load build
 * it: each output is kept only while backward reads it, and on the CPU a
 * batch normalisation's output (its relu applied) is not kept at all where
 * that takes less memory: backward makes it again from the convolution's
 * output, the same bits, for one more pass of the normalisation.  Such
 * outputs cannot be read (cn_net_get_layer_output says so), nor an
 * evaluation pass explained: cn_model_reserve keeps every output.  Errors:
 * CN_ERR_ARG, CN_ERR_NOMEM. */
cn_status cn_model_reserve_training(cn_model *model, size_t n);

/* Makes the model's network take forward passes of up to n samples with
 * only the memory that evaluation and prediction need: no gradients, and
 * the layers' outputs sharing one block, each kept only until the layers
 * that read it have run.  Only the last two layers' outputs (the logits and
 * the probabilities) can be read back; training passes and explanations
 * are refused until the network is rebuilt for them (cn_model_train,
 * cn_model_step and cn_model_reserve do that).  A batch normalisation
 * right after a convolution is folded into it (the same bits, one pass over
 * memory fewer), and so is a max pooling after them.  On the CPU a pass
 * over more than a chunk of samples (32 to 64) goes through the layers a
 * chunk at a time, each thread taking the next chunk not yet taken, and the
 * outputs are planned for a chunk per thread (the logits and probabilities
 * for n): LeNet at a batch of 1000 on 2 threads takes 2 MB of outputs
 * (14.7 without chunks, 75.7 without the block), and no backward buffers.
 * A fully connected layer of 128 outputs or more keeps its weights a second
 * time, transposed, for passes over one sample, which read only the weights
 * of its inputs that are not 0 (most, after a relu).  Every result is the
 * same bits as one pass over the batch.  Errors: CN_ERR_ARG, CN_ERR_NOMEM. */
cn_status cn_model_reserve_inference(cn_model *model, size_t n);

/* Evaluates the model on data as cn_net_evaluate does, with the weights
 * the model is used with: the moving average of its weights when its
 * recipe keeps one (ema), else its weights.  Outside training that is
 * what cn_model_net's network holds; during training (from a hook) its
 * network holds the weights being trained, and this evaluates the average
 * all the same.  Errors: as cn_net_evaluate. */
cn_status cn_model_evaluate(cn_model *model, const cn_data *data, cn_eval *out);

/* The model's network, owned by the model.  cn_model_reserve,
 * cn_model_train and cn_model_step rebuild it when they need larger
 * batches than it was planned for (the weights move over): ask for it
 * again after them rather than keep the pointer. */
cn_net *cn_model_net(cn_model *model);
/* The model's spec (its copy), owned by the model. */
const cn_spec *cn_model_spec(const cn_model *model);
/* The recipe in use; a caller may change it between training runs. */
cn_train_opts *cn_model_opts(cn_model *model);
/* Where training stands (epochs and steps done), owned by the model. */
const cn_train_state *cn_model_state(const cn_model *model);

/* How training combines gradients across workers: the processes of a
 * data-parallel run, each with the whole model and its share of every
 * batch.  Every training step (cn_model_train, cn_model_step) calls
 * allreduce once, on the whole gradient block, between the backward pass and
 * the optimizer, then divides by size: each worker then takes the same
 * step.  At the start of cn_model_train the parameters, buffers and
 * optimizer state are broadcast from worker 0.  The functions get host
 * memory (the library stages it when the backend's is not) and return
 * CN_OK or a status that stops training.  A model starts with the solo
 * communicator (rank 0, size 1), with which nothing is exchanged. */
typedef struct cn_comm {
    int rank, size; /* this worker, and how many there are */
    void *user;
    /* data[0, count) becomes the sum of every worker's data[0, count). */
    cn_status (*allreduce)(void *user, float *data, size_t count);
    /* data[0, count) becomes worker root's. */
    cn_status (*broadcast)(void *user, float *data, size_t count, int root);
    /* Returns when every worker has called it. */
    cn_status (*barrier)(void *user);
    /* Optional (leave them NULL/0 for one allreduce after the backward
     * pass): with allreduce_start, allreduce_wait and bucket > 0, the
     * gradient block is summed in buckets of at least bucket floats, each
     * started as soon as the backward pass has finished the layers whose
     * gradients it holds (the last layers first), so that the exchange
     * overlaps the rest of the pass.  allreduce_start begins the sum that
     * allreduce would make of data[0, count) and returns; data is not
     * touched until allreduce_wait has returned, which completes every sum
     * started.  progress (may be NULL) is called between the layers of the
     * backward pass while sums are in flight, for communication libraries
     * that advance only inside their own calls.  Every worker starts the
     * same buckets in the same order. */
    cn_status (*allreduce_start)(void *user, float *data, size_t count);
    cn_status (*allreduce_wait)(void *user);
    void (*progress)(void *user);
    size_t bucket;
} cn_comm;

/* Uses comm (copied; NULL: the solo communicator) for the model's training
 * from now on.  Errors: CN_ERR_ARG (rank outside 0..size-1, a function
 * missing, only one of allreduce_start and allreduce_wait), CN_ERR_NOMEM. */
cn_status cn_model_set_comm(cn_model *model, const cn_comm *comm);

/* What training reports to its hooks. */
typedef struct cn_progress {
    int epoch, epochs;    /* current epoch (from 0) and total */
    uint64_t step, steps; /* batch within the epoch and batches per epoch */
    int batch;            /* images per batch */
    uint64_t global_step;
    double lr;
    double loss, accuracy;         /* running means over this epoch's batches */
    uint64_t batches;              /* how many: this epoch's batches in this run */
    double val_loss, val_accuracy; /* end of epoch only; negative if no validation */
    double images_per_s;           /* training throughput this epoch */
    double elapsed_s;              /* training time in this run, validation excluded */
    double val_s;                  /* time spent in validation in this run */
} cn_progress;

/* What cn_model_train calls as it goes (every member may be NULL). */
typedef struct cn_train_hooks {
    void *user;
    /* Called after every batch and after every epoch's validation.  A status
     * other than CN_OK stops training and is returned. */
    cn_status (*on_batch)(void *user, const cn_progress *p);
    cn_status (*on_epoch)(void *user, cn_model *model, const cn_progress *p);
    /* When *stop becomes non-zero (a signal handler may set it), training
     * returns CN_ERR_STOPPED after the current batch: the model is consistent
     * and a save resumes exactly where it stopped. */
    const volatile int *stop;
} cn_train_hooks;

/* Trains until opts->epochs epochs are complete, continuing from the model's
 * training state (a loaded checkpoint resumes bit for bit).  Each epoch
 * draws a fresh permutation of train; batches are consecutive slices of it
 * (the last incomplete batch is dropped).  val may be NULL.
 * Errors: CN_ERR_SHAPE, CN_ERR_NUMERIC (the model's weights are then not
 * usable: reload the last checkpoint), CN_ERR_STOPPED, a hook's status. */
cn_status cn_model_train(cn_model *model, const cn_data *train, const cn_data *val,
                         const cn_train_hooks *hooks);

/* One training step on x (n, C, H, W) and labels: forward, loss, backward,
 * the gradients combined across workers (cn_comm), optimizer update with
 * learning rate lr; the same step as cn_model_train takes.  The step counts
 * in the training state's global_step (Adam's bias correction counts the
 * steps), not in its epoch or batch.  loss may be NULL.  Errors:
 * CN_ERR_ARG, CN_ERR_NOMEM, a communicator's. */
cn_status cn_model_step(cn_model *model, const float *x, const int32_t *labels, size_t n, double lr,
                        double *loss);

/* Where a training step's time goes: the same step as cn_model_step, with
 * each layer's forward and backward time (seconds, arrays of
 * cn_net_num_layers() entries) and the optimizer update's. */
cn_status cn_model_profile(cn_model *model, const float *x, const int32_t *labels, size_t n,
                           double *forward, double *backward, double *update);

/* ------------------------------------------------------------------ plan */

/* A training run planned before anything is trained (convnet plan): the
 * memory of each layer and the peaks of training and of evaluation, from
 * the same list of blocks that cn_net_create allocates (so the figures
 * cannot drift from what training takes), and the time of a step and of an
 * epoch from a roofline of this machine's arithmetic and memory speed
 * (cn_plan_roofline) or from a short timed run of the network itself
 * (cn_plan_calibrate).  The memory figures count what a process such as
 * convnet train holds: the model (its network, built for batches of the
 * training batch, which evaluation's passes take too; the optimizer state;
 * the backend's own buffers), the training file held in memory, the
 * training loop's arrays, and the larger of what a checkpoint's save and a
 * validation pass add for a moment. */

/* What the plan is for. */
typedef struct cn_plan_opts {
    const cn_train_opts *recipe; /* the recipe (NULL: the spec's [train]): its
                                    batch and optimizer count */
    const cn_device *device;     /* where it trains (NULL: the CPU, one thread
                                    per core) */
    size_t train_n;              /* images trained on in an epoch (0: no epoch
                                    figures) */
    size_t val_n;                /* images validated after each epoch */
    size_t data_n;               /* images of the training file in host memory
                                    (those left out by a limit too; 0:
                                    train_n + val_n) */
    size_t test_n;               /* images an evaluation (convnet eval) reads */
    size_t baseline;             /* bytes the process holds before it builds
                                    anything (its program and libraries):
                                    added to the host peaks */
} cn_plan_opts;

/* One layer of a plan (cn_net_layer's order, the softmax last). */
typedef struct cn_plan_layer {
    char name[32];        /* "conv1" */
    const char *kind;     /* "conv"; static */
    cn_shape out;         /* per-sample output shape */
    size_t params;        /* trainable parameters */
    size_t param_bytes;   /* its parameters, their gradients and optimizer
                             state, and its buffers */
    size_t act_bytes;     /* its output for the network's batch (none when
                             it works in place), the state it keeps for
                             backward and the gradient later layers send
                             it */
    size_t scratch_bytes; /* the scratch it asks for (the network holds
                             the largest layer's, once) */
    double flops_fwd;     /* floating-point operations of the forward pass
                             of one training step (a multiply-add is 2) */
    double flops_bwd;     /* and of its backward pass */
    double bytes_fwd;     /* bytes its forward pass reads and writes in a
                             training step (input, output, weights) */
    double bytes_bwd;     /* and its backward pass (those and the
                             gradients) */
    double fwd_s, bwd_s;  /* predicted seconds of each in a step; 0 for
                             a layer computed inside the one before (a
                             relu after a convolution); negative: no time */
} cn_plan_layer;

/* Where a plan's times come from. */
typedef enum cn_plan_timing {
    CN_PLAN_UNTIMED = 0, /* none: no device here to time (its memory is planned) */
    CN_PLAN_ROOFLINE,    /* this machine's rates (GEMM and memory copy) applied to
                            each layer's operations and bytes: a bound more than a
                            forecast (real layers reach a fraction of the GEMM's
                            rate) */
    CN_PLAN_CALIBRATED   /* steps and evaluation passes of this network timed on
                            the device, on random data */
} cn_plan_timing;

/* A plan.  Sizes in bytes; a figure of the device (device_*) is 0 where the
 * device's memory is the host's (the CPU). */
typedef struct cn_plan {
    cn_train_opts recipe; /* the recipe planned */
    cn_device device;     /* where it trains, threads resolved */
    int host_memory;      /* 1 when the device's memory is the host's */
    int standin;          /* 1 when the device cannot start here (a GPU on a
                             machine without one): its memory is planned from
                             its backend's stand-in, and it cannot be timed */
    int exact;            /* 0 when some of the device's scratch could not be
                             known without it (cuDNN's workspace, chosen on the
                             GPU): the figures leave it out */
    size_t batch;         /* the training batch */
    size_t net_batch;     /* the batch the network is built for: evaluation
                             passes take this many images at a time */
    size_t steps;         /* training steps in an epoch: train_n / batch (the
                             last incomplete batch is dropped) */
    size_t val_n;         /* images validated after each epoch */
    cn_shape input;       /* the network's input */
    size_t params;        /* trainable parameters of the network */
    size_t n_layers;
    cn_plan_layer *layers; /* n_layers of them, owned by the plan */
    /* The model, in the device's memory. */
    size_t weights;     /* the parameter and buffer blocks */
    size_t gradients;   /* the gradient block */
    size_t optimizer;   /* the optimizer's state */
    size_t activations; /* outputs, kept state, the gradients of backward */
    size_t scratch;     /* the scratch space */
    size_t io;          /* the input batch, its pixels, labels, per-sample results */
    size_t backend;     /* the backend's own (cn_device's CPU: GEMM buffers per thread) */
    size_t model;       /* all of the above */
    /* Around it, in host memory. */
    size_t host_arrays; /* host copies of per-sample results */
    size_t data;        /* the training file: pixels and labels */
    size_t loop;        /* the training loop: the epoch's permutation, a batch */
    size_t transient;   /* the larger of a checkpoint's copy and a validation's
                           results, held for a moment at the end of an epoch */
    size_t baseline;    /* cn_plan_opts's */
    size_t device_data; /* the training images copied to a device */
    /* The peaks. */
    size_t train_peak;        /* host memory of training */
    size_t infer_peak;        /* host memory of an evaluation of test_n images
                                 with the trained model (convnet eval) */
    size_t device_train_peak; /* device memory of training */
    size_t device_infer_peak; /* device memory of the evaluation */
    /* Time (seconds; negative when untimed). */
    cn_plan_timing timing;
    double step_s;         /* a training step, its batch's preparation included */
    double eval_s;         /* an evaluation pass of net_batch images */
    double train_s;        /* steps training steps */
    double val_s;          /* validating val_n images */
    double epoch_s;        /* train_s + val_s */
    double flops_step;     /* floating-point operations of a training step */
    double gflops, gbytes; /* CN_PLAN_ROOFLINE: the rates measured (GFLOP/s of the
                              GEMM, GB/s of memory traffic); 0 otherwise */
} cn_plan;

/* Plans training spec as opts says (NULL: a batch of the spec's recipe on
 * the CPU, no data), memory only: the times are negative and timing is
 * CN_PLAN_UNTIMED until cn_plan_roofline or cn_plan_calibrate.  A device
 * that cannot start here (a GPU on a machine without one) is planned from
 * its backend's stand-in: exact is then 0 when its scratch sizes are not all
 * known.  *out is freed with cn_plan_free.  Errors: CN_ERR_SPEC (as
 * cn_net_create), CN_ERR_ARG (a bad recipe or device), CN_ERR_NOMEM. */
cn_status cn_plan_training(const cn_spec *spec, const cn_plan_opts *opts, cn_plan **out);
/* Times the plan from this machine's rates: the backend's GEMM on a
 * 256 x 256 x 256 product and its addition of two 16 MiB arrays, the best
 * of runs over a tenth of a second each, applied to each layer's operations and bytes (a
 * convolution or fully connected layer takes the longer of its operations
 * at the GEMM's rate and its bytes at memory's; the others their bytes).
 * Errors: CN_ERR_ARG (a device that cannot start here), CN_ERR_NOMEM. */
cn_status cn_plan_roofline(cn_plan *plan);
/* Times the plan by running the network of spec (the plan's) on its device
 * for about seconds (at least three steps, the first untimed): training
 * steps as cn_model_train takes them (the batch gathered, augmented and
 * prepared), then evaluation passes of net_batch images, then each layer
 * once (cn_model_profile) for the rows.  The images are data's first (up to
 * 64 MiB of them; the training images to come: some functions' time
 * depends on their arguments, tanh's and the exponential's among them), or
 * random ones when data is NULL or holds fewer than a batch.  The model
 * this builds is the one training builds: the process needs that memory
 * for a moment.  Errors: CN_ERR_ARG (a device that cannot start here),
 * CN_ERR_SHAPE (data that does not fit the network), and as
 * cn_model_create and cn_model_train. */
cn_status cn_plan_calibrate(cn_plan *plan, const cn_spec *spec, const cn_data *data,
                            double seconds);
/* The largest training batch (1..65536) whose training peak fits in memory
 * bytes: the host's peak on the CPU, the device's on another device;
 * opts's recipe gives all but the batch.  *batch is 0 when not even a batch
 * of 1 fits.  Errors: as cn_plan_training. */
cn_status cn_plan_max_batch(const cn_spec *spec, const cn_plan_opts *opts, size_t memory,
                            size_t *batch);
/* Releases plan (NULL: nothing). */
void cn_plan_free(cn_plan *plan);

/* ---------------------------------------------------------------- doctor */

/* What the doctor (convnet doctor, convnet train --doctor) measures: the
 * figures of a tensor, and where a NaN or infinite value first appeared. */

/* Figures of a tensor's values.  For a layer's output they are over the
 * batch of the last forward pass, and a unit is a channel (an fc layer's
 * output: each value): dead when no sample of the batch sets any of its
 * values above 0, as a ReLU that never fires. */
typedef struct cn_stats {
    size_t count;     /* values looked at */
    size_t nonfinite; /* of them NaN or infinite */
    double mean, std; /* of the finite values */
    double norm;      /* the L2 norm of the finite values */
    double max_abs;   /* the largest |value| among the finite ones */
    size_t units;     /* channels (a layer's output), else count */
    size_t dead;      /* units that no sample sets above 0 */
    int in_place;     /* a layer's output that the next layer overwrote in
                         place (a relu after batchnorm): the figures are of
                         the last output written there */
} cn_stats;

/* The figures of layer i's output in the last forward pass.
 * Errors: CN_ERR_ARG (no forward pass, no such layer, an output that a
 * backward pass since wrote over, as cn_net_get_layer_output). */
cn_status cn_net_layer_stats(const cn_net *net, size_t i, cn_stats *out);
/* The figures of count floats at offset of block b (a tensor's weights or
 * its gradient: cn_tensor_info's offset and count).  Errors: CN_ERR_ARG. */
cn_status cn_net_block_stats(const cn_net *net, cn_block b, size_t offset, size_t count,
                             cn_stats *out);

/* Where a non-finite value first appeared. */
typedef struct cn_trace {
    int found;        /* 0: every value looked at was finite */
    int backward;     /* 0: in the forward pass, 1: in the backward pass */
    size_t layer;     /* the layer (cn_net_layer) */
    char tensor[80];  /* what held it: "input", "conv2.weight" (a parameter),
                         "conv2 output", "conv2.weight gradient",
                         "conv2 input gradient" */
    size_t nonfinite; /* how many of its values */
    size_t count;     /* of how many */
    uint64_t step;    /* cn_model_trace: the training step (global, from 1) */
    double lr;        /* cn_model_trace: its learning rate */
} cn_trace;

/* After a forward pass: the network's input, then layer by layer its
 * parameters, buffers and output, in order; the first that holds a NaN or
 * infinite value goes into out (found 0 when none does).
 * Errors: CN_ERR_ARG (no forward pass). */
cn_status cn_net_trace_forward(const cn_net *net, cn_trace *out);
/* After a training forward pass: zeroes the gradient block and runs the
 * backward pass of labels (n, those of the pass) again, checking after each
 * layer, from the loss down, the gradients it wrote: its parameters', then
 * its input's.  The first that holds a NaN or infinite value goes into out.
 * Errors: CN_ERR_ARG (as cn_net_backward). */
cn_status cn_net_trace_backward(cn_net *net, const int32_t *labels, size_t n, cn_trace *out);

/* With on, every training step of the model (cn_model_train, cn_model_step)
 * checks its loss after the forward pass and its gradient block after the
 * backward pass (one pass over the gradients: about 1% of a step on MNIST's
 * network); when one holds a NaN or infinite value the step traces it
 * (cn_net_trace_forward or _backward), leaves the weights as they were
 * before it and fails with CN_ERR_NUMERIC, whose message names the layer and
 * tensor; cn_model_trace then gives them.  Only a model training alone
 * (the solo communicator) is watched. */
void cn_model_set_watch(cn_model *model, int on);
/* Where the last watched step found a non-finite value (found 0: none). */
const cn_trace *cn_model_trace(const cn_model *model);
/* With on, each training step of the model keeps the figures of every
 * layer's output as its forward pass left them (cn_net_layer_stats), for
 * cn_model_layer_stats: after a step, the network's own outputs are not all
 * there (its backward pass writes gradients over outputs it is done with).  A
 * pass over every output (an output the network does not keep is made
 * again for it: cn_model_reserve_training): turn it on for the steps whose
 * figures are wanted.  Errors: CN_ERR_NOMEM. */
cn_status cn_model_keep_stats(cn_model *model, int on);
/* The figures of layer i's output in the last training step that kept
 * them.  Errors: CN_ERR_ARG (no step kept them, no such layer). */
cn_status cn_model_layer_stats(const cn_model *model, size_t i, cn_stats *out);

/* ------------------------------------------------------------------ onnx */

/* Writes the network as an ONNX model (opset 13, IR version 7) to path.
 * The graph follows the layers: its input "input" is float32 (batch, C, H,
 * W) holding pixels / 255 in [0, 1] (the graph applies the [net] section's
 * normalisation itself: it takes what cn_net_prepare takes, divided by
 * 255, not what cn_net_forward takes), its output "probabilities"
 * (batch, classes); the batch dimension is symbolic ("batch").  Dropout is
 * left out, batch normalisation kept as BatchNormalization with the running
 * statistics, gelu composed from Mul, Add and Tanh.  The metadata_props hold
 * "class_names" (a JSON array of strings: class_names[0..classes), or "0",
 * "1", ... when it is NULL), the normalisation ("convnet.mean",
 * "convnet.std") and the model description ("convnet.model").  The file is
 * replaced atomically, as cn_model_save's is.  Errors: CN_ERR_ARG (a NULL
 * among the class names too), CN_ERR_NOMEM, CN_ERR_NUMERIC (NaN or infinite
 * weights: not written), CN_ERR_IO (naming path, the step that failed and
 * the system's reason). */
cn_status cn_net_save_onnx(const cn_net *net, const char *const *class_names, const char *path);
/* The same for a model's network with the model's class names; the graph
 * is named after the model's description ("models/mnist.cfg"). */
cn_status cn_model_save_onnx(const cn_model *model, const char *path);

#ifdef __cplusplus
}
#endif
#endif
