"""Reading an ONNX file: parse, validate, pin the batch dimension, run shape inference."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import TensorProto

from tinyc.errors import TinycError, UnsupportedError

#: ONNX element types tinyc can hold in a Tensor
DTYPES: dict[int, str] = {
    TensorProto.FLOAT: "float32",
    TensorProto.INT8: "int8",
    TensorProto.UINT8: "uint8",
    TensorProto.INT16: "int16",
    TensorProto.INT32: "int32",
    TensorProto.INT64: "int64",
    TensorProto.BOOL: "bool",
}
#: element types a run-time (non-constant) tensor may have
ACTIVATION_DTYPES = ("float32", "int8", "uint8")
#: element types a computed tensor (or graph output) may have: ArgMax gives int32 indices
VALUE_DTYPES = (*ACTIVATION_DTYPES, "int32")
#: oldest default-domain opset read as is; older models go through the version converter
MIN_OPSET = 7
UPGRADE_TO = 11


def dtype_name(code: int) -> str:
    try:
        return TensorProto.DataType.Name(code).lower()
    except ValueError:
        return f"type code {code}"


def ir_dtype(code: int, what: str) -> str:
    if code not in DTYPES:
        raise UnsupportedError(f"{what} has unsupported dtype {dtype_name(code)}")
    return DTYPES[code]


@dataclass
class ValueInfo:
    """What ONNX shape inference knows of a tensor: a static shape (or None) and dtype."""

    shape: tuple[int, ...] | None
    dtype: int


@dataclass
class OnnxModel:
    model: onnx.ModelProto
    what: str  # how errors name the file
    opset: int
    infos: dict[str, ValueInfo]

    @property
    def graph(self) -> onnx.GraphProto:
        return self.model.graph

    def real_inputs(self) -> list[onnx.ValueInfoProto]:
        """Graph inputs that are not initializers (old IR versions list weights as inputs)."""
        inits = {i.name for i in self.graph.initializer}
        return [i for i in self.graph.input if i.name not in inits]


def _parse(source: str | Path | bytes) -> tuple[onnx.ModelProto, str]:
    if isinstance(source, bytes | bytearray):
        what = "model"
        loader = lambda: onnx.load_model_from_string(bytes(source))  # noqa: E731
    else:
        path = Path(source)
        what = str(path)
        if not path.is_file():
            raise TinycError(f"no such file: {path}")
        loader = lambda: onnx.load(str(path))  # noqa: E731
    try:
        model = loader()
    except Exception as e:  # protobuf raises DecodeError, RuntimeWarning, OSError, ...
        msg = " ".join(str(e).split()) or type(e).__name__
        raise TinycError(
            f"{what} is not a readable ONNX model (truncated or corrupted?): {msg}"
        ) from None
    if not model.HasField("graph") or not model.graph.node or not model.graph.output:
        raise TinycError(f"{what} is not an ONNX model (no graph with nodes and outputs)")
    return model, what


def _opset(model: onnx.ModelProto, what: str) -> int:
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        raise TinycError(f"{what} does not import the default ONNX operator set")
    return int(versions[0])


def _validate(model: onnx.ModelProto, what: str) -> None:
    inputs = {i.name for i in model.graph.input}
    if model.ir_version < 4 and any(i.name not in inputs for i in model.graph.initializer):
        # IR version 3 lists every initializer as an input; tools that add initializers
        # to old files (onnxruntime's quantizer) leave the version as it was
        model.ir_version = 4
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TinycError(f"{what} is not a valid ONNX model: {first}") from None


RECURRENT_OPS = ("LSTM", "GRU", "RNN")
#: ops that keep their input's axes in place (followed back from a recurrent layer's input)
_AXIS_PRESERVING = ("Identity", "Cast", "QuantizeLinear", "DequantizeLinear", "Relu", "Tanh")


def _node_label(node: onnx.NodeProto) -> str:
    name = node.name or (node.output[0] if node.output else node.op_type)
    return f"node {name!r} ({node.op_type})"


def _time_axes(graph: onnx.GraphProto) -> dict[tuple[str, int], onnx.NodeProto]:
    """(graph input, axis) -> the recurrent node whose sequence length that axis is, found
    through Transposes and axis-preserving ops between the input and the layer."""
    producers = {o: n for n in graph.node for o in n.output if o}
    res = {}
    for node in graph.node:
        if node.op_type not in RECURRENT_OPS or not node.input:
            continue
        layout = next((a.i for a in node.attribute if a.name == "layout"), 0)
        name, axis = node.input[0], 0 if layout == 0 else 1
        while name in producers:
            p = producers[name]
            if p.op_type == "Transpose":
                perm = next((list(a.ints) for a in p.attribute if a.name == "perm"), None)
                axis = perm[axis] if perm else 2 - axis  # default: reversed (X is 3-D)
            elif p.op_type not in _AXIS_PRESERVING:
                break
            name = p.input[0]
        res.setdefault((name, axis), node)
    return res


def _input_role(graph: onnx.GraphProto, name: str) -> str:
    """Why a non-activation graph input is read, when a node gives it a role tinyc knows."""
    for node in graph.node:
        if node.op_type == "If" and node.input and node.input[0] == name:
            return (
                f"; it is the condition of {_node_label(node)}: tinyc compiles straight-line "
                "graphs, so an If condition must fold to a constant"
            )
        if node.op_type in RECURRENT_OPS and len(node.input) > 4 and node.input[4] == name:
            return (
                f"; it is the sequence_lens of {_node_label(node)}: tinyc runs every batch "
                "entry over the whole sequence, so sequence_lens must be a constant equal to "
                "the sequence length"
            )
    return ""


def _pin_input_shapes(model: onnx.ModelProto, what: str) -> None:
    """Give every graph input a static shape: a symbolic batch (axis 0) becomes 1, unless
    that axis is a recurrent layer's sequence length."""
    inits = {i.name for i in model.graph.initializer}
    time_axes = _time_axes(model.graph)
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        if not inp.type.HasField("tensor_type"):
            raise UnsupportedError(f"{what}: input {inp.name!r} is not a tensor")
        tt = inp.type.tensor_type
        if DTYPES.get(tt.elem_type) not in ACTIVATION_DTYPES:
            raise UnsupportedError(
                f"{what}: input {inp.name!r} has unsupported dtype {dtype_name(tt.elem_type)} "
                f"(tinyc reads float32, int8 or uint8 inputs){_input_role(model.graph, inp.name)}"
            )
        if not tt.HasField("shape"):
            raise TinycError(f"{what}: input {inp.name!r} has no declared shape")
        for axis, dim in enumerate(tt.shape.dim):
            if dim.HasField("dim_value") and dim.dim_value > 0:
                continue
            label = dim.dim_param if dim.HasField("dim_param") else "?"
            if (inp.name, axis) in time_axes:
                raise UnsupportedError(
                    f"{what}: {_node_label(time_axes[inp.name, axis])}: its sequence length "
                    f"(axis {axis} of input {inp.name!r}, {label!r}) is dynamic; tinyc "
                    "compiles a fixed sequence length (export with a fixed-length input)"
                )
            if axis == 0 and not dim.HasField("dim_value"):
                dim.Clear()
                dim.dim_value = 1
                continue
            if dim.HasField("dim_value"):
                label = str(dim.dim_value)
            raise TinycError(
                f"{what}: input {inp.name!r} has dynamic dimension {label!r} at axis {axis}; "
                "tinyc needs static shapes (only a symbolic batch axis 0 is set to 1)"
            )


def _infos(model: onnx.ModelProto) -> dict[str, ValueInfo]:
    infos: dict[str, ValueInfo] = {}
    g = model.graph
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        if not vi.type.HasField("tensor_type"):
            continue
        tt = vi.type.tensor_type
        shape = None
        if tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim):
            shape = tuple(int(d.dim_value) for d in tt.shape.dim)
        infos[vi.name] = ValueInfo(shape, tt.elem_type)
    return infos


def read_onnx(source: str | Path | bytes) -> OnnxModel:
    """Parse and check an ONNX model, pin its input shapes and infer every tensor's shape."""
    model, what = _parse(source)
    opset = _opset(model, what)
    _validate(model, what)
    if opset < MIN_OPSET:
        from onnx import version_converter

        try:
            model = version_converter.convert_version(model, UPGRADE_TO)
        except Exception as e:
            raise UnsupportedError(
                f"{what}: opset {opset} is too old and could not be upgraded ({e})"
            ) from None
        opset = UPGRADE_TO
    if opset > onnx.defs.onnx_opset_version():
        raise UnsupportedError(
            f"{what}: opset {opset} is newer than this onnx package knows "
            f"({onnx.defs.onnx_opset_version()})"
        )
    _pin_input_shapes(model, what)
    try:
        model = onnx.shape_inference.infer_shapes(
            model, check_type=True, strict_mode=True, data_prop=True
        )
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TinycError(f"{what}: ONNX shape inference failed: {first}") from None
    return OnnxModel(model, what, opset, _infos(model))
