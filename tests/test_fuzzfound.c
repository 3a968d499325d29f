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

static int write_gz(const char *path, const void *b, size_t n)
{
    gzFile f = gzopen(path, "wb");
    if (!f)
        return 0;
    int ok = n == 0 || gzwrite(f, b, (unsigned)n) == (int)n;
    return gzclose(f) == Z_OK && ok;
}

/* An IDX header of unsigned bytes with the given dimensions, then data. */
static size_t idx_bytes(uint8_t *out, int ndim, const uint32_t *dims, const uint8_t *data, size_t n)
{
    out[0] = out[1] = 0;
    out[2] = 8;
    out[3] = (uint8_t)ndim;
    for (int d = 0; d < ndim; d++)
        for (int k = 0; k < 4; k++)
            out[4 + 4 * d + k] = (uint8_t)(dims[d] >> (24 - 8 * k));
    memcpy(out + 4 + 4 * ndim, data, n);
    return 4 + 4 * (size_t)ndim + n;
}

/* The true header length of json, for th_write_safetensors. */
#define ST_LEN(json) ((uint64_t)strlen(json))

/* Peak resident memory grew by less than 64 MB: nothing large was allocated
 * and touched on the way to the refusal. */
#define CHECK_SMALL(rss0)                                                                          \
    CHECK_MSG(th_peak_rss_mb() < (rss0) + 64, "peak RSS grew from %ld to %ld MB", (rss0),          \
              th_peak_rss_mb())

/* ---------------------------------------------------------- lying files */

/* 10^9 images of 10^5 x 10^5 pixels in a file of a few bytes, raw and gz. */
static void idx_absurd_dimensions(void)
{
    long rss0 = th_peak_rss_mb();
    CHECK(th_limit_memory(HEADROOM));
    uint8_t b[64], lab[16];
    uint32_t huge[3] = {1000000000u, 100000, 100000}, one[1] = {1};
    size_t n = idx_bytes(b, 3, huge, (const uint8_t *)"pixels", 6);
    size_t nl = idx_bytes(lab, 1, one, (const uint8_t *)"", 1);
    const char *lb = th_path("lab.idx");
    CHECK(th_write_file(lb, lab, nl));
    for (int gz = 0; gz < 2; gz++) {
        const char *im = th_path(gz ? "absurd.idx.gz" : "absurd.idx");
        CHECK(gz ? write_gz(im, b, n) : th_write_file(im, b, n));
        cn_data d;
        CHECK_ERR(cn_data_load_idx(im, lb, &d), CN_ERR_FORMAT);
        CHECK_MSG(th_contains(cn_last_error(), im) &&
                      th_contains(cn_last_error(), "1000000000 x 100000 x 100000 bytes") &&
                      th_contains(cn_last_error(), "4 GiB"),
                  "message: %s", cn_last_error());
        CHECK(d.pixels == NULL && d.n == 0);
    }
    CHECK_SMALL(rss0);
}

/* A header that is fine, over data that ends early: raw and gz; then a header
 * claiming 4 GB (under the limit) over 48 bytes, raw and gz. */
static void idx_shorter_than_header(void)
{
    long rss0 = th_peak_rss_mb();
    CHECK(th_limit_memory(HEADROOM));
    uint8_t b[128], lab[16], pix[48] = {0};
    uint32_t dims[3] = {4, 4, 4}, four[1] = {4};
    size_t n = idx_bytes(b, 3, dims, pix, sizeof pix);
    const char *lb = th_path("lab4.idx");
    CHECK(th_write_file(lb, lab, idx_bytes(lab, 1, four, (const uint8_t *)"\0\1\2\3", 4)));
    const char *raw = th_path("short.idx"), *gz = th_path("short.idx.gz");
    CHECK(th_write_file(raw, b, n) && write_gz(gz, b, n));
    cn_data d;
    CHECK_ERR(cn_data_load_idx(raw, lb, &d), CN_ERR_FORMAT);
    CHECK_MSG(th_contains(cn_last_error(), raw) &&
                  th_contains(cn_last_error(), "the header claims 64 bytes of data but the file "
                                               "has 48"),
              "message: %s", cn_last_error());
    CHECK_ERR(cn_data_load_idx(gz, lb, &d), CN_ERR_FORMAT);
    CHECK_MSG(th_contains(cn_last_error(), gz) && th_contains(cn_last_error(), "truncated") &&
                  th_contains(cn_last_error(), "claims 64 bytes of data but only 48"),
              "message: %s", cn_last_error());
    uint32_t big[3] = {4000, 1000, 1000};
    n = idx_bytes(b, 3, big, pix, sizeof pix);
    CHECK(th_write_file(raw, b, n) && write_gz(gz, b, n));
    CHECK_ERR(cn_data_load_idx(raw, lb, &d), CN_ERR_FORMAT);
    CHECK(th_contains(cn_last_error(), "claims 4000000000 bytes of data but the file has 48"));
    CHECK_ERR(cn_data_load_idx(gz, lb, &d), CN_ERR_FORMAT);
    CHECK_MSG(th_contains(cn_last_error(), "claims 4000000000 bytes of data but only 48"),
              "message: %s", cn_last_error());
    CHECK_SMALL(rss0);
}

/* A CIFAR-10 batch whose size is not a whole number of records. */
static void cifar_partial_record(void)
{
    long rss0 = th_peak_rss_mb();
    CHECK(th_limit_memory(HEADROOM));
    const char *dir = th_path("cifar");
    char path[600];
    CHECK(mkdir(dir, 0755) == 0);
    snprintf(path, sizeof path, "%s/test_batch.bin", dir);
    static uint8_t rec[2 * 3073 + 100];
    CHECK(th_write_file(path, rec, sizeof rec));
    cn_data d;
    CHECK_ERR(cn_data_load_cifar10(dir, "test", &d), CN_ERR_FORMAT);
    CHECK_MSG(th_contains(cn_last_error(), path) &&
                  th_contains(cn_last_error(), "6246 bytes is not a whole number of 3073-byte "
                                               "records (2 records and 100 bytes more)"),
              "message: %s", cn_last_error());
    CHECK_SMALL(rss0);
}

/* Safetensors headers that claim more than the file holds. */
static void safetensors_lying_sizes(void)
{
    long rss0 = th_peak_rss_mb();
    CHECK(th_limit_memory(HEADROOM));
    const char *p = th_path("lie.safetensors");
    cn_st_file f;
    /* The header's length: 10^12 bytes, in a file of 15. */
    CHECK(th_write_safetensors(p, 1000000000000ull, "{\"a\":1}", 0));
    CHECK_ERR(cn_st_open(p, &f), CN_ERR_FORMAT);
    CHECK_MSG(th_contains(cn_last_error(), p) &&
                  th_contains(cn_last_error(), "the header claims 1000000000000 bytes but the "
                                               "file has 7 after the length"),
              "message: %s", cn_last_error());
    /* A 100 GB tensor: data_offsets far beyond the file. */
    const char *big = "{\"w\":{\"dtype\":\"F32\",\"shape\":[25000000000],"
                      "\"data_offsets\":[0,100000000000]}}";
    CHECK(th_write_safetensors(p, ST_LEN(big), big, 8));
    CHECK_ERR(cn_st_open(p, &f), CN_ERR_FORMAT);
    CHECK_MSG(th_contains(cn_last_error(), p) &&
                  th_contains(cn_last_error(), "tensor 'w' has data_offsets outside the 8 bytes "
                                               "of data the file holds"),
              "message: %s", cn_last_error());
    /* A shape whose size overflows 64 bits, over offsets that are fine. */
    const char *ovf = "{\"w\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296,16],"
                      "\"data_offsets\":[0,8]}}";
    CHECK(th_write_safetensors(p, ST_LEN(ovf), ovf, 8));
    CHECK_ERR(cn_st_open(p, &f), CN_ERR_FORMAT);
    CHECK_MSG(th_contains(cn_last_error(), p) &&
                  th_contains(cn_last_error(), "tensor 'w': F64 of shape "
                                               "[4294967296,4294967296,16] needs more than 2^64 "
                                               "bytes but its data_offsets span 8"),
              "message: %s", cn_last_error());
    /* dtype and shape disagree with the offsets. */
    const char *mis = "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}";
    CHECK(th_write_safetensors(p, ST_LEN(mis), mis, 8));
    CHECK_ERR(cn_st_open(p, &f), CN_ERR_FORMAT);
    CHECK_MSG(th_contains(cn_last_error(), p) &&
                  th_contains(cn_last_error(), "tensor 'w': F32 of shape [3] needs 12 bytes but "
                                               "its data_offsets span 8"),
              "message: %s", cn_last_error());
    const char *i16 = "{\"w\":{\"dtype\":\"I16\",\"shape\":[2,3],\"data_offsets\":[0,8]}}";
    CHECK(th_write_safetensors(p, ST_LEN(i16), i16, 8));
    CHECK_ERR(cn_st_open(p, &f), CN_ERR_FORMAT);
    CHECK(th_contains(cn_last_error(), "I16 of shape [2,3] needs 12 bytes"));
    CHECK_SMALL(rss0);
}

/* A net larger than the memory allowed is refused before it is allocated,
 * with what it needs and what there is: for 16 inputs of 1 MiB pixels, 64
 * MiB of floats, 16 MiB of pixels on their way in, and a gradient buffer of
 * 64 MiB for the pooling's input gradient (the other holds fc's, of one
 * float a sample). */
static void net_larger_than_memory(void)
{
    long rss0 = th_peak_rss_mb();
    CHECK(th_limit_memory(HEADROOM));
    cn_spec *spec = th_spec("[net]\nchannels=1\nheight=1024\nwidth=1024\nclasses=2\n"
                            "[avgpool]\nglobal=1\n[fc]\noutputs=2\n[softmax]\n");
    CHECK(spec);
    cn_net *net = NULL;
    cn_set_memory_limit((size_t)64 << 20);
    CHECK_ERR(cn_net_create(spec, 16, th_dev(1), &net), CN_ERR_NOMEM);
    CHECK_MSG(net == NULL &&
                  th_contains(cn_last_error(), "test.cfg:1: [net] the input (1x1024x1024) with "
                                               "the buffers of the passes needs 144.0 MiB for "
                                               "batches of 16;") &&
                  th_contains(cn_last_error(), "the network needs 144.") &&
                  th_contains(cn_last_error(), " MiB in all, more than the 64.0 MiB limit set "
                                               "for this process"),
              "message: %s", cn_last_error());
    CHECK_OK(cn_net_create(spec, 1, th_dev(1), &net));
    cn_net_free(net);
    cn_set_memory_limit(0);
    cn_spec_free(spec);
    /* Without a limit set, the machine's memory is the limit. */
    spec = th_spec("[net]\nchannels=4096\nheight=65536\nwidth=65536\nclasses=2\n"
                   "[avgpool]\nglobal=1\n[fc]\noutputs=2\n[softmax]\n");
    CHECK(spec);
    CHECK_ERR(cn_net_create(spec, 1, th_dev(1), &net), CN_ERR_NOMEM);
    CHECK_MSG(th_contains(cn_last_error(), "test.cfg:1: [net] the input (4096x65536x65536) with") &&
                  th_contains(cn_last_error(), "GiB in all, more than the ") &&
                  th_contains(cn_last_error(), "GiB of memory this machine has"),
              "message: %s", cn_last_error());
    cn_spec_free(spec);
    CHECK_SMALL(rss0);
}

/* -------------------------------------------------- found by fuzzing */

static const char *SMALL =
    "[net]\nchannels=1\nheight=6\nwidth=6\nclasses=3\n"
    "[train]\nbatch=4\nlr=0.05\nseed=9\n"
    "[conv]\nfilters=2\nsize=3\n[relu]\n[maxpool]\n[fc]\noutputs=3\n[softmax]\n";

/* fuzz/corpus/safetensors/model-huge-net.st: a model file whose description
 * was edited to take 60000 x 60000 images.  Its fully connected layer then
 * needs 10^9 weights, which the file does not hold; the loader built the net
 * (gigabytes of parameters, zeroed) before it looked at the tensors. */
static void model_description_larger_than_file(void)
{
    cn_spec *spec = th_spec(SMALL);
    CHECK(spec);
    cn_model *m = NULL;
    CHECK_OK(cn_model_create(spec, NULL, th_dev(1), &m));
    cn_spec_free(spec);
    const char *path = th_path("huge.safetensors");
    CHECK_OK(cn_model_save(m, path));
    cn_model_free(m);
    FILE *f = fopen(path, "rb");
    CHECK(f);
    static char b[1 << 16];
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)(unsigned char)b[i] << (8 * i);
    char *at = strstr(b + 8, "height=6\\nwidth=6");
    CHECK(at && hlen + 8 <= n);
    /* The description in the metadata, edited, and the header's length with it. */
    static char out[1 << 16];
    size_t pre = (size_t)(at - b);
    const char *bigger = "height=60000\\nwidth=60000";
    size_t grow = strlen(bigger) - strlen("height=6\\nwidth=6");
    memcpy(out, b, pre);
    memcpy(out + pre, bigger, strlen(bigger));
    memcpy(out + pre + strlen(bigger), at + strlen("height=6\\nwidth=6"),
           n - pre - strlen("height=6\\nwidth=6"));
    hlen += grow;
    for (int i = 0; i < 8; i++)
        out[i] = (char)(hlen >> (8 * i));
    CHECK(th_write_file(path, out, n + grow));

    long rss0 = th_peak_rss_mb();
    CHECK(th_limit_memory(HEADROOM));
    CHECK_ERR(cn_model_load(path, th_dev(1), &m), CN_ERR_FORMAT);
    CHECK_MSG(m == NULL && th_contains(cn_last_error(), path) &&
                  th_contains(cn_last_error(), "its model description needs 5399640029 weights") &&
                  th_contains(cn_last_error(), "but the file holds only"),
              "message: %s", cn_last_error());
    CHECK_SMALL(rss0);
}

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
    CHECK(th_write_file(path, b, n));
    cn_image img;
    CHECK_ERR(cn_image_load(path, &img), CN_ERR_FORMAT);
    CHECK_MSG(img.px == NULL && th_contains(cn_last_error(), path) &&
                  th_contains(cn_last_error(), "Huffman table defines more than 256 codes"),
              "message: %s", cn_last_error());
    /* The same after fill bytes before the start of image (ff ff ff d8),
     * which stb skips: fuzz/corpus/image/found-jpeg-fill-bytes-before-start.jpg
     * got past the check that way. */
    static uint8_t f[sizeof b + 2];
    f[0] = f[1] = 0xff;
    memcpy(f + 2, b, n);
    path = th_path("huffman-fill.jpg");
    CHECK(th_write_file(path, f, n + 2));
    CHECK_ERR(cn_image_load(path, &img), CN_ERR_FORMAT);
    CHECK_MSG(th_contains(cn_last_error(), "Huffman table defines more than 256 codes"),
              "after fill bytes: %s", cn_last_error());
    /* The fuzzer's own files, where the source tree is at hand. */
    static const char *const found[] = {"fuzz/corpus/image/found-jpeg-huffman-overflow.jpg",
                                        "fuzz/corpus/image/found-jpeg-fill-bytes-before-start.jpg"};
    for (size_t k = 0; k < 2; k++)
        if (access(found[k], R_OK) == 0) {
            CHECK_ERR(cn_image_load(found[k], &img), CN_ERR_FORMAT);
            CHECK_MSG(th_contains(cn_last_error(), "Huffman"), "%s: %s", found[k], cn_last_error());
        }
}

/* fuzz/corpus/image/found-ppm-long-number.ppm: a PPM header whose height
 * has 27 digits.  stb_image 2.27 reads it into an int without a bound
 * (signed overflow, found by the sanitizers); a 9-digit one still reaches stb,
 * which refuses the size itself. */
static void ppm_long_number(void)
{
    const char *path = th_path("long.ppm");
    static const char text[] = "P6\n12 107777777777777777777777777\n255\n\xe6\xe6\xe6";
    CHECK(th_write_file(path, text, sizeof text - 1));
    cn_image img;
    CHECK_ERR(cn_image_load(path, &img), CN_ERR_FORMAT);
    CHECK_MSG(img.px == NULL && th_contains(cn_last_error(), path) &&
                  th_contains(cn_last_error(), "more than 9 digits"),
              "message: %s", cn_last_error());
    /* Comments are skipped as stb skips them: the long number after one is seen. */
    static const char commented[] = "P5 # a comment 1\n3 # 2\n 12345678901 255\n\x01";
    CHECK(th_write_file(path, commented, sizeof commented - 1));
    CHECK_ERR(cn_image_load(path, &img), CN_ERR_FORMAT);
    CHECK(th_contains(cn_last_error(), "more than 9 digits"));
    /* Nine digits pass the check and are stb's to refuse (too large). */
    static const char nine[] = "P5 3 123456789 255\n\x01";
    CHECK(th_write_file(path, nine, sizeof nine - 1));
    CHECK_ERR(cn_image_load(path, &img), CN_ERR_FORMAT);
    CHECK(!th_contains(cn_last_error(), "more than 9 digits"));
}

/* Appends to b (at *n) a PNG chunk: its length, type, the len bytes at data
 * (claimed: the chunk says it holds claim bytes) and its CRC. */
static void png_chunk(uint8_t *b, size_t *n, const char *type, const uint8_t *data, size_t len,
                      uint32_t claim)
{
    for (int k = 0; k < 4; k++)
        b[(*n)++] = (uint8_t)(claim >> (24 - 8 * k));
    size_t at = *n;
    memcpy(b + *n, type, 4);
    if (len)
        memcpy(b + *n + 4, data, len);
    *n += 4 + len;
    uLong crc = crc32(0, b + at, (uInt)(4 + len));
    for (int k = 0; k < 4; k++)
        b[(*n)++] = (uint8_t)(crc >> (24 - 8 * k));
}

/* A PNG's signature and header chunk for w x h grey pixels (w, h < 65536)
 * into b; returns its length. */
static size_t png_start(uint8_t *b, unsigned w, unsigned h)
{
    /* width, height, 8 bits, grey, deflate, no filter, no interlace */
    const uint8_t ihdr[13] = {
        0, 0, (uint8_t)(w >> 8), (uint8_t)w, 0, 0, (uint8_t)(h >> 8), (uint8_t)h, 8, 0, 0, 0, 0};
    size_t n = 8;
    memcpy(b, "\x89PNG\r\n\x1a\n", 8);
    png_chunk(b, &n, "IHDR", ihdr, sizeof ihdr, sizeof ihdr);
    return n;
}

/* A PNG claiming 20000 x 20000 grey pixels over 100 bytes: stb allocated
 * the 400 MB image before it saw the data was missing (it refuses images over
 * 1 GB itself, as fuzz/corpus/image/huge-claim.png). */
static void image_absurd_dimensions(void)
{
    uint8_t b[128];
    size_t n = png_start(b, 20000, 20000);
    /* IDAT: 100 zero bytes, compressed */
    uint8_t zeros[100] = {0}, z[64];
    uLongf zn = sizeof z;
    CHECK(compress(z, &zn, zeros, sizeof zeros) == Z_OK);
    png_chunk(b, &n, "IDAT", z, zn, (uint32_t)zn);
    png_chunk(b, &n, "IEND", NULL, 0, 0);
    const char *path = th_path("huge.png");
    CHECK(th_write_file(path, b, n));
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

/* A PNG of 2 x 2 pixels whose second data chunk (IDAT) claims 1 GB, in a
 * file of 100 bytes: stb grew its buffer to 2 GB for the chunk before it
 * found the bytes missing (a fuzzer's find,
 * fuzz/corpus/image/found-png-idat-past-end.png).  A chunk that fits, and
 * bytes after the end chunk, are still read. */
static void png_chunk_past_end(void)
{
    uint8_t raw[6] = {0, 10, 20, 0, 30, 40}, z[64], b[160];
    uLongf zn = sizeof z;
    CHECK(compress(z, &zn, raw, sizeof raw) == Z_OK);
    size_t n = png_start(b, 2, 2);
    png_chunk(b, &n, "IDAT", z, zn, (uint32_t)zn);
    size_t cut = n;
    png_chunk(b, &n, "IEND", NULL, 0, 0);
    memcpy(b + n, "trailing", 8);
    const char *path = th_path("chunks.png");
    CHECK(th_write_file(path, b, n + 8));
    cn_image img;
    CHECK_OK(cn_image_load(path, &img));
    CHECK(img.w == 2 && img.h == 2 && img.c == 1 && img.px[1] == 20 && img.px[3] == 40);
    cn_image_free(&img);

    n = cut;
    png_chunk(b, &n, "IDAT", z, 4, 1u << 30);
    png_chunk(b, &n, "IEND", NULL, 0, 0);
    CHECK(th_write_file(path, b, n));
    long rss0 = th_peak_rss_mb();
    CHECK(th_limit_memory(HEADROOM));
    CHECK_ERR(cn_image_load(path, &img), CN_ERR_FORMAT);
    CHECK_MSG(img.px == NULL && th_contains(cn_last_error(), path) &&
                  th_contains(cn_last_error(), "a chunk claims more bytes than the file holds"),
              "message: %s", cn_last_error());
    CHECK_SMALL(rss0);
}

/* ------------------------------------- found by reading the readers */

/* CPU seconds of this test so far (each test runs in its own process). */
static double cpu_s(void) { return (double)clock() / CLOCKS_PER_SEC; }

/* The bounds below tell linear from quadratic work (seconds against hours):
 * they are stretched by what an instrumented run costs, as tests/asan.sh and
 * tests/valgrind.sh say in CONVNET_SANITIZER. */
static double cpu_bound(double seconds)
{
    const char *san = getenv("CONVNET_SANITIZER");
    if (!san || !*san)
        return seconds;
    return seconds * (strcmp(san, "valgrind") == 0 ? 50 : 5);
}

/* A description of 1 MB with one section of 100 000 keys: each key was
 * checked against all before it, 5 * 10^9 comparisons. */
static void spec_many_keys(void)
{
    size_t cap = 1 << 20, n = 0;
    char *text = malloc(cap + 1);
    CHECK(text);
    n += (size_t)snprintf(text, cap, "[net]\n");
    for (int i = 0; n + 16 < cap; i++)
        n += (size_t)snprintf(text + n, cap - n, "k%d=1\n", i);
    double t0 = cpu_s();
    cn_spec *spec = NULL;
    CHECK_ERR(cn_spec_parse(text, "keys.cfg", &spec), CN_ERR_SPEC);
    CHECK_MSG(th_contains(cn_last_error(), "keys.cfg:66: [net] has more than 64 keys"),
              "message: %s", cn_last_error());
    CHECK_MSG(cpu_s() - t0 < cpu_bound(2), "%.1f s of CPU", cpu_s() - t0);
    free(text);
}

/* 150 000 layers in 1 MB: building the net compared every layer's name with
 * every other's. */
static void spec_many_layers(void)
{
    size_t cap = 1 << 20, n = 0;
    char *text = malloc(cap + 1);
    CHECK(text);
    n += (size_t)snprintf(text, cap, "[net]\nchannels=1\nheight=2\nwidth=1\nclasses=2\n");
    while (n + 16 < cap)
        n += (size_t)snprintf(text + n, cap - n, "[relu]\n");
    snprintf(text + n, cap - n, "[softmax]\n");
    double t0 = cpu_s();
    cn_spec *spec = NULL;
    CHECK_ERR(cn_spec_parse(text, "deep.cfg", &spec), CN_ERR_SPEC);
    CHECK_MSG(th_contains(cn_last_error(), "deep.cfg:10006: more than 10000 layers"), "message: %s",
              cn_last_error());
    CHECK_MSG(cpu_s() - t0 < cpu_bound(2), "%.1f s of CPU", cpu_s() - t0);
    /* 10 000 are built. */
    text[strlen("[net]\nchannels=1\nheight=2\nwidth=1\nclasses=2\n") + 7 * 9999] = '\0';
    strcat(text, "[softmax]\n");
    CHECK_OK(cn_spec_parse(text, "deep.cfg", &spec));
    cn_net *net = NULL;
    CHECK_OK(cn_net_create(spec, 1, th_dev(1), &net));
    CHECK(cn_net_num_layers(net) == 10000);
    CHECK_MSG(cpu_s() - t0 < cpu_bound(5), "%.1f s of CPU", cpu_s() - t0);
    cn_net_free(net);
    cn_spec_free(spec);
    free(text);
}

/* A safetensors header of count tensors, written to path; returns the JSON
 * (the caller frees it) or NULL. */
static char *many_tensors(const char *path, size_t count, size_t *len)
{
    size_t cap = count * 96 + 64, n = 0;
    char *json = malloc(cap);
    if (!json)
        return NULL;
    n += (size_t)snprintf(json, cap, "{");
    for (size_t i = 0; i < count; i++)
        n += (size_t)snprintf(
            json + n, cap - n,
            "%s\"t%zu\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[%zu,%zu]}", i ? "," : "",
            i, i, i + 1);
    snprintf(json + n, cap - n, "}");
    *len = ST_LEN(json);
    if (!th_write_safetensors(path, *len, json, count)) {
        free(json);
        return NULL;
    }
    return json;
}

/* CPU seconds of opening (and closing) a safetensors file: the least of
 * three tries, which the machine's other work can only lengthen. */
static double open_cpu_s(const char *path, size_t count)
{
    double best = 1e30;
    for (int k = 0; k < 3; k++) {
        double t0 = cpu_s();
        cn_st_file f;
        if (cn_st_open(path, &f) != CN_OK)
            return -1.0;
        int found = f.n_entries == count;
        cn_st_close(&f);
        double t = cpu_s() - t0;
        best = t < best ? t : best;
        if (!found)
            return -1.0;
    }
    return best;
}

/* A safetensors header of 200 000 tensors: each name was compared with all
 * before it, 2 * 10^10 comparisons.  Judged by how the time grows, not by a
 * bound in seconds that a busy or instrumented machine could cross: four
 * times the tensors take about four times as long when the work is linear,
 * sixteen times when it is quadratic; more than eight fails. */
static void safetensors_many_tensors(void)
{
    size_t count = 200000, len;
    const char *p = th_path("many.safetensors"), *q = th_path("quarter.safetensors");
    char *quarter = many_tensors(q, count / 4, &len);
    CHECK(quarter);
    free(quarter);
    char *json = many_tensors(p, count, &len);
    CHECK(json);
    double t_quarter = open_cpu_s(q, count / 4), t_all = open_cpu_s(p, count);
    CHECK_MSG(t_quarter >= 0 && t_all >= 0, "open: %s", cn_last_error());
    printf("    %zu tensors: %.3f s of CPU, %zu: %.3f s (%.1f times)\n", count / 4, t_quarter,
           count, t_all, t_all / (t_quarter > 1e-6 ? t_quarter : 1e-6));
    CHECK_MSG(t_all < 8.0 * t_quarter + 0.05, "%.3f s for %zu tensors, %.3f s for %zu", t_all,
              count, t_quarter, count / 4);
    cn_st_file f;
    CHECK_OK(cn_st_open(p, &f));
    CHECK(f.n_entries == count && cn_st_find(&f, "t199999")->begin == 199999);
    cn_st_close(&f);
    /* The last name again. */
    char *last = strstr(json, "\"t199999\"");
    CHECK(last);
    memcpy(last, "\"t100000\"", 9);
    CHECK(th_write_safetensors(p, len, json, count));
    CHECK_ERR(cn_st_open(p, &f), CN_ERR_FORMAT);
    CHECK_MSG(th_contains(cn_last_error(), "tensor 't100000' appears twice"), "message: %s",
              cn_last_error());
    free(json);
}

const th_test th_fuzzfound[] = {
    {"fuzzfound/idx_absurd_dimensions", idx_absurd_dimensions},
    {"fuzzfound/idx_shorter_than_header", idx_shorter_than_header},
    {"fuzzfound/cifar_partial_record", cifar_partial_record},
    {"fuzzfound/safetensors_lying_sizes", safetensors_lying_sizes},
    {"fuzzfound/net_larger_than_memory", net_larger_than_memory},
    {"fuzzfound/model_description_larger_than_file", model_description_larger_than_file},
    {"fuzzfound/jpeg_huffman_table_overflow", jpeg_huffman_table_overflow},
    {"fuzzfound/ppm_long_number", ppm_long_number},
    {"fuzzfound/image_absurd_dimensions", image_absurd_dimensions},
    {"fuzzfound/png_chunk_past_end", png_chunk_past_end},
    {"fuzzfound/spec_many_keys", spec_many_keys},
    {"fuzzfound/spec_many_layers", spec_many_layers},
    {"fuzzfound/safetensors_many_tensors", safetensors_many_tensors},
    {NULL, NULL},
};
