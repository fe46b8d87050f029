"""Emitters of tinyc.ir.ops.rearrange: DEPTH_TO_SPACE, SPACE_TO_DEPTH, SPACE_TO_BATCH_ND and
BATCH_TO_SPACE_ND as strided box copies (index.c's tinyc_copy_box, one per block offset
where padding or crops cut the box), GATHER_ND as a GATHER of slices, ZEROS_LIKE and FILL.
Every dtype: the kernels move bytes."""

from __future__ import annotations

import numpy as np

from tinyc.backends.cmsis.cwriter import CContext
from tinyc.backends.cmsis.emit.base import Emitter, emitter, shape_i32
from tinyc.backends.cmsis.emit.index import MAX_RANK, dense_strides, merge_box, position_runs
from tinyc.errors import UnsupportedError
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import attr, get_op
from tinyc.ir.ops.rearrange import _block_geometry


def _copy_box(
    c: CContext,
    node: Node,
    shape: list[int],
    src: list[int],
    dst: list[int],
    item: int,
    src_off: int,
    dst_off: int,
) -> None:
    """One tinyc_copy_box of the box ``shape`` (byte strides ``src``/``dst``)."""
    if min(shape, default=1) <= 0:
        return
    shape, src, dst, run = merge_box(shape, src, dst, item)
    if len(shape) > MAX_RANK:
        raise UnsupportedError(f"node {node.name!r} ({node.op}): more than {MAX_RANK} axes")
    c.need("index.c")
    c.call(
        f"tinyc_copy_box({len(shape)}, {shape_i32(c, 'box', shape)}, "
        f"{shape_i32(c, 'src_strides', src)}, {shape_i32(c, 'dst_strides', dst)}, {run}, "
        f"(const uint8_t *){c.ptr(node.inputs[0])} + {src_off}, "
        f"(uint8_t *){c.ptr(node.outputs[0])} + {dst_off});"
    )


@emitter
class DepthSpaceEmitter(Emitter):
    kinds = ("DEPTH_TO_SPACE", "SPACE_TO_DEPTH")

    def emit(self, node, g, c):
        x = g.inp(node, 0)
        assert x is not None
        b = int(attr(node, "block_size"))
        n, h, w, ch = x.shape
        e = x.itemsize
        if node.op == "DEPTH_TO_SPACE":
            co = ch // (b * b)  # out (n, h, i, w, j, c) <- x[n, h, w, (i * b + j) * co + c]
            shape = [n, h, b, w, b, co]
            src = [h * w * ch, w * ch, b * co, ch, co, 1]
        else:  # out (n, h', w', i, j, c) <- x[n, h' * b + i, w' * b + j, c]
            shape = [n, h // b, w // b, b, b, ch]
            src = [h * w * ch, b * w * ch, b * ch, w * ch, ch, 1]
        _copy_box(c, node, shape, [s * e for s in src], dense_strides(tuple(shape), e), e, 0, 0)


def _first(lo: int, step: int, shift: int) -> int:
    """The smallest k >= 0 with k * step + shift >= lo."""
    return max(0, -(-(lo - shift) // step))


@emitter
class SpaceBatchEmitter(Emitter):
    """One box copy per block offset (i, j) over the part of the output that offset reads
    inside the input (SPACE_TO_BATCH_ND pads the rest with raw zeros first)."""

    kinds = ("SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND")

    def emit(self, node, g, c):
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None
        to_batch = node.op == "SPACE_TO_BATCH_ND"
        pads_name = "paddings" if to_batch else "crops"
        (nb, h, w, ch), (bh, bw), ((pt, _), (pl, _)) = _block_geometry(node, g, pads_name)
        e = x.itemsize
        if to_batch:
            n = nb
            oh, ow = y.shape[1], (y.shape[2] if len(y.shape) == 4 else 1)
            # space: the padded input; batch: the output
            sp_h, sp_w, sp_rows = h, w, (h * w * ch, w * ch, ch)
            bt_h, bt_w = oh, ow
            if any(p for pair in attr(node, pads_name) for p in pair):
                c.call(f"memset({c.ptr(node.outputs[0])}, 0, {y.nbytes});")
        else:
            n = nb // (bh * bw)
            bt_h, bt_w = h, w
            sp_h, sp_w = y.shape[1], (y.shape[2] if len(y.shape) == 4 else 1)
            sp_rows = (sp_h * sp_w * ch, sp_w * ch, ch)
        for i in range(bh):
            for j in range(bw):
                # batch pixel (b, r, q) <-> space pixel (r * bh + i - pt, q * bw + j - pl)
                r0, q0 = _first(pt, bh, i), _first(pl, bw, j)
                r1 = min(bt_h, -(-(sp_h + pt - i) // bh))
                q1 = min(bt_w, -(-(sp_w + pl - j) // bw))
                if r1 <= r0 or q1 <= q0:
                    continue
                shape = [n, r1 - r0, q1 - q0, ch]
                space = [sp_rows[0], bh * sp_rows[1], bw * sp_rows[2], 1]
                batch = [bt_h * bt_w * ch, bt_w * ch, ch, 1]
                sp_off = (r0 * bh + i - pt) * sp_rows[1] + (q0 * bw + j - pl) * sp_rows[2]
                bt_off = (i * bw + j) * n * batch[0] + r0 * batch[1] + q0 * batch[2]
                src, dst = (space, batch) if to_batch else (batch, space)
                s_off, d_off = (sp_off, bt_off) if to_batch else (bt_off, sp_off)
                _copy_box(c, node, shape, [v * e for v in src], [v * e for v in dst], e,
                          s_off * e, d_off * e)  # fmt: skip


@emitter
class GatherNdEmitter(Emitter):
    kinds = ("GATHER_ND",)

    def emit(self, node: Node, g: Graph, c) -> None:
        x = g.inp(node, 0)
        assert x is not None
        op = get_op(node.op)
        k = op.indices(node, g).shape[-1]  # type: ignore[attr-defined]
        runs = position_runs(op.flat_positions(node, g))  # type: ignore[attr-defined]
        inner = int(np.prod(x.shape[k:], dtype=np.int64)) * x.itemsize
        sym = c.const_array(f"runs_{node.name}", runs, "int32_t")
        c.need("index.c")
        c.call(
            f"tinyc_gather(1, {x.nbytes}, {runs.size // 2}, {sym}, {inner}, "
            f"{c.ptr(node.inputs[0])}, {c.ptr(node.outputs[0])});"
        )


@emitter
class ZerosLikeEmitter(Emitter):
    kinds = ("ZEROS_LIKE",)

    def emit(self, node, g, c):
        c.call(f"memset({c.ptr(node.outputs[0])}, 0, {g.out(node).nbytes});")


@emitter
class FillEmitter(Emitter):
    kinds = ("FILL",)

    def emit(self, node, g, c):
        y = g.out(node)
        c.need("convert.c")
        c.call(
            f"tinyc_fill_value({y.size}, {y.itemsize}, {c.ptr(node.inputs[0])}, "
            f"{c.ptr(node.outputs[0])});"
        )


def take_tables(
    tables: list[np.ndarray], in_shape: tuple[int, ...], item: int
) -> tuple[list[int], np.ndarray, int]:
    """(shape, concatenated byte-offset tables, run) of a per-axis take: size-1 axes
    dropped, trailing axes that read the input in order folded into the run."""
    strides = dense_strides(in_shape, item)
    axes = [(t.astype(np.int64) * s) for t, s in zip(tables, strides, strict=True)]
    run = item
    while axes and np.array_equal(axes[-1], np.arange(len(axes[-1])) * run):
        run *= len(axes.pop())
    axes = [a for a in axes if len(a) != 1 or a[0] != 0]
    if not axes:
        return [], np.zeros(1, np.int32), run
    return [len(a) for a in axes], np.concatenate(axes).astype(np.int32), run


@emitter
class TakeAxesEmitter(Emitter):
    kinds = ("MIRROR_PAD", "REVERSE_V2")

    def emit(self, node, g, c):
        x = g.inp(node, 0)
        assert x is not None
        tables = get_op(node.op).axis_indices(node, g)  # type: ignore[attr-defined]
        shape, offsets, run = take_tables(tables, x.shape, x.itemsize)
        if len(shape) > MAX_RANK:
            raise UnsupportedError(f"node {node.name!r} ({node.op}): more than {MAX_RANK} axes")
        sym = c.const_array(f"take_{node.name}", offsets, "int32_t")
        c.need("take.c")
        c.call(
            f"tinyc_take_axes({len(shape)}, {shape_i32(c, 'shape', shape or [1])}, {sym}, "
            f"{run}, {c.ptr(node.inputs[0])}, {c.ptr(node.outputs[0])});"
        )


@emitter
class ShapeEmitter(Emitter):
    kinds = ("SHAPE",)

    def emit(self, node, g, c):
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None
        ctype = "int64_t" if y.dtype == "int64" else "int32_t"
        sym = c.const_array(f"shape_{node.name}", np.asarray(x.shape, y.dtype), ctype)
        c.call(f"memcpy({c.ptr(node.outputs[0])}, {sym}, {y.nbytes});")


@emitter
class EmbeddingLookupEmitter(Emitter):
    """Rows by run-time id (tinyc.ir.ops.lookup): a row copy, or the hybrid dequantization of
    an int8 row. An id outside the table (an error in TFLM and the interpreter) is clamped
    to it, so the firmware never reads outside the table."""

    kinds = ("EMBEDDING_LOOKUP",)

    def emit(self, node, g, c):
        ids, table, y = g.inp(node, 0), g.inp(node, 1), g.out(node)
        assert ids is not None and table is not None
        rows, cols = table.shape[0], table.size // table.shape[0]
        pick = (
            f"const int32_t *ids = {c.ptr(node.inputs[0], 'int32_t')};\n"
            f"for (int32_t i = 0; i < {ids.size}; ++i) {{\n"
            "  int32_t r = ids[i] < 0 ? 0 : ids[i];\n"
            f"  if (r > {rows - 1}) r = {rows - 1};\n"
        )
        if y.dtype == "float32" and table.dtype == "int8":
            assert table.quant is not None
            scale = f"{float(table.quant.s)!r}f"
            c.call(
                pick + f"  const int8_t *row = {c.ptr(node.inputs[1], 'int8_t')} + r * {cols};\n"
                f"  float *out = {c.ptr(node.outputs[0], 'float')} + i * {cols};\n"
                f"  for (int32_t k = 0; k < {cols}; ++k) out[k] = {scale} * (float)row[k];\n"
                "}"
            )
            return
        row_bytes = cols * table.itemsize
        c.call(
            pick + f"  memcpy({c.ptr(node.outputs[0], 'uint8_t')} + i * {row_bytes}, "
            f"{c.ptr(node.inputs[1], 'uint8_t')} + r * {row_bytes}, {row_bytes}u);\n"
            "}"
        )


@emitter
class BroadcastArgsEmitter(Emitter):
    kinds = ("BROADCAST_ARGS",)

    def emit(self, node, g, c):
        a, b, y = g.inp(node, 0), g.inp(node, 1), g.out(node)
        assert a is not None and b is not None
        ct = "int64_t" if y.dtype == "int64" else "int32_t"
        n = y.size
        c.call(
            f"const {ct} *a = {c.ptr(node.inputs[0], ct)};\n"
            f"const {ct} *b = {c.ptr(node.inputs[1], ct)};\n"
            f"{ct} *y = {c.ptr(node.outputs[0], ct)};\n"
            f"for (int32_t i = 0; i < {n}; ++i) {{\n"
            f"  {ct} da = i >= {n - a.size} ? a[i - {n - a.size}] : 1;\n"
            f"  {ct} db = i >= {n - b.size} ? b[i - {n - b.size}] : 1;\n"
            "  y[i] = da == 1 ? db : da;\n"
            "}"
        )
