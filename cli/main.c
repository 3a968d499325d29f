/* main.c - the convnet command line: dispatch to subcommands. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: convnet COMMAND [ARGS]\n"
    "\n"
    "Define, train, evaluate and explain convolutional networks.\n"
    "\n"
    "commands:\n"
    "  train [MODEL.cfg]      train a network (the default MNIST network if none is given)\n"
    "  eval MODEL_FILE        test accuracy, loss, per-class accuracy and confusion matrix\n"
    "  info MODEL.cfg|FILE    layers with their output shapes, parameters and multiply-adds\n"
    "  gradcheck MODEL.cfg    check every layer's backward pass against central differences\n"
    "  bench [MODEL.cfg]      time a training step layer by layer, and inference\n"
    "  predict MODEL_FILE IMAGE...\n"
    "                         classify image files (PNG, JPEG, BMP, PGM, ...)\n"
    "  viz MODEL_FILE --out DIR\n"
    "                         pictures: filters, feature maps, the images that excite\n"
    "                         each channel most, the confusion matrix\n"
    "  plot LOG.csv -o FILE.png\n"
    "                         training curves from the log that train writes\n"
    "  report MODEL_FILE -o FILE.html\n"
    "                         one self-contained page: summary, curves, confusion\n"
    "                         matrix, filters, worst mistakes\n"
    "  export --out DIR       data set images as PNG files\n"
    "\n"
    "'convnet COMMAND --help' describes a command.  Model descriptions are text files\n"
    "(see models/*.cfg); model files are safetensors written by 'convnet train'.\n";

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

int main(int argc, char **argv)
{
    if (memory_limit_from_env())
        return EXIT_USAGE;
    if (argc < 2) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    char help_flag[] = "--help";
    char *help_args[] = {argv[argc > 2 ? 2 : 1], help_flag, NULL};
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        if (argc < 3 || strcmp(cmd, "help") != 0) {
            fputs(usage, stdout);
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
    if (!strcmp(cmd, "train"))
        return cmd_train(argc, argv);
    if (!strcmp(cmd, "eval"))
        return cmd_eval(argc, argv);
    if (!strcmp(cmd, "info"))
        return cmd_info(argc, argv);
    if (!strcmp(cmd, "gradcheck"))
        return cmd_gradcheck(argc, argv);
    if (!strcmp(cmd, "bench"))
        return cmd_bench(argc, argv);
    if (!strcmp(cmd, "predict"))
        return cmd_predict(argc, argv);
    if (!strcmp(cmd, "viz"))
        return cmd_viz(argc, argv);
    if (!strcmp(cmd, "plot"))
        return cmd_plot(argc, argv);
    if (!strcmp(cmd, "report"))
        return cmd_report(argc, argv);
    if (!strcmp(cmd, "export"))
        return cmd_export(argc, argv);
    fprintf(stderr, "convnet: '%s' is not a command\n\n%s", cmd, usage);
    return EXIT_USAGE;
}
