/* test_fault.c - work is never lost: a save killed between writing and
 * renaming, write errors at every step of a save (write, fsync, close,
 * rename), a missing directory, NaN or infinite weights (never saved, never
 * kept at the end of an epoch), divergence after a good checkpoint, and
 * training memory that does not grow with the epochs.
 *
 * Faults are injected without a hook in the library: the test binary is
 * linked with -Wl,--wrap=write,--wrap=fsync,--wrap=close,--wrap=rename
 * (Makefile), so the library's calls to those functions come to the
 * __wrap_ functions below, which pass them on to the system (__real_) unless
 * a test has armed a fault.  Each test runs in its own process. */
#include "harness.h"
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

/* --------------------------------------------------------------- faults */

static struct {
    int write_errno;    /* write fails with this (0: it does not) */
    size_t write_chunk; /* > 0: write takes at most this many bytes a call */
    int fsync_errno, close_errno, rename_errno;
    int kill_at_rename; /* SIGKILL this process when rename is called */
    int renames;        /* renames seen */
} fault;

ssize_t __real_write(int fd, const void *buf, size_t n);
int __real_fsync(int fd);
int __real_close(int fd);
int __real_rename(const char *from, const char *to);
ssize_t __wrap_write(int fd, const void *buf, size_t n);
int __wrap_fsync(int fd);
int __wrap_close(int fd);
int __wrap_rename(const char *from, const char *to);

ssize_t __wrap_write(int fd, const void *buf, size_t n)
{
    if (fault.write_errno) {
        errno = fault.write_errno;
        return -1;
    }
    if (fault.write_chunk && n > fault.write_chunk)
        n = fault.write_chunk;
    return __real_write(fd, buf, n);
}

int __wrap_fsync(int fd)
{
    if (fault.fsync_errno) {
        errno = fault.fsync_errno;
        return -1;
    }
    return __real_fsync(fd);
}

/* A failing close still releases the descriptor, as close(2) does. */
int __wrap_close(int fd)
{
    int r = __real_close(fd);
    if (fault.close_errno) {
        errno = fault.close_errno;
        return -1;
    }
    return r;
}

int __wrap_rename(const char *from, const char *to)
{
    fault.renames++;
    if (fault.kill_at_rename)
        raise(SIGKILL);
    if (fault.rename_errno) {
        errno = fault.rename_errno;
        return -1;
    }
    return __real_rename(from, to);
}

/* -------------------------------------------------------------- helpers */

static const char *SMALL = "[net]\nchannels=1\nheight=6\nwidth=6\nclasses=3\n"
                           "[train]\nbatch=4\nlr=0.05\nseed=9\n"
                           "[conv]\nfilters=2\nsize=3\n[relu]\n[maxpool]\n[fc]\noutputs=3\n"
                           "[softmax]\n";

static cn_model *model_of(const char *text)
{
    cn_spec *spec = th_spec(text);
    cn_model *m = NULL;
    if (spec && cn_model_create(spec, NULL, th_dev(1), &m) != CN_OK)
        th_fail(__FILE__, __LINE__, "%s", cn_last_error());
    cn_spec_free(spec);
    return m;
}

/* Whether path holds exactly the n bytes of want. */
static int same_bytes(const char *path, const unsigned char *want, size_t n)
{
    size_t size;
    unsigned char *b = th_read_file(path, &size);
    int same = b && size == n && memcmp(b, want, n) == 0;
    free(b);
    return same;
}

/* Whether path loads, and its weights are finite and those of want (when
 * not NULL). */
static int loads_as(const char *path, cn_model *want)
{
    cn_model *l;
    if (cn_model_load(path, th_dev(1), &l) != CN_OK) {
        th_fail(__FILE__, __LINE__, "%s does not load: %s", path, cn_last_error());
        return 0;
    }
    cn_net *net = cn_model_net(l);
    size_t n = cn_net_num_params(net);
    float *p = th_block(net, CN_PARAMS), *q = want ? th_block(cn_model_net(want), CN_PARAMS) : NULL;
    int ok = p && (!want || q);
    for (size_t i = 0; ok && i < n; i++)
        ok = isfinite(p[i]);
    if (want)
        ok = ok && n == cn_net_num_params(cn_model_net(want)) && memcmp(p, q, n * 4) == 0;
    free(p);
    free(q);
    cn_model_free(l);
    return ok;
}

/* Changes every weight a little: a model that saves differently. */
static void nudge(cn_model *m)
{
    cn_net *net = cn_model_net(m);
    for (size_t t = 0; t < cn_net_num_tensors(net); t++) {
        cn_tensor_info ti;
        if (cn_net_tensor(net, t, &ti) == CN_OK && ti.trainable)
            for (size_t i = 0; i < ti.count; i++)
                th_put(net, CN_PARAMS, ti.offset + i,
                       th_get(net, CN_PARAMS, ti.offset + i) + 0.25f);
    }
}

/* Sets the first weight of the last trainable tensor (saved, unlike
 * padding). */
static void set_last_weight(cn_model *m, float v)
{
    cn_net *net = cn_model_net(m);
    cn_tensor_info ti = {0};
    for (size_t t = 0; t < cn_net_num_tensors(net); t++) {
        cn_tensor_info u;
        if (cn_net_tensor(net, t, &u) == CN_OK && u.trainable)
            ti = u;
    }
    th_put(net, CN_PARAMS, ti.offset, v);
}

/* How many entries of dir start with prefix. */
static int count_prefixed(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

static cn_data synthetic(size_t n, uint64_t seed) { return th_bars(n, seed, 8); }

static const char *TINY = "[net]\nchannels=1\nheight=8\nwidth=8\nclasses=2\n"
                          "[train]\nepochs=1\nbatch=16\nlr=0.05\nmomentum=0.9\nseed=5\n"
                          "[conv]\nfilters=4\nsize=3\npad=1\n[relu]\n[maxpool]\n"
                          "[fc]\noutputs=8\n[relu]\n[fc]\noutputs=2\n[softmax]\n";

/* ----------------------------------------------------------------- tests */

/* A save killed after its temporary file is written and synced, before the
 * rename: the previous file is byte for byte what it was and loads; the
 * temporary file is complete but harms nothing, and the next save removes
 * it. */
static void save_killed_before_rename(void)
{
    cn_model *m = model_of(SMALL);
    CHECK(m);
    const char *path = th_path("killed.safetensors");
    CHECK_OK(cn_model_save(m, path));
    size_t n0;
    unsigned char *before = th_read_file(path, &n0);
    CHECK(before);
    cn_model *old = NULL;
    CHECK_OK(cn_model_load(path, th_dev(1), &old));

    nudge(m);
    if (strcmp(th_dev(1)->backend, "cuda") == 0) { /* CUDA does not work in a forked child */
        th_skip("the save is killed in a forked child, where CUDA cannot read the GPU's memory");
        cn_model_free(old);
        cn_model_free(m);
        free(before);
        return;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        fault.kill_at_rename = 1;
        cn_model_save(m, path);
        _exit(3); /* not reached: the rename kills */
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
              "the saving process was not killed at its rename (status %d)", status);
    CHECK(same_bytes(path, before, n0));
    CHECK(loads_as(path, old));

    /* The dead process's temporary file: complete (it loads, with the
     * nudged weights), left where it was written. */
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)pid);
    struct stat sb;
    CHECK_MSG(stat(tmp, &sb) == 0, "no temporary file %s", tmp);
    CHECK(loads_as(tmp, m));

    /* The next save replaces the file and removes the leftover. */
    CHECK_OK(cn_model_save(m, path));
    CHECK_MSG(stat(tmp, &sb) != 0 && errno == ENOENT, "%s was not removed", tmp);
    CHECK(loads_as(path, m));
    cn_model_free(old);
    cn_model_free(m);
    free(before);
}

/* A temporary file of a live process (this one's parent, say) is not
 * removed by a save. */
static void save_keeps_live_temporary_files(void)
{
    cn_model *m = model_of(SMALL);
    CHECK(m);
    const char *path = th_path("live.safetensors");
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getppid());
    FILE *f = fopen(tmp, "w");
    CHECK(f && fclose(f) == 0);
    CHECK_OK(cn_model_save(m, path));
    struct stat sb;
    CHECK(stat(tmp, &sb) == 0);
    unlink(tmp);
    cn_model_free(m);
}

/* A write, fsync, close or rename that fails (slot set to err). */
typedef struct fault_case {
    int *slot, err;
    const char *step, *reason; /* what the message must name */
} fault_case;

/* Each fault in turn: save(m, path) fails with CN_ERR_IO and a message that
 * names path, the step and the reason; path keeps its previous bytes and no
 * temporary file (tmp_prefix*) is left in dir. */
static void check_faults(cn_status (*save)(const cn_model *, const char *), const char *what,
                         const cn_model *m, const char *dir, const char *path,
                         const char *tmp_prefix, const fault_case *cases, size_t n,
                         const unsigned char *before, size_t n0)
{
    for (size_t c = 0; c < n; c++) {
        *cases[c].slot = cases[c].err;
        cn_status st = save(m, path);
        *cases[c].slot = 0;
        const char *msg = cn_last_error();
        CHECK_MSG(st == CN_ERR_IO, "case %zu: %s returned %s", c, what, cn_status_name(st));
        CHECK_MSG(th_contains(msg, path) && th_contains(msg, cases[c].step) &&
                      th_contains(msg, cases[c].reason),
                  "case %zu: the message lacks the file, '%s' or '%s': %s", c, cases[c].step,
                  cases[c].reason, msg);
        CHECK_MSG(same_bytes(path, before, n0), "case %zu: the previous file changed", c);
        CHECK_MSG(count_prefixed(dir, tmp_prefix) == 0, "case %zu: a temporary file was left", c);
    }
}

/* Every step of a save that can fail is checked: the save reports the file,
 * the step and the reason; the previous file is intact and loads; no
 * temporary file is left behind. */
static void save_errors_at_every_step(void)
{
    cn_model *m = model_of(SMALL);
    CHECK(m);
    const char *dir = th_path("steps");
    CHECK(mkdir(dir, 0755) == 0);
    char path[700];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK_OK(cn_model_save(m, path));
    size_t n0;
    unsigned char *before = th_read_file(path, &n0);
    CHECK(before);
    cn_model *old = NULL;
    CHECK_OK(cn_model_load(path, th_dev(1), &old));
    nudge(m);

    const fault_case cases[] = {
        {&fault.write_errno, ENOSPC, "writing", "No space left on device"},
        {&fault.write_errno, EFBIG, "writing", "File too large"},
        {&fault.fsync_errno, EIO, "writing", "Input/output error"},
        {&fault.fsync_errno, ENOSPC, "writing", "No space left on device"},
        {&fault.close_errno, EIO, "writing", "Input/output error"},
        {&fault.close_errno, EDQUOT, "writing", "quota exceeded"},
        {&fault.rename_errno, EXDEV, "rename", "Invalid cross-device link"},
    };
    check_faults(cn_model_save, "the save", m, dir, path, "model.safetensors.tmp-", cases,
                 sizeof cases / sizeof cases[0], before, n0);
    CHECK(loads_as(path, old));

    /* Short writes are not errors: the file comes out whole. */
    fault.write_chunk = 1000;
    CHECK_OK(cn_model_save(m, path));
    fault.write_chunk = 0;
    CHECK(loads_as(path, m));

    /* A missing directory. */
    char lost[700];
    snprintf(lost, sizeof lost, "%s/no/such/dir/model.safetensors", dir);
    CHECK_ERR(cn_model_save(m, lost), CN_ERR_IO);
    CHECK(th_contains(cn_last_error(), lost) &&
          th_contains(cn_last_error(), "No such file or directory"));
    cn_model_free(old);
    cn_model_free(m);
    free(before);
}

/* Weights that are NaN or infinite are never written over a good file. */
static void save_refuses_nonfinite_weights(void)
{
    cn_model *m = model_of(SMALL);
    CHECK(m);
    const char *path = th_path("nan.safetensors");
    CHECK_OK(cn_model_save(m, path));
    size_t n0;
    unsigned char *before = th_read_file(path, &n0);
    const float bad[] = {NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 3; i++) {
        set_last_weight(m, bad[i]);
        CHECK_ERR(cn_model_save(m, path), CN_ERR_NUMERIC);
        CHECK(th_contains(cn_last_error(), "NaN or infinite") &&
              th_contains(cn_last_error(), path));
        CHECK(same_bytes(path, before, n0));
    }
    set_last_weight(m, 0);
    const float nan = NAN; /* the momentum is saved too */
    m->be->upload(m->be, m->optim.state, &nan, sizeof nan);
    CHECK_ERR(cn_model_save(m, path), CN_ERR_NUMERIC);
    CHECK(th_contains(cn_last_error(), "optim."));
    CHECK(same_bytes(path, before, n0));
    free(before);
    cn_model_free(m);
}

typedef struct saver {
    cn_model *model;
    const char *path;
    int epochs_saved;
    int poison_at_end; /* make a weight infinite after the epoch's last batch */
} saver;

static cn_status save_epoch(void *user, cn_model *m, const cn_progress *p)
{
    (void)p;
    saver *s = user;
    s->epochs_saved++;
    return cn_model_save(m, s->path);
}

static cn_status poison(void *user, const cn_progress *p)
{
    saver *s = user;
    if (s->poison_at_end && p->step == p->steps)
        th_put(cn_model_net(s->model), CN_PARAMS, 0, INFINITY);
    return CN_OK;
}

/* The loss of the epoch's last batch was finite, but its update was not:
 * the epoch does not end (no checkpoint), training stops with
 * CN_ERR_NUMERIC, and the file keeps the last good epoch. */
static void nonfinite_weights_end_no_epoch(void)
{
    cn_data train = synthetic(160, 1);
    cn_model *m = model_of(TINY);
    CHECK(m);
    saver sv = {m, th_path("poison.safetensors"), 0, 0};
    cn_train_hooks hooks = {&sv, poison, save_epoch, NULL};
    CHECK_OK(cn_model_train(m, &train, NULL, &hooks));
    CHECK(sv.epochs_saved == 1);
    size_t n0;
    unsigned char *before = th_read_file(sv.path, &n0);
    CHECK(before);
    cn_model_opts(m)->epochs = 2;
    sv.poison_at_end = 1;
    cn_status st = cn_model_train(m, &train, NULL, &hooks);
    CHECK_MSG(st == CN_ERR_NUMERIC, "got %s", cn_status_name(st));
    CHECK(th_contains(cn_last_error(), "epoch 2") && th_contains(cn_last_error(), "--lr"));
    CHECK(sv.epochs_saved == 1);
    CHECK(cn_model_state(m)->epoch == 1);
    CHECK(same_bytes(sv.path, before, n0));
    CHECK(loads_as(sv.path, NULL));
    free(before);
    cn_model_free(m);
    cn_data_free(&train);
}

/* A good epoch is saved; then a learning rate far too large makes the loss
 * overflow: training stops with CN_ERR_NUMERIC, says what to try, and the
 * checkpoint is the good epoch's, byte for byte, and loads with finite
 * weights. */
static void divergence_keeps_last_checkpoint(void)
{
    cn_data train = synthetic(160, 2);
    cn_model *m = model_of(TINY);
    CHECK(m);
    saver sv = {m, th_path("div.safetensors"), 0, 0};
    cn_train_hooks hooks = {&sv, NULL, save_epoch, NULL};
    CHECK_OK(cn_model_train(m, &train, NULL, &hooks));
    size_t n0;
    unsigned char *before = th_read_file(sv.path, &n0);
    CHECK(before);
    cn_train_opts *o = cn_model_opts(m);
    o->epochs = 30;
    o->lr = 100; /* lr * decay = 50: the weights grow 49-fold a step */
    o->decay = 0.5;
    o->momentum = 0;
    cn_status st = cn_model_train(m, &train, NULL, &hooks);
    CHECK_MSG(st == CN_ERR_NUMERIC, "got %s", cn_status_name(st));
    CHECK(th_contains(cn_last_error(), "NaN") || th_contains(cn_last_error(), "infinite"));
    CHECK(th_contains(cn_last_error(), "ten times smaller (--lr 10)"));
    CHECK_MSG(sv.epochs_saved == 1, "%d epochs saved", sv.epochs_saved);
    CHECK(same_bytes(sv.path, before, n0));
    CHECK(loads_as(sv.path, NULL));
    free(before);
    cn_model_free(m);
    cn_data_free(&train);
}

#ifdef __GLIBC__
typedef struct meter {
    size_t in_use[80];
    int epochs;
    const char *path;
} meter;

/* After each epoch (and its checkpoint): the bytes malloc has handed out
 * and not had back. */
static cn_status measure(void *user, cn_model *m, const cn_progress *p)
{
    (void)p;
    meter *mt = user;
    cn_status st = cn_model_save(m, mt->path);
    struct mallinfo2 mi = mallinfo2();
    if (mt->epochs < 80)
        mt->in_use[mt->epochs++] = mi.uordblks + mi.hblkhd;
    return st;
}
#endif

/* Training memory does not grow with the epochs.  glibc keeps up to 7 freed
 * blocks of each small size in a per-thread cache that mallinfo2 counts as
 * in use, and the cache fills over the first epochs (measured: about 1.3 KB
 * an epoch for 10 epochs, then flat, give or take 272 bytes).  So after 20
 * epochs of warm-up (each with validation and a checkpoint), the heap in use
 * must stay within 1 KiB for 40 more: a leak of 32 bytes an epoch fails. */
static void memory_does_not_grow_with_epochs(void)
{
#ifdef __GLIBC__
    cn_data train = synthetic(320, 3), val = synthetic(64, 4);
    cn_model *m = model_of(TINY);
    CHECK(m);
    cn_model_opts(m)->epochs = 60;
    meter mt = {{0}, 0, th_path("mem.safetensors")};
    cn_train_hooks hooks = {&mt, NULL, measure, NULL};
    CHECK_OK(cn_model_train(m, &train, &val, &hooks));
    CHECK(mt.epochs == 60);
    for (int e = 20; e < 60; e++)
        CHECK_MSG(mt.in_use[e] <= mt.in_use[19] + 1024,
                  "heap in use after epoch %d: %zu bytes; after epoch 20: %zu", e + 1, mt.in_use[e],
                  mt.in_use[19]);
    cn_model_free(m);
    cn_data_free(&train);
    cn_data_free(&val);
#else
    CHECK_MSG(0, "this test reads glibc's mallinfo2");
#endif
}

/* The ONNX export writes as model files do: a failure of write, fsync,
 * close or rename leaves the previous file as it was, removes the temporary
 * file and says which file, which step and why; short writes are not
 * errors. */
static void onnx_save_errors_at_every_step(void)
{
    cn_model *m = model_of(SMALL);
    CHECK(m);
    const char *dir = th_path("onnx");
    CHECK(mkdir(dir, 0755) == 0);
    char path[700];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    CHECK_OK(cn_model_save_onnx(m, path));
    size_t n0;
    unsigned char *before = th_read_file(path, &n0);
    CHECK(before);
    nudge(m);
    const fault_case cases[] = {
        {&fault.write_errno, ENOSPC, "writing", "No space left on device"},
        {&fault.fsync_errno, EIO, "writing", "Input/output error"},
        {&fault.close_errno, EDQUOT, "writing", "quota exceeded"},
        {&fault.rename_errno, EXDEV, "rename", "Invalid cross-device link"},
    };
    check_faults(cn_model_save_onnx, "the export", m, dir, path, "model.onnx.tmp-", cases,
                 sizeof cases / sizeof cases[0], before, n0);
    fault.write_chunk = 100;
    CHECK_OK(cn_model_save_onnx(m, path));
    fault.write_chunk = 0;
    size_t n1;
    unsigned char *after = th_read_file(path, &n1);
    CHECK(after && n1 == n0 && memcmp(after, before, n0) != 0);
    free(after);
    free(before);
    cn_model_free(m);
}

const th_test th_fault[] = {
    {"fault/save_killed_before_rename", save_killed_before_rename},
    {"fault/save_keeps_live_temporary_files", save_keeps_live_temporary_files},
    {"fault/save_errors_at_every_step", save_errors_at_every_step},
    {"fault/save_refuses_nonfinite_weights", save_refuses_nonfinite_weights},
    {"fault/nonfinite_weights_end_no_epoch", nonfinite_weights_end_no_epoch},
    {"fault/divergence_keeps_last_checkpoint", divergence_keeps_last_checkpoint},
    {"fault/memory_does_not_grow_with_epochs", memory_does_not_grow_with_epochs},
    {"fault/onnx_save_errors_at_every_step", onnx_save_errors_at_every_step},
    {NULL, NULL},
};
