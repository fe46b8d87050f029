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

SKIP_GATE_LEARNED is the gate of a learned Skip-LSTM / Skip-GRU layer (tinyc.torch_skip,
Campos et al.): the same guard, held outputs and C branch, another criterion. The PyTorch
and ONNX frontends put it before its layer (tinyc.frontend.torch.ops_skip):

    gate = SKIP_GATE_LEARNED(h, w, b, q, gate)   # h: the layer's hidden state (a state)
    y, h_T = GRU(x, ..., h)  attrs["guard"] = gate

Its state is ``q = 1 - p`` (``p``: the update probability) and the gate itself, which on
entry holds the last step's decision u. At the start of a step, from the hidden state the
last step left (h_{t-1}):

    dp  = sigmoid(w . h_{t-1} + b)
    q_t = 1 - dp              when the last step updated (u_{t-1} = 1)
          max(q_{t-1} - dp, 0)  when it was skipped      (p_t = min(p_{t-1} + dp, 1))
    u_t = q_t < 0.5           (p_t > 0.5: torch.round(p), which rounds 0.5 down)

which is torch_skip's update of p moved to the start of the next step. The state is kept
as 1 - p so that the reset state (all zeros) is p = 1 with a skipped "step 0": then q_1 =
max(0 - dp, 0) = 0, so the first step always updates, as in PyTorch. The layer's hidden
state carries h_t also across a skipped step (held), so dp is PyTorch's ``gate(kept[0])``.

int8 (a layer with an int8 hidden state): w is int8 (symmetric, per tensor), b int32 at
scale(h) * scale(w); ``acc = sum((h - zp) * w) + b`` is requantized to int16 Q3.12
(saturating) and ``dp = `` TFLM's int16 sigmoid (Q0.15, the recurrent kernels' own), so
``dp`` is in [1, 32767] / 32768 (never exactly 0 or 1); ``q`` is an int32 Q0.15 value in
[0, 32768], and ``u = q < 16384``. Deviations from the float form: dp's Q0.15 rounding and
the sigmoid table's interpolation (errors of about 1e-4), so a probability within that of
0.5 may decide the other way. A whole-sequence graph that holds a learned gate runs as its
streaming form in a loop (``runs_stepwise``: the interpreter does so); the C backend needs
the streaming form (``--stream``), one step per invocation.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from tinyc.errors import TinycError, UnsupportedError
from tinyc.ir import fixedpoint as fp
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops.base import OpDef, Spec, attr, get_op, register
from tinyc.ir.tensor import QuantParams, np_dtype

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


#: SKIP_GATE_LEARNED's inputs: the layer's hidden state, the gate's weight [1, H] and bias
#: [1], its state q = 1 - p, and the gate (its own output: the last step's decision)
LH, LW, LB, LQ, LGATE = range(5)
Q_ONE = 1 << 15  # q in the int8 form: int32 Q0.15
Q_PARAMS = QuantParams(np.float32(1.0 / Q_ONE), 0)
LOGIT_SCALE = 2.0**-12  # the pre-activation: int16 Q3.12, as in the recurrent kernels


@register
class SkipGateLearned(OpDef):
    kind = "SKIP_GATE_LEARNED"
    #: TFLM has no such op: the integer arithmetic is tinyc's (see the module docstring)
    int8_semantics = "tinyc"

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        return [((1,), GATE_DTYPE)]

    def quantized(self, node: Node, g: Graph) -> bool:
        h = g.inp(node, LH)
        return h is not None and h.dtype == "int8"

    def check(self, node: Node, g: Graph) -> None:
        where = f"node {node.name!r} (SKIP_GATE_LEARNED)"
        if len(node.inputs) != 5 or not all(node.inputs):
            raise TinycError(f"{where}: needs the hidden state, weight, bias, q and the gate")
        h, w, b, q, gate = (g.tensors[i] for i in node.inputs)
        if not (h.variable and q.variable and gate.variable):
            raise TinycError(f"{where}: the hidden state, q and the gate must be state tensors")
        if node.inputs[LGATE] != node.outputs[0]:
            raise TinycError(f"{where}: the gate must be both its last input and its output")
        if not (w.is_const and b.is_const) or w.shape != (1, h.size) or b.size != 1:
            raise TinycError(
                f"{where}: the weight must be a constant [1, {h.size}] and the bias one value"
            )
        if q.size != 1 or gate.dtype != GATE_DTYPE:
            raise TinycError(f"{where}: q is one value, the gate one {GATE_DTYPE}")
        if self.quantized(node, g):
            self.multiplier(node, g)
            if q.dtype != "int32" or b.dtype != "int32":
                raise UnsupportedError(f"{where}: the int8 form keeps q and the bias in int32")

    def macs(self, node: Node, g: Graph) -> int:
        return g.tensors[node.inputs[LH]].size

    def eval_float(self, node: Node, g: Graph, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        h, w, b, q, gate = xs
        assert h is not None and w is not None and b is not None and q is not None
        assert gate is not None
        logit = np.float32(h.reshape(-1).astype(np.float32) @ w.reshape(-1).astype(np.float32))
        logit = np.float32(logit + np.float32(b.reshape(-1)[0]))
        dp = np.float32(1.0) / (np.float32(1.0) + np.exp(-np.float64(logit)).astype(np.float32))
        nq = np.float32(1.0) - dp if gate.any() else max(np.float32(q.reshape(-1)[0] - dp), 0.0)
        return [self._write(q, gate, nq, bool(nq < 0.5))]

    def eval_quant(self, node: Node, g: Graph, xs: list[np.ndarray | None]) -> list[np.ndarray]:
        h, w, b, q, gate = xs
        assert h is not None and w is not None and b is not None and q is not None
        assert gate is not None
        zp = g.tensors[node.inputs[LH]].quant.zp  # type: ignore[union-attr]
        acc = (h.reshape(-1).astype(np.int64) - zp) @ w.reshape(-1).astype(np.int64)
        acc = fp.wrap32(acc + int(b.reshape(-1)[0]))
        v = np.clip(fp.multiply_by_quantized_multiplier(acc, *self.multiplier(node, g)),
                    -(1 << 15), (1 << 15) - 1)  # fmt: skip
        dp = int(fp.sigmoid_int16(np.asarray([v]))[0])
        last = int(q.reshape(-1)[0])
        nq = Q_ONE - dp if gate.any() else max(last - dp, 0)
        return [self._write(q, gate, nq, nq < Q_ONE // 2)]

    @staticmethod
    def _write(q: np.ndarray, gate: np.ndarray, nq: float, opened: bool) -> np.ndarray:
        q[...] = nq  # the states are updated in place, like a recurrent state
        gate[...] = int(opened)
        return gate

    def multiplier(self, node: Node, g: Graph) -> tuple[int, int]:
        """(multiplier, shift) taking the int32 accumulator to the Q3.12 pre-activation."""
        h, w = g.tensors[node.inputs[LH]], g.tensors[node.inputs[LW]]
        if h.quant is None or w.quant is None or w.dtype != "int8" or w.quant.zp != 0:
            raise UnsupportedError(
                f"node {node.name!r} (SKIP_GATE_LEARNED): int8 needs an int8 hidden state and "
                "symmetric int8 weights"
            )
        real = float(np.float32(np.float32(h.quant.s) * np.float32(w.quant.s)))
        return fp.quantize_multiplier(real / LOGIT_SCALE)

    def quantize_node(self, node: Node, ctx: Any) -> Node:
        h = ctx.q.tensors[node.inputs[LH]]
        if h.quant is None:
            raise TinycError(f"node {node.name!r}: the hidden state {h.name!r} is not quantized")
        bias = ctx.f.tensors[node.inputs[LB]].data
        wname, wq = ctx.symmetric_weight(node.inputs[LW], h.quant.s, bias)
        bname = ctx.int32_bias(f"{node.name}_bias", bias, np.float32(np.float32(h.quant.s) * wq.s))
        ctx.retype(node.inputs[LQ], "int32", Q_PARAMS)
        inputs = [node.inputs[LH], wname, bname, node.inputs[LQ], node.inputs[LGATE]]
        return Node(node.op, node.name, inputs, list(node.outputs), dict(node.attrs))


def runs_stepwise(g: Graph) -> bool:
    """True when ``g`` holds a learned gate guarding a layer over more than one step: its
    whole-sequence result is its streaming form run step by step (tinyc.interpreter.run)."""
    gates = {n.outputs[0] for n in g.nodes if n.op == "SKIP_GATE_LEARNED"}
    guarded = [n for n in g.nodes if gates and guard_of(n) in gates]
    return any(get_op(n.op).dims(n, g).time > 1 for n in guarded)  # type: ignore[attr-defined]


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
