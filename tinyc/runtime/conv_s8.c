/* CONV_2D int8: output pixels two at a time through the shared matrix core. A 1x1 kernel
 * without padding reads input pixels in place; other kernels gather a window (im2col). */
#include <string.h>

#include "tinyc_kernels.h"
#include "tinyc_matmul.h"

static const int8_t *tinyc_conv_row(const tinyc_window_t *p, const int8_t *in, int32_t pix,
                                    int8_t *buf) {
  const int32_t oy = pix / p->out_w, ox = pix % p->out_w;
  const int32_t y0 = oy * p->stride_h - p->pad_t, x0 = ox * p->stride_w - p->pad_l;
  const int32_t c = p->in_c;
  int8_t *dst = buf;
  int32_t ky, kx;
  if (p->k_h == 1 && p->k_w == 1 && p->pad_t == 0 && p->pad_l == 0 &&
      (p->out_h - 1) * p->stride_h < p->in_h && (p->out_w - 1) * p->stride_w < p->in_w) {
    return in + (y0 * p->in_w + x0) * c;
  }
  for (ky = 0; ky < p->k_h; ++ky) {
    const int32_t iy = y0 + ky * p->dil_h;
    for (kx = 0; kx < p->k_w; ++kx) {
      const int32_t ix = x0 + kx * p->dil_w;
      if (iy >= 0 && iy < p->in_h && ix >= 0 && ix < p->in_w) {
        memcpy(dst, in + (iy * p->in_w + ix) * c, (size_t)c);
      } else {
        memset(dst, p->in_zp, (size_t)c);
      }
      dst += c;
    }
  }
  return buf;
}

void tinyc_conv_s8(const tinyc_window_t *p, const tinyc_requant_t *q, const int8_t *in,
                   const int8_t *w, int8_t *out, int8_t *scratch) {
  const int32_t k = p->k_h * p->k_w * p->in_c;
  const int32_t pixels = p->out_h * p->out_w;
  int32_t pix;
  for (pix = 0; pix < pixels; pix += 2) {
    const int8_t *r0 = tinyc_conv_row(p, in, pix, scratch);
    const int8_t *r1 = pix + 1 < pixels ? tinyc_conv_row(p, in, pix + 1, scratch + k) : 0;
    tinyc_matmul_s8(r0, r1, k, w, p->out_c, q, out + pix * p->out_c,
                    r1 ? out + (pix + 1) * p->out_c : 0);
  }
}
