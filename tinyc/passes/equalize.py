"""Cross-layer equalization (Nagel et al. 2019, "Data-free quantization", section 4.1).

For two consecutive layers A -> B with a positively homogeneous activation between them
(none or ReLU: ``relu(z / s) = relu(z) / s`` for ``s > 0``), dividing A's output channel i
(weights and bias) by ``s_i`` and multiplying B's input channel i by ``s_i`` leaves the float
function unchanged. Choosing ``s_i = sqrt(r1_i / r2_i)`` (``r1_i`` the range of A's output
channel i weights, ``r2_i`` of B's input channel i weights) gives both the same range
``sqrt(r1_i r2_i)``, so per-tensor (and depthwise) int8 weights lose less to one wide
channel. Pairs are swept until the scales settle (a chain conv -> depthwise -> conv
equalizes both of its pairs).

ReLU6 (and other clipping activations) between A and B are left alone: ``min(relu(z/s), 6)``
is not ``min(relu(z), 6) / s``, and TFLite's fused ReLU6 clamps at 6 for the whole tensor,
so the clip could not follow the per-channel scale. Only float weights and biases change;
this runs before calibration, so the int8 graph is an ordinary TFLite-scheme graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops.base import attr
from tinyc.passes._layers import set_bias, set_weights, weight_layers

HOMOGENEOUS = ("NONE", "RELU")
MAX_SWEEPS = 50
TOLERANCE = 1e-4  # stop when every scale of a sweep is within this of 1
DEAD = 1e-6  # a channel whose weight range is below this fraction of the largest is dead
MAX_SCALE = 32.0  # bound on one sweep's step (the sweeps still reach equal ranges)


@dataclass
class Pair:
    a: Node
    b: Node


def _out_axis(node: Node, g: Graph) -> int | None:
    """The axis of A's weights that holds its output channels (None: cannot scale)."""
    if node.op == "FULLY_CONNECTED":
        return 0
    if node.op == "CONV_2D":
        w, x = g.tensors[node.inputs[1]], g.tensors[node.inputs[0]]
        return 0 if w.shape[3] == x.shape[3] else None  # grouped: channels mix per group
    if node.op == "DEPTHWISE_CONV_2D":
        return 3 if attr(node, "depth_multiplier") == 1 else None
    return None


def _in_axis(node: Node, g: Graph) -> int | None:
    """The axis of B's weights that meets its input channels."""
    if node.op == "FULLY_CONNECTED":
        return 1
    return None if _out_axis(node, g) is None else 3  # conv (O, kh, kw, I); depthwise


def find_pairs(g: Graph) -> list[Pair]:
    """Consecutive layers A -> B where A's output feeds only B's data input, through no
    activation or a ReLU, with one weight per channel on both sides of the junction."""
    consumers = g.consumers()
    layers = weight_layers(g)
    is_layer = {n.name for n in layers}
    pairs = []
    for a in layers:
        if attr(a, "activation") not in HOMOGENEOUS or _out_axis(a, g) is None:
            continue
        y = a.outputs[0]
        users = consumers.get(y, [])
        if y in g.outputs or len(users) != 1:
            continue
        b = users[0]
        if b.name not in is_layer or b.inputs[0] != y or y in b.inputs[1:]:
            continue
        if _in_axis(b, g) is None:
            continue
        n_a = g.tensors[a.inputs[1]].shape[_out_axis(a, g)]
        n_b = g.tensors[b.inputs[1]].shape[_in_axis(b, g)]
        if n_a != n_b or g.tensors[y].shape[-1] != n_a:
            continue
        pairs.append(Pair(a, b))
    return pairs


def _absmax(w: np.ndarray, axis: int) -> np.ndarray:
    other = tuple(i for i in range(w.ndim) if i != axis)
    return np.abs(w.astype(np.float64)).max(axis=other)


def _shape(w: np.ndarray, axis: int) -> list[int]:
    shape = [1] * w.ndim
    shape[axis] = -1
    return shape


def _scales(r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """``sqrt(r1 / r2)`` per channel, 1 for dead channels and bounded by ``MAX_SCALE``.

    A dead channel (weights ~0 next to its neighbours', as pruning or a folded batch norm
    leaves them) is left alone: its output is its bias, which a scale of ``sqrt(0 / r2)``
    would blow up to swamp the shared int8 range of the whole tensor."""
    dead = (r1 <= DEAD * r1.max()) | (r2 <= DEAD * r2.max())
    s = np.sqrt(np.where(dead, 1.0, r1) / np.where(dead, 1.0, r2))
    return np.clip(s, 1.0 / MAX_SCALE, MAX_SCALE)


def equalize(g: Graph) -> list[tuple[str, str]]:
    """Equalize every pair of ``find_pairs`` in place; returns the (A, B) names."""
    pairs = find_pairs(g)
    if not pairs:
        return []
    own = {p.a.name: p.a for p in pairs} | {p.b.name: p.b for p in pairs}
    for n in own.values():  # private copies: a constant may be shared
        set_weights(g, n, g.tensors[n.inputs[1]].data.copy())
        if len(n.inputs) > 2 and n.inputs[2]:
            set_bias(g, n, g.tensors[n.inputs[2]].data.copy())
    for _ in range(MAX_SWEEPS):
        worst = 0.0
        for p in pairs:
            wa, wb = g.tensors[p.a.inputs[1]].data, g.tensors[p.b.inputs[1]].data
            ax_a, ax_b = _out_axis(p.a, g), _in_axis(p.b, g)
            s = _scales(_absmax(wa, ax_a), _absmax(wb, ax_b))
            worst = max(worst, float(np.max(np.abs(np.log(s)))))
            g.tensors[p.a.inputs[1]].data = (wa / s.reshape(_shape(wa, ax_a))).astype(np.float32)
            g.tensors[p.b.inputs[1]].data = (wb * s.reshape(_shape(wb, ax_b))).astype(np.float32)
            if len(p.a.inputs) > 2 and p.a.inputs[2]:
                b = g.tensors[p.a.inputs[2]]
                b.data = (b.data / s).astype(np.float32)
        if worst < TOLERANCE:
            break
    return [(p.a.name, p.b.name) for p in pairs]
