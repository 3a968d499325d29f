/* main.c - the convnet command line: dispatch to subcommands. */
#include "cli.h"

#include <stdarg.h>
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

int main(int argc, char **argv)
{
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
