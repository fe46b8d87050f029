"""How well an int8 graph agrees with the float graph it was quantized from.

Per layer: the SQNR (signal-to-quantization-noise ratio, dB) of every node's int8 output,
dequantized, against the float graph's value of the same tensor, on the same inputs (the
error accumulated up to that layer). Per graph output: top-1 agreement for classifiers, max
and mean absolute error and SQNR for every output.
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
class QuantReport:
    layers: list[LayerQuality]
    outputs: list[OutputQuality]
    eval_samples: int
    calibration_samples: int = 0
    eval_source: str = ""
    requantizations: int = 0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (an SQNR of None means no error at all)."""
        return asdict(self)

    to_json = to_dict

    def format_text(self, max_layers: int = 10) -> str:
        lines = [
            f"Quantization to int8: {self.calibration_samples} calibration samples; agreement "
            f"with float on {self.eval_samples} {self.eval_source}"
        ]
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


def evaluate(
    f: Graph,
    q: Graph,
    samples: list[list[np.ndarray]],
    choices: dict[str, ObserverChoice] | None = None,
) -> QuantReport:
    """Run float ``f`` and int8 ``q`` on the same float ``samples`` and compare."""
    compared = [
        (n, n.outputs[0])
        for n in q.nodes
        if n.outputs[0] in f.tensors and f.tensors[n.outputs[0]].shape == q.out(n).shape
    ]
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
        for _, name in compared:
            ref = fv[name].astype(np.float64)
            err = ref - _real(q, name, qv[name])
            sig[name] += float(np.sum(ref * ref))
            noise[name] += float(np.sum(err * err))
        for o, acc in outs.items():
            ref = fv[o].astype(np.float64)
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
    return QuantReport(layers, outputs, len(samples))
