"""Post-training state-update skipping (``--skip-threshold T``) for streaming models.

``add_skip_gates(step, T)`` puts a SKIP_GATE (tinyc.ir.ops.skip) before the first
recurrent layer of a streaming step graph and guards that layer and every recurrent layer
after it (a stack) with it: a time step whose input frame differs from the frame last
processed by less than ``T`` in every element runs none of them; their outputs and states
are held (the layers after them still run). A recurrent layer that does not come after a
guarded one gets a gate of its own at its input. ``T`` is in the real units of the
layer's input; in an int8 graph it becomes ``ceil(T / scale)`` int8 steps of that input
(skip when max |x - last| < that), so the firmware compares int8 values only. ``T <= 0``
adds no gate (no skipping).

``skip_stats(step, stream)`` runs a stream through the interpreter and reports the skip
rate per gate and the mean / worst-case operations (MACs) per step; worst case = no step
skipped. It counts learned gates (SKIP_GATE_LEARNED, a SkipGRU / SkipLSTM compiled from
PyTorch) the same way: they come with the model, no threshold needed, and
``always_update(step)`` is their "not skipping" reference (the layers update every step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinyc.errors import TinycError
from tinyc.interpreter import State
from tinyc.interpreter import run as run_graph
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import get_op
from tinyc.ir.ops.recurrent import RECURRENT_OPS
from tinyc.ir.ops.skip import GATE_DTYPE, guard_of
from tinyc.ir.tensor import Tensor
from tinyc.ir.verify import verify
from tinyc.passes.streaming import split_steps


def threshold_steps(x: Tensor, threshold: float) -> float:
    """``threshold`` (real units of ``x``) in int8 steps of ``x``; unchanged for float."""
    if x.quant is None or x.dtype == "float32":
        return float(threshold)
    return float(math.ceil(float(threshold) / float(x.quant.s) - 1e-9))


def add_skip_gates(step: Graph, threshold: float) -> Graph:
    """A copy of the streaming step graph ``step`` with every recurrent layer guarded by a
    SKIP_GATE of ``threshold`` (see the module); ``step`` itself when ``threshold <= 0``."""
    if threshold is None or threshold <= 0:
        return step
    if not step.stream:
        raise TinycError("--skip-threshold needs the streaming form of the model (--stream)")
    rec = [n for n in step.nodes if n.op in RECURRENT_OPS]
    if not rec:
        raise TinycError(f"model {step.name!r} has no recurrent layer: there is nothing to skip")
    g = step.copy()
    nodes: list[Node] = []
    after: dict[str, str] = {}  # tensor -> the gate of the guarded layer it comes after
    for node in g.nodes:
        upstream = [after[i] for i in node.inputs if i in after]
        if node.op in RECURRENT_OPS and not guard_of(node) and upstream:
            node.attrs["guard"] = upstream[0]  # a later layer: the first layer's gate
        elif node.op in RECURRENT_OPS and not guard_of(node):
            x = g.tensors[node.inputs[0]]
            last = g.add_tensor(
                Tensor(g.unique_name(f"{node.name}/last_frame"), x.shape, x.dtype, None,
                       x.quant, variable=True)
            )  # fmt: skip
            gate = g.add_tensor(
                Tensor(g.unique_name(f"{node.name}/gate"), (1,), GATE_DTYPE, variable=True)
            )
            nodes.append(
                Node(
                    "SKIP_GATE",
                    g.unique_name(f"{node.name}/skip_gate"),
                    [x.name, last.name],
                    [gate.name],
                    {"threshold": threshold_steps(x, threshold), "threshold_real": threshold},
                )
            )
            node.attrs["guard"] = gate.name
        gate_name = guard_of(node) or (upstream[0] if upstream else "")
        if gate_name:
            after.update((o, gate_name) for o in node.outputs if o)
        nodes.append(node)
    g.nodes = nodes
    g.stream = {**step.stream, "skip_threshold": float(threshold)}
    verify(g)
    return g


def learned_gates(g: Graph) -> list[Node]:
    return [n for n in g.nodes if n.op == "SKIP_GATE_LEARNED"]


def always_update(step: Graph) -> Graph:
    """``step`` with the layers its learned gates guard running every step (what the
    model computes without skipping); ``step`` itself when it has no learned gate."""
    gates = {n.outputs[0] for n in learned_gates(step)}
    if not gates:
        return step
    g = step.copy()
    for n in g.nodes:
        if guard_of(n) in gates:
            n.attrs = {k: v for k, v in n.attrs.items() if k != "guard"}
    return g


def skip_label(threshold: float | None, learned: bool) -> str:
    """How the steps are skipped, for reports: "threshold T", "learned gate" or both."""
    parts = [f"threshold {threshold:g}"] if threshold and threshold > 0 else []
    return " + ".join(parts + (["learned gate"] if learned else [])) or "no skipping"


@dataclass
class SkipStats:
    """What skipping did on a stream (the report's and estimate's numbers)."""

    threshold: float
    steps: int
    opened: dict[str, int]  # guarded node -> steps it ran
    macs_guarded: dict[str, int]  # guarded node -> its MACs per step
    macs_total: int  # MACs per step, no step skipped (worst case)
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_output_diff: float | None = None  # vs no skipping, real units (skip_stats(ungated=))
    learned: bool = False  # learned gates (SKIP_GATE_LEARNED) among the gates

    @property
    def skip_rate(self) -> float:
        """The fraction of (layer, step) updates skipped, over the guarded layers."""
        total = self.steps * len(self.opened)
        return 1.0 - sum(self.opened.values()) / total if total else 0.0

    def open_rate(self, node: str) -> float:
        return self.opened[node] / self.steps if self.steps else 1.0

    @property
    def macs_mean(self) -> float:
        saved = sum((1 - self.open_rate(n)) * m for n, m in self.macs_guarded.items())
        return self.macs_total - saved

    def to_json(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "learned": self.learned,
            "steps": self.steps,
            "skip_rate": round(self.skip_rate, 4),
            "layers": {
                n: {"skip_rate": round(1 - self.open_rate(n), 4), "macs": self.macs_guarded[n]}
                for n in self.opened
            },
            "macs_per_step_mean": round(self.macs_mean, 1),
            "macs_per_step_worst": self.macs_total,
            **(
                {"max_output_diff": round(self.max_output_diff, 6)}
                if self.max_output_diff is not None
                else {}
            ),
        }

    def line(self) -> str:
        return (
            f"skip: {skip_label(self.threshold, self.learned)}, {self.steps} steps: skip rate "
            f"{100 * self.skip_rate:.1f}%, MACs per step mean {self.macs_mean:,.0f} / worst "
            f"{self.macs_total:,}"
            + (
                f"; largest output change from not skipping {self.max_output_diff:.3g}"
                if self.max_output_diff is not None
                else ""
            )
        )


def guarded(g: Graph) -> list[Node]:
    return [n for n in g.nodes if guard_of(n)]


def skip_stats(
    g: Graph, sequences: list[list[list[np.ndarray]]], ungated: Graph | None = None
) -> SkipStats:
    """Run each sequence (a list of steps, each the step graph's inputs in internal layout)
    from a fresh state and count how often each guarded layer ran; with ``ungated`` (the
    step graph without gates) also the largest difference skipping makes to an output
    (real units, any step): what skipping costs, in the report."""
    nodes = guarded(g)
    opened = {n.name: 0 for n in nodes}
    count, diff = 0, 0.0
    for seq in sequences:
        state = State(g)
        plain = State(ungated) if ungated is not None else None
        for xs in seq:
            values = run_graph(g, xs, keep_all=True, state=state)
            count += 1
            for n in nodes:
                opened[n.name] += int(values[guard_of(n)][0])
            if ungated is not None:
                want = run_graph(ungated, xs, state=plain)
                diff = max(diff, *(_real_diff(g.tensors[k], values[k], v) for k, v in want.items()))
    macs = {n.name: get_op(n.op).macs(n, g) for n in nodes}
    total = sum(get_op(n.op).macs(n, g) for n in g.nodes)
    threshold = float(g.stream.get("skip_threshold", 0.0)) if g.stream else 0.0
    stats = SkipStats(threshold, count, opened, macs, total, learned=bool(learned_gates(g)))
    stats.max_output_diff = diff if ungated is not None else None
    return stats


def _real_diff(t: Tensor, a: np.ndarray, b: np.ndarray) -> float:
    if t.quant is not None and t.dtype != "float32":
        a, b = t.quant.dequantize(a), t.quant.dequantize(b)
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0))


def stream_sequences(
    g: Graph, names: list[str], samples: list[list[np.ndarray]]
) -> list[list[list[np.ndarray]]]:
    """Whole-sequence samples (arrays for the inputs ``names``, internal layout, float or
    the input's own dtype) as the step graph's sequences of steps; float values for an int8
    input are quantized with its parameters."""
    out = []
    for sample in samples:
        by_name = dict(zip(names, sample, strict=True))
        xs = []
        for name in g.inputs:
            t, x = g.tensors[name], np.asarray(by_name[name])
            if t.dtype != "float32" and np.issubdtype(x.dtype, np.floating) and t.quant:
                lo, hi = np.iinfo(np.dtype(t.dtype)).min, np.iinfo(np.dtype(t.dtype)).max
                q = np.round(x.astype(np.float64) / float(t.quant.s)) + t.quant.zp
                x = np.clip(q, lo, hi).astype(t.dtype)
            xs.append(x)
        out.append(split_steps(g, xs))
    return out


def latency(est: Any, stats: SkipStats) -> dict[str, Any]:
    """Mean and worst-case latency of an estimate of a gated step graph: worst case = every
    layer runs; the mean takes each guarded layer's cycles times its open rate on the
    stream (the copies of a closed gate are left out: a few bytes)."""
    by_name = {x.name: x for x in est.layers}
    saved = sum((1 - stats.open_rate(n)) * by_name[n].cycles for n in stats.opened if n in by_name)
    worst = est.cycles
    mean = worst - saved
    return {
        **stats.to_json(),
        "cycles_mean": round(mean),
        "cycles_worst": round(worst),
        "latency_ms_mean": round(1e3 * mean / est.clock_hz, 4),
        "latency_ms_worst": round(1e3 * worst / est.clock_hz, 4),
    }


def estimate_streaming(
    g: Graph, board: str, backend: str, threshold: float | None, stream_input: str | None
) -> tuple[Any, dict[str, Any] | None]:
    """``tinyc estimate --stream [--skip-threshold T] [--stream-input X]``: the estimate of
    the step graph (gated when T > 0: its totals are the worst case, no step skipped) and,
    with a stream, the skip rate and mean latency on it. A float model is quantized on the
    stream when one is given (the threshold's int8 steps depend on the input's scale)."""
    from tinyc.compiler import streaming_graph
    from tinyc.estimate import estimate_model
    from tinyc.estimate.report import int8_graph
    from tinyc.passes.calibration import load_calibration

    samples = load_calibration(stream_input, g) if stream_input else []
    if samples and not g.is_quantized:
        from tinyc.passes.quantize import QuantOptions, quantize

        q, _ = quantize(g, samples, QuantOptions())
    else:
        q, _ = int8_graph(g)
    if backend == "tflm" and threshold and threshold > 0:
        raise TinycError("--skip-threshold: the tflm backend has no skip gate; use --backend cmsis")
    plain = streaming_graph(q)
    learned = bool(learned_gates(plain))
    if backend == "tflm" and learned:
        raise TinycError(
            "learned skip gates: the tflm backend has no skip gate; use --backend cmsis"
        )
    step = add_skip_gates(plain, threshold or 0.0)
    est = estimate_model(step, board, backend)
    if not guarded(step):
        return est, None
    label = skip_label(threshold, learned)
    if not samples:
        est.notes = [
            *est.notes,
            f"skip: {label}: totals are the worst case (no step skipped); give "
            "--stream-input for the skip rate and the mean",
        ]
        return est, {"threshold": threshold or 0.0, "learned": learned,
                     "cycles_worst": round(est.cycles)}  # fmt: skip
    stats = skip_stats(step, stream_sequences(step, q.inputs, samples), always_update(plain))
    skip = latency(est, stats)
    est.notes = [
        *est.notes,
        f"{stats.line()}; latency mean {skip['latency_ms_mean']:.4f} ms / worst "
        f"{skip['latency_ms_worst']:.4f} ms (totals above: worst case; the gates themselves, a "
        "frame compare or a learned gate's dot product with the hidden state, are not costed)",
    ]
    return est, skip
