/* AVERAGE_POOL_2D and MAX_POOL_2D int8; padding taps are not counted (TFLM semantics). */
#include "tinyc_kernels.h"

static int32_t tinyc_clamp(int32_t v, int32_t lo, int32_t hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

void tinyc_avgpool_s8(const tinyc_window_t *p, int32_t act_min, int32_t act_max,
                      const int8_t *in, int8_t *out) {
  const int32_t ch = p->in_c;
  int32_t oy, ox, c;
  for (oy = 0; oy < p->out_h; ++oy) {
    const int32_t y0 = oy * p->stride_h - p->pad_t;
    const int32_t ky0 = y0 < 0 ? -y0 : 0;
    const int32_t ky1 = p->in_h - y0 < p->k_h ? p->in_h - y0 : p->k_h;
    for (ox = 0; ox < p->out_w; ++ox) {
      const int32_t x0 = ox * p->stride_w - p->pad_l;
      const int32_t kx0 = x0 < 0 ? -x0 : 0;
      const int32_t kx1 = p->in_w - x0 < p->k_w ? p->in_w - x0 : p->k_w;
      const int32_t count = (ky1 - ky0) * (kx1 - kx0);
      int8_t *o = out + (oy * p->out_w + ox) * ch;
      for (c = 0; c < ch; ++c) {
        int32_t acc = 0, ky, kx;
        for (ky = ky0; ky < ky1; ++ky) {
          const int8_t *row = in + ((y0 + ky) * p->in_w + x0) * ch + c;
          for (kx = kx0; kx < kx1; ++kx) acc += row[kx * ch];
        }
        /* round half away from zero, C division truncating toward zero */
        acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
        o[c] = (int8_t)tinyc_clamp(acc, act_min, act_max);
      }
    }
  }
}

void tinyc_maxpool_s8(const tinyc_window_t *p, int32_t act_min, int32_t act_max,
                      const int8_t *in, int8_t *out) {
  const int32_t ch = p->in_c;
  int32_t oy, ox, c;
  for (oy = 0; oy < p->out_h; ++oy) {
    const int32_t y0 = oy * p->stride_h - p->pad_t;
    const int32_t ky0 = y0 < 0 ? -y0 : 0;
    const int32_t ky1 = p->in_h - y0 < p->k_h ? p->in_h - y0 : p->k_h;
    for (ox = 0; ox < p->out_w; ++ox) {
      const int32_t x0 = ox * p->stride_w - p->pad_l;
      const int32_t kx0 = x0 < 0 ? -x0 : 0;
      const int32_t kx1 = p->in_w - x0 < p->k_w ? p->in_w - x0 : p->k_w;
      int8_t *o = out + (oy * p->out_w + ox) * ch;
      for (c = 0; c < ch; ++c) {
        int32_t m = -128, ky, kx;
        for (ky = ky0; ky < ky1; ++ky) {
          const int8_t *row = in + ((y0 + ky) * p->in_w + x0) * ch + c;
          for (kx = kx0; kx < kx1; ++kx) m = row[kx * ch] > m ? row[kx * ch] : m;
        }
        o[c] = (int8_t)tinyc_clamp(m, act_min, act_max);
      }
    }
  }
}
