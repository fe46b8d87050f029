/* SVDF with an int8 or int16 state, as TFLM's EvalIntegerSvdfReference computes it. */
#include <string.h>

#include "tinyc_fixedpoint.h"
#include "tinyc_kernels.h"

static int32_t tinyc_state_get(const void *s, int32_t i, int32_t bytes) {
  return bytes == 2 ? ((const int16_t *)s)[i] : ((const int8_t *)s)[i];
}

void tinyc_svdf_s8(const tinyc_svdf_t *p, const int8_t *in, void *state, int8_t *out,
                   int32_t *scratch) {
  const int32_t total = p->batch * p->filters * p->memory, sb = p->state_bytes;
  const int32_t lo = sb == 2 ? -32768 : -128, hi = sb == 2 ? 32767 : 127;
  int32_t b, r, c, u;
  /* the whole state moves one value down; each filter's newest value is rewritten below */
  memmove(state, (const uint8_t *)state + sb, (size_t)((total - 1) * sb));
  for (b = 0; b < p->batch; ++b) {
    const int8_t *x = in + b * p->input;
    for (r = 0; r < p->filters; ++r) {
      const int8_t *w = p->w_feature + r * p->input;
      const int32_t at = (b * p->filters + r) * p->memory + p->memory - 1;
      int32_t dot = 0;
      for (c = 0; c < p->input; ++c) dot += w[c] * (x[c] - p->input_zp);
      dot = tinyc_mbqm(dot, p->mult1, p->shift1);
      dot = (dot < lo ? lo : (dot > hi ? hi : dot)) + p->state_zp;
      if (sb == 2) {
        ((int16_t *)state)[at] = (int16_t)dot;
      } else {
        ((int8_t *)state)[at] = (int8_t)dot;
      }
    }
  }
  for (b = 0; b < p->batch; ++b) {
    for (r = 0; r < p->filters; ++r) {
      const int32_t base = (b * p->filters + r) * p->memory;
      int32_t acc = 0;
      for (c = 0; c < p->memory; ++c) {
        const int32_t w = tinyc_state_get(p->w_time, r * p->memory + c, sb);
        acc += w * (tinyc_state_get(state, base + c, sb) - p->state_zp);
      }
      scratch[b * p->filters + r] = acc;
    }
    for (u = 0; u < p->units; ++u) {
      int32_t acc = p->bias ? p->bias[u] : 0, v;
      for (r = 0; r < p->rank; ++r) acc += scratch[b * p->filters + u * p->rank + r];
      v = tinyc_mbqm(acc, p->mult2, p->shift2) + p->output_zp;
      out[b * p->units + u] = (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
    }
  }
}
