"""Elementwise arithmetic, activations, Clip, Softmax and the reductions.

Elementwise ops run in whatever layout their operands already have; constants are laid
out to match.
"""

from __future__ import annotations

import numpy as np
import onnx

from tinyc.frontend.onnx import layout as L
from tinyc.frontend.onnx.builder import Builder, Value
from tinyc.frontend.onnx.registry import inputs, onnx_op

FLOAT32_MAX = float(np.finfo(np.float32).max)


def float_value(b: Builder, name: str) -> Value:
    v = b.value(name)
    dtype = b.g.tensors[v.ir].dtype
    if dtype != "float32":
        raise b.unsupported(f"{dtype} operand {name!r} (float32 only outside Q/DQ pairs)")
    return v


def align(b: Builder, names: list[str]) -> tuple[list[str], L.Perm]:
    """Operands of a broadcasting op as IR tensors of equal rank in one common layout."""
    rank = max(b.rank(n) for n in names)
    acts = [n for n in names if not b.is_const(n)]
    for n in acts:
        float_value(b, n)
    lead = max(acts, key=b.rank)
    perm = b.values[b.with_rank(lead, rank)].perm
    ir = []
    for n in names:
        if b.is_const(n):
            ir.append(b.operand(n, perm, rank=rank))
        else:
            ir.append(b.as_layout(b.with_rank(n, rank), perm))
    return ir, perm


def _binary(b: Builder, node: onnx.NodeProto, kind: str, names: list[str]) -> None:
    ir, perm = align(b, names)
    out = b.emit(kind, ir, {}, node.output[0])
    b.bind(node.output[0], out, perm)


@onnx_op("Add")
def add(b: Builder, node: onnx.NodeProto) -> None:
    _binary(b, node, "ADD", list(node.input[:2]))


@onnx_op("Sub")
def sub(b: Builder, node: onnx.NodeProto) -> None:
    _binary(b, node, "SUB", list(node.input[:2]))


@onnx_op("Mul")
def mul(b: Builder, node: onnx.NodeProto) -> None:
    _binary(b, node, "MUL", list(node.input[:2]))


@onnx_op("Div")
def div(b: Builder, node: onnx.NodeProto) -> None:
    """x / c with a constant c is x * (1 / c); a run-time divisor gives DIV."""
    x, c = node.input[0], node.input[1]
    if not b.is_const(c):
        _binary(b, node, "DIV", [x, c])
        return
    value = np.asarray(b.const(c, "divisor"), np.float64)
    if value.dtype.kind != "f" and not np.issubdtype(value.dtype, np.number):
        raise b.unsupported("non-numeric divisor")
    if np.any(value == 0):
        raise b.unsupported("division by a constant that holds zeros")
    recip = f"{c}#reciprocal"
    b.consts[recip] = (1.0 / value).astype(np.float32)
    _binary(b, node, "MUL", [x, recip])


def _unary(b: Builder, node: onnx.NodeProto, kind: str, attrs: dict | None = None) -> None:
    v = float_value(b, node.input[0])
    out = b.emit(kind, [v.ir], attrs or {}, node.output[0])
    b.bind(node.output[0], out, v.perm)


#: ONNX operators that are one IR elementwise op on a float value, attribute-free
PLAIN_UNARY = {
    "Relu": "RELU",
    "Sigmoid": "LOGISTIC",
    "Tanh": "TANH",
    "HardSwish": "HARD_SWISH",
    "Erf": "ERF",
    "Exp": "EXP",
    "Log": "LOG",
    "Abs": "ABS",
    "Neg": "NEG",
    "Sqrt": "SQRT",
}


def _plain_unary(kind: str):
    def translate(b: Builder, node: onnx.NodeProto) -> None:
        _unary(b, node, kind)

    return translate


for _onnx_type, _kind in PLAIN_UNARY.items():
    onnx_op(_onnx_type)(_plain_unary(_kind))


@onnx_op("Clip")
def clip(b: Builder, node: onnx.NodeProto) -> None:
    """[0, 6] is RELU6, [0, inf) RELU; other bounds are MAXIMUM / MINIMUM with the bound
    (a constant, or a run-time tensor from opset 11 on)."""
    x = node.input[0]
    bounds: list[tuple[str, float | str]] = []
    if b.opset < 11:
        a = b.attrs(node)
        bounds = [("min", float(a.get("min", -np.inf))), ("max", float(a.get("max", np.inf)))]
    else:
        for what, name, default in (
            ("min", inputs(node, 1), -np.inf),
            ("max", inputs(node, 2), np.inf),
        ):
            if name and not b.is_const(name):
                bounds.append((what, name))
            else:
                value = float(np.asarray(b.const(name, what)).reshape(-1)[0]) if name else default
                bounds.append((what, value))
    (_, lo), (_, hi) = bounds
    if isinstance(hi, float) and hi >= FLOAT32_MAX:
        hi = np.inf
    if isinstance(lo, float) and lo <= -FLOAT32_MAX:
        lo = -np.inf
    if lo == 0 and hi == 6:
        _unary(b, node, "RELU6")
    elif lo == 0 and hi == np.inf:
        _unary(b, node, "RELU")
    elif lo == -np.inf and hi == np.inf:
        b.values[node.output[0]] = b.value(x)
    else:
        _clamp(b, node, x, lo, hi)


def _clamp(b: Builder, node: onnx.NodeProto, x: str, lo: float | str, hi: float | str) -> None:
    cur = x
    steps = [(k, v) for k, v in (("MAXIMUM", lo), ("MINIMUM", hi)) if v not in (-np.inf, np.inf)]
    for i, (kind, bound) in enumerate(steps):
        if isinstance(bound, str):
            operand = bound
        else:
            operand = f"{node.output[0]}#{kind.lower()}_bound"
            b.consts[operand] = np.asarray(bound, np.float32)
        last = i == len(steps) - 1
        out = node.output[0] if last else f"{node.output[0]}#{kind.lower()}"
        ir, perm = align(b, [cur, operand])
        b.bind(out, b.emit(kind, ir, {}, out), perm)
        cur = out


@onnx_op("Softmax")
def softmax(b: Builder, node: onnx.NodeProto) -> None:
    x = node.input[0]
    shape = b.shape(x)
    rank = len(shape)
    a = b.attrs(node)
    axis = int(a.get("axis", -1 if b.opset >= 13 else 1))
    if not -rank <= axis < rank:
        raise b.unsupported(f"axis {axis} for rank {rank}")
    axis %= rank
    if b.opset < 13:
        # Softmax over the flattened axes [axis, rank): one axis when only one is > 1.
        big = [i for i in range(axis, rank) if shape[i] != 1]
        if len(big) > 1:
            _softmax_2d(b, node, shape, axis)
            return
        axis = big[0] if big else rank - 1
    v = float_value(b, x)
    perm = v.perm if v.perm[-1] == axis else tuple(p for p in v.perm if p != axis) + (axis,)
    out = b.emit("SOFTMAX", [b.as_layout(x, perm)], {"beta": 1.0}, node.output[0])
    b.bind(node.output[0], out, perm)


def _softmax_2d(b: Builder, node: onnx.NodeProto, shape, axis: int) -> None:
    x = b.as_layout(node.input[0], L.identity(len(shape)))
    rows = int(np.prod(shape[:axis], dtype=np.int64))
    flat = b.emit("RESHAPE", [x], {"shape": (rows, -1)}, f"{node.output[0]}#2d", suffix="flatten")
    y = b.emit("SOFTMAX", [flat], {"beta": 1.0}, f"{node.output[0]}#softmax2d")
    out = b.emit("RESHAPE", [y], {"shape": tuple(shape)}, node.output[0], suffix="unflatten")
    b.bind(node.output[0], out, L.identity(len(shape)))


#: ONNX reduction -> (IR op, the opset from which the axes are an input, not an attribute)
REDUCTIONS = {
    "ReduceMean": ("MEAN", 18),
    "ReduceMax": ("REDUCE_MAX", 18),
    "ReduceMin": ("REDUCE_MIN", 18),
    "ReduceSum": ("SUM", 13),
}


def reduce_axes(b: Builder, node: onnx.NodeProto, since: int) -> list[int] | None:
    """The reduced axes (sorted, non-negative); None when the node reduces nothing."""
    rank = b.rank(node.input[0])
    a = b.attrs(node)
    if b.opset >= since:
        name = inputs(node, 1)
        axes = [int(i) for i in np.asarray(b.const(name, "axes")).reshape(-1)] if name else []
    else:
        axes = [int(i) for i in a.get("axes", [])]
    if not axes:
        if a.get("noop_with_empty_axes", 0):
            return None
        axes = list(range(rank))
    if any(not -rank <= i < rank for i in axes):
        raise b.unsupported(f"axes {axes} for rank {rank}")
    return sorted({i % rank for i in axes})


@onnx_op(*REDUCTIONS)
def reduce(b: Builder, node: onnx.NodeProto) -> None:
    kind, since = REDUCTIONS[node.op_type]
    x = node.input[0]
    v = float_value(b, x)
    axes = reduce_axes(b, node, since)
    if axes is None:
        b.values[node.output[0]] = v
        return
    keep = bool(b.attrs(node).get("keepdims", 1))
    ir_axes = tuple(sorted(v.perm.index(i) for i in axes))
    out = b.emit(kind, [v.ir], {"axes": ir_axes, "keep_dims": keep}, node.output[0])
    b.bind(node.output[0], out, v.perm if keep else L.drop_axes(v.perm, axes))


@onnx_op("ArgMax", "ArgMin")
def arg_max(b: Builder, node: onnx.NodeProto) -> None:
    """ARG_MAX / ARG_MIN in the input's layout (float or int8, raw values compared); the
    indices are int32 (ONNX says int64)."""
    x = node.input[0]
    a = b.attrs(node)
    if a.get("select_last_index", 0):
        raise b.unsupported("select_last_index=1 (the first index only)")
    v = b.value(x)
    rank = len(v.perm)
    axis = int(a.get("axis", 0))
    if not -rank <= axis < rank:
        raise b.unsupported(f"axis {axis} for rank {rank}")
    axis %= rank
    kind = "ARG_MAX" if node.op_type == "ArgMax" else "ARG_MIN"
    keep = bool(a.get("keepdims", 1))
    k = v.perm.index(axis)
    name = f"{node.output[0]}#indices" if keep else node.output[0]
    out = b.emit(kind, [v.ir], {"axis": k}, name, "int32")
    if not keep:
        b.bind(node.output[0], out, L.drop_axes(v.perm, [axis]))
        return
    shape = b.g.tensors[v.ir].shape
    kept = shape[:k] + (1,) + shape[k + 1 :]
    out = b.emit("RESHAPE", [out], {"shape": kept}, node.output[0], "int32", "keepdims")
    b.bind(node.output[0], out, v.perm)
