/* test_spec.c - the model description: what parses, and that every mistake
 * is refused with the file name, the line and what was expected. */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

#define NET "[net]\nchannels=1\nheight=8\nwidth=8\nclasses=10\n"

static void parses_lenet_with_defaults(void)
{
    cn_spec *spec;
    CHECK_OK(cn_spec_load("models/lenet.cfg", &spec));
    cn_train_opts o;
    cn_spec_train_opts(spec, &o);
    CHECK(o.batch == 64 && o.epochs >= 1 && o.lr > 0);
    cn_net *net;
    CHECK_OK(cn_net_create(spec, 8, th_dev(1), &net));
    /* conv 20x24x24, pool 20x12x12, conv 50x8x8, pool 50x4x4, fc 500, fc 10. */
    size_t total = 0;
    for (size_t i = 0; i < cn_net_num_layers(net); i++) {
        cn_layer_info li;
        CHECK_OK(cn_net_layer(net, i, &li));
        total += li.params;
    }
    CHECK(total == 20 * 25 + 20 + 50 * 500 + 50 + 500 * 800 + 500 + 10 * 500 + 10);
    cn_tensor_info ti;
    CHECK_OK(cn_net_tensor(net, cn_net_find_tensor(net, "conv2.weight"), &ti));
    CHECK(ti.ndim == 4 && ti.dims[0] == 50 && ti.dims[1] == 20 && ti.dims[2] == 5 &&
          ti.dims[3] == 5);
    CHECK_OK(cn_net_tensor(net, cn_net_find_tensor(net, "fc1.weight"), &ti));
    CHECK(ti.ndim == 2 && ti.dims[0] == 500 && ti.dims[1] == 800);
    cn_net_free(net);
    cn_spec_free(spec);
}

static void syntax_details(void)
{
    /* Comments, blank lines, spaces, names, defaults. */
    cn_spec *spec =
        th_spec("# a model\n\n  [net]  \nchannels = 1 ; inline\nheight=8\nwidth=8\n"
                "classes=2\n[train]\nlr = 1e-2\nlr_policy = step\n"
                "[conv]\nname = first\nfilters = 2\nsize = 3\n[fc]\noutputs=2\n[softmax]\n");
    CHECK(spec);
    cn_train_opts o;
    cn_spec_train_opts(spec, &o);
    CHECK(o.lr == 1e-2 && o.policy == CN_LR_STEP && o.batch == 64);
    cn_net *net;
    CHECK_OK(cn_net_create(spec, 1, th_dev(1), &net));
    CHECK(cn_net_find_tensor(net, "first.weight") != (size_t)-1);
    CHECK(cn_net_find_tensor(net, "fc1.bias") != (size_t)-1);
    cn_net_free(net);
    cn_spec_free(spec);
}

/* text must be refused at build or parse time with a message containing
 * every one of the given fragments. */
static int refused_as(cn_status want, const char *text, const char *frag1, const char *frag2)
{
    cn_spec *spec = NULL;
    cn_net *net = NULL;
    cn_status st = cn_spec_parse(text, "bad.cfg", &spec);
    if (st == CN_OK) {
        st = cn_net_create(spec, 4, th_dev(1), &net);
        cn_net_free(net);
        cn_spec_free(spec);
    }
    const char *msg = cn_last_error();
    if (st != want || !th_contains(msg, frag1) || (frag2 && !th_contains(msg, frag2))) {
        th_fail(__FILE__, __LINE__, "expected a refusal with '%s' and '%s', got %s: %s", frag1,
                frag2 ? frag2 : "", cn_status_name(st), msg);
        return 0;
    }
    return 1;
}

static int refused(const char *text, const char *frag1, const char *frag2)
{
    return refused_as(CN_ERR_SPEC, text, frag1, frag2);
}

static void refuses_bad_descriptions(void)
{
    CHECK(refused(NET "[conv]\nfilters=2\nsize=3\n[convolution]\n[softmax]\n",
                  "bad.cfg:9:", "unknown section [convolution]"));
    CHECK(refused(NET "[conv]\nfilters=2\nsize=3\nstrid=2\n[softmax]\n",
                  "bad.cfg:9:", "no key 'strid'"));
    CHECK(refused(NET "[conv]\nfilters=\nsize=3\n", "bad.cfg:7:", "has no value"));
    CHECK(refused(NET "[conv]\nfilters=two\nsize=3\n", "bad.cfg:7:", "must be a whole number"));
    CHECK(refused(NET "[conv]\nfilters=2.5\nsize=3\n", "bad.cfg:7:", "whole number"));
    CHECK(refused(NET "[conv]\nfilters=-4\nsize=3\n", "bad.cfg:7:", "between 1 and"));
    CHECK(refused(NET "[conv]\nfilters=100000000\nsize=3\n", "bad.cfg:7:", "between 1 and"));
    CHECK(refused(NET "[conv]\nsize=3\n[softmax]\n", "bad.cfg:6:", "needs the key 'filters'"));
    CHECK(refused(NET "[conv]\nfilters=2\nsize=9\n[softmax]\n",
                  "bad.cfg:6:", "larger than the padded input 8x8"));
    CHECK(refused(NET "[maxpool]\nsize=9\n[softmax]\n", "bad.cfg:6:", "larger than the input"));
    CHECK(refused(NET "[fc]\noutputs=7\n[softmax]\n", "bad.cfg:8:", "classes = 10"));
    CHECK(refused(NET "[fc]\noutputs=10\n", "bad.cfg:6:", "ends with [softmax]"));
    CHECK(refused(NET "[fc]\noutputs=10\n[softmax]\n[relu]\n", "bad.cfg:8:", "last layer"));
    CHECK(refused(NET "[fc]\noutputs=10\noutputs=10\n[softmax]\n", "bad.cfg:8:", "set twice"));
    CHECK(refused("filters=2\n" NET, "bad.cfg:1:", "before any [section]"));
    CHECK(refused(NET "[fc\n", "bad.cfg:6:", "section header"));
    CHECK(refused(NET "[fc]\njust words\n", "bad.cfg:7:", "key = value"));
    CHECK(refused(NET NET "[softmax]\n", "bad.cfg:6:", "second [net]"));
    CHECK(refused("[net]\nchannels=1\nheight=8\nclasses=2\n[softmax]\n",
                  "bad.cfg:1:", "needs the key 'width'"));
    CHECK(refused("[fc]\noutputs=10\n[softmax]\n", "bad.cfg", "no [net]"));
    CHECK(refused(NET, "bad.cfg", "no layers"));
    CHECK(refused(NET "[train]\nlr=fast\n[softmax]\n", "bad.cfg:7:", "must be a number"));
    CHECK(refused(NET "[train]\nlr_policy=linear\n[softmax]\n",
                  "bad.cfg:7:", "one of: const, step, onecycle, cosine"));
    CHECK(refused(NET "[train]\nlr=nan\n[softmax]\n", "bad.cfg:7:", "number"));
    CHECK(refused(NET "[fc]\nname=a\noutputs=4\n[fc]\nname=a\noutputs=10\n[softmax]\n",
                  "bad.cfg:9:", "already used"));
    CHECK(refused(NET "[fc]\nname=9lives\noutputs=10\n[softmax]\n", "bad.cfg:7:", "layer name"));
    CHECK(refused(NET "[conv]\nfilters=2\nsize=3\npad=3\n[softmax]\n",
                  "bad.cfg:6:", "smaller than the kernel"));
    /* Near misses are named. */
    CHECK(refused(NET "[maxpol]\n[softmax]\n", "bad.cfg:6:", "(did you mean [maxpool]?)"));
    CHECK(refused(NET "[Conv]\nfilters=2\nsize=3\n[softmax]\n",
                  "bad.cfg:6:", "(did you mean [conv]?)"));
    CHECK(refused(NET "[conv]\nfilters=2\nsize=3\nstrid=2\n[softmax]\n",
                  "bad.cfg:9:", "no key 'strid' (did you mean 'stride'?)"));
    CHECK(refused(NET "[train]\nepoch=2\n[softmax]\n",
                  "bad.cfg:7:", "no key 'epoch' (did you mean 'epochs'?)"));
    CHECK(refused(NET "[train]\nlr_polcy=step\n[softmax]\n",
                  "bad.cfg:7:", "(did you mean 'lr_policy'?)"));
    CHECK(refused(NET "[fc]\nouputs=10\n[softmax]\n", "bad.cfg:7:", "(did you mean 'outputs'?)"));
    /* ... and only near misses. */
    CHECK(refused(NET "[fc]\nactivation=relu\n[softmax]\n",
                  "bad.cfg:7:", "no key 'activation'; its keys are: outputs, name"));
    CHECK(refused(NET "[x]\n[softmax]\n", "bad.cfg:6:", "unknown section [x]; expected"));
    /* Sizes within each key's range whose network no memory could hold are
     * refused when it is built, at the layer that needs the most. */
    CHECK(refused_as(CN_ERR_NOMEM,
                     "[net]\nchannels=4096\nheight=65536\nwidth=65536\nclasses=10\n"
                     "[fc]\noutputs=10\n[softmax]\n",
                     "bad.cfg:6: [fc] fc1",
                     strcmp(th_dev(1)->backend, "cuda") == 0 ? "of memory free on the GPU"
                                                             : "of memory this machine has"));
    CHECK(refused_as(CN_ERR_NOMEM,
                     NET "[conv]\nfilters=65536\nsize=1\n[conv]\nfilters=65536\nsize=9\npad=8\n"
                         "[fc]\noutputs=10\n[softmax]\n",
                     "bad.cfg:9: [conv] conv2 (output 65536x16x16,", "GiB for batches of 4"));
}

static void load_reports_missing_file(void)
{
    cn_spec *spec;
    CHECK_ERR(cn_spec_load("no/such/file.cfg", &spec), CN_ERR_IO);
    CHECK(th_contains(cn_last_error(), "no/such/file.cfg"));
}

static void learning_rate_schedule(void)
{
    cn_train_opts o;
    cn_train_opts_defaults(&o);
    o.epochs = 10;
    o.lr = 0.1;
    o.policy = CN_LR_STEP;
    o.lr_step = 3;
    o.lr_gamma = 0.5;
    CHECK_NEAR(cn_train_opts_lr(&o, 0), 0.1, 0);
    CHECK_NEAR(cn_train_opts_lr(&o, 2.9), 0.1, 0);
    CHECK_NEAR(cn_train_opts_lr(&o, 3), 0.05, 1e-15);
    CHECK_NEAR(cn_train_opts_lr(&o, 7.5), 0.025, 1e-15);
    o.policy = CN_LR_CONST;
    CHECK_NEAR(cn_train_opts_lr(&o, 9), 0.1, 0);
    /* onecycle over 10 epochs with a warm-up of 2.5: 0.01 -> 0.1 -> 0.0001. */
    o.policy = CN_LR_ONECYCLE;
    CHECK_NEAR(cn_train_opts_lr(&o, 0), 0.01, 1e-15);
    CHECK_NEAR(cn_train_opts_lr(&o, 1.25), 0.055, 1e-15);
    CHECK_NEAR(cn_train_opts_lr(&o, 2.5), 0.1, 1e-15);
    CHECK_NEAR(cn_train_opts_lr(&o, 6.25), 0.1 + (0.0001 - 0.1) * 0.5, 1e-15);
    CHECK_NEAR(cn_train_opts_lr(&o, 10), 0.0001, 1e-15);
    /* cosine: the same warm-up, then (1 + cos(pi u)) / 2. */
    o.policy = CN_LR_COSINE;
    CHECK_NEAR(cn_train_opts_lr(&o, 1.25), 0.055, 1e-15);
    CHECK_NEAR(cn_train_opts_lr(&o, 6.25), 0.05, 1e-15);
    CHECK_NEAR(cn_train_opts_lr(&o, 10), 0, 1e-15);
    CHECK_OK(cn_train_opts_check(&o));
    o.batch = 0;
    CHECK_ERR(cn_train_opts_check(&o), CN_ERR_ARG);
    CHECK(th_contains(cn_last_error(), "batch"));
    CHECK(strcmp(cn_lr_policy_name(CN_LR_ONECYCLE), "onecycle") == 0);
}

const th_test th_spec_tests[] = {
    {"spec/parses_lenet", parses_lenet_with_defaults},
    {"spec/syntax_details", syntax_details},
    {"spec/refuses_bad_descriptions", refuses_bad_descriptions},
    {"spec/load_reports_missing_file", load_reports_missing_file},
    {"spec/learning_rate_schedule", learning_rate_schedule},
    {NULL, NULL},
};
