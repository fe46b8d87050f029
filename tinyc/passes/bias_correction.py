"""Empirical bias correction (Nagel et al. 2019, "Data-free quantization", section 4.2,
measured on calibration data instead of derived from batch-norm statistics).

Rounding a layer's weights to int8 (and its input to its int8 grid) shifts the mean of its
output: ``E[W x] != E[Wq xq]``. This pass measures that shift per output channel on the
calibration samples and subtracts it from the float bias, so the int8 layer's mean output
matches the float one. The accumulators are linear in the input, so the mean needs only the
mean input tensor: ``E[acc(x, W)] = acc(E[x], W)`` (zero padding included).

Only the float bias changes; ``build_int8`` then quantizes it to int32 as any other bias, so
the int8 graph is a plain TFLite-scheme graph.
"""

from __future__ import annotations

import numpy as np

from tinyc.ir.graph import Graph
from tinyc.ir.tensor import QuantParams
from tinyc.passes._layers import (
    acc,
    bias_of,
    dequantized_weights,
    each_layer_input,
    fake_quant,
    out_channels,
    set_bias,
    weight_layers,
    weight_quant,
)


def input_means(
    g: Graph, samples: list[list[np.ndarray]], params: dict[str, QuantParams]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per layer: the mean float input over ``samples`` and the mean of the same inputs on
    their int8 grid (``params``)."""
    nodes = weight_layers(g)
    sums: dict[str, list] = {n.name: [0.0, 0.0] for n in nodes}

    def visit(node, x):
        acc_ = sums[node.name]
        acc_[0] = acc_[0] + x.astype(np.float64)
        acc_[1] = acc_[1] + fake_quant(x, params.get(node.inputs[0]))

    each_layer_input(g, samples, nodes, visit)
    n = max(len(samples), 1)
    return {k: (v[0] / n, v[1] / n) for k, v in sums.items() if len(samples)}


def mean_shift(
    g: Graph,
    node,
    means: tuple[np.ndarray, np.ndarray],
    params: dict[str, QuantParams],
    per_channel: bool,
) -> np.ndarray:
    """Per output channel: mean float accumulator minus mean int8-rounded accumulator
    (weights rounded as ``build_int8`` rounds them, input on its int8 grid), given the
    layer's mean float input and mean int8-grid input."""
    w = g.tensors[node.inputs[1]].data
    assert w is not None
    wq = dequantized_weights(w, weight_quant(node, g, params, per_channel))
    mean_x, mean_xq = means
    n = out_channels(node, g)
    ref = acc(node, g, mean_x, w).reshape(-1, n).mean(axis=0)
    got = acc(node, g, mean_xq, wq).reshape(-1, n).mean(axis=0)
    return ref - got


def correct_biases(
    g: Graph,
    means: dict[str, tuple[np.ndarray, np.ndarray]],
    params: dict[str, QuantParams],
    per_channel: bool = True,
) -> list[str]:
    """Add each layer's mean int8 error to its float bias, in place; ``means``: each
    layer's mean input (``input_means`` of the float graph). Returns the names of the
    corrected layers."""
    done = []
    for node in weight_layers(g):
        if node.name not in means:
            continue
        shift = mean_shift(g, node, means[node.name], params, per_channel)
        if not np.all(np.isfinite(shift)) or not np.any(shift):
            continue
        set_bias(g, node, bias_of(node, g) + shift)
        done.append(node.name)
    return done
