"""Run-time lookups: EMBEDDING_LOOKUP (rows of a table picked by run-time ids) and
BROADCAST_ARGS (the broadcast of two run-time shapes), as TFLite Micro defines them."""

from __future__ import annotations

import numpy as np

from tinyc.errors import TinycError
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops.base import OpDef, Spec, register


@register
class EmbeddingLookup(OpDef):
    """y[i] = table[ids[i]]: inputs (ids int32 [n], table [rows, ...]). int8 and float rows
    are copied raw; an int8 table with a float output is dequantized (TFLM's hybrid path:
    scale * q in float32, zero point 0). An id outside [0, rows) is an error, as in TFLM."""

    kind = "EMBEDDING_LOOKUP"
    int8_semantics = "tflm"

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        ids, table = g.inp(node, 0), g.inp(node, 1)
        assert ids is not None and table is not None
        return [((ids.shape[0], *table.shape[1:]), g.out(node).dtype)]

    def check(self, node: Node, g: Graph) -> None:
        ids, table, y = g.inp(node, 0), g.inp(node, 1), g.out(node)
        assert ids is not None and table is not None
        if ids.dtype != "int32" or len(ids.shape) != 1 or len(table.shape) < 2:
            raise TinycError(
                f"node {node.name!r} (EMBEDDING_LOOKUP): needs 1-D int32 ids and a table of "
                "rank 2 or more"
            )
        hybrid = table.dtype == "int8" and y.dtype == "float32"
        if table.dtype not in ("int8", "float32") or (y.dtype != table.dtype and not hybrid):
            raise TinycError(
                f"node {node.name!r} (EMBEDDING_LOOKUP): a {table.dtype} table gives "
                f"{table.dtype} (or float32 from int8), not {y.dtype}"
            )
        if hybrid and (table.quant is None or table.quant.per_channel or table.quant.zp != 0):
            raise TinycError(
                f"node {node.name!r} (EMBEDDING_LOOKUP): an int8 table read as float needs "
                "one scale and zero point 0"
            )

    def quantized(self, node: Node, g: Graph) -> bool:
        return False

    def eval_float(self, node, g, xs):
        ids, table = xs[0], xs[1]
        assert ids is not None and table is not None
        bad = (ids < 0) | (ids >= table.shape[0])
        if bad.any():
            raise TinycError(
                f"node {node.name!r} (EMBEDDING_LOOKUP): id {int(ids[bad][0])} is outside the "
                f"table's {table.shape[0]} rows"
            )
        rows = table[ids]
        t, y = g.inp(node, 1), g.out(node)
        if y.dtype == "float32" and t is not None and t.dtype == "int8" and t.quant is not None:
            return [(t.quant.s * rows.astype(np.float32)).astype(np.float32)]
        return [np.ascontiguousarray(rows)]

    def bytes_moved(self, node: Node, g: Graph) -> tuple[int, int]:
        ids, y = g.tensors[node.inputs[0]], g.out(node)
        return ids.nbytes + y.nbytes, y.nbytes


@register
class BroadcastArgs(OpDef):
    """The shape two shapes broadcast to (1-D int32 or int64 inputs of any lengths)."""

    kind = "BROADCAST_ARGS"
    int8_semantics = "tflm"

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        a, b = g.inp(node, 0), g.inp(node, 1)
        assert a is not None and b is not None
        return [((max(a.size, b.size),), a.dtype)]

    def check(self, node: Node, g: Graph) -> None:
        a, b = g.inp(node, 0), g.inp(node, 1)
        assert a is not None and b is not None
        if a.dtype not in ("int32", "int64") or b.dtype != a.dtype or len(a.shape) != 1:
            raise TinycError(f"node {node.name!r} (BROADCAST_ARGS): two 1-D int32/int64 shapes")

    def quantized(self, node: Node, g: Graph) -> bool:
        return False

    def eval_float(self, node, g, xs):
        a, b = xs[0], xs[1]
        assert a is not None and b is not None
        try:
            shape = np.broadcast_shapes(tuple(int(d) for d in a), tuple(int(d) for d in b))
        except ValueError:
            raise TinycError(
                f"node {node.name!r} (BROADCAST_ARGS): shapes {a.tolist()} and {b.tolist()} do "
                "not broadcast"
            ) from None
        return [np.asarray(shape, dtype=a.dtype)]
