/* prepare.c - the network's input from 8-bit pixels on the host, with the
 * same formula as the backends' input_from_pixels (one function for both,
 * so that both give the same bits). */
#include "internal.h"
#include "kernels/plain.h"

void cn_net_prepare(const cn_net *net, const uint8_t *pixels, size_t n, float *x)
{
    cn_shape in = net->spec->input;
    cn_pixels_to_input(pixels, n, in.c, in.h * in.w, net->norm_host, x);
}
