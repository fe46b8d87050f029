/* TRANSPOSE_CONV int8 (grouped), computed per output pixel: each output sums the input
 * pixels whose scattered window covers it, so no int32 scratch is needed; the integer sums
 * equal TFLM's scatter-and-accumulate kernel exactly. */
#include "tinyc_kernels.h"
#include "tinyc_simd.h"

void tinyc_transpose_conv_s8(const tinyc_tconv_t *p, const tinyc_requant_t *q,
                             const int8_t *in, const int8_t *w, int8_t *out) {
  const int32_t cg = p->in_c / p->groups, og = p->out_c / p->groups;
  int32_t oy, ox, o, fy, fx, c;
  for (oy = 0; oy < p->out_h; ++oy) {
    for (ox = 0; ox < p->out_w; ++ox) {
      for (o = 0; o < p->out_c; ++o) {
        const int32_t first = (o / og) * cg;
        int32_t acc = q->bias[o], v;
        for (fy = 0; fy < p->k_h; ++fy) {
          const int32_t ty = oy + p->pad_t - fy;
          int32_t iy;
          if (ty < 0 || ty % p->stride_h) continue;
          iy = ty / p->stride_h;
          if (iy >= p->in_h) continue;
          for (fx = 0; fx < p->k_w; ++fx) {
            const int32_t tx = ox + p->pad_l - fx;
            const int8_t *x, *k;
            int32_t ix;
            if (tx < 0 || tx % p->stride_w) continue;
            ix = tx / p->stride_w;
            if (ix >= p->in_w) continue;
            x = in + (iy * p->in_w + ix) * p->in_c + first;
            k = w + ((o * p->k_h + fy) * p->k_w + fx) * cg;
            for (c = 0; c < cg; ++c) acc += ((int32_t)x[c] - p->in_zp) * k[c];
          }
        }
        v = tinyc_mbqm(acc, q->mult[o], q->shift[o]) + q->out_zp;
        *out++ = (int8_t)(v < q->act_min ? q->act_min : (v > q->act_max ? q->act_max : v));
      }
    }
  }
}
