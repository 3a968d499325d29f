/* registry.c - the layer kinds a model description can name, from the list
 * in layers/kinds.h. */
#include "internal.h"

#include <string.h>

#define CN_KIND_OPS(k) &cn_##k##_ops,
static const cn_layer_ops *const kinds[] = {CN_LAYER_KINDS(CN_KIND_OPS)};
#undef CN_KIND_OPS

/* ", [conv], [maxpool], ...": shown from its third character. */
#define CN_KIND_NAME(k) ", [" #k "]"
static const char kind_list[] = CN_LAYER_KINDS(CN_KIND_NAME);
#undef CN_KIND_NAME

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

const char *cn_layer_kinds(void) { return kind_list + 2; }
