/* MEAN int8 over one contiguous group of axes: [outer][reduce][inner] -> [outer][inner]. */
#include "tinyc_kernels.h"
#include "tinyc_simd.h"

void tinyc_mean_s8(const tinyc_mean_t *p, const int8_t *in, int8_t *out) {
  const int32_t correction = p->in_zp * p->reduce;
  int32_t o, i, r;
  for (o = 0; o < p->outer; ++o) {
    const int8_t *base = in + o * p->reduce * p->inner;
    for (i = 0; i < p->inner; ++i) {
      int32_t sum = 0, v;
      for (r = 0; r < p->reduce; ++r) sum += base[r * p->inner + i];
      v = tinyc_mbqm(sum - correction, p->mult, p->shift) + p->out_zp;
      v = v < -128 ? -128 : (v > 127 ? 127 : v);
      *out++ = (int8_t)v;
    }
  }
}
