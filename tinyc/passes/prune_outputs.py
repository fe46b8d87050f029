"""Drop the optional outputs nobody reads (a recurrent layer's final states, or its whole
sequence when only the final state is used), so no memory is planned for them."""

from __future__ import annotations

from tinyc.ir.graph import Graph
from tinyc.ir.ops import get_op


def prune_outputs(g: Graph) -> Graph:
    read = {i for n in g.nodes for i in n.inputs if i} | set(g.outputs)
    for node in g.nodes:
        if not get_op(node.op).optional_outputs:
            continue
        kept = [o if o in read else "" for o in node.outputs]
        if any(kept):  # a node with no output left is removed below
            node.outputs = kept
        while node.outputs and not node.outputs[-1]:
            node.outputs.pop()
    g.remove_unused()
    return g
