"""PRelu, Pow (constant exponent) and Sqrt: elementwise ops in their operand's layout."""

from __future__ import annotations

import numpy as np
import onnx

from tinyc.frontend.onnx.builder import Builder
from tinyc.frontend.onnx.ops_math import _unary, float_value
from tinyc.frontend.onnx.registry import onnx_op


@onnx_op("PRelu")
def prelu(b: Builder, node: onnx.NodeProto) -> None:
    """The slope broadcasts to X (ONNX's unidirectional broadcast); it must be constant."""
    x, slope = node.input[0], node.input[1]
    if not b.is_const(slope):
        raise b.unsupported("a run-time slope (constant slopes only)")
    v = float_value(b, x)
    rank = b.rank(x)
    if len(b.shape(slope)) > rank:
        raise b.unsupported(f"slope of rank {len(b.shape(slope))} for input rank {rank}")
    alpha = b.operand(slope, v.perm, rank=rank)
    out = b.emit("PRELU", [v.ir, alpha], {}, node.output[0])
    b.bind(node.output[0], out, v.perm)


@onnx_op("Pow")
def pow_(b: Builder, node: onnx.NodeProto) -> None:
    """x ** 2 is MUL(x, x), x ** 0.5 is SQRT, x ** 1 is x; other exponents are refused."""
    x, e = node.input[0], node.input[1]
    if not b.is_const(e):
        raise b.unsupported("a run-time exponent")
    values = np.unique(np.asarray(b.const(e, "exponent"), np.float64))
    if values.size != 1 or np.broadcast_shapes(b.shape(x), b.shape(e)) != b.shape(x):
        raise b.unsupported("an exponent that is not one value broadcast to the input")
    p = float(values[0])
    v = float_value(b, x)
    if p == 1.0:
        b.values[node.output[0]] = v
    elif p == 2.0:
        out = b.emit("MUL", [v.ir, v.ir], {}, node.output[0])
        b.bind(node.output[0], out, v.perm)
    elif p == 0.5:
        _unary(b, node, "SQRT")
    else:
        raise b.unsupported(f"exponent {p:g} (2, 0.5 and 1 are supported)")
