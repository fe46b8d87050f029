"""SKIP_GATE, the branch around a guarded node (tinyc.ir.ops.skip), and the copies in and out
of resource variables (tinyc.ir.ops.variables).

The gate compares the frame with the last processed one (early exit at the first element
that differs by the threshold or more), writes its one-byte state and copies the frame when
it opens. A guarded node's kernel call sits inside ``if (gate) { ... }``; the ``else``
branch copies the held outputs (the layer's state) -- the kernel's matrix work is really
skipped, not computed and masked.
"""

from __future__ import annotations

from tinyc.backends.cmsis.emit.base import Emitter, emitter
from tinyc.errors import UnsupportedError
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import attr
from tinyc.ir.ops.skip import guard_of, held_sources


@emitter
class SkipGateEmitter(Emitter):
    kinds = ("SKIP_GATE",)

    def emit(self, node, g, c):
        x = g.inp(node, 0)
        assert x is not None
        if x.dtype != "int8":
            raise UnsupportedError(f"node {node.name!r} (SKIP_GATE): the C backend needs int8")
        threshold = int(attr(node, "threshold"))
        gate = c.ptr(node.outputs[0], "int8_t")
        last = c.ptr(node.inputs[1], "int8_t")
        if threshold <= 0:
            c.call(f"{gate}[0] = 1;\nmemcpy({last}, {c.ptr(node.inputs[0])}, {x.nbytes}u);")
            return
        c.call(
            f"const int8_t *x = {c.ptr(node.inputs[0], 'int8_t')};\n"
            f"int8_t *last = {last};\n"
            "int8_t open = 0;\n"
            f"for (int32_t i = 0; i < {x.size}; ++i) {{\n"
            "  int32_t d = (int32_t)x[i] - (int32_t)last[i];\n"
            f"  if (d >= {threshold} || d <= -{threshold}) {{ open = 1; break; }}\n"
            "}\n"
            f"{gate}[0] = open;\n"
            f"if (open) memcpy(last, x, {x.nbytes}u);"
        )


def guard_body(node: Node, g: Graph, c, body: list[str]) -> list[str]:
    """``body`` (a node function's lines) run only when the node's gate is open; closed,
    the held outputs are copied from the state."""
    gate = guard_of(node)
    if not gate:
        return body
    held = [
        f"  memcpy({c.ptr(out, 'int8_t')}, {c.ptr(src, 'int8_t')}, {g.tensors[out].nbytes}u);"
        for out, src in held_sources(node)
        if c.ptr(out, "int8_t") != c.ptr(src, "int8_t")
    ]
    return [
        f"if ({c.ptr(gate, 'int8_t')}[0]) {{",
        *(f"  {line}" for line in body),
        *(["} else {", *held, "}"] if held else ["}"]),
    ]


@emitter
class VariableEmitter(Emitter):
    """READ_VARIABLE and ASSIGN_VARIABLE (tinyc.ir.ops.variables): raw copies between the
    variable's state RAM and the arena."""

    kinds = ("READ_VARIABLE", "ASSIGN_VARIABLE")

    def emit(self, node, g, c):
        src, dst = node.inputs[0], node.outputs[0]
        if c.ptr(src) != c.ptr(dst):
            c.call(f"memcpy({c.ptr(dst)}, {c.ptr(src)}, {g.tensors[dst].nbytes}u);")
