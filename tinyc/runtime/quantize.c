/* QUANTIZE float -> int8 and DEQUANTIZE int8 -> float, as TFLM rounds them. */
#include <math.h>

#include "tinyc_kernels.h"

void tinyc_quantize_f32_s8(int32_t n, float scale, int32_t zp, const float *in, int8_t *out) {
  int32_t i;
  for (i = 0; i < n; ++i) {
    int32_t v = (int32_t)roundf(in[i] / scale) + zp;
    v = v < -128 ? -128 : (v > 127 ? 127 : v);
    out[i] = (int8_t)v;
  }
}

void tinyc_dequantize_s8_f32(int32_t n, float scale, int32_t zp, const int8_t *in, float *out) {
  int32_t i;
  /* (x - zp) is exact in float, so one float multiply rounds the exact product once,
   * exactly like TFLM's double multiply followed by a cast. */
  for (i = 0; i < n; ++i) out[i] = scale * (float)((int32_t)in[i] - zp);
}
