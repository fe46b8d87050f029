"""ADD, SUB and MUL emitters (broadcasting through per-input element strides)."""

from __future__ import annotations

import numpy as np

from tinyc.backends.cmsis.cwriter import CContext
from tinyc.backends.cmsis.emit.base import Emitter, emitter, require_int8
from tinyc.errors import UnsupportedError
from tinyc.ir.fixedpoint import multiply_by_quantized_multiplier
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import get_op

RANK = 5


def broadcast_struct(c: CContext, node: Node, g: Graph) -> str:
    a, b, y = g.inp(node, 0), g.inp(node, 1), g.out(node)
    assert a is not None and b is not None
    out = list(y.shape)
    if len(out) > RANK:
        raise UnsupportedError(f"node {node.name!r}: broadcasting beyond {RANK} dimensions")
    out = [1] * (RANK - len(out)) + out

    def strides(shape: tuple[int, ...]) -> list[int]:
        s = [1] * (RANK - len(shape)) + list(shape)
        dense = np.cumprod([1] + s[::-1][:-1])[::-1].tolist()
        return [0 if s[i] == 1 and out[i] != 1 else int(dense[i]) for i in range(RANK)]

    fields = ", ".join(
        "{" + ", ".join(map(str, v)) + "}" for v in (out, strides(a.shape), strides(b.shape))
    )
    return c.const_struct(f"bc_{node.name}", "tinyc_bcast_t", fields)


def same_shape_input(node: Node, g: Graph) -> tuple[int, str] | None:
    """Elementwise kernels read element i of each input before writing element i."""
    for k in (0, 1):
        if g.tensors[node.inputs[k]].shape == g.out(node).shape:
            return k, "inplace"
    return None


def no_broadcast(node: Node, g: Graph) -> bool:
    return all(g.tensors[i].shape == g.out(node).shape for i in node.inputs)


def rescale_table(zp: int, multiplier: int, shift: int, left_shift: int) -> np.ndarray:
    """TFLM's rescaled ADD/SUB input for each of the 256 int8 values, by (uint8) index."""
    x = np.arange(256, dtype=np.uint8).view(np.int8).astype(np.int64)
    return multiply_by_quantized_multiplier((x - zp) << left_shift, multiplier, shift).astype(
        np.int32
    )


@emitter
class AddSubEmitter(Emitter):
    kinds = ("ADD", "SUB")

    def alias(self, node, g):
        return same_shape_input(node, g)

    def emit(self, node, g, c):
        require_int8(node, g)
        if no_broadcast(node, g):
            self.emit_flat(node, g, c)
            return
        p = get_op(node.op).arith(node, g)
        fields = ", ".join(
            str(v)
            for v in (
                p.input1_zp,
                p.input2_zp,
                p.output_zp,
                p.left_shift,
                p.input1_multiplier,
                p.input1_shift,
                p.input2_multiplier,
                p.input2_shift,
                p.output_multiplier,
                p.output_shift,
                p.act_min,
                p.act_max,
            )
        )
        ps = c.const_struct(f"as_{node.name}", "tinyc_addsub_t", fields)
        bc = broadcast_struct(c, node, g)
        sign = 1 if node.op == "ADD" else -1
        c.need("elementwise_s8.c")
        c.call(
            f"tinyc_addsub_s8(&{bc}, &{ps}, {sign}, {c.ptr(node.inputs[0])}, "
            f"{c.ptr(node.inputs[1])}, {c.ptr(node.outputs[0])});"
        )

    def emit_flat(self, node: Node, g: Graph, c: CContext) -> None:
        c.call(
            self.flat_call(
                node, g, c, c.ptr(node.inputs[0]), c.ptr(node.inputs[1]),
                c.ptr(node.outputs[0]), g.out(node).size,
            )
        )  # fmt: skip

    @staticmethod
    def flat_call(node: Node, g: Graph, c: CContext, x: str, y: str, out: str, n: int | str) -> str:
        """Same-shape operands (or rows of them, `n` values): one always-inline loop (tables
        on scalar cores, Helium vectors when no shift is a left shift and the left shift is
        TFLM's 20)."""
        p = get_op(node.op).arith(node, g)
        vec = int(c.target == "mve" and max(p.input1_shift, p.input2_shift, p.output_shift) <= 0
                  and p.left_shift == 20)  # fmt: skip
        if vec:
            tx = ty = "0"
        else:
            tx = c.const_array(
                f"tx_{node.name}",
                rescale_table(p.input1_zp, p.input1_multiplier, p.input1_shift, p.left_shift),
                "int32_t",
            )
            ty = c.const_array(
                f"ty_{node.name}",
                rescale_table(p.input2_zp, p.input2_multiplier, p.input2_shift, p.left_shift),
                "int32_t",
            )
        sign = 1 if node.op == "ADD" else -1
        c.need_header("tinyc_nn.h")
        return (f"tinyc_addsub_n_s8({n}, {sign}, {x}, {y}, {tx}, {ty}, {vec}, {p.input1_zp}, "
                f"{p.input2_zp}, {p.input1_multiplier}, {p.input1_shift}, {p.input2_multiplier}, "
                f"{p.input2_shift}, {p.output_multiplier}, {p.output_shift}, {p.output_zp}, "
                f"{p.act_min}, {p.act_max}, {out});")  # fmt: skip


@emitter
class MulEmitter(Emitter):
    kinds = ("MUL",)

    def alias(self, node, g):
        return same_shape_input(node, g)

    def emit(self, node, g, c):
        require_int8(node, g)
        p = get_op("MUL").arith(node, g)
        if no_broadcast(node, g):
            vec = int(c.target == "mve" and p.shift <= 0)
            c.need_header("tinyc_nn.h")
            c.call(f"tinyc_mul_n_s8({g.out(node).size}, {c.ptr(node.inputs[0])}, "
                   f"{c.ptr(node.inputs[1])}, {p.input1_zp}, {p.input2_zp}, {p.multiplier}, "
                   f"{p.shift}, {vec}, {p.output_zp}, {p.act_min}, {p.act_max}, "
                   f"{c.ptr(node.outputs[0])});")  # fmt: skip
            return
        fields = ", ".join(
            str(v)
            for v in (
                p.input1_zp,
                p.input2_zp,
                p.output_zp,
                p.multiplier,
                p.shift,
                p.act_min,
                p.act_max,
            )
        )
        ps = c.const_struct(f"mul_{node.name}", "tinyc_mul_t", fields)
        bc = broadcast_struct(c, node, g)
        c.need("elementwise_s8.c")
        c.call(
            f"tinyc_mul_s8(&{bc}, &{ps}, {c.ptr(node.inputs[0])}, {c.ptr(node.inputs[1])}, "
            f"{c.ptr(node.outputs[0])});"
        )
