"""UNSUPPORTED: a node of the model file that tinyc cannot translate or run, kept in the
graph so that ``inspect`` and ``estimate`` still show the whole model (op name, shapes
where the file gives them, parameter counts). Everything that runs the graph refuses it
with one error naming every such node (tinyc.ir.verify.require_supported)."""

from __future__ import annotations

from tinyc.errors import UnsupportedError
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops.base import OpDef, Spec, register


@register
class Unsupported(OpDef):
    kind = "UNSUPPORTED"
    #: op: the file's operator name; reason: why tinyc cannot take it
    attrs = {"op": None, "reason": ""}
    optional_outputs = True

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        # the frontend gave each output the shape and dtype the file declares (() if none)
        return [
            (g.tensors[o].shape, g.tensors[o].dtype) if o else ((), "float32") for o in node.outputs
        ]

    def evaluate(self, node, g, xs):
        raise UnsupportedError(
            f"node {node.name!r} ({node.attrs.get('op')}) cannot run: {node.attrs.get('reason')}"
        )
