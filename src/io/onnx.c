/* onnx.c - a network as an ONNX model (ONNX's default domain, opset 13, IR
 * version 7), written in protobuf's wire format by hand: no protobuf library.
 *
 * The graph follows the layers one for one:
 *   input "input"  float (batch, C, H, W): pixels / 255, in [0, 1]
 *   Sub, Div       the [net] section's normalisation, per channel:
 *                  (input - mean) / std, the tensor cn_net_forward takes
 *   conv           Conv (kernel, stride, pads on all four sides)
 *   maxpool        MaxPool (no padding, floor: convnet's windows)
 *   avgpool        AveragePool, or GlobalAveragePool with global = 1
 *   fc             Flatten (C, H, W order) when its input is a map, Gemm
 *                  with transB = 1 (the weight is (out, in), as here)
 *   batchnorm      BatchNormalization with the running statistics (not
 *                  folded: the graph keeps the layer and its tensors)
 *   dropout        nothing: evaluation passes its input through
 *   relu, leaky, sigmoid, tanh   Relu, LeakyRelu (alpha = slope), Sigmoid, Tanh
 *   gelu           x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) from Mul, Add
 *                  and Tanh (opset 13 has no Gelu)
 *   silu           Mul(x, Sigmoid(x))
 *   shortcut       Add
 *   softmax        Flatten when its input is a map, Softmax(axis 1): the
 *                  output "probabilities" (batch, classes)
 * A layer that gets a map where it needs rows, or rows (an fc layer's
 * output) where it needs a map, first reshapes them: values keep convnet's
 * shapes, (batch, C, H, W) or (batch, C) when H = W = 1 after fc.  Values are
 * named after the layers that make them ("conv1"), the steps inside a layer
 * "layer/step", the weights as the model file names them ("conv1.weight").
 * The model's metadata_props hold the class names as a JSON array
 * ("class_names"), the input's mean and std, and the model description. */
#include "internal.h"
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ONNX_IR_VERSION 7 /* what opset 13 came with */
#define ONNX_OPSET      13

/* ------------------------------------------------------------ wire format */

/* A growing buffer of protobuf bytes.  A failed allocation sets bad and
 * makes the writes after it do nothing; the caller checks once at the end. */
typedef struct pb {
    uint8_t *d;
    size_t n, cap;
    int bad;
} pb;

static void pb_raw(pb *b, const void *p, size_t n)
{
    if (b->bad)
        return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
        uint8_t *d = cap < b->n + n ? NULL : realloc(b->d, cap);
        if (!d) {
            b->bad = 1;
            return;
        }
        b->d = d;
        b->cap = cap;
    }
    memcpy(b->d + b->n, p, n);
    b->n += n;
}

static void pb_varint(pb *b, uint64_t v)
{
    uint8_t buf[10];
    size_t n = 0;
    do {
        buf[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    pb_raw(b, buf, n);
}

enum { WIRE_VARINT = 0, WIRE_BYTES = 2, WIRE_FIXED32 = 5 };

static void pb_key(pb *b, int field, int wire)
{
    pb_varint(b, (uint64_t)field << 3 | (unsigned)wire);
}

/* An int64 or enum field (a negative int64 takes ten bytes, as protobuf's). */
static void pb_int(pb *b, int field, int64_t v)
{
    pb_key(b, field, WIRE_VARINT);
    pb_varint(b, (uint64_t)v);
}

static void pb_bytes(pb *b, int field, const void *p, size_t n)
{
    pb_key(b, field, WIRE_BYTES);
    pb_varint(b, n);
    pb_raw(b, p, n);
}

static void pb_str(pb *b, int field, const char *s) { pb_bytes(b, field, s, strlen(s)); }

static void pb_float(pb *b, int field, float f)
{
    uint32_t bits;
    memcpy(&bits, &f, 4);
    uint8_t le[4] = {(uint8_t)bits, (uint8_t)(bits >> 8), (uint8_t)(bits >> 16),
                     (uint8_t)(bits >> 24)};
    pb_key(b, field, WIRE_FIXED32);
    pb_raw(b, le, 4);
}

/* Appends sub as the embedded message field of b and empties sub. */
static void pb_msg(pb *b, int field, pb *sub)
{
    if (sub->bad)
        b->bad = 1;
    else
        pb_bytes(b, field, sub->d, sub->n);
    free(sub->d);
    *sub = (pb){0};
}

/* ------------------------------------------------------------ onnx.proto */

/* The field numbers used, from onnx/onnx.proto. */
enum {
    MODEL_IR_VERSION = 1, /* ModelProto */
    MODEL_PRODUCER_NAME = 2,
    MODEL_PRODUCER_VERSION = 3,
    MODEL_DOC_STRING = 6,
    MODEL_GRAPH = 7,
    MODEL_OPSET_IMPORT = 8,
    MODEL_METADATA_PROPS = 14,
    OPSET_VERSION = 2, /* OperatorSetIdProto (domain 1 left empty: ai.onnx) */
    ENTRY_KEY = 1,     /* StringStringEntryProto */
    ENTRY_VALUE = 2,
    GRAPH_NODE = 1, /* GraphProto */
    GRAPH_NAME = 2,
    GRAPH_INITIALIZER = 5,
    GRAPH_INPUT = 11,
    GRAPH_OUTPUT = 12,
    NODE_INPUT = 1, /* NodeProto */
    NODE_OUTPUT = 2,
    NODE_NAME = 3,
    NODE_OP_TYPE = 4,
    NODE_ATTRIBUTE = 5,
    ATTR_NAME = 1, /* AttributeProto */
    ATTR_F = 2,
    ATTR_I = 3,
    ATTR_INTS = 8,
    ATTR_TYPE = 20,
    TENSOR_DIMS = 1, /* TensorProto */
    TENSOR_DATA_TYPE = 2,
    TENSOR_NAME = 8,
    TENSOR_RAW_DATA = 9,
    VALUE_NAME = 1, /* ValueInfoProto */
    VALUE_TYPE = 2,
    TYPE_TENSOR = 1,     /* TypeProto: tensor_type */
    TTYPE_ELEM_TYPE = 1, /* TypeProto.Tensor */
    TTYPE_SHAPE = 2,
    SHAPE_DIM = 1, /* TensorShapeProto */
    DIM_VALUE = 1, /* TensorShapeProto.Dimension */
    DIM_PARAM = 2,
};
enum { ATTR_FLOAT = 1, ATTR_INT = 2, ATTR_INTS_TYPE = 7 }; /* AttributeProto.AttributeType */
enum { ELEM_FLOAT = 1, ELEM_INT64 = 7 };                   /* TensorProto.DataType */

/* Attributes of one node, written as they are added. */
static void attr_int(pb *a, const char *name, int64_t v)
{
    pb at = {0};
    pb_str(&at, ATTR_NAME, name);
    pb_int(&at, ATTR_TYPE, ATTR_INT);
    pb_int(&at, ATTR_I, v);
    pb_msg(a, NODE_ATTRIBUTE, &at);
}

static void attr_float(pb *a, const char *name, float v)
{
    pb at = {0};
    pb_str(&at, ATTR_NAME, name);
    pb_int(&at, ATTR_TYPE, ATTR_FLOAT);
    pb_float(&at, ATTR_F, v);
    pb_msg(a, NODE_ATTRIBUTE, &at);
}

/* ints: n copies of v (kernel_shape, strides: square here). */
static void attr_ints(pb *a, const char *name, int64_t v, int n)
{
    pb at = {0};
    pb_str(&at, ATTR_NAME, name);
    pb_int(&at, ATTR_TYPE, ATTR_INTS_TYPE);
    for (int i = 0; i < n; i++)
        pb_int(&at, ATTR_INTS, v);
    pb_msg(a, NODE_ATTRIBUTE, &at);
}

/* A ValueInfoProto: a float tensor (batch, dims...), the batch symbolic. */
static void value_info(pb *g, int field, const char *name, const size_t *dims, int ndim)
{
    pb shape = {0}, dim = {0}, tensor = {0}, type = {0}, vi = {0};
    pb_str(&dim, DIM_PARAM, "batch");
    pb_msg(&shape, SHAPE_DIM, &dim);
    for (int i = 0; i < ndim; i++) {
        pb_int(&dim, DIM_VALUE, (int64_t)dims[i]);
        pb_msg(&shape, SHAPE_DIM, &dim);
    }
    pb_int(&tensor, TTYPE_ELEM_TYPE, ELEM_FLOAT);
    pb_msg(&tensor, TTYPE_SHAPE, &shape);
    pb_msg(&type, TYPE_TENSOR, &tensor);
    pb_str(&vi, VALUE_NAME, name);
    pb_msg(&vi, VALUE_TYPE, &type);
    pb_msg(g, field, &vi);
}

/* ------------------------------------------------------------------ graph */

/* A value of the graph: its name and convnet's shape of one sample; rank 4
 * (batch, C, H, W) or 2 (batch, C), the latter with H = W = 1. */
typedef struct val {
    char name[48];
    cn_shape s;
    int rank;
} val;

typedef struct graph {
    pb g; /* the GraphProto */
    const cn_net *net;
    const float *params; /* host copies of the parameter and buffer blocks */
    const float *buffers;
    const cn_layer *l; /* the layer being written */
} graph;

static void node(graph *o, const char *op, const char *const *in, int n_in, const char *out,
                 pb *attrs)
{
    pb n = {0};
    for (int i = 0; i < n_in; i++)
        pb_str(&n, NODE_INPUT, in[i]);
    pb_str(&n, NODE_OUTPUT, out);
    pb_str(&n, NODE_NAME, out);
    pb_str(&n, NODE_OP_TYPE, op);
    if (attrs) {
        pb_raw(&n, attrs->d, attrs->n);
        n.bad |= attrs->bad;
        free(attrs->d);
        *attrs = (pb){0};
    }
    pb_msg(&o->g, GRAPH_NODE, &n);
}

/* A node of one or two inputs without attributes. */
static void node1(graph *o, const char *op, const char *a, const char *out)
{
    node(o, op, &a, 1, out, NULL);
}
static void node2(graph *o, const char *op, const char *a, const char *b, const char *out)
{
    const char *in[] = {a, b};
    node(o, op, in, 2, out, NULL);
}

/* An initializer: count little-endian float32s (or int64s when ints). */
static void initializer(graph *o, const char *name, const size_t *dims, int ndim, const float *data,
                        const int64_t *ints)
{
    pb t = {0};
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        pb_int(&t, TENSOR_DIMS, (int64_t)dims[i]);
        count *= dims[i];
    }
    pb_int(&t, TENSOR_DATA_TYPE, ints ? ELEM_INT64 : ELEM_FLOAT);
    pb_str(&t, TENSOR_NAME, name);
    size_t width = ints ? 8 : 4;
    pb_key(&t, TENSOR_RAW_DATA, WIRE_BYTES);
    pb_varint(&t, count * width);
    for (size_t i = 0; i < count; i++) {
        uint64_t bits;
        if (ints) {
            bits = (uint64_t)ints[i];
        } else {
            uint32_t b32;
            memcpy(&b32, &data[i], 4);
            bits = b32;
        }
        uint8_t le[8];
        for (size_t k = 0; k < width; k++)
            le[k] = (uint8_t)(bits >> (8 * k));
        pb_raw(&t, le, width);
    }
    pb_msg(&o->g, GRAPH_INITIALIZER, &t);
}

static void scalar(graph *o, const char *name, float v) { initializer(o, name, NULL, 0, &v, NULL); }

/* Parameter or buffer k of the current layer as an initializer named as in
 * the model file ("conv1.weight"); returns the name. */
static const char *layer_tensor(graph *o, int buffer, size_t k)
{
    const cn_layer *l = o->l;
    const cn_ltensor *t = buffer ? &l->bt[k] : &l->t[k];
    initializer(o, t->name, t->dims, t->ndim, (buffer ? o->buffers : o->params) + t->offset, NULL);
    return t->name;
}

/* The name of a step inside the current layer: "layer/what". */
static void step(const graph *o, const char *what, char *name, size_t size)
{
    snprintf(name, size, "%s/%s", o->l->name, what);
}

/* The value x as a map (batch, C, H, W): rows reshaped when needed. */
static val as_map(graph *o, val x, const char *what)
{
    if (x.rank == 4)
        return x;
    val m = {"", x.s, 4};
    char shape_name[64];
    step(o, what, m.name, sizeof m.name);
    snprintf(shape_name, sizeof shape_name, "%s.shape", m.name);
    const int64_t shape[] = {0, (int64_t)x.s.c, (int64_t)x.s.h, (int64_t)x.s.w};
    const size_t dims[] = {4};
    initializer(o, shape_name, dims, 1, NULL, shape);
    node2(o, "Reshape", x.name, shape_name, m.name);
    return m;
}

/* The value x as rows (batch, C*H*W), in C, H, W order. */
static val as_rows(graph *o, val x)
{
    if (x.rank == 2)
        return x;
    val r = {"", {cn_shape_size(x.s), 1, 1}, 2};
    step(o, "flatten", r.name, sizeof r.name);
    pb a = {0};
    attr_int(&a, "axis", 1);
    node(o, "Flatten", (const char *[]){x.name}, 1, r.name, &a);
    return r;
}

/* A setting of the current layer by its key's name. */
static double setting(const cn_layer *l, const char *key)
{
    for (size_t i = 0; i < l->ops->n_keys; i++)
        if (strcmp(l->ops->keys[i].name, key) == 0)
            return l->v[i];
    return 0; /* not reached: the callers name the kinds' own keys */
}

/* One function per layer kind: the nodes of layer o->l on input x, whose
 * output goes to y (its name set by the caller; the shape and rank are the
 * function's to set).  layers/kinds.h's list makes the table below, so that
 * a kind without one does not compile. */
typedef void onnx_fn(graph *o, val x, val *y, const val *outputs);

static void onnx_conv(graph *o, val x, val *y, const val *outputs)
{
    (void)outputs;
    const cn_layer *l = o->l;
    x = as_map(o, x, "map");
    const char *w = layer_tensor(o, 0, 0), *b = layer_tensor(o, 0, 1);
    pb a = {0};
    attr_ints(&a, "kernel_shape", (int64_t)setting(l, "size"), 2);
    attr_ints(&a, "strides", (int64_t)setting(l, "stride"), 2);
    attr_ints(&a, "pads", (int64_t)setting(l, "pad"), 4);
    node(o, "Conv", (const char *[]){x.name, w, b}, 3, y->name, &a);
    y->rank = 4;
}

/* Pooling over k x k windows with stride st and no padding. */
static void pool(graph *o, val x, val *y, const char *op, double k, double st)
{
    x = as_map(o, x, "map");
    pb a = {0};
    attr_ints(&a, "kernel_shape", (int64_t)k, 2);
    attr_ints(&a, "strides", (int64_t)(st > 0 ? st : k), 2);
    node(o, op, (const char *[]){x.name}, 1, y->name, &a);
    y->rank = 4;
}

static void onnx_maxpool(graph *o, val x, val *y, const val *outputs)
{
    (void)outputs;
    pool(o, x, y, "MaxPool", setting(o->l, "size"), setting(o->l, "stride"));
}

static void onnx_avgpool(graph *o, val x, val *y, const val *outputs)
{
    (void)outputs;
    if (setting(o->l, "global") == 0) {
        pool(o, x, y, "AveragePool", setting(o->l, "size"), setting(o->l, "stride"));
        return;
    }
    x = as_map(o, x, "map");
    node1(o, "GlobalAveragePool", x.name, y->name);
    y->rank = 4;
}

static void onnx_fc(graph *o, val x, val *y, const val *outputs)
{
    (void)outputs;
    x = as_rows(o, x);
    const char *w = layer_tensor(o, 0, 0), *b = layer_tensor(o, 0, 1);
    pb a = {0};
    attr_int(&a, "transB", 1);
    node(o, "Gemm", (const char *[]){x.name, w, b}, 3, y->name, &a);
    y->rank = 2;
}

static void onnx_batchnorm(graph *o, val x, val *y, const val *outputs)
{
    (void)outputs;
    const char *gamma = layer_tensor(o, 0, 0), *beta = layer_tensor(o, 0, 1);
    const char *mean = layer_tensor(o, 1, 0), *var = layer_tensor(o, 1, 1);
    pb a = {0};
    attr_float(&a, "epsilon", (float)setting(o->l, "eps"));
    node(o, "BatchNormalization", (const char *[]){x.name, gamma, beta, mean, var}, 5, y->name, &a);
    y->rank = x.rank;
}

/* Dropout: nothing; the caller sees y keep x's name. */
static void onnx_dropout(graph *o, val x, val *y, const val *outputs)
{
    (void)o, (void)outputs;
    *y = x;
}

static void onnx_relu(graph *o, val x, val *y, const val *outputs)
{
    (void)outputs;
    node1(o, "Relu", x.name, y->name);
}

static void onnx_leaky(graph *o, val x, val *y, const val *outputs)
{
    (void)outputs;
    pb a = {0};
    attr_float(&a, "alpha", (float)setting(o->l, "slope"));
    node(o, "LeakyRelu", (const char *[]){x.name}, 1, y->name, &a);
}

static void onnx_sigmoid(graph *o, val x, val *y, const val *outputs)
{
    (void)outputs;
    node1(o, "Sigmoid", x.name, y->name);
}

static void onnx_tanh(graph *o, val x, val *y, const val *outputs)
{
    (void)outputs;
    node1(o, "Tanh", x.name, y->name);
}

/* x/2 (1 + tanh(k (x + a x^3))), as kernels/elementwise.c computes it. */
static void onnx_gelu(graph *o, val x, val *y, const val *outputs)
{
    (void)outputs;
    char c_a[64], c_k[64], c_half[64], c_one[64], x2[64], x3[64], ax3[64], sum[64], u[64], t[64],
        t1[64], h[64];
    step(o, "a", c_a, sizeof c_a);
    step(o, "k", c_k, sizeof c_k);
    step(o, "half", c_half, sizeof c_half);
    step(o, "one", c_one, sizeof c_one);
    scalar(o, c_a, 0.044715f);
    scalar(o, c_k, 0.7978845608028654f); /* sqrt(2/pi) */
    scalar(o, c_half, 0.5f);
    scalar(o, c_one, 1.0f);
    step(o, "x2", x2, sizeof x2);
    step(o, "x3", x3, sizeof x3);
    step(o, "ax3", ax3, sizeof ax3);
    step(o, "inner", sum, sizeof sum);
    step(o, "u", u, sizeof u);
    step(o, "tanh", t, sizeof t);
    step(o, "1+tanh", t1, sizeof t1);
    step(o, "x/2", h, sizeof h);
    node2(o, "Mul", x.name, x.name, x2);
    node2(o, "Mul", x2, x.name, x3);
    node2(o, "Mul", x3, c_a, ax3);
    node2(o, "Add", x.name, ax3, sum);
    node2(o, "Mul", sum, c_k, u);
    node1(o, "Tanh", u, t);
    node2(o, "Add", t, c_one, t1);
    node2(o, "Mul", x.name, c_half, h);
    node2(o, "Mul", h, t1, y->name);
}

static void onnx_silu(graph *o, val x, val *y, const val *outputs)
{
    (void)outputs;
    char s[64];
    step(o, "sigmoid", s, sizeof s);
    node1(o, "Sigmoid", x.name, s);
    node2(o, "Mul", x.name, s, y->name);
}

/* x + the output of the layer 'from' names; rows meet a map as a map. */
static void onnx_shortcut(graph *o, val x, val *y, const val *outputs)
{
    val e = outputs[o->l->extra_from[0]];
    if (x.rank != e.rank) {
        x = as_map(o, x, "map");
        e = as_map(o, e, "from_map");
    }
    node2(o, "Add", x.name, e.name, y->name);
    y->rank = x.rank;
}

static void onnx_softmax(graph *o, val x, val *y, const val *outputs)
{
    (void)outputs;
    x = as_rows(o, x);
    pb a = {0};
    attr_int(&a, "axis", 1);
    node(o, "Softmax", (const char *[]){x.name}, 1, y->name, &a);
    y->rank = 2;
}

typedef struct onnx_kind {
    const cn_layer_ops *ops;
    onnx_fn *fn;
} onnx_kind;

#define CN_ONNX_KIND(k) {&cn_##k##_ops, onnx_##k},
static const onnx_kind kinds[] = {CN_LAYER_KINDS(CN_ONNX_KIND)};
#undef CN_ONNX_KIND

/* The graph's nodes from the input to "probabilities". */
static void write_layers(graph *o, val *outputs)
{
    const cn_net *net = o->net;
    cn_shape in = net->spec->input;
    const size_t c = in.c, norm_dims[] = {1, c, 1, 1};
    initializer(o, "input.mean", norm_dims, 4, net->norm_host, NULL);
    initializer(o, "input.std", norm_dims, 4, net->norm_host + c, NULL);
    node2(o, "Sub", "input", "input.mean", "input/centred");
    val x = {"input/normalised", in, 4};
    node2(o, "Div", "input/centred", "input.std", x.name);
    for (size_t i = 0; i < net->n_layers; i++) {
        const cn_layer *l = &net->layers[i];
        o->l = l;
        val *y = &outputs[i];
        *y = (val){"", l->out, x.rank};
        int last = i + 1 == net->n_layers;
        /* A layer named as the graph's input or output gets another name. */
        int taken = strcmp(l->name, "input") == 0 || strcmp(l->name, "probabilities") == 0;
        snprintf(y->name, sizeof y->name, "%s%s", last ? "probabilities" : l->name,
                 !last && taken ? "/out" : "");
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
            if (kinds[k].ops == l->ops)
                kinds[k].fn(o, x, y, outputs);
        x = *y;
    }
}

/* The ModelProto of net, into model. */
static cn_status build(const cn_net *net, const char *const *class_names, const char *graph_name,
                       pb *model)
{
    cn_status st = CN_OK;
    size_t np = net->n_params, nb = net->n_buffers;
    float *params = malloc((np ? np : 1) * sizeof *params);
    float *buffers = malloc((nb ? nb : 1) * sizeof *buffers);
    val *outputs = calloc(net->n_layers, sizeof *outputs);
    cJSON *names = cJSON_CreateArray();
    char *names_json = NULL, mean[512] = "", std[512] = "";
    if (!params || !buffers || !outputs || !names) {
        st = cn_fail(CN_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = cn_net_get(net, CN_PARAMS, 0, np, params)) ||
        (st = cn_net_get(net, CN_BUFFERS, 0, nb, buffers)))
        goto done;
    /* A diverged network is not exported, as it is not saved. */
    for (size_t k = 0; k < np + nb; k++)
        if (!isfinite(k < np ? params[k] : buffers[k - np])) {
            st = cn_fail(CN_ERR_NUMERIC,
                         "not exported: the network's weights hold NaN or infinite values "
                         "(training diverged)");
            goto done;
        }
    for (size_t k = 0; k < net->spec->classes; k++) {
        if (class_names && !class_names[k]) {
            st = cn_fail(CN_ERR_ARG,
                         "class_names[%zu] is NULL: a network of %zu classes needs "
                         "as many names",
                         k, net->spec->classes);
            goto done;
        }
        char index[32];
        snprintf(index, sizeof index, "%zu", k);
        cJSON *s = cJSON_CreateString(class_names ? class_names[k] : index);
        if (!s || !cJSON_AddItemToArray(names, s)) {
            cJSON_Delete(s);
            st = cn_fail(CN_ERR_NOMEM, "out of memory");
            goto done;
        }
    }
    names_json = cJSON_PrintUnformatted(names);
    if (!names_json) {
        st = cn_fail(CN_ERR_NOMEM, "out of memory");
        goto done;
    }
    cn_shape in = net->spec->input;
    for (size_t k = 0; k < in.c; k++) {
        size_t m = strlen(mean), s = strlen(std);
        snprintf(mean + m, sizeof mean - m, "%s%.9g", k ? "," : "", net->norm_host[k]);
        snprintf(std + s, sizeof std - s, "%s%.9g", k ? "," : "", net->norm_host[in.c + k]);
    }

    graph o = {.net = net, .params = params, .buffers = buffers};
    pb_str(&o.g, GRAPH_NAME, graph_name);
    write_layers(&o, outputs);
    const size_t in_dims[] = {in.c, in.h, in.w}, out_dims[] = {net->spec->classes};
    value_info(&o.g, GRAPH_INPUT, "input", in_dims, 3);
    value_info(&o.g, GRAPH_OUTPUT, "probabilities", out_dims, 1);

    pb opset = {0};
    pb_int(model, MODEL_IR_VERSION, ONNX_IR_VERSION);
    pb_str(model, MODEL_PRODUCER_NAME, "convnet");
    pb_str(model, MODEL_PRODUCER_VERSION, CN_VERSION);
    pb_str(model, MODEL_DOC_STRING,
           "input: float32 (batch, C, H, W), pixels / 255 in [0, 1]; output "
           "'probabilities': (batch, classes), the softmax of the last layer");
    pb_msg(model, MODEL_GRAPH, &o.g);
    pb_int(&opset, OPSET_VERSION, ONNX_OPSET);
    pb_msg(model, MODEL_OPSET_IMPORT, &opset);
    const char *meta[][2] = {
        {"class_names", names_json},
        {"convnet.input", "pixels / 255, float32 (batch, C, H, W); the graph subtracts "
                          "convnet.mean and divides by convnet.std, per channel"},
        {"convnet.mean", mean},
        {"convnet.std", std},
        {"convnet.model", net->spec->text},
    };
    for (size_t k = 0; k < sizeof meta / sizeof meta[0]; k++) {
        pb e = {0};
        pb_str(&e, ENTRY_KEY, meta[k][0]);
        pb_str(&e, ENTRY_VALUE, meta[k][1]);
        pb_msg(model, MODEL_METADATA_PROPS, &e);
    }
    if (model->bad)
        st = cn_fail(CN_ERR_NOMEM, "out of memory");
done:
    free(params);
    free(buffers);
    free(outputs);
    cJSON_Delete(names);
    cJSON_free(names_json);
    return st;
}

/* The file's bytes, for cn_save_atomic (io/safetensors.c: the temporary
 * file, sync, rename, as model files are written). */
typedef struct bytes {
    const uint8_t *d;
    size_t n;
} bytes;

static int fill_file(int fd, void *user)
{
    const bytes *b = user;
    return cn_write_all(fd, b->d, b->n);
}

static cn_status save(const cn_net *net, const char *const *class_names, const char *graph_name,
                      const char *path)
{
    if (!net || !path)
        return cn_fail(CN_ERR_ARG, "cn_net_save_onnx: net and path are required");
    pb model = {0};
    cn_status st = build(net, class_names, graph_name, &model);
    if (!st)
        st = cn_save_atomic(path, fill_file, &(bytes){model.d, model.n});
    free(model.d);
    return st;
}

cn_status cn_net_save_onnx(const cn_net *net, const char *const *class_names, const char *path)
{
    return save(net, class_names, net ? net->spec->source : "", path);
}

cn_status cn_model_save_onnx(const cn_model *model, const char *path)
{
    if (!model)
        return cn_fail(CN_ERR_ARG, "cn_model_save_onnx: model is required");
    return save(model->net, (const char *const *)model->class_names,
                model->origin ? model->origin : model->spec->source, path);
}
