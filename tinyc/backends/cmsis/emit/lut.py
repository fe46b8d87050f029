"""Elementwise int8 -> int8 ops compiled into 256-entry tables.

The table is computed by the op's own reference implementation over all 256 inputs, so
the kernel is bit-exact by construction whatever the op's arithmetic.
"""

from __future__ import annotations

import numpy as np

from tinyc.backends.cmsis.emit.base import Emitter, emitter, require_int8
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import get_op

ALL_INT8 = np.arange(256, dtype=np.uint8).view(np.int8)


def lookup_table(node: Node, g: Graph) -> np.ndarray:
    (table,) = get_op(node.op).eval_quant(node, g, [ALL_INT8.copy()])
    return table.astype(np.int8)


@emitter
class LutEmitter(Emitter):
    kinds = ("LOGISTIC", "TANH", "RELU", "RELU6", "HARD_SWISH")

    def alias(self, node, g):
        return 0, "inplace"

    def emit(self, node, g, c):
        require_int8(node, g)
        emit_lut(node, g, c)


def emit_lut(node, g, c) -> None:
    table = c.const_array(f"lut_{node.name}", lookup_table(node, g), "int8_t")
    c.need("lut_s8.c")
    c.call(
        f"tinyc_lut_s8({g.out(node).size}, {table}, {c.ptr(node.inputs[0])}, "
        f"{c.ptr(node.outputs[0])});"
    )
