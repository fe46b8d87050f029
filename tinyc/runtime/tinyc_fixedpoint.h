/* Fixed-point helpers of TFLite Micro's integer kernels.
 *
 * Each function mirrors the function of the same name in tinyc/ir/fixedpoint.py; tests
 * check the two against each other. Right shifts of negative values are arithmetic (GCC,
 * Clang and every Arm compiler define them so).
 */
#ifndef TINYC_FIXEDPOINT_H
#define TINYC_FIXEDPOINT_H

#include <stdint.h>

#define TINYC_INLINE static inline __attribute__((always_inline))

/* gemmlowp's SaturatingRoundingDoublingHighMul without the saturation case: valid unless
 * a == b == INT32_MIN. floor((a*b + 2^30) / 2^31) equals gemmlowp's round-half-away form. */
TINYC_INLINE int32_t tinyc_mulhi(int32_t a, int32_t b) {
#if defined(__thumb2__)
  /* SMULL; LSRS lo,#31 (carry = bit 30 of lo); ADC hi2 = (hi << 1) + (lo >> 31) + carry */
  int32_t hi = a, lo = b;
  __asm__("smull %1, %0, %0, %1\n\t"
          "lsrs %1, %1, #31\n\t"
          "adc %0, %1, %0, lsl #1"
          : "+r"(hi), "+r"(lo)
          :
          : "cc");
  return hi;
#elif defined(__ARM_ARCH_6M__)
  /* no 32x32->64 multiply: four 16x16 products (each fits in 32 bits), summed into a
   * 64-bit hi:lo with explicit carries, then + 2^30 and the bits [31, 63). */
  const uint32_t al = (uint32_t)a & 0xffffu, bl = (uint32_t)b & 0xffffu;
  const int32_t ah = a >> 16, bh = b >> 16;
  const int32_t m1 = ah * (int32_t)bl, m2 = (int32_t)al * bh;
  uint32_t lo = al * bl, t;
  int32_t hi = ah * bh;
  t = lo + ((uint32_t)m1 << 16);
  hi += (m1 >> 16) + (t < lo);
  lo = t + ((uint32_t)m2 << 16);
  hi += (m2 >> 16) + (lo < t);
  t = lo + 0x40000000u;
  hi += t < lo;
  return (int32_t)(((uint32_t)hi << 1) | (t >> 31));
#else
  return (int32_t)(((int64_t)a * b + ((int64_t)1 << 30)) >> 31);
#endif
}

/* The saturating form, for operands that may both be INT32_MIN. */
TINYC_INLINE int32_t tinyc_srdhm(int32_t a, int32_t b) {
  if (a == b && a == INT32_MIN) return INT32_MAX;
  return tinyc_mulhi(a, b);
}

/* gemmlowp's RoundingDivideByPOT: x / 2^e rounded half away from zero, e in [0, 31]. */
TINYC_INLINE int32_t tinyc_rdbpot(int32_t x, int32_t e) {
  const int32_t mask = (int32_t)((1u << e) - 1u);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0);
  return (x >> e) + (remainder > threshold);
}

/* TFLite's (double-rounding) MultiplyByQuantizedMultiplier. */
TINYC_INLINE int32_t tinyc_mbqm(int32_t x, int32_t multiplier, int32_t shift) {
  const int32_t left = shift > 0 ? shift : 0;
  const int32_t right = shift > 0 ? 0 : -shift;
  /* multiplier >= 0, so the INT32_MIN * INT32_MIN saturation case cannot occur */
  return tinyc_rdbpot(tinyc_mulhi((int32_t)((uint32_t)x << left), multiplier), right);
}

/* tinyc_rdbpot for e >= 1 in three Thumb-2 instructions: add -1 to negatives, shift
 * arithmetically, add the last bit shifted out. Valid for x != INT32_MIN. */
TINYC_INLINE int32_t tinyc_rdbpot1(int32_t x, int32_t e) {
#if defined(__thumb2__)
  __asm__("add %0, %0, %0, asr #31\n\t"
          "asrs %0, %0, %1\n\t"
          "adc %0, %0, #0"
          : "+r"(x)
          : "r"(e)
          : "cc");
  return x;
#else
  const int32_t t = x + (x >> 31);
  return (t >> e) + ((t >> (e - 1)) & 1);
#endif
}

TINYC_INLINE int32_t tinyc_saturating_rounding_mul_by_pot(int32_t x, int32_t exponent) {
  if (exponent == 0) return x;
  if (exponent < 0) return tinyc_rdbpot(x, -exponent);
  {
    const int32_t threshold = (int32_t)((1u << (31 - exponent)) - 1u);
    if (x > threshold) return INT32_MAX;
    if (x < -threshold) return INT32_MIN;
    return (int32_t)((uint32_t)x << exponent);
  }
}

TINYC_INLINE int32_t tinyc_wrap_add(int32_t a, int32_t b) {
  return (int32_t)((uint32_t)a + (uint32_t)b);
}

TINYC_INLINE int32_t tinyc_rounding_half_sum(int32_t a, int32_t b) {
  int64_t s = (int64_t)a + b;
  s += s >= 0 ? 1 : -1;
  return (int32_t)(s / 2);
}

/* gemmlowp exp(x) for x in [-1/4, 0), Q0.31 in and out. */
TINYC_INLINE int32_t tinyc_exp_on_interval(int32_t a) {
  const int32_t constant_term = 1895147668;
  const int32_t constant_1_over_3 = 715827883;
  const int32_t x = tinyc_wrap_add(a, 1 << 28);
  const int32_t x2 = tinyc_srdhm(x, x);
  const int32_t x3 = tinyc_srdhm(x2, x);
  const int32_t x4 = tinyc_srdhm(x2, x2);
  const int32_t x4_over_4 = tinyc_rdbpot(x4, 2);
  const int32_t poly = tinyc_rdbpot(
      tinyc_wrap_add(tinyc_srdhm(tinyc_wrap_add(x4_over_4, x3), constant_1_over_3), x2), 1);
  return tinyc_wrap_add(constant_term, tinyc_srdhm(constant_term, tinyc_wrap_add(x, poly)));
}

/* gemmlowp exp_on_negative_values: a <= 0 in Q(integer_bits), result Q0.31. */
static inline int32_t tinyc_exp_on_negative_values(int32_t a, int32_t integer_bits) {
  static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308,
                                         39332535,   720401,     242};
  const int32_t frac_bits = 31 - integer_bits;
  const int32_t one_quarter = (int32_t)1 << (frac_bits - 2);
  const int32_t mask = one_quarter - 1;
  const int32_t a_mod = tinyc_wrap_add(a & mask, -one_quarter);
  int32_t result = tinyc_exp_on_interval(tinyc_saturating_rounding_mul_by_pot(a_mod, integer_bits));
  const int32_t remainder = tinyc_wrap_add(a_mod, (int32_t)(0u - (uint32_t)a));
  int32_t k;
  for (k = 0; k < 7; ++k) {
    const int32_t exponent = k - 2;
    if (integer_bits > exponent) {
      const int32_t bit = (int32_t)(1u << (frac_bits + exponent));
      if (remainder & bit) result = tinyc_srdhm(result, multipliers[k]);
    }
  }
  if (integer_bits > 5) {
    const int32_t clamp = -(int32_t)(1u << (36 - integer_bits));
    if (a < clamp) result = 0;
  }
  if (a == 0) result = INT32_MAX;
  return result;
}

static inline int32_t tinyc_newton_reciprocal_half(int32_t half_denominator) {
  int32_t x = tinyc_wrap_add(1515870810, tinyc_srdhm(half_denominator, -1010580540));
  int i;
  for (i = 0; i < 3; ++i) {
    const int32_t hd_x = tinyc_srdhm(half_denominator, x);
    const int32_t one_minus = tinyc_wrap_add(1 << 29, -hd_x);
    x = tinyc_wrap_add(x, tinyc_saturating_rounding_mul_by_pot(tinyc_srdhm(x, one_minus), 2));
  }
  return x;
}

/* gemmlowp one_over_one_plus_x_for_x_in_0_1 (Q0.31). */
static inline int32_t tinyc_one_over_one_plus_x(int32_t a) {
  const int32_t x = tinyc_newton_reciprocal_half(tinyc_rounding_half_sum(a, INT32_MAX));
  return tinyc_saturating_rounding_mul_by_pot(x, 1);
}

/* TFLite's GetReciprocal; *num_bits_over_unit receives the scale exponent. */
static inline int32_t tinyc_get_reciprocal(int32_t x, int32_t x_integer_digits,
                                           int32_t *num_bits_over_unit) {
  const int32_t headroom_plus_one = x == 0 ? 32 : __builtin_clz((uint32_t)x);
  const uint32_t shifted = headroom_plus_one == 32 ? 0u : (uint32_t)x << headroom_plus_one;
  const int32_t shifted_minus_one = (int32_t)(shifted - ((uint32_t)1 << 31));
  *num_bits_over_unit = x_integer_digits - headroom_plus_one;
  return tinyc_one_over_one_plus_x(shifted_minus_one);
}

#endif
