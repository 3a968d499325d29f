/* util.c - helpers for the tests. */
#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

cn_spec *th_spec(const char *text)
{
    cn_spec *spec = NULL;
    if (cn_spec_parse(text, "test.cfg", &spec) != CN_OK)
        th_fail(__FILE__, __LINE__, "spec does not parse: %s", cn_last_error());
    return spec;
}

const char *th_tmpdir(void)
{
    static char dir[256];
    if (!dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/convnet-test-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(dir))
            snprintf(dir, sizeof dir, ".");
    }
    return dir;
}

int th_write_file(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    int ok = fwrite(b, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

const char *th_data_dir(void)
{
    const char *d = getenv("CONVNET_DATA");
    return d && *d ? d : "data/mnist";
}

void th_fill_normal(float *x, size_t n, cn_rng *rng)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)cn_rng_normal(rng);
}

char *th_path(const char *name)
{
    static char buf[4][512];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 512, "%s/%s", th_tmpdir(), name);
    return p;
}

int th_limit_memory(size_t mb)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long pages = 0;
    int ok = f && fscanf(f, "%llu", &pages) == 1;
    if (f)
        fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    if (!ok || page <= 0)
        return 0;
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) != 0)
        return 0;
    rl.rlim_cur = (rlim_t)(pages * (unsigned long long)page + ((unsigned long long)mb << 20));
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max)
        rl.rlim_cur = rl.rlim_max;
    return setrlimit(RLIMIT_AS, &rl) == 0;
}

long th_peak_rss_mb(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss / 1024 : -1;
}
