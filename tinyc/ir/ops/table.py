"""Elementwise ops without a TFLM int8 kernel, defined in int8 by a 256-entry table.

tinyc's own integer semantics: for each int8 input value q, the output is
``clamp(zp_out + round_half_away(f(s_in * (q - zp_in)) / s_out), -128, 127)`` with the
arithmetic in float64 (the float32 scales widened). The table is computed once, at
compile time, so the interpreter and the generated C agree by construction.
"""

from __future__ import annotations

import numpy as np

from tinyc.ir.fixedpoint import round_half_away
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops.activation import _Unary
from tinyc.ir.ops.base import register

#: the 256 int8 values in table order (index = the value's bits read as uint8)
ALL_INT8 = np.arange(256, dtype=np.uint8).view(np.int8)


class _Table(_Unary):
    """An elementwise op whose int8 form is the table of ``real_fn`` at the tensors'
    scales (see the module docstring)."""

    @staticmethod
    def real_fn(x: np.ndarray) -> np.ndarray:
        """The function on real values (float64 in, float64 out)."""
        raise NotImplementedError

    def table_fn(self, x: np.ndarray) -> np.ndarray:
        """The function the int8 table samples (``real_fn`` unless an op says otherwise)."""
        return self.real_fn(x)

    def table(self, node: Node, g: Graph) -> np.ndarray:
        """int8[256]: the output for each input value, indexed by its uint8 bits."""
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None and x.quant is not None and y.quant is not None
        real = (ALL_INT8.astype(np.float64) - x.quant.zp) * float(x.quant.s)
        q = round_half_away(self.table_fn(real) / float(y.quant.s)) + y.quant.zp
        return np.clip(q, -128, 127).astype(np.int8)

    def eval_quant(self, node, g, xs):
        return [self.table(node, g)[xs[0].view(np.uint8)]]

    def eval_float(self, node, g, xs):
        return [self.real_fn(xs[0].astype(np.float64)).astype(np.float32)]


@register
class Sqrt(_Table):
    """SQRT (TFLM runs it in float only). int8: the table of sqrt(max(x, 0)); negative
    inputs, which float maps to NaN, give 0."""

    kind = "SQRT"

    @staticmethod
    def real_fn(x):
        with np.errstate(invalid="ignore"):
            return np.sqrt(x)

    def table_fn(self, x):
        return np.sqrt(np.maximum(x, 0.0))
