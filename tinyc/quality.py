"""The quantization quality gate: is the int8 model close enough to its float model, and if
not, what is the likely cause.

Judged on the held-out samples (drawn by a seeded shuffle, kept apart from calibration):

- every output's SQNR against float: at least 20 dB for a regression output, 10 dB for a
  classifier output (its order matters more than its probabilities);
- every classifier output's top-1 agreement with float: at least 90 %.

An output below a threshold makes ``tinyc compile`` print a warning naming the likely cause
(inputs or outputs clipped at a calibrated bound, too few samples, the layer where the error
jumps); ``--min-sqnr DB`` makes an output SQNR below DB an error instead.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from tinyc.ir.graph import Graph
from tinyc.quant_report import QuantReport, RangeCoverage

MIN_SQNR_DB = {"regression": 20.0, "classifier": 10.0}
"""Output SQNR (dB) below which the gate warns, by output task."""
MIN_TOP1_AGREEMENT = 0.90
"""Top-1 agreement with float below which a classifier output fails the gate."""
CLIPPED_FRACTION = 0.01
"""A tensor with more of its held-out values outside its int8 range is 'range not covered'."""
FEW_CALIBRATION_SAMPLES = 32
FEW_EVAL_SAMPLES = 16
OUTLIER_DROP_DB = 10.0
"""A layer whose SQNR is this much below its inputs' is named as an outlier."""

THRESHOLDS_TEXT = (
    "thresholds: output SQNR >= 20 dB (regression) / 10 dB (classifier), top-1 agreement "
    ">= 90 %; --min-sqnr DB makes a lower SQNR an error"
)


@dataclass
class Shortfall:
    """One output below one threshold."""

    output: str
    metric: str  # "sqnr_db" or "top1_agreement"
    value: float
    threshold: float

    def text(self) -> str:
        if self.metric == "sqnr_db":
            return f"output {self.output!r} SQNR {self.value:.1f} dB (< {self.threshold:g} dB)"
        return (
            f"output {self.output!r} top-1 agreement {100 * self.value:.1f} % "
            f"(< {100 * self.threshold:g} %)"
        )


@dataclass
class Cause:
    """A likely cause: ``kind`` is "range", "samples", "layer" or "synthetic"."""

    kind: str
    text: str


@dataclass
class QualityVerdict:
    """The gate's answer: ``ok`` when every output meets the default thresholds; ``errors``
    lists the outputs below ``--min-sqnr``."""

    ok: bool
    shortfalls: list[Shortfall]
    errors: list[Shortfall]
    causes: list[Cause]
    eval_samples: int
    eval_source: str
    thresholds: dict[str, float] = field(default_factory=dict)

    def headline(self, shortfalls: list[Shortfall] | None = None) -> str:
        items = self.shortfalls if shortfalls is None else shortfalls
        return (
            f"int8 quality below the gate on {self.eval_samples} {self.eval_source}: "
            + ", ".join(s.text() for s in items)
        )

    def lines(self) -> list[str]:
        """The warning block ``compile`` prints (empty when the gate passes)."""
        if self.ok:
            return []
        return [
            f"WARNING: {self.headline()}",
            *(f"  likely cause: {c.text}" for c in self.causes),
            f"  ({THRESHOLDS_TEXT})",
        ]

    def error_text(self, min_sqnr: float) -> str:
        """One line for ``--min-sqnr``."""
        causes = "; ".join(c.text for c in self.causes)
        return (
            f"int8 output SQNR below --min-sqnr {min_sqnr:g} dB on {self.eval_samples} "
            f"{self.eval_source}: "
            + ", ".join(s.text() for s in self.errors)
            + (f"; likely cause: {causes}" if causes else "")
            + "; nothing written"
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["warning"] = None if self.ok else self.headline()
        return d


def _fmt(v: float) -> str:
    return f"{v:.3g}" if math.isfinite(v) else str(v)


def _range_cause(cov: list[RangeCoverage], inputs: set[str], outputs: set[str]) -> Cause | None:
    clipped = [c for c in cov if not c.fixed and c.clipped > CLIPPED_FRACTION]
    if not clipped:
        return None
    # graph inputs and outputs first: a clipped input explains everything after it
    clipped.sort(key=lambda c: (c.tensor not in inputs, c.tensor not in outputs))
    parts = []
    for c in clipped[:2]:
        what = "input" if c.tensor in inputs else "output" if c.tensor in outputs else "tensor"
        parts.append(
            f"{what} {c.tensor!r} {100 * c.clipped:.0f} % of values (calibrated "
            f"[{_fmt(c.lo)}, {_fmt(c.hi)}], held-out [{_fmt(c.seen_lo)}, {_fmt(c.seen_hi)}])"
        )
    k = len(clipped) - 2
    more = f" and {k} more tensor{'s' if k > 1 else ''}" if k > 0 else ""
    return Cause(
        "range",
        "range not covered: held-out values fall outside the calibrated range and are clipped "
        f"at its bound: {'; '.join(parts)}{more}; the calibration samples do not span the data "
        "(give samples from the whole input range)",
    )


def _sample_causes(report: QuantReport) -> list[Cause]:
    out = []
    if report.calibration_samples < FEW_CALIBRATION_SAMPLES:
        out.append(
            Cause(
                "samples",
                f"too few samples: {report.calibration_samples} calibration samples (tinyc "
                "takes 100 by default; give more data or --calibration-samples N)",
            )
        )
    if report.eval_source != "held-out samples":
        out.append(
            Cause(
                "samples",
                "no held-out samples: measured on the calibration samples themselves (give "
                "more data, or fewer --calibration-samples)",
            )
        )
    elif report.eval_samples < FEW_EVAL_SAMPLES:
        out.append(
            Cause(
                "samples",
                f"only {report.eval_samples} held-out samples: the figure is rough "
                "(--eval-samples N, more data)",
            )
        )
    return out


def _layer_cause(report: QuantReport, q: Graph | None) -> Cause | None:
    """The layer where the error jumps most (SQNR far below its inputs'), else the worst."""
    by_tensor = {lq.tensor: lq for lq in report.layers}
    best: tuple[float, Any, float] | None = None
    if q is not None:
        for n in q.nodes:
            lq = by_tensor.get(n.outputs[0]) if n.outputs else None
            if lq is None or lq.sqnr_db is None:
                continue
            ins = [by_tensor[i].sqnr_db for i in n.inputs if i in by_tensor]
            ins = [math.inf if v is None else v for v in ins]
            if not ins or not math.isfinite(min(ins)):
                continue
            drop = min(ins) - lq.sqnr_db
            if drop >= OUTLIER_DROP_DB and (best is None or drop > best[0]):
                best = (drop, lq, min(ins))
    if best is not None:
        drop, lq, before = best
        return Cause(
            "layer",
            f"outlier layer {lq.node!r} ({lq.op}): SQNR falls from {before:.1f} dB at its "
            f"input to {lq.sqnr_db:.1f} dB (its range: --observer, or check its weights)",
        )
    worst = next((lq for lq in report.layers if lq.sqnr_db is not None), None)
    if worst is None:
        return None
    return Cause(
        "layer",
        f"the largest error is at layer {worst.node!r} ({worst.op}, SQNR {worst.sqnr_db:.1f} dB)",
    )


def judge(
    report: QuantReport,
    q: Graph | None = None,
    min_sqnr: float | None = None,
    synthetic: bool = False,
) -> QualityVerdict:
    """Apply the gate to ``report`` (of int8 graph ``q``); ``min_sqnr``: the error bound."""
    shortfalls, errors = [], []
    for o in report.outputs:
        sq = math.inf if o.sqnr_db is None else o.sqnr_db
        limit = MIN_SQNR_DB.get(o.task, MIN_SQNR_DB["regression"])
        if sq < limit:
            shortfalls.append(Shortfall(o.name, "sqnr_db", sq, limit))
        if o.top1_agreement is not None and o.top1_agreement < MIN_TOP1_AGREEMENT:
            shortfalls.append(
                Shortfall(o.name, "top1_agreement", o.top1_agreement, MIN_TOP1_AGREEMENT)
            )
        if min_sqnr is not None and sq < min_sqnr:
            errors.append(Shortfall(o.name, "sqnr_db", sq, min_sqnr))
    causes: list[Cause] = []
    if shortfalls or errors:
        if synthetic:
            causes.append(
                Cause("synthetic", "synthetic calibration: random inputs, not the model's data")
            )
        inputs = set(report.io_tensors) - {o.name for o in report.outputs}
        outputs = {o.name for o in report.outputs}
        rng = _range_cause(list(report.coverage.values()), inputs, outputs)
        causes += [rng] if rng else []
        causes += _sample_causes(report)
        if rng is None:
            layer = _layer_cause(report, q)
            causes += [layer] if layer else []
    thresholds = {
        "regression_min_sqnr_db": MIN_SQNR_DB["regression"],
        "classifier_min_sqnr_db": MIN_SQNR_DB["classifier"],
        "min_top1_agreement": MIN_TOP1_AGREEMENT,
        **({"min_sqnr_db": min_sqnr} if min_sqnr is not None else {}),
    }
    return QualityVerdict(
        not shortfalls,
        shortfalls,
        errors,
        causes,
        report.eval_samples,
        report.eval_source,
        thresholds,
    )
