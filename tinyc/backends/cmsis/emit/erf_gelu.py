"""GELU and ERF emitters: their int8 tables through the LUT kernel."""

from __future__ import annotations

from tinyc.backends.cmsis.emit.base import Emitter, emitter, require_int8
from tinyc.backends.cmsis.emit.lut import emit_lut


@emitter
class ErfGeluEmitter(Emitter):
    kinds = ("GELU", "ERF")

    def alias(self, node, g):
        return 0, "inplace"

    def emit(self, node, g, c):
        require_int8(node, g)
        emit_lut(node, g, c)
