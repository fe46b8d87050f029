/* FILL (copies of one value) and CAST (C's conversions, as TFLM's static_cast). */
#include <string.h>

#include "tinyc_kernels.h"

void tinyc_fill_value(int32_t n, int32_t elem, const void *value, void *out) {
  uint8_t *d = (uint8_t *)out;
  int32_t i;
  if (elem == 1) {
    memset(d, *(const uint8_t *)value, (size_t)n);
    return;
  }
  for (i = 0; i < n; ++i) memcpy(d + i * elem, value, (size_t)elem);
}

#define TINYC_CAST_TO(T, src_expr)                          \
  do {                                                      \
    T *o = (T *)out;                                        \
    for (i = 0; i < n; ++i) o[i] = (T)(src_expr);           \
  } while (0)

#define TINYC_CAST_FROM(S)                                              \
  do {                                                                  \
    const S *x = (const S *)in;                                         \
    switch (to) {                                                       \
      case 1: TINYC_CAST_TO(int8_t, x[i]); break;                       \
      case 2: TINYC_CAST_TO(int16_t, x[i]); break;                      \
      case 3: TINYC_CAST_TO(int32_t, x[i]); break;                      \
      case 4: TINYC_CAST_TO(float, x[i]); break;                        \
      default: TINYC_CAST_TO(uint8_t, x[i]); break;                     \
    }                                                                   \
  } while (0)

void tinyc_cast(int32_t n, int32_t from, int32_t to, const void *in, void *out) {
  int32_t i;
  switch (from) {
    case 1: TINYC_CAST_FROM(int8_t); break;
    case 2: TINYC_CAST_FROM(int16_t); break;
    case 3: TINYC_CAST_FROM(int32_t); break;
    case 4: TINYC_CAST_FROM(float); break;
    default: TINYC_CAST_FROM(uint8_t); break; /* uint8 and bool */
  }
}
