"""BATCH_MATMUL emitter: batch_matmul_s8.c, operands read through strides (adj_x / adj_y
cost no copy), broadcast batch entries as per-entry offsets fixed at compile time."""

from __future__ import annotations

import numpy as np

from tinyc.backends.cmsis.emit.base import Emitter, emitter, require_int8
from tinyc.ir.ops import attr, get_op

PROTOTYPE = (
    "void tinyc_batch_matmul_s8(int32_t batches, const int32_t *offsets, int32_t rows, "
    "int32_t depth, int32_t cols, const int32_t *strides, const int32_t *quant, "
    "const int8_t *lhs, const int8_t *rhs, int8_t *out);"
)


def _dense(shape: tuple[int, ...]) -> list[int]:
    out, step = [], 1
    for d in reversed(shape):
        out.append(step)
        step *= d
    return out[::-1]


def batch_offsets(a: tuple[int, ...], b: tuple[int, ...], batch: tuple[int, ...]) -> np.ndarray:
    """(lhs, rhs) element offsets of every batch entry (numpy broadcasting)."""
    res = []
    for shape in (a, b):
        lead = (1,) * (len(batch) - (len(shape) - 2)) + tuple(shape[:-2])
        dense = _dense(tuple(shape))[: len(shape) - 2]
        dense = [0] * (len(batch) - len(dense)) + dense
        steps = [0 if n == 1 else s for n, s in zip(lead, dense, strict=True)]
        res.append(
            [sum(i * s for i, s in zip(idx, steps, strict=True)) for idx in np.ndindex(*batch)]
        )
    return np.array(res, np.int32).T.reshape(-1)


@emitter
class BatchMatMulEmitter(Emitter):
    kinds = ("BATCH_MATMUL",)

    def emit(self, node, g, c):
        require_int8(node, g)
        op = get_op("BATCH_MATMUL")
        a, b = g.inp(node, 0), g.inp(node, 1)
        assert a is not None and b is not None
        batch, m, k, n = op.dims(node, g)  # type: ignore[attr-defined]
        p = op.bmm_params(node, g)  # type: ignore[attr-defined]
        ac, bc = a.shape[-1], b.shape[-1]
        lhs = (1, ac) if attr(node, "adj_x") else (ac, 1)  # (row, depth) element strides
        rhs = (1, bc) if attr(node, "adj_y") else (bc, 1)  # (depth, column) element strides
        strides = c.const_array(
            f"bmm_strides_{node.name}", np.array([*lhs, *rhs], np.int32), "int32_t"
        )
        quant = np.array([p.lhs_zp, p.rhs_zp, p.multiplier, p.shift, p.output_zp], np.int32)
        q = c.const_array(f"bmm_quant_{node.name}", quant, "int32_t")
        offsets = batch_offsets(a.shape, b.shape, tuple(batch))
        off = c.const_array(f"bmm_offsets_{node.name}", offsets, "int32_t")
        if PROTOTYPE not in c.decls:
            c.decls.insert(0, PROTOTYPE)
        c.need("batch_matmul_s8.c")
        c.call(
            f"tinyc_batch_matmul_s8({int(np.prod(batch, dtype=np.int64))}, {off}, {m}, {k}, {n}, "
            f"{strides}, {q}, {c.ptr(node.inputs[0])}, {c.ptr(node.inputs[1])}, "
            f"{c.ptr(node.outputs[0])});"
        )
