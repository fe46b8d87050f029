"""Activations and elementwise math beyond add / mul / relu: hardsigmoid, leaky_relu, elu,
selu, gelu, erf, exp, log, abs, neg, sqrt, rsqrt, clamp / hardtanh with any bounds,
maximum / minimum, where / masked_fill with a constant condition.

All apply in the operand's storage (through not-yet-materialized views), like the
elementwise ops of ``ops_math``. Compositions (same as the ONNX frontend's): hardsigmoid is
``relu6(x + 3) / 6``, elu with alpha != 1 ``relu(x) + alpha * min(elu(x), 0)``, a clamp
MAXIMUM / MINIMUM with its bounds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from tinyc.errors import UnsupportedError
from tinyc.frontend.torch.ops_math import _binary, _unary
from tinyc.frontend.torch.registry import HANDLERS, handles
from tinyc.frontend.torch.values import Act, Value, View, is_tensor
from tinyc.ir.tensor import Tensor

if TYPE_CHECKING:
    from tinyc.frontend.torch.converter import Converter


def in_storage(c: Converter, x: Value, base: str, build: Callable[[str, int], str]) -> Value:
    """``build(storage tensor, rank)`` -> result tensor, applied to ``x``'s storage (an
    elementwise chain), the result wrapped like ``x``."""
    if not is_tensor(x):
        raise UnsupportedError("an elementwise op on a constant")
    src = x.src if isinstance(x, View) else x
    out = build(src.name, len(c.g.tensors[src.name].shape))
    res = Act(out, src.perm, src.shape)
    return View(res, x.shape) if isinstance(x, View) else res


def scalar(c: Converter, value: float, rank: int, base: str) -> str:
    return c.const(np.full((1,) * rank, value, np.float32), base)


def times(c: Converter, name: str, factor: float, rank: int, base: str) -> str:
    if factor == 1.0:
        return name
    return c.emit("MUL", [name, scalar(c, factor, rank, f"{base}_factor")], base)


def hardsigmoid_chain(c: Converter, name: str, rank: int, base: str) -> str:
    y = c.emit("ADD", [name, scalar(c, 3.0, rank, f"{base}_three")], f"{base}_shift")
    y = c.emit("RELU6", [y], f"{base}_relu6")
    return c.emit("MUL", [y, scalar(c, 1.0 / 6.0, rank, f"{base}_sixth")], base)


def elu_chain(c: Converter, name: str, rank: int, alpha: float, base: str) -> str:
    if alpha == 1.0:
        return c.emit("ELU", [name], base)
    e = c.emit("ELU", [name], f"{base}_elu")
    neg = c.emit("MINIMUM", [e, scalar(c, 0.0, rank, f"{base}_zero")], f"{base}_negative")
    neg = times(c, neg, alpha, rank, f"{base}_alpha")
    pos = c.emit("RELU", [name], f"{base}_positive")
    return c.emit("ADD", [pos, neg], base)


def _input(a: dict[str, Value]) -> Value:
    return a["self"] if "self" in a else a["input"]


@handles("hardsigmoid", "hardsigmoid_")
def _hardsigmoid(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    return in_storage(c, _input(a), node.name, lambda s, r: hardsigmoid_chain(c, s, r, node.name))


@handles("leaky_relu", "leaky_relu_")
def _leaky_relu(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    attrs = {"alpha": float(a.get("negative_slope", 0.01))}
    return in_storage(
        c, _input(a), node.name, lambda s, r: c.emit("LEAKY_RELU", [s], node.name, attrs)
    )


def _elu(c: Converter, node: Any, x: Value, alpha: float, scale: float) -> Value:
    def build(s: str, r: int) -> str:
        y = elu_chain(c, s, r, alpha, node.name if scale == 1.0 else f"{node.name}_elu")
        return times(c, y, scale, r, node.name)

    return in_storage(c, x, node.name, build)


@handles("elu", "elu_")
def _elu_op(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    if float(a.get("input_scale", 1.0)) != 1.0:
        raise UnsupportedError("elu with input_scale != 1")
    return _elu(c, node, _input(a), float(a.get("alpha", 1.0)), float(a.get("scale", 1.0)))


@handles("selu", "selu_")
def _selu(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    return _elu(c, node, _input(a), 1.6732632423543772, 1.0507009873554805)


@handles("gelu", "gelu_")
def _gelu(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    approx = a.get("approximate", "none")
    if approx not in ("none", "tanh"):
        raise UnsupportedError(f"gelu approximate={approx!r}")
    attrs = {"approximate": approx == "tanh"}
    return in_storage(c, _input(a), node.name, lambda s, r: c.emit("GELU", [s], node.name, attrs))


for _name, _kind in {
    "erf": "ERF",
    "exp": "EXP",
    "log": "LOG",
    "abs": "ABS",
    "neg": "NEG",
    "sqrt": "SQRT",
    "rsqrt": "RSQRT",
}.items():
    HANDLERS[_name] = _unary(_kind)


def _clamp_value(c: Converter, node: Any, x: Value, lo: Any, hi: Any) -> Value:
    """x clamped to [lo, hi] (either may be None); ReLU / ReLU6 ranges are those ops."""
    lo = None if lo is None else float(lo) if not is_tensor(lo) else lo
    hi = None if hi is None else float(hi) if not is_tensor(hi) else hi
    if lo == 0.0 and hi == 6.0:
        return _unary("RELU6")(c, node, {"self": x})
    if lo == 0.0 and hi is None:
        return _unary("RELU")(c, node, {"self": x})
    if lo is None and hi is None:
        return x
    y = x
    for kind, bound in (("MAXIMUM", lo), ("MINIMUM", hi)):
        if bound is None:
            continue
        if not is_tensor(bound):
            bound = np.float32(bound)
        y = _binary(c, node, kind, y, bound)
    return y


@handles("clamp", "clamp_", "clip", "clip_")
def _clamp(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    return _clamp_value(c, node, _input(a), a.get("min"), a.get("max"))


@handles("clamp_min", "clamp_min_")
def _clamp_min(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    return _clamp_value(c, node, _input(a), a["min"], None)


@handles("clamp_max", "clamp_max_")
def _clamp_max(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    return _clamp_value(c, node, _input(a), None, a["max"])


@handles("hardtanh", "hardtanh_")
def _hardtanh(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    return _clamp_value(c, node, _input(a), a.get("min_val", -1.0), a.get("max_val", 1.0))


@handles("maximum", "fmax")
def _maximum(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    return _binary(c, node, "MAXIMUM", a["self"], a["other"])


@handles("minimum", "fmin")
def _minimum(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    return _binary(c, node, "MINIMUM", a["self"], a["other"])


def _select(c: Converter, node: Any, cond: Any, x: Value, y: Value) -> Value:
    """SELECT_V2 with a constant condition, in the first tensor operand's storage."""
    if is_tensor(cond):
        raise UnsupportedError("a condition computed at run time (constant conditions only)")
    cond = np.asarray(cond).astype(bool)
    shape = tuple(int(d) for d in node.meta["val"].shape)
    for pick, flag in ((x, cond), (y, ~cond)):
        if flag.all() and is_tensor(pick) and tuple(pick.shape) == shape:
            return pick
    lead = c.materialize(x if is_tensor(x) else y)
    lead = c.with_rank(lead, len(shape))
    names = []
    for v in (cond, x, y):
        if is_tensor(v):
            t = c.with_rank(c.materialize(v), len(shape))
            names.append(c.to_perm(t, lead.perm).name)
        else:
            arr = np.asarray(v)
            arr = arr.reshape((1,) * (len(shape) - arr.ndim) + arr.shape).transpose(lead.perm)
            if arr.dtype == np.bool_:
                name = c.g.unique_name(f"{node.name}_condition")
                c.g.add_tensor(Tensor(name, arr.shape, "bool", np.ascontiguousarray(arr)))
                names.append(name)
            else:
                names.append(c.const(np.ascontiguousarray(arr, np.float32), f"{node.name}_c"))
    out = c.emit("SELECT_V2", names, node.name)
    return c.act_from(out, lead.perm)


@handles("where")
def _where(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    return _select(c, node, a["condition"], a["self"], a["other"])


@handles("masked_fill", "masked_fill_")
def _masked_fill(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    value = a["value"]
    if is_tensor(value):
        raise UnsupportedError("masked_fill with a value computed at run time")
    return _select(c, node, a["mask"], np.float32(value), a["self"])
