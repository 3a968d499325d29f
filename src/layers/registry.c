/* registry.c - the layer kinds a model description can name. */
#include "internal.h"

#include <string.h>

static const cn_layer_ops *const kinds[] = {
    &cn_conv_ops,      &cn_maxpool_ops, &cn_avgpool_ops,  &cn_fc_ops,
    &cn_batchnorm_ops, &cn_dropout_ops, &cn_relu_ops,     &cn_leaky_ops,
    &cn_sigmoid_ops,   &cn_tanh_ops,    &cn_shortcut_ops, &cn_softmax_ops,
};

const cn_layer_ops *cn_layer_find(const char *kind)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kinds[i]->kind, kind) == 0)
            return kinds[i];
    return NULL;
}

const cn_layer_ops *cn_layer_kind_at(size_t i)
{
    return i < sizeof kinds / sizeof kinds[0] ? kinds[i] : NULL;
}

const char *cn_layer_kinds(void)
{
    return "[conv], [maxpool], [avgpool], [fc], [batchnorm], [dropout], [relu], [leaky], "
           "[sigmoid], [tanh], [shortcut], [softmax]";
}
