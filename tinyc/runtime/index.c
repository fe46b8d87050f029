/* Indexing by constant positions: boxes of byte runs copied between strided layouts
 * (STRIDED_SLICE, DYNAMIC_UPDATE_SLICE) and GATHER along one axis. */
#include <string.h>

#include "tinyc_kernels.h"

/* memcpy for the short runs these kernels often move (a call costs more than the bytes) */
static inline void tinyc_copy_run(uint8_t *d, const uint8_t *s, int32_t n) {
  if (n > 8) {
    memcpy(d, s, (size_t)n);
  } else {
    while (n-- > 0) *d++ = *s++;
  }
}

void tinyc_copy_box(int32_t rank, const int32_t *shape, const int32_t *src_strides,
                    const int32_t *dst_strides, int32_t run, const void *src, void *dst) {
  int32_t idx[6] = {0, 0, 0, 0, 0, 0};
  const uint8_t *s = (const uint8_t *)src;
  uint8_t *d = (uint8_t *)dst;
  int32_t i;
  for (;;) {
    tinyc_copy_run(d, s, run);
    for (i = rank - 1; i >= 0; --i) {
      s += src_strides[i];
      d += dst_strides[i];
      if (++idx[i] < shape[i]) break;
      s -= src_strides[i] * shape[i];
      d -= dst_strides[i] * shape[i];
      idx[i] = 0;
    }
    if (i < 0) return;
  }
}

void tinyc_update_slice(int32_t rank, const int32_t *shape, const int32_t *dst_strides,
                        int32_t run, int32_t operand_bytes, int32_t start,
                        const void *operand, const void *update, void *out) {
  int32_t dense[6];
  int32_t i, step = run;
  if (operand != out) memcpy(out, operand, (size_t)operand_bytes);
  for (i = rank - 1; i >= 0; --i) {
    dense[i] = step;
    step *= shape[i];
  }
  tinyc_copy_box(rank, shape, dense, dst_strides, run, update, (uint8_t *)out + start);
}

void tinyc_gather(int32_t outer, int32_t axis_bytes, int32_t n_runs, const int32_t *runs,
                  int32_t inner_bytes, const void *in, void *out) {
  const uint8_t *s = (const uint8_t *)in;
  uint8_t *d = (uint8_t *)out;
  int32_t o, k;
  for (o = 0; o < outer; ++o) {
    for (k = 0; k < n_runs; ++k) {
      const int32_t bytes = runs[2 * k + 1] * inner_bytes;
      tinyc_copy_run(d, s + runs[2 * k] * inner_bytes, bytes);
      d += bytes;
    }
    s += axis_bytes;
  }
}
