/* FULLY_CONNECTED int8 through the shared matrix core. */
#include "tinyc_kernels.h"
#include "tinyc_matmul.h"

void tinyc_fc_s8(int32_t rows, int32_t in_c, int32_t out_c, const tinyc_requant_t *q,
                 const int8_t *in, const int8_t *w, int8_t *out) {
  int32_t r;
  for (r = 0; r < rows; r += 2) {
    const int8_t *r1 = r + 1 < rows ? in + (r + 1) * in_c : 0;
    tinyc_matmul_s8(in + r * in_c, r1, in_c, w, out_c, q, out + r * out_c,
                    r1 ? out + (r + 1) * out_c : 0);
  }
}
