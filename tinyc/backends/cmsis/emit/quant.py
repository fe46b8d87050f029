"""QUANTIZE and DEQUANTIZE emitters (int8 -> int8 requantization is a table lookup)."""

from __future__ import annotations

import numpy as np

from tinyc.backends.cmsis.emit.base import Emitter, emitter
from tinyc.backends.cmsis.emit.lut import emit_lut
from tinyc.errors import UnsupportedError
from tinyc.ir.ops import get_op
from tinyc.ir.tensor import dtype_range


@emitter
class QuantizeEmitter(Emitter):
    kinds = ("QUANTIZE",)

    def alias(self, node, g):
        return (0, "inplace") if g.inp(node, 0).dtype == "int8" else None

    def emit(self, node, g, c):
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None and y.quant is not None
        ints = ("int8", "int16", "int32")
        if x.dtype in ints and y.dtype in ints and (x.dtype, y.dtype) != ("int8", "int8"):
            p = get_op("QUANTIZE").requant(node, g)
            lo, hi = dtype_range(y.dtype)
            c.need("quantize.c")
            c.call(
                f"tinyc_requantize({y.size}, {x.itemsize}, {y.itemsize}, {p.input_zp}, "
                f"{p.output_zp}, {p.multiplier}, {p.shift}, {lo}, {hi}, "
                f"{c.ptr(node.inputs[0])}, {c.ptr(node.outputs[0])});"
            )
            return
        if y.dtype != "int8":
            raise UnsupportedError(f"node {node.name!r}: QUANTIZE to {y.dtype} in the C backend")
        if x.dtype == "int8":
            emit_lut(node, g, c)
        elif x.dtype == "float32":
            c.need("quantize.c")
            c.call(
                f"tinyc_quantize_f32_s8({y.size}, {float(np.float32(y.quant.s))!r}f, "
                f"{y.quant.zp}, {c.ptr(node.inputs[0])}, {c.ptr(node.outputs[0])});"
            )
        else:
            raise UnsupportedError(f"node {node.name!r}: QUANTIZE from {x.dtype} in the C backend")


@emitter
class DequantizeEmitter(Emitter):
    kinds = ("DEQUANTIZE",)

    def emit(self, node, g, c):
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None and x.quant is not None
        if x.dtype != "int8" or x.quant.per_channel:
            raise UnsupportedError(f"node {node.name!r}: DEQUANTIZE of {x.dtype} in the C backend")
        c.need("quantize.c")
        c.call(
            f"tinyc_dequantize_s8_f32({y.size}, {float(np.float32(x.quant.s))!r}f, "
            f"{x.quant.zp}, {c.ptr(node.inputs[0])}, {c.ptr(node.outputs[0])});"
        )
