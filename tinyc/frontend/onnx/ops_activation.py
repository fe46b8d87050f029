"""Activations and elementwise math beyond Add/Sub/Mul/Div: HardSigmoid, HardSwish,
LeakyRelu, Elu, Selu, Gelu, Erf, Exp, Log, Abs, Neg, Reciprocal, Min, Max, Sum and Where
(constant condition).

Where the IR has the op, it is that op (HARD_SWISH, LEAKY_RELU, ELU, GELU, ERF, EXP, LOG,
ABS, NEG, MINIMUM, MAXIMUM); the rest are short compositions of IR ops, exact in float:
HardSigmoid is ``relu6(x * 6a + 6b) / 6`` (the MUL and ADD fold into a producing
convolution, the RELU6 fuses), Elu with alpha != 1 ``relu(x) + alpha * min(elu(x), 0)``,
Selu that times gamma, Reciprocal a DIV of one, Sum / Max / Min chains of ADD / MAXIMUM /
MINIMUM; Where with a constant condition is SELECT_V2.
"""

from __future__ import annotations

import numpy as np
import onnx

from tinyc.frontend.onnx.builder import Builder
from tinyc.frontend.onnx.ops_math import _binary, _unary, align, float_value
from tinyc.frontend.onnx.registry import onnx_op


def scalar(b: Builder, value: float, rank: int, hint: str) -> str:
    """A float constant holding one value, of rank ``rank`` (broadcasts against anything)."""
    data = np.full((1,) * rank, value, np.float32)
    return b.const_tensor(data, f"{b.node_name}#{hint}")


def _scaled(b: Builder, ir: str, factor: float, out: str, suffix: str) -> str:
    """``ir`` times a constant; a factor within float32 rounding of 1 is none (6 * 1/6)."""
    rank = len(b.g.tensors[ir].shape)
    if abs(factor - 1.0) <= 1e-6:
        return ir
    return b.emit("MUL", [ir, scalar(b, factor, rank, suffix)], {}, out, suffix=suffix)


def hard_sigmoid(b: Builder, ir: str, out: str, alpha: float, beta: float) -> str:
    """max(0, min(1, alpha * x + beta)) as MUL(6 alpha), ADD(6 beta), RELU6, MUL(1/6)."""
    rank = len(b.g.tensors[ir].shape)
    y = _scaled(b, ir, 6.0 * alpha, f"{out}#scaled", "scale")
    if beta != 0.0:
        y = b.emit("ADD", [y, scalar(b, 6.0 * beta, rank, "shift")], {}, f"{out}#shifted")
    y = b.emit("RELU6", [y], {}, f"{out}#relu6")
    return b.emit("MUL", [y, scalar(b, 1.0 / 6.0, rank, "sixth")], {}, out, suffix="sixth")


@onnx_op("HardSigmoid")
def hard_sigmoid_op(b: Builder, node: onnx.NodeProto) -> None:
    a = b.attrs(node)
    v = float_value(b, node.input[0])
    alpha, beta = float(a.get("alpha", 0.2)), float(a.get("beta", 0.5))
    b.bind(node.output[0], hard_sigmoid(b, v.ir, node.output[0], alpha, beta), v.perm)


@onnx_op("LeakyRelu")
def leaky_relu(b: Builder, node: onnx.NodeProto) -> None:
    _unary(b, node, "LEAKY_RELU", {"alpha": float(b.attrs(node).get("alpha", 0.01))})


def elu_alpha(b: Builder, ir: str, out: str, alpha: float) -> str:
    """ELU with ``alpha``: ELU itself for alpha = 1 (TFLite's), otherwise
    relu(x) + alpha * min(elu(x), 0)."""
    if alpha == 1.0:
        return b.emit("ELU", [ir], {}, out)
    rank = len(b.g.tensors[ir].shape)
    e = b.emit("ELU", [ir], {}, f"{out}#elu")
    neg = b.emit("MINIMUM", [e, scalar(b, 0.0, rank, "zero")], {}, f"{out}#negative")
    neg = _scaled(b, neg, alpha, f"{out}#alpha", "alpha")
    pos = b.emit("RELU", [ir], {}, f"{out}#positive")
    return b.emit("ADD", [pos, neg], {}, out)


@onnx_op("Elu")
def elu(b: Builder, node: onnx.NodeProto) -> None:
    v = float_value(b, node.input[0])
    alpha = float(b.attrs(node).get("alpha", 1.0))
    b.bind(node.output[0], elu_alpha(b, v.ir, node.output[0], alpha), v.perm)


@onnx_op("Selu")
def selu(b: Builder, node: onnx.NodeProto) -> None:
    a = b.attrs(node)
    alpha = float(a.get("alpha", 1.67326319217681884765625))
    gamma = float(a.get("gamma", 1.05070102214813232421875))
    v = float_value(b, node.input[0])
    y = elu_alpha(b, v.ir, f"{node.output[0]}#elu", alpha)
    b.bind(node.output[0], _scaled(b, y, gamma, node.output[0], "gamma"), v.perm)


@onnx_op("Gelu")
def gelu(b: Builder, node: onnx.NodeProto) -> None:
    approx = b.attrs(node).get("approximate", "none")
    if approx not in ("none", "tanh"):
        raise b.unsupported(f"approximate={approx!r}")
    _unary(b, node, "GELU", {"approximate": approx == "tanh"})


@onnx_op("Reciprocal")
def reciprocal(b: Builder, node: onnx.NodeProto) -> None:
    one = f"{node.output[0]}#one"
    b.consts[one] = np.ones((), np.float32)
    _binary(b, node, "DIV", [one, node.input[0]])


def _variadic(b: Builder, node: onnx.NodeProto, kind: str) -> None:
    names = [n for n in node.input if n]
    if len(names) == 1:
        b.values[node.output[0]] = float_value(b, names[0])
        return
    ir, perm = align(b, names)
    y = ir[0]
    for i, other in enumerate(ir[1:], start=1):
        last = i == len(ir) - 1
        out = node.output[0] if last else f"{node.output[0]}#{kind.lower()}{i}"
        y = b.emit(kind, [y, other], {}, out)
    b.bind(node.output[0], y, perm)


@onnx_op("Sum")
def sum_(b: Builder, node: onnx.NodeProto) -> None:
    _variadic(b, node, "ADD")


@onnx_op("Max")
def max_(b: Builder, node: onnx.NodeProto) -> None:
    _variadic(b, node, "MAXIMUM")


@onnx_op("Min")
def min_(b: Builder, node: onnx.NodeProto) -> None:
    _variadic(b, node, "MINIMUM")


@onnx_op("Where")
def where(b: Builder, node: onnx.NodeProto) -> None:
    """A constant condition: all true (or all false) with nothing to broadcast is the
    chosen operand itself; otherwise SELECT_V2 with the condition as a bool constant."""
    cname, x, y = node.input[0], node.input[1], node.input[2]
    if not b.is_const(cname):
        raise b.unsupported("a run-time condition (constant conditions only)")
    if b.is_const(x) and b.is_const(y):
        raise b.unsupported("constant operands (nothing to compute)")
    cond = np.asarray(b.const(cname, "the condition")).astype(bool)
    out_shape = tuple(np.broadcast_shapes(cond.shape, b.shape(x), b.shape(y)))
    for pick, flag in ((x, cond), (y, ~cond)):
        if flag.all() and not b.is_const(pick) and b.shape(pick) == out_shape:
            b.values[node.output[0]] = b.value(pick)
            return
    key = f"{cname}#bool"
    b.consts[key] = cond
    ir, perm = align(b, [key, x, y])
    b.bind(node.output[0], b.emit("SELECT_V2", ir, {}, node.output[0]), perm)
