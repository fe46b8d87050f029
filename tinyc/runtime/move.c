/* Data movement on raw bytes: block copies (concatenation, split, pack, unpack), padding
 * and transposition. */
#include <string.h>

#include "tinyc_kernels.h"

void tinyc_copy_blocks(int32_t outer, int32_t block, int32_t src_stride, int32_t dst_stride,
                       const void *src, void *dst) {
  const uint8_t *s = (const uint8_t *)src;
  uint8_t *d = (uint8_t *)dst;
  int32_t i;
  for (i = 0; i < outer; ++i) memcpy(d + i * dst_stride, s + i * src_stride, (size_t)block);
}

static void tinyc_fill(uint8_t *d, int32_t count, int32_t elem, const uint8_t *value) {
  int32_t i;
  if (elem == 1) {
    memset(d, value[0], (size_t)count);
    return;
  }
  for (i = 0; i < count; ++i) memcpy(d + i * elem, value, (size_t)elem);
}

/* Recursive over dimensions; rank <= 6. */
static void tinyc_pad_dim(int32_t dim, int32_t rank, const int32_t *in_shape,
                          const int32_t *before, const int32_t *out_shape, int32_t elem,
                          const uint8_t *value, const uint8_t **in, uint8_t **out) {
  int32_t inner = elem, i;
  for (i = dim + 1; i < rank; ++i) inner *= out_shape[i];
  tinyc_fill(*out, before[dim] * inner / elem, elem, value);
  *out += before[dim] * inner;
  if (dim == rank - 1) {
    memcpy(*out, *in, (size_t)(in_shape[dim] * elem));
    *out += in_shape[dim] * elem;
    *in += in_shape[dim] * elem;
  } else {
    for (i = 0; i < in_shape[dim]; ++i) {
      tinyc_pad_dim(dim + 1, rank, in_shape, before, out_shape, elem, value, in, out);
    }
  }
  {
    const int32_t after = out_shape[dim] - in_shape[dim] - before[dim];
    tinyc_fill(*out, after * inner / elem, elem, value);
    *out += after * inner;
  }
}

void tinyc_pad(int32_t rank, const int32_t *in_shape, const int32_t *before,
               const int32_t *out_shape, int32_t elem, const void *value, const void *in,
               void *out) {
  const uint8_t *src = (const uint8_t *)in;
  uint8_t *dst = (uint8_t *)out;
  tinyc_pad_dim(0, rank, in_shape, before, out_shape, elem, (const uint8_t *)value, &src, &dst);
}

void tinyc_transpose(int32_t rank, const int32_t *out_shape, const int32_t *in_strides,
                     int32_t elem, const void *in, void *out) {
  int32_t idx[6] = {0, 0, 0, 0, 0, 0};
  const uint8_t *s = (const uint8_t *)in;
  uint8_t *d = (uint8_t *)out;
  int32_t total = 1, n, i;
  for (i = 0; i < rank; ++i) total *= out_shape[i];
  for (n = 0; n < total; ++n) {
    int32_t off = 0;
    for (i = 0; i < rank; ++i) off += idx[i] * in_strides[i];
    memcpy(d, s + off * elem, (size_t)elem);
    d += elem;
    for (i = rank - 1; i >= 0; --i) {
      if (++idx[i] < out_shape[i]) break;
      idx[i] = 0;
    }
  }
}
