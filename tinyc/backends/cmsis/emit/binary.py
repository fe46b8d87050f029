"""Emitters of tinyc.ir.ops.binary: MAXIMUM, MINIMUM, SQUARED_DIFFERENCE, the comparisons,
LOGICAL_AND / LOGICAL_OR, SELECT_V2 and ADD_N (binary_s8.c)."""

from __future__ import annotations

import numpy as np

from tinyc.backends.cmsis.cwriter import CContext
from tinyc.backends.cmsis.emit.base import Emitter, emitter, require_int8
from tinyc.backends.cmsis.emit.elementwise import RANK, broadcast_struct, same_shape_input
from tinyc.errors import UnsupportedError
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import get_op

#: comparison -> tinyc_compare_s8's op code
COMPARE_CODES = {
    "EQUAL": 0,
    "NOT_EQUAL": 1,
    "GREATER": 2,
    "GREATER_EQUAL": 3,
    "LESS": 4,
    "LESS_EQUAL": 5,
}


def _fields(*values) -> str:
    return ", ".join(str(int(v)) for v in values)


@emitter
class MinMaxEmitter(Emitter):
    kinds = ("MAXIMUM", "MINIMUM")

    def alias(self, node, g):
        return same_shape_input(node, g)

    def emit(self, node, g, c):
        require_int8(node, g)
        bc = broadcast_struct(c, node, g)
        c.need("binary_s8.c")
        c.call(
            f"tinyc_minmax_s8(&{bc}, {int(node.op == 'MAXIMUM')}, {c.ptr(node.inputs[0])}, "
            f"{c.ptr(node.inputs[1])}, {c.ptr(node.outputs[0])});"
        )


@emitter
class SquaredDifferenceEmitter(Emitter):
    kinds = ("SQUARED_DIFFERENCE",)

    def alias(self, node, g):
        return same_shape_input(node, g)

    def emit(self, node, g, c):
        require_int8(node, g)
        p = get_op(node.op).params_int8(node, g)  # type: ignore[attr-defined]
        ps = c.const_struct(
            f"sqd_{node.name}",
            "tinyc_sqdiff_t",
            _fields(
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
            ),  # fmt: skip
        )
        bc = broadcast_struct(c, node, g)
        c.need("binary_s8.c")
        c.call(
            f"tinyc_sqdiff_s8(&{bc}, &{ps}, {c.ptr(node.inputs[0])}, {c.ptr(node.inputs[1])}, "
            f"{c.ptr(node.outputs[0])});"
        )


@emitter
class CompareEmitter(Emitter):
    """int8 operands (bool out); other dtypes are not compiled."""

    kinds = tuple(COMPARE_CODES)

    def emit(self, node, g, c):
        a, b = g.inp(node, 0), g.inp(node, 1)
        assert a is not None and b is not None
        if not (a.is_quantized and b.is_quantized and a.dtype == b.dtype == "int8"):
            raise UnsupportedError(
                f"node {node.name!r} ({node.op}): the C backend compares int8 operands"
            )
        p = get_op(node.op).compare_params(node, g)  # type: ignore[attr-defined]
        ps = c.const_struct(
            f"cmp_{node.name}",
            "tinyc_compare_t",
            _fields(
                p.left_shift,
                p.input1_zp,
                p.input1_multiplier,
                p.input1_shift,
                p.input2_zp,
                p.input2_multiplier,
                p.input2_shift,
            ),  # fmt: skip
        )
        bc = broadcast_struct(c, node, g)
        c.need("binary_s8.c")
        c.call(
            f"tinyc_compare_s8(&{bc}, &{ps}, {COMPARE_CODES[node.op]}, "
            f"{c.ptr(node.inputs[0])}, {c.ptr(node.inputs[1])}, {c.ptr(node.outputs[0])});"
        )


@emitter
class LogicalEmitter(Emitter):
    kinds = ("LOGICAL_AND", "LOGICAL_OR")

    def alias(self, node, g):
        return same_shape_input(node, g)

    def emit(self, node, g, c):
        bc = broadcast_struct(c, node, g)
        c.need("binary_s8.c")
        c.call(
            f"tinyc_logical(&{bc}, {int(node.op == 'LOGICAL_OR')}, {c.ptr(node.inputs[0])}, "
            f"{c.ptr(node.inputs[1])}, {c.ptr(node.outputs[0])});"
        )


def broadcast3_struct(c: CContext, node: Node, g: Graph) -> str:
    """tinyc_bcast3_t of a three-input node: element strides (0 = broadcast) per input."""
    out = list(g.out(node).shape)
    if len(out) > RANK:
        raise UnsupportedError(f"node {node.name!r}: broadcasting beyond {RANK} dimensions")
    out = [1] * (RANK - len(out)) + out

    def strides(shape: tuple[int, ...]) -> list[int]:
        s = [1] * (RANK - len(shape)) + list(shape)
        dense = np.cumprod([1] + s[::-1][:-1])[::-1].tolist()
        return [0 if s[i] == 1 and out[i] != 1 else int(dense[i]) for i in range(RANK)]

    rows = [out] + [strides(g.tensors[i].shape) for i in node.inputs[:3]]
    fields = ", ".join("{" + ", ".join(map(str, r)) + "}" for r in rows)
    return c.const_struct(f"bc3_{node.name}", "tinyc_bcast3_t", fields)


@emitter
class SelectEmitter(Emitter):
    kinds = ("SELECT_V2",)

    def emit(self, node, g, c):
        y = g.out(node)
        bc = broadcast3_struct(c, node, g)
        c.need("binary_s8.c")
        c.call(
            f"tinyc_select(&{bc}, {y.itemsize}, {c.ptr(node.inputs[0])}, "
            f"{c.ptr(node.inputs[1])}, {c.ptr(node.inputs[2])}, {c.ptr(node.outputs[0])});"
        )


@emitter
class AddNEmitter(Emitter):
    kinds = ("ADD_N",)

    def alias(self, node, g):
        return 0, "inplace"

    def emit(self, node, g, c):
        require_int8(node, g)
        p = get_op(node.op).add_n_params(node, g)  # type: ignore[attr-defined]
        ps = c.const_struct(
            f"addn_{node.name}",
            "tinyc_add_n_t",
            _fields(
                p.input_zp,
                p.output_zp,
                p.input_multiplier,
                p.input_shift,
                p.output_multiplier,
                p.output_shift,
            ),  # fmt: skip
        )
        ptrs = ", ".join(c.ptr(i) for i in node.inputs)
        c.need("binary_s8.c")
        c.call(
            f"{{ const int8_t *const ins[{len(node.inputs)}] = {{{ptrs}}};\n"
            f"  tinyc_add_n_s8({len(node.inputs)}, {g.out(node).size}, ins, &{ps}, "
            f"{c.ptr(node.outputs[0])}); }}"
        )
