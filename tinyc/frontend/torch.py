"""PyTorch frontend: a ``torch.export`` program straight into the IR (no ONNX in between).

Sources: a saved ExportedProgram (``.pt2``) or ``path/to/file.py:factory[@weights.pt]``,
where ``factory()`` returns ``(module, example_inputs)`` or a module with an
``example_inputs`` attribute; the optional state_dict is loaded with ``strict=True``.

The walk over ``ep.graph_module.graph`` keeps every activation in the layout that suits
the IR (NHWC for 4-D values, ``[N, L, C]`` for Conv1d values) and records how it relates
to PyTorch's layout (``perm``); layout-free ops (elementwise, permute) never move data,
and reshapes stay virtual until an op needs the data in PyTorch's order, so elementwise
ops with constants, such as SubSpectralNorm's per-sub-band affine, apply through them.
Parameter-only subgraphs are evaluated with PyTorch at import; BatchNorm folds into the
convolution or linear layer before it where that layer has no other reader, and becomes a
per-channel MUL + ADD otherwise.
"""

from __future__ import annotations

import importlib.util
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinyc.errors import TinycError, UnsupportedError
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import get_op
from tinyc.ir.tensor import Tensor
from tinyc.ir.verify import verify

NHWC = (0, 2, 3, 1)  # internal = torch.permute(NHWC) for 4-D NCHW values


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise TinycError("PyTorch models need torch (pip install 'tinyc[torch]')") from None
    return torch


@dataclass(frozen=True)
class _Act:
    """An IR activation holding the PyTorch value ``v`` as ``v.permute(perm)``."""

    name: str
    perm: tuple[int, ...]
    shape: tuple[int, ...]  # PyTorch shape

    @property
    def identity(self) -> bool:
        return self.perm == tuple(range(len(self.perm)))


@dataclass(frozen=True)
class _View:
    """PyTorch value ``src.reshape(shape)``, not materialized yet."""

    src: _Act
    shape: tuple[int, ...]


Value = Any  # _Act | _View | np.ndarray | python scalar | list | tuple | None


def _inverse(p: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(p))


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = tuple(int(x) for x in v)
    return (v[0], v[0]) if len(v) == 1 else (v[0], v[1])


def _moves_only_unit_dims(shape: tuple[int, ...], perm: tuple[int, ...]) -> bool:
    """True when transposing ``shape`` by ``perm`` keeps the memory order (a reshape)."""
    kept = [p for p in perm if shape[p] != 1]
    return kept == sorted(kept)


class _Converter:
    def __init__(self, ep: Any, name: str) -> None:
        self.torch = _torch()
        self.ep = ep
        self.g = Graph(name=name, source_format="torch")
        self.env: dict[str, Value] = {}
        self.fx_users: dict[str, int] = {}  # IR tensor -> readers of its fx node
        self.producer: dict[str, Node] = {}
        self.layout_cache: dict[tuple[str, tuple[int, ...]], _Act] = {}

    # -- building blocks ------------------------------------------------------------------
    def emit(self, kind: str, inputs: list[str], base: str, attrs: dict | None = None) -> str:
        out = self.g.unique_name(base)
        self.g.add_tensor(Tensor(out, (), "float32"))
        node = Node(kind, out, inputs, [out], attrs or {})
        self.g.nodes.append(node)
        ((shape, _),) = get_op(kind).infer(node, self.g)
        self.g.tensors[out].shape = tuple(shape)
        self.producer[out] = node
        return out

    def const(self, data: np.ndarray, base: str) -> str:
        name = self.g.unique_name(base)
        self.g.add_tensor(Tensor(name, data.shape, "float32", data.astype(np.float32)))
        return name

    def act_from(self, name: str, perm: tuple[int, ...]) -> _Act:
        ishape = self.g.tensors[name].shape
        shape = tuple(ishape[i] for i in _inverse(perm))
        return _Act(name, perm, shape)

    def to_perm(self, a: _Act, perm: tuple[int, ...]) -> _Act:
        if a.perm == perm:
            return a
        key = (a.name, perm)
        if key not in self.layout_cache:
            inv = _inverse(a.perm)
            q = tuple(inv[p] for p in perm)
            ishape = self.g.tensors[a.name].shape
            target = tuple(ishape[i] for i in q)
            if _moves_only_unit_dims(ishape, q):
                out = self.emit("RESHAPE", [a.name], f"{a.name}_relayout", {"shape": target})
            else:
                out = self.emit("TRANSPOSE", [a.name], f"{a.name}_transpose", {"perm": q})
            self.layout_cache[key] = _Act(out, perm, a.shape)
        return self.layout_cache[key]

    def materialize(self, v: Value) -> _Act:
        if isinstance(v, _Act):
            return v
        if isinstance(v, _View):
            src = self.to_perm(v.src, tuple(range(len(v.src.shape))))
            out = self.emit("RESHAPE", [src.name], f"{src.name}_view", {"shape": v.shape})
            return _Act(out, tuple(range(len(v.shape))), v.shape)
        raise UnsupportedError(f"expected a tensor computed from the model input, got {v!r}")

    def nhwc(self, v: Value, what: str) -> _Act:
        a = self.materialize(v)
        if len(a.shape) != 4:
            raise UnsupportedError(f"{what} needs a 4-D NCHW input, got shape {list(a.shape)}")
        return self.to_perm(a, NHWC)

    def with_rank(self, a: _Act, rank: int) -> _Act:
        """``a`` with leading unit dims added (PyTorch broadcasting) up to ``rank``."""
        k = rank - len(a.shape)
        if k <= 0:
            return a
        ishape = self.g.tensors[a.name].shape
        out = self.emit("RESHAPE", [a.name], f"{a.name}_rank", {"shape": (1,) * k + ishape})
        return _Act(out, tuple(range(k)) + tuple(p + k for p in a.perm), (1,) * k + a.shape)

    def const_like(self, v: _Act | _View, c: np.ndarray, reduce: bool = True) -> np.ndarray:
        """Constant ``c`` (broadcasting against PyTorch value ``v``) in ``v``'s storage
        layout; with ``reduce``, axes along which it does not vary shrink to 1."""
        shape = v.shape
        c = np.asarray(c, np.float32)
        if np.broadcast_shapes(c.shape, shape) != tuple(shape):
            raise UnsupportedError(
                f"a constant of shape {list(c.shape)} widens a {list(shape)} value"
            )
        full = np.broadcast_to(c, shape)
        src = v.src if isinstance(v, _View) else v
        full = full.reshape(src.shape).transpose(src.perm)
        full = full.reshape(self.g.tensors[src.name].shape)
        if reduce:
            for ax in range(full.ndim):
                if full.shape[ax] > 1 and np.all(full == full.take([0], axis=ax)):
                    full = full.take([0], axis=ax)
        return np.ascontiguousarray(full)

    # -- conversion -------------------------------------------------------------------------
    def run(self) -> Graph:
        sig = self.ep.graph_signature
        consts = self._lifted_constants()
        user_inputs = list(sig.user_inputs)
        graph = self.ep.graph_module.graph
        for node in graph.nodes:
            try:
                self._convert(node, consts, user_inputs)
            except TinycError as e:
                raise type(e)(f"PyTorch node {node.name!r} ({_target_name(node)}): {e}") from None
        self.g.remove_unused()
        verify(self.g)
        return self.g

    def _lifted_constants(self) -> dict[str, np.ndarray]:
        torch = self.torch
        out: dict[str, np.ndarray] = {}
        values = {**self.ep.state_dict, **getattr(self.ep, "constants", {})}
        for spec in self.ep.graph_signature.input_specs:
            if spec.target is None or spec.target not in values:
                continue
            t = values[spec.target]
            if isinstance(t, torch.Tensor):
                out[spec.arg.name] = t.detach().cpu().numpy()
        return out

    def _convert(self, node: Any, consts: dict[str, np.ndarray], user_inputs: list[str]) -> None:
        if node.op == "placeholder":
            if node.name in consts:
                self.env[node.name] = consts[node.name]
            elif node.name in user_inputs:
                self.env[node.name] = self._input(node)
            else:
                raise UnsupportedError("unknown placeholder (not a parameter, buffer or input)")
            return
        if node.op == "output":
            self._outputs(node.args[0])
            return
        if node.op != "call_function":
            raise UnsupportedError(f"{node.op} nodes are not supported")
        args = self._bind(node)
        if _all_constant(args):
            self.env[node.name] = self._fold(node)
            return
        name = _target_name(node)
        handler = HANDLERS.get(name)
        if handler is None:
            raise UnsupportedError(f"operator {name} is not supported")
        value = handler(self, node, args)
        if name not in _BROADCASTS:
            self._check_shape(node, value)
        self.env[node.name] = value
        if isinstance(value, _Act):
            self.fx_users[value.name] = len(node.users)

    def _bind(self, node: Any) -> dict[str, Value]:
        """Arguments by schema name, defaults filled in, fx nodes replaced by values."""
        resolve = self._resolve
        schema = getattr(node.target, "_schema", None)
        if schema is None:  # e.g. operator.getitem
            return {f"arg{i}": resolve(a) for i, a in enumerate(node.args)}
        bound: dict[str, Value] = {}
        positional = [a for a in schema.arguments if not a.kwarg_only]
        for a, v in zip(positional, node.args, strict=False):
            bound[a.name] = resolve(v)
        for k, v in node.kwargs.items():
            bound[k] = resolve(v)
        for a in schema.arguments:
            if a.name not in bound and a.has_default_value():
                bound[a.name] = a.default_value
        return bound

    def _resolve(self, v: Any) -> Value:
        fx = sys.modules["torch.fx"]
        if isinstance(v, fx.Node):
            return self.env[v.name]
        if isinstance(v, list | tuple):
            return type(v)(self._resolve(x) for x in v)
        return v

    def _fold(self, node: Any) -> Any:
        """Evaluate a parameter-only node with PyTorch itself."""
        torch = self.torch

        def to_torch(v: Any) -> Any:
            if isinstance(v, np.ndarray):
                return torch.from_numpy(np.ascontiguousarray(v))
            if isinstance(v, list | tuple):
                return type(v)(to_torch(x) for x in v)
            return v

        args = to_torch(self._resolve(node.args))
        kwargs = {k: to_torch(self._resolve(v)) for k, v in node.kwargs.items()}
        with torch.no_grad():
            out = node.target(*args, **kwargs)

        def to_np(v: Any) -> Any:
            if isinstance(v, torch.Tensor):
                return v.detach().cpu().numpy()
            if isinstance(v, list | tuple):
                return type(v)(to_np(x) for x in v)
            return v

        return to_np(out)

    def _check_shape(self, node: Any, value: Value) -> None:
        val = node.meta.get("val")
        if val is None or not hasattr(val, "shape"):
            return
        want = tuple(int(d) for d in val.shape)
        if isinstance(value, _Act | _View) and value.shape != want:
            raise TinycError(f"converted to shape {list(value.shape)}, PyTorch has {list(want)}")

    def _input(self, node: Any) -> _Act:
        torch = self.torch
        val = node.meta["val"]
        if val.dtype != torch.float32:
            raise UnsupportedError(f"input {node.name!r} is {val.dtype}; only float32 inputs")
        shape = tuple(int(d) for d in val.shape)
        perm = tuple(range(len(shape)))
        if len(shape) == 4:
            perm = NHWC
        elif len(shape) == 3 and any(_target_name(u) in _CONV1D for u in node.users):
            perm = (0, 2, 1)
        internal = tuple(shape[p] for p in perm)
        self.g.add_tensor(Tensor(node.name, internal, "float32"))
        self.g.inputs.append(node.name)
        if perm != tuple(range(len(perm))):
            self.g.external_perm[node.name] = _inverse(perm)
        return _Act(node.name, perm, shape)

    def _outputs(self, outs: Any) -> None:
        for i, o in enumerate(outs if isinstance(outs, list | tuple) else [outs]):
            v = self._resolve(o)
            if not isinstance(v, _Act | _View):
                raise UnsupportedError(f"model output {i} does not depend on the input")
            a = self.materialize(v)
            if a.name in self.g.inputs or a.name in self.g.outputs:
                shape = self.g.tensors[a.name].shape
                a = _Act(
                    self.emit("RESHAPE", [a.name], f"output_{i}", {"shape": shape}), a.perm, a.shape
                )
            self.g.outputs.append(a.name)
            if not a.identity:
                self.g.external_perm[a.name] = _inverse(a.perm)


def _target_name(node: Any) -> str:
    t = node.target
    packet = getattr(t, "_overloadpacket", None)
    if packet is not None:
        return packet.__name__
    return getattr(t, "__name__", str(t))


def _all_constant(args: dict[str, Value]) -> bool:
    def const(v: Any) -> bool:
        if isinstance(v, _Act | _View):
            return False
        if isinstance(v, list | tuple):
            return all(const(x) for x in v)
        return True

    return all(const(v) for v in args.values())


# -- handlers: one per PyTorch operator family ------------------------------------------------

Handler = Callable[[_Converter, Any, dict[str, Value]], Value]
HANDLERS: dict[str, Handler] = {}
_CONV1D = {"conv1d", "convolution", "_convolution"}
_BROADCASTS = {"repeat", "expand"}  # kept unexpanded (see _repeat)


def _handles(*names: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        for n in names:
            HANDLERS[n] = fn
        return fn

    return deco


def _conv_pads(padding: Any, k: tuple[int, int], d: tuple[int, int]) -> tuple[int, int, int, int]:
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            th, tw = d[0] * (k[0] - 1), d[1] * (k[1] - 1)
            return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
        raise UnsupportedError(f"padding {padding!r}")
    ph, pw = _pair(padding)
    return (ph, ph, pw, pw)


@_handles("conv2d", "conv1d", "convolution", "_convolution")
def _conv(c: _Converter, node: Any, a: dict[str, Value]) -> Value:
    x, w, b = a["input"], a["weight"], a.get("bias")
    if not isinstance(w, np.ndarray) or (b is not None and not isinstance(b, np.ndarray)):
        raise UnsupportedError("convolution weights and bias must be constants")
    if a.get("transposed"):
        raise UnsupportedError("transposed convolution is not supported")
    if any(int(p) for p in np.atleast_1d(a.get("output_padding") or 0)):
        raise UnsupportedError("output_padding is not supported")
    groups = int(a.get("groups", 1))
    one_d = w.ndim == 3
    stride, dilation, padding = a["stride"], a["dilation"], a["padding"]
    if one_d:  # Conv1d: an [N, 1, L, C] CONV_2D
        w = w[:, :, None, :]
        s1, d1 = _pair(stride)[0], _pair(dilation)[0]
        stride, dilation = (1, s1), (1, d1)
        padding = padding if isinstance(padding, str) else (0, _pair(padding)[0])
        src = c.to_perm(c.materialize(x), (0, 2, 1))
        n, length, ch = c.g.tensors[src.name].shape
        xin = c.emit("RESHAPE", [src.name], f"{src.name}_4d", {"shape": (n, 1, length, ch)})
    else:
        xin = c.nhwc(x, "conv2d").name
    k = (w.shape[2], w.shape[3])
    s, d = _pair(stride), _pair(dilation)
    attrs = {"stride": s, "dilation": d, "pads": _conv_pads(padding, k, d)}
    cin = c.g.tensors[xin].shape[3]
    bias = b if b is not None else np.zeros(w.shape[0], np.float32)
    base = node.name
    if groups == 1:
        wt = c.const(np.ascontiguousarray(w.transpose(0, 2, 3, 1)), f"{base}_weight")
        kind = "CONV_2D"
    elif groups == cin and w.shape[1] == 1:
        wt = c.const(np.ascontiguousarray(w.transpose(1, 2, 3, 0)), f"{base}_weight")
        kind = "DEPTHWISE_CONV_2D"
        attrs["depth_multiplier"] = w.shape[0] // cin
    else:
        # Grouped: TFLM's CONV_2D takes filters with cin / groups input channels as they are
        # (one SPLIT_V + CONCATENATION per group would exceed TFLM's 10 concat inputs).
        wt = c.const(np.ascontiguousarray(w.transpose(0, 2, 3, 1)), f"{base}_weight")
        kind = "CONV_2D"
    bt = c.const(np.asarray(bias, np.float32), f"{base}_bias")
    out = c.emit(kind, [xin, wt, bt], base, attrs)
    return _conv_result(c, out, base, one_d)


def _conv_result(c: _Converter, out: str, base: str, one_d: bool) -> _Act:
    if one_d:
        n, _, length, ch = c.g.tensors[out].shape
        conv = c.producer[out]
        out = c.emit("RESHAPE", [out], f"{base}_3d", {"shape": (n, length, ch)})
        c.producer[out] = conv  # BatchNorm1d folds through the reshape (channels stay last)
        return c.act_from(out, (0, 2, 1))
    return c.act_from(out, NHWC)


def _fc(c: _Converter, node: Any, x: Value, w: np.ndarray, b: np.ndarray | None) -> _Act:
    src = c.materialize(x)
    src = c.to_perm(src, tuple(range(len(src.shape))))
    bias = b if b is not None else np.zeros(w.shape[0], np.float32)
    wt = c.const(np.ascontiguousarray(w), f"{node.name}_weight")
    bt = c.const(np.asarray(bias, np.float32), f"{node.name}_bias")
    attrs = {"keep_num_dims": len(src.shape) > 2}
    out = c.emit("FULLY_CONNECTED", [src.name, wt, bt], node.name, attrs)
    return c.act_from(out, tuple(range(len(c.g.tensors[out].shape))))


@_handles("linear")
def _linear(c: _Converter, node: Any, a: dict[str, Value]) -> Value:
    w, b = a["weight"], a.get("bias")
    if not isinstance(w, np.ndarray) or (b is not None and not isinstance(b, np.ndarray)):
        raise UnsupportedError("linear weights and bias must be constants")
    return _fc(c, node, a["input"], w, b)


@_handles("addmm")
def _addmm(c: _Converter, node: Any, a: dict[str, Value]) -> Value:
    b, x, wt = a["self"], a["mat1"], a["mat2"]
    if not isinstance(wt, np.ndarray) or not isinstance(b, np.ndarray):
        raise UnsupportedError("addmm needs constant weights and bias")
    beta, alpha = float(a.get("beta", 1)), float(a.get("alpha", 1))
    return _fc(c, node, x, wt.T * alpha, np.broadcast_to(b * beta, (wt.shape[1],)))


@_handles("mm", "matmul")
def _mm(c: _Converter, node: Any, a: dict[str, Value]) -> Value:
    x, w = a["self"], a.get("mat2", a.get("other"))
    if not isinstance(w, np.ndarray) or w.ndim != 2:
        raise UnsupportedError("matrix products need a constant 2-D right operand")
    return _fc(c, node, x, w.T, None)


def _bn_affine(a: dict[str, Value], channels: int) -> tuple[np.ndarray, np.ndarray]:
    w, b = a.get("weight"), a.get("bias")
    mean, var = a.get("running_mean"), a.get("running_var")
    if mean is None or var is None:
        raise UnsupportedError("batch norm without running statistics")
    for v in (w, b, mean, var):
        if v is not None and not isinstance(v, np.ndarray):
            raise UnsupportedError("batch norm parameters must be constants")
    inv = 1.0 / np.sqrt(var.astype(np.float64) + float(a["eps"]))
    scale = inv * (w.astype(np.float64) if w is not None else 1.0)
    shift = (b.astype(np.float64) if b is not None else 0.0) - mean * scale
    return np.broadcast_to(scale, (channels,)), np.broadcast_to(shift, (channels,))


def _fold_into_producer(c: _Converter, x: _Act, scale: np.ndarray, shift: np.ndarray) -> bool:
    """Fold a per-channel affine into the conv / FC that alone reads into ``x``."""
    node = c.producer.get(x.name)
    if node is None or c.fx_users.get(x.name) != 1 or x.name in c.g.outputs:
        return False
    op = get_op(node.op)
    if op.weight_input is None or node.attrs.get("activation", "NONE") != "NONE":
        return False
    if len(x.shape) < 2 or x.perm[-1] != 1:  # the channel (dim 1) must be the last axis
        return False
    w = c.g.tensors[node.inputs[op.weight_input]]
    b = c.g.tensors[node.inputs[op.bias_input]]
    shape = [1] * w.data.ndim
    shape[op.weight_axis] = -1
    w.data = (w.data * scale.reshape(shape)).astype(np.float32)
    b.data = (b.data * scale + shift).astype(np.float32)
    return True


def _is_subband_split(v: _View) -> bool:
    """``[N, C, F, T]`` viewed as ``[N, C*S, F/S, T]``: SubSpectralNorm's sub-bands."""
    if len(v.shape) != 4 or len(v.src.shape) != 4:
        return False
    n, ch, f, t = v.src.shape
    if v.shape[1] % ch or v.shape[0] != n or v.shape[3] != t:
        return False
    s = v.shape[1] // ch
    return s > 1 and f % s == 0 and v.shape[2] == f // s


def _subband_affine(
    c: _Converter, node: Any, v: _View, scale: np.ndarray, shift: np.ndarray
) -> _View:
    """A per-(channel, sub-band) affine as one per-channel DEPTHWISE_CONV_2D 1x1.

    The NHWC storage [N, F, T, C] regroups to [N, 1, F/S*T, S*C] (reshape, transpose of the
    sub-band axis next to the channels, reshape), so each (sub-band, channel) pair becomes a
    channel whose int8 weight gets its own per-channel scale: exact in float, and far more
    precise in int8 than a MUL by a per-tensor quantized [F, C] constant.
    """
    n, ch, f, t = v.src.shape
    s = v.shape[1] // ch
    fb = f // s
    x = c.to_perm(v.src, NHWC)
    base = node.name
    y = c.emit("RESHAPE", [x.name], f"{base}_bands", {"shape": (n, s, fb * t, ch)})
    y = c.emit("TRANSPOSE", [y], f"{base}_bands_last", {"perm": (0, 2, 1, 3)})
    y = c.emit("RESHAPE", [y], f"{base}_as_channels", {"shape": (n, 1, fb * t, s * ch)})
    # view channel c*S + s  ->  regrouped channel s*C + c
    k = np.asarray(scale, np.float32).reshape(ch, s).T.reshape(1, 1, 1, s * ch)
    b = np.asarray(shift, np.float32).reshape(ch, s).T.reshape(s * ch)
    w_name, b_name = c.const(k, f"{base}_weight"), c.const(b, f"{base}_bias")
    attrs = {"depth_multiplier": 1}
    y = c.emit("DEPTHWISE_CONV_2D", [y, w_name, b_name], base, attrs)
    y = c.emit("RESHAPE", [y], f"{base}_bands_split", {"shape": (n, fb * t, s, ch)})
    y = c.emit("TRANSPOSE", [y], f"{base}_bands_first", {"perm": (0, 2, 1, 3)})
    y = c.emit("RESHAPE", [y], f"{base}_out", {"shape": (n, f, t, ch)})
    return _View(c.act_from(y, NHWC), v.shape)


@_handles("batch_norm", "_native_batch_norm_legit_no_training", "native_batch_norm")
def _batch_norm(c: _Converter, node: Any, a: dict[str, Value]) -> Value:
    if a.get("training") is True:
        raise UnsupportedError("batch norm in training mode (call module.eval())")
    x = a["input"]
    shape = x.shape
    scale, shift = _bn_affine(a, shape[1])
    result: Value
    if isinstance(x, _Act) and _fold_into_producer(c, x, scale, shift):
        result = x
    elif isinstance(x, _View) and _is_subband_split(x):
        result = _subband_affine(c, node, x, scale, shift)
    else:
        bshape = (1, shape[1]) + (1,) * (len(shape) - 2)
        y = _binary_const(c, node, "MUL", x, scale.reshape(bshape), "scale")
        result = _binary_const(c, node, "ADD", y, shift.reshape(bshape), "shift")
    if _target_name(node) != "batch_norm":
        return (result, None, None)  # the legit variants return (out, mean, rstd)
    return result


@_handles("getitem")
def _getitem(c: _Converter, node: Any, a: dict[str, Value]) -> Value:
    return a["arg0"][a["arg1"]]


def _binary_const(c: _Converter, node: Any, kind: str, x: Value, k: Any, what: str) -> Value:
    """``x <kind> k`` for constant ``k``, applied in ``x``'s storage (through views)."""
    const = c.const_like(x, np.asarray(k, np.float32))
    src = x.src if isinstance(x, _View) else x
    kt = c.const(const, f"{node.name}_{what}")
    out = c.emit(kind, [src.name, kt], f"{node.name}_{what.lower()}" if what else node.name)
    res = _Act(out, src.perm, src.shape)
    return _View(res, x.shape) if isinstance(x, _View) else res


def _binary(c: _Converter, node: Any, kind: str, x: Value, y: Value) -> Value:
    xc, yc = not isinstance(x, _Act | _View), not isinstance(y, _Act | _View)
    if yc:
        return _binary_const(c, node, kind, x, y, "")
    if xc:
        if kind in ("ADD", "MUL"):
            return _binary_const(c, node, kind, y, x, "")
        # c - y: the constant operand comes first
        const = c.const_like(y, np.asarray(x, np.float32))
        src = y.src if isinstance(y, _View) else y
        out = c.emit(kind, [c.const(const, f"{node.name}_const"), src.name], node.name)
        res = _Act(out, src.perm, src.shape)
        return _View(res, y.shape) if isinstance(y, _View) else res
    if (
        isinstance(x, _View)
        and isinstance(y, _View)
        and x.shape == y.shape
        and (x.src.shape == y.src.shape)
    ):
        ys = c.to_perm(y.src, x.src.perm)
        out = c.emit(kind, [x.src.name, ys.name], node.name)
        return _View(_Act(out, x.src.perm, x.src.shape), x.shape)
    xa, ya = c.materialize(x), c.materialize(y)
    rank = max(len(xa.shape), len(ya.shape))
    xa, ya = c.with_rank(xa, rank), c.with_rank(ya, rank)
    ya = c.to_perm(ya, xa.perm)
    out = c.emit(kind, [xa.name, ya.name], node.name)
    return c.act_from(out, xa.perm)


@_handles("add", "add_")
def _add(c: _Converter, node: Any, a: dict[str, Value]) -> Value:
    x, y, alpha = a["self"], a["other"], a.get("alpha", 1)
    if alpha != 1:
        if isinstance(y, _Act | _View):
            raise UnsupportedError("add with alpha on two tensors")
        y = np.asarray(y) * alpha
    return _binary(c, node, "ADD", x, y)


@_handles("sub", "sub_")
def _sub(c: _Converter, node: Any, a: dict[str, Value]) -> Value:
    x, y, alpha = a["self"], a["other"], a.get("alpha", 1)
    if alpha != 1:
        if isinstance(y, _Act | _View):
            raise UnsupportedError("sub with alpha on two tensors")
        y = np.asarray(y) * alpha
    return _binary(c, node, "SUB", x, y)


@_handles("rsub")
def _rsub(c: _Converter, node: Any, a: dict[str, Value]) -> Value:
    x, y, alpha = a["self"], a["other"], a.get("alpha", 1)
    if alpha != 1:
        raise UnsupportedError("rsub with alpha")
    return _binary(c, node, "SUB", y, x)


@_handles("mul", "mul_")
def _mul(c: _Converter, node: Any, a: dict[str, Value]) -> Value:
    return _binary(c, node, "MUL", a["self"], a["other"])


@_handles("div", "div_")
def _div(c: _Converter, node: Any, a: dict[str, Value]) -> Value:
    x, y = a["self"], a["other"]
    if isinstance(y, _Act | _View) or a.get("rounding_mode") is not None:
        raise UnsupportedError("division by a tensor computed at run time")
    return _binary(c, node, "MUL", x, 1.0 / np.asarray(y, np.float64))


def _unary(kind: str) -> Handler:
    def convert(c: _Converter, node: Any, a: dict[str, Value]) -> Value:
        x = a["self"] if "self" in a else a["input"]
        src = x.src if isinstance(x, _View) else x
        out = c.emit(kind, [src.name], node.name)
        res = _Act(out, src.perm, src.shape)
        return _View(res, x.shape) if isinstance(x, _View) else res

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


def _clamp_kind(lo: Any, hi: Any) -> str:
    lo = None if lo is None else float(lo)
    hi = None if hi is None else float(hi)
    if lo == 0.0 and hi == 6.0:
        return "RELU6"
    if lo == 0.0 and hi is None:
        return "RELU"
    raise UnsupportedError(f"clamp to [{lo}, {hi}] (only ReLU and ReLU6 ranges)")


@_handles("hardtanh", "hardtanh_")
def _hardtanh(c: _Converter, node: Any, a: dict[str, Value]) -> Value:
    return _unary(_clamp_kind(a["min_val"], a["max_val"]))(c, node, a)


@_handles("clamp", "clamp_", "clip")
def _clamp(c: _Converter, node: Any, a: dict[str, Value]) -> Value:
    return _unary(_clamp_kind(a.get("min"), a.get("max")))(c, node, a)


@_handles("silu", "silu_")
def _silu(c: _Converter, node: Any, a: dict[str, Value]) -> Value:
    """x * sigmoid(x): two TFLM ops."""
    x = c.materialize(a["self"])
    sig = c.emit("LOGISTIC", [x.name], f"{node.name}_sigmoid")
    out = c.emit("MUL", [x.name, sig], node.name)
    return c.act_from(out, x.perm)


@_handles(
    "dropout",
    "feature_dropout",
    "alpha_dropout",
    "feature_alpha_dropout",
    "clone",
    "contiguous",
    "alias",
    "detach",
    "lift_fresh_copy",
    "identity",
)
def _identity(c: _Converter, node: Any, a: dict[str, Value]) -> Value:
    if a.get("train") is True:
        raise UnsupportedError("dropout in training mode (call module.eval())")
    return a["input"] if "input" in a else a["self"]


@_handles("_to_copy", "to")
def _to_copy(c: _Converter, node: Any, a: dict[str, Value]) -> Value:
    torch = c.torch
    dtype = a.get("dtype")
    if dtype not in (None, torch.float32):
        raise UnsupportedError(f"conversion to {dtype}")
    return a["self"]


@_handles("repeat", "expand")
def _repeat(c: _Converter, node: Any, a: dict[str, Value]) -> Value:
    """Broadcast operands: kept unexpanded when every reader broadcasts anyway."""
    readers = {_target_name(u) for u in node.users}
    if not readers <= {"add", "sub", "mul", "add_", "sub_", "mul_"}:
        raise UnsupportedError(f"{_target_name(node)} feeding {sorted(readers)}")
    for u in node.users:
        other = [x for x in u.args[:2] if x is not node]
        want = tuple(int(d) for d in node.meta["val"].shape)
        if not other or tuple(int(d) for d in other[0].meta["val"].shape) != want:
            raise UnsupportedError("repeat/expand whose other operand is smaller")
    return a["self"]


def _view_of(v: Value, shape: tuple[int, ...]) -> Value:
    src = v.src if isinstance(v, _View) else v
    if not isinstance(src, _Act):
        raise UnsupportedError("reshape of a value computed from nothing")
    return src if shape == src.shape else _View(src, shape)


@_handles(
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
)
def _reshape(c: _Converter, node: Any, a: dict[str, Value]) -> Value:
    shape = tuple(int(d) for d in node.meta["val"].shape)
    return _view_of(a["self"] if "self" in a else a["input"], shape)


@_handles("permute", "transpose", "t", "numpy_T")
def _permute(c: _Converter, node: Any, a: dict[str, Value]) -> Value:
    x = c.materialize(a["self"] if "self" in a else a["input"])
    rank = len(x.shape)
    name = _target_name(node)
    if name == "permute":
        dims = tuple(int(d) % rank for d in a["dims"])
    else:
        d0, d1 = (int(a["dim0"]) % rank, int(a["dim1"]) % rank) if name == "transpose" else (0, 1)
        dims_l = list(range(rank))
        dims_l[d0], dims_l[d1] = dims_l[d1], dims_l[d0]
        dims = tuple(dims_l)
    perm = tuple(dims.index(p) for p in x.perm)
    return _Act(x.name, perm, tuple(x.shape[d] for d in dims))


@_handles("mean")
def _mean(c: _Converter, node: Any, a: dict[str, Value]) -> Value:
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


def _pool_geometry(
    c: _Converter, x: _Act, a: dict[str, Value], what: str
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int, int, int]]:
    k = _pair(a["kernel_size"])
    stride = a.get("stride")
    s = k if not stride else _pair(stride)
    ph, pw = _pair(a.get("padding", 0))
    pads = [ph, ph, pw, pw]
    if a.get("ceil_mode"):
        _, h, w, _ = c.g.tensors[x.name].shape
        for i, (size, kk, ss) in enumerate(((h, k[0], s[0]), (w, k[1], s[1]))):
            p = pads[2 * i]
            out = -(-(size + 2 * p - kk) // ss) + 1
            if (out - 1) * ss >= size + p:
                out -= 1
            pads[2 * i + 1] += max(0, (out - 1) * ss + kk - (size + 2 * p))
    return k, s, (pads[0], pads[1], pads[2], pads[3])


@_handles("max_pool2d", "max_pool2d_with_indices")
def _max_pool(c: _Converter, node: Any, a: dict[str, Value]) -> Value:
    x = c.nhwc(a["self"], "max_pool2d")
    if _pair(a.get("dilation", 1)) != (1, 1):
        raise UnsupportedError("dilated max pooling")
    k, s, pads = _pool_geometry(c, x, a, "max_pool2d")
    out = c.emit("MAX_POOL_2D", [x.name], node.name, {"filter": k, "stride": s, "pads": pads})
    res = c.act_from(out, NHWC)
    return (res, None) if _target_name(node) == "max_pool2d_with_indices" else res


@_handles("avg_pool2d")
def _avg_pool(c: _Converter, node: Any, a: dict[str, Value]) -> Value:
    x = c.nhwc(a["self"], "avg_pool2d")
    if a.get("divisor_override") is not None:
        raise UnsupportedError("avg_pool2d with divisor_override")
    k, s, pads = _pool_geometry(c, x, a, "avg_pool2d")
    if any(pads) and a.get("count_include_pad", True):
        if a.get("ceil_mode"):
            raise UnsupportedError("avg_pool2d with ceil_mode and count_include_pad")
        t, b, l, r = pads
        paddings = ((0, 0), (t, b), (l, r), (0, 0))
        padded = c.emit("PAD", [x.name], f"{node.name}_pad", {"paddings": paddings, "value": 0})
        x, pads = c.act_from(padded, NHWC), (0, 0, 0, 0)
    attrs = {"filter": k, "stride": s, "pads": pads}
    return c.act_from(c.emit("AVERAGE_POOL_2D", [x.name], node.name, attrs), NHWC)


@_handles("adaptive_avg_pool2d", "_adaptive_avg_pool2d")
def _adaptive_avg_pool(c: _Converter, node: Any, a: dict[str, Value]) -> Value:
    x = c.nhwc(a["self"], "adaptive_avg_pool2d")
    _, h, w, _ = c.g.tensors[x.name].shape
    oh, ow = _pair(a["output_size"])
    if h % oh or w % ow:
        raise UnsupportedError(f"adaptive pooling {h}x{w} -> {oh}x{ow} (not a whole ratio)")
    k = (h // oh, w // ow)
    attrs = {"filter": k, "stride": k, "pads": (0, 0, 0, 0)}
    return c.act_from(c.emit("AVERAGE_POOL_2D", [x.name], node.name, attrs), NHWC)


@_handles("softmax", "_softmax")
def _softmax(c: _Converter, node: Any, a: dict[str, Value]) -> Value:
    x = c.materialize(a["self"])
    dim = int(a["dim"]) % len(x.shape)
    if x.perm[-1] != dim:
        order = tuple(d for d in x.perm if d != dim) + (dim,)
        x = c.to_perm(x, order)
    return c.act_from(c.emit("SOFTMAX", [x.name], node.name, {"beta": 1.0}), x.perm)


@_handles("cat", "concat", "concatenate")
def _cat(c: _Converter, node: Any, a: dict[str, Value]) -> Value:
    parts = a["tensors"]
    first = next((p for p in parts if isinstance(p, _Act | _View)), None)
    assert first is not None
    base = c.materialize(first)
    rank = len(base.shape)
    dim = int(a.get("dim", 0)) % rank
    names = []
    for p in parts:
        if isinstance(p, _Act | _View):
            names.append(c.to_perm(c.materialize(p), base.perm).name)
        else:
            arr = np.asarray(p, np.float32)
            names.append(c.const(np.ascontiguousarray(arr.transpose(base.perm)), f"{node.name}_c"))
    out = c.emit("CONCATENATION", names, node.name, {"axis": base.perm.index(dim)})
    return c.act_from(out, base.perm)


# -- entry points ---------------------------------------------------------------------------


def from_exported_program(ep: Any, name: str = "model") -> Graph:
    """Convert a ``torch.export.ExportedProgram`` into a float Graph."""
    return _Converter(ep, name).run()


def export_module(module: Any, example_inputs: tuple, name: str = "model") -> Graph:
    """``torch.export`` an ``nn.Module`` (in eval mode) and convert it."""
    torch = _torch()
    module = module.eval()
    try:
        with torch.no_grad():
            ep = torch.export.export(module, tuple(example_inputs))
    except Exception as e:  # torch raises many kinds of export errors
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TinycError(f"torch.export failed for {name}: {msg}") from None
    return from_exported_program(ep, name)


def load_exported_program(path: str | Path) -> Graph:
    """A program saved with ``torch.export.save`` (``.pt2``)."""
    torch = _torch()
    p = Path(path)
    try:
        ep = torch.export.load(str(p))
    except Exception as e:
        raise TinycError(f"{p}: not a loadable torch.export program ({type(e).__name__})") from None
    return from_exported_program(ep, p.stem)


def _import_file(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"tinyc_user_{uuid.uuid4().hex}", path)
    if spec is None or spec.loader is None:
        raise TinycError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise TinycError(f"importing {path} failed: {type(e).__name__}: {e}") from None
    finally:
        sys.path.remove(str(path.parent))
    return module


def load_torch_factory(spec: str) -> Graph:
    """``path/to/file.py:factory`` or ``path/to/file.py:factory@state_dict.pt``."""
    torch = _torch()
    file_part, _, rest = spec.rpartition(":")
    fn_name, _, weights = rest.partition("@")
    path = Path(file_part)
    if not path.is_file():
        raise TinycError(f"no such file: {path}")
    factory = getattr(_import_file(path), fn_name, None)
    if not callable(factory):
        raise TinycError(f"{path} has no callable {fn_name!r}")
    try:
        made = factory()
    except Exception as e:
        raise TinycError(f"{path}:{fn_name}() failed: {type(e).__name__}: {e}") from None
    if isinstance(made, tuple) and len(made) == 2:
        module, example = made
    else:
        module, example = made, getattr(made, "example_inputs", None)
    if not isinstance(module, torch.nn.Module):
        raise TinycError(f"{path}:{fn_name}() must return an nn.Module or (module, inputs)")
    if example is None:
        raise TinycError(
            f"{path}:{fn_name}(): give example inputs (return (module, inputs) or set "
            "module.example_inputs)"
        )
    if isinstance(example, torch.Tensor):
        example = (example,)
    if weights:
        load_state_dict(module, weights)
    return export_module(module, tuple(example), fn_name)


def load_state_dict(module: Any, weights: str | Path) -> None:
    """Load a ``torch.save``d state_dict into ``module`` with ``strict=True``."""
    torch = _torch()
    try:
        sd = torch.load(str(weights), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise TinycError(f"no such file: {weights}") from None
    except Exception as e:
        raise TinycError(f"{weights}: not a loadable state_dict ({type(e).__name__})") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    try:
        module.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise TinycError(f"{weights} does not fit the module: {' '.join(first[:3])}") from None
