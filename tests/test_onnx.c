/* test_onnx.c - the ONNX file that cn_model_save_onnx writes, read as bytes:
 * the protobuf fields that say what it is, every weight and buffer, the
 * class names, the refusals.  (tests/onnx.sh has onnx.checker read the files
 * and ONNX Runtime run them against convnet; tests/test_fault.c fails the
 * save's writes.) */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

static const char *NET = "[net]\nchannels=2\nheight=9\nwidth=9\nclasses=3\n"
                         "[train]\nseed=4\n"
                         "[conv]\nfilters=4\nsize=3\nstride=2\npad=1\n[batchnorm]\n[relu]\n"
                         "[dropout]\n[fc]\noutputs=3\n[softmax]\n";

static cn_model *model(void)
{
    cn_spec *spec = th_spec(NET);
    cn_model *m = NULL;
    if (spec && cn_model_create(spec, NULL, th_dev(1), &m) != CN_OK)
        th_fail(__FILE__, __LINE__, "%s", cn_last_error());
    cn_spec_free(spec);
    return m;
}

/* Whether the n bytes at needle occur in the size bytes at hay. */
static int holds(const unsigned char *hay, size_t size, const void *needle, size_t n)
{
    for (size_t i = 0; n <= size && i <= size - n; i++)
        if (memcmp(hay + i, needle, n) == 0)
            return 1;
    return 0;
}
static int holds_str(const unsigned char *hay, size_t size, const char *s)
{
    return holds(hay, size, s, strlen(s));
}

/* The file begins with ir_version 7 (field 1, varint), names its producer,
 * imports opset 13 of the default domain (field 8: {version (2): 13}), has
 * the nodes of its layers but no Dropout, names the symbolic batch, and
 * holds every tensor of the network (batch-norm running statistics
 * included, set here to values of their own) as little-endian raw data. */
static void file_holds_the_graph_and_weights(void)
{
    cn_model *m = model();
    CHECK(m);
    cn_net *net = cn_model_net(m);
    for (size_t i = 0; i < cn_net_num_buffers(net); i++)
        th_put(net, CN_BUFFERS, i, 0.5f + 0.125f * (float)i);
    const char *path = th_path("net.onnx");
    CHECK_OK(cn_model_save_onnx(m, path));
    size_t size;
    unsigned char *b = th_read_file(path, &size);
    CHECK(b && size > 100);
    CHECK(b[0] == 0x08 && b[1] == 7);
    const unsigned char opset[] = {0x42, 0x02, 0x10, 13};
    CHECK(holds(b, size, opset, sizeof opset));
    const char *words[] = {"convnet",  "Conv",         "BatchNormalization",
                           "Relu",     "Gemm",         "Flatten",
                           "Softmax",  "input",        "probabilities",
                           "batch",    "class_names",  "[\"0\",\"1\",\"2\"]",
                           "test.cfg", "conv1.weight", "batchnorm1.running_var"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        CHECK_MSG(holds_str(b, size, words[i]), "the file lacks '%s'", words[i]);
    CHECK(!holds_str(b, size, "Dropout"));
    size_t checked = 0;
    for (size_t t = 0; t < cn_net_num_tensors(net); t++) {
        cn_tensor_info ti;
        CHECK_OK(cn_net_tensor(net, t, &ti));
        unsigned char *le = malloc(ti.count * 4);
        CHECK(le);
        for (size_t i = 0; i < ti.count; i++) {
            float v = th_get(net, ti.trainable ? CN_PARAMS : CN_BUFFERS, ti.offset + i);
            uint32_t bits;
            memcpy(&bits, &v, 4);
            for (int k = 0; k < 4; k++)
                le[4 * i + k] = (unsigned char)(bits >> (8 * k));
        }
        int found = holds(b, size, le, ti.count * 4);
        free(le);
        CHECK_MSG(found, "the file lacks the data of %s", ti.name);
        checked++;
    }
    CHECK(checked == 8); /* conv, batchnorm (4), fc */
    free(b);
    cn_model_free(m);
}

/* The same network gives the same bytes; another weight, other bytes. */
static void same_network_same_bytes(void)
{
    cn_model *m = model();
    CHECK(m);
    const char *a = th_path("a.onnx"), *c = th_path("c.onnx");
    CHECK_OK(cn_model_save_onnx(m, a));
    CHECK_OK(cn_model_save_onnx(m, c));
    size_t na, nc;
    unsigned char *ba = th_read_file(a, &na), *bc = th_read_file(c, &nc);
    CHECK(ba && bc && na == nc && memcmp(ba, bc, na) == 0);
    free(bc);
    cn_net *net = cn_model_net(m);
    th_put(net, CN_PARAMS, 0, th_get(net, CN_PARAMS, 0) + 1.0f);
    CHECK_OK(cn_model_save_onnx(m, c));
    bc = th_read_file(c, &nc);
    CHECK(bc && nc == na && memcmp(ba, bc, na) != 0);
    free(ba);
    free(bc);
    cn_model_free(m);
}

/* Class names given to cn_net_save_onnx go into the metadata as a JSON
 * array, quotes escaped. */
static void class_names_as_json(void)
{
    cn_model *m = model();
    CHECK(m);
    const char *names[] = {"cat", "say \"hi\"", "caf\xc3\xa9"};
    const char *path = th_path("names.onnx");
    CHECK_OK(cn_net_save_onnx(cn_model_net(m), names, path));
    size_t size;
    unsigned char *b = th_read_file(path, &size);
    CHECK(b);
    CHECK(holds_str(b, size, "[\"cat\",\"say \\\"hi\\\"\",\"caf\xc3\xa9\"]"));
    free(b);
    /* a model's own names, and indices without them */
    CHECK_OK(cn_model_save_onnx(m, path));
    CHECK((b = th_read_file(path, &size)) && holds_str(b, size, "[\"0\",\"1\",\"2\"]"));
    free(b);
    const char *other[] = {"ant", "bee", "wasp"};
    CHECK_OK(cn_model_set_class_names(m, other));
    CHECK_OK(cn_model_save_onnx(m, path));
    CHECK((b = th_read_file(path, &size)) && holds_str(b, size, "[\"ant\",\"bee\",\"wasp\"]"));
    free(b);
    cn_model_free(m);
}

/* Missing arguments, NaN weights (nothing written) and a missing directory
 * are refused, each with its status. */
static void refusals(void)
{
    cn_model *m = model();
    CHECK(m);
    const char *path = th_path("refused.onnx");
    CHECK_ERR(cn_model_save_onnx(NULL, path), CN_ERR_ARG);
    CHECK_ERR(cn_net_save_onnx(NULL, NULL, path), CN_ERR_ARG);
    CHECK_ERR(cn_model_save_onnx(m, NULL), CN_ERR_ARG);
    const char *two[] = {"a", "b", NULL};
    CHECK_ERR(cn_net_save_onnx(cn_model_net(m), two, path), CN_ERR_ARG);
    CHECK(th_contains(cn_last_error(), "class_names[2]"));
    th_put(cn_model_net(m), CN_PARAMS, 3, NAN);
    CHECK_ERR(cn_model_save_onnx(m, path), CN_ERR_NUMERIC);
    size_t size;
    unsigned char *b = th_read_file(path, &size);
    CHECK(!b);
    th_put(cn_model_net(m), CN_PARAMS, 3, 0.0f);
    const char *lost = th_path("no/such/dir/x.onnx");
    CHECK_ERR(cn_model_save_onnx(m, lost), CN_ERR_IO);
    CHECK(th_contains(cn_last_error(), lost) &&
          th_contains(cn_last_error(), "No such file or directory"));
    cn_model_free(m);
}

const th_test th_onnx[] = {
    {"onnx/file_holds_the_graph_and_weights", file_holds_the_graph_and_weights},
    {"onnx/same_network_same_bytes", same_network_same_bytes},
    {"onnx/class_names_as_json", class_names_as_json},
    {"onnx/refusals", refusals},
    {NULL, NULL},
};
