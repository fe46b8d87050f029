/* Outputs that read the input through a table per axis (MIRROR_PAD, REVERSE_V2): the byte
 * offset of output index i along axis k is offsets[base_k + i]; `run` contiguous bytes per
 * element of the table axes. */
#include <string.h>

#include "tinyc_kernels.h"

void tinyc_take_axes(int32_t rank, const int32_t *shape, const int32_t *offsets, int32_t run,
                     const void *in, void *out) {
  const int32_t *tab[6];
  int32_t idx[6] = {0, 0, 0, 0, 0, 0};
  const uint8_t *s = (const uint8_t *)in;
  uint8_t *d = (uint8_t *)out;
  int32_t k;
  for (k = 0; k < rank; ++k) {
    tab[k] = offsets;
    offsets += shape[k];
  }
  for (;;) {
    int32_t off = 0;
    for (k = 0; k < rank; ++k) off += tab[k][idx[k]];
    memcpy(d, s + off, (size_t)run);
    d += run;
    for (k = rank - 1; k >= 0; --k) {
      if (++idx[k] < shape[k]) break;
      idx[k] = 0;
    }
    if (k < 0) return;
  }
}
