/* SUM (rescaled), REDUCE_MAX and REDUCE_MIN over any set of axes, and ARG_MAX / ARG_MIN
 * along one axis, int8 as TFLM. */
#include "tinyc_kernels.h"
#include "tinyc_simd.h"

/* Advance a row-major multi-index over `rank` axes; returns the change of the offset, and
 * sets *done when the index wrapped around. */
static int32_t tinyc_step(int32_t rank, const int32_t *shape, const int32_t *strides,
                          int32_t *idx, int32_t *done) {
  int32_t i, delta = 0;
  for (i = rank - 1; i >= 0; --i) {
    delta += strides[i];
    if (++idx[i] < shape[i]) return delta;
    delta -= strides[i] * shape[i];
    idx[i] = 0;
  }
  *done = 1;
  return delta;
}

void tinyc_reduce_s8(const tinyc_reduce_t *p, const int8_t *in, int8_t *out) {
  int32_t kept[6] = {0, 0, 0, 0, 0, 0};
  int32_t base = 0, kept_done = 0;
  while (!kept_done) {
    int32_t red[6] = {0, 0, 0, 0, 0, 0};
    int32_t off = base, red_done = 0, v;
    int32_t acc = p->op == 0 ? 0 : in[base];
    while (!red_done) {
      const int32_t x = in[off];
      if (p->op == 0) {
        acc = (int32_t)((uint32_t)acc + (uint32_t)x);
      } else if (p->op == 1) {
        acc = x > acc ? x : acc;
      } else {
        acc = x < acc ? x : acc;
      }
      off += tinyc_step(p->red_rank, p->red_shape, p->red_strides, red, &red_done);
    }
    if (p->op == 0) {
      v = tinyc_mbqm((int32_t)((uint32_t)acc - (uint32_t)(p->in_zp * p->count)), p->mult,
                     p->shift) +
          p->out_zp;
      v = v < -128 ? -128 : (v > 127 ? 127 : v);
    } else {
      v = acc;
    }
    *out++ = (int8_t)v;
    base += tinyc_step(p->kept_rank, p->kept_shape, p->kept_strides, kept, &kept_done);
  }
}

void tinyc_argminmax_s8(int32_t outer, int32_t axis, int32_t inner, int32_t is_max,
                        const int8_t *in, int32_t *out) {
  int32_t o, i, k;
  for (o = 0; o < outer; ++o) {
    const int8_t *base = in + o * axis * inner;
    for (i = 0; i < inner; ++i) {
      int32_t best = base[i], pos = 0;
      for (k = 1; k < axis; ++k) {
        const int32_t v = base[k * inner + i];
        if (is_max ? v > best : v < best) {
          best = v;
          pos = k;
        }
      }
      *out++ = pos;
    }
  }
}
