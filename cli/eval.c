/* eval.c - convnet eval: accuracy, loss, per-class accuracy and the
 * confusion matrix of a trained model on the test set. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: convnet eval MODEL_FILE [MODEL_FILE...] [options]\n"
    "\n"
    "Evaluates a model written by 'convnet train' on the test set (MNIST's t10k\n"
    "files or CIFAR-10's test_batch.bin in the data directory):\n"
    "accuracy, mean loss, per-class accuracy and the confusion matrix (rows: true\n"
    "class, columns: predicted class), with the class names where the model has\n"
    "them.  Several model files evaluate their ensemble: each image's class\n"
    "probabilities are the mean of the models' (models of the same input and\n"
    "classes, trained apart, with other seeds say; the data directory and class\n"
    "names are the first's).\n"
    "\n"
    "  --data DIR     data directory (default $CONVNET_DATA or data/mnist)\n"
    "  --json         print one JSON object instead of tables\n"
    "  --tta T        test-time augmentation: none (default), flip, shift or\n"
    "                 flip-shift.  flip: each image's class probabilities are the\n"
    "                 mean of its own and its mirror image's (left-right), at twice\n"
    "                 the work; for pictures whose mirror is as likely (clothes),\n"
    "                 not digits.  shift: the mean of its own and its four shifts\n"
    "                 by one pixel (down, up, right, left), at five times the work;\n"
    "                 for digits.  flip-shift: the mean of those five and of their\n"
    "                 mirrors, at ten times the work; for clothes.\n"
    "                 The loss is then -log of the label's mean probability\n"
    "  --threads N    worker threads (default: one per core)\n"
    "  --device D     where to run: cpu (default), or cuda / cuda:N, a GPU (a\n"
    "                 build with make CUDA=1; convnet info --devices lists them)\n";

static void print_json(const char *const *paths, size_t count, const cn_model *model,
                       const char *dir, const cn_eval *ev, cn_tta tta)
{
    size_t k = ev->classes;
    char buf[32];
    printf("{\"model\": ");
    cli_json_string(stdout, paths[0]);
    if (count > 1) {
        printf(", \"ensemble\": [");
        for (size_t m = 0; m < count; m++) {
            printf("%s", m ? ", " : "");
            cli_json_string(stdout, paths[m]);
        }
        printf("]");
    }
    printf(", \"data\": ");
    cli_json_string(stdout, dir);
    printf(", \"tta\": \"%s\", \"n\": %zu, \"accuracy\": %.6f, \"loss\": %.6f, \"per_class\": [",
           cn_tta_name(tta), ev->n, ev->accuracy, ev->loss);
    for (size_t c = 0; c < k; c++) {
        size_t total = 0;
        for (size_t j = 0; j < k; j++)
            total += ev->confusion[c * k + j];
        printf("%s{\"class\": %zu, \"name\": ", c ? ", " : "", c);
        cli_json_string(stdout, cli_class_name(model, c, buf, sizeof buf));
        printf(", \"n\": %zu, \"accuracy\": %.6f}", total,
               total ? (double)ev->confusion[c * k + c] / (double)total : 0.0);
    }
    printf("], \"confusion\": [");
    for (size_t c = 0; c < k; c++) {
        printf("%s[", c ? ", " : "");
        for (size_t j = 0; j < k; j++)
            printf("%s%zu", j ? ", " : "", ev->confusion[c * k + j]);
        printf("]");
    }
    printf("]}\n");
}

/* Class names are shown up to this many bytes in the tables. */
#define NAME_WIDTH 16

static void print_tables(const char *const *paths, size_t count, const cn_model *model,
                         const cn_eval *ev, cn_tta tta)
{
    size_t k = ev->classes;
    int named = cn_model_class_names(model) != NULL, w = 5;
    char buf[32];
    for (size_t c = 0; named && c < k; c++) {
        int len = (int)strlen(cli_class_name(model, c, buf, sizeof buf));
        w = len > w ? (len < NAME_WIDTH ? len : NAME_WIDTH) : w;
    }
    for (size_t m = 0; m < count; m++)
        printf("%s%s", m ? " + " : count > 1 ? "the ensemble " : "", paths[m]);
    printf(" on %zu test images: accuracy %.2f%%, loss %.4f%s\n\n", ev->n, 100 * ev->accuracy,
           ev->loss,
           tta == CN_TTA_FLIP ? " (test-time augmentation: each image and its mirror)"
           : tta == CN_TTA_SHIFT
               ? " (test-time augmentation: each image and its shifts by one pixel)"
           : tta == CN_TTA_FLIP_SHIFT
               ? " (test-time augmentation: each image, its shifts by one pixel, and their "
                 "mirrors)"
               : "");
    printf("%s%*s      n   accuracy\n", named ? "    " : "", -w, "class");
    for (size_t c = 0; c < k; c++) {
        size_t total = 0;
        for (size_t j = 0; j < k; j++)
            total += ev->confusion[c * k + j];
        if (named)
            printf("%3zu %*.*s  %5zu   %7.2f%%\n", c, -w, NAME_WIDTH,
                   cli_class_name(model, c, buf, sizeof buf), total,
                   total ? 100.0 * (double)ev->confusion[c * k + c] / (double)total : 0.0);
        else
            printf("%5zu  %5zu   %7.2f%%\n", c, total,
                   total ? 100.0 * (double)ev->confusion[c * k + c] / (double)total : 0.0);
    }
    printf("\nconfusion matrix (rows: true class, columns: predicted%s)\n      ",
           named ? "; by number, as above" : "");
    for (size_t j = 0; j < k; j++)
        printf("%6zu", j);
    printf("\n");
    for (size_t c = 0; c < k; c++) {
        printf("%6zu", c);
        for (size_t j = 0; j < k; j++)
            printf("%6zu", ev->confusion[c * k + j]);
        printf("\n");
    }
}

/* The most model files one evaluation takes (an ensemble). */
#define MAX_MODELS 64

int cmd_eval(int argc, char **argv)
{
    enum { O_DATA = 256, O_JSON, O_TTA, O_THREADS, O_DEVICE, O_HELP };
    static const cli_opt opts[] = {
        {"data", 1, O_DATA},     {"json", 0, O_JSON}, {"tta", 1, O_TTA}, {"threads", 1, O_THREADS},
        {"device", 1, O_DEVICE}, {"help", 0, O_HELP}, {"h", 0, O_HELP},  {NULL, 0, 0},
    };
    const char *data_opt = NULL, *v;
    const char *paths[MAX_MODELS];
    size_t count = 0;
    int json = 0, c;
    cn_tta tta = CN_TTA_NONE;
    long threads = 0;
    cli_iter it;
    cli_begin(&it, "eval", argc, argv);
    while ((c = cli_next(&it, opts, &v)) != CLI_END) {
        switch (c) {
        case CLI_ERROR: return EXIT_USAGE;
        case CLI_POSITIONAL:
            if (count == MAX_MODELS)
                return cli_usage("eval", "takes at most %d model files", MAX_MODELS);
            paths[count++] = v;
            break;
        case O_DATA: data_opt = v; break;
        case O_JSON: json = 1; break;
        case O_TTA:
            if (cli_tta("eval", v, &tta))
                return EXIT_USAGE;
            break;
        case O_THREADS:
            if (cli_threads("eval", v, &threads))
                return EXIT_USAGE;
            break;
        case O_DEVICE:
            if (cli_set_device("eval", v))
                return EXIT_USAGE;
            break;
        case O_HELP: fputs(help, stdout); return 0;
        }
    }
    if (!count)
        return cli_usage("eval", "takes a model file");
    cn_model *models[MAX_MODELS];
    cn_net *nets[MAX_MODELS];
    size_t loaded = 0;
    int rc = 0;
    for (; loaded < count; loaded++) {
        if ((rc = cli_load_model("eval", paths[loaded], threads, &models[loaded])))
            goto done;
        nets[loaded] = cn_model_net(models[loaded]);
    }
    int own;
    const char *dir = cli_model_data_dir(models[0], data_opt, &own);
    if (own && !json)
        printf("data: %s (the model's own; --data for other data)\n", dir);
    cn_data test;
    if (cli_load_data(models[0], dir, "test", &test)) {
        rc = cli_lib_error();
        goto done;
    }
    cn_eval ev;
    if (cn_net_evaluate_ensemble(nets, count, &test, tta, &ev)) {
        rc = cli_lib_error();
    } else {
        if (json)
            print_json(paths, count, models[0], dir, &ev, tta);
        else
            print_tables(paths, count, models[0], &ev, tta);
        cn_eval_free(&ev);
    }
    cn_data_free(&test);
done:
    for (size_t m = 0; m < loaded; m++)
        cn_model_free(models[m]);
    return rc;
}
