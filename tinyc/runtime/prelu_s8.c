/* PRELU int8 with broadcasting (TFLM's BroadcastPrelu4DSlow arithmetic). */
#include "tinyc_kernels.h"
#include "tinyc_simd.h"

static int8_t tinyc_prelu1(const tinyc_prelu_t *p, int32_t x, int32_t alpha) {
  const int32_t v = x - p->in_zp;
  int32_t o;
  if (v >= 0) {
    o = tinyc_mbqm(v, p->mult1, p->shift1);
  } else {
    o = tinyc_mbqm(v * (alpha - p->alpha_zp), p->mult2, p->shift2);
  }
  o += p->out_zp;
  return (int8_t)(o < -128 ? -128 : (o > 127 ? 127 : o));
}

void tinyc_prelu_s8(const tinyc_bcast_t *b, const tinyc_prelu_t *p, const int8_t *x,
                    const int8_t *alpha, int8_t *out) {
#define TINYC_PRELU1(xv, av) tinyc_prelu1(p, xv, av)
  TINYC_BCAST_EACH(b, x, alpha, out, TINYC_PRELU1);
#undef TINYC_PRELU1
}
