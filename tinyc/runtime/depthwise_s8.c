/* DEPTHWISE_CONV_2D int8. Padding taps are skipped, as in TFLM, so the bias here does not
 * hold the zero-point correction: inputs are offset by -in_zp as they are loaded. */
#include "tinyc_kernels.h"
#include "tinyc_simd.h"

void tinyc_depthwise_s8(const tinyc_window_t *p, const tinyc_requant_t *q, const int8_t *in,
                        const int8_t *w, int8_t *out) {
  const int32_t in_c = p->in_c, out_c = p->out_c, mult = out_c / in_c;
  const int32_t zp = q->out_zp, lo = q->act_min, hi = q->act_max, in_zp = p->in_zp;
  int32_t oy, ox;
  for (oy = 0; oy < p->out_h; ++oy) {
    const int32_t y0 = oy * p->stride_h - p->pad_t;
    for (ox = 0; ox < p->out_w; ++ox) {
      const int32_t x0 = ox * p->stride_w - p->pad_l;
      int8_t *o = out + (oy * p->out_w + ox) * out_c;
      int32_t c = 0;
#if TINYC_DSP
      if (mult == 1) {
        const int32_t offset = (int32_t)(((uint32_t)(-in_zp) & 0xFFFFu) * 0x10001u);
        for (; c + 4 <= out_c; c += 4) {
          int32_t a0 = q->bias[c], a1 = q->bias[c + 1], a2 = q->bias[c + 2], a3 = q->bias[c + 3];
          int32_t ky, kx;
          for (ky = 0; ky < p->k_h; ++ky) {
            const int32_t iy = y0 + ky * p->dil_h;
            if (iy < 0 || iy >= p->in_h) continue;
            for (kx = 0; kx < p->k_w; ++kx) {
              const int32_t ix = x0 + kx * p->dil_w;
              if (ix < 0 || ix >= p->in_w) continue;
              {
                const uint32_t xv = tinyc_load4(in + (iy * p->in_w + ix) * in_c + c);
                const uint32_t wv = tinyc_load4(w + (ky * p->k_w + kx) * out_c + c);
                const int32_t xe = tinyc_sxtab16(offset, xv), xo = tinyc_sxtab16_ror8(offset, xv);
                const int32_t we = tinyc_sxtb16(wv), wo = tinyc_sxtb16_ror8(wv);
                a0 = tinyc_smlabb(xe, we, a0);
                a2 = tinyc_smlatt(xe, we, a2);
                a1 = tinyc_smlabb(xo, wo, a1);
                a3 = tinyc_smlatt(xo, wo, a3);
              }
            }
          }
          o[c] = tinyc_requant_s8(a0, q->mult[c], q->shift[c], zp, lo, hi);
          o[c + 1] = tinyc_requant_s8(a1, q->mult[c + 1], q->shift[c + 1], zp, lo, hi);
          o[c + 2] = tinyc_requant_s8(a2, q->mult[c + 2], q->shift[c + 2], zp, lo, hi);
          o[c + 3] = tinyc_requant_s8(a3, q->mult[c + 3], q->shift[c + 3], zp, lo, hi);
        }
      }
#endif
      for (; c < out_c; ++c) {
        const int32_t ic = c / mult;
        int32_t acc = q->bias[c];
        int32_t ky, kx;
        for (ky = 0; ky < p->k_h; ++ky) {
          const int32_t iy = y0 + ky * p->dil_h;
          if (iy < 0 || iy >= p->in_h) continue;
          for (kx = 0; kx < p->k_w; ++kx) {
            const int32_t ix = x0 + kx * p->dil_w;
            if (ix < 0 || ix >= p->in_w) continue;
            acc += ((int32_t)in[(iy * p->in_w + ix) * in_c + ic] - in_zp) *
                   w[(ky * p->k_w + kx) * out_c + c];
          }
        }
        o[c] = tinyc_requant_s8(acc, q->mult[c], q->shift[c], zp, lo, hi);
      }
    }
  }
}
