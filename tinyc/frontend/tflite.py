"""TFLite flatbuffer -> Graph, through the schema's object API (no TensorFlow)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tinyc.errors import TinycError, UnsupportedError
from tinyc.frontend.tflite_loops import (
    bind_inputs,
    inline_if,
    keep_output_name,
    unroll_while,
)
from tinyc.frontend.tflite_variables import RESOURCE_OPS, RESOURCE_TYPE, Variables
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops.window import same_padding
from tinyc.ir.tensor import QuantParams, Tensor
from tinyc.ir.verify import NO_TRANSLATION
from tinyc.tflite_schema import ACTIVATIONS, TENSOR_TYPE_NAMES, TENSOR_TYPES, builtin_names, schema

OptionReader = Callable[[Any, "_Ctx"], tuple[str, dict[str, Any], list[int]]]
"""Reads one operator: returns (IR op kind, attrs, indices of the inputs to keep)."""


class _Ctx:
    """What an option reader may look at: the operator, its tensors and their constants."""

    def __init__(self, op: Any, graph: Graph, names: list[str]):
        self.op = op
        self.graph = graph
        self.names = names

    def tensor(self, pos: int) -> Tensor:
        idx = self.op.inputs[pos]
        return self.graph.tensors[self.names[idx]]

    def out(self, pos: int = 0) -> Tensor:
        return self.graph.tensors[self.names[self.op.outputs[pos]]]

    def const(self, pos: int, what: str) -> np.ndarray:
        t = self.tensor(pos)
        if t.data is None:
            raise UnsupportedError(f"{what} of node {self.out().name!r} must be a constant tensor")
        return t.data

    @property
    def options(self) -> Any:
        return self.op.builtinOptions


def _act(o: Any) -> str:
    code = int(getattr(o, "fusedActivationFunction", 0) or 0)
    if code not in ACTIVATIONS:
        raise UnsupportedError(f"fused activation code {code} is not supported")
    return ACTIVATIONS[code]


def _window_pads(padding: int, hw: tuple[int, int], k, s, d) -> tuple[int, int, int, int]:
    if padding == 1:  # VALID
        return (0, 0, 0, 0)
    t, b = same_padding(hw[0], k[0], s[0], d[0])
    left, r = same_padding(hw[1], k[1], s[1], d[1])
    return (t, b, left, r)


def _conv(c: _Ctx) -> tuple[str, dict, list[int]]:
    o, x, w = c.options, c.tensor(0), c.tensor(1)
    s, d = (o.strideH, o.strideW), (o.dilationHFactor, o.dilationWFactor)
    pads = _window_pads(o.padding, x.shape[1:3], w.shape[1:3], s, d)
    attrs = {"stride": s, "dilation": d, "pads": pads, "activation": _act(o)}
    return "CONV_2D", attrs, [0, 1, 2]


def _depthwise(c: _Ctx) -> tuple[str, dict, list[int]]:
    _, attrs, keep = _conv(c)
    x, w = c.tensor(0), c.tensor(1)
    attrs["depth_multiplier"] = max(1, w.shape[3] // max(1, x.shape[3]))
    return "DEPTHWISE_CONV_2D", attrs, keep


def _fully_connected(c: _Ctx) -> tuple[str, dict, list[int]]:
    o = c.options
    if o is not None and o.weightsFormat != 0:
        raise UnsupportedError("shuffled FULLY_CONNECTED weights are not supported")
    keep = bool(o.keepNumDims) if o is not None else False
    return "FULLY_CONNECTED", {"activation": _act(o), "keep_num_dims": keep}, [0, 1, 2]


def _pool(kind: str) -> OptionReader:
    def read(c: _Ctx) -> tuple[str, dict, list[int]]:
        o, x = c.options, c.tensor(0)
        k, s = (o.filterHeight, o.filterWidth), (o.strideH, o.strideW)
        pads = _window_pads(o.padding, x.shape[1:3], k, s, (1, 1))
        return kind, {"filter": k, "stride": s, "pads": pads, "activation": _act(o)}, [0]

    return read


def _binary(kind: str) -> OptionReader:
    def read(c: _Ctx) -> tuple[str, dict, list[int]]:
        return kind, {"activation": _act(c.options) if c.options else "NONE"}, [0, 1]

    return read


def _unary(kind: str) -> OptionReader:
    return lambda c: (kind, {}, [0])


def _mean(c: _Ctx) -> tuple[str, dict, list[int]]:
    axes = [int(a) for a in c.const(1, "the axis").reshape(-1)]
    return "MEAN", {"axes": tuple(axes), "keep_dims": bool(c.options.keepDims)}, [0]


def _pad(c: _Ctx) -> tuple[str, dict, list[int]]:
    pads = c.const(1, "the paddings").reshape(-1, 2)
    attrs: dict[str, Any] = {"paddings": tuple((int(a), int(b)) for a, b in pads), "value": None}
    if len(c.op.inputs) > 2 and c.op.inputs[2] >= 0:
        attrs["value"] = c.const(2, "the pad value").reshape(-1)[0].item()
    return "PAD", attrs, [0]


def _reshape(c: _Ctx) -> tuple[str, dict, list[int]]:
    return "RESHAPE", {"shape": c.out().shape}, [0]


def _softmax(c: _Ctx) -> tuple[str, dict, list[int]]:
    return "SOFTMAX", {"beta": float(c.options.beta)}, [0]


def _concat(c: _Ctx) -> tuple[str, dict, list[int]]:
    o = c.options
    return (
        "CONCATENATION",
        {"axis": int(o.axis), "activation": _act(o)},
        list(range(len(c.op.inputs))),
    )


def _split(c: _Ctx) -> tuple[str, dict, list[int]]:
    axis = int(c.const(0, "the split axis").reshape(-1)[0])
    return "SPLIT", {"axis": axis, "num_splits": int(c.options.numSplits)}, [1]


def _split_v(c: _Ctx) -> tuple[str, dict, list[int]]:
    sizes = tuple(int(v) for v in c.const(1, "the split sizes").reshape(-1))
    axis = int(c.const(2, "the split axis").reshape(-1)[0])
    return "SPLIT_V", {"axis": axis, "size_splits": sizes}, [0]


def _pack(c: _Ctx) -> tuple[str, dict, list[int]]:
    return "PACK", {"axis": int(c.options.axis)}, list(range(len(c.op.inputs)))


def _unpack(c: _Ctx) -> tuple[str, dict, list[int]]:
    return "UNPACK", {"axis": int(c.options.axis)}, [0]


def _transpose(c: _Ctx) -> tuple[str, dict, list[int]]:
    perm = tuple(int(p) for p in c.const(1, "the permutation").reshape(-1))
    return "TRANSPOSE", {"perm": perm}, [0]


#: TFLite's fused activation codes for the LSTM's cell and hidden activation
#: the LSTM's cell activation: TFLM applies tanh to the cell whatever the code says, and
#: its kernels take TANH only (there is no SIGMOID activation code in the schema)
_LSTM_ACTIVATIONS = {4: "Tanh"}


def _lstm(c: _Ctx) -> tuple[str, dict, list[int]]:
    o = c.options
    code = int(o.fusedActivationFunction)
    if code not in _LSTM_ACTIVATIONS:
        raise UnsupportedError(
            f"node {c.out().name!r} (UNIDIRECTIONAL_SEQUENCE_LSTM): cell activation code {code} "
            "is not supported (TANH only, as in TFLM)"
        )
    for pos in range(20, len(c.op.inputs)):
        if c.op.inputs[pos] >= 0:
            raise UnsupportedError(
                f"node {c.out().name!r} (UNIDIRECTIONAL_SEQUENCE_LSTM): layer normalization is "
                "not supported"
            )
    act = _LSTM_ACTIVATIONS[code]
    attrs = {
        "time_major": bool(o.timeMajor),
        "cell_clip": float(o.cellClip),
        "proj_clip": float(o.projClip),
        "activations": ("Sigmoid", act, "Tanh"),
    }
    return "LSTM", attrs, list(range(20))


def _svdf(c: _Ctx) -> tuple[str, dict, list[int]]:
    o = c.options
    return "SVDF", {"rank": int(o.rank), "activation": _act(o)}, [0, 1, 2, 3, 4]


READERS: dict[str, OptionReader] = {
    "SVDF": _svdf,
    "UNIDIRECTIONAL_SEQUENCE_LSTM": _lstm,
    "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": _depthwise,
    "FULLY_CONNECTED": _fully_connected,
    "AVERAGE_POOL_2D": _pool("AVERAGE_POOL_2D"),
    "MAX_POOL_2D": _pool("MAX_POOL_2D"),
    "ADD": _binary("ADD"),
    "SUB": _binary("SUB"),
    "MUL": _binary("MUL"),
    "MEAN": _mean,
    "PAD": _pad,
    "PADV2": _pad,
    "RESHAPE": _reshape,
    "SOFTMAX": _softmax,
    "LOGISTIC": _unary("LOGISTIC"),
    "TANH": _unary("TANH"),
    "RELU": _unary("RELU"),
    "RELU6": _unary("RELU6"),
    "HARD_SWISH": _unary("HARD_SWISH"),
    "CONCATENATION": _concat,
    "SPLIT": _split,
    "SPLIT_V": _split_v,
    "PACK": _pack,
    "UNPACK": _unpack,
    "QUANTIZE": _unary("QUANTIZE"),
    "DEQUANTIZE": _unary("DEQUANTIZE"),
    "TRANSPOSE": _transpose,
}


# -- more operators: resizing, reductions, elementwise math, rearrangements ---------------


def _ints(c: _Ctx, pos: int, what: str) -> list[int]:
    return [int(v) for v in c.const(pos, what).reshape(-1)]


def _resize(kind: str) -> OptionReader:
    def read(c: _Ctx) -> tuple[str, dict, list[int]]:
        o = c.options
        size = _ints(c, 1, "the output size")
        attrs = {
            "size": tuple(size),
            "align_corners": bool(getattr(o, "alignCorners", False)),
            "half_pixel_centers": bool(getattr(o, "halfPixelCenters", False)),
        }
        return kind, attrs, [0]

    return read


def _reducer(kind: str) -> OptionReader:
    def read(c: _Ctx) -> tuple[str, dict, list[int]]:
        keep = bool(c.options.keepDims) if c.options is not None else False
        return kind, {"axes": tuple(_ints(c, 1, "the axis")), "keep_dims": keep}, [0]

    return read


def _plain(kind: str, n: int | None = None) -> OptionReader:
    """An op whose inputs all carry over (the first ``n`` of them) and which has no options."""
    return lambda c: (kind, {}, list(range(len(c.op.inputs) if n is None else n)))


def _leaky_relu(c: _Ctx) -> tuple[str, dict, list[int]]:
    return "LEAKY_RELU", {"alpha": float(c.options.alpha)}, [0]


def _reshape_to_output(c: _Ctx) -> tuple[str, dict, list[int]]:
    """SQUEEZE and EXPAND_DIMS: the output shape says it all."""
    return "RESHAPE", {"shape": c.out().shape}, [0]


def _slice(c: _Ctx) -> tuple[str, dict, list[int]]:
    """SLICE(begin, size) as a STRIDED_SLICE of stride 1 (size -1: to the end)."""
    x = c.tensor(0)
    begin, size = _ints(c, 1, "the begin"), _ints(c, 2, "the size")
    end = [d if s == -1 else b + s for b, s, d in zip(begin, size, x.shape, strict=True)]
    return "STRIDED_SLICE", {"begin": begin, "end": end, "strides": [1] * len(begin)}, [0]


def _strided_slice(c: _Ctx) -> tuple[str, dict, list[int]]:
    """Begin and end masks and negative indices resolved as TFLite's StartForAxis /
    StopForAxis do; the masks that change the rank are not supported."""
    o, x = c.options, c.tensor(0)
    if o is not None and (o.ellipsisMask or o.newAxisMask or o.shrinkAxisMask or o.offset):
        raise UnsupportedError(
            "STRIDED_SLICE with ellipsis, new-axis or shrink-axis masks (or offset) is not "
            "supported"
        )
    begin, end = _ints(c, 1, "the begin"), _ints(c, 2, "the end")
    strides = _ints(c, 3, "the strides") if len(c.op.inputs) > 3 else [1] * len(begin)
    bmask = int(o.beginMask) if o is not None else 0
    emask = int(o.endMask) if o is not None else 0
    starts, stops = [], []
    for axis, (d, b, e, s) in enumerate(zip(x.shape, begin, end, strides, strict=True)):
        lo, hi = (0, d) if s > 0 else (-1, d - 1)
        if bmask >> axis & 1:
            b = -(1 << 31) if s > 0 else (1 << 31) - 1
        if emask >> axis & 1:
            e = (1 << 31) - 1 if s > 0 else -(1 << 31)
        b, e = b + d if b < 0 else b, e + d if e < 0 else e
        starts.append(min(max(b, lo), hi))
        stops.append(min(max(e, lo), hi))
    return "STRIDED_SLICE", {"begin": starts, "end": stops, "strides": strides}, [0]


def _arg(kind: str) -> OptionReader:
    def read(c: _Ctx) -> tuple[str, dict, list[int]]:
        if c.out().dtype != "int32":
            raise UnsupportedError(f"{kind} to {c.out().dtype} (int32 only, as TFLM)")
        return kind, {"axis": _ints(c, 1, "the axis")[0]}, [0]

    return read


def _l2_norm(c: _Ctx) -> tuple[str, dict, list[int]]:
    return "L2_NORMALIZATION", {"activation": _act(c.options) if c.options else "NONE"}, [0]


def _space_batch(kind: str, pads: str) -> OptionReader:
    def read(c: _Ctx) -> tuple[str, dict, list[int]]:
        block = tuple(_ints(c, 1, "the block shape"))
        p = c.const(2, f"the {pads}").reshape(-1, 2)
        return kind, {"block_shape": block, pads: tuple((int(a), int(b)) for a, b in p)}, [0]

    return read


def _block(kind: str) -> OptionReader:
    return lambda c: (kind, {"block_size": int(c.options.blockSize)}, [0])


def _gather_nd(c: _Ctx) -> tuple[str, dict, list[int]]:
    c.const(1, "the indices")
    return "GATHER_ND", {}, [0, 1]


def _fill(c: _Ctx) -> tuple[str, dict, list[int]]:
    return "FILL", {"shape": tuple(_ints(c, 0, "the output shape"))}, [1]


def _gather(c: _Ctx) -> tuple[str, dict, list[int]]:
    o = c.options
    if o is not None and o.batchDims:
        raise UnsupportedError("GATHER with batch_dims is not supported")
    c.const(1, "the positions")
    return "GATHER", {"axis": int(o.axis) if o is not None else 0}, [0, 1]


def _dynamic_update_slice(c: _Ctx) -> tuple[str, dict, list[int]]:
    return "DYNAMIC_UPDATE_SLICE", {"start": tuple(_ints(c, 2, "the start indices"))}, [0, 1]


def _transpose_conv(c: _Ctx) -> tuple[str, dict, list[int]]:
    """Inputs (output shape, filter, input[, bias]); the padding TFLM derives from the
    output size (SAME or VALID), the bottom/right pads from the sizes."""
    o, w, x = c.options, c.tensor(1), c.tensor(2)
    out = _ints(c, 0, "the output shape")
    s = (int(o.strideH), int(o.strideW))
    pads = []
    for size, n, k, st in zip(out[1:3], x.shape[1:3], w.shape[1:3], s, strict=True):
        valid = o.padding == 1
        tiles = (size - k + st) // st if valid else (size + st - 1) // st
        before = max((tiles - 1) * st + k - size, 0) // 2
        pads += [before, (n - 1) * st + k - before - size]
    attrs = {"stride": s, "pads": (pads[0], pads[1], pads[2], pads[3]), "activation": _act(o)}
    keep = [2, 1, 3] if len(c.op.inputs) > 3 and c.op.inputs[3] >= 0 else [2, 1]
    return "TRANSPOSE_CONV", attrs, keep


def _mirror_pad(c: _Ctx) -> tuple[str, dict, list[int]]:
    pads = c.const(1, "the paddings").reshape(-1, 2)
    mode = "SYMMETRIC" if c.options is not None and c.options.mode == 1 else "REFLECT"
    return "MIRROR_PAD", {"paddings": tuple((int(a), int(b)) for a, b in pads), "mode": mode}, [0]


def _reverse(c: _Ctx) -> tuple[str, dict, list[int]]:
    return "REVERSE_V2", {"axes": tuple(_ints(c, 1, "the axes"))}, [0]


def _cumsum(c: _Ctx) -> tuple[str, dict, list[int]]:
    o = c.options
    attrs = {
        "axis": _ints(c, 1, "the axis")[0],
        "exclusive": bool(o.exclusive) if o is not None else False,
        "reverse": bool(o.reverse) if o is not None else False,
    }
    return "CUMSUM", attrs, [0]


def _batch_matmul(c: _Ctx) -> tuple[str, dict, list[int]]:
    o = c.options
    adj = (bool(o.adjX), bool(o.adjY)) if o is not None else (False, False)
    return "BATCH_MATMUL", {"adj_x": adj[0], "adj_y": adj[1]}, [0, 1]


def _broadcast_to(c: _Ctx) -> tuple[str, dict, list[int]]:
    return "BROADCAST_TO", {"shape": tuple(_ints(c, 1, "the shape"))}, [0]


def _float_only(read: OptionReader) -> OptionReader:
    """Operators TFLM runs in float only: an int8 one stays unsupported."""

    def check(c: _Ctx) -> tuple[str, dict, list[int]]:
        if c.tensor(0).dtype != "float32":
            raise UnsupportedError(f"{c.tensor(0).dtype} input (TFLite Micro: float32 only)")
        return read(c)

    return check


READERS.update(
    {
        "RESIZE_NEAREST_NEIGHBOR": _resize("RESIZE_NEAREST_NEIGHBOR"),
        "RESIZE_BILINEAR": _resize("RESIZE_BILINEAR"),
        "LEAKY_RELU": _leaky_relu,
        "MAXIMUM": _plain("MAXIMUM", 2),
        "MINIMUM": _plain("MINIMUM", 2),
        "SUM": _reducer("SUM"),
        "REDUCE_MAX": _reducer("REDUCE_MAX"),
        "REDUCE_MIN": _reducer("REDUCE_MIN"),
        "SLICE": _slice,
        "STRIDED_SLICE": _strided_slice,
        "SQUEEZE": _reshape_to_output,
        "EXPAND_DIMS": _reshape_to_output,
        "ARG_MAX": _arg("ARG_MAX"),
        "ARG_MIN": _arg("ARG_MIN"),
        "L2_NORMALIZATION": _l2_norm,
        "SQUARED_DIFFERENCE": _plain("SQUARED_DIFFERENCE", 2),
        "RSQRT": _unary("RSQRT"),
        "EXP": _unary("EXP"),
        "LOG": _unary("LOG"),
        "ABS": _unary("ABS"),
        "NEG": _unary("NEG"),
        "SIN": _unary("SIN"),
        "COS": _unary("COS"),
        "SQUARE": _unary("SQUARE"),
        "FLOOR": _unary("FLOOR"),
        "CEIL": _unary("CEIL"),
        "ROUND": _unary("ROUND"),
        "ELU": _unary("ELU"),
        "SQRT": _unary("SQRT"),
        "CAST": _unary("CAST"),
        "LOGICAL_NOT": _unary("LOGICAL_NOT"),
        "LOG_SOFTMAX": _unary("LOG_SOFTMAX"),
        "ZEROS_LIKE": _unary("ZEROS_LIKE"),
        "BATCH_TO_SPACE_ND": _space_batch("BATCH_TO_SPACE_ND", "crops"),
        "SPACE_TO_BATCH_ND": _space_batch("SPACE_TO_BATCH_ND", "paddings"),
        "DEPTH_TO_SPACE": _block("DEPTH_TO_SPACE"),
        "SPACE_TO_DEPTH": _block("SPACE_TO_DEPTH"),
        "GATHER_ND": _gather_nd,
        "EQUAL": _plain("EQUAL", 2),
        "NOT_EQUAL": _plain("NOT_EQUAL", 2),
        "GREATER": _plain("GREATER", 2),
        "GREATER_EQUAL": _plain("GREATER_EQUAL", 2),
        "LESS": _plain("LESS", 2),
        "LESS_EQUAL": _plain("LESS_EQUAL", 2),
        "LOGICAL_AND": _plain("LOGICAL_AND", 2),
        "LOGICAL_OR": _plain("LOGICAL_OR", 2),
        "SELECT_V2": _plain("SELECT_V2", 3),
        "ADD_N": _plain("ADD_N"),
        "FILL": _fill,
        "DIV": _binary("DIV"),
        "PRELU": _plain("PRELU", 2),
        "GATHER": _gather,
        "EMBEDDING_LOOKUP": _plain("EMBEDDING_LOOKUP", 2),
        "BROADCAST_ARGS": _plain("BROADCAST_ARGS", 2),
        "DYNAMIC_UPDATE_SLICE": _dynamic_update_slice,
        "TRANSPOSE_CONV": _transpose_conv,
        "MIRROR_PAD": _mirror_pad,
        "REVERSE_V2": _reverse,
        "SHAPE": _unary("SHAPE"),
        "REDUCE_ALL": _reducer("REDUCE_ALL"),
        "CUMSUM": _cumsum,
        "FLOOR_DIV": _float_only(_plain("FLOOR_DIV", 2)),
        "FLOOR_MOD": _float_only(_plain("FLOOR_MOD", 2)),
        "L2_POOL_2D": _float_only(_pool("L2_POOL_2D")),
        "BATCH_MATMUL": _batch_matmul,
        "BROADCAST_TO": _broadcast_to,
    }
)


def _unpack_model(buf: bytes, what: str) -> Any:
    if len(buf) < 8:
        raise TinycError(f"{what} is not a TFLite model (only {len(buf)} bytes)")
    if buf[4:8] != b"TFL3":
        raise TinycError(f"{what} is not a TFLite model (no 'TFL3' file identifier)")
    try:
        return schema().ModelT.InitFromPackedBuf(bytearray(buf), 0)
    except Exception as e:  # flatbuffers raises assorted errors on damaged input
        raise TinycError(f"{what} is a damaged TFLite file ({type(e).__name__}: {e})") from None


def _quant(
    q: Any, shape: tuple[int, ...], name: str, notes: list[str] | None = None
) -> QuantParams | None:
    if q is None or q.scale is None or len(q.scale) == 0:
        return None
    scale = np.asarray(q.scale, np.float32)
    zp = np.asarray(q.zeroPoint if q.zeroPoint is not None else [0] * len(scale), np.int64)
    if zp.size not in (1, scale.size):
        raise TinycError(f"tensor {name!r}: {scale.size} scales but {zp.size} zero points")
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise TinycError(f"tensor {name!r}: quantization scales must be positive and finite")
    axis = int(q.quantizedDimension) if scale.size > 1 else None
    if axis is not None and axis >= len(shape) and len(shape) == 1 and shape[0] == scale.size:
        # TOCO wrote per-channel parameters on 1-D biases with the filter's axis; TFLM
        # never reads a bias's scales and runs such files: so does tinyc
        if notes is not None:
            notes.append(
                f"tensor {name!r}: per-channel parameters on axis {axis} of a 1-D tensor read "
                "as axis 0 (as TFLM does, which ignores them)"
            )
        axis = 0
    if axis is not None and (axis >= len(shape) or shape[axis] != scale.size):
        raise TinycError(
            f"tensor {name!r}: {scale.size} per-channel scales do not match dimension {axis} of "
            f"shape {list(shape)}"
        )
    return QuantParams(scale, zp, axis)


def _tensor_name(t: Any, index: int, seen: set[str]) -> str:
    raw = t.name.decode("utf-8", "replace") if isinstance(t.name, bytes) else (t.name or "")
    name = raw or f"tensor_{index}"
    if name in seen:
        name = f"{name}#{index}"
    seen.add(name)
    return name


def _read_tensors(model: Any, sg: Any, g: Graph, prefix: str = "") -> list[str]:
    buffers = model.buffers or []
    names: list[str] = []
    seen: set[str] = set()
    for i, t in enumerate(sg.tensors or []):
        name = prefix + _tensor_name(t, i, seen)
        names.append(name)
        if t.type == RESOURCE_TYPE:  # a variable's handle: tinyc.frontend.tflite_variables
            continue
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        if any(d < 0 for d in shape):
            raise TinycError(f"tensor {name!r} has a dynamic shape {list(shape)}")
        if t.type not in TENSOR_TYPES:
            kind = TENSOR_TYPE_NAMES.get(t.type, f"type code {t.type}")
            raise UnsupportedError(f"tensor {name!r} has unsupported dtype {kind}")
        dtype = TENSOR_TYPES[t.type]
        data = None
        if t.buffer and t.buffer >= len(buffers):
            raise TinycError(f"tensor {name!r} refers to missing buffer {t.buffer}")
        buf = buffers[t.buffer] if t.buffer else None
        if buf is not None and buf.offset:
            raise UnsupportedError(f"tensor {name!r} uses external buffer storage (>2 GB models)")
        if buf is not None and buf.data is not None and len(buf.data) > 0:
            raw = np.asarray(buf.data, dtype=np.uint8).tobytes()
            expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
            if len(raw) != expected:
                raise TinycError(
                    f"tensor {name!r}: buffer holds {len(raw)} bytes, shape {list(shape)} of "
                    f"{dtype} needs {expected}"
                )
            data = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        variable = bool(t.isVariable)
        if variable and data is not None:
            if np.any(data):
                raise UnsupportedError(f"state tensor {name!r} starts from non-zero values")
            data = None
        quant = _quant(t.quantization, shape, name, g.notes)
        tensor = Tensor(name, shape, dtype, data, quant, variable=variable)
        tensor.meta["tflite_index"] = i
        g.add_tensor(tensor)
    return names


def _node_name(tensor_name: str, used: set[str]) -> str:
    """A readable node name: the converter's first name for the output tensor, made unique."""
    base = tensor_name.split(";")[0] or tensor_name
    name, i = base, 1
    while name in used:
        name = f"{base}_{i}"
        i += 1
    used.add(name)
    return name


def _check_index(idx: int, count: int, what: str) -> None:
    if not -1 <= idx < count:
        raise TinycError(f"{what} refers to tensor {idx}, but the model has {count}")


def _op_kind(model: Any, op: Any) -> str:
    codes = model.operatorCodes or []
    oc = codes[op.opcodeIndex]
    code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
    kind = builtin_names().get(code, f"builtin code {code}")
    if kind == "CUSTOM":
        cc = oc.customCode
        kind = "CUSTOM:" + (cc.decode() if isinstance(cc, bytes) else str(cc))
    return kind


class _Reader:
    """Translates a subgraph's operators into IR nodes; subgraphs other than the main one are
    read by WHILE (tinyc.frontend.tflite_loops), with their tensors' names prefixed."""

    def __init__(self, model: Any, g: Graph, what: str) -> None:
        self.model, self.g, self.what = model, g, what
        self.used_names: set[str] = set()

    def translate(
        self, index: int, prefix: str = "", inputs: list[str] | None = None
    ) -> tuple[list[str], list[Node]]:
        """Tensor names by index and the nodes of subgraph ``index``; ``inputs`` stand for
        the subgraph's inputs (a loop's current values) when given."""
        model, g = self.model, self.g
        if not 0 <= index < len(model.subgraphs):
            raise TinycError(f"{self.what}: subgraph {index} is missing")
        sg = model.subgraphs[index]
        names = _read_tensors(model, sg, g, prefix)
        n = len(names)
        if inputs is not None:
            bind_inputs(g, sg, names, inputs, self.what)
        codes = model.operatorCodes or []
        ops = []
        for k, op in enumerate(sg.operators or []):
            if not 0 <= op.opcodeIndex < len(codes):
                raise TinycError(f"operator {k} has an invalid opcode index {op.opcodeIndex}")
            for idx in list(op.inputs if op.inputs is not None else []) + list(
                op.outputs if op.outputs is not None else []
            ):
                _check_index(int(idx), n, f"operator {k}")
            kind = _op_kind(model, op)
            no_outputs = op.outputs is None or len(op.outputs) == 0 or min(op.outputs) < 0
            if no_outputs and kind not in ("ASSIGN_VARIABLE", "CALL_ONCE"):
                raise TinycError(f"operator {k} has no outputs")
            first = (
                op.inputs[0] if no_outputs and op.inputs is not None and len(op.inputs) else None
            )
            named = (
                names[op.outputs[0]]
                if not no_outputs
                else (f"{kind.lower()}_{names[first]}" if first is not None else kind.lower())
            )
            ops.append((kind, _node_name(named, self.used_names), op))
        variables = Variables(model, sg, names, g, self.what) if index == 0 else None
        nodes: list[Node] = []
        for kind, node_name, op in ops:
            if kind in ("WHILE", "IF"):
                expand = unroll_while if kind == "WHILE" else inline_if
                try:
                    finals, body = expand(self, op, names, node_name)
                except UnsupportedError as e:
                    nodes.append(self._unsupported(kind, node_name, op, names, str(e)))
                    continue
                nodes += body
                for out, final in zip(op.outputs, finals, strict=True):
                    names[out] = keep_output_name(self.g, body, final, names[out])
                continue
            if kind in RESOURCE_OPS and variables is not None:
                node = variables.node(kind, node_name, op)
                if node is not None:
                    nodes.append(node)
                continue
            nodes.append(self._node(kind, node_name, op, names))
        return names, nodes

    @staticmethod
    def _unsupported(kind: str, node_name: str, op: Any, names: list[str], why: str) -> Node:
        """A node tinyc cannot translate, kept: inspect and estimate show it, everything
        else refuses it (with every such node named)."""
        reason = why.split(": ", 1)[-1] if why.startswith("node ") else why
        ins = [names[i] if i >= 0 else "" for i in op.inputs]
        return Node("UNSUPPORTED", node_name, ins, [names[i] for i in op.outputs],
                    {"op": kind, "reason": reason})  # fmt: skip

    def _node(self, kind: str, node_name: str, op: Any, names: list[str]) -> Node:
        ctx = _Ctx(op, self.g, names)
        try:
            if kind not in READERS:
                raise UnsupportedError(NO_TRANSLATION)
            ir_kind, attrs, keep = READERS[kind](ctx)
        except UnsupportedError as e:
            # kept in the graph: inspect and estimate show it, everything else refuses it
            reason = str(e).split(": ", 1)[-1] if str(e).startswith("node ") else str(e)
            ir_kind, attrs = "UNSUPPORTED", {"op": kind, "reason": reason}
            keep = list(range(len(op.inputs)))
        except (AttributeError, IndexError, TypeError, ValueError) as e:
            raise TinycError(f"node {node_name!r} ({kind}) has malformed options: {e}") from None
        inputs = [
            names[op.inputs[i]] if i < len(op.inputs) and op.inputs[i] >= 0 else "" for i in keep
        ]
        while inputs and inputs[-1] == "":
            inputs.pop()
        return Node(ir_kind, node_name, inputs, [names[i] for i in op.outputs], attrs)


def load_tflite(source: str | Path | bytes, name: str | None = None) -> Graph:
    """Read a .tflite file (path or bytes) into a Graph; subgraph 0 is the model."""
    if isinstance(source, bytes | bytearray):
        buf, what = bytes(source), name or "model"
    else:
        path = Path(source)
        buf, what = path.read_bytes(), str(path)
        name = name or path.stem
    model = _unpack_model(buf, what)
    if not model.subgraphs:
        raise TinycError(f"{what} has no subgraphs")
    sg = model.subgraphs[0]
    g = Graph(name=name or "model", source_format="tflite")
    reader = _Reader(model, g, what)
    names, nodes = reader.translate(0)
    g.nodes.extend(nodes)
    n = len(names)
    for idx in list(sg.inputs if sg.inputs is not None else []) + list(
        sg.outputs if sg.outputs is not None else []
    ):
        _check_index(int(idx), n, "the subgraph's input/output list")
    g.inputs = [names[i] for i in (sg.inputs if sg.inputs is not None else [])]
    g.outputs = [names[i] for i in (sg.outputs if sg.outputs is not None else [])]
    if not g.inputs or not g.outputs:
        raise TinycError(f"{what}: the model declares no inputs or no outputs")
    g.remove_unused()
    return g
