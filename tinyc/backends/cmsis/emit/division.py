"""DIV emitter: the divisor's reciprocals tabulated at compile time (div_s8.c)."""

from __future__ import annotations

import numpy as np

from tinyc.backends.cmsis.emit.base import Emitter, emitter, require_int8
from tinyc.backends.cmsis.emit.elementwise import broadcast_struct, same_shape_input
from tinyc.ir.ops import get_op
from tinyc.ir.ops.division import divisor_reciprocal


def reciprocal_tables() -> tuple[np.ndarray, np.ndarray]:
    """GetReciprocal(d, 31) for d = |divisor - zero point| in [0, 255] (0 as 1)."""
    d = np.maximum(np.arange(256, dtype=np.int64), 1)
    recip, shift = divisor_reciprocal(d)
    return recip.astype(np.int32), shift.astype(np.int8)


@emitter
class DivEmitter(Emitter):
    kinds = ("DIV",)

    def alias(self, node, g):
        return same_shape_input(node, g)

    def emit(self, node, g, c):
        require_int8(node, g)
        p = get_op("DIV").div_params(node, g)  # type: ignore[attr-defined]
        recip, shift = reciprocal_tables()
        rsym = c.const_array("div_recip", recip, "int32_t")
        ssym = c.const_array("div_recip_shift", shift, "int8_t")
        fields = (
            f"{rsym}, {ssym}, {p.input1_zp}, {p.input2_zp}, {p.output_zp}, {p.multiplier}, "
            f"{p.shift}, {p.act_min}, {p.act_max}"
        )
        ps = c.const_struct(f"div_{node.name}", "tinyc_div_t", fields)
        bc = broadcast_struct(c, node, g)
        c.need("div_s8.c")
        c.call(
            f"tinyc_div_s8(&{bc}, &{ps}, {c.ptr(node.inputs[0])}, {c.ptr(node.inputs[1])}, "
            f"{c.ptr(node.outputs[0])});"
        )
