"""Elementwise one-input ops: LEAKY_RELU, ABS, RSQRT and ELU with TFLM's int8 kernels; EXP,
LOG, NEG, SIN, COS, SQUARE, FLOOR, CEIL and ROUND, which TFLM runs in float only (their int8
form is tinyc's own table, see tinyc.ir.ops.table); CAST and LOGICAL_NOT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyc.errors import TinycError
from tinyc.ir import fixedpoint as fp
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops.activation import _Unary
from tinyc.ir.ops.base import OpDef, Spec, attr, clamp_cast, register
from tinyc.ir.ops.table import ALL_INT8, _Table
from tinyc.ir.tensor import np_dtype

F32 = np.float32


def _scales(node: Node, g: Graph) -> tuple[np.float32, int, np.float32, int]:
    x, y = g.inp(node, 0), g.out(node)
    assert x is not None and x.quant is not None and y.quant is not None
    return F32(x.quant.s), x.quant.zp, F32(y.quant.s), y.quant.zp


# -- LEAKY_RELU ---------------------------------------------------------------------------


@dataclass
class LeakyReluParams:
    input_zp: int
    output_zp: int
    identity_multiplier: int
    identity_shift: int
    alpha_multiplier: int  # negative for a negative alpha
    alpha_shift: int


@register
class LeakyRelu(_Unary):
    """x for x > 0, alpha * x below; int8 with TFLM's two requantizations (QuantizeLeakyRelu,
    negative alphas as TFLM: the magnitude's multiplier, then the sign)."""

    kind = "LEAKY_RELU"
    attrs = {"alpha": 0.2}

    def leaky_params(self, node: Node, g: Graph) -> LeakyReluParams:
        s_in, zp_in, s_out, zp_out = _scales(node, g)
        alpha = F32(attr(node, "alpha"))
        am, ash = fp.quantize_multiplier(float(s_in * alpha / s_out))
        im, ish = fp.quantize_multiplier(float(s_in / s_out))
        return LeakyReluParams(zp_in, zp_out, im, ish, am, ash)

    def eval_quant(self, node, g, xs):
        p = self.leaky_params(node, g)
        v = xs[0].astype(np.int64) - p.input_zp
        pos = fp.multiply_by_quantized_multiplier(v, p.identity_multiplier, p.identity_shift)
        neg = fp.multiply_by_quantized_multiplier(v, abs(p.alpha_multiplier), p.alpha_shift)
        neg = -neg if p.alpha_multiplier < 0 else neg
        return [clamp_cast(np.where(v >= 0, pos, neg) + p.output_zp, -128, 127, "int8")]

    def eval_float(self, node, g, xs):
        x = xs[0].astype(np.float32)
        return [np.where(x > 0, x, x * F32(attr(node, "alpha"))).astype(np.float32)]


# -- ABS, RSQRT (TFLM's int8) ---------------------------------------------------------------


@register
class Abs(_Unary):
    """|x|; int8 as TFLM (AbsEvalQuantized): no rescale when the scales are equal."""

    kind = "ABS"

    def eval_quant(self, node, g, xs):
        s_in, zp_in, s_out, zp_out = _scales(node, g)
        v = np.abs(xs[0].astype(np.int64) - zp_in)
        if s_in != s_out:
            m, s = fp.quantize_multiplier(float(s_in / s_out))
            v = fp.multiply_by_quantized_multiplier(v, m, s)
        return [clamp_cast(v + zp_out, -128, 127, "int8")]

    def eval_float(self, node, g, xs):
        return [np.abs(xs[0]).astype(np.float32)]


def inv_sqrt_multiplier_exp(x: np.ndarray, reverse_shift: int) -> tuple[np.ndarray, np.ndarray]:
    """TFLite's GetInvSqrtQuantizedMultiplierExp for int32 ``x`` >= 0: (multiplier, shift)
    with 1/sqrt(x) = multiplier * 2^(shift - 31) (x <= 1 gives INT32_MAX, 0)."""
    x = np.asarray(x, np.int64)
    small = x <= 1
    v = np.where(small, 1 << 28, x)
    big = v >= (1 << 29)
    v = np.where(big, v // 4, v)
    shift = 11 + big.astype(np.int64)
    pairs = (fp.count_leading_zeros32(v) - 1) // 2 - 1
    shift = shift - pairs
    v = v << (2 * pairs)
    half_input = fp.rounding_divide_by_pot(v >> 1, 1)  # F3 (input / 2)
    half_three = (1 << 28) + (1 << 27)  # F3 1.5
    r = np.full(v.shape, 1 << 28, np.int64)  # F3 1.0
    mul = fp.saturating_rounding_doubling_high_mul
    for _ in range(5):
        x3 = fp.saturating_rounding_multiply_by_pot(mul(mul(r, r), r), 6)
        r = fp.saturating_rounding_multiply_by_pot(
            fp.wrap32(mul(half_three, r) - mul(half_input, x3)), 3
        )
    r = mul(r, 1518500250)  # * sqrt(2) / 2
    neg = shift < 0
    r = np.where(neg, fp.wrap32(r << np.where(neg, -shift, 0)), r)
    shift = np.where(neg, 0, shift) * reverse_shift
    return np.where(small, fp.INT32_MAX, r), np.where(small, 0, shift)


@register
class Rsqrt(_Unary):
    """1 / sqrt(x); int8 as TFLM (RsqrtEvalQuantized): a fixed-point inverse square root of
    x - zero point, rescaled by 1 / (sqrt(s_in) * s_out). TFLM refuses inputs below the zero
    point; tinyc maps them, like the zero point itself, to the largest output."""

    kind = "RSQRT"

    def rsqrt_multiplier(self, node: Node, g: Graph) -> tuple[int, int]:
        s_in, _, s_out, _ = _scales(node, g)
        return fp.quantize_multiplier(1.0 / float(np.sqrt(s_in) * s_out))

    def eval_quant(self, node, g, xs):
        _, zp_in, _, zp_out = _scales(node, g)
        m, s = self.rsqrt_multiplier(node, g)
        v = xs[0].astype(np.int64) - zp_in
        inv, inv_shift = inv_sqrt_multiplier_exp(np.maximum(v, 0), -1)
        data = fp.multiply_by_quantized_multiplier(np.ones_like(v), inv, inv_shift + 20)
        out = fp.multiply_by_quantized_multiplier(data, m, s - 20) + zp_out
        return [clamp_cast(np.where(v <= 0, 127, out), -128, 127, "int8")]

    def eval_float(self, node, g, xs):
        with np.errstate(divide="ignore", invalid="ignore"):
            return [(F32(1) / np.sqrt(xs[0].astype(np.float32))).astype(np.float32)]


# -- ELU (TFLM's float32 table) -------------------------------------------------------------


@register
class Elu(_Unary):
    """x for x >= 0, exp(x) - 1 below; int8 as TFLM: a 256-entry table computed in float32
    (PopulateLookupTable)."""

    kind = "ELU"

    def table(self, node: Node, g: Graph) -> np.ndarray:
        s_in, zp_in, s_out, zp_out = _scales(node, g)
        deq = s_in * (ALL_INT8.astype(np.int64) - zp_in).astype(np.float32)
        expm1 = (np.exp(deq.astype(np.float64)).astype(np.float32) - F32(1)).astype(np.float32)
        f = np.where(deq < 0, expm1, deq).astype(np.float32)
        rescaled = fp.round_half_away((f * (F32(1) / s_out)).astype(np.float32))
        return np.clip(rescaled.astype(np.int64) + zp_out, -128, 127).astype(np.int8)

    def eval_quant(self, node, g, xs):
        return [self.table(node, g)[xs[0].view(np.uint8)]]

    def eval_float(self, node, g, xs):
        x = xs[0].astype(np.float32)
        return [np.where(x < 0, np.expm1(x), x).astype(np.float32)]


# -- float-only in TFLM: tinyc's own int8 tables ---------------------------------------------


class _FloatInTflm(_Table):
    """An op TFLM runs in float only; int8 is tinyc's own table of the real function."""

    int8_semantics = "tinyc"


@register
class Exp(_FloatInTflm):
    kind = "EXP"

    @staticmethod
    def real_fn(x):
        with np.errstate(over="ignore"):
            return np.exp(x)


@register
class Log(_FloatInTflm):
    """int8: the table of log(max(x, 1e-30)) (non-positive inputs give the lowest output)."""

    kind = "LOG"

    @staticmethod
    def real_fn(x):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(x)

    def table_fn(self, x):
        return np.log(np.maximum(x, 1e-30))


@register
class Neg(_FloatInTflm):
    kind = "NEG"

    @staticmethod
    def real_fn(x):
        return -x


@register
class Sin(_FloatInTflm):
    kind = "SIN"

    @staticmethod
    def real_fn(x):
        return np.sin(x)


@register
class Cos(_FloatInTflm):
    kind = "COS"

    @staticmethod
    def real_fn(x):
        return np.cos(x)


@register
class Square(_FloatInTflm):
    kind = "SQUARE"

    @staticmethod
    def real_fn(x):
        return x * x


@register
class Floor(_FloatInTflm):
    kind = "FLOOR"

    @staticmethod
    def real_fn(x):
        return np.floor(x)


@register
class Ceil(_FloatInTflm):
    kind = "CEIL"

    @staticmethod
    def real_fn(x):
        return np.ceil(x)


@register
class Round(_FloatInTflm):
    """Halves to even, as TFLite's ROUND."""

    kind = "ROUND"

    @staticmethod
    def real_fn(x):
        return np.round(x)


# -- CAST, LOGICAL_NOT -------------------------------------------------------------------

#: what TFLM's CAST reads and writes
CAST_FROM = ("float32", "int8", "int16", "int32", "bool")
CAST_TO = ("float32", "int8", "int16", "int32")


@register
class Cast(OpDef):
    """C's static_cast of each value (TFLM's CAST ignores quantization parameters): floats
    to integers truncate toward zero (out-of-range values are undefined in TFLM), integers
    wrap, booleans are 0 and 1."""

    kind = "CAST"
    in_place = False

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        x = g.inp(node, 0)
        assert x is not None
        return [(x.shape, g.out(node).dtype)]

    def check(self, node: Node, g: Graph) -> None:
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None
        if x.dtype not in CAST_FROM or y.dtype not in CAST_TO:
            raise TinycError(f"node {node.name!r} (CAST): {x.dtype} -> {y.dtype} is not supported")

    def eval_float(self, node, g, xs):
        x, want = np.asarray(xs[0]), np_dtype(g.out(node).dtype)
        if x.dtype.kind == "f" and want.kind != "f":
            with np.errstate(invalid="ignore"):
                x = np.trunc(x).astype(np.int64)
        return [x.astype(want)]

    def eval_quant(self, node, g, xs):
        return self.eval_float(node, g, xs)


@register
class LogicalNot(OpDef):
    kind = "LOGICAL_NOT"
    in_place = True

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        x = g.inp(node, 0)
        assert x is not None
        return [(x.shape, "bool")]

    def check(self, node: Node, g: Graph) -> None:
        x = g.inp(node, 0)
        assert x is not None
        if x.dtype != "bool":
            raise TinycError(f"node {node.name!r} (LOGICAL_NOT) needs a bool input")

    def eval_float(self, node, g, xs):
        return [np.logical_not(xs[0])]
