"""KRONECKER_FC emitter (tinyc/runtime/kron_s8.c): the factors stay int8 in flash; the
int16 intermediate Z_r^T of one row lives in the node's scratch."""

from __future__ import annotations

import numpy as np

from tinyc.backends.cmsis.emit.base import Emitter, emitter, require_int8
from tinyc.ir.ops import get_op
from tinyc.ir.ops.kronecker import BIAS, A, B, X


@emitter
class KroneckerFCEmitter(Emitter):
    kinds = ("KRONECKER_FC",)

    def scratch(self, node, g, target):
        d = get_op("KRONECKER_FC").dims(node, g)
        return 2 * d.rank * d.s * d.q

    def emit(self, node, g, c):
        require_int8(node, g)
        op = get_op("KRONECKER_FC")
        d, qp = op.dims(node, g), op.quant_params(node, g)
        a, b = g.inp(node, A), g.inp(node, B)
        assert a is not None and a.data is not None and b is not None and b.data is not None
        bias = g.inp(node, BIAS)
        b_off = -qp.input_zp * b.data.astype(np.int64).sum(axis=2).reshape(-1)
        m1 = c.const_array(f"kron_m1_{node.name}", qp.mult1.astype(np.int32), "int32_t")
        s1 = c.const_array(f"kron_s1_{node.name}", qp.shift1.astype(np.int32), "int32_t")
        off = c.const_array(f"kron_off_{node.name}", b_off.astype(np.int32), "int32_t")
        # [p][rank][q]: one stage-2 dot over every r and j per output
        a_packed = c.const_array(f"kron_a_{node.name}", a.data.transpose(1, 0, 2), "int8_t")
        fields = (
            f"{d.rows}, {d.rank}, {d.p}, {d.q}, {d.s}, {d.t}, "
            f"{qp.output_zp}, {qp.inner_max}, {qp.act_min}, {qp.act_max}, "
            f"{qp.mult2}, {qp.shift2}, {m1}, {s1}, {off}, "
            f"{a_packed}, {c.ptr(node.inputs[B])}, "
            f"{c.ptr(bias.name) if bias is not None else '0'}"
        )
        p = c.const_struct(f"kron_{node.name}", "tinyc_kron_t", fields)
        c.need("kron_s8.c")
        c.call(
            f"tinyc_kron_fc_s8(&{p}, {c.ptr(node.inputs[X])}, {c.ptr(node.outputs[0])}, "
            f"{c.scratch('int16_t')});"
        )
