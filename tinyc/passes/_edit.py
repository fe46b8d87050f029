"""Small graph edits shared by passes."""

from __future__ import annotations

from tinyc.ir.graph import Graph, Node


def rename_tensor(g: Graph, old: str, new: str) -> None:
    """Give tensor ``old`` the name ``new`` everywhere (``new`` must be unused)."""
    t = g.tensors.pop(old)
    t.name = new
    g.tensors[new] = t
    for n in g.nodes:
        n.inputs = [new if i == old else i for i in n.inputs]
        n.outputs = [new if o == old else o for o in n.outputs]
    g.inputs = [new if i == old else i for i in g.inputs]
    g.outputs = [new if o == old else o for o in g.outputs]
    if old in g.external_perm:
        g.external_perm[new] = g.external_perm.pop(old)


def drop_copy(g: Graph, node: Node) -> bool:
    """Remove ``node``, whose output 0 equals its input 0 (same shape, dtype, values).

    Readers of the output read the input instead; when the output is a graph output, the
    input takes over its name. Returns False (graph unchanged) when that is impossible.
    """
    src, dst = node.inputs[0], node.outputs[0]
    if len(node.outputs) != 1 or g.tensors[src].shape != g.tensors[dst].shape:
        return False
    if dst in g.outputs:
        if src in g.inputs or src in g.outputs or g.tensors[src].is_const:
            return False
        g.nodes.remove(node)
        t = g.tensors.pop(dst)
        perm = g.external_perm.pop(dst, None)
        rename_tensor(g, src, dst)
        g.tensors[dst].quant = t.quant if t.quant is not None else g.tensors[dst].quant
        if perm is not None:
            g.external_perm[dst] = perm
        return True
    g.nodes.remove(node)
    for n in g.nodes:
        n.inputs = [src if i == dst else i for i in n.inputs]
    g.tensors.pop(dst)
    return True
