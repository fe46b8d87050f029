"""GATHER, STRIDED_SLICE and DYNAMIC_UPDATE_SLICE emitters: byte-run copies (index.c)."""

from __future__ import annotations

import numpy as np

from tinyc.backends.cmsis.emit.base import Emitter, emitter, shape_i32
from tinyc.errors import UnsupportedError
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import attr, get_op

MAX_RANK = 6


def dense_strides(shape: tuple[int, ...], itemsize: int) -> list[int]:
    """Byte strides of a row-major array."""
    out, step = [], itemsize
    for d in reversed(shape):
        out.append(step)
        step *= d
    return out[::-1]


def merge_box(
    shape: list[int], src: list[int], dst: list[int], run: int
) -> tuple[list[int], list[int], list[int], int]:
    """The same copy with fewer axes: size-1 axes dropped, trailing axes contiguous on both
    sides folded into the run, neighbouring axes that step evenly on both sides merged."""
    axes = [(n, s, d) for n, s, d in zip(shape, src, dst, strict=True) if n != 1]
    while axes and axes[-1][1] == run and axes[-1][2] == run:
        run *= axes.pop()[0]
    merged: list[tuple[int, int, int]] = []
    for n, s, d in axes:
        if merged and merged[-1][1] == s * n and merged[-1][2] == d * n:
            m = merged.pop()
            merged.append((m[0] * n, s, d))
        else:
            merged.append((n, s, d))
    if not merged:
        merged = [(1, run, run)]
    return [m[0] for m in merged], [m[1] for m in merged], [m[2] for m in merged], run


def _rank_ok(node: Node, shape: list[int]) -> None:
    if len(shape) > MAX_RANK:
        raise UnsupportedError(f"node {node.name!r} ({node.op}): more than {MAX_RANK} axes")


@emitter
class StridedSliceEmitter(Emitter):
    kinds = ("STRIDED_SLICE",)

    def emit(self, node, g, c):
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None
        ranges = get_op("STRIDED_SLICE").axes_ranges(node, g)  # type: ignore[attr-defined]
        dense = dense_strides(x.shape, x.itemsize)
        start = sum(r.start * s for r, s in zip(ranges, dense, strict=True))
        src = [r.step * s for r, s in zip(ranges, dense, strict=True)]
        shape, src, dst, run = merge_box(
            list(y.shape), src, dense_strides(y.shape, y.itemsize), y.itemsize
        )
        _rank_ok(node, shape)
        c.need("index.c")
        c.call(
            f"tinyc_copy_box({len(shape)}, {shape_i32(c, 'box', shape)}, "
            f"{shape_i32(c, 'src_strides', src)}, {shape_i32(c, 'dst_strides', dst)}, {run}, "
            f"(const uint8_t *){c.ptr(node.inputs[0])} + {start}, {c.ptr(node.outputs[0])});"
        )


@emitter
class UpdateSliceEmitter(Emitter):
    kinds = ("DYNAMIC_UPDATE_SLICE",)

    def alias(self, node, g):
        return 0, "inplace"

    def emit(self, node, g, c):
        x, u = g.inp(node, 0), g.inp(node, 1)
        assert x is not None and u is not None
        dense = dense_strides(x.shape, x.itemsize)
        start = sum(s * d for s, d in zip(attr(node, "start"), dense, strict=True))
        shape, _, dst, run = merge_box(
            list(u.shape), dense_strides(u.shape, u.itemsize), dense, u.itemsize
        )
        _rank_ok(node, shape)
        c.need("index.c")
        c.call(
            f"tinyc_update_slice({len(shape)}, {shape_i32(c, 'box', shape)}, "
            f"{shape_i32(c, 'dst_strides', dst)}, {run}, {x.nbytes}, {start}, "
            f"{c.ptr(node.inputs[0])}, {c.ptr(node.inputs[1])}, {c.ptr(node.outputs[0])});"
        )


def position_runs(positions: np.ndarray) -> np.ndarray:
    """Consecutive ascending positions as (first, count) pairs, flattened (int32)."""
    runs: list[list[int]] = []
    for p in positions.reshape(-1).tolist():
        if runs and runs[-1][0] + runs[-1][1] == p:
            runs[-1][1] += 1
        else:
            runs.append([p, 1])
    return np.asarray(runs, np.int32).reshape(-1)


@emitter
class GatherEmitter(Emitter):
    kinds = ("GATHER",)

    def emit(self, node: Node, g: Graph, c) -> None:
        x = g.inp(node, 0)
        assert x is not None
        op = get_op("GATHER")
        axis = op.gather_axis(node, g)  # type: ignore[attr-defined]
        runs = position_runs(op.positions(node, g))  # type: ignore[attr-defined]
        outer = int(np.prod(x.shape[:axis], dtype=np.int64))
        inner = int(np.prod(x.shape[axis + 1 :], dtype=np.int64)) * x.itemsize
        sym = c.const_array(f"runs_{node.name}", runs, "int32_t")
        c.need("index.c")
        c.call(
            f"tinyc_gather({outer}, {x.shape[axis] * inner}, {runs.size // 2}, {sym}, {inner}, "
            f"{c.ptr(node.inputs[0])}, {c.ptr(node.outputs[0])});"
        )
