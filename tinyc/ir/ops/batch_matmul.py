"""BATCH_MATMUL: a product of two run-time (or constant) matrices per batch entry, with
TFLite's ``adj_x`` / ``adj_y`` (transpose the last two axes of an operand first) and
numpy broadcasting of the batch axes. int8 follows TFLM's reference kernel: int32 sums of
(lhs - lhs_zp) * (rhs - rhs_zp), one MultiplyByQuantizedMultiplier with the multiplier
float32(lhs_scale * rhs_scale) / output_scale, the output zero point, int8 saturation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyc.errors import TinycError
from tinyc.ir.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier, wrap32
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops.base import OpDef, Spec, attr, broadcast_shape, clamp_cast, register


@dataclass
class BatchMatMulParams:
    lhs_zp: int
    rhs_zp: int
    output_zp: int
    multiplier: int
    shift: int


def _operands(node: Node, g: Graph):
    a, b = g.inp(node, 0), g.inp(node, 1)
    if a is None or b is None:
        raise TinycError(f"node {node.name!r} (BATCH_MATMUL) needs two inputs")
    return a, b


@register
class BatchMatMul(OpDef):
    kind = "BATCH_MATMUL"
    attrs = {"adj_x": False, "adj_y": False}

    def dims(self, node: Node, g: Graph) -> tuple[tuple[int, ...], int, int, int]:
        """(broadcast batch shape, rows, depth, columns)."""
        a, b = _operands(node, g)
        if len(a.shape) < 2 or len(b.shape) < 2:
            raise TinycError(f"node {node.name!r} (BATCH_MATMUL): operands need rank >= 2")
        m, k = a.shape[-2:][::-1] if attr(node, "adj_x") else a.shape[-2:]
        k2, n = b.shape[-2:][::-1] if attr(node, "adj_y") else b.shape[-2:]
        if k != k2:
            raise TinycError(
                f"node {node.name!r} (BATCH_MATMUL): {list(a.shape)} x {list(b.shape)} "
                f"(adj_x={attr(node, 'adj_x')}, adj_y={attr(node, 'adj_y')}) do not multiply"
            )
        batch = broadcast_shape(a.shape[:-2], b.shape[:-2])
        return batch, m, k, n

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        batch, m, _, n = self.dims(node, g)
        return [((*batch, m, n), g.out(node).dtype)]

    def check(self, node: Node, g: Graph) -> None:
        a, b = _operands(node, g)
        y = g.out(node)
        if y.is_quantized:
            if a.dtype != "int8" or b.dtype != "int8" or y.dtype != "int8":
                raise TinycError(f"node {node.name!r} (BATCH_MATMUL): only int8 or float32")
            for t in (a, b):
                if t.quant is None or t.quant.per_channel:
                    raise TinycError(
                        f"node {node.name!r} (BATCH_MATMUL): operands need per-tensor parameters"
                    )
        elif a.dtype != "float32" or b.dtype != "float32" or y.dtype != "float32":
            raise TinycError(f"node {node.name!r} (BATCH_MATMUL): only int8 or float32")

    def _matrices(self, node: Node, xs) -> tuple[np.ndarray, np.ndarray]:
        a, b = xs[0], xs[1]
        if attr(node, "adj_x"):
            a = np.swapaxes(a, -1, -2)
        if attr(node, "adj_y"):
            b = np.swapaxes(b, -1, -2)
        return a, b

    def bmm_params(self, node: Node, g: Graph) -> BatchMatMulParams:
        a, b = _operands(node, g)
        y = g.out(node)
        assert a.quant is not None and b.quant is not None and y.quant is not None
        real = float(np.float32(a.quant.s * b.quant.s)) / float(y.quant.s)
        mult, shift = quantize_multiplier(real)
        return BatchMatMulParams(a.quant.zp, b.quant.zp, y.quant.zp, mult, shift)

    def eval_quant(self, node, g, xs):
        p = self.bmm_params(node, g)
        a, b = self._matrices(node, xs)
        # float64 products of int8 differences are exact while |sum| < 2^53
        acc = np.matmul(a.astype(np.float64) - p.lhs_zp, b.astype(np.float64) - p.rhs_zp)
        acc = wrap32(acc.astype(np.int64))
        out = multiply_by_quantized_multiplier(acc, p.multiplier, p.shift) + p.output_zp
        return [clamp_cast(out, -128, 127, "int8").reshape(g.out(node).shape)]

    def eval_float(self, node, g, xs):
        a, b = self._matrices(node, xs)
        out = np.matmul(a.astype(np.float64), b.astype(np.float64))
        return [out.astype(np.float32).reshape(g.out(node).shape)]

    def macs(self, node: Node, g: Graph) -> int:
        batch, m, k, n = self.dims(node, g)
        return int(np.prod(batch, dtype=np.int64)) * m * k * n
