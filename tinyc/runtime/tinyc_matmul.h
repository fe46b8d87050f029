#ifndef TINYC_MATMUL_H
#define TINYC_MATMUL_H

#include "tinyc_kernels.h"

/* o0 = requant(r0 . w^T + bias), and o1 likewise from r1 when both are non-NULL.
 * Rows hold raw int8 values: the input zero point is folded into the bias. */
void tinyc_matmul_s8(const int8_t *r0, const int8_t *r1, int32_t k, const int8_t *w,
                     int32_t out_c, const tinyc_requant_t *q, int8_t *o0, int8_t *o1);

#endif
