"""Optimised rounding of weights on calibration data (AdaRound, Nagel et al. 2020).

Rounding every weight to its nearest int8 step is not what minimises a layer's output
error: the errors of the weights that meet the same input add up. AdaRound chooses, per
weight, rounding down or up (never further than one step from nearest) to minimise the
layer's pre-activation error on calibration data:

    || X_f w - X_q w~ ||^2   per output channel, w~ = s * clip(floor(w / s) + h, -127, 127)

``X_f`` the layer's float inputs, ``X_q`` the same on the input's int8 grid. The objective is
quadratic in ``d = w - w~`` and only needs the inputs' Gram matrices (accumulated sample by
sample), so each step costs ``rows * K^2`` whatever the number of calibration positions. ``h``
is relaxed to a rectified sigmoid and pushed to 0 or 1 by an annealed regulariser (as in the
paper), then rounded; per output channel the result is kept only when it beats nearest
rounding on the calibration data.

The chosen int8 values are written back as float weights on the int8 grid (``q * scale``),
so ``build_int8`` re-derives the same scales and rounds them to exactly those integers: the
int8 graph stays a plain TFLite-scheme graph. Elements at +-127 keep nearest rounding, which
pins each channel's maximum and thus its scale.

Runs in torch on the CPU (seeded, deterministic), one layer at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyc.ir.graph import Graph, Node
from tinyc.ir.tensor import QuantParams
from tinyc.passes._layers import (
    each_layer_input,
    fake_quant,
    layer_patches,
    scale_shape,
    set_weights,
    weight_layers,
    weight_quant,
)

ZETA, GAMMA = 1.1, -0.1  # rectified sigmoid stretch (the paper's values)


@dataclass
class AdaRoundOptions:
    iterations: int = 1000
    lr: float = 1e-2
    reg_weight: float = 0.01
    warmup: float = 0.2  # fraction of iterations without the rounding regulariser
    beta: tuple[float, float] = (20.0, 2.0)
    seed: int = 0


@dataclass
class LayerResult:
    node: str
    mse_nearest: float  # mean squared pre-activation error per output value, nearest
    mse_adaround: float  # the same with the chosen rounding
    changed: int  # weights rounded the other way than nearest


# -- the layer as rows of a matrix and the inputs' Gram matrices ----------------------------


def _rows(node: Node, g: Graph) -> tuple[np.ndarray, bool] | None:
    """The weights as (rows, K) and whether each row has its own input (depthwise);
    None for layers this pass leaves alone (grouped convolutions)."""
    w = g.tensors[node.inputs[1]].data
    assert w is not None
    if node.op == "FULLY_CONNECTED":
        return w.astype(np.float64), False
    if node.op == "CONV_2D":
        if w.shape[3] != g.tensors[node.inputs[0]].shape[3]:
            return None
        return w.reshape(w.shape[0], -1).astype(np.float64), False
    # DEPTHWISE_CONV_2D (1, kh, kw, C): channel c sees its own window
    return w[0].reshape(-1, w.shape[3]).T.astype(np.float64), True


def _cols(node: Node, g: Graph, x: np.ndarray) -> np.ndarray:
    """im2col of one input: (M, K), or (M, K, C) for depthwise."""
    w = g.tensors[node.inputs[1]]
    if node.op == "FULLY_CONNECTED":
        return x.reshape(-1, w.shape[1])
    cols, k = layer_patches(node, g, x)
    if node.op == "DEPTHWISE_CONV_2D":
        return cols.reshape(-1, k[0] * k[1], cols.shape[-1])
    return cols.reshape(-1, k[0] * k[1] * x.shape[3])


def layer_grams(
    g: Graph,
    samples: list[list[np.ndarray]],
    params: dict[str, QuantParams],
    centered: bool = False,
) -> dict[str, tuple]:
    """Per layer of float ``g``: Gram matrices over all calibration positions, Gqq = Xq'Xq,
    Gqe = Xq'(Xf - Xq), Gee = (Xf - Xq)'(Xf - Xq), each (K, K) or (C, K, K) per depthwise
    channel, and the number of positions M; accumulated sample by sample.

    ``centered``: of the columns minus their means, i.e. the error's variance only, for
    when bias correction takes care of its mean."""
    nodes = [n for n in weight_layers(g) if _rows(n, g) is not None]
    sums: dict[str, list] = {n.name: [0.0] * 5 + [0] for n in nodes}

    def visit(node, x):
        per_row = node.op == "DEPTHWISE_CONV_2D"
        cf = _cols(node, g, x.astype(np.float64))
        cq = _cols(node, g, fake_quant(x, params.get(node.inputs[0])))
        ce = cf - cq
        if per_row:
            parts = [np.einsum("mkc,mlc->ckl", u, v) for u, v in ((cq, cq), (cq, ce), (ce, ce))]
        else:
            parts = [cq.T @ cq, cq.T @ ce, ce.T @ ce]
        parts += [cq.sum(0), ce.sum(0)]
        acc_ = sums[node.name]
        for i, p in enumerate(parts):
            acc_[i] = acc_[i] + p
        acc_[5] += cf.shape[0]

    each_layer_input(g, samples, nodes, visit)
    out = {}
    for node in nodes:
        gqq, gqe, gee, sq, se, m = sums[node.name]
        if not m:
            continue
        if centered:
            per_row = node.op == "DEPTHWISE_CONV_2D"
            outer = (lambda u, v: np.einsum("kc,lc->ckl", u, v)) if per_row else np.outer
            gqq = gqq - outer(sq, sq) / m
            gqe = gqe - outer(sq, se) / m
            gee = gee - outer(se, se) / m
        out[node.name] = (gqq, gqe, gee, m)
    return out


# -- the optimisation -------------------------------------------------------------------------


def _row_errors(d, e_w, gqq, gqe, gee_w, per_row):
    """Per row: || e + Xq d ||^2 = e'e + 2 d'Xq'e + d'Gqq d with e = (Xf - Xq) w.

    ``e_w`` = Gqe w (per row), ``gee_w`` = w'Gee w (per row)."""
    import torch

    gd = torch.bmm(gqq, d.unsqueeze(2)).squeeze(2) if per_row else d @ gqq
    return gee_w + ((2.0 * e_w + gd) * d).sum(1)


def round_layer(
    w: np.ndarray,
    s: np.ndarray,
    grams: tuple,
    per_row: bool,
    opts: AdaRoundOptions,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer weights (rows, K) for float ``w`` (rows, K) at scales ``s`` (rows, 1) that
    minimise the rows' output error given the Gram matrices; also each row's error with
    nearest and with the chosen rounding."""
    import torch

    from tinyc.ir.fixedpoint import round_half_away

    gqq, gqe, gee, _ = grams
    torch.manual_seed(opts.seed)
    dt = torch.float64
    wt = torch.tensor(w, dtype=dt)
    st = torch.tensor(s, dtype=dt)
    tq = torch.tensor(gqq, dtype=dt)
    # e_w[r] = Gqe w_r ; gee_w[r] = w_r' Gee w_r
    if per_row:
        e_w = torch.einsum("rkl,rl->rk", torch.tensor(gqe, dtype=dt), wt)
        gee_w = torch.einsum("rk,rkl,rl->r", wt, torch.tensor(gee, dtype=dt), wt)
    else:
        e_w = wt @ torch.tensor(gqe, dtype=dt).T
        gee_w = torch.einsum("rk,kl,rl->r", wt, torch.tensor(gee, dtype=dt), wt)

    nearest = np.clip(round_half_away(w / s), -127, 127)
    floor = np.floor(w / s)
    pinned = torch.tensor(np.abs(nearest) >= 127)
    near_t = torch.tensor(nearest, dtype=dt)
    floor_t = torch.tensor(floor, dtype=dt)

    def err_of(q):
        return _row_errors(wt - st * q, e_w, tq, gqe, gee_w, per_row)

    base = err_of(near_t)
    norm = base.sum().clamp_min(1e-30)
    rest = (w / s - floor).clip(1e-4, 1 - 1e-4)
    v0 = -np.log((ZETA - GAMMA) / (rest - GAMMA) - 1.0)
    v = torch.tensor(v0, dtype=dt, requires_grad=True)
    opt = torch.optim.Adam([v], lr=opts.lr)
    n_warm = int(opts.warmup * opts.iterations)
    for it in range(opts.iterations):
        h = torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)
        q = torch.where(pinned, near_t, torch.clamp(floor_t + h, -127.0, 127.0))
        loss = err_of(q).sum() / norm
        if it >= n_warm:
            frac = (it - n_warm) / max(1, opts.iterations - n_warm)
            beta = opts.beta[0] + (opts.beta[1] - opts.beta[0]) * frac
            reg = (1.0 - (2.0 * h - 1.0).abs().pow(beta)).mean()
            loss = loss + opts.reg_weight * reg
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        h = torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)
        hard = torch.where(pinned, near_t, torch.clamp(floor_t + (h >= 0.5).to(dt), -127, 127))
        after = err_of(hard)
        keep = (after < base).unsqueeze(1)
        chosen = torch.where(keep, hard, near_t)
        final = torch.minimum(after, base)
    return chosen.numpy(), base.numpy(), final.numpy()


def adaround(
    g: Graph,
    grams: dict[str, tuple],
    params: dict[str, QuantParams],
    per_channel: bool = True,
    opts: AdaRoundOptions | None = None,
) -> list[LayerResult]:
    """Choose the int8 rounding of every layer's weights on calibration data (``grams``:
    ``layer_grams`` of the float graph; centered ones leave the error's mean to bias
    correction, run afterwards) and write the weights back on the int8 grid, in place.
    Returns what each layer gained."""
    import torch

    from tinyc.ir.fixedpoint import round_half_away

    opts = opts or AdaRoundOptions()
    results = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for node in weight_layers(g):
            rows = _rows(node, g)
            if node.name not in grams or rows is None:
                continue
            w_rows, per_row = rows
            w = g.tensors[node.inputs[1]].data
            assert w is not None
            wq = weight_quant(node, g, params, per_channel)
            s_full = np.broadcast_to(scale_shape(w, wq), w.shape)
            if node.op == "DEPTHWISE_CONV_2D":
                s_rows = s_full[0].reshape(-1, w.shape[3]).T
            else:
                s_rows = s_full.reshape(w.shape[0], -1)
            layer = grams[node.name]
            q, base, final = round_layer(w_rows, s_rows, layer, per_row, opts)
            nearest = np.clip(round_half_away(w_rows / s_rows), -127, 127)
            changed = int(np.count_nonzero(q != nearest))
            if node.op == "DEPTHWISE_CONV_2D":
                new = (q * s_rows).T.reshape(w.shape)
            else:
                new = (q * s_rows).reshape(w.shape)
            if changed:
                set_weights(g, node, new)
            m, n = layer[3], w_rows.shape[0]
            results.append(
                LayerResult(
                    node.name, float(base.sum()) / (m * n), float(final.sum()) / (m * n), changed
                )
            )
    finally:
        torch.set_num_threads(threads)
    return results
