"""AVERAGE_POOL_2D and MAX_POOL_2D emitters."""

from __future__ import annotations

from tinyc.backends.cmsis.emit.base import Emitter, emitter, require_int8
from tinyc.backends.cmsis.emit.generic import window_struct
from tinyc.ir.ops import attr
from tinyc.ir.ops.base import activation_range_quant


@emitter
class PoolEmitter(Emitter):
    kinds = ("AVERAGE_POOL_2D", "MAX_POOL_2D")

    def emit(self, node, g, c):
        require_int8(node, g)
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None
        lo, hi = activation_range_quant(attr(node, "activation"), y)
        win = window_struct(c, node, g, tuple(attr(node, "filter")), 0)
        fn = "tinyc_avgpool_s8" if node.op == "AVERAGE_POOL_2D" else "tinyc_maxpool_s8"
        c.need("pool_s8.c")
        step_in, step_out = x.size // x.shape[0], y.size // y.shape[0]
        for b in range(x.shape[0]):
            c.call(
                f"{fn}(&{win}, {lo}, {hi}, {c.ptr(node.inputs[0])} + {b * step_in}, "
                f"{c.ptr(node.outputs[0])} + {b * step_out});"
            )
