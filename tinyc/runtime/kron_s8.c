/* KRONECKER_FC: y = sum_r (A_r (x) B_r) x as Y = sum_r A_r X B_r^T, never forming the matrix;
 * the int8 scheme of tinyc/ir/ops/kronecker.py bit for bit.
 *
 * Stage 1 writes Z_r^T ([s][q] int16) into scratch so that both stages are dot products over
 * contiguous rows. With DSP, each group of four Z values along q is stored as (0, 2, 1, 3):
 * one SXTB16 of four A bytes then pairs with one word of Z (SMLAD). Helium: predicated
 * widening loads and VMLADAVA. Cortex-M0+ and the host: plain C. */
#include <string.h>

#include "tinyc_fixedpoint.h"
#include "tinyc_kernels.h"
#include "tinyc_simd.h"

#if TINYC_DSP && !TINYC_MVE
#define TINYC_KRON_PERM(j) (((j) & ~3) | ((((j) & 1) << 1) | (((j) >> 1) & 1)))
#else
#define TINYC_KRON_PERM(j) (j)
#endif

/* int8 a[0..n) . int16 z[0..n) (z in the kernel's stored order), added to acc */
TINYC_INLINE int32_t tinyc_kron_dot(const int8_t *a, const int16_t *z, int32_t n, int32_t acc) {
  int32_t j = 0;
#if TINYC_MVE
  for (; j < n; j += 8) {
    const mve_pred16_t pr = vctp16q((uint32_t)(n - j));
    const int16x8_t va = vldrbq_z_s16(a + j, pr);
    const int16x8_t vz = vldrhq_z_s16(z + j, pr);
    acc = vmladavaq_p_s16(acc, va, vz, pr);
  }
#elif TINYC_DSP
  for (; j + 4 <= n; j += 4) {
    const uint32_t va = tinyc_load4(a + j);
    int32_t z02, z13;
    memcpy(&z02, z + j, 4);
    memcpy(&z13, z + j + 2, 4);
    acc = tinyc_smlad(tinyc_sxtb16(va), z02, acc);
    acc = tinyc_smlad(tinyc_sxtb16_ror8(va), z13, acc);
  }
#endif
  for (; j < n; ++j) acc += (int32_t)a[j] * z[j];
  return acc;
}

/* int8 a[0..n) . int8 b[0..n), added to acc */
TINYC_INLINE int32_t tinyc_kron_dot8(const int8_t *a, const int8_t *b, int32_t n, int32_t acc) {
#if TINYC_MVE
  int32_t j;
  for (j = 0; j < n; j += 16) {
    const mve_pred16_t pr = vctp8q((uint32_t)(n - j));
    acc = vmladavaq_p_s8(acc, vldrbq_z_s8(a + j, pr), vldrbq_z_s8(b + j, pr), pr);
  }
  return acc;
#else
  return tinyc_dot_s8(a, b, n, acc);
#endif
}

void tinyc_kron_fc_s8(const tinyc_kron_t *k, const int8_t *in, int8_t *out, int16_t *scratch) {
  const int32_t p = k->p, q = k->q, s = k->s, t = k->t, zmax = k->inner_max;
  const int32_t rq = k->rank * q; /* one stage-2 dot: all r, all j */
  int32_t n, r, i, j, c;
  for (n = 0; n < k->rows; ++n) {
    const int8_t *x = in + n * q * t;
    int8_t *y = out + n * p * s;
    /* stage 1: scratch[c][r * q + j] = Z_r[j][c] */
    for (r = 0; r < k->rank; ++r) {
      const int8_t *b = k->b + r * s * t;
      const int32_t *off = k->b_off + r * s;
      const int32_t m1 = k->mult1[r], sh1 = k->shift1[r];
      for (j = 0; j < q; ++j) {
        const int8_t *xj = x + j * t;
        const int32_t jj = r * q + j;
        const int32_t at = (jj & ~3) + 4 <= rq ? TINYC_KRON_PERM(jj) : jj;
        for (c = 0; c < s; ++c) {
          int32_t v = tinyc_mbqm(tinyc_kron_dot8(b + c * t, xj, t, off[c]), m1, sh1);
          v = v < -zmax ? -zmax : (v > zmax ? zmax : v);
          scratch[c * rq + at] = (int16_t)v;
        }
      }
    }
    /* stage 2: y[i][c] = bias + A[i][:] . scratch[c][:] (A packed [p][rank][q]) */
    for (i = 0; i < p; ++i) {
      const int8_t *a = k->a + i * rq;
      const int32_t *bias = k->bias ? k->bias + i * s : 0;
      for (c = 0; c < s; ++c) {
        const int32_t acc = tinyc_kron_dot(a, scratch + c * rq, rq, bias ? bias[c] : 0);
        y[i * s + c] = tinyc_requant_s8(acc, k->mult2, k->shift2, k->output_zp, k->act_min,
                                        k->act_max);
      }
    }
  }
}
