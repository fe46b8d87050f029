"""Layer fusion in the C backend: a layer's output is produced row by row into the rows its
only reader is about to use, so it never exists whole in the arena (the largest
activation of many keyword-spotting, vision and residual models).

- CONV_2D -> DEPTHWISE_CONV_2D: the convolution's rows go into the depthwise kernel's
  ring of padded input rows.
- CONV_2D -> CONV_2D [-> ADD]: the first convolution's rows go into a window of the rows
  one output row of the second reads; a residual ADD of the second's output is applied to
  each output row as it is made, in place over the other operand when that one dies
  there (see tinyc.backends.cmsis.emit.fused).

The graph is not changed: the backend plans and emits from a view in which each fused
group is one backend-private node, placed where its last member was. Which fusions to make
is a memory-plan question: fusion_candidates lists the choices worth planning.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import attr

FUSED_CONV_DW = "tinyc:CONV_2D+DEPTHWISE_CONV_2D"
FUSED_CONV_CONV = "tinyc:CONV_2D+CONV_2D"


@dataclass(frozen=True)
class Fusion:
    """A group of nodes computed as one: ``members`` in graph order, the last one's output
    is the group's."""

    kind: str
    members: tuple[Node, ...]

    @property
    def key(self) -> str:
        return self.members[-1].name

    def node(self) -> Node:
        first, last = self.members[0], self.members[-1]
        if self.kind == FUSED_CONV_DW:
            conv, dw = self.members
            return Node(self.kind, last.name, [conv.inputs[0]], list(last.outputs),
                        {"conv": conv, "dw": dw})  # fmt: skip
        producer, consumer = self.members[:2]
        add = self.members[2] if len(self.members) > 2 else None
        inputs = [first.inputs[0]]
        if add is not None:
            inputs.append(next(t for t in add.inputs if t != consumer.outputs[0]))
        attrs = {"producer": producer, "consumer": consumer, "add": add}
        return Node(self.kind, last.name, inputs, list(last.outputs), attrs)


def _single_reader(t: str, reader: Node, g: Graph, readers: dict[str, list[Node]]) -> bool:
    return [n.name for n in readers.get(t, [])] == [reader.name] and t not in g.outputs


def _one_image_conv(n: Node, g: Graph) -> bool:
    x, w = g.inp(n, 0), g.inp(n, 1)
    return (
        n.op == "CONV_2D"
        and x is not None
        and w is not None
        and x.shape[0] == 1
        and w.shape[3] == x.shape[3]  # not grouped
    )


def _conv_dw(conv: Node, dw: Node, g: Graph, readers: dict[str, list[Node]]) -> bool:
    return (
        _one_image_conv(conv, g)
        and dw.op == "DEPTHWISE_CONV_2D"
        and dw.inputs[0] == conv.outputs[0]
        and _single_reader(conv.outputs[0], dw, g, readers)
        and attr(dw, "depth_multiplier") == 1
        and g.inp(dw, 1).shape[1] <= 16  # type: ignore[union-attr]
    )


def _residual_add(consumer: Node, g: Graph, readers: dict[str, list[Node]]) -> Node | None:
    out = consumer.outputs[0]
    rd = readers.get(out, [])
    if len(rd) != 1 or rd[0].op != "ADD" or out in g.outputs:
        return None
    add = rd[0]
    shape = g.out(consumer).shape
    same = all(g.tensors[t].shape == shape for t in [*add.inputs, add.outputs[0]])
    return add if same and len(set(add.inputs)) == 2 else None


def fusions(g: Graph) -> list[Fusion]:
    """Every fusion the backend could make, in graph order (some share nodes)."""
    readers = g.consumers()
    producer_of = {t: n for n in g.nodes for t in n.outputs}
    found: list[Fusion] = []
    for n in g.nodes:
        p = producer_of.get(n.inputs[0]) if n.inputs else None
        if p is None:
            continue
        if _conv_dw(p, n, g, readers):
            found.append(Fusion(FUSED_CONV_DW, (p, n)))
        elif (
            _one_image_conv(p, g)
            and _one_image_conv(n, g)
            and _single_reader(n.inputs[0], n, g, readers)
        ):
            add = _residual_add(n, g, readers)
            found.append(Fusion(FUSED_CONV_CONV, (p, n) + ((add,) if add else ())))
    return found


def fusable_pairs(g: Graph) -> list[str]:
    """Names of the depthwise nodes that could take in the convolution before them."""
    return [f.key for f in fusions(g) if f.kind == FUSED_CONV_DW]


def fused_view(g: Graph, fuse: set[str]) -> Graph:
    """``g`` with the fusions whose key (last member's name) is in ``fuse`` each made one
    node, at its last member's place (a fusion sharing a node with an earlier chosen one
    is skipped); the view shares g's tensors."""
    chosen: list[Fusion] = []
    taken: set[str] = set()
    for f in fusions(g):
        names = {m.name for m in f.members}
        if f.key in fuse and not names & taken:
            chosen.append(f)
            taken |= names
    by_last = {f.key: f for f in chosen}
    nodes = [
        by_last[n.name].node() if n.name in by_last else n
        for n in g.nodes
        if n.name in by_last or n.name not in taken
    ]
    return replace(g, nodes=nodes)


def fusion_candidates(g: Graph) -> list[set[str]]:
    """Fusion choices worth planning: none, all, the depthwise pairs whose convolution
    output is the largest of the three tensors around it (where it would set the peak),
    and each of those with every convolution chain."""
    found = fusions(g)
    peaks = set()
    for f in found:
        if f.kind != FUSED_CONV_DW:
            continue
        conv, dw = f.members
        mid = g.tensors[conv.outputs[0]].nbytes
        if mid > g.tensors[conv.inputs[0]].nbytes and mid > g.out(dw).nbytes:
            peaks.add(f.key)
    pairs = {f.key for f in found if f.kind == FUSED_CONV_DW}
    chains = {f.key for f in found if f.kind == FUSED_CONV_CONV}
    out = [set(), pairs | chains, peaks, pairs, peaks | chains, chains]
    unique = []
    for c in out:
        if c not in unique:
            unique.append(c)
    return unique
