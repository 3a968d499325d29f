/* stb.c - stb_image and stb_image_resize (Debian's libstb-dev headers, the
 * code of its libstb) compiled into the fuzz targets with the sanitizers and
 * coverage, so that the fuzzer sees inside the image decoders. */
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>
