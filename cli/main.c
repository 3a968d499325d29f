/* main.c - the convnet command line: dispatch to subcommands. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* A subcommand: its name, what it takes and what it does, as the usage
 * lists them ('\n' breaks the summary's line), and its function. */
typedef struct command {
    const char *name, *args;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"train", "[MODEL.cfg]", cmd_train,
     "train a network (the default MNIST network if none is given)"},
    {"eval", "MODEL_FILE...", cmd_eval,
     "test accuracy, loss, per-class accuracy and confusion matrix\n"
     "(of an ensemble, given several model files)"},
    {"info", "MODEL.cfg|FILE", cmd_info,
     "layers with their output shapes, parameters and multiply-adds"},
    {"plan", "[MODEL.cfg|FILE]", cmd_plan,
     "before training: memory per layer, peak memory, time per\n"
     "step and per epoch, the largest batch that fits (--memory)"},
    {"gradcheck", "MODEL.cfg", cmd_gradcheck,
     "check every layer's backward pass against central differences"},
    {"bench", "[MODEL.cfg]", cmd_bench, "time a training step layer by layer, and inference"},
    {"predict", "MODEL_FILE IMAGE...", cmd_predict,
     "classify image files (PNG, JPEG, BMP, PGM, ...)"},
    {"viz", "MODEL_FILE --out DIR", cmd_viz,
     "pictures: filters, feature maps, the images that excite\n"
     "each channel most, the confusion matrix"},
    {"explain", "MODEL_FILE IMAGE...", cmd_explain,
     "why the network decided: a saliency, Grad-CAM or\n"
     "occlusion map over each image, as a PNG file"},
    {"plot", "LOG.csv -o FILE.png", cmd_plot, "training curves from the log that train writes"},
    {"report", "MODEL_FILE -o FILE.html", cmd_report,
     "one self-contained page: summary, curves, confusion\n"
     "matrix, filters, worst mistakes"},
    {"export", "--out DIR", cmd_export, "data set images as PNG files"},
    {"export-onnx", "MODEL_FILE -o FILE.onnx", cmd_export_onnx,
     "the network as an ONNX model (ONNX Runtime and others)"},
    {"doctor", "MODEL.cfg|MODEL_FILE", cmd_doctor,
     "a check-up: gradients, one batch overfitted, layer figures,\n"
     "a learning-rate range test, where NaNs start"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

/* The usage: this, the commands, then usage_end. */
static const char usage_head[] = "usage: convnet COMMAND [ARGS]\n"
                                 "\n"
                                 "Define, train, evaluate and explain convolutional networks.\n"
                                 "\n"
                                 "commands:\n";

static const char usage_end[] =
    "\n"
    "'convnet COMMAND --help' describes a command.  Model descriptions are text files\n"
    "(see models/*.cfg); model files are safetensors written by 'convnet train'.\n";

/* Where the installed model descriptions are: make install compiles this
 * file once more for the convnet it installs, with CN_MODELS_DIR set to
 * $(DATADIR)/convnet/models. */
#ifndef CN_MODELS_DIR
#define CN_MODELS_DIR ""
#endif

/* Summaries start in this column; a command whose name and arguments do not
 * leave a space before it has its summary on the next line. */
#define SUMMARY_COL 25

static void print_usage(FILE *f)
{
    fputs(usage_head, f);
    for (size_t i = 0; i < N_COMMANDS; i++) {
        char synopsis[64];
        int n = snprintf(synopsis, sizeof synopsis, "%s %s", commands[i].name, commands[i].args);
        if (2 + n < SUMMARY_COL)
            fprintf(f, "  %-*s", SUMMARY_COL - 2, synopsis);
        else
            fprintf(f, "  %s\n%*s", synopsis, SUMMARY_COL, "");
        cli_wrap(f, commands[i].summary, SUMMARY_COL, SUMMARY_COL, 0);
    }
    fputs(usage_end, f);
    if (cli_models_dir[0])
        fprintf(f,
                "A description named without a directory that is not in the current one is\n"
                "read from %s (lenet or lenet.cfg: lenet.cfg there).\n",
                cli_models_dir);
}

/* $CONVNET_MAX_MEMORY (a size such as 512M or 4G): the most memory a network
 * may plan, instead of the machine's.  0, or EXIT_USAGE with a message. */
static int memory_limit_from_env(void)
{
    const char *env = getenv("CONVNET_MAX_MEMORY");
    if (!env || !*env)
        return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(env, &end, 10);
    int shift = *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : *end == 'T' ? 40 : 0;
    end += shift != 0;
    if (!isdigit((unsigned char)env[0]) || *end != '\0' || errno || v == 0 ||
        v > SIZE_MAX >> shift) {
        fprintf(stderr,
                "convnet: CONVNET_MAX_MEMORY=%s is not a size such as 512M or 4G (the most "
                "memory a network may use; unset it to allow the machine's memory)\n",
                env);
        return EXIT_USAGE;
    }
    cn_set_memory_limit((size_t)v << shift);
    return 0;
}

/* GNU OpenMP reads how long an idle thread spins before it sleeps from the
 * environment, once, when the program loads: by default for millions of
 * cycles.  On a machine that other processes keep busy, those spinning
 * threads hold the cores that the threads with work need, and training
 * with two threads ran 3-15 times slower (README, "A busy machine").  So,
 * unless the user chose (OMP_WAIT_POLICY or GOMP_SPINCOUNT set, or threads
 * bound to cores: threads_bound), convnet
 * runs itself again, before anything else happens, with a spin chosen by
 * how busy the machine is at that moment: short (1000) when two other
 * processes are runnable beside this one or the last minute's load reached
 * the cores (stress --cpu 2 on two cores),
 * longer (30000) otherwise, where a short spin put threads to sleep between
 * layers (LeNet's training 1.2x faster on the Intel Xeon of session 40).
 * Not under valgrind, which would not follow the exec.  Results do not
 * change: only how threads wait. */
#define CN_SPIN_BUSY "1000"
#define CN_SPIN_IDLE "30000"
static const char *spin_for_load(void)
{
    FILE *f = fopen("/proc/loadavg", "r");
    double load = 0.0;
    int running = 0, total = 0;
    int got = f ? fscanf(f, "%lf %*f %*f %d/%d", &load, &running, &total) : 0;
    if (f)
        fclose(f);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    /* running counts this process, and may count one more that starts beside it (the
     * other end of a pipe) */
    return got == 3 && running <= 2 && cores > 0 && load < (double)cores ? CN_SPIN_IDLE
                                                                         : CN_SPIN_BUSY;
}

/* Threads bound to places (OMP_PROC_BIND other than false, OMP_PLACES,
 * GOMP_CPU_AFFINITY): OpenMP binds the first thread to the first place when
 * the program loads, and a second start would inherit that one core as all
 * it may use (both threads on CPU 0: LeNet's training at half speed). */
static int threads_bound(void)
{
    const char *bind = getenv("OMP_PROC_BIND");
    return (bind && *bind && strcasecmp(bind, "false") != 0) || getenv("OMP_PLACES") ||
           getenv("GOMP_CPU_AFFINITY");
}

static void wait_briefly(char **argv)
{
#ifdef _OPENMP
    const char *preload = getenv("LD_PRELOAD");
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT") || getenv("CONVNET_NO_REEXEC") ||
        threads_bound() || (preload && strstr(preload, "vgpreload")))
        return;
    if (setenv("GOMP_SPINCOUNT", spin_for_load(), 1) == 0)
        execv("/proc/self/exe", argv); /* returns only when it failed: go on as we are */
#else
    (void)argv;
#endif
}

int main(int argc, char **argv)
{
    wait_briefly(argv);
    cli_models_dir = CN_MODELS_DIR;
    if (memory_limit_from_env())
        return EXIT_USAGE;
    if (argc < 2) {
        print_usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    char help_flag[] = "--help";
    char *help_args[] = {argv[argc > 2 ? 2 : 1], help_flag, NULL};
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        if (argc < 3 || strcmp(cmd, "help") != 0) {
            print_usage(stdout);
            return 0;
        }
        cmd = argv[2]; /* convnet help CMD = convnet CMD --help */
        argv = help_args;
        argc = 2;
    } else {
        argv++;
        argc--;
    }
    if (!strcmp(cmd, "--version")) {
        printf("convnet %s\n", CN_VERSION);
        return 0;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(cmd, commands[i].name))
            return commands[i].run(argc, argv);
    const char *names[N_COMMANDS];
    for (size_t i = 0; i < N_COMMANDS; i++)
        names[i] = commands[i].name;
    const char *near = cn_nearest(cmd, names, N_COMMANDS);
    fprintf(stderr, "convnet: '%s' is not a command", cmd);
    if (near)
        fprintf(stderr, " (did you mean '%s'?)", near);
    fputs("\n\n", stderr);
    print_usage(stderr);
    return EXIT_USAGE;
}
