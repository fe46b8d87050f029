/* SOFTMAX int8 (TFLM's fixed-point algorithm); exp values come from a compile-time table. */
#include "tinyc_kernels.h"
#include "tinyc_simd.h"

void tinyc_softmax_s8(int32_t rows, int32_t depth, const int32_t *exp_table, const int8_t *in,
                      int8_t *out) {
  int32_t r, c;
  for (r = 0; r < rows; ++r) {
    const int8_t *x = in + r * depth;
    int8_t *y = out + r * depth;
    int32_t max = -128, sum = 0, bits_over_unit, scale, exponent;
    for (c = 0; c < depth; ++c) max = x[c] > max ? x[c] : max;
    for (c = 0; c < depth; ++c) sum += tinyc_rdbpot(exp_table[max - x[c]], 12);
    scale = tinyc_get_reciprocal(sum, 12, &bits_over_unit);
    exponent = bits_over_unit + 31 - 8;
    for (c = 0; c < depth; ++c) {
      int32_t v = tinyc_rdbpot(tinyc_srdhm(scale, exp_table[max - x[c]]), exponent) - 128;
      v = v < -128 ? -128 : (v > 127 ? 127 : v);
      y[c] = (int8_t)v;
    }
  }
}

/* The int8 -> int16 form (TFLM's Softmax<int8_t, int16_t>): 1/65536 - 32768 out. */
void tinyc_softmax_s8_s16(int32_t rows, int32_t depth, const int32_t *exp_table,
                          const int8_t *in, int16_t *out) {
  int32_t r, c;
  for (r = 0; r < rows; ++r) {
    const int8_t *x = in + r * depth;
    int16_t *y = out + r * depth;
    int32_t max = -128, sum = 0, bits_over_unit, scale, exponent;
    for (c = 0; c < depth; ++c) max = x[c] > max ? x[c] : max;
    for (c = 0; c < depth; ++c) sum += tinyc_rdbpot(exp_table[max - x[c]], 12);
    scale = tinyc_get_reciprocal(sum, 12, &bits_over_unit);
    exponent = bits_over_unit + 31 - 16;
    for (c = 0; c < depth; ++c) {
      int32_t v = tinyc_rdbpot(tinyc_srdhm(scale, exp_table[max - x[c]]), exponent) - 32768;
      v = v < -32768 ? -32768 : (v > 32767 ? 32767 : v);
      y[c] = (int16_t)v;
    }
  }
}
