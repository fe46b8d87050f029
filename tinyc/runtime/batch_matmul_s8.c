/* BATCH_MATMUL int8 (TFLM's reference arithmetic): for each batch entry, out[i][j] =
 * clamp(mbqm(sum_k (lhs[i][k] - lhs_zp) * (rhs[k][j] - rhs_zp)) + out_zp). Operands are read
 * through element strides (rows / depth of the left, depth / columns of the right), so a
 * transposed operand (adj_x, adj_y) needs no copy; broadcast batch entries are offsets. */
#include <stdint.h>

#include "tinyc_fixedpoint.h"

void tinyc_batch_matmul_s8(int32_t batches, const int32_t *offsets, int32_t rows,
                           int32_t depth, int32_t cols, const int32_t *strides,
                           const int32_t *quant, const int8_t *lhs, const int8_t *rhs,
                           int8_t *out) {
  /* strides: lhs row, lhs depth, rhs depth, rhs column; quant: lhs_zp, rhs_zp, multiplier,
   * shift, out_zp; offsets: (lhs, rhs) element offset per batch entry */
  int32_t b, i, j, k;
  for (b = 0; b < batches; ++b) {
    const int8_t *l = lhs + offsets[2 * b];
    const int8_t *r = rhs + offsets[2 * b + 1];
    for (i = 0; i < rows; ++i) {
      for (j = 0; j < cols; ++j) {
        int32_t acc = 0, v;
        for (k = 0; k < depth; ++k) {
          const int32_t a = l[i * strides[0] + k * strides[1]] - quant[0];
          const int32_t c = r[k * strides[2] + j * strides[3]] - quant[1];
          acc = (int32_t)((uint32_t)acc + (uint32_t)(a * c));
        }
        v = tinyc_mbqm(acc, quant[2], quant[3]) + quant[4];
        *out++ = (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
      }
    }
  }
}
