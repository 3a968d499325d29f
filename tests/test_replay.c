/* test_replay.c - every file of the fuzz corpora (fuzz/corpus/TARGET: the
 * seeds and the inputs fuzzing found) through its target's own entry point,
 * compiled into this program with the normal compiler (the Makefile renames
 * fuzz/fuzz_TARGET.c's LLVMFuzzerTestOneInput cn_fuzz_TARGET_one), so that
 * make test, not only make fuzz-smoke, replays them.  Each file runs in a
 * child process of its own: a crash, a broken promise of the target's checks
 * (which abort) or a hang fails the test and names the file; a clean refusal
 * passes. */
#include "harness.h"

#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef int (*fz_one)(const uint8_t *data, size_t size);
typedef int (*fz_init)(int *argc, char ***argv);

int cn_fuzz_cfg_one(const uint8_t *data, size_t size);
int cn_fuzz_cifar_one(const uint8_t *data, size_t size);
int cn_fuzz_cifar_init(int *argc, char ***argv);
int cn_fuzz_idx_one(const uint8_t *data, size_t size);
int cn_fuzz_image_one(const uint8_t *data, size_t size);
int cn_fuzz_log_one(const uint8_t *data, size_t size);
int cn_fuzz_safetensors_one(const uint8_t *data, size_t size);
int cn_fuzz_csv_one(const uint8_t *data, size_t size);
int cn_fuzz_datacache_one(const uint8_t *data, size_t size);

static const struct target {
    const char *name;
    fz_one one;
    fz_init init; /* LLVMFuzzerInitialize, where the target has one */
} targets[] = {
    {"cfg", cn_fuzz_cfg_one, NULL}, {"cifar", cn_fuzz_cifar_one, cn_fuzz_cifar_init},
    {"idx", cn_fuzz_idx_one, NULL}, {"image", cn_fuzz_image_one, NULL},
    {"log", cn_fuzz_log_one, NULL}, {"safetensors", cn_fuzz_safetensors_one, NULL},
    {"csv", cn_fuzz_csv_one, NULL}, {"datacache", cn_fuzz_datacache_one, NULL},
};
enum { NTARGETS = sizeof targets / sizeof targets[0] };

static const struct target *find(const char *name)
{
    for (size_t i = 0; i < NTARGETS; i++)
        if (strcmp(targets[i].name, name) == 0)
            return &targets[i];
    return NULL;
}

/* Runs file through t in a child process: 1 when it returned.  Adds its
 * size to *bytes. */
static int replay(const struct target *t, const char *path, size_t *bytes)
{
    size_t size = 0;
    unsigned char *data = th_read_file(path, &size);
    *bytes += size;
    if (!data) {
        th_fail(__FILE__, __LINE__, "%s: cannot read", path);
        return 0;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(120);
        /* The targets' own messages would only repeat what they refuse. */
        if (!freopen("/dev/null", "w", stdout))
            _exit(3);
        int argc = 1;
        char *args[] = {"test_convnet", NULL}, **argv = args;
        if (t->init && t->init(&argc, &argv) != 0)
            _exit(2);
        int rc = t->one(data, size);
        exit(rc == 0 ? 0 : 1); /* exit: the target's atexit handlers clean up */
    }
    free(data);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) {
        th_fail(__FILE__, __LINE__, "%s: cannot run a child process", path);
        return 0;
    }
    if (WIFSIGNALED(status)) {
        th_fail(__FILE__, __LINE__,
                "%s through fuzz/fuzz_%s.c: killed by signal %d (%s; its message went to "
                "stderr; make fuzz, then build-fuzz/fuzz_%s %s shows it under the sanitizers)",
                path, t->name, WTERMSIG(status),
                WTERMSIG(status) == SIGABRT   ? "a broken promise or an abort"
                : WTERMSIG(status) == SIGALRM ? "over 120 s"
                                              : "a crash",
                t->name, path);
        return 0;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        th_fail(__FILE__, __LINE__, "%s through fuzz/fuzz_%s.c: exit status %d", path, t->name,
                WEXITSTATUS(status));
        return 0;
    }
    return 1;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in dir (no dot files), sorted; NULL if it cannot be read. */
static char **list(const char *dir, size_t *n)
{
    DIR *d = opendir(dir);
    *n = 0;
    if (!d)
        return NULL;
    size_t cap = 16;
    char **names = malloc(cap * sizeof *names);
    struct dirent *e;
    while (names && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (*n == cap) {
            char **more = realloc(names, (cap *= 2) * sizeof *names);
            if (!more)
                break;
            names = more;
        }
        names[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    if (names)
        qsort(names, *n, sizeof *names, by_name);
    return names;
}

static void free_list(char **names, size_t n)
{
    for (size_t i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}

/* Every target in fuzz/ has its corpus and its entry here, and every file of
 * every corpus goes through its target. */
static void corpora_replay_cleanly(void)
{
    size_t nsrc, ndirs;
    char **src = list("fuzz", &nsrc), **dirs = list("fuzz/corpus", &ndirs);
    CHECK_MSG(src && dirs, "fuzz/ or fuzz/corpus/ cannot be read (run from the repository root)");
    size_t sources = 0;
    for (size_t i = 0; i < nsrc; i++) {
        size_t len = strlen(src[i]);
        if (strncmp(src[i], "fuzz_", 5) != 0 || len < 8 || strcmp(src[i] + len - 2, ".c") != 0)
            continue;
        sources++;
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(len - 7), src[i] + 5);
        CHECK_MSG(find(name), "fuzz/%s has no entry in tests/test_replay.c's targets", src[i]);
    }
    CHECK_MSG(sources == NTARGETS, "%zu fuzz targets in fuzz/, %d in tests/test_replay.c", sources,
              (int)NTARGETS);
    size_t files = 0, bytes = 0;
    for (size_t i = 0; i < NTARGETS; i++) {
        char dir[256], path[512];
        snprintf(dir, sizeof dir, "fuzz/corpus/%s", targets[i].name);
        size_t n;
        char **names = list(dir, &n);
        CHECK_MSG(names && n > 0, "%s: no corpus (fuzz/seeds.sh makes the seeds)", dir);
        int ok = 1;
        for (size_t k = 0; k < n && ok; k++) {
            snprintf(path, sizeof path, "%s/%s", dir, names[k]);
            files++;
            ok = replay(&targets[i], path, &bytes);
        }
        free_list(names, n);
    }
    for (size_t i = 0; i < ndirs; i++)
        CHECK_MSG(find(dirs[i]), "fuzz/corpus/%s belongs to no target", dirs[i]);
    printf("    %zu files (%zu KB) through %d targets\n", files, bytes / 1024, (int)NTARGETS);
    free_list(src, nsrc);
    free_list(dirs, ndirs);
}

const th_test th_replay[] = {
    {"replay/fuzz_corpora_replay_cleanly", corpora_replay_cleanly},
    {NULL, NULL},
};
