/* log.c - reading the CSV log that 'convnet train' writes (for convnet plot
 * and convnet report; fuzz/fuzz_log.c fuzzes it). */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Splits a CSV line in place at commas; returns the field count. */
static size_t split(char *line, char **field, size_t max)
{
    size_t n = 0;
    line[strcspn(line, "\r\n")] = 0;
    for (char *p = line; n < max;) {
        field[n++] = p;
        p = strchr(p, ',');
        if (!p)
            break;
        *p++ = 0;
    }
    return n;
}

/* The message into msg; returns 1. */
static int say(char *msg, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int say(char *msg, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, size, fmt, ap);
    va_end(ap);
    return 1;
}

int cli_log_read(const char *path, cn_curve_point **pts, size_t *n, char *msg, size_t size)
{
    *pts = NULL;
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return say(msg, size, "%s: cannot open: %s", path, strerror(errno));
    char *line = NULL, *field[64];
    size_t room = 0;
    static const char *names[5] = {"epoch", "train_loss", "train_accuracy", "val_loss",
                                   "val_accuracy"};
    int col[5] = {-1, -1, -1, -1, -1}, rc = 0, lineno = 1;
    size_t cap = 0;
    if (getline(&line, &room, f) < 0) {
        rc = say(msg, size, "%s: empty file; expected the CSV log of 'convnet train'", path);
        goto done;
    }
    size_t nf = split(line, field, 64);
    for (size_t i = 0; i < nf; i++)
        for (int k = 0; k < 5; k++)
            if (!strcmp(field[i], names[k]))
                col[k] = (int)i;
    if (col[0] < 0 || col[1] < 0) {
        rc = say(msg, size,
                 "%s:1: not a training log: the header needs the columns epoch and "
                 "train_loss (the CSV log of 'convnet train')",
                 path);
        goto done;
    }
    /* Whole lines, however long: a piece of a line read as a row of its own
     * would add a point that is not in the log. */
    while (getline(&line, &room, f) >= 0) {
        lineno++;
        if (strspn(line, " \t\r\n") == strlen(line))
            continue;
        nf = split(line, field, 64);
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            cn_curve_point *p = realloc(*pts, cap * sizeof *p);
            if (!p) {
                rc = say(msg, size, "out of memory");
                goto done;
            }
            *pts = p;
        }
        double v[5];
        for (int k = 0; k < 5; k++) {
            v[k] = NAN;
            if (col[k] < 0 || (size_t)col[k] >= nf || !*field[col[k]])
                continue;
            if (!cli_double(field[col[k]], -1e300, 1e300, &v[k])) {
                rc = say(msg, size, "%s:%d: %s is '%s', not a number", path, lineno, names[k],
                         field[col[k]]);
                goto done;
            }
        }
        if (isnan(v[0])) {
            rc = say(msg, size, "%s:%d: the row has no epoch", path, lineno);
            goto done;
        }
        (*pts)[(*n)++] = (cn_curve_point){v[0], v[1], v[2], v[3], v[4]};
    }
    if (!*n)
        rc = say(msg, size, "%s: the log has a header but no rows: nothing to plot", path);
done:
    free(line);
    fclose(f);
    if (rc) {
        free(*pts);
        *pts = NULL;
        *n = 0;
    }
    return rc;
}

int cli_read_log(const char *path, cn_curve_point **pts, size_t *n)
{
    char msg[CLI_LOG_MSG];
    return cli_log_read(path, pts, n, msg, sizeof msg) ? cli_error("%s", msg) : 0;
}
