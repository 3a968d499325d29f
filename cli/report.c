/* report.c - convnet report: one self-contained HTML page about a trained
 * model: summary, layers, curves, confusion matrix, per-class accuracy,
 * first-layer filters and the worst mistakes on the test set. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char help[] =
    "usage: convnet report MODEL_FILE -o FILE.html [options]\n"
    "\n"
    "Writes one HTML page about a model written by 'convnet train', with every\n"
    "picture inside it (it needs no network access and no other file): the model's\n"
    "summary and layers, the training curves, the confusion matrix and per-class\n"
    "accuracy on the test set, the first convolution layer's filters, and the test\n"
    "images the model gets wrong with the highest confidence.\n"
    "\n"
    "  -o FILE.html   the page to write\n"
    "  --log LOG.csv  training log for the curves (default: the .csv beside the\n"
    "                 model file, if there is one)\n"
    "  --mistakes N   how many mistakes to show (default 24)\n"
    "  --data DIR     data directory (default $CONVNET_DATA or data/mnist)\n"
    "  --threads N    worker threads (default: one per core)\n";

/* <img> with img inline as a PNG; frees img.  0 or an exit status. */
static int inline_img(FILE *f, cn_image *img, const char *alt, const char *cls)
{
    uint8_t *png;
    size_t n;
    cn_status st = cn_image_encode_png(img, &png, &n);
    int w = img->w, h = img->h;
    cn_image_free(img);
    if (st)
        return cli_lib_error();
    fprintf(f, "<img class=\"%s\" width=\"%d\" height=\"%d\" alt=\"", cls, w, h);
    cli_html(f, alt);
    fputs("\" src=\"data:image/png;base64,", f);
    cli_base64(f, png, n);
    fputs("\">", f);
    free(png);
    return 0;
}

typedef struct mistake {
    size_t index;
    int truth, guess;
    float p;
} mistake;

static int by_confidence(const void *a, const void *b)
{
    const mistake *x = a, *y = b;
    return (x->p < y->p) - (x->p > y->p);
}

static const char style[] =
    "body{font-family:'DejaVu Sans',Verdana,sans-serif;margin:24px auto;max-width:1040px;"
    "color:#222;background:#fff}\n"
    "h1{font-size:24px;margin-bottom:4px}h2{font-size:18px;margin-top:32px;"
    "border-bottom:1px solid #ccc;padding-bottom:4px}\n"
    "table{border-collapse:collapse;font-size:13px}td,th{padding:3px 10px;text-align:right;"
    "border-bottom:1px solid #eee}th{background:#f3f3f3}td.l,th.l{text-align:left}\n"
    ".muted{color:#666;font-size:13px}.big{font-size:20px;font-weight:bold}\n"
    ".bar{display:inline-block;height:10px;background:#777;vertical-align:middle}\n"
    ".gallery{display:flex;flex-wrap:wrap;gap:10px}.gallery figure{margin:0;width:104px;"
    "text-align:center;font-size:12px}\n"
    "img.px{image-rendering:pixelated;width:84px;height:84px;border:1px solid #ccc}\n"
    "img.pic{max-width:100%;height:auto}\n"
    ".gallery figure.cam{width:270px}\n";

int cmd_report(int argc, char **argv)
{
    enum { O_OUT = 256, O_LOG, O_MISTAKES, O_DATA, O_THREADS, O_HELP };
    static const cli_opt opts[] = {
        {"o", 1, O_OUT},
        {"log", 1, O_LOG},
        {"mistakes", 1, O_MISTAKES},
        {"data", 1, O_DATA},
        {"threads", 1, O_THREADS},
        {"help", 0, O_HELP},
        {"h", 0, O_HELP},
        {NULL, 0, 0},
    };
    const char *v, *path = NULL, *out = NULL, *log = NULL, *data_opt = NULL;
    long threads = 0, n_mistakes = 24;
    int c;
    cli_iter it;
    cli_begin(&it, "report", argc, argv);
    while ((c = cli_next(&it, opts, &v)) != CLI_END) {
        switch (c) {
        case CLI_ERROR: return EXIT_USAGE;
        case CLI_POSITIONAL:
            if (path)
                return cli_usage("report", "takes one model file, got '%s' and '%s'", path, v);
            path = v;
            break;
        case O_OUT: out = v; break;
        case O_LOG: log = v; break;
        case O_MISTAKES:
            if (!cli_int(v, 0, 1000, &n_mistakes))
                return cli_usage("report",
                                 "--mistakes takes a whole number from 0 to 1000, "
                                 "not '%s'",
                                 v);
            break;
        case O_DATA: data_opt = v; break;
        case O_THREADS:
            if (cli_threads("report", v, &threads))
                return EXIT_USAGE;
            break;
        case O_HELP: fputs(help, stdout); return 0;
        }
    }
    if (!path)
        return cli_usage("report", "takes a model file");
    if (!out)
        return cli_usage("report", "needs -o FILE.html");
    /* The log beside the model file (as train names it), unless one is named. */
    char *beside = log ? NULL : cli_log_name(path);
    if (beside) {
        FILE *t = fopen(beside, "r");
        if (t) {
            fclose(t);
            log = beside;
        }
    }
    cn_curve_point *pts = NULL;
    size_t npts = 0;
    if (log) {
        int rc = cli_read_log(log, &pts, &npts);
        if (rc) {
            free(beside);
            return rc;
        }
    }
    cn_model *model;
    int rc = cli_load_model("report", path, threads, &model);
    if (rc) {
        free(pts);
        free(beside);
        return rc;
    }
    cn_data test = {0};
    cn_eval ev = {0};
    cn_image img = {0};
    mistake *wrong = NULL;
    FILE *f = NULL, *file = NULL; /* the page as it is written, and its file */
    char *page = NULL;
    size_t page_size = 0;
    int own;
    const char *dir = cli_model_data_dir(model, data_opt, &own);
    if (own)
        printf("data: %s (the model's own; --data for other data)\n", dir);
    if (cli_load_data(model, dir, "test", &test) ||
        cn_net_evaluate(cn_model_net(model), &test, &ev)) {
        rc = cli_lib_error();
        goto done;
    }
    cn_net *net = cn_model_net(model);
    cn_shape s = cn_net_input_shape(net);
    size_t k = ev.classes, sz = s.c * s.h * s.w, nwrong = 0;
    const size_t *conf = ev.confusion;
    wrong = malloc((test.n ? test.n : 1) * sizeof *wrong);
    if (!wrong) {
        rc = cli_error("out of memory");
        goto done;
    }
    for (size_t i = 0; i < test.n; i++)
        if (ev.predicted[i] != (size_t)test.labels[i])
            wrong[nwrong++] = (mistake){i, test.labels[i], (int)ev.predicted[i], ev.probability[i]};
    qsort(wrong, nwrong, sizeof *wrong, by_confidence);

    /* The file now (a directory that is missing says so at once), the page
     * in memory, written at the end: one write says whether it all fits. */
    file = fopen(out, "w");
    if (!file) {
        rc = cli_error("cannot write %s: %s", out, strerror(errno));
        goto done;
    }
    f = open_memstream(&page, &page_size);
    if (!f) {
        rc = cli_error("out of memory");
        goto done;
    }
    const cn_train_state *ts = cn_model_state(model);
    const cn_train_opts *o = cn_model_opts(model);
    size_t params;
    uint64_t macs;
    cli_totals(net, &params, &macs);
    char when[64], pb[32], mb[32];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M", localtime(&now));
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>convnet "
          "report: ",
          f);
    cli_html(f, path);
    fprintf(f, "</title>\n<style>\n%s</style></head><body>\n<h1>", style);
    cli_html(f, path);
    fprintf(f, "</h1>\n<p class=\"muted\">convnet %s report, %s</p>\n", CN_VERSION, when);
    fprintf(f,
            "<p class=\"big\">test accuracy %.2f%% &middot; loss %.4f &middot; %zu of "
            "%zu test images wrong</p>\n",
            100.0 * ev.accuracy, ev.loss, nwrong, test.n);
    fprintf(f,
            "<table><tr><th class=\"l\">input</th><td class=\"l\">%zu&times;%zu&times;%zu, %zu "
            "classes</td></tr>\n<tr><th class=\"l\">parameters</th><td class=\"l\">%s</td></tr>\n"
            "<tr><th class=\"l\">multiply-adds per image</th><td class=\"l\">%s</td></tr>\n"
            "<tr><th class=\"l\">trained</th><td class=\"l\">%d of %d epochs, %llu steps of batch "
            "%d</td></tr>\n<tr><th class=\"l\">recipe</th><td class=\"l\">lr %g (%s), momentum "
            "%g, decay %g, seed %llu</td></tr></table>\n",
            s.c, s.h, s.w, k, cli_count(params, pb, sizeof pb), cli_count(macs, mb, sizeof mb),
            ts->epoch, o->epochs, (unsigned long long)ts->global_step, o->batch, o->lr,
            cn_lr_policy_name(o->policy), o->momentum, o->decay, (unsigned long long)o->seed);

    fputs("<h2>Layers</h2>\n<table><tr><th class=\"l\">layer</th><th class=\"l\">kind</th>"
          "<th>output</th><th>parameters</th><th>multiply-adds</th></tr>\n",
          f);
    long first_conv = -1;
    for (size_t i = 0; i < cn_net_num_layers(net); i++) {
        cn_layer_info li;
        cn_net_layer(net, i, &li);
        if (first_conv < 0 && !strcmp(li.kind, "conv"))
            first_conv = (long)i;
        fprintf(f,
                "<tr><td class=\"l\">%s</td><td class=\"l\">%s</td><td>%zu&times;%zu&times;%zu"
                "</td><td>%s</td><td>%s</td></tr>\n",
                li.name, li.kind, li.out.c, li.out.h, li.out.w, cli_count(li.params, pb, sizeof pb),
                cli_count(li.macs, mb, sizeof mb));
    }
    fputs("</table>\n<h2>Training curves</h2>\n", f);
    if (npts) {
        if (cn_vis_curves(pts, npts, &img)) {
            rc = cli_lib_error();
            goto done;
        }
        if ((rc = inline_img(f, &img, "training curves", "pic")))
            goto done;
        fputs("<p class=\"muted\">from ", f);
        cli_html(f, log);
        fputs("</p>\n", f);
    } else {
        fputs("<p class=\"muted\">no training log was found beside the model file (give one "
              "with --log)</p>\n",
              f);
    }

    fputs("<h2>Confusion matrix (test set)</h2>\n", f);
    if (cn_vis_confusion_named(conf, k, cn_model_class_names(model), &img)) {
        rc = cli_lib_error();
        goto done;
    }
    if ((rc = inline_img(f, &img, "confusion matrix", "pic")))
        goto done;
    fputs("<h2>Accuracy per class</h2>\n<table><tr><th>class</th><th>images</th><th>accuracy"
          "</th><th class=\"l\"></th></tr>\n",
          f);
    for (size_t t = 0; t < k; t++) {
        size_t total = 0;
        for (size_t j = 0; j < k; j++)
            total += conf[t * k + j];
        double acc = total ? (double)conf[t * k + t] / (double)total : 0.0;
        fprintf(f, "<tr><td>%zu", t);
        if (cn_model_class_names(model)) {
            fputs(" ", f);
            cli_html(f, cn_model_class_names(model)[t]);
        }
        fprintf(f,
                "</td><td>%zu</td><td>%.2f%%</td><td class=\"l\"><span class=\"bar\" "
                "style=\"width:%.0fpx\"></span></td></tr>\n",
                total, 100 * acc, 300 * acc);
    }
    fputs("</table>\n", f);

    if (first_conv >= 0 && !cn_vis_filters(net, (size_t)first_conv, &img)) {
        fputs("<h2>First-layer filters</h2>\n", f);
        if ((rc = inline_img(f, &img, "first-layer filters", "pic")))
            goto done;
        fputs("<p class=\"muted\">each filter scaled to its own range: black its smallest "
              "weight, white its largest</p>\n",
              f);
    }

    size_t show = nwrong < (size_t)n_mistakes ? nwrong : (size_t)n_mistakes;
    /* Beside each mistake, Grad-CAM at the last convolution for the predicted
     * class and for the true one (none for a network without convolutions). */
    size_t cam_layer = 0, cam_hw = 0;
    cn_layer_info cam_li;
    float *cam = NULL;
    if (!cn_explain_find_layer(net, NULL, &cam_layer) && !cn_net_layer(net, cam_layer, &cam_li)) {
        cam_hw = cam_li.out.h * cam_li.out.w;
        if (!(cam = malloc(cam_hw * sizeof *cam))) {
            rc = cli_error("out of memory");
            goto done;
        }
    }
    fprintf(f,
            "<h2>Worst mistakes (test set)</h2>\n<p class=\"muted\">the %zu wrong "
            "predictions made with the highest probability%s</p>\n<div class=\"gallery\">\n",
            show,
            cam ? "; beside each, Grad-CAM at the last convolution for the predicted class, "
                  "then for the true class (red: where the class's evidence is)"
                : "");
    for (size_t i = 0; i < show; i++) {
        const mistake *m = &wrong[i];
        if (cn_image_from_planes(test.pixels + m->index * sz, s, 1, &img)) {
            rc = cli_lib_error();
            goto done;
        }
        char alt[64];
        snprintf(alt, sizeof alt, "test image %zu", m->index);
        fputs(cam ? "<figure class=\"cam\">" : "<figure>", f);
        if ((rc = inline_img(f, &img, alt, "px")))
            goto done;
        for (int t = 0; cam && t < 2; t++) {
            const uint8_t *px = test.pixels + m->index * sz;
            char calt[64];
            snprintf(calt, sizeof calt, "Grad-CAM, %s class", t ? "true" : "predicted");
            if (cn_explain_gradcam(net, px, t ? m->truth : m->guess, cam_layer, cam) ||
                cn_explain_overlay(px, s, cam, cam_li.out.h, cam_li.out.w, 0, 0, 3, &img) ||
                (rc = inline_img(f, &img, calt, "px"))) {
                rc = rc ? rc : cli_lib_error();
                free(cam);
                goto done;
            }
        }
        char tb[32], gb[32];
        fputs("<figcaption>true <b>", f);
        cli_html(f, cli_class_name(model, (size_t)m->truth, tb, sizeof tb));
        fputs("</b> &rarr; predicted <b>", f);
        cli_html(f, cli_class_name(model, (size_t)m->guess, gb, sizeof gb));
        fprintf(f, "</b><br>%.1f%% &middot; #%zu</figcaption></figure>\n", 100.0 * m->p, m->index);
    }
    free(cam);
    fputs("</div>\n</body></html>\n", f);
    int unwritten = fclose(f);
    f = NULL;
    if (unwritten) {
        rc = cli_error("out of memory");
        goto done;
    }
    rc = cli_write_to(file, out, page, page_size);
    file = NULL;
    if (rc)
        goto done;
    printf("report written to %s (test accuracy %.2f%%)\n", out, 100.0 * ev.accuracy);
done:
    if (f)
        fclose(f);
    if (file)
        fclose(file);
    free(page);
    cn_image_free(&img);
    free(pts);
    free(beside);
    cn_eval_free(&ev);
    free(wrong);
    cn_data_free(&test);
    cn_model_free(model);
    return rc;
}
