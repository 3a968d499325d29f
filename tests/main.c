/* main.c - runs the test suites; each test in a child process.
 * usage: test_convnet [NAME...] [-x NAME...]
 *        test_convnet --list [NAME...] [-x NAME...]
 *   only the tests whose name contains one of the NAMEs (all if none),
 *   except those whose name contains a NAME given after -x.  A NAME that no
 *   test's name contains is an error (a typo would otherwise run nothing, or
 *   everything, and pass).  Ends with "N passed, M failed, K skipped"; the
 *   exit status is 0 when no test failed, 1 when one did, 2 for a usage
 *   error. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include "harness.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Under AddressSanitizer a test's leaks are looked for when it ends: the
 * child leaves with _exit, which skips LeakSanitizer's own check at exit. */
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#define LEAK_CHECK() __lsan_do_leak_check()
#else
#define LEAK_CHECK() ((void)0)
#endif

extern const th_test th_kernels[], th_layers[], th_broken[], th_spec_tests[], th_recipe[], th_io[],
    th_cifar[], th_train[], th_torch[], th_vis[], th_fuzzfound[], th_fault[], th_device[],
    th_replay[], th_onnx[], th_folder[], th_explain[], th_doctor[], th_cuda[], th_plan[],
    th_augment[], th_infer[];
static const th_test *const suites[] = {
    th_kernels, th_layers, th_broken,    th_spec_tests, th_recipe,  th_io,     th_cifar, th_train,
    th_torch,   th_vis,    th_fuzzfound, th_fault,      th_device,  th_replay, th_onnx,  th_folder,
    th_explain, th_doctor, th_cuda,      th_plan,       th_augment, th_infer};

/* The exit status of a child whose test was skipped (automake's). */
#define SKIP_STATUS 77

static int failed;
/* Where a child writes why its test was skipped: memory shared with the
 * parent (mapped before the fork), so that the reason shows on the test's
 * line. */
static char *skip_reason;
#define REASON_MAX 512

void th_fail(const char *file, int line, const char *fmt, ...)
{
    if (failed++)
        return;
    va_list ap;
    va_start(ap, fmt);
    printf("    %s:%d: ", file, line);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
}

int th_failed(void) { return failed; }

void th_skip(const char *fmt, ...)
{
    static char local[REASON_MAX];
    char *r = skip_reason ? skip_reason : local;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r, REASON_MAX, fmt, ap);
    va_end(ap);
    if (!r[0])
        snprintf(r, REASON_MAX, "(no reason given)");
    for (char *p = r; *p; p++) /* one line */
        if (*p == '\n')
            *p = ' ';
}

int th_contains(const char *h, const char *n) { return h && n && strstr(h, n) != NULL; }

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Whether name is chosen by the arguments (see the usage above). */
static int chosen(const char *name, int argc, char **argv)
{
    int any = 0, in = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--list") == 0)
            continue;
        if (strcmp(argv[i], "-x") == 0) {
            if (i + 1 < argc && strstr(name, argv[++i]))
                return 0;
            continue;
        }
        any = 1;
        in = in || strstr(name, argv[i]) != NULL;
    }
    return !any || in;
}

/* Whether some test's name contains text. */
static int names_any(const char *text)
{
    for (size_t s = 0; s < sizeof suites / sizeof suites[0]; s++)
        for (const th_test *t = suites[s]; t->name; t++)
            if (strstr(t->name, text))
                return 1;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: test_convnet [NAME...] [-x NAME...]\n"
               "       test_convnet --list [NAME...] [-x NAME...]\n"
               "Runs the C tests, each in its own process: those whose name contains one of\n"
               "the NAMEs (all when none is given), except those whose name contains a NAME\n"
               "given after -x.  --list prints the chosen tests' names instead.  Ends with\n"
               "\"N passed, M failed, K skipped\" (skipped: the test cannot run on this\n"
               "machine, and says why); exits with 1 when a test failed.\n");
}

/* Checks the arguments: 0 when they are usable, else a message and 2. */
static int check_args(int argc, char **argv, int *list)
{
    *list = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(a, "--list") == 0) {
            *list = 1;
            continue;
        }
        if (strcmp(a, "-x") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "test_convnet: -x needs a NAME after it\n");
                usage(stderr);
                return 2;
            }
            a = argv[++i];
        } else if (a[0] == '-') {
            fprintf(stderr, "test_convnet: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (!a[0] || !names_any(a)) {
            fprintf(stderr,
                    "test_convnet: no test's name contains '%s'; 'test_convnet --list' prints "
                    "the names of all the tests\n",
                    a);
            return 2;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int list, rc = check_args(argc, argv, &list);
    if (rc)
        return rc;
    int todo = 0;
    for (size_t s = 0; s < sizeof suites / sizeof suites[0]; s++)
        for (const th_test *t = suites[s]; t->name; t++)
            if (chosen(t->name, argc, argv)) {
                todo++;
                if (list)
                    printf("%s\n", t->name);
            }
    if (list)
        return 0;
    if (todo == 0) {
        fprintf(stderr, "test_convnet: the -x NAMEs leave no test to run ('test_convnet --list "
                        "NAME...' prints the names chosen)\n");
        return 2;
    }
    skip_reason = mmap(NULL, REASON_MAX, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (skip_reason == MAP_FAILED) {
        perror("test_convnet: mmap");
        return 1;
    }
    int passed = 0, fails = 0, skipped = 0;
    for (size_t s = 0; s < sizeof suites / sizeof suites[0]; s++) {
        for (const th_test *t = suites[s]; t->name; t++) {
            if (!chosen(t->name, argc, argv))
                continue;
            fflush(stdout);
            skip_reason[0] = '\0';
            double t0 = now();
            pid_t pid = fork();
            if (pid == 0) {
                alarm(600);
                t->fn();
                fflush(stdout);
                LEAK_CHECK();
                _exit(failed ? 1 : skip_reason[0] ? SKIP_STATUS : 0);
            }
            int status = 0;
            waitpid(pid, &status, 0);
            int exited = pid > 0 && WIFEXITED(status);
            if (exited && WEXITSTATUS(status) == 0) {
                printf("ok    %-44s %7.2f s\n", t->name, now() - t0);
                passed++;
            } else if (exited && WEXITSTATUS(status) == SKIP_STATUS && skip_reason[0]) {
                skip_reason[REASON_MAX - 1] = '\0';
                printf("skip  %-44s %s\n", t->name, skip_reason);
                skipped++;
            } else {
                if (WIFSIGNALED(status))
                    printf("FAIL  %-44s killed by signal %d\n", t->name, WTERMSIG(status));
                else
                    printf("FAIL  %s\n", t->name);
                fails++;
            }
        }
    }
    printf("%d passed, %d failed, %d skipped\n", passed, fails, skipped);
    return fails ? 1 : 0;
}
