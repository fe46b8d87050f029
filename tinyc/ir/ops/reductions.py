"""SUM, REDUCE_MAX, REDUCE_MIN (like MEAN: ``axes``, ``keep_dims``) and ARG_MAX, ARG_MIN
(one axis, int32 positions), with TFLM's int8 kernels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyc.errors import TinycError
from tinyc.ir.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier, wrap32
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops.base import OpDef, Spec, attr, clamp_cast, normalize_axis, register
from tinyc.ir.ops.reduce import Mean


@dataclass
class SumParams:
    count: int  # elements summed into each output
    input_zp: int
    output_zp: int
    multiplier: int
    shift: int


@register
class Sum(Mean):
    """SUM; int8 as TFLM's QuantizedMeanOrSum with compute_sum: the int32 sum of the
    inputs minus count * zero point, rescaled by s_in / s_out."""

    kind = "SUM"

    def sum_params(self, node: Node, g: Graph) -> SumParams:
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None and x.quant is not None and y.quant is not None
        count = int(np.prod([x.shape[a] for a in self.axes(node, g)], dtype=np.int64))
        mult, shift = quantize_multiplier(float(x.quant.s) / float(y.quant.s))
        return SumParams(count, x.quant.zp, y.quant.zp, mult, shift)

    def eval_quant(self, node, g, xs):
        p = self.sum_params(node, g)
        total = wrap32(xs[0].astype(np.int64).sum(axis=self.axes(node, g)) - p.input_zp * p.count)
        out = multiply_by_quantized_multiplier(total, p.multiplier, p.shift) + p.output_zp
        y = g.out(node)
        return [clamp_cast(out, -128, 127, "int8").reshape(y.shape)]

    def eval_float(self, node, g, xs):
        y = g.out(node)
        total = xs[0].astype(np.float64).sum(axis=self.axes(node, g))
        return [total.astype(np.float32).reshape(y.shape)]


class _ReduceMinMax(Mean):
    """Raw values compared: int8 keeps the input's quantization (TFLM checks it)."""

    output_quant = "same_as_input"
    fn = staticmethod(np.max)

    def check(self, node: Node, g: Graph) -> None:
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None
        if y.dtype != x.dtype or x.dtype not in ("float32", "int8"):
            raise TinycError(f"node {node.name!r} ({node.op}): float32 or int8 only")
        if y.is_quantized and not (x.quant and x.quant.same_as(y.quant)):
            raise TinycError(
                f"node {node.name!r} ({node.op}): int8 input and output must share their "
                "quantization (TFLM does not rescale here)"
            )

    def eval_float(self, node, g, xs):
        y = g.out(node)
        return [self.fn(xs[0], axis=self.axes(node, g)).astype(xs[0].dtype).reshape(y.shape)]

    def eval_quant(self, node, g, xs):
        return self.eval_float(node, g, xs)


@register
class ReduceMax(_ReduceMinMax):
    kind = "REDUCE_MAX"
    fn = staticmethod(np.max)


@register
class ReduceMin(_ReduceMinMax):
    kind = "REDUCE_MIN"
    fn = staticmethod(np.min)


class _ArgMinMax(OpDef):
    """The first position of the largest (ARG_MAX) or smallest (ARG_MIN) value along
    ``axis``, as int32; int8 compares raw values (the scale is positive)."""

    attrs = {"axis": None}
    fn = staticmethod(np.argmax)
    int8_semantics = "tflm"

    def axis(self, node: Node, g: Graph) -> int:
        x = g.inp(node, 0)
        assert x is not None
        return normalize_axis(int(attr(node, "axis")), len(x.shape), node)

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        x = g.inp(node, 0)
        assert x is not None
        axis = self.axis(node, g)
        return [(x.shape[:axis] + x.shape[axis + 1 :], "int32")]

    def quantized(self, node: Node, g: Graph) -> bool:
        return False  # raw values either way

    def check(self, node: Node, g: Graph) -> None:
        x = g.inp(node, 0)
        assert x is not None
        if x.dtype not in ("float32", "int8"):
            raise TinycError(f"node {node.name!r} ({node.op}): float32 or int8 input only")

    def eval_float(self, node, g, xs):
        return [self.fn(xs[0], axis=self.axis(node, g)).astype(np.int32)]


@register
class ArgMax(_ArgMinMax):
    kind = "ARG_MAX"
    fn = staticmethod(np.argmax)


@register
class ArgMin(_ArgMinMax):
    kind = "ARG_MIN"
    fn = staticmethod(np.argmin)


@register
class ReduceAll(Mean):
    """Logical AND over ``axes`` of a bool tensor."""

    kind = "REDUCE_ALL"
    int8_semantics = ""

    def check(self, node: Node, g: Graph) -> None:
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None
        if x.dtype != "bool" or y.dtype != "bool":
            raise TinycError(f"node {node.name!r} (REDUCE_ALL): bool only")

    def quantized(self, node: Node, g: Graph) -> bool:
        return False

    def eval_float(self, node, g, xs):
        return [np.all(xs[0], axis=self.axes(node, g)).reshape(g.out(node).shape)]


@dataclass
class CumSumParams:
    """TFLM's int8 CUMSUM: the ADD_N arithmetic (left shift 20, the sum starting from the
    rescaled input offset)."""

    input_zp: int
    output_zp: int
    input_multiplier: int
    input_shift: int
    output_multiplier: int
    output_shift: int


@register
class CumSum(OpDef):
    """Running sum along ``axis`` (``exclusive``: the element itself left out; ``reverse``:
    from the end)."""

    kind = "CUMSUM"
    attrs = {"axis": None, "exclusive": False, "reverse": False}

    def axis(self, node: Node, g: Graph) -> int:
        x = g.inp(node, 0)
        assert x is not None
        return normalize_axis(int(attr(node, "axis")), len(x.shape), node)

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        x = g.inp(node, 0)
        assert x is not None
        self.axis(node, g)
        return [(x.shape, g.out(node).dtype)]

    def check(self, node: Node, g: Graph) -> None:
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None
        if y.is_quantized and (x.dtype != "int8" or y.dtype != "int8"):
            raise TinycError(f"node {node.name!r} (CUMSUM): int8 or float32 only")
        if not y.is_quantized and x.dtype != "float32":
            raise TinycError(f"node {node.name!r} (CUMSUM): int8 or float32 only")

    def cumsum_params(self, node: Node, g: Graph) -> CumSumParams:
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None and x.quant is not None and y.quant is not None
        twice = 2 * float(x.quant.s)
        mi, si = quantize_multiplier(float(x.quant.s) / twice)
        mo, so = quantize_multiplier(twice / ((1 << 20) * float(y.quant.s)))
        return CumSumParams(x.quant.zp, y.quant.zp, mi, si, mo, so)

    def _running(self, node: Node, g: Graph, v: np.ndarray, start) -> np.ndarray:
        axis = self.axis(node, g)
        if attr(node, "reverse"):
            v = np.flip(v, axis)
        total = np.cumsum(v, axis=axis) + start
        if attr(node, "exclusive"):
            total = total - v
        return np.flip(total, axis) if attr(node, "reverse") else total

    def eval_quant(self, node, g, xs):
        p = self.cumsum_params(node, g)
        scaled = multiply_by_quantized_multiplier(
            (xs[0].astype(np.int64) - p.input_zp) << 20, p.input_multiplier, p.input_shift
        )
        start = int(multiply_by_quantized_multiplier(-p.input_zp << 20, p.input_multiplier,
                                                     p.input_shift))  # fmt: skip
        total = wrap32(self._running(node, g, scaled, start))
        out = multiply_by_quantized_multiplier(total, p.output_multiplier, p.output_shift)
        return [clamp_cast(out + p.output_zp, -128, 127, "int8")]

    def eval_float(self, node, g, xs):
        v = xs[0].astype(np.float32)
        return [self._running(node, g, v, np.float32(0)).astype(np.float32)]


@register
class L2Pool2D(OpDef):
    """sqrt(mean(x^2)) over each window (NHWC; padding never counted), float only as in
    TFLM; attributes as AVERAGE_POOL_2D's."""

    kind = "L2_POOL_2D"
    attrs = {"filter": None, "stride": (1, 1), "pads": (0, 0, 0, 0), "activation": "NONE"}
    int8_semantics = ""

    def geometry(self, node: Node, g: Graph | None = None):
        from tinyc.ir.ops.pool import AveragePool2D

        return AveragePool2D.geometry(self, node)  # type: ignore[arg-type]

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        from tinyc.ir.ops.pool import AveragePool2D

        return AveragePool2D.infer(self, node, g)  # type: ignore[arg-type]

    def check(self, node: Node, g: Graph) -> None:
        x = g.inp(node, 0)
        assert x is not None
        if x.dtype != "float32" or g.out(node).dtype != "float32":
            raise TinycError(f"node {node.name!r} (L2_POOL_2D): float32 only (as TFLM)")

    def eval_float(self, node, g, xs):
        from tinyc.ir.ops.base import activation_float
        from tinyc.ir.ops.window import patches, valid_mask

        k, s, d, p = self.geometry(node)
        out_hw = g.out(node).shape[1:3]
        x = xs[0].astype(np.float32)
        cols = patches(x * x, k, s, d, p, out_hw, 0.0)
        count = valid_mask(x.shape[1:3], k, s, p, out_hw).sum(axis=(3, 4)).astype(np.float32)
        mean = cols.sum(axis=(3, 4), dtype=np.float32) / count
        return [activation_float(np.sqrt(mean), attr(node, "activation")).astype(np.float32)]
