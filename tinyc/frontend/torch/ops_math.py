"""Elementwise arithmetic (with broadcasting against constants), activations, mean."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from tinyc.errors import UnsupportedError
from tinyc.frontend.torch.registry import HANDLERS, Handler, handles
from tinyc.frontend.torch.values import Act, Value, View

if TYPE_CHECKING:
    from tinyc.frontend.torch.converter import Converter


def widened(x: Act | View, k: Any) -> Act | View:
    """``x`` viewed with the leading unit dims that broadcasting against constant ``k``
    adds (``[2, 20] + k[1, 2, 20]``); other widenings are left to fail in const_like."""
    shape = np.broadcast_shapes(np.shape(k), x.shape)
    lead = len(shape) - len(x.shape)
    if lead <= 0 or shape[lead:] != tuple(x.shape) or any(d != 1 for d in shape[:lead]):
        return x
    return View(x.src if isinstance(x, View) else x, tuple(shape))


def binary_const(c: Converter, node: Any, kind: str, x: Value, k: Any, what: str) -> Value:
    """``x <kind> k`` for constant ``k``, applied in ``x``'s storage (through views)."""
    x = widened(x, k)
    const = c.const_like(x, np.asarray(k, np.float32))
    src = x.src if isinstance(x, View) else x
    kt = c.const(const, f"{node.name}_{what}")
    out = c.emit(kind, [src.name, kt], f"{node.name}_{what.lower()}" if what else node.name)
    res = Act(out, src.perm, src.shape)
    return View(res, x.shape) if isinstance(x, View) else res


def _binary(c: Converter, node: Any, kind: str, x: Value, y: Value) -> Value:
    xc, yc = not isinstance(x, Act | View), not isinstance(y, Act | View)
    if yc:
        return binary_const(c, node, kind, x, y, "")
    if xc:
        if kind in ("ADD", "MUL"):
            return binary_const(c, node, kind, y, x, "")
        # c - y: the constant operand comes first
        y = widened(y, x)
        const = c.const_like(y, np.asarray(x, np.float32))
        src = y.src if isinstance(y, View) else y
        out = c.emit(kind, [c.const(const, f"{node.name}_const"), src.name], node.name)
        res = Act(out, src.perm, src.shape)
        return View(res, y.shape) if isinstance(y, View) else res
    if (
        isinstance(x, View)
        and isinstance(y, View)
        and x.shape == y.shape
        and (x.src.shape == y.src.shape)
    ):
        ys = c.to_perm(y.src, x.src.perm)
        out = c.emit(kind, [x.src.name, ys.name], node.name)
        return View(Act(out, x.src.perm, x.src.shape), x.shape)
    xa, ya = c.materialize(x), c.materialize(y)
    rank = max(len(xa.shape), len(ya.shape))
    xa, ya = c.with_rank(xa, rank), c.with_rank(ya, rank)
    ya = c.to_perm(ya, xa.perm)
    out = c.emit(kind, [xa.name, ya.name], node.name)
    return c.act_from(out, xa.perm)


@handles("add", "add_")
def _add(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    x, y, alpha = a["self"], a["other"], a.get("alpha", 1)
    if alpha != 1:
        if isinstance(y, Act | View):
            raise UnsupportedError("add with alpha on two tensors")
        y = np.asarray(y) * alpha
    return _binary(c, node, "ADD", x, y)


@handles("sub", "sub_")
def _sub(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    x, y, alpha = a["self"], a["other"], a.get("alpha", 1)
    if alpha != 1:
        if isinstance(y, Act | View):
            raise UnsupportedError("sub with alpha on two tensors")
        y = np.asarray(y) * alpha
    return _binary(c, node, "SUB", x, y)


@handles("rsub")
def _rsub(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    x, y, alpha = a["self"], a["other"], a.get("alpha", 1)
    if alpha != 1:
        raise UnsupportedError("rsub with alpha")
    return _binary(c, node, "SUB", y, x)


@handles("mul", "mul_")
def _mul(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    return _binary(c, node, "MUL", a["self"], a["other"])


@handles("div", "div_")
def _div(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    x, y = a["self"], a["other"]
    if isinstance(y, Act | View) or a.get("rounding_mode") is not None:
        raise UnsupportedError("division by a tensor computed at run time")
    return _binary(c, node, "MUL", x, 1.0 / np.asarray(y, np.float64))


def _unary(kind: str) -> Handler:
    def convert(c: Converter, node: Any, a: dict[str, Value]) -> Value:
        x = a["self"] if "self" in a else a["input"]
        src = x.src if isinstance(x, View) else x
        out = c.emit(kind, [src.name], node.name)
        res = Act(out, src.perm, src.shape)
        return View(res, x.shape) if isinstance(x, View) else res

    return convert


for _name, _kind in {
    "relu": "RELU",
    "relu_": "RELU",
    "relu6": "RELU6",
    "sigmoid": "LOGISTIC",
    "tanh": "TANH",
    "hardswish": "HARD_SWISH",
    "hardswish_": "HARD_SWISH",
}.items():
    HANDLERS[_name] = _unary(_kind)


@handles("silu", "silu_")
def _silu(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    """x * sigmoid(x): two TFLM ops."""
    x = c.materialize(a["self"])
    sig = c.emit("LOGISTIC", [x.name], f"{node.name}_sigmoid")
    out = c.emit("MUL", [x.name, sig], node.name)
    return c.act_from(out, x.perm)


@handles("mean")
def _mean(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    x = c.materialize(a["self"])
    rank = len(x.shape)
    dims = a.get("dim")
    dims = tuple(range(rank)) if dims is None or len(dims) == 0 else tuple(d % rank for d in dims)
    keep = bool(a.get("keepdim", False))
    axes = tuple(sorted(x.perm.index(d) for d in dims))
    out = c.emit("MEAN", [x.name], node.name, {"axes": axes, "keep_dims": keep})
    if keep:
        return c.act_from(out, x.perm)

    def new_index(d: int) -> int:
        return d - sum(1 for r in dims if r < d)

    perm = tuple(new_index(x.perm[j]) for j in range(rank) if j not in axes)
    return c.act_from(out, perm)
