/* util.c - helpers for the tests. */
#include "harness.h"
#include "internal.h"

#include <math.h>
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

unsigned char *th_read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *size = n >= 0 ? (size_t)n : 0;
    return b;
}

int th_write_safetensors(const char *path, uint64_t claimed_len, const char *json, size_t data_len)
{
    size_t h = strlen(json);
    unsigned char *b = calloc(8 + h + data_len + 1, 1);
    if (!b)
        return 0;
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(claimed_len >> (8 * i));
    memcpy(b + 8, json, h);
    int ok = th_write_file(path, b, 8 + h + data_len);
    free(b);
    return ok;
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

const cn_device *th_dev(int threads)
{
    static cn_device ring[8];
    static unsigned next;
    const char *env = getenv("CONVNET_TEST_BACKEND");
    cn_device *d = &ring[next++ % 8];
    *d = (cn_device){env && *env ? env : "cpu", 0, threads};
    return d;
}

float *th_block(const cn_net *net, cn_block block)
{
    size_t n = block == CN_BUFFERS ? cn_net_num_buffers(net) : cn_net_num_params(net);
    float *h = malloc((n ? n : 1) * sizeof *h);
    if (h && cn_net_get(net, block, 0, n, h) != CN_OK) {
        free(h);
        return NULL;
    }
    return h;
}

float th_get(const cn_net *net, cn_block block, size_t i)
{
    float v = NAN;
    cn_net_get(net, block, i, 1, &v);
    return v;
}

void th_put(cn_net *net, cn_block block, size_t i, float v) { cn_net_set(net, block, i, 1, &v); }

int th_same(const cn_net *a, const cn_net *b, cn_block block)
{
    size_t n = block == CN_BUFFERS ? cn_net_num_buffers(a) : cn_net_num_params(a);
    size_t m = block == CN_BUFFERS ? cn_net_num_buffers(b) : cn_net_num_params(b);
    float *x = th_block(a, block), *y = th_block(b, block);
    int same = x && y && n == m && memcmp(x, y, n * sizeof *x) == 0;
    free(x);
    free(y);
    return same;
}

/* count floats of host memory h in the backend's (NULL: none asked). */
static float *on_backend(cn_backend *be, const float *h, size_t count)
{
    if (!h)
        return NULL;
    float *d = be->alloc(be, (count ? count : 1) * sizeof *d);
    if (d && count)
        be->upload(be, d, h, count * sizeof *d);
    return d;
}

void th_layer_forward(cn_net *net, size_t i, const float *x, float *y, size_t n, int train)
{
    cn_backend *be = net->be;
    size_t in = n * cn_shape_size(net->layers[i].in), out = n * cn_shape_size(net->layers[i].out);
    if (be->host_memory) {
        cn_net_layer_forward(net, i, x, y, n, train);
        return;
    }
    float *bx = on_backend(be, x, in), *by = on_backend(be, y, out); /* the backend's copies */
    if (bx && by) {
        cn_net_layer_forward(net, i, bx, by, n, train);
        be->download(be, y, by, out * sizeof *y);
    }
    be->free(be, bx);
    be->free(be, by);
}

void th_layer_backward(cn_net *net, size_t i, const float *x, const float *y, const float *dy,
                       float *dx, size_t n)
{
    cn_backend *be = net->be;
    size_t in = n * cn_shape_size(net->layers[i].in), out = n * cn_shape_size(net->layers[i].out);
    if (be->host_memory) {
        cn_net_layer_backward(net, i, x, y, dy, dx, n);
        return;
    }
    float *bx = on_backend(be, x, in), *by = on_backend(be, y, out);
    float *bdy = on_backend(be, dy, out), *bdx = on_backend(be, dx, in);
    if (bx && by && (bdy || !dy) && bdx) {
        cn_net_layer_backward(net, i, bx, by, bdy, bdx, n);
        be->download(be, dx, bdx, in * sizeof *dx);
    }
    be->free(be, bx);
    be->free(be, by);
    be->free(be, bdy);
    be->free(be, bdx);
}

const float *th_layer_output(const cn_net *net, size_t i, size_t n)
{
    static float *ring[8];
    static unsigned next;
    cn_layer_info li;
    if (cn_net_layer(net, i, &li) != CN_OK)
        return NULL;
    float **slot = &ring[next++ % 8];
    float *y = realloc(*slot, (n * li.out.c * li.out.h * li.out.w + 1) * sizeof *y);
    if (!y)
        return NULL;
    *slot = y;
    return cn_net_get_layer_output(net, i, 0, n, y) == CN_OK ? y : NULL;
}

const float *th_output(const cn_net *net, size_t n)
{
    return th_layer_output(net, cn_net_num_layers(net) - 1, n);
}

cn_data th_bars(size_t n, uint64_t seed, int side)
{
    size_t area = (size_t)side * (size_t)side;
    cn_data d = {.n = n,
                 .shape = {1, (size_t)side, (size_t)side},
                 .classes = 2,
                 .pixels = malloc(n * area),
                 .labels = malloc(n * sizeof(int32_t)),
                 .owned = 1};
    cn_rng rng;
    cn_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) {
        int c = (int)cn_rng_below(&rng, 2), bar = 3 * side / 8;
        d.labels[i] = c;
        for (size_t p = 0; p < area; p++) {
            int col = (int)(p % (size_t)side), bright = c ? col >= side - bar : col < bar;
            d.pixels[i * area + p] = (uint8_t)(cn_rng_below(&rng, 100) + (bright ? 120 : 0));
        }
    }
    return d;
}

int th_same_optim(const cn_model *a, const cn_model *b)
{
    size_t n = a->optim.n_slots * a->net->n_params;
    float *x = malloc(n * 4 + 4), *y = malloc(n * 4 + 4);
    int same = x && y && b->optim.n_slots * b->net->n_params == n;
    if (same) {
        a->be->download(a->be, x, a->optim.state, n * 4);
        b->be->download(b->be, y, b->optim.state, n * 4);
        same = memcmp(x, y, n * 4) == 0;
    }
    free(x);
    free(y);
    return same;
}
