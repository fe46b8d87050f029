"""TFLite resource variables as tinyc state tensors (see tinyc.ir.ops.variables).

A TFLite model keeps values between invocations as resource variables::

    CALL_ONCE(init_subgraph)           the first invocation runs the init subgraph:
        VAR_HANDLE -> r; ASSIGN_VARIABLE(r, constant)          the variable's first value
    VAR_HANDLE -> r                    (container, shared_name) name the variable
    READ_VARIABLE(r) -> x              its value now
    ASSIGN_VARIABLE(r, y)              its value from here on (and in the next invocation)

Each variable becomes one state tensor (named after its shared_name) whose shape, dtype and
quantization are those of what reads it or is assigned to it. The handles and CALL_ONCE leave
no node; the init subgraph's constants become the variable's reset value, which tinyc
requires to be the real value 0 (what ``tinyc_reset_state()`` writes; any other first value
is refused by name).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinyc.errors import TinycError, UnsupportedError
from tinyc.ir.graph import Graph, Node
from tinyc.ir.tensor import Tensor
from tinyc.tflite_schema import TENSOR_TYPES, builtin_names

RESOURCE_TYPE = 13  # TensorType.RESOURCE
RESOURCE_OPS = ("VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE")

Key = tuple[str, str]  # (container, shared_name)


def _text(b: Any) -> str:
    return b.decode("utf-8", "replace") if isinstance(b, bytes) else str(b or "")


def _key(op: Any) -> Key:
    o = op.builtinOptions
    return (_text(o.container), _text(o.sharedName)) if o is not None else ("", "")


def _kind(model: Any, op: Any) -> str:
    oc = model.operatorCodes[op.opcodeIndex]
    code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
    return builtin_names().get(code, f"builtin code {code}")


def _const(model: Any, t: Any) -> np.ndarray | None:
    buf = model.buffers[t.buffer] if t.buffer and t.buffer < len(model.buffers) else None
    if buf is None or buf.data is None or len(buf.data) == 0 or t.type not in TENSOR_TYPES:
        return None
    raw = np.asarray(buf.data, dtype=np.uint8).tobytes()
    return np.frombuffer(raw, dtype=TENSOR_TYPES[t.type]).copy()


class Variables:
    """The resource variables of subgraph ``sg``, and the nodes of its resource ops."""

    def __init__(self, model: Any, sg: Any, names: list[str], g: Graph, what: str) -> None:
        self.names, self.g, self.what = names, g, what
        self.handles: dict[int, Key] = {}  # resource tensor index -> variable
        self.first_values: dict[Key, np.ndarray] = {}
        self.states: dict[Key, str] = {}  # variable -> state tensor name
        ops = [(op, _kind(model, op)) for op in sg.operators or []]
        for op, kind in ops:
            if kind == "VAR_HANDLE":
                self.handles[int(op.outputs[0])] = _key(op)
            elif kind == "CALL_ONCE":
                self._init_subgraph(model, int(op.builtinOptions.initSubgraphIndex))
        for op, kind in ops:
            if kind == "READ_VARIABLE":
                self._state(int(op.inputs[0]), names[op.outputs[0]])
            elif kind == "ASSIGN_VARIABLE":
                self._state(int(op.inputs[0]), names[op.inputs[1]])

    def _init_subgraph(self, model: Any, index: int) -> None:
        if not 0 < index < len(model.subgraphs or []):
            raise TinycError(f"{self.what}: CALL_ONCE names subgraph {index}, which is missing")
        sg = model.subgraphs[index]
        handles: dict[int, Key] = {}
        for op in sg.operators or []:
            kind = _kind(model, op)
            if kind == "VAR_HANDLE":
                handles[int(op.outputs[0])] = _key(op)
            elif kind == "ASSIGN_VARIABLE" and int(op.inputs[0]) in handles:
                value = _const(model, sg.tensors[op.inputs[1]])
                if value is None:
                    raise UnsupportedError(
                        f"{self.what}: the init subgraph assigns a computed value to variable "
                        f"{handles[int(op.inputs[0])][1]!r} (tinyc takes constant first values)"
                    )
                self.first_values[handles[int(op.inputs[0])]] = value
            else:
                raise UnsupportedError(
                    f"{self.what}: the init subgraph of CALL_ONCE runs {kind} (tinyc reads "
                    "VAR_HANDLE and ASSIGN_VARIABLE of constants there)"
                )

    def _state(self, resource: int, like: str) -> None:
        """The state tensor of the variable behind ``resource``, shaped like tensor ``like``."""
        if resource not in self.handles:
            raise UnsupportedError(
                f"{self.what}: tensor {self.names[resource]!r} is a variable handle no "
                "VAR_HANDLE of the model makes"
            )
        key = self.handles[resource]
        if key in self.states:
            return
        t = self.g.tensors[like]
        name = key[1] or self.names[resource]
        while name in self.g.tensors:
            name += "_state"
        state = Tensor(name, t.shape, t.dtype, None, t.quant, variable=True)
        first = self.first_values.get(key)
        if first is not None:
            zero = t.quant.zp if t.quant is not None and t.dtype != "float32" else 0
            if first.size != t.size or np.any(first != zero):
                raise UnsupportedError(
                    f"{self.what}: variable {key[1]!r} starts from values other than 0 "
                    "(tinyc's state starts, and resets, at the real value 0)"
                )
        self.g.add_tensor(state)
        self.states[key] = name

    def node(self, kind: str, name: str, op: Any) -> Node | None:
        """The IR node of a resource op (None for VAR_HANDLE and CALL_ONCE)."""
        if kind == "READ_VARIABLE":
            state = self.states[self.handles[int(op.inputs[0])]]
            return Node("READ_VARIABLE", name, [state], [self.names[op.outputs[0]]], {})
        if kind == "ASSIGN_VARIABLE":
            state = self.states[self.handles[int(op.inputs[0])]]
            return Node("ASSIGN_VARIABLE", name, [self.names[op.inputs[1]], state], [state], {})
        return None
