"""ADD, SUB and MUL with numpy broadcasting and TFLM's requantizing int8 arithmetic."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyc.errors import TinycError
from tinyc.ir.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier, wrap32
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops.base import (
    OpDef,
    Spec,
    activation_float,
    activation_range_quant,
    attr,
    broadcast_shape,
    clamp_cast,
    register,
)


@dataclass
class AddSubParams:
    """TFLM's ArithmeticParams for int8 ADD/SUB: both inputs rescaled to a common scale
    (with ``left_shift`` bits of headroom), summed, then rescaled to the output."""

    left_shift: int
    input1_zp: int
    input2_zp: int
    output_zp: int
    input1_multiplier: int
    input1_shift: int
    input2_multiplier: int
    input2_shift: int
    output_multiplier: int
    output_shift: int
    act_min: int
    act_max: int


class _Binary(OpDef):
    attrs = {"activation": "NONE"}
    in_place = True
    #: TFLM also runs the op on int32 tensors (index arithmetic: a loop counter, a shape)
    int32: bool = False

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        a, b = g.inp(node, 0), g.inp(node, 1)
        if a is None or b is None:
            raise TinycError(f"node {node.name!r} ({node.op}) needs two inputs")
        return [(broadcast_shape(a.shape, b.shape), g.out(node).dtype)]

    def check(self, node: Node, g: Graph) -> None:
        a, b, y = g.inp(node, 0), g.inp(node, 1), g.out(node)
        assert a is not None and b is not None
        if y.is_quantized and (a.dtype != "int8" or b.dtype != "int8" or y.dtype != "int8"):
            raise TinycError(f"node {node.name!r} ({node.op}): only int8 or float32 operands")
        if self.int32 and a.dtype == b.dtype == y.dtype == "int32":
            return
        if not y.is_quantized and y.dtype != "float32":
            raise TinycError(f"node {node.name!r} ({node.op}): {y.dtype} is not supported")

    def eval_float(self, node, g, xs):
        if g.out(node).dtype == "int32":  # TFLM's int32 kernels: wrapping int32 arithmetic
            r = self.float_fn(xs[0].astype(np.int64), xs[1].astype(np.int64))
            return [activation_float(r, attr(node, "activation")).astype(np.int32)]
        r = self.float_fn(xs[0].astype(np.float32), xs[1].astype(np.float32))
        return [activation_float(r, attr(node, "activation")).astype(np.float32)]

    @staticmethod
    def float_fn(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class _AddSub(_Binary):
    sign: int = 1

    def arith(self, node: Node, g: Graph) -> AddSubParams:
        a, b, y = g.inp(node, 0), g.inp(node, 1), g.out(node)
        assert a and b and a.quant and b.quant and y.quant
        left_shift = 20
        s1, s2, so = a.quant.s, b.quant.s, y.quant.s
        if self.kind == "SUB":
            # TFLM's SUB computes its ratios in float32, ADD in double.
            twice_max = np.float32(2) * max(s1, s2)
            m1 = float(np.float32(s1 / twice_max))
            m2 = float(np.float32(s2 / twice_max))
            mo = float(np.float32(twice_max / (np.float32(1 << left_shift) * so)))
        else:
            twice_max = 2 * float(max(s1, s2))
            m1 = float(s1) / twice_max
            m2 = float(s2) / twice_max
            mo = twice_max / ((1 << left_shift) * float(so))
        (q1, sh1), (q2, sh2), (qo, sho) = (quantize_multiplier(m) for m in (m1, m2, mo))
        lo, hi = activation_range_quant(attr(node, "activation"), y)
        return AddSubParams(
            left_shift, a.quant.zp, b.quant.zp, y.quant.zp, q1, sh1, q2, sh2, qo, sho, lo, hi
        )

    def eval_quant(self, node, g, xs):
        p = self.arith(node, g)
        a = (xs[0].astype(np.int64) - p.input1_zp) << p.left_shift
        b = (xs[1].astype(np.int64) - p.input2_zp) << p.left_shift
        sa = multiply_by_quantized_multiplier(a, p.input1_multiplier, p.input1_shift)
        sb = multiply_by_quantized_multiplier(b, p.input2_multiplier, p.input2_shift)
        raw = wrap32(sa + self.sign * sb)
        out = multiply_by_quantized_multiplier(raw, p.output_multiplier, p.output_shift)
        return [clamp_cast(out + p.output_zp, p.act_min, p.act_max, g.out(node).dtype)]


@register
class Add(_AddSub):
    kind = "ADD"
    int32 = True
    sign = 1

    @staticmethod
    def float_fn(a, b):
        return a + b


@register
class Sub(_AddSub):
    kind = "SUB"
    int32 = True
    sign = -1

    @staticmethod
    def float_fn(a, b):
        return a - b


@dataclass
class MulParams:
    input1_zp: int
    input2_zp: int
    output_zp: int
    multiplier: int
    shift: int
    act_min: int
    act_max: int


@register
class Mul(_Binary):
    kind = "MUL"
    int32 = True

    @staticmethod
    def float_fn(a, b):
        return a * b

    def arith(self, node: Node, g: Graph) -> MulParams:
        a, b, y = g.inp(node, 0), g.inp(node, 1), g.out(node)
        assert a and b and a.quant and b.quant and y.quant
        m, s = quantize_multiplier(float(a.quant.s) * float(b.quant.s) / float(y.quant.s))
        lo, hi = activation_range_quant(attr(node, "activation"), y)
        return MulParams(a.quant.zp, b.quant.zp, y.quant.zp, m, s, lo, hi)

    def eval_quant(self, node, g, xs):
        p = self.arith(node, g)
        prod = wrap32(
            (xs[0].astype(np.int64) - p.input1_zp) * (xs[1].astype(np.int64) - p.input2_zp)
        )
        out = multiply_by_quantized_multiplier(prod, p.multiplier, p.shift) + p.output_zp
        return [clamp_cast(out, p.act_min, p.act_max, g.out(node).dtype)]

    def macs(self, node: Node, g: Graph) -> int:
        return 0
