"""Fuse a standalone RELU / RELU6 into the op that produces its input (float graphs).

The producer must accept a fused activation, have no other reader of its output, and
not be a graph output, so the fused graph computes exactly what the unfused one did.
"""

from __future__ import annotations

from tinyc.ir.graph import Graph
from tinyc.ir.ops import get_op

FUSABLE = {"RELU": "RELU", "RELU6": "RELU6"}


def fuse_activations(g: Graph) -> Graph:
    if g.is_quantized:
        return g  # int8 RELU may requantize; its fusion belongs to quantization
    producers = g.producers()
    consumers = g.consumers()
    dropped = set()
    for node in g.nodes:
        if node.op not in FUSABLE:
            continue
        src = producers.get(node.inputs[0])
        if (
            src is None
            or "activation" not in get_op(src.op).attrs
            or src.attrs.get("activation", "NONE") != "NONE"
            or len(consumers.get(src.outputs[0], [])) != 1
            or src.outputs[0] in g.outputs
            or len(src.outputs) != 1
        ):
            continue
        src.attrs["activation"] = FUSABLE[node.op]
        # The producer now writes the activation's output tensor directly.
        g.tensors.pop(src.outputs[0])
        src.outputs = [node.outputs[0]]
        dropped.add(id(node))
    g.nodes = [n for n in g.nodes if id(n) not in dropped]
    return g
