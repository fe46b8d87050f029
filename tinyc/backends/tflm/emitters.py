"""One emitter per IR op kind: the TFLite operator, its options and its input list.

The IR keeps constant operator parameters (axes, paddings, permutations, split sizes,
shapes) as attributes; TFLite wants them as int32 constant input tensors, so emitters
recreate them through ``Consts``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyc.backends.tflm.lower import padding_kind, window_geometry
from tinyc.errors import UnsupportedError
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import attr, get_op
from tinyc.ir.ops.base import normalize_axis
from tinyc.ir.tensor import QuantParams, Tensor
from tinyc.tflite_schema import ACTIVATIONS, schema

_ACT_CODES = {v: k for k, v in ACTIVATIONS.items()}


@dataclass
class OpRecord:
    """A TFLite operator about to be written. ``None`` in ``inputs`` = absent optional input."""

    builtin: str
    inputs: list[str | None]
    outputs: list[str]
    options: Any = None


class Consts:
    """Adds the constant tensors an emitter needs to the (lowered) graph."""

    def __init__(self, g: Graph):
        self.g = g

    def add(self, base: str, value: Any, dtype: str = "int32", like: Tensor | None = None) -> str:
        data = np.asarray(value, dtype=dtype)
        name = self.g.unique_name(base)
        quant = like.quant if like is not None else None
        self.g.add_tensor(Tensor(name, data.shape, dtype, data, quant))
        return name


Emitter = Callable[[Node, Graph, Consts], OpRecord]
EMITTERS: dict[str, Emitter] = {}


def emitter(*kinds: str) -> Callable[[Emitter], Emitter]:
    def register(fn: Emitter) -> Emitter:
        for k in kinds:
            EMITTERS[k] = fn
        return fn

    return register


def _act(node: Node) -> int:
    return _ACT_CODES[attr(node, "activation")]


def _padding(node: Node, g: Graph) -> int:
    kind = padding_kind(node, g)
    if kind is None:  # lower_for_tflite runs first; this is a bug guard
        raise UnsupportedError(f"node {node.name!r}: explicit pads left after lowering")
    return getattr(schema().Padding, kind)


def _bias(node: Node, g: Graph, k: Consts, channels: int) -> str:
    """The bias input; a zero bias when the IR node has none (every TFLM kernel and Vela
    accept a bias, not all accept its absence)."""
    if len(node.inputs) > 2 and node.inputs[2]:
        return node.inputs[2]
    x, w = g.inp(node, 0), g.inp(node, 1)
    assert x is not None and w is not None
    if g.out(node).is_quantized:
        assert x.quant and w.quant
        scale = (x.quant.scale.astype(np.float64) * w.quant.scale).astype(np.float32)
        name = k.add(f"{node.name}/bias", np.zeros(channels), "int32")
        k.g.tensors[name].quant = QuantParams(scale, np.zeros_like(scale, np.int64), 0)
        return name
    return k.add(f"{node.name}/bias", np.zeros(channels), x.dtype)


@emitter("CONV_2D")
def _conv(node: Node, g: Graph, k: Consts) -> OpRecord:
    S = schema()
    _, s, d, _ = window_geometry(node, g)
    o = S.Conv2DOptionsT()
    o.padding, o.strideH, o.strideW = _padding(node, g), s[0], s[1]
    o.dilationHFactor, o.dilationWFactor = d
    o.fusedActivationFunction = _act(node)
    w = g.inp(node, 1)
    assert w is not None
    ins = [node.inputs[0], node.inputs[1], _bias(node, g, k, w.shape[0])]
    return OpRecord("CONV_2D", ins, node.outputs, o)


@emitter("DEPTHWISE_CONV_2D")
def _depthwise(node: Node, g: Graph, k: Consts) -> OpRecord:
    S = schema()
    _, s, d, _ = window_geometry(node, g)
    o = S.DepthwiseConv2DOptionsT()
    o.padding, o.strideH, o.strideW = _padding(node, g), s[0], s[1]
    o.dilationHFactor, o.dilationWFactor = d
    o.depthMultiplier = attr(node, "depth_multiplier")
    o.fusedActivationFunction = _act(node)
    w = g.inp(node, 1)
    assert w is not None
    ins = [node.inputs[0], node.inputs[1], _bias(node, g, k, w.shape[3])]
    return OpRecord("DEPTHWISE_CONV_2D", ins, node.outputs, o)


@emitter("FULLY_CONNECTED")
def _fully_connected(node: Node, g: Graph, k: Consts) -> OpRecord:
    o = schema().FullyConnectedOptionsT()
    o.fusedActivationFunction = _act(node)
    o.keepNumDims = bool(attr(node, "keep_num_dims"))
    w = g.inp(node, 1)
    assert w is not None
    ins = [node.inputs[0], node.inputs[1], _bias(node, g, k, w.shape[0])]
    return OpRecord("FULLY_CONNECTED", ins, node.outputs, o)


@emitter("AVERAGE_POOL_2D", "MAX_POOL_2D")
def _pool(node: Node, g: Graph, k: Consts) -> OpRecord:
    o = schema().Pool2DOptionsT()
    kernel, s, _, _ = window_geometry(node, g)
    o.padding, o.strideH, o.strideW = _padding(node, g), s[0], s[1]
    o.filterHeight, o.filterWidth = kernel
    o.fusedActivationFunction = _act(node)
    return OpRecord(node.op, [node.inputs[0]], node.outputs, o)


def _binary_options(cls: str) -> Emitter:
    def emit(node: Node, g: Graph, k: Consts) -> OpRecord:
        o = getattr(schema(), cls)()
        o.fusedActivationFunction = _act(node)
        if hasattr(o, "potScaleInt16"):
            o.potScaleInt16 = False  # general int16 scaling; ignored for int8 and float
        return OpRecord(node.op, list(node.inputs[:2]), node.outputs, o)

    return emit


EMITTERS["ADD"] = _binary_options("AddOptionsT")
EMITTERS["SUB"] = _binary_options("SubOptionsT")
EMITTERS["MUL"] = _binary_options("MulOptionsT")


@emitter("LOGISTIC", "TANH", "RELU", "RELU6", "HARD_SWISH", "QUANTIZE", "DEQUANTIZE")
def _plain(node: Node, g: Graph, k: Consts) -> OpRecord:
    return OpRecord(node.op, [node.inputs[0]], node.outputs)


@emitter("SOFTMAX")
def _softmax(node: Node, g: Graph, k: Consts) -> OpRecord:
    o = schema().SoftmaxOptionsT()
    o.beta = float(attr(node, "beta"))
    return OpRecord("SOFTMAX", [node.inputs[0]], node.outputs, o)


@emitter("MEAN")
def _mean(node: Node, g: Graph, k: Consts) -> OpRecord:
    o = schema().ReducerOptionsT()
    o.keepDims = bool(attr(node, "keep_dims"))
    axes = get_op("MEAN").axes(node, g)  # type: ignore[attr-defined]
    return OpRecord("MEAN", [node.inputs[0], k.add(f"{node.name}/axes", axes)], node.outputs, o)


@emitter("PAD")
def _pad(node: Node, g: Graph, k: Consts) -> OpRecord:
    x = g.inp(node, 0)
    assert x is not None
    paddings = k.add(f"{node.name}/paddings", np.asarray(attr(node, "paddings")).reshape(-1, 2))
    value = node.attrs.get("value")
    default = x.quant.zp if x.is_quantized and x.quant else 0
    if value is None or value == default:
        return OpRecord("PAD", [node.inputs[0], paddings], node.outputs, schema().PadOptionsT())
    const = k.add(f"{node.name}/value", value, x.dtype, like=x)
    return OpRecord(
        "PADV2", [node.inputs[0], paddings, const], node.outputs, schema().PadV2OptionsT()
    )


@emitter("RESHAPE")
def _reshape(node: Node, g: Graph, k: Consts) -> OpRecord:
    shape = list(g.out(node).shape)
    o = schema().ReshapeOptionsT()
    o.newShape = shape
    return OpRecord(
        "RESHAPE", [node.inputs[0], k.add(f"{node.name}/shape", shape)], node.outputs, o
    )


@emitter("TRANSPOSE")
def _transpose(node: Node, g: Graph, k: Consts) -> OpRecord:
    perm = k.add(f"{node.name}/perm", list(attr(node, "perm")))
    return OpRecord("TRANSPOSE", [node.inputs[0], perm], node.outputs, schema().TransposeOptionsT())


@emitter("CONCATENATION")
def _concat(node: Node, g: Graph, k: Consts) -> OpRecord:
    o = schema().ConcatenationOptionsT()
    o.axis = int(attr(node, "axis"))
    o.fusedActivationFunction = _act(node)
    return OpRecord("CONCATENATION", list(node.inputs), node.outputs, o)


def _axis(node: Node, g: Graph) -> int:
    x = g.inp(node, 0)
    assert x is not None
    return normalize_axis(attr(node, "axis"), len(x.shape), node)


@emitter("SPLIT")
def _split(node: Node, g: Graph, k: Consts) -> OpRecord:
    o = schema().SplitOptionsT()
    o.numSplits = len(node.outputs)
    axis = k.add(f"{node.name}/axis", _axis(node, g))
    return OpRecord("SPLIT", [axis, node.inputs[0]], node.outputs, o)


@emitter("SPLIT_V")
def _split_v(node: Node, g: Graph, k: Consts) -> OpRecord:
    o = schema().SplitVOptionsT()
    o.numSplits = len(node.outputs)
    sizes = [g.tensors[n].shape[_axis(node, g)] for n in node.outputs]
    ins = [
        node.inputs[0],
        k.add(f"{node.name}/size_splits", sizes),
        k.add(f"{node.name}/axis", _axis(node, g)),
    ]
    return OpRecord("SPLIT_V", ins, node.outputs, o)


@emitter("PACK")
def _pack(node: Node, g: Graph, k: Consts) -> OpRecord:
    o = schema().PackOptionsT()
    o.valuesCount = len(node.inputs)
    o.axis = normalize_axis(attr(node, "axis"), len(g.out(node).shape), node)
    return OpRecord("PACK", list(node.inputs), node.outputs, o)


@emitter("UNPACK")
def _unpack(node: Node, g: Graph, k: Consts) -> OpRecord:
    o = schema().UnpackOptionsT()
    o.num = len(node.outputs)
    o.axis = _axis(node, g)
    return OpRecord("UNPACK", [node.inputs[0]], node.outputs, o)


def emit(node: Node, g: Graph, k: Consts) -> OpRecord:
    fn = EMITTERS.get(node.op)
    if fn is None:
        raise UnsupportedError(
            f"node {node.name!r}: the TFLite writer has no emitter for {node.op}"
        )
    return fn(node, g, k)
