"""Emitters of the table-defined elementwise ops (tinyc.ir.ops.table): their 256-entry
table through the LUT kernel."""

from __future__ import annotations

from tinyc.backends.cmsis.emit.base import Emitter, emitter, require_int8
from tinyc.backends.cmsis.emit.lut import emit_lut


@emitter
class TableEmitter(Emitter):
    kinds = ("SQRT",)

    def alias(self, node, g):
        return 0, "inplace"

    def emit(self, node, g, c):
        require_int8(node, g)
        emit_lut(node, g, c)
