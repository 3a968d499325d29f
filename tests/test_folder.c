/* test_folder.c - data caches (write, map, refuse damaged ones) and data sets
 * of image files: layouts, order, splits, the cache found up to date, built
 * again when a file changes or the cache is damaged, the CSV reader, and
 * bad input. */
#include "convnet_vis.h"
#include "harness.h"
#include "vis/vis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ data caches */

typedef struct gen {
    size_t i, n, bad_at; /* bad_at: the sample given label 99 (n: none) */
    cn_shape s;
    int fail_at; /* the call that fails (0: none) */
    int calls;
} gen;

static uint8_t pix(size_t i, size_t j) { return (uint8_t)(i * 31 + j * 7); }

static cn_status next(void *user, uint8_t *pixels, int32_t *labels, size_t max, size_t *got)
{
    gen *g = user;
    if (++g->calls == g->fail_at)
        return cn_fail_at(NULL, 0, CN_ERR_IO, "the source broke at call %d", g->calls);
    size_t sz = g->s.c * g->s.h * g->s.w, k = 0;
    for (; k < max && g->i < g->n; k++, g->i++) {
        for (size_t j = 0; j < sz; j++)
            pixels[k * sz + j] = pix(g->i, j);
        labels[k] = g->i == g->bad_at ? 99 : (int32_t)(g->i % 3);
    }
    *got = k;
    return CN_OK;
}

static const char *const names3[] = {"cat", "dog \"big\"", "émeu"};

static void cache_round_trip(void)
{
    const char *path = th_path("c.safetensors");
    gen g = {0, 2500, 2500, {3, 5, 7}, 0, 0};
    const char *meta[] = {"convnet.key", "abc"};
    size_t written = 0;
    /* max_n above what the source gives: the header shrinks to fit */
    CHECK_OK(cn_data_cache_write(path, g.s, 3000, names3, 3, meta, 1, next, &g, &written));
    CHECK(written == 2500);
    cn_data d;
    CHECK_OK(cn_data_cache_open(path, &d));
    CHECK(d.n == 2500 && d.classes == 3 && d.shape.c == 3 && d.shape.h == 5 && d.shape.w == 7);
    CHECK(d.owned && d.store != NULL && d.names != NULL);
    for (int k = 0; d.names && k < 3; k++)
        CHECK_MSG(strcmp(d.names[k], names3[k]) == 0, "name %d: %s", k, d.names[k]);
    size_t wrong = 0;
    for (size_t i = 0; i < d.n; i++) {
        wrong += d.labels[i] != (int32_t)(i % 3);
        for (size_t j = 0; j < 105; j++)
            wrong += d.pixels[i * 105 + j] != pix(i, j);
    }
    CHECK_MSG(wrong == 0, "%zu values differ", wrong);
    char *v = NULL;
    CHECK_OK(cn_data_cache_meta(path, "convnet.key", &v));
    CHECK(v && strcmp(v, "abc") == 0);
    free(v);
    CHECK_OK(cn_data_cache_meta(path, "nothing", &v));
    CHECK(v == NULL);
    cn_data_free(&d);
    CHECK(d.pixels == NULL && d.n == 0);
}

static void cache_refuses_damage(void)
{
    const char *path = th_path("c.safetensors");
    gen g = {0, 50, 50, {1, 4, 4}, 0, 0};
    CHECK_OK(cn_data_cache_write(path, g.s, 50, names3, 3, NULL, 0, next, &g, NULL));
    size_t size;
    unsigned char *b = th_read_file(path, &size);
    CHECK(b != NULL);
    if (!b)
        return;
    cn_data d;
    /* truncated: the tensors overrun the file */
    CHECK(th_write_file(path, b, size - 10));
    CHECK_ERR(cn_data_cache_open(path, &d), CN_ERR_FORMAT);
    CHECK(th_contains(cn_last_error(), path));
    /* a label outside the classes */
    b[size - 4] = 7;
    CHECK(th_write_file(path, b, size));
    CHECK_ERR(cn_data_cache_open(path, &d), CN_ERR_FORMAT);
    CHECK(th_contains(cn_last_error(), "label 7"));
    free(b);
    /* a safetensors file that is no cache */
    const char *json = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    CHECK(th_write_safetensors(path, strlen(json), json, 8));
    CHECK_ERR(cn_data_cache_open(path, &d), CN_ERR_FORMAT);
    CHECK_MSG(th_contains(cn_last_error(), "not a convnet data cache"), "%s", cn_last_error());
    CHECK(d.pixels == NULL && d.store == NULL);
}

static void cache_write_failures_leave_nothing(void)
{
    const char *path = th_path("f.safetensors");
    gen g = {0, 5000, 5000, {1, 2, 2}, 3, 0}; /* the third call fails */
    CHECK_ERR(cn_data_cache_write(path, g.s, 5000, names3, 3, NULL, 0, next, &g, NULL), CN_ERR_IO);
    CHECK(th_contains(cn_last_error(), "the source broke at call 3"));
    CHECK(access(path, F_OK) != 0);
    g = (gen){0, 10, 4, {1, 2, 2}, 0, 0};
    CHECK_ERR(cn_data_cache_write(path, g.s, 10, names3, 3, NULL, 0, next, &g, NULL), CN_ERR_ARG);
    CHECK(th_contains(cn_last_error(), "sample 4 has label 99"));
    CHECK(access(path, F_OK) != 0);
}

/* ----------------------------------------------------------------- folders */

/* A w x h grey PNG at path whose pixels are v + x + y. */
static int png(const char *path, int w, int h, int v)
{
    cn_image img;
    if (cn_image_new(w, h, 1, &img))
        return 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            img.px[y * w + x] = (uint8_t)(v + x + y);
    int ok = cn_image_write_png(&img, path) == CN_OK;
    cn_image_free(&img);
    return ok;
}

static char *dirf(const char *fmt, const char *a, const char *b)
{
    static char buf[4][512];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 512, fmt, th_tmpdir(), a, b);
    return p;
}

static const cn_shape S8 = {1, 8, 8};

static void folder_order_and_exact_pixels(void)
{
    /* train/ and test/ above the classes: train's first, each sorted by name
     * then class; pictures of the input's size come through unchanged. */
    static const char *const files[][3] = {
        {"train", "b", "002.png"}, {"train", "a", "001.png"}, {"train", "b", "001.png"},
        {"train", "a", "000.png"}, {"test", "b", "000.png"},  {"test", "a", "005.png"},
    };
    for (int i = 0; i < 6; i++) {
        mkdir(dirf("%s/o", "", ""), 0755);
        mkdir(dirf("%s/o/%s", files[i][0], ""), 0755);
        mkdir(dirf("%s/o/%s/%s", files[i][0], files[i][1]), 0755);
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dirf("%s/o/%s/%s", files[i][0], files[i][1]), files[i][2]);
        CHECK(png(p, 8, 8, 10 * i));
    }
    cn_data d;
    cn_folder_info info;
    CHECK_OK(cn_data_load_folder(dirf("%s/o", "", ""), S8, NULL, &d, &info));
    CHECK(info.built && !info.stale && info.split_folders && info.files == 6);
    CHECK(info.count[0] == 4 && info.count[1] == 0 && info.count[2] == 2);
    CHECK(d.n == 6 && d.classes == 2 && strcmp(d.names[0], "a") == 0);
    /* train: a/000 (3), a/001 (1), b/001 (2), b/002 (0); test: b/000 (4), a/005 (5) */
    static const int want[6] = {3, 1, 2, 0, 4, 5}, label[6] = {0, 0, 1, 1, 1, 0};
    for (size_t i = 0; i < d.n && i < 6; i++) {
        CHECK_MSG(d.labels[i] == label[i], "sample %zu: label %d", i, d.labels[i]);
        int same = 1;
        for (int y = 0; y < 8; y++)
            for (int x = 0; x < 8; x++)
                same &= d.pixels[i * 64 + (size_t)(y * 8 + x)] == (uint8_t)(10 * want[i] + x + y);
        CHECK_MSG(same, "sample %zu is not file %d, byte for byte", i, want[i]);
    }
    cn_data_free(&d);
}

static void folder_cache_up_to_date_then_stale(void)
{
    const char *root = dirf("%s/u", "", "");
    mkdir(root, 0755);
    for (int c = 0; c < 3; c++) {
        char cls[8], p[600];
        snprintf(cls, sizeof cls, "c%d", c);
        mkdir(dirf("%s/u/%s", cls, ""), 0755);
        for (int i = 0; i < 10; i++) {
            snprintf(p, sizeof p, "%s/u/%s/%d.png", th_tmpdir(), cls, i);
            CHECK(png(p, 16, 12, c * 40 + i)); /* resized to 8 x 8 */
        }
    }
    cn_data d;
    cn_folder_info info;
    cn_folder_opts o = {CN_FIT_STRETCH, NULL, 0};
    CHECK_OK(cn_data_load_folder(root, S8, &o, &d, &info));
    CHECK(info.built && !info.split_folders && d.n == 30 && d.classes == 3);
    CHECK(th_contains(info.cache, "/u/.convnet-cache/data-1x8x8-stretch.safetensors"));
    char key[17];
    memcpy(key, info.key, sizeof key);
    /* the shuffled order: not by class */
    int sorted = 1;
    for (size_t i = 1; i < d.n; i++)
        sorted &= d.labels[i] >= d.labels[i - 1];
    CHECK_MSG(!sorted, "an unsplit folder should come shuffled");
    cn_data_free(&d);
    CHECK_OK(cn_data_load_folder(root, S8, &o, &d, &info));
    CHECK(!info.built && d.n == 30 && strcmp(info.key, key) == 0);
    cn_data_free(&d);
    /* another fit: another cache */
    CHECK_OK(cn_data_load_folder(root, S8, NULL, &d, &info));
    CHECK(info.built && !info.stale && th_contains(info.cache, "crop"));
    cn_data_free(&d);
    /* a file rewritten (another size) makes the cache stale */
    char p[600];
    snprintf(p, sizeof p, "%s/u/c1/3.png", th_tmpdir());
    CHECK(png(p, 20, 20, 99));
    CHECK_OK(cn_data_load_folder(root, S8, &o, &d, &info));
    CHECK(info.built && info.stale && strcmp(info.key, key) != 0 && d.n == 30);
    cn_data_free(&d);
    /* a damaged cache is built again */
    FILE *f = fopen(info.cache, "r+b");
    CHECK(f != NULL);
    if (f) {
        CHECK(ftruncate(fileno(f), 100) == 0);
        fclose(f);
    }
    CHECK_OK(cn_data_load_folder(root, S8, &o, &d, &info));
    CHECK(info.built && d.n == 30);
    cn_data_free(&d);
}

static void folder_bad_input(void)
{
    cn_data d;
    cn_folder_info info;
    const char *root = dirf("%s/bad", "", "");
    mkdir(root, 0755);
    CHECK_ERR(cn_data_load_folder(root, S8, NULL, &d, &info), CN_ERR_FORMAT);
    CHECK(th_contains(cn_last_error(), "has no class folders"));
    mkdir(dirf("%s/bad/%s", "one", ""), 0755);
    char p[600];
    snprintf(p, sizeof p, "%s/bad/one/x.png", th_tmpdir());
    CHECK(png(p, 8, 8, 0));
    CHECK_ERR(cn_data_load_folder(root, S8, NULL, &d, &info), CN_ERR_FORMAT);
    CHECK(th_contains(cn_last_error(), "one class (one)"));
    mkdir(dirf("%s/bad/%s", "two", ""), 0755);
    CHECK_ERR(cn_data_load_folder(root, S8, NULL, &d, &info), CN_ERR_FORMAT);
    CHECK(th_contains(cn_last_error(), "two holds no images"));
    snprintf(p, sizeof p, "%s/bad/two/y.png", th_tmpdir());
    CHECK(png(p, 8, 8, 0));
    snprintf(p, sizeof p, "%s/bad/two/z.jpg", th_tmpdir());
    CHECK(th_write_file(p, "not a jpeg", 10));
    /* unreadable files are left out and listed; the caller decides */
    CHECK_OK(cn_data_load_folder(root, S8, NULL, &d, &info));
    CHECK(d.n == 2 && info.unreadable == 1 && th_contains(info.unreadable_list, "z.jpg: "));
    cn_data_free(&d);
    /* and so they are on the next run, from the cache */
    CHECK_OK(cn_data_load_folder(root, S8, NULL, &d, &info));
    CHECK(!info.built && info.unreadable == 1 && th_contains(info.unreadable_list, "z.jpg"));
    cn_data_free(&d);
    /* a class folder named "train" among others is a class */
    mkdir(dirf("%s/bad/%s", "train", ""), 0755);
    snprintf(p, sizeof p, "%s/bad/train/t.png", th_tmpdir());
    CHECK(png(p, 8, 8, 0));
    CHECK_OK(cn_data_load_folder(root, S8, NULL, &d, &info));
    CHECK(!info.split_folders && d.classes == 3 && strcmp(d.names[2], "two") == 0);
    cn_data_free(&d);
    cn_shape two = {2, 8, 8};
    CHECK_ERR(cn_data_load_folder(root, two, NULL, &d, &info), CN_ERR_ARG);
}

/* --------------------------------------------------------------------- CSV */

static void csv_reads_quotes_and_lines(void)
{
    const char text[] = "\xef\xbb\xbf"
                        "File,Label\r\n"
                        "a.png,cat\r\n"
                        "\n"
                        "\"b, c.png\",\"dog \"\"big\"\"\"\n"
                        "\"multi\nline.png\",cat";
    cn_csv_list c;
    CHECK_OK(cn_csv_list_parse(text, sizeof text - 1, "l.csv", &c));
    CHECK(c.n == 3);
    if (c.n == 3) {
        CHECK(strcmp(c.file[0], "a.png") == 0 && strcmp(c.label[0], "cat") == 0 && c.line[0] == 2);
        CHECK(strcmp(c.file[1], "b, c.png") == 0 && strcmp(c.label[1], "dog \"big\"") == 0);
        CHECK_MSG(c.line[1] == 4, "line %zu", c.line[1]);
        CHECK(strcmp(c.file[2], "multi\nline.png") == 0 && c.line[2] == 5);
    }
    cn_csv_list_free(&c);
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"", "l.csv: empty"},
        {"a,b\n", "l.csv:1: the first line must be the header"},
        {"file,label\nx.png\n", "l.csv:2: one field"},
        {"file,label\nx.png,a,b\n", "l.csv:2: more than two fields"},
        {"file,label\n\"x.png,a\n", "l.csv:2: a quoted field is not closed"},
        {"file,label\n\"x\"y,a\n", "l.csv:2: text after a closing quote"},
        {"file,label\nx\"y,a\n", "l.csv:2: a quote inside an unquoted field"},
        {"file,label\n,a\n", "l.csv:2: an empty file name"},
        {"file,label\n\n\nx,\n", "l.csv:4: an empty label"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_ERR(cn_csv_list_parse(bad[i].text, strlen(bad[i].text), "l.csv", &c), CN_ERR_FORMAT);
        CHECK_MSG(th_contains(cn_last_error(), bad[i].want), "case %zu: %s", i, cn_last_error());
        CHECK(c.n == 0 && c.file == NULL);
    }
}

static void csv_list_loads(void)
{
    char p[600];
    mkdir(dirf("%s/csv", "", ""), 0755);
    mkdir(dirf("%s/csv/%s", "img", ""), 0755);
    FILE *f = fopen(dirf("%s/csv/list.csv", "", ""), "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fprintf(f, "file,label\n");
    for (int i = 0; i < 20; i++) {
        snprintf(p, sizeof p, "%s/csv/img/%02d.png", th_tmpdir(), i);
        CHECK(png(p, 8, 8, i));
        fprintf(f, "img/%02d.png,%s\n", i, i % 2 ? "odd" : "even");
    }
    fprintf(f, "img/missing.png,odd\n");
    fclose(f);
    cn_data d;
    cn_folder_info info;
    CHECK_OK(cn_data_load_folder(dirf("%s/csv/list.csv", "", ""), S8, NULL, &d, &info));
    CHECK(d.n == 20 && d.classes == 2 && strcmp(d.names[0], "even") == 0);
    CHECK(info.unreadable == 1 && th_contains(info.unreadable_list, "missing.png"));
    CHECK(th_contains(info.cache, "/csv/.convnet-cache/list-1x8x8-crop.safetensors"));
    for (size_t i = 0; i < d.n; i++) /* each picture under its own label */
        CHECK(d.labels[i] == (d.pixels[i * 64] % 2 ? 1 : 0));
    cn_data_free(&d);
}

/* [net] may leave classes out: the last layer's outputs decide. */
static void classes_from_outputs(void)
{
    cn_spec *spec = th_spec("[net]\nchannels=1\nheight=8\nwidth=8\n[fc]\noutputs=4\n[softmax]\n");
    cn_net *net = NULL;
    CHECK(spec != NULL);
    if (spec)
        CHECK_OK(cn_net_create(spec, 2, th_dev(1), &net));
    CHECK(net && cn_net_classes(net) == 4);
    cn_net_free(net);
    cn_spec_free(spec);
}

const th_test th_folder[] = {
    {"folder/classes_from_outputs", classes_from_outputs},
    {"folder/cache_round_trip", cache_round_trip},
    {"folder/cache_refuses_damage", cache_refuses_damage},
    {"folder/cache_write_failures_leave_nothing", cache_write_failures_leave_nothing},
    {"folder/order_and_exact_pixels", folder_order_and_exact_pixels},
    {"folder/cache_up_to_date_then_stale", folder_cache_up_to_date_then_stale},
    {"folder/bad_input", folder_bad_input},
    {"folder/csv_reads_quotes_and_lines", csv_reads_quotes_and_lines},
    {"folder/csv_list_loads", csv_list_loads},
    {NULL, NULL},
};
