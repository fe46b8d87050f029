"""SVDF emitter (tinyc/runtime/svdf_s8.c): the state is the model's state tensor."""

from __future__ import annotations

from tinyc.backends.cmsis.emit.base import Emitter, emitter
from tinyc.ir.ops import get_op
from tinyc.ir.ops.svdf import STATE, WF, WT, B, X


@emitter
class SvdfEmitter(Emitter):
    kinds = ("SVDF",)

    def scratch(self, node, g, target):
        d = get_op("SVDF").dims(node, g)
        return 4 * d.batch * d.filters

    def emit(self, node, g, c):
        op = get_op("SVDF")
        d, q = op.dims(node, g), op.quant_params(node, g)
        wt = g.inp(node, WT)
        assert wt is not None
        bias = g.inp(node, B)
        fields = (
            f"{d.batch}, {d.input}, {d.filters}, {d.units}, {d.memory}, {d.rank}, "
            f"{wt.itemsize}, {q.input_zp}, {q.state_zp}, {q.output_zp}, "
            f"{q.scale_1[0]}, {q.scale_1[1]}, {q.scale_2[0]}, {q.scale_2[1]}, "
            f"{c.ptr(node.inputs[WF])}, {c.ptr(node.inputs[WT])}, "
            f"{c.ptr(bias.name) if bias is not None else '0'}"
        )
        p = c.const_struct(f"svdf_{node.name}", "tinyc_svdf_t", fields)
        c.need("svdf_s8.c")
        c.call(
            f"tinyc_svdf_s8(&{p}, {c.ptr(node.inputs[X])}, {c.ptr(node.inputs[STATE])}, "
            f"{c.ptr(node.outputs[0])}, {c.scratch('int32_t')});"
        )
