/* synth_cache.c - writes a data cache of synthetic pictures through the
 * library's streaming writer (cn_data_cache_write), for tests/folders.sh's
 * larger-than-memory run: a data set of any size in seconds, where decoding
 * as many image files would take minutes.
 *
 *   synth_cache OUT.safetensors N C H W CLASSES
 *
 * Sample i is noise with a bright square whose place depends on its label
 * (i % CLASSES), so that a network can learn something from it. */
#include "convnet.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct gen {
    size_t i, n;
    cn_shape s;
    int classes;
    uint64_t rng;
} gen;

static cn_status next(void *user, uint8_t *pixels, int32_t *labels, size_t max, size_t *got)
{
    gen *g = user;
    size_t sz = g->s.c * g->s.h * g->s.w, k = 0;
    for (; k < max && g->i < g->n; k++, g->i++) {
        uint8_t *p = pixels + k * sz;
        int y = (int)(g->i % (size_t)g->classes);
        for (size_t j = 0; j < sz; j++) {
            g->rng = g->rng * 6364136223846793005ULL + 1442695040888963407ULL;
            p[j] = (uint8_t)(g->rng >> 58);
        }
        size_t side = g->s.h / 4, x0 = (size_t)y % 4 * side, y0 = (size_t)y / 4 % 4 * side;
        for (size_t c = 0; c < g->s.c; c++)
            for (size_t yy = y0; yy < y0 + side && yy < g->s.h; yy++)
                for (size_t xx = x0; xx < x0 + side && xx < g->s.w; xx++)
                    p[(c * g->s.h + yy) * g->s.w + xx] = 200;
        labels[k] = y;
    }
    *got = k;
    return CN_OK;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: synth_cache OUT.safetensors N C H W CLASSES\n");
        return 2;
    }
    gen g = {0, strtoull(argv[2], NULL, 10),
             {strtoull(argv[3], NULL, 10), strtoull(argv[4], NULL, 10),
              strtoull(argv[5], NULL, 10)},
             atoi(argv[6]), 1};
    if (g.classes < 2 || g.classes > 1000) {
        fprintf(stderr, "synth_cache: 2 to 1000 classes\n");
        return 2;
    }
    char buf[1000][16];
    const char *names[1000];
    for (int k = 0; k < g.classes; k++) {
        snprintf(buf[k], sizeof buf[k], "c%d", k);
        names[k] = buf[k];
    }
    size_t written;
    if (cn_data_cache_write(argv[1], g.s, g.n, names, (size_t)g.classes, NULL, 0, next, &g,
                            &written)) {
        fprintf(stderr, "synth_cache: %s\n", cn_last_error());
        return 1;
    }
    printf("%zu samples written to %s\n", written, argv[1]);
    return 0;
}
