/* train.c - convnet train: train a network on MNIST-style data, with a
 * progress bar, a CSV log, a checkpoint after every epoch and on Ctrl-C or
 * SIGTERM. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
    "for training.  --data may also name a folder of pictures, one sub-folder per\n"
    "class (DIR/CLASS/IMAGE.png; train/, val/ and test/ folders above the class\n"
    "folders if the data come split), or a CSV list (a header line file,label,\n"
    "then a line per image, paths relative to the list): the pictures are decoded\n"
    "once, to [net]'s channels, height and width, into a cache beside them that\n"
    "later runs read at once (mapped: data larger than memory train); without\n"
    "split folders a seeded split is made (--val-split, --test-split).  The recipe\n"
    "comes from the [train] section; these options override it:\n"
    "\n";

static const char help_rest[] =
    "  --threads N      worker threads (default: one per core)\n"
    "  --device D       where to train: cpu (default), or cuda / cuda:N, a GPU (a\n"
    "                   build with make CUDA=1; convnet info --devices lists them)\n"
    "  --bucket-mb X    under mpirun: exchange the gradients in buckets of X MB,\n"
    "                   each started during the backward pass (default 0: one\n"
    "                   exchange after it)\n"
    "  --data DIR       data directory (default $CONVNET_DATA or data/mnist)\n"
    "  --val N          images kept for validation (default 10000; 0 for none)\n"
    "  --fit MODE       folder data: crop (default: the centred part with the\n"
    "                   input's aspect, resized), stretch (all of the picture) or\n"
    "                   digit (as predict reads photographed digits)\n"
    "  --cache DIR      folder data: keep the decoded images in DIR (default: the\n"
    "                   data's own .convnet-cache folder)\n"
    "  --val-split F    folder data without a val/ folder: the fraction F of the\n"
    "                   images kept for validation (default 0.1; --val N: N images)\n"
    "  --test-split F   folder data without train/val/test folders: the fraction F\n"
    "                   set apart for testing (default 0.1)\n"
    "  --skip-unreadable  folder data: leave out the files that cannot be read as\n"
    "                   images (without it, training refuses to start, naming them)\n"
    "  --limit N        train on the first N of the other images only (quick runs)\n"
    "  -o FILE          model file to write (default: MODEL.safetensors here)\n"
    "  --log FILE       CSV log (default: FILE with .csv): a line every --log-every\n"
    "                   of an epoch with the training figures, and one at the end of\n"
    "                   each epoch with validation too; 'convnet plot' draws it\n"
    "  --log-every F    fraction of an epoch between log lines (default 0.1)\n"
    "  --resume FILE    continue training from a model file written by train, on\n"
    "                   the data it was trained on (its directory, --limit and\n"
    "                   --val, kept in the file); data that changed since are\n"
    "                   refused unless --data is given\n"
    "  --force          write -o FILE even when it holds a model of another network\n"
    "  --quiet          no progress bar, only the lines per epoch\n"
    "  --verbose        also the validation's time and the peak memory (resident)\n"
    "                   after each epoch, and the peak at the end\n"
    "  --doctor         the doctor's cheap parts: a NaN or infinite value is traced to\n"
    "                   the layer and tensor where it first appeared, and each log\n"
    "                   line adds per-layer figures to LOG.doctor.csv (see 'convnet\n"
    "                   doctor')\n"
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
    cli_recipe_help();
    fputs(help_rest, stdout);
}

static volatile int stop_flag; /* the signal that asked training to stop */

static void on_signal(int sig)
{
    stop_flag = sig;
    /* A second signal ends the program at once; the save is atomic. */
    signal(sig, SIG_DFL);
}

/* For tests (tests/resume.sh, tests/cli.sh): with CONVNET_TEST_SIGTERM_AT=N
 * in the environment the process sends itself SIGTERM once batch N of the
 * whole run (its global step) is done: the path of Ctrl-C and SIGTERM at a
 * step known in advance, where a kill from outside races with the end of
 * training.  With CONVNET_TEST_PAUSE_AT=N it stops itself (SIGSTOP) there
 * instead, so that a test can send a signal from outside while it waits and
 * then let it continue. */
static long sigterm_at, pause_at;

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
    uint64_t checked_at;
    int reached;
    double val_s;           /* validation time of the run so far (--verbose) */
    int rank, size;         /* this worker of a data-parallel run, and how many */
    cli_doctor_log *doctor; /* --doctor: per-layer figures at each log line */
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
    uint64_t every = (uint64_t)(r->test_every * (double)p->steps + 0.5);
    /* checked_at: the step the interval counts from (the run's first, then
     * the last check's), so that checks fall every `every` steps from there
     * and the last step of a whole number of intervals is checked; the run's
     * last step is checked too (0.05 of 782 steps is 39: the 20th check
     * came after step 780, two steps before the model written). */
    int last = p->epoch + 1 >= p->epochs && p->step >= p->steps;
    if (!last && p->global_step < r->checked_at + (every ? every : 1))
        return CN_OK;
    r->checked_at = p->global_step;
    double t0 = cli_now(), train_s = p->elapsed_s - r->eval_s;
    cn_eval ev;
    cn_status st = cn_model_evaluate(r->model, r->test, &ev); /* the average, with ema */
    if (st)
        return st;
    r->eval_s += cli_now() - t0;
    if (r->tty && !r->quiet)
        fputs("\r\033[K", stderr);
    printf("test after %.2f epochs: accuracy %.2f%%, loss %.4f (%.2f s of training)\n",
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
    if (sigterm_at > 0 && p->global_step == (uint64_t)sigterm_at && !stop_flag)
        raise(SIGTERM);
    if (pause_at > 0 && p->global_step == (uint64_t)pause_at)
        raise(SIGSTOP);
    if (p->batches <= r->mark_batches) { /* a new epoch: its means start again */
        r->mark_batches = 0;
        r->mark_loss = r->mark_acc = 0.0;
    }
    /* Lines within the epoch: the epoch's own line comes with validation. */
    if (r->log && p->step < p->steps &&
        p->step * (uint64_t)r->log_parts / p->steps >
            (p->step - 1) * (uint64_t)r->log_parts / p->steps)
        log_line(r, p, p->epoch + (double)p->step / (double)p->steps);
    if (r->doctor && cli_doctor_batch(r->doctor, p, (uint64_t)r->log_parts))
        return CN_ERR_IO;
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

/* ", device 12.3 MiB" on a GPU: the most device memory held so far. */
static const char *device_peak(cn_model *m)
{
    static char buf[48];
    size_t peak = cn_net_device_peak(cn_model_net(m));
    buf[0] = '\0';
    if (peak)
        snprintf(buf, sizeof buf, ", device %.1f MiB", (double)peak / (1 << 20));
    return buf;
}

static cn_status on_epoch(void *user, cn_model *m, const cn_progress *p)
{
    run *r = user;
    if (r->rank != 0) /* worker 0 speaks, logs and saves for all */
        return CN_OK;
    if (r->tty && !r->quiet)
        fputs("\r\033[K", stderr);
    char val[64] = "";
    if (p->val_accuracy >= 0)
        snprintf(val, sizeof val, "  val loss %.4f  val acc %6.2f%%", p->val_loss,
                 100 * p->val_accuracy);
    printf("epoch %3d/%d  loss %.4f  acc %6.2f%%%s  lr %.4g  %6.0f img/s  %6.1f s\n", p->epoch + 1,
           p->epochs, p->loss, 100 * p->accuracy, val, p->lr, p->images_per_s, p->elapsed_s);
    if (r->verbose && p->val_accuracy >= 0)
        printf("epoch %3d/%d  validation %.3f s\n", p->epoch + 1, p->epochs, p->val_s - r->val_s);
    r->val_s = p->val_s;
    if (r->verbose)
        printf("epoch %3d/%d  peak memory %.1f MiB%s\n", p->epoch + 1, p->epochs, peak_mib(),
               device_peak(m));
    fflush(stdout);
    if (r->log)
        log_line(r, p, p->epoch + 1);
    cn_status st = cn_model_save(m, r->out);
    if (st == CN_OK)
        r->saved_epoch = p->epoch + 1;
    return st;
}

/* The recipe options train takes: at most this many (cli/recipe.c). */
#define MAX_RECIPE CLI_MAX_RECIPE
#define apply      cli_recipe_apply

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

/* What the command line asked for. */
typedef struct args {
    const char *cfg, *resume, *data, *out, *log;
    const char *recipe[MAX_RECIPE]; /* the text given for recipe key i, or NULL */
    long threads, val, limit;
    double test_every, stop_at, log_every, bucket_mb;
    int quiet, verbose, force;
    int val_given, limit_given;
    /* folder data: --fit, --cache, --val-split, --test-split, --skip-unreadable */
    const char *cache;
    cn_fit fit;
    double val_split, test_split;
    int skip_unreadable, val_split_given, test_split_given;
    int doctor; /* --doctor: NaN traced, per-layer figures logged (cli/doctor.c) */
} args;

/* parse_args: go on with the training. */
enum { GO_ON = -1 };

/* Reads the command line into a: GO_ON, or the exit status (after the help
 * or a usage message). */
static int parse_args(int argc, char **argv, args *a)
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
        O_BUCKET,
        O_FORCE,
        O_FIT,
        O_CACHE,
        O_VAL_SPLIT,
        O_TEST_SPLIT,
        O_SKIP,
        O_DOCTOR,
        O_HELP,
        O_DEVICE,
        O_RECIPE = 256 /* + the index of a recipe key */
    };
    static const cli_opt fixed[] = {
        {"threads", 1, O_THREADS},
        {"device", 1, O_DEVICE},
        {"data", 1, O_DATA},
        {"val", 1, O_VAL},
        {"limit", 1, O_LIMIT},
        {"bucket-mb", 1, O_BUCKET},
        {"force", 0, O_FORCE},
        {"fit", 1, O_FIT},
        {"cache", 1, O_CACHE},
        {"val-split", 1, O_VAL_SPLIT},
        {"test-split", 1, O_TEST_SPLIT},
        {"skip-unreadable", 0, O_SKIP},
        {"doctor", 0, O_DOCTOR},
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
    n_opts = cli_recipe_opts(opts, O_RECIPE);
    memcpy(opts + n_opts, fixed, sizeof fixed);

    *a = (args){.val = 10000, .log_every = 0.1};
    const char *v;
    int c;
    cli_iter it;
    cli_begin(&it, "train", argc, argv);
    while ((c = cli_next(&it, opts, &v)) != CLI_END) {
        switch (c) {
        case CLI_ERROR: return EXIT_USAGE;
        case CLI_POSITIONAL:
            if (a->cfg)
                return cli_usage("train", "takes one model description, got '%s' and '%s'", a->cfg,
                                 v);
            a->cfg = v;
            break;
        case O_THREADS:
            if (cli_threads("train", v, &a->threads))
                return EXIT_USAGE;
            break;
        case O_DEVICE:
            if (cli_set_device("train", v))
                return EXIT_USAGE;
            break;
        case O_VAL:
            if (!cli_int(v, 0, 100000000, &a->val))
                return cli_usage("train", "--val takes a whole number >= 0, not '%s'", v);
            a->val_given = 1;
            break;
        case O_LIMIT:
            if (!cli_int(v, 1, 100000000, &a->limit))
                return cli_usage("train", "--limit takes a whole number >= 1, not '%s'", v);
            a->limit_given = 1;
            break;
        case O_BUCKET:
            if (!cli_double(v, 0, 1e6, &a->bucket_mb))
                return cli_usage("train", "--bucket-mb takes a size in MB >= 0, not '%s'", v);
            break;
        case O_FIT:
            if (!cli_fit(v, &a->fit))
                return cli_usage("train", "--fit takes crop, stretch or digit, not '%s'", v);
            break;
        case O_CACHE: a->cache = v; break;
        case O_VAL_SPLIT:
        case O_TEST_SPLIT: {
            double f;
            if (!cli_double(v, 0, 0.9, &f))
                return cli_usage("train", "--%s takes a fraction in [0, 0.9], not '%s'",
                                 c == O_VAL_SPLIT ? "val-split" : "test-split", v);
            if (c == O_VAL_SPLIT)
                a->val_split = f, a->val_split_given = 1;
            else
                a->test_split = f, a->test_split_given = 1;
            break;
        }
        case O_SKIP: a->skip_unreadable = 1; break;
        case O_DATA: a->data = v; break;
        case O_OUT: a->out = v; break;
        case O_LOG: a->log = v; break;
        case O_RESUME: a->resume = v; break;
        case O_QUIET: a->quiet = 1; break;
        case O_FORCE: a->force = 1; break;
        case O_VERBOSE: a->verbose = 1; break;
        case O_LOG_EVERY:
            if (!cli_double(v, 1e-4, 1, &a->log_every))
                return cli_usage("train",
                                 "--log-every takes a fraction of an epoch in (0, 1], not '%s'", v);
            break;
        case O_TEST_EVERY:
            if (!cli_double(v, 1e-6, 1000, &a->test_every))
                return cli_usage("train", "--test-every takes a number of epochs above 0, not '%s'",
                                 v);
            break;
        case O_STOP_AT:
            if (!cli_double(v, 1e-6, 1, &a->stop_at))
                return cli_usage("train",
                                 "--stop-at takes an accuracy above 0 and at most 1, not '%s'", v);
            break;
        case O_HELP: print_help(); return 0;
        case O_DOCTOR: a->doctor = 1; break;
        default: /* a recipe option: checked now, set once the recipe is known */
            if (cli_recipe_take("train", (size_t)(c - O_RECIPE), v, a->recipe))
                return EXIT_USAGE;
            break;
        }
    }
    if (a->cfg && a->resume)
        return cli_usage("train", "--resume takes the model from its file; leave out %s", a->cfg);
    if (a->stop_at > 0 && a->test_every <= 0)
        return cli_usage("train", "--stop-at needs --test-every");
    return GO_ON;
}

/* A training run: what it holds (job_free releases it) and what the hooks
 * see (r). */
typedef struct job {
    cn_model *model;
    char *default_out, *log_default; /* owned */
    const char *dir;                 /* the data directory */
    long n_val, n_limit;             /* the split: given, or the resumed model's */
    int dir_own;                     /* dir is the resumed model's own */
    int data_changed;                /* --data given, not the data resumed */
    cn_data all, train, val, test;   /* train and val are slices of all */
    int folder;                      /* folder data: test is a slice of all too */
    int split_folders;               /* folder data in train/ (val/, test/) folders */
    cli_folder_opts fo;              /* and how it was read */
    int start_epoch;                 /* where this run started */
    uint64_t start_step;
    cn_comm comm; /* the workers of a data-parallel run (solo: rank 0 of 1) */
    run r;
} job;

static void job_free(job *j)
{
    cli_doctor_log_close(j->r.doctor);
    if (j->r.log)
        fclose(j->r.log);
    if (!j->folder)
        cn_data_free(&j->test);
    cn_data_free(&j->all);
    cn_model_free(j->model);
    free(j->default_out);
    free(j->log_default);
}

/* Resumes the model file a->resume with the recipe options given, refusing
 * those that cannot change: 0 or the exit status. */
static int resume_model(const args *a, job *j)
{
    cn_device dev = cli_device(a->threads);
    if (cn_model_load(a->resume, &dev, &j->model))
        return cli_lib_error();
    cn_train_opts *o = cn_model_opts(j->model), want = *o;
    if (apply(a->recipe, &want))
        return cli_lib_error();
    if (want.batch != o->batch && cn_model_state(j->model)->step != 0)
        return cli_usage("train", "%s stopped inside an epoch: resume it with its batch size %d",
                         a->resume, o->batch);
    if (want.optimizer != o->optimizer)
        return cli_usage("train",
                         "--optimizer cannot change when resuming: %s keeps the "
                         "state of %s",
                         a->resume, cn_optimizer_name(o->optimizer));
    if (given_for(a->recipe, "seed"))
        return cli_usage("train", "--seed cannot change when resuming: the run keeps its own");
    *o = want;
    return 0;
}

/* A new model from the description a->cfg (the built-in one when NULL) and
 * the recipe options given: 0 or the exit status. */
static int new_model(const args *a, job *j)
{
    cn_spec *spec;
    if (cli_load_spec(a->cfg, &spec))
        return cli_lib_error();
    cn_train_opts o;
    cn_spec_train_opts(spec, &o);
    cn_status st = apply(a->recipe, &o);
    cn_device dev = cli_device(a->threads);
    if (!st)
        st = cn_model_create(spec, &o, &dev, &j->model);
    cn_spec_free(spec);
    if (st)
        return cli_lib_error();
    j->default_out = derived_name(a->cfg ? a->cfg : "mnist.cfg", ".safetensors");
    return j->default_out ? 0 : cli_error("out of memory");
}

/* Whether the directory of the model file out takes it: better to know now
 * than after an epoch of training (the save itself reports what goes wrong
 * later).  0 or the exit status. */
static int check_out_dir(const char *out)
{
    char *out_dir = malloc(strlen(out) + 2);
    if (!out_dir)
        return cli_error("out of memory");
    strcpy(out_dir, out);
    char *slash = strrchr(out_dir, '/');
    if (!slash)
        strcpy(out_dir, ".");
    else
        slash[slash == out_dir] = '\0';
    int rc = 0;
    if (access(out_dir, W_OK | X_OK) != 0)
        rc = cli_error("cannot write the model file %s: %s: %s", out, out_dir, strerror(errno));
    free(out_dir);
    return rc;
}

/* Whether the model file at path holds another network than net (other
 * tensors or shapes): a file that is not a model does not count. */
static int holds_other_network(const char *path, const cn_net *net)
{
    cn_device one = {"cpu", 0, 1};
    cn_model *old;
    if (access(path, F_OK) != 0 || cn_model_load(path, &one, &old) != CN_OK)
        return 0;
    const cn_net *o = cn_model_net(old);
    int other = cn_net_num_tensors(o) != cn_net_num_tensors(net);
    for (size_t i = 0; !other && i < cn_net_num_tensors(net); i++) {
        cn_tensor_info a, b;
        cn_net_tensor(net, i, &a);
        cn_net_tensor(o, i, &b);
        other = strcmp(a.name, b.name) != 0 || a.ndim != b.ndim ||
                memcmp(a.dims, b.dims, sizeof a.dims) != 0;
    }
    cn_model_free(old);
    return other;
}

/* The model, new or resumed, and the files it is written to: 0 or the exit
 * status. */
static int open_model(const args *a, job *j)
{
    int rc = a->resume ? resume_model(a, j) : new_model(a, j);
    if (rc)
        return rc;
    if (j->comm.allreduce_start)
        j->comm.bucket = (size_t)(a->bucket_mb * 1e6 / sizeof(float));
    if (j->comm.size > 1 && cn_model_set_comm(j->model, &j->comm))
        return cli_lib_error();
    cn_model_set_watch(j->model, a->doctor);
    j->r.out = a->out ? a->out : a->resume ? a->resume : j->default_out;
    if (!a->force && j->comm.rank == 0 && holds_other_network(j->r.out, cn_model_net(j->model)))
        return cli_error("%s holds a model of another network: --force to replace it, or -o "
                         "another file",
                         j->r.out);
    j->log_default = cli_log_name(j->r.out);
    j->r.log_path = a->log ? a->log : j->log_default;
    if (!j->r.log_path)
        return cli_error("out of memory");
    return j->comm.rank == 0 ? check_out_dir(j->r.out) : 0;
}

/* A whole number from the model's note key, or dflt. */
static long note_long(const cn_model *m, const char *key, long dflt)
{
    const char *v = cn_model_info(m, key);
    long n;
    return v && cli_int(v, 0, 100000000, &n) ? n : dflt;
}

/* The class names names[0..k) as a JSON array (malloc'd), or NULL. */
static char *names_json(const char *const *names, size_t k)
{
    size_t len = 3;
    for (size_t i = 0; names && i < k; i++)
        len += 6 * strlen(names[i]) + 3;
    char *out = names ? malloc(len) : NULL;
    if (!out)
        return NULL;
    size_t at = 0;
    out[at++] = '[';
    for (size_t i = 0; i < k; i++) {
        if (i)
            out[at++] = ',';
        out[at++] = '"';
        for (const char *p = names[i]; *p; p++)
            if (*p == '"' || *p == '\\')
                at += (size_t)sprintf(out + at, "\\%c", *p);
            else
                out[at++] = *p;
        out[at++] = '"';
    }
    out[at++] = ']';
    out[at] = '\0';
    return out;
}

/* The notes of folder data: how they were read and split, and the classes. */
static cn_status note_folder(job *j)
{
    cn_model *m = j->model;
    char num[32];
    cn_status st = cn_model_set_info(m, "data.fit",
                                     j->fo.fit == CN_FIT_STRETCH ? "stretch"
                                     : j->fo.fit == CN_FIT_DIGIT ? "digit"
                                                                 : "crop");
    char cache[4096] = "", cwd[2048];
    if (j->fo.cache && j->fo.cache[0] != '/' && getcwd(cwd, sizeof cwd))
        snprintf(cache, sizeof cache, "%s/%s", cwd, j->fo.cache);
    else if (j->fo.cache)
        snprintf(cache, sizeof cache, "%s", j->fo.cache);
    if (!st)
        st = cn_model_set_info(m, "data.cache", cache);
    snprintf(num, sizeof num, "%g", j->fo.val_split);
    if (!st)
        st = cn_model_set_info(m, "data.val_split", num);
    snprintf(num, sizeof num, "%g", j->fo.test_split);
    if (!st)
        st = cn_model_set_info(m, "data.test_split", num);
    if (!st)
        st = cn_model_set_info(m, "data.skip_unreadable", j->fo.skip_unreadable ? "1" : "0");
    /* The order the parts are cut from: the cache's (convnet_vis.h). */
    if (!st)
        st = cn_model_set_info(m, "data.order",
                               j->split_folders ? "sorted (train/, val/, test/ folders)"
                                                : "shuffled with seed " CN_FOLDER_SEED_TEXT);
    return st;
}

/* Notes in the model file of the data it is trained on, so that --resume,
 * eval, report, viz and predict find them again: 0 or the exit status. */
static int note_data(job *j, const char *fingerprint)
{
    /* A model goes on only with data of the classes it knows. */
    const char *const *had = cn_model_class_names(j->model);
    size_t k = cn_net_classes(cn_model_net(j->model));
    char *was = names_json(had, k),
         *now = names_json((const char *const *)j->all.names, j->all.classes);
    int differ = was && now && strcmp(was, now) != 0;
    if (differ)
        cli_error("the classes of %s, %s, are not those the model was trained on, %s", j->dir, now,
                  was);
    free(was);
    free(now);
    if (differ)
        return 1;
    char dir[4096], num[32];
    size_t len = strlen(j->dir);
    /* Relative: under the working directory (as given when that is too long). */
    if (j->dir[0] == '/' || len + 2 > sizeof dir || !getcwd(dir, sizeof dir - 1 - len))
        snprintf(dir, sizeof dir, "%s", j->dir);
    else
        strcat(strcat(dir, "/"), j->dir);
    cn_model *m = j->model;
    cn_status st = cn_model_set_info(m, "data.dir", dir);
    if (!st) /* j->dir may have been the note replaced */
        j->dir = cn_model_info(m, "data.dir");
    snprintf(num, sizeof num, "%ld", j->n_limit);
    if (!st)
        st = cn_model_set_info(m, "data.limit", num);
    snprintf(num, sizeof num, "%ld", j->n_val);
    if (!st)
        st = cn_model_set_info(m, "data.val", num);
    if (!st)
        st = cn_model_set_info(m, "data.fingerprint", fingerprint);
    if (!st)
        st = cn_model_set_info(m, "data.kind", cli_data_kind(&j->all));
    if (!st && j->folder)
        st = note_folder(j);
    /* the data's class names (folder names, classes.txt) go with the model */
    if (!st && j->all.names && j->all.classes == cn_net_classes(cn_model_net(m)))
        st = cn_model_set_class_names(m, (const char *const *)j->all.names);
    return st ? cli_lib_error() : 0;
}

/* Folder data (a folder of pictures or a CSV list): read (the cache built
 * or found) and cut into training, validation and test parts, as the
 * options or the resumed model's notes say: 0 or the exit status. */
static int load_folder_data(const args *a, job *j)
{
    const cn_model *m = j->model;
    cli_folder_opts *o = &j->fo;
    if (a->resume)
        cli_folder_from_model(m, o);
    else
        cli_folder_defaults(o);
    if (a->fit != CN_FIT_AUTO)
        o->fit = a->fit;
    if (a->cache)
        o->cache = a->cache;
    if (a->val_split_given)
        o->val_split = a->val_split, o->val = -1;
    if (a->test_split_given)
        o->test_split = a->test_split;
    if (a->val_given)
        o->val = a->val;
    if (a->skip_unreadable)
        o->skip_unreadable = 1;
    j->folder = 1;
    cn_net *net = cn_model_net(j->model);
    cn_folder_info info;
    cli_parts parts;
    if (cli_load_folder(j->dir, cn_net_input_shape(net), o, stdout, &j->all, &parts, &info))
        return cli_lib_error();
    j->split_folders = info.split_folders;
    fflush(stdout);
    const cn_data *all = &j->all;
    char *names = names_json((const char *const *)all->names, all->classes);
    if (all->classes != cn_net_classes(net)) {
        int rc = cli_error("the network has %zu outputs ([net] classes = %zu) but %s has %zu "
                           "classes: %s",
                           cn_net_classes(net), cn_net_classes(net), j->dir, all->classes,
                           names ? names : "");
        free(names);
        return rc;
    }
    free(names);
    size_t n_train = parts.count[0];
    if (j->n_limit && (size_t)j->n_limit < n_train)
        n_train = (size_t)j->n_limit;
    j->train = cn_data_slice(all, parts.first[0], n_train);
    j->val = cn_data_slice(all, parts.first[1], parts.count[1]);
    j->test = cn_data_slice(all, parts.first[2], parts.count[2]);
    j->n_val = (long)parts.count[1];
    o->val = j->n_val; /* noted: the same split again, whatever val_split gave */
    if (a->test_every > 0 && j->test.n == 0)
        return cli_error("--test-every: %s has no test images", j->dir);
    const char *fp_was = a->resume ? cn_model_info(m, "data.fingerprint") : NULL;
    if (fp_was && strcmp(fp_was, info.key) != 0) {
        if (!a->data)
            return cli_error("the pictures in %s are not those %s was trained on (key %s; the "
                             "model's %s): give --data %s to go on with them anyway",
                             j->dir, a->resume, info.key, fp_was, j->dir);
        j->data_changed = 1;
    }
    return note_data(j, info.key);
}

/* The training set split into training and validation images, and the test
 * set for --test-every: 0 or the exit status.  A resumed model trains on
 * its own data (directory, --limit, --val) unless told otherwise; data that
 * changed since are refused unless --data names them. */
static int load_data(const args *a, job *j)
{
    const cn_model *m = j->model;
    j->n_val = a->val;
    j->n_limit = a->limit;
    if (a->resume) {
        j->dir = cli_model_data_dir(m, a->data, &j->dir_own);
        if (!a->val_given)
            j->n_val = note_long(m, "data.val", a->val);
        if (!a->limit_given)
            j->n_limit = note_long(m, "data.limit", 0);
    } else {
        j->dir = cli_data_dir(a->data);
    }
    if (cli_is_folder_data(j->dir))
        return load_folder_data(a, j);
    if (cn_data_load(j->dir, "train", &j->all))
        return cli_lib_error();
    cn_data *all = &j->all;
    if ((size_t)j->n_val >= all->n)
        return cli_error("--val %ld leaves no training images (the file has %zu)", j->n_val,
                         all->n);
    size_t n_train = all->n - (size_t)j->n_val;
    j->train = cn_data_slice(
        all, 0, j->n_limit && (size_t)j->n_limit < n_train ? (size_t)j->n_limit : n_train);
    j->val = cn_data_slice(all, all->n - (size_t)j->n_val, (size_t)j->n_val);
    char fp[17];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)cn_data_fingerprint(all));
    const char *was = a->resume ? cn_model_info(m, "data.fingerprint") : NULL;
    if (was && strcmp(was, fp) != 0) {
        if (!a->data)
            return cli_error("the training data in %s are not those %s was trained on "
                             "(fingerprint %s; the model's %s): give --data %s to go on with "
                             "them anyway",
                             j->dir, a->resume, fp, was, j->dir);
        j->data_changed = 1;
    }
    if (a->test_every > 0 && cn_data_load(j->dir, "test", &j->test))
        return cli_lib_error();
    return note_data(j, fp);
}

/* The hooks' state, and the CSV log (appended to when resuming after the
 * first epoch): 0 or the exit status. */
static int open_log(const args *a, job *j)
{
    run *r = &j->r;
    r->rank = j->comm.rank;
    r->size = j->comm.size;
    r->tty = isatty(STDERR_FILENO);
    r->quiet = a->quiet || r->rank != 0;
    r->verbose = a->verbose;
    r->log_parts = (int)(1.0 / a->log_every + 0.5);
    r->saved_epoch = -1;
    if (r->rank != 0) /* the other workers keep no log and test nothing */
        return 0;
    if (a->test_every > 0) {
        r->model = j->model;
        r->test = &j->test;
        r->test_every = a->test_every;
        r->stop_at = a->stop_at;
        r->checked_at = cn_model_state(j->model)->global_step;
    }
    const cn_train_state *s = cn_model_state(j->model);
    int appending = a->resume && s->epoch > 0;
    j->start_epoch = s->epoch;
    j->start_step = s->step;
    r->log = fopen(r->log_path, appending ? "a" : "w");
    if (!r->log)
        return cli_error("cannot write the log %s: %s", r->log_path, strerror(errno));
    if (!appending)
        fprintf(r->log,
                "epoch,step,train_loss,train_accuracy,val_loss,val_accuracy,lr,images_per_s,"
                "elapsed_s\n");
    if (a->doctor && !(r->doctor = cli_doctor_log_open(r->log_path, j->model, appending)))
        return 1;
    return 0;
}

/* What is about to be trained, on what, and how. */
static void print_start(const args *a, const job *j)
{
    cn_model *model = j->model;
    cn_net *net = cn_model_net(model);
    const cn_train_opts *o = cn_model_opts(model);
    const cn_train_state *s = cn_model_state(model);
    size_t params;
    uint64_t macs;
    cli_totals(net, &params, &macs);
    char pbuf[32], mbuf[32];
    printf("%s %s: %s parameters, %s multiply-adds per image\n",
           a->resume ? "resuming" : "training",
           a->resume ? a->resume : cn_spec_source(cn_model_spec(model)),
           cli_count(params, pbuf, sizeof pbuf), cli_count(macs, mbuf, sizeof mbuf));
    char aug[256], extras[128];
    cli_augmentation(o, "; ", aug, sizeof aug);
    cli_recipe_extras(o, extras, sizeof extras);
    printf("data %s: %zu training, %zu validation images; %d epoch%s of batch %d, %s, lr %g, "
           "%s %g, decay %g%s%s; %d thread%s, %s kernels\n",
           j->dir, j->train.n, j->val.n, o->epochs, o->epochs == 1 ? "" : "s", o->batch,
           cn_optimizer_name(o->optimizer), o->lr,
           o->optimizer == CN_OPT_SGD ? "momentum" : "beta1", o->momentum, o->decay, extras, aug,
           cn_net_threads(net), cn_net_threads(net) == 1 ? "" : "s", cn_net_isa(net));
    if (j->comm.size > 1)
        printf("data-parallel over %d workers (%s): %d images of each batch per worker; "
               "gradients exchanged %s\n",
               j->comm.size, cli_comm_kind(), o->batch / j->comm.size,
               j->comm.bucket ? "in buckets during the backward pass" : "after the backward pass");
    if (a->resume)
        printf("continuing at epoch %d, batch %llu%s\n", s->epoch + 1, (unsigned long long)s->step,
               j->data_changed ? "; on other data than the model was trained on so far, as "
                                 "--data asks"
               : j->dir_own    ? " on the data it was trained on"
                               : "");
    fflush(stdout);
}

/* Trains, with Ctrl-C and SIGTERM asking training to stop (stop_flag). */
static cn_status train_with_signals(job *j)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    const char *at = getenv("CONVNET_TEST_SIGTERM_AT");
    if (!at || !cli_int(at, 1, LONG_MAX, &sigterm_at))
        sigterm_at = 0;
    at = getenv("CONVNET_TEST_PAUSE_AT");
    if (!at || !cli_int(at, 1, LONG_MAX, &pause_at))
        pause_at = 0;
    cn_train_hooks hooks = {&j->r, on_batch, on_epoch, &stop_flag};
    cn_status st = cn_model_train(j->model, &j->train, j->val.n ? &j->val : NULL, &hooks);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (j->r.tty && !j->r.quiet)
        fputs("\r\033[K", stderr);
    return st;
}

/* After a loss or weights that became NaN or infinite: where the last good
 * model is. */
static void report_divergence(const args *a, const job *j)
{
    const char *out = j->r.out, *resume = a->resume;
    if (j->r.saved_epoch > 0)
        fprintf(stderr,
                "convnet: the last good model (after epoch %d) is in %s: continue "
                "from it with --resume and a smaller --lr\n",
                j->r.saved_epoch, out);
    else if (resume && strcmp(out, resume) == 0 && j->start_step == 0)
        fprintf(stderr,
                "convnet: %s still holds the model as it was (after epoch %d): "
                "continue from it with a smaller --lr\n",
                out, j->start_epoch);
    else if (resume && strcmp(out, resume) == 0)
        fprintf(stderr,
                "convnet: %s still holds the model as it was (epoch %d, batch %llu): "
                "continue from it with a smaller --lr\n",
                out, j->start_epoch + 1, (unsigned long long)j->start_step);
    else if (access(out, F_OK) == 0)
        fprintf(stderr, "convnet: %s was left as it was\n", out);
    else
        fprintf(stderr, "convnet: no epoch completed, so no model was written\n");
}

/* How training ended (st), saving the model where it stopped early: the
 * exit status. */
static int report_end(const args *a, job *j, cn_status st)
{
    const run *r = &j->r;
    const cn_train_state *s = cn_model_state(j->model);
    int rc = 0;
    if (r->rank != 0) /* worker 0 saves and says how it ended */
        return st == CN_OK ? 0 : st == CN_ERR_STOPPED && stop_flag ? 128 + stop_flag : 1;
    if (st == CN_ERR_STOPPED && r->reached) {
        printf("reached %.2f%% test accuracy after %.2f s of training (%.2f epochs; %.2f s of "
               "evaluation not counted)\n",
               100 * r->reached_acc, r->reached_s,
               (double)s->global_step /
                   (double)(j->train.n / (size_t)cn_model_opts(j->model)->batch),
               r->eval_s);
        if (cn_model_save(j->model, r->out))
            rc = cli_lib_error();
    } else if (st == CN_OK) {
        if (r->stop_at > 0)
            printf("did not reach %.2f%% test accuracy\n", 100 * r->stop_at);
        printf("done: %d epoch%s; model written to %s, log to %s\n", s->epoch,
               s->epoch == 1 ? "" : "s", r->out, r->log_path);
    } else if (st == CN_ERR_STOPPED) {
        int sig = stop_flag;
        if (cn_model_save(j->model, r->out) != CN_OK) {
            rc = cli_lib_error();
        } else {
            fprintf(stderr,
                    "convnet: stopped by %s at epoch %d, batch %llu; saved to %s\n"
                    "continue with: convnet train --resume %s\n",
                    sig == SIGTERM ? "SIGTERM" : "SIGINT (Ctrl-C)", s->epoch + 1,
                    (unsigned long long)s->step, r->out, r->out);
            rc = 128 + (sig ? sig : SIGINT);
        }
    } else {
        rc = cli_lib_error();
        if (st == CN_ERR_NUMERIC)
            report_divergence(a, j);
    }
    if (a->verbose)
        printf("peak memory: %.1f MiB resident%s\n", peak_mib(),
               j->model ? device_peak(j->model) : "");
    return rc;
}

/* The workers of a data-parallel run start together or not at all: rc is
 * this one's verdict (0: ready); returns 0 when every worker is ready. */
static int all_ready(const job *j, int rc)
{
    if (j->comm.size == 1)
        return rc;
    float failed = rc != 0;
    if (j->comm.allreduce(j->comm.user, &failed, 1))
        return 1;
    if (!rc && failed > 0 && j->comm.rank == 0)
        fprintf(stderr,
                "convnet: error: %g of the %d workers could not start (their messages "
                "say why)\n",
                failed, j->comm.size);
    return rc ? rc : failed > 0;
}

int cmd_train(int argc, char **argv)
{
    job j = {0};
    int rc = cli_comm_open(&argc, &argv, &j.comm);
    if (rc)
        return rc;
    cli_set_worker(j.comm.rank, j.comm.size);
    /* Only worker 0 speaks: the others' usage messages would repeat its own,
     * their progress is its progress; their errors still show. */
    int err = -1;
    if (j.comm.rank != 0) {
        if (!freopen("/dev/null", "w", stdout))
            return cli_error("cannot silence the output of worker %d", j.comm.rank);
        fflush(stderr);
        err = dup(STDERR_FILENO);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, STDERR_FILENO);
            close(null);
        }
    }
    args a;
    rc = parse_args(argc, argv, &a);
    if (err >= 0) {
        fflush(stderr);
        dup2(err, STDERR_FILENO);
        close(err);
    }
    if (rc == GO_ON) {
        if (!(rc = open_model(&a, &j)) && !(rc = load_data(&a, &j)))
            rc = open_log(&a, &j);
        if (!(rc = all_ready(&j, rc))) {
            print_start(&a, &j);
            rc = report_end(&a, &j, train_with_signals(&j));
        }
    }
    job_free(&j);
    cli_comm_close();
    return rc;
}
