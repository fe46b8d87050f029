"""The numerics of tinyc.passes.prune: each weight tensor as a matrix, its layer inputs on
calibration data (H = X^T X), error curves, magnitude masks, and the OBS-style one-shot
reconstruction (mask by saliency w^2 / [H^-1]_jj, survivors and bias re-solved by damped
least squares)."""

from __future__ import annotations

import numpy as np

from tinyc import interpreter
from tinyc.ir.fixedpoint import round_half_away
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import get_op
from tinyc.ir.tensor import Tensor
from tinyc.passes._layers import layer_patches
from tinyc.passes.prune import Unit

DAMP = 0.01  # damping: a fraction of the mean diagonal of H, as SparseGPT


# -- matrices ---------------------------------------------------------------------------------


def real_weights(t: Tensor) -> np.ndarray:
    assert t.data is not None
    if t.dtype == "int8":
        assert t.quant is not None
        return t.quant.dequantize(t.data).astype(np.float64)
    return t.data.astype(np.float64)


def to_matrix(u: Unit, w: np.ndarray) -> np.ndarray:
    """(groups, rows per group, columns): the rows of one group see the same inputs."""
    if u.kind == "dw":
        c = w.shape[3]
        return w.reshape(-1, c).T.reshape(c, 1, -1)
    m = w.reshape(w.shape[0], -1)
    return m.reshape(u.groups, m.shape[0] // u.groups, m.shape[1])


def from_matrix(u: Unit, m: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if u.kind == "dw":
        return m.reshape(shape[3], -1).T.reshape(shape)
    return m.reshape(shape)


def lowest_mask(score3: np.ndarray, count: int, block: int = 1) -> np.ndarray:
    """True at the ``count`` lowest scores of a (groups, rows, columns) array; with
    ``block`` > 1, whole blocks of ``block`` consecutive rows of one column go together,
    lowest summed score first (a block of rows left at the end of a group counts its own
    rows), until at least ``count`` entries are taken."""
    g, r, c = score3.shape
    if block <= 1 or r <= 1:
        flat = score3.reshape(-1)
        mask = np.zeros(flat.size, bool)
        mask[np.argsort(flat, kind="stable")[:count]] = True
        return mask.reshape(score3.shape)
    nb = -(-r // block)
    padded = np.zeros((g, nb * block, c))
    padded[:, :r] = score3
    sums = padded.reshape(g, nb, block, c).sum(axis=2).reshape(-1)
    sizes = np.full((g, nb, c), block)
    sizes[:, -1, :] = r - (nb - 1) * block
    order = np.argsort(sums, kind="stable")
    taken = int(np.searchsorted(np.cumsum(sizes.reshape(-1)[order]), count)) + 1
    chosen = np.zeros(sums.size, bool)
    chosen[order[: min(taken, sums.size)] if count > 0 else []] = True
    rows = np.repeat(chosen.reshape(g, nb, c), block, axis=1)[:, :r]
    return rows & np.isfinite(score3)


def magnitude_prune(w: np.ndarray, count: int, block: int = 1) -> np.ndarray:
    """``w`` with its ``count`` smallest-magnitude entries set to zero (exactly ``count``
    zeros, or the zeros it already had when there were more); with ``block`` > 1 (rows =
    output channels or units), in blocks of that many rows."""
    out = w.copy()
    if count <= 0:
        return out
    if block > 1:
        m = np.abs(w.reshape(1, w.shape[0], -1)).astype(np.float64) ** 2
        out[lowest_mask(m, count, block).reshape(w.shape)] = 0
        return out
    order = np.argsort(np.abs(w.reshape(-1)).astype(np.float64), kind="stable")
    out.reshape(-1)[order[:count]] = 0
    return out


def _bias_name(u: Unit, g: Graph) -> str | None:
    if not u.biased or len(u.node.inputs) < 3 or not u.node.inputs[2]:
        return None
    t = g.tensors[u.node.inputs[2]]
    return t.name if t.is_const else None


def _real(g: Graph, name: str, v: np.ndarray) -> np.ndarray:
    t = g.tensors[name]
    if t.is_quantized and t.quant is not None and t.dtype != "float32":
        return t.quant.dequantize(v).astype(np.float64)
    return np.asarray(v, np.float64)


def unit_inputs(
    g: Graph, u: Unit, xs: list[np.ndarray | None], seq: np.ndarray | None
) -> np.ndarray | None:
    """The unit's layer inputs as (groups, samples, columns), real values; ``seq``: the
    recurrent node's sequence output (for its recurrent weights). None: no data (an LSTM
    projection)."""
    n = u.node
    x = None if xs[0] is None else _real(g, n.inputs[0], xs[0])
    if u.kind == "fc":
        assert x is not None
        w = g.tensors[u.tensor]
        return x.reshape(1, -1, w.shape[1])
    if u.kind in ("conv", "dw"):
        assert x is not None
        cols, k = layer_patches(n, g, x)
        if u.kind == "dw":
            c = cols.shape[-1]
            return cols.reshape(-1, k[0] * k[1], c).transpose(2, 0, 1)
        cg = g.tensors[u.tensor].shape[3]
        cols = cols.reshape(-1, k[0] * k[1], u.groups, cg).transpose(2, 0, 1, 3)
        return cols.reshape(u.groups, cols.shape[1], -1)
    if u.kind == "rec_x":
        assert x is not None
        return x.reshape(1, -1, x.shape[-1])
    if u.kind == "rec_h":
        assert seq is not None
        from tinyc.ir.ops.base import attr

        op = get_op(n.op)
        h = _real(g, n.outputs[0], seq)
        if attr(n, "time_major"):
            h = h.transpose(1, 0, 2)
        slot = op.state_slots[0]
        h0 = (
            _real(g, n.inputs[slot], xs[slot]).reshape(h.shape[0], 1, h.shape[2])
            if slot < len(xs) and xs[slot] is not None
            else np.zeros((h.shape[0], 1, h.shape[2]))
        )
        rest = h[:, 1:] if attr(n, "reverse") else h[:, :-1]
        return np.concatenate([h0, rest], axis=1).reshape(1, -1, h.shape[2])
    return None


def _augment(x: np.ndarray) -> np.ndarray:
    return np.concatenate([x, np.ones((*x.shape[:2], 1))], axis=2)


def _gram(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.matmul(a.transpose(0, 2, 1), b)


def _inputs(g: Graph, sample: list[np.ndarray]) -> list[np.ndarray]:
    if g.is_quantized:
        from tinyc.quant_report import int8_inputs

        return int8_inputs(g, sample)
    return sample


GAIN_SAMPLES = 8


def collect_stats(
    g: Graph, units: list[Unit], samples: list, kept: list | None = None
) -> dict[str, np.ndarray]:
    """H = X^T X of every unit's layer inputs over ``samples`` (the unpruned graph),
    augmented with a constant column where the layer has a bias; the values of every
    tensor on the first GAIN_SAMPLES samples are appended to ``kept``."""
    stats: dict[str, np.ndarray] = {}
    for si, sample in enumerate(samples):
        values = interpreter.run(g, _inputs(g, sample), keep_all=True)
        if kept is not None and si < GAIN_SAMPLES:
            kept.append(values)
        for u in units:
            xs = [values[i] if i else None for i in u.node.inputs]
            x = unit_inputs(g, u, xs, values.get(u.node.outputs[0]))
            if x is None:
                continue
            if _bias_name(u, g):
                x = _augment(x)
            h = _gram(x, x)
            stats[u.tensor] = stats[u.tensor] + h if u.tensor in stats else h
    return stats


# -- masks and least squares --------------------------------------------------------------


def _damped(h: np.ndarray) -> np.ndarray:
    diag = np.diagonal(h, axis1=1, axis2=2)
    lam = DAMP * diag.mean(axis=1) + 1e-12
    return h + lam[:, None, None] * np.eye(h.shape[1])[None]


def saliency_mask(w3: np.ndarray, hinv: np.ndarray, count: int, biased: bool,
                  block: int = 1) -> np.ndarray:  # fmt: skip
    """True where a weight goes: the ``count`` lowest OBS saliencies w^2 / [H^-1]_jj (the
    bias column, last when ``biased``, never goes), in blocks of ``block`` rows."""
    diag = np.diagonal(hinv, axis1=1, axis2=2)[:, None, :]
    sal = w3**2 / np.maximum(diag, 1e-30)
    if biased:
        sal[:, :, -1] = np.inf
    return lowest_mask(sal, count, block)


EXACT_BUDGET = 2e8  # flops of row-by-row exact solves above which the OBS sweep is used


def obs_sweep(
    hinv: np.ndarray, rhs: np.ndarray, pruned: np.ndarray, u: np.ndarray | None = None
) -> np.ndarray:
    """SparseGPT's column sweep with a fixed mask: from the dense least-squares weights,
    zero column after column, each zeroed weight's error compensated by the columns after
    it through the Cholesky factor of H^-1 (O(rows x cols^2), vectorised over rows)."""
    if u is None:
        u = np.linalg.cholesky(hinv).transpose(0, 2, 1)  # upper: H^-1 = U^T U
    w = np.matmul(rhs, hinv)
    for j in range(w.shape[2]):
        col = w[:, :, j]
        err = np.where(pruned[:, :, j], col, 0.0) / u[:, j, j][:, None]
        if np.any(err):
            w[:, :, j:] -= err[:, :, None] * u[:, None, j, j:]
        w[:, :, j] = np.where(pruned[:, :, j], 0.0, w[:, :, j])
    return w


def solve_masked(
    hd: np.ndarray, hinv: np.ndarray, rhs: np.ndarray, pruned: np.ndarray, exact: bool
) -> np.ndarray:
    """The surviving weights re-fit: exactly (row by row) when ``exact`` and affordable,
    else by the OBS sweep."""
    kept = (~pruned).sum(axis=2).astype(np.float64)
    if exact and float(np.sum(kept**3)) / 3 <= EXACT_BUDGET:
        return masked_lstsq(hd, rhs, pruned)
    return obs_sweep(hinv, rhs, pruned)


def masked_lstsq(hd: np.ndarray, rhs: np.ndarray, pruned: np.ndarray) -> np.ndarray:
    """Per row: minimise w H w^T - 2 w rhs^T over the surviving entries (the rest zero)."""
    out = np.zeros_like(rhs)
    for gi in range(rhs.shape[0]):
        h = hd[gi]
        full = ~pruned[gi]
        if full.all():
            out[gi] = np.linalg.solve(h, rhs[gi].T).T
            continue
        for r in range(rhs.shape[1]):
            idx = np.flatnonzero(full[r])
            if idx.size:
                out[gi, r, idx] = np.linalg.solve(h[np.ix_(idx, idx)], rhs[gi, r, idx])
    return out


def _quad(d: np.ndarray, h: np.ndarray) -> float:
    return float(np.sum(np.matmul(d, h) * d))


def _unit_matrix(g: Graph, u: Unit, with_bias: bool) -> np.ndarray:
    w3 = to_matrix(u, real_weights(g.tensors[u.tensor]))
    if with_bias:
        b = _bias_name(u, g)
        assert b is not None
        bias = real_bias(g, b, u)
        w3 = np.concatenate([w3, bias.reshape(w3.shape[0], w3.shape[1], 1)], axis=2)
    return w3


def real_bias(g: Graph, name: str, u: Unit) -> np.ndarray:
    t = g.tensors[name]
    assert t.data is not None
    if t.dtype == "float32":
        return t.data.astype(np.float64).reshape(-1)
    assert t.quant is not None
    return (t.data.astype(np.float64) * t.quant.scale.astype(np.float64)).reshape(-1)


def output_error(g: Graph, kept: list[dict], u: Unit, w: np.ndarray, extra: dict) -> float:
    """Noise over signal of the graph's outputs when the unit's weights are ``w`` (and
    the constants in ``extra``), on the kept samples: only the layers from the unit on
    are re-run."""
    k = next(i for i, n in enumerate(g.nodes) if n is u.node)
    sig = noise = 0.0
    for vals in kept:
        v = dict(vals)
        v.update({t.name: np.array(vals[t.name]) for t in g.states()})
        v[u.tensor] = w
        v.update(extra)
        for node in g.nodes[k:]:
            ys = get_op(node.op).evaluate(node, g, [v[i] if i else None for i in node.inputs])
            v.update((name, y) for name, y in zip(node.outputs, ys, strict=True) if name)
        for o in g.outputs:
            ref, got = _real(g, o, vals[o]), _real(g, o, v[o])
            sig += float(np.sum(ref * ref))
            noise += float(np.sum((ref - got) ** 2))
    return noise / sig if sig > 0 else 0.0


def error_curve(
    g: Graph,
    u: Unit,
    h: np.ndarray | None,
    method: str,
    grid: tuple[float, ...],
    kept: list | None = None,
    ref_level: float = 0.5,
) -> list[tuple[float, float]]:
    """(sparsity, error) of the unit pruned alone at each grid level: the relative error
    of the layer's output (from H), scaled by the layer's gain to the model's outputs,
    measured at ``ref_level`` on the ``kept`` samples when given."""
    t = g.tensors[u.tensor]
    biased = h is not None and h.shape[1] == to_matrix(u, np.zeros(t.shape)).shape[2] + 1
    w3 = _unit_matrix(g, u, biased)
    if h is None:
        h = np.broadcast_to(np.eye(w3.shape[2]), (w3.shape[0], w3.shape[2], w3.shape[2]))
    signal = _quad(w3, h)
    hd = hinv = chol = None
    if method == "reconstruction":
        hd = _damped(np.asarray(h))
        hinv = np.linalg.inv(hd)
        chol = np.linalg.cholesky(hinv).transpose(0, 2, 1)
        rhs = np.matmul(w3, h)
    pts = []
    gain = 1.0
    for s in grid:
        count = int(np.floor(s * t.size + 0.5))
        if count == 0:
            pts.append((s, 0.0))
            continue
        if method == "reconstruction":
            assert hinv is not None
            mask = saliency_mask(w3, hinv, count, biased, u.block)
            new = obs_sweep(hinv, rhs, mask, chol)
        else:
            real = real_weights(t)
            new = to_matrix(u, magnitude_prune(real, count, u.block))
            if biased:
                new = np.concatenate([new, w3[:, :, -1:]], axis=2)
        e = _quad(new - w3, np.asarray(h)) / signal if signal > 0 else 0.0
        if kept and abs(s - ref_level) < 1e-9 and e > 0:
            gain = output_error(g, kept, u, *_stored(g, u, new, biased)) / e
        pts.append((s, e))
    return [(s, gain * e) for s, e in pts]


def _stored(g: Graph, u: Unit, w3: np.ndarray, biased: bool) -> tuple[np.ndarray, dict]:
    """The weight tensor (and bias) ``w3`` would be written as, without writing it."""
    t = g.tensors[u.tensor]
    data, bdata = t.data, None
    bname = _bias_name(u, g) if biased else None
    if bname:
        bdata = g.tensors[bname].data
    _write(g, u, w3, w3 == 0, biased)
    new_w = g.tensors[u.tensor].data
    extra = {bname: g.tensors[bname].data} if bname else {}
    t.data = data
    if bname:
        g.tensors[bname].data = bdata
    assert new_w is not None
    return new_w, extra


# -- writing weights back ---------------------------------------------------------------


def _write(g: Graph, u: Unit, w3: np.ndarray, pruned: np.ndarray, with_bias: bool) -> None:
    """Store the unit's new real weights (and bias) into ``g``, requantized for int8."""
    t = g.tensors[u.tensor]
    if with_bias:
        bias = w3[:, :, -1].reshape(-1)
        w3, pruned = w3[:, :, :-1], pruned[:, :, :-1]
        b = g.tensors[_bias_name(u, g) or ""]
        if b.dtype == "float32":
            b.data = bias.astype(np.float32).reshape(b.shape)
        else:
            assert b.quant is not None
            v = np.rint(bias / b.quant.scale.astype(np.float64))
            b.data = np.clip(v, -(2**31) + 1, 2**31 - 1).astype(b.data.dtype).reshape(b.shape)
    real = from_matrix(u, w3, t.shape)
    gone = from_matrix(u, pruned, t.shape)
    if t.dtype == "float32":
        t.data = np.where(gone, 0.0, real).astype(np.float32)
        return
    q = t.quant
    assert q is not None
    shape = [1] * real.ndim
    if q.axis is not None:
        shape[q.axis] = -1
    v = np.clip(round_half_away(real / q.scale.astype(np.float64).reshape(shape)), -127, 127)
    v = np.where((v == 0) & ~gone, np.where(real >= 0, 1, -1), v)  # a survivor stays non-zero
    t.data = np.where(gone, 0, v).astype(np.int8)


# -- the sequential reconstruction --------------------------------------------------------


def reconstruct(g: Graph, units: list[Unit], counts: dict[str, int], samples: list) -> list[str]:
    """Prune ``g``'s units in place, layer after layer in graph order: each layer's
    survivors re-fit so that its output on the pruned model's inputs matches the unpruned
    layer on the unpruned inputs."""
    from tinyc.interpreter import State, check_inputs

    notes: list[str] = []
    by_node: dict[str, list[Unit]] = {}
    for u in units:
        by_node.setdefault(u.node.name, []).append(u)
    original = {t.name: t.data for t in g.constants()}
    last_use: dict[str, int] = {}
    for k, n in enumerate(g.nodes):
        for i in n.inputs:
            if i:
                last_use[i] = k
    vo = []
    vp = []
    for sample in samples:
        xs = check_inputs(g, _inputs(g, sample))
        a = {**State(g).values, **dict(zip(g.inputs, xs, strict=True))}
        b = {**State(g).values, **{k: v.copy() for k, v in zip(g.inputs, xs, strict=True)}}
        vo.append(a)
        vp.append(b)

    def args(node: Node, vals: dict, consts: dict) -> list:
        return [None if not i else (consts[i] if i in consts else vals[i]) for i in node.inputs]

    for k, node in enumerate(g.nodes):
        op = get_op(node.op)
        current = {t.name: t.data for t in g.constants()}
        outs_o = [op.evaluate(node, g, args(node, v, original)) for v in vo]
        todo = by_node.get(node.name, [])
        if todo:
            if any(u.kind == "rec_h" for u in todo):
                seq_p = [
                    op.evaluate(
                        node,
                        g,
                        [None if a is None else np.array(a) for a in args(node, v, current)],
                    )[0]
                    for v in vp
                ]
            else:
                seq_p = [None] * len(vp)
            for u in todo:
                _solve_unit(g, u, counts[u.tensor], vo, vp, outs_o, seq_p, original, current, notes)
            current = {t.name: t.data for t in g.constants()}
        for v, ys in zip(vo, outs_o, strict=True):
            v.update((name, y) for name, y in zip(node.outputs, ys, strict=True) if name)
        for v in vp:
            ys = op.evaluate(node, g, args(node, v, current))
            v.update((name, y) for name, y in zip(node.outputs, ys, strict=True) if name)
        dead = [i for i in node.inputs if i and last_use.get(i) == k and i not in original]
        for v in (*vo, *vp):
            for i in dead:
                v.pop(i, None)
    return notes


def _solve_unit(g, u, count, vo, vp, outs_o, seq_p, original, current, notes) -> None:
    t = g.tensors[u.tensor]
    if u.kind == "rec_p":
        t.data = magnitude_prune(t.data, count)
        notes.append(f"{u.label}: an LSTM projection is pruned by magnitude")
        return
    if count <= int(np.count_nonzero(t.data == 0)):
        return  # nothing to prune: the damped re-fit would only shrink the weights
    biased = _bias_name(u, g) is not None
    node = u.node
    h = c = None
    for v_o, v_p, ys, sp in zip(vo, vp, outs_o, seq_p, strict=True):
        xo = unit_inputs(
            g,
            u,
            [None if not i else (original[i] if i in original else v_o[i]) for i in node.inputs],
            ys[0],
        )
        xp = unit_inputs(
            g,
            u,
            [None if not i else (current[i] if i in current else v_p[i]) for i in node.inputs],
            sp,
        )
        assert xo is not None and xp is not None
        if biased:
            xo, xp = _augment(xo), _augment(xp)
        hp, cp = _gram(xp, xp), _gram(xo, xp)
        h = hp if h is None else h + hp
        c = cp if c is None else c + cp
    assert h is not None and c is not None
    w3 = _unit_matrix(g, u, biased)
    hd = _damped(h)
    hinv = np.linalg.inv(hd)
    rhs = np.matmul(w3, c)  # w X_o^T X_p: the unpruned output projected on the pruned inputs
    dense = np.matmul(rhs, hinv)
    mask = saliency_mask(dense, hinv, count, biased, u.block)
    new = solve_masked(hd, hinv, rhs, mask, exact=True)
    # an input that is always zero on the data says nothing about its weights: a survivor
    # there keeps its value (the least squares would zero it, past the sparsity asked for)
    diag = np.diagonal(h, axis1=1, axis2=2)
    dead = (diag <= 1e-12 * max(float(diag.max()), 1e-30))[:, None, :]
    new = np.where(dead & ~mask, w3, new)
    _write(g, u, new, mask, biased)
