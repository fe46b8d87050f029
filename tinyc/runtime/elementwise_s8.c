/* ADD, SUB and MUL int8 with broadcasting over up to five dimensions. */
#include "tinyc_kernels.h"
#include "tinyc_simd.h"

static int32_t tinyc_clamp(int32_t v, int32_t lo, int32_t hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

static int8_t tinyc_addsub1(const tinyc_addsub_t *p, int32_t sign, int32_t x, int32_t y) {
  const int32_t sx = tinyc_mbqm((x - p->a_zp) * (1 << p->left_shift), p->a_mult, p->a_shift);
  const int32_t sy = tinyc_mbqm((y - p->b_zp) * (1 << p->left_shift), p->b_mult, p->b_shift);
  const int32_t raw = sign > 0 ? sx + sy : sx - sy;
  const int32_t o = tinyc_mbqm(raw, p->out_mult, p->out_shift) + p->out_zp;
  return (int8_t)tinyc_clamp(o, p->act_min, p->act_max);
}

void tinyc_addsub_s8(const tinyc_bcast_t *b, const tinyc_addsub_t *p, int32_t sign,
                     const int8_t *x, const int8_t *y, int8_t *out) {
  int32_t i0, i1, i2, i3, i4;
  for (i0 = 0; i0 < b->shape[0]; ++i0)
    for (i1 = 0; i1 < b->shape[1]; ++i1)
      for (i2 = 0; i2 < b->shape[2]; ++i2)
        for (i3 = 0; i3 < b->shape[3]; ++i3) {
          const int8_t *xr = x + i0 * b->stride_a[0] + i1 * b->stride_a[1] + i2 * b->stride_a[2] +
                             i3 * b->stride_a[3];
          const int8_t *yr = y + i0 * b->stride_b[0] + i1 * b->stride_b[1] + i2 * b->stride_b[2] +
                             i3 * b->stride_b[3];
          const int32_t sa = b->stride_a[4], sb = b->stride_b[4];
          for (i4 = 0; i4 < b->shape[4]; ++i4) {
            *out++ = tinyc_addsub1(p, sign, xr[i4 * sa], yr[i4 * sb]);
          }
        }
}

void tinyc_mul_s8(const tinyc_bcast_t *b, const tinyc_mul_t *p, const int8_t *x,
                  const int8_t *y, int8_t *out) {
  int32_t i0, i1, i2, i3, i4;
  for (i0 = 0; i0 < b->shape[0]; ++i0)
    for (i1 = 0; i1 < b->shape[1]; ++i1)
      for (i2 = 0; i2 < b->shape[2]; ++i2)
        for (i3 = 0; i3 < b->shape[3]; ++i3) {
          const int8_t *xr = x + i0 * b->stride_a[0] + i1 * b->stride_a[1] + i2 * b->stride_a[2] +
                             i3 * b->stride_a[3];
          const int8_t *yr = y + i0 * b->stride_b[0] + i1 * b->stride_b[1] + i2 * b->stride_b[2] +
                             i3 * b->stride_b[3];
          const int32_t sa = b->stride_a[4], sb = b->stride_b[4];
          for (i4 = 0; i4 < b->shape[4]; ++i4) {
            const int32_t prod = ((int32_t)xr[i4 * sa] - p->a_zp) * ((int32_t)yr[i4 * sb] - p->b_zp);
            const int32_t o = tinyc_mbqm(prod, p->mult, p->shift) + p->out_zp;
            *out++ = (int8_t)tinyc_clamp(o, p->act_min, p->act_max);
          }
        }
}
