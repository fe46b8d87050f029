"""TFLite flatbuffer -> Graph, through the schema's object API (no TensorFlow)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tinyc.errors import TinycError, UnsupportedError
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
_LSTM_ACTIVATIONS = {4: "Tanh", 6: "Sigmoid", 1: "Relu"}


def _lstm(c: _Ctx) -> tuple[str, dict, list[int]]:
    o = c.options
    code = int(o.fusedActivationFunction)
    if code not in _LSTM_ACTIVATIONS:
        raise UnsupportedError(
            f"node {c.out().name!r} (UNIDIRECTIONAL_SEQUENCE_LSTM): cell activation code {code} "
            "is not supported (TANH, SIGMOID or RELU)"
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
        "activations": ("Sigmoid", act, act),
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


def _read_tensors(model: Any, sg: Any, g: Graph) -> list[str]:
    buffers = model.buffers or []
    names: list[str] = []
    seen: set[str] = set()
    for i, t in enumerate(sg.tensors or []):
        name = _tensor_name(t, i, seen)
        names.append(name)
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
    names = _read_tensors(model, sg, g)
    n = len(names)
    codes = model.operatorCodes or []
    ops = []
    used_names: set[str] = set()
    for k, op in enumerate(sg.operators or []):
        if not 0 <= op.opcodeIndex < len(codes):
            raise TinycError(f"operator {k} has an invalid opcode index {op.opcodeIndex}")
        for idx in list(op.inputs if op.inputs is not None else []) + list(
            op.outputs if op.outputs is not None else []
        ):
            _check_index(int(idx), n, f"operator {k}")
        if op.outputs is None or len(op.outputs) == 0 or min(op.outputs) < 0:
            raise TinycError(f"operator {k} has no outputs")
        oc = codes[op.opcodeIndex]
        code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
        kind = builtin_names().get(code, f"builtin code {code}")
        if kind == "CUSTOM":
            cc = oc.customCode
            kind = "CUSTOM:" + (cc.decode() if isinstance(cc, bytes) else str(cc))
        node_name = _node_name(names[op.outputs[0]], used_names)
        ops.append((kind, node_name, op))
    for kind, node_name, op in ops:
        ctx = _Ctx(op, g, names)
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
        g.nodes.append(Node(ir_kind, node_name, inputs, [names[i] for i in op.outputs], attrs))
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
