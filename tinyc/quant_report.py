"""How well an int8 graph agrees with the float graph it was quantized from.

Per layer: the SQNR (signal-to-quantization-noise ratio, dB) of every node's int8 output,
dequantized, against the float graph's value of the same tensor, on the same inputs (the
error accumulated up to that layer). Per graph output: top-1 agreement for classifiers, max
and mean absolute error and SQNR for every output. Per tensor: the share of its float values
that fall outside its int8 range (clipped at a calibrated bound). ``tinyc.quality`` judges
the result.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from tinyc import interpreter
from tinyc.ir.graph import Graph
from tinyc.ir.ops import get_op
from tinyc.ir.ops.quant import quantize_array
from tinyc.ir.tensor import QuantParams
from tinyc.table import render

if TYPE_CHECKING:
    from tinyc.passes.observers import ObserverChoice


@dataclass
class LayerQuality:
    node: str
    op: str
    tensor: str
    observer: str
    scale: float | None  # None: a float tensor
    zero_point: int | None
    sqnr_db: float | None  # None: no error at all


@dataclass
class OutputQuality:
    name: str
    task: str  # "classifier" or "regression"
    top1_agreement: float | None
    sqnr_db: float | None
    max_abs_error: float
    mean_abs_error: float


@dataclass
class RangeCoverage:
    """How well a tensor's int8 range holds its float values on the evaluation samples."""

    tensor: str
    lo: float  # the calibrated range: what the int8 parameters can represent
    hi: float
    seen_lo: float  # the float values on the evaluation samples
    seen_hi: float
    clipped: float  # fraction of those values outside [lo, hi] by more than half a step
    fixed: bool = False  # parameters fixed by the op (softmax, logistic ...), not calibrated


@dataclass
class QuantReport:
    layers: list[LayerQuality]
    outputs: list[OutputQuality]
    eval_samples: int
    calibration_samples: int = 0
    eval_source: str = ""
    requantizations: int = 0
    warnings: list[str] = field(default_factory=list)
    # per tensor (graph inputs first, then node outputs in graph order)
    coverage: dict[str, RangeCoverage] = field(default_factory=dict)
    io_tensors: list[str] = field(default_factory=list)  # graph inputs and outputs
    quality: Any = None  # the quality gate's verdict (tinyc.quality.QualityVerdict)
    techniques: list[str] = field(default_factory=list)  # what quantize applied, in order

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (an SQNR of None means no error at all): the range coverage
        of the graph's inputs and outputs, and the quality gate's verdict."""
        d = asdict(self)
        d["coverage"] = [asdict(self.coverage[n]) for n in self.io_tensors if n in self.coverage]
        d["quality"] = self.quality.to_dict() if self.quality is not None else None
        return d

    to_json = to_dict

    def format_text(self, max_layers: int = 10) -> str:
        lines = [
            f"Quantization to int8: {self.calibration_samples} calibration samples; agreement "
            f"with float on {self.eval_samples} {self.eval_source}"
        ]
        if self.techniques:
            lines.append(f"  ({', '.join(self.techniques)})")
        lines += [f"WARNING: {w}" for w in self.warnings]
        rows = [
            [
                o.name,
                o.task,
                "-" if o.top1_agreement is None else f"{100 * o.top1_agreement:.1f}%",
                _db(o.sqnr_db),
                f"{o.max_abs_error:.4g}",
                f"{o.mean_abs_error:.4g}",
            ]
            for o in self.outputs
        ]
        lines.append(
            render(
                ["output", "task", "top-1 agree", "SQNR dB", "max |err|", "mean |err|"],
                rows,
                right={2, 3, 4, 5},
            )
        )
        shown = self.layers[:max_layers]
        lines.append(f"Layers, worst SQNR first ({len(shown)} of {len(self.layers)}):")
        rows = [
            [
                l.node,
                l.op,
                l.observer,
                "-" if l.scale is None else f"{l.scale:.4g}",
                "-" if l.zero_point is None else l.zero_point,
                _db(l.sqnr_db),
            ]
            for l in shown
        ]
        lines.append(
            render(["node", "op", "observer", "scale", "zp", "SQNR dB"], rows, right={3, 4, 5})
        )
        if self.quality is not None and not self.quality.ok:  # last, where it is seen
            lines += ["", *self.quality.lines()]
        return "\n".join(lines)


def _db(v: float | None) -> str:
    return "exact" if v is None else f"{v:.1f}"


def sqnr_db(signal: float, noise: float) -> float | None:
    if noise <= 0.0:
        return None
    if signal <= 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def output_task(g: Graph, name: str) -> str:
    """ "classifier" when the output comes from a SOFTMAX (through data movement) or is a
    vector of 2..1000 scores unlike any input's size; "regression" otherwise."""
    producers = g.producers()
    node = producers.get(name)
    while node is not None and get_op(node.op).output_quant == "same_as_input":
        node = producers.get(node.inputs[0])
    if node is not None and node.op in ("SOFTMAX", "LOG_SOFTMAX"):
        return "classifier"
    t = g.tensors[name]
    dims = [d for d in t.shape if d != 1]
    if (
        len(dims) == 1
        and 2 <= dims[0] <= 1000
        and all(g.tensors[i].size != t.size for i in g.inputs)
    ):
        return "classifier"
    return "regression"


def int8_inputs(q: Graph, sample: list[np.ndarray]) -> list[np.ndarray]:
    """A float sample as ``q`` takes it: quantized with the input's parameters when int8."""
    out = []
    for name, x in zip(q.inputs, sample, strict=True):
        t = q.tensors[name]
        if t.is_quantized and t.quant is not None:
            out.append(quantize_array(np.asarray(x, np.float32), t.quant.s, t.quant.zp, t.dtype))
        else:
            out.append(np.asarray(x, np.float32))
    return out


def _real(q: Graph, name: str, v: np.ndarray) -> np.ndarray:
    t = q.tensors[name]
    if t.is_quantized and t.quant is not None:
        return t.quant.dequantize(v).astype(np.float64)
    return v.astype(np.float64)


def boundary_quant(q: Graph, name: str) -> tuple[QuantParams, str] | None:
    """The integer parameters and dtype of tensor ``name`` of ``q``; for a float graph input
    or output, those of the QUANTIZE after it or the DEQUANTIZE before it."""
    t = q.tensors.get(name)
    if t is None:
        return None
    if t.is_quantized and t.quant is not None:
        return t.quant, t.dtype
    for n in q.nodes:
        if n.op == "QUANTIZE" and n.inputs[0] == name:
            inner = q.tensors[n.outputs[0]]
        elif n.op == "DEQUANTIZE" and n.outputs[0] == name:
            inner = q.tensors[n.inputs[0]]
        else:
            continue
        if inner.quant is not None:
            return inner.quant, inner.dtype
    return None


class _Coverage:
    """Accumulates how many float values fall outside each tensor's integer range."""

    def __init__(self, q: Graph, names: list[str], fixed: set[str]):
        self.ranges: dict[str, tuple[float, float, float]] = {}
        self.fixed = fixed
        for name in names:
            found = boundary_quant(q, name)
            if found is None or found[0].per_channel or name in self.ranges:
                continue
            qp, dtype = found
            info = np.iinfo(dtype)
            s = float(qp.s)
            self.ranges[name] = ((info.min - qp.zp) * s, (info.max - qp.zp) * s, s)
        self.seen = {n: [math.inf, -math.inf, 0, 0] for n in self.ranges}

    def update(self, name: str, ref: np.ndarray) -> None:
        if name not in self.ranges or ref.size == 0:
            return
        lo, hi, s = self.ranges[name]
        acc = self.seen[name]
        acc[0] = min(acc[0], float(ref.min()))
        acc[1] = max(acc[1], float(ref.max()))
        acc[2] += int(np.count_nonzero((ref < lo - s / 2) | (ref > hi + s / 2)))
        acc[3] += ref.size

    def result(self) -> dict[str, RangeCoverage]:
        return {
            n: RangeCoverage(n, lo, hi, a[0], a[1], a[2] / a[3], n in self.fixed)
            for n, (lo, hi, _) in self.ranges.items()
            if (a := self.seen[n])[3]
        }


def evaluate(
    f: Graph,
    q: Graph,
    samples: list[list[np.ndarray]],
    choices: dict[str, ObserverChoice] | None = None,
    fixed: set[str] | None = None,
) -> QuantReport:
    """Run float ``f`` and int8 ``q`` on the same float ``samples`` and compare; also
    record how much of every tensor's float values its int8 range holds (``fixed``: the
    tensors whose parameters an op fixes rather than calibration)."""
    compared = [
        (n, n.outputs[0])
        for n in q.nodes
        if n.outputs[0] in f.tensors and f.tensors[n.outputs[0]].shape == q.out(n).shape
    ]
    compared_names = {name for _, name in compared}
    cov_names = [*f.inputs, *(name for _, name in compared), *f.outputs]
    coverage = _Coverage(q, [n for n in cov_names if n in q.tensors], fixed or set())
    sig = {name: 0.0 for _, name in compared}
    noise = dict(sig)
    outs: dict[str, dict[str, Any]] = {
        o: {"sig": 0.0, "noise": 0.0, "max": 0.0, "sum": 0.0, "count": 0, "agree": 0, "rows": 0}
        for o in f.outputs
    }
    tasks = {o: output_task(f, o) for o in f.outputs}
    for sample in samples:
        fv = interpreter.run(f, sample, keep_all=True)
        qv = interpreter.run(q, int8_inputs(q, sample), keep_all=True)
        for name, x in zip(f.inputs, sample, strict=True):
            coverage.update(name, np.asarray(x, np.float64))
        for _, name in compared:
            ref = fv[name].astype(np.float64)
            coverage.update(name, ref)
            err = ref - _real(q, name, qv[name])
            sig[name] += float(np.sum(ref * ref))
            noise[name] += float(np.sum(err * err))
        for o, acc in outs.items():
            ref = fv[o].astype(np.float64)
            if o not in compared_names:
                coverage.update(o, ref)
            got = _real(q, o, qv[o])
            err = np.abs(ref - got)
            acc["sig"] += float(np.sum(ref * ref))
            acc["noise"] += float(np.sum(err * err))
            acc["max"] = max(acc["max"], float(err.max(initial=0.0)))
            acc["sum"] += float(err.sum())
            acc["count"] += err.size
            if tasks[o] == "classifier":
                k = max(d for d in ref.shape) if ref.ndim else 1
                r, g_ = ref.reshape(-1, k), got.reshape(-1, k)
                acc["agree"] += int(np.sum(r.argmax(axis=1) == g_.argmax(axis=1)))
                acc["rows"] += r.shape[0]
    layers = []
    for node, name in compared:
        t = q.tensors[name]
        scale = float(t.quant.s) if t.is_quantized and t.quant is not None else None
        zp = t.quant.zp if t.is_quantized and t.quant is not None else None
        obs = choices[name].observer if choices and name in choices else "-"
        layers.append(
            LayerQuality(node.name, node.op, name, obs, scale, zp, sqnr_db(sig[name], noise[name]))
        )
    layers.sort(key=lambda l: math.inf if l.sqnr_db is None else l.sqnr_db)
    outputs = [
        OutputQuality(
            o,
            tasks[o],
            acc["agree"] / acc["rows"] if acc["rows"] else None,
            sqnr_db(acc["sig"], acc["noise"]),
            acc["max"],
            acc["sum"] / max(acc["count"], 1),
        )
        for o, acc in outs.items()
    ]
    return QuantReport(
        layers,
        outputs,
        len(samples),
        coverage=coverage.result(),
        io_tensors=[*f.inputs, *f.outputs],
    )
