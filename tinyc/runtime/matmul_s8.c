/* The int8 matrix core shared by CONV_2D and FULLY_CONNECTED: rows x weights^T, then
 * per-channel requantization. Two rows and two output channels per step on DSP cores. */
#include "tinyc_matmul.h"

#include "tinyc_simd.h"

void tinyc_matmul_s8(const int8_t *r0, const int8_t *r1, int32_t k, const int8_t *w,
                     int32_t out_c, const tinyc_requant_t *q, int8_t *o0, int8_t *o1) {
  const int32_t zp = q->out_zp, lo = q->act_min, hi = q->act_max;
  const int8_t *ra = r0, *rb = r1 ? r1 : r0;
  int32_t oc = 0;
  for (; oc + 2 <= out_c; oc += 2) {
    const int8_t *wa = w + oc * k, *wb = wa + k;
    int32_t a00 = q->bias[oc], a01 = q->bias[oc + 1];
    int32_t a10 = a00, a11 = a01;
    int32_t i = 0;
#if TINYC_DSP
    for (; i + 4 <= k; i += 4) {
      const uint32_t x0 = tinyc_load4(ra + i), x1 = tinyc_load4(rb + i);
      const uint32_t y0 = tinyc_load4(wa + i), y1 = tinyc_load4(wb + i);
      const int32_t x0e = tinyc_sxtb16(x0), x0o = tinyc_sxtb16_ror8(x0);
      const int32_t x1e = tinyc_sxtb16(x1), x1o = tinyc_sxtb16_ror8(x1);
      const int32_t y0e = tinyc_sxtb16(y0), y0o = tinyc_sxtb16_ror8(y0);
      const int32_t y1e = tinyc_sxtb16(y1), y1o = tinyc_sxtb16_ror8(y1);
      a00 = tinyc_smlad(x0e, y0e, a00);
      a00 = tinyc_smlad(x0o, y0o, a00);
      a01 = tinyc_smlad(x0e, y1e, a01);
      a01 = tinyc_smlad(x0o, y1o, a01);
      a10 = tinyc_smlad(x1e, y0e, a10);
      a10 = tinyc_smlad(x1o, y0o, a10);
      a11 = tinyc_smlad(x1e, y1e, a11);
      a11 = tinyc_smlad(x1o, y1o, a11);
    }
#endif
    for (; i < k; ++i) {
      const int32_t x0 = ra[i], x1 = rb[i], y0 = wa[i], y1 = wb[i];
      a00 += x0 * y0;
      a01 += x0 * y1;
      a10 += x1 * y0;
      a11 += x1 * y1;
    }
    o0[oc] = tinyc_requant_s8(a00, q->mult[oc], q->shift[oc], zp, lo, hi);
    o0[oc + 1] = tinyc_requant_s8(a01, q->mult[oc + 1], q->shift[oc + 1], zp, lo, hi);
    if (o1) {
      o1[oc] = tinyc_requant_s8(a10, q->mult[oc], q->shift[oc], zp, lo, hi);
      o1[oc + 1] = tinyc_requant_s8(a11, q->mult[oc + 1], q->shift[oc + 1], zp, lo, hi);
    }
  }
  for (; oc < out_c; ++oc) {
    const int8_t *wa = w + oc * k;
    o0[oc] = tinyc_requant_s8(tinyc_dot_s8(ra, wa, k, q->bias[oc]), q->mult[oc], q->shift[oc],
                              zp, lo, hi);
    if (o1) {
      o1[oc] = tinyc_requant_s8(tinyc_dot_s8(rb, wa, k, q->bias[oc]), q->mult[oc], q->shift[oc],
                                zp, lo, hi);
    }
  }
}
