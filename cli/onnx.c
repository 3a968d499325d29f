/* onnx.c - convnet export-onnx: a model file as an ONNX model. */
#include "cli.h"

#include <stdlib.h>

static const char help[] =
    "usage: convnet export-onnx MODEL_FILE -o FILE.onnx [options]\n"
    "\n"
    "Writes the network of a model written by 'convnet train' as a standard ONNX\n"
    "model (opset 13) that ONNX Runtime and other ONNX tools run.  Its graph follows\n"
    "the layers: its input \"input\" is float32 (batch, C, H, W) holding the pixels\n"
    "divided by 255 (values in [0, 1]; the graph subtracts the model's mean and\n"
    "divides by its std itself), its output \"probabilities\" is (batch, classes);\n"
    "the batch size is free.  Dropout is left out; batch normalisation stays a\n"
    "BatchNormalization node with the running statistics.  The class names (for now\n"
    "\"0\", \"1\", ...) are in the metadata as class_names, a JSON array.\n"
    "\n"
    "  -o FILE.onnx   the file to write (replaced atomically)\n"
    "  --threads N    worker threads for loading (default: one per core)\n";

int cmd_export_onnx(int argc, char **argv)
{
    enum { O_OUT = 256, O_THREADS, O_HELP };
    static const cli_opt opts[] = {{"o", 1, O_OUT},
                                   {"threads", 1, O_THREADS},
                                   {"help", 0, O_HELP},
                                   {"h", 0, O_HELP},
                                   {NULL, 0, 0}};
    const char *v, *path = NULL, *out = NULL;
    long threads = 0;
    int c, rc;
    cli_iter it;
    cli_begin(&it, "export-onnx", argc, argv);
    while ((c = cli_next(&it, opts, &v)) != CLI_END) {
        switch (c) {
        case CLI_ERROR: return EXIT_USAGE;
        case CLI_POSITIONAL:
            if (path)
                return cli_usage("export-onnx", "takes one model file, got '%s' and '%s'", path, v);
            path = v;
            break;
        case O_OUT: out = v; break;
        case O_THREADS:
            if ((rc = cli_threads("export-onnx", v, &threads)))
                return rc;
            break;
        case O_HELP: fputs(help, stdout); return 0;
        }
    }
    if (!path)
        return cli_usage("export-onnx", "takes a model file written by 'convnet train'");
    if (!out)
        return cli_usage("export-onnx", "needs -o FILE.onnx");
    cn_model *model;
    if ((rc = cli_load_model("export-onnx", path, threads, &model)))
        return rc;
    if (cn_model_save_onnx(model, out))
        rc = cli_lib_error();
    else
        printf("%s: %s as ONNX (opset 13), %zu layers, input %zux%zux%zu, %zu classes\n", out, path,
               cn_net_num_layers(cn_model_net(model)), cn_net_input_shape(cn_model_net(model)).c,
               cn_net_input_shape(cn_model_net(model)).h, cn_net_input_shape(cn_model_net(model)).w,
               cn_net_classes(cn_model_net(model)));
    cn_model_free(model);
    return rc;
}
