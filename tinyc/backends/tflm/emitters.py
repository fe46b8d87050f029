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
    intermediates: list[str] | None = None


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


# -- GATHER, STRIDED_SLICE, DYNAMIC_UPDATE_SLICE, PRELU, DIV, SQRT, TRANSPOSE_CONV ----------


@emitter("GATHER")
def _gather(node: Node, g: Graph, k: Consts) -> OpRecord:
    o = schema().GatherOptionsT()
    o.axis = get_op("GATHER").gather_axis(node, g)  # type: ignore[attr-defined]
    o.batchDims = 0
    return OpRecord("GATHER", [node.inputs[0], node.inputs[1]], node.outputs, o)


@emitter("STRIDED_SLICE")
def _strided_slice(node: Node, g: Graph, k: Consts) -> OpRecord:
    """Resolved begin/end/strides; an end of -1 under a negative stride ("through index
    0") needs the end mask, since TFLite reads -1 as the last index."""
    ranges = get_op("STRIDED_SLICE").axes_ranges(node, g)  # type: ignore[attr-defined]
    o = schema().StridedSliceOptionsT()
    o.endMask = sum(1 << i for i, r in enumerate(ranges) if r.step < 0 and r.stop < 0)
    ins = [
        node.inputs[0],
        k.add(f"{node.name}/begin", [r.start for r in ranges]),
        k.add(f"{node.name}/end", [max(r.stop, 0) for r in ranges]),
        k.add(f"{node.name}/strides", [r.step for r in ranges]),
    ]
    return OpRecord("STRIDED_SLICE", ins, node.outputs, o)


@emitter("DYNAMIC_UPDATE_SLICE")
def _dynamic_update_slice(node: Node, g: Graph, k: Consts) -> OpRecord:
    start = k.add(f"{node.name}/start", list(attr(node, "start")))
    ins = [node.inputs[0], node.inputs[1], start]
    return OpRecord(
        "DYNAMIC_UPDATE_SLICE", ins, node.outputs, schema().DynamicUpdateSliceOptionsT()
    )


@emitter("PRELU")
def _prelu(node: Node, g: Graph, k: Consts) -> OpRecord:
    return OpRecord("PRELU", [node.inputs[0], node.inputs[1]], node.outputs)


EMITTERS["DIV"] = _binary_options("DivOptionsT")


@emitter("SQRT")
def _sqrt(node: Node, g: Graph, k: Consts) -> OpRecord:
    if g.out(node).is_quantized:
        raise UnsupportedError(
            f"node {node.name!r}: TFLite Micro has no int8 SQRT (tinyc's C backend has one)"
        )
    return OpRecord("SQRT", [node.inputs[0]], node.outputs)


def _transpose_conv_padding(node: Node, g: Graph) -> int:
    """SAME or VALID: the one whose padding TFLM computes (from the output size) equals the
    node's top and left pads."""
    x, w, y = g.inp(node, 0), g.inp(node, 1), g.out(node)
    assert x is not None and w is not None
    stride, pads = attr(node, "stride"), attr(node, "pads")
    for kind in ("SAME", "VALID"):
        before = []
        for size, kern, s in zip(y.shape[1:3], w.shape[1:3], stride, strict=True):
            n = (size + s - 1) // s if kind == "SAME" else (size - kern + s) // s
            before.append(max((n - 1) * s + kern - size, 0) // 2)
        if tuple(before) == (pads[0], pads[2]):
            return getattr(schema().Padding, kind)
    raise UnsupportedError(
        f"node {node.name!r}: TRANSPOSE_CONV pads {list(pads)} are neither TFLite's SAME nor VALID"
    )


@emitter("TRANSPOSE_CONV")
def _transpose_conv(node: Node, g: Graph, k: Consts) -> OpRecord:
    """TFLite's operand order: output shape, filter, input, bias; groups == 1 only."""
    if get_op("TRANSPOSE_CONV").groups(node, g) != 1:  # type: ignore[attr-defined]
        raise UnsupportedError(f"node {node.name!r}: TFLite has no grouped TRANSPOSE_CONV")
    o = schema().TransposeConvOptionsT()
    o.padding = _transpose_conv_padding(node, g)
    o.strideH, o.strideW = attr(node, "stride")
    o.fusedActivationFunction = _act(node)
    shape = k.add(f"{node.name}/output_shape", list(g.out(node).shape))
    bias = [node.inputs[2]] if len(node.inputs) > 2 and node.inputs[2] else []
    ins: list[str | None] = [shape, node.inputs[1], node.inputs[0], *bias]
    return OpRecord("TRANSPOSE_CONV", ins, node.outputs, o)


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


@emitter("LSTM")
def _lstm(node: Node, g: Graph, k: Consts) -> OpRecord:
    """UNIDIRECTIONAL_SEQUENCE_LSTM as TFLM reads it: 24 inputs (TFLite's 20 operand slots,
    then 4 absent layer-norm coefficients), one output. ``prepare_lstm`` (lower.py) made the
    states variable tensors and checked what TFLM's kernel takes.

    An int8 LSTM also carries the converter's five empty intermediate tensors (the gates'
    and the effective hidden state's, the last with the hidden state's scale): TFLM ignores
    empty intermediates, Vela refuses the file without them (and so would LiteRT)."""
    o = schema().UnidirectionalSequenceLSTMOptionsT()
    o.fusedActivationFunction = schema().ActivationFunctionType.TANH
    o.cellClip = float(attr(node, "cell_clip"))
    o.projClip = float(attr(node, "proj_clip"))
    o.timeMajor = bool(attr(node, "time_major"))
    o.asymmetricQuantizeInputs = False
    o.diagonalRecurrentTensors = False
    ins: list[str | None] = [i or None for i in node.inputs[:20]]
    ins += [None] * (24 - len(ins))
    inter = None
    h = g.inp(node, 18)
    if h is not None and h.is_quantized and h.quant is not None:
        inter = []
        for gate in ("input", "forget", "cell", "output"):
            name = g.unique_name(f"{node.name}/input_to_{gate}_intermediate")
            inter.append(g.add_tensor(Tensor(name, (0,), "float32")).name)
        name = g.unique_name(f"{node.name}/effective_hidden_scale_intermediate")
        q = QuantParams(h.quant.scale[:1], [0])
        inter.append(g.add_tensor(Tensor(name, (0,), "int8", None, q)).name)
    return OpRecord("UNIDIRECTIONAL_SEQUENCE_LSTM", ins, [node.outputs[0]], o, inter)


@emitter("SVDF")
def _svdf(node: Node, g: Graph, k: Consts) -> OpRecord:
    """SVDF's five inputs, its state a variable tensor. TFLM's kernel reads the bias's scale
    unconditionally (it crashes without one), so an absent bias is written as zeros."""
    o = schema().SVDFOptionsT()
    o.rank = int(attr(node, "rank"))
    o.fusedActivationFunction = _act(node)
    o.asymmetricQuantizeInputs = False
    ins: list[str | None] = [i or None for i in node.inputs[:5]]
    ins += [None] * (5 - len(ins))
    if ins[3] is None:
        units = g.out(node).shape[-1]
        s, wt = g.inp(node, 4), g.inp(node, 2)
        if g.out(node).is_quantized and s is not None and wt is not None and s.quant and wt.quant:
            ins[3] = k.add(f"{node.name}/bias", np.zeros(units), "int32")
            scale = np.float32(s.quant.s * wt.quant.s)
            k.g.tensors[ins[3]].quant = QuantParams(scale, 0)
        else:
            ins[3] = k.add(f"{node.name}/bias", np.zeros(units), "float32")
    return OpRecord("SVDF", ins, node.outputs, o)


def variable_handle(state: str) -> str:
    """The name of the resource tensor that stands for state tensor ``state`` in a .tflite
    (tinyc.backends.tflm.writer adds the VAR_HANDLE that makes it, and the init subgraph)."""
    return f"{state}/handle"


@emitter("EMBEDDING_LOOKUP", "BROADCAST_ARGS")
def _two_inputs_no_options(node: Node, g: Graph, k: Consts) -> OpRecord:
    return OpRecord(node.op, list(node.inputs[:2]), list(node.outputs))


@emitter("READ_VARIABLE")
def _read_variable(node: Node, g: Graph, k: Consts) -> OpRecord:
    return OpRecord("READ_VARIABLE", [variable_handle(node.inputs[0])], list(node.outputs))


@emitter("ASSIGN_VARIABLE")
def _assign_variable(node: Node, g: Graph, k: Consts) -> OpRecord:
    return OpRecord("ASSIGN_VARIABLE", [variable_handle(node.inputs[1]), node.inputs[0]], [])


def emit(node: Node, g: Graph, k: Consts) -> OpRecord:
    fn = EMITTERS.get(node.op)
    if fn is None:
        raise UnsupportedError(
            f"node {node.name!r}: the TFLite writer has no emitter for {node.op}"
        )
    return fn(node, g, k)


# -- resizing, reductions, elementwise math, comparisons, rearrangements -------------------


def _options(cls: str | None, **fields: Any) -> Any:
    if cls is None:
        return None
    o = getattr(schema(), cls)()
    for name, value in fields.items():
        setattr(o, name, value)
    return o


def _no_tinyc_int8(node: Node, g: Graph) -> None:
    """Ops TFLM runs in float only: their int8 form is tinyc's own."""
    if g.out(node).is_quantized and getattr(get_op(node.op), "int8_semantics", "") == "tinyc":
        raise UnsupportedError(
            f"node {node.name!r}: TFLite Micro has no int8 {node.op} (tinyc's C backend has one)"
        )


def _simple(builtin: str, cls: str | None = None, n: int | None = None) -> Emitter:
    """The node's inputs (the first ``n``) as they are, options of class ``cls``."""

    def emit_simple(node: Node, g: Graph, k: Consts) -> OpRecord:
        _no_tinyc_int8(node, g)
        ins: list[str | None] = list(node.inputs if n is None else node.inputs[:n])
        return OpRecord(builtin, ins, node.outputs, _options(cls))

    return emit_simple


for _kind, _cls in {
    "RSQRT": None,
    "EXP": "ExpOptionsT",
    "LOG": None,
    "ABS": "AbsOptionsT",
    "NEG": "NegOptionsT",
    "SIN": None,
    "COS": "CosOptionsT",
    "SQUARE": "SquareOptionsT",
    "FLOOR": None,
    "CEIL": None,
    "ROUND": None,
    "ELU": None,
    "LOGICAL_NOT": "LogicalNotOptionsT",
    "LOG_SOFTMAX": "LogSoftmaxOptionsT",
    "ZEROS_LIKE": "ZerosLikeOptionsT",
}.items():
    EMITTERS[_kind] = _simple(_kind, _cls, 1)

for _kind, _cls in {
    "MAXIMUM": "MaximumMinimumOptionsT",
    "MINIMUM": "MaximumMinimumOptionsT",
    "SQUARED_DIFFERENCE": "SquaredDifferenceOptionsT",
    "EQUAL": "EqualOptionsT",
    "NOT_EQUAL": "NotEqualOptionsT",
    "GREATER": "GreaterOptionsT",
    "GREATER_EQUAL": "GreaterEqualOptionsT",
    "LESS": "LessOptionsT",
    "LESS_EQUAL": "LessEqualOptionsT",
    "LOGICAL_AND": "LogicalAndOptionsT",
    "LOGICAL_OR": "LogicalOrOptionsT",
    "GATHER_ND": "GatherNdOptionsT",
}.items():
    EMITTERS[_kind] = _simple(_kind, _cls, 2)

EMITTERS["SELECT_V2"] = _simple("SELECT_V2", "SelectV2OptionsT", 3)
EMITTERS["ADD_N"] = _simple("ADD_N", "AddNOptionsT")


@emitter("RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR")
def _resize(node: Node, g: Graph, k: Consts) -> OpRecord:
    cls = {
        "RESIZE_BILINEAR": "ResizeBilinearOptionsT",
        "RESIZE_NEAREST_NEIGHBOR": "ResizeNearestNeighborOptionsT",
    }[node.op]
    o = _options(
        cls,
        alignCorners=bool(attr(node, "align_corners")),
        halfPixelCenters=bool(attr(node, "half_pixel_centers")),
    )
    size = k.add(f"{node.name}/size", [int(v) for v in attr(node, "size")])
    return OpRecord(node.op, [node.inputs[0], size], node.outputs, o)


@emitter("LEAKY_RELU")
def _leaky_relu(node: Node, g: Graph, k: Consts) -> OpRecord:
    o = _options("LeakyReluOptionsT", alpha=float(attr(node, "alpha")))
    return OpRecord("LEAKY_RELU", [node.inputs[0]], node.outputs, o)


@emitter("SUM", "REDUCE_MAX", "REDUCE_MIN")
def _reducer(node: Node, g: Graph, k: Consts) -> OpRecord:
    o = _options("ReducerOptionsT", keepDims=bool(attr(node, "keep_dims")))
    axes = get_op(node.op).axes(node, g)  # type: ignore[attr-defined]
    return OpRecord(node.op, [node.inputs[0], k.add(f"{node.name}/axes", axes)], node.outputs, o)


@emitter("ARG_MAX", "ARG_MIN")
def _arg_min_max(node: Node, g: Graph, k: Consts) -> OpRecord:
    cls = "ArgMaxOptionsT" if node.op == "ARG_MAX" else "ArgMinOptionsT"
    o = _options(cls, outputType=schema().TensorType.INT32)
    axis = k.add(f"{node.name}/axis", [get_op(node.op).axis(node, g)])  # type: ignore[attr-defined]
    return OpRecord(node.op, [node.inputs[0], axis], node.outputs, o)


@emitter("L2_NORMALIZATION")
def _l2_norm(node: Node, g: Graph, k: Consts) -> OpRecord:
    o = _options("L2NormOptionsT", fusedActivationFunction=_act(node))
    return OpRecord("L2_NORMALIZATION", [node.inputs[0]], node.outputs, o)


@emitter("CAST")
def _cast(node: Node, g: Graph, k: Consts) -> OpRecord:
    from tinyc.tflite_schema import TENSOR_TYPES

    codes = {v: c for c, v in TENSOR_TYPES.items()}
    x = g.inp(node, 0)
    assert x is not None
    o = _options("CastOptionsT", inDataType=codes[x.dtype], outDataType=codes[g.out(node).dtype])
    return OpRecord("CAST", [node.inputs[0]], node.outputs, o)


@emitter("DEPTH_TO_SPACE", "SPACE_TO_DEPTH")
def _depth_space(node: Node, g: Graph, k: Consts) -> OpRecord:
    cls = "DepthToSpaceOptionsT" if node.op == "DEPTH_TO_SPACE" else "SpaceToDepthOptionsT"
    o = _options(cls, blockSize=int(attr(node, "block_size")))
    return OpRecord(node.op, [node.inputs[0]], node.outputs, o)


@emitter("SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND")
def _space_batch(node: Node, g: Graph, k: Consts) -> OpRecord:
    pads = "paddings" if node.op == "SPACE_TO_BATCH_ND" else "crops"
    cls = "SpaceToBatchNDOptionsT" if pads == "paddings" else "BatchToSpaceNDOptionsT"
    block = k.add(f"{node.name}/block_shape", [int(v) for v in attr(node, "block_shape")])
    p = k.add(f"{node.name}/{pads}", np.asarray(attr(node, pads), np.int32).reshape(-1, 2))
    return OpRecord(node.op, [node.inputs[0], block, p], node.outputs, _options(cls))


@emitter("FILL")
def _fill(node: Node, g: Graph, k: Consts) -> OpRecord:
    dims = k.add(f"{node.name}/dims", [int(d) for d in attr(node, "shape")])
    return OpRecord("FILL", [dims, node.inputs[0]], node.outputs, _options("FillOptionsT"))


EMITTERS["REDUCE_ALL"] = _reducer
EMITTERS["L2_POOL_2D"] = EMITTERS["AVERAGE_POOL_2D"]
EMITTERS["FLOOR_DIV"] = _simple("FLOOR_DIV", "FloorDivOptionsT", 2)
EMITTERS["FLOOR_MOD"] = _simple("FLOOR_MOD", "FloorModOptionsT", 2)


@emitter("MIRROR_PAD")
def _mirror_pad(node: Node, g: Graph, k: Consts) -> OpRecord:
    S = schema()
    mode = (
        S.MirrorPadMode.SYMMETRIC if attr(node, "mode") == "SYMMETRIC" else S.MirrorPadMode.REFLECT
    )
    pads = k.add(f"{node.name}/paddings", np.asarray(attr(node, "paddings")).reshape(-1, 2))
    o = _options("MirrorPadOptionsT", mode=mode)
    return OpRecord("MIRROR_PAD", [node.inputs[0], pads], node.outputs, o)


@emitter("REVERSE_V2")
def _reverse(node: Node, g: Graph, k: Consts) -> OpRecord:
    """TFLM reverses contiguous axes only."""
    x = g.inp(node, 0)
    assert x is not None
    norm = sorted({normalize_axis(int(a), len(x.shape), node) for a in attr(node, "axes")})
    if norm and norm[-1] - norm[0] != len(norm) - 1:
        raise UnsupportedError(
            f"node {node.name!r}: TFLite Micro's REVERSE_V2 takes contiguous axes, not {norm}"
        )
    axes = k.add(f"{node.name}/axes", norm)
    return OpRecord(
        "REVERSE_V2", [node.inputs[0], axes], node.outputs, _options("ReverseV2OptionsT")
    )


@emitter("SHAPE")
def _shape(node: Node, g: Graph, k: Consts) -> OpRecord:
    code = schema().TensorType.INT64 if g.out(node).dtype == "int64" else schema().TensorType.INT32
    return OpRecord(
        "SHAPE", [node.inputs[0]], node.outputs, _options("ShapeOptionsT", outType=code)
    )


@emitter("CUMSUM")
def _cumsum(node: Node, g: Graph, k: Consts) -> OpRecord:
    o = _options(
        "CumsumOptionsT",
        exclusive=bool(attr(node, "exclusive")),
        reverse=bool(attr(node, "reverse")),
    )
    axis = k.add(f"{node.name}/axis", [get_op("CUMSUM").axis(node, g)])  # type: ignore[attr-defined]
    return OpRecord("CUMSUM", [node.inputs[0], axis], node.outputs, o)


@emitter("BATCH_MATMUL")
def _batch_matmul(node: Node, g: Graph, k: Consts) -> OpRecord:
    o = _options(
        "BatchMatMulOptionsT",
        adjX=bool(attr(node, "adj_x")),
        adjY=bool(attr(node, "adj_y")),
        asymmetricQuantizeInputs=False,
    )
    return OpRecord("BATCH_MATMUL", [node.inputs[0], node.inputs[1]], node.outputs, o)


@emitter("BROADCAST_TO")
def _broadcast_to(node: Node, g: Graph, k: Consts) -> OpRecord:
    shape = k.add(f"{node.name}/shape", [int(d) for d in attr(node, "shape")])
    return OpRecord("BROADCAST_TO", [node.inputs[0], shape], node.outputs)
