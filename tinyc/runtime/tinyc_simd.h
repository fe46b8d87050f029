/* Packed 8-bit helpers: ACLE DSP instructions where the core has them (Cortex-M4/M7/M33/M55),
 * plain C elsewhere (Cortex-M0+, the host). */
#ifndef TINYC_SIMD_H
#define TINYC_SIMD_H

#include <stdint.h>
#include <string.h>

#include "tinyc_fixedpoint.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#define TINYC_DSP 1
#include <arm_acle.h>
#else
#define TINYC_DSP 0
#endif

/* Helium (M-profile vector extension, Cortex-M55) */
#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)
#define TINYC_MVE 1
#include <arm_mve.h>
#else
#define TINYC_MVE 0
#endif

/* Four int8 values as one (possibly unaligned) word. */
TINYC_INLINE uint32_t tinyc_load4(const int8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

TINYC_INLINE void tinyc_store4(int8_t *p, uint32_t v) { memcpy(p, &v, 4); }

#if TINYC_DSP
/* bytes 0 and 2, sign-extended into the two halfwords */
TINYC_INLINE int32_t tinyc_sxtb16(uint32_t x) { return (int32_t)__sxtb16(x); }
/* bytes 1 and 3, sign-extended into the two halfwords */
TINYC_INLINE int32_t tinyc_sxtb16_ror8(uint32_t x) {
  int32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
  return r;
}
/* offset pair + bytes 0 and 2 (resp. 1 and 3) sign-extended */
TINYC_INLINE int32_t tinyc_sxtab16(int32_t offset, uint32_t x) {
  return (int32_t)__sxtab16((uint32_t)offset, x);
}
TINYC_INLINE int32_t tinyc_sxtab16_ror8(int32_t offset, uint32_t x) {
  int32_t r;
  __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(offset), "r"(x));
  return r;
}
/* Per byte (signed): the larger, resp. the smaller, of a and b (SSUB8 sets GE, SEL picks) */
TINYC_INLINE uint32_t tinyc_max_s8x4(uint32_t a, uint32_t b) {
  uint32_t r;
  __asm__("ssub8 %0, %1, %2\n\tsel %0, %1, %2" : "=&r"(r) : "r"(a), "r"(b) : "cc");
  return r;
}
TINYC_INLINE uint32_t tinyc_min_s8x4(uint32_t a, uint32_t b) {
  uint32_t r;
  __asm__("ssub8 %0, %1, %2\n\tsel %0, %2, %1" : "=&r"(r) : "r"(a), "r"(b) : "cc");
  return r;
}
TINYC_INLINE int32_t tinyc_smlad(int32_t a, int32_t b, int32_t acc) {
  return (int32_t)__smlad(a, b, acc);
}
/* acc + a.lo * b.lo */
TINYC_INLINE int32_t tinyc_smlabb(int32_t a, int32_t b, int32_t acc) {
  return (int32_t)__smlabb(a, b, acc);
}
/* acc + a.hi * b.hi */
TINYC_INLINE int32_t tinyc_smlatt(int32_t a, int32_t b, int32_t acc) {
  return (int32_t)__smlatt(a, b, acc);
}
#endif

/* Dot product of n int8 pairs (plain, any alignment). */
TINYC_INLINE int32_t tinyc_dot_s8(const int8_t *a, const int8_t *b, int32_t n, int32_t acc) {
  int32_t i = 0;
#if TINYC_DSP
  for (; i + 4 <= n; i += 4) {
    const uint32_t va = tinyc_load4(a + i), vb = tinyc_load4(b + i);
    acc = tinyc_smlad(tinyc_sxtb16(va), tinyc_sxtb16(vb), acc);
    acc = tinyc_smlad(tinyc_sxtb16_ror8(va), tinyc_sxtb16_ror8(vb), acc);
  }
#endif
  for (; i < n; ++i) acc += (int32_t)a[i] * b[i];
  return acc;
}

/* Requantize an accumulator to int8 with a fused-activation clamp. */
TINYC_INLINE int8_t tinyc_requant_s8(int32_t acc, int32_t mult, int32_t shift, int32_t zp,
                                     int32_t lo, int32_t hi) {
  int32_t v = tinyc_mbqm(acc, mult, shift) + zp;
  v = v < lo ? lo : v;
  v = v > hi ? hi : v;
  return (int8_t)v;
}

#endif
