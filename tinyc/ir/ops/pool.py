"""AVERAGE_POOL_2D and MAX_POOL_2D (NHWC, padding never counted)."""

from __future__ import annotations

import numpy as np

from tinyc.errors import TinycError
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops.base import (
    OpDef,
    Spec,
    activation_float,
    activation_range_quant,
    attr,
    clamp_cast,
    register,
)
from tinyc.ir.ops.window import patches, valid_mask, window_out_shape


class _Pool(OpDef):
    attrs = {"filter": None, "stride": (1, 1), "pads": (0, 0, 0, 0), "activation": "NONE"}
    output_quant = "same_as_input"

    def geometry(self, node: Node) -> tuple[tuple[int, int], ...]:
        return (
            tuple(attr(node, "filter")),
            tuple(attr(node, "stride")),
            (1, 1),
            tuple(attr(node, "pads")),
        )

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        x = g.inp(node, 0)
        assert x is not None
        if len(x.shape) != 4:
            raise TinycError(f"node {node.name!r} ({node.op}) needs a 4-D NHWC input")
        k, s, d, p = self.geometry(node)
        oh, ow = window_out_shape(node.name, x.shape[1:3], k, s, d, p)
        return [((x.shape[0], oh, ow, x.shape[3]), x.dtype)]

    def check(self, node: Node, g: Graph) -> None:
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None
        if y.is_quantized and not (x.quant and x.quant.same_as(y.quant)):
            raise TinycError(
                f"node {node.name!r} ({node.op}): int8 pooling needs equal input and output "
                "quantization (TFLM does not rescale here)"
            )

    def _windows(self, node: Node, g: Graph, x: np.ndarray, pad) -> tuple[np.ndarray, np.ndarray]:
        k, s, d, p = self.geometry(node)
        out_hw = g.out(node).shape[1:3]
        cols = patches(x, k, s, d, p, out_hw, pad)
        mask = valid_mask(x.shape[1:3], k, s, p, out_hw)
        return cols, mask

    def macs(self, node: Node, g: Graph) -> int:
        return 0


@register
class AveragePool2D(_Pool):
    kind = "AVERAGE_POOL_2D"

    def eval_quant(self, node, g, xs):
        cols, mask = self._windows(node, g, xs[0].astype(np.int64), 0)
        acc = cols.sum(axis=(3, 4))
        count = mask.sum(axis=(3, 4)).astype(np.int64)
        half = count // 2
        # C integer division truncates toward zero.
        pos = (acc + half) // count
        neg = -((-(acc - half)) // count)
        avg = np.where(acc > 0, pos, neg)
        y = g.out(node)
        lo, hi = activation_range_quant(attr(node, "activation"), y)
        return [clamp_cast(avg, lo, hi, y.dtype)]

    def eval_float(self, node, g, xs):
        cols, mask = self._windows(node, g, xs[0].astype(np.float64), 0.0)
        avg = cols.sum(axis=(3, 4)) / mask.sum(axis=(3, 4))
        return [activation_float(avg, attr(node, "activation")).astype(np.float32)]


@register
class MaxPool2D(_Pool):
    kind = "MAX_POOL_2D"

    def eval_quant(self, node, g, xs):
        lo_dtype = np.iinfo(xs[0].dtype).min
        cols, _ = self._windows(node, g, xs[0], lo_dtype)
        y = g.out(node)
        lo, hi = activation_range_quant(attr(node, "activation"), y)
        return [clamp_cast(cols.max(axis=(3, 4)).astype(np.int64), lo, hi, y.dtype)]

    def eval_float(self, node, g, xs):
        cols, _ = self._windows(node, g, xs[0], -np.inf)
        return [
            activation_float(cols.max(axis=(3, 4)), attr(node, "activation")).astype(np.float32)
        ]
