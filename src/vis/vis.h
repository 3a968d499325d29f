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

#endif
