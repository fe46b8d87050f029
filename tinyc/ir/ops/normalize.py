"""L2_NORMALIZATION and LOG_SOFTMAX over the last axis, with TFLM's int8 fixed-point
kernels (fixed output parameters: 1/128 and 0; 16/256 and 127)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyc.errors import TinycError
from tinyc.ir import fixedpoint as fp
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops.activation import _Unary, input_radius
from tinyc.ir.ops.base import attr, clamp_cast, register
from tinyc.ir.ops.unary import inv_sqrt_multiplier_exp


@register
class L2Normalization(_Unary):
    """x / max(||x||, 1e-6) along the last axis; int8 as TFLM: the inverse square root of
    the int32 sum of squares (GetInvSqrtQuantizedMultiplierExp), output scale 1/128."""

    kind = "L2_NORMALIZATION"
    attrs = {"activation": "NONE"}
    output_quant = (1.0 / 128, 0)
    in_place = False

    def check(self, node: Node, g: Graph) -> None:
        super().check(node, g)
        x = g.inp(node, 0)
        assert x is not None
        if len(x.shape) > 4 or attr(node, "activation") != "NONE":
            raise TinycError(
                f"node {node.name!r} (L2_NORMALIZATION): up to 4 dimensions, no activation"
            )

    def eval_quant(self, node, g, xs):
        x = g.inp(node, 0)
        assert x is not None and x.quant is not None
        d = xs[0].astype(np.int64) - x.quant.zp
        acc = fp.wrap32((d * d).sum(axis=-1, keepdims=True))
        mult, shift = inv_sqrt_multiplier_exp(acc, -1)
        out = fp.multiply_by_quantized_multiplier(d, mult, shift + 7)
        return [clamp_cast(out, -128, 127, "int8")]

    def eval_float(self, node, g, xs):
        x = xs[0].astype(np.float32)
        norm = np.sqrt((x * x).sum(axis=-1, keepdims=True, dtype=np.float32))
        return [(x / np.maximum(norm, np.float32(1e-6))).astype(np.float32)]


# -- LOG_SOFTMAX --------------------------------------------------------------------------

_LOG_2 = 1488522236
_SQRT_SQRT_HALF = 1805811301
_SQRT_HALF = 1518500250
_ONE_QUARTER = 536870912
_ALPHA_N = 117049297
_ALPHA_D = 127690142
_ALPHA_I = 1057819769
_ALPHA_F = 638450708


def _sat_add(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    return np.clip(np.asarray(a, np.int64) + b, fp.INT32_MIN, fp.INT32_MAX)


def _sat_shift(x: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """SaturatingRoundingMultiplyByPOTParam for exponents >= 0 (per element)."""
    x = np.asarray(x, np.int64)
    exponent = np.asarray(exponent, np.int64)
    threshold = (np.int64(1) << (31 - exponent)) - 1
    res = fp.wrap32(x << exponent)
    res = np.where(x > threshold, fp.INT32_MAX, res)
    return np.where(x < -threshold, fp.INT32_MIN, res)


def log_x_ge_1(x: np.ndarray, input_bits: int, output_bits: int) -> np.ndarray:
    """TFLite's log_x_for_x_greater_than_or_equal_to_1 (raw Q(input_bits) in, raw
    Q(output_bits) out)."""
    mul = fp.saturating_rounding_doubling_high_mul
    accum_bits = output_bits + 1
    quarter = fp.rounding_divide_by_pot(_ONE_QUARTER, accum_bits)  # Rescale<accum>
    z_a = np.asarray(x, np.int64)
    hp1 = fp.count_leading_zeros32(z_a)
    r_a = _sat_shift(mul(_sat_shift(z_a, hp1 - 1), _SQRT_HALF), 1)
    z_a_adj = _sat_add(_sat_shift(input_bits - hp1, 31 - accum_bits), quarter)
    z_b = mul(z_a, _SQRT_HALF)
    z_b_headroom = fp.count_leading_zeros32(z_b) - 1
    r_b = _sat_shift(z_a, z_b_headroom)
    z_b_adj = _sat_add(_sat_shift(input_bits - z_b_headroom, 31 - accum_bits), -quarter)
    r = np.minimum(r_a, r_b)
    z_adj = np.maximum(z_a_adj, z_b_adj)
    p = fp._rounding_half_sum(r, _SQRT_SQRT_HALF)
    q = fp.wrap32(r - _SQRT_SQRT_HALF)
    q = fp.wrap32(q + q)
    sq = mul(q, q)
    num = fp.wrap32(mul(q, r) + mul(mul(q, sq), _ALPHA_N))
    denom = fp.wrap32(mul(p, fp.wrap32(_ALPHA_I + q + mul(_ALPHA_D, sq))) + mul(_ALPHA_F, q))
    recip = fp.one_over_one_plus_x_for_x_in_0_1(denom)
    num_scaled = fp.rounding_divide_by_pot(num, accum_bits)  # Rescale<accum> of a Q0
    total = fp.wrap32(mul(z_adj, _LOG_2) + mul(num_scaled, recip))
    return fp.saturating_rounding_multiply_by_pot(total, accum_bits - output_bits)


@dataclass
class LogSoftmaxParams:
    input_multiplier: int
    input_left_shift: int
    reverse_multiplier: int
    reverse_shift: int  # <= 0
    diff_min: int


@register
class LogSoftmax(_Unary):
    """log(softmax(x)) over the last axis; int8 as TFLM (LogSoftmaxQuantized): exps of the
    differences to the row maximum summed in Q12, their log in Q5, output 16/256 and 127."""

    kind = "LOG_SOFTMAX"
    output_quant = (16.0 / 256, 127)
    in_place = False

    def log_softmax_params(self, node: Node, g: Graph) -> LogSoftmaxParams:
        x = g.inp(node, 0)
        assert x is not None and x.quant is not None
        real = min(float(x.quant.s) * (1 << (31 - 5)), (1 << 31) - 1.0)
        mult, shift = fp.quantize_multiplier_greater_than_one(real)
        rev_m, rev_s = fp.quantize_multiplier((1 << (31 - shift)) / float(mult))
        return LogSoftmaxParams(mult, shift, rev_m, rev_s, -input_radius(5, shift))

    def check(self, node: Node, g: Graph) -> None:
        super().check(node, g)
        x = g.inp(node, 0)
        assert x is not None
        if (
            g.out(node).is_quantized
            and x.quant is not None
            and (
                float(x.quant.s) * (1 << (31 - 5)) <= 1.0
                or self.log_softmax_params(node, g).reverse_shift > 0
            )
        ):
            raise TinycError(
                f"node {node.name!r} (LOG_SOFTMAX): input scale {float(x.quant.s):g} is "
                "below what TFLM's kernel takes (2^-26)"
            )

    def eval_quant(self, node, g, xs):
        p = self.log_softmax_params(node, g)
        x = xs[0].astype(np.int64)
        diff = x - x.max(axis=-1, keepdims=True)
        mbqm = fp.multiply_by_quantized_multiplier
        diff_q5 = mbqm(diff, p.input_multiplier, p.input_left_shift)
        exps = fp.rounding_divide_by_pot(fp.exp_on_negative_values(diff_q5, 5), 12)
        sum_q12 = fp.wrap32(np.where(diff >= p.diff_min, exps, 0).sum(axis=-1, keepdims=True))
        log_sum = log_x_ge_1(sum_q12, 12, 5)
        adjusted = np.maximum(
            p.diff_min - 1,
            mbqm(
                fp.wrap32(log_sum + fp.INT32_MIN), p.reverse_multiplier, p.reverse_shift
            ),  # fmt: skip
        )
        out = fp.rounding_divide_by_pot(fp.wrap32(diff_q5 - log_sum), 31 - 5 - 4) + 127
        out = np.where(diff > adjusted, np.clip(out, -128, 127), -128)
        return [out.astype(np.int8)]

    def eval_float(self, node, g, xs):
        x = xs[0].astype(np.float64)
        m = x.max(axis=-1, keepdims=True)
        s = np.log(np.exp(x - m).sum(axis=-1, keepdims=True))
        return [(x - m - s).astype(np.float32)]
