/* doctor.c - convnet doctor: a short check-up of a network and its recipe
 * on a subset of the data, with findings in plain words: the whole-network
 * gradient check, the first batch traced for NaN, per-layer figures over a
 * few steps, one batch overfitted, and a learning-rate range test. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char help_head[] =
    "usage: convnet doctor MODEL.cfg|MODEL_FILE [options]\n"
    "\n"
    "A check-up of a network and its training recipe on a subset of the training\n"
    "data (a few hundred steps in all).  Each finding is a line\n"
    "'ok|warning|problem  WHAT: figures; what to change':\n"
    "  gradients     the whole network's backward pass against central differences\n"
    "  first batch   a forward pass with the model's weights: any NaN or infinite\n"
    "                value, with the first layer and tensor where it appeared\n"
    "  activations, dead relus, gradients, updates\n"
    "                per-layer figures over the first steps, each against its\n"
    "                healthy range: output spread, the share of units no image of\n"
    "                a batch activates, gradient norms, update size / weight size\n"
    "  overfit       one batch trained on alone: the loss must fall near zero\n"
    "  learning rate a range test: the rate rising exponentially, the loss\n"
    "                smoothed; a suggested rate where the loss falls fastest\n"
    "  non-finite    when a loss or gradient turns NaN or infinite during any\n"
    "                part: the step, the pass and the first layer and tensor\n"
    "A MODEL_FILE is checked with its weights (where a fault in them shows); a\n"
    "description with freshly initialised ones.  The exit status is 0 when nothing\n"
    "is a problem, 1 when something is.  These options set the recipe:\n"
    "\n";

static const char help_rest[] =
    "  --data DIR       data directory (default $CONVNET_DATA or data/mnist)\n"
    "  --limit N        training images used (default 2048)\n"
    "  --steps N        steps of the range test and most steps of the overfit\n"
    "                   (default 200)\n"
    "  --png FILE       the range test's plot (default: none)\n"
    "  --html FILE      the findings and plots as one self-contained page\n"
    "  --threads N      worker threads (default: one per core)\n";

/* ------------------------------------------------------------- findings */

enum { OK = 0, WARNING, PROBLEM };
static const char *const verdicts[] = {"ok", "warning", "problem"};

typedef struct finding {
    int verdict;
    char what[40];
    char text[600];
} finding;

#define MAX_FINDINGS 64

typedef struct doctor {
    const char *path, *data_dir, *png, *html;
    const char *recipe[CLI_MAX_RECIPE];
    long threads, limit, steps;
    cn_data all, data; /* data: the first --limit images of all */
    finding f[MAX_FINDINGS];
    size_t n_f;
    /* the range test: each step's rate, loss and smoothed loss */
    double *curve_lr, *curve_loss, *curve_smooth;
    size_t n_curve;
    double suggested;
    /* the per-layer table for the page */
    char *table;
    size_t table_len, table_cap;
} doctor;

static void say(doctor *d, int verdict, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void say(doctor *d, int verdict, const char *what, const char *fmt, ...)
{
    finding *f = d->n_f < MAX_FINDINGS ? &d->f[d->n_f++] : &d->f[MAX_FINDINGS - 1];
    f->verdict = verdict;
    snprintf(f->what, sizeof f->what, "%s", what);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->text, sizeof f->text, fmt, ap);
    va_end(ap);
    printf("%-8s %s: %s\n", verdicts[verdict], f->what, f->text);
    fflush(stdout);
}

/* A row of the page's per-layer table. */
static void table_row(doctor *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void table_row(doctor *d, const char *fmt, ...)
{
    char row[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(row, sizeof row, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof row ? (size_t)n : sizeof row - 1;
    if (d->table_len + len + 1 > d->table_cap) {
        size_t cap = (d->table_cap + len + 1) * 2;
        char *t = realloc(d->table, cap);
        if (!t)
            return;
        d->table = t;
        d->table_cap = cap;
    }
    memcpy(d->table + d->table_len, row, len + 1);
    d->table_len += len;
}

/* ---------------------------------------------------------------- model */

/* A fresh copy of the model under check: the file's weights, or the
 * description's initialised from the recipe's seed; the recipe options
 * applied.  Watched: a step that meets a NaN says where.  NULL after a
 * message. */
static cn_model *open_model(const doctor *d)
{
    cn_device dev = cli_device(d->threads);
    cn_model *m = NULL;
    if (cli_is_model_file(d->path)) {
        if (cn_model_load(d->path, &dev, &m)) {
            cli_lib_error();
            return NULL;
        }
        cn_train_opts *o = cn_model_opts(m);
        if (cli_recipe_apply(d->recipe, o)) {
            cli_lib_error();
            cn_model_free(m);
            return NULL;
        }
    } else {
        cn_spec *spec;
        if (cli_load_spec(d->path, &spec)) {
            cli_lib_error();
            return NULL;
        }
        cn_train_opts o;
        cn_spec_train_opts(spec, &o);
        cn_status st = cli_recipe_apply(d->recipe, &o);
        if (!st)
            st = cn_model_create(spec, &o, &dev, &m);
        cn_spec_free(spec);
        if (st) {
            cli_lib_error();
            return NULL;
        }
    }
    if (cn_model_reserve(m, (size_t)cn_model_opts(m)->batch)) {
        cli_lib_error();
        cn_model_free(m);
        return NULL;
    }
    cn_model_set_watch(m, 1);
    return m;
}

/* Batch b (of batch images, wrapping around the subset) as floats x and
 * labels y. */
static void get_batch(const doctor *d, cn_net *net, size_t b, size_t batch, float *x, int32_t *y)
{
    cn_shape s = cn_net_input_shape(net);
    size_t in = s.c * s.h * s.w, n = d->data.n;
    for (size_t i = 0; i < batch; i++) {
        size_t k = (b * batch + i) % n;
        cn_net_prepare(net, d->data.pixels + k * in, 1, x + i * in);
        y[i] = d->data.labels[k];
    }
}

/* After a step failed: a NaN found by the watch becomes a finding. */
static int step_failed(doctor *d, cn_model *m, const char *during)
{
    const cn_trace *t = cn_model_trace(m);
    if (!t->found)
        return cli_lib_error();
    cn_layer_info li;
    cn_net_layer(cn_model_net(m), t->layer, &li);
    say(d, PROBLEM, "non-finite",
        "%s, step %llu (lr %g): the first NaN or infinite value appeared in the %s pass at "
        "layer %s ([%s], line %d), %s (%zu of %zu values); %s",
        during, (unsigned long long)t->step, t->lr, t->backward ? "backward" : "forward", li.name,
        li.kind, li.line, t->tensor, t->nonfinite, t->count,
        t->backward ? "the gradients overflow: lower the learning rate (the range test suggests "
                      "one) or add batch normalisation before that layer"
                    : "look at that layer's weights (a value far too large?) and its input; "
                      "lower the learning rate if it grew there during training");
    return 0;
}

/* --------------------------------------------------------------- checks */

/* The whole network's backward pass against central differences, on
 * freshly initialised weights (it checks the code, not the weights). */
static int check_gradients(doctor *d, cn_model *m)
{
    cn_net *net;
    if (cn_net_create(cn_model_spec(m), 4, &(cn_device){"cpu", 0, (int)d->threads}, &net))
        return cli_lib_error();
    cn_rng rng;
    cn_rng_seed(&rng, 1);
    cn_net_init(net, &rng);
    cn_gradcheck gc;
    cn_status st = cn_gradcheck_net(net, 4, 20, &rng, &gc);
    cn_net_free(net);
    if (st)
        return cli_lib_error();
    double worst = gc.input_err > gc.param_err ? gc.input_err : gc.param_err;
    if (gc.checked == 0)
        say(d, WARNING, "gradients",
            "no coordinate could be checked (%zu skipped at kinks); run 'convnet gradcheck' "
            "with more --coords",
            gc.skipped);
    else if (!(worst < CN_GRADCHECK_TOL))
        say(d, PROBLEM, "gradients",
            "the backward pass disagrees with central differences: worst relative error "
            "%.1e (input %.1e, parameters %.1e), above %.0e; a layer's backward pass is "
            "wrong: 'convnet gradcheck' names it",
            worst, gc.input_err, gc.param_err, CN_GRADCHECK_TOL);
    else
        say(d, OK, "gradients",
            "backward pass matches central differences: worst relative error %.1e over %zu "
            "coordinates (below %.0e); nothing to change",
            worst, gc.checked, CN_GRADCHECK_TOL);
    return 0;
}

/* Forward pass of the first batch with the model's own weights: NaN?
 * Returns 1 in *bad when one was found. */
static int check_first_batch(doctor *d, cn_model *m, float *x, int32_t *y, int *bad)
{
    cn_net *net = cn_model_net(m);
    size_t batch = (size_t)cn_model_opts(m)->batch;
    get_batch(d, net, 0, batch, x, y);
    double loss;
    cn_trace t;
    if (cn_net_forward(net, x, batch, 1) || cn_net_loss(net, y, batch, &loss) ||
        cn_net_trace_forward(net, &t))
        return cli_lib_error();
    *bad = 0;
    if (!t.found && isfinite(loss)) {
        double expect = log((double)cn_net_classes(net));
        say(d, loss > 3 * expect ? WARNING : OK, "first batch",
            "loss %.3f (chance: %.3f), every value finite%s", loss, expect,
            loss > 3 * expect ? "; the network is very sure of wrong answers: weights too large?"
                              : "; nothing to change");
        return 0;
    }
    *bad = 1;
    if (!t.found) {
        say(d, PROBLEM, "first batch",
            "the loss is %g though every layer's output is finite: the logits are too large "
            "for the softmax; scale the last layer's weights down",
            loss);
        return 0;
    }
    cn_layer_info li;
    cn_net_layer(net, t.layer, &li);
    /* the largest weight of that layer, which a planted or grown value shows */
    double big = 0;
    char big_name[80] = "";
    for (size_t i = 0; i < cn_net_num_tensors(net); i++) {
        cn_tensor_info ti;
        cn_stats s;
        cn_net_tensor(net, i, &ti);
        if (strncmp(ti.name, li.name, strlen(li.name)) != 0 || ti.name[strlen(li.name)] != '.' ||
            cn_net_block_stats(net, ti.trainable ? CN_PARAMS : CN_BUFFERS, ti.offset, ti.count, &s))
            continue;
        if (s.max_abs >= big) {
            big = s.max_abs;
            snprintf(big_name, sizeof big_name, "%s", ti.name);
        }
    }
    say(d, PROBLEM, "non-finite",
        "forward pass, step 1 (the model's weights as given): the first NaN or infinite value "
        "appeared at layer %s ([%s], line %d), %s (%zu of %zu values)%s%s%s; %s",
        li.name, li.kind, li.line, t.tensor, t.nonfinite, t.count,
        big_name[0] ? "; its largest weight is " : "", big_name[0] ? big_name : "", "",
        big > 1e6 ? "that weight is far too large: retrain, or restore the weights from a good "
                    "checkpoint"
                  : "look at that layer's input and weights");
    if (big_name[0])
        printf("         (largest |value| in %s: %.3g)\n", big_name, big);
    return 0;
}

/* Per-layer figures over the first steps of training on the subset at the
 * recipe's rate: the activations and dead units of the last step's batch,
 * the gradient norms and update sizes averaged over the steps. */
static int check_layers(doctor *d, cn_model *m, float *x, int32_t *y, int *diverged)
{
    enum { STEPS = 20 };
    cn_net *net = cn_model_net(m);
    size_t batch = (size_t)cn_model_opts(m)->batch, np = cn_net_num_params(net);
    size_t nt = cn_net_num_tensors(net), nl = cn_net_num_layers(net);
    double lr = cn_model_opts(m)->lr;
    float *before = malloc(np * sizeof *before), *after = malloc(np * sizeof *after);
    double *gnorm = calloc(nt, sizeof *gnorm), *ratio = calloc(nt, sizeof *ratio);
    int rc = 0;
    *diverged = 0;
    if (!before || !after || !gnorm || !ratio) {
        rc = cli_error("out of memory");
        goto done;
    }
    int steps = 0;
    for (; steps < STEPS; steps++) {
        get_batch(d, net, (size_t)steps, batch, x, y);
        cn_net_get(net, CN_PARAMS, 0, np, before);
        double loss;
        if (cn_model_step(m, x, y, batch, lr, &loss)) {
            *diverged = 1;
            rc = step_failed(d, m, "per-layer figures at the recipe's rate");
            goto done;
        }
        net = cn_model_net(m);
        cn_net_get(net, CN_PARAMS, 0, np, after);
        for (size_t i = 0; i < nt; i++) {
            cn_tensor_info ti;
            cn_stats g;
            cn_net_tensor(net, i, &ti);
            if (!ti.trainable)
                continue;
            cn_net_block_stats(net, CN_GRADS, ti.offset, ti.count, &g);
            double du = 0, w = 0;
            for (size_t k = ti.offset; k < ti.offset + ti.count; k++) {
                double dd = (double)after[k] - before[k];
                du += dd * dd;
                w += (double)before[k] * before[k];
            }
            gnorm[i] += g.norm / STEPS;
            ratio[i] += (w > 0 ? sqrt(du / w) : 0) / STEPS;
        }
    }
    /* Activations: a training pass over the next batch. */
    get_batch(d, net, STEPS, batch, x, y);
    if (cn_net_forward(net, x, batch, 1))
        return cli_lib_error();
    char dead_list[256] = "", spread_list[256] = "";
    double worst_dead = 0;
    int n_relu = 0;
    table_row(d, "<tr><th>layer</th><th>kind</th><th>output mean</th><th>output spread</th>"
                 "<th>dead units</th></tr>\n");
    for (size_t i = 0; i < nl; i++) {
        cn_layer_info li;
        cn_stats s;
        cn_net_layer(net, i, &li);
        if (cn_net_layer_stats(net, i, &s))
            return cli_lib_error();
        if (s.in_place || i + 1 == nl)
            continue; /* the next layer's output is the one there */
        int relu = strcmp(li.kind, "relu") == 0;
        double dead = s.units ? (double)s.dead / (double)s.units : 0;
        printf("         %-10s %-9s mean %9.3g  spread %9.3g", li.name, li.kind, s.mean, s.std);
        if (relu)
            printf("  dead %5.1f%%", 100 * dead);
        printf("\n");
        table_row(d, "<tr><td>%s</td><td>%s</td><td>%.3g</td><td>%.3g</td><td>%s%.1f%s</td></tr>\n",
                  li.name, li.kind, s.mean, s.std, relu ? "" : "(", 100 * dead, relu ? "%" : "%)");
        if (relu) {
            n_relu++;
            if (dead > worst_dead)
                worst_dead = dead;
            if (dead > 0.4) {
                size_t len = strlen(dead_list);
                snprintf(dead_list + len, sizeof dead_list - len, "%s%s %.0f%%", len ? ", " : "",
                         li.name, 100 * dead);
            }
        }
        if (s.std < 1e-3 || s.std > 1e3 || s.nonfinite) {
            size_t len = strlen(spread_list);
            snprintf(spread_list + len, sizeof spread_list - len, "%s%s %.2g", len ? ", " : "",
                     li.name, s.std);
        }
    }
    if (spread_list[0])
        say(d, WARNING, "activations",
            "output spread outside 0.001..1000 at %s; the signal vanishes or explodes there: "
            "check the initialisation and add batch normalisation",
            spread_list);
    else
        say(d, OK, "activations",
            "every layer's output spread within 0.001..1000; nothing to change");
    if (n_relu && worst_dead > 0.4)
        say(d, worst_dead > 0.7 ? PROBLEM : WARNING, "dead relus",
            "units that no image of a batch of %zu activates: %s (healthy: under 40%%); they "
            "learn nothing: lower the learning rate, start the biases at 0 (or retrain from a "
            "fresh initialisation), or use leaky relu",
            batch, dead_list);
    else if (n_relu)
        say(d, OK, "dead relus",
            "at most %.0f%% of a relu layer's units are silent for a whole batch of %zu "
            "(healthy: under 40%%); nothing to change",
            100 * worst_dead, batch);
    /* gradients and updates per weight tensor */
    char low[256] = "", high[256] = "", zero[256] = "";
    double rmin = INFINITY, rmax = 0;
    for (size_t i = 0; i < nt; i++) {
        cn_tensor_info ti;
        cn_net_tensor(net, i, &ti);
        if (!ti.trainable)
            continue;
        printf("         %-18s gradient norm %9.3g  update/weight %9.3g\n", ti.name, gnorm[i],
               ratio[i]);
        if (ti.ndim < 2)
            continue; /* biases and batch-norm scales start at 0 or 1: their ratio says little */
        char *list = gnorm[i] == 0 ? zero : ratio[i] > 0.2 ? high : ratio[i] < 1e-5 ? low : NULL;
        rmin = ratio[i] < rmin ? ratio[i] : rmin;
        rmax = ratio[i] > rmax ? ratio[i] : rmax;
        if (list) {
            size_t len = strlen(list);
            if (list == zero) /* no figure: it gets no gradient at all */
                snprintf(list + len, 256 - len, "%s%s", len ? ", " : "", ti.name);
            else
                snprintf(list + len, 256 - len, "%s%s %.2g", len ? ", " : "", ti.name, ratio[i]);
        }
    }
    if (zero[0])
        say(d, PROBLEM, "gradients flow",
            "no gradient reaches %s: the layer learns nothing; a layer above it blocks the "
            "gradient (dead relus, a saturated activation)",
            zero);
    else
        say(d, OK, "gradients flow", "every weight tensor gets a gradient; nothing to change");
    if (high[0])
        say(d, PROBLEM, "updates",
            "update size / weight size per step %s (healthy: 1e-5 to 0.2 in the first steps); the "
            "steps are "
            "too large: lower the learning rate (now %g)",
            high, lr);
    else if (low[0])
        say(d, WARNING, "updates",
            "update size / weight size per step %s (healthy: 1e-5 to 0.2 in the first steps); the "
            "weights "
            "hardly move: raise the learning rate (now %g)",
            low, lr);
    else
        say(d, OK, "updates",
            "update size / weight size per step %.1e to %.1e (healthy: 1e-5 to 0.2 in the first "
            "steps); nothing to change",
            rmin, rmax);
done:
    free(before);
    free(after);
    free(gnorm);
    free(ratio);
    return rc;
}

/* One batch trained on alone: the loss must fall near zero. */
static int check_overfit(doctor *d, cn_model *m, float *x, int32_t *y)
{
    cn_net *net = cn_model_net(m);
    size_t batch = (size_t)cn_model_opts(m)->batch;
    double lr = cn_model_opts(m)->lr, first = NAN, loss = NAN;
    get_batch(d, net, 0, batch, x, y);
    long steps = d->steps * 3 / 2, s;
    for (s = 0; s < steps; s++) {
        if (cn_model_step(m, x, y, batch, lr, &loss))
            return step_failed(d, m, "overfitting one batch");
        if (s == 0)
            first = loss;
        if (loss < 0.05)
            break;
    }
    if (loss < 0.05)
        say(d, OK, "overfit",
            "one batch of %zu images learnt in %ld steps (loss %.2f -> %.3f); nothing to change",
            batch, s + 1, first, loss);
    else
        say(d, PROBLEM, "overfit",
            "one batch of %zu images not learnt in %ld steps: loss %.2f -> %.3f (should fall "
            "below 0.05); with a rate in range (see the range test) something is broken: the "
            "labels, the input's normalisation, or a layer",
            batch, steps, first, loss);
    return 0;
}

/* The range test: the rate rises exponentially from lr/10^4 to lr*100 over
 * --steps steps; the loss, smoothed, falls fastest somewhere below where it
 * is least: a third of the rate at its least is the suggestion, and a
 * rate over three times it is too high. */
static int check_rate(doctor *d, cn_model *m, float *x, int32_t *y)
{
    cn_net *net = cn_model_net(m);
    size_t batch = (size_t)cn_model_opts(m)->batch;
    double lr0 = cn_model_opts(m)->lr, lo = lr0 / 1e4, hi = lr0 * 100;
    long steps = d->steps;
    d->curve_lr = malloc((size_t)steps * sizeof(double));
    d->curve_loss = malloc((size_t)steps * sizeof(double));
    d->curve_smooth = malloc((size_t)steps * sizeof(double));
    if (!d->curve_lr || !d->curve_loss || !d->curve_smooth)
        return cli_error("out of memory");
    double avg = 0, best = INFINITY, best_lr = lo;
    long s;
    for (s = 0; s < steps; s++) {
        double lr = lo * pow(hi / lo, (double)s / (double)(steps - 1)), loss;
        get_batch(d, net, (size_t)s, batch, x, y);
        if (cn_model_step(m, x, y, batch, lr, &loss))
            break; /* the rate is past what the network takes: the test ends */
        net = cn_model_net(m);
        avg = 0.9 * avg + 0.1 * loss;
        double smooth = avg / (1 - pow(0.9, (double)s + 1)); /* bias-corrected */
        d->curve_lr[s] = lr;
        d->curve_loss[s] = loss;
        d->curve_smooth[s] = smooth;
        if (smooth < best) {
            best = smooth;
            best_lr = lr;
        }
        if (s > 10 && smooth > 4 * best)
            break; /* the loss blew up */
    }
    d->n_curve = (size_t)s;
    d->suggested = best_lr / 3;
    double sug = d->suggested;
    if (s < 10)
        say(d, PROBLEM, "learning rate",
            "the range test diverged within %ld steps from lr %g: the network cannot train "
            "at any of those rates; fix the problems above first",
            s, lo);
    else if (lr0 > 3 * best_lr)
        say(d, PROBLEM, "learning rate",
            "lr %g is too high: the range test's loss is least near lr %.3g and climbs "
            "beyond; use --lr %.3g",
            lr0, best_lr, sug);
    else if (lr0 < sug / 30)
        say(d, WARNING, "learning rate",
            "lr %g is %.0f times below the suggested rate (the loss is least near lr %.3g): "
            "training will be slow; try --lr %.3g",
            lr0, sug / lr0, best_lr, sug);
    else
        say(d, OK, "learning rate",
            "lr %g is in range (%.3g to %.3g): the range test's loss is least near lr %.3g "
            "and suggests %.3g; nothing to change",
            lr0, sug / 30, 3 * best_lr, best_lr, sug);
    if (d->png && d->n_curve) {
        cn_image img;
        if (cn_vis_lr_range(d->curve_lr, d->curve_loss, d->curve_smooth, d->n_curve, d->suggested,
                            &img))
            return cli_lib_error();
        cn_status st = cn_image_write_png(&img, d->png);
        cn_image_free(&img);
        if (st)
            return cli_lib_error();
        printf("         range test plot written to %s\n", d->png);
    }
    return 0;
}

/* ----------------------------------------------------------------- page */

static int write_page(const doctor *d)
{
    FILE *f = fopen(d->html, "w");
    if (!f)
        return cli_error("cannot write %s: %s", d->html, strerror(errno));
    fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>convnet doctor: ", f);
    cli_html(f, d->path);
    fputs("</title><style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
          ".ok{color:#080}.warning{color:#a60}.problem{color:#c00;font-weight:bold}"
          "td,th{padding:0 .6em;text-align:left}</style></head><body>\n<h1>convnet doctor: ",
          f);
    cli_html(f, d->path);
    fputs("</h1>\n<h2>Findings</h2>\n<table>\n", f);
    for (size_t i = 0; i < d->n_f; i++) {
        fprintf(f, "<tr><td class=\"%s\">%s</td><td>", verdicts[d->f[i].verdict],
                verdicts[d->f[i].verdict]);
        cli_html(f, d->f[i].what);
        fputs("</td><td>", f);
        cli_html(f, d->f[i].text);
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n", f);
    if (d->table) {
        fputs("<h2>Layers</h2>\n<table>\n", f);
        fputs(d->table, f);
        fputs("</table>\n", f);
    }
    if (d->n_curve) {
        cn_image img;
        uint8_t *png;
        size_t n;
        if (cn_vis_lr_range(d->curve_lr, d->curve_loss, d->curve_smooth, d->n_curve, d->suggested,
                            &img) == CN_OK) {
            if (cn_image_encode_png(&img, &png, &n) == CN_OK) {
                fprintf(f,
                        "<h2>Learning-rate range test</h2>\n<p>The loss (blue; orange: "
                        "smoothed) as the rate rises; suggested rate %.3g.</p>\n"
                        "<img alt=\"range test\" src=\"data:image/png;base64,",
                        d->suggested);
                cli_base64(f, png, n);
                fputs("\">\n", f);
                free(png);
            }
            cn_image_free(&img);
        }
    }
    fputs("</body></html>\n", f);
    if (fclose(f) != 0)
        return cli_error("cannot write %s: %s", d->html, strerror(errno));
    printf("page written to %s\n", d->html);
    return 0;
}

/* ------------------------------------------------------------------ main */

static int parse(int argc, char **argv, doctor *d)
{
    enum { O_DATA = 1, O_LIMIT, O_STEPS, O_PNG, O_HTML, O_THREADS, O_HELP, O_RECIPE = 256 };
    static const cli_opt fixed[] = {
        {"data", 1, O_DATA}, {"limit", 1, O_LIMIT}, {"steps", 1, O_STEPS},
        {"png", 1, O_PNG},   {"html", 1, O_HTML},   {"threads", 1, O_THREADS},
        {"help", 0, O_HELP}, {"h", 0, O_HELP},      {NULL, 0, 0},
    };
    cli_opt opts[CLI_MAX_RECIPE + sizeof fixed / sizeof fixed[0]];
    size_t n = cli_recipe_opts(opts, O_RECIPE);
    memcpy(opts + n, fixed, sizeof fixed);
    const char *v;
    int c;
    cli_iter it;
    cli_begin(&it, "doctor", argc, argv);
    while ((c = cli_next(&it, opts, &v)) != CLI_END) {
        switch (c) {
        case CLI_ERROR: return EXIT_USAGE;
        case CLI_POSITIONAL:
            if (d->path)
                return cli_usage("doctor", "takes one model, got '%s' and '%s'", d->path, v);
            d->path = v;
            break;
        case O_DATA: d->data_dir = v; break;
        case O_PNG: d->png = v; break;
        case O_HTML: d->html = v; break;
        case O_LIMIT:
            if (!cli_int(v, 16, 100000000, &d->limit))
                return cli_usage("doctor", "--limit takes a whole number >= 16, not '%s'", v);
            break;
        case O_STEPS:
            if (!cli_int(v, 20, 100000, &d->steps))
                return cli_usage("doctor", "--steps takes a whole number >= 20, not '%s'", v);
            break;
        case O_THREADS:
            if (cli_threads("doctor", v, &d->threads))
                return EXIT_USAGE;
            break;
        case O_HELP:
            fputs(help_head, stdout);
            cli_recipe_help();
            fputs(help_rest, stdout);
            return 0;
        default:
            if (cli_recipe_take("doctor", (size_t)(c - O_RECIPE), v, d->recipe))
                return EXIT_USAGE;
        }
    }
    if (!d->path)
        return cli_usage("doctor", "takes a model description or a model file");
    return -1;
}

int cmd_doctor(int argc, char **argv)
{
    doctor d = {.limit = 2048, .steps = 200};
    int rc = parse(argc, argv, &d);
    if (rc >= 0)
        return rc;
    rc = 0;
    cn_model *m = open_model(&d);
    if (!m)
        return 1;
    const char *dir =
        d.data_dir ? cli_data_dir(d.data_dir) : cli_model_data_dir(m, NULL, &(int){0});
    if (cn_data_load(dir, "train", &d.all)) {
        cn_model_free(m);
        return cli_lib_error();
    }
    d.data = cn_data_slice(&d.all, 0, (size_t)d.limit);
    const cn_train_opts *o = cn_model_opts(m);
    cn_net *net = cn_model_net(m);
    cn_shape s = cn_net_input_shape(net);
    size_t batch = (size_t)o->batch;
    float *x = malloc(batch * s.c * s.h * s.w * sizeof *x);
    int32_t *y = malloc(batch * sizeof *y);
    printf("doctor %s: %zu images of %s; batch %d, %s, lr %g\n", d.path, d.data.n, dir, o->batch,
           cn_optimizer_name(o->optimizer), o->lr);
    fflush(stdout);
    int bad = 0, diverged = 0;
    if (!x || !y)
        rc = cli_error("out of memory");
    if (!rc)
        rc = check_gradients(&d, m);
    if (!rc)
        rc = check_first_batch(&d, m, x, y, &bad);
    if (!rc && !bad)
        rc = check_layers(&d, m, x, y, &diverged);
    cn_model_free(m);
    m = NULL;
    if (!rc && !bad && (m = open_model(&d)) == NULL)
        rc = 1;
    if (!rc && !bad)
        rc = check_overfit(&d, m, x, y);
    cn_model_free(m);
    m = NULL;
    if (!rc && !bad && (m = open_model(&d)) == NULL)
        rc = 1;
    if (!rc && !bad)
        rc = check_rate(&d, m, x, y);
    cn_model_free(m);
    if (!rc && d.html)
        rc = write_page(&d);
    int problems = 0, warnings = 0;
    for (size_t i = 0; i < d.n_f; i++) {
        problems += d.f[i].verdict == PROBLEM;
        warnings += d.f[i].verdict == WARNING;
    }
    if (!rc)
        printf("%d problem%s, %d warning%s\n", problems, problems == 1 ? "" : "s", warnings,
               warnings == 1 ? "" : "s");
    free(x);
    free(y);
    free(d.curve_lr);
    free(d.curve_loss);
    free(d.curve_smooth);
    free(d.table);
    cn_data_free(&d.all);
    return rc ? rc : problems ? 1 : 0;
}

/* ------------------------------------------------------- train --doctor */

struct cli_doctor_log {
    FILE *f;
    char *path;
    cn_model *model;
    float *before; /* the parameters before the step of the next log line */
    size_t n;
    uint64_t before_step; /* the global step they were taken at (+1: none) */
};

cli_doctor_log *cli_doctor_log_open(const char *log_path, cn_model *model, int append)
{
    cli_doctor_log *d = calloc(1, sizeof *d);
    size_t len = strlen(log_path);
    if (d)
        d->path = malloc(len + 16);
    if (!d || !d->path) {
        free(d);
        cli_error("out of memory");
        return NULL;
    }
    /* "x.csv" -> "x.doctor.csv" */
    memcpy(d->path, log_path, len + 1);
    if (len > 4 && strcmp(log_path + len - 4, ".csv") == 0)
        d->path[len - 4] = '\0';
    strcat(d->path, ".doctor.csv");
    d->f = fopen(d->path, append ? "a" : "w");
    if (!d->f) {
        cli_error("cannot write the doctor's log %s: %s", d->path, strerror(errno));
        cli_doctor_log_close(d);
        return NULL;
    }
    if (!append)
        fputs("step,name,kind,mean,spread,dead,grad_norm,update_ratio\n", d->f);
    d->model = model;
    d->before_step = UINT64_MAX;
    if (cn_model_keep_stats(model, 1)) { /* the first step may end a part */
        cli_lib_error();
        cli_doctor_log_close(d);
        return NULL;
    }
    return d;
}

void cli_doctor_log_close(cli_doctor_log *d)
{
    if (!d)
        return;
    if (d->f)
        fclose(d->f);
    free(d->path);
    free(d->before);
    free(d);
}

/* Whether batch step (from 1) of an epoch of steps ends a log line's part. */
static int log_step(uint64_t step, uint64_t steps, uint64_t parts)
{
    return step < steps && step * parts / steps > (step - 1) * parts / steps;
}

int cli_doctor_batch(cli_doctor_log *d, const cn_progress *p, uint64_t parts)
{
    cn_net *net = cn_model_net(d->model);
    size_t np = cn_net_num_params(net);
    if (log_step(p->step, p->steps, parts)) {
        /* the activations of this batch, the gradients and update of its step */
        for (size_t i = 0; i + 1 < cn_net_num_layers(net); i++) {
            cn_layer_info li;
            cn_stats s;
            cn_net_layer(net, i, &li);
            if (cn_model_layer_stats(d->model, i, &s) || s.in_place)
                continue;
            fprintf(d->f, "%llu,%s,%s,%.4g,%.4g,%.4g,,\n", (unsigned long long)p->global_step,
                    li.name, li.kind, s.mean, s.std,
                    s.units ? (double)s.dead / (double)s.units : 0.0);
        }
        int have = d->before && d->n == np && d->before_step + 1 == p->global_step;
        float *after = have ? malloc(np * sizeof *after) : NULL;
        if (after)
            cn_net_get(net, CN_PARAMS, 0, np, after);
        for (size_t i = 0; i < cn_net_num_tensors(net); i++) {
            cn_tensor_info ti;
            cn_stats g;
            cn_net_tensor(net, i, &ti);
            if (!ti.trainable || cn_net_block_stats(net, CN_GRADS, ti.offset, ti.count, &g))
                continue;
            fprintf(d->f, "%llu,%s,tensor,,,,%.4g,", (unsigned long long)p->global_step, ti.name,
                    g.norm);
            if (after) {
                double du = 0, w = 0;
                for (size_t k = ti.offset; k < ti.offset + ti.count; k++) {
                    double dd = (double)after[k] - d->before[k];
                    du += dd * dd;
                    w += (double)d->before[k] * d->before[k];
                }
                fprintf(d->f, "%.4g", w > 0 ? sqrt(du / w) : 0.0);
            }
            fputc('\n', d->f);
        }
        free(after);
        if (fflush(d->f) != 0 || ferror(d->f))
            return cli_error("cannot write the doctor's log %s: %s", d->path, strerror(errno));
    }
    /* the next batch ends a part: keep the parameters it starts from, and
     * have its step keep its outputs' figures (its backward pass writes
     * gradients over some outputs) */
    int next = log_step(p->step + 1, p->steps, parts);
    if (cn_model_keep_stats(d->model, next))
        return cli_lib_error();
    if (next) {
        if (d->n != np) {
            free(d->before);
            d->before = malloc(np * sizeof *d->before);
            d->n = d->before ? np : 0;
        }
        if (d->before) {
            cn_net_get(net, CN_PARAMS, 0, np, d->before);
            d->before_step = p->global_step;
        }
    }
    return 0;
}
