"""Remove layout overhead: transposes that only move size-1 axes become reshapes, chains of
reshapes or of transposes collapse into one, no-op reshapes/transposes disappear, and a
reshape read only by an elementwise unary op (activation, per-tensor QUANTIZE/DEQUANTIZE)
moves after it, so it can merge with the next reshape and the op can fuse with its
producer."""

from __future__ import annotations

import copy

from tinyc.ir.graph import Graph, Node
from tinyc.ir.tensor import Tensor
from tinyc.passes._edit import drop_copy


def _moves_data(shape: tuple[int, ...], perm: tuple[int, ...]) -> bool:
    kept = [p for p in perm if shape[p] != 1]
    return kept != sorted(kept)


ELEMENTWISE_UNARY = ("QUANTIZE", "DEQUANTIZE", "RELU", "RELU6", "LOGISTIC", "TANH")


def _sink_below_unary(g: Graph, node: Node, consumers: dict[str, list[Node]]) -> bool:
    """RESHAPE -> elementwise unary op becomes unary op -> RESHAPE."""
    readers = consumers.get(node.outputs[0], [])
    if len(readers) != 1 or node.outputs[0] in g.outputs:
        return False
    conv = readers[0]
    if conv.op not in ELEMENTWISE_UNARY:
        return False
    y = g.out(conv)
    if y.quant is not None and y.quant.per_channel:
        return False
    x = g.tensors[node.inputs[0]]
    mid = g.unique_name(f"{conv.outputs[0]}#pre")
    g.add_tensor(Tensor(mid, x.shape, y.dtype, quant=copy.deepcopy(y.quant)))
    g.tensors.pop(node.outputs[0])
    conv.inputs, conv.outputs = [node.inputs[0]], [mid]
    node.inputs, node.outputs = [mid], [y.name]
    g.nodes.remove(node)
    g.nodes.insert(g.nodes.index(conv) + 1, node)
    return True


def _step(g: Graph, node: Node, producers: dict[str, Node], consumers) -> bool:
    x = g.tensors[node.inputs[0]]
    prev = producers.get(node.inputs[0])
    if node.op == "TRANSPOSE":
        perm = tuple(node.attrs["perm"])
        if not _moves_data(x.shape, perm):
            node.op, node.attrs = "RESHAPE", {"shape": g.out(node).shape}
            return True
        if prev is not None and prev.op == "TRANSPOSE":
            inner = tuple(prev.attrs["perm"])
            node.inputs[0] = prev.inputs[0]
            node.attrs = {"perm": tuple(inner[p] for p in perm)}
            return True
    if node.op == "RESHAPE":
        if prev is not None and prev.op == "RESHAPE":
            node.inputs[0] = prev.inputs[0]
            return True
        if x.shape == g.out(node).shape:
            return drop_copy(g, node)
        return _sink_below_unary(g, node, consumers)
    return False


def simplify_layout(g: Graph) -> Graph:
    changed = True
    while changed:
        changed = False
        producers, consumers = g.producers(), g.consumers()
        for node in list(g.nodes):
            if node.op in ("TRANSPOSE", "RESHAPE") and _step(g, node, producers, consumers):
                changed = True
                break
        g.remove_unused()
    return g
