"""Elementwise ops of several inputs (numpy broadcasting): MAXIMUM, MINIMUM,
SQUARED_DIFFERENCE, the comparisons (EQUAL ... LESS_EQUAL, bool out), LOGICAL_AND,
LOGICAL_OR, SELECT_V2 and ADD_N, each with TFLM's int8 arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyc.errors import TinycError
from tinyc.ir import fixedpoint as fp
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops.base import OpDef, Spec, broadcast_shape, clamp_cast, register
from tinyc.ir.ops.elementwise import AddSubParams
from tinyc.ir.tensor import Tensor


def _two(node: Node, g: Graph) -> tuple[Tensor, Tensor]:
    a, b = g.inp(node, 0), g.inp(node, 1)
    if a is None or b is None:
        raise TinycError(f"node {node.name!r} ({node.op}) needs two inputs")
    return a, b


class _Elementwise2(OpDef):
    """Two broadcast inputs, one output of ``out_dtype`` (None: the output's own)."""

    in_place = True
    out_dtype: str | None = None
    #: dtypes the op takes without quantization
    plain_dtypes: tuple[str, ...] = ("float32", "int32")

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        a, b = _two(node, g)
        return [(broadcast_shape(a.shape, b.shape), self.out_dtype or g.out(node).dtype)]

    def quantized(self, node: Node, g: Graph) -> bool:
        return bool(g.inp(node, 0) is not None and g.inp(node, 0).is_quantized)

    def check(self, node: Node, g: Graph) -> None:
        a, b = _two(node, g)
        if a.dtype != b.dtype:
            raise TinycError(f"node {node.name!r} ({node.op}): {a.dtype} and {b.dtype} inputs")
        if a.is_quantized or b.is_quantized:
            if a.dtype != "int8" or not (a.quant and b.quant):
                raise TinycError(f"node {node.name!r} ({node.op}): only int8 is quantized")
            if a.quant.per_channel or b.quant.per_channel:
                raise TinycError(f"node {node.name!r} ({node.op}): per-channel operands")
        elif a.dtype not in self.plain_dtypes:
            raise TinycError(f"node {node.name!r} ({node.op}): {a.dtype} is not supported")


# -- MAXIMUM, MINIMUM -------------------------------------------------------------------


class _MinMax(_Elementwise2):
    """Raw values compared: TFLM does not rescale, so int8 operands and the output share
    one quantization."""

    output_quant = "same_as_input"
    fn = staticmethod(np.maximum)

    def check(self, node: Node, g: Graph) -> None:
        super().check(node, g)
        a, b = _two(node, g)
        y = g.out(node)
        if y.dtype != a.dtype:
            raise TinycError(f"node {node.name!r} ({node.op}): {a.dtype} -> {y.dtype}")
        if y.is_quantized and not (y.quant.same_as(a.quant) and y.quant.same_as(b.quant)):
            raise TinycError(
                f"node {node.name!r} ({node.op}): int8 inputs and output must share their "
                "quantization (TFLM does not rescale here)"
            )

    def eval_float(self, node, g, xs):
        return [self.fn(xs[0], xs[1]).astype(xs[0].dtype)]

    def eval_quant(self, node, g, xs):
        return self.eval_float(node, g, xs)


@register
class Maximum(_MinMax):
    kind = "MAXIMUM"
    fn = staticmethod(np.maximum)


@register
class Minimum(_MinMax):
    kind = "MINIMUM"
    fn = staticmethod(np.minimum)


# -- SQUARED_DIFFERENCE ---------------------------------------------------------------------


@register
class SquaredDifference(_Elementwise2):
    kind = "SQUARED_DIFFERENCE"

    def params_int8(self, node: Node, g: Graph) -> AddSubParams:
        """TFLM's ArithmeticParams of int8 SQUARED_DIFFERENCE: ADD's, with 7 bits of headroom
        and the output rescale of the squared difference (no fused activation)."""
        a, b = _two(node, g)
        y = g.out(node)
        assert a.quant and b.quant and y.quant
        left_shift = 7
        twice_max = 2.0 * float(max(a.quant.s, b.quant.s))
        m1, s1 = fp.quantize_multiplier(float(a.quant.s) / twice_max)
        m2, s2 = fp.quantize_multiplier(float(b.quant.s) / twice_max)
        real_out = twice_max * twice_max / float(np.float32(1 << (2 * left_shift)) * y.quant.s)
        mo, so = fp.quantize_multiplier(real_out)
        return AddSubParams(
            left_shift, a.quant.zp, b.quant.zp, y.quant.zp, m1, s1, m2, s2, mo, so, -128, 127
        )

    def eval_quant(self, node, g, xs):
        p = self.params_int8(node, g)
        mbqm = fp.multiply_by_quantized_multiplier
        v1 = mbqm((xs[0].astype(np.int64) - p.input1_zp) << p.left_shift, p.input1_multiplier,
                  p.input1_shift)  # fmt: skip
        v2 = mbqm((xs[1].astype(np.int64) - p.input2_zp) << p.left_shift, p.input2_multiplier,
                  p.input2_shift)  # fmt: skip
        d = v1 - v2
        out = mbqm(fp.wrap32(d * d), p.output_multiplier, p.output_shift) + p.output_zp
        return [clamp_cast(out, -128, 127, "int8")]

    def eval_float(self, node, g, xs):
        d = xs[0] - xs[1]
        return [(d * d).astype(xs[0].dtype)]


# -- comparisons (bool output) ----------------------------------------------------------------


@dataclass
class CompareParams:
    """TFLM's ComparisonParams for int8: each input shifted left by 8, then rescaled by its
    own scale (QuantizeMultiplierSmallerThanOneExp)."""

    left_shift: int
    input1_zp: int
    input1_multiplier: int
    input1_shift: int
    input2_zp: int
    input2_multiplier: int
    input2_shift: int


class _Compare(_Elementwise2):
    out_dtype = "bool"
    plain_dtypes = ("float32", "int32")
    fn = staticmethod(np.equal)

    def check(self, node: Node, g: Graph) -> None:
        super().check(node, g)
        a, b = _two(node, g)
        if a.is_quantized and max(float(a.quant.s), float(b.quant.s)) >= 1.0:
            raise TinycError(
                f"node {node.name!r} ({node.op}): TFLM compares int8 values of scales below 1"
            )

    def compare_params(self, node: Node, g: Graph) -> CompareParams:
        a, b = _two(node, g)
        assert a.quant and b.quant
        m1, s1 = fp.quantize_multiplier(float(a.quant.s))
        m2, s2 = fp.quantize_multiplier(float(b.quant.s))
        return CompareParams(8, a.quant.zp, m1, s1, b.quant.zp, m2, s2)

    def eval_quant(self, node, g, xs):
        p = self.compare_params(node, g)
        mbqm = fp.multiply_by_quantized_multiplier
        v1 = mbqm((xs[0].astype(np.int64) - p.input1_zp) << p.left_shift, p.input1_multiplier,
                  p.input1_shift)  # fmt: skip
        v2 = mbqm((xs[1].astype(np.int64) - p.input2_zp) << p.left_shift, p.input2_multiplier,
                  p.input2_shift)  # fmt: skip
        return [self.fn(v1, v2)]

    def eval_float(self, node, g, xs):
        return [self.fn(xs[0], xs[1])]


@register
class Equal(_Compare):
    kind = "EQUAL"
    plain_dtypes = ("float32", "int32", "bool")
    fn = staticmethod(np.equal)


@register
class NotEqual(_Compare):
    kind = "NOT_EQUAL"
    plain_dtypes = ("float32", "int32", "bool")
    fn = staticmethod(np.not_equal)


@register
class Greater(_Compare):
    kind = "GREATER"
    fn = staticmethod(np.greater)


@register
class GreaterEqual(_Compare):
    kind = "GREATER_EQUAL"
    fn = staticmethod(np.greater_equal)


@register
class Less(_Compare):
    kind = "LESS"
    fn = staticmethod(np.less)


@register
class LessEqual(_Compare):
    kind = "LESS_EQUAL"
    fn = staticmethod(np.less_equal)


class _Logical(_Elementwise2):
    out_dtype = "bool"
    plain_dtypes = ("bool",)
    fn = staticmethod(np.logical_and)

    def eval_float(self, node, g, xs):
        return [self.fn(xs[0], xs[1])]


@register
class LogicalAnd(_Logical):
    kind = "LOGICAL_AND"
    fn = staticmethod(np.logical_and)


@register
class LogicalOr(_Logical):
    kind = "LOGICAL_OR"
    fn = staticmethod(np.logical_or)


# -- SELECT_V2 ------------------------------------------------------------------------------


@register
class SelectV2(OpDef):
    """``x`` where the bool condition holds, else ``y`` (all three broadcast); raw values,
    so int8 ``x``, ``y`` and the output share one quantization."""

    kind = "SELECT_V2"
    output_quant = "same_as_input"

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        c, x, y = (g.inp(node, i) for i in range(3))
        if c is None or x is None or y is None:
            raise TinycError(f"node {node.name!r} (SELECT_V2) needs three inputs")
        shape = broadcast_shape(broadcast_shape(c.shape, x.shape), y.shape)
        return [(shape, x.dtype)]

    def quantized(self, node: Node, g: Graph) -> bool:
        return False  # raw values either way

    def check(self, node: Node, g: Graph) -> None:
        c, x, y = (g.inp(node, i) for i in range(3))
        out = g.out(node)
        assert c is not None and x is not None and y is not None
        if c.dtype != "bool" or x.dtype != y.dtype or x.dtype not in ("float32", "int8", "int32"):
            raise TinycError(
                f"node {node.name!r} (SELECT_V2): a bool condition and two float32, int8 or "
                "int32 inputs of one dtype"
            )
        if out.is_quantized and not (out.quant.same_as(x.quant) and out.quant.same_as(y.quant)):
            raise TinycError(
                f"node {node.name!r} (SELECT_V2): int8 inputs and output must share their "
                "quantization"
            )

    def eval_float(self, node, g, xs):
        return [np.where(xs[0], xs[1], xs[2]).astype(xs[1].dtype)]


# -- ADD_N --------------------------------------------------------------------------------


@dataclass
class AddNParams:
    input_zp: int
    output_zp: int
    input_multiplier: int
    input_shift: int
    output_multiplier: int
    output_shift: int


@register
class AddN(OpDef):
    """The sum of two or more inputs of one shape; int8 inputs share one quantization and
    follow TFLM's AddN, which starts its sum from the rescaled input offset (-zero point),
    so its result differs from the plain sum by that term."""

    kind = "ADD_N"
    in_place = True

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        ins = [g.tensors[i] for i in node.inputs]
        if len(ins) < 2 or any(t.shape != ins[0].shape for t in ins):
            raise TinycError(f"node {node.name!r} (ADD_N): two or more inputs of one shape")
        return [(ins[0].shape, g.out(node).dtype)]

    def check(self, node: Node, g: Graph) -> None:
        ins = [g.tensors[i] for i in node.inputs]
        y = g.out(node)
        if any(t.dtype != y.dtype for t in ins):
            raise TinycError(f"node {node.name!r} (ADD_N): inputs and output of one dtype")
        if y.is_quantized:
            if y.dtype != "int8" or not all(t.quant and t.quant.same_as(ins[0].quant) for t in ins):
                raise TinycError(f"node {node.name!r} (ADD_N): int8 inputs of one quantization")
        elif y.dtype not in ("float32", "int32"):
            raise TinycError(f"node {node.name!r} (ADD_N): {y.dtype} is not supported")

    def quant_ties(self, node: Node, g: Graph) -> list[list[str]]:
        return [list(node.inputs)]

    def add_n_params(self, node: Node, g: Graph) -> AddNParams:
        x, y = g.tensors[node.inputs[0]], g.out(node)
        assert x.quant and y.quant
        twice = 2 * float(x.quant.s)
        mi, si = fp.quantize_multiplier(float(x.quant.s) / twice)
        mo, so = fp.quantize_multiplier(twice / ((1 << 20) * float(y.quant.s)))
        return AddNParams(x.quant.zp, y.quant.zp, mi, si, mo, so)

    def eval_quant(self, node, g, xs):
        p = self.add_n_params(node, g)
        mbqm = fp.multiply_by_quantized_multiplier
        acc = mbqm(np.full(xs[0].shape, -p.input_zp << 20), p.input_multiplier, p.input_shift)
        for x in xs:
            acc = acc + mbqm((x.astype(np.int64) - p.input_zp) << 20, p.input_multiplier,
                             p.input_shift)  # fmt: skip
        out = mbqm(fp.wrap32(acc), p.output_multiplier, p.output_shift) + p.output_zp
        return [clamp_cast(out, -128, 127, "int8")]

    def eval_float(self, node, g, xs):
        total = xs[0].copy()
        for x in xs[1:]:
            total = total + x
        return [total.astype(xs[0].dtype)]


# -- FLOOR_DIV, FLOOR_MOD (float in TFLM) ------------------------------------------------


class _FloorBinary(_Elementwise2):
    plain_dtypes = ("float32",)
    int8_semantics = ""


@register
class FloorDiv(_FloorBinary):
    """floor(a / b), the quotient in float32 as TFLM."""

    kind = "FLOOR_DIV"

    def eval_float(self, node, g, xs):
        with np.errstate(divide="ignore", invalid="ignore"):
            return [np.floor(xs[0].astype(np.float32) / xs[1].astype(np.float32))]


@register
class FloorMod(_FloorBinary):
    """The remainder with the divisor's sign (fmod, then moved by the divisor)."""

    kind = "FLOOR_MOD"

    def eval_float(self, node, g, xs):
        a, b = np.broadcast_arrays(xs[0].astype(np.float32), xs[1].astype(np.float32))
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.fmod(a, b)
        return [np.where((r != 0) & ((b < 0) != (r < 0)), r + b, r).astype(np.float32)]
