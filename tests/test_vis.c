/* test_vis.c - image files, the conversion of pictures into network input,
 * and the pictures: filter grids, feature maps, strongest images, the
 * confusion matrix and training curves, checked pixel by pixel. */
#include "convnet_vis.h"
#include "fit_forms.h"
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stb/stb_image.h>

static uint8_t *px(cn_image *img, int x, int y)
{
    return img->px + ((size_t)y * (size_t)img->w + (size_t)x) * (size_t)img->c;
}

static int is_rgb(cn_image *img, int x, int y, int r, int g, int b)
{
    uint8_t *p = px(img, x, y);
    return p[0] == r && p[1] == g && p[2] == b;
}

/* PNG out and back in (through stb, a different library), grey and RGB. */
static void png_round_trip(void)
{
    for (int c = 1; c <= 3; c += 2) {
        cn_image img;
        CHECK_OK(cn_image_new(7, 5, c, &img));
        for (size_t i = 0; i < 7 * 5 * (size_t)c; i++)
            img.px[i] = (uint8_t)(i * 37 + 11);
        char path[512];
        snprintf(path, sizeof path, "%s/rt%d.png", th_tmpdir(), c);
        CHECK_OK(cn_image_write_png(&img, path));
        int w, h, n;
        unsigned char *d = stbi_load(path, &w, &h, &n, 3);
        CHECK(d && w == 7 && h == 5);
        for (size_t i = 0; i < 35; i++)
            for (int k = 0; k < 3; k++)
                CHECK(d[3 * i + (size_t)k] == img.px[i * (size_t)c + (size_t)(c == 3 ? k : 0)]);
        stbi_image_free(d);
        uint8_t *mem;
        size_t size;
        CHECK_OK(cn_image_encode_png(&img, &mem, &size));
        d = stbi_load_from_memory(mem, (int)size, &w, &h, &n, 3);
        CHECK(d && w == 7 && h == 5 && d[3] == img.px[c == 3 ? 3 : 1]);
        stbi_image_free(d);
        free(mem);
        /* Our own reader gives the pixels back, grey stays grey. */
        cn_image back;
        CHECK_OK(cn_image_load(path, &back));
        CHECK(back.w == 7 && back.h == 5);
        if (c == 1) {
            /* cairo writes RGB; a grey picture comes back as equal channels */
            CHECK(back.c == 3 && back.px[3] == img.px[1] && back.px[4] == img.px[1]);
        } else {
            CHECK(back.c == 3 && memcmp(back.px, img.px, 35 * 3) == 0);
        }
        cn_image_free(&back);
        cn_image_free(&img);
    }
}

/* Planes (C, H, W) to an interleaved picture, enlarged. */
static void image_from_planes(void)
{
    const uint8_t rgb[3 * 2 * 3] = {1,  2,  3,  4,  5,  6,  11, 12, 13,
                                    14, 15, 16, 21, 22, 23, 24, 25, 26};
    cn_image img;
    CHECK_OK(cn_image_from_planes(rgb, (cn_shape){3, 2, 3}, 2, &img));
    CHECK(img.w == 6 && img.h == 4 && img.c == 3);
    CHECK(is_rgb(&img, 0, 0, 1, 11, 21) && is_rgb(&img, 1, 1, 1, 11, 21));
    CHECK(is_rgb(&img, 5, 3, 6, 16, 26) && is_rgb(&img, 2, 0, 2, 12, 22));
    cn_image_free(&img);
    CHECK_OK(cn_image_from_planes(rgb, (cn_shape){1, 2, 3}, 1, &img));
    CHECK(img.c == 1 && img.w == 3 && memcmp(img.px, rgb, 6) == 0);
    cn_image_free(&img);
}

/* A PGM written by hand is read as grey; a text file or a missing file is a
 * clear error naming the file. */
static void load_formats_and_errors(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/a.pgm", th_tmpdir());
    FILE *f = fopen(path, "wb");
    CHECK(f);
    fprintf(f, "P5\n3 2\n255\n");
    const uint8_t pix[6] = {0, 50, 100, 150, 200, 250};
    fwrite(pix, 1, 6, f);
    fclose(f);
    cn_image img;
    CHECK_OK(cn_image_load(path, &img));
    CHECK(img.w == 3 && img.h == 2 && img.c == 1 && memcmp(img.px, pix, 6) == 0);
    cn_image_free(&img);

    snprintf(path, sizeof path, "%s/not.png", th_tmpdir());
    f = fopen(path, "w");
    CHECK(f);
    fputs("this is text, not a picture\n", f);
    fclose(f);
    CHECK_ERR(cn_image_load(path, &img), CN_ERR_FORMAT);
    CHECK(th_contains(cn_last_error(), "not.png") && th_contains(cn_last_error(), "not an image"));
    CHECK(img.px == NULL);
    CHECK_ERR(cn_image_load("no/such/file.png", &img), CN_ERR_IO);
    CHECK(th_contains(cn_last_error(), "no/such/file.png: cannot open"));
}

/* A 100 x 80 grey picture with a bar of 10 x 40 pixels (level 200 on 30). */
static void bar_picture(cn_image *img, int dark_on_light, int colour)
{
    cn_image_new(100, 80, colour ? 3 : 1, img);
    for (int y = 0; y < 80; y++)
        for (int x = 0; x < 100; x++) {
            int ink = x >= 60 && x < 70 && y >= 10 && y < 50;
            int v = ink ? 200 : 30;
            if (dark_on_light)
                v = 255 - v;
            uint8_t *p = px(img, x, y);
            if (colour) { /* ink and paper of these luminances, in colour */
                p[0] = (uint8_t)v;
                p[1] = (uint8_t)v;
                p[2] = (uint8_t)v;
            } else {
                p[0] = (uint8_t)v;
            }
        }
}

/* The digit fit: light ink on black, the ink's longer side 20 of 28, its
 * centre of mass at (14, 14); the same from a dark-on-light or colour
 * version of the picture. */
static void digit_fit(void)
{
    cn_shape s = {1, 28, 28};
    uint8_t ref[784], out[784];
    for (int variant = 0; variant < 3; variant++) {
        cn_image img;
        bar_picture(&img, variant == 1, variant == 2);
        CHECK_OK(cn_image_to_input(&img, s, CN_FIT_AUTO, variant ? out : ref));
        cn_image_free(&img);
        if (variant) {
            int same = memcmp(out, ref, 784) == 0;
            CHECK_MSG(same, "variant %d of the bar differs from the plain one", variant);
        }
    }
    int y0 = 28, y1 = -1, x0 = 28, x1 = -1, peak = 0;
    double mass = 0, mx = 0, my = 0;
    for (int y = 0; y < 28; y++)
        for (int x = 0; x < 28; x++) {
            int v = ref[y * 28 + x];
            peak = v > peak ? v : peak;
            mass += v;
            mx += v * x;
            my += v * y;
            if (v >= 128) {
                y0 = y < y0 ? y : y0;
                y1 = y > y1 ? y : y1;
                x0 = x < x0 ? x : x0;
                x1 = x > x1 ? x : x1;
            }
        }
    CHECK(peak == 255);
    CHECK_MSG(y1 - y0 + 1 == 20, "the bar is %d pixels tall, expected 20", y1 - y0 + 1);
    CHECK_MSG(x1 - x0 + 1 == 5, "the bar is %d pixels wide, expected 5", x1 - x0 + 1);
    CHECK_NEAR(mx / mass, 14.0, 0.5);
    CHECK_NEAR(my / mass, 14.0, 0.5);
    CHECK(ref[0] == 0 && ref[27 * 28 + 27] == 0);
    /* A blank picture is an error, not a guess. */
    cn_image img;
    CHECK_OK(cn_image_new(30, 30, 1, &img));
    memset(img.px, 90, 900);
    CHECK_ERR(cn_image_to_input(&img, s, CN_FIT_DIGIT, out), CN_ERR_FORMAT);
    CHECK(th_contains(cn_last_error(), "blank"));
    cn_image_free(&img);
}

/* MNIST's own test digits come out of the digit fit as they went in, up to
 * the contrast stretch (the brightest pixel becomes 255): they were made by
 * the same procedure. */
static void mnist_digits_are_fixed_points(void)
{
    cn_data d;
    CHECK_OK(cn_data_load_mnist(th_data_dir(), "t10k", &d));
    cn_shape s = {1, 28, 28};
    size_t n = d.n, same = 0, worst = 0;
    for (size_t i = 0; i < n; i++) {
        cn_image img = {28, 28, 1, d.pixels + i * 784};
        uint8_t out[784];
        CHECK_OK(cn_image_to_input(&img, s, CN_FIT_DIGIT, out));
        int peak = 0;
        for (int j = 0; j < 784; j++)
            peak = img.px[j] > peak ? img.px[j] : peak;
        size_t diff = 0;
        for (int j = 0; j < 784; j++)
            diff += abs(out[j] - (int)(img.px[j] * 255.0 / peak + 0.5)) > 1;
        same += diff == 0;
        worst = diff > worst ? diff : worst;
    }
    cn_data_free(&d);
    printf("      %zu of %zu unchanged\n", same, n);
    CHECK_MSG(same >= n * 99 / 100,
              "only %zu of %zu MNIST digits unchanged (the worst: %zu pixels)", same, n, worst);
}

/* The digit fit of forms of n MNIST test digits (tests/fit_forms.h) against
 * that of the digits themselves: none refused as blank, the mean
 * correlation of the 28 x 28 results at least min_mean, and at most
 * max_poor of them correlated under 0.5.  kind 0: ff_crop(inset, invert,
 * size); 1: ff_thin_pen(pen = size, page = inset); 2: that page with
 * uniform noise of +-20 levels (clipped at white).  ink: the mean ratio of
 * the result's ink to the original's (the stroke weight). */
static void fit_forms(const cn_data *d, size_t n, int kind, int inset, int invert, int size,
                      cn_fit fit, double min_mean, size_t max_poor)
{
    cn_shape s = {1, 28, 28};
    double corr = 0.0, ink = 0.0;
    size_t poor = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *dg = d->pixels + i * 784;
        cn_image img = {28, 28, 1, (uint8_t *)dg}, made;
        uint8_t ref[784], out[784];
        CHECK_OK(cn_image_to_input(&img, s, CN_FIT_DIGIT, ref));
        int bad = kind == 0 ? ff_crop(dg, inset, invert, size, &made)
                            : ff_thin_pen(dg, size, inset, &made);
        CHECK_MSG(!bad, "cannot make form of digit %zu", i);
        unsigned seed = (unsigned)i;
        for (size_t j = 0; kind == 2 && j < (size_t)made.w * (size_t)made.h; j++) {
            seed = seed * 1103515245u + 12345u;
            int v = made.px[j] + (int)((seed >> 16) % 41) - 20;
            made.px[j] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
        cn_status st = cn_image_to_input(&made, s, fit, out);
        cn_image_free(&made);
        CHECK_MSG(st == CN_OK, "digit %zu (form %d %d %d %d) refused: %s", i, kind, inset, invert,
                  size, cn_last_error());
        double c = ff_corr(out, ref, 784), a = 0.0, b = 0.0;
        for (int j = 0; j < 784; j++)
            a += out[j], b += ref[j];
        corr += c;
        ink += a / b;
        poor += c < 0.5;
    }
    printf("      %s %d %d %d %d: correlation %.3f, %zu under 0.5, ink %.2f of the original's\n",
           kind == 2 ? "noisy pen"
           : kind    ? "pen"
                     : "crop",
           inset, invert, size, fit, corr / n, poor, ink / n);
    CHECK_MSG(corr / n >= min_mean && poor <= max_poor,
              "mean correlation %.3f (at least %.2f expected), %zu under 0.5 (at most %zu)",
              corr / n, min_mean, poor, max_poor);
    CHECK_MSG(ink / n > 0.6 && ink / n < 1.6, "the ink is %.2f of the original's", ink / n);
}

/* Digits cropped tightly, so that the ink touches the picture's edges (to
 * their bounding box, and one pixel inside it, which cuts strokes), light on
 * dark and dark on light, as they are and enlarged: the digit fit finds the
 * background and keeps the ink (it used to refuse many as blank, or keep a
 * few dots of a 3). */
static void tight_crops(void)
{
    cn_data d;
    CHECK_OK(cn_data_load_mnist(th_data_dir(), "t10k", &d));
    size_t n = 200;
    static const struct {
        int inset, invert, size;
        double mean;
        size_t poor;
    } c[] = {
        {0, 0, 0, 0.97, 2},  {0, 1, 0, 0.97, 2},   {1, 0, 0, 0.75, 12},  {1, 1, 0, 0.75, 12},
        {0, 1, 56, 0.96, 3}, {0, 0, 140, 0.96, 3}, {0, 1, 400, 0.96, 3}, {1, 1, 140, 0.78, 8},
    };
    for (size_t k = 0; k < sizeof c / sizeof *c; k++)
        for (int fit = CN_FIT_AUTO; fit <= CN_FIT_DIGIT && !th_failed(); fit++)
            fit_forms(&d, fit == CN_FIT_AUTO ? n / 4 : n, 0, c[k].inset, c[k].invert, c[k].size,
                      (cn_fit)fit, c[k].mean, c[k].poor);
    cn_data_free(&d);
}

/* Digits redrawn with a thin pen (1 to 3 pixels) on a large white page:
 * shrunk into the 20-pixel box a hairline would become a faint trace; the
 * fit gives it MNIST's stroke weight, also on a noisy page. */
static void thin_pens(void)
{
    cn_data d;
    CHECK_OK(cn_data_load_mnist(th_data_dir(), "t10k", &d));
    for (int pen = 1; pen <= 3 && !th_failed(); pen++)
        fit_forms(&d, 60, 1, 600, 0, pen, CN_FIT_DIGIT, 0.75, 4);
    if (!th_failed())
        fit_forms(&d, 50, 1, 300, 0, 2, CN_FIT_AUTO, 0.75, 3);
    if (!th_failed()) /* the noise is not thickened into a grey haze */
        fit_forms(&d, 50, 2, 600, 0, 2, CN_FIT_DIGIT, 0.75, 3);
    cn_data_free(&d);
}

/* Blank only when there is no ink: a uniform picture, or one of faint
 * blocky noise (as JPEG's), light or dark, is refused; the same noise with
 * a digit on it is not. */
static void blank_pictures(void)
{
    cn_shape s = {1, 28, 28};
    uint8_t out[784];
    cn_data d;
    CHECK_OK(cn_data_load_mnist(th_data_dir(), "t10k", &d));
    for (int level = 0; level < 4; level++) {
        int paper = (int[]){0, 90, 200, 255}[level];
        for (int noisy = 0; noisy < 2; noisy++)
            for (int digit = 0; digit < 2; digit++) {
                cn_image img;
                CHECK_OK(cn_image_new(120, 90, 1, &img));
                unsigned seed = 12345u;
                for (int y = 0; y < 90; y++)
                    for (int x = 0; x < 120; x++) {
                        /* +-3 levels, in 8 x 8 blocks plus a little per pixel */
                        unsigned b = (unsigned)((y / 8) * 16 + x / 8) * 2654435761u;
                        seed = seed * 1103515245u + 12345u;
                        int v =
                            paper + (noisy ? (int)(b >> 29) % 5 - 2 + (int)(seed >> 30) % 2 : 0);
                        if (digit && x >= 40 && x < 68 && y >= 30 && y < 58) {
                            int ink = d.pixels[(y - 30) * 28 + (x - 40)];
                            v = paper > 127 ? v - ink * (v - 20) / 255 : v + ink * (235 - v) / 255;
                        }
                        img.px[y * 120 + x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                    }
                cn_status st = cn_image_to_input(&img, s, CN_FIT_DIGIT, out);
                cn_image_free(&img);
                if (digit)
                    CHECK_MSG(st == CN_OK, "paper %d, noise %d, a digit: refused: %s", paper, noisy,
                              cn_last_error());
                else
                    CHECK_MSG(st == CN_ERR_FORMAT && th_contains(cn_last_error(), "blank"),
                              "paper %d, noise %d, no ink: not refused as blank", paper, noisy);
            }
    }
    cn_data_free(&d);
}

/* Colour networks: CROP takes the centred square, STRETCH all of it. */
static void crop_and_stretch(void)
{
    cn_image img;
    CHECK_OK(cn_image_new(16, 8, 3, &img));
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 16; x++) {
            uint8_t *p = px(&img, x, y);
            p[0] = x < 4 ? 255 : 0;            /* red: the left quarter */
            p[2] = x >= 4 && x < 12 ? 255 : 0; /* blue: the middle half */
            p[1] = (uint8_t)(y * 30);          /* green: rows */
        }
    cn_shape s = {3, 8, 8};
    uint8_t out[3 * 64];
    CHECK_OK(cn_image_to_input(&img, s, CN_FIT_CROP, out));
    for (int i = 0; i < 64; i++) /* the middle 8 x 8: all blue, no red */
        CHECK(out[i] == 0 && out[128 + i] == 255);
    CHECK(out[64 + 7 * 8] == 210);
    CHECK_OK(cn_image_to_input(&img, s, CN_FIT_STRETCH, out));
    CHECK(out[0] == 255 && out[7] == 0 && out[128 + 3] == 255); /* red left, blue middle */
    CHECK_ERR(cn_image_to_input(&img, s, CN_FIT_DIGIT, out), CN_ERR_ARG);
    cn_image_free(&img);
}

/* Seven 3 x 3 filters set to ramps: a 3 x 3 grid of 42-pixel tiles, each
 * tile black at its smallest weight and white at its largest. */
static void filter_grid(void)
{
    cn_spec *spec = th_spec("[net]\nchannels=1\nheight=8\nwidth=8\nclasses=2\n"
                            "[conv]\nfilters=7\nsize=3\n[fc]\noutputs=2\n[softmax]\n");
    CHECK(spec);
    cn_net *net;
    CHECK_OK(cn_net_create(spec, 1, th_dev(1), &net));
    cn_tensor_info ti;
    CHECK_OK(cn_net_tensor(net, cn_net_find_tensor(net, "conv1.weight"), &ti));
    float w[63];
    for (int f = 0; f < 7; f++)
        for (int j = 0; j < 9; j++) /* filter f: f / 4 + j / 2, upside down for odd f */
            w[f * 9 + j] = 0.25f * (float)f + 0.5f * (float)(f % 2 ? 8 - j : j);
    CHECK_OK(cn_net_set(net, CN_PARAMS, ti.offset, 63, w));
    cn_image img;
    CHECK_OK(cn_vis_filters(net, 0, &img));
    int tile = 3 * 14, step = tile + 2; /* enlarged ceil(40 / 3) = 14 times */
    CHECK(img.w == 3 * step + 2 && img.h == 3 * step + 2 && img.c == 3);
    for (int f = 0; f < 9; f++) {
        int x = 2 + (f % 3) * step, y = 2 + (f / 3) * step;
        if (f >= 7) { /* no filter: white */
            CHECK(is_rgb(&img, x + tile / 2, y + tile / 2, 255, 255, 255));
            continue;
        }
        int lo = f % 2 ? 255 : 0, hi = 255 - lo;
        CHECK_MSG(is_rgb(&img, x, y, lo, lo, lo), "filter %d: top left %d", f, px(&img, x, y)[0]);
        CHECK(is_rgb(&img, x + tile - 1, y + tile - 1, hi, hi, hi));
        CHECK(is_rgb(&img, x + tile / 2, y + tile / 2, 128, 128, 128)); /* weight 4 of 0..8 */
        CHECK(is_rgb(&img, x - 1, y, 255, 255, 255));                   /* the gap */
    }
    cn_image_free(&img);
    CHECK_ERR(cn_vis_filters(net, 1, &img), CN_ERR_ARG); /* fc1 */
    CHECK(th_contains(cn_last_error(), "fc1 is a fc layer"));
    cn_net_free(net);
    cn_spec_free(spec);
}

/* A labelled grid of images (viz --augment's): each 4 x 5 image enlarged
 * ceil(56 / 5) = 12 times behind a 110-pixel label column, 3 pixels
 * between; the labels are drawn (dark pixels in the column). */
static void image_grid(void)
{
    const cn_shape s = {1, 4, 5};
    uint8_t pix[6 * 20];
    for (int i = 0; i < 6 * 20; i++)
        pix[i] = (uint8_t)(i * 2 + 1);
    const char *labels[2] = {"as they are", "rotate 10"};
    cn_image img;
    CHECK_OK(cn_vis_grid(pix, s, 2, 3, labels, &img));
    int tw = 60, th = 48;
    CHECK_MSG(img.w == 110 + 3 * (tw + 3) + 3 && img.h == 2 * (th + 3) + 3 && img.c == 3, "%dx%d",
              img.w, img.h);
    for (int r = 0; r < 2; r++)
        for (int j = 0; j < 3; j++)
            for (int y = 0; y < 4; y++)
                for (int x = 0; x < 5; x++) {
                    int v = pix[(r * 3 + j) * 20 + y * 5 + x];
                    int px0 = 110 + 3 + j * (tw + 3) + x * 12 + 5,
                        py0 = 3 + r * (th + 3) + y * 12 + 5;
                    CHECK_MSG(is_rgb(&img, px0, py0, v, v, v), "image %d, pixel (%d, %d)",
                              r * 3 + j, y, x);
                }
    int dark = 0;
    for (int y = 0; y < img.h; y++)
        for (int x = 0; x < 108; x++)
            dark += px(&img, x, y)[0] < 128;
    CHECK(dark > 20);
    cn_image_free(&img);
    CHECK_ERR(cn_vis_grid(pix, (cn_shape){2, 4, 5}, 1, 1, NULL, &img), CN_ERR_ARG);
    CHECK_ERR(cn_vis_grid(pix, s, 0, 3, NULL, &img), CN_ERR_ARG);
}

/* Colour filters: the red, green and blue planes of the weights. */
static void colour_filters(void)
{
    cn_spec *spec = th_spec("[net]\nchannels=3\nheight=8\nwidth=8\nclasses=2\n"
                            "[conv]\nfilters=1\nsize=2\n[fc]\noutputs=2\n[softmax]\n");
    CHECK(spec);
    cn_net *net;
    CHECK_OK(cn_net_create(spec, 1, th_dev(1), &net));
    cn_tensor_info ti;
    CHECK_OK(cn_net_tensor(net, cn_net_find_tensor(net, "conv1.weight"), &ti));
    float w[12]; /* [1, 3, 2, 2] */
    for (int j = 0; j < 12; j++)
        w[j] = j < 4 ? 1.0f : 0.0f; /* red: the whole plane */
    w[4 + 3] = 1.0f;                /* green: the bottom right tap */
    CHECK_OK(cn_net_set(net, CN_PARAMS, ti.offset, 12, w));
    cn_image img;
    CHECK_OK(cn_vis_filters(net, 0, &img));
    CHECK(img.w == 40 + 4 && img.h == 40 + 4);
    CHECK(is_rgb(&img, 2, 2, 255, 0, 0));
    CHECK(is_rgb(&img, 41, 41, 255, 255, 0));
    cn_image_free(&img);
    cn_net_free(net);
    cn_spec_free(spec);
}

/* Feature maps: each tile is its map scaled to its own range. */
static void feature_maps(void)
{
    cn_spec *spec = th_spec("[net]\nchannels=1\nheight=6\nwidth=6\nclasses=2\n"
                            "[conv]\nfilters=2\nsize=3\npad=1\n[fc]\noutputs=2\n[softmax]\n");
    CHECK(spec);
    cn_net *net;
    CHECK_OK(cn_net_create(spec, 1, th_dev(1), &net));
    cn_rng rng;
    cn_rng_seed(&rng, 4);
    cn_net_init(net, &rng);
    float x[36];
    th_fill_normal(x, 36, &rng);
    CHECK_OK(cn_net_forward(net, x, 1, 0));
    const float *y = th_layer_output(net, 0, 1);
    CHECK(y);
    cn_image img;
    CHECK_OK(cn_vis_feature_maps(net, 0, 0, &img));
    int s = 12, tile = 6 * s; /* ceil(72 / 6) */
    CHECK(img.w == 2 * (tile + 2) + 2 && img.h == tile + 4);
    for (int m = 0; m < 2; m++) {
        const float *v = y + m * 36;
        int lo = 0, hi = 0;
        for (int j = 1; j < 36; j++) {
            lo = v[j] < v[lo] ? j : lo;
            hi = v[j] > v[hi] ? j : hi;
        }
        int x0 = 2 + m * (tile + 2);
        CHECK(is_rgb(&img, x0 + (lo % 6) * s + 5, 2 + (lo / 6) * s + 5, 0, 0, 0));
        CHECK(is_rgb(&img, x0 + (hi % 6) * s + 5, 2 + (hi / 6) * s + 5, 255, 255, 255));
    }
    cn_image_free(&img);
    CHECK_ERR(cn_vis_feature_maps(net, 1, 0, &img), CN_ERR_ARG); /* fc1: no maps */
    cn_net_free(net);
    cn_spec_free(spec);
}

/* The strongest images: the same choice as a brute-force search, strongest
 * first, and the tiles are those images. */
static void top_images(void)
{
    cn_spec *spec = th_spec("[net]\nchannels=1\nheight=6\nwidth=6\nclasses=2\n"
                            "[conv]\nfilters=3\nsize=3\n[fc]\noutputs=2\n[softmax]\n");
    CHECK(spec);
    cn_net *net;
    CHECK_OK(cn_net_create(spec, 8, th_dev(1), &net)); /* batches of 8 over 30 images */
    cn_rng rng;
    cn_rng_seed(&rng, 5);
    cn_net_init(net, &rng);
    enum { N = 30, K = 4 };
    uint8_t pixels[N * 36];
    int32_t labels[N] = {0};
    for (int i = 0; i < N * 36; i++)
        pixels[i] = (uint8_t)cn_rng_below(&rng, 256);
    cn_data data = {.n = N, .shape = {1, 6, 6}, .classes = 2, .pixels = pixels, .labels = labels};
    size_t index[3 * K];
    cn_image img;
    CHECK_OK(cn_vis_top_images(net, 0, &data, K, index, &img));
    float act[N][3], x[36];
    for (int i = 0; i < N; i++) {
        cn_net_prepare(net, pixels + i * 36, 1, x);
        CHECK_OK(cn_net_forward(net, x, 1, 0));
        const float *y = th_layer_output(net, 0, 1);
        CHECK(y);
        for (int c = 0; c < 3; c++) {
            act[i][c] = y[c * 16];
            for (int p = 1; p < 16; p++)
                act[i][c] = y[c * 16 + p] > act[i][c] ? y[c * 16 + p] : act[i][c];
        }
    }
    for (int c = 0; c < 3; c++) {
        int used[N] = {0};
        for (int r = 0; r < K; r++) { /* the r-th strongest by brute force */
            int best = -1;
            for (int i = 0; i < N; i++)
                if (!used[i] && (best < 0 || act[i][c] > act[best][c]))
                    best = i;
            used[best] = 1;
            CHECK_MSG(index[c * K + r] == (size_t)best, "channel %d rank %d: %zu, expected %d", c,
                      r, index[c * K + r], best);
        }
    }
    CHECK(img.w == 76 + K * 14 + 2 && img.h == 3 * 14 + 2);
    for (int c = 0; c < 3; c++)
        for (int r = 0; r < K; r++) {
            int x0 = 76 + 2 + r * 14, y0 = 2 + c * 14;
            const uint8_t *p = pixels + index[c * K + r] * 36;
            for (int j = 0; j < 36; j++) {
                int v = p[j];
                CHECK(is_rgb(&img, x0 + 2 * (j % 6) + 1, y0 + 2 * (j / 6) + 1, v, v, v));
            }
        }
    cn_image_free(&img);
    cn_net_free(net);
    cn_spec_free(spec);
}

/* The confusion matrix: cells shaded by their share of the row. */
static void confusion_picture(void)
{
    size_t conf[9] = {10, 0, 0, 0, 5, 5, 1, 0, 99};
    cn_image img;
    CHECK_OK(cn_vis_confusion(conf, 3, &img));
    CHECK(img.w == 64 + 3 * 44 + 12 && img.h == 64 + 3 * 44 + 12);
    /* a corner of each cell, away from the grid line and the count */
    CHECK(is_rgb(&img, 64 + 3, 64 + 3, 8, 48, 107));         /* (0, 0): all of its row */
    CHECK(is_rgb(&img, 64 + 44 + 3, 64 + 3, 247, 251, 255)); /* (0, 1): none */
    uint8_t *half = px(&img, 64 + 44 + 3, 64 + 44 + 3);      /* (1, 1): half, sqrt: 0.71 */
    CHECK_NEAR(half[2], 255 + 0.7071 * (107 - 255), 2);
    uint8_t *rare = px(&img, 64 + 3, 64 + 88 + 3); /* (2, 0): 1 of 100, sqrt: 0.1 */
    CHECK_NEAR(rare[0], 247 + 0.1 * (8 - 247), 2);
    /* the counts are written: dark text in the light (0, 1) cell's middle */
    int dark = 0;
    for (int y = 64 + 14; y < 64 + 30; y++)
        for (int x = 64 + 44 + 14; x < 64 + 44 + 30; x++)
            dark += px(&img, x, y)[0] < 100;
    CHECK_MSG(dark >= 5, "no digit '0' drawn in cell (0, 1) (%d dark pixels)", dark);
    cn_image_free(&img);
}

/* Named classes: the margins grow with the longest name (cut at 16 bytes,
 * not inside a UTF-8 character), the names are drawn left of the rows and
 * above the columns, and a missing name is refused. */
static void confusion_named(void)
{
    size_t conf[4] = {3, 1, 0, 4};
    const char *shortn[] = {"a", "b"}, *longn[] = {"caf\xc3\xa9 au lait, large", "b"};
    cn_image a, b, c;
    CHECK_OK(cn_vis_confusion_named(conf, 2, NULL, &a));
    CHECK(a.w == 64 + 2 * 44 + 12); /* numbers: as cn_vis_confusion */
    CHECK_OK(cn_vis_confusion_named(conf, 2, shortn, &b));
    CHECK_OK(cn_vis_confusion_named(conf, 2, longn, &c));
    CHECK(b.w == b.h && c.w == c.h && c.w > b.w + 60 && c.w < b.w + 200);
    int left = c.w - 2 * 44 - 12, dark = 0, above = 0;
    for (int y = left; y < left + 44; y++) /* the first row's name */
        for (int x = 8; x < left - 8; x++)
            dark += px(&c, x, y)[0] < 100;
    for (int y = 30; y < left - 8; y++) /* the first column's name, upwards */
        for (int x = left + 10; x < left + 34; x++)
            above += px(&c, x, y)[0] < 100;
    CHECK_MSG(dark > 50 && above > 50, "names not drawn (%d, %d dark pixels)", dark, above);
    cn_image_free(&a);
    cn_image_free(&b);
    cn_image_free(&c);
    const char *missing[] = {"a", NULL};
    CHECK_ERR(cn_vis_confusion_named(conf, 2, missing, &a), CN_ERR_ARG);
    CHECK(th_contains(cn_last_error(), "names[1]"));
}

/* Curves: falling loss on the left, rising accuracy on the right, in the
 * training colour; validation dots in orange only when there are any. */
static void curves(void)
{
    cn_curve_point pts[20];
    for (int i = 0; i < 20; i++) {
        double e = (i + 1) * 0.25;
        pts[i] = (cn_curve_point){e, 2.0 / (1 + 4 * e), 0.5 + 0.1 * e, NAN, NAN};
        if ((i + 1) % 4 == 0) {
            pts[i].val_loss = 2.2 / (1 + 4 * e);
            pts[i].val_accuracy = 0.45 + 0.1 * e;
        }
    }
    for (int with_val = 1; with_val >= 0; with_val--) {
        if (!with_val)
            for (int i = 0; i < 20; i++)
                pts[i].val_loss = pts[i].val_accuracy = NAN;
        cn_image img;
        CHECK_OK(cn_vis_curves(pts, 20, &img));
        CHECK(img.w == 960 && img.h == 400);
        double ys[2][2] = {{0}}, ns[2][2] = {{0}};
        int orange = 0;
        for (int y = 0; y < 400; y++)
            for (int x = 0; x < 960; x++) {
                const uint8_t *p = px(&img, x, y);
                if (abs(p[0] - 31) < 20 && abs(p[1] - 119) < 20 && abs(p[2] - 180) < 20) {
                    int panel = x >= 480, half = (x % 480) >= 240;
                    if ((x % 480) > 72 && (x % 480) < 330) { /* not the legends */
                        ys[panel][half] += y;
                        ns[panel][half]++;
                    }
                }
                orange += abs(p[0] - 255) < 20 && abs(p[1] - 127) < 20 && abs(p[2] - 14) < 30;
            }
        for (int pnl = 0; pnl < 2; pnl++)
            CHECK(ns[pnl][0] > 20 && ns[pnl][1] > 20);
        /* image y grows downwards: loss falls (y grows), accuracy rises */
        CHECK(ys[0][0] / ns[0][0] < ys[0][1] / ns[0][1]);
        CHECK(ys[1][0] / ns[1][0] > ys[1][1] / ns[1][1]);
        CHECK_MSG(with_val ? orange > 100 : orange == 0, "%d orange pixels", orange);
        cn_image_free(&img);
    }
    cn_curve_point none = {1, NAN, NAN, NAN, NAN};
    cn_image img;
    CHECK_ERR(cn_vis_curves(&none, 1, &img), CN_ERR_ARG);
}

const th_test th_vis[] = {
    {"vis/png_round_trip", png_round_trip},
    {"vis/load_formats_and_errors", load_formats_and_errors},
    {"vis/image_from_planes", image_from_planes},
    {"vis/digit_fit", digit_fit},
    {"vis/mnist_digits_are_fixed_points", mnist_digits_are_fixed_points},
    {"vis/tight_crops", tight_crops},
    {"vis/thin_pens", thin_pens},
    {"vis/blank_pictures", blank_pictures},
    {"vis/crop_and_stretch", crop_and_stretch},
    {"vis/filter_grid", filter_grid},
    {"vis/image_grid", image_grid},
    {"vis/colour_filters", colour_filters},
    {"vis/feature_maps", feature_maps},
    {"vis/top_images", top_images},
    {"vis/confusion_picture", confusion_picture},
    {"vis/confusion_named", confusion_named},
    {"vis/curves", curves},
    {NULL, NULL},
};
