"""Float recurrent graphs built directly in the IR (seeded random weights), quantized with
tinyc's PTQ on seeded calibration data: configurations the shared models do not reach
(odd sizes, batches, time-major, reverse, GRU with and without linear_before_reset, RNN
activations, final-state outputs, run-time initial states)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import get_op
from tinyc.ir.ops import recurrent as R
from tinyc.ir.tensor import Tensor
from tinyc.ir.verify import verify
from tinyc.passes.quantize import QuantOptions, quantize

SLOTS = {"LSTM": 20, "GRU": 14, "RNN": 6}
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


@dataclass
class Case:
    """One recurrent layer's configuration."""

    op: str
    batch: int = 1
    time: int = 5
    input: int = 6
    hidden: int = 7
    time_major: bool = False
    reverse: bool = False
    final_state: bool = False  # the final state(s) as graph outputs
    sequence: bool = True  # the whole sequence as a graph output
    state_input: bool = False  # the initial hidden state as a graph input
    attrs: dict = field(default_factory=dict)
    seed: int = 0

    @property
    def name(self) -> str:
        parts = [self.op.lower(), f"b{self.batch}t{self.time}i{self.input}h{self.hidden}"]
        parts += [
            k for k in ("time_major", "reverse", "final_state", "state_input") if getattr(self, k)
        ]
        if not self.sequence:
            parts.append("last_only")
        parts += [f"{k}={v}" for k, v in sorted(self.attrs.items())]
        return "-".join(parts)


def float_graph(case: Case) -> Graph:
    rng = np.random.default_rng(case.seed)
    g = Graph(name=case.name, source_format="test")
    d = case
    x_shape = (d.time, d.batch, d.input) if d.time_major else (d.batch, d.time, d.input)
    g.add_tensor(Tensor("x", x_shape, "float32"))
    g.inputs = ["x"]
    ins = [""] * SLOTS[d.op]
    ins[0] = "x"
    op = get_op(d.op)

    def const(name: str, shape: tuple[int, ...], scale: float) -> str:
        g.add_tensor(
            Tensor(name, shape, "float32", (rng.standard_normal(shape) * scale).astype(np.float32))
        )
        return name

    k = 1.0 / np.sqrt(d.hidden)
    for gi in range(GATES[d.op]):
        ins[op.w_slot + gi] = const(f"w{gi}", (d.hidden, d.input), 1.5 * k)
        ins[op.r_slot + gi] = const(f"r{gi}", (d.hidden, d.hidden), 1.5 * k)
    if d.op == "LSTM":
        for gi in range(4):
            ins[R.BI + gi] = const(f"b{gi}", (d.hidden,), 0.5)
    elif d.op == "GRU":
        for gi in range(3):
            ins[R.GBZ + gi] = const(f"wb{gi}", (d.hidden,), 0.3)
            ins[R.GRBZ + gi] = const(f"rb{gi}", (d.hidden,), 0.3)
    else:
        ins[R.NB] = const("wb", (d.hidden,), 0.3)
        ins[R.NRB] = const("rb", (d.hidden,), 0.3)
    if d.state_input:
        g.add_tensor(Tensor("h0", (d.batch, d.hidden), "float32"))
        g.inputs.append("h0")
        ins[op.state_slots[0]] = "h0"
    outs = []
    names = ["y", "y_h", "y_c"][: 1 + (len(op.state_slots) if d.final_state else 0)]
    for name in names:
        g.add_tensor(Tensor(name, (), "float32"))
        outs.append(name)
    if not d.sequence:
        del g.tensors["y"]
        outs[0] = ""
    attrs = {"time_major": d.time_major, "reverse": d.reverse, **d.attrs}
    g.nodes.append(Node(d.op, "rnn", ins, outs, attrs))
    g.outputs = [o for o in outs if o]
    verify(g, fix_shapes=True)
    return g


def samples(g: Graph, n: int, seed: int) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        [rng.standard_normal(g.tensors[i].shape).astype(np.float32) for i in g.inputs]
        for _ in range(n)
    ]


def int8_graph(case: Case) -> Graph:
    f = float_graph(case)
    q, _ = quantize(f, samples(f, 24, case.seed + 1), QuantOptions())
    return q


CASES = [
    Case("LSTM"),
    Case("LSTM", batch=2, time=4, input=5, hidden=9, final_state=True, seed=1),
    Case("LSTM", time_major=True, batch=2, reverse=True, seed=2),
    Case("LSTM", sequence=False, final_state=True, input=16, hidden=12, seed=3),
    Case("LSTM", attrs={"cell_clip": 0.75}, seed=4),
    Case("GRU", attrs={"linear_before_reset": True}, seed=5),
    Case("GRU", attrs={"linear_before_reset": False}, hidden=5, input=3, seed=6),
    Case("GRU", batch=3, time_major=True, final_state=True, state_input=True, seed=7),
    Case(
        "GRU",
        reverse=True,
        sequence=False,
        final_state=True,
        attrs={"linear_before_reset": True},
        seed=8,
    ),
    Case("RNN", seed=9),
    Case("RNN", attrs={"activations": ("Relu",)}, hidden=10, seed=10),
    Case("RNN", attrs={"activations": ("Sigmoid",)}, batch=2, state_input=True, seed=11),
]


def prune_gates(g: Graph, sparsity: float, rng: np.random.Generator, block: int = 1) -> Graph:
    """Zero a random ``sparsity`` of every int8 gate matrix (input and recurrent side) of
    the graph's first node, in place: single weights, or with ``block`` > 1 whole (``block``
    units, column) blocks as ``--prune-block`` leaves them (a kept weight that is zero
    becomes 1, so that a block is zero exactly when it was pruned)."""
    node = g.nodes[0]
    op = get_op(node.op)
    for first in (op.w_slot, op.r_slot):
        for k in range(len(op.gates)):
            w = g.inp(node, first + k)
            assert w is not None and w.data is not None and w.dtype == "int8"
            rows, cols = w.data.shape
            keep = rng.random((-(-rows // block), cols)) >= sparsity
            keep = np.repeat(keep, block, axis=0)[:rows]
            kept = np.where(w.data == 0, 1, w.data) if block > 1 else w.data
            w.data = np.where(keep, kept, 0).astype(np.int8)
    return g
