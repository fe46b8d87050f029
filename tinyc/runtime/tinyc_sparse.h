/* Sparse int8 matrix kernels: FULLY_CONNECTED and CONV_2D over weights stored without their
 * zeros (tinyc's backend picks them per layer when its cost model says they run faster than
 * the dense kernels of tinyc_nn.h on the target core).
 *
 * Encoding (grouped by output channel): the k columns of a weight row are cut into segments
 * of TINYC_SP_SEG (255) columns. For each output channel c and segment s, in that order:
 *   cnt[c * nseg + s]  the number of nonzero weights of the segment (uint8, 0..255),
 * and, concatenated in the same order over every channel and segment,
 *   idx[]  each nonzero's column within its segment (uint8, 0..254),
 *   val[]  the nonzero weights (int8).
 * So a row of n nonzeros costs 2n bytes plus one byte per segment; a layer whose every
 * weight is nonzero would cost twice the dense bytes (the backend never picks that).
 *
 * The arithmetic is the dense kernels': rows hold raw int8 inputs, the input zero point is
 * folded into the bias (-zp * sum(w), sum over the nonzeros, which is the same sum), and
 * every product of a skipped zero weight is zero, so the int32 accumulators and hence the
 * requantized outputs are bit-exact with the dense computation of the same weights.
 * Requantization records per channel {bias, multiplier, shift} (as tinyc_nn.h's channel
 * records: `right_only` => positive right-shift amounts).
 *
 * Per nonzero: a column byte, a weight byte, an input byte and a multiply-accumulate
 * (ARMv7-M: weights eight at a time through SXTB16 and SMLABB/SMLATB); Helium: sixteen
 * nonzeros per gather load (VLDRB with byte offsets) and VMLADAVA.
 */
#ifndef TINYC_SPARSE_H
#define TINYC_SPARSE_H

#include <stdint.h>
#include <string.h>

#include "tinyc_nn.h"

#define TINYC_SP_SEG 255

/* Rows a sparse convolution takes per block of output pixels (one decode of a channel's
 * nonzeros serves every row of the block). */
#if TINYC_MVE
#define TINYC_SP_ROWS 4
#elif TINYC_DSP
#define TINYC_SP_ROWS 4 /* (measured: fewer instructions than two, spills and all) */
#else
#define TINYC_SP_ROWS 2
#endif

/* acc + x[idx[j]] * val[j] over the n nonzeros of one segment (one row) at *pidx / *pval,
 * both left pointing past them. */
TINYC_INLINE int32_t tinyc_sp_dotp(const int8_t *x, const uint8_t **pidx, const int8_t **pval,
                                   int32_t n, int32_t acc) {
  const uint8_t *idx = *pidx;
  const int8_t *val = *pval;
#if TINYC_MVE
  *pidx = idx + n;
  *pval = val + n;
  while (n > 0) {
    const mve_pred16_t p = vctp8q((uint32_t)n);
    const uint8x16_t o = vldrbq_z_u8(idx, p);
    const int8x16_t w = vldrbq_z_s8(val, p);
    const int8x16_t v = vldrbq_gather_offset_z_s8(x, o, p);
    acc = vmladavaq_s8(acc, v, w);
    idx += 16;
    val += 16;
    n -= 16;
  }
  return acc;
#elif TINYC_DSP
  /* eight, then four at a time: words of weights through SXTB16 into SMLABB / SMLATB,
   * every load post-indexed (32 instructions per eight; four registers, so that the
   * callers' pointers stay in registers), then the n % 4 last ones one at a time */
  int32_t q;
#if defined(__thumb2__)
#define TINYC_SP_MAC4                      \
  "ldr %[wv], [%[val]], #4\n\t"            \
  "ldrb %[a], [%[idx]], #1\n\t"            \
  "sxtb16 %[we], %[wv]\n\t"                \
  "ldrsb %[a], [%[x], %[a]]\n\t"           \
  "sxtb16 %[wv], %[wv], ror #8\n\t"        \
  "smlabb %[acc], %[we], %[a], %[acc]\n\t" \
  "ldrb %[a], [%[idx]], #1\n\t"            \
  "ldrsb %[a], [%[x], %[a]]\n\t"           \
  "smlabb %[acc], %[wv], %[a], %[acc]\n\t" \
  "ldrb %[a], [%[idx]], #1\n\t"            \
  "ldrsb %[a], [%[x], %[a]]\n\t"           \
  "smlatb %[acc], %[we], %[a], %[acc]\n\t" \
  "ldrb %[a], [%[idx]], #1\n\t"            \
  "ldrsb %[a], [%[x], %[a]]\n\t"           \
  "smlatb %[acc], %[wv], %[a], %[acc]\n\t"
#define TINYC_SP_ASM(code)                                                                  \
  do {                                                                                      \
    uint32_t wv, we, a;                                                                     \
    __asm__(code                                                                            \
            : [acc] "+r"(acc), [idx] "+r"(idx), [val] "+r"(val), [wv] "=&r"(wv),            \
              [we] "=&r"(we), [a] "=&r"(a)                                                  \
            : [x] "r"(x), "m"(*(const int8_t(*)[])x), "m"(*(const uint8_t(*)[])idx),        \
              "m"(*(const int8_t(*)[])val));                                                \
  } while (0)
#pragma GCC unroll 1
  for (q = n >> 3; q > 0; --q) {
    TINYC_SP_ASM(TINYC_SP_MAC4 TINYC_SP_MAC4);
  }
  if (n & 4) TINYC_SP_ASM(TINYC_SP_MAC4);
#undef TINYC_SP_ASM
#undef TINYC_SP_MAC4
#else
#pragma GCC unroll 1
  for (q = n >> 2; q > 0; --q) {
    const uint32_t wv = tinyc_load4(val);
    const int32_t we = tinyc_sxtb16(wv), wo = tinyc_sxtb16_ror8(wv);
    acc = (int32_t)__smlabb(we, x[idx[0]], acc);
    acc = (int32_t)__smlabb(wo, x[idx[1]], acc);
    acc = (int32_t)__smlatb(we, x[idx[2]], acc);
    acc = (int32_t)__smlatb(wo, x[idx[3]], acc);
    idx += 4;
    val += 4;
  }
#endif
  if (n & 2) {
    acc += x[*idx++] * *val++;
    acc += x[*idx++] * *val++;
  }
  if (n & 1) acc += x[*idx++] * *val++;
  *pidx = idx;
  *pval = val;
  return acc;
#else
  for (; n >= 2; n -= 2, idx += 2, val += 2) {
    acc += x[idx[0]] * val[0];
    acc += x[idx[1]] * val[1];
  }
  if (n) acc += x[*idx++] * *val++;
  *pidx = idx;
  *pval = val;
  return acc;
#endif
}

/* acc + x[idx[j]] * val[j] over n nonzeros of one segment (one row). */
TINYC_INLINE int32_t tinyc_sp_dot1(const int8_t *x, const uint8_t *idx, const int8_t *val,
                                   int32_t n, int32_t acc) {
  return tinyc_sp_dotp(x, &idx, &val, n, acc);
}

/* The matrix core: `nrows` rows (1 or TINYC_SP_ROWS, pointers; repeats allowed) of k int8
 * values times the sparse weights of out_c channels, requantized into out[r][c]. */
TINYC_INLINE void tinyc_spmm_s8(const int8_t *const *rows, int32_t nrows, int32_t k,
                                int32_t out_c, const uint8_t *cnt, const uint8_t *idx,
                                const int8_t *val, const int32_t *q, int32_t zp, int32_t lo,
                                int32_t hi, int32_t right_only, int8_t *const *out) {
  const int32_t nseg = (k + TINYC_SP_SEG - 1) / TINYC_SP_SEG;
  int32_t c, s, r;
#pragma GCC unroll 1
  for (c = 0; c < out_c; ++c, q += 3) {
    int32_t acc[TINYC_SP_ROWS];
    for (r = 0; r < TINYC_SP_ROWS; ++r) acc[r] = q[0];
    for (s = 0; s < nseg; ++s) {
      const int32_t n = *cnt++;
      const int32_t off = s * TINYC_SP_SEG;
      if (nrows == 1) {
#if TINYC_MVE /* (stepping here measured ~3 instructions a row fewer on Helium) */
        acc[0] = tinyc_sp_dot1(rows[0] + off, idx, val, n, acc[0]);
        idx += n;
        val += n;
#else /* (the dot product steps idx and val past the segment) */
        acc[0] = tinyc_sp_dotp(rows[0] + off, &idx, &val, n, acc[0]);
#endif
        continue;
      }
#if TINYC_MVE
      for (r = 0; r < nrows; ++r) acc[r] = tinyc_sp_dot1(rows[r] + off, idx, val, n, acc[r]);
#else
      {
        /* one decode of each nonzero for every row of the block */
        const int8_t *x0 = rows[0] + off, *x1 = rows[1] + off;
#if TINYC_SP_ROWS > 2
        const int8_t *x2 = rows[2] + off, *x3 = rows[3] + off;
#endif
        int32_t j;
#pragma GCC unroll 2
        for (j = 0; j < n; ++j) {
          const int32_t i = idx[j], w = val[j];
          acc[0] += x0[i] * w;
          acc[1] += x1[i] * w;
#if TINYC_SP_ROWS > 2
          acc[2] += x2[i] * w;
          acc[3] += x3[i] * w;
#endif
        }
      }
#endif
      idx += n;
      val += n;
    }
    for (r = 0; r < nrows; ++r) {
      out[r][c] = (int8_t)tinyc_rq_s8(acc[r], q[1], q[2], zp, lo, hi, right_only);
    }
  }
}

/* FULLY_CONNECTED over `rows` rows of k int8 values, rows read in place (no scratch). Rows
 * go in blocks of TINYC_SP_ROWS; a short last block repeats its last row, except a lone
 * one, which takes the one-row path. */
TINYC_INLINE void tinyc_spfc_s8(const int8_t *in, int32_t rows, int32_t k, int32_t out_c,
                                const uint8_t *cnt, const uint8_t *idx, const int8_t *val,
                                const int32_t *q, int32_t zp, int32_t lo, int32_t hi,
                                int32_t right_only, int8_t *out) {
  int32_t r, j;
  for (r = 0; r < rows; r += TINYC_SP_ROWS) {
    const int32_t left = rows - r;
    const int8_t *src[TINYC_SP_ROWS];
    int8_t *dst[TINYC_SP_ROWS];
    for (j = 0; j < TINYC_SP_ROWS; ++j) {
      const int32_t row = j < left ? r + j : rows - 1;
      src[j] = in + row * k;
      dst[j] = out + row * out_c;
    }
    tinyc_spmm_s8(src, left == 1 ? 1 : TINYC_SP_ROWS, k, out_c, cnt, idx, val, q, zp, lo, hi,
                  right_only, dst);
  }
}

/* CONV_2D, one image (NHWC), or one group of a grouped convolution (as tinyc_conv_s8:
 * in_c / out_c channels of pixels in_cs / out_cs channels apart; output pixels [p0, p1)
 * written from `out` on). direct: a 1x1 unpadded kernel whose rows are the input pixels;
 * otherwise receptive fields are gathered into scratch (TINYC_SP_ROWS * k bytes). */
TINYC_INLINE void tinyc_spconv_s8(const int8_t *in, int32_t in_h, int32_t in_w, int32_t in_c,
                                  int32_t in_cs, int32_t out_w, int32_t out_c, int32_t out_cs,
                                  int32_t k_h, int32_t k_w, int32_t s_h, int32_t s_w,
                                  int32_t dil_h, int32_t dil_w, int32_t pad_t, int32_t pad_l,
                                  int32_t in_zp, int32_t direct, const uint8_t *cnt,
                                  const uint8_t *idx, const int8_t *val, const int32_t *q,
                                  int32_t zp, int32_t lo, int32_t hi, int32_t right_only,
                                  int32_t p0, int32_t p1, int8_t *out, void *scratch) {
  const int32_t k = k_h * k_w * in_c;
  int32_t p, j;
  out -= p0 * out_cs;
  for (p = p0; p < p1; p += TINYC_SP_ROWS) {
    const int32_t left = p1 - p;
    const int32_t n = left == 1 ? 1 : TINYC_SP_ROWS;
    const int8_t *src[TINYC_SP_ROWS];
    int8_t *dst[TINYC_SP_ROWS];
    for (j = 0; j < n; ++j) {
      const int32_t jj = j < left ? j : left - 1; /* a short block repeats its last pixel */
      const int32_t pix = p + jj;
      const int32_t oy = pix / out_w, ox = pix % out_w;
      dst[j] = out + pix * out_cs;
      if (direct) {
        src[j] = in + (oy * s_h * in_w + ox * s_w) * in_cs;
      } else {
        int8_t *gather = (int8_t *)scratch + jj * k;
        if (j == jj) {
          tinyc_im2col_s8(in, in_h, in_w, in_c, in_cs, k_h, k_w, dil_h, dil_w,
                          oy * s_h - pad_t, ox * s_w - pad_l, in_zp, k, gather);
        }
        src[j] = gather;
      }
    }
    tinyc_spmm_s8(src, n, k, out_c, cnt, idx, val, q, zp, lo, hi, right_only, dst);
  }
}

/* ---- grouped encoding: TINYC_SP_GROUP output channels share their nonzero columns ----
 *
 * For weights pruned in blocks of TINYC_SP_GROUP consecutive output channels (tinyc's
 * `--prune-block 4`, or any matrix whose channel groups have few columns in common): the
 * channels go in groups of four (a short last group padded with zero channels), and for
 * each group g and segment s, in that order:
 *   cnt[g * nseg + s]  the number of columns where some channel of the group is nonzero,
 * then, in the same order, idx[] each such column (uint8, within its segment) and val[] its
 * four weights (int8, channel 4g first). A column costs 5 bytes for 4 weights; one input
 * byte serves four multiply-accumulates (ARMv7-M: one word of weights through two SXTB16
 * into SMLABB / SMLATB, 9 instructions per column; Helium: VLDRB.S32 + VMLA.S32).
 * Weights that are zero inside a kept column are stored as zeros: the arithmetic is the
 * dense computation's, bit for bit, as for the per-channel encoding above. */
#define TINYC_SP_GROUP 4

/* acc[0..3] + x[idx[j]] * val[4j..4j+3] over n columns at *pidx / *pval (stepped past). */
TINYC_INLINE void tinyc_spg_dot(const int8_t *x, const uint8_t **pidx, const int8_t **pval,
                                int32_t n, int32_t *acc) {
  const uint8_t *idx = *pidx;
  const int8_t *val = *pval;
#if TINYC_MVE
  int32x4_t a = vldrwq_s32(acc);
  int32_t j;
  for (j = 0; j < n; ++j) a = vmlaq_n_s32(a, vldrbq_s32(val + 4 * j), x[idx[j]]);
  vstrwq_s32(acc, a);
  idx += n;
  val += 4 * n;
#elif TINYC_DSP && defined(__thumb2__)
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
  int32_t j;
#define TINYC_SPG_COL                     \
  "ldrb %[a], [%[idx]], #1\n\t"           \
  "ldr %[wv], [%[val]], #4\n\t"           \
  "ldrsb %[a], [%[x], %[a]]\n\t"          \
  "sxtb16 %[we], %[wv]\n\t"               \
  "sxtb16 %[wv], %[wv], ror #8\n\t"       \
  "smlabb %[a0], %[we], %[a], %[a0]\n\t"  \
  "smlabb %[a1], %[wv], %[a], %[a1]\n\t"  \
  "smlatb %[a2], %[we], %[a], %[a2]\n\t"  \
  "smlatb %[a3], %[wv], %[a], %[a3]\n\t"
#define TINYC_SPG_ASM(code)                                                                 \
  do {                                                                                      \
    uint32_t wv, we, a;                                                                     \
    __asm__(code                                                                            \
            : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [idx] "+r"(idx),  \
              [val] "+r"(val), [wv] "=&r"(wv), [we] "=&r"(we), [a] "=&r"(a)                 \
            : [x] "r"(x)                                                                    \
            : "memory"); /* (no "m" operands: ten registers are already taken) */          \
  } while (0)
#pragma GCC unroll 1
  for (j = n >> 1; j > 0; --j) TINYC_SPG_ASM(TINYC_SPG_COL TINYC_SPG_COL);
  if (n & 1) TINYC_SPG_ASM(TINYC_SPG_COL);
#undef TINYC_SPG_ASM
#undef TINYC_SPG_COL
  acc[0] = a0;
  acc[1] = a1;
  acc[2] = a2;
  acc[3] = a3;
#else
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
  for (; n > 0; --n, val += 4) {
    const int32_t v = x[*idx++];
    a0 += v * val[0];
    a1 += v * val[1];
    a2 += v * val[2];
    a3 += v * val[3];
  }
  acc[0] = a0;
  acc[1] = a1;
  acc[2] = a2;
  acc[3] = a3;
#endif
  *pidx = idx;
  *pval = val;
}

/* FULLY_CONNECTED over `rows` rows of k int8 values with grouped sparse weights (above);
 * requantization records per channel as tinyc_spfc_s8's. */
TINYC_INLINE void tinyc_spfcg_s8(const int8_t *in, int32_t rows, int32_t k, int32_t out_c,
                                 const uint8_t *cnt0, const uint8_t *idx0, const int8_t *val0,
                                 const int32_t *q0, int32_t zp, int32_t lo, int32_t hi,
                                 int32_t right_only, int8_t *out) {
  const int32_t nseg = (k + TINYC_SP_SEG - 1) / TINYC_SP_SEG;
  int32_t r, c, s, j;
  for (r = 0; r < rows; ++r, in += k, out += out_c) {
    const uint8_t *cnt = cnt0, *idx = idx0;
    const int8_t *val = val0;
    const int32_t *q = q0;
#pragma GCC unroll 1
    for (c = 0; c < out_c; c += TINYC_SP_GROUP) {
      const int32_t nch = out_c - c < TINYC_SP_GROUP ? out_c - c : TINYC_SP_GROUP;
      int32_t acc[TINYC_SP_GROUP];
      for (j = 0; j < TINYC_SP_GROUP; ++j) acc[j] = j < nch ? q[3 * j] : 0;
      for (s = 0; s < nseg; ++s) tinyc_spg_dot(in + s * TINYC_SP_SEG, &idx, &val, *cnt++, acc);
      for (j = 0; j < nch; ++j, q += 3) {
        out[c + j] = (int8_t)tinyc_rq_s8(acc[j], q[1], q[2], zp, lo, hi, right_only);
      }
    }
  }
}

#endif /* TINYC_SPARSE_H */
