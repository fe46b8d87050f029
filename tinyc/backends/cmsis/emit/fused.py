"""The fused CONV_2D -> DEPTHWISE_CONV_2D emitter (see tinyc.backends.cmsis.fusion)."""

from __future__ import annotations

from tinyc.backends.cmsis.emit.base import Emitter, emitter
from tinyc.backends.cmsis.emit.conv import ConvEmitter, DepthwiseEmitter, quad_rows, ring_bytes
from tinyc.backends.cmsis.emit.conv import _geometry as geometry
from tinyc.backends.cmsis.fusion import FUSED_CONV_DW

CONV = ConvEmitter()
DW = DepthwiseEmitter()


@emitter
class FusedConvDepthwiseEmitter(Emitter):
    kinds = (FUSED_CONV_DW,)

    def scratch(self, node, g, target):
        conv, dw = node.attrs["conv"], node.attrs["dw"]
        ring = ring_bytes(geometry(dw, g), quad_rows(dw, g, target), staged=True)
        return ring + CONV.scratch(conv, g, target)

    def emit(self, node, g, c):
        conv, dw = node.attrs["conv"], node.attrs["dw"]
        out_w = g.out(conv).shape[2]
        ring = ring_bytes(geometry(dw, g), quad_rows(dw, g, c.target), staged=True)
        producer = c.symbol(f"rows_{conv.name}")
        body = CONV.calls(
            conv, g, c, c.ptr(conv.inputs[0]), "dst", f"row * {out_w}", f"(row + 1) * {out_w}",
            f"((int8_t *){c.scratch()} + {ring})",
        )  # fmt: skip
        c.decls.append(
            f"/* {conv.op} {conv.name[:60]}: one output row, into the depthwise ring */\n"
            f"static void {producer}(int32_t row, int8_t *dst) {{\n"
            + "".join(f"  {line}\n" for line in body.splitlines())
            + "}"
        )
        DW.emit_call(dw, g, c, src="0", produce=producer)
