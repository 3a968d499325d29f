/* gemm_pack.c - the packing buffer size shared by every GEMM variant. */
#include "kernels/kernels.h"

/* Enough for an MC x KC block of A plus a KC x NC block of B of any variant
 * (MC <= 128, KC = 256, NC = 1024). */
size_t cn_gemm_pack_floats(void) { return (size_t)128 * 256 + (size_t)256 * 1024; }
