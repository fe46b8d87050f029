"""MEAN over axes, with TFLM's integer mean (sum, then one requantization)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyc.errors import TinycError
from tinyc.ir.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier, wrap32
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops.base import OpDef, Spec, attr, clamp_cast, normalize_axis, register
from tinyc.ir.tensor import dtype_range


@dataclass
class MeanParams:
    count: int  # elements averaged into each output
    input_zp: int
    output_zp: int
    multiplier: int  # includes the 1/count factor
    shift: int


@register
class Mean(OpDef):
    kind = "MEAN"
    attrs = {"axes": None, "keep_dims": False}

    def axes(self, node: Node, g: Graph) -> tuple[int, ...]:
        x = g.inp(node, 0)
        assert x is not None
        return tuple(sorted({normalize_axis(a, len(x.shape), node) for a in attr(node, "axes")}))

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        x = g.inp(node, 0)
        assert x is not None
        axes = self.axes(node, g)
        if attr(node, "keep_dims"):
            shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
        else:
            shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
        return [(shape, g.out(node).dtype)]

    def check(self, node: Node, g: Graph) -> None:
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None
        if y.is_quantized and (x.dtype != "int8" or y.dtype != "int8"):
            raise TinycError(f"node {node.name!r} (MEAN): only int8 or float32")

    def mean_params(self, node: Node, g: Graph) -> MeanParams:
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None and x.quant is not None and y.quant is not None
        count = int(np.prod([x.shape[a] for a in self.axes(node, g)], dtype=np.int64))
        mult, shift = quantize_multiplier(float(x.quant.s) / float(y.quant.s))
        n_shift = min(count.bit_length() - 1, 32, 31 + shift)
        mult = (mult << n_shift) // count
        return MeanParams(count, x.quant.zp, y.quant.zp, mult, shift - n_shift)

    def eval_quant(self, node, g, xs):
        p = self.mean_params(node, g)
        axes = self.axes(node, g)
        total = wrap32(xs[0].astype(np.int64).sum(axis=axes) - p.input_zp * p.count)
        out = multiply_by_quantized_multiplier(total, p.multiplier, p.shift) + p.output_zp
        y = g.out(node)
        lo, hi = dtype_range(y.dtype)
        return [clamp_cast(out, lo, hi, y.dtype).reshape(y.shape)]

    def eval_float(self, node, g, xs):
        axes = self.axes(node, g)
        y = g.out(node)
        return [xs[0].astype(np.float64).mean(axis=axes).astype(np.float32).reshape(y.shape)]
