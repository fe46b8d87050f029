"""RESIZE_NEAREST_NEIGHBOR and RESIZE_BILINEAR (NHWC, height and width), as TFLM computes them.

Both map each output row and column to input rows and columns with TFLM's own arithmetic
(float32 for the nearest neighbour and the float bilinear, TFLM's 10-bit fixed point for the
int8 bilinear), so the index tables tinyc derives here are the ones TFLM uses. Neither
rescales an int8 value: the output keeps the input's quantization.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyc.errors import TinycError
from tinyc.ir.fixedpoint import round_half_away
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops.base import OpDef, Spec, attr, register


def _trunc_div(x: np.ndarray, d: int) -> np.ndarray:
    """C integer division (toward zero) by a positive ``d``."""
    return np.where(x >= 0, x // d, -((-x) // d))


def nearest_indices(out_size: int, in_size: int, align: bool, half: bool) -> np.ndarray:
    """GetNearestNeighbor for every output position (float32 as TFLM)."""
    f32 = np.float32
    if align and out_size > 1:
        scale = f32(in_size - 1) / f32(out_size - 1)
    else:
        scale = f32(in_size) / f32(out_size)
    pos = (np.arange(out_size, dtype=np.float32) + f32(0.5 if half else 0.0)) * scale
    idx = round_half_away(pos) if align else np.floor(pos)
    idx = np.minimum(idx.astype(np.int64), in_size - 1)
    if half:
        idx = np.maximum(idx, 0)
    return idx


@dataclass
class BilinearAxis:
    """One axis of the int8 bilinear: per output position the two input positions and the
    weight of the second (Q10; the first weighs 1024 - it)."""

    lo: np.ndarray
    hi: np.ndarray
    frac: np.ndarray


def bilinear_axis_q10(out_size: int, in_size: int, align: bool, half: bool) -> BilinearAxis:
    """ComputeInterpolationValuesInteger for every output position."""
    if align and out_size > 1:
        scale = ((1 << 10) * (in_size - 1) + (out_size - 1) // 2) // (out_size - 1)
    else:
        scale = ((1 << 10) * in_size + out_size // 2) // out_size
    v = np.arange(out_size, dtype=np.int64)
    scaled = v * scale + scale // 2 - (1 << 9) if half else v * scale
    lo = np.maximum(_trunc_div(scaled, 1 << 10), 0)
    hi = np.minimum(_trunc_div(scaled + (1 << 10) - 1, 1 << 10), in_size - 1)
    return BilinearAxis(lo, hi, scaled - (lo << 10))


def _bilinear_axis_float(
    out_size: int, in_size: int, align: bool, half: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ComputeInterpolationValues (float32): (scaled position, lower, upper)."""
    f32 = np.float32
    scale = f32(in_size) / f32(out_size)
    if align and out_size > 1:
        scale = f32(in_size - 1) / f32(out_size - 1)
    v = np.arange(out_size, dtype=np.float32)
    pos = (v + f32(0.5)) * scale - f32(0.5) if half else v * scale
    lo = np.maximum(np.floor(pos).astype(np.int64), 0)
    hi = np.minimum(np.ceil(pos).astype(np.int64), in_size - 1)
    return pos.astype(np.float32), lo, hi


class _Resize(OpDef):
    """``size``: the output (height, width); the input is 4-D NHWC."""

    attrs = {"size": None, "align_corners": False, "half_pixel_centers": False}
    output_quant = "same_as_input"

    def flags(self, node: Node) -> tuple[bool, bool]:
        return bool(attr(node, "align_corners")), bool(attr(node, "half_pixel_centers"))

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        x = g.inp(node, 0)
        if x is None or len(x.shape) != 4:
            raise TinycError(f"node {node.name!r} ({node.op}) needs a 4-D NHWC input")
        h, w = (int(v) for v in attr(node, "size"))
        if h <= 0 or w <= 0:
            raise TinycError(f"node {node.name!r} ({node.op}): output size {[h, w]}")
        return [((x.shape[0], h, w, x.shape[3]), x.dtype)]

    def check(self, node: Node, g: Graph) -> None:
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None
        if y.dtype != x.dtype or (y.is_quantized and not (x.quant and x.quant.same_as(y.quant))):
            raise TinycError(
                f"node {node.name!r} ({node.op}): the output must keep the input's dtype and "
                "quantization"
            )
        if y.dtype not in self.dtypes:
            raise TinycError(f"node {node.name!r} ({node.op}): {y.dtype} is not supported")

    def bytes_moved(self, node: Node, g: Graph) -> tuple[int, int]:
        return g.out(node).nbytes, g.out(node).nbytes


@register
class ResizeNearestNeighbor(_Resize):
    kind = "RESIZE_NEAREST_NEIGHBOR"
    dtypes = ("float32", "int8", "int16", "int32")

    def indices(self, node: Node, g: Graph) -> tuple[np.ndarray, np.ndarray]:
        """(input row per output row, input column per output column)."""
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None
        align, half = self.flags(node)
        return (
            nearest_indices(y.shape[1], x.shape[1], align, half),
            nearest_indices(y.shape[2], x.shape[2], align, half),
        )

    def eval_float(self, node, g, xs):
        ys, xs_ = self.indices(node, g)
        return [np.ascontiguousarray(xs[0][:, ys][:, :, xs_])]

    def eval_quant(self, node, g, xs):
        return self.eval_float(node, g, xs)


@register
class ResizeBilinear(_Resize):
    """float: TFLM's float32 interpolation; int8: its 10-bit fixed-point one
    (ResizeBilinearInteger), which TFLM runs without rescaling."""

    kind = "RESIZE_BILINEAR"
    dtypes = ("float32", "int8")

    def check(self, node: Node, g: Graph) -> None:
        super().check(node, g)
        align, half = self.flags(node)
        if align and half:
            raise TinycError(
                f"node {node.name!r} (RESIZE_BILINEAR): align_corners and half_pixel_centers "
                "exclude each other"
            )
        if g.out(node).is_quantized:
            x = g.inp(node, 0)
            assert x is not None
            for axis in (1, 2):
                a = bilinear_axis_q10(g.out(node).shape[axis], x.shape[axis], align, half)
                if a.lo.max() >= x.shape[axis]:
                    raise TinycError(
                        f"node {node.name!r} (RESIZE_BILINEAR): TFLM would read past the input"
                    )

    def axes_q10(self, node: Node, g: Graph) -> tuple[BilinearAxis, BilinearAxis]:
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None
        align, half = self.flags(node)
        return (
            bilinear_axis_q10(y.shape[1], x.shape[1], align, half),
            bilinear_axis_q10(y.shape[2], x.shape[2], align, half),
        )

    def eval_quant(self, node, g, xs):
        ay, ax = self.axes_q10(node, g)
        x = xs[0].astype(np.int64)
        wy1 = ay.frac[None, :, None, None]
        wx1 = ax.frac[None, None, :, None]
        wy0, wx0 = (1 << 10) - wy1, (1 << 10) - wx1

        def at(rows, cols):
            return x[:, rows][:, :, cols]

        acc = (
            at(ay.lo, ax.lo) * wy0 * wx0
            + at(ay.hi, ax.lo) * wy1 * wx0
            + at(ay.lo, ax.hi) * wy0 * wx1
            + at(ay.hi, ax.hi) * wy1 * wx1
        )
        out = _trunc_div(acc + np.where(acc > 0, 1 << 19, -(1 << 19)), 1 << 20)
        return [out.astype(np.int8)]  # static_cast<int8_t>: in range by construction

    def eval_float(self, node, g, xs):
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None
        align, half = self.flags(node)
        py, y0, y1 = _bilinear_axis_float(y.shape[1], x.shape[1], align, half)
        px, x0, x1 = _bilinear_axis_float(y.shape[2], x.shape[2], align, half)
        v = xs[0].astype(np.float32)
        one = np.float32(1)
        dy = (py - y0.astype(np.float32))[None, :, None, None]
        dx = (px - x0.astype(np.float32))[None, None, :, None]

        def at(rows, cols):
            return v[:, rows][:, :, cols]

        out = (
            at(y0, x0) * (one - dy) * (one - dx)
            + at(y1, x0) * dy * (one - dx)
            + at(y0, x1) * (one - dy) * dx
            + at(y1, x1) * dy * dx
        )
        return [out.astype(np.float32)]
