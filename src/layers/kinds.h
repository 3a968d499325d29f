/* kinds.h - the layer kinds a model description can name: one line each.
 * X(kind) names the section [kind] and the table cn_<kind>_ops that its
 * file (layers/<file>.c) defines; this list generates the registry, the
 * declarations and the names in messages. */
#ifndef CN_LAYER_KINDS_H
#define CN_LAYER_KINDS_H

#define CN_LAYER_KINDS(X)                                                                          \
    X(conv)                                                                                        \
    X(maxpool)                                                                                     \
    X(avgpool)                                                                                     \
    X(fc)                                                                                          \
    X(batchnorm)                                                                                   \
    X(dropout)                                                                                     \
    X(relu)                                                                                        \
    X(leaky)                                                                                       \
    X(sigmoid)                                                                                     \
    X(tanh)                                                                                        \
    X(gelu)                                                                                        \
    X(silu)                                                                                        \
    X(shortcut)                                                                                    \
    X(softmax)

#endif
