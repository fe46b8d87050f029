"""SUM, REDUCE_MAX, REDUCE_MIN, REDUCE_ALL (any set of axes), ARG_MAX, ARG_MIN and CUMSUM
emitters (reduce_s8.c, binary_s8.c)."""

from __future__ import annotations

import numpy as np

from tinyc.backends.cmsis.emit.base import Emitter, emitter, require_int8
from tinyc.errors import UnsupportedError
from tinyc.ir.ops import get_op

MAX_RANK = 6
REDUCE_CODES = {"SUM": 0, "REDUCE_MAX": 1, "REDUCE_MIN": 2, "REDUCE_ALL": 2}


def reduce_geometry(
    shape: tuple[int, ...], axes: tuple[int, ...]
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(kept, reduced) axes as (size, element stride) pairs in row-major order, size-1
    axes dropped and neighbours of one kind merged."""
    strides = [int(np.prod(shape[i + 1 :], dtype=np.int64)) for i in range(len(shape))]
    groups: list[list] = []  # [reduced?, size, stride]
    for i, (d, s) in enumerate(zip(shape, strides, strict=True)):
        if d == 1:
            continue
        red = i in axes
        if groups and groups[-1][0] == red and groups[-1][2] == s * d:
            groups[-1][1] *= d
            groups[-1][2] = s
        else:
            groups.append([red, d, s])
    kept = [(d, s) for red, d, s in groups if not red]
    reduced = [(d, s) for red, d, s in groups if red]
    return kept, reduced


def _padded(values: list[int]) -> str:
    return "{" + ", ".join(map(str, values + [0] * (MAX_RANK - len(values)))) + "}"


@emitter
class ReduceEmitter(Emitter):
    kinds = tuple(REDUCE_CODES)

    def emit(self, node, g, c):
        if node.op != "REDUCE_ALL":  # REDUCE_ALL: the minimum of bools (0 or 1)
            require_int8(node, g)
        op = get_op(node.op)
        x = g.inp(node, 0)
        assert x is not None
        kept, red = reduce_geometry(x.shape, op.axes(node, g))  # type: ignore[attr-defined]
        if len(kept) > MAX_RANK or len(red) > MAX_RANK:
            raise UnsupportedError(f"node {node.name!r} ({node.op}): more than {MAX_RANK} axes")
        if node.op == "SUM":
            p = op.sum_params(node, g)  # type: ignore[attr-defined]
            tail = (p.input_zp, p.output_zp, p.multiplier, p.shift, p.count)
        else:
            tail = (0, 0, 0, 0, 0)
        fields = ", ".join(
            [
                str(len(kept)),
                _padded([d for d, _ in kept]),
                _padded([s for _, s in kept]),
                str(len(red)),
                _padded([d for d, _ in red]),
                _padded([s for _, s in red]),
                str(REDUCE_CODES[node.op]),
                *map(str, tail),
            ]
        )
        ps = c.const_struct(f"red_{node.name}", "tinyc_reduce_t", fields)
        c.need("reduce_s8.c")
        c.call(
            f"tinyc_reduce_s8(&{ps}, {c.ptr(node.inputs[0], 'int8_t')}, "
            f"{c.ptr(node.outputs[0], 'int8_t')});"
        )


@emitter
class ArgMinMaxEmitter(Emitter):
    kinds = ("ARG_MAX", "ARG_MIN")

    def emit(self, node, g, c):
        x = g.inp(node, 0)
        assert x is not None
        if x.dtype != "int8":
            raise UnsupportedError(f"node {node.name!r} ({node.op}): int8 input in C")
        axis = get_op(node.op).axis(node, g)  # type: ignore[attr-defined]
        outer = int(np.prod(x.shape[:axis], dtype=np.int64))
        inner = int(np.prod(x.shape[axis + 1 :], dtype=np.int64))
        c.need("reduce_s8.c")
        c.call(
            f"tinyc_argminmax_s8({outer}, {x.shape[axis]}, {inner}, "
            f"{int(node.op == 'ARG_MAX')}, {c.ptr(node.inputs[0])}, {c.ptr(node.outputs[0])});"
        )


@emitter
class CumSumEmitter(Emitter):
    kinds = ("CUMSUM",)

    def emit(self, node, g, c):
        require_int8(node, g)
        op = get_op(node.op)
        x = g.inp(node, 0)
        assert x is not None
        axis = op.axis(node, g)  # type: ignore[attr-defined]
        p = op.cumsum_params(node, g)  # type: ignore[attr-defined]
        ps = c.const_struct(
            f"cumsum_{node.name}",
            "tinyc_add_n_t",
            ", ".join(str(v) for v in (p.input_zp, p.output_zp, p.input_multiplier,
                                       p.input_shift, p.output_multiplier, p.output_shift)),
        )  # fmt: skip
        outer = int(np.prod(x.shape[:axis], dtype=np.int64))
        inner = int(np.prod(x.shape[axis + 1 :], dtype=np.int64))
        c.need("binary_s8.c")
        c.call(
            f"tinyc_cumsum_s8({outer}, {x.shape[axis]}, {inner}, "
            f"{int(bool(node.attrs.get('exclusive', False)))}, "
            f"{int(bool(node.attrs.get('reverse', False)))}, &{ps}, {c.ptr(node.inputs[0])}, "
            f"{c.ptr(node.outputs[0])});"
        )
