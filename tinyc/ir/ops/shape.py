"""Data-movement ops: RESHAPE, TRANSPOSE, PAD, CONCATENATION, SPLIT, SPLIT_V, PACK, UNPACK.

They copy values unchanged, so one implementation serves every dtype; quantized tensors
keep their input's parameters (TFLM does not rescale in these kernels).
"""

from __future__ import annotations

import numpy as np

from tinyc.errors import TinycError
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops.base import (
    OpDef,
    Spec,
    activation_float,
    attr,
    normalize_axis,
    quantize_value,
    register,
)
from tinyc.ir.tensor import dtype_range


class _Move(OpDef):
    output_quant = "same_as_input"

    def check(self, node: Node, g: Graph) -> None:
        x = g.inp(node, 0)
        assert x is not None
        for o in node.outputs:
            y = g.tensors[o]
            if y.dtype != x.dtype:
                raise TinycError(f"node {node.name!r} ({node.op}): {x.dtype} -> {y.dtype}")
            if y.is_quantized and not (x.quant and x.quant.same_as(y.quant)):
                raise TinycError(
                    f"node {node.name!r} ({node.op}): input and output quantization differ"
                )

    def bytes_moved(self, node: Node, g: Graph) -> tuple[int, int]:
        read = sum(g.tensors[i].nbytes for i in node.inputs[:1] if i)
        return read, sum(g.tensors[o].nbytes for o in node.outputs)


@register
class Reshape(_Move):
    kind = "RESHAPE"
    attrs = {"shape": None}
    in_place = True

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        x = g.inp(node, 0)
        assert x is not None
        shape = list(attr(node, "shape"))
        if shape.count(-1) > 1:
            raise TinycError(f"node {node.name!r}: RESHAPE to {shape} has several -1")
        if -1 in shape:
            known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
            if known == 0 or x.size % known:
                raise TinycError(f"node {node.name!r}: cannot reshape {list(x.shape)} to {shape}")
            shape[shape.index(-1)] = x.size // known
        if int(np.prod(shape, dtype=np.int64)) != x.size or min(shape, default=1) < 0:
            raise TinycError(f"node {node.name!r}: cannot reshape {list(x.shape)} to {shape}")
        return [(tuple(shape), x.dtype)]

    def eval_float(self, node, g, xs):
        return [xs[0].reshape(g.out(node).shape)]

    def bytes_moved(self, node: Node, g: Graph) -> tuple[int, int]:
        return 0, 0


@register
class Transpose(_Move):
    kind = "TRANSPOSE"
    attrs = {"perm": None}

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        x = g.inp(node, 0)
        assert x is not None
        perm = tuple(attr(node, "perm"))
        if sorted(perm) != list(range(len(x.shape))):
            raise TinycError(f"node {node.name!r}: bad TRANSPOSE permutation {list(perm)}")
        return [(tuple(x.shape[p] for p in perm), x.dtype)]

    def eval_float(self, node, g, xs):
        return [np.ascontiguousarray(np.transpose(xs[0], attr(node, "perm")))]


@register
class Pad(_Move):
    kind = "PAD"
    #: ``value`` is the raw padding value in the tensor's dtype; None = zero point (or 0.0)
    attrs = {"paddings": None, "value": 0}

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        x = g.inp(node, 0)
        assert x is not None
        pads = attr(node, "paddings")
        if len(pads) != len(x.shape) or any(min(p) < 0 for p in pads):
            raise TinycError(f"node {node.name!r}: PAD paddings {pads} do not fit {list(x.shape)}")
        return [(tuple(d + a + b for d, (a, b) in zip(x.shape, pads, strict=True)), x.dtype)]

    def pad_value(self, node: Node, g: Graph) -> float | int:
        value = node.attrs.get("value")
        if value is not None:
            return value
        y = g.out(node)
        return y.quant.zp if y.is_quantized and y.quant else 0

    def quantize_attrs(self, node: Node, g: Graph) -> dict:
        attrs = dict(node.attrs)
        value = attrs.get("value", 0)
        y = g.out(node)
        if y.is_quantized and y.quant is not None:
            # None pads with the zero point, i.e. the real value 0.0.
            if value is None or float(value) == 0.0:
                attrs["value"] = None
            else:
                lo, hi = dtype_range(y.dtype)
                attrs["value"] = min(hi, max(lo, quantize_value(y.quant.s, y.quant.zp, value)))
        return attrs

    def eval_float(self, node, g, xs):
        pads = [tuple(p) for p in attr(node, "paddings")]
        return [np.pad(xs[0], pads, constant_values=self.pad_value(node, g))]


@register
class Concatenation(_Move):
    kind = "CONCATENATION"
    attrs = {"axis": None, "activation": "NONE"}

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        ins = [g.tensors[i] for i in node.inputs]
        rank = len(ins[0].shape)
        axis = normalize_axis(attr(node, "axis"), rank, node)
        for t in ins[1:]:
            if len(t.shape) != rank or any(
                a != b
                for i, (a, b) in enumerate(zip(t.shape, ins[0].shape, strict=True))
                if i != axis
            ):
                raise TinycError(
                    f"node {node.name!r}: cannot concatenate {[list(t.shape) for t in ins]}"
                )
        shape = list(ins[0].shape)
        shape[axis] = sum(t.shape[axis] for t in ins)
        return [(tuple(shape), ins[0].dtype)]

    def check(self, node: Node, g: Graph) -> None:
        y = g.out(node)
        for i in node.inputs:
            x = g.tensors[i]
            if x.dtype != y.dtype or (
                y.is_quantized and not (x.quant and x.quant.same_as(y.quant))
            ):
                raise TinycError(
                    f"node {node.name!r} (CONCATENATION): inputs must share the output's dtype "
                    "and quantization"
                )
        if y.is_quantized and attr(node, "activation") != "NONE":
            raise TinycError(f"node {node.name!r}: fused activation on int8 CONCATENATION")

    def eval_float(self, node, g, xs):
        axis = normalize_axis(attr(node, "axis"), xs[0].ndim, node)
        y = np.concatenate(xs, axis=axis)
        if y.dtype == np.float32:
            y = activation_float(y, attr(node, "activation")).astype(np.float32)
        return [y]

    def bytes_moved(self, node: Node, g: Graph) -> tuple[int, int]:
        return sum(g.tensors[i].nbytes for i in node.inputs), g.out(node).nbytes


def _split_sizes(node: Node, g: Graph) -> tuple[int, list[int]]:
    x = g.inp(node, 0)
    assert x is not None
    axis = normalize_axis(attr(node, "axis"), len(x.shape), node)
    dim = x.shape[axis]
    if node.op == "SPLIT":
        n = attr(node, "num_splits")
        if n <= 0 or dim % n:
            raise TinycError(f"node {node.name!r}: cannot split {dim} into {n} equal parts")
        return axis, [dim // n] * n
    sizes = list(attr(node, "size_splits"))
    if sizes.count(-1) == 1:
        sizes[sizes.index(-1)] = dim - (sum(sizes) + 1)
    if sum(sizes) != dim or min(sizes) < 0:
        raise TinycError(f"node {node.name!r}: split sizes {sizes} do not add up to {dim}")
    return axis, sizes


class _Split(_Move):
    def infer(self, node: Node, g: Graph) -> list[Spec]:
        x = g.inp(node, 0)
        assert x is not None
        axis, sizes = _split_sizes(node, g)
        if len(sizes) != len(node.outputs):
            raise TinycError(f"node {node.name!r}: {len(sizes)} parts, {len(node.outputs)} outputs")
        specs = []
        for s in sizes:
            shape = list(x.shape)
            shape[axis] = s
            specs.append((tuple(shape), x.dtype))
        return specs

    def eval_float(self, node, g, xs):
        axis, sizes = _split_sizes(node, g)
        return [np.ascontiguousarray(p) for p in np.split(xs[0], np.cumsum(sizes)[:-1], axis=axis)]


@register
class Split(_Split):
    kind = "SPLIT"
    attrs = {"axis": None, "num_splits": None}


@register
class SplitV(_Split):
    kind = "SPLIT_V"
    attrs = {"axis": None, "size_splits": None}


@register
class Pack(_Move):
    kind = "PACK"
    attrs = {"axis": 0}

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        ins = [g.tensors[i] for i in node.inputs]
        if any(t.shape != ins[0].shape for t in ins):
            raise TinycError(f"node {node.name!r}: PACK inputs differ in shape")
        axis = normalize_axis(attr(node, "axis"), len(ins[0].shape) + 1, node)
        shape = list(ins[0].shape)
        shape.insert(axis, len(ins))
        return [(tuple(shape), ins[0].dtype)]

    def eval_float(self, node, g, xs):
        axis = normalize_axis(attr(node, "axis"), xs[0].ndim + 1, node)
        return [np.stack(xs, axis=axis)]

    def bytes_moved(self, node: Node, g: Graph) -> tuple[int, int]:
        return sum(g.tensors[i].nbytes for i in node.inputs), g.out(node).nbytes


@register
class Unpack(_Move):
    kind = "UNPACK"
    attrs = {"axis": 0}

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        x = g.inp(node, 0)
        assert x is not None
        axis = normalize_axis(attr(node, "axis"), len(x.shape), node)
        if x.shape[axis] != len(node.outputs):
            raise TinycError(
                f"node {node.name!r}: UNPACK of {x.shape[axis]} slices into {len(node.outputs)}"
            )
        shape = tuple(d for i, d in enumerate(x.shape) if i != axis)
        return [(shape, x.dtype)] * len(node.outputs)

    def eval_float(self, node, g, xs):
        axis = normalize_axis(attr(node, "axis"), xs[0].ndim, node)
        return [
            np.ascontiguousarray(np.take(xs[0], i, axis=axis)) for i in range(xs[0].shape[axis])
        ]
