"""QUANTIZE (float -> int, or int -> int requantization) and DEQUANTIZE."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyc.errors import TinycError
from tinyc.ir.fixedpoint import (
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    round_half_away,
)
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops.base import OpDef, Spec, clamp_cast, register
from tinyc.ir.tensor import dtype_range


def quantize_array(x: np.ndarray, scale: np.float32, zero_point: int, dtype: str) -> np.ndarray:
    """TFLM's AffineQuantize: round(x / scale) in float32, plus the zero point, clamped.
    Infinities saturate as Arm's float -> int32 conversion does (a -inf mask fill -> qmin)."""
    with np.errstate(over="ignore", invalid="ignore"):
        r = np.clip(x.astype(np.float32) / np.float32(scale), -(2.0**31), 2.0**31)
    q = round_half_away(r).astype(np.int64) + zero_point
    lo, hi = dtype_range(dtype)
    return clamp_cast(q, lo, hi, dtype)


@dataclass
class RequantParams:
    input_zp: int
    output_zp: int
    multiplier: int
    shift: int


class _Convert(OpDef):
    in_place = False

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        x = g.inp(node, 0)
        assert x is not None
        return [(x.shape, g.out(node).dtype)]

    def quantized(self, node: Node, g: Graph) -> bool:
        return True


@register
class Quantize(_Convert):
    kind = "QUANTIZE"

    def check(self, node: Node, g: Graph) -> None:
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None
        integer = y.quant is not None and y.dtype in ("int8", "int16", "int32", "uint8")
        if not integer or (y.quant and y.quant.per_channel):
            raise TinycError(f"node {node.name!r}: QUANTIZE needs a per-tensor quantized output")
        if x.dtype != "float32" and not x.is_quantized:
            raise TinycError(f"node {node.name!r}: QUANTIZE from {x.dtype} is not supported")

    def requant(self, node: Node, g: Graph) -> RequantParams:
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None and x.quant is not None and y.quant is not None
        m, s = quantize_multiplier(float(x.quant.s) / float(y.quant.s))
        return RequantParams(x.quant.zp, y.quant.zp, m, s)

    def eval_quant(self, node, g, xs):
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None and y.quant is not None
        if x.dtype == "float32":
            return [quantize_array(xs[0], y.quant.s, y.quant.zp, y.dtype)]
        p = self.requant(node, g)
        out = multiply_by_quantized_multiplier(
            xs[0].astype(np.int64) - p.input_zp, p.multiplier, p.shift
        )
        lo, hi = dtype_range(y.dtype)
        return [clamp_cast(out + p.output_zp, lo, hi, y.dtype)]


@register
class Dequantize(_Convert):
    kind = "DEQUANTIZE"

    def check(self, node: Node, g: Graph) -> None:
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None
        if not x.is_quantized or y.dtype != "float32":
            raise TinycError(
                f"node {node.name!r}: DEQUANTIZE needs a quantized input, float output"
            )

    def eval_quant(self, node, g, xs):
        x = g.inp(node, 0)
        assert x is not None and x.quant is not None
        return [x.quant.dequantize(xs[0])]
