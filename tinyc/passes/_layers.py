"""What the weight-editing quantization passes (bias correction, AdaRound) share: which
nodes are weight layers, each layer's pre-activation as a linear map of its input, the
int8 weights ``build_int8`` will write, and the layer inputs seen on calibration data.

A layer is CONV_2D (any groups), DEPTHWISE_CONV_2D or FULLY_CONNECTED with constant float
weights and a float input. Its pre-activation is ``acc(x, w) + bias``, linear in ``x`` and in ``w``.
"""

from __future__ import annotations

import numpy as np

from tinyc import interpreter
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import get_op
from tinyc.ir.tensor import QuantParams, Tensor

LAYER_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def weight_layers(g: Graph) -> list[Node]:
    """The nodes whose float weights the passes may edit, in graph order."""
    out = []
    for n in g.nodes:
        if n.op not in LAYER_OPS or len(n.inputs) < 2:
            continue
        x, w = g.tensors.get(n.inputs[0]), g.tensors.get(n.inputs[1])
        if x is None or w is None or not w.is_const or w.dtype != "float32":
            continue
        if x.dtype != "float32":
            continue
        out.append(n)
    return out


def acc(node: Node, g: Graph, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The layer's accumulators (pre-bias, pre-activation) for input ``x``: float64, the
    output channel last."""
    op = get_op(node.op)
    if node.op == "FULLY_CONNECTED":
        return x.reshape(-1, w.shape[1]).astype(np.float64) @ w.astype(np.float64).T
    return op._acc(node, g, x.astype(np.float64), w)  # type: ignore[attr-defined]


def out_channels(node: Node, g: Graph) -> int:
    w = g.tensors[node.inputs[1]]
    return w.shape[3] if node.op == "DEPTHWISE_CONV_2D" else w.shape[0]


def bias_of(node: Node, g: Graph) -> np.ndarray:
    """The float bias (zeros where the node has none)."""
    if len(node.inputs) > 2 and node.inputs[2]:
        b = g.tensors[node.inputs[2]].data
        assert b is not None
        return b.astype(np.float64).reshape(-1)
    return np.zeros(out_channels(node, g))


def set_bias(g: Graph, node: Node, values: np.ndarray) -> None:
    """Give ``node`` its own float bias tensor holding ``values`` (the old one may be
    shared with other nodes, so it is left alone)."""
    base = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else f"{node.name}/bias"
    name = g.unique_name(base)
    data = values.astype(np.float32).reshape(-1)
    g.add_tensor(Tensor(name, data.shape, "float32", data))
    while len(node.inputs) < 3:
        node.inputs.append("")
    node.inputs[2] = name


def set_weights(g: Graph, node: Node, values: np.ndarray) -> None:
    """Give ``node`` its own float weight tensor holding ``values``."""
    old = g.tensors[node.inputs[1]]
    name = g.unique_name(old.name)
    data = values.astype(np.float32).reshape(old.shape)
    g.add_tensor(Tensor(name, data.shape, "float32", data))
    node.inputs[1] = name


def weight_quant(node: Node, g: Graph, params: dict[str, QuantParams], per_channel: bool):
    """The symmetric int8 parameters ``build_int8`` gives this layer's weights."""
    from tinyc.passes.quantize import _weight_params

    op = get_op(node.op)
    w = g.tensors[node.inputs[1]].data
    assert w is not None
    b = bias_of(node, g) if len(node.inputs) > 2 and node.inputs[2] else None
    x_q = params.get(node.inputs[0])
    in_scale = x_q.s if x_q is not None else np.float32(1.0)
    return _weight_params(w, op.weight_axis, per_channel, b, in_scale)


def scale_shape(w: np.ndarray, q: QuantParams) -> np.ndarray:
    """The weight scale broadcastable against ``w``."""
    shape = [1] * w.ndim
    if q.axis is not None:
        shape[q.axis] = -1
    return q.scale.astype(np.float64).reshape(shape)


def dequantized_weights(w: np.ndarray, q: QuantParams) -> np.ndarray:
    """``w`` after int8 rounding (as ``build_int8`` rounds it), back in float64."""
    from tinyc.passes.quantize import _quantize_symmetric

    return _quantize_symmetric(w, q).astype(np.float64) * scale_shape(w, q)


def fake_quant(x: np.ndarray, q: QuantParams | None) -> np.ndarray:
    """``x`` through int8 at activation parameters ``q`` (unchanged when None)."""
    if q is None or q.per_channel:
        return x
    from tinyc.ir.ops.quant import quantize_array

    v = quantize_array(np.asarray(x, np.float32), q.s, q.zp, "int8").astype(np.float64)
    return (v - q.zp) * float(q.s)


def each_layer_input(g: Graph, samples: list[list[np.ndarray]], nodes: list[Node], visit) -> None:
    """Run float ``g`` on every calibration sample and call ``visit(node, x)`` with each
    layer's input ``x`` (streaming: nothing is kept between samples)."""
    for sample in samples:
        values = interpreter.run(g, sample, keep_all=True)
        for n in nodes:
            visit(n, values[n.inputs[0]])


def layer_patches(node: Node, g: Graph, x: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """The windows a CONV_2D / DEPTHWISE_CONV_2D reads from input ``x`` (NHWC), as
    ``tinyc.ir.ops.window.patches`` gives them (a depthwise multiplier's input channels
    repeated), and the kernel size."""
    from tinyc.ir.ops import attr, get_op
    from tinyc.ir.ops.window import patches

    k, s, d, p = get_op(node.op).geometry(node, g)  # type: ignore[attr-defined]
    if node.op == "DEPTHWISE_CONV_2D":
        m = attr(node, "depth_multiplier")
        if m > 1:
            x = np.repeat(x, m, axis=3)
    return patches(x, k, s, d, p, g.out(node).shape[1:3], 0.0), k
