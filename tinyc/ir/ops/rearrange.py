"""Data-movement ops that rearrange blocks of values: DEPTH_TO_SPACE, SPACE_TO_DEPTH,
SPACE_TO_BATCH_ND, BATCH_TO_SPACE_ND, GATHER_ND, MIRROR_PAD and REVERSE_V2; and the ops
that make values: ZEROS_LIKE, FILL and SHAPE. Like every data-movement op they serve
every dtype with one implementation, and an int8 output keeps its input's quantization.
"""

from __future__ import annotations

import numpy as np

from tinyc.errors import TinycError
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops.base import OpDef, Spec, attr, normalize_axis, register
from tinyc.ir.ops.shape import _Move


def _input(node: Node, g: Graph, ranks: tuple[int, ...]):
    x = g.inp(node, 0)
    if x is None or len(x.shape) not in ranks:
        raise TinycError(
            f"node {node.name!r} ({node.op}) needs a {' or '.join(map(str, ranks))}-D input"
        )
    return x


@register
class DepthToSpace(_Move):
    """(N, H, W, b*b*C) -> (N, H*b, W*b, C): channel block (i, j) goes to pixel offset
    (i, j) (TFLite's DCR order)."""

    kind = "DEPTH_TO_SPACE"
    attrs = {"block_size": None}

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        x = _input(node, g, (4,))
        b = int(attr(node, "block_size"))
        n, h, w, c = x.shape
        if b <= 0 or c % (b * b):
            raise TinycError(f"node {node.name!r}: DEPTH_TO_SPACE block {b} for {c} channels")
        return [((n, h * b, w * b, c // (b * b)), x.dtype)]

    def eval_float(self, node, g, xs):
        b = int(attr(node, "block_size"))
        n, h, w, c = xs[0].shape
        y = xs[0].reshape(n, h, w, b, b, c // (b * b)).transpose(0, 1, 3, 2, 4, 5)
        return [np.ascontiguousarray(y).reshape(g.out(node).shape)]


@register
class SpaceToDepth(_Move):
    """(N, H, W, C) -> (N, H/b, W/b, b*b*C), the inverse of DEPTH_TO_SPACE."""

    kind = "SPACE_TO_DEPTH"
    attrs = {"block_size": None}

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        x = _input(node, g, (4,))
        b = int(attr(node, "block_size"))
        n, h, w, c = x.shape
        if b <= 0 or h % b or w % b:
            raise TinycError(f"node {node.name!r}: SPACE_TO_DEPTH block {b} for {h}x{w}")
        return [((n, h // b, w // b, c * b * b), x.dtype)]

    def eval_float(self, node, g, xs):
        b = int(attr(node, "block_size"))
        n, h, w, c = xs[0].shape
        y = xs[0].reshape(n, h // b, b, w // b, b, c).transpose(0, 1, 3, 2, 4, 5)
        return [np.ascontiguousarray(y).reshape(g.out(node).shape)]


def _block_geometry(node: Node, g: Graph, pads_attr: str):
    """(input as 4-D shape, block (bh, bw), pads ((t, b), (l, r))) of a 3-D or 4-D input;
    a 3-D input (N, H, C) is read as (N, H, 1, C) with a block width of 1."""
    x = _input(node, g, (3, 4))
    block = [int(v) for v in attr(node, "block_shape")]
    pads = [tuple(int(v) for v in p) for p in attr(node, pads_attr)]
    if len(block) != len(x.shape) - 2 or len(pads) != len(block):
        raise TinycError(
            f"node {node.name!r} ({node.op}): block {block} and {pads_attr} {pads} for a "
            f"{len(x.shape)}-D input"
        )
    if min(block) <= 0 or min(min(p) for p in pads) < 0:
        raise TinycError(f"node {node.name!r} ({node.op}): block {block}, {pads_attr} {pads}")
    shape4 = x.shape if len(x.shape) == 4 else (x.shape[0], x.shape[1], 1, x.shape[2])
    if len(block) == 1:
        block, pads = [block[0], 1], [pads[0], (0, 0)]
    return shape4, tuple(block), tuple(pads)


def _unextend(shape4: tuple[int, ...], rank: int) -> tuple[int, ...]:
    return shape4 if rank == 4 else (shape4[0], shape4[1], shape4[3])


@register
class SpaceToBatchND(_Move):
    """Zero-pad the spatial axes, then move each (bh, bw) offset of the blocks into its own
    batch group: out[(i * bw + j) * N + n, y, x] = padded[n, y * bh + i, x * bw + j]. The
    padding is raw 0 whatever the zero point: TFLM pads with SpaceToBatchParams'
    output_offset, which its micro kernel never sets (0 on the host)."""

    kind = "SPACE_TO_BATCH_ND"
    attrs = {"block_shape": None, "paddings": None}

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        x = g.inp(node, 0)
        assert x is not None
        (n, h, w, c), (bh, bw), ((t, b), (left, r)) = _block_geometry(node, g, "paddings")
        hp, wp = h + t + b, w + left + r
        if hp % bh or wp % bw:
            raise TinycError(
                f"node {node.name!r} (SPACE_TO_BATCH_ND): padded {hp}x{wp} is not a multiple "
                f"of the block {bh}x{bw}"
            )
        return [(_unextend((n * bh * bw, hp // bh, wp // bw, c), len(x.shape)), x.dtype)]

    def eval_float(self, node, g, xs):
        (n, h, w, c), (bh, bw), pads = _block_geometry(node, g, "paddings")
        x = np.pad(xs[0].reshape(n, h, w, c), ((0, 0), pads[0], pads[1], (0, 0)))
        hp, wp = x.shape[1:3]
        y = x.reshape(n, hp // bh, bh, wp // bw, bw, c).transpose(2, 4, 0, 1, 3, 5)
        return [np.ascontiguousarray(y).reshape(g.out(node).shape)]


@register
class BatchToSpaceND(_Move):
    """The inverse of SPACE_TO_BATCH_ND: batch groups back into (bh, bw) block offsets,
    then ``crops`` cut from the spatial axes."""

    kind = "BATCH_TO_SPACE_ND"
    attrs = {"block_shape": None, "crops": None}

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        x = g.inp(node, 0)
        assert x is not None
        (nb, h, w, c), (bh, bw), ((t, b), (left, r)) = _block_geometry(node, g, "crops")
        oh, ow = h * bh - t - b, w * bw - left - r
        if nb % (bh * bw) or oh <= 0 or ow <= 0:
            raise TinycError(
                f"node {node.name!r} (BATCH_TO_SPACE_ND): block {bh}x{bw} crops "
                f"{attr(node, 'crops')} do not fit input {list(x.shape)}"
            )
        return [(_unextend((nb // (bh * bw), oh, ow, c), len(x.shape)), x.dtype)]

    def eval_float(self, node, g, xs):
        (nb, h, w, c), (bh, bw), ((t, _), (left, _)) = _block_geometry(node, g, "crops")
        n = nb // (bh * bw)
        y = xs[0].reshape(bh, bw, n, h, w, c).transpose(2, 3, 0, 4, 1, 5)
        y = y.reshape(n, h * bh, w * bw, c)
        out = g.out(node)
        oh = out.shape[1]
        ow = out.shape[2] if len(out.shape) == 4 else 1
        return [np.ascontiguousarray(y[:, t : t + oh, left : left + ow]).reshape(out.shape)]


@register
class GatherNd(_Move):
    """GATHER_ND with constant int32 indices (input 1, last axis = index depth k): the
    output holds x[index] slices, shape indices.shape[:-1] + x.shape[k:]."""

    kind = "GATHER_ND"

    def indices(self, node: Node, g: Graph) -> np.ndarray:
        t = g.inp(node, 1)
        if t is None or not t.is_const or t.dtype != "int32" or len(t.shape) < 1:
            raise TinycError(f"node {node.name!r} (GATHER_ND) needs constant int32 indices")
        assert t.data is not None
        return t.data.astype(np.int64)

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        x = g.inp(node, 0)
        assert x is not None
        idx = self.indices(node, g)
        k = idx.shape[-1]
        if not 1 <= k <= len(x.shape):
            raise TinycError(f"node {node.name!r} (GATHER_ND): index depth {k}")
        bounds = np.asarray(x.shape[:k])
        if idx.size and (idx.min() < 0 or np.any(idx.reshape(-1, k) >= bounds)):
            raise TinycError(f"node {node.name!r} (GATHER_ND): indices outside {list(x.shape)}")
        return [(idx.shape[:-1] + x.shape[k:], x.dtype)]

    def flat_positions(self, node: Node, g: Graph) -> np.ndarray:
        """Each slice's position along the first k axes taken as one axis."""
        x = g.inp(node, 0)
        assert x is not None
        idx = self.indices(node, g)
        k = idx.shape[-1]
        return np.ravel_multi_index(tuple(idx.reshape(-1, k).T), x.shape[:k]).astype(np.int32)

    def eval_float(self, node, g, xs):
        x = g.inp(node, 0)
        assert x is not None
        k = self.indices(node, g).shape[-1]
        flat = xs[0].reshape((-1,) + x.shape[k:])
        return [np.ascontiguousarray(flat[self.flat_positions(node, g)]).reshape(g.out(node).shape)]


@register
class ZerosLike(OpDef):
    """Raw zeros of the input's shape and dtype (TFLM writes 0 whatever the zero point)."""

    kind = "ZEROS_LIKE"
    output_quant = "same_as_input"

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        x = g.inp(node, 0)
        assert x is not None
        return [(x.shape, x.dtype)]

    def check(self, node: Node, g: Graph) -> None:
        x = g.inp(node, 0)
        assert x is not None
        if x.dtype not in ("float32", "int8", "int32", "int64"):
            raise TinycError(f"node {node.name!r} (ZEROS_LIKE): {x.dtype} is not supported")

    def quantized(self, node: Node, g: Graph) -> bool:
        return False

    def eval_float(self, node, g, xs):
        return [np.zeros_like(xs[0])]

    def bytes_moved(self, node: Node, g: Graph) -> tuple[int, int]:
        return 0, g.out(node).nbytes


@register
class Fill(OpDef):
    """An output of ``shape`` holding the scalar of input 0 (raw: an int8 value keeps its
    quantization)."""

    kind = "FILL"
    attrs = {"shape": None}
    output_quant = "same_as_input"

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        v = g.inp(node, 0)
        if v is None or v.size != 1:
            raise TinycError(f"node {node.name!r} (FILL) needs a scalar value")
        shape = tuple(int(d) for d in attr(node, "shape"))
        if min(shape, default=1) < 0:
            raise TinycError(f"node {node.name!r} (FILL): shape {list(shape)}")
        return [(shape, v.dtype)]

    def check(self, node: Node, g: Graph) -> None:
        v, y = g.inp(node, 0), g.out(node)
        assert v is not None
        if v.dtype not in ("float32", "int8", "int32", "int64", "bool"):
            raise TinycError(f"node {node.name!r} (FILL): {v.dtype} is not supported")
        if y.is_quantized and not (v.quant and v.quant.same_as(y.quant)):
            raise TinycError(f"node {node.name!r} (FILL): value and output quantization differ")

    def quantized(self, node: Node, g: Graph) -> bool:
        return False

    def eval_float(self, node, g, xs):
        y = g.out(node)
        return [np.full(y.shape, xs[0].reshape(-1)[0], dtype=xs[0].dtype)]

    def bytes_moved(self, node: Node, g: Graph) -> tuple[int, int]:
        return g.inp(node, 0).nbytes, g.out(node).nbytes


# -- MIRROR_PAD, REVERSE_V2: each output axis reads the input through an index table ------


class _TakeAxes(_Move):
    """An output whose index along each axis is an input index from a table:
    out[i0, i1, ...] = x[t0[i0], t1[i1], ...]."""

    def axis_indices(self, node: Node, g: Graph) -> list[np.ndarray]:
        raise NotImplementedError

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        x = g.inp(node, 0)
        assert x is not None
        return [(tuple(len(t) for t in self.axis_indices(node, g)), x.dtype)]

    def eval_float(self, node, g, xs):
        idx = self.axis_indices(node, g)
        return [np.ascontiguousarray(xs[0][np.ix_(*idx)]) if idx else xs[0].copy()]


def mirror_index(size: int, before: int, after: int, offset: int) -> np.ndarray:
    """TFLM's GetInputDimension for every padded position (offset 1: REFLECT, 0:
    SYMMETRIC)."""
    out = []
    for i in range(before + size + after):
        if i < before:
            orig = before + offset - 1
            out.append(orig - min(i, orig - offset))
        elif i - before >= size:
            j = i - before - size
            orig = size - (1 + offset)
            out.append(orig - min(j, orig))
        else:
            out.append(i - before)
    return np.asarray(out, np.int64)


@register
class MirrorPad(_TakeAxes):
    """PAD by mirroring: REFLECT leaves the edge value out of the mirror, SYMMETRIC repeats
    it; ``paddings`` as PAD's, at most size - 1 (REFLECT) or size (SYMMETRIC) per side."""

    kind = "MIRROR_PAD"
    attrs = {"paddings": None, "mode": "REFLECT"}

    def axis_indices(self, node: Node, g: Graph) -> list[np.ndarray]:
        x = g.inp(node, 0)
        assert x is not None
        pads = [tuple(int(v) for v in p) for p in attr(node, "paddings")]
        mode = attr(node, "mode")
        if mode not in ("REFLECT", "SYMMETRIC") or len(pads) != len(x.shape):
            raise TinycError(f"node {node.name!r} (MIRROR_PAD): mode {mode}, paddings {pads}")
        offset = 1 if mode == "REFLECT" else 0
        for d, (a, b) in zip(x.shape, pads, strict=True):
            if min(a, b) < 0 or max(a, b) > d - offset:
                raise TinycError(
                    f"node {node.name!r} (MIRROR_PAD): paddings {pads} too wide for "
                    f"{list(x.shape)} ({mode})"
                )
        return [mirror_index(d, a, b, offset) for d, (a, b) in zip(x.shape, pads, strict=True)]


@register
class ReverseV2(_TakeAxes):
    kind = "REVERSE_V2"
    attrs = {"axes": None}

    def axis_indices(self, node: Node, g: Graph) -> list[np.ndarray]:
        x = g.inp(node, 0)
        assert x is not None
        axes = {normalize_axis(int(a), len(x.shape), node) for a in attr(node, "axes")}
        return [
            np.arange(d - 1, -1, -1) if i in axes else np.arange(d) for i, d in enumerate(x.shape)
        ]


@register
class Shape(OpDef):
    """The input's shape as an int32 (or int64) vector: a constant of the graph."""

    kind = "SHAPE"

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        x = g.inp(node, 0)
        assert x is not None
        return [((len(x.shape),), g.out(node).dtype)]

    def check(self, node: Node, g: Graph) -> None:
        if g.out(node).dtype not in ("int32", "int64"):
            raise TinycError(f"node {node.name!r} (SHAPE): int32 or int64 output")

    def quantized(self, node: Node, g: Graph) -> bool:
        return False

    def eval_float(self, node, g, xs):
        x = g.inp(node, 0)
        assert x is not None
        return [np.asarray(x.shape, dtype=g.out(node).dtype)]

    def bytes_moved(self, node: Node, g: Graph) -> tuple[int, int]:
        return 0, g.out(node).nbytes

    int8_semantics = "tflm"
