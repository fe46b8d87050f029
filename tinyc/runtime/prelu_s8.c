/* PRELU int8 with broadcasting (TFLM's BroadcastPrelu4DSlow arithmetic). */
#include "tinyc_kernels.h"
#include "tinyc_simd.h"

void tinyc_prelu_s8(const tinyc_bcast_t *b, const tinyc_prelu_t *p, const int8_t *x,
                    const int8_t *alpha, int8_t *out) {
  int32_t i0, i1, i2, i3, i4;
  for (i0 = 0; i0 < b->shape[0]; ++i0)
    for (i1 = 0; i1 < b->shape[1]; ++i1)
      for (i2 = 0; i2 < b->shape[2]; ++i2)
        for (i3 = 0; i3 < b->shape[3]; ++i3) {
          const int8_t *xr = x + i0 * b->stride_a[0] + i1 * b->stride_a[1] + i2 * b->stride_a[2] +
                             i3 * b->stride_a[3];
          const int8_t *ar = alpha + i0 * b->stride_b[0] + i1 * b->stride_b[1] +
                             i2 * b->stride_b[2] + i3 * b->stride_b[3];
          const int32_t sa = b->stride_a[4], sb = b->stride_b[4];
          for (i4 = 0; i4 < b->shape[4]; ++i4) {
            const int32_t v = (int32_t)xr[i4 * sa] - p->in_zp;
            int32_t o;
            if (v >= 0) {
              o = tinyc_mbqm(v, p->mult1, p->shift1);
            } else {
              o = tinyc_mbqm(v * ((int32_t)ar[i4 * sb] - p->alpha_zp), p->mult2, p->shift2);
            }
            o += p->out_zp;
            *out++ = (int8_t)(o < -128 ? -128 : (o > 127 ? 127 : o));
          }
        }
}
