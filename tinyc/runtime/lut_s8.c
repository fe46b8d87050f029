/* Any elementwise int8 -> int8 function (LOGISTIC, TANH, RELU, requantization ...) as a
 * 256-entry table that tinyc fills at compile time from its reference implementation. */
#include "tinyc_kernels.h"

void tinyc_lut_s8(int32_t n, const int8_t *table, const int8_t *in, int8_t *out) {
  int32_t i;
  for (i = 0; i < n; ++i) out[i] = table[(uint8_t)in[i]];
}
