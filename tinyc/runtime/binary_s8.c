/* MAXIMUM/MINIMUM, SQUARED_DIFFERENCE, comparisons, LOGICAL_AND/OR/NOT, SELECT_V2 and ADD_N
 * with TFLM's int8 arithmetic, broadcasting over up to five dimensions. */
#include <string.h>

#include "tinyc_kernels.h"
#include "tinyc_simd.h"

/* The four outer loops of a broadcast; BODY runs the innermost axis with xr, yr the rows. */
#define TINYC_BCAST2(b, X, Y, ...)                                                           \
  do {                                                                                     \
    int32_t i0, i1, i2, i3, i4;                                                            \
    for (i0 = 0; i0 < (b)->shape[0]; ++i0)                                                 \
      for (i1 = 0; i1 < (b)->shape[1]; ++i1)                                               \
        for (i2 = 0; i2 < (b)->shape[2]; ++i2)                                             \
          for (i3 = 0; i3 < (b)->shape[3]; ++i3) {                                         \
            const int32_t oa = i0 * (b)->stride_a[0] + i1 * (b)->stride_a[1] +             \
                               i2 * (b)->stride_a[2] + i3 * (b)->stride_a[3];              \
            const int32_t ob = i0 * (b)->stride_b[0] + i1 * (b)->stride_b[1] +             \
                               i2 * (b)->stride_b[2] + i3 * (b)->stride_b[3];              \
            const int32_t sa = (b)->stride_a[4], sb = (b)->stride_b[4];                    \
            const __typeof__(*(X)) *xr = (X) + oa;                                         \
            const __typeof__(*(Y)) *yr = (Y) + ob;                                         \
            for (i4 = 0; i4 < (b)->shape[4]; ++i4) {                                       \
              __VA_ARGS__                                                                  \
            }                                                                              \
          }                                                                                \
  } while (0)

static int32_t tinyc_clamp8(int32_t v) { return v < -128 ? -128 : (v > 127 ? 127 : v); }

void tinyc_minmax_s8(const tinyc_bcast_t *b, int32_t is_max, const int8_t *x, const int8_t *y,
                     int8_t *out) {
  if (is_max) {
    TINYC_BCAST2(b, x, y, {
      const int8_t u = xr[i4 * sa], v = yr[i4 * sb];
      *out++ = u > v ? u : v;
    });
  } else {
    TINYC_BCAST2(b, x, y, {
      const int8_t u = xr[i4 * sa], v = yr[i4 * sb];
      *out++ = u < v ? u : v;
    });
  }
}

void tinyc_sqdiff_s8(const tinyc_bcast_t *b, const tinyc_sqdiff_t *p, const int8_t *x,
                     const int8_t *y, int8_t *out) {
  TINYC_BCAST2(b, x, y, {
    const int32_t u = tinyc_mbqm((xr[i4 * sa] - p->a_zp) * (1 << p->left_shift), p->a_mult,
                                 p->a_shift);
    const int32_t v = tinyc_mbqm((yr[i4 * sb] - p->b_zp) * (1 << p->left_shift), p->b_mult,
                                 p->b_shift);
    const int32_t d = u - v;
    *out++ = (int8_t)tinyc_clamp8(tinyc_mbqm(d * d, p->out_mult, p->out_shift) + p->out_zp);
  });
}

void tinyc_compare_s8(const tinyc_bcast_t *b, const tinyc_compare_t *p, int32_t op,
                      const int8_t *x, const int8_t *y, uint8_t *out) {
  TINYC_BCAST2(b, x, y, {
    const int32_t u = tinyc_mbqm((xr[i4 * sa] - p->a_zp) * (1 << p->left_shift), p->a_mult,
                                 p->a_shift);
    const int32_t v = tinyc_mbqm((yr[i4 * sb] - p->b_zp) * (1 << p->left_shift), p->b_mult,
                                 p->b_shift);
    int32_t r;
    switch (op) {
      case 0: r = u == v; break;
      case 1: r = u != v; break;
      case 2: r = u > v; break;
      case 3: r = u >= v; break;
      case 4: r = u < v; break;
      default: r = u <= v; break;
    }
    *out++ = (uint8_t)r;
  });
}

void tinyc_logical(const tinyc_bcast_t *b, int32_t op, const uint8_t *x, const uint8_t *y,
                   uint8_t *out) {
  TINYC_BCAST2(b, x, y, {
    const int32_t u = xr[i4 * sa] != 0, v = yr[i4 * sb] != 0;
    *out++ = (uint8_t)(op == 0 ? (u && v) : (u || v));
  });
}

void tinyc_logical_not(int32_t n, const uint8_t *x, uint8_t *out) {
  int32_t i;
  for (i = 0; i < n; ++i) out[i] = (uint8_t)(x[i] == 0);
}

void tinyc_select(const tinyc_bcast3_t *b, int32_t elem, const uint8_t *cond, const void *x,
                  const void *y, void *out) {
  const uint8_t *xs = (const uint8_t *)x, *ys = (const uint8_t *)y;
  uint8_t *d = (uint8_t *)out;
  int32_t i0, i1, i2, i3, i4;
  for (i0 = 0; i0 < b->shape[0]; ++i0)
    for (i1 = 0; i1 < b->shape[1]; ++i1)
      for (i2 = 0; i2 < b->shape[2]; ++i2)
        for (i3 = 0; i3 < b->shape[3]; ++i3) {
          const int32_t oc = i0 * b->stride_c[0] + i1 * b->stride_c[1] + i2 * b->stride_c[2] +
                             i3 * b->stride_c[3];
          const int32_t ox = i0 * b->stride_x[0] + i1 * b->stride_x[1] + i2 * b->stride_x[2] +
                             i3 * b->stride_x[3];
          const int32_t oy = i0 * b->stride_y[0] + i1 * b->stride_y[1] + i2 * b->stride_y[2] +
                             i3 * b->stride_y[3];
          for (i4 = 0; i4 < b->shape[4]; ++i4) {
            const uint8_t *s = cond[oc + i4 * b->stride_c[4]]
                                   ? xs + (ox + i4 * b->stride_x[4]) * elem
                                   : ys + (oy + i4 * b->stride_y[4]) * elem;
            if (elem == 1) {
              *d = *s;
            } else {
              memcpy(d, s, (size_t)elem);
            }
            d += elem;
          }
        }
}

void tinyc_add_n_s8(int32_t n_inputs, int32_t size, const int8_t *const *inputs,
                    const tinyc_add_n_t *p, int8_t *out) {
  const int32_t start = tinyc_mbqm(-p->in_zp * (1 << 20), p->in_mult, p->in_shift);
  int32_t i, k;
  for (i = 0; i < size; ++i) {
    uint32_t acc = (uint32_t)start; /* wraps as TFLM's int32 sum does in practice */
    for (k = 0; k < n_inputs; ++k) {
      acc += (uint32_t)tinyc_mbqm((inputs[k][i] - p->in_zp) * (1 << 20), p->in_mult,
                                  p->in_shift);
    }
    out[i] = (int8_t)tinyc_clamp8(tinyc_mbqm((int32_t)acc, p->out_mult, p->out_shift) +
                                  p->out_zp);
  }
}

/* CUMSUM int8 along the middle axis of [outer][depth][inner], ADD_N's arithmetic. */
void tinyc_cumsum_s8(int32_t outer, int32_t depth, int32_t inner, int32_t exclusive,
                     int32_t reverse, const tinyc_add_n_t *p, const int8_t *in, int8_t *out) {
  const int32_t start = tinyc_mbqm(-p->in_zp * (1 << 20), p->in_mult, p->in_shift);
  int32_t o, i, k;
  for (o = 0; o < outer; ++o) {
    for (i = 0; i < inner; ++i) {
      uint32_t acc = (uint32_t)start;
      for (k = 0; k < depth; ++k) {
        const int32_t pos = (o * depth + (reverse ? depth - 1 - k : k)) * inner + i;
        const uint32_t v =
            (uint32_t)tinyc_mbqm((in[pos] - p->in_zp) * (1 << 20), p->in_mult, p->in_shift);
        int32_t r;
        if (!exclusive) acc += v;
        r = tinyc_mbqm((int32_t)acc, p->out_mult, p->out_shift) + p->out_zp;
        if (exclusive) acc += v;
        out[pos] = (int8_t)tinyc_clamp8(r);
      }
    }
  }
}
