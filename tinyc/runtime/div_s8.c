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
#define TINYC_DIV1(xv, yv) tinyc_div1(p, xv, yv)
  TINYC_BCAST_EACH(b, x, y, out, TINYC_DIV1);
#undef TINYC_DIV1
}
