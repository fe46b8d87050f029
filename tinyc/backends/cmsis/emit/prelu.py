"""PRELU emitter: a 256-entry table when alpha is one value, else the broadcasting kernel."""

from __future__ import annotations

import numpy as np

from tinyc.backends.cmsis.emit.base import Emitter, emitter, require_int8
from tinyc.backends.cmsis.emit.elementwise import broadcast_struct
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import get_op
from tinyc.ir.ops.table import ALL_INT8


def prelu_table(node: Node, g: Graph) -> np.ndarray:
    """int8[256]: PRELU of every input value for a single-valued alpha."""
    alpha = g.inp(node, 1)
    assert alpha is not None and alpha.data is not None
    (table,) = get_op("PRELU").eval_quant(node, g, [ALL_INT8.copy(), alpha.data.reshape(-1)[:1]])
    return table.astype(np.int8)


@emitter
class PreluEmitter(Emitter):
    kinds = ("PRELU",)

    def alias(self, node, g):
        return 0, "inplace"

    def emit(self, node, g, c):
        require_int8(node, g)
        alpha = g.inp(node, 1)
        assert alpha is not None
        if alpha.is_const and alpha.size == 1:
            table = c.const_array(f"lut_{node.name}", prelu_table(node, g), "int8_t")
            c.need("lut_s8.c")
            c.call(
                f"tinyc_lut_s8({g.out(node).size}, {table}, {c.ptr(node.inputs[0])}, "
                f"{c.ptr(node.outputs[0])});"
            )
            return
        p = get_op("PRELU").prelu_params(node, g)  # type: ignore[attr-defined]
        fields = ", ".join(
            str(v)
            for v in (
                p.input_zp,
                p.alpha_zp,
                p.output_zp,
                p.multiplier_1,
                p.shift_1,
                p.multiplier_2,
                p.shift_2,
            )
        )
        ps = c.const_struct(f"prelu_{node.name}", "tinyc_prelu_t", fields)
        bc = broadcast_struct(c, node, g)
        c.need("prelu_s8.c")
        c.call(
            f"tinyc_prelu_s8(&{bc}, &{ps}, {c.ptr(node.inputs[0])}, {c.ptr(node.inputs[1])}, "
            f"{c.ptr(node.outputs[0])});"
        )
