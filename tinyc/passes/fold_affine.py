"""Fold a per-channel constant MUL / ADD / SUB into the float CONV_2D, DEPTHWISE_CONV_2D,
TRANSPOSE_CONV or FULLY_CONNECTED that produces its other operand (BatchNorm after conv,
bias as a separate Add, ...): scale the weights and bias, or shift the bias.

Only when the producer has no other reader, no fused activation yet, and the result has
the producer's shape, so the folded graph computes the same function.
"""

from __future__ import annotations

import numpy as np

from tinyc.ir.graph import Graph, Node
from tinyc.ir.tensor import Tensor

#: the weight axis that indexes output channels
OUT_AXIS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0, "TRANSPOSE_CONV": 0}


def channel_vector(c: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """``c`` as one value per channel (last axis of ``shape``), or None if it varies
    along another axis or would grow the result by broadcasting."""
    if c.ndim > len(shape):
        return None
    c = c.reshape((1,) * (len(shape) - c.ndim) + c.shape)
    if any(d != 1 for d in c.shape[:-1]) or c.shape[-1] not in (1, shape[-1]):
        return None
    return np.broadcast_to(c.reshape(-1).astype(np.float64), (shape[-1],))


def _new_const(g: Graph, base: str, data: np.ndarray) -> str:
    name = g.unique_name(base)
    g.add_tensor(Tensor(name, data.shape, "float32", data.astype(np.float32)))
    return name


def _try_fold(g: Graph, node: Node, producers: dict, consumers: dict) -> bool:
    if node.attrs.get("activation", "NONE") != "NONE" or g.out(node).dtype != "float32":
        return False
    for pos in (0, 1):
        if node.op == "SUB" and pos == 1:
            break  # c - x would negate the weights; rare enough to leave alone
        src, other = node.inputs[pos], g.tensors[node.inputs[1 - pos]]
        prod = producers.get(src)
        if (
            not other.is_const
            or prod is None
            or prod.op not in OUT_AXIS
            or prod.attrs.get("activation", "NONE") != "NONE"
            or len(consumers.get(src, [])) != 1
            or src in g.outputs
        ):
            continue
        w = g.inp(prod, 1)
        y = g.tensors[src]
        if w is None or not w.is_const or w.dtype != "float32" or y.dtype != "float32":
            continue
        vec = channel_vector(other.data, y.shape)
        if vec is None or g.out(node).shape != y.shape:
            continue
        b = g.inp(prod, 2)
        bias = np.zeros(y.shape[-1]) if b is None else b.data.astype(np.float64)
        if node.op == "MUL":
            shape = [1] * w.data.ndim
            shape[OUT_AXIS[prod.op]] = -1
            scaled = w.data.astype(np.float64) * vec.reshape(shape)
            prod.inputs[1] = _new_const(g, f"{w.name}_scaled", scaled)
            bias = bias * vec
        else:
            bias = bias + vec if node.op == "ADD" else bias - vec
        if b is not None or np.any(bias != 0):
            name = _new_const(g, f"{b.name if b else prod.name + '/bias'}_folded", bias)
            prod.inputs = [*prod.inputs[:2], name]
        g.tensors.pop(src)
        prod.outputs = [node.outputs[0]]
        g.nodes.remove(node)
        return True
    return False


def fold_affine(g: Graph) -> Graph:
    changed = True
    while changed:
        changed = False
        producers, consumers = g.producers(), g.consumers()
        for node in list(g.nodes):
            if node.op in ("MUL", "ADD", "SUB") and _try_fold(g, node, producers, consumers):
                changed = True
                break
    g.remove_unused()
    return g
