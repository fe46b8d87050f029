"""TRANSPOSE_CONV emitter (transpose_conv_s8.c, one call per batch)."""

from __future__ import annotations

import numpy as np

from tinyc.backends.cmsis.emit.base import Emitter, emitter, require_int8
from tinyc.errors import UnsupportedError
from tinyc.ir.ops import attr, get_op


@emitter
class TransposeConvEmitter(Emitter):
    kinds = ("TRANSPOSE_CONV",)

    def emit(self, node, g, c):
        require_int8(node, g)
        op = get_op("TRANSPOSE_CONV")
        x, w, b, y = g.inp(node, 0), g.inp(node, 1), g.inp(node, 2), g.out(node)
        assert x is not None and w is not None and w.data is not None
        rq = op.requant(node, g)  # type: ignore[attr-defined]
        bias = np.zeros(w.shape[0], np.int32) if b is None else b.data.astype(np.int32)
        bsym = c.const_array(f"bias_{node.name}", bias, "int32_t")
        msym = c.const_array(f"mult_{node.name}", rq.multiplier.astype(np.int32), "int32_t")
        ssym = c.const_array(f"shift_{node.name}", rq.shift.astype(np.int32), "int32_t")
        q = c.const_struct(
            f"rq_{node.name}",
            "tinyc_requant_t",
            f"{bsym}, {msym}, {ssym}, {rq.output_zp}, {rq.act_min}, {rq.act_max}",
        )
        sh, sw = attr(node, "stride")
        top, _, left, _ = attr(node, "pads")
        fields = [*x.shape[1:], *y.shape[1:], w.shape[1], w.shape[2], sh, sw, top, left]
        fields.append(op.groups(node, g))  # type: ignore[attr-defined]
        if max(fields) > 65535:
            raise UnsupportedError(f"node {node.name!r}: TRANSPOSE_CONV dimensions too large")
        p = c.const_struct(
            f"tconv_{node.name}", "tinyc_tconv_t", ", ".join(map(str, [*fields, rq.input_zp]))
        )
        wsym = c.const_array(f"w_{node.name}", w.data, "int8_t")
        c.need("transpose_conv_s8.c")
        step_in, step_out = x.size // x.shape[0], y.size // y.shape[0]
        for n in range(x.shape[0]):
            c.call(
                f"tinyc_transpose_conv_s8(&{p}, &{q}, {c.ptr(node.inputs[0])} + {n * step_in}, "
                f"{wsym}, {c.ptr(node.outputs[0])} + {n * step_out});"
            )
