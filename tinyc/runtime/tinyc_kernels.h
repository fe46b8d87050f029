/* tinyc's int8 kernels: parameters are computed at compile time by tinyc and baked into
 * the generated model as constants. Every kernel is bit-exact with TFLite Micro. */
#ifndef TINYC_KERNELS_H
#define TINYC_KERNELS_H

#include <stdint.h>

/* Per-output-channel requantization (multipliers/shifts from TFLM's formulas). */
typedef struct {
  const int32_t *bias;  /* includes -input_zero_point * sum(weights) of the channel */
  const int32_t *mult;
  const int32_t *shift;
  int32_t out_zp;
  int32_t act_min, act_max;
} tinyc_requant_t;

typedef struct {
  uint16_t in_h, in_w, in_c;
  uint16_t out_h, out_w, out_c;
  uint8_t k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_t, pad_l;
  int32_t in_zp; /* the raw value that stands for padding */
} tinyc_window_t;

/* DEPTHWISE_CONV_2D for any depth multiplier (the common multiplier 1 is in tinyc_nn.h),
 * weights 1HW(C*M), out_c = in_c * depth multiplier. */
void tinyc_depthwise_s8(const tinyc_window_t *p, const tinyc_requant_t *q, const int8_t *in,
                        const int8_t *w, int8_t *out);

/* AVERAGE_POOL_2D / MAX_POOL_2D (k_h, k_w = filter; in_c == out_c). */
void tinyc_avgpool_s8(const tinyc_window_t *p, int32_t act_min, int32_t act_max,
                      const int8_t *in, int8_t *out);
void tinyc_maxpool_s8(const tinyc_window_t *p, int32_t act_min, int32_t act_max,
                      const int8_t *in, int8_t *out);

/* Broadcasting over up to 5 dimensions: element strides (0 = broadcast) of each input. */
typedef struct {
  int32_t shape[5];
  int32_t stride_a[5];
  int32_t stride_b[5];
} tinyc_bcast_t;

/* The loops of a broadcasting binary kernel: for every output in order, `*out++ = ELEM(xv,
 * yv)` with xv, yv the two int8 operands at that position (x strided by b->stride_a, y by
 * b->stride_b). ELEM is a function-like macro of the kernel; `out` is advanced. */
#define TINYC_BCAST_EACH(b, x, y, out, ELEM)                                                  \
  do {                                                                                       \
    int32_t i0_, i1_, i2_, i3_, i4_;                                                         \
    for (i0_ = 0; i0_ < (b)->shape[0]; ++i0_)                                                \
      for (i1_ = 0; i1_ < (b)->shape[1]; ++i1_)                                              \
        for (i2_ = 0; i2_ < (b)->shape[2]; ++i2_)                                            \
          for (i3_ = 0; i3_ < (b)->shape[3]; ++i3_) {                                        \
            const int8_t *xr_ = (x) + i0_ * (b)->stride_a[0] + i1_ * (b)->stride_a[1] +      \
                                i2_ * (b)->stride_a[2] + i3_ * (b)->stride_a[3];             \
            const int8_t *yr_ = (y) + i0_ * (b)->stride_b[0] + i1_ * (b)->stride_b[1] +      \
                                i2_ * (b)->stride_b[2] + i3_ * (b)->stride_b[3];             \
            const int32_t sa_ = (b)->stride_a[4], sb_ = (b)->stride_b[4];                    \
            for (i4_ = 0; i4_ < (b)->shape[4]; ++i4_) {                                      \
              *(out)++ = ELEM((int32_t)xr_[i4_ * sa_], (int32_t)yr_[i4_ * sb_]);             \
            }                                                                                \
          }                                                                                  \
  } while (0)

typedef struct {
  int32_t a_zp, b_zp, out_zp;
  int32_t left_shift;
  int32_t a_mult, a_shift, b_mult, b_shift, out_mult, out_shift;
  int32_t act_min, act_max;
} tinyc_addsub_t;

/* ADD (sign = 1) and SUB (sign = -1). */
void tinyc_addsub_s8(const tinyc_bcast_t *b, const tinyc_addsub_t *p, int32_t sign,
                     const int8_t *x, const int8_t *y, int8_t *out);

typedef struct {
  int32_t a_zp, b_zp, out_zp;
  int32_t mult, shift;
  int32_t act_min, act_max;
} tinyc_mul_t;

void tinyc_mul_s8(const tinyc_bcast_t *b, const tinyc_mul_t *p, const int8_t *x,
                  const int8_t *y, int8_t *out);

/* Any int8 -> int8 elementwise function, as a 256-entry table indexed by (uint8)x. */
void tinyc_lut_s8(int32_t n, const int8_t *table, const int8_t *in, int8_t *out);

/* SOFTMAX over rows of `depth`; exp_table[d] = exp of the rescaled difference -d (Q0.31),
 * for d in [0, 255]; entries past diff_min are 0. */
void tinyc_softmax_s8(int32_t rows, int32_t depth, const int32_t *exp_table, const int8_t *in,
                      int8_t *out);
void tinyc_softmax_s8_s16(int32_t rows, int32_t depth, const int32_t *exp_table,
                          const int8_t *in, int16_t *out);

/* MEAN: input viewed as [outer][reduce][inner]; multiplier includes 1/count. */
typedef struct {
  int32_t outer, reduce, inner;
  int32_t in_zp, out_zp, mult, shift;
} tinyc_mean_t;

void tinyc_mean_s8(const tinyc_mean_t *p, const int8_t *in, int8_t *out);

/* Data movement on raw bytes. */
void tinyc_copy_blocks(int32_t outer, int32_t block, int32_t src_stride, int32_t dst_stride,
                       const void *src, void *dst);
void tinyc_pad(int32_t rank, const int32_t *in_shape, const int32_t *before,
               const int32_t *out_shape, int32_t elem, const void *value, const void *in,
               void *out);
void tinyc_transpose(int32_t rank, const int32_t *out_shape, const int32_t *in_strides,
                     int32_t elem, const void *in, void *out);

/* QUANTIZE float -> int8 and DEQUANTIZE int8 -> float. */
void tinyc_quantize_f32_s8(int32_t n, float scale, int32_t zp, const float *in, int8_t *out);
void tinyc_dequantize_s8_f32(int32_t n, float scale, int32_t zp, const int8_t *in, float *out);
/* QUANTIZE between int8 / int16 / int32 (element sizes in bytes), clamped to [lo, hi]. */
void tinyc_requantize(int32_t n, int32_t in_bytes, int32_t out_bytes, int32_t in_zp,
                      int32_t out_zp, int32_t mult, int32_t shift, int32_t lo, int32_t hi,
                      const void *in, void *out);

/* SVDF (TFLM's integer kernel): the state shifts, the feature product fills its newest
 * column, the time weights reduce each filter's memory, filters sum per unit. */
typedef struct {
  int32_t batch, input, filters, units, memory, rank;
  int32_t state_bytes; /* 1: int8 state and time weights, 2: int16 */
  int32_t input_zp, state_zp, output_zp;
  int32_t mult1, shift1, mult2, shift2;
  const int8_t *w_feature; /* [filters][input] */
  const void *w_time;      /* [filters][memory], int8 or int16 */
  const int32_t *bias;     /* [units] or 0 */
} tinyc_svdf_t;

void tinyc_svdf_s8(const tinyc_svdf_t *p, const int8_t *in, void *state, int8_t *out,
                   int32_t *scratch);

/* Box copies by byte strides (may be negative), `run` contiguous bytes per element of
 * `shape`; rank <= 6. STRIDED_SLICE reads a strided box into a dense one. */
void tinyc_copy_box(int32_t rank, const int32_t *shape, const int32_t *src_strides,
                    const int32_t *dst_strides, int32_t run, const void *src, void *dst);

/* DYNAMIC_UPDATE_SLICE: out = operand (no copy when out == operand), then the dense
 * update box of `shape` runs written at out + start with the output's byte strides. */
void tinyc_update_slice(int32_t rank, const int32_t *shape, const int32_t *dst_strides,
                        int32_t run, int32_t operand_bytes, int32_t start,
                        const void *operand, const void *update, void *out);

/* GATHER along one axis: [outer][axis][inner] -> [outer][positions][inner] (bytes), the
 * positions given as runs of consecutive ones: (first, count) pairs. */
void tinyc_gather(int32_t outer, int32_t axis_bytes, int32_t n_runs, const int32_t *runs,
                  int32_t inner_bytes, const void *in, void *out);

/* PRELU: input rescaled where >= 0, input times (alpha - alpha_zp) rescaled below. */
typedef struct {
  int32_t in_zp, alpha_zp, out_zp;
  int32_t mult1, shift1, mult2, shift2;
} tinyc_prelu_t;

void tinyc_prelu_s8(const tinyc_bcast_t *b, const tinyc_prelu_t *p, const int8_t *x,
                    const int8_t *alpha, int8_t *out);

/* DIV: recip / recip_shift hold GetReciprocal(d, 31) for each |divisor - b_zp| = d
 * (entry 0: that of 1, tinyc's answer to a zero divisor). */
typedef struct {
  const int32_t *recip;
  const int8_t *recip_shift;
  int32_t a_zp, b_zp, out_zp;
  int32_t mult, shift;
  int32_t act_min, act_max;
} tinyc_div_t;

void tinyc_div_s8(const tinyc_bcast_t *b, const tinyc_div_t *p, const int8_t *x,
                  const int8_t *y, int8_t *out);

/* TRANSPOSE_CONV, one batch: filter OHWI with in_c / groups input channels; q->bias holds
 * the plain int32 bias (zeros when the layer has none). */
typedef struct {
  uint16_t in_h, in_w, in_c, out_h, out_w, out_c;
  uint16_t k_h, k_w, stride_h, stride_w, pad_t, pad_l, groups;
  int32_t in_zp;
} tinyc_tconv_t;

void tinyc_transpose_conv_s8(const tinyc_tconv_t *p, const tinyc_requant_t *q,
                             const int8_t *in, const int8_t *w, int8_t *out);

/* ---- RESIZE_NEAREST_NEIGHBOR, RESIZE_BILINEAR (resize.c) ---- */

/* Output pixel (y, x) of each batch is input pixel (ys[y], xs[x]): pixel_bytes copied. */
void tinyc_resize_nearest(int32_t batches, int32_t in_h, int32_t in_w, int32_t out_h,
                          int32_t out_w, int32_t pixel_bytes, const int32_t *ys,
                          const int32_t *xs, const void *in, void *out);

/* TFLM's int8 bilinear (10-bit weights): per output row (y0, y1, w1) in ytab and per output
 * column (x0, x1, w1) in xtab; the first position weighs 1024 - w1. */
void tinyc_resize_bilinear_s8(int32_t batches, int32_t in_h, int32_t in_w, int32_t out_h,
                              int32_t out_w, int32_t depth, const int32_t *ytab,
                              const int32_t *xtab, const int8_t *in, int8_t *out);

/* ---- MAXIMUM/MINIMUM, SQUARED_DIFFERENCE, comparisons, logical ops, SELECT_V2, ADD_N
 * (binary_s8.c); broadcasting as tinyc_bcast_t ---- */

void tinyc_minmax_s8(const tinyc_bcast_t *b, int32_t is_max, const int8_t *x, const int8_t *y,
                     int8_t *out);

typedef struct {
  int32_t a_zp, b_zp, out_zp;
  int32_t left_shift;
  int32_t a_mult, a_shift, b_mult, b_shift, out_mult, out_shift;
} tinyc_sqdiff_t;

void tinyc_sqdiff_s8(const tinyc_bcast_t *b, const tinyc_sqdiff_t *p, const int8_t *x,
                     const int8_t *y, int8_t *out);

typedef struct {
  int32_t left_shift;
  int32_t a_zp, a_mult, a_shift;
  int32_t b_zp, b_mult, b_shift;
} tinyc_compare_t;

/* op: 0 ==, 1 !=, 2 >, 3 >=, 4 <, 5 <=; out: bools (one byte, 0 or 1). */
void tinyc_compare_s8(const tinyc_bcast_t *b, const tinyc_compare_t *p, int32_t op,
                      const int8_t *x, const int8_t *y, uint8_t *out);

/* op: 0 LOGICAL_AND, 1 LOGICAL_OR; tinyc_logical_not: n values. */
void tinyc_logical(const tinyc_bcast_t *b, int32_t op, const uint8_t *x, const uint8_t *y,
                   uint8_t *out);
void tinyc_logical_not(int32_t n, const uint8_t *x, uint8_t *out);

/* Broadcasting of three inputs (SELECT_V2: condition, x, y), element strides. */
typedef struct {
  int32_t shape[5];
  int32_t stride_c[5];
  int32_t stride_x[5];
  int32_t stride_y[5];
} tinyc_bcast3_t;

/* SELECT_V2: elements of `elem` bytes from x where the condition holds, else from y. */
void tinyc_select(const tinyc_bcast3_t *b, int32_t elem, const uint8_t *cond, const void *x,
                  const void *y, void *out);

typedef struct {
  int32_t in_zp, out_zp;
  int32_t in_mult, in_shift, out_mult, out_shift;
} tinyc_add_n_t;

/* ADD_N int8 as TFLM: the sum starts from the rescaled input offset (-zero point). */
void tinyc_add_n_s8(int32_t n_inputs, int32_t size, const int8_t *const *inputs,
                    const tinyc_add_n_t *p, int8_t *out);

/* CUMSUM int8 along the middle axis of [outer][depth][inner] (ADD_N's arithmetic). */
void tinyc_cumsum_s8(int32_t outer, int32_t depth, int32_t inner, int32_t exclusive,
                     int32_t reverse, const tinyc_add_n_t *p, const int8_t *in, int8_t *out);

/* ---- SUM, REDUCE_MAX, REDUCE_MIN, ARG_MAX, ARG_MIN (reduce_s8.c) ---- */

/* Each output element (kept axes, row-major) reduces the input elements of the reduced
 * axes; strides in elements of the input. op: 0 SUM (rescaled), 1 max, 2 min. */
typedef struct {
  int32_t kept_rank, kept_shape[6], kept_strides[6];
  int32_t red_rank, red_shape[6], red_strides[6];
  int32_t op;
  int32_t in_zp, out_zp, mult, shift, count;
} tinyc_reduce_t;

void tinyc_reduce_s8(const tinyc_reduce_t *p, const int8_t *in, int8_t *out);

/* [outer][axis][inner] -> [outer][inner] int32 positions of the first largest (is_max) or
 * smallest value. */
void tinyc_argminmax_s8(int32_t outer, int32_t axis, int32_t inner, int32_t is_max,
                        const int8_t *in, int32_t *out);

/* ---- L2_NORMALIZATION, LOG_SOFTMAX over the last axis (norm_s8.c) ---- */

void tinyc_l2norm_s8(int32_t rows, int32_t depth, int32_t in_zp, const int8_t *in, int8_t *out);

/* exp_q12[d], diff_q5[d]: TFLM's Q12 exp and Q5 difference for a difference -d to the row
 * maximum, d in [0, 255] (exp 0 below diff_min). */
typedef struct {
  const int32_t *exp_q12;
  const int32_t *diff_q5;
  int32_t diff_min;
  int32_t rev_mult, rev_shift;
} tinyc_log_softmax_t;

void tinyc_log_softmax_s8(int32_t rows, int32_t depth, const tinyc_log_softmax_t *p,
                          const int8_t *in, int8_t *out);

/* ---- MIRROR_PAD, REVERSE_V2 (take.c) ---- */

/* out[i0, i1, ...] (run bytes each) = in + offsets[i0] + offsets[shape[0] + i1] + ...: one
 * table of byte offsets per axis, concatenated; rank <= 6. */
void tinyc_take_axes(int32_t rank, const int32_t *shape, const int32_t *offsets, int32_t run,
                     const void *in, void *out);

/* ---- FILL, CAST (convert.c) ---- */

/* n copies of the elem-byte value. */
void tinyc_fill_value(int32_t n, int32_t elem, const void *value, void *out);

/* C's conversion of n values; types: 1 int8, 2 int16, 3 int32, 4 float32, 5 uint8, 6 bool. */
void tinyc_cast(int32_t n, int32_t from, int32_t to, const void *in, void *out);

/* KRONECKER_FC (tinyc/ir/ops/kronecker.py): y = sum_r (A_r (x) B_r) x without forming the
 * matrix. Per row: Z_r = X B_r^T (int16, kept as [s][rank][q] in scratch), then
 * Y = sum_r A_r Z_r (int32) + bias, requantized. scratch: rank * s * q int16. */
typedef struct {
  int32_t rows, rank, p, q, s, t;
  int32_t output_zp, inner_max, act_min, act_max, mult2, shift2;
  const int32_t *mult1, *shift1; /* [rank] */
  const int32_t *b_off;          /* [rank][s]: -input_zp * sum_l B_r[k][l] */
  const int8_t *a;               /* [p][rank][q]: A_r[i][j] at (i * rank + r) * q + j */
  const int8_t *b;               /* [rank][s][t] */
  const int32_t *bias;           /* [p * s] or 0 */
} tinyc_kron_t;

void tinyc_kron_fc_s8(const tinyc_kron_t *k, const int8_t *in, int8_t *out, int16_t *scratch);

#endif
