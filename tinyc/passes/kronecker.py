"""Post-training Kronecker factorization: each chosen fully-connected layer's trained matrix
W [m, n] becomes the nearest sum of R Kronecker products sum_r A_r (x) B_r (a KRONECKER_FC
node, tinyc/ir/ops/kronecker.py), on the float graph before quantization.

- **Nearest sum (Van Loan & Pitsianis).** For factor shapes A [p, q], B [s, t] (p*s = m,
  q*t = n), ||W - sum_r A_r (x) B_r||_F is ||R(W) - sum_r vec(A_r) vec(B_r)^T||_F for the
  rearranged matrix R(W) [p*q, s*t] whose row (i, j) is the block W[i*s:(i+1)*s, j*t:(j+1)*t]
  flattened: the truncated SVD of R(W) gives the optimum (A_r = sqrt(sigma_r) u_r,
  B_r = sqrt(sigma_r) v_r), its error sqrt(sum_{k>R} sigma_k^2).
- **Factor shapes.** Every divisor pair (p | m, q | n) that compresses (R*(p*q + s*t) at
  most half of m*n) without costing more MACs than the dense layer is tried (p = m, q = 1
  is the rank-R outer-product case); the chosen one captures the most of ||W||^2 per parameter
  (1 - e^2) / params, e the relative error; among shapes within 10 % of the best, the one
  with the fewest MACs (then the smallest error).
- **Spec.** ``2``: rank 2 for every eligible layer; ``'fc*=1,dense_3=2'``: globs on node
  names (the last match wins; rank 0 leaves a layer dense). Eligible: FULLY_CONNECTED with
  a constant float 2-D weight (recurrent gate matrices: not yet).
- **Report.** Per layer: factor shapes, parameters and compression, the matrix's relative
  error, MACs; for the model: output SQNR of the factored float model against the dense
  one on the calibration data, and task agreement (top-1 for classifiers). Post-training
  factorization of a dense-trained matrix loses accuracy that training in Kronecker form
  (KPRNN-style) keeps: the report says so.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

import numpy as np

from tinyc.errors import TinycError
from tinyc.ir.graph import Graph, Node
from tinyc.ir.tensor import Tensor

WARNING = (
    "post-training Kronecker factorization approximates matrices that were trained dense: "
    "it loses accuracy that training in Kronecker form (KPRNN-style, factors learned from "
    "scratch) keeps; check the SQNR / agreement below on your own task data"
)
MAX_FRACTION = 0.5  # a factorization must at least halve the layer's weights
SCORE_SLACK = 0.9  # shapes within 10 % of the best captured energy per parameter


@dataclass
class Spec:
    default: int | None = None
    rules: list[tuple[str, int]] = field(default_factory=list)

    def rank(self, name: str) -> int:
        r = self.default or 0
        for pattern, rank in self.rules:
            if fnmatch.fnmatchcase(name, pattern):
                r = rank
        return r


def parse_spec(text: str) -> Spec:
    """``2`` or ``'glob=rank,glob=rank'`` (a bare rank among the rules is the default)."""
    spec = Spec()
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        pattern, _, value = part.rpartition("=")
        try:
            rank = int(value)
        except ValueError:
            raise TinycError(f"--kronecker: {part!r} is not RANK or GLOB=RANK") from None
        if rank < 0:
            raise TinycError(f"--kronecker: rank {rank} must be 0 or more")
        if pattern:
            spec.rules.append((pattern, rank))
        else:
            spec.default = rank
    if spec.default is None and not spec.rules:
        raise TinycError("--kronecker: empty spec")
    return spec


# -- the factorization --------------------------------------------------------------------


def rearrange(w: np.ndarray, p: int, q: int) -> np.ndarray:
    """Van Loan's R(W): [p*q, s*t], row i*q + j = block (i, j) of W flattened."""
    m, n = w.shape
    s, t = m // p, n // q
    return w.reshape(p, s, q, t).transpose(0, 2, 1, 3).reshape(p * q, s * t)


def nearest_kronecker(w: np.ndarray, p: int, q: int, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """The factors A [R, p, q], B [R, s, t] of the nearest sum of ``rank`` Kronecker products."""
    m, n = w.shape
    s, t = m // p, n // q
    u, sig, vt = np.linalg.svd(rearrange(np.asarray(w, np.float64), p, q), full_matrices=False)
    r = min(rank, sig.size)
    root = np.sqrt(sig[:r])
    a = (u[:, :r] * root).T.reshape(r, p, q)
    b = (vt[:r] * root[:, None]).reshape(r, s, t)
    if r < rank:  # more terms than R(W) has: zeros
        a = np.concatenate([a, np.zeros((rank - r, p, q))])
        b = np.concatenate([b, np.zeros((rank - r, s, t))])
    return a, b


@dataclass
class Choice:
    p: int
    q: int
    s: int
    t: int
    rank: int
    rel_error: float  # ||W - W_R||_F / ||W||_F
    params: int
    macs: int  # per row

    @property
    def shapes(self) -> str:
        return f"{self.p}x{self.q} (x) {self.s}x{self.t}"


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def candidates(w: np.ndarray, rank: int) -> list[Choice]:
    """Every compressing factor shape of ``w`` with its rank-``rank`` error."""
    m, n = w.shape
    w = np.asarray(w, np.float64)
    norm2 = float((w**2).sum()) or 1.0
    out = []
    for p in _divisors(m):
        for q in _divisors(n):
            s, t = m // p, n // q
            params = rank * (p * q + s * t)
            macs = rank * (q * t * s + p * q * s)
            if params > MAX_FRACTION * m * n or macs > m * n:
                continue
            r = rearrange(w, p, q)
            gram = r @ r.T if r.shape[0] <= r.shape[1] else r.T @ r
            top = np.linalg.eigvalsh(gram)[-rank:]  # the largest sigma^2
            err2 = max(norm2 - float(top.clip(min=0).sum()), 0.0)
            out.append(Choice(p, q, s, t, rank, np.sqrt(err2 / norm2), params, macs))
    return out


def choose(w: np.ndarray, rank: int) -> Choice | None:
    cands = candidates(w, rank)
    if not cands:
        return None
    score = {id(c): (1.0 - c.rel_error**2) / c.params for c in cands}
    best = max(score.values())
    near = [c for c in cands if score[id(c)] >= SCORE_SLACK * best]
    return min(near, key=lambda c: (c.macs, c.rel_error))


# -- the pass -----------------------------------------------------------------------------


@dataclass
class LayerResult:
    node: str
    shape: tuple[int, int]
    choice: Choice

    @property
    def dense_params(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def compression(self) -> float:
        return self.dense_params / self.choice.params


@dataclass
class KroneckerReport:
    layers: list[LayerResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    output_sqnr: dict[str, float | None] = field(default_factory=dict)
    agreement: dict[str, float] = field(default_factory=dict)
    samples: int = 0
    warnings: list[str] = field(default_factory=lambda: [WARNING])

    def format_text(self) -> str:
        from tinyc.table import render

        rows = [
            [
                r.node,
                f"{r.shape[0]}x{r.shape[1]}",
                str(r.choice.rank),
                r.choice.shapes,
                f"{r.dense_params:,}",
                f"{r.choice.params:,}",
                f"{r.compression:.1f}x",
                f"{100 * r.choice.rel_error:.1f}%",
                f"{r.dense_params:,} -> {r.choice.macs:,}",
            ]
            for r in self.layers
        ]
        lines = [
            "Kronecker factorization (nearest sum of R Kronecker products, Van Loan-Pitsianis)"
        ]
        lines += [f"WARNING: {w}" for w in self.warnings]
        head = ["node", "matrix", "R", "factors", "params", "kron", "compr.", "W error", "MACs/row"]
        lines.append(render(head, rows, right=set(range(4, 9))))
        dense = sum(r.dense_params for r in self.layers)
        kron = sum(r.choice.params for r in self.layers)
        if self.layers:
            lines.append(f"factored layers: {dense:,} -> {kron:,} weights ({dense / kron:.1f}x)")
        for name, v in self.output_sqnr.items():
            sq = "exact" if v is None else f"{v:.1f} dB"
            agree = (
                f", top-1 agreement {100 * self.agreement[name]:.1f}%"
                if name in self.agreement
                else ""
            )
            lines.append(
                f"output {name!r} vs the dense float model on {self.samples} calibration "
                f"samples: SQNR {sq}{agree}"
            )
        lines += [f"left dense: {s}" for s in self.skipped]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "layers": [
                {
                    "node": r.node,
                    "matrix": list(r.shape),
                    "rank": r.choice.rank,
                    "a": [r.choice.p, r.choice.q],
                    "b": [r.choice.s, r.choice.t],
                    "dense_params": r.dense_params,
                    "params": r.choice.params,
                    "compression": r.compression,
                    "relative_error": r.choice.rel_error,
                    "macs_per_row": r.choice.macs,
                }
                for r in self.layers
            ],
            "skipped": self.skipped,
            "output_sqnr_db": self.output_sqnr,
            "agreement": self.agreement,
            "samples": self.samples,
            "warnings": self.warnings,
        }


def _eligible(g: Graph, node: Node) -> str | None:
    """Why ``node`` cannot be factored, or None."""
    if node.op != "FULLY_CONNECTED":
        return f"{node.op} is not a fully-connected layer"
    w = g.inp(node, 1)
    if w is None or w.data is None or w.dtype != "float32" or len(w.shape) != 2:
        return "the weights are not a constant float matrix"
    return None


def factorize(g: Graph, spec: Spec | str) -> tuple[Graph, KroneckerReport]:
    """``g`` (float) with every FULLY_CONNECTED the spec names replaced by KRONECKER_FC.

    An LSTM / GRU layer the spec names is first written out as its cell's ops
    (tinyc.passes.lower_recurrent): its stacked input-side and recurrent gate matrices
    become fully-connected layers shared by every time step, factored once each (the
    factors are stored once and every step's KRONECKER_FC reads them)."""
    from tinyc.passes.lower_recurrent import LOWERABLE, lower_recurrent

    if isinstance(spec, str):
        spec = parse_spec(spec)
    if g.is_quantized or any(t.is_quantized for t in g.tensors.values()):
        raise TinycError("--kronecker factors float models (it runs before quantization)")
    report = KroneckerReport()
    cells = {n.name for n in g.nodes if n.op in LOWERABLE and spec.rank(n.name) > 0}
    out, origin, refused = lower_recurrent(g, cells) if cells else (g.copy(), {}, {})
    report.skipped += [f"{name} ({why}: the fused layer is kept)" for name, why in refused.items()]
    done: dict[str, tuple[str, str, Choice] | None] = {}  # weight tensor -> its factors
    nodes = []
    for node in out.nodes:
        layer, side = origin.get(node.name, (node.name, ""))
        rank = spec.rank(layer)
        why = _eligible(out, node) if rank > 0 else "rank 0"
        if why is not None:
            if rank > 0 and node.op in ("FULLY_CONNECTED", "RNN") and layer not in refused:
                report.skipped.append(f"{node.name} ({why})")
            nodes.append(node)
            continue
        w = out.inp(node, 1)
        assert w is not None and w.data is not None
        label = f"{layer} ({side} matrix)" if side else node.name
        if w.name not in done:
            done[w.name] = _factor(out, w, rank, label, report)
        factors = done[w.name]
        if factors is None:
            nodes.append(node)
            continue
        an, bn, _ = factors
        ins = [node.inputs[0], an, bn]
        if len(node.inputs) > 2 and node.inputs[2]:
            ins.append(node.inputs[2])
        attrs = {k: v for k, v in node.attrs.items() if k in ("activation", "keep_num_dims")}
        nodes.append(Node("KRONECKER_FC", node.name, ins, list(node.outputs), attrs))
    out.nodes = nodes
    out.remove_unused()
    return out, report


def _factor(g: Graph, w: Tensor, rank: int, label: str, report: KroneckerReport
            ) -> tuple[str, str, Choice] | None:  # fmt: skip
    """The factor tensors of matrix ``w`` added to ``g`` (None: no factor shape pays)."""
    assert w.data is not None
    choice = choose(w.data, rank)
    if choice is None:
        report.skipped.append(f"{label} ({w.shape[0]}x{w.shape[1]}: no factor shape "
                              f"at rank {rank} halves its weights)")  # fmt: skip
        return None
    a, b = nearest_kronecker(w.data, choice.p, choice.q, rank)
    an = g.unique_name(f"{w.name}/kron_a")
    g.add_tensor(Tensor(an, a.shape, "float32", a.astype(np.float32)))
    bn = g.unique_name(f"{w.name}/kron_b")
    g.add_tensor(Tensor(bn, b.shape, "float32", b.astype(np.float32)))
    report.layers.append(LayerResult(label, (w.shape[0], w.shape[1]), choice))
    return an, bn, choice


def measure(dense: Graph, factored: Graph, samples: list, report: KroneckerReport) -> None:
    """Output SQNR (and top-1 agreement of classifier outputs) of ``factored`` against
    ``dense`` on ``samples``."""
    from tinyc import interpreter
    from tinyc.quant_report import output_task, sqnr_db

    sig = dict.fromkeys(dense.outputs, 0.0)
    noise = dict.fromkeys(dense.outputs, 0.0)
    agree = dict.fromkeys(dense.outputs, 0)
    for sample in samples:
        ref = interpreter.run(dense, sample)
        got = interpreter.run(factored, sample)
        for name in dense.outputs:
            r, y = ref[name].astype(np.float64), got[name].astype(np.float64)
            sig[name] += float((r**2).sum())
            noise[name] += float(((r - y) ** 2).sum())
            agree[name] += int(np.argmax(r) == np.argmax(y))
    report.samples = len(samples)
    for name in dense.outputs:
        report.output_sqnr[name] = sqnr_db(sig[name], noise[name])
        if output_task(dense, name) == "classifier" and samples:
            report.agreement[name] = agree[name] / len(samples)


def kronecker_pass(g: Graph, spec: str, samples: list) -> tuple[Graph, KroneckerReport]:
    """Factor, then measure on ``samples`` (the calibration data)."""
    factored, report = factorize(g, spec)
    if samples:
        measure(g, factored, samples, report)
    return factored, report


def kronecker_with_data(g: Graph, spec: str, cal=None, log=None) -> tuple[Graph, KroneckerReport]:
    """What ``compile --kronecker`` does: factor, then measure the factored float model
    against the dense one on the calibration samples (the draw quantization makes; seeded
    random inputs when no data is given, and the report says so)."""
    samples: list = []
    path = getattr(cal, "path", None) if cal is not None else None
    if path:
        from tinyc.passes.quantize import draw_samples

        samples, _ = draw_samples(path, g, cal.samples, cal.eval_samples)
    factored, report = factorize(g, spec)
    if not samples:
        from tinyc.modelio import random_inputs

        samples = [random_inputs(g, seed) for seed in range(8)]
        report.warnings.append("no calibration data: SQNR measured on seeded random inputs")
    measure(g, factored, samples, report)
    if log is not None:
        log(f"Kronecker-factored {len(report.layers)} layers")
    return factored, report
