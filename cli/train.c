/* train.c - convnet train: train a network on MNIST-style data, with a
 * progress bar, a CSV log, a checkpoint after every epoch and on Ctrl-C or
 * SIGTERM. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* The help: this, the recipe's options (from the library's table of recipe
 * keys), then help_rest. */
static const char help_head[] =
    "usage: convnet train [MODEL.cfg] [options]\n"
    "\n"
    "Trains the network that MODEL.cfg describes (the default MNIST network when\n"
    "none is given) on the training set in the data directory (MNIST's IDX files or\n"
    "CIFAR-10's binary batches): the last 10 000 images for validation, the others\n"
    "for training.  The recipe comes from the [train] section; these options\n"
    "override it:\n"
    "\n";

static const char help_rest[] =
    "  --threads N      worker threads (default: one per core)\n"
    "  --data DIR       data directory (default $CONVNET_DATA or data/mnist)\n"
    "  --val N          images kept for validation (default 10000; 0 for none)\n"
    "  --limit N        train on the first N of the other images only (quick runs)\n"
    "  -o FILE          model file to write (default: MODEL.safetensors here)\n"
    "  --log FILE       CSV log (default: FILE with .csv): a line every --log-every\n"
    "                   of an epoch with the training figures, and one at the end of\n"
    "                   each epoch with validation too; 'convnet plot' draws it\n"
    "  --log-every F    fraction of an epoch between log lines (default 0.1)\n"
    "  --resume FILE    continue training from a model file written by train\n"
    "  --quiet          no progress bar, only the lines per epoch\n"
    "  --verbose        also the peak memory (resident) after each epoch and at the end\n"
    "  --test-every F   evaluate the test set every F epochs (0.25: four times an\n"
    "                   epoch), timed apart from training\n"
    "  --stop-at A      with --test-every: stop once test accuracy reaches A (0.99)\n"
    "                   and report the training time it took\n"
    "\n"
    "The model file is written after every epoch, atomically: an interrupted or\n"
    "failed save leaves the previous file as it was.  Ctrl-C (SIGINT) or SIGTERM\n"
    "stops after the current batch, saves, and exits with status 130 or 143, so\n"
    "that --resume continues exactly where it stopped.  A loss or weights that\n"
    "become NaN or infinite stop training (status 1) without overwriting the last\n"
    "good model file.  The same seed and thread count give the same model, bit for\n"
    "bit.\n";

static void print_help(void)
{
    fputs(help_head, stdout);
    for (size_t i = 0; i < cn_train_key_count(); i++) {
        const cn_train_key *k = cn_train_key_at(i);
        if (!k->option)
            continue;
        char name[64];
        snprintf(name, sizeof name, "--%s %s", k->option, k->arg);
        printf("  %-16s ", name);
        cli_wrap(stdout, k->help, 19, 19, 79);
    }
    fputs(help_rest, stdout);
}

static volatile int stop_flag; /* the signal that asked training to stop */

static void on_signal(int sig)
{
    stop_flag = sig;
    /* A second signal ends the program at once; the save is atomic. */
    signal(sig, SIG_DFL);
}

typedef struct run {
    const char *out, *log_path;
    FILE *log;
    int tty, quiet, verbose;
    double last_draw;
    int log_parts; /* log lines per epoch */
    /* At the last log line: the batches behind the running means, and the
     * sums of their losses and accuracies. */
    uint64_t mark_batches;
    double mark_loss, mark_acc;
    int saved_epoch; /* last epoch written to out, -1 if none */
    /* --test-every and --stop-at */
    cn_model *model;
    const cn_data *test;
    double test_every, stop_at, eval_s, reached_s, reached_acc;
    uint64_t next_check;
    int reached;
} run;

/* The most memory this process has held at once (resident), in MiB. */
static double peak_mib(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_maxrss / 1024.0; /* Linux counts ru_maxrss in KiB */
}

/* Evaluates the test set every test_every epochs; stops training when its
 * accuracy reaches stop_at.  Evaluation time is kept out of training time. */
static cn_status check_test(run *r, const cn_progress *p)
{
    if (p->global_step < r->next_check)
        return CN_OK;
    uint64_t every = (uint64_t)(r->test_every * (double)p->steps + 0.5);
    r->next_check = p->global_step + (every ? every : 1);
    double t0 = cli_now(), train_s = p->elapsed_s - r->eval_s;
    cn_eval ev;
    cn_status st = cn_net_evaluate(cn_model_net(r->model), r->test, &ev);
    if (st)
        return st;
    r->eval_s += cli_now() - t0;
    if (r->tty && !r->quiet)
        fputs("\r\033[K", stderr);
    printf("test after %.2f epochs: accuracy %.2f%%, loss %.4f (%.1f s of training)\n",
           (double)p->global_step / (double)p->steps, 100 * ev.accuracy, ev.loss, train_s);
    fflush(stdout);
    double acc = ev.accuracy;
    cn_eval_free(&ev);
    if (r->stop_at > 0 && acc >= r->stop_at) {
        r->reached = 1;
        r->reached_s = train_s;
        r->reached_acc = acc;
        return CN_ERR_STOPPED;
    }
    return CN_OK;
}

/* One line of the CSV log: epoch counts the epochs done, fractions too;
 * the training figures are the means over the batches since the last line
 * (p's are over the epoch so far in this run). */
static void log_line(run *r, const cn_progress *p, double epoch)
{
    double n = (double)p->batches, dn = (double)(p->batches - r->mark_batches);
    double loss = dn > 0 ? (p->loss * n - r->mark_loss) / dn : p->loss;
    double acc = dn > 0 ? (p->accuracy * n - r->mark_acc) / dn : p->accuracy;
    r->mark_batches = p->batches;
    r->mark_loss = p->loss * n;
    r->mark_acc = p->accuracy * n;
    fprintf(r->log, "%.6g,%llu,%.6f,%.6f,", epoch, (unsigned long long)p->global_step, loss, acc);
    if (p->val_accuracy >= 0)
        fprintf(r->log, "%.6f,%.6f,", p->val_loss, p->val_accuracy);
    else
        fprintf(r->log, ",,");
    fprintf(r->log, "%.6g,%.1f,%.3f\n", p->lr, p->images_per_s, p->elapsed_s);
    fflush(r->log);
}

static cn_status on_batch(void *user, const cn_progress *p)
{
    run *r = user;
    if (p->batches <= r->mark_batches) { /* a new epoch: its means start again */
        r->mark_batches = 0;
        r->mark_loss = r->mark_acc = 0.0;
    }
    /* Lines within the epoch: the epoch's own line comes with validation. */
    if (r->log && p->step < p->steps &&
        p->step * (uint64_t)r->log_parts / p->steps >
            (p->step - 1) * (uint64_t)r->log_parts / p->steps)
        log_line(r, p, p->epoch + (double)p->step / (double)p->steps);
    if (r->test) {
        cn_status st = check_test(r, p);
        if (st)
            return st;
    }
    if (!r->tty || r->quiet)
        return CN_OK;
    /* Redraw at most ten times a second, and at the end of an epoch. */
    if (p->step != p->steps && p->elapsed_s - r->last_draw < 0.1)
        return CN_OK;
    r->last_draw = p->elapsed_s;
    int width = 24, done = (int)(width * p->step / p->steps);
    char bar[32];
    for (int i = 0; i < width; i++)
        bar[i] = i < done ? '#' : '.';
    bar[width] = '\0';
    double left =
        p->images_per_s > 0 ? (double)(p->steps - p->step) * (double)p->batch / p->images_per_s : 0;
    fprintf(stderr, "\repoch %d/%d [%s] %3d%%  loss %.4f  acc %6.2f%%  %6.0f img/s  %4.0f s left ",
            p->epoch + 1, p->epochs, bar, (int)(100 * p->step / p->steps), p->loss,
            100 * p->accuracy, p->images_per_s, left);
    fflush(stderr);
    return CN_OK;
}

static cn_status on_epoch(void *user, cn_model *m, const cn_progress *p)
{
    run *r = user;
    if (r->tty && !r->quiet)
        fputs("\r\033[K", stderr);
    char val[64] = "";
    if (p->val_accuracy >= 0)
        snprintf(val, sizeof val, "  val loss %.4f  val acc %6.2f%%", p->val_loss,
                 100 * p->val_accuracy);
    printf("epoch %3d/%d  loss %.4f  acc %6.2f%%%s  lr %.4g  %6.0f img/s  %6.1f s\n", p->epoch + 1,
           p->epochs, p->loss, 100 * p->accuracy, val, p->lr, p->images_per_s, p->elapsed_s);
    if (r->verbose)
        printf("epoch %3d/%d  peak memory %.1f MiB\n", p->epoch + 1, p->epochs, peak_mib());
    fflush(stdout);
    if (r->log)
        log_line(r, p, p->epoch + 1);
    cn_status st = cn_model_save(m, r->out);
    if (st == CN_OK)
        r->saved_epoch = p->epoch + 1;
    return st;
}

/* The recipe options train takes: at most this many. */
#define MAX_RECIPE 32

/* Sets in o the recipe's keys given on the command line: given[i] is the
 * text of key i, or NULL.  The texts were checked when they were read. */
static cn_status apply(const char *const *given, cn_train_opts *o)
{
    for (size_t i = 0; i < cn_train_key_count(); i++) {
        cn_status st = given[i] ? cn_train_opts_set(o, cn_train_key_at(i)->name, given[i]) : CN_OK;
        if (st)
            return st;
    }
    return CN_OK;
}

/* The text given for the recipe's key name, or NULL. */
static const char *given_for(const char *const *given, const char *name)
{
    for (size_t i = 0; i < cn_train_key_count(); i++)
        if (strcmp(cn_train_key_at(i)->name, name) == 0)
            return given[i];
    return NULL;
}

/* "dir/name.cfg" -> "name" + ext, in the current directory. */
static char *derived_name(const char *path, const char *ext)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    const char *dot = strrchr(base, '.');
    if (dot && dot != base)
        n = (size_t)(dot - base);
    char *out = malloc(n + strlen(ext) + 1);
    if (out) {
        memcpy(out, base, n);
        strcpy(out + n, ext);
    }
    return out;
}

int cmd_train(int argc, char **argv)
{
    enum {
        O_THREADS = 1,
        O_DATA,
        O_VAL,
        O_LOG,
        O_RESUME,
        O_QUIET,
        O_OUT,
        O_TEST_EVERY,
        O_STOP_AT,
        O_LOG_EVERY,
        O_VERBOSE,
        O_LIMIT,
        O_HELP,
        O_RECIPE = 256 /* + the index of a recipe key */
    };
    static const cli_opt fixed[] = {
        {"threads", 1, O_THREADS},
        {"data", 1, O_DATA},
        {"val", 1, O_VAL},
        {"limit", 1, O_LIMIT},
        {"log", 1, O_LOG},
        {"resume", 1, O_RESUME},
        {"quiet", 0, O_QUIET},
        {"verbose", 0, O_VERBOSE},
        {"o", 1, O_OUT},
        {"test-every", 1, O_TEST_EVERY},
        {"stop-at", 1, O_STOP_AT},
        {"log-every", 1, O_LOG_EVERY},
        {"help", 0, O_HELP},
        {"h", 0, O_HELP},
        {NULL, 0, 0},
    };
    /* The recipe's options, then the others. */
    cli_opt opts[MAX_RECIPE + sizeof fixed / sizeof fixed[0]];
    size_t n_opts = 0;
    if (cn_train_key_count() > MAX_RECIPE)
        return cli_error("the recipe has %zu keys; train takes at most %d", cn_train_key_count(),
                         MAX_RECIPE);
    for (size_t i = 0; i < cn_train_key_count(); i++)
        if (cn_train_key_at(i)->option)
            opts[n_opts++] = (cli_opt){cn_train_key_at(i)->option, 1, O_RECIPE + (int)i};
    memcpy(opts + n_opts, fixed, sizeof fixed);

    const char *given[MAX_RECIPE] = {NULL}; /* the recipe's values given */
    long threads = 0, val_n = 10000, limit = 0;
    double test_every = 0, stop_at = 0, log_every = 0.1;
    const char *data_opt = NULL, *out_opt = NULL, *log_opt = NULL, *resume = NULL, *cfg = NULL;
    const char *v;
    int quiet = 0, verbose = 0, c;
    cli_iter it;
    cli_begin(&it, "train", argc, argv);
    while ((c = cli_next(&it, opts, &v)) != CLI_END) {
        switch (c) {
        case CLI_ERROR: return EXIT_USAGE;
        case CLI_POSITIONAL:
            if (cfg)
                return cli_usage("train", "takes one model description, got '%s' and '%s'", cfg, v);
            cfg = v;
            break;
        case O_THREADS:
            if (cli_threads("train", v, &threads))
                return EXIT_USAGE;
            break;
        case O_VAL:
            if (!cli_int(v, 0, 100000000, &val_n))
                return cli_usage("train", "--val takes a whole number >= 0, not '%s'", v);
            break;
        case O_LIMIT:
            if (!cli_int(v, 1, 100000000, &limit))
                return cli_usage("train", "--limit takes a whole number >= 1, not '%s'", v);
            break;
        case O_DATA: data_opt = v; break;
        case O_OUT: out_opt = v; break;
        case O_LOG: log_opt = v; break;
        case O_RESUME: resume = v; break;
        case O_QUIET: quiet = 1; break;
        case O_VERBOSE: verbose = 1; break;
        case O_LOG_EVERY:
            if (!cli_double(v, 1e-4, 1, &log_every))
                return cli_usage("train",
                                 "--log-every takes a fraction of an epoch in (0, 1], not '%s'", v);
            break;
        case O_TEST_EVERY:
            if (!cli_double(v, 1e-6, 1000, &test_every))
                return cli_usage("train", "--test-every takes a number of epochs above 0, not '%s'",
                                 v);
            break;
        case O_STOP_AT:
            if (!cli_double(v, 1e-6, 1, &stop_at))
                return cli_usage("train",
                                 "--stop-at takes an accuracy above 0 and at most 1, not '%s'", v);
            break;
        case O_HELP: print_help(); return 0;
        default: { /* a recipe option: checked now, set once the recipe is known */
            size_t i = (size_t)(c - O_RECIPE);
            cn_train_opts check;
            cn_train_opts_defaults(&check);
            if (cn_train_opts_set(&check, cn_train_key_at(i)->option, v))
                return cli_usage("train", "--%s", cn_last_error());
            given[i] = v;
            break;
        }
        }
    }
    if (cfg && resume)
        return cli_usage("train", "--resume takes the model from its file; leave out %s", cfg);
    if (stop_at > 0 && test_every <= 0)
        return cli_usage("train", "--stop-at needs --test-every");

    /* The model: new from a description, or resumed from a file. */
    cn_model *model = NULL;
    cn_status st;
    char *default_out = NULL;
    if (resume) {
        if ((st = cn_model_load(resume, (int)threads, &model)))
            return cli_lib_error();
        cn_train_opts *o = cn_model_opts(model), want = *o;
        if ((st = apply(given, &want))) {
            cn_model_free(model);
            return cli_lib_error();
        }
        /* The messages are printed before the model (and o with it) is freed. */
        if (want.batch != o->batch && cn_model_state(model)->step != 0) {
            cli_usage("train", "%s stopped inside an epoch: resume it with its batch size %d",
                      resume, o->batch);
            cn_model_free(model);
            return EXIT_USAGE;
        }
        if (want.optimizer != o->optimizer) {
            cli_usage("train",
                      "--optimizer cannot change when resuming: %s keeps the "
                      "state of %s",
                      resume, cn_optimizer_name(o->optimizer));
            cn_model_free(model);
            return EXIT_USAGE;
        }
        *o = want;
        if (given_for(given, "seed")) {
            cn_model_free(model);
            return cli_usage("train", "--seed cannot change when resuming: the run keeps its own");
        }
    } else {
        cn_spec *spec;
        st = cli_load_spec(cfg, &spec);
        if (st)
            return cli_lib_error();
        cn_train_opts o;
        cn_spec_train_opts(spec, &o);
        st = apply(given, &o);
        if (!st)
            st = cn_model_create(spec, &o, (int)threads, &model);
        cn_spec_free(spec);
        if (st)
            return cli_lib_error();
        default_out = derived_name(cfg ? cfg : "mnist.cfg", ".safetensors");
    }
    const char *out = out_opt ? out_opt : resume ? resume : default_out;
    char *log_default = cli_log_name(out);
    const char *log_path = log_opt ? log_opt : log_default;
    int rc = 0;

    /* The model file's directory must take it: better now than after an
     * epoch of training (the save itself reports what goes wrong later). */
    char *out_dir = malloc(strlen(out) + 2);
    if (!out_dir) {
        rc = cli_error("out of memory");
        goto done_model;
    }
    strcpy(out_dir, out);
    char *slash = strrchr(out_dir, '/');
    if (!slash)
        strcpy(out_dir, ".");
    else
        slash[slash == out_dir] = '\0';
    if (access(out_dir, W_OK | X_OK) != 0) {
        rc = cli_error("cannot write the model file %s: %s: %s", out, out_dir, strerror(errno));
        free(out_dir);
        goto done_model;
    }
    free(out_dir);

    /* Data: training file split into train and validation. */
    const char *dir = cli_data_dir(data_opt);
    cn_data all;
    if ((st = cn_data_load(dir, "train", &all))) {
        rc = cli_lib_error();
        goto done_model;
    }
    if ((size_t)val_n >= all.n) {
        rc = cli_error("--val %ld leaves no training images (the file has %zu)", val_n, all.n);
        goto done_data;
    }
    size_t n_train = all.n - (size_t)val_n;
    cn_data train =
        cn_data_slice(&all, 0, limit && (size_t)limit < n_train ? (size_t)limit : n_train);
    cn_data val = cn_data_slice(&all, all.n - (size_t)val_n, (size_t)val_n);

    run r = {.out = out,
             .log_path = log_path,
             .tty = isatty(STDERR_FILENO),
             .quiet = quiet,
             .verbose = verbose,
             .log_parts = (int)(1.0 / log_every + 0.5),
             .saved_epoch = -1};
    cn_data test = {0};
    if (test_every > 0) {
        if ((st = cn_data_load(dir, "test", &test))) {
            rc = cli_lib_error();
            goto done_data;
        }
        r.model = model;
        r.test = &test;
        r.test_every = test_every;
        r.stop_at = stop_at;
        r.next_check = cn_model_state(model)->global_step;
    }
    const cn_train_state *s = cn_model_state(model);
    int appending = resume && s->epoch > 0, start_epoch = s->epoch;
    uint64_t start_step = s->step;
    r.log = fopen(log_path, appending ? "a" : "w");
    if (!r.log) {
        rc = cli_error("cannot write the log %s", log_path);
        goto done_data;
    }
    if (!appending)
        fprintf(r.log, "epoch,step,train_loss,train_accuracy,val_loss,val_accuracy,lr,images_per_s,"
                       "elapsed_s\n");

    cn_net *net = cn_model_net(model);
    const cn_train_opts *o = cn_model_opts(model);
    size_t params;
    uint64_t macs;
    cli_totals(net, &params, &macs);
    char pbuf[32], mbuf[32];
    printf("%s %s: %s parameters, %s multiply-adds per image\n", resume ? "resuming" : "training",
           resume ? resume : cn_spec_source(cn_model_spec(model)),
           cli_count(params, pbuf, sizeof pbuf), cli_count(macs, mbuf, sizeof mbuf));
    char aug[64];
    cli_augmentation(o->shift, o->flip, "; ", aug, sizeof aug);
    printf("data %s: %zu training, %zu validation images; %d epoch%s of batch %d, %s, lr %g, "
           "%s %g, decay %g%s; %d thread%s, %s kernels\n",
           dir, train.n, val.n, o->epochs, o->epochs == 1 ? "" : "s", o->batch,
           cn_optimizer_name(o->optimizer), o->lr,
           o->optimizer == CN_OPT_SGD ? "momentum" : "beta1", o->momentum, o->decay, aug,
           cn_net_threads(net), cn_net_threads(net) == 1 ? "" : "s", cn_net_isa(net));
    if (resume)
        printf("continuing at epoch %d, batch %llu\n", s->epoch + 1, (unsigned long long)s->step);
    fflush(stdout);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    cn_train_hooks hooks = {&r, on_batch, on_epoch, &stop_flag};
    st = cn_model_train(model, &train, val.n ? &val : NULL, &hooks);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (r.tty && !quiet)
        fputs("\r\033[K", stderr);
    s = cn_model_state(model);
    if (st == CN_ERR_STOPPED && r.reached) {
        printf("reached %.2f%% test accuracy after %.2f s of training (%.2f epochs; %.2f s of "
               "evaluation not counted)\n",
               100 * r.reached_acc, r.reached_s,
               (double)s->global_step / (double)(train.n / (size_t)cn_model_opts(model)->batch),
               r.eval_s);
        st = cn_model_save(model, out);
        if (st)
            rc = cli_lib_error();
    } else if (st == CN_OK) {
        if (r.stop_at > 0)
            printf("did not reach %.2f%% test accuracy\n", 100 * r.stop_at);
        printf("done: %d epoch%s; model written to %s, log to %s\n", s->epoch,
               s->epoch == 1 ? "" : "s", out, log_path);
    } else if (st == CN_ERR_STOPPED) {
        int sig = stop_flag;
        if (cn_model_save(model, out) != CN_OK) {
            rc = cli_lib_error();
        } else {
            fprintf(stderr,
                    "convnet: stopped by %s at epoch %d, batch %llu; saved to %s\n"
                    "continue with: convnet train --resume %s\n",
                    sig == SIGTERM ? "SIGTERM" : "SIGINT (Ctrl-C)", s->epoch + 1,
                    (unsigned long long)s->step, out, out);
            rc = 128 + (sig ? sig : SIGINT);
        }
    } else {
        rc = cli_lib_error();
        if (st == CN_ERR_NUMERIC) {
            if (r.saved_epoch > 0)
                fprintf(stderr,
                        "convnet: the last good model (after epoch %d) is in %s: continue "
                        "from it with --resume and a smaller --lr\n",
                        r.saved_epoch, out);
            else if (resume && strcmp(out, resume) == 0 && start_step == 0)
                fprintf(stderr,
                        "convnet: %s still holds the model as it was (after epoch %d): "
                        "continue from it with a smaller --lr\n",
                        out, start_epoch);
            else if (resume && strcmp(out, resume) == 0)
                fprintf(stderr,
                        "convnet: %s still holds the model as it was (epoch %d, batch %llu): "
                        "continue from it with a smaller --lr\n",
                        out, start_epoch + 1, (unsigned long long)start_step);
            else if (access(out, F_OK) == 0)
                fprintf(stderr, "convnet: %s was left as it was\n", out);
            else
                fprintf(stderr, "convnet: no epoch completed, so no model was written\n");
        }
    }
    if (verbose)
        printf("peak memory: %.1f MiB resident\n", peak_mib());
    fclose(r.log);
    cn_data_free(&test);
done_data:
    cn_data_free(&all);
done_model:
    cn_model_free(model);
    free(default_out);
    free(log_default);
    return rc;
}
