"""Pruning: set a fraction of the weights of conv / depthwise / fully-connected / recurrent
layers to zero, float or int8 graphs alike.

Sparsity belongs to the constant tensors: this pass only writes zeros (and re-fits the
weights that survive); which layers get sparse code is the backend's choice.

- **Spec.** ``0.8``: 80 % of all prunable weights, distributed across layers by sensitivity
  (each layer's output error vs its sparsity, measured on calibration data, then the
  allocation that minimises the summed relative error for the budget); or per layer,
  ``'conv*=0.7,fc*=0.9'`` (globs on node names, the last match wins).
- **Methods.** ``magnitude``: the smallest weights go. ``reconstruction`` (OBS / SparseGPT
  family, tinyc.passes.prune_solve): layer after layer on the calibration data, the mask
  by OBS saliency w^2 / [H^-1]_jj with H = X X^T of the layer's inputs (im2col for
  convolutions, per channel for depthwise, per time step for recurrent layers), then the
  surviving weights and the bias re-solved by damped least squares so that the layer's
  output on its inputs *in the pruned model* matches the unpruned layer's output on its
  unpruned inputs (upstream errors are compensated).
- int8 graphs: weights are symmetric (zero point 0), so a zero stays exact; reconstruction
  re-fits in float and requantizes with the same scales (a survivor never rounds to 0).

A layer keeps at least 3 % of its weights; layers with fewer than ``MIN_WEIGHTS`` weights
are left alone by a global spec.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinyc.errors import TinycError
from tinyc.ir.graph import Graph, Node

LAYER_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
RECURRENT_OPS = ("LSTM", "GRU", "RNN")
METHODS = ("magnitude", "reconstruction", "both")
MIN_WEIGHTS = 64
MAX_LAYER_SPARSITY = 0.97
#: sparsity levels at which each layer's error is measured for the global allocation
GRID = (0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97)


# -- what can be pruned -------------------------------------------------------------------


@dataclass
class Unit:
    """One prunable weight tensor, seen as a matrix (rows = output channels or units).

    ``kind``: fc, conv, dw (depthwise), rec_x / rec_h (a recurrent gate's input-side /
    recurrent weights), rec_p (an LSTM projection)."""

    node: Node
    slot: int
    kind: str
    tensor: str
    groups: int = 1
    block: int = 1  # rows pruned together (--prune-block): FC output channels, gate units

    @property
    def label(self) -> str:
        return (
            self.node.name
            if self.kind in ("fc", "conv", "dw")
            else f"{self.node.name}:{self.tensor}"
        )

    @property
    def biased(self) -> bool:
        return self.kind in ("fc", "conv", "dw")


def weight_units(g: Graph) -> list[Unit]:
    """Every constant weight tensor of a conv / depthwise / FC / LSTM / GRU / RNN node."""
    from tinyc.ir.ops import get_op

    units: list[Unit] = []
    seen: set[str] = set()

    def add(node: Node, slot: int, kind: str, groups: int = 1) -> None:
        name = node.inputs[slot] if slot < len(node.inputs) else ""
        if not name or name in seen:
            return
        t = g.tensors[name]
        if not t.is_const or t.dtype not in ("float32", "int8"):
            return
        if t.dtype == "int8" and (t.quant is None or np.any(t.quant.zero_point != 0)):
            return
        seen.add(name)
        units.append(Unit(node, slot, kind, name, groups))

    for n in g.nodes:
        if n.op in LAYER_OPS and len(n.inputs) > 1:
            x = g.tensors.get(n.inputs[0])
            if n.op == "FULLY_CONNECTED":
                w = g.tensors[n.inputs[1]]
                if len(w.shape) == 2:
                    add(n, 1, "fc")
            elif n.op == "DEPTHWISE_CONV_2D":
                add(n, 1, "dw")
            elif x is not None and len(x.shape) == 4:
                add(n, 1, "conv", get_op(n.op).groups(n, g))  # type: ignore[attr-defined]
        elif n.op in RECURRENT_OPS:
            op: Any = get_op(n.op)
            for k in range(len(op.gates)):
                add(n, op.w_slot + k, "rec_x")
                add(n, op.r_slot + k, "rec_h")
            if n.op == "LSTM":
                from tinyc.ir.ops.recurrent import PW

                add(n, PW, "rec_p")
    return units


def layer_sparsity(g: Graph) -> dict[str, tuple[int, int]]:
    """Per weight layer (node name): (zero weights, weights), over its weight tensors."""
    out: dict[str, tuple[int, int]] = {}
    for u in weight_units(g):
        data = g.tensors[u.tensor].data
        assert data is not None
        z, n = out.get(u.node.name, (0, 0))
        out[u.node.name] = (z + int(np.count_nonzero(data == 0)), n + int(data.size))
    return out


# -- the spec -------------------------------------------------------------------------------


@dataclass
class PruneSpec:
    """A global fraction, or (glob, fraction) rules on node names."""

    text: str
    fraction: float | None = None
    rules: list[tuple[str, float]] = field(default_factory=list)


def _fraction(text: str, where: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise TinycError(f"--prune {where}: {text!r} is not a number") from None
    if not 0.0 <= v < 1.0:
        raise TinycError(f"--prune {where}: a fraction of weights must be in [0, 1), not {text}")
    return v


def parse_spec(text: str) -> PruneSpec:
    """``0.8`` or ``'conv*=0.7,fc*=0.9'``; a TinycError names what is wrong."""
    s = text.strip()
    if not s:
        raise TinycError("--prune: empty spec (give a fraction such as 0.8, or GLOB=F,...)")
    if "=" not in s:
        v = _fraction(s, "spec")
        if v > MAX_LAYER_SPARSITY:
            raise TinycError(
                f"--prune {s}: at most {MAX_LAYER_SPARSITY} of the weights can be pruned "
                "(every layer keeps some)"
            )
        return PruneSpec(text, fraction=v)
    rules = []
    for part in s.split(","):
        m = re.fullmatch(r"\s*([^=\s][^=]*?)\s*=\s*(\S+)\s*", part)
        if not m:
            raise TinycError(f"--prune: {part.strip()!r} is not GLOB=FRACTION (e.g. 'conv*=0.7')")
        rules.append((m.group(1), _fraction(m.group(2), f"rule {m.group(1)!r}")))
    return PruneSpec(text, rules=rules)


#: --prune-block values: output channels of a fully-connected layer (units of a recurrent
#: gate matrix) that lose the same columns (4: the grouped sparse encodings of the C
#: backend, tinyc_spfcg_s8 and the recurrent kernels' tinyc_rnn_spggates)
BLOCKS = (1, 2, 4, 8)


@dataclass
class PruneOptions:
    spec: PruneSpec
    method: str = "auto"  # auto (reconstruction with data, else magnitude) or one of METHODS
    block: int = 1  # 1: unstructured; N: blocks of N rows of FC and gate matrices

    @classmethod
    def parse(cls, spec: str, method: str | None = None, block: int | None = None
              ) -> PruneOptions:  # fmt: skip
        m = method or "auto"
        if m not in ("auto", *METHODS):
            raise TinycError(f"--prune-method must be one of {', '.join(METHODS)}, not {m!r}")
        b = 1 if block is None else int(block)
        if b not in BLOCKS:
            raise TinycError(
                f"--prune-block must be one of {', '.join(map(str, BLOCKS))}, not {block}"
            )
        return cls(parse_spec(spec), m, b)


def _count(frac: float, size: int) -> int:
    return int(np.floor(frac * size + 0.5))


def rule_counts(units: list[Unit], g: Graph, spec: PruneSpec) -> dict[str, int]:
    """Zeros wanted per unit (tensor name) from per-layer rules; every rule must match."""
    frac: dict[str, float] = {}
    for pattern, f in spec.rules:
        hit = [u for u in units if fnmatch.fnmatchcase(u.node.name, pattern)]
        if not hit:
            names = sorted({u.node.name for u in units})
            shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            raise TinycError(
                f"--prune: {pattern!r} matches no prunable layer (layers: {shown or 'none'})"
            )
        for u in hit:
            frac[u.tensor] = f
    return {
        u.tensor: _count(frac[u.tensor], g.tensors[u.tensor].size)
        for u in units
        if u.tensor in frac
    }


# -- allocation -------------------------------------------------------------------------------


def allocate(
    sizes: dict[str, int], curves: dict[str, list[tuple[float, float]]], total: int
) -> dict[str, int]:
    """Zeros per unit summing to exactly ``total``, minimising the summed error: each unit's
    error curve (sparsity, relative error) is made convex (lower hull), then segments are
    taken cheapest error per weight first (the Lagrangian optimum of the relaxation)."""
    segs = []
    for name, pts in curves.items():
        n = sizes[name]
        hull: list[tuple[float, float]] = []
        for p in sorted(pts):
            while len(hull) >= 2:
                (x1, y1), (x2, y2) = hull[-2], hull[-1]
                if (y2 - y1) * (p[0] - x1) >= (p[1] - y1) * (x2 - x1):
                    hull.pop()
                else:
                    break
            hull.append(p)
        for (x1, y1), (x2, y2) in zip(hull, hull[1:], strict=False):
            w = (x2 - x1) * n
            if w > 0:
                segs.append(((y2 - y1) / w, name, x1 * n, w))
    cap = sum(int(np.floor(max(s for s, _ in curves[k]) * sizes[k])) for k in curves)
    if total > cap:
        raise TinycError(
            f"--prune: {total:,} zero weights asked but the layers can give at most {cap:,} "
            f"(each keeps at least {1 - MAX_LAYER_SPARSITY:.0%}, layers under {MIN_WEIGHTS} "
            "weights are left alone)"
        )
    amount = {k: 0.0 for k in curves}
    left = float(total)
    for _slope, name, _start, w in sorted(segs, key=lambda s: (s[0], s[1])):
        take = min(w, left)
        amount[name] += take
        left -= take
        if left <= 0:
            break
    counts = {k: int(np.floor(v)) for k, v in amount.items()}
    short = total - sum(counts.values())
    order = sorted(curves, key=lambda k: -(amount[k] - counts[k]))
    i = 0
    while short > 0:  # hand out what flooring lost, largest remainders first
        k = order[i % len(order)]
        if counts[k] < int(np.floor(MAX_LAYER_SPARSITY * sizes[k])):
            counts[k] += 1
            short -= 1
        i += 1
    return counts


def _keep_existing(counts: dict[str, int], have: dict[str, int]) -> dict[str, int]:
    """No layer is asked for fewer zeros than it has; the difference comes off the others
    (largest first) so that the total stays."""
    out = dict(counts)
    extra = 0
    for k in out:
        if have[k] > out[k]:
            extra += have[k] - out[k]
            out[k] = have[k]
    for k in sorted(out, key=lambda k: -(out[k] - have[k])):
        take = min(extra, out[k] - have[k])
        out[k] -= take
        extra -= take
    return out


# -- the pass ---------------------------------------------------------------------------------


@dataclass
class PruneResult:
    graph: Graph
    method: str
    counts: dict[str, int]  # zeros per weight tensor
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def prune(
    g: Graph,
    opts: PruneOptions,
    samples: list[list[np.ndarray]] | None = None,
    method: str | None = None,
) -> PruneResult:
    """Prune ``g`` (float or int8) as ``opts`` says, on calibration ``samples`` (float, the
    graph's internal layout) when given; ``method`` overrides ``opts.method`` (magnitude or
    reconstruction). The input graph is left unchanged."""
    import time

    from tinyc.passes import prune_solve as ps

    t0 = time.perf_counter()
    notes: list[str] = []
    m = method or opts.method
    if m in ("auto", "both"):
        m = "reconstruction" if samples else "magnitude"
    if m == "reconstruction" and not samples:
        notes.append("no calibration data: magnitude pruning instead of reconstruction")
        m = "magnitude"
    if g.is_quantized:
        g = g.copy()
    else:
        from tinyc.passes.fold_constants import fold_constants

        g = fold_constants(g.copy())
    units = weight_units(g)
    if not units:
        raise TinycError(f"--prune: model {g.name!r} has no conv, FC or recurrent weights to prune")
    for u in units:
        if u.kind in ("fc", "rec_x", "rec_h"):
            u.block = opts.block
    sizes = {u.tensor: g.tensors[u.tensor].size for u in units}
    spec = opts.spec
    stats = None
    if spec.fraction is None:
        counts = rule_counts(units, g, spec)
        units = [u for u in units if u.tensor in counts]
    if spec.fraction is not None:
        eligible = [u for u in units if sizes[u.tensor] >= MIN_WEIGHTS]
        total = _count(spec.fraction, sum(sizes.values()))
        kept: list = []
        if samples:
            stats = ps.collect_stats(g, units, samples, kept)
        ref = min(GRID, key=lambda s: abs(s - spec.fraction))  # type: ignore[arg-type,operator]
        have = {u.tensor: int(np.count_nonzero(g.tensors[u.tensor].data == 0)) for u in units}
        curves = {}
        for u in eligible:  # the zeros a layer already has cost nothing
            grid = sorted({*GRID, round(have[u.tensor] / sizes[u.tensor], 6)})
            grid = [s for s in grid if s <= MAX_LAYER_SPARSITY]
            pts = ps.error_curve(
                g, u, stats.get(u.tensor) if stats else None, m, tuple(grid), kept, ref
            )
            curves[u.tensor] = [
                (s, 0.0 if s * sizes[u.tensor] <= have[u.tensor] else e) for s, e in pts
            ]
        total -= sum(have[u.tensor] for u in units if u not in eligible)
        counts = allocate({u.tensor: sizes[u.tensor] for u in eligible}, curves, max(total, 0))
        counts = _keep_existing(counts, have)
        counts.update({u.tensor: have[u.tensor] for u in units if u not in eligible})
        if not samples:
            notes.append("no calibration data: layer sensitivity judged from the weights alone")
    if m == "reconstruction":
        notes += ps.reconstruct(g, units, counts, samples or [])
    else:
        for u in units:
            t = g.tensors[u.tensor]
            t.data = ps.magnitude_prune(t.data, counts[u.tensor], u.block)
    return PruneResult(g, m, counts, notes, time.perf_counter() - t0)


def summary(res: PruneResult) -> str:
    """One line: how many weights the pass set to zero, and how."""
    units = weight_units(res.graph)
    zeros = sum(int(np.count_nonzero(res.graph.tensors[u.tensor].data == 0)) for u in units)
    total = sum(res.graph.tensors[u.tensor].size for u in units)
    extra = "; ".join(res.notes)
    return (
        f"pruned: {zeros:,} of {total:,} weights zero ({100 * zeros / max(total, 1):.1f} %, "
        f"{res.method})" + (f"; {extra}" if extra else "")
    )
