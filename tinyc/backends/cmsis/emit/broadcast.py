"""BROADCAST_TO emitter: the strided copy of move.c with stride 0 along broadcast axes."""

from __future__ import annotations

from tinyc.backends.cmsis.emit.base import Emitter, emitter, shape_i32
from tinyc.backends.cmsis.emit.index import dense_strides
from tinyc.errors import UnsupportedError


@emitter
class BroadcastToEmitter(Emitter):
    kinds = ("BROADCAST_TO",)

    def emit(self, node, g, c):
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None
        rank = len(y.shape)
        if rank > 6:
            raise UnsupportedError(f"node {node.name!r}: BROADCAST_TO beyond 6 dimensions")
        shape = (1,) * (rank - len(x.shape)) + tuple(x.shape)
        dense = [s // x.itemsize for s in dense_strides(shape, x.itemsize)]
        strides = [
            0 if d == 1 and o != 1 else s for d, o, s in zip(shape, y.shape, dense, strict=True)
        ]
        c.need("move.c")
        c.call(
            f"tinyc_transpose({rank}, {shape_i32(c, 'shape', y.shape)}, "
            f"{shape_i32(c, 'strides', strides)}, {x.itemsize}, {c.ptr(node.inputs[0])}, "
            f"{c.ptr(node.outputs[0])});"
        )
