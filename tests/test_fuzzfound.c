/* test_fuzzfound.c - bad input: files that lie about their sizes are refused
 * before any large allocation, with a message naming the file and what is
 * wrong; and the inputs that fuzzing found (make fuzz), each kept here and in
 * fuzz/corpus/.
 *
 * "Before any large allocation": each such test caps its process's address
 * space a little above what it uses (th_limit_memory), so that a reader that
 * tried to allocate what the file claims would fail with CN_ERR_NOMEM (or an
 * out-of-memory message) instead of giving its refusal, and checks that the
 * peak resident memory stayed small. */
#include "harness.h"
#include "internal.h"
#include "io/safetensors.h"

#include "convnet_vis.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

/* The headroom each test allows itself, MiB. */
#define HEADROOM 256

static int write_file(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    int ok = fwrite(b, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* Peak resident memory grew by less than 64 MB: nothing large was allocated
 * and touched on the way to the refusal. */
#define CHECK_SMALL(rss0)                                                                          \
    CHECK_MSG(th_peak_rss_mb() < (rss0) + 64, "peak RSS grew from %ld to %ld MB", (rss0),          \
              th_peak_rss_mb())

/* -------------------------------------------------- found by fuzzing */

/* fuzz/corpus/image/found-jpeg-huffman-overflow.jpg, reduced: a JPEG whose
 * Huffman table defines 320 codes.  stb_image 2.27 (Debian 12's) wrote the
 * codes past its 257-entry table, inside its decoder's state. */
static void jpeg_huffman_table_overflow(void)
{
    static uint8_t b[2 + 4 + 17 + 320 + 2];
    size_t n = 0;
    b[n++] = 0xff, b[n++] = 0xd8; /* start of image */
    b[n++] = 0xff, b[n++] = 0xc4; /* a Huffman table... */
    b[n++] = (2 + 17 + 320) >> 8, b[n++] = (2 + 17 + 320) & 0xff;
    b[n++] = 0x00;               /* DC table 0 */
    for (int i = 0; i < 16; i++) /* ...of 16 x 20 codes */
        b[n++] = 20;
    for (int i = 0; i < 320; i++)
        b[n++] = (uint8_t)i;
    b[n++] = 0xff, b[n++] = 0xd9;
    const char *path = th_path("huffman.jpg");
    CHECK(write_file(path, b, n));
    cn_image img;
    CHECK_ERR(cn_image_load(path, &img), CN_ERR_FORMAT);
    CHECK_MSG(img.px == NULL && th_contains(cn_last_error(), path) &&
                  th_contains(cn_last_error(), "Huffman table defines more than 256 codes"),
              "message: %s", cn_last_error());
    /* The fuzzer's own file, where the source tree is at hand. */
    if (access("fuzz/corpus/image/found-jpeg-huffman-overflow.jpg", R_OK) == 0) {
        CHECK_ERR(cn_image_load("fuzz/corpus/image/found-jpeg-huffman-overflow.jpg", &img),
                  CN_ERR_FORMAT);
        CHECK(th_contains(cn_last_error(), "Huffman"));
    }
}

/* A PNG claiming 20000 x 20000 grey pixels over 100 bytes: stb allocated
 * the 400 MB image before it saw the data was missing (it refuses images over
 * 1 GB itself, as fuzz/corpus/image/huge-claim.png). */
static void image_absurd_dimensions(void)
{
    /* IHDR: width, height, 8 bits, grey, deflate, no filter, no interlace */
    static const uint8_t ihdr[] = {'I', 'H',  'D',  'R', 0, 0, 0x4e, 0x20, 0,
                                   0,   0x4e, 0x20, 8,   0, 0, 0,    0};
    uint8_t b[128];
    size_t n = 0;
    memcpy(b, "\x89PNG\r\n\x1a\n", 8);
    n = 8;
    b[n++] = 0, b[n++] = 0, b[n++] = 0, b[n++] = 13;
    memcpy(b + n, ihdr, sizeof ihdr);
    n += sizeof ihdr;
    uLong crc = crc32(0, ihdr, sizeof ihdr);
    for (int k = 0; k < 4; k++)
        b[n++] = (uint8_t)(crc >> (24 - 8 * k));
    /* IDAT: 100 zero bytes, compressed */
    uint8_t zeros[100] = {0}, z[64];
    uLongf zn = sizeof z;
    CHECK(compress(z, &zn, zeros, sizeof zeros) == Z_OK);
    uint8_t idat[4 + 64];
    memcpy(idat, "IDAT", 4);
    memcpy(idat + 4, z, zn);
    for (int k = 0; k < 4; k++)
        b[n++] = (uint8_t)(zn >> (24 - 8 * k));
    memcpy(b + n, idat, 4 + zn);
    n += 4 + zn;
    crc = crc32(0, idat, (uInt)(4 + zn));
    for (int k = 0; k < 4; k++)
        b[n++] = (uint8_t)(crc >> (24 - 8 * k));
    static const uint8_t iend[] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
    memcpy(b + n, iend, sizeof iend);
    n += sizeof iend;
    const char *path = th_path("huge.png");
    CHECK(write_file(path, b, n));
    long rss0 = th_peak_rss_mb();
    CHECK(th_limit_memory(HEADROOM));
    cn_image img;
    CHECK_ERR(cn_image_load(path, &img), CN_ERR_FORMAT);
    CHECK_MSG(th_contains(cn_last_error(), path) &&
                  th_contains(cn_last_error(), "20000 x 20000 pixels") &&
                  th_contains(cn_last_error(), "up to 67 million pixels"),
              "message: %s", cn_last_error());
    CHECK_SMALL(rss0);
}

const th_test th_fuzzfound[] = {
    {"fuzzfound/jpeg_huffman_table_overflow", jpeg_huffman_table_overflow},
    {"fuzzfound/image_absurd_dimensions", image_absurd_dimensions},
    {NULL, NULL},
};
