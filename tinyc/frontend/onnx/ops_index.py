"""Gather, Slice and ScatterND with constant indices: GATHER, STRIDED_SLICE and
DYNAMIC_UPDATE_SLICE in the layout the data already has (a Gather whose indices add
several axes works in ONNX order, so that the reshape usually following it moves nothing).
Gather along a size-1 axis is a RESHAPE; a Slice that keeps everything is no node.

ScatterND is translated where its indices address one box of the data in row-major
order (a slice assignment, e.g. a streaming model writing its cache); other index
patterns are reported as unsupported.
"""

from __future__ import annotations

import numpy as np
import onnx

from tinyc.frontend.onnx import layout as L
from tinyc.frontend.onnx.builder import Builder, Value
from tinyc.frontend.onnx.registry import inputs, onnx_op


def _int_const(b: Builder, name: str, what: str) -> np.ndarray:
    data = np.asarray(b.const(name, what))
    if data.dtype.kind not in "iu":
        raise b.unsupported(f"{what} of type {data.dtype}")
    return data.astype(np.int64)


def _axis(b: Builder, axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise b.unsupported(f"axis {axis} for rank {rank}")
    return axis % rank


@onnx_op("Gather")
def gather(b: Builder, node: onnx.NodeProto) -> None:
    x, idx = node.input[0], node.input[1]
    shape = b.shape(x)
    axis = _axis(b, int(b.attrs(node).get("axis", 0)), len(shape))
    ind = _int_const(b, idx, "indices")
    dim = shape[axis]
    ind = np.where(ind < 0, ind + dim, ind)
    if ind.size == 0 or ind.min() < 0 or ind.max() >= dim:
        raise b.unsupported(f"indices outside [0, {dim}) or empty")
    q = ind.ndim
    v = b.value(x)
    if q > 1:  # several new axes: in ONNX order, the reshapes that follow move no data
        v = Value(b.as_layout(x, L.identity(len(shape))), L.identity(len(shape)))
    t = b.g.tensors[v.ir]
    k = v.perm.index(axis)

    def moved(p: int) -> int:
        return p if p < axis else p + q - 1

    perm = (
        tuple(moved(p) for p in v.perm[:k])
        + tuple(axis + j for j in range(q))
        + tuple(moved(p) for p in v.perm[k + 1 :])
    )
    ir_shape = t.shape[:k] + ind.shape + t.shape[k + 1 :]
    if dim == 1:  # every index is 0: only the rank changes
        out = b.emit("RESHAPE", [v.ir], {"shape": ir_shape}, node.output[0], t.dtype, quant=t.quant)
    else:
        pos = b.const_tensor(ind.astype(np.int32), f"{node.output[0]}#positions")
        out = b.emit("GATHER", [v.ir, pos], {"axis": k}, node.output[0], t.dtype, quant=t.quant)
    b.bind(node.output[0], out, perm)


def _slice_params(b: Builder, node: onnx.NodeProto) -> tuple[list[int], ...]:
    """(starts, ends, axes, steps) of a Slice node, from attributes or constant inputs."""
    rank = b.rank(node.input[0])
    if b.opset < 10:
        a = b.attrs(node)
        starts, ends = list(a["starts"]), list(a["ends"])
        axes = list(a.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts = _int_const(b, node.input[1], "starts").reshape(-1).tolist()
        ends = _int_const(b, node.input[2], "ends").reshape(-1).tolist()
        axes_name, steps_name = inputs(node, 3), inputs(node, 4)
        axes = (
            _int_const(b, axes_name, "axes").reshape(-1).tolist()
            if axes_name
            else list(range(len(starts)))
        )
        steps = (
            _int_const(b, steps_name, "steps").reshape(-1).tolist()
            if steps_name
            else [1] * len(starts)
        )
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise b.unsupported("starts, ends, axes and steps of different lengths")
    return starts, ends, [_axis(b, int(a), rank) for a in axes], steps


def onnx_slice_range(dim: int, start: int, end: int, step: int) -> range:
    """The indices ONNX Slice takes along an axis of size ``dim`` (clamped as the spec
    says; a negative step may end at -1, meaning "through index 0")."""
    if step == 0:
        raise ValueError("step 0")
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        return range(min(max(start, 0), dim), min(max(end, 0), dim), step)
    return range(min(max(start, 0), dim - 1), min(max(end, -1), dim - 1), step)


@onnx_op("Slice")
def slice_(b: Builder, node: onnx.NodeProto) -> None:
    x = node.input[0]
    shape = b.shape(x)
    ranges = [range(d) for d in shape]
    for start, end, axis, step in zip(*_slice_params(b, node), strict=True):
        if step == 0:
            raise b.unsupported("step 0")
        ranges[axis] = onnx_slice_range(shape[axis], int(start), int(end), int(step))
    if any(len(r) == 0 for r in ranges):
        raise b.unsupported("an empty slice")
    v = b.value(x)
    if all(r == range(d) for r, d in zip(ranges, shape, strict=True)):
        b.values[node.output[0]] = v
        return
    t = b.g.tensors[v.ir]
    ir = [ranges[p] for p in v.perm]
    attrs = {
        "begin": tuple(r.start for r in ir),
        "end": tuple(r.stop for r in ir),
        "strides": tuple(r.step for r in ir),
    }
    out = b.emit("STRIDED_SLICE", [v.ir], attrs, node.output[0], t.dtype, quant=t.quant)
    b.bind(node.output[0], out, v.perm)


def scatter_box(indices: np.ndarray, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The start of the box that ScatterND ``indices`` (last axis: coordinates of the first
    k axes of ``shape``) address in row-major order, or None for any other pattern."""
    k = indices.shape[-1]
    if k == 0 or k > len(shape):
        return None
    dims = np.asarray(shape[:k], np.int64)
    coords = indices.reshape(-1, k).astype(np.int64)
    coords = np.where(coords < 0, coords + dims, coords)
    if coords.size == 0 or coords.min() < 0 or np.any(coords >= dims):
        return None
    lo = coords.min(axis=0)
    box = coords.max(axis=0) - lo + 1
    if int(np.prod(box)) != len(coords):
        return None
    grid = np.indices(tuple(box)).reshape(k, -1).T + lo
    if not np.array_equal(grid, coords):
        return None
    return tuple(int(i) for i in lo) + (0,) * (len(shape) - k)


@onnx_op("ScatterND")
def scatter_nd(b: Builder, node: onnx.NodeProto) -> None:
    data, idx, upd = node.input[0], node.input[1], node.input[2]
    if b.attrs(node).get("reduction", "none") != "none":
        raise b.unsupported("reduction (only plain assignment is supported)")
    if b.is_const(data):
        raise b.unsupported("constant data (the data must be computed at run time)")
    shape = b.shape(data)
    indices = _int_const(b, idx, "indices")
    start = scatter_box(indices, shape)
    if start is None:
        raise b.unsupported("indices that do not address one box of the data in order")
    k = indices.shape[-1]
    box = tuple(
        int(n) for n in indices.reshape(-1, k).max(axis=0) - np.asarray(start[:k]) + 1
    ) + tuple(shape[k:])
    v = b.value(data)
    t = b.g.tensors[v.ir]
    update = _as_shape(b, upd, box, v.perm)
    if box == tuple(shape):
        b.bind(node.output[0], update, v.perm)
        return
    attrs = {"start": tuple(start[p] for p in v.perm)}
    out = b.emit(
        "DYNAMIC_UPDATE_SLICE", [v.ir, update], attrs, node.output[0], t.dtype, quant=t.quant
    )
    b.bind(node.output[0], out, v.perm)


def _as_shape(b: Builder, name: str, shape: tuple[int, ...], perm: L.Perm) -> str:
    """ONNX value or constant ``name`` with (ONNX) shape ``shape`` as an IR tensor laid out
    by ``perm`` (a reshape in ONNX element order first when the shapes differ)."""
    if b.shape(name) == shape:
        return b.as_layout(name, perm)
    if b.is_const(name):
        alias = f"{name}#as{'x'.join(map(str, shape))}"
        b.consts[alias] = np.asarray(b.const(name, "updates")).reshape(shape)
        return b.operand(alias, perm)
    src = b.as_layout(name, L.identity(b.rank(name)))
    t = b.g.tensors[src]
    alias = f"{name}#as{'x'.join(map(str, shape))}"
    out = b.emit("RESHAPE", [src], {"shape": shape}, alias, t.dtype, "reshape", t.quant)
    b.bind(alias, out, L.identity(len(shape)))
    return b.as_layout(alias, perm)
