/* test_io.c - model files (safetensors) and data files (IDX): round trips,
 * and refusal of truncated, corrupted and lying files. */
#include "harness.h"
#include "internal.h"
#include "io/safetensors.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static const char *SMALL =
    "[net]\nchannels=1\nheight=6\nwidth=6\nclasses=3\n"
    "[train]\nbatch=4\nlr=0.05\nseed=9\n"
    "[conv]\nfilters=2\nsize=3\n[relu]\n[maxpool]\n[fc]\noutputs=3\n[softmax]\n";

static cn_model *small_model(void)
{
    cn_spec *spec = th_spec(SMALL);
    cn_model *m = NULL;
    if (spec && cn_model_create(spec, NULL, th_dev(1), &m) != CN_OK)
        th_fail(__FILE__, __LINE__, "%s", cn_last_error());
    cn_spec_free(spec);
    return m;
}

static void model_round_trip(void)
{
    cn_model *m = small_model();
    CHECK(m);
    cn_net *net = cn_model_net(m);
    /* Non-zero momentum, so the checkpoint must carry it. */
    for (size_t t = 0; t < cn_net_num_tensors(net); t++) {
        cn_tensor_info ti;
        CHECK_OK(cn_net_tensor(net, t, &ti));
        for (size_t i = 0; i < ti.count; i++) {
            float v = (float)(t + 1) + (float)i * 1e-3f;
            m->be->upload(m->be, m->optim.state + ti.offset + i, &v, sizeof v);
        }
    }
    m->state.epoch = 3;
    m->state.step = 2;
    m->state.global_step = 77;
    cn_model_opts(m)->epochs = 12;
    const char *path = th_path("m.safetensors");
    CHECK_OK(cn_model_save(m, path));

    cn_model *l;
    CHECK_OK(cn_model_load(path, th_dev(1), &l));
    cn_net *ln = cn_model_net(l);
    CHECK(cn_net_num_params(ln) == cn_net_num_params(net));
    CHECK(th_same(ln, net, CN_PARAMS));
    CHECK(th_same_optim(l, m));
    CHECK(memcmp(&l->state, &m->state, sizeof m->state) == 0);
    CHECK(memcmp(cn_model_opts(l), cn_model_opts(m), sizeof(cn_train_opts)) == 0);
    CHECK(strcmp(cn_spec_text(cn_model_spec(l)), SMALL) == 0);

    /* Same outputs on the same input. */
    float x[2 * 36];
    cn_rng rng;
    cn_rng_seed(&rng, 1);
    th_fill_normal(x, 72, &rng);
    CHECK_OK(cn_net_forward(net, x, 2, 0));
    CHECK_OK(cn_net_forward(ln, x, 2, 0));
    const float *y0 = th_output(net, 2), *y1 = th_output(ln, 2);
    CHECK(y0 && y1 && memcmp(y0, y1, 6 * 4) == 0);

    /* The file is plain safetensors: check the layout by hand. */
    size_t size;
    unsigned char *b = th_read_file(path, &size);
    CHECK(b && size > 8);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)b[i] << (8 * i);
    CHECK(hlen % 8 == 0 && 8 + hlen <= size && b[8] == '{');
    CHECK(strstr((char *)b + 8, "\"conv1.weight\":{\"shape\":[2,1,3,3],\"dtype\":\"F32\"") ||
          strstr((char *)b + 8, "\"conv1.weight\":{\"dtype\":\"F32\",\"shape\":[2,1,3,3]"));
    CHECK(strstr((char *)b + 8, "\"fc1.weight\""));
    CHECK(strstr((char *)b + 8, "optim.fc1.bias.momentum"));
    CHECK(strstr((char *)b + 8, "\"input.mean\"") && strstr((char *)b + 8, "\"input.std\""));
    /* 2 x (weights + momentum) floats after the header, and the input's
     * mean and std (one channel). */
    size_t floats = 2 * (18 + 2 + 3 * 8 + 3) + 2;
    CHECK(size == 8 + hlen + 4 * floats);
    free(b);
    cn_model_free(l);
    cn_model_free(m);
}

/* Batch-norm running statistics are buffers: saved, loaded, required. */
static void model_keeps_buffers(void)
{
    cn_spec *spec = th_spec("[net]\nchannels=1\nheight=4\nwidth=4\nclasses=2\n"
                            "[conv]\nfilters=3\nsize=3\n[batchnorm]\n[relu]\n"
                            "[fc]\noutputs=2\n[softmax]\n");
    CHECK(spec);
    cn_model *m, *l;
    CHECK_OK(cn_model_create(spec, NULL, th_dev(1), &m));
    cn_spec_free(spec);
    cn_net *net = cn_model_net(m);
    size_t set = 0;
    for (size_t t = 0; t < cn_net_num_tensors(net); t++) {
        cn_tensor_info ti;
        CHECK_OK(cn_net_tensor(net, t, &ti));
        for (size_t i = 0; !ti.trainable && i < ti.count; i++, set++)
            th_put(net, CN_BUFFERS, ti.offset + i, 0.5f + (float)set);
    }
    CHECK(set == 6);
    const char *path = th_path("bn.safetensors");
    CHECK_OK(cn_model_save(m, path));
    CHECK_OK(cn_model_load(path, th_dev(1), &l));
    CHECK(th_same(cn_model_net(l), net, CN_BUFFERS));
    cn_model_free(l);
    /* Without its running variance the file is refused. */
    size_t size;
    unsigned char *b = th_read_file(path, &size);
    CHECK(b);
    char *name = strstr((char *)b + 8, "\"batchnorm1.running_var\"");
    CHECK(name);
    name[1] = 'X';
    CHECK(th_write_file(path, b, size));
    CHECK_ERR(cn_model_load(path, th_dev(1), &l), CN_ERR_FORMAT);
    CHECK(th_contains(cn_last_error(), "batchnorm1.running_var") &&
          th_contains(cn_last_error(), "missing"));
    free(b);
    cn_model_free(m);
}

/* Every truncation of a model file is refused cleanly. */
static void refuses_truncated_files(void)
{
    cn_model *m = small_model();
    CHECK(m);
    const char *path = th_path("t.safetensors"), *cut = th_path("cut.safetensors");
    CHECK_OK(cn_model_save(m, path));
    size_t size;
    unsigned char *b = th_read_file(path, &size);
    CHECK(b);
    for (size_t n = 0; n < size; n += (n < 64 || size - n < 64) ? 1 : 7) {
        CHECK(th_write_file(cut, b, n));
        cn_model *l = NULL;
        cn_status st = cn_model_load(cut, th_dev(1), &l);
        CHECK_MSG(st == CN_ERR_FORMAT && l == NULL, "a file cut to %zu of %zu bytes gave %s", n,
                  size, cn_status_name(st));
        CHECK(th_contains(cn_last_error(), cut));
    }
    free(b);
    cn_model_free(m);
}

/* Flipping any byte of the header either still gives a valid model or is
 * refused: never a crash (the run would die) or a silent mismatch. */
static void survives_corrupted_headers(void)
{
    cn_model *m = small_model();
    CHECK(m);
    const char *path = th_path("c.safetensors"), *bad = th_path("bad.safetensors");
    CHECK_OK(cn_model_save(m, path));
    size_t size;
    unsigned char *b = th_read_file(path, &size);
    CHECK(b);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)b[i] << (8 * i);
    static const unsigned char subs[] = {0x00, '"', '}', '9', 0xff, ' ', '-', 'x'};
    size_t refused = 0, tried = 0;
    for (size_t pos = 0; pos < 8 + hlen; pos += 3) {
        unsigned char keep = b[pos];
        b[pos] = subs[pos % sizeof subs];
        if (b[pos] == keep)
            b[pos] ^= 0x20;
        CHECK(th_write_file(bad, b, size));
        cn_model *l = NULL;
        cn_status st = cn_model_load(bad, th_dev(1), &l);
        tried++;
        if (st != CN_OK) {
            CHECK(st == CN_ERR_FORMAT || st == CN_ERR_SPEC);
            CHECK(cn_last_error()[0] != '\0');
            refused++;
        }
        cn_model_free(l);
        b[pos] = keep;
    }
    CHECK(refused > 0 && tried > 100);
    free(b);
    cn_model_free(m);
}

/* A safetensors file whose header is json, then data_len zero bytes. */
static int write_st(const char *path, const char *json, size_t data_len)
{
    return th_write_safetensors(path, strlen(json), json, data_len);
}

static void refuses_lying_headers(void)
{
    const char *p = th_path("lie.safetensors");
    cn_st_file f;
    /* A 100 GB tensor in a tiny file. */
    CHECK(write_st(
        p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[25000000000],\"data_offsets\":[0,100000000000]}}",
        8));
    CHECK_ERR(cn_st_open(p, &f), CN_ERR_FORMAT);
    CHECK(th_contains(cn_last_error(), "outside"));
    /* Shape and offsets disagree. */
    CHECK(write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8));
    CHECK_ERR(cn_st_open(p, &f), CN_ERR_FORMAT);
    /* Overlap, hole, unknown dtype, negative and fractional sizes, duplicates. */
    CHECK(write_st(p,
                   "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                   12));
    CHECK_ERR(cn_st_open(p, &f), CN_ERR_FORMAT);
    CHECK(write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8));
    CHECK_ERR(cn_st_open(p, &f), CN_ERR_FORMAT);
    CHECK(write_st(p, "{\"a\":{\"dtype\":\"Q7\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4));
    CHECK_ERR(cn_st_open(p, &f), CN_ERR_FORMAT);
    CHECK(write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4));
    CHECK_ERR(cn_st_open(p, &f), CN_ERR_FORMAT);
    CHECK(write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4));
    CHECK_ERR(cn_st_open(p, &f), CN_ERR_FORMAT);
    CHECK(write_st(p,
                   "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                   "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                   8));
    CHECK_ERR(cn_st_open(p, &f), CN_ERR_FORMAT);
    CHECK(write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} junk", 4));
    CHECK_ERR(cn_st_open(p, &f), CN_ERR_FORMAT);
    /* A header length larger than the file. */
    unsigned char big[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, '{', '}'};
    CHECK(th_write_file(p, big, sizeof big));
    CHECK_ERR(cn_st_open(p, &f), CN_ERR_FORMAT);
    /* A valid safetensors file that is not a convnet model. */
    CHECK(write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4));
    CHECK_OK(cn_st_open(p, &f));
    cn_st_close(&f);
    cn_model *m;
    CHECK_ERR(cn_model_load(p, th_dev(1), &m), CN_ERR_FORMAT);
    CHECK(th_contains(cn_last_error(), "not a convnet model"));
}

/* Rewrites a model's file with tensor `name` changed by edit(). */
static void refuses_mismatched_tensors(void)
{
    cn_model *m = small_model();
    CHECK(m);
    const char *path = th_path("w.safetensors");
    CHECK_OK(cn_model_save(m, path));
    size_t size;
    unsigned char *b = th_read_file(path, &size);
    CHECK(b);
    char *conv = strstr((char *)b + 8, "[2,1,3,3]");
    CHECK(conv);
    /* Same byte count, different shape: [2,1,9,1]. */
    memcpy(conv, "[2,1,9,1]", 9);
    CHECK(th_write_file(path, b, size));
    cn_model *l;
    CHECK_ERR(cn_model_load(path, th_dev(1), &l), CN_ERR_FORMAT);
    CHECK(th_contains(cn_last_error(), "conv1.weight") &&
          th_contains(cn_last_error(), "[2, 1, 3, 3]"));
    memcpy(conv, "[2,1,3,3]", 9);
    /* A NaN weight. */
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)b[i] << (8 * i);
    float nan = NAN;
    memcpy(b + 8 + hlen, &nan, 4);
    CHECK(th_write_file(path, b, size));
    CHECK_ERR(cn_model_load(path, th_dev(1), &l), CN_ERR_FORMAT);
    CHECK(th_contains(cn_last_error(), "NaN"));
    /* A renamed tensor: missing. */
    float zero = 0;
    memcpy(b + 8 + hlen, &zero, 4);
    char *name = strstr((char *)b + 8, "\"fc1.bias\"");
    CHECK(name);
    name[1] = 'g';
    CHECK(th_write_file(path, b, size));
    CHECK_ERR(cn_model_load(path, th_dev(1), &l), CN_ERR_FORMAT);
    CHECK(th_contains(cn_last_error(), "fc1.bias") && th_contains(cn_last_error(), "missing"));
    free(b);
    cn_model_free(m);
}

/* A save that cannot complete leaves the previous file as it was. */
static void failed_save_keeps_previous_file(void)
{
    cn_model *m = small_model();
    CHECK(m);
    const char *dir = th_path("ro");
    CHECK(mkdir(dir, 0755) == 0);
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK_OK(cn_model_save(m, path));
    size_t size0;
    unsigned char *before = th_read_file(path, &size0);
    /* A directory where the temporary file should go makes the write fail. */
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
    CHECK(mkdir(tmp, 0755) == 0);
    th_put(cn_model_net(m), CN_PARAMS, 0, th_get(cn_model_net(m), CN_PARAMS, 0) + 1);
    CHECK_ERR(cn_model_save(m, path), CN_ERR_IO);
    size_t size1;
    unsigned char *after = th_read_file(path, &size1);
    CHECK(before && after && size0 == size1 && memcmp(before, after, size0) == 0);
    rmdir(tmp);
    cn_model *l;
    CHECK_OK(cn_model_load(path, th_dev(1), &l));
    cn_model_free(l);
    free(before);
    free(after);
    cn_model_free(m);
}

/* ------------------------------------------------------------------ IDX */

static int write_idx(const char *path, int gz, int ndim, const uint32_t *dims, const uint8_t *data,
                     size_t n, size_t claimed_extra)
{
    uint8_t head[4 + 16] = {0, 0, 8, (uint8_t)ndim};
    for (int d = 0; d < ndim; d++) {
        uint32_t v = dims[d];
        head[4 + 4 * d] = (uint8_t)(v >> 24);
        head[5 + 4 * d] = (uint8_t)(v >> 16);
        head[6 + 4 * d] = (uint8_t)(v >> 8);
        head[7 + 4 * d] = (uint8_t)v;
    }
    (void)claimed_extra;
    size_t hl = 4 + 4 * (size_t)ndim;
    if (!gz) {
        FILE *f = fopen(path, "wb");
        if (!f)
            return 0;
        int ok = fwrite(head, 1, hl, f) == hl && fwrite(data, 1, n, f) == n;
        return fclose(f) == 0 && ok;
    }
    gzFile f = gzopen(path, "wb");
    if (!f)
        return 0;
    int ok = gzwrite(f, head, (unsigned)hl) == (int)hl &&
             (n == 0 || gzwrite(f, data, (unsigned)n) == (int)n);
    return gzclose(f) == Z_OK && ok;
}

static void idx_round_trip(void)
{
    uint8_t pix[5 * 3 * 2], lab[5] = {0, 4, 2, 2, 1};
    for (int i = 0; i < 30; i++)
        pix[i] = (uint8_t)(i * 7);
    uint32_t di[3] = {5, 3, 2}, dl[1] = {5};
    for (int gz = 0; gz < 2; gz++) {
        const char *im = th_path(gz ? "i.gz" : "i.idx"), *lb = th_path(gz ? "l.gz" : "l.idx");
        CHECK(write_idx(im, gz, 3, di, pix, 30, 0) && write_idx(lb, gz, 1, dl, lab, 5, 0));
        cn_data d;
        CHECK_OK(cn_data_load_idx(im, lb, &d));
        CHECK(d.n == 5 && d.shape.c == 1 && d.shape.h == 3 && d.shape.w == 2 && d.classes == 5);
        CHECK(memcmp(d.pixels, pix, 30) == 0 && d.labels[1] == 4 && d.labels[4] == 1);
        cn_data s = cn_data_slice(&d, 3, 10);
        CHECK(s.n == 2 && s.labels[0] == 2 && s.pixels == d.pixels + 18 && !s.owned);
        cn_data_free(&s); /* a slice frees nothing */
        cn_data_free(&d);
    }
}

static void idx_refuses_bad_files(void)
{
    uint8_t pix[64] = {0}, lab[4] = {0};
    const char *im = th_path("bi.idx"), *lb = th_path("bl.idx");
    uint32_t dl[1] = {4};
    CHECK(write_idx(lb, 0, 1, dl, lab, 4, 0));
    cn_data d;
    for (int gz = 0; gz < 2; gz++) {
        /* Truncated: 4 images of 4x4 claimed, 3 present. */
        uint32_t di[3] = {4, 4, 4};
        CHECK(write_idx(im, gz, 3, di, pix, 48, 0));
        CHECK_ERR(cn_data_load_idx(im, lb, &d), CN_ERR_FORMAT);
        CHECK(th_contains(cn_last_error(), im));
        /* Data after the end. */
        CHECK(write_idx(im, gz, 3, di, pix, 64 + 0, 0));
        CHECK_OK(cn_data_load_idx(im, lb, &d));
        cn_data_free(&d);
        uint8_t more[65] = {0};
        CHECK(write_idx(im, gz, 3, di, more, 65, 0));
        CHECK_ERR(cn_data_load_idx(im, lb, &d), CN_ERR_FORMAT);
        /* Absurd: 10^9 images of 10^5 x 10^5 pixels, refused before any allocation. */
        uint32_t huge[3] = {1000000000u, 100000, 100000};
        CHECK(write_idx(im, gz, 3, huge, pix, 64, 0));
        CHECK_ERR(cn_data_load_idx(im, lb, &d), CN_ERR_FORMAT);
        CHECK(th_contains(cn_last_error(), "claims"));
        /* A large claim in a small compressed file fails without a huge allocation. */
        uint32_t big[3] = {4000, 1000, 1000};
        CHECK(write_idx(im, gz, 3, big, pix, 64, 0));
        CHECK_ERR(cn_data_load_idx(im, lb, &d), CN_ERR_FORMAT);
    }
    /* Wrong magic, wrong type, wrong dimensions, label count mismatch. */
    uint8_t junk[12] = {1, 2, 8, 3};
    CHECK(th_write_file(im, junk, sizeof junk));
    CHECK_ERR(cn_data_load_idx(im, lb, &d), CN_ERR_FORMAT);
    uint8_t flt[8] = {0, 0, 0x0d, 1, 0, 0, 0, 1};
    CHECK(th_write_file(im, flt, sizeof flt));
    CHECK_ERR(cn_data_load_idx(im, lb, &d), CN_ERR_FORMAT);
    CHECK(th_contains(cn_last_error(), "0x0d"));
    uint32_t d3[3] = {3, 4, 4};
    CHECK(write_idx(im, 0, 3, d3, pix, 48, 0));
    CHECK_ERR(cn_data_load_idx(im, lb, &d), CN_ERR_FORMAT);
    CHECK(th_contains(cn_last_error(), "4 labels") && th_contains(cn_last_error(), "3 images"));
    CHECK_ERR(cn_data_load_idx(lb, lb, &d), CN_ERR_FORMAT);
    CHECK_ERR(cn_data_load_idx("no/such", lb, &d), CN_ERR_IO);
    CHECK_ERR(cn_data_load_mnist(th_tmpdir(), "train", &d), CN_ERR_IO);
    CHECK(th_contains(cn_last_error(), "fetch-data.sh"));
}

/* A caller's notes go into the file and come back; keys are checked. */
static void model_keeps_notes(void)
{
    cn_model *m = small_model();
    CHECK(m);
    CHECK(cn_model_info(m, "data.dir") == NULL);
    CHECK_OK(cn_model_set_info(m, "data.dir", "/somewhere/mnist"));
    CHECK_OK(cn_model_set_info(m, "data.limit", "2000"));
    CHECK_OK(cn_model_set_info(m, "gone", "x"));
    CHECK_OK(cn_model_set_info(m, "data.limit", "20000")); /* replaced */
    CHECK_OK(cn_model_set_info(m, "gone", NULL));          /* removed */
    CHECK_ERR(cn_model_set_info(m, "", "x"), CN_ERR_ARG);
    CHECK_ERR(cn_model_set_info(m, "a key", "x"), CN_ERR_ARG);
    const char *path = th_path("notes.safetensors");
    CHECK_OK(cn_model_save(m, path));
    cn_model *l;
    CHECK_OK(cn_model_load(path, th_dev(1), &l));
    CHECK(l && cn_model_info(l, "data.dir") &&
          !strcmp(cn_model_info(l, "data.dir"), "/somewhere/mnist"));
    CHECK(l && cn_model_info(l, "data.limit") && !strcmp(cn_model_info(l, "data.limit"), "20000"));
    CHECK(l && cn_model_info(l, "gone") == NULL);
    cn_model_free(l);
    cn_model_free(m);
    /* The fingerprint follows the contents, not where they are. */
    uint8_t pix[2 * 4] = {1, 2, 3, 4, 5, 6, 7, 8}, other[8];
    int32_t lab[2] = {0, 1};
    memcpy(other, pix, sizeof pix);
    cn_data a = {.n = 2, .shape = {1, 2, 2}, .classes = 2, .pixels = pix, .labels = lab},
            b = {.n = 2, .shape = {1, 2, 2}, .classes = 2, .pixels = other, .labels = lab};
    CHECK(cn_data_fingerprint(&a) == cn_data_fingerprint(&b));
    other[7] ^= 1;
    CHECK(cn_data_fingerprint(&a) != cn_data_fingerprint(&b));
    other[7] ^= 1;
    lab[1] = 0;
    CHECK(cn_data_fingerprint(&a) == cn_data_fingerprint(&b)); /* the same labels */
    b.classes = 3;
    CHECK(cn_data_fingerprint(&a) != cn_data_fingerprint(&b));
}

/* Class names go into the file and come back; a file whose names are
 * damaged is refused, naming what is wrong. */
static void model_keeps_class_names(void)
{
    cn_model *m = small_model();
    CHECK(m);
    size_t k = cn_net_classes(cn_model_net(m));
    CHECK(k >= 2 && k <= 10 && cn_model_class_names(m) == NULL);
    const char *names[10] = {"ant", "bee", "cat", "dog", "eel", "fox", "gnu", "hen", "ibex", "jay"};
    CHECK_OK(cn_model_set_class_names(m, names));
    const char *dup[10];
    memcpy(dup, names, sizeof dup);
    dup[k - 1] = "ant";
    CHECK_ERR(cn_model_set_class_names(m, dup), CN_ERR_ARG);
    CHECK(th_contains(cn_last_error(), "same name"));
    CHECK(strcmp(cn_model_class_names(m)[k - 1], names[k - 1]) == 0); /* kept */
    const char *path = th_path("names.safetensors");
    CHECK_OK(cn_model_save(m, path));
    cn_model *l = NULL;
    CHECK_OK(cn_model_load(path, th_dev(1), &l));
    const char *const *got = l ? cn_model_class_names(l) : NULL;
    CHECK(got);
    for (size_t i = 0; got && i < k; i++)
        CHECK(strcmp(got[i], names[i]) == 0);
    cn_model_free(l);
    /* the last name made equal to the first, in place (same length) */
    size_t size;
    unsigned char *b = th_read_file(path, &size);
    CHECK(b);
    char last[16];
    snprintf(last, sizeof last, "\\\"%s\\\"]", names[k - 1]);
    unsigned char *at = NULL;
    for (size_t i = 0; b && !at && i + strlen(last) <= size; i++)
        if (memcmp(b + i, last, strlen(last)) == 0)
            at = b + i;
    CHECK(at);
    if (at) {
        memcpy(at + 2, "ant", 3);
        FILE *f = fopen(path, "wb");
        CHECK(f && fwrite(b, 1, size, f) == size && fclose(f) == 0);
        CHECK_ERR(cn_model_load(path, th_dev(1), &l), CN_ERR_FORMAT);
        CHECK(th_contains(cn_last_error(), "convnet.classes") &&
              th_contains(cn_last_error(), "same name"));
    }
    free(b);
    CHECK_OK(cn_model_set_class_names(m, NULL));
    CHECK_OK(cn_model_save(m, path));
    CHECK_OK(cn_model_load(path, th_dev(1), &l));
    CHECK(l && cn_model_class_names(l) == NULL);
    cn_model_free(l);
    cn_model_free(m);
}

const th_test th_io[] = {
    {"io/model_keeps_notes", model_keeps_notes},
    {"io/model_keeps_class_names", model_keeps_class_names},
    {"io/model_round_trip", model_round_trip},
    {"io/model_keeps_buffers", model_keeps_buffers},
    {"io/refuses_truncated_files", refuses_truncated_files},
    {"io/survives_corrupted_headers", survives_corrupted_headers},
    {"io/refuses_lying_headers", refuses_lying_headers},
    {"io/refuses_mismatched_tensors", refuses_mismatched_tensors},
    {"io/failed_save_keeps_previous_file", failed_save_keeps_previous_file},
    {"io/idx_round_trip", idx_round_trip},
    {"io/idx_refuses_bad_files", idx_refuses_bad_files},
    {NULL, NULL},
};
