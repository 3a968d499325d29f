/* info.c - convnet info: the layers of a network with their output shapes,
 * parameter counts and multiply-adds. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: convnet info MODEL.cfg|MODEL_FILE\n"
    "       convnet info --devices\n"
    "\n"
    "Prints each layer of the network with its output shape (channels x height x\n"
    "width), its number of parameters and its multiply-adds per image, and the\n"
    "totals.  For a model file written by 'convnet train' it also prints the\n"
    "training recipe and how far training got.\n"
    "\n"
    "  --devices    instead, the devices that --device can name: the CPU (its\n"
    "               kernels and cores), and each GPU as cuda:N with its name,\n"
    "               memory, compute capability and the CUDA driver and runtime\n"
    "               versions, or why there is none (no GPU, no driver, or a\n"
    "               convnet built without CUDA: make CUDA=1)\n";

/* convnet info --devices. */
static int devices(void)
{
    cn_net *net = NULL;
    cn_spec *spec = NULL;
    cn_device one = {"cpu", 0, 0};
    if (cli_load_spec(NULL, &spec) || cn_net_create(spec, 1, &one, &net)) {
        cn_spec_free(spec);
        return cli_lib_error();
    }
    /* how idle threads wait (cli/main.c sets a short spin unless chosen) */
    const char *policy = getenv("OMP_WAIT_POLICY"), *spin = getenv("GOMP_SPINCOUNT");
    printf("cpu       %d thread%s, %s kernels; idle threads: %s%s\n", cn_net_threads(net),
           cn_net_threads(net) == 1 ? "" : "s", cn_net_isa(net),
           policy ? "OMP_WAIT_POLICY="
           : spin ? "GOMP_SPINCOUNT="
                  : "OpenMP's default",
           policy ? policy
           : spin ? spin
                  : "");
    cn_net_free(net);
    cn_spec_free(spec);
    enum { MAX_GPUS = 64 };
    static cn_gpu gpus[MAX_GPUS];
    int n = 0;
    if (cn_gpu_list(gpus, MAX_GPUS, &n)) {
        printf("cuda      none: %s\n", cn_last_error());
        return 0;
    }
    for (int i = 0; i < n && i < MAX_GPUS; i++) {
        const cn_gpu *g = &gpus[i];
        char name[16];
        snprintf(name, sizeof name, "cuda:%d", g->index);
        printf("%-9s %s, %.1f GiB, compute capability %d.%d, CUDA driver %d.%d, runtime %d.%d\n",
               name, g->name, (double)g->memory / (1 << 30), g->major, g->minor, g->driver / 1000,
               g->driver % 1000 / 10, g->runtime / 1000, g->runtime % 1000 / 10);
    }
    return 0;
}

int cmd_info(int argc, char **argv)
{
    enum { O_HELP = 1, O_DEVICES };
    static const cli_opt opts[] = {
        {"help", 0, O_HELP}, {"h", 0, O_HELP}, {"devices", 0, O_DEVICES}, {NULL, 0, 0}};
    const char *path = NULL, *v;
    int c, list = 0;
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
        case O_DEVICES: list = 1; break;
        }
    }
    if (list && path)
        return cli_usage("info", "--devices takes no model, got '%s'", path);
    if (list)
        return devices();
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
        char aug[256], extras[128];
        fputs(cli_recipe_extras(o, extras, sizeof extras), stdout);
        fputs(cli_augmentation(o, ", ", aug, sizeof aug), stdout);
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
