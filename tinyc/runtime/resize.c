/* RESIZE_NEAREST_NEIGHBOR (byte copies, any dtype) and RESIZE_BILINEAR int8 with TFLM's
 * 10-bit fixed-point weights; tinyc computes the index and weight tables at compile time
 * with TFLM's arithmetic. */
#include <string.h>

#include "tinyc_kernels.h"

void tinyc_resize_nearest(int32_t batches, int32_t in_h, int32_t in_w, int32_t out_h,
                          int32_t out_w, int32_t pixel_bytes, const int32_t *ys,
                          const int32_t *xs, const void *in, void *out) {
  const uint8_t *src = (const uint8_t *)in;
  uint8_t *dst = (uint8_t *)out;
  const int32_t row_bytes = in_w * pixel_bytes;
  int32_t b, y, x;
  for (b = 0; b < batches; ++b) {
    for (y = 0; y < out_h; ++y) {
      const uint8_t *row = src + ys[y] * row_bytes;
      for (x = 0; x < out_w; ++x) {
        memcpy(dst, row + xs[x] * pixel_bytes, (size_t)pixel_bytes);
        dst += pixel_bytes;
      }
    }
    src += in_h * row_bytes;
  }
}

void tinyc_resize_bilinear_s8(int32_t batches, int32_t in_h, int32_t in_w, int32_t out_h,
                              int32_t out_w, int32_t depth, const int32_t *ytab,
                              const int32_t *xtab, const int8_t *in, int8_t *out) {
  const int32_t row = in_w * depth;
  int32_t b, y, x, c;
  for (b = 0; b < batches; ++b) {
    const int8_t *image = in + b * in_h * row;
    for (y = 0; y < out_h; ++y) {
      const int8_t *r0 = image + ytab[3 * y] * row;
      const int8_t *r1 = image + ytab[3 * y + 1] * row;
      const int32_t wy1 = ytab[3 * y + 2], wy0 = 1024 - wy1;
      for (x = 0; x < out_w; ++x) {
        const int32_t x0 = xtab[3 * x] * depth, x1 = xtab[3 * x + 1] * depth;
        const int32_t wx1 = xtab[3 * x + 2], wx0 = 1024 - wx1;
        const int32_t w00 = wy0 * wx0, w10 = wy1 * wx0, w01 = wy0 * wx1, w11 = wy1 * wx1;
        /* |sum| <= 128 * 2048 * 2048: the int32 sum equals TFLM's int64 one */
        for (c = 0; c < depth; ++c) {
          int32_t acc = r0[x0 + c] * w00 + r1[x0 + c] * w10 + r0[x1 + c] * w01 +
                        r1[x1 + c] * w11;
          acc += acc > 0 ? (1 << 19) : -(1 << 19);
          *out++ = (int8_t)(acc / (1 << 20));
        }
      }
    }
  }
}
