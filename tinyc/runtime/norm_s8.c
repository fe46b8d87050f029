/* L2_NORMALIZATION and LOG_SOFTMAX int8 over the last axis, as TFLM: gemmlowp-style fixed
 * point (an inverse square root by Newton-Raphson, a log of x >= 1 by a rational
 * approximation). Each helper mirrors its Python twin in tinyc/ir/ops. */
#include "tinyc_fixedpoint.h"
#include "tinyc_kernels.h"

static int32_t tinyc_clz32(uint32_t x) { return x == 0 ? 32 : __builtin_clz(x); }

/* SaturatingRoundingMultiplyByPOTParam for exponent >= 0. */
static int32_t tinyc_sat_shift(int32_t x, int32_t exponent) {
  return tinyc_saturating_rounding_mul_by_pot(x, exponent);
}

static int32_t tinyc_wrap_sub(int32_t a, int32_t b) {
  return (int32_t)((uint32_t)a - (uint32_t)b);
}

static int32_t tinyc_sat_add(int32_t a, int32_t b) {
  const int64_t s = (int64_t)a + b;
  return s > INT32_MAX ? INT32_MAX : (s < INT32_MIN ? INT32_MIN : (int32_t)s);
}

/* GetInvSqrtQuantizedMultiplierExp(x, kReverseShift = -1). */
static void tinyc_inv_sqrt(int32_t x, int32_t *multiplier, int32_t *shift) {
  int32_t s = 11, pairs, half_input, r, i;
  const int32_t half_three = (1 << 28) + (1 << 27);
  if (x <= 1) {
    *multiplier = INT32_MAX;
    *shift = 0;
    return;
  }
  if (x >= (1 << 29)) {
    x /= 4;
    ++s;
  }
  pairs = (tinyc_clz32((uint32_t)x) - 1) / 2 - 1;
  s -= pairs;
  x = (int32_t)((uint32_t)x << (2 * pairs));
  half_input = tinyc_rdbpot(x >> 1, 1);
  r = 1 << 28;
  for (i = 0; i < 5; ++i) {
    const int32_t x3 = tinyc_saturating_rounding_mul_by_pot(
        tinyc_srdhm(tinyc_srdhm(r, r), r), 6);
    r = tinyc_saturating_rounding_mul_by_pot(
        tinyc_wrap_sub(tinyc_srdhm(half_three, r), tinyc_srdhm(half_input, x3)), 3);
  }
  r = tinyc_srdhm(r, 1518500250);
  if (s < 0) {
    r = (int32_t)((uint32_t)r << -s);
    s = 0;
  }
  *multiplier = r;
  *shift = -s;
}

void tinyc_l2norm_s8(int32_t rows, int32_t depth, int32_t in_zp, const int8_t *in,
                     int8_t *out) {
  int32_t r, c;
  for (r = 0; r < rows; ++r) {
    uint32_t acc = 0;
    int32_t mult, shift;
    for (c = 0; c < depth; ++c) {
      const int32_t d = in[c] - in_zp;
      acc += (uint32_t)(d * d);
    }
    tinyc_inv_sqrt((int32_t)acc, &mult, &shift);
    for (c = 0; c < depth; ++c) {
      const int32_t v = tinyc_mbqm(in[c] - in_zp, mult, shift + 7);
      out[c] = (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
    }
    in += depth;
    out += depth;
  }
}

/* log_x_for_x_greater_than_or_equal_to_1<5>(Q12 x): Q5 result. */
static int32_t tinyc_log_q12_to_q5(int32_t z_a) {
  const int32_t accum_bits = 6, input_bits = 12, output_bits = 5;
  const int32_t quarter = tinyc_rdbpot(536870912, accum_bits);
  const int32_t sqrt_half = 1518500250, sqrt_sqrt_half = 1805811301;
  const int32_t hp1 = tinyc_clz32((uint32_t)z_a);
  const int32_t r_a = tinyc_sat_shift(tinyc_srdhm(tinyc_sat_shift(z_a, hp1 - 1), sqrt_half), 1);
  const int32_t z_a_adj =
      tinyc_sat_add(tinyc_sat_shift(input_bits - hp1, 31 - accum_bits), quarter);
  const int32_t z_b = tinyc_srdhm(z_a, sqrt_half);
  const int32_t z_b_headroom = tinyc_clz32((uint32_t)z_b) - 1;
  const int32_t r_b = tinyc_sat_shift(z_a, z_b_headroom);
  const int32_t z_b_adj =
      tinyc_sat_add(tinyc_sat_shift(input_bits - z_b_headroom, 31 - accum_bits), -quarter);
  const int32_t r = r_a < r_b ? r_a : r_b;
  const int32_t z_adj = z_a_adj > z_b_adj ? z_a_adj : z_b_adj;
  const int32_t p = tinyc_rounding_half_sum(r, sqrt_sqrt_half);
  int32_t q = tinyc_wrap_sub(r, sqrt_sqrt_half);
  int32_t sq, num, denom, recip, total;
  q = tinyc_wrap_add(q, q);
  sq = tinyc_srdhm(q, q);
  num = tinyc_wrap_add(tinyc_srdhm(q, r), tinyc_srdhm(tinyc_srdhm(q, sq), 117049297));
  denom = tinyc_wrap_add(
      tinyc_srdhm(p, tinyc_wrap_add(tinyc_wrap_add(1057819769, q), tinyc_srdhm(127690142, sq))),
      tinyc_srdhm(638450708, q));
  recip = tinyc_one_over_one_plus_x(denom);
  total = tinyc_wrap_add(tinyc_srdhm(z_adj, 1488522236),
                         tinyc_srdhm(tinyc_rdbpot(num, accum_bits), recip));
  return tinyc_saturating_rounding_mul_by_pot(total, accum_bits - output_bits);
}

void tinyc_log_softmax_s8(int32_t rows, int32_t depth, const tinyc_log_softmax_t *p,
                          const int8_t *in, int8_t *out) {
  int32_t r, c;
  for (r = 0; r < rows; ++r) {
    int32_t max = -128, sum = 0, log_sum, adjusted, shifted;
    for (c = 0; c < depth; ++c) max = in[c] > max ? in[c] : max;
    for (c = 0; c < depth; ++c) sum = tinyc_wrap_add(sum, p->exp_q12[max - in[c]]);
    log_sum = tinyc_log_q12_to_q5(sum);
    shifted = tinyc_mbqm(tinyc_wrap_add(log_sum, INT32_MIN), p->rev_mult, p->rev_shift);
    adjusted = p->diff_min - 1 > shifted ? p->diff_min - 1 : shifted;
    for (c = 0; c < depth; ++c) {
      const int32_t diff = in[c] - max;
      int32_t v = -128;
      if (diff > adjusted) {
        v = tinyc_rdbpot(tinyc_wrap_sub(p->diff_q5[-diff], log_sum), 31 - 5 - 4) + 127;
        v = v < -128 ? -128 : (v > 127 ? 127 : v);
      }
      out[c] = (int8_t)v;
    }
    in += depth;
    out += depth;
  }
}
