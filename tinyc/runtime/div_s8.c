/* DIV int8 with broadcasting, as TFLM's DivElementwise: the divisor's reciprocal and its
 * exponent come from tables indexed by |divisor - zero point| (GetReciprocal at compile
 * time); the dividend is shifted to full headroom before the two rounding multiplies. */
#include "tinyc_kernels.h"
#include "tinyc_simd.h"

static int8_t tinyc_div1(const tinyc_div_t *p, int32_t x, int32_t y) {
  int32_t v1 = x - p->a_zp, v2 = y - p->b_zp, headroom, e, q;
  if (v2 < 0) {
    v1 = -v1;
    v2 = -v2;
  }
  headroom = v1 == 0 ? 31 : __builtin_clrsb(v1);
  q = tinyc_srdhm((int32_t)((uint32_t)v1 << headroom), p->recip[v2]);
  q = tinyc_srdhm(q, p->mult);
  e = headroom + p->recip_shift[v2] - p->shift;
  q = (e > 31 ? 0 : tinyc_rdbpot(q, e)) + p->out_zp;
  return (int8_t)(q < p->act_min ? p->act_min : (q > p->act_max ? p->act_max : q));
}

void tinyc_div_s8(const tinyc_bcast_t *b, const tinyc_div_t *p, const int8_t *x,
                  const int8_t *y, int8_t *out) {
  int32_t i0, i1, i2, i3, i4;
  for (i0 = 0; i0 < b->shape[0]; ++i0)
    for (i1 = 0; i1 < b->shape[1]; ++i1)
      for (i2 = 0; i2 < b->shape[2]; ++i2)
        for (i3 = 0; i3 < b->shape[3]; ++i3) {
          const int8_t *xr = x + i0 * b->stride_a[0] + i1 * b->stride_a[1] + i2 * b->stride_a[2] +
                             i3 * b->stride_a[3];
          const int8_t *yr = y + i0 * b->stride_b[0] + i1 * b->stride_b[1] + i2 * b->stride_b[2] +
                             i3 * b->stride_b[3];
          const int32_t sa = b->stride_a[4], sb = b->stride_b[4];
          for (i4 = 0; i4 < b->shape[4]; ++i4) *out++ = tinyc_div1(p, xr[i4 * sa], yr[i4 * sb]);
        }
}
