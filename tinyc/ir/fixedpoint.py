"""Fixed-point arithmetic of TFLite Micro's integer kernels, vectorised with numpy.

Every function mirrors the C helper of the same name in ``tinyc/runtime/tinyc_fixedpoint.h``
(and TFLM's / gemmlowp's originals): values are int32 semantics carried in int64 arrays.
The module is the single Python definition of multiplier/shift/rounding used by every op.
"""

from __future__ import annotations

import functools
import math
from importlib import resources

import numpy as np

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def wrap32(x: np.ndarray | int) -> np.ndarray:
    """Two's complement wrap to int32 (what C's int32 arithmetic does in practice)."""
    x = np.asarray(x, dtype=np.int64)
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def round_half_away(x: np.ndarray | float) -> np.ndarray:
    """C's ``round``: halves go away from zero, exactly (no ``floor(x + 0.5)`` error)."""
    x = np.asarray(x)
    t = np.trunc(x)
    frac = x - t
    return np.where(np.abs(frac) >= 0.5, t + np.sign(x), t)


def quantize_multiplier(m: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: m = q * 2^(shift - 31), q in [2^30, 2^31)."""
    if m == 0.0:
        return 0, 0
    frac, shift = math.frexp(m)
    q = int(round_half_away(frac * (1 << 31)))
    if q == (1 << 31):
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q, shift


def quantize_multiplier_greater_than_one(m: float) -> tuple[int, int]:
    q, shift = quantize_multiplier(m)
    assert shift >= 0
    return q, shift


def saturating_rounding_doubling_high_mul(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    overflow = (a == b) & (a == INT32_MIN)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    s = ab + nudge
    # C++ integer division truncates toward zero.
    q = np.where(s >= 0, s >> 31, -((-s) >> 31))
    return np.where(overflow, INT32_MAX, q)


def rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray | int) -> np.ndarray:
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(
    x: np.ndarray, multiplier: np.ndarray | int, shift: np.ndarray | int
) -> np.ndarray:
    """TFLite's double-rounding MultiplyByQuantizedMultiplier (int32 x)."""
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    x = wrap32(np.asarray(x, dtype=np.int64) << left)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, multiplier), right)


def saturating_rounding_multiply_by_pot(x: np.ndarray, exponent: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.int64)
    if exponent == 0:
        return x
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    res = wrap32(x << exponent)
    res = np.where(x > threshold, INT32_MAX, res)
    return np.where(x < -threshold, INT32_MIN, res)


# -- gemmlowp fixed-point transcendental functions (raw int32 values) --------------------


def _fx_mul(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    return saturating_rounding_doubling_high_mul(a, b)


def _rescale(x: np.ndarray, src_int_bits: int, dst_int_bits: int) -> np.ndarray:
    return saturating_rounding_multiply_by_pot(x, src_int_bits - dst_int_bits)


def _rounding_half_sum(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    s = np.asarray(a, np.int64) + np.asarray(b, np.int64)
    s = s + np.where(s >= 0, 1, -1)
    return np.where(s >= 0, s // 2, -((-s) // 2))


def exp_on_interval_between_negative_one_quarter_and_0_excl(a: np.ndarray) -> np.ndarray:
    constant_term = 1895147668
    constant_1_over_3 = 715827883
    x = wrap32(a + (1 << 28))
    x2 = _fx_mul(x, x)
    x3 = _fx_mul(x2, x)
    x4 = _fx_mul(x2, x2)
    x4_over_4 = saturating_rounding_multiply_by_pot(x4, -2)
    poly = saturating_rounding_multiply_by_pot(
        wrap32(_fx_mul(wrap32(x4_over_4 + x3), constant_1_over_3) + x2), -1
    )
    return wrap32(constant_term + _fx_mul(constant_term, wrap32(x + poly)))


def exp_on_negative_values(a: np.ndarray, integer_bits: int) -> np.ndarray:
    """exp(a) for a <= 0 given as Q(integer_bits); result in Q0.31."""
    a = np.asarray(a, dtype=np.int64)
    frac_bits = 31 - integer_bits
    one_quarter = 1 << (frac_bits - 2)
    mask = one_quarter - 1
    a_mod_quarter_minus_one_quarter = wrap32((a & mask) - one_quarter)
    result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        _rescale(a_mod_quarter_minus_one_quarter, integer_bits, 0)
    )
    remainder = wrap32(a_mod_quarter_minus_one_quarter - a)
    for exponent, multiplier in (
        (-2, 1672461947),
        (-1, 1302514674),
        (0, 790015084),
        (1, 290630308),
        (2, 39332535),
        (3, 720401),
        (4, 242),
    ):
        if integer_bits > exponent:
            bit = 1 << (frac_bits + exponent)
            result = np.where(remainder & bit, _fx_mul(result, multiplier), result)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, INT32_MAX, result)


def _newton_reciprocal_half(half_denominator: np.ndarray) -> np.ndarray:
    """Three Newton-Raphson steps of gemmlowp's 1/(1+x); result in Q2.29."""
    one_q2 = 1 << 29
    x = wrap32(1515870810 + _fx_mul(half_denominator, -1010580540))
    for _ in range(3):
        half_denominator_times_x = _fx_mul(half_denominator, x)
        one_minus = wrap32(one_q2 - half_denominator_times_x)
        x = wrap32(x + _rescale(_fx_mul(x, one_minus), 4, 2))
    return x


def one_over_one_plus_x_for_x_in_0_1(a: np.ndarray) -> np.ndarray:
    half_denominator = _rounding_half_sum(a, INT32_MAX)
    x = _newton_reciprocal_half(half_denominator)
    # ExactMulByPot<-1> keeps the raw value and reinterprets Q2 as Q1.
    return _rescale(x, 1, 0)


def one_minus_x_over_one_plus_x_for_x_in_0_1(a: np.ndarray) -> np.ndarray:
    half_denominator = _rounding_half_sum(a, INT32_MAX)
    x = _newton_reciprocal_half(half_denominator)
    return _rescale(wrap32(x - (1 << 29)), 2, 0)


def logistic(a: np.ndarray, integer_bits: int) -> np.ndarray:
    """gemmlowp::logistic on Q(integer_bits) raw values; result in Q0.31."""
    a = np.asarray(a, dtype=np.int64)
    positive = a > 0
    abs_input = np.where(positive, a, wrap32(-a))
    pos = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(wrap32(-abs_input), integer_bits))
    neg = wrap32(INT32_MAX - pos)
    return np.where(a == 0, 1 << 30, np.where(positive, pos, neg))


def tanh(a: np.ndarray, integer_bits: int) -> np.ndarray:
    """gemmlowp::tanh on Q(integer_bits) raw values; result in Q0.31."""
    a = np.asarray(a, dtype=np.int64)
    negative = a < 0
    n = np.where(negative, a, wrap32(-a))
    # ExactMulByPot<1>: same raw value, one more integer bit.
    t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, integer_bits + 1))
    return np.where(a == 0, 0, np.where(negative, wrap32(-t), t))


def count_leading_zeros32(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.int64) & 0xFFFFFFFF
    out = np.full(x.shape, 32, dtype=np.int64)
    nz = x != 0
    out[nz] = 31 - np.floor(np.log2(x[nz].astype(np.float64))).astype(np.int64)
    # log2 rounding can be off by one right at powers of two minus tiny; fix exactly.
    hi = np.where(nz, np.int64(1) << (31 - out), 0)
    too_low = nz & (hi > x)
    out[too_low] += 1
    return out


def count_leading_sign_bits(x: np.ndarray) -> np.ndarray:
    """TFLite's CountLeadingSignBits of int32 values (31 for 0, as GCC's __builtin_clrsb)."""
    x = np.asarray(x, np.int64)
    return count_leading_zeros32(x ^ (x >> 63)) - 1


def get_reciprocal(x: np.ndarray, x_integer_digits: int) -> tuple[np.ndarray, np.ndarray]:
    """TFLite's GetReciprocal: (Q0.31 reciprocal raw, num_bits_over_unit)."""
    x = np.asarray(x, dtype=np.int64)
    headroom_plus_one = count_leading_zeros32(x)
    num_bits_over_unit = x_integer_digits - headroom_plus_one
    shifted_sum_minus_one = wrap32(((x << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31))
    return one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit


# -- int16 sigmoid and tanh of TFLM's integer LSTM (table interpolation) -----------------


@functools.cache
def sigmoid_table_q16() -> np.ndarray:
    """TFLM's 256-entry table of sigmoid(k / 24) in unsigned Q0.16 (measured from TFLM:
    see tinyc.tools.sigmoid_table)."""
    text = (resources.files("tinyc") / "data" / "tflm_sigmoid_q16.txt").read_text()
    values = [
        int(v) for line in text.splitlines() if not line.startswith("#") for v in line.split()
    ]
    if len(values) != 256:
        raise RuntimeError("tinyc/data/tflm_sigmoid_q16.txt is damaged (needs 256 entries)")
    return np.array(values, np.int64)


def int16_lut_params(multiplier: int, left_shift: int) -> tuple[int, int]:
    """The (multiplier, right shift) the int16 kernels apply to their input: a zero
    multiplier means a power-of-two input scale, 3 << shift."""
    if multiplier == 0:
        return 3 << left_shift, 0
    return multiplier, left_shift


def _lut_input(x: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    m, s = int16_lut_params(multiplier, shift)
    r = (1 << (s - 1)) if s > 0 else 0
    return (np.asarray(x, np.int64) * m + r) >> s


def sigmoid_int16(x: np.ndarray, multiplier: int = 0, left_shift: int = 0) -> np.ndarray:
    """TFLM's int16 Logistic: Q3.12 input (power-of-two case), Q0.15 output."""
    table = sigmoid_table_q16()
    v = _lut_input(x, multiplier, left_shift)
    a = np.abs(v)
    uh = a >> 9
    idx = np.minimum(uh, 254)
    ua, ub = table[idx], table[idx + 1]
    res = np.where(uh >= 255, 0x7FFF << 10, (ua << 9) + (a & 0x1FF) * (ub - ua))
    res = np.where(v >= 0, res + (1 << 9), (1 << 25) - res + (1 << 9) - 1)
    return (res & 0xFFFFFFFF) >> 10


def tanh_int16(x: np.ndarray, multiplier: int = 0, left_shift: int = 0) -> np.ndarray:
    """TFLM's int16 Tanh: tanh(x) = 2 sigmoid(2x) - 1 from the same table; Q0.15 output."""
    table = sigmoid_table_q16()
    v = _lut_input(x, multiplier, left_shift)
    a = np.abs(v)
    uh = a >> 8
    idx = np.minimum(uh, 254)
    ua, ub = table[idx], table[idx + 1]
    res = np.where(uh >= 255, 0xFFFF << 8, (ua << 8) + (a & 0xFF) * (ub - ua))
    res = wrap32(res)
    res = np.where(v >= 0, res - (1 << 23) + (1 << 7), -res + (1 << 23) + (1 << 7) - 1)
    return wrap32(res) >> 8


def lstm_tanh_params(cell_scale_power: int) -> tuple[int, int]:
    """(multiplier, left shift) TFLM's LSTM gives its int16 Tanh for a cell state of scale
    2^cell_scale_power (the gates use -12: Q3.12)."""
    shift = 15 + cell_scale_power - 3
    if shift < 0:
        return 3, -shift
    return 0, shift
