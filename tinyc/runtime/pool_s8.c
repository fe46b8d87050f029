/* AVERAGE_POOL_2D and MAX_POOL_2D int8; padding taps are not counted (TFLM semantics).
 *
 * Channels go in groups through the window: Helium adds 8 channels in int16 lanes (exact
 * while the window holds at most 256 values) and takes the maximum of 16; DSP cores add 4
 * channels in two SXTAB16 halfword pairs and take the maximum of 4 with SSUB8/SEL; the
 * rest, and other cores, one channel at a time. */
#include "tinyc_kernels.h"
#include "tinyc_simd.h"

static int32_t tinyc_clamp(int32_t v, int32_t lo, int32_t hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

/* round half away from zero; C division truncates toward zero */
static int8_t tinyc_average(int32_t sum, int32_t count, int32_t lo, int32_t hi) {
  const int32_t v = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
  return (int8_t)tinyc_clamp(v, lo, hi);
}

/* The window of output pixel (oy, ox): rows [ky0, ky1) and columns [kx0, kx1) of the
 * kernel lie inside the input; `first` points at its first in-image pixel. */
typedef struct {
  const int8_t *first;
  int32_t rows, cols, row_step;
} tinyc_window_span_t;

static tinyc_window_span_t tinyc_window(const tinyc_window_t *p, const int8_t *in, int32_t oy,
                                        int32_t ox) {
  const int32_t y0 = oy * p->stride_h - p->pad_t, x0 = ox * p->stride_w - p->pad_l;
  const int32_t ky0 = y0 < 0 ? -y0 : 0;
  const int32_t ky1 = p->in_h - y0 < p->k_h ? p->in_h - y0 : p->k_h;
  const int32_t kx0 = x0 < 0 ? -x0 : 0;
  const int32_t kx1 = p->in_w - x0 < p->k_w ? p->in_w - x0 : p->k_w;
  tinyc_window_span_t w;
  w.first = in + ((y0 + ky0) * p->in_w + x0 + kx0) * p->in_c;
  w.rows = ky1 > ky0 ? ky1 - ky0 : 0;
  w.cols = kx1 > kx0 ? kx1 - kx0 : 0;
  w.row_step = p->in_w * p->in_c;
  return w;
}

void tinyc_avgpool_s8(const tinyc_window_t *p, int32_t act_min, int32_t act_max,
                      const int8_t *in, int8_t *out) {
  const int32_t ch = p->in_c;
  int32_t oy, ox;
  for (oy = 0; oy < p->out_h; ++oy) {
    for (ox = 0; ox < p->out_w; ++ox) {
      const tinyc_window_span_t w = tinyc_window(p, in, oy, ox);
      const int32_t count = w.rows * w.cols;
      int8_t *o = out + (oy * p->out_w + ox) * ch;
      int32_t c = 0, ky, kx;
#if TINYC_MVE
      if (count <= 256) {
        for (; c < ch; c += 8) {
          const mve_pred16_t pr = vctp16q((uint32_t)(ch - c));
          int16x8_t acc = vdupq_n_s16(0);
          int16_t sums[8];
          int32_t j;
          for (ky = 0; ky < w.rows; ++ky) {
            const int8_t *x = w.first + ky * w.row_step + c;
            for (kx = 0; kx < w.cols; ++kx, x += ch) acc = vaddq_s16(acc, vldrbq_z_s16(x, pr));
          }
          vst1q_s16(sums, acc);
          for (j = 0; j < 8 && c + j < ch; ++j) {
            o[c + j] = tinyc_average(sums[j], count, act_min, act_max);
          }
        }
      }
#elif TINYC_DSP
      if (count <= 256) {
        for (; c + 4 <= ch; c += 4) {
          int32_t even = 0, odd = 0; /* channels c, c+2 and c+1, c+3 in halfwords */
          for (ky = 0; ky < w.rows; ++ky) {
            const int8_t *x = w.first + ky * w.row_step + c;
            for (kx = 0; kx < w.cols; ++kx, x += ch) {
              const uint32_t v = tinyc_load4(x);
              even = tinyc_sxtab16(even, v);
              odd = tinyc_sxtab16_ror8(odd, v);
            }
          }
          o[c] = tinyc_average((int16_t)(even & 0xffff), count, act_min, act_max);
          o[c + 1] = tinyc_average((int16_t)(odd & 0xffff), count, act_min, act_max);
          o[c + 2] = tinyc_average(even >> 16, count, act_min, act_max);
          o[c + 3] = tinyc_average(odd >> 16, count, act_min, act_max);
        }
      }
#endif
      for (; c < ch; ++c) {
        int32_t acc = 0;
        for (ky = 0; ky < w.rows; ++ky) {
          const int8_t *x = w.first + ky * w.row_step + c;
          for (kx = 0; kx < w.cols; ++kx) acc += x[kx * ch];
        }
        o[c] = tinyc_average(acc, count, act_min, act_max);
      }
    }
  }
}

void tinyc_maxpool_s8(const tinyc_window_t *p, int32_t act_min, int32_t act_max,
                      const int8_t *in, int8_t *out) {
  const int32_t ch = p->in_c;
  int32_t oy, ox;
  for (oy = 0; oy < p->out_h; ++oy) {
    for (ox = 0; ox < p->out_w; ++ox) {
      const tinyc_window_span_t w = tinyc_window(p, in, oy, ox);
      int8_t *o = out + (oy * p->out_w + ox) * ch;
      int32_t c = 0, ky, kx;
#if TINYC_MVE
      for (; c < ch; c += 16) {
        const mve_pred16_t pr = vctp8q((uint32_t)(ch - c));
        int8x16_t m = vdupq_n_s8(-128);
        for (ky = 0; ky < w.rows; ++ky) {
          const int8_t *x = w.first + ky * w.row_step + c;
          for (kx = 0; kx < w.cols; ++kx, x += ch) m = vmaxq_s8(m, vldrbq_z_s8(x, pr));
        }
        m = vminq_s8(vmaxq_s8(m, vdupq_n_s8((int8_t)act_min)), vdupq_n_s8((int8_t)act_max));
        vstrbq_p_s8(o + c, m, pr);
      }
#elif TINYC_DSP
      {
        const uint32_t lo4 = 0x01010101u * (uint8_t)act_min;
        const uint32_t hi4 = 0x01010101u * (uint8_t)act_max;
        for (; c + 4 <= ch; c += 4) {
          uint32_t m = 0x80808080u;
          for (ky = 0; ky < w.rows; ++ky) {
            const int8_t *x = w.first + ky * w.row_step + c;
            for (kx = 0; kx < w.cols; ++kx, x += ch) m = tinyc_max_s8x4(tinyc_load4(x), m);
          }
          tinyc_store4(o + c, tinyc_min_s8x4(tinyc_max_s8x4(m, lo4), hi4));
        }
      }
#endif
      for (; c < ch; ++c) {
        int32_t m = -128;
        for (ky = 0; ky < w.rows; ++ky) {
          const int8_t *x = w.first + ky * w.row_step + c;
          for (kx = 0; kx < w.cols; ++kx) m = x[kx * ch] > m ? x[kx * ch] : m;
        }
        o[c] = (int8_t)tinyc_clamp(m, act_min, act_max);
      }
    }
  }
}
