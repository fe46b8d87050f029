/* int8 convolution, fully connected and depthwise kernels, specialized per layer.
 *
 * Every function here is always_inline: the generated model calls each from a small
 * per-layer function with compile-time constant shapes and quantization constants, so the
 * compiler unrolls and folds them for that layer. Results are bit-exact with TFLite Micro.
 *
 * Requantization records: three int32 per output channel {bias, multiplier, shift}. When
 * `right_only` is set, every channel shifts right by at least one bit and `shift` holds
 * that (positive) right shift; otherwise it is TFLite's signed shift.
 */
#ifndef TINYC_NN_H
#define TINYC_NN_H

#include <stdint.h>
#include <string.h>

#include "tinyc_simd.h"

TINYC_INLINE int32_t tinyc_rq_s8(int32_t acc, int32_t mult, int32_t shift, int32_t zp,
                                 int32_t lo, int32_t hi, int32_t right_only) {
  int32_t v;
#if defined(__thumb2__) && TINYC_DSP
  if (right_only) {
    /* doubling high multiply (3), round-half-away right shift (3) with the zero point
     * added by the final ADC */
    int32_t t;
    __asm__("smull %[t], %[v], %[a], %[m]\n\t"
            "lsrs %[t], %[t], #31\n\t"
            "adc %[v], %[t], %[v], lsl #1\n\t"
            "add %[v], %[v], %[v], asr #31\n\t"
            "asrs %[v], %[v], %[s]\n\t"
            "adc %[v], %[v], %[zp]"
            : [t] "=&r"(t), [v] "=&r"(v)
            : [a] "r"(acc), [m] "r"(mult), [s] "r"(shift), [zp] "r"(zp)
            : "cc");
  } else {
    v = tinyc_mbqm(acc, mult, shift) + zp;
  }
  v = __ssat(v, 8);
#else
  if (right_only) {
    v = tinyc_rdbpot1(tinyc_mulhi(acc, mult), shift) + zp;
  } else {
    v = tinyc_mbqm(acc, mult, shift) + zp;
  }
  v = v < -128 ? -128 : (v > 127 ? 127 : v);
#endif
  if (lo > -128) v = v < lo ? lo : v;
  if (hi < 127) v = v > hi ? hi : v;
  return v;
}

/* Requantize channel records {bias, multiplier, shift} (depthwise layout). */
#define TINYC_RQ3(acc, rec) tinyc_rq_s8(acc, (rec)[1], (rec)[2], zp, lo, hi, right_only)

/* The matrix core: rows of k int8 values times the weights of `out_c` channels,
 * requantized. Rows hold raw values: the input zero point is folded into the bias.
 *
 * Two weight layouts, chosen by tinyc for the target core:
 * - TINYC_WL_PAIRS (Cortex-M4/M7/M33, M0+): k padded to a multiple of 4; channel pairs
 *   interleaved per 4-byte group, w[(pair * k/4 + g) * 8 + j * 4 + b] = byte 4g+b of channel
 *   2*pair + j (an odd last channel paired with zeros); requantization per pair {bias a,
 *   bias b, multiplier a, multiplier b, shift a, shift b}. On DSP cores the assembly kernels
 *   of tinyc_mm_dsp.S take rows expanded to int16 pairs.
 * - TINYC_WL_QUADS (Cortex-M55, Helium): k padded to a multiple of 16; channel quads
 *   interleaved per 16-byte block, w[(quad * k/16 + b) * 64 + j * 16 + i] = byte 16b+i of
 *   channel 4*quad + j; requantization per quad {4 biases, 4 multipliers, 4 shifts}.
 * - TINYC_WL_UPAIRS (Cortex-M0+): the pair layout with every weight stored as w + 128
 *   (w ^ 0x80), so that ARMv6-M's byte loads with immediate offsets (LDRB; LDRSB has none)
 *   read both operands: the rows are flipped the same way in their scratch copy, and
 *   sum(x * w) = sum(xu * wu) - 128 * sum(xu) - 128 * sum(w): tinyc folds the last term into
 *   the bias, the kernel subtracts the middle one per row (all modulo 2^32, exact because
 *   the true sum fits in int32).
 * Shifts are TFLite's (negative = right) unless `right_only` says every shift is a right
 * shift of at least one bit: then pair layouts store the (positive) amount.
 */
#define TINYC_WL_PAIRS 0
#define TINYC_WL_QUADS 1
#define TINYC_WL_UPAIRS 2

#if TINYC_DSP
#define TINYC_MM_ROWS 3
typedef uint32_t tinyc_row_t;
void tinyc_mm3x2(const uint32_t *rows, const uint32_t *w, int32_t groups, int32_t *acc,
                 const int32_t *bias2);
void tinyc_mm1x4(const uint32_t *row, const uint32_t *w, int32_t groups, int32_t *acc,
                 const int32_t *bias4, const uint32_t *w2);
/* a fully-connected layer for one row, requantized (right shifts); rq = {zp, lo, hi} */
#define TINYC_FC1_DSP(NAME)                                                                 \
  void NAME(const uint32_t *row, const uint32_t *w, int32_t groups, int32_t out_c,          \
            const int32_t *q, const int32_t *rq, int8_t *out)
TINYC_FC1_DSP(tinyc_fc1_dsp_n);
TINYC_FC1_DSP(tinyc_fc1_dsp_l);
TINYC_FC1_DSP(tinyc_fc1_dsp_h);
TINYC_FC1_DSP(tinyc_fc1_dsp_lh);
TINYC_FC1_DSP(tinyc_fc1_dsp_n_t);
TINYC_FC1_DSP(tinyc_fc1_dsp_l_t);
TINYC_FC1_DSP(tinyc_fc1_dsp_h_t);
TINYC_FC1_DSP(tinyc_fc1_dsp_lh_t);
#else
#define TINYC_MM_ROWS 2
typedef int8_t tinyc_row_t;
#endif

/* Bytes of scratch `nrows` pair-layout rows of k4 values need (int16 on DSP cores). */
#define TINYC_MM_SCRATCH(nrows, k4) ((nrows) * (k4) * (TINYC_DSP ? 2 : 1))

/* Put k4 int8 values into row `which` of a block of `nrows` rows (pair layout). On DSP
 * cores the values are widened from the last group down, so a single row may be widened
 * over its own bytes (rows at or after src: the planner's scratch_over). */
TINYC_INLINE void tinyc_row_s8(const int8_t *src, int32_t k4, tinyc_row_t *rows, int32_t which,
                               int32_t nrows) {
#if TINYC_DSP
  const int32_t step = 2 * nrows;
  int32_t g;
#pragma GCC unroll 2
  for (g = k4 / 4 - 1; g >= 0; --g) {
    uint32_t *dst = rows + 2 * which + g * step;
    const uint32_t v = tinyc_load4(src + 4 * g);
    dst[0] = (uint32_t)tinyc_sxtb16(v);
    dst[1] = (uint32_t)tinyc_sxtb16_ror8(v);
  }
#else
  (void)nrows;
  memmove(rows + which * k4, src, (size_t)k4); /* a row may be moved over its own bytes */
#endif
}

#if defined(__ARM_ARCH_6M__)
/* tinyc_mm_v6m.S: acc[0..3] += {r0.wa, r0.wb, r1.wa, r1.wb}, resp. {r.wa, r.wb, r.wc, r.wd}
 * (wc, wd: the pair at w2), over `groups` groups of unsigned bytes (TINYC_WL_UPAIRS) */
void tinyc_mm2x2_v6m(const uint8_t *r0, const uint8_t *r1, const uint8_t *w, int32_t groups,
                     int32_t *acc);
void tinyc_mm1x4_v6m(const uint8_t *r, const uint8_t *w, int32_t groups, int32_t *acc,
                     const uint8_t *w2);
#endif

/* Flip a row of k4 int8 values to xu = x + 128 in place; returns 128 * sum(xu). */
TINYC_INLINE uint32_t tinyc_flip_row(uint8_t *row, int32_t k4) {
  uint32_t sum = 0;
  int32_t i;
  for (i = 0; i < k4; i += 4) {
    uint32_t v;
    memcpy(&v, row + i, 4);
    v ^= 0x80808080u;
    memcpy(row + i, &v, 4);
    v = (v & 0x00ff00ffu) + ((v >> 8) & 0x00ff00ffu);
    sum += (v & 0xffffu) + (v >> 16);
  }
  return sum << 7;
}

/* acc[j] += row . channel j over the unsigned pair layout (j: a, b of the pair at w, then
 * c, d of the pair at w2 when four), for one row or two. */
TINYC_INLINE void tinyc_mm_u8(const uint8_t *r0, const uint8_t *r1, const uint8_t *w,
                              const uint8_t *w2, int32_t groups, uint32_t *acc) {
#if defined(__ARM_ARCH_6M__)
  if (r1) {
    tinyc_mm2x2_v6m(r0, r1, w, groups, (int32_t *)acc);
  } else {
    tinyc_mm1x4_v6m(r0, w, groups, (int32_t *)acc, w2);
  }
#else
  int32_t g, b;
  for (g = 0; g < groups; ++g, r0 += 4, w += 8, w2 += 8) {
    for (b = 0; b < 4; ++b) {
      if (r1) {
        acc[0] += (uint32_t)r0[b] * w[b];
        acc[1] += (uint32_t)r0[b] * w[4 + b];
        acc[2] += (uint32_t)r1[b] * w[b];
        acc[3] += (uint32_t)r1[b] * w[4 + b];
      } else {
        acc[0] += (uint32_t)r0[b] * w[b];
        acc[1] += (uint32_t)r0[b] * w[4 + b];
        acc[2] += (uint32_t)r0[b] * w2[b];
        acc[3] += (uint32_t)r0[b] * w2[4 + b];
      }
    }
    if (r1) r1 += 4;
  }
#endif
}

/* The matrix core over TINYC_WL_UPAIRS weights. `rows` is the kernel's own scratch copy
 * (int8), flipped here in place. */
TINYC_INLINE void tinyc_mm_upairs_s8(const void *rows, int32_t nrows, int32_t k,
                                     const uint32_t *w, int32_t out_c, const int32_t *q,
                                     int32_t zp, int32_t lo, int32_t hi, int32_t right_only,
                                     int8_t *const *out) {
  uint8_t *r0 = (uint8_t *)(uintptr_t)rows;
  uint8_t *r1 = nrows > 1 ? r0 + k : 0;
  const uint32_t s0 = tinyc_flip_row(r0, k), s1 = r1 ? tinyc_flip_row(r1, k) : s0;
  const uint8_t *wb = (const uint8_t *)w;
  int32_t oc, j;
  for (oc = 0; oc < out_c; oc += r1 ? 2 : 4) {
    const int32_t pair = oc / 2, next = !r1 && oc + 2 < out_c ? pair + 1 : pair;
    const int32_t *qa = q + 6 * pair, *qb = q + 6 * next;
    uint32_t acc[4];
    acc[0] = (uint32_t)qa[0];
    acc[1] = (uint32_t)qa[1];
    acc[2] = (uint32_t)(r1 ? qa[0] : qb[0]);
    acc[3] = (uint32_t)(r1 ? qa[1] : qb[1]);
    tinyc_mm_u8(r0, r1, wb + pair * 2 * k, wb + next * 2 * k, k / 4, acc);
    for (j = 0; j < 4; ++j) {
      /* two rows: j = 2 * row + channel of the pair; one row: j = channel of the quad */
      const int32_t ch = oc + (r1 ? (j & 1) : j), row = r1 ? j >> 1 : 0;
      const int32_t *qq = r1 || j < 2 ? qa : qb;
      if (ch >= out_c) continue;
      out[row][ch] = (int8_t)tinyc_rq_s8((int32_t)(acc[j] - (row ? s1 : s0)), qq[2 + (j & 1)],
                                         qq[4 + (j & 1)], zp, lo, hi, right_only);
    }
  }
}

/* Pair layouts: `nrows` rows (1, or TINYC_MM_ROWS with repeats) of k (% 4 == 0) values. */
TINYC_INLINE void tinyc_mm_pairs_s8(const tinyc_row_t *rows, int32_t nrows, int32_t k,
                                    int32_t wl, const uint32_t *w, int32_t out_c,
                                    const int32_t *q, int32_t zp, int32_t lo, int32_t hi,
                                    int32_t right_only, int8_t *const *out) {
  int32_t oc;
  if (wl == TINYC_WL_UPAIRS) {
    tinyc_mm_upairs_s8(rows, nrows, k, w, out_c, q, zp, lo, hi, right_only, out);
    return;
  }
#if TINYC_DSP
  if (nrows == 1) {
    /* one row: two channel pairs per call (an odd last pair is computed twice) */
    for (oc = 0; oc < out_c; oc += 4) {
      const int32_t pair = oc / 2, next = oc + 2 < out_c ? pair + 1 : pair;
      const int32_t *qa = q + 6 * pair, *qb = q + 6 * next;
      int32_t acc[4], bias[4];
      int32_t j;
      bias[0] = qa[0];
      bias[1] = qa[1];
      bias[2] = qb[0];
      bias[3] = qb[1];
      tinyc_mm1x4(rows, w + pair * (k / 2), k / 4, acc, bias, w + next * (k / 2));
      for (j = 0; j < 4 && oc + j < out_c; ++j) {
        const int32_t *qq = j < 2 ? qa : qb;
        out[0][oc + j] = (int8_t)tinyc_rq_s8(acc[j], qq[2 + (j & 1)], qq[4 + (j & 1)], zp, lo, hi,
                                             right_only);
      }
    }
    return;
  }
  for (oc = 0; oc < out_c; oc += 2, q += 6, w += k / 2) {
    int32_t acc[6];
    tinyc_mm3x2(rows, w, k / 4, acc, q);
    out[0][oc] = (int8_t)tinyc_rq_s8(acc[0], q[2], q[4], zp, lo, hi, right_only);
    out[1][oc] = (int8_t)tinyc_rq_s8(acc[2], q[2], q[4], zp, lo, hi, right_only);
    out[2][oc] = (int8_t)tinyc_rq_s8(acc[4], q[2], q[4], zp, lo, hi, right_only);
    if (oc + 1 < out_c) {
      out[0][oc + 1] = (int8_t)tinyc_rq_s8(acc[1], q[3], q[5], zp, lo, hi, right_only);
      out[1][oc + 1] = (int8_t)tinyc_rq_s8(acc[3], q[3], q[5], zp, lo, hi, right_only);
      out[2][oc + 1] = (int8_t)tinyc_rq_s8(acc[5], q[3], q[5], zp, lo, hi, right_only);
    }
  }
#else
  for (oc = 0; oc < out_c; ++oc) {
    const int8_t *wp = (const int8_t *)(w + (oc / 2) * (k / 2)) + 4 * (oc & 1);
    const int32_t *qp = q + 6 * (oc / 2) + (oc & 1);
    int32_t r;
    for (r = 0; r < nrows; ++r) {
      int32_t acc = qp[0], i;
      for (i = 0; i < k; ++i) acc += rows[r * k + i] * wp[(i / 4) * 8 + i % 4];
      out[r][oc] = (int8_t)tinyc_rq_s8(acc, qp[2], qp[4], zp, lo, hi, right_only);
    }
  }
#endif
}

#if TINYC_MVE
void tinyc_mm2x4_mve(const int8_t *x, const int8_t *y, const int8_t *w, int32_t k,
                     int32_t quads, const int32_t *q, int32_t *acc);
void tinyc_mmq2_mve(const int8_t *x, const int8_t *y, const int8_t *w, int32_t k, int32_t out_c,
                    const int32_t *q, const int32_t *rq, int8_t *o0, int8_t *o1);

/* TFLite's RoundingDivideByPOT by -SHIFT (SHIFT <= 0) on four lanes: VRSHL rounds half
 * up, so negative lanes first lose one (half away from zero); a zero shift is exact. */
#define TINYC_MVE_RDBPOT(V, SHIFT) \
  ((SHIFT) < 0 ? vrshlq_n_s32(vaddq_s32((V), vshrq_n_s32((V), 31)), (SHIFT)) : (V))

/* Requantize four int32 lanes (right shifts only) and store them as int8; the store is
 * predicated only when FULL (a compile-time constant in practice) is false. */
#define TINYC_MVE_RQ_STORE_IF(ACC, QC, DST, PRED, FULL)             \
  do {                                                              \
    int32x4_t t_ = vqrdmulhq_s32((ACC), vldrwq_s32((QC) + 4));      \
    t_ = vaddq_s32(t_, vshrq_n_s32(t_, 31));                        \
    t_ = vrshlq_s32(t_, vldrwq_s32((QC) + 8));                      \
    t_ = vaddq_n_s32(t_, zp);                                       \
    t_ = vmaxq_s32(t_, vdupq_n_s32(lo));                            \
    t_ = vminq_s32(t_, vdupq_n_s32(hi));                            \
    if (FULL) {                                                     \
      vstrbq_s32((DST), t_);                                        \
    } else {                                                        \
      vstrbq_p_s32((DST), t_, (PRED));                              \
    }                                                               \
  } while (0)
#define TINYC_MVE_RQ_STORE(ACC, QC, DST, PRED) TINYC_MVE_RQ_STORE_IF(ACC, QC, DST, PRED, 0)

/* Four accumulators of one row into lanes, requantized into out[oc..oc+3]. */
#define TINYC_MVE_RQ4(A0, A1, A2, A3, OUT)                                         \
  do {                                                                             \
    if (right_only) {                                                              \
      int32x4_t v_ = vdupq_n_s32(A0);                                              \
      v_ = vsetq_lane_s32(A1, v_, 1);                                              \
      v_ = vsetq_lane_s32(A2, v_, 2);                                              \
      v_ = vsetq_lane_s32(A3, v_, 3);                                              \
      TINYC_MVE_RQ_STORE(v_, q, (OUT) + oc, vctp32q((uint32_t)(out_c - oc)));      \
    } else {                                                                       \
      const int32_t acc_[4] = {A0, A1, A2, A3};                                    \
      int32_t j_;                                                                  \
      for (j_ = 0; j_ < 4 && oc + j_ < out_c; ++j_) {                              \
        (OUT)[oc + j_] = (int8_t)tinyc_rq_s8(acc_[j_], q[4 + j_], q[8 + j_], zp, lo, hi, 0); \
      }                                                                            \
    }                                                                              \
  } while (0)
#endif

/* Quad layout: one or two rows of k values (any k; the weights are padded to 16) into
 * o0 (and o1). Helium: two rows x four channels per block in tinyc_mm_mve.S, one row with
 * VMLADAV intrinsics; elsewhere plain C. */
TINYC_INLINE void tinyc_mm_quads_s8(const int8_t *r0, const int8_t *r1, int32_t k,
                                    const int8_t *w, int32_t out_c, const int32_t *q, int32_t zp,
                                    int32_t lo, int32_t hi, int32_t right_only, int8_t *o0,
                                    int8_t *o1) {
  const int32_t wquad = 64 * ((k + 15) / 16); /* weight bytes per quad */
  int32_t oc;
#if TINYC_MVE
  if (r1 && right_only) { /* every quad, requantized and stored, in one assembly call */
    const int32_t rq[3] = {zp, lo, hi};
    tinyc_mmq2_mve(r0, r1, w, k, out_c, q, rq, o0, o1);
    return;
  }
  if (r1) {
    /* a chunk of up to eight quads per call of the assembly kernel */
    const int32_t full = out_c % 4 == 0;
    int32_t acc[64];
    while (oc = 0, out_c > 0) {
      const int32_t quads = (out_c + 3) / 4 < 8 ? (out_c + 3) / 4 : 8;
      int32_t j;
      tinyc_mm2x4_mve(r0, r1, w, k, quads, q, acc);
      for (j = 0; j < quads; ++j, oc += 4) {
        const int32_t *qj = q + 12 * j;
        if (right_only) {
          const mve_pred16_t pj = vctp32q((uint32_t)(out_c - oc));
          TINYC_MVE_RQ_STORE_IF(vldrwq_s32(acc + 8 * j), qj, o0 + oc, pj, full);
          TINYC_MVE_RQ_STORE_IF(vldrwq_s32(acc + 8 * j + 4), qj, o1 + oc, pj, full);
        } else {
          int32_t i;
          for (i = 0; i < 4 && oc + i < out_c; ++i) {
            o0[oc + i] = (int8_t)tinyc_rq_s8(acc[8 * j + i], qj[4 + i], qj[8 + i], zp, lo, hi, 0);
            o1[oc + i] =
                (int8_t)tinyc_rq_s8(acc[8 * j + 4 + i], qj[4 + i], qj[8 + i], zp, lo, hi, 0);
          }
        }
      }
      w += quads * wquad;
      q += quads * 12;
      o0 += quads * 4;
      o1 += quads * 4;
      out_c -= quads * 4;
    }
    return;
  }
  for (oc = 0; oc < out_c; oc += 4, q += 12, w += wquad) {
    const int32_t blocks = k / 16, tail = k % 16;
    const int8_t *x = r0;
    const int8_t *wb = w;
    int32_t a0 = q[0], a1 = q[1], a2 = q[2], a3 = q[3], b;
    for (b = 0; b < blocks; ++b, x += 16, wb += 64) {
      const int8x16_t xv = vldrbq_s8(x);
      a0 = vmladavaq_s8(a0, xv, vldrbq_s8(wb));
      a1 = vmladavaq_s8(a1, xv, vldrbq_s8(wb + 16));
      a2 = vmladavaq_s8(a2, xv, vldrbq_s8(wb + 32));
      a3 = vmladavaq_s8(a3, xv, vldrbq_s8(wb + 48));
    }
    if (tail) {
      const int8x16_t xv = vldrbq_z_s8(x, vctp8q((uint32_t)tail));
      a0 = vmladavaq_s8(a0, xv, vldrbq_s8(wb));
      a1 = vmladavaq_s8(a1, xv, vldrbq_s8(wb + 16));
      a2 = vmladavaq_s8(a2, xv, vldrbq_s8(wb + 32));
      a3 = vmladavaq_s8(a3, xv, vldrbq_s8(wb + 48));
    }
    TINYC_MVE_RQ4(a0, a1, a2, a3, o0);
  }
#else
  for (oc = 0; oc < out_c; oc += 4, q += 12, w += wquad) {
    int32_t j, r;
    for (r = 0; r < (r1 ? 2 : 1); ++r) {
      const int8_t *row = r ? r1 : r0;
      int8_t *out = r ? o1 : o0;
      for (j = 0; j < 4 && oc + j < out_c; ++j) {
        int32_t acc = q[j], i;
        for (i = 0; i < k; ++i) acc += row[i] * w[(i / 16) * 64 + j * 16 + i % 16];
        out[oc + j] = (int8_t)tinyc_rq_s8(acc, q[4 + j], right_only ? -q[8 + j] : q[8 + j], zp,
                                          lo, hi, right_only);
      }
    }
  }
#endif
}

/* Copy the receptive field of output pixel (oy, ox) into `row` (k padded to k4 with
 * zeros); taps outside the input hold the input zero point. */
TINYC_INLINE void tinyc_im2col_s8(const int8_t *in, int32_t in_h, int32_t in_w, int32_t in_c,
                                  int32_t in_cs, int32_t k_h, int32_t k_w, int32_t dil_h,
                                  int32_t dil_w, int32_t y0, int32_t x0, int32_t in_zp,
                                  int32_t k4, int8_t *row) {
  int8_t *dst = row;
  int32_t ky, kx;
  for (ky = 0; ky < k_h; ++ky) {
    const int32_t iy = y0 + ky * dil_h;
    if (iy < 0 || iy >= in_h) {
      memset(dst, in_zp, (size_t)(k_w * in_c));
      dst += k_w * in_c;
      continue;
    }
    if (dil_w == 1 && in_cs == in_c && x0 >= 0 && x0 + k_w <= in_w) {
      memcpy(dst, in + (iy * in_w + x0) * in_c, (size_t)(k_w * in_c));
      dst += k_w * in_c;
      continue;
    }
    for (kx = 0; kx < k_w; ++kx, dst += in_c) {
      const int32_t ix = x0 + kx * dil_w;
      if (ix < 0 || ix >= in_w) {
        memset(dst, in_zp, (size_t)in_c);
      } else {
        memcpy(dst, in + (iy * in_w + ix) * in_cs, (size_t)in_c);
      }
    }
  }
  if (k4 > k_h * k_w * in_c) memset(dst, 0, (size_t)(k4 - k_h * k_w * in_c));
}

/* CONV_2D, one image (NHWC), or one group of a grouped convolution: in_c / out_c channels
 * of pixels in_cs / out_cs channels apart; output pixels [p0, p1) (row-major), written from
 * `out` on. direct: a 1x1 unpadded kernel (pair layout: over
 * in_c % 4 == 0 channels) whose rows are input pixels; otherwise receptive fields are
 * gathered first. scratch, pair layout: TINYC_MM_SCRATCH(TINYC_MM_ROWS, k4) bytes of rows,
 * then k4 bytes for a gather; quad layout: k bytes for a gather. */
TINYC_INLINE void tinyc_conv_s8(const int8_t *in, int32_t in_h, int32_t in_w, int32_t in_c,
                                int32_t in_cs, int32_t out_h, int32_t out_w, int32_t out_c,
                                int32_t out_cs, int32_t k_h, int32_t k_w, int32_t s_h,
                                int32_t s_w, int32_t dil_h, int32_t dil_w, int32_t pad_t,
                                int32_t pad_l, int32_t in_zp, int32_t direct, int32_t wl,
                                const void *w, const int32_t *q, int32_t zp, int32_t lo,
                                int32_t hi, int32_t right_only, int32_t p0, int32_t p1,
                                int8_t *out, void *scratch) {
  const int32_t k = k_h * k_w * in_c;
  const int32_t pixels = p1; /* output pixels [p0, p1) go to out + (p - p0) * out_cs */
  int32_t p, j;
  (void)out_h;
  out -= p0 * out_cs;
  if (wl == TINYC_WL_QUADS) {
    /* pixels in pairs (a lone last pixel is paired with itself); gathers use 2k bytes */
    const int8_t *row[2];
    for (p = p0; p < pixels; p += 2) {
      const int32_t p1 = p + 1 < pixels ? p + 1 : p;
      for (j = 0; j < 2; ++j) {
        const int32_t pix = j ? p1 : p;
        const int32_t oy = pix / out_w, ox = pix % out_w;
        if (direct) {
          row[j] = in + (oy * s_h * in_w + ox * s_w) * in_cs;
        } else {
          int8_t *gather = (int8_t *)scratch + j * k;
          tinyc_im2col_s8(in, in_h, in_w, in_c, in_cs, k_h, k_w, dil_h, dil_w,
                          oy * s_h - pad_t, ox * s_w - pad_l, in_zp, k, gather);
          row[j] = gather;
        }
      }
      tinyc_mm_quads_s8(row[0], row[1], k, (const int8_t *)w, out_c, q, zp, lo, hi, right_only,
                        out + p * out_cs, out + p1 * out_cs);
    }
    return;
  }
  {
    const int32_t k4 = (k + 3) & ~3;
    tinyc_row_t *rows = (tinyc_row_t *)scratch;
    int8_t *gather = (int8_t *)scratch + TINYC_MM_SCRATCH(TINYC_MM_ROWS, k4);
    int8_t *dst[TINYC_MM_ROWS];
    /* Pixels go in blocks of TINYC_MM_ROWS; a short last block repeats its last pixel,
     * except a lone one, which takes the one-row kernels. */
    for (p = p0; p < pixels; p += TINYC_MM_ROWS) {
      const int32_t n = pixels - p == 1 ? 1 : TINYC_MM_ROWS;
      for (j = 0; j < n; ++j) {
        const int32_t pix = p + j < pixels ? p + j : pixels - 1;
        const int32_t oy = pix / out_w, ox = pix % out_w;
        dst[j] = out + pix * out_cs;
        if (direct) {
          tinyc_row_s8(in + (oy * s_h * in_w + ox * s_w) * in_cs, k4, rows, j, n);
        } else {
          tinyc_im2col_s8(in, in_h, in_w, in_c, in_cs, k_h, k_w, dil_h, dil_w,
                          oy * s_h - pad_t, ox * s_w - pad_l, in_zp, k4, gather);
          tinyc_row_s8(gather, k4, rows, j, n);
        }
      }
      tinyc_mm_pairs_s8(rows, n, k4, wl, (const uint32_t *)w, out_c, q, zp, lo, hi, right_only,
                        dst);
    }
  }
}

/* Gather the receptive field of output pixel (y0, x0 its top-left tap) for channels
 * [c0, c0 + nch) of a `ch`-channel input, channel-major: channel c0 + c's k = k_h * k_w taps
 * at rows + c * cstride (taps outside the input hold the input zero point). Bytes k..k4 of a
 * row are left as they are: the matrix kernels' weights are zero there. */
TINYC_INLINE void tinyc_im2col_cm_s8(const int8_t *in, int32_t in_h, int32_t in_w, int32_t ch,
                                     int32_t c0, int32_t nch, int32_t k_h, int32_t k_w,
                                     int32_t dil_h, int32_t dil_w, int32_t y0, int32_t x0,
                                     int32_t in_zp, int32_t k4, int32_t cstride, int8_t *rows) {
  int32_t ky, kx, c, t = 0;
  in += c0;
  if (y0 >= 0 && y0 + (k_h - 1) * dil_h < in_h && x0 >= 0 && x0 + (k_w - 1) * dil_w < in_w) {
    /* inside the input: every tap at a constant offset from the window's first */
    const int8_t *src = in + (y0 * in_w + x0) * ch;
#pragma GCC unroll 16
    for (ky = 0; ky < k_h; ++ky) {
      if (ch == 1 && dil_w == 1) { /* one channel: a kernel row is contiguous */
        memcpy(rows + ky * k_w, src + ky * dil_h * in_w, (size_t)k_w);
        continue;
      }
#pragma GCC unroll 16
      for (kx = 0; kx < k_w; ++kx) {
        const int8_t *px = src + (ky * dil_h * in_w + kx * dil_w) * ch;
#pragma GCC unroll 16
        for (c = 0; c < nch; ++c) rows[c * cstride + ky * k_w + kx] = px[c];
      }
    }
    return;
  }
  if (ch == 1) {
    tinyc_im2col_s8(in, in_h, in_w, 1, 1, k_h, k_w, dil_h, dil_w, y0, x0, in_zp, k4, rows);
    return;
  }
  for (ky = 0; ky < k_h; ++ky) {
    const int32_t iy = y0 + ky * dil_h;
    for (kx = 0; kx < k_w; ++kx, ++t) {
      const int32_t ix = x0 + kx * dil_w;
      if (iy < 0 || iy >= in_h || ix < 0 || ix >= in_w) {
#pragma GCC unroll 16
        for (c = 0; c < nch; ++c) rows[c * cstride + t] = (int8_t)in_zp;
      } else {
        const int8_t *px = in + (iy * in_w + ix) * ch;
#pragma GCC unroll 16
        for (c = 0; c < nch; ++c) rows[c * cstride + t] = px[c];
      }
    }
  }
  (void)k4;
}

/* DEPTHWISE_CONV_2D with a depth multiplier `mult` > 1, one image: the grouped convolution it
 * is (one group per input channel, `mult` output channels per group, each a filter of
 * k_h x k_w taps over the group's one channel), on the matrix kernels of CONV_2D. For each
 * block of output pixels (TINYC_MM_ROWS on pair layouts, two on the quad layout; a short
 * last block repeats its last pixel, a lone one takes the one-row kernels) the receptive
 * fields of `cb` channels at a time are gathered channel-major, then each channel's rows
 * meet its group's weights. Weights and records: each group in the target's matrix layout
 * (k = k_h * k_w, the input zero point folded into the bias), groups `w_step` bytes and
 * `q_step` records apart. scratch: pair layouts, TINYC_MM_SCRATCH(TINYC_MM_ROWS, k4) bytes
 * of widened rows, then TINYC_MM_ROWS * cb * k4 gathered bytes; quad layout, 2 * cb * k. */
TINYC_INLINE void tinyc_dwm_s8(const int8_t *in, int32_t in_h, int32_t in_w, int32_t ch,
                               int32_t out_h, int32_t out_w, int32_t mult, int32_t k_h,
                               int32_t k_w, int32_t s_h, int32_t s_w, int32_t dil_h,
                               int32_t dil_w, int32_t pad_t, int32_t pad_l, int32_t in_zp,
                               int32_t cb, int32_t wl, const void *w, int32_t w_step,
                               const int32_t *q, int32_t q_step, int32_t zp, int32_t lo,
                               int32_t hi, int32_t right_only, int8_t *out, void *scratch) {
  const int32_t k = k_h * k_w, pixels = out_h * out_w, out_c = ch * mult;
  const int32_t quads = wl == TINYC_WL_QUADS;
  const int32_t k4 = quads ? k : (k + 3) & ~3; /* one gathered row */
  const int32_t nb = quads ? 2 : TINYC_MM_ROWS;  /* pixels per block */
  int8_t *gather = (int8_t *)scratch + (quads ? 0 : TINYC_MM_SCRATCH(TINYC_MM_ROWS, k4));
  int8_t *dst[TINYC_MM_ROWS > 2 ? TINYC_MM_ROWS : 2];
  int8_t *dc[TINYC_MM_ROWS > 2 ? TINYC_MM_ROWS : 2];
  int32_t p, j, c0, c;
  for (p = 0; p < pixels; p += nb) {
    const int32_t n = quads ? 2 : (pixels - p == 1 ? 1 : nb);
    for (j = 0; j < n; ++j) {
      const int32_t pix = p + j < pixels ? p + j : pixels - 1;
      dst[j] = out + pix * out_c;
    }
    for (c0 = 0; c0 < ch; c0 += cb) {
      const int32_t nch = ch - c0 < cb ? ch - c0 : cb;
      for (j = 0; j < n; ++j) {
        const int32_t pix = p + j < pixels ? p + j : pixels - 1;
        const int32_t oy = pix / out_w, ox = pix % out_w;
        tinyc_im2col_cm_s8(in, in_h, in_w, ch, c0, nch, k_h, k_w, dil_h, dil_w,
                           oy * s_h - pad_t, ox * s_w - pad_l, in_zp, k4, nb * k4,
                           gather + j * k4);
      }
      for (c = 0; c < nch; ++c) {
        const int8_t *rows = gather + c * nb * k4;
        const int32_t g = c0 + c;
        const void *wg = (const int8_t *)w + g * w_step;
        const int32_t *qg = q + g * q_step;
        for (j = 0; j < n; ++j) dc[j] = dst[j] + g * mult;
        if (quads) {
          tinyc_mm_quads_s8(rows, rows + k, k, (const int8_t *)wg, mult, qg, zp, lo, hi,
                            right_only, dc[0], dc[1]);
          continue;
        }
#if TINYC_DSP
        {
          tinyc_row_t *wide = (tinyc_row_t *)scratch;
          for (j = 0; j < n; ++j) tinyc_row_s8(rows + j * k4, k4, wide, j, n);
          tinyc_mm_pairs_s8(wide, n, k4, wl, (const uint32_t *)wg, mult, qg, zp, lo, hi,
                            right_only, dc);
        }
#else
        tinyc_mm_pairs_s8((const tinyc_row_t *)rows, n, k4, wl, (const uint32_t *)wg, mult, qg,
                          zp, lo, hi, right_only, dc);
#endif
      }
    }
  }
}

/* FULLY_CONNECTED over `rows` rows of k int8 values. scratch, pair layout:
 * TINYC_MM_SCRATCH(n, k4) bytes of rows (n = 1 for one row, else TINYC_MM_ROWS), then k4
 * bytes when k % 4 != 0; quad layout: none. `fast` (DSP cores, one row): 1 when the
 * assembly layer kernel applies (right shifts, accumulators below 2^30), 2 when its
 * requantization is also per tensor; else 0. */
TINYC_INLINE void tinyc_fc_s8(const int8_t *in, int32_t rows, int32_t k, int32_t out_c,
                              int32_t wl, const void *w, const int32_t *q, int32_t zp,
                              int32_t lo, int32_t hi, int32_t right_only, int32_t fast,
                              int8_t *out, void *scratch) {
  int32_t r, j;
  if (wl == TINYC_WL_QUADS) {
    for (r = 0; r < rows; ++r) {
      tinyc_mm_quads_s8(in + r * k, 0, k, (const int8_t *)w, out_c, q, zp, lo, hi, right_only,
                        out + r * out_c, 0);
    }
    return;
  }
  {
    const int32_t k4 = (k + 3) & ~3;
    const int32_t n = rows == 1 ? 1 : TINYC_MM_ROWS;
    tinyc_row_t *buf = (tinyc_row_t *)scratch;
    int8_t *gather = (int8_t *)scratch + TINYC_MM_SCRATCH(n, k4);
    int8_t *dst[TINYC_MM_ROWS];
    /* Rows go in blocks of n; a short last block repeats its last row. */
    for (r = 0; r < rows; r += n) {
      for (j = 0; j < n; ++j) {
        const int32_t row = r + j < rows ? r + j : rows - 1;
        const int8_t *src = in + row * k;
        dst[j] = out + row * out_c;
        if (k != k4) {
          memcpy(gather, src, (size_t)k);
          memset(gather + k, 0, (size_t)(k4 - k));
          src = gather;
        }
        tinyc_row_s8(src, k4, buf, j, n);
      }
#if TINYC_DSP
      if (n == 1 && fast) { /* the whole layer in one assembly call */
        const int32_t rq[5] = {zp, lo, hi, q[2], q[4]};
        const uint32_t *wp = (const uint32_t *)w;
        /* constants at every call site: one variant is called, and linked */
        switch ((lo > -128) + 2 * (hi < 127) + 4 * (fast == 2)) {
          case 0: tinyc_fc1_dsp_n(buf, wp, k4 / 4, out_c, q, rq, dst[0]); break;
          case 1: tinyc_fc1_dsp_l(buf, wp, k4 / 4, out_c, q, rq, dst[0]); break;
          case 2: tinyc_fc1_dsp_h(buf, wp, k4 / 4, out_c, q, rq, dst[0]); break;
          case 3: tinyc_fc1_dsp_lh(buf, wp, k4 / 4, out_c, q, rq, dst[0]); break;
          case 4: tinyc_fc1_dsp_n_t(buf, wp, k4 / 4, out_c, q, rq, dst[0]); break;
          case 5: tinyc_fc1_dsp_l_t(buf, wp, k4 / 4, out_c, q, rq, dst[0]); break;
          case 6: tinyc_fc1_dsp_h_t(buf, wp, k4 / 4, out_c, q, rq, dst[0]); break;
          default: tinyc_fc1_dsp_lh_t(buf, wp, k4 / 4, out_c, q, rq, dst[0]); break;
        }
        continue;
      }
#else
      (void)fast;
#endif
      tinyc_mm_pairs_s8(buf, n, k4, wl, (const uint32_t *)w, out_c, q, zp, lo, hi, right_only,
                        dst);
    }
  }
}

#if TINYC_DSP
/* acc (4 channels) += one depthwise tap: four input bytes against four weight bytes */
#define TINYC_DW_MAC(X, WE, WO, A0, A1, A2, A3)                                           \
  do {                                                                                    \
    const int32_t xe_ = tinyc_sxtab16(offset, (X)), xo_ = tinyc_sxtab16_ror8(offset, (X)); \
    A0 = tinyc_smlabb(xe_, WE, A0);                                                       \
    A2 = tinyc_smlatt(xe_, WE, A2);                                                       \
    A1 = tinyc_smlabb(xo_, WO, A1);                                                       \
    A3 = tinyc_smlatt(xo_, WO, A3);                                                       \
  } while (0)
#endif

/* Output pixels whose windows are given by one base pointer per kernel row (no bounds). */
TINYC_INLINE void tinyc_dw_row_s8(const int8_t *const *rowp, int32_t n, int32_t ch,
                                  int32_t k_h, int32_t k_w, int32_t s_w, int32_t dil_w,
                                  int32_t in_zp, int32_t wl, const int8_t *w, const int32_t *q,
                                  int32_t zp, int32_t lo, int32_t hi, int32_t right_only,
                                  int8_t *o) {
  int32_t px;
  if (wl == TINYC_WL_QUADS) {
    /* quad records, zero point folded into the bias (see tinyc_dw_row_mve_s8) */
    for (px = 0; px < n; ++px, o += ch) {
      const int32_t x0 = px * s_w * ch;
      int32_t c;
      for (c = 0; c < ch; ++c) {
        const int32_t *qc = q + (c / 4) * 12 + c % 4;
        int32_t acc = qc[0], ky, kx;
        for (ky = 0; ky < k_h; ++ky)
          for (kx = 0; kx < k_w; ++kx)
            acc += rowp[ky][x0 + kx * dil_w * ch + c] * w[(ky * k_w + kx) * ch + c];
        o[c] = (int8_t)tinyc_rq_s8(acc, qc[4], right_only ? -qc[8] : qc[8], zp, lo, hi,
                                   right_only);
      }
    }
    return;
  }
  for (px = 0; px < n; ++px, o += ch) {
    const int32_t x0 = px * s_w * ch;
    const int32_t *qc = q;
    int32_t c = 0;
#if TINYC_DSP
    const int32_t offset = (int32_t)(((uint32_t)(-in_zp) & 0xFFFFu) * 0x10001u);
    /* the taps of one quad of channels from c on, into A0..A3 */
#define TINYC_DW_QUAD(A0, A1, A2, A3)                                                   \
  do {                                                                                  \
    int32_t ky, kx;                                                                     \
    _Pragma("GCC unroll 16") for (ky = 0; ky < k_h; ++ky) {                             \
      const int8_t *xr = rowp[ky] + x0 + c;                                             \
      _Pragma("GCC unroll 16") for (kx = 0; kx < k_w; ++kx) {                           \
        const uint32_t wv = tinyc_load4(w + (ky * k_w + kx) * ch + c);                  \
        TINYC_DW_MAC(tinyc_load4(xr + kx * dil_w * ch), tinyc_sxtb16(wv),               \
                     tinyc_sxtb16_ror8(wv), A0, A1, A2, A3);                            \
      }                                                                                 \
    }                                                                                   \
  } while (0)
    for (; c + 4 <= ch; c += 4, qc += 12) {
      int32_t a0 = qc[0], a1 = qc[3], a2 = qc[6], a3 = qc[9];
      TINYC_DW_QUAD(a0, a1, a2, a3);
      o[c] = (int8_t)TINYC_RQ3(a0, qc);
      o[c + 1] = (int8_t)TINYC_RQ3(a1, qc + 3);
      o[c + 2] = (int8_t)TINYC_RQ3(a2, qc + 6);
      o[c + 3] = (int8_t)TINYC_RQ3(a3, qc + 9);
    }
    if (ch % 4 != 0) {
      /* the last ch % 4 channels as one more quad: its lanes past ch are computed and
       * dropped (the weights and the ring rows have 4 bytes of slack for its loads) */
      int32_t a0 = qc[0], a1 = c + 1 < ch ? qc[3] : 0, a2 = c + 2 < ch ? qc[6] : 0, a3 = 0;
      TINYC_DW_QUAD(a0, a1, a2, a3);
      o[c] = (int8_t)TINYC_RQ3(a0, qc);
      if (c + 1 < ch) o[c + 1] = (int8_t)TINYC_RQ3(a1, qc + 3);
      if (c + 2 < ch) o[c + 2] = (int8_t)TINYC_RQ3(a2, qc + 6);
      c = ch;
    }
#undef TINYC_DW_QUAD
#endif
    for (; c < ch; ++c, qc += 3) {
      int32_t acc = qc[0], ky, kx;
      for (ky = 0; ky < k_h; ++ky)
        for (kx = 0; kx < k_w; ++kx)
          acc += ((int32_t)rowp[ky][x0 + kx * dil_w * ch + c] - in_zp) *
                 w[(ky * k_w + kx) * ch + c];
      o[c] = (int8_t)TINYC_RQ3(acc, qc);
    }
  }
}

#if TINYC_MVE
/* Helium: four output pixels x four channels at a time, 32-bit lanes. Records per channel
 * quad {4 biases, 4 multipliers, 4 shifts}; the input zero point is folded into the bias
 * (the ring rows hold the zero point where the input is padded, so every tap counts).
 * Only for right_only requantization. Loads are predicated only when ch % 4 != 0. */
#define TINYC_MVE_LD4(P) (ch % 4 == 0 ? vldrbq_s32(P) : vldrbq_z_s32((P), pc))
TINYC_INLINE void tinyc_dw_row_mve_s8(const int8_t *const *rowp, int32_t n, int32_t ch,
                                      int32_t k_h, int32_t k_w, int32_t s_w, int32_t dil_w,
                                      const int8_t *w, const int32_t *q, int32_t zp,
                                      int32_t lo, int32_t hi, int8_t *o) {
  const int32_t step = s_w * ch; /* bytes between neighbouring pixels' windows */
  int32_t px = 0, c;
  for (; px + 4 <= n; px += 4) {
    for (c = 0; c < ch; c += 4) {
      const mve_pred16_t pc = vctp32q((uint32_t)(ch - c));
      const int32_t *qc = q + (c / 4) * 12;
      int32x4_t a0 = vldrwq_s32(qc), a1 = a0, a2 = a0, a3 = a0;
      int32_t ky, kx;
      for (ky = 0; ky < k_h; ++ky) {
        const int8_t *xk = rowp[ky] + px * step + c;
        const int8_t *wk = w + ky * k_w * ch + c;
        for (kx = 0; kx < k_w; ++kx, xk += dil_w * ch, wk += ch) {
          if (ch % 4 == 0) {
            /* one tap for four pixels: 1 weight load, 4 x (load, multiply, add) */
            int32x4_t qw, qx;
            __asm__ volatile(
                "vldrb.s32 %q[qw], [%[w]]\n\t"
                "vldrb.s32 %q[qx], [%[x0]]\n\t"
                "vmul.i32 %q[qx], %q[qx], %q[qw]\n\t"
                "vadd.i32 %q[a0], %q[a0], %q[qx]\n\t"
                "vldrb.s32 %q[qx], [%[x1]]\n\t"
                "vmul.i32 %q[qx], %q[qx], %q[qw]\n\t"
                "vadd.i32 %q[a1], %q[a1], %q[qx]\n\t"
                "vldrb.s32 %q[qx], [%[x2]]\n\t"
                "vmul.i32 %q[qx], %q[qx], %q[qw]\n\t"
                "vadd.i32 %q[a2], %q[a2], %q[qx]\n\t"
                "vldrb.s32 %q[qx], [%[x3]]\n\t"
                "vmul.i32 %q[qx], %q[qx], %q[qw]\n\t"
                "vadd.i32 %q[a3], %q[a3], %q[qx]"
                : [a0] "+w"(a0), [a1] "+w"(a1), [a2] "+w"(a2), [a3] "+w"(a3), [qw] "=&w"(qw),
                  [qx] "=&w"(qx)
                /* widening loads take low base registers */
                : [w] "l"(wk), [x0] "l"(xk), [x1] "l"(xk + step), [x2] "l"(xk + 2 * step),
                  [x3] "l"(xk + 3 * step)
                : "memory");
          } else {
            const int32x4_t wv = vldrbq_z_s32(wk, pc);
            a0 = vaddq_s32(a0, vmulq_s32(vldrbq_z_s32(xk, pc), wv));
            a1 = vaddq_s32(a1, vmulq_s32(vldrbq_z_s32(xk + step, pc), wv));
            a2 = vaddq_s32(a2, vmulq_s32(vldrbq_z_s32(xk + 2 * step, pc), wv));
            a3 = vaddq_s32(a3, vmulq_s32(vldrbq_z_s32(xk + 3 * step, pc), wv));
          }
        }
      }
      TINYC_MVE_RQ_STORE_IF(a0, qc, o + px * ch + c, pc, ch % 4 == 0);
      TINYC_MVE_RQ_STORE_IF(a1, qc, o + (px + 1) * ch + c, pc, ch % 4 == 0);
      TINYC_MVE_RQ_STORE_IF(a2, qc, o + (px + 2) * ch + c, pc, ch % 4 == 0);
      TINYC_MVE_RQ_STORE_IF(a3, qc, o + (px + 3) * ch + c, pc, ch % 4 == 0);
    }
  }
  for (; px < n; ++px) {
    for (c = 0; c < ch; c += 4) {
      const mve_pred16_t pc = vctp32q((uint32_t)(ch - c));
      const int32_t *qc = q + (c / 4) * 12;
      int32x4_t a0 = vldrwq_s32(qc);
      int32_t ky, kx;
      for (ky = 0; ky < k_h; ++ky) {
        const int8_t *xr = rowp[ky] + px * step + c;
        for (kx = 0; kx < k_w; ++kx) {
          a0 = vaddq_s32(a0, vmulq_s32(TINYC_MVE_LD4(xr + kx * dil_w * ch),
                                       TINYC_MVE_LD4(w + (ky * k_w + kx) * ch + c)));
        }
      }
      TINYC_MVE_RQ_STORE_IF(a0, qc, o + px * ch + c, pc, ch % 4 == 0);
    }
  }
}
#undef TINYC_MVE_LD4
#endif

/* Quad-major depthwise (Helium). The ring rows are quad-major: channel quad c4 of padded
 * column x sits at byte (c4 * row_px + x) * 4, so every tap of a block of output pixels is
 * an immediate offset from one pointer per kernel row. Weights are quad-major too,
 * w[(c4 * taps + t) * 4 + j]; records per quad {4 biases, 4 multipliers, 4 shifts} with
 * the input zero point folded into the bias (padding holds the zero point, so every tap
 * counts); right shifts only. tinyc generates each layer geometry's row kernel in Helium
 * assembly (model/dwq_mve.S); builds without Helium run tinyc_dwq_row_ref. */
typedef void (*tinyc_dwq_row_t)(const int8_t *const *rowp, int32_t n, int32_t ch,
                                int32_t row_px, const int8_t *w, const int32_t *q, int32_t zp,
                                int32_t lo, int32_t hi, int8_t *o);
#if TINYC_MVE
#define TINYC_DWQ_FN(f) (f)
#else
#define TINYC_DWQ_FN(f) ((tinyc_dwq_row_t)0)
#endif

/* Put n pixels of ch channels (HWC) into a quad-major ring row at column `dst`; `flip`:
 * as x + 128 (x ^ 0x80, the unsigned rows of tinyc_dwq_row_u8). */
TINYC_INLINE void tinyc_dwq_put_row(const int8_t *src, int32_t n, int32_t ch, int32_t row_px,
                                    int8_t *dst, int32_t flip) {
  int32_t x, c;
  if (flip) {
    for (x = 0; x < n; ++x, src += ch, dst += 4) {
      int8_t *d = dst;
      for (c = 0; c + 4 <= ch; c += 4, d += row_px * 4) tinyc_store4(d, tinyc_load4(src + c) ^ 0x80808080u);
      for (; c < ch; ++c) dst[(c / 4) * row_px * 4 + c % 4] = (int8_t)(src[c] ^ 0x80);
    }
    return;
  }
#if TINYC_MVE
  const uint32x4_t segs = vmulq_n_u32(vidupq_n_u32(0, 1), (uint32_t)(row_px * 4));
  for (x = 0; x < n; ++x, src += ch, dst += 4) {
    for (c = 0; c < ch; c += 16) {
      const int8x16_t v = vldrbq_z_s8(src + c, vctp8q((uint32_t)(ch - c)));
      vstrwq_scatter_offset_p_s32((int32_t *)(void *)(dst + c * row_px), segs,
                                  vreinterpretq_s32_s8(v), vctp32q((uint32_t)(ch - c + 3) / 4));
    }
  }
#else
  for (x = 0; x < n; ++x, src += ch, dst += 4) {
    for (c = 0; c < ch; ++c) dst[(c / 4) * row_px * 4 + c % 4] = src[c];
  }
#endif
}

/* One output row from unsigned quad-major rows (x + 128) with signed weights: per channel,
 * the taps of each pixel are byte loads at constant offsets from one pointer per kernel
 * row (ARMv6-M's LDRB takes an immediate offset, LDRSB does not); the bias holds
 * -128 * sum(w). */
TINYC_INLINE void tinyc_dwq_row_u8(const int8_t *const *rowp, int32_t n, int32_t ch,
                                   int32_t row_px, const int32_t k_h, const int32_t k_w,
                                   const int32_t s_w, const int32_t dil_w, const int8_t *w,
                                   const int32_t *q, int32_t zp, int32_t lo, int32_t hi,
                                   int32_t right_only, int8_t *o) {
  const int32_t taps = k_h * k_w;
  int32_t c;
  for (c = 0; c < ch; ++c) {
    const int32_t j = c % 4;
    const int32_t *qc = q + (c / 4) * 12 + j;
    const int8_t *wq = w + (c / 4) * taps * 4 + j;
    const uint8_t *rk[16];
    int32_t ky, px;
    for (ky = 0; ky < k_h; ++ky) rk[ky] = (const uint8_t *)rowp[ky] + (c / 4) * row_px * 4 + j;
    for (px = 0; px < n; ++px) {
      int32_t acc = qc[0], kx;
#pragma GCC unroll 16
      for (ky = 0; ky < k_h; ++ky) {
        const uint8_t *x = rk[ky] + px * s_w * 4;
#pragma GCC unroll 16
        for (kx = 0; kx < k_w; ++kx) acc += x[kx * dil_w * 4] * wq[(ky * k_w + kx) * 4];
      }
      o[px * ch + c] = (int8_t)tinyc_rq_s8(acc, qc[4], right_only ? -qc[8] : qc[8], zp, lo, hi,
                                           right_only);
    }
  }
}

/* One output row from quad-major rows, in plain C (what the generated kernels compute). */
TINYC_INLINE void tinyc_dwq_row_ref(const int8_t *const *rowp, int32_t n, int32_t ch,
                                    int32_t row_px, int32_t k_h, int32_t k_w, int32_t s_w,
                                    int32_t dil_w, const int8_t *w, const int32_t *q,
                                    int32_t zp, int32_t lo, int32_t hi, int8_t *o) {
  int32_t px, c;
  for (px = 0; px < n; ++px) {
    for (c = 0; c < ch; ++c) {
      const int32_t *qc = q + (c / 4) * 12;
      const int8_t *wq = w + (c / 4) * k_h * k_w * 4 + c % 4;
      int32_t acc = qc[c % 4], ky, kx;
      for (ky = 0; ky < k_h; ++ky) {
        const int8_t *x = rowp[ky] + ((c / 4) * row_px + px * s_w) * 4 + c % 4;
        for (kx = 0; kx < k_w; ++kx) acc += x[kx * dil_w * 4] * wq[(ky * k_w + kx) * 4];
      }
      o[px * ch + c] = (int8_t)tinyc_rq_s8(acc, qc[4 + c % 4], qc[8 + c % 4], zp, lo, hi, 0);
    }
  }
}


/* The padded width of the rows a depthwise layer reads. */
#define TINYC_DW_PADDED_W(out_w, k_w, s_w, dil_w) (((out_w)-1) * (s_w) + ((k_w)-1) * (dil_w) + 1)

/* Copy n bytes to dst <= src (the ranges may overlap): vectors or word pairs forward, each
 * chunk loaded whole before it is stored. For the row windows of fused layers. */
TINYC_INLINE void tinyc_move_down(int8_t *dst, const int8_t *src, int32_t n) {
#if TINYC_MVE
  for (; n >= 16; n -= 16, dst += 16, src += 16) vst1q_s8(dst, vld1q_s8(src));
#else
  for (; n >= 8; n -= 8, dst += 8, src += 8) {
    const uint32_t a = tinyc_load4(src), b = tinyc_load4(src + 4);
    tinyc_store4(dst, a);
    tinyc_store4(dst + 4, b);
  }
#endif
  for (; n > 0; --n) *dst++ = *src++;
}

/* A function that writes input row `row` (in_w pixels) of a depthwise layer to `dst`: the
 * producing layer, fused so that its output never exists whole (see tinyc_dw_s8). */
typedef void (*tinyc_row_producer_t)(int32_t row, int8_t *dst);

/* Bytes of one ring row: the padded width the kernel reads and a whole input row, channels
 * padded to quads when the rows are quad-major (Helium). */
#define TINYC_DW_ROW_PX(out_w, k_w, s_w, dil_w, pad_l, in_w)                 \
  (TINYC_DW_PADDED_W(out_w, k_w, s_w, dil_w) > (pad_l) + (in_w)              \
       ? TINYC_DW_PADDED_W(out_w, k_w, s_w, dil_w)                          \
       : (pad_l) + (in_w))

/* DEPTHWISE_CONV_2D with depth multiplier 1, one image. Input rows are copied once (or made
 * by `produce`, when the producing layer is fused in) into a ring of horizontally padded
 * rows (padding = the input zero point, which contributes nothing, exactly as TFLM's
 * skipped taps); rows above and below the image point at a row of zero points.
 * With `quad` the rows and weights are quad-major (see tinyc_dwq_row_t) and `rowq`, tinyc's
 * generated Helium kernel for the layer, computes each output row; `quad` 2: the rows hold
 * x + 128 for tinyc_dwq_row_u8 (cores without DSP). A fused producer then writes into a
 * staging row first.
 * scratch: (rows spanned by the kernel + 1) ring rows (+ one input row when staged). */
TINYC_INLINE void tinyc_dw_s8(const int8_t *in, int32_t in_h, int32_t in_w, int32_t ch,
                              int32_t out_h, int32_t out_w, int32_t k_h, int32_t k_w,
                              int32_t s_h, int32_t s_w, int32_t dil_h, int32_t dil_w,
                              int32_t pad_t, int32_t pad_l, int32_t in_zp, int32_t wl,
                              const int8_t *w, const int32_t *q, int32_t zp, int32_t lo,
                              int32_t hi, int32_t right_only, int8_t *out, void *scratch,
                              tinyc_row_producer_t produce, int32_t quad,
                              tinyc_dwq_row_t rowq) {
  const int32_t pw = TINYC_DW_PADDED_W(out_w, k_w, s_w, dil_w);
  const int32_t span = (k_h - 1) * dil_h + 1;
  const int32_t row_px = TINYC_DW_ROW_PX(out_w, k_w, s_w, dil_w, pad_l, in_w);
  const int32_t row_bytes = quad ? row_px * ((ch + 3) & ~3) : row_px * ch;
  const int32_t copy_w = in_w < pw - pad_l ? in_w : pw - pad_l;
  int8_t *zrow = (int8_t *)scratch;
  int8_t *ring = zrow + row_bytes;
  const int8_t *rowp[16];
  int32_t oy, ky, next = 0; /* rows [next - span, next) are in the ring */
  /* quad-major rows keep their padding for good: only their interiors are rewritten */
  memset(zrow, quad == 2 ? in_zp ^ 0x80 : in_zp,
         (size_t)(quad ? (span + 1) * row_bytes : row_bytes));
  for (oy = 0; oy < out_h; ++oy) {
    const int32_t y0 = oy * s_h - pad_t;
    for (ky = 0; ky < k_h; ++ky) {
      const int32_t iy = y0 + ky * dil_h;
      if (iy < 0 || iy >= in_h) {
        rowp[ky] = zrow;
        continue;
      }
      /* bring rows up to iy into the ring, in order, each with its horizontal padding */
      if (next < iy - span + 1) next = iy - span + 1;
      for (; next <= iy; ++next) {
        int8_t *dst = ring + (next % span) * row_bytes;
        if (quad) {
          const int8_t *src = in + next * in_w * ch;
          if (produce) {
            int8_t *stage = ring + span * row_bytes;
            produce(next, stage);
            src = stage;
          }
          tinyc_dwq_put_row(src, copy_w, ch, row_px, dst + pad_l * 4, quad == 2);
          continue;
        }
        memset(dst, in_zp, (size_t)(pad_l * ch));
        if (produce) {
          produce(next, dst + pad_l * ch);
        } else {
          memcpy(dst + pad_l * ch, in + next * in_w * ch, (size_t)(copy_w * ch));
        }
        if (pw > pad_l + copy_w) {
          memset(dst + (pad_l + copy_w) * ch, in_zp, (size_t)((pw - pad_l - copy_w) * ch));
        }
      }
      rowp[ky] = ring + (iy % span) * row_bytes;
    }
    if (quad == 2) {
      tinyc_dwq_row_u8(rowp, out_w, ch, row_px, k_h, k_w, s_w, dil_w, w, q, zp, lo, hi,
                       right_only, out + oy * out_w * ch);
      continue;
    }
    if (quad) {
      if (rowq) {
        rowq(rowp, out_w, ch, row_px, w, q, zp, lo, hi, out + oy * out_w * ch);
      } else {
        tinyc_dwq_row_ref(rowp, out_w, ch, row_px, k_h, k_w, s_w, dil_w, w, q, zp, lo, hi,
                          out + oy * out_w * ch);
      }
      continue;
    }
#if TINYC_MVE
    if (wl == TINYC_WL_QUADS && right_only) {
      tinyc_dw_row_mve_s8(rowp, out_w, ch, k_h, k_w, s_w, dil_w, w, q, zp, lo, hi,
                          out + oy * out_w * ch);
      continue;
    }
#endif
    tinyc_dw_row_s8(rowp, out_w, ch, k_h, k_w, s_w, dil_w, in_zp, wl, w, q, zp, lo, hi,
                    right_only, out + oy * out_w * ch);
  }
}

/* ADD (sign 1) / SUB (sign -1) of two int8 tensors of n elements each, no broadcasting.
 * Scalar cores look each input's rescaled value up in a table of 256 int32 that tinyc fills
 * from the op's reference (TFLM's (x - zp) << 20 times the input multiplier); Helium
 * computes them four lanes at a time (when no shift is a left shift). The sum is
 * requantized with the output multiplier/shift (TFLite's signed shift). */
TINYC_INLINE void tinyc_addsub_n_s8(int32_t n, int32_t sign, const int8_t *x, const int8_t *y,
                                    const int32_t *tx, const int32_t *ty, int32_t vec,
                                    int32_t x_zp, int32_t y_zp, int32_t x_mult, int32_t x_shift,
                                    int32_t y_mult, int32_t y_shift, int32_t o_mult,
                                    int32_t o_shift, int32_t zp, int32_t lo, int32_t hi,
                                    int8_t *out) {
  int32_t i = 0;
#if TINYC_MVE
  if (vec) {
    /* (x - zp) << 20 as one VMLAS: x * 2^20 + (-zp << 20); whole vectors, then a tail */
    const int32x4_t p20 = vdupq_n_s32(1 << 20), vlo = vdupq_n_s32(lo), vhi = vdupq_n_s32(hi);
    const int32_t xo = (int32_t)((uint32_t)-x_zp << 20), yo = (int32_t)((uint32_t)-y_zp << 20);
#define TINYC_ADDSUB4(XV, YV)                                                  \
  int32x4_t a = TINYC_MVE_RDBPOT(vqrdmulhq_n_s32(vmlasq_n_s32(XV, p20, xo), x_mult), x_shift); \
  int32x4_t b = TINYC_MVE_RDBPOT(vqrdmulhq_n_s32(vmlasq_n_s32(YV, p20, yo), y_mult), y_shift); \
  a = sign > 0 ? vaddq_s32(a, b) : vsubq_s32(a, b);                            \
  a = vaddq_n_s32(TINYC_MVE_RDBPOT(vqrdmulhq_n_s32(a, o_mult), o_shift), zp);  \
  a = vminq_s32(vmaxq_s32(a, vlo), vhi)
    for (; i + 4 <= n; i += 4) {
      TINYC_ADDSUB4(vldrbq_s32(x + i), vldrbq_s32(y + i));
      vstrbq_s32(out + i, a);
    }
    if (i < n) {
      const mve_pred16_t p = vctp32q((uint32_t)(n - i));
      TINYC_ADDSUB4(vldrbq_z_s32(x + i, p), vldrbq_z_s32(y + i, p));
      vstrbq_p_s32(out + i, a, p);
    }
#undef TINYC_ADDSUB4
    return;
  }
#endif
  for (; i < n; ++i) {
    int32_t a, b;
    if (vec) { /* a Helium project built for a core without it: no tables, same arithmetic */
      a = tinyc_mbqm((int32_t)((uint32_t)((int32_t)x[i] - x_zp) << 20), x_mult, x_shift);
      b = tinyc_mbqm((int32_t)((uint32_t)((int32_t)y[i] - y_zp) << 20), y_mult, y_shift);
    } else {
      a = tx[(uint8_t)x[i]];
      b = ty[(uint8_t)y[i]];
    }
    /* a right shift (the usual case) takes tinyc_rq_s8's short path */
    out[i] = (int8_t)tinyc_rq_s8(sign > 0 ? a + b : a - b, o_mult,
                                 o_shift <= -1 ? -o_shift : o_shift, zp, lo, hi, o_shift <= -1);
  }
}

/* MUL of two int8 tensors of n elements each, no broadcasting. */
TINYC_INLINE void tinyc_mul_n_s8(int32_t n, const int8_t *x, const int8_t *y, int32_t x_zp,
                                 int32_t y_zp, int32_t mult, int32_t shift, int32_t vec,
                                 int32_t zp, int32_t lo, int32_t hi, int8_t *out) {
  int32_t i = 0;
#if TINYC_MVE
  if (vec) {
    const int32x4_t vlo = vdupq_n_s32(lo), vhi = vdupq_n_s32(hi);
#define TINYC_MUL4(XV, YV)                                                             \
  int32x4_t t = vmulq_s32(vsubq_n_s32(XV, x_zp), vsubq_n_s32(YV, y_zp));                 \
  t = vaddq_n_s32(TINYC_MVE_RDBPOT(vqrdmulhq_n_s32(t, mult), shift), zp);              \
  t = vminq_s32(vmaxq_s32(t, vlo), vhi)
    for (; i + 4 <= n; i += 4) {
      TINYC_MUL4(vldrbq_s32(x + i), vldrbq_s32(y + i));
      vstrbq_s32(out + i, t);
    }
    if (i < n) {
      const mve_pred16_t p = vctp32q((uint32_t)(n - i));
      TINYC_MUL4(vldrbq_z_s32(x + i, p), vldrbq_z_s32(y + i, p));
      vstrbq_p_s32(out + i, t, p);
    }
#undef TINYC_MUL4
    return;
  }
#endif
  (void)vec;
  for (; i < n; ++i) {
    const int32_t prod = ((int32_t)x[i] - x_zp) * ((int32_t)y[i] - y_zp);
    out[i] = (int8_t)tinyc_rq_s8(prod, mult, shift, zp, lo, hi, 0);
  }
}

#endif
