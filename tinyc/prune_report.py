"""What ``--prune`` did and what it cost: per layer, the sparsity and the SQNR of the
layer's output against the unpruned model; per model output, SQNR and top-1 agreement
with the unpruned model on held-out samples (for each method when ``--prune-method both``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tinyc import interpreter
from tinyc.ir.graph import Graph
from tinyc.passes.prune import PruneOptions, PruneResult, prune, weight_units
from tinyc.quant_report import int8_inputs, output_task, sqnr_db
from tinyc.table import render


@dataclass
class PrunedLayer:
    node: str
    op: str
    weights: int
    zeros: int
    sparsity: float
    sqnr_db: float | None  # the layer's output vs the unpruned model's; None: no error


@dataclass
class PrunedOutput:
    name: str
    task: str
    sqnr_db: float | None
    top1_agreement: float | None


@dataclass
class MethodResult:
    method: str
    sparsity: float  # zero weights / weights of the prunable layers
    weights: int
    zeros: int
    layers: list[PrunedLayer]
    outputs: list[PrunedOutput]
    seconds: float
    notes: list[str] = field(default_factory=list)


@dataclass
class PruneReport:
    spec: str
    kept: str  # the method whose graph goes on
    results: list[MethodResult]
    eval_samples: int
    eval_source: str
    calibration_samples: int
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    to_dict = to_json

    def format_text(self) -> str:
        kept = next(r for r in self.results if r.method == self.kept)
        lines = [
            f"Pruning {self.spec}: {kept.zeros:,} of {kept.weights:,} weights zero "
            f"({100 * kept.sparsity:.1f} %), {self.kept}"
            + (
                f" on {self.calibration_samples} calibration samples"
                if self.calibration_samples
                else ""
            )
            + f"; agreement with the unpruned model on {self.eval_samples} {self.eval_source}"
        ]
        lines += [f"  note: {n}" for n in [*self.notes, *kept.notes]]
        heads = ["output", "task"]
        for r in self.results:
            heads += [f"{r.method} SQNR dB", f"{r.method} top-1"]
        rows = []
        for i, o in enumerate(kept.outputs):
            row = [o.name, o.task]
            for r in self.results:
                x = r.outputs[i]
                row += [
                    _db(x.sqnr_db),
                    "-" if x.top1_agreement is None else f"{100 * x.top1_agreement:.1f}%",
                ]
            rows.append(row)
        lines.append(render(heads, rows, right=set(range(2, len(heads)))))
        heads = ["layer", "op", "weights"]
        for r in self.results:
            heads += [f"{r.method} sparsity", f"{r.method} SQNR dB"]
        rows = []
        for i, l in enumerate(kept.layers):
            row = [l.node[:48], l.op, f"{l.weights:,}"]
            for r in self.results:
                x = r.layers[i]
                row += [f"{100 * x.sparsity:.1f}%", _db(x.sqnr_db)]
            rows.append(row)
        lines.append(render(heads, rows, right=set(range(2, len(heads)))))
        return "\n".join(lines)


def _db(v: float | None) -> str:
    return "exact" if v is None else f"{v:.1f}"


def _real(g: Graph, name: str, v: np.ndarray) -> np.ndarray:
    t = g.tensors[name]
    if t.is_quantized and t.quant is not None and t.dtype != "float32":
        return t.quant.dequantize(v).astype(np.float64)
    return np.asarray(v, np.float64)


def compare(ref: Graph, got: Graph, res: PruneResult, samples: list) -> MethodResult:
    """The pruned graph ``got`` against ``ref`` (float samples, internal layout)."""
    units = weight_units(got)
    nodes = {u.node.name: u.node for u in units}
    counts: dict[str, list[int]] = {}
    for u in units:
        d = got.tensors[u.tensor].data
        assert d is not None
        c = counts.setdefault(u.node.name, [0, 0])
        c[0] += int(np.count_nonzero(d == 0))
        c[1] += int(d.size)
    watched = {n: nodes[n].outputs[0] for n in nodes if nodes[n].outputs[0] in ref.tensors}
    acc = {n: [0.0, 0.0] for n in watched}
    tasks = {o: output_task(ref, o) for o in ref.outputs}
    outs = {o: [0.0, 0.0, 0, 0] for o in ref.outputs}
    for s in samples:
        fv = interpreter.run(ref, _inputs(ref, s), keep_all=True)
        gv = interpreter.run(got, _inputs(got, s), keep_all=True)
        for n, t in watched.items():
            a, b = _real(ref, t, fv[t]), _real(got, t, gv[t])
            acc[n][0] += float(np.sum(a * a))
            acc[n][1] += float(np.sum((a - b) ** 2))
        for o in ref.outputs:
            a, b = _real(ref, o, fv[o]), _real(got, o, gv[o])
            outs[o][0] += float(np.sum(a * a))
            outs[o][1] += float(np.sum((a - b) ** 2))
            if tasks[o] == "classifier":
                k = max(a.shape) if a.ndim else 1
                outs[o][2] += int(np.sum(a.reshape(-1, k).argmax(1) == b.reshape(-1, k).argmax(1)))
                outs[o][3] += a.size // k
    layers = [
        PrunedLayer(
            n,
            nodes[n].op,
            c[1],
            c[0],
            c[0] / c[1] if c[1] else 0.0,
            sqnr_db(*acc[n]) if n in acc and samples else None,
        )
        for n, c in counts.items()
    ]
    outputs = [
        PrunedOutput(o, tasks[o], sqnr_db(v[0], v[1]), v[2] / v[3] if v[3] else None)
        for o, v in outs.items()
    ]
    zeros, weights = sum(c[0] for c in counts.values()), sum(c[1] for c in counts.values())
    return MethodResult(
        res.method, zeros / weights if weights else 0.0, weights, zeros, layers, outputs,
        round(res.seconds, 2), res.notes,
    )  # fmt: skip


def _inputs(g: Graph, sample: list) -> list:
    return int8_inputs(g, sample) if g.is_quantized else sample


def _random_samples(g: Graph, n: int) -> list:
    """Seeded inputs in real values (int8 graphs: dequantized random int8)."""
    from tinyc.modelio import random_inputs

    out = []
    for seed in range(n):
        xs = random_inputs(g, seed)
        sample = []
        for name, x in zip(g.inputs, xs, strict=True):
            t = g.tensors[name]
            sample.append(t.quant.dequantize(x) if t.is_quantized and t.quant is not None else x)
        out.append(sample)
    return out


def prune_with_data(g: Graph, opts: PruneOptions, cal: Any, log=None) -> tuple[Graph, PruneReport]:
    """What ``compile --prune`` does: the calibration / held-out draw quantization makes
    (the same seeded shuffle), prune (each method for ``both``), compare with the unpruned
    model on the held-out samples; the reconstruction's graph goes on when both ran."""
    from tinyc.passes.quantize import draw_samples

    notes: list[str] = []
    cal_s: list = []
    held: list = []
    path = getattr(cal, "path", None) if cal is not None else None
    if path:  # real-valued samples (an int8 graph quantizes them itself)
        cal_s, held = draw_samples(path, g, cal.samples, cal.eval_samples)
    source = "held-out samples"
    if not held:
        if cal_s:
            held, source = cal_s, "calibration samples"
        else:
            held, source = _random_samples(g, 16), "seeded random inputs (no data given)"
    methods = ["magnitude", "reconstruction"] if opts.method == "both" else [opts.method]
    results = []
    graphs = {}
    for m in methods:
        res = prune(g, opts, cal_s or None, None if m == "auto" else m)
        graphs[res.method] = res.graph
        results.append(compare(g, res.graph, res, held))
    kept = "reconstruction" if "reconstruction" in graphs else results[-1].method
    if opts.method == "both" and not cal_s:
        notes.append("no calibration data: both runs are magnitude pruning")
    spec = opts.spec.text + (f" in blocks of {opts.block} FC channels" if opts.block > 1 else "")
    report = PruneReport(spec, kept, results, len(held), source, len(cal_s), notes)
    if log is not None:
        k = next(r for r in results if r.method == kept)
        log(f"pruned {100 * k.sparsity:.1f} % of the weights ({kept})")
    return graphs[kept], report
