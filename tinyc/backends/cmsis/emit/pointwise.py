"""Emitters of the one-input elementwise ops of tinyc.ir.ops.unary: the int8 ones as a
256-entry table computed from the op's own reference (bit-exact by construction);
LOGICAL_NOT and CAST as loops (convert.c, binary_s8.c)."""

from __future__ import annotations

from tinyc.backends.cmsis.emit.base import Emitter, emitter, require_int8
from tinyc.backends.cmsis.emit.lut import emit_lut
from tinyc.errors import UnsupportedError

#: int8 -> int8 elementwise ops whose C is their table
TABLE_KINDS = (
    "LEAKY_RELU",
    "ABS",
    "RSQRT",
    "ELU",
    "EXP",
    "LOG",
    "NEG",
    "SIN",
    "COS",
    "SQUARE",
    "FLOOR",
    "CEIL",
    "ROUND",
)

#: IR dtype -> the type code of tinyc_cast
CAST_CODES = {"int8": 1, "int16": 2, "int32": 3, "float32": 4, "uint8": 5, "bool": 6}


@emitter
class PointwiseTableEmitter(Emitter):
    kinds = TABLE_KINDS

    def alias(self, node, g):
        return 0, "inplace"

    def emit(self, node, g, c):
        require_int8(node, g)
        emit_lut(node, g, c)


@emitter
class LogicalNotEmitter(Emitter):
    kinds = ("LOGICAL_NOT",)

    def alias(self, node, g):
        return 0, "inplace"

    def emit(self, node, g, c):
        c.need("binary_s8.c")
        c.call(
            f"tinyc_logical_not({g.out(node).size}, {c.ptr(node.inputs[0])}, "
            f"{c.ptr(node.outputs[0])});"
        )


@emitter
class CastEmitter(Emitter):
    kinds = ("CAST",)

    def emit(self, node, g, c):
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None
        if x.dtype not in CAST_CODES or y.dtype not in CAST_CODES:
            raise UnsupportedError(f"node {node.name!r}: CAST {x.dtype} -> {y.dtype} in C")
        c.need("convert.c")
        c.call(
            f"tinyc_cast({y.size}, {CAST_CODES[x.dtype]}, {CAST_CODES[y.dtype]}, "
            f"{c.ptr(node.inputs[0])}, {c.ptr(node.outputs[0])});"
        )
