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

/* img as one input sample (C, H, W) the way cn_data_load_folder reads a
 * folder's pictures: grey (luminance) or RGB, the centred part with the
 * input's proportions (CROP; also AUTO) or all of it (STRETCH) resized, a
 * picture of the input's size copied exactly, and no change of levels
 * (no inversion, no contrast stretch); DIGIT as cn_image_to_input.  A model
 * trained on folder data sees new pictures right only when they are
 * prepared by this function.  Errors: CN_ERR_ARG (C not 1 or 3),
 * CN_ERR_NOMEM, and as cn_image_to_input for DIGIT. */
cn_status cn_image_to_planes(const cn_image *img, cn_shape shape, cn_fit fit, uint8_t *pixels);

/* ---------------------------------------------------------------- folders */

/* The seed of the order in which cn_data_load_folder keeps the pictures of
 * a folder or list without train/val/test folders (fixed: the same files
 * give the same order, and so the same parts, on every machine). */
#define CN_FOLDER_SEED      1
#define CN_FOLDER_SEED_TEXT "1"

/* How cn_data_load_folder reads image files. */
typedef struct cn_folder_opts {
    cn_fit fit;            /* CN_FIT_AUTO: CROP.  CROP and STRETCH keep the
                              pictures' levels as they are (an image of the
                              input's size is copied exactly); DIGIT brings
                              each to MNIST's form as predict does */
    const char *cache_dir; /* NULL: .convnet-cache in the folder (beside a
                              CSV list) */
    int threads;           /* decoding threads (0: OpenMP's default) */
} cn_folder_opts;

/* What cn_data_load_folder found and did. */
typedef struct cn_folder_info {
    char cache[4096];     /* the cache file */
    char key[17];         /* its key (hexadecimal): what the data were made
                             from; another key, other data */
    int built;            /* 1: decoded now; 0: the cache was up to date */
    int stale;            /* built over a cache that no longer fitted */
    double scan_seconds;  /* listing the files and their sizes and times */
    double build_seconds; /* decoding and writing the cache (when built) */
    size_t files;         /* image files found */
    int split_folders;    /* 1: train/ (val/, test/) folders; their samples
                             are count[0] train, then count[1] val, then
                             count[2] test */
    size_t count[3];
    size_t unreadable;          /* files that could not be read, left out */
    char unreadable_list[4096]; /* the first 20, "path: reason" lines */
} cn_folder_info;

/* Reads a data set of image files at path: either a folder with one
 * sub-folder per class (path/CLASS/IMAGE; the folder names, sorted by their
 * bytes, are the class names, and images may sit in folders below them) with
 * or without path/train, path/val and path/test above the class folders, or a
 * CSV list (path ends in .csv: a header line "file,label", then one line per
 * image; files relative to the list's folder; labels are class names, sorted
 * to give the classes; quotes as RFC 4180).  Images are any file
 * cn_image_load reads (by extension: .png .jpg .jpeg .bmp .gif .tga .pgm
 * .ppm .pnm); hidden files and folders are left out.  A path ending in
 * .safetensors is taken as a data cache made before (by this function or by
 * cn_data_cache_write) and opened as it is.
 *
 * The pictures are decoded once (in parallel), converted to shape with
 * opts->fit, and kept in a data cache (convnet.h), whose name says the shape
 * and fit; a later call finds it up to date by its key (a hash of the files'
 * paths, sizes and modification times, the shape and the fit) and maps it
 * without decoding anything; a changed folder is read again.  out is the
 * mapped cache: with split folders, train's samples, then val's, then test's,
 * each sorted by path within its class folder, then by class; without, all
 * samples in an order shuffled with a fixed seed (convnet.h's cn_data_slice
 * cuts parts of it).  Files that cannot be decoded are left out and listed
 * in info (the caller decides whether that is acceptable).  Errors:
 * CN_ERR_ARG (a shape of other than 1 or 3 channels; DIGIT for colour),
 * CN_ERR_IO (path, a folder, or the cache's folder cannot be read or
 * written: the message suggests cache_dir), CN_ERR_FORMAT (no class
 * folders, an empty class folder, a single class, no images, a class under
 * val/ or test/ that train/ lacks, a bad CSV line with its number),
 * CN_ERR_NOMEM. */
cn_status cn_data_load_folder(const char *path, cn_shape shape, const cn_folder_opts *opts,
                              cn_data *out, cn_folder_info *info);

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

/* A unit of a layer at its strongest for one image: cn_vis_top_units. */
typedef struct cn_unit {
    size_t sample;   /* the image's index in the data */
    size_t row, col; /* the position of the largest response in the map */
    float value;     /* that response (-INFINITY: no image) */
} cn_unit;

/* For channels 0..channels - 1 of layer i (any layer with maps), the k
 * images of data whose largest response anywhere in the channel is
 * highest, strongest first, with that response's position: units
 * (channels x k, channel after channel).  Runs the network over all of data
 * in evaluation passes of up to cn_net_max_batch(net) samples.
 * Errors: CN_ERR_ARG (no maps, fewer than k images, channels not in
 * 1..out.c), CN_ERR_SHAPE (data does not fit), CN_ERR_NOMEM. */
cn_status cn_vis_top_units(cn_net *net, size_t i, const cn_data *data, size_t k, size_t channels,
                           cn_unit *units);

/* rows x cols images of 8-bit pixels (rows * cols, C, H, W) of the given
 * shape (1 or 3 channels) in a grid, row after row, each row labelled at
 * its left with labels[row] (NULL: none), each image enlarged to about 56
 * pixels on its longer side (convnet viz --augment: a row per
 * augmentation).  Errors: CN_ERR_ARG (no rows or columns, not 1 or 3
 * channels), CN_ERR_NOMEM. */
cn_status cn_vis_grid(const uint8_t *pixels, cn_shape shape, size_t rows, size_t cols,
                      const char *const *labels, cn_image *out);

/* The images of units (channels rows of k, as cn_vis_top_units gives them)
 * in a grid: one row per channel, labelled, images enlarged twice.
 * Errors: CN_ERR_ARG (a sample outside data), CN_ERR_NOMEM. */
cn_status cn_vis_units(const cn_data *data, const cn_unit *units, size_t channels, size_t k,
                       cn_image *out);

/* What each of units (channels rows of k) sees, after Zeiler and Fergus:
 * its image's evaluation pass, then the response at the unit's position
 * alone carried back to pixel space by the deconvnet (cn_net_project with
 * CN_BACK_DECONV: unpooling through the recorded maxima, relu on the way
 * back, transposed filters), drawn beside the patch of the image it came
 * from (the unit's receptive field, cn_net_receptive_field).  One row per
 * channel; each cell the projection (mid-grey zero, black and white its
 * largest magnitude, colour planes on one scale) and the patch, each
 * enlarged to about 40 pixels, the part of the field outside the image pale
 * blue.  Errors: CN_ERR_ARG (layer i has no maps, channels not in
 * 1..out.c, a unit outside the data or the maps), CN_ERR_SHAPE,
 * CN_ERR_NOMEM. */
cn_status cn_vis_deconv(cn_net *net, size_t i, const cn_data *data, const cn_unit *units,
                        size_t channels, size_t k, cn_image *out);

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

/* ------------------------------------------------------------ explaining */

/* Why the network decided, for one input sample pixels (C, H, W) as
 * cn_image_to_input makes it.  Each function runs the network in
 * evaluation mode (its last forward pass is then its own) and explains
 * class cls's score, the logit (the softmax's input) for the gradient
 * methods, the probability for occlusion.  Errors: CN_ERR_ARG (a class
 * outside 0..classes - 1, and as each says), CN_ERR_NOMEM. */

/* The most probable class and its probability (prob may be NULL). */
cn_status cn_explain_top_class(cn_net *net, const uint8_t *pixels, int *cls, float *prob);

/* Saliency (Simonyan et al. 2014): map (H, W) = the largest over channels of
 * |d logit / d x|, x the network's input (normalised pixels). */
cn_status cn_explain_saliency(cn_net *net, const uint8_t *pixels, int cls, float *map);

/* The layer Grad-CAM looks at: the one named name, or with name NULL the
 * last convolution.  Errors: CN_ERR_ARG (no such layer, with the nearest
 * name; a layer without feature maps; no convolution). */
cn_status cn_explain_find_layer(const cn_net *net, const char *name, size_t *layer);

/* Grad-CAM (Selvaraju et al. 2017) at layer's resolution: map (out.h,
 * out.w) = relu(sum_k alpha_k A_k), A the layer's output (after the
 * in-place layers that follow it, a relu say), alpha_k the spatial mean of
 * d logit / d A_k. */
cn_status cn_explain_gradcam(cn_net *net, const uint8_t *pixels, int cls, size_t layer, float *map);

/* Occlusion (Zeiler and Fergus 2014): a grey (128) square of patch pixels,
 * the first centred on the top left pixel, then every stride pixels across
 * and down until the squares reach the far edges, clipped to the image;
 * maps (k, H, W): for classes[0..k), at
 * each pixel, the mean probability of the class over the positions whose
 * square covers it.  The positions go through the network in batches of up
 * to cn_net_max_batch samples.  Errors: CN_ERR_ARG also for a patch not in
 * 1..max(H, W) or a stride not in 1..patch. */
cn_status cn_explain_occlusion(cn_net *net, const uint8_t *pixels, const int *classes, size_t k,
                               int patch, int stride, float *maps);

/* The picture of a map (mh, mw), scaled bilinearly, blended half and half
 * over the image pixels (shape: C = 1 or 3), enlarged to about 280 pixels,
 * with the colour scale (dark blue lo, red hi) and its ends' values to the
 * right and title (NULL: none) above.  lo >= hi: the map's own range.
 * Errors: CN_ERR_ARG (an empty map, C not 1 or 3), CN_ERR_NOMEM. */
cn_status cn_explain_picture(const uint8_t *pixels, cn_shape shape, const float *map, size_t mh,
                             size_t mw, float lo, float hi, const char *title, cn_image *out);
/* The blend alone: the image enlarged scale (1..64) times with the map over
 * it, no scale or title (for galleries).  Errors: as cn_explain_picture. */
cn_status cn_explain_overlay(const uint8_t *pixels, cn_shape shape, const float *map, size_t mh,
                             size_t mw, float lo, float hi, int scale, cn_image *out);

#ifdef __cplusplus
}
#endif
#endif
