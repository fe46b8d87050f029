"""Data-movement emitters: RESHAPE (a view), TRANSPOSE, PAD, and the block copies of
CONCATENATION, SPLIT, SPLIT_V, PACK and UNPACK."""

from __future__ import annotations

import numpy as np

from tinyc.backends.cmsis.cwriter import C_TYPES
from tinyc.backends.cmsis.emit.base import Emitter, emitter, shape_i32
from tinyc.errors import UnsupportedError
from tinyc.ir.ops import attr, get_op
from tinyc.ir.ops.base import normalize_axis


@emitter
class ReshapeEmitter(Emitter):
    kinds = ("RESHAPE",)

    def alias(self, node, g):
        return 0, "view"

    def emit(self, node, g, c):
        src, dst = c.plan.offsets[node.inputs[0]], c.plan.offsets[node.outputs[0]]
        if src != dst:
            c.call(f"memcpy(tinyc_arena + {dst}, tinyc_arena + {src}, {g.out(node).nbytes});")


@emitter
class TransposeEmitter(Emitter):
    kinds = ("TRANSPOSE",)

    def emit(self, node, g, c):
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None
        perm = attr(node, "perm")
        if len(perm) > 6:
            raise UnsupportedError(f"node {node.name!r}: TRANSPOSE beyond 6 dimensions")
        dense = np.cumprod([1] + list(x.shape[::-1])[:-1])[::-1]
        strides = [int(dense[p]) for p in perm]
        c.need("move.c")
        c.call(
            f"tinyc_transpose({len(perm)}, {shape_i32(c, 'shape', y.shape)}, "
            f"{shape_i32(c, 'strides', strides)}, {x.itemsize}, {c.ptr(node.inputs[0])}, "
            f"{c.ptr(node.outputs[0])});"
        )


@emitter
class PadEmitter(Emitter):
    kinds = ("PAD",)

    def emit(self, node, g, c):
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None
        if len(x.shape) > 6:
            raise UnsupportedError(f"node {node.name!r}: PAD beyond 6 dimensions")
        value = np.array([get_op("PAD").pad_value(node, g)], dtype=x.dtype)
        before = [p[0] for p in attr(node, "paddings")]
        vsym = c.const_array(f"padv_{node.name}", value, C_TYPES[x.dtype])
        c.need("move.c")
        c.call(
            f"tinyc_pad({len(x.shape)}, {shape_i32(c, 'shape', x.shape)}, "
            f"{shape_i32(c, 'before', before)}, {shape_i32(c, 'shape', y.shape)}, "
            f"{x.itemsize}, {vsym}, {c.ptr(node.inputs[0])}, {c.ptr(node.outputs[0])});"
        )


def _blocks(shape: tuple[int, ...], axis: int, itemsize: int) -> tuple[int, int]:
    """(outer count, bytes per block) of ``shape`` split at ``axis``."""
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    return outer, int(np.prod(shape[axis:], dtype=np.int64)) * itemsize


@emitter
class JoinEmitter(Emitter):
    """CONCATENATION and PACK: each input is copied into its slice of the output."""

    kinds = ("CONCATENATION", "PACK")

    def emit(self, node, g, c):
        y = g.out(node)
        rank = len(y.shape)
        axis = normalize_axis(attr(node, "axis"), rank, node)
        outer, dst_block = _blocks(y.shape, axis, y.itemsize)
        offset = 0
        c.need("move.c")
        for name in node.inputs:
            t = g.tensors[name]
            shape = (
                t.shape if node.op == "CONCATENATION" else t.shape[:axis] + (1,) + t.shape[axis:]
            )
            _, block = _blocks(shape, axis, t.itemsize)
            c.call(
                f"tinyc_copy_blocks({outer}, {block}, {block}, {dst_block}, {c.ptr(name)}, "
                f"(uint8_t *){c.ptr(node.outputs[0])} + {offset});"
            )
            offset += block


@emitter
class SplitEmitter(Emitter):
    """SPLIT, SPLIT_V and UNPACK: each output is copied out of its slice of the input."""

    kinds = ("SPLIT", "SPLIT_V", "UNPACK")

    def emit(self, node, g, c):
        x = g.inp(node, 0)
        assert x is not None
        axis = normalize_axis(attr(node, "axis"), len(x.shape), node)
        outer, src_block = _blocks(x.shape, axis, x.itemsize)
        offset = 0
        c.need("move.c")
        for name in node.outputs:
            t = g.tensors[name]
            shape = t.shape if node.op != "UNPACK" else t.shape[:axis] + (1,) + t.shape[axis:]
            _, block = _blocks(shape, axis, t.itemsize)
            c.call(
                f"tinyc_copy_blocks({outer}, {block}, {src_block}, {block}, "
                f"(const uint8_t *){c.ptr(node.inputs[0])} + {offset}, {c.ptr(name)});"
            )
            offset += block
