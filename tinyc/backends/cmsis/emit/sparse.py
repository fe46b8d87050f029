"""Sparse weights in the C backend: the compressed encoding of an int8 weight matrix with
zeros (tinyc/runtime/tinyc_sparse.h) and the per-layer choice between the dense kernels of
tinyc_nn.h and the sparse ones.

Sparsity belongs to the constant tensor: any FULLY_CONNECTED or CONV_2D whose weights hold
zeros (pruned by tinyc or elsewhere) is a candidate, and the backend takes the sparse kernel
only when tinyc's cost model (tinyc/data/estimate_cmsis.json, the kernels
``tinyc_spfc_s8`` / ``tinyc_spconv_s8`` calibrated by bench/estimate_calibrate.py) says it
executes fewer instructions than the dense one on the target's core. Below that break-even
sparsity the layer keeps its dense code.

Fully-connected layers have two sparse encodings: per channel (``tinyc_spfc_s8``: 2 bytes
and ~4 instructions per nonzero on ARMv7-M, whatever the pattern) and grouped
(``tinyc_spfcg_s8``: four consecutive channels share their columns, 5 bytes and 9
instructions per column of four weights), which pays when the zeros come in blocks of
channels (``--prune-block 4``). The cost model picks the cheaper of the three kernels.
Recurrent gate matrices have the same two encodings (tinyc_rnn.h's per-row and grouped gate
loops), chosen per matrix the same way (``use_sparse_gates``).

``TINYC_SPARSE`` (environment): ``auto`` (default, the cost model), ``off`` (always dense),
``on`` (sparse whenever at least a quarter of the weights are zeros: calibration and
benchmarks; the grouped encoding for fully-connected layers whose zeros are whole columns of
their groups).
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass

import numpy as np

from tinyc.ir.graph import Graph, Node

#: columns per segment (a uint8 count per channel and segment, uint8 column offsets)
SEG = 255
#: the core whose cost model decides for each kernel target of the C backend
REFERENCE_CORE = {"plain": "cortex-m0plus", "dsp": "cortex-m7", "mve": "cortex-m55+mve"}
#: TINYC_SPARSE=on takes the sparse kernels for layers at most this dense
FORCE_DENSITY = 0.75
#: fewer zeros than this never pay (measured break-evens: 0.37 and up, bench/sparsity.py)
MIN_ZEROS = 0.3
#: sparse kernel -> the dense kernel it replaces
KERNELS = {
    "tinyc_spfc_s8": "tinyc_fc_s8",
    "tinyc_spfcg_s8": "tinyc_fc_s8",
    "tinyc_spconv_s8": "tinyc_conv_s8",
}
#: output channels per group of the grouped encoding (TINYC_SP_GROUP)
GROUP = 4


@dataclass(frozen=True)
class SparseWeights:
    """Per channel (encode): counts per (channel, segment), a column and a weight per
    nonzero. Grouped (encode_grouped): counts per (group, segment), a column and GROUP
    weights per column that some channel of the group uses."""

    cnt: np.ndarray  # uint8 [rows * nseg]
    idx: np.ndarray  # uint8 [entries]
    val: np.ndarray  # int8 [entries] or [entries * GROUP]
    per_seg: np.ndarray  # int64 [rows, nseg]: entries per channel (group) and segment

    @property
    def nbytes(self) -> int:
        return self.cnt.nbytes + self.idx.nbytes + self.val.nbytes


def encode(w2d: np.ndarray) -> SparseWeights:
    """[out_c, k] int8 -> counts per (channel, segment), column offsets, values."""
    w2d = np.asarray(w2d)
    out_c, k = w2d.shape
    nseg = max(1, -(-k // SEG))
    padded = np.zeros((out_c, nseg * SEG), np.int8)
    padded[:, :k] = w2d
    seg = padded.reshape(out_c, nseg, SEG)
    nz = seg != 0
    per_seg = nz.sum(axis=2).astype(np.int64)
    # row-major over (channel, segment, column): the order the kernel walks
    c, s, col = np.nonzero(nz)
    return SparseWeights(
        per_seg.reshape(-1).astype(np.uint8),
        col.astype(np.uint8),
        seg[c, s, col].astype(np.int8),
        per_seg,
    )


def encode_grouped(w2d: np.ndarray) -> SparseWeights:
    """[out_c, k] int8 -> per group of GROUP channels (the last padded with zero channels)
    and segment: the columns some channel of the group uses, with the group's weights."""
    w2d = np.asarray(w2d)
    out_c, k = w2d.shape
    ng = -(-out_c // GROUP)
    nseg = max(1, -(-k // SEG))
    padded = np.zeros((ng * GROUP, nseg * SEG), np.int8)
    padded[:out_c, :k] = w2d
    seg = padded.reshape(ng, GROUP, nseg, SEG)
    used = (seg != 0).any(axis=1)  # [ng, nseg, SEG]
    per_seg = used.sum(axis=2).astype(np.int64)
    gi, s, col = np.nonzero(used)
    vals = seg[gi, :, s, col]  # [entries, GROUP]
    return SparseWeights(
        per_seg.reshape(-1).astype(np.uint8),
        col.astype(np.uint8),
        vals.reshape(-1).astype(np.int8),
        per_seg,
    )


def decode_grouped(sw: SparseWeights, out_c: int, k: int) -> np.ndarray:
    """The dense [out_c, k] matrix back from the grouped encoding (tests)."""
    ng, nseg = sw.per_seg.shape
    out = np.zeros((ng * GROUP, nseg * SEG), np.int8)
    vals = sw.val.reshape(-1, GROUP)
    pos = 0
    for gi in range(ng):
        for s in range(nseg):
            n = int(sw.per_seg[gi, s])
            cols = s * SEG + sw.idx[pos : pos + n].astype(np.int64)
            out[gi * GROUP : (gi + 1) * GROUP, cols] = vals[pos : pos + n].T
            pos += n
    return out[:out_c, :k]


def grouped_density(w2d: np.ndarray) -> float:
    """The fraction of (group, column) slots the grouped encoding stores."""
    return float(encode_grouped(w2d).idx.size) / max(1, -(-w2d.shape[0] // GROUP) * w2d.shape[1])


def _block_pruned(w2d: np.ndarray, live: np.ndarray | None = None) -> bool:
    """Zeros mostly in whole columns of the channel groups (the grouped encoding stores at
    most 5 % zeros in ``live`` rows, default all: a stacked gate matrix's padding rows are
    not), at most FORCE_DENSITY of the slots kept (TINYC_SPARSE=on)."""
    out_c = w2d.shape[0]
    live = np.ones(out_c, bool) if live is None else live
    sw = encode_grouped(w2d)
    ng = sw.per_seg.shape[0]
    slots = ng * w2d.shape[1]
    # every stored column repeats its group's rows: which of its GROUP values are live rows
    rows_live = np.zeros(ng * GROUP, bool)
    rows_live[:out_c] = live
    group_of = np.repeat(np.arange(ng), sw.per_seg.sum(axis=1))
    held = rows_live.reshape(ng, GROUP)[group_of]  # [entries, GROUP]
    stored_zeros = int(np.count_nonzero((sw.val.reshape(-1, GROUP) == 0) & held))
    return stored_zeros <= 0.05 * held.sum() and sw.idx.size <= FORCE_DENSITY * slots


def decode(sw: SparseWeights, out_c: int, k: int) -> np.ndarray:
    """The dense [out_c, k] matrix back (tests)."""
    nseg = sw.per_seg.shape[1]
    out = np.zeros((out_c, nseg * SEG), np.int8)
    pos = 0
    for c in range(out_c):
        for s in range(nseg):
            n = int(sw.per_seg[c, s])
            out[c, s * SEG + sw.idx[pos : pos + n].astype(np.int64)] = sw.val[pos : pos + n]
            pos += n
    return out[:, :k]


def policy() -> str:
    p = os.environ.get("TINYC_SPARSE", "auto").strip().lower()
    return p if p in ("auto", "on", "off") else "auto"


def _w2d(node: Node, g: Graph) -> np.ndarray | None:
    w = g.inp(node, 1)
    if w is None or w.data is None or w.dtype != "int8":
        return None
    if node.op == "FULLY_CONNECTED":
        return w.data.reshape(w.shape[0], -1)
    return w.data.reshape(w.shape[0], -1)  # CONV_2D OHWI (one group)


def sparse_kernel(node: Node) -> str | None:
    return {"FULLY_CONNECTED": "tinyc_spfc_s8", "CONV_2D": "tinyc_spconv_s8"}.get(node.op)


def candidate(node: Node, g: Graph) -> bool:
    """A layer the sparse kernels can run: int8 weights with at least one zero, an
    ordinary (one-group) convolution, int8 activations."""
    if node.op not in ("FULLY_CONNECTED", "CONV_2D"):
        return False
    w2d = _w2d(node, g)
    if w2d is None or w2d.size == 0 or np.count_nonzero(w2d) == w2d.size:
        return False
    x, y = g.inp(node, 0), g.out(node)
    if x is None or x.dtype != "int8" or y.dtype != "int8":
        return False
    if node.op == "CONV_2D":
        w = g.inp(node, 1)
        assert w is not None
        if x.shape[3] != w.shape[3]:  # grouped
            return False
    return True


@functools.cache
def _calibration(core: str):
    from tinyc.estimate.calibration import CoreCalibration, load_data

    cores = load_data()["cores"]
    if core not in cores:
        return None
    return CoreCalibration(core, cores[core])


def layer_costs(node: Node, g: Graph, target: str, core: str | None = None,
                kernel: str | None = None) -> tuple[float, float] | None:  # fmt: skip
    """(dense, sparse) instructions of the layer on ``core`` (default: the target's
    reference core) by the cost model, with ``kernel`` (default: the per-channel sparse
    kernel of the op) as the sparse one; None when it is not calibrated."""
    from tinyc.estimate.features import dense_features, node_features

    cal = _calibration(core or REFERENCE_CORE[target])
    kernel = kernel or sparse_kernel(node)
    if cal is None or kernel is None:
        return None
    sp_cal, d_cal = cal.kernel(kernel), cal.kernel(KERNELS[kernel])
    if sp_cal is None or d_cal is None:
        return None
    t = cal.target
    fs = node_features(kernel, node, g, 1, t)
    fd = dense_features(node, g, t)

    def dot(coef, feats):
        return sum(coef.get(k, 0.0) * v for k, v in feats.items())

    return dot(d_cal["instructions"], fd.insn), dot(sp_cal["instructions"], fs.insn)


#: per-node decisions, keyed by the weights' identity and the target (a graph is emitted
#: several times: planning each fusion choice, then the code)
_CHOICES: dict[tuple[str, str, str, str], str | None] = {}


def sparse_choice(node: Node, g: Graph, target: str) -> str | None:
    """The sparse kernel the backend emits for ``node`` on ``target`` (None: dense)."""
    mode = policy()
    if mode == "off" or not candidate(node, g):
        return None
    w2d = _w2d(node, g)
    assert w2d is not None
    kernel = sparse_kernel(node)
    grouped_ok = node.op == "FULLY_CONNECTED"
    if mode == "on":  # (random dense weights hold a few zeros by chance: not those)
        if grouped_ok and _block_pruned(w2d):
            return "tinyc_spfcg_s8"
        return kernel if np.count_nonzero(w2d) <= FORCE_DENSITY * w2d.size else None
    if np.count_nonzero(w2d) > (1 - MIN_ZEROS) * w2d.size:
        return None  # below every measured break-even: not worth costing
    w, x = g.inp(node, 1), g.inp(node, 0)
    assert w is not None and w.data is not None and x is not None
    digest = hashlib.sha1(np.ascontiguousarray(w.data).tobytes()).hexdigest()
    key = (digest, node.name, target, str(x.shape))
    if key not in _CHOICES:
        best, best_cost = None, None
        kernels = [kernel]
        if grouped_ok and grouped_density(w2d) <= 1 - MIN_ZEROS:
            kernels.append("tinyc_spfcg_s8")
        for k in kernels:
            costs = layer_costs(node, g, target, kernel=k)
            if costs is None or costs[1] >= costs[0]:
                continue
            if best_cost is None or costs[1] < best_cost:
                best, best_cost = k, costs[1]
        _CHOICES[key] = best
    return _CHOICES[key]


def use_sparse(node: Node, g: Graph, target: str) -> bool:
    """Whether the backend emits a sparse kernel for ``node`` on ``target``."""
    return sparse_choice(node, g, target) is not None


def summary_note(g: Graph, target: str) -> str | None:
    """One line on the layers that got sparse kernels on ``target`` (None: none did)."""
    kinds: dict[str, int] = {}
    dense_b = sparse_b = 0
    for n in g.nodes:
        if n.op in RECURRENT_KERNELS:
            sides = use_sparse_gates(n, g, target)
            mats = gate_matrices(n, g)
            if mats is None or sides == (None, None):
                continue
            for kind, m in zip(sides, mats, strict=True):
                if kind is not None:
                    name = f"{kind} gate matrix"
                    kinds[name] = kinds.get(name, 0) + 1
                    dense_b += m.size
                    sparse_b += (encode_grouped(m) if kind == GROUPED else encode(m)).nbytes
            continue
        choice = sparse_choice(n, g, target) if n.op in ("FULLY_CONNECTED", "CONV_2D") else None
        if choice is None:
            continue
        kinds[choice] = kinds.get(choice, 0) + 1
        w = g.inp(n, 1)
        assert w is not None
        dense_b += w.size
        sparse_b += sparse_weight_bytes(n, g, target)
    if not kinds:
        return None
    names = {"tinyc_spfc_s8": "per-channel FC", "tinyc_spfcg_s8": "grouped FC",
             "tinyc_spconv_s8": "per-channel conv", f"{ROW} gate matrix": "per-row gate matrix",
             f"{GROUPED} gate matrix": "grouped gate matrix"}  # fmt: skip

    def label(k: str, c: int) -> str:
        plural = c > 1 and k.endswith("matrix")
        return names[k][: -len("matrix")] + "matrices" if plural else names[k]

    parts = ", ".join(f"{c} {label(k, c)}" for k, c in sorted(kinds.items()))
    return (
        f"sparse kernels on {sum(kinds.values())} weight matrices ({parts}): their weights take "
        f"{sparse_b:,} B instead of {dense_b:,} B dense"
    )


def sparse_weight_bytes(node: Node, g: Graph, target: str) -> int:
    """Bytes of the layer's weights in the encoding its sparse kernel on ``target`` reads."""
    w2d = _w2d(node, g)
    assert w2d is not None
    grouped = sparse_choice(node, g, target) == "tinyc_spfcg_s8"
    return (encode_grouped(w2d) if grouped else encode(w2d)).nbytes


def emit_arrays(c, tag: str, w2d: np.ndarray, grouped: bool = False) -> tuple[str, str, str]:
    """The three constant arrays of the encoding; returns their C symbols."""
    sw = encode_grouped(w2d) if grouped else encode(w2d)
    cnt = c.const_array(f"wc_{tag}", sw.cnt, "uint8_t")
    idx = c.const_array(f"wi_{tag}", sw.idx, "uint8_t")
    val = c.const_array(f"wv_{tag}", sw.val, "int8_t")
    return cnt, idx, val


#: rows per block of the sparse kernels (TINYC_SP_ROWS)
SP_ROWS = {"plain": 2, "dsp": 4, "mve": 4}


def conv_scratch(k: int, direct: bool, target: str) -> int:
    return 0 if direct else SP_ROWS[target] * k


# ---- recurrent gate matrices (tinyc_rnn.h: tinyc_rnn_spgates, tinyc_rnn_spxblock) ---------

RECURRENT_KERNELS = {"LSTM": "tinyc_lstm_s8", "GRU": "tinyc_gru_s8", "RNN": "tinyc_rnn_s8"}


def gate_matrices(node: Node, g: Graph) -> tuple[np.ndarray, np.ndarray] | None:
    """The stacked input-side and recurrent-side int8 gate matrices of a quantized LSTM /
    GRU / RNN as the backend lays them out (None: not a quantized recurrent layer)."""
    from tinyc.backends.cmsis.emit.recurrent import gates_of, stacked
    from tinyc.ir.ops import get_op

    if node.op not in RECURRENT_KERNELS or not get_op(node.op).quantized(node, g):
        return None
    gates, _, _ = gates_of(node, g)
    if any(gt.w.dtype != np.int8 or gt.r.dtype != np.int8 for gt in gates):
        return None
    return stacked([gt.w for gt in gates]), stacked([gt.r for gt in gates])


#: how a recurrent gate matrix is stored: dense, per row, or grouped (four rows per group)
GateKind = str | None
ROW, GROUPED = "row", "grouped"


def _gate_rows_live(node: Node, g: Graph) -> np.ndarray:
    """Which rows of the stacked gate matrices hold a unit (the others pad gates to 4)."""
    from tinyc.ir.ops import get_op

    op = get_op(node.op)
    hidden = op.dims(node, g).hidden
    h4 = -(-hidden // 4) * 4
    return np.tile(np.arange(h4) < hidden, len(op.gates))


def recurrent_costs(node: Node, g: Graph, target: str, sides: tuple[GateKind, GateKind],
                    core: str | None = None) -> float | None:  # fmt: skip
    """Instructions of the recurrent layer with its (input-side, recurrent-side) gate
    matrices stored as ``sides`` say (None dense, ROW, GROUPED), by the cost model (the
    per-row loops costed with tinyc_spfc_s8's coefficients, the grouped ones with their
    own); None if uncalibrated."""
    from tinyc.estimate.features import recurrent

    cal = _calibration(core or REFERENCE_CORE[target])
    if cal is None:
        return None
    own = cal.kernel("tinyc_rnn.h")
    if own is None:
        return None
    f = recurrent(node, g, 1, cal.target, sides)

    def dot(coef, feats):
        return sum(coef.get(k, 0.0) * v for k, v in feats.items())

    total = dot(own["instructions"], f.insn)
    for kernel, feats in f.borrowed.items():
        coef = cal.kernel(kernel)
        if coef is None:
            return None
        total += dot(coef["instructions"], feats)
    return total


def _gate_kinds(m: np.ndarray) -> list[GateKind]:
    """The sparse encodings worth costing for one stacked gate matrix."""
    kinds: list[GateKind] = []
    if np.count_nonzero(m) <= (1 - MIN_ZEROS) * m.size:
        kinds.append(ROW)
    if grouped_density(m) <= 1 - MIN_ZEROS:
        kinds.append(GROUPED)
    return kinds


def use_sparse_gates(node: Node, g: Graph, target: str) -> tuple[GateKind, GateKind]:
    """How the backend stores a recurrent layer's (input-side, recurrent-side) gate
    matrices on ``target``: None (dense), ROW or GROUPED, each the one the cost model says
    executes fewest instructions (TINYC_SPARSE as for the other layers; ``on`` takes the
    grouped encoding for matrices whose zeros are whole columns of their groups)."""
    mode = policy()
    mats = gate_matrices(node, g) if mode != "off" else None
    if mats is None:
        return None, None
    if mode == "on":
        forced: list[GateKind] = []
        live = _gate_rows_live(node, g)
        for m in mats:
            if _block_pruned(m, live):
                forced.append(GROUPED)
            else:
                forced.append(ROW if np.count_nonzero(m) <= FORCE_DENSITY * m.size else None)
        return forced[0], forced[1]
    options = [_gate_kinds(m) for m in mats]
    if not any(options):
        return None, None
    digest = hashlib.sha1(b"".join(np.ascontiguousarray(m).tobytes() for m in mats)).hexdigest()
    key = (digest, node.name, target, "rnn")
    if key not in _RNN_CHOICES:
        dense = recurrent_costs(node, g, target, (None, None))
        pick: list[GateKind] = [None, None]
        if dense is not None:
            for side in (0, 1):
                best = dense
                for kind in options[side]:
                    sides = (kind, None) if side == 0 else (None, kind)
                    cost = recurrent_costs(node, g, target, sides)
                    if cost is not None and cost < best:
                        pick[side], best = kind, cost
        _RNN_CHOICES[key] = (pick[0], pick[1])
    return _RNN_CHOICES[key]


_RNN_CHOICES: dict[tuple[str, str, str, str], tuple[GateKind, GateKind]] = {}
