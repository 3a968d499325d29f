/*
 * convnet_vis.h - images in, pictures out: reading image files for
 * prediction, and drawing what a network has learned.
 *
 * These functions live in their own library, libconvnet_vis, beside
 * libconvnet (convnet.h), and need two more at link time: stb (decoding
 * image files; Debian's libstb-dev) and cairo (drawing and PNG files;
 * libcairo2-dev): link libconvnet_vis, then libconvnet, then -lcairo
 * -lstb (pkg-config --libs convnet_vis).  A program that calls none of them
 * links none of the three.
 *
 * Pictures are plain 8-bit images (cn_image) that a program can inspect,
 * write as PNG or embed; every function here follows convnet.h's
 * conventions (cn_status, cn_last_error, no printing or exiting).
 */
#ifndef CONVNET_VIS_H
#define CONVNET_VIS_H

#include "convnet.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ----------------------------------------------------------------- image */

/* An 8-bit image, rows top to bottom, channels interleaved: c = 1 (grey) or
 * 3 (red, green, blue).  px holds h * w * c bytes, owned by the image. */
typedef struct cn_image {
    int w, h, c;
    uint8_t *px;
} cn_image;

/* A zeroed (black) image.  Errors: CN_ERR_ARG (c not 1 or 3, a side not in
 * 1..65535), CN_ERR_NOMEM. */
cn_status cn_image_new(int w, int h, int c, cn_image *out);
/* Releases img's pixels and zeroes it; nothing for a zeroed image or NULL. */
void cn_image_free(cn_image *img);

/* One sample of 8-bit planes (C, H, W), as cn_data holds them, as a picture
 * enlarged scale times: RGB when C = 3, else grey (the first plane).
 * Errors: as cn_image_new. */
cn_status cn_image_from_planes(const uint8_t *pixels, cn_shape shape, int scale, cn_image *out);

/* Reads an image file: PNG, JPEG, BMP, PGM/PPM, GIF (first frame), TGA,
 * 8 or 16 bits.  Grey stays grey, colour becomes RGB, and transparency is
 * composited over white (a digit drawn on a transparent canvas reads as
 * drawn on paper).  Files over 256 MB and images over 2^26 pixels (8192 x
 * 8192) are refused before they are decoded.  Errors: CN_ERR_IO (cannot
 * open, not a regular file), CN_ERR_FORMAT (not an image this reader knows,
 * a damaged one, or too large; the message says which). */
cn_status cn_image_load(const char *path, cn_image *out);

/* Writes img as a PNG file.  Errors: CN_ERR_NOMEM, CN_ERR_IO ("cannot write
 * PATH: REASON", the reason from the write that failed). */
cn_status cn_image_write_png(const cn_image *img, const char *path);
/* The PNG file's bytes in memory (malloc'd; the caller frees *data).
 * Errors: CN_ERR_NOMEM. */
cn_status cn_image_encode_png(const cn_image *img, uint8_t **data, size_t *size);

/* How an image of any size becomes a network's input. */
typedef enum cn_fit {
    CN_FIT_AUTO = 0, /* DIGIT for grey networks, CROP for colour ones */
    CN_FIT_DIGIT,    /* as MNIST was made: the ink's bounding box scaled so its
                        longer side is 20/28 of the input, placed with its
                        centre of mass at the centre; strokes that would come
                        out thinner than MNIST's (a thin pen on a large page)
                        are thickened first to MNIST's stroke width */
    CN_FIT_CROP,     /* the largest centred part with the input's aspect
                        ratio, scaled to the input size */
    CN_FIT_STRETCH   /* the whole image scaled to the input size */
} cn_fit;

/* Converts img into one input sample of shape (C, H, W) as 8-bit pixels,
 * ready for cn_net_prepare.  For a grey network (C = 1) colour is turned
 * into luminance, and the picture is brought to MNIST's form: light ink on
 * a black background.  An image whose corners are light (dark ink on
 * paper) is inverted; the background's level (the most common level on the
 * background's side, raised by its noise) becomes black and the brightest
 * ink white, also when the ink touches the picture's edges (a digit cropped
 * tightly).  For C = 3 a grey image is repeated into the three channels.
 * Errors: CN_ERR_ARG (C not 1 or 3; DIGIT for a colour network),
 * CN_ERR_FORMAT (a blank image: no pixel stands out from the background
 * and its noise by 16 of 255, so no ink to find). */
cn_status cn_image_to_input(const cn_image *img, cn_shape shape, cn_fit fit, uint8_t *pixels);

/* -------------------------------------------------------------- pictures */

/* The filters of convolution layer i as a grid of tiles, each filter
 * scaled to its own range (its smallest weight black, its largest white),
 * in colour when the layer has 3 input channels.  Layout: cols =
 * ceil(sqrt(filters)), rows = ceil(filters / cols); each tile is the kernel
 * enlarged s = ceil(40 / kernel side) times; 2 white pixels between and
 * around tiles; tile f at row f / cols, column f % cols.
 * Errors: CN_ERR_ARG (not a convolution, or not 1 or 3 input channels). */
cn_status cn_vis_filters(cn_net *net, size_t i, cn_image *out);

/* The feature maps of layer i (any layer with spatial output) for sample s
 * of the last forward pass, as a grey grid, each map scaled to its own
 * range (a constant map is black).  Layout as cn_vis_filters with
 * s = ceil(72 / larger map side).  Errors: CN_ERR_ARG. */
cn_status cn_vis_feature_maps(const cn_net *net, size_t i, size_t s, cn_image *out);

/* For each channel of layer i, the k images of data whose largest response
 * in that channel is highest (Zeiler and Fergus).  One row per channel,
 * labelled, strongest image first; images enlarged twice.  Runs the network
 * over all of data in batches of up to cn_net_max_batch(net) samples.
 * index (optional, channels x k entries) receives the chosen samples.
 * Errors: CN_ERR_ARG, CN_ERR_SHAPE (data does not fit), CN_ERR_NOMEM. */
cn_status cn_vis_top_images(cn_net *net, size_t i, const cn_data *data, size_t k, size_t *index,
                            cn_image *out);

/* A k x k confusion matrix ([true][predicted] counts) as a coloured grid:
 * each cell shaded by its share of its row (white 0 to dark blue 1, on a
 * square-root scale so that rare mistakes show), with its count written in
 * it; rows and columns labelled with the classes. */
cn_status cn_vis_confusion(const size_t *confusion, size_t k, cn_image *out);
/* The same with the classes' names as labels (names[0..k), each cut to 16
 * bytes; the column labels run upwards); names NULL: numbers, as
 * cn_vis_confusion.  Errors: CN_ERR_ARG (k not in 1..100, a NULL name),
 * CN_ERR_NOMEM. */
cn_status cn_vis_confusion_named(const size_t *confusion, size_t k, const char *const *names,
                                 cn_image *out);

/* One row of a training log: x is the epoch (fractional within an epoch);
 * a value that was not measured is NaN. */
typedef struct cn_curve_point {
    double epoch;
    double train_loss, train_accuracy; /* accuracy as a fraction */
    double val_loss, val_accuracy;
} cn_curve_point;

/* Training curves: loss (left panel) and accuracy in % (right) against the
 * epoch, training as a blue line, validation as an orange line with dots;
 * axes with ticks, labels and a legend.  960 x 400 pixels.
 * Errors: CN_ERR_ARG (no point with a value). */
cn_status cn_vis_curves(const cn_curve_point *pts, size_t n, cn_image *out);

/* A learning-rate range test (convnet doctor): the loss of each step (blue)
 * and its smoothed form (orange) against the base-10 logarithm of the
 * step's rate lr[i], the loss axis from 0 to a little above the smoothed
 * loss's highest, and the suggested rate as a dashed line (none when it is
 * not above 0).  The first 4096 points are drawn.  480 x 400 pixels.
 * Errors: CN_ERR_ARG (no finite point), CN_ERR_NOMEM. */
cn_status cn_vis_lr_range(const double *lr, const double *loss, const double *smooth, size_t n,
                          double suggested, cn_image *out);

#ifdef __cplusplus
}
#endif
#endif
