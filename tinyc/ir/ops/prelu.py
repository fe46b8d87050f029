"""PRELU: x for x >= 0, alpha * x below, with TFLM's int8 kernel (two requantizations)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyc.errors import TinycError
from tinyc.ir.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops.base import OpDef, Spec, broadcast_shape, clamp_cast, register


@dataclass
class PreluParams:
    """TFLM's PreluParams: the input rescaled by ``multiplier_1`` where it is >= 0, and
    input times alpha rescaled by ``multiplier_2`` below."""

    input_zp: int
    alpha_zp: int
    output_zp: int
    multiplier_1: int
    shift_1: int
    multiplier_2: int
    shift_2: int


@register
class Prelu(OpDef):
    """PRELU; ``alpha`` (input 1) broadcasts to the input's shape. In int8 the alpha
    tensor is quantized per tensor (TFLM reads one scale and zero point)."""

    kind = "PRELU"

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        x, a = g.inp(node, 0), g.inp(node, 1)
        if x is None or a is None:
            raise TinycError(f"node {node.name!r} (PRELU) needs an input and alpha")
        if broadcast_shape(x.shape, a.shape) != x.shape:
            raise TinycError(
                f"node {node.name!r} (PRELU): alpha {list(a.shape)} does not broadcast to "
                f"{list(x.shape)}"
            )
        return [(x.shape, g.out(node).dtype)]

    def check(self, node: Node, g: Graph) -> None:
        x, a, y = g.inp(node, 0), g.inp(node, 1), g.out(node)
        assert x is not None and a is not None
        if y.is_quantized:
            if {x.dtype, a.dtype, y.dtype} != {"int8"} or not (x.quant and a.quant):
                raise TinycError(f"node {node.name!r} (PRELU): int8 input, alpha and output")
            if a.quant.per_channel:
                raise TinycError(f"node {node.name!r} (PRELU): alpha quantized per channel")
        elif {x.dtype, a.dtype, y.dtype} != {"float32"}:
            raise TinycError(f"node {node.name!r} (PRELU): float32 or int8 only")

    def prelu_params(self, node: Node, g: Graph) -> PreluParams:
        """CalculatePreluParams: ratios in double from the float32 scales."""
        x, a, y = g.inp(node, 0), g.inp(node, 1), g.out(node)
        assert x and a and x.quant and a.quant and y.quant
        sx, sa, sy = float(x.quant.s), float(a.quant.s), float(y.quant.s)
        m1, s1 = quantize_multiplier(sx / sy)
        m2, s2 = quantize_multiplier(sx * sa / sy)
        return PreluParams(x.quant.zp, a.quant.zp, y.quant.zp, m1, s1, m2, s2)

    def eval_quant(self, node, g, xs):
        p = self.prelu_params(node, g)
        v = xs[0].astype(np.int64) - p.input_zp
        av = np.broadcast_to(xs[1].astype(np.int64) - p.alpha_zp, v.shape)
        pos = multiply_by_quantized_multiplier(v, p.multiplier_1, p.shift_1)
        neg = multiply_by_quantized_multiplier(v * av, p.multiplier_2, p.shift_2)
        out = np.where(v >= 0, pos, neg) + p.output_zp
        return [clamp_cast(out, -128, 127, "int8")]

    def eval_float(self, node, g, xs):
        x = xs[0].astype(np.float32)
        return [np.where(x >= 0, x, x * xs[1].astype(np.float32)).astype(np.float32)]
