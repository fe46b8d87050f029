"""Indexing ops that move values unchanged: GATHER, STRIDED_SLICE, DYNAMIC_UPDATE_SLICE.

Like the other data-movement ops they serve every dtype with one implementation, and an
int8 output keeps its input's quantization (TFLM copies bytes in these kernels).
"""

from __future__ import annotations

import numpy as np

from tinyc.errors import TinycError
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops.base import Spec, attr, normalize_axis, register
from tinyc.ir.ops.shape import _Move


@register
class Gather(_Move):
    """TFLite GATHER (batch_dims 0): ``x`` indexed along ``axis`` by the constant int32
    positions of input 1; the output has the positions' shape in place of that axis."""

    kind = "GATHER"
    attrs = {"axis": 0}

    def positions(self, node: Node, g: Graph) -> np.ndarray:
        p = g.inp(node, 1)
        if p is None or not p.is_const or p.dtype != "int32":
            raise TinycError(f"node {node.name!r} (GATHER) needs constant int32 positions")
        assert p.data is not None
        return p.data

    def gather_axis(self, node: Node, g: Graph) -> int:
        x = g.inp(node, 0)
        assert x is not None
        return normalize_axis(attr(node, "axis"), len(x.shape), node)

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        x = g.inp(node, 0)
        assert x is not None
        axis = self.gather_axis(node, g)
        pos = self.positions(node, g)
        if pos.size and (pos.min() < 0 or pos.max() >= x.shape[axis]):
            raise TinycError(f"node {node.name!r} (GATHER): positions outside [0, {x.shape[axis]})")
        return [(x.shape[:axis] + pos.shape + x.shape[axis + 1 :], x.dtype)]

    def eval_float(self, node, g, xs):
        axis = self.gather_axis(node, g)
        return [np.ascontiguousarray(np.take(xs[0], xs[1].astype(np.int64), axis=axis))]


@register
class StridedSlice(_Move):
    """TFLite STRIDED_SLICE with every parameter resolved: per axis, the indices
    ``range(begin, end, stride)`` (Python's ``range``, so ``end`` may be -1 with a
    negative stride to include index 0); no masks, the output keeps the input's rank."""

    kind = "STRIDED_SLICE"
    attrs = {"begin": None, "end": None, "strides": None}

    def axes_ranges(self, node: Node, g: Graph) -> list[range]:
        x = g.inp(node, 0)
        assert x is not None
        begin, end, strides = (tuple(attr(node, a)) for a in ("begin", "end", "strides"))
        rank = len(x.shape)
        if not len(begin) == len(end) == len(strides) == rank:
            raise TinycError(f"node {node.name!r} (STRIDED_SLICE): parameters for rank {rank}")
        out = []
        for d, b, e, s in zip(x.shape, begin, end, strides, strict=True):
            r = range(b, e, s)
            if s == 0 or (len(r) and not (0 <= r[0] < d and 0 <= r[-1] < d)):
                raise TinycError(
                    f"node {node.name!r} (STRIDED_SLICE): begin {b} end {e} stride {s} "
                    f"outside an axis of {d}"
                )
            out.append(r)
        return out

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        x = g.inp(node, 0)
        assert x is not None
        return [(tuple(len(r) for r in self.axes_ranges(node, g)), x.dtype)]

    def eval_float(self, node, g, xs):
        idx = np.ix_(*[np.asarray(r, np.int64) for r in self.axes_ranges(node, g)])
        return [np.ascontiguousarray(xs[0][idx])]


@register
class DynamicUpdateSlice(_Move):
    """TFLite DYNAMIC_UPDATE_SLICE with constant start indices: the operand (input 0)
    with the box at ``start`` replaced by ``update`` (input 1, same rank). The box must
    lie inside the operand (TFLM would clamp it)."""

    kind = "DYNAMIC_UPDATE_SLICE"
    attrs = {"start": None}
    in_place = True

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        x, u = g.inp(node, 0), g.inp(node, 1)
        if x is None or u is None:
            raise TinycError(f"node {node.name!r} (DYNAMIC_UPDATE_SLICE) needs two inputs")
        start = tuple(attr(node, "start"))
        if len(u.shape) != len(x.shape) or len(start) != len(x.shape):
            raise TinycError(
                f"node {node.name!r} (DYNAMIC_UPDATE_SLICE): update {list(u.shape)} at "
                f"{list(start)} does not match operand rank {len(x.shape)}"
            )
        if any(s < 0 or s + n > d for s, n, d in zip(start, u.shape, x.shape, strict=True)):
            raise TinycError(
                f"node {node.name!r} (DYNAMIC_UPDATE_SLICE): update {list(u.shape)} at "
                f"{list(start)} leaves the operand {list(x.shape)}"
            )
        return [(x.shape, x.dtype)]

    def check(self, node: Node, g: Graph) -> None:
        super().check(node, g)
        x, u, y = g.inp(node, 0), g.inp(node, 1), g.out(node)
        assert x is not None and u is not None
        if u.dtype != x.dtype or (y.is_quantized and not (u.quant and u.quant.same_as(y.quant))):
            raise TinycError(
                f"node {node.name!r} (DYNAMIC_UPDATE_SLICE): the update must share the "
                "operand's dtype and quantization"
            )

    def box(self, node: Node, g: Graph) -> tuple[slice, ...]:
        u = g.inp(node, 1)
        assert u is not None
        return tuple(slice(s, s + n) for s, n in zip(attr(node, "start"), u.shape, strict=True))

    def eval_float(self, node, g, xs):
        y = np.array(xs[0], copy=True)
        y[self.box(node, g)] = xs[1]
        return [y]

    def bytes_moved(self, node: Node, g: Graph) -> tuple[int, int]:
        """Worst case: the operand is copied (no copy when the output takes its bytes)."""
        x, u = g.inp(node, 0), g.inp(node, 1)
        assert x is not None and u is not None
        return x.nbytes + u.nbytes, x.nbytes
