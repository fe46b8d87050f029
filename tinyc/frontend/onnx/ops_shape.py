"""Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Concat, Split, Pad and pass-through ops.

Reshape and Flatten see ONNX's element order: when the layout holds every group of merged or
split axes whole and in order they reshape in place, otherwise one transpose brings the
groups whole and in order, keeping their current order (``tinyc.frontend.reshape_layout``).
Transpose only relabels the layout; Squeeze and Unsqueeze only add or drop size-1 axes.
Neither moves data.
"""

from __future__ import annotations

import numpy as np
import onnx

from tinyc.frontend.onnx import layout as L
from tinyc.frontend.onnx.builder import Builder
from tinyc.frontend.onnx.reader import DTYPES
from tinyc.frontend.onnx.registry import inputs, onnx_op
from tinyc.frontend.reshape_layout import reshape_layout


def _ints(b: Builder, node: onnx.NodeProto, attr: str, pos: int, since: int) -> list[int] | None:
    """An int list given as attribute ``attr`` before opset ``since``, input ``pos`` after."""
    if b.opset < since:
        a = b.attrs(node)
        return [int(i) for i in a[attr]] if attr in a else None
    name = inputs(node, pos)
    if not name:
        return None
    return [int(i) for i in np.asarray(b.const(name, attr)).reshape(-1)]


def _reshape_to(b: Builder, node: onnx.NodeProto, shape: tuple[int, ...]) -> None:
    x = node.input[0]
    t = b.ir_tensor(x)
    v = b.value(x)
    perm = L.identity(len(shape))
    src = None
    if L.moves_data(t.shape, L.between(v.perm, L.identity(len(v.perm)))):
        plan = reshape_layout(b.shape(x), v.perm, shape)
        if plan is not None:
            before, perm = plan
            src = b.as_layout(x, before)
    if src is None:
        src = b.as_layout(x, L.identity(b.rank(x)))
    ir_shape = L.permute(shape, perm)
    out = b.emit("RESHAPE", [src], {"shape": ir_shape}, node.output[0], t.dtype, quant=t.quant)
    b.bind(node.output[0], out, perm)


@onnx_op("Reshape")
def reshape(b: Builder, node: onnx.NodeProto) -> None:
    target = _ints(b, node, "shape", 1, 5)
    if target is None:
        raise b.unsupported("no target shape")
    shape = b.shape(node.input[0])
    allow_zero = b.attrs(node).get("allowzero", 0)
    dims = [
        shape[i] if d == 0 and not allow_zero and i < len(shape) else d
        for i, d in enumerate(target)
    ]
    if dims.count(-1) == 1:
        known = int(np.prod([d for d in dims if d != -1], dtype=np.int64))
        total = int(np.prod(shape, dtype=np.int64))
        if known == 0 or total % known:
            raise b.unsupported(f"cannot reshape {list(shape)} to {target}")
        dims[dims.index(-1)] = total // known
    _reshape_to(b, node, tuple(dims))


@onnx_op("Flatten")
def flatten(b: Builder, node: onnx.NodeProto) -> None:
    shape = b.shape(node.input[0])
    axis = int(b.attrs(node).get("axis", 1))
    if not -len(shape) <= axis <= len(shape):
        raise b.unsupported(f"axis {axis} for rank {len(shape)}")
    if axis < 0:
        axis += len(shape)
    rows = int(np.prod(shape[:axis], dtype=np.int64))
    _reshape_to(b, node, (rows, int(np.prod(shape[axis:], dtype=np.int64))))


def _relabel(b: Builder, node: onnx.NodeProto, ir_shape: tuple[int, ...], perm: L.Perm) -> None:
    """Bind the output to the input's data under a new layout (a RESHAPE at most)."""
    v = b.value(node.input[0])
    t = b.g.tensors[v.ir]
    out = v.ir
    if ir_shape != t.shape:
        out = b.emit("RESHAPE", [v.ir], {"shape": ir_shape}, node.output[0], t.dtype, quant=t.quant)
    b.bind(node.output[0], out, perm)


@onnx_op("Squeeze")
def squeeze(b: Builder, node: onnx.NodeProto) -> None:
    shape = b.shape(node.input[0])
    rank = len(shape)
    axes = _ints(b, node, "axes", 1, 13)
    if axes is None:
        axes = [i for i, d in enumerate(shape) if d == 1]
    if any(not -rank <= a < rank for a in axes):
        raise b.unsupported(f"axes {axes} for rank {rank}")
    axes = sorted({a % rank for a in axes})
    if any(shape[a] != 1 for a in axes):
        raise b.unsupported(f"squeezing axes {axes} of shape {list(shape)} (not all size 1)")
    v = b.value(node.input[0])
    ir_shape = tuple(
        d for d, p in zip(b.g.tensors[v.ir].shape, v.perm, strict=True) if p not in axes
    )
    _relabel(b, node, ir_shape, L.drop_axes(v.perm, axes))


@onnx_op("Unsqueeze")
def unsqueeze(b: Builder, node: onnx.NodeProto) -> None:
    axes = _ints(b, node, "axes", 1, 13)
    if not axes:
        raise b.unsupported("no axes")
    rank = b.rank(node.input[0]) + len(axes)
    if any(not -rank <= a < rank for a in axes) or len({a % rank for a in axes}) != len(axes):
        raise b.unsupported(f"axes {axes} for output rank {rank}")
    v = b.value(node.input[0])
    ir_shape = b.g.tensors[v.ir].shape + (1,) * len(axes)
    _relabel(b, node, ir_shape, L.insert_axes(v.perm, [a % rank for a in axes]))


@onnx_op("Transpose")
def transpose(b: Builder, node: onnx.NodeProto) -> None:
    v = b.value(node.input[0])
    rank = len(v.perm)
    t = b.attrs(node).get("perm", list(range(rank))[::-1])
    if sorted(t) != list(range(rank)):
        raise b.unsupported(f"permutation {t} for rank {rank}")
    inv = L.inverse(t)
    b.bind(node.output[0], v.ir, tuple(inv[p] for p in v.perm))


@onnx_op("Identity", "Dropout")
def identity(b: Builder, node: onnx.NodeProto) -> None:
    if node.op_type == "Dropout" and len(node.output) > 1 and node.output[1]:
        raise b.unsupported("the mask output of Dropout is not supported")
    b.values[node.output[0]] = b.value(node.input[0])


@onnx_op("Cast")
def cast(b: Builder, node: onnx.NodeProto) -> None:
    to = int(b.attrs(node).get("to", 0))
    t = b.ir_tensor(node.input[0])
    if DTYPES.get(to) != t.dtype:
        raise b.unsupported(f"a cast of a run-time {t.dtype} tensor to another type")
    b.values[node.output[0]] = b.value(node.input[0])


@onnx_op("Concat")
def concat(b: Builder, node: onnx.NodeProto) -> None:
    names = [n for n in node.input if n]
    acts = [n for n in names if not b.is_const(n)]
    rank = b.rank(names[0])
    axis = int(b.attrs(node)["axis"])
    if not -rank <= axis < rank:
        raise b.unsupported(f"axis {axis} for rank {rank}")
    perm = b.value(acts[0]).perm
    t = b.ir_tensor(acts[0])
    ir = [b.as_layout(n, perm) for n in names]
    out = b.emit(
        "CONCATENATION",
        ir,
        {"axis": perm.index(axis % rank)},
        node.output[0],
        t.dtype,
        quant=t.quant,
    )
    b.bind(node.output[0], out, perm)


@onnx_op("Split")
def split(b: Builder, node: onnx.NodeProto) -> None:
    x = node.input[0]
    shape = b.shape(x)
    a = b.attrs(node)
    axis = int(a.get("axis", 0))
    if not -len(shape) <= axis < len(shape):
        raise b.unsupported(f"axis {axis} for rank {len(shape)}")
    axis %= len(shape)
    sizes = _ints(b, node, "split", 1, 13)
    n = len(node.output)
    if sizes is None:
        parts = int(a.get("num_outputs", n))
        chunk = -(-shape[axis] // parts)
        sizes = [min(chunk, shape[axis] - i * chunk) for i in range(parts)]
    if sum(sizes) != shape[axis] or len(sizes) != n or min(sizes) < 0:
        raise b.unsupported(f"split sizes {sizes} of axis {axis} (size {shape[axis]})")
    v = b.value(x)
    t = b.g.tensors[v.ir]
    outs = b.emit_multi(
        "SPLIT_V",
        [v.ir],
        {"axis": v.perm.index(axis), "size_splits": tuple(sizes)},
        list(node.output),
        t.dtype,
        quant=t.quant,
    )
    for name, ir in zip(node.output, outs, strict=True):
        if name:
            b.bind(name, ir, v.perm)


@onnx_op("Pad")
def pad(b: Builder, node: onnx.NodeProto) -> None:
    a = b.attrs(node)
    x = node.input[0]
    rank = b.rank(x)
    mode = a.get("mode", "constant")
    if mode != "constant":
        raise b.unsupported(f"mode {mode!r} (constant only)")
    if b.opset < 11:
        pads = [int(p) for p in a.get("pads", a.get("paddings", []))]
        value = float(a.get("value", 0.0))
    else:
        pads = [int(p) for p in np.asarray(b.const(node.input[1], "pads")).reshape(-1)]
        vname = inputs(node, 2)
        if vname and np.asarray(b.const(vname, "value")).dtype.kind in "iu":
            _pad_integer(b, node, np.asarray(b.const(vname, "value")))
            return
        value = float(np.asarray(b.const(vname, "value")).reshape(-1)[0]) if vname else 0.0
        if not vname and b.ir_tensor(x).quant is not None:
            _pad_integer(b, node, None)
            return
    axes = list(range(rank))
    if b.opset >= 18 and inputs(node, 3):
        axes = [int(i) % rank for i in np.asarray(b.const(node.input[3], "axes")).reshape(-1)]
    if len(pads) != 2 * len(axes):
        raise b.unsupported(f"{len(pads)} pads for {len(axes)} axes")
    if min(pads, default=0) < 0:
        raise b.unsupported("negative pads (cropping)")
    begin = dict.fromkeys(range(rank), 0)
    end = dict.fromkeys(range(rank), 0)
    for i, ax in enumerate(axes):
        begin[ax], end[ax] = pads[i], pads[i + len(axes)]
    v = b.value(x)
    t = b.g.tensors[v.ir]
    paddings = tuple((begin[p], end[p]) for p in v.perm)
    fill: float | int | None = None if value == 0.0 else value
    if fill is not None and t.quant is not None:
        from tinyc.ir.ops.base import quantize_value

        fill = quantize_value(t.quant.s, t.quant.zp, value)
    attrs = {"paddings": paddings, "value": fill}
    out = b.emit("PAD", [v.ir], attrs, node.output[0], t.dtype, quant=t.quant)
    b.bind(node.output[0], out, v.perm)


def _pad_integer(b: Builder, node: onnx.NodeProto, value: np.ndarray | None) -> None:
    """Pad of an 8-bit tensor (the QOperator form pads its quantized values directly): the
    value is a raw integer of the file's type (uint8 ones move by -128 like the data)."""
    x = node.input[0]
    t = b.ir_tensor(x)
    if t.dtype != "int8":
        raise b.unsupported(f"an integer pad value for a {t.dtype} tensor")
    if value is not None:
        unsigned = value.dtype == np.uint8
        raw = int(value.reshape(-1)[0])
    else:
        info = b.om.infos.get(x)
        if info is None:
            raise b.unsupported("no pad value, and the input's integer type is unknown")
        unsigned, raw = info.dtype == onnx.TensorProto.UINT8, 0
    fill = raw - 128 if unsigned else raw
    rank = b.rank(x)
    pads = [int(p) for p in np.asarray(b.const(node.input[1], "pads")).reshape(-1)]
    if b.opset >= 18 and inputs(node, 3) or len(pads) != 2 * rank or min(pads) < 0:
        raise b.unsupported(f"pads {pads} (all axes, non-negative, for an 8-bit tensor)")
    v = b.value(x)
    paddings = tuple((pads[p], pads[p + rank]) for p in v.perm)
    out = b.emit(
        "PAD", [v.ir], {"paddings": paddings, "value": fill}, node.output[0], t.dtype, quant=t.quant
    )
    b.bind(node.output[0], out, v.perm)
