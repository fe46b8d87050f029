"""BROADCAST_TO: the input repeated along the axes where it has size 1 (numpy broadcasting
to the ``shape`` attribute; TFLite's BROADCAST_TO takes the shape as a constant input).
Values move unchanged, so an int8 output keeps its input's parameters. ONNX Expand and
Tile (with a reshape on either side) and PyTorch expand / repeat map onto it."""

from __future__ import annotations

import numpy as np

from tinyc.errors import TinycError
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops.base import Spec, attr, register
from tinyc.ir.ops.shape import _Move


@register
class BroadcastTo(_Move):
    kind = "BROADCAST_TO"
    attrs = {"shape": None}

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        x = g.inp(node, 0)
        assert x is not None
        shape = tuple(int(d) for d in attr(node, "shape"))
        try:
            out = tuple(np.broadcast_shapes(x.shape, shape))
        except ValueError:
            out = None
        if out != shape:
            raise TinycError(
                f"node {node.name!r} (BROADCAST_TO): {list(x.shape)} does not broadcast to "
                f"{list(shape)}"
            )
        return [(shape, x.dtype)]

    def eval_float(self, node, g, xs):
        return [np.ascontiguousarray(np.broadcast_to(xs[0], g.out(node).shape))]

    def bytes_moved(self, node: Node, g: Graph) -> tuple[int, int]:
        x = g.inp(node, 0)
        assert x is not None
        return x.nbytes, g.out(node).nbytes
