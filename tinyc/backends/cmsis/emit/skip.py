"""SKIP_GATE, the branch around a guarded node (tinyc.ir.ops.skip), and the copies in and out
of resource variables (tinyc.ir.ops.variables).

The gate compares the frame with the last processed one (early exit at the first element
that differs by the threshold or more), writes its one-byte state and copies the frame when
it opens. A guarded node's kernel call sits inside ``if (gate) { ... }``; the ``else``
branch copies the held outputs (the layer's state) -- the kernel's matrix work is really
skipped, not computed and masked.

SKIP_GATE_LEARNED (a learned Skip-LSTM / Skip-GRU gate): one int8 dot product of the hidden
state with the gate's weights, requantized to Q3.12, the recurrent kernels' int16 sigmoid
(tinyc_rnn.h), then the update of q = 1 - p and the gate; the integer steps are the op's
(tinyc/ir/ops/skip.py).
"""

from __future__ import annotations

import numpy as np

from tinyc.backends.cmsis.emit.base import Emitter, emitter
from tinyc.errors import UnsupportedError
from tinyc.ir import fixedpoint as fp
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import attr, get_op
from tinyc.ir.ops.skip import LB, LGATE, LH, LQ, LW, Q_ONE, guard_of, held_sources, runs_stepwise


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


@emitter
class SkipGateLearnedEmitter(Emitter):
    kinds = ("SKIP_GATE_LEARNED",)

    def emit(self, node, g, c):
        op = get_op(node.op)
        where = f"node {node.name!r} (SKIP_GATE_LEARNED)"
        if not op.quantized(node, g):
            raise UnsupportedError(f"{where}: the C backend needs int8 (--calibration)")
        if runs_stepwise(g):
            raise UnsupportedError(
                f"{where}: a learned skip gate decides once per time step; compile the "
                "streaming form (--stream, one step per invocation)"
            )
        h = g.tensors[node.inputs[LH]]
        w = g.tensors[node.inputs[LW]].data.reshape(-1).astype(np.int64)
        b = int(g.tensors[node.inputs[LB]].data.reshape(-1)[0])
        fold = b - h.quant.zp * int(w.sum())  # sum((h - zp) w) + b = sum(h w) + fold
        if not -(1 << 31) <= fold < (1 << 31):
            raise UnsupportedError(f"{where}: the folded bias exceeds int32")
        mult, shift = op.multiplier(node, g)
        wsym = c.const_array(f"w_{node.name}", w.astype(np.int8), "int8_t")
        table = c.const_array("tinyc_sigmoid_q16", fp.sigmoid_table_q16().astype(np.uint16),
                              "uint16_t")  # fmt: skip
        c.need_header("tinyc_rnn.h")
        c.call(
            f"const int8_t *h = {c.ptr(node.inputs[LH], 'int8_t')};\n"
            f"int32_t *q = {c.ptr(node.inputs[LQ], 'int32_t')};\n"
            f"int8_t *gate = {c.ptr(node.inputs[LGATE], 'int8_t')};\n"
            f"int32_t acc = {fold};\n"
            f"for (int32_t i = 0; i < {h.size}; ++i) acc += (int32_t)h[i] * (int32_t){wsym}[i];\n"
            f"int32_t v = tinyc_mbqm(acc, {mult}, {shift});\n"
            "v = v < -32768 ? -32768 : (v > 32767 ? 32767 : v);\n"
            f"const int32_t dp = tinyc_sigmoid16(v, {table});\n"
            f"const int32_t nq = gate[0] ? {Q_ONE} - dp : (q[0] > dp ? q[0] - dp : 0);\n"
            "q[0] = nq;\n"
            f"gate[0] = (int8_t)(nq < {Q_ONE // 2});"
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
