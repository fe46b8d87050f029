"""SOFTMAX, LOGISTIC and TANH, with TFLM's fixed-point int8 algorithms."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tinyc.errors import TinycError
from tinyc.ir import fixedpoint as fp
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops.base import OpDef, Spec, attr, clamp_cast, register


def input_radius(integer_bits: int, left_shift: int, total_signed_bits: int = 31) -> int:
    """CalculateInputRadius: the largest |input| whose rescaled value still fits."""
    max_rescaled = (
        1.0
        * ((1 << integer_bits) - 1)
        * (1 << (total_signed_bits - integer_bits))
        / (1 << left_shift)
    )
    return math.floor(max_rescaled)


class _Unary(OpDef):
    in_place = True

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        x = g.inp(node, 0)
        assert x is not None
        return [(x.shape, g.out(node).dtype)]

    def check(self, node: Node, g: Graph) -> None:
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None
        if y.is_quantized and (x.dtype != "int8" or y.dtype != "int8"):
            raise TinycError(
                f"node {node.name!r} ({node.op}): {x.dtype} -> {y.dtype} is not supported "
                "(int8 or float32)"
            )
        if isinstance(self.output_quant, tuple) and y.is_quantized:
            scale, zp = self.output_quant
            assert y.quant is not None
            if y.quant.zp != zp or abs(float(y.quant.s) - scale) > 1e-3 * scale:
                raise TinycError(
                    f"node {node.name!r} ({node.op}): int8 output must have scale {scale:g} and "
                    f"zero point {zp}, not {float(y.quant.s):g} and {y.quant.zp}"
                )


@dataclass
class SoftmaxParams:
    input_multiplier: int
    input_left_shift: int
    diff_min: int


@register
class Softmax(_Unary):
    kind = "SOFTMAX"
    attrs = {"beta": 1.0}
    output_quant = (1.0 / 256, -128)
    in_place = False

    def softmax_params(self, node: Node, g: Graph) -> SoftmaxParams:
        x = g.inp(node, 0)
        assert x is not None and x.quant is not None
        beta = float(np.float32(attr(node, "beta")))
        real = min(beta * float(x.quant.s) * (1 << (31 - 5)), (1 << 31) - 1.0)
        mult, shift = fp.quantize_multiplier_greater_than_one(real)
        return SoftmaxParams(mult, shift, -input_radius(5, shift))

    def eval_quant(self, node, g, xs):
        """TFLM's Softmax<int8, OutputT>: int8 out at 1/256 - 128, or int16 at 1/65536 -
        32768 (the int8 -> int16 form of TFLM's kernel)."""
        p = self.softmax_params(node, g)
        y = g.out(node)
        bits = 16 if y.dtype == "int16" else 8
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        x = xs[0].astype(np.int64)
        diff = x - x.max(axis=-1, keepdims=True)
        valid = diff >= p.diff_min
        rescaled = fp.multiply_by_quantized_multiplier(diff, p.input_multiplier, p.input_left_shift)
        exp = fp.exp_on_negative_values(np.where(valid, rescaled, 0), 5)
        terms = np.where(valid, fp.rounding_divide_by_pot(exp, 12), 0)
        sum_of_exps = fp.wrap32(terms.sum(axis=-1, keepdims=True))
        scale, bits_over_unit = fp.get_reciprocal(sum_of_exps, 12)
        exponent = bits_over_unit + 31 - bits
        out = fp.rounding_divide_by_pot(
            fp.saturating_rounding_doubling_high_mul(scale, exp), exponent
        )
        out = np.where(valid, out + lo, lo)
        return [clamp_cast(out, lo, hi, y.dtype)]

    def check(self, node: Node, g: Graph) -> None:
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None
        if not y.is_quantized:
            return
        if x.dtype != "int8" or y.dtype not in ("int8", "int16"):
            raise TinycError(
                f"node {node.name!r} (SOFTMAX): {x.dtype} -> {y.dtype} is not supported "
                "(int8 -> int8 or int16, or float32)"
            )
        scale, zp = (1.0 / 65536, -32768) if y.dtype == "int16" else self.output_quant
        assert y.quant is not None
        if y.quant.zp != zp or abs(float(y.quant.s) - scale) > 1e-3 * scale:
            raise TinycError(
                f"node {node.name!r} (SOFTMAX): {y.dtype} output must have scale {scale:g} and "
                f"zero point {zp}, not {float(y.quant.s):g} and {y.quant.zp}"
            )

    def eval_float(self, node, g, xs):
        x = xs[0].astype(np.float64) * float(np.float32(attr(node, "beta")))
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return [(e / e.sum(axis=-1, keepdims=True)).astype(np.float32)]


@dataclass
class SigmoidParams:
    """TFLM's int8 LOGISTIC/TANH preparation: the input rescaled to Q4.27."""

    input_zp: int
    input_multiplier: int
    input_left_shift: int
    input_range_radius: int


def _q4_params(node: Node, g: Graph) -> SigmoidParams:
    x = g.inp(node, 0)
    assert x is not None and x.quant is not None
    real = float(x.quant.s) * float(1 << (31 - 4))
    frac, shift = math.frexp(real)
    mult = int(fp.wrap32(int(fp.round_half_away(frac * (1 << 31)))))
    return SigmoidParams(x.quant.zp, mult, shift, input_radius(4, shift))


class _Sigmoidal(_Unary):
    def sigmoid_params(self, node: Node, g: Graph) -> SigmoidParams:
        return _q4_params(node, g)

    def eval_quant(self, node, g, xs):
        p = self.sigmoid_params(node, g)
        d = xs[0].astype(np.int64) - p.input_zp
        q4 = fp.multiply_by_quantized_multiplier(d, p.input_multiplier, p.input_left_shift)
        out = self.finish(q4)
        out = np.where(d <= -p.input_range_radius, -128, out)
        out = np.where(d >= p.input_range_radius, 127, out)
        return [clamp_cast(out, -128, 127, "int8")]

    @staticmethod
    def finish(q4: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@register
class Logistic(_Sigmoidal):
    kind = "LOGISTIC"
    output_quant = (1.0 / 256, -128)

    @staticmethod
    def finish(q4):
        return fp.rounding_divide_by_pot(fp.logistic(q4, 4), 31 - 8) - 128

    def eval_float(self, node, g, xs):
        return [(1.0 / (1.0 + np.exp(-xs[0].astype(np.float64)))).astype(np.float32)]


@register
class Tanh(_Sigmoidal):
    kind = "TANH"
    output_quant = (1.0 / 128, 0)

    @staticmethod
    def finish(q4):
        return fp.rounding_divide_by_pot(fp.tanh(q4, 4), 31 - 7)

    def eval_float(self, node, g, xs):
        return [np.tanh(xs[0].astype(np.float64)).astype(np.float32)]


@dataclass
class ReluParams:
    input_zp: int
    output_zp: int
    multiplier: int
    shift: int
    act_min: int
    act_max: int


@register
class Relu(_Unary):
    """Standalone RELU (usually fused into its producer by the fuse_activations pass)."""

    kind = "RELU"

    def relu_params(self, node: Node, g: Graph) -> ReluParams:
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None and x.quant is not None and y.quant is not None
        mult, shift = fp.quantize_multiplier(float(np.float32(x.quant.s / y.quant.s)))
        lo = max(-128, y.quant.zp + int(fp.round_half_away(np.float32(0.0) / y.quant.s)))
        return ReluParams(x.quant.zp, y.quant.zp, mult, shift, lo, 127)

    def eval_quant(self, node, g, xs):
        p = self.relu_params(node, g)
        d = xs[0].astype(np.int64) - p.input_zp
        out = fp.multiply_by_quantized_multiplier(d, p.multiplier, p.shift) + p.output_zp
        return [clamp_cast(out, p.act_min, p.act_max, "int8")]

    def eval_float(self, node, g, xs):
        return [np.maximum(xs[0], np.float32(0)).astype(np.float32)]


@register
class Relu6(_Unary):
    """Standalone RELU6; int8 clamps to [q(0), q(6)] of the input's quantization."""

    kind = "RELU6"
    output_quant = "same_as_input"

    def bounds(self, node: Node, g: Graph) -> tuple[int, int]:
        x = g.inp(node, 0)
        assert x is not None and x.quant is not None
        zp = x.quant.zp
        six = zp + int(fp.round_half_away(np.float32(6.0) / x.quant.s))
        return zp, min(127, max(-128, six))

    def eval_quant(self, node, g, xs):
        lo, hi = self.bounds(node, g)
        return [clamp_cast(xs[0].astype(np.int64), lo, hi, "int8")]

    def eval_float(self, node, g, xs):
        return [np.clip(xs[0], 0, 6).astype(np.float32)]


@dataclass
class HardSwishParams:
    """TFLM's int8 HARD_SWISH preparation: two int16 fixed-point multipliers, one that
    rescales the input to the output scale and one that maps [-3, 3] onto [-1, 1]."""

    input_zp: int
    output_zp: int
    output_multiplier: int  # int16 fixed point
    output_exponent: int
    reluish_multiplier: int  # int16 fixed point
    reluish_exponent: int


def _int16_multiplier(m: float) -> tuple[int, int]:
    """QuantizeMultiplier, then DownScaleInt32ToInt16Multiplier."""
    q, exponent = fp.quantize_multiplier(m)
    if q >= fp.INT32_MAX - (1 << 15):
        return 32767, exponent
    return (q + (1 << 15)) >> 16, exponent


def _trunc_div(x: np.ndarray, d: int) -> np.ndarray:
    """C integer division (toward zero) by a positive ``d``."""
    return np.where(x >= 0, x // d, -((-x) // d))


def _srdhm16(a: np.ndarray, b: int) -> np.ndarray:
    """gemmlowp's int16 SaturatingRoundingDoublingHighMul."""
    ab = a * b
    r = _trunc_div(ab + np.where(ab >= 0, 1 << 14, 1 - (1 << 14)), 1 << 15)
    return np.where((a == b) & (a == -32768), 32767, r)


def _sdhm16(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """TFLite's int16 SaturatingDoublingHighMul (rounds toward zero)."""
    r = _trunc_div(a * b, 1 << 15)
    return np.where((a == b) & (a == -32768), 32767, r)


def _saturating_left_shift16(v: np.ndarray, amount: int) -> np.ndarray:
    return np.clip(v * (1 << amount), -32768, 32767)


@register
class HardSwish(_Unary):
    """HARD_SWISH: x * relu6(x + 3) / 6, with TFLM's int16 fixed-point int8 kernel."""

    kind = "HARD_SWISH"

    def hard_swish_params(self, node: Node, g: Graph) -> HardSwishParams:
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None and x.quant is not None and y.quant is not None
        hires = np.float32(1.0 / 128.0) * np.float32(x.quant.s)
        om, oe = _int16_multiplier(float(np.float32(hires / np.float32(y.quant.s))))
        rm, re = _int16_multiplier(float(np.float32(hires / np.float32(3.0 / 32768.0))))
        return HardSwishParams(x.quant.zp, y.quant.zp, om, oe, rm, re)

    def check(self, node: Node, g: Graph) -> None:
        super().check(node, g)
        if g.out(node).is_quantized and self.hard_swish_params(node, g).output_exponent > 0:
            raise TinycError(
                f"node {node.name!r} (HARD_SWISH): the output scale must be at least the input "
                "scale / 128"
            )

    def eval_quant(self, node, g, xs):
        p = self.hard_swish_params(node, g)
        hires = (xs[0].astype(np.int64) - p.input_zp) * (1 << 7)
        preshift = _srdhm16(hires, p.output_multiplier)
        r = hires
        if p.reluish_exponent > 0:
            r = _saturating_left_shift16(r, p.reluish_exponent - 1)
        r = _srdhm16(r, p.reluish_multiplier)
        if p.reluish_exponent > 0:
            r = _saturating_left_shift16(r, 1)
        if p.reluish_exponent < 0:
            r = fp.rounding_divide_by_pot(r, -p.reluish_exponent)
        r = (r + (1 << 15)) >> 1
        out = fp.rounding_divide_by_pot(_sdhm16(r, preshift), -p.output_exponent)
        return [clamp_cast(out + p.output_zp, -128, 127, "int8")]

    def eval_float(self, node, g, xs):
        x = xs[0].astype(np.float32)
        return [(x * np.clip(x + np.float32(3), 0, 6) / np.float32(6)).astype(np.float32)]
