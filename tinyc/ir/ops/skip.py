"""State-update skipping: SKIP_GATE and the guard it sets on a recurrent layer.

Skipping is control flow the IR can see. In a streaming step graph (tinyc.passes.streaming)
``tinyc.passes.skip_state`` puts a SKIP_GATE before a recurrent layer:

    gate = SKIP_GATE(x, last)           # last: a state tensor, the last frame processed
    y, h_T = LSTM(x, ..., h, c)  attrs["guard"] = gate

SKIP_GATE compares the layer's input frame ``x`` with ``last`` (the frame the layer last
processed, in persistent state RAM): it *opens* (writes 1 to its one-byte state ``gate``)
when some element differs by ``threshold`` or more -- int8 steps of ``x`` in an int8 graph,
real units in a float graph; ``threshold <= 0`` always opens -- and then copies ``x`` into
``last``. Closed, it writes 0 and leaves ``last`` alone.

A node with ``attrs["guard"]`` runs only when its gate is open. Closed, it is not run at
all: its outputs are its *held outputs* (held_outputs below) and its state is untouched. For
a recurrent layer the held outputs are its state: the one-step output is the hidden state
(the layer writes its output into its hidden state every step), the final-state outputs are
the states. So holding needs no RAM beyond the state the layer already keeps, and a skipped
step leaves state and output bit-identical to holding them.

The interpreter (tinyc.interpreter.run), the C backend (``if (gate) { kernel } else { copy
held outputs }``, tinyc.backends.cmsis.emit.skip) and the estimate (mean over a stream and
worst case = never closed, tinyc.passes.skip_state.skip_stats) read this one definition.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from tinyc.errors import TinycError
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops.base import OpDef, Spec, attr, get_op, register
from tinyc.ir.tensor import np_dtype

GATE_DTYPE = "int8"


@register
class SkipGate(OpDef):
    kind = "SKIP_GATE"
    attrs: ClassVar[dict[str, Any]] = {
        "threshold": None,  # int8 steps of x (int8 graph) or real units (float graph)
        "threshold_real": 0.0,  # the user's T, in real units of x (for reports)
    }
    output_quant = "calibrated"

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        return [((1,), GATE_DTYPE)]

    def quantized(self, node: Node, g: Graph) -> bool:
        return False

    def check(self, node: Node, g: Graph) -> None:
        x, last = g.inp(node, 0), g.inp(node, 1)
        if x is None or last is None or not last.variable:
            raise TinycError(f"node {node.name!r} (SKIP_GATE) needs an input and a state frame")
        if x.shape != last.shape or x.dtype != last.dtype:
            raise TinycError(
                f"node {node.name!r} (SKIP_GATE): the last frame {last.dtype}{list(last.shape)} "
                f"does not match the input {x.dtype}{list(x.shape)}"
            )
        if not g.tensors[node.outputs[0]].variable:
            raise TinycError(f"node {node.name!r} (SKIP_GATE): the gate must be a state tensor")

    def eval_float(self, node: Node, g: Graph, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        x, last = xs[0], xs[1]
        assert x is not None and last is not None
        opened = gate_opens(x, last, attr(node, "threshold"))
        if opened:
            last[...] = x  # the state frame is updated in place, like a recurrent state
        return [np.array([int(opened)], np_dtype(GATE_DTYPE))]

    def bytes_moved(self, node: Node, g: Graph) -> tuple[int, int]:
        x = g.tensors[node.inputs[0]]
        return 2 * x.nbytes, x.nbytes + 1  # reads x and last; worst case copies x


def gate_opens(x: np.ndarray, last: np.ndarray, threshold: float) -> bool:
    """The gate's criterion: max |x - last| >= threshold (always when threshold <= 0)."""
    if threshold <= 0:
        return True
    wide = np.float64 if np.issubdtype(x.dtype, np.floating) else np.int32
    return bool(np.max(np.abs(x.astype(wide) - last.astype(wide))) >= threshold)


def guard_of(node: Node) -> str:
    """The gate tensor guarding ``node`` ("" when it always runs)."""
    return str(node.attrs.get("guard") or "")


def held_outputs(node: Node, g: Graph, xs: list[np.ndarray | None]) -> list[np.ndarray]:
    """``node``'s outputs when its gate is closed: a recurrent layer's state (the one-step
    output is the hidden state, the final states are the states); the state is untouched."""
    op = get_op(node.op)
    slots = getattr(op, "state_slots", None)
    if not slots:
        raise TinycError(f"node {node.name!r} ({node.op}) cannot be guarded: it holds no state")
    states = [xs[s] if s < len(xs) else None for s in slots]
    outs: list[np.ndarray] = []
    for k, name in enumerate(node.outputs):
        if not name:
            outs.append(np.zeros(0))
            continue
        src = states[0] if k == 0 else states[k - 1]
        if src is None:
            raise TinycError(f"node {node.name!r} ({node.op}) is guarded but keeps no state")
        t = g.tensors[name]
        outs.append(np.asarray(src).reshape(t.shape).astype(np_dtype(t.dtype)).copy())
    return outs


def held_sources(node: Node) -> list[tuple[str, str]]:
    """(output, state tensor it holds) pairs of a guarded node, for the backends."""
    slots = get_op(node.op).state_slots  # type: ignore[attr-defined]
    pairs = []
    for k, name in enumerate(node.outputs):
        slot = slots[0] if k == 0 else slots[k - 1]
        if name and slot < len(node.inputs) and node.inputs[slot]:
            pairs.append((name, node.inputs[slot]))
    return pairs
