/* vis.h - what every file of the pictures library includes.  The pictures
 * (libconvnet_vis) are built on the core's public interface only, never on
 * src/internal.h: libconvnet_vis.so links against libconvnet.so, which
 * exports convnet.h's functions and nothing else. */
#ifndef CN_VIS_VIS_H
#define CN_VIS_VIS_H

#include "convnet_vis.h"

/* A failure with this file and line for cn_last_error() (convnet.h's
 * cn_fail_at), the status returned. */
#define cn_fail(st, ...) cn_fail_at(__FILE__, __LINE__, st, __VA_ARGS__)

/* A CSV list of images (folder.c): file[i], label[i] of line line[i]. */
typedef struct cn_csv_list {
    char **file, **label;
    size_t *line;
    size_t n;
} cn_csv_list;
/* Parses text (len bytes, named source in messages): a header "file,label"
 * (either case), then a line "file,label" per image; fields may be quoted
 * ("a, b" and "" for a quote); blank lines are skipped.  Errors:
 * CN_ERR_FORMAT "source:line: what is wrong", CN_ERR_NOMEM. */
cn_status cn_csv_list_parse(const char *text, size_t len, const char *source, cn_csv_list *out);
void cn_csv_list_free(cn_csv_list *c);

#endif
