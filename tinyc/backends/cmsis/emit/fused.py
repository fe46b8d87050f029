"""The emitters of fused layer groups (see tinyc.backends.cmsis.fusion)."""

from __future__ import annotations

import math

from tinyc.backends.cmsis.emit.base import Emitter, emitter
from tinyc.backends.cmsis.emit.conv import ConvEmitter, DepthwiseEmitter, quad_rows, ring_bytes
from tinyc.backends.cmsis.emit.conv import _geometry as geometry
from tinyc.backends.cmsis.emit.elementwise import AddSubEmitter
from tinyc.backends.cmsis.fusion import FUSED_CONV_CONV, FUSED_CONV_DW
from tinyc.ir.graph import Graph, Node

CONV = ConvEmitter()
DW = DepthwiseEmitter()
ADDSUB = AddSubEmitter()


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


def _align4(n: int) -> int:
    return (n + 3) // 4 * 4


#: output rows per step of a fused convolution chain, by target: a multiple of the pixels
#: the target's matrix kernels take at once (3 on DSP cores, 2 elsewhere) for the usual
#: even widths, so no block is padded with a repeated pixel
CHAIN_ROWS = {"dsp": 3, "mve": 2, "plain": 2}


class ChainShape:
    """The numbers of a fused CONV_2D -> CONV_2D [-> ADD] group: a producer output row is a
    consumer input row (``row_in`` bytes); ``rows`` consumer output rows (``row_out`` bytes
    each) are made per step from a window of ``span`` input rows."""

    def __init__(self, node: Node, g: Graph, target: str):
        self.producer: Node = node.attrs["producer"]
        self.consumer: Node = node.attrs["consumer"]
        self.add: Node | None = node.attrs["add"]
        self.gp, self.gc = geometry(self.producer, g), geometry(self.consumer, g)
        gc = self.gc
        block = CHAIN_ROWS.get(target, 1)
        self.rows = min(block, gc["out_h"])
        # producer rows per call: whole blocks of pixels
        self.batch = min(block // math.gcd(block, self.gp["out_w"]), self.gp["out_h"])
        self.row_in = self.gp["out_w"] * self.gp["out_c"]
        self.span = (gc["k_h"] - 1) * gc["dil_h"] + 1 + (self.rows - 1) * gc["s_h"] + self.batch - 1
        self.row_out = gc["out_w"] * gc["out_c"]
        self.window = _align4(self.span * self.row_in)
        self.tmp = _align4(self.rows * self.row_out) if self.add is not None else 0

    def steps(self) -> list[tuple[int, int, int]]:
        """(first output row, rows, producer rows made by then) of every step."""
        gc, out, made = self.gc, [], 0
        for oy in range(0, gc["out_h"], self.rows):
            n = min(self.rows, gc["out_h"] - oy)
            need = (oy + n - 1) * gc["s_h"] - gc["pad_t"] + (gc["k_h"] - 1) * gc["dil_h"] + 1
            while made < min(gc["in_h"], need):
                made = min(made + self.batch, gc["in_h"])
            out.append((oy, n, made))
        return out


@emitter
class FusedConvConvEmitter(Emitter):
    """A convolution computed row by row into the window of rows the next convolution
    reads, with that one's residual ADD applied to its output rows as they are made."""

    kinds = (FUSED_CONV_CONV,)

    def scratch(self, node, g, target):
        s = ChainShape(node, g, target)
        kernels = max(CONV.scratch(s.producer, g, target), CONV.scratch(s.consumer, g, target))
        return s.window + s.tmp + kernels

    def alias(self, node, g):
        """The ADD's output may replace its other operand (each row is read before it is
        written); when that operand is also the producer's input, only if every row still
        to be read lies past the rows written (checked for the largest step of any
        target)."""
        if node.attrs["add"] is None:
            return None
        if node.inputs[1] != node.inputs[0]:
            return 1, "inplace"
        for target in CHAIN_ROWS:
            s = ChainShape(node, g, target)
            gp = s.gp
            row_x = gp["in_w"] * gp["in_c"]
            for oy, n, made in s.steps():
                if made >= s.gc["in_h"]:
                    break
                first_read = max(made * gp["s_h"] - gp["pad_t"], 0)
                if (oy + n) * s.row_out > first_read * row_x:
                    return None
        return 1, "inplace"

    def emit(self, node, g, c):
        s = ChainShape(node, g, c.target)
        gp, gc = s.gp, s.gc
        base = c.scratch()
        kscratch = f"((int8_t *){base} + {s.window + s.tmp})"
        producer = c.symbol(f"rows_{s.producer.name}")
        body = CONV.calls(
            s.producer, g, c, c.ptr(s.producer.inputs[0]), "dst", f"row * {gp['out_w']}",
            f"(row + n) * {gp['out_w']}", kscratch,
        )  # fmt: skip
        c.decls.append(
            f"/* {s.producer.op} {s.producer.name[:60]}: n output rows, into the window */\n"
            f"static void {producer}(int32_t row, int32_t n, int8_t *dst) {{\n"
            + "".join(f"  {line}\n" for line in body.splitlines())
            + "}"
        )
        out = c.ptr(node.outputs[0])
        made = f"((int8_t *){base} + {s.window})"
        dst = made if s.add is not None else f"{out} + oy * {s.row_out}"
        consumer = CONV.calls(
            s.consumer, g, c, "win", dst, "0", f"n * {gc['out_w']}", kscratch,
            rows=("hi - lo", "lo - y0"),
        )  # fmt: skip
        k_span = (gc["k_h"] - 1) * gc["dil_h"] + 1
        lines = [
            f"int8_t *win = (int8_t *){base};",
            "int32_t oy, have0 = 0, have1 = 0; /* the window holds producer rows [have0, have1) */",
            f"for (oy = 0; oy < {gc['out_h']}; oy += {s.rows}) {{",
            f"  const int32_t n = {gc['out_h']} - oy < {s.rows} ? {gc['out_h']} - oy : {s.rows};",
            f"  const int32_t y0 = oy * {gc['s_h']} - {gc['pad_t']};",
            f"  const int32_t y1 = (oy + n - 1) * {gc['s_h']} - {gc['pad_t']} + {k_span};",
            "  const int32_t lo = y0 < 0 ? 0 : y0;",
            f"  const int32_t hi = y1 < {gc['in_h']} ? y1 : {gc['in_h']};",
            "  if (lo >= have1) {",
            "    have0 = have1 = lo;",
            "  } else if (lo > have0) {",
            f"    tinyc_move_down(win, win + (lo - have0) * {s.row_in},",
            f"                    (have1 - lo) * {s.row_in});",
            "    have0 = lo;",
            "  }",
            "  while (have1 < hi) {",
            f"    const int32_t m = {gp['out_h']} - have1 < {s.batch} ? {gp['out_h']} - have1 : "
            f"{s.batch};",
            f"    {producer}(have1, m, win + (have1 - have0) * {s.row_in});",
            "    have1 += m;",
            "  }",
            *(f"  {line}" for line in consumer.splitlines()),
        ]
        if s.add is not None:
            # an out-of-line function: its loop keeps its constants in registers
            skip = f"{c.ptr(node.inputs[1])} + oy * {s.row_out}"
            x, y = (made, skip) if s.add.inputs[0] == s.consumer.outputs[0] else (skip, made)
            add_rows = c.symbol(f"add_rows_{s.add.name}")
            call = ADDSUB.flat_call(s.add, g, c, "x", "y", "o", f"n * {s.row_out}")
            c.decls.append(
                f"/* {s.add.op} {s.add.name[:60]}: n rows */\n"
                f"static void __attribute__((noinline)) {add_rows}(int32_t n, const int8_t *x, "
                f"const int8_t *y, int8_t *o) {{\n  {call}\n}}"
            )
            lines.append(f"  {add_rows}(n, {x}, {y}, {out} + oy * {s.row_out});")
        lines.append("}")
        c.call("\n".join(lines))
