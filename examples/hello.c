/* hello.c - the library's version, and the layers of a network described in
 * a string.  Build: cc hello.c $(pkg-config --cflags --libs convnet)
 * pkg-config: convnet */
#include <convnet.h>
#include <stdio.h>

static const char description[] = "[net]\nchannels = 1\nheight = 28\nwidth = 28\nclasses = 10\n"
                                  "[conv]\nfilters = 8\nsize = 5\n[relu]\n[maxpool]\nsize = 2\n"
                                  "[fc]\noutputs = 10\n[softmax]\n";

int main(void)
{
    printf("convnet %s (header %s)\n", cn_version(), CN_VERSION);
    cn_spec *spec = NULL;
    cn_net *net = NULL;
    if (cn_spec_parse(description, "hello", &spec) || cn_net_create(spec, 1, NULL, &net)) {
        fprintf(stderr, "hello: %s\n", cn_last_error());
        cn_spec_free(spec);
        return 1;
    }
    for (size_t i = 0; i < cn_net_num_layers(net); i++) {
        cn_layer_info li;
        cn_net_layer(net, i, &li);
        printf("%-10s %-8s %zux%zux%zu, %zu parameters\n", li.name, li.kind, li.out.c, li.out.h,
               li.out.w, li.params);
    }
    cn_net_free(net);
    cn_spec_free(spec);
    return 0;
}
