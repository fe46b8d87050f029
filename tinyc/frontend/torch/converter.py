"""The walk over a ``torch.export`` graph: the conversion state and the building blocks
the operator translations (``ops_*``) use.

Every fx node becomes a value (see ``values``): placeholders become graph inputs or
constants, nodes whose arguments are all constants are evaluated with PyTorch itself, and
the rest go to the translation registered for their operator (``registry``).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from tinyc.errors import TinycError, UnsupportedError
from tinyc.frontend.reshape_layout import reshape_layout
from tinyc.frontend.torch import (  # noqa: F401 (register)
    ops_activation,
    ops_math,
    ops_nn,
    ops_reduce,
    ops_resize,
    ops_rnn,
    ops_shape,
    ops_skip,
)
from tinyc.frontend.torch.liveness import live_nodes
from tinyc.frontend.torch.registry import BROADCASTS, CONV1D, HANDLERS, target_label, target_name
from tinyc.frontend.torch.values import NHWC, Act, Value, View, inverse, torch_module
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import get_op
from tinyc.ir.tensor import Tensor
from tinyc.ir.verify import NO_TRANSLATION, verify
from tinyc.passes.prune_outputs import prune_outputs

#: node names shown per unsupported operator


def _moves_only_unit_dims(shape: tuple[int, ...], perm: tuple[int, ...]) -> bool:
    """True when transposing ``shape`` by ``perm`` keeps the memory order (a reshape)."""
    kept = [p for p in perm if shape[p] != 1]
    return kept == sorted(kept)


class Converter:
    """One ExportedProgram being turned into a Graph."""

    def __init__(self, ep: Any, name: str) -> None:
        self.torch = torch_module()
        self.ep = ep
        self.g = Graph(name=name, source_format="torch")
        self.env: dict[str, Value] = {}
        self.fx_users: dict[str, int] = {}  # IR tensor -> readers of its fx node
        self.producer: dict[str, Node] = {}
        self.layout_cache: dict[tuple[str, tuple[int, ...]], Act] = {}
        self.view_cache: dict[tuple[Any, ...], Act] = {}

    # -- building blocks ------------------------------------------------------------------
    def emit(self, kind: str, inputs: list[str], base: str, attrs: dict | None = None) -> str:
        (out,) = self.emit_multi(kind, inputs, base, [True], attrs)
        return out

    def emit_multi(
        self,
        kind: str,
        inputs: list[str],
        base: str,
        wanted: list[bool],
        attrs: dict | None = None,
    ) -> list[str]:
        """A node with one output per entry of ``wanted``; unwanted outputs are "" (an
        optional output nothing reads) and trailing ones are left off."""
        while len(wanted) > 1 and not wanted[-1]:
            wanted = wanted[:-1]
        name = self.g.unique_name(base)
        outs = []
        for i, w in enumerate(wanted):
            out = "" if not w else name if i == 0 else self.g.unique_name(f"{name}_{i}")
            if out:
                self.g.add_tensor(Tensor(out, (), "float32"))
            outs.append(out)
        node = Node(kind, name, inputs, outs, attrs or {})
        self.g.nodes.append(node)
        for out, (shape, dtype) in zip(outs, get_op(kind).infer(node, self.g), strict=False):
            if out:
                self.g.tensors[out].shape = tuple(shape)
                self.g.tensors[out].dtype = dtype  # float32, or e.g. ARG_MAX's int32
                self.producer[out] = node
        return outs

    def const(self, data: np.ndarray, base: str) -> str:
        name = self.g.unique_name(base)
        self.g.add_tensor(Tensor(name, data.shape, "float32", data.astype(np.float32)))
        return name

    def act_from(self, name: str, perm: tuple[int, ...]) -> Act:
        ishape = self.g.tensors[name].shape
        shape = tuple(ishape[i] for i in inverse(perm))
        return Act(name, perm, shape)

    def to_perm(self, a: Act, perm: tuple[int, ...]) -> Act:
        if a.perm == perm:
            return a
        key = (a.name, perm)
        if key not in self.layout_cache:
            inv = inverse(a.perm)
            q = tuple(inv[p] for p in perm)
            ishape = self.g.tensors[a.name].shape
            target = tuple(ishape[i] for i in q)
            if _moves_only_unit_dims(ishape, q):
                out = self.emit("RESHAPE", [a.name], f"{a.name}_relayout", {"shape": target})
            else:
                out = self.emit("TRANSPOSE", [a.name], f"{a.name}_transpose", {"perm": q})
            self.layout_cache[key] = Act(out, perm, a.shape)
        return self.layout_cache[key]

    def materialize(self, v: Value, prefer: tuple[int, ...] | None = None) -> Act:
        """``v`` as an IR tensor. A pending reshape happens in the source's layout when that
        holds the merged / split dims whole and in order, otherwise after one transpose that
        keeps the layout as close as it can (or reaches ``prefer``: see ``reshape_layout``)."""
        if isinstance(v, Act):
            return v
        if not isinstance(v, View):
            raise UnsupportedError(f"expected a tensor computed from the model input, got {v!r}")
        src = v.src
        plan = reshape_layout(src.shape, src.perm, v.shape, prefer)
        if plan is None:  # not a reshape (torch.export checked it): PyTorch's own order
            plan = (tuple(range(len(src.shape))), tuple(range(len(v.shape))))
        before, perm = plan
        key = (src.name, src.perm, v.shape, perm)
        if key not in self.view_cache:
            a = self.to_perm(src, before)
            target = tuple(v.shape[p] for p in perm)
            out = a.name
            if target != self.g.tensors[a.name].shape:
                out = self.emit("RESHAPE", [a.name], f"{src.name}_view", {"shape": target})
            self.view_cache[key] = Act(out, perm, v.shape)
        return self.view_cache[key]

    def layout(self, v: Value, perm: tuple[int, ...]) -> Act:
        """``v`` held as ``v.permute(perm)``."""
        return self.to_perm(self.materialize(v, perm), perm)

    def nhwc(self, v: Value, what: str) -> Act:
        a = v if isinstance(v, Act | View) else self.materialize(v)  # (raises for constants)
        if len(a.shape) != 4:
            raise UnsupportedError(f"{what} needs a 4-D NCHW input, got shape {list(a.shape)}")
        return self.layout(a, NHWC)

    def with_rank(self, a: Act, rank: int) -> Act:
        """``a`` with leading unit dims added (PyTorch broadcasting) up to ``rank``."""
        k = rank - len(a.shape)
        if k <= 0:
            return a
        ishape = self.g.tensors[a.name].shape
        out = self.emit("RESHAPE", [a.name], f"{a.name}_rank", {"shape": (1,) * k + ishape})
        return Act(out, tuple(range(k)) + tuple(p + k for p in a.perm), (1,) * k + a.shape)

    def const_like(self, v: Act | View, c: np.ndarray, reduce: bool = True) -> np.ndarray:
        """Constant ``c`` (broadcasting against PyTorch value ``v``) in ``v``'s storage
        layout; with ``reduce``, axes along which it does not vary shrink to 1."""
        shape = v.shape
        c = np.asarray(c, np.float32)
        if np.broadcast_shapes(c.shape, shape) != tuple(shape):
            raise UnsupportedError(
                f"a constant of shape {list(c.shape)} widens a {list(shape)} value"
            )
        full = np.broadcast_to(c, shape)
        src = v.src if isinstance(v, View) else v
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
        live = live_nodes(graph)
        for node in graph.nodes:
            if node.op == "call_function" and node not in live:
                continue  # computed but never used: export keeps such code
            try:
                self._convert(node, consts, user_inputs)
            except UnsupportedError as e:
                if node.op != "call_function" or not self._keep_unsupported(node, str(e)):
                    where = f"PyTorch node {node.name!r} ({target_name(node)})"
                    raise type(e)(f"{where}: {e}") from None
            except TinycError as e:
                raise type(e)(f"PyTorch node {node.name!r} ({target_name(node)}): {e}") from None
        prune_outputs(self.g)
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
        name = target_name(node)
        handler = HANDLERS.get(name)
        if handler is None:
            raise UnsupportedError(NO_TRANSLATION)
        value = handler(self, node, args)
        if name not in BROADCASTS:
            self._check_shape(node, value)
        self.env[node.name] = value
        if isinstance(value, Act):
            self.fx_users[value.name] = len(node.users)

    def _keep_unsupported(self, node: Any, reason: str) -> bool:
        """An UNSUPPORTED node in place of ``node`` (inspect and estimate show it; compiling
        refuses it): its tensor inputs, and outputs with the shapes torch.export recorded.
        False when an output is not a tensor (then the error stands)."""
        val = node.meta.get("val")
        vals = list(val) if isinstance(val, tuple | list) else [val]
        shapes = [getattr(v, "shape", None) for v in vals]
        if any(sh is None for sh in shapes):
            return False
        ins = []
        for arg in node.all_input_nodes:
            v = self.env.get(arg.name)
            if isinstance(v, Act | View):
                ins.append(self.layout(v, tuple(range(len(v.shape)))).name)
        name = self.g.unique_name(node.name)
        acts = []
        for i, sh in enumerate(shapes):
            out = name if i == 0 else self.g.unique_name(f"{name}#{i}")
            self.g.add_tensor(Tensor(out, tuple(int(d) for d in sh), "float32"))
            acts.append(Act(out, tuple(range(len(sh))), tuple(int(d) for d in sh)))
        outs = [a.name for a in acts]
        attrs = {"op": target_label(node), "reason": reason}
        self.g.nodes.append(Node("UNSUPPORTED", name, ins, outs, attrs))
        self.env[node.name] = tuple(acts) if isinstance(val, tuple | list) else acts[0]
        return True

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
        if isinstance(value, Act | View) and value.shape != want:
            raise TinycError(f"converted to shape {list(value.shape)}, PyTorch has {list(want)}")

    def _input(self, node: Any) -> Act:
        torch = self.torch
        val = node.meta["val"]
        if val.dtype != torch.float32:
            raise UnsupportedError(f"input {node.name!r} is {val.dtype}; only float32 inputs")
        shape = tuple(int(d) for d in val.shape)
        perm = tuple(range(len(shape)))
        if len(shape) == 4:
            perm = NHWC
        elif len(shape) == 3 and any(target_name(u) in CONV1D for u in node.users):
            perm = (0, 2, 1)
        internal = tuple(shape[p] for p in perm)
        self.g.add_tensor(Tensor(node.name, internal, "float32"))
        self.g.inputs.append(node.name)
        if perm != tuple(range(len(perm))):
            self.g.external_perm[node.name] = inverse(perm)
        return Act(node.name, perm, shape)

    def _outputs(self, outs: Any) -> None:
        for i, o in enumerate(outs if isinstance(outs, list | tuple) else [outs]):
            v = self._resolve(o)
            if not isinstance(v, Act | View):
                raise UnsupportedError(f"model output {i} does not depend on the input")
            a = self.materialize(v, tuple(range(len(v.shape))))
            if a.name in self.g.inputs or a.name in self.g.outputs:
                shape = self.g.tensors[a.name].shape
                a = Act(
                    self.emit("RESHAPE", [a.name], f"output_{i}", {"shape": shape}), a.perm, a.shape
                )
            self.g.outputs.append(a.name)
            if not a.identity:
                self.g.external_perm[a.name] = inverse(a.perm)


def _all_constant(args: dict[str, Value]) -> bool:
    def const(v: Any) -> bool:
        if isinstance(v, Act | View):
            return False
        if isinstance(v, list | tuple):
            return all(const(x) for x in v)
        return True

    return all(const(v) for v in args.values())
