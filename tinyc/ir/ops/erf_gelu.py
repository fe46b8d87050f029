"""GELU and ERF, elementwise with a 256-entry table as their int8 form: GELU's built as
TFLite builds it (``LUTPopulate``: float32 arithmetic, ``round`` half away from zero; the
``approximate`` attribute selects the tanh form, as TFLite's option does), ERF's with
tinyc's own table rule (tinyc.ir.ops.table; TFLite has no ERF). ONNX Gelu / Erf and
PyTorch's gelu map onto them.
"""

from __future__ import annotations

import math

import numpy as np

from tinyc.ir.fixedpoint import round_half_away
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops.activation import _Unary
from tinyc.ir.ops.base import attr, register
from tinyc.ir.ops.table import ALL_INT8, _Table

_erf = np.vectorize(math.erf, otypes=[np.float64])


def lut_populate(node: Node, g: Graph, transform) -> np.ndarray:
    """TFLite's LUTPopulate for int8: the output for each input value (uint8-bit index),
    dequantized, transformed and requantized in float32."""
    x, y = g.inp(node, 0), g.out(node)
    assert x is not None and x.quant is not None and y.quant is not None
    inverse_scale = np.float32(1.0) / np.float32(y.quant.s)
    dequantized = np.float32(x.quant.s) * (ALL_INT8.astype(np.int32) - x.quant.zp).astype(
        np.float32
    )
    transformed = transform(dequantized.astype(np.float32)).astype(np.float32)
    rescaled = round_half_away(transformed * inverse_scale).astype(np.float32)
    q = (rescaled + np.float32(y.quant.zp)).astype(np.int64)
    return np.clip(q, -128, 127).astype(np.int8)


class _FloatLut(_Unary):
    def transform(self, node: Node, x: np.ndarray) -> np.ndarray:
        """The function in float32, as the TFLite kernel's table builder computes it."""
        raise NotImplementedError

    def table(self, node: Node, g: Graph) -> np.ndarray:
        return lut_populate(node, g, lambda v: self.transform(node, v))

    def eval_quant(self, node, g, xs):
        return [self.table(node, g)[xs[0].view(np.uint8)]]


@register
class Gelu(_FloatLut):
    kind = "GELU"
    attrs = {"approximate": False}
    #: TFLite's table rule, but no TFLite Micro kernel to be bit-exact with
    int8_semantics = "tinyc"

    @staticmethod
    def real(x: np.ndarray, approximate: bool) -> np.ndarray:
        x = x.astype(np.float64)
        if approximate:
            inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)
            return 0.5 * x * (1.0 + np.tanh(inner))
        return 0.5 * x * (1.0 + _erf(x * math.sqrt(0.5)))

    def transform(self, node, x):
        return self.real(x, bool(attr(node, "approximate"))).astype(np.float32)

    def eval_float(self, node, g, xs):
        return [self.real(xs[0], bool(attr(node, "approximate"))).astype(np.float32)]


@register
class Erf(_Table):
    """ERF (ONNX Erf; no TFLite counterpart). int8: tinyc's table rule."""

    kind = "ERF"

    @staticmethod
    def real_fn(x):
        return _erf(x)
