/* tinyc's recurrent kernels: LSTM (TFLite Micro's integer LSTM, bit for bit), GRU and RNN
 * (tinyc's integer definitions, see tinyc/ir/ops/recurrent.py), int8 in and out.
 *
 * Gate matrices: every gate's input-side weights stacked into one [gates * hidden, k]
 * matrix (and the recurrent ones into another), rows padded to a multiple of four, in the
 * target's matrix layout (TINYC_WL_*, see tinyc_nn.h). Per row: a bias with the input zero
 * point folded in, and the requantization {multiplier, shift} to int16 Q3.12.
 *
 * Everything is always_inline: the generated model calls a kernel from a per-layer
 * function with a constant parameter block, so the compiler specializes it for the layer's
 * layout and sizes. tinyc_lstm_s8 / tinyc_gru_s8 / tinyc_rnn_s8 run the whole sequence
 * x -> y (y may be 0 when only the final state is wanted); h (int8) and c (int16) hold the
 * state on entry and are left holding the final state.
 */
#ifndef TINYC_RNN_H
#define TINYC_RNN_H

#include <stdint.h>
#include <string.h>

#include "tinyc_fixedpoint.h"
#include "tinyc_nn.h"
#include "tinyc_sparse.h"

/* One gate matrix: per-row biases, per-gate requantization (the weights are per tensor). */
typedef struct {
  const void *w;       /* rows x k in layout wl */
  const int32_t *bias; /* per row (zero point folded in; for TINYC_WL_UPAIRS also -128 sum w) */
  const int32_t *mult; /* per gate */
  const int32_t *shift;
  int32_t k;
  int32_t gate_rows; /* rows per gate: the hidden size rounded up to a multiple of 4 */
  /* Sparse weights (tinyc_sparse.h's encodings; w is 0 and the bias is the plain folded
   * one): chosen per matrix by the backend's cost model. sp_group 0: per row (one row per
   * gate row); TINYC_SP_GROUP: grouped, four gate rows sharing their columns (a gate's
   * rows are a multiple of four, so groups never straddle gates). sp_off: where each
   * gate's first row (group) starts in sp_idx (sp_val: times the group size). */
  const uint8_t *sp_cnt;
  const uint8_t *sp_idx;
  const int8_t *sp_val;
  const int32_t *sp_off;
  int32_t sp_group;
} tinyc_gate_mat_t;

typedef struct {
  int32_t batch, steps, input, hidden;
  int32_t time_major, reverse;
  int32_t wl;          /* weight layout of both matrices */
  tinyc_gate_mat_t x;  /* input side: rows i, f, c, o */
  tinyc_gate_mat_t h;  /* recurrent side */
  int32_t h_zp;
  int32_t forget_mult, forget_shift; /* f * c -> c */
  int32_t input_mult, input_shift;   /* i * g -> c */
  int32_t output_mult, output_shift; /* o * tanh(c) -> h */
  int32_t tanh_mult, tanh_shift;     /* tanh(c) input scaling (see tinyc_tanh16) */
  int32_t cell_clip;                 /* 0: none */
  int32_t cell_gate_sigmoid;         /* the cell gate's activation: 0 tanh, 1 sigmoid */
  const uint16_t *table;             /* sigmoid(k / 24) in Q0.16, TFLM's 256 entries */
} tinyc_lstm_t;

/* Bytes of scratch a row of k values needs (widened, staged or flipped for the matrix
 * kernels), and a block of input rows (up to three on DSP cores). */
#define TINYC_RNN_ROW_SCRATCH(k) (3 * (((k) + 15) & ~15))
#define TINYC_RNN_XROW_SCRATCH(k) (7 * (((k) + 15) & ~15))


typedef struct {
  int32_t batch, steps, input, hidden;
  int32_t time_major, reverse;
  int32_t wl;
  int32_t linear_before_reset;
  tinyc_gate_mat_t x; /* rows z, r, h */
  tinyc_gate_mat_t h; /* rows z, r, h (bias: zero point folded, plus Rb_h scaled) */
  int32_t h_zp;
  int32_t reset_mult, reset_shift;   /* r * hh (Q3.12), or r * (h - zp) at h's scale */
  int32_t keep_mult, keep_shift;     /* (1 - z) * n -> h */
  int32_t update_mult, update_shift; /* z * (h - zp) -> h */
  const uint16_t *table;
} tinyc_gru_t;


typedef struct {
  int32_t batch, steps, input, hidden;
  int32_t time_major, reverse;
  int32_t wl;
  tinyc_gate_mat_t x;
  tinyc_gate_mat_t h;
  int32_t h_zp;
  int32_t activation; /* 0 tanh, 1 sigmoid, 2 relu */
  int32_t out_mult, out_shift;
  const uint16_t *table;
} tinyc_rnn_t;


/* -- implementation ------------------------------------------------------------------- */

#if TINYC_DSP
#define TINYC_SAT16(v) __ssat((v), 16)
#define TINYC_SAT8(v) __ssat((v), 8)
#else
#define TINYC_SAT16(v) ((v) < -32768 ? -32768 : ((v) > 32767 ? 32767 : (v)))
#define TINYC_SAT8(v) ((v) < -128 ? -128 : ((v) > 127 ? 127 : (v)))
#endif

/* TFLM's int16 sigmoid (reference_integer_ops::Logistic) of a Q3.12 value: Q0.15. */
TINYC_INLINE int32_t tinyc_sigmoid16(int32_t x, const uint16_t *table) {
  const int32_t v = x * 3;
  const uint32_t a = (uint32_t)(v < 0 ? -v : v);
  const uint32_t uh = a >> 9;
  uint32_t r;
  if (uh >= 255u) {
    r = 0x7FFFu << 10;
  } else {
    const uint32_t ua = table[uh], ub = table[uh + 1];
    r = (ua << 9) + (a & 0x1FFu) * (ub - ua);
  }
  r = v >= 0 ? r + (1u << 9) : (1u << 25) - r + (1u << 9) - 1u;
  return (int32_t)(r >> 10);
}

/* TFLM's int16 tanh (reference_integer_ops::Tanh): the input times `mult` (3 << shift for a
 * power-of-two scale), rounded right by `shift`; Q0.15 out. */
TINYC_INLINE int32_t tinyc_tanh16(int32_t x, int32_t mult, int32_t shift,
                                   const uint16_t *table) {
  const int32_t round = shift > 0 ? 1 << (shift - 1) : 0;
  const int32_t v = (x * mult + round) >> shift;
  const uint32_t a = (uint32_t)(v < 0 ? -v : v);
  const uint32_t uh = a >> 8;
  int32_t r;
  if (uh >= 255u) {
    r = (int32_t)(0xFFFFu << 8);
  } else {
    const uint32_t ua = table[uh], ub = table[uh + 1];
    r = (int32_t)((ua << 8) + (a & 0xFFu) * (ub - ua));
  }
  r = v >= 0 ? r - (1 << 23) + (1 << 7) : -r + (1 << 23) + (1 << 7) - 1;
  return r >> 8;
}

#if TINYC_MVE
/* Helium versions of the element-wise pieces, four int32 lanes at a time, bit-exact with
 * the scalar ones above: the table interpolations through gather loads, the rescaling with
 * VQRDMULH (TFLite's doubling high multiply) and a rounding shift (half away from zero). */
TINYC_INLINE int32x4_t tinyc_rq_v(int32x4_t x, int32_t mult, int32_t shift) {
  int32x4_t v = vqrdmulhq_n_s32(x, mult);
  return vrshlq_n_s32(vaddq_s32(v, vshrq_n_s32(v, 31)), shift); /* shift < 0 */
}

TINYC_INLINE int32x4_t tinyc_sat16_v(int32x4_t v) {
  return vminq_s32(vmaxq_s32(v, vdupq_n_s32(-32768)), vdupq_n_s32(32767));
}

/* The table interpolation: bits = 9 (sigmoid) or 8 (tanh) fraction bits. */
TINYC_INLINE int32x4_t tinyc_lut_v(int32x4_t a, int32_t bits, const uint16_t *table) {
  const uint32x4_t ua0 = vreinterpretq_u32_s32(a);
  const uint32x4_t uh = vshlq_u32(ua0, vdupq_n_s32(-bits));
  const uint32x4_t idx = vminq_u32(uh, vdupq_n_u32(254));
  const int32x4_t lo = vreinterpretq_s32_u32(vldrhq_gather_shifted_offset_u32(table, idx));
  const int32x4_t hi = vreinterpretq_s32_u32(vldrhq_gather_shifted_offset_u32(table + 1, idx));
  const int32x4_t frac = vandq_s32(a, vdupq_n_s32((1 << bits) - 1));
  const int32x4_t r = vaddq_s32(vshlq_s32(lo, vdupq_n_s32(bits)), vmulq_s32(frac, vsubq_s32(hi, lo)));
  const mve_pred16_t big = vcmpcsq_n_u32(uh, 255u);
  return vpselq_s32(vdupq_n_s32(bits == 9 ? 0x7FFF << 10 : 0xFFFF << 8), r, big);
}

TINYC_INLINE int32x4_t tinyc_sigmoid16_v(int32x4_t x, const uint16_t *table) {
  const int32x4_t v = vmulq_n_s32(x, 3);
  const int32x4_t r = tinyc_lut_v(vabsq_s32(v), 9, table);
  const mve_pred16_t pos = vcmpgeq_n_s32(v, 0);
  const int32x4_t neg = vsubq_s32(vdupq_n_s32((1 << 25) + (1 << 9) - 1), r);
  return vshrq_n_s32(vpselq_s32(vaddq_n_s32(r, 1 << 9), neg, pos), 10);
}

TINYC_INLINE int32x4_t tinyc_tanh16_v(int32x4_t x, int32_t mult, int32_t shift,
                                      const uint16_t *table) {
  int32x4_t v = vmulq_n_s32(x, mult);
  if (shift > 0) v = vshlq_s32(vaddq_n_s32(v, 1 << (shift - 1)), vdupq_n_s32(-shift));
  {
    const int32x4_t r = tinyc_lut_v(vabsq_s32(v), 8, table);
    const mve_pred16_t pos = vcmpgeq_n_s32(v, 0);
    const int32x4_t p = vaddq_n_s32(r, -(1 << 23) + (1 << 7));
    const int32x4_t n = vsubq_s32(vdupq_n_s32((1 << 23) + (1 << 7) - 1), r);
    return vshrq_n_s32(vpselq_s32(p, n, pos), 8);
  }
}
#endif

/* TFLite's MultiplyByQuantizedMultiplier, with the right-shift case (every gate and cell
 * product of a real model) in six instructions. */
TINYC_INLINE int32_t tinyc_rnn_rq(int32_t x, int32_t mult, int32_t shift) {
  return shift < 0 ? tinyc_rdbpot1(tinyc_mulhi(x, mult), -shift) : tinyc_mbqm(x, mult, shift);
}

/* One requantized gate value into out (saturating add when `add`). */
TINYC_INLINE void tinyc_rnn_put(int32_t acc, int32_t gm, int32_t gs, int16_t *o, int32_t add) {
  int32_t v = tinyc_rnn_rq(acc, gm, gs);
  v = TINYC_SAT16(v);
  if (add) {
    v += *o;
    v = TINYC_SAT16(v);
  }
  *o = (int16_t)v;
}

/* Four gate rows' accumulators requantized to int16 into o[0..3], added (saturating) to
 * what o holds when `add`. Helium: four lanes at once for a right shift. Elsewhere the
 * shift's sign is tested once for the four and every value stays in a register (a loop
 * over the array kept them in memory: 3-4 % of a dense LSTM on M7). */
TINYC_INLINE void tinyc_rnn_put4(const int32_t *acc, int32_t gm, int32_t gs, int16_t *o,
                                 int32_t add) {
#if TINYC_MVE
  int32_t j;
  if (gs < 0) {
    int32x4_t v = tinyc_sat16_v(tinyc_rq_v(vldrwq_s32(acc), gm, gs));
    if (add) v = tinyc_sat16_v(vaddq_s32(v, vldrhq_s32(o)));
    vstrhq_s32(o, v);
  } else {
    for (j = 0; j < 4; ++j) tinyc_rnn_put(acc[j], gm, gs, o + j, add);
  }
#else
  int32_t v0, v1, v2, v3;
  if (gs < 0) {
    v0 = tinyc_rdbpot1(tinyc_mulhi(acc[0], gm), -gs);
    v1 = tinyc_rdbpot1(tinyc_mulhi(acc[1], gm), -gs);
    v2 = tinyc_rdbpot1(tinyc_mulhi(acc[2], gm), -gs);
    v3 = tinyc_rdbpot1(tinyc_mulhi(acc[3], gm), -gs);
  } else {
    v0 = tinyc_mbqm(acc[0], gm, gs);
    v1 = tinyc_mbqm(acc[1], gm, gs);
    v2 = tinyc_mbqm(acc[2], gm, gs);
    v3 = tinyc_mbqm(acc[3], gm, gs);
  }
  v0 = TINYC_SAT16(v0);
  v1 = TINYC_SAT16(v1);
  v2 = TINYC_SAT16(v2);
  v3 = TINYC_SAT16(v3);
  if (add) {
    v0 += o[0];
    v1 += o[1];
    v2 += o[2];
    v3 += o[3];
    v0 = TINYC_SAT16(v0);
    v1 = TINYC_SAT16(v1);
    v2 = TINYC_SAT16(v2);
    v3 = TINYC_SAT16(v3);
  }
  o[0] = (int16_t)v0;
  o[1] = (int16_t)v1;
  o[2] = (int16_t)v2;
  o[3] = (int16_t)v3;
#endif
}

/* Steps whose input side one matrix pass computes: the DSP kernels take three rows, the
 * unsigned pair kernels two. */
TINYC_INLINE int32_t tinyc_rnn_block(int32_t wl) {
#if TINYC_DSP
  if (wl == TINYC_WL_PAIRS) return 3;
#endif
  return wl == TINYC_WL_UPAIRS ? 2 : 1;
}

/* A row ready for the matrix kernels of layout wl: DSP pair layouts take it widened to
 * int16 pairs, the unsigned pair layout flipped to x + 128 (flip_sum: 128 * sum), the quad
 * layout and plain C as it is. `buf` holds TINYC_RNN_ROW_SCRATCH(k) bytes. */
TINYC_INLINE const void *tinyc_rnn_row(const int8_t *src, int32_t k, int32_t wl, void *buf,
                                 uint32_t *flip_sum) {
  const int32_t k4 = (k + 3) & ~3;
  *flip_sum = 0;
  if (wl == TINYC_WL_UPAIRS) {
    uint8_t *row = (uint8_t *)buf;
    memcpy(row, src, (size_t)k);
    memset(row + k, 0, (size_t)(k4 - k));
    *flip_sum = tinyc_flip_row(row, k4);
    return row;
  }
#if TINYC_DSP
  if (wl == TINYC_WL_PAIRS) {
    tinyc_row_t *rows = (tinyc_row_t *)buf;
    int8_t *stage = (int8_t *)buf + TINYC_MM_SCRATCH(1, k4);
    if (k != k4) {
      memcpy(stage, src, (size_t)k);
      memset(stage + k, 0, (size_t)(k4 - k));
      src = stage;
    }
    tinyc_row_s8(src, k4, rows, 0, 1);
    return rows;
  }
#endif
  (void)buf;
  return src;
}

/* acc[j] = bias[j] + row . w_j for the four rows 4 * quad .. 4 * quad + 3 of a gate matrix. */
TINYC_INLINE void tinyc_rnn_mv4(int32_t wl, const void *row, uint32_t flip_sum, int32_t k,
                                 const void *w, int32_t quad, const int32_t *bias,
                                 int32_t *acc) {
  const int32_t k4 = (k + 3) & ~3;
  int32_t j;
  if (wl == TINYC_WL_UPAIRS) {
    const uint8_t *wb = (const uint8_t *)w + quad * 4 * k4;
    uint32_t u[4];
    for (j = 0; j < 4; ++j) u[j] = (uint32_t)bias[j];
    tinyc_mm_u8((const uint8_t *)row, 0, wb, wb + 2 * k4, k4 / 4, u);
    for (j = 0; j < 4; ++j) acc[j] = (int32_t)(u[j] - flip_sum);
    return;
  }
#if TINYC_DSP
  if (wl == TINYC_WL_PAIRS) {
    const uint32_t *wp = (const uint32_t *)w + quad * k4;
    tinyc_mm1x4((const uint32_t *)row, wp, k4 / 4, acc, bias, wp + k4 / 2);
    return;
  }
#endif
  if (wl == TINYC_WL_QUADS) {
    const int32_t k16 = (k + 15) & ~15;
    const int8_t *wq = (const int8_t *)w + quad * 4 * k16;
    const int8_t *x = (const int8_t *)row;
#if TINYC_MVE
    const int32_t blocks = k / 16, tail = k % 16;
    int32_t a0 = bias[0], a1 = bias[1], a2 = bias[2], a3 = bias[3], b;
    for (b = 0; b < blocks; ++b, x += 16, wq += 64) {
      const int8x16_t xv = vldrbq_s8(x);
      a0 = vmladavaq_s8(a0, xv, vldrbq_s8(wq));
      a1 = vmladavaq_s8(a1, xv, vldrbq_s8(wq + 16));
      a2 = vmladavaq_s8(a2, xv, vldrbq_s8(wq + 32));
      a3 = vmladavaq_s8(a3, xv, vldrbq_s8(wq + 48));
    }
    if (tail) {
      const int8x16_t xv = vldrbq_z_s8(x, vctp8q((uint32_t)tail));
      a0 = vmladavaq_s8(a0, xv, vldrbq_s8(wq));
      a1 = vmladavaq_s8(a1, xv, vldrbq_s8(wq + 16));
      a2 = vmladavaq_s8(a2, xv, vldrbq_s8(wq + 32));
      a3 = vmladavaq_s8(a3, xv, vldrbq_s8(wq + 48));
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
#else
    int32_t i;
    for (j = 0; j < 4; ++j) {
      int32_t a = bias[j];
      for (i = 0; i < k; ++i) a += x[i] * wq[(i / 16) * 64 + j * 16 + i % 16];
      acc[j] = a;
    }
#endif
    return;
  }
  {
    /* the signed pair layout in plain C (hosts and cores without DSP) */
    const int8_t *x = (const int8_t *)row;
    const int8_t *wp = (const int8_t *)w + quad * 4 * k4;
    int32_t i;
    for (j = 0; j < 4; ++j) {
      const int8_t *wc = wp + (j / 2) * 2 * k4 + 4 * (j & 1);
      int32_t a = bias[j];
      for (i = 0; i < k; ++i) a += x[i] * wc[(i / 4) * 8 + i % 4];
      acc[j] = a;
    }
  }
}

/* Rows [first, first + count) (whole gates) of a gate matrix requantized to int16 and
 * added, saturating, to what `out` holds (or stored when `add` is 0). */
TINYC_INLINE void tinyc_rnn_gates(int32_t wl, const tinyc_gate_mat_t *m, const void *row,
                                  uint32_t flip_sum, int32_t first, int32_t count, int16_t *out,
                                  int32_t add) {
  const int32_t gr = m->gate_rows;
  int32_t g0, quad;
  for (g0 = first; g0 < first + count; g0 += gr) {
    const int32_t gm = m->mult[g0 / gr], gs = m->shift[g0 / gr];
    for (quad = g0 / 4; quad < (g0 + gr) / 4; ++quad) {
      int32_t acc[4];
      int16_t *o = out + 4 * quad - first;
      tinyc_rnn_mv4(wl, row, flip_sum, m->k, m->w, quad, m->bias + 4 * quad, acc);
      tinyc_rnn_put4(acc, gm, gs, o, add);
    }
  }
}

/* tinyc_rnn_spgates over the grouped encoding: per four rows one pass over the columns
 * they share (tinyc_spg_dot), then each row requantized as tinyc_rnn_gates does. */
TINYC_INLINE void tinyc_rnn_spggates(const tinyc_gate_mat_t *m, const int8_t *x, int32_t first,
                                     int32_t count, int16_t *out, int32_t add) {
  const int32_t gr = m->gate_rows, nseg = (m->k + TINYC_SP_SEG - 1) / TINYC_SP_SEG;
  const uint8_t *cnt = m->sp_cnt + (first / TINYC_SP_GROUP) * nseg;
  const uint8_t *idx = m->sp_idx + m->sp_off[first / gr];
  const int8_t *val = m->sp_val + TINYC_SP_GROUP * m->sp_off[first / gr];
  const int32_t *bias = m->bias + first;
  int32_t g0, r, s;
  for (g0 = 0; g0 < count; g0 += gr) {
    const int32_t gm = m->mult[(first + g0) / gr], gs = m->shift[(first + g0) / gr];
#pragma GCC unroll 1
    for (r = g0; r < g0 + gr; r += TINYC_SP_GROUP) {
      int32_t acc[TINYC_SP_GROUP];
      acc[0] = bias[r];
      acc[1] = bias[r + 1];
      acc[2] = bias[r + 2];
      acc[3] = bias[r + 3];
      for (s = 0; s < nseg; ++s) tinyc_spg_dot(x + s * TINYC_SP_SEG, &idx, &val, *cnt++, acc);
      tinyc_rnn_put4(acc, gm, gs, out + r, add);
    }
  }
}

/* tinyc_rnn_gates over sparse weights, one row at a time (tinyc_sparse.h's per-row
 * encoding): rows [first, first + count) (whole gates) times the int8 row x (no widening,
 * flipping or staging), requantized to int16 into out. */
TINYC_INLINE void tinyc_rnn_sprgates(const tinyc_gate_mat_t *m, const int8_t *x, int32_t first,
                                     int32_t count, int16_t *out, int32_t add) {
  const int32_t gr = m->gate_rows, nseg = (m->k + TINYC_SP_SEG - 1) / TINYC_SP_SEG;
  const uint8_t *cnt = m->sp_cnt + first * nseg;
  const uint8_t *idx = m->sp_idx + m->sp_off[first / gr];
  const int8_t *val = m->sp_val + m->sp_off[first / gr];
  const int32_t *bias = m->bias + first;
  int32_t g0, r, s;
  for (g0 = 0; g0 < count; g0 += gr) {
    const int32_t gm = m->mult[(first + g0) / gr], gs = m->shift[(first + g0) / gr];
#pragma GCC unroll 1
    for (r = g0; r < g0 + gr; ++r) {
      int32_t acc = bias[r];
      for (s = 0; s < nseg; ++s) {
        const int32_t n = *cnt++;
        acc = tinyc_sp_dotp(x + s * TINYC_SP_SEG, &idx, &val, n, acc); /* steps idx, val */
      }
      tinyc_rnn_put(acc, gm, gs, out + r, add);
    }
  }
}

/* Rows [first, first + count) (whole gates) of a sparse gate matrix, in the encoding its
 * sp_group says. */
TINYC_INLINE void tinyc_rnn_spgates(const tinyc_gate_mat_t *m, const int8_t *x, int32_t first,
                                    int32_t count, int16_t *out, int32_t add) {
  if (m->sp_group) {
    tinyc_rnn_spggates(m, x, first, count, out, add);
  } else {
    tinyc_rnn_sprgates(m, x, first, count, out, add);
  }
}

/* The input side of nb steps over sparse weights: nb > 1 (DSP: up to three) shares each
 * nonzero's decode between the steps. */
TINYC_INLINE void tinyc_rnn_spxblock(const tinyc_gate_mat_t *m, const int8_t *const *src,
                                     int32_t nb, int32_t rows, int16_t *out) {
  const int32_t gr = m->gate_rows, nseg = (m->k + TINYC_SP_SEG - 1) / TINYC_SP_SEG;
  const uint8_t *cnt = m->sp_cnt, *idx = m->sp_idx;
  const int8_t *val = m->sp_val;
  int32_t g0, r, s, j;
  if (nb < 3 || m->sp_group) {
    for (j = 0; j < nb; ++j) tinyc_rnn_spgates(m, src[j], 0, rows, out + j * rows, 0);
    return;
  }
  for (g0 = 0; g0 < rows; g0 += gr) {
    const int32_t gm = m->mult[g0 / gr], gs = m->shift[g0 / gr];
#pragma GCC unroll 1
    for (r = g0; r < g0 + gr; ++r) {
      int32_t a0 = m->bias[r], a1 = a0, a2 = a0;
      for (s = 0; s < nseg; ++s) {
        const int8_t *x0 = src[0] + s * TINYC_SP_SEG, *x1 = src[1] + s * TINYC_SP_SEG;
        const int8_t *x2 = src[2] + s * TINYC_SP_SEG;
        int32_t n = *cnt++;
#pragma GCC unroll 2
        for (; n > 0; --n) {
          const int32_t i = *idx++, w = *val++;
          a0 += x0[i] * w;
          a1 += x1[i] * w;
          a2 += x2[i] * w;
        }
      }
      tinyc_rnn_put(a0, gm, gs, out + r, 0);
      tinyc_rnn_put(a1, gm, gs, out + rows + r, 0);
      tinyc_rnn_put(a2, gm, gs, out + 2 * rows + r, 0);
    }
  }
}

/* The input-side pre-activations (int16, rows [0, rows)) of nb <= tinyc_rnn_block(wl)
 * steps at once: out + j * rows for step j. `buf`: TINYC_RNN_XROW_SCRATCH(k) bytes. */
TINYC_INLINE void tinyc_rnn_xblock(int32_t wl, const tinyc_gate_mat_t *m,
                                   const int8_t *const *src, int32_t nb, int32_t rows,
                                   int16_t *out, void *buf) {
  const int32_t k = m->k, k4 = (k + 3) & ~3, gr = m->gate_rows;
  int32_t j, oc, g0;
  if (m->sp_cnt) {
    tinyc_rnn_spxblock(m, src, nb, rows, out);
    return;
  }
#if TINYC_DSP
  if (wl == TINYC_WL_PAIRS && nb > 1) {
    tinyc_row_t *rw = (tinyc_row_t *)buf;
    int8_t *stage = (int8_t *)buf + TINYC_MM_SCRATCH(3, k4);
    for (j = 0; j < 3; ++j) {
      const int8_t *row = src[j < nb ? j : nb - 1];
      if (k != k4) {
        memcpy(stage, row, (size_t)k);
        memset(stage + k, 0, (size_t)(k4 - k));
        row = stage;
      }
      tinyc_row_s8(row, k4, rw, j, 3);
    }
    for (g0 = 0; g0 < rows; g0 += gr) {
      const int32_t gm = m->mult[g0 / gr], gs = m->shift[g0 / gr];
      for (oc = g0; oc < g0 + gr; oc += 2) {
        const uint32_t *wp = (const uint32_t *)m->w + (oc / 2) * (k4 / 2);
        int32_t acc[6];
        tinyc_mm3x2(rw, wp, k4 / 4, acc, m->bias + oc);
        for (j = 0; j < nb; ++j) {
          const int32_t a = tinyc_rnn_rq(acc[2 * j], gm, gs);
          const int32_t b = tinyc_rnn_rq(acc[2 * j + 1], gm, gs);
          out[j * rows + oc] = (int16_t)TINYC_SAT16(a);
          out[j * rows + oc + 1] = (int16_t)TINYC_SAT16(b);
        }
      }
    }
    return;
  }
#endif
  if (wl == TINYC_WL_UPAIRS && nb > 1) {
    uint8_t *r0 = (uint8_t *)buf, *r1 = r0 + k4;
    uint32_t s0, s1;
    memcpy(r0, src[0], (size_t)k);
    memset(r0 + k, 0, (size_t)(k4 - k));
    memcpy(r1, src[1], (size_t)k);
    memset(r1 + k, 0, (size_t)(k4 - k));
    s0 = tinyc_flip_row(r0, k4);
    s1 = tinyc_flip_row(r1, k4);
    for (g0 = 0; g0 < rows; g0 += gr) {
      const int32_t gm = m->mult[g0 / gr], gs = m->shift[g0 / gr];
      for (oc = g0; oc < g0 + gr; oc += 2) {
        const uint8_t *wb = (const uint8_t *)m->w + (oc / 2) * 2 * k4;
        uint32_t acc[4];
        int32_t c2;
        acc[0] = acc[2] = (uint32_t)m->bias[oc];
        acc[1] = acc[3] = (uint32_t)m->bias[oc + 1];
        tinyc_mm_u8(r0, r1, wb, wb, k4 / 4, acc);
        for (c2 = 0; c2 < 4; ++c2) {
          const int32_t ch = oc + (c2 & 1), step = c2 >> 1;
          int32_t v = (int32_t)(acc[c2] - (step ? s1 : s0));
          v = tinyc_rnn_rq(v, gm, gs);
          out[step * rows + ch] = (int16_t)TINYC_SAT16(v);
        }
      }
    }
    return;
  }
  for (j = 0; j < nb; ++j) {
    uint32_t f;
    const void *r = tinyc_rnn_row(src[j], k, wl, buf, &f);
    tinyc_rnn_gates(wl, m, r, f, 0, rows, out + j * rows, 0);
  }
}

TINYC_INLINE int32_t tinyc_rnn_offset(int32_t time_major, int32_t batch, int32_t steps, int32_t b,
                                int32_t t) {
  return time_major ? t * batch + b : b * steps + t;
}

/* The steps of one block: where each step's input and output live. */
TINYC_INLINE int32_t tinyc_rnn_block_rows(int32_t time_major, int32_t batch, int32_t steps,
                                    int32_t reverse, int32_t b, int32_t s0, int32_t nb,
                                    const int8_t *x, int32_t input, const int8_t **src,
                                    int32_t *at) {
  int32_t j;
  for (j = 0; j < nb; ++j) {
    const int32_t t = reverse ? steps - 1 - (s0 + j) : s0 + j;
    at[j] = tinyc_rnn_offset(time_major, batch, steps, b, t);
    src[j] = x + at[j] * input;
  }
  return nb;
}

#if TINYC_MVE
/* The LSTM cell update of every unit, four at a time (right shifts only). */
TINYC_INLINE void tinyc_lstm_cell_v(const tinyc_lstm_t *p, const int16_t *gt, int32_t n4,
                                    int16_t *cb, int8_t *hb) {
  const int32_t n = p->hidden;
  const int32_t clip = p->cell_clip ? p->cell_clip : 32767;
  int32_t u;
  for (u = 0; u < n; u += 4) {
    const mve_pred16_t in = vctp32q((uint32_t)(n - u));
    const int32x4_t gi = tinyc_sigmoid16_v(vldrhq_s32(gt + u), p->table);
    const int32x4_t gf = tinyc_sigmoid16_v(vldrhq_s32(gt + n4 + u), p->table);
    const int32x4_t gx = vldrhq_s32(gt + 2 * n4 + u);
    const int32x4_t gc = p->cell_gate_sigmoid ? tinyc_sigmoid16_v(gx, p->table)
                                              : tinyc_tanh16_v(gx, 3, 0, p->table);
    const int32x4_t c0 = vldrhq_z_s32(cb + u, in);
    const int32x4_t kept = tinyc_sat16_v(tinyc_rq_v(vmulq_s32(gf, c0), p->forget_mult, p->forget_shift));
    const int32x4_t added = tinyc_sat16_v(tinyc_rq_v(vmulq_s32(gi, gc), p->input_mult, p->input_shift));
    int32x4_t cell = tinyc_sat16_v(vaddq_s32(kept, added));
    int32x4_t go, out;
    cell = vminq_s32(vmaxq_s32(cell, vdupq_n_s32(-clip)), vdupq_n_s32(clip));
    vstrhq_p_s32(cb + u, cell, in);
    go = tinyc_sigmoid16_v(vldrhq_s32(gt + 3 * n4 + u), p->table);
    out = vmulq_s32(tinyc_tanh16_v(cell, p->tanh_mult, p->tanh_shift, p->table), go);
    out = vaddq_n_s32(tinyc_rq_v(out, p->output_mult, p->output_shift), p->h_zp);
    out = vminq_s32(vmaxq_s32(out, vdupq_n_s32(-128)), vdupq_n_s32(127));
    vstrbq_p_s32(hb + u, out, in);
  }
}
#endif

TINYC_INLINE void tinyc_lstm_s8(const tinyc_lstm_t *p, const int8_t *x, int8_t *y, int8_t *h, int16_t *c,
                   void *scratch) {
  const int32_t n = p->hidden, n4 = (n + 3) & ~3, rows = 4 * n4;
  const int32_t blk = tinyc_rnn_block(p->wl);
  int16_t *gates = (int16_t *)scratch; /* per step of a block: i, f, c, o (n4 rows each) */
  uint8_t *xbuf = (uint8_t *)(gates + blk * rows);
  uint8_t *hbuf = xbuf + TINYC_RNN_XROW_SCRATCH(p->input);
  int32_t b, s0, j, u;
  for (b = 0; b < p->batch; ++b) {
    int8_t *hb = h + b * n;
    int16_t *cb = c + b * n;
    for (s0 = 0; s0 < p->steps; s0 += blk) {
      const int8_t *src[3];
      int32_t at[3];
      const int32_t nb = tinyc_rnn_block_rows(p->time_major, p->batch, p->steps, p->reverse, b,
                                              s0, p->steps - s0 < blk ? p->steps - s0 : blk,
                                              x, p->input, src, at);
      tinyc_rnn_xblock(p->wl, &p->x, src, nb, rows, gates, xbuf);
      for (j = 0; j < nb; ++j) {
        int16_t *gt = gates + j * rows;
        if (p->h.sp_cnt) {
          tinyc_rnn_spgates(&p->h, hb, 0, rows, gt, 1);
        } else {
          uint32_t fh;
          const void *rh = tinyc_rnn_row(hb, n, p->wl, hbuf, &fh);
          tinyc_rnn_gates(p->wl, &p->h, rh, fh, 0, rows, gt, 1);
        }
#if TINYC_MVE
        if (p->forget_shift < 0 && p->input_shift < 0 && p->output_shift < 0) {
          tinyc_lstm_cell_v(p, gt, n4, cb, hb);
          if (y) memcpy(y + at[j] * n, hb, (size_t)n);
          continue;
        }
#endif
        for (u = 0; u < n; ++u) {
          const int32_t gi = tinyc_sigmoid16(gt[u], p->table);
          const int32_t gf = tinyc_sigmoid16(gt[n4 + u], p->table);
          const int32_t gc = p->cell_gate_sigmoid ? tinyc_sigmoid16(gt[2 * n4 + u], p->table)
                                                  : tinyc_tanh16(gt[2 * n4 + u], 3, 0, p->table);
          const int32_t kept = tinyc_rnn_rq(gf * cb[u], p->forget_mult, p->forget_shift);
          const int32_t added = tinyc_rnn_rq(gi * gc, p->input_mult, p->input_shift);
          int32_t cell = TINYC_SAT16(kept) + TINYC_SAT16(added);
          int32_t go, out;
          cell = TINYC_SAT16(cell);
          if (p->cell_clip) {
            cell = cell > p->cell_clip ? p->cell_clip
                                       : (cell < -p->cell_clip ? -p->cell_clip : cell);
          }
          cb[u] = (int16_t)cell;
          go = tinyc_sigmoid16(gt[3 * n4 + u], p->table);
          out = tinyc_rnn_rq(tinyc_tanh16(cell, p->tanh_mult, p->tanh_shift, p->table) * go,
                             p->output_mult, p->output_shift) +
                p->h_zp;
          hb[u] = (int8_t)TINYC_SAT8(out);
        }
        if (y) memcpy(y + at[j] * n, hb, (size_t)n);
      }
    }
  }
}

TINYC_INLINE void tinyc_gru_s8(const tinyc_gru_t *p, const int8_t *x, int8_t *y, int8_t *h, void *scratch) {
  const int32_t n = p->hidden, n4 = (n + 3) & ~3, rows = 3 * n4;
  const int32_t blk = tinyc_rnn_block(p->wl);
  int16_t *gates = (int16_t *)scratch; /* per step of a block: z, r, h from the input */
  int16_t *hh = gates + blk * rows;
  int8_t *rh = (int8_t *)(hh + n4);
  uint8_t *xbuf = (uint8_t *)(rh + n4);
  uint8_t *hbuf = xbuf + TINYC_RNN_XROW_SCRATCH(p->input);
  int32_t b, s0, j, u;
  for (b = 0; b < p->batch; ++b) {
    int8_t *hb = h + b * n;
    for (s0 = 0; s0 < p->steps; s0 += blk) {
      const int8_t *src[3];
      int32_t at[3];
      const int32_t nb = tinyc_rnn_block_rows(p->time_major, p->batch, p->steps, p->reverse, b,
                                              s0, p->steps - s0 < blk ? p->steps - s0 : blk,
                                              x, p->input, src, at);
      tinyc_rnn_xblock(p->wl, &p->x, src, nb, rows, gates, xbuf);
      for (j = 0; j < nb; ++j) {
        int16_t *gt = gates + j * rows;
        const int32_t sp = p->h.sp_cnt != 0;
        uint32_t fh = 0;
        const void *rowh = sp ? (const void *)hb : tinyc_rnn_row(hb, n, p->wl, hbuf, &fh);
        if (sp) {
          tinyc_rnn_spgates(&p->h, hb, 0, 2 * n4, gt, 1); /* z, r */
        } else {
          tinyc_rnn_gates(p->wl, &p->h, rowh, fh, 0, 2 * n4, gt, 1);
        }
        if (p->linear_before_reset) {
          if (sp) {
            tinyc_rnn_spgates(&p->h, hb, 2 * n4, n4, hh, 0);
          } else {
            tinyc_rnn_gates(p->wl, &p->h, rowh, fh, 2 * n4, n4, hh, 0);
          }
          u = 0;
#if TINYC_MVE
          if (p->reset_shift < 0) {
            for (; u < n; u += 4) {
              const int32x4_t r = tinyc_sigmoid16_v(vldrhq_s32(gt + n4 + u), p->table);
              int32x4_t v = tinyc_sat16_v(tinyc_rq_v(vmulq_s32(r, vldrhq_s32(hh + u)),
                                                     p->reset_mult, p->reset_shift));
              v = tinyc_sat16_v(vaddq_s32(v, vldrhq_s32(gt + 2 * n4 + u)));
              vstrhq_s32(gt + 2 * n4 + u, v);
            }
          }
#endif
          for (; u < n; ++u) {
            const int32_t r = tinyc_sigmoid16(gt[n4 + u], p->table);
            int32_t v = tinyc_rnn_rq(r * hh[u], p->reset_mult, p->reset_shift);
            v = TINYC_SAT16(v) + gt[2 * n4 + u];
            gt[2 * n4 + u] = (int16_t)TINYC_SAT16(v);
          }
        } else {
          uint32_t fr;
          const void *rowr;
          const int32_t lo = -128 - p->h_zp, hi = 127 - p->h_zp;
          u = 0;
#if TINYC_MVE
          if (p->reset_shift < 0) {
            for (; u < n; u += 4) {
              const mve_pred16_t in = vctp32q((uint32_t)(n - u));
              const int32x4_t r = tinyc_sigmoid16_v(vldrhq_s32(gt + n4 + u), p->table);
              const int32x4_t hc = vsubq_n_s32(vldrbq_z_s32(hb + u, in), p->h_zp);
              int32x4_t v = tinyc_rq_v(vmulq_s32(r, hc), p->reset_mult, p->reset_shift);
              v = vminq_s32(vmaxq_s32(v, vdupq_n_s32(lo)), vdupq_n_s32(hi));
              vstrbq_s32(rh + u, vaddq_n_s32(v, p->h_zp));
            }
          }
#endif
          for (; u < n; ++u) {
            const int32_t r = tinyc_sigmoid16(gt[n4 + u], p->table);
            int32_t v = tinyc_rnn_rq(r * (hb[u] - p->h_zp), p->reset_mult, p->reset_shift);
            v = v < lo ? lo : (v > hi ? hi : v);
            rh[u] = (int8_t)(v + p->h_zp);
          }
          if (sp) {
            tinyc_rnn_spgates(&p->h, rh, 2 * n4, n4, gt + 2 * n4, 1);
          } else {
            rowr = tinyc_rnn_row(rh, n, p->wl, hbuf, &fr);
            tinyc_rnn_gates(p->wl, &p->h, rowr, fr, 2 * n4, n4, gt + 2 * n4, 1);
          }
        }
        u = 0;
#if TINYC_MVE
        if (p->keep_shift < 0 && p->update_shift < 0) {
          for (; u < n; u += 4) {
            const mve_pred16_t in = vctp32q((uint32_t)(n - u));
            const int32x4_t z = tinyc_sigmoid16_v(vldrhq_s32(gt + u), p->table);
            const int32x4_t cand = tinyc_tanh16_v(vldrhq_s32(gt + 2 * n4 + u), 3, 0, p->table);
            const int32x4_t hc = vsubq_n_s32(vldrbq_z_s32(hb + u, in), p->h_zp);
            const int32x4_t keep = tinyc_rq_v(vmulq_s32(vsubq_s32(vdupq_n_s32(32768), z), cand),
                                              p->keep_mult, p->keep_shift);
            const int32x4_t upd = tinyc_rq_v(vmulq_s32(z, hc), p->update_mult, p->update_shift);
            int32x4_t v = vaddq_n_s32(vaddq_s32(keep, upd), p->h_zp);
            v = vminq_s32(vmaxq_s32(v, vdupq_n_s32(-128)), vdupq_n_s32(127));
            vstrbq_p_s32(hb + u, v, in);
          }
        }
#endif
        for (; u < n; ++u) {
          const int32_t z = tinyc_sigmoid16(gt[u], p->table);
          const int32_t cand = tinyc_tanh16(gt[2 * n4 + u], 3, 0, p->table);
          const int32_t keep = tinyc_rnn_rq((32768 - z) * cand, p->keep_mult, p->keep_shift);
          const int32_t upd =
              tinyc_rnn_rq(z * (hb[u] - p->h_zp), p->update_mult, p->update_shift);
          const int32_t v = keep + upd + p->h_zp;
          hb[u] = (int8_t)TINYC_SAT8(v);
        }
        if (y) memcpy(y + at[j] * n, hb, (size_t)n);
      }
    }
  }
}

TINYC_INLINE void tinyc_rnn_s8(const tinyc_rnn_t *p, const int8_t *x, int8_t *y, int8_t *h, void *scratch) {
  const int32_t n = p->hidden, n4 = (n + 3) & ~3;
  const int32_t blk = tinyc_rnn_block(p->wl);
  int16_t *pre = (int16_t *)scratch; /* per step of a block */
  uint8_t *xbuf = (uint8_t *)(pre + blk * n4);
  uint8_t *hbuf = xbuf + TINYC_RNN_XROW_SCRATCH(p->input);
  const int32_t relu = p->activation == 2; /* relu: pre-activations at the state's scale */
  int32_t b, s0, j, u;
  for (b = 0; b < p->batch; ++b) {
    int8_t *hb = h + b * n;
    for (s0 = 0; s0 < p->steps; s0 += blk) {
      const int8_t *src[3];
      int32_t at[3];
      const int32_t nb = tinyc_rnn_block_rows(p->time_major, p->batch, p->steps, p->reverse, b,
                                              s0, p->steps - s0 < blk ? p->steps - s0 : blk,
                                              x, p->input, src, at);
      tinyc_rnn_xblock(p->wl, &p->x, src, nb, n4, pre, xbuf);
      for (j = 0; j < nb; ++j) {
        int16_t *pt = pre + j * n4;
        if (p->h.sp_cnt) {
          tinyc_rnn_spgates(&p->h, hb, 0, n4, pt, 1);
        } else {
          uint32_t fh;
          const void *rh = tinyc_rnn_row(hb, n, p->wl, hbuf, &fh);
          tinyc_rnn_gates(p->wl, &p->h, rh, fh, 0, n4, pt, 1);
        }
        u = 0;
#if TINYC_MVE
        if (relu || p->out_shift < 0) {
          for (; u < n; u += 4) {
            const mve_pred16_t in = vctp32q((uint32_t)(n - u));
            const int32x4_t pre = vldrhq_s32(pt + u);
            int32x4_t v;
            if (relu) {
              v = vmaxq_s32(vaddq_n_s32(pre, p->h_zp), vdupq_n_s32(p->h_zp));
            } else {
              const int32x4_t a = p->activation == 0 ? tinyc_tanh16_v(pre, 3, 0, p->table)
                                                     : tinyc_sigmoid16_v(pre, p->table);
              v = vaddq_n_s32(tinyc_rq_v(a, p->out_mult, p->out_shift), p->h_zp);
              v = vmaxq_s32(v, vdupq_n_s32(-128));
            }
            v = vminq_s32(v, vdupq_n_s32(127));
            vstrbq_p_s32(hb + u, v, in);
          }
        }
#endif
        for (; u < n; ++u) {
          int32_t v;
          if (relu) {
            v = pt[u] + p->h_zp;
            v = v < p->h_zp ? p->h_zp : (v > 127 ? 127 : v);
          } else {
            const int32_t a = p->activation == 0 ? tinyc_tanh16(pt[u], 3, 0, p->table)
                                                 : tinyc_sigmoid16(pt[u], p->table);
            v = tinyc_rnn_rq(a, p->out_mult, p->out_shift) + p->h_zp;
            v = TINYC_SAT8(v);
          }
          hb[u] = (int8_t)v;
        }
        if (y) memcpy(y + at[j] * n, hb, (size_t)n);
      }
    }
  }
}

#endif
