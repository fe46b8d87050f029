"""InstanceNormalization and LayerNormalization, decomposed into IR ops (float):
mean = MEAN(x), d = x - mean, y = d / SQRT(MEAN(d * d) + eps) * scale + bias, with the
statistics over the spatial axes (instance norm) or the axes from ``axis`` on (layer
norm), in whatever layout the input already has."""

from __future__ import annotations

import numpy as np
import onnx

from tinyc.frontend.onnx.builder import Builder, Value
from tinyc.frontend.onnx.ops_math import float_value
from tinyc.frontend.onnx.registry import inputs, onnx_op


def normalized(b: Builder, v: Value, axes: list[int], eps: float, out: str) -> str:
    """(x - mean) / sqrt(var + eps) over ONNX ``axes`` of value ``v`` (IR name)."""
    ir_axes = tuple(sorted(v.perm.index(a) for a in axes))
    attrs = {"axes": ir_axes, "keep_dims": True}
    rank = len(v.perm)
    mean = b.emit("MEAN", [v.ir], attrs, f"{out}#mean", suffix="mean")
    d = b.emit("SUB", [v.ir, mean], {}, f"{out}#centered", suffix="center")
    sq = b.emit("MUL", [d, d], {}, f"{out}#squared", suffix="square")
    var = b.emit("MEAN", [sq], attrs, f"{out}#variance", suffix="variance")
    e = b.const_tensor(np.full((1,) * rank, eps, np.float32), f"{out}#epsilon")
    ve = b.emit("ADD", [var, e], {}, f"{out}#var_eps", suffix="add_epsilon")
    std = b.emit("SQRT", [ve], {}, f"{out}#std", suffix="std")
    return b.emit("DIV", [d, std], {}, f"{out}#normalized", suffix="normalize")


def affine(b: Builder, node: onnx.NodeProto, ir: str, v: Value, scale: str, bias: str) -> str:
    """``ir * scale + bias`` with constant ONNX operands broadcast against ``v``."""
    rank = len(v.perm)
    out = node.output[0]
    y = ir
    if scale:
        y = b.emit(
            "MUL",
            [y, b.operand(scale, v.perm, rank=rank)],
            {},
            out if not bias else None,
            suffix="scale",
        )
    if bias:
        y = b.emit("ADD", [y, b.operand(bias, v.perm, rank=rank)], {}, out, suffix="bias")
    return y


def _const_operand(b: Builder, name: str, what: str) -> None:
    if name and not b.is_const(name):
        raise b.unsupported(f"a run-time {what} (constants only)")


@onnx_op("InstanceNormalization")
def instance_norm(b: Builder, node: onnx.NodeProto) -> None:
    x, scale, bias = node.input[0], node.input[1], node.input[2]
    _const_operand(b, scale, "scale")
    _const_operand(b, bias, "bias")
    v = float_value(b, x)
    rank = len(v.perm)
    if rank < 3:
        raise b.unsupported(f"input of rank {rank}")
    eps = float(b.attrs(node).get("epsilon", 1e-5))
    ir = normalized(b, v, list(range(2, rank)), eps, node.output[0])
    # per-channel (axis 1) parameters
    shape = (1, -1) + (1,) * (rank - 2)
    for name in (scale, bias):
        b.consts[f"{name}#nchw"] = np.asarray(b.const(name, "parameter")).reshape(shape)
    y = affine(b, node, ir, v, f"{scale}#nchw", f"{bias}#nchw")
    b.bind(node.output[0], y, v.perm)


@onnx_op("LayerNormalization")
def layer_norm(b: Builder, node: onnx.NodeProto) -> None:
    if any(o for o in node.output[1:]):
        raise b.unsupported("the Mean / InvStdDev outputs")
    x, scale, bias = node.input[0], node.input[1], inputs(node, 2)
    _const_operand(b, scale, "scale")
    _const_operand(b, bias, "bias")
    v = float_value(b, x)
    rank = len(v.perm)
    a = b.attrs(node)
    axis = int(a.get("axis", -1))
    if not -rank <= axis < rank:
        raise b.unsupported(f"axis {axis} for rank {rank}")
    axis %= rank
    eps = float(a.get("epsilon", 1e-5))
    ir = normalized(b, v, list(range(axis, rank)), eps, node.output[0])
    b.bind(node.output[0], affine(b, node, ir, v, scale, bias), v.perm)
