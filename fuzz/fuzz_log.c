/* fuzz_log.c - the CSV training log that 'convnet plot' and 'convnet report'
 * read, through cli_log_read (cli/log.c, the reader they call), then its rows
 * drawn through cn_vis_curves as plot draws them. */
#include "fuzz.h"

#include "../cli/cli.h"

#include <math.h>
#include <string.h>

/* The rows a log of these bytes holds: its lines after the first (the
 * header) that are not blank, as the reader sees a line (up to a NUL). */
static size_t rows_in(const uint8_t *data, size_t size)
{
    size_t rows = 0, i = 0;
    while (i < size && data[i] != '\n')
        i++;
    while (i < size) {
        size_t start = ++i;
        while (i < size && data[i] != '\n')
            i++;
        int blank = 1;
        for (size_t k = start; k < i && data[k] && blank; k++)
            blank = strchr(" \t\r", data[k]) != NULL;
        rows += start < size && !blank;
    }
    return rows;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fz_file file;
    fz_write(&file, data, size);
    cn_curve_point *pts = NULL;
    size_t n = 0;
    static char msg[CLI_LOG_MSG];
    msg[0] = '\0';
    if (cli_log_read(file.path, &pts, &n, msg, sizeof msg) != 0) {
        /* A refusal names the file (or says memory ran out) and leaves
         * nothing behind. */
        FZ_ASSERT(pts == NULL && n == 0);
        FZ_ASSERT(strncmp(msg, file.path, strlen(file.path)) == 0 ||
                  strcmp(msg, "out of memory") == 0);
        return 0;
    }
    /* What the reader promises: rows, each with its epoch, every value a
     * number within +-1e300 or missing (NaN). */
    FZ_ASSERT(n > 0 && pts != NULL);
    /* One row per line: none lost, none made up from a piece of a line. */
    FZ_ASSERT(n == rows_in(data, size));
    for (size_t i = 0; i < n; i++) {
        const double *v = &pts[i].epoch;
        FZ_ASSERT(!isnan(v[0]));
        for (int k = 0; k < 5; k++)
            FZ_ASSERT(isnan(v[k]) || fabs(v[k]) <= 1e300);
    }
    cn_image img = {0};
    cn_status st = cn_vis_curves(pts, n, &img);
    FZ_ASSERT(st == CN_OK || st == CN_ERR_ARG);
    if (st == CN_OK)
        FZ_ASSERT(img.w == 960 && img.h == 400 && img.px != NULL);
    cn_image_free(&img);
    free(pts);
    return 0;
}
