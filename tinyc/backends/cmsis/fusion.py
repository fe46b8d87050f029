"""Layer fusion in the C backend: a CONV_2D whose only reader is a depthwise convolution
is computed row by row into the depthwise kernel's ring of input rows, so its output never
exists whole in the arena (the largest activation of many keyword-spotting and vision
models). The graph is not changed: the backend plans and emits from a view in which the
pair is one backend-private node."""

from __future__ import annotations

from dataclasses import replace

from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import attr

FUSED_CONV_DW = "tinyc:CONV_2D+DEPTHWISE_CONV_2D"


def _fusable(conv: Node, dw: Node, g: Graph, readers: dict[str, list[Node]]) -> bool:
    x, w = g.inp(conv, 0), g.inp(conv, 1)
    mid = conv.outputs[0]
    return (
        conv.op == "CONV_2D"
        and dw.op == "DEPTHWISE_CONV_2D"
        and x is not None
        and w is not None
        and x.shape[0] == 1
        and w.shape[3] == x.shape[3]  # not grouped
        and dw.inputs[0] == mid
        and [n.name for n in readers.get(mid, [])] == [dw.name]
        and mid not in g.outputs
        and attr(dw, "depth_multiplier") == 1
        and g.inp(dw, 1).shape[1] <= 16  # type: ignore[union-attr]
    )


def fusable_pairs(g: Graph) -> list[str]:
    """Names of the depthwise nodes that could take in the convolution before them."""
    readers = g.consumers()
    return [
        b.name for a, b in zip(g.nodes, g.nodes[1:], strict=False) if _fusable(a, b, g, readers)
    ]


def fused_view(g: Graph, fuse: set[str]) -> Graph:
    """``g`` with the CONV_2D -> DEPTHWISE_CONV_2D pairs whose depthwise node is named in
    ``fuse`` as one node of kind FUSED_CONV_DW (attrs "conv", "dw": the original nodes);
    the view shares g's tensors."""
    nodes: list[Node] = []
    for n in g.nodes:
        if n.name in fuse and nodes and nodes[-1].outputs == n.inputs[:1]:
            conv = nodes.pop()
            nodes.append(
                Node(
                    FUSED_CONV_DW,
                    n.name,
                    [conv.inputs[0]],
                    list(n.outputs),
                    {"conv": conv, "dw": n},
                )  # fmt: skip
            )
        else:
            nodes.append(n)
    return replace(g, nodes=nodes)


def fusion_candidates(g: Graph) -> list[set[str]]:
    """Fusion choices worth planning: none, all, and only those whose convolution output
    is the largest of the three tensors around it (where it would set the peak)."""
    pairs = fusable_pairs(g)
    by_name = {n.name: i for i, n in enumerate(g.nodes)}
    peaks = set()
    for name in pairs:
        dw = g.nodes[by_name[name]]
        conv = g.nodes[by_name[name] - 1]
        mid = g.tensors[conv.outputs[0]].nbytes
        if mid > g.tensors[conv.inputs[0]].nbytes and mid > g.out(dw).nbytes:
            peaks.add(name)
    out = [set(), set(pairs), peaks]
    unique = []
    for c in out:
        if c not in unique:
            unique.append(c)
    return unique
