"""Data movement: identities, casts, broadcasts, reshapes, permutes, concatenation,
tuple items, and slicing (select, slice, narrow, split, chunk, unbind)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from tinyc.errors import UnsupportedError
from tinyc.frontend.torch.registry import handles, target_name
from tinyc.frontend.torch.values import Act, Value, View, is_tensor

if TYPE_CHECKING:
    from tinyc.frontend.torch.converter import Converter


@handles("getitem")
def _getitem(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    return a["arg0"][a["arg1"]]


@handles(
    "dropout",
    "dropout_",
    "feature_dropout",
    "feature_dropout_",
    "alpha_dropout",
    "alpha_dropout_",
    "feature_alpha_dropout",
    "feature_alpha_dropout_",
    "clone",
    "contiguous",
    "alias",
    "detach",
    "lift_fresh_copy",
    "identity",
)
def _identity(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    if a.get("train") is True:
        raise UnsupportedError("dropout in training mode (call module.eval())")
    return a["input"] if "input" in a else a["self"]


@handles("_to_copy", "to")
def _to_copy(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    torch = c.torch
    dtype = a.get("dtype")
    if dtype not in (None, torch.float32):
        raise UnsupportedError(f"conversion to {dtype}")
    return a["self"]


@handles("repeat", "expand", "expand_copy")
def _repeat(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    """Broadcast operands: kept unexpanded when every reader broadcasts anyway (an
    elementwise op with an operand of the full shape); otherwise materialized with
    BROADCAST_TO (repeat: a new unit axis before each repeated dim, broadcast, merged)."""
    x = a["self"]
    want = tuple(int(d) for d in node.meta["val"].shape)
    if is_tensor(x) and want == x.shape:
        return x  # expands nothing
    if _readers_broadcast(node, want):
        return x
    src = c.materialize(x)
    src = c.with_rank(src, len(want))
    ishape = c.g.tensors[src.name].shape
    if target_name(node) != "repeat":
        target = tuple(want[p] for p in src.perm)
        out = c.emit("BROADCAST_TO", [src.name], node.name, {"shape": target})
        return c.act_from(out, src.perm)
    reps = [int(r) for r in a["repeats"]]
    reps = [reps[p] for p in src.perm]  # storage order
    split, wide, merged = [], [], []
    for r, d in zip(reps, ishape, strict=True):
        split += [1, d] if r > 1 else [d]
        wide += [r, d] if r > 1 else [d]
        merged.append(r * d)
    y = c.emit("RESHAPE", [src.name], f"{node.name}_split", {"shape": tuple(split)})
    y = c.emit("BROADCAST_TO", [y], f"{node.name}_tile", {"shape": tuple(wide)})
    return c.act_from(c.emit("RESHAPE", [y], node.name, {"shape": tuple(merged)}), src.perm)


def _readers_broadcast(node: Any, want: tuple[int, ...]) -> bool:
    readers = {target_name(u) for u in node.users}
    if not readers or not readers <= {"add", "sub", "mul", "add_", "sub_", "mul_"}:
        return False
    for u in node.users:
        other = [x for x in u.args[:2] if x is not node]
        if not other or not hasattr(other[0], "meta"):
            return False
        if tuple(int(d) for d in other[0].meta["val"].shape) != want:
            return False
    return True


@handles("pad", "constant_pad_nd")
def _pad(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    """Constant padding (PyTorch's pad list runs from the last dim backwards)."""
    if a.get("mode", "constant") != "constant":
        raise UnsupportedError(f"pad mode {a['mode']!r} (constant only)")
    x = c.materialize(a["self"] if "self" in a else a["input"])
    pads = [int(p) for p in a["pad"]]
    if min(pads, default=0) < 0:
        raise UnsupportedError("negative padding (cropping)")
    rank = len(x.shape)
    per_dim = [(0, 0)] * rank
    for i in range(len(pads) // 2):
        per_dim[rank - 1 - i] = (pads[2 * i], pads[2 * i + 1])
    value = a.get("value")
    value = 0.0 if value is None else float(value)
    attrs = {"paddings": tuple(per_dim[p] for p in x.perm), "value": value if value else None}
    return c.act_from(c.emit("PAD", [x.name], node.name, attrs), x.perm)


def _view_of(v: Value, shape: tuple[int, ...]) -> Value:
    src = v.src if isinstance(v, View) else v
    if not isinstance(src, Act):
        raise UnsupportedError("reshape of a value computed from nothing")
    return src if shape == src.shape else View(src, shape)


@handles(
    "view",
    "reshape",
    "_unsafe_view",
    "flatten",
    "squeeze",
    "squeeze_",
    "unsqueeze",
    "unsqueeze_",
    "view_copy",
    "_reshape_alias",
    "unflatten",
)
def _reshape(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    shape = tuple(int(d) for d in node.meta["val"].shape)
    return _view_of(a["self"] if "self" in a else a["input"], shape)


@handles("permute", "transpose", "t", "numpy_T")
def _permute(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    x = c.materialize(a["self"] if "self" in a else a["input"])
    rank = len(x.shape)
    name = target_name(node)
    if name == "permute":
        dims = tuple(int(d) % rank for d in a["dims"])
    else:
        d0, d1 = (int(a["dim0"]) % rank, int(a["dim1"]) % rank) if name == "transpose" else (0, 1)
        dims_l = list(range(rank))
        dims_l[d0], dims_l[d1] = dims_l[d1], dims_l[d0]
        dims = tuple(dims_l)
    perm = tuple(dims.index(p) for p in x.perm)
    return Act(x.name, perm, tuple(x.shape[d] for d in dims))


@handles("cat", "concat", "concatenate")
def _cat(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    base, names = _joined(c, node, a["tensors"])
    dim = int(a.get("dim", 0)) % len(base.shape)
    out = c.emit("CONCATENATION", names, node.name, {"axis": base.perm.index(dim)})
    return c.act_from(out, base.perm)


@handles("stack")
def _stack(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    """PACK in the parts' storage layout: the new axis goes where it sits among the
    PyTorch dims stored before it."""
    base, names = _joined(c, node, a["tensors"])
    dim = int(a.get("dim", 0)) % (len(base.shape) + 1)
    shifted = [q + (q >= dim) for q in base.perm]
    axis = sum(1 for q in base.perm if q < dim)
    out = c.emit("PACK", names, node.name, {"axis": axis})
    return c.act_from(out, tuple(shifted[:axis] + [dim] + shifted[axis:]))


def _joined(c: Converter, node: Any, parts: list[Value]) -> tuple[Act, list[str]]:
    """The parts of a concatenation or stack as IR tensors in the first tensor's layout
    (constants included)."""
    first = next((p for p in parts if isinstance(p, Act | View)), None)
    assert first is not None
    base = c.materialize(first)
    names = []
    for p in parts:
        if isinstance(p, Act | View):
            names.append(c.to_perm(c.materialize(p), base.perm).name)
        else:
            arr = np.asarray(p, np.float32)
            names.append(c.const(np.ascontiguousarray(arr.transpose(base.perm)), f"{node.name}_c"))
    return base, names


# -- slicing: SPLIT_V / UNPACK cuts along one axis ------------------------------------------


def _cut(c: Converter, x: Act, dim: int, sizes: list[int], base: str) -> list[Act | None]:
    """``x`` cut along PyTorch dim ``dim`` into consecutive parts of ``sizes`` with one
    SPLIT_V (no zero-sized tensors: those parts are None)."""
    kept = [s for s in sizes if s > 0]
    if len(kept) == 1:
        return [x if s > 0 else None for s in sizes]
    attrs = {"axis": x.perm.index(dim), "size_splits": tuple(kept)}
    outs = iter(c.emit_multi("SPLIT_V", [x.name], base, [True] * len(kept), attrs))
    return [c.act_from(next(outs), x.perm) if s > 0 else None for s in sizes]


def _drop_dim(c: Converter, x: Act, dim: int, base: str) -> Act:
    """``x.squeeze(dim)`` of a unit dim: a RESHAPE of the storage (no data moves)."""
    axis = x.perm.index(dim)
    ishape = c.g.tensors[x.name].shape
    out = c.emit("RESHAPE", [x.name], base, {"shape": ishape[:axis] + ishape[axis + 1 :]})
    perm = tuple(p - (p > dim) for p in x.perm if p != dim)
    return c.act_from(out, perm)


def _tensor_and_dim(c: Converter, a: dict[str, Value]) -> tuple[Act, int]:
    x = c.materialize(a["self"])
    return x, int(a.get("dim", 0)) % len(x.shape)


def _range(c: Converter, node: Any, x: Act, dim: int, start: int, end: int) -> Act:
    n = x.shape[dim]
    if start >= end:
        raise UnsupportedError(f"an empty slice [{start}:{end}] of a dim of {n}")
    part = _cut(c, x, dim, [start, end - start, n - end], node.name)[1]
    assert part is not None
    return part


@handles("select")
def _select(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    x, dim = _tensor_and_dim(c, a)
    n = x.shape[dim]
    i = int(a["index"])
    if not -n <= i < n:
        raise UnsupportedError(f"index {i} out of range for a dim of {n}")
    i %= n
    return _drop_dim(c, _range(c, node, x, dim, i, i + 1), dim, f"{node.name}_squeeze")


def _bound(v: Any, n: int, default: int) -> int:
    if v is None:
        return default
    v = int(v)
    return min(max(v + n if v < 0 else v, 0), n)


@handles("slice")
def _slice(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    x, dim = _tensor_and_dim(c, a)
    n = x.shape[dim]
    start, end = _bound(a.get("start"), n, 0), _bound(a.get("end"), n, n)
    step = int(a.get("step", 1))
    if step != 1:
        raise UnsupportedError(f"slicing with step {step}")
    if (start, end) == (0, n):
        return a["self"]
    return _range(c, node, x, dim, start, end)


@handles("narrow")
def _narrow(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    x, dim = _tensor_and_dim(c, a)
    start = _bound(a["start"], x.shape[dim], 0)
    end = start + int(a["length"])
    if (start, end) == (0, x.shape[dim]):
        return a["self"]
    return _range(c, node, x, dim, start, end)


def _parts(n: int, size: int) -> list[int]:
    """``n`` in parts of ``size``, the last one smaller (torch.split's rule)."""
    if size <= 0:
        raise UnsupportedError(f"splitting into parts of {size}")
    return [size] * (n // size) + ([n % size] if n % size else [])


@handles("split", "split_with_sizes", "chunk")
def _split(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    x, dim = _tensor_and_dim(c, a)
    n = x.shape[dim]
    name = target_name(node)
    if name == "chunk":
        sizes = _parts(n, -(-n // int(a["chunks"])))
    else:
        given = a["split_size"] if "split_size" in a else a["split_sizes"]
        sizes = _parts(n, int(given)) if isinstance(given, int) else [int(s) for s in given]
    if sum(sizes) != n or min(sizes) < 0:
        raise UnsupportedError(f"split sizes {sizes} do not add up to {n}")
    if 0 in sizes:
        raise UnsupportedError(f"empty parts in split sizes {sizes}")
    return list(_cut(c, x, dim, sizes, node.name))


@handles("unbind")
def _unbind(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    x, dim = _tensor_and_dim(c, a)
    n = x.shape[dim]
    if n == 1:
        return [_drop_dim(c, x, dim, node.name)]
    outs = c.emit_multi("UNPACK", [x.name], node.name, [True] * n, {"axis": x.perm.index(dim)})
    perm = tuple(p - (p > dim) for p in x.perm if p != dim)
    return [c.act_from(o, perm) for o in outs]


@handles("flip")
def _flip(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    """Reversal along each dim: its slices unpacked and packed back in reverse order."""
    x = c.materialize(a["self"])
    for d in a["dims"]:
        dim = int(d) % len(x.shape)
        n = x.shape[dim]
        if n == 1:
            continue
        axis = x.perm.index(dim)
        parts = c.emit_multi("UNPACK", [x.name], f"{node.name}_slices", [True] * n, {"axis": axis})
        out = c.emit("PACK", parts[::-1], node.name, {"axis": axis})
        x = c.act_from(out, x.perm)
    return x
