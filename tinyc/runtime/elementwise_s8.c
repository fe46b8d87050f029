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
#define TINYC_ADDSUB1(xv, yv) tinyc_addsub1(p, sign, xv, yv)
  TINYC_BCAST_EACH(b, x, y, out, TINYC_ADDSUB1);
#undef TINYC_ADDSUB1
}

static int8_t tinyc_mul1(const tinyc_mul_t *p, int32_t x, int32_t y) {
  const int32_t prod = (x - p->a_zp) * (y - p->b_zp);
  const int32_t o = tinyc_mbqm(prod, p->mult, p->shift) + p->out_zp;
  return (int8_t)tinyc_clamp(o, p->act_min, p->act_max);
}

void tinyc_mul_s8(const tinyc_bcast_t *b, const tinyc_mul_t *p, const int8_t *x,
                  const int8_t *y, int8_t *out) {
#define TINYC_MUL1(xv, yv) tinyc_mul1(p, xv, yv)
  TINYC_BCAST_EACH(b, x, y, out, TINYC_MUL1);
#undef TINYC_MUL1
}
