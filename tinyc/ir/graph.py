"""Graph and Node: tinyc's one intermediate representation (NHWC, float or quantized)."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tinyc.errors import TinycError
from tinyc.ir.tensor import Tensor


@dataclass
class Node:
    """One operator application. ``inputs`` and ``outputs`` may hold ``""`` for an absent
    optional operand (e.g. a recurrent layer's final state that nothing reads)."""

    op: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    """Tensors by name, nodes in execution order, and the graph's inputs and outputs.

    ``external_perm`` maps a graph input/output name to the axis permutation that turns the
    internal NHWC array into the layout the model file declares (e.g. NCHW for ONNX):
    ``external = internal.transpose(perm)``.
    """

    name: str = "model"
    tensors: dict[str, Tensor] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    external_perm: dict[str, tuple[int, ...]] = field(default_factory=dict)
    source_format: str = ""
    #: a streaming step graph's sequence (tinyc.passes.streaming): {"steps": T, "time_axis":
    #: {input/output name: axis in the internal layout}}; empty for any other graph
    stream: dict[str, Any] = field(default_factory=dict)
    #: what a frontend normalised while reading the file (``compile`` repeats these)
    notes: list[str] = field(default_factory=list)

    # -- construction -----------------------------------------------------------------
    def add_tensor(self, t: Tensor) -> Tensor:
        if t.name in self.tensors:
            raise ValueError(f"tensor {t.name!r} already exists")
        self.tensors[t.name] = t
        return t

    def unique_name(self, base: str) -> str:
        if base not in self.tensors and all(n.name != base for n in self.nodes):
            return base
        i = 1
        names = {n.name for n in self.nodes}
        while f"{base}_{i}" in self.tensors or f"{base}_{i}" in names:
            i += 1
        return f"{base}_{i}"

    def copy(self) -> Graph:
        return copy.deepcopy(self)

    # -- queries ------------------------------------------------------------------------
    def tensor(self, name: str) -> Tensor:
        try:
            return self.tensors[name]
        except KeyError:
            raise TinycError(f"graph refers to unknown tensor {name!r}") from None

    def inp(self, node: Node, i: int) -> Tensor | None:
        """The i-th input tensor of ``node``, or None when absent."""
        if i >= len(node.inputs) or not node.inputs[i]:
            return None
        return self.tensors[node.inputs[i]]

    def out(self, node: Node, i: int = 0) -> Tensor:
        return self.tensors[node.outputs[i]]

    def producers(self) -> dict[str, Node]:
        return {o: n for n in self.nodes for o in n.outputs if o}

    def consumers(self) -> dict[str, list[Node]]:
        res: dict[str, list[Node]] = {}
        for n in self.nodes:
            for i in n.inputs:
                if i:
                    res.setdefault(i, []).append(n)
        return res

    def activations(self) -> Iterator[Tensor]:
        """Tensors that hold run-time values (not constants)."""
        return (t for t in self.tensors.values() if not t.is_const)

    def constants(self) -> Iterator[Tensor]:
        return (t for t in self.tensors.values() if t.is_const)

    def states(self) -> Iterator[Tensor]:
        """Tensors that persist between invocations (see Tensor.variable)."""
        return (t for t in self.tensors.values() if t.variable)

    @property
    def is_quantized(self) -> bool:
        """True when the graph computes in integers: some activation is quantized (a
        quantized graph may still take or give float values at its boundary)."""
        return any(t.is_quantized for t in self.activations())

    # -- maintenance --------------------------------------------------------------------
    def remove_unused(self) -> None:
        """Drop nodes whose outputs nobody reads and tensors nobody refers to. Writing a
        state tensor is read by the next invocation: such a node stays."""
        live = set(self.outputs) | {t.name for t in self.states()}
        kept: list[Node] = []
        for n in reversed(self.nodes):
            if any(o in live for o in n.outputs):
                kept.append(n)
                live.update(i for i in [*n.inputs, n.attrs.get("guard")] if i)
        self.nodes = kept[::-1]
        used = set(self.inputs) | set(self.outputs)
        for n in self.nodes:
            used.update(i for i in n.inputs if i)
            used.update(n.outputs)
        self.tensors = {k: v for k, v in self.tensors.items() if k in used}

    def rename_tensor_uses(self, old: str, new: str, nodes: Iterable[Node] | None = None) -> None:
        for n in self.nodes if nodes is None else nodes:
            n.inputs = [new if i == old else i for i in n.inputs]
        self.outputs = [new if o == old else o for o in self.outputs]

    def toposort(self) -> None:
        """Order nodes so every input is produced before use (stable for ordered graphs)."""
        ready = (
            set(self.inputs) | {t.name for t in self.constants()} | {t.name for t in self.states()}
        )
        pending = list(self.nodes)
        ordered: list[Node] = []
        while pending:
            progress = False
            rest = []
            for n in pending:
                if all((not i) or i in ready for i in n.inputs):
                    ordered.append(n)
                    ready.update(n.outputs)
                    progress = True
                else:
                    rest.append(n)
            if not progress:
                names = ", ".join(n.name for n in rest[:5])
                raise TinycError(f"graph has a cycle or undefined inputs at nodes: {names}")
            pending = rest
        self.nodes = ordered
