/* gradcheck.c - convnet gradcheck: every layer's backward pass of a network
 * against central differences, then the whole network. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

/* Relative errors below these pass (see the note in the help). */
#define LAYER_TOL CN_GRADCHECK_TOL
#define NET_TOL   CN_GRADCHECK_TOL

static const char help[] =
    "usage: convnet gradcheck MODEL.cfg [options]\n"
    "\n"
    "Checks the backward pass of every layer of the network against central\n"
    "differences (step 1e-2, float32), each layer on its own with random inputs,\n"
    "then the whole network on the mean loss.  For each it prints the worst\n"
    "relative error of the input gradient and of the parameter gradients: for a\n"
    "layer per coordinate, |a - g| / max(|a| + |g|, floor), the floor 1% of the\n"
    "tensor's largest |a| or 300 times the float32 rounding expected in g,\n"
    "whichever is larger (a batch normalisation's input moves a whole channel of\n"
    "outputs, and their rounding adds up); for the network per tensor,\n"
    "||a - g|| / max(||a||, ||g||, floor), since the rounding of every layer adds\n"
    "up.  What fails is measured again with half the step: a coordinate whose two\n"
    "differences disagree as much as with the backward pass (the function bends\n"
    "faster than the step, as batch normalisation over two samples does) is\n"
    "skipped, and a tensor's floor widens to 200 times that disagreement.  Steps\n"
    "that cross a kink of relu or max pooling are skipped too; the last column\n"
    "counts both.  Errors below 1e-2 pass: a correct backward pass shows about\n"
    "3e-3 or less, a wrong one 1e-2 to 1.  '-' means nothing was compared (every\n"
    "step skipped); a row that compared nothing at all fails.\n"
    "\n"
    "  --coords N   coordinates sampled per tensor (default 100; 0: all)\n"
    "  --batch N    samples per check (default 4)\n"
    "  --seed N     random seed (default 1)\n"
    "  --device D   where to check: cpu (default), or cuda / cuda:N, a GPU (a\n"
    "               build with make CUDA=1; convnet info --devices lists them)\n";

int cmd_gradcheck(int argc, char **argv)
{
    enum { O_COORDS = 256, O_BATCH, O_SEED, O_DEVICE, O_HELP };
    static const cli_opt opts[] = {
        {"coords", 1, O_COORDS},
        {"batch", 1, O_BATCH},
        {"seed", 1, O_SEED},
        {"device", 1, O_DEVICE},
        {"help", 0, O_HELP},
        {"h", 0, O_HELP},
        {NULL, 0, 0},
    };
    long coords = 100, batch = 4, seed = 1;
    const char *path = NULL, *v;
    int c;
    cli_iter it;
    cli_begin(&it, "gradcheck", argc, argv);
    while ((c = cli_next(&it, opts, &v)) != CLI_END) {
        switch (c) {
        case CLI_ERROR: return EXIT_USAGE;
        case CLI_POSITIONAL:
            if (path)
                return cli_usage("gradcheck", "takes one model description, got '%s' and '%s'",
                                 path, v);
            path = v;
            break;
        case O_COORDS:
            if (!cli_int(v, 0, 100000000, &coords))
                return cli_usage("gradcheck", "--coords takes a whole number >= 0, not '%s'", v);
            break;
        case O_BATCH:
            if (!cli_int(v, 1, 1024, &batch))
                return cli_usage("gradcheck",
                                 "--batch takes a whole number from 1 to 1024, not '%s'", v);
            break;
        case O_SEED:
            if (!cli_int(v, 0, 9007199254740991L, &seed))
                return cli_usage("gradcheck", "--seed takes a whole number >= 0, not '%s'", v);
            break;
        case O_DEVICE:
            if (cli_set_device("gradcheck", v))
                return EXIT_USAGE;
            break;
        case O_HELP: fputs(help, stdout); return 0;
        }
    }
    if (!path)
        return cli_usage("gradcheck", "takes a model description");
    cn_device dev = cli_device(0);
    cn_spec *spec;
    cn_net *net = NULL;
    if (cli_load_spec(path, &spec))
        return cli_lib_error();
    if (cn_net_create(spec, (size_t)batch, &dev, &net)) {
        cn_spec_free(spec);
        return cli_lib_error();
    }
    cn_rng rng;
    cn_rng_seed(&rng, (uint64_t)seed);
    cn_net_init(net, &rng);
    printf("%-12s %-8s %12s %12s %9s %9s\n", "layer", "kind", "input err", "param err", "checked",
           "skipped");
    /* The rows that failed, named for the message at the end. */
    char failed[512] = "";
    int bad = 0, rc = 0;
    size_t rows = cn_net_num_layers(net) + 1;
    for (size_t i = 0; i < rows; i++) {
        cn_gradcheck gc;
        cn_layer_info li = {"network", "", 0, {0, 0, 0}, {0, 0, 0}, 1, 0};
        cn_status st;
        if (i < cn_net_num_layers(net)) {
            cn_net_layer(net, i, &li);
            st = cn_gradcheck_layer(net, i, (size_t)batch, (size_t)coords, &rng, &gc);
        } else {
            st = cn_gradcheck_net(net, (size_t)batch, (size_t)coords, &rng, &gc);
        }
        if (st) {
            rc = cli_lib_error();
            break;
        }
        double tol = i + 1 < rows ? LAYER_TOL : NET_TOL;
        /* A row with no coordinate compared (every step crossed a kink) says
         * nothing about its backward pass: it fails, it does not pass. */
        int unchecked = gc.checked == 0;
        int ok = !unchecked && gc.input_err < tol && gc.param_err < tol;
        char ierr[16] = "-", perr[16] = "-";
        if (gc.input_checked)
            snprintf(ierr, sizeof ierr, "%.1e", gc.input_err);
        if (li.params && gc.checked > gc.input_checked)
            snprintf(perr, sizeof perr, "%.1e", gc.param_err);
        printf("%-12s %-8s %12s %12s %9zu %9zu  %s\n", li.name, li.kind, ierr, perr, gc.checked,
               gc.skipped, ok ? "ok" : "FAILED");
        if (ok)
            continue;
        fflush(stdout);
        const char *who = i + 1 < rows ? li.name : "the whole network";
        if (unchecked)
            cli_error("gradcheck of %s: none of its %zu sampled coordinates could be checked: "
                      "each step crossed a kink of relu or max pooling (try a smaller --batch, "
                      "more --coords or another --seed)",
                      who, gc.skipped);
        else if (gc.input_err >= tol)
            cli_error("gradcheck of %s: the input gradient is off by %.1e (relative), above %.0e",
                      who, gc.input_err, tol);
        else
            cli_error("gradcheck of %s: a parameter gradient is off by %.1e (relative), above "
                      "%.0e",
                      who, gc.param_err, tol);
        size_t len = strlen(failed);
        snprintf(failed + len, sizeof failed - len, "%s%s", bad ? ", " : "", li.name);
        bad++;
    }
    if (!rc && bad)
        rc = cli_error("%d of the %zu checks failed: %s", bad, rows, failed);
    cn_net_free(net);
    cn_spec_free(spec);
    return rc;
}
