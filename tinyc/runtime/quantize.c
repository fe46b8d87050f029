/* QUANTIZE float -> int8 and DEQUANTIZE int8 -> float, as TFLM rounds them. */
#include <math.h>

#include "tinyc_fixedpoint.h"
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

static int32_t tinyc_load_int(const void *p, int32_t i, int32_t bytes) {
  if (bytes == 1) return ((const int8_t *)p)[i];
  if (bytes == 2) return ((const int16_t *)p)[i];
  return ((const int32_t *)p)[i];
}

/* QUANTIZE between integer types (int8 / int16 / int32): TFLM's Requantize. */
void tinyc_requantize(int32_t n, int32_t in_bytes, int32_t out_bytes, int32_t in_zp,
                      int32_t out_zp, int32_t mult, int32_t shift, int32_t lo, int32_t hi,
                      const void *in, void *out) {
  int32_t i;
  for (i = 0; i < n; ++i) {
    int32_t v = tinyc_mbqm(tinyc_load_int(in, i, in_bytes) - in_zp, mult, shift) + out_zp;
    v = v < lo ? lo : (v > hi ? hi : v);
    if (out_bytes == 1) {
      ((int8_t *)out)[i] = (int8_t)v;
    } else if (out_bytes == 2) {
      ((int16_t *)out)[i] = (int16_t)v;
    } else {
      ((int32_t *)out)[i] = v;
    }
  }
}
