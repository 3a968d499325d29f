/* cli.h - what the subcommands of the convnet tool share.  The tool uses only
 * the public API in convnet.h and convnet_vis.h. */
#ifndef CLI_H
#define CLI_H

#include "convnet.h"
#include "convnet_vis.h"

#include <stdio.h>

/* Exit statuses: 0 success, 1 failure, 2 bad usage; training stopped and
 * saved by a signal exits with 128 + its number (130 SIGINT, 143 SIGTERM). */
enum { EXIT_USAGE = 2 };

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_gradcheck(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_viz(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_export_onnx(int argc, char **argv);
int cmd_explain(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_plan(int argc, char **argv);

/* "convnet CMD: message" and a pointer to --help on stderr; returns 2. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* --tta's value v into *tta: 0, or cli_usage's 2 (naming cmd) when v is no
 * test-time augmentation's name. */
int cli_tta(const char *cmd, const char *v, cn_tta *tta);
/* "convnet: error: message" on stderr; returns 1. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The library's last message as an error; returns 1. */
int cli_lib_error(void);

/* Options: exact names only ("--epoch" is not "--epochs": the message about
 * an unknown option suggests the nearest), anywhere among the positional
 * arguments; "--name=value" or "--name value"; one-letter names
 * are written "-x"; "--" ends the options. */
typedef struct cli_opt {
    const char *name; /* "epochs" (--epochs) or "o" (-o) */
    int has_value;
    int id;
} cli_opt;

typedef struct cli_iter {
    int argc, i, no_more_options;
    char **argv;
    const char *cmd;
} cli_iter;

enum { CLI_END = -1, CLI_POSITIONAL = -2, CLI_ERROR = -3 };

void cli_begin(cli_iter *it, const char *cmd, int argc, char **argv);
/* The next option's id with *value set when it takes one, CLI_POSITIONAL
 * with *value the argument, CLI_END, or CLI_ERROR after printing a usage
 * message (the command then exits with EXIT_USAGE). */
int cli_next(cli_iter *it, const cli_opt *opts, const char **value);

/* Writes the n bytes at data to f, open for writing on path, and closes
 * it; 0, or 1 after "cannot write PATH: REASON". */
int cli_write_to(FILE *f, const char *path, const void *data, size_t n);

/* Strict number parsing: the whole string, within [min, max]. */
int cli_int(const char *s, long min, long max, long *out);
int cli_double(const char *s, double min, double max, double *out);

/* --threads: 0 (one per core) to 1024 into *threads; 0, or EXIT_USAGE
 * after the usage message. */
int cli_threads(const char *cmd, const char *v, long *threads);

/* --device: cpu, cuda, cuda:N (or guard, the test backend) for cli_device;
 * 0, or EXIT_USAGE after the usage message. */
int cli_set_device(const char *cmd, const char *v);

/* Where the command's network runs: the device --device chose (the CPU
 * by default) with that many host threads. */
cn_device cli_device(long threads);

/* Prints text on f from column col, breaking lines between words at each
 * '\n' and before a word would pass column width (0: only at '\n'); the
 * lines after the first start at column indent.  Ends the last line. */
void cli_wrap(FILE *f, const char *text, int col, int indent, int width);

/* Data directory: --data, else $CONVNET_DATA, else data/mnist. */
const char *cli_data_dir(const char *opt);
/* The data directory for a model: opt when given, else the one the model
 * was trained on (its note data.dir; *own set), else cli_data_dir's. */
const char *cli_model_data_dir(const cn_model *model, const char *opt, int *own);
/* "digits" or "pictures": what a data set's images are (predict's default
 * fit follows it: the digit fit re-centres ink, wrong for clothes). */
const char *cli_data_kind(const cn_data *d);

/* 1 234 567 with thin grouping, into buf. */
const char *cli_count(uint64_t v, char *buf, size_t size);

/* The augmentation in words after sep ("; shifts of up to 2 pixels, flips"),
 * or "" when there is none. */
const char *cli_augmentation(const cn_train_opts *o, const char *sep, char *buf, size_t size);
/* What the recipe adds to the loss and the weights (", label smoothing
 * 0.1"), or "" when nothing. */
const char *cli_recipe_extras(const cn_train_opts *o, char *buf, size_t size);

/* Whether path holds a model file (safetensors) rather than a description. */
int cli_is_model_file(const char *path);

/* The workers of a data-parallel run: under mpirun, in a build with MPI=1
 * (cli/comm/mpi.c), the MPI communicator of this process (MPI started);
 * otherwise the solo one (rank 0 of 1), whose functions are NULL (the
 * library's own do nothing).  0, or the exit status after a message. */
int cli_comm_open(int *argc, char ***argv, cn_comm *comm);
void cli_comm_close(void);
/* "MPI" in a build with MPI=1, else NULL. */
const char *cli_comm_kind(void);
/* Messages of worker rank of size say so ("convnet: worker 1 of 4: error:
 * ..."); size 1: none. */
void cli_set_worker(int rank, int size);

/* The default network, compiled in from models/mnist.cfg. */
extern const char cn_cli_default_model[];
#define CLI_DEFAULT_MODEL_NAME "models/mnist.cfg (built in)"

/* Where an installed convnet finds the model descriptions it was installed
 * with ($(DATADIR)/convnet/models, which the Makefile compiles into the
 * installed binary's main.c); "" for the build tree's binary.  main() sets
 * it. */
extern const char *cli_models_dir;

/* The description file path names: path itself when it is a file here (or
 * names a directory), else the installed description of that name, with or
 * without .cfg (cli_models_dir/lenet.cfg for "lenet"), when there is one,
 * written into buf; else path (whose error the loader then reports). */
const char *cli_find_model(const char *path, char *buf, size_t size);

/* The description at path (as cli_find_model finds it), or the built-in
 * default when path is NULL. */
cn_status cli_load_spec(const char *path, cn_spec **spec);

/* Loads the trained model file path for command cmd, refusing a model
 * description with a usage message; returns 0, or the exit status. */
int cli_load_model(const char *cmd, const char *path, long threads, cn_model **model);

/* "digit", "crop" or "stretch" into *fit; 0 for anything else. */
int cli_fit(const char *s, cn_fit *fit);
/* fit, or when it is CN_FIT_AUTO the fit for the pictures the model was
 * trained on (its note data.kind); *why says which when that is not the
 * fit older model files got (else NULL). */
cn_fit cli_model_fit(cn_model *model, cn_fit fit, const char **why);
/* Prepares picture img as one input sample (s) for model the way its
 * training data were: the pictures of folder data as the folder reader
 * converted them (cn_image_to_planes, levels as they are), others by
 * cn_image_to_input with fit (from cli_model_fit). */
cn_status cli_prepare(const cn_model *model, const cn_image *img, cn_shape s, cn_fit fit,
                      uint8_t *pixels);

/* Class k as output shows it: the model's name for it, or its number (in
 * buf) when the model's classes have no names. */
/* The class that arg names for option opt ("--class"): a number (checked
 * where it is used), or one of the model's class names, letter case aside.
 * 0, or 1 after an error that lists the names. */
int cli_class_index(cn_model *model, const char *opt, const char *arg, int *out);
const char *cli_class_name(const cn_model *model, size_t k, char *buf, size_t size);

/* The rows of a training log (the CSV 'convnet train' writes), malloc'd;
 * returns 0, or 1 after printing what is wrong (cli/log.c). */
int cli_read_log(const char *path, cn_curve_point **pts, size_t *n);
/* The same, silent: returns 0, or 1 with what is wrong in msg (room for
 * CLI_LOG_MSG bytes holds any message whole). */
int cli_log_read(const char *path, cn_curve_point **pts, size_t *n, char *msg, size_t size);
#define CLI_LOG_MSG 10240

/* The CSV log 'convnet train' writes beside a model file: "x.safetensors"
 * -> "x.csv", other names with ".csv" appended (malloc'd; NULL when out of
 * memory). */
char *cli_log_name(const char *model_file);

/* The training recipe's options, from the library's table of keys
 * (cli/recipe.c), for the commands that train (train, doctor).  A command
 * keeps given[CLI_MAX_RECIPE], the text given for key i or NULL.
 * cli_recipe_opts puts an option for each key that has one into opts with
 * id base + i and returns how many; cli_recipe_help prints their help;
 * cli_recipe_take checks v for key i and keeps it (0, or EXIT_USAGE after
 * the usage message); cli_recipe_apply sets the keys given in o. */
#define CLI_MAX_RECIPE 32
size_t cli_recipe_opts(cli_opt *opts, int base);
void cli_recipe_help(void);
int cli_recipe_take(const char *cmd, size_t i, const char *v, const char **given);
cn_status cli_recipe_apply(const char *const *given, cn_train_opts *o);

/* convnet train --doctor's log (cli/doctor.c): LOG.doctor.csv beside the
 * log LOG.csv (appended to with append), one row per layer and per weight
 * tensor at each of the training log's lines: the activations' mean, spread
 * and dead share, the gradient norm and the update size / weight size of
 * the step.  cli_doctor_log_open returns NULL after a message;
 * cli_doctor_batch, called after every batch with the log's lines per epoch,
 * returns 0 or 1 after a message. */
typedef struct cli_doctor_log cli_doctor_log;
cli_doctor_log *cli_doctor_log_open(const char *log_path, cn_model *model, int append);
int cli_doctor_batch(cli_doctor_log *d, const cn_progress *p, uint64_t parts);
void cli_doctor_log_close(cli_doctor_log *d);

/* Seconds from a monotonic clock. */
double cli_now(void);

/* s as HTML text (<, >, & and " escaped), and n bytes as base64: the
 * self-contained pages of report and doctor. */
void cli_html(FILE *f, const char *s);
void cli_base64(FILE *f, const uint8_t *d, size_t n);

/* s as a JSON string, quotes included. */
void cli_json_string(FILE *f, const char *s);

/* The network's parameters and multiply-adds per image, over all layers. */
void cli_totals(const cn_net *net, size_t *params, uint64_t *macs);

/* ------------------------------------------------- folder data (cli/common.c) */

/* How a folder of pictures or a CSV list is read and split: train's options,
 * kept in the model's notes (data.fit, data.cache, data.val_split,
 * data.test_split, data.val, data.skip_unreadable) for the other commands. */
typedef struct cli_folder_opts {
    cn_fit fit;        /* CN_FIT_AUTO: crop */
    const char *cache; /* --cache DIR, or NULL */
    double val_split, test_split;
    long val; /* images for validation; -1: val_split decides */
    int skip_unreadable;
} cli_folder_opts;
/* The defaults: crop, val_split 0.1, test_split 0.1, val -1. */
void cli_folder_defaults(cli_folder_opts *o);
/* The options a model was trained with (its notes), over the defaults. */
void cli_folder_from_model(const cn_model *model, cli_folder_opts *o);
/* Whether path is folder data (a .csv file, or a directory without MNIST's
 * IDX files or CIFAR-10's batches). */
int cli_is_folder_data(const char *path);
/* The parts of folder data: first and count of train, val and test in the
 * loaded (mapped) set. */
typedef struct cli_parts {
    size_t first[3], count[3];
} cli_parts;
/* Reads folder data at path for input shape (the cache built or found,
 * unreadable files refused unless o->skip_unreadable), into all, and cuts
 * it into parts; with say, what was done ("cache: ...", "split: ...") is
 * printed on it.  Errors as cn_data_load_folder, and CN_ERR_FORMAT listing
 * the unreadable files or when a split leaves no training images. */
cn_status cli_load_folder(const char *path, cn_shape shape, const cli_folder_opts *o, FILE *say,
                          cn_data *all, cli_parts *parts, cn_folder_info *info);
/* The data set split ("train", "val" or "test") at dir for model, whatever
 * its kind (IDX, CIFAR-10 or folder data, read as the model was trained),
 * owned by out (cn_data_free releases it). */
cn_status cli_load_data(const cn_model *model, const char *dir, const char *split, cn_data *out);

/* Explanations (cli/explain.c), shared by explain and predict --explain. */
typedef enum { CLI_SALIENCY, CLI_GRADCAM, CLI_OCCLUSION } cli_method;
typedef struct cli_explain_opts {
    cli_method method;
    int cls, true_cls; /* the class explained (-1: the top one), the true one (-1: none) */
    const char *layer; /* Grad-CAM's layer (NULL: the last convolution) */
    int patch, stride; /* occlusion's square and step */
} cli_explain_opts;
/* "saliency", "gradcam" or "occlusion" into *m; 0 for anything else. */
int cli_explain_method(const char *s, cli_method *m);
const char *cli_method_name(cli_method m);
/* The picture explaining input pix (C, H, W): the map of the class, beside
 * the true class's when that is another; *cls the class explained, *prob its
 * probability when it is the top class, else -1.  A status with a message. */
cn_status cli_explain_picture(cn_model *model, const uint8_t *pix, const cli_explain_opts *o,
                              cn_image *out, int *cls, float *prob);
/* Creates directory dir unless it exists; 0, or 1 after the message. */
int cli_explain_dir(const char *dir);
/* DIR/NAME.METHOD.png for image file path (malloc'd; NULL when out of memory). */
char *cli_explain_path(const char *dir, const char *path, cli_method m);
/* Reads image file, prepares it with fit into pix (room for one input),
 * explains it into out_file (or cli_explain_path(dir, ...)) and prints one
 * line; 0, or 1 after the message. */
int cli_explain_file(cn_model *model, const char *file, cn_fit fit, uint8_t *pix,
                     const cli_explain_opts *o, const char *out_file, const char *dir);

#endif
