/* info.c - convnet info: the layers of a network with their output shapes,
 * parameter counts and multiply-adds. */
#include "cli.h"

#include <string.h>

static const char help[] =
    "usage: convnet info MODEL.cfg|MODEL_FILE\n"
    "\n"
    "Prints each layer of the network with its output shape (channels x height x\n"
    "width), its number of parameters and its multiply-adds per image, and the\n"
    "totals.  For a model file written by 'convnet train' it also prints the\n"
    "training recipe and how far training got.\n";

int cmd_info(int argc, char **argv)
{
    enum { O_HELP = 1 };
    static const cli_opt opts[] = {{"help", 0, O_HELP}, {"h", 0, O_HELP}, {NULL, 0, 0}};
    const char *path = NULL, *v;
    int c;
    cli_iter it;
    cli_begin(&it, "info", argc, argv);
    while ((c = cli_next(&it, opts, &v)) != CLI_END) {
        switch (c) {
        case CLI_ERROR: return EXIT_USAGE;
        case CLI_POSITIONAL:
            if (path)
                return cli_usage("info", "takes one model description or file, got '%s' and '%s'",
                                 path, v);
            path = v;
            break;
        case O_HELP: fputs(help, stdout); return 0;
        }
    }
    if (!path)
        return cli_usage("info", "takes a model description or a model file");
    cn_model *model = NULL;
    cn_spec *spec = NULL;
    cn_net *net = NULL;
    cn_device one = cli_device(1);
    if (cli_is_model_file(path)) {
        if (cn_model_load(path, &one, &model))
            return cli_lib_error();
        net = cn_model_net(model);
    } else {
        if (cli_load_spec(path, &spec) || cn_net_create(spec, 1, &one, &net)) {
            cn_spec_free(spec);
            return cli_lib_error();
        }
    }
    cn_shape in = cn_net_input_shape(net);
    printf("%s: input %zux%zux%zu, %zu classes\n", path, in.c, in.h, in.w, cn_net_classes(net));
    const char *const *names = model ? cn_model_class_names(model) : NULL;
    for (size_t k = 0; names && k < cn_net_classes(net); k++)
        printf("%s%s%s", k ? ", " : "classes: ", names[k], k + 1 < cn_net_classes(net) ? "" : "\n");
    printf("\n");
    printf("%-12s %-9s %13s %12s %14s\n", "layer", "kind", "output", "params", "mult-adds");
    size_t params = 0;
    uint64_t macs = 0;
    char a[32], b[32], shape[48];
    for (size_t i = 0; i < cn_net_num_layers(net); i++) {
        cn_layer_info li;
        cn_net_layer(net, i, &li);
        snprintf(shape, sizeof shape, "%zux%zux%zu", li.out.c, li.out.h, li.out.w);
        printf("%-12s %-9s %13s %12s %14s\n", li.name, li.kind, shape,
               cli_count(li.params, a, sizeof a), cli_count(li.macs, b, sizeof b));
        params += li.params;
        macs += li.macs;
    }
    printf("%-12s %-9s %13s %12s %14s\n", "total", "", "", cli_count(params, a, sizeof a),
           cli_count(macs, b, sizeof b));
    printf("\nper training image: about %.1f MFLOP (forward 2 x mult-adds, backward twice that)\n",
           6.0 * (double)macs / 1e6);
    if (model) {
        const cn_train_opts *o = cn_model_opts(model);
        const cn_train_state *s = cn_model_state(model);
        printf("recipe: %d epochs of batch %d, lr %g (%s", o->epochs, o->batch, o->lr,
               cn_lr_policy_name(o->policy));
        if (o->policy == CN_LR_STEP)
            printf(": x%g every %d epochs", o->lr_gamma, o->lr_step);
        if (o->policy == CN_LR_ONECYCLE || o->policy == CN_LR_COSINE)
            printf(", warm-up %g of training", o->lr_warmup);
        printf("), %s, %s %g, decay %g", cn_optimizer_name(o->optimizer),
               o->optimizer == CN_OPT_SGD ? "momentum" : "beta1", o->momentum, o->decay);
        if (o->optimizer != CN_OPT_SGD)
            printf(", beta2 %g, eps %g", o->beta2, o->eps);
        char aug[64];
        fputs(cli_augmentation(o->shift, o->flip, ", ", aug, sizeof aug), stdout);
        printf(", seed %llu\n", (unsigned long long)o->seed);
        printf("trained: %d epochs and %llu batches (%llu batches in all)\n", s->epoch,
               (unsigned long long)s->step, (unsigned long long)s->global_step);
        cn_model_free(model);
    } else {
        cn_net_free(net);
        cn_spec_free(spec);
    }
    return 0;
}
