/* main.c - runs the test suites; each test in a child process.
 * usage: test_convnet [NAME...] [-x NAME...]
 *   only the tests whose name contains one of the NAMEs (all if none),
 *   except those whose name contains a NAME given after -x */
#include "harness.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
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

extern const th_test th_kernels[], th_layers[], th_spec_tests[], th_recipe[], th_io[], th_cifar[],
    th_train[], th_torch[], th_vis[], th_fuzzfound[], th_fault[], th_device[], th_replay[];
static const th_test *const suites[] = {
    th_kernels, th_layers, th_spec_tests, th_recipe, th_io,     th_cifar, th_train,
    th_torch,   th_vis,    th_fuzzfound,  th_fault,  th_device, th_replay};

static int failed;

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

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int passed = 0, fails = 0;
    for (size_t s = 0; s < sizeof suites / sizeof suites[0]; s++) {
        for (const th_test *t = suites[s]; t->name; t++) {
            if (!chosen(t->name, argc, argv))
                continue;
            fflush(stdout);
            double t0 = now();
            pid_t pid = fork();
            if (pid == 0) {
                alarm(600);
                t->fn();
                fflush(stdout);
                LEAK_CHECK();
                _exit(failed ? 1 : 0);
            }
            int status = 0;
            waitpid(pid, &status, 0);
            int ok = pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
            if (ok) {
                printf("ok    %-44s %7.2f s\n", t->name, now() - t0);
                passed++;
            } else {
                if (WIFSIGNALED(status))
                    printf("FAIL  %-44s killed by signal %d\n", t->name, WTERMSIG(status));
                else
                    printf("FAIL  %s\n", t->name);
                fails++;
            }
        }
    }
    printf("%d passed, %d failed\n", passed, fails);
    return fails ? 1 : 0;
}
