"""Reductions: sum, amax / amin, max / min (over a dim, with their indices, or of the
whole tensor; with a second tensor they are elementwise), argmax / argmin (int32 indices
where PyTorch gives int64)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tinyc.errors import UnsupportedError
from tinyc.frontend.torch.ops_math import _binary
from tinyc.frontend.torch.registry import handles, target_name
from tinyc.frontend.torch.values import Act, Value, is_tensor

if TYPE_CHECKING:
    from tinyc.frontend.torch.converter import Converter


def _dims(x: Act, dim: Any) -> tuple[int, ...]:
    rank = len(x.shape)
    if dim is None or (isinstance(dim, list | tuple) and len(dim) == 0):
        return tuple(range(rank))
    dims = dim if isinstance(dim, list | tuple) else [dim]
    return tuple(sorted({int(d) % rank for d in dims}))


def _dropped(x: Act, dims: tuple[int, ...]) -> tuple[int, ...]:
    """The layout of ``x`` without PyTorch dims ``dims``."""
    return tuple(p - sum(1 for d in dims if d < p) for p in x.perm if p not in dims)


def reduce(c: Converter, name: str, kind: str, v: Value, dim: Any, keep: bool) -> Act:
    x = c.materialize(v)
    dims = _dims(x, dim)
    axes = tuple(sorted(x.perm.index(d) for d in dims))
    out = c.emit(kind, [x.name], name, {"axes": axes, "keep_dims": keep})
    return c.act_from(out, x.perm if keep else _dropped(x, dims))


def arg(c: Converter, name: str, kind: str, v: Value, dim: Any, keep: bool) -> Act:
    x = c.materialize(v)
    if dim is None:  # over the flattened tensor
        x = c.to_perm(x, tuple(range(len(x.shape))))
        flat = c.emit("RESHAPE", [x.name], f"{name}_flat", {"shape": (-1,)})
        x = c.act_from(flat, (0,))
        dim = 0
    d = int(dim) % len(x.shape)
    axis = x.perm.index(d)
    out = c.emit(kind, [x.name], name if not keep else f"{name}_indices", {"axis": axis})
    if not keep:
        return c.act_from(out, _dropped(x, (d,)))
    shape = c.g.tensors[x.name].shape
    kept = shape[:axis] + (1,) + shape[axis + 1 :]
    return c.act_from(c.emit("RESHAPE", [out], name, {"shape": kept}), x.perm)


@handles("sum")
def _sum(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    if a.get("dtype") is not None:
        raise UnsupportedError(f"sum with dtype {a['dtype']}")
    return reduce(c, node.name, "SUM", a["self"], a.get("dim"), bool(a.get("keepdim", False)))


@handles("amax", "amin")
def _amax(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    kind = "REDUCE_MAX" if target_name(node) == "amax" else "REDUCE_MIN"
    return reduce(c, node.name, kind, a["self"], a.get("dim"), bool(a.get("keepdim", False)))


@handles("max", "min")
def _max(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    big = target_name(node) == "max"
    if "other" in a:
        return _binary(c, node, "MAXIMUM" if big else "MINIMUM", a["self"], a["other"])
    kind = "REDUCE_MAX" if big else "REDUCE_MIN"
    if "dim" not in a:
        return reduce(c, node.name, kind, a["self"], None, False)
    keep = bool(a.get("keepdim", False))
    values = reduce(c, node.name, kind, a["self"], a["dim"], keep)
    if any(u.args[1] == 1 for u in node.users if target_name(u) == "getitem"):
        ak = "ARG_MAX" if big else "ARG_MIN"
        indices = arg(c, f"{node.name}_indices", ak, a["self"], a["dim"], keep)
    else:
        indices = None
    return (values, indices)


@handles("argmax", "argmin")
def _argmax(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    kind = "ARG_MAX" if target_name(node) == "argmax" else "ARG_MIN"
    if not is_tensor(a["self"]):
        raise UnsupportedError("argmax of a constant")
    return arg(c, node.name, kind, a["self"], a.get("dim"), bool(a.get("keepdim", False)))
