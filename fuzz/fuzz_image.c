/* fuzz_image.c - image files (PNG, JPEG, BMP, PGM/PPM, GIF, TGA) through
 * cn_image_load, then into network inputs through cn_image_to_input with
 * each fit. */
#include "fuzz.h"

#include "convnet_vis.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fz_file file;
    fz_write(&file, data, size);
    cn_image img;
    if (cn_image_load(file.path, &img) != CN_OK) {
        FZ_ASSERT(img.px == NULL && cn_last_error()[0] != '\0');
        return 0;
    }
    FZ_ASSERT(img.w >= 1 && img.h >= 1 && (img.c == 1 || img.c == 3));
    static const struct {
        cn_shape shape;
        cn_fit fit;
    } uses[] = {
        {{1, 28, 28}, CN_FIT_AUTO},
        {{3, 32, 32}, CN_FIT_CROP},
        {{1, 5, 9}, CN_FIT_STRETCH},
        {{3, 7, 3}, CN_FIT_STRETCH},
    };
    uint8_t pixels[3 * 32 * 32];
    /* The conversions take time in proportion to the pixels (a few seconds
     * for the largest images, 64 Mpx, under the sanitizers): a big image from
     * a few bytes (a TGA whose data is missing decodes as black) would make
     * every such input slow. */
    if ((size_t)img.w * (size_t)img.h > ((size_t)1 << 20)) {
        cn_image_free(&img);
        return 0;
    }
    for (size_t i = 0; i < sizeof uses / sizeof uses[0]; i++) {
        cn_status st = cn_image_to_input(&img, uses[i].shape, uses[i].fit, pixels);
        FZ_ASSERT(st == CN_OK || st == CN_ERR_FORMAT);
    }
    cn_image_free(&img);
    return 0;
}
