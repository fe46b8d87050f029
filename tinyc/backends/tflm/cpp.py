"""The C++ side of a TFLM project: the model as an aligned array, an op resolver holding
exactly the operators the model uses, and the model API of ``model.h`` over TFLM.

The firmware harness (``app/main.c`` from the board templates) is the one the C backend
uses: it writes ``tinyc_inputs[i].data``, calls ``tinyc_invoke()`` and reads
``tinyc_outputs[i].data``. Here those pointers lead into TFLM's tensor arena; the
interpreter is set up by a static constructor, before ``main``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tinyc.backends.tflm.view import ModelView
from tinyc.errors import UnsupportedError


@dataclass(frozen=True)
class Registration:
    """How the op resolver gets one builtin: its ``MicroMutableOpResolver`` method and, where
    CMSIS-NN has one, the int8-only registration (less code than the all-types kernel) with
    the kernel header that declares it."""

    method: str
    int8: str | None = None
    header: str | None = None


RESOLVER: dict[str, Registration] = {
    "ADD": Registration("AddAdd", "Register_ADD_INT8", "add.h"),
    "AVERAGE_POOL_2D": Registration(
        "AddAveragePool2D", "Register_AVERAGE_POOL_2D_INT8", "pooling.h"
    ),
    "CONCATENATION": Registration("AddConcatenation"),
    "CONV_2D": Registration("AddConv2D", "Register_CONV_2D_INT8", "conv.h"),
    "DEPTHWISE_CONV_2D": Registration(
        "AddDepthwiseConv2D", "Register_DEPTHWISE_CONV_2D_INT8", "depthwise_conv.h"
    ),
    "DEQUANTIZE": Registration("AddDequantize"),
    "DIV": Registration("AddDiv"),
    "DYNAMIC_UPDATE_SLICE": Registration("AddDynamicUpdateSlice"),
    "FULLY_CONNECTED": Registration(
        "AddFullyConnected", "Register_FULLY_CONNECTED_INT8", "fully_connected.h"
    ),
    "GATHER": Registration("AddGather"),
    "HARD_SWISH": Registration("AddHardSwish"),
    "LOGISTIC": Registration("AddLogistic"),
    "MAX_POOL_2D": Registration("AddMaxPool2D", "Register_MAX_POOL_2D_INT8", "pooling.h"),
    "MEAN": Registration("AddMean"),
    "MUL": Registration("AddMul", "Register_MUL_INT8", "mul.h"),
    "PACK": Registration("AddPack"),
    "PAD": Registration("AddPad", "Register_PAD_INT8", "pad.h"),
    "PADV2": Registration("AddPadV2"),
    "PRELU": Registration("AddPrelu"),
    "QUANTIZE": Registration("AddQuantize"),
    "RELU": Registration("AddRelu"),
    "RELU6": Registration("AddRelu6"),
    "RESHAPE": Registration("AddReshape"),
    "SOFTMAX": Registration("AddSoftmax", "Register_SOFTMAX_INT8", "softmax.h"),
    "SPLIT": Registration("AddSplit"),
    "SPLIT_V": Registration("AddSplitV"),
    "SQRT": Registration("AddSqrt"),
    "STRIDED_SLICE": Registration("AddStridedSlice"),
    "SUB": Registration("AddSub"),
    "SVDF": Registration("AddSvdf"),
    "TANH": Registration("AddTanh"),
    "TRANSPOSE": Registration("AddTranspose", "Register_TRANSPOSE_INT8", "transpose.h"),
    "TRANSPOSE_CONV": Registration("AddTransposeConv"),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": Registration("AddUnidirectionalSequenceLSTM"),
    "UNPACK": Registration("AddUnpack"),
}
RESOLVER.update(
    {
        name: Registration(method)
        for name, method in {
            "ABS": "AddAbs",
            "ADD_N": "AddAddN",
            "ARG_MAX": "AddArgMax",
            "ARG_MIN": "AddArgMin",
            "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
            "CAST": "AddCast",
            "CEIL": "AddCeil",
            "COS": "AddCos",
            "DEPTH_TO_SPACE": "AddDepthToSpace",
            "ELU": "AddElu",
            "EQUAL": "AddEqual",
            "EXP": "AddExp",
            "FILL": "AddFill",
            "FLOOR": "AddFloor",
            "GATHER_ND": "AddGatherNd",
            "GREATER": "AddGreater",
            "GREATER_EQUAL": "AddGreaterEqual",
            "L2_NORMALIZATION": "AddL2Normalization",
            "LEAKY_RELU": "AddLeakyRelu",
            "LESS": "AddLess",
            "LESS_EQUAL": "AddLessEqual",
            "LOG": "AddLog",
            "LOGICAL_AND": "AddLogicalAnd",
            "LOGICAL_NOT": "AddLogicalNot",
            "LOGICAL_OR": "AddLogicalOr",
            "LOG_SOFTMAX": "AddLogSoftmax",
            "MAXIMUM": "AddMaximum",
            "MINIMUM": "AddMinimum",
            "NEG": "AddNeg",
            "NOT_EQUAL": "AddNotEqual",
            "REDUCE_MAX": "AddReduceMax",
            "REDUCE_MIN": "AddReduceMin",
            "RESIZE_BILINEAR": "AddResizeBilinear",
            "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor",
            "ROUND": "AddRound",
            "RSQRT": "AddRsqrt",
            "SELECT_V2": "AddSelectV2",
            "SIN": "AddSin",
            "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd",
            "SPACE_TO_DEPTH": "AddSpaceToDepth",
            "SQUARE": "AddSquare",
            "SQUARED_DIFFERENCE": "AddSquaredDifference",
            "SUM": "AddSum",
            "ZEROS_LIKE": "AddZerosLike",
            "VAR_HANDLE": "AddVarHandle",
            "EMBEDDING_LOOKUP": "AddEmbeddingLookup",
            "BROADCAST_ARGS": "AddBroadcastArgs",
            "READ_VARIABLE": "AddReadVariable",
            "ASSIGN_VARIABLE": "AddAssignVariable",
            "CALL_ONCE": "AddCallOnce",
            "MIRROR_PAD": "AddMirrorPad",
            "REVERSE_V2": "AddReverseV2",
            "SHAPE": "AddShape",
            "REDUCE_ALL": "AddReduceAll",
            "CUMSUM": "AddCumSum",
            "FLOOR_DIV": "AddFloorDiv",
            "FLOOR_MOD": "AddFloorMod",
            "L2_POOL_2D": "AddL2Pool2D",
            "BATCH_MATMUL": "AddBatchMatMul",
            "BROADCAST_TO": "AddBroadcastTo",
        }.items()
        if name not in RESOLVER
    }
)
ETHOS_U_CUSTOM = "ethos-u"

DTYPE_CODES = {"int8": 1, "int16": 2, "int32": 3, "float32": 4, "uint8": 5}
"""tinyc_api.h's dtype codes."""


@dataclass(frozen=True)
class OpUse:
    """One resolver entry: a builtin (or ``CUSTOM:<code>``) and whether every use is int8."""

    name: str
    int8_only: bool


@dataclass(frozen=True)
class IoTensor:
    name: str
    dtype: str
    shape: tuple[int, ...]
    scale: float
    zero_point: int

    @property
    def nbytes(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n * {"int8": 1, "uint8": 1, "int16": 2, "int32": 4, "float32": 4}[self.dtype]


@dataclass(frozen=True)
class ModelFacts:
    """What the C++ generator needs to know about a .tflite file."""

    ops: tuple[OpUse, ...]
    inputs: tuple[IoTensor, ...]
    outputs: tuple[IoTensor, ...]


def model_facts(data: bytes) -> ModelFacts:
    """Operators (in first-use order) and graph I/O of subgraph 0 of a .tflite."""
    view = ModelView.read(data)
    int8_only: dict[str, bool] = {}
    for op in view.ops:
        ends = [i for i in op.inputs[:1] + op.outputs[:1] if i >= 0]
        is_int8 = all(view.tensors[i].dtype == "int8" for i in ends)
        int8_only[op.kind] = int8_only.get(op.kind, True) and is_int8

    def io(index: int) -> IoTensor:
        t = view.tensors[index]
        scale = t.scale[0] if t.scale else 0.0
        zp = t.zero_point[0] if t.scale and t.zero_point else 0
        return IoTensor(t.name, t.dtype, t.shape, scale, zp)

    return ModelFacts(
        tuple(OpUse(k, v) for k, v in int8_only.items()),
        tuple(io(i) for i in view.inputs),
        tuple(io(i) for i in view.outputs),
    )


def resolver_calls(ops: tuple[OpUse, ...]) -> list[str]:
    """``resolver.AddXxx(...)`` statements, one per operator kind."""
    lines = []
    for use in ops:
        if use.name == f"CUSTOM:{ETHOS_U_CUSTOM}":
            lines.append("AddEthosU()")
            continue
        if use.name not in RESOLVER:
            raise UnsupportedError(
                f"the TFLM project generator has no resolver entry for {use.name}"
            )
        reg = RESOLVER[use.name]
        arg = f"tflite::{reg.int8}()" if use.int8_only and reg.int8 else ""
        lines.append(f"{reg.method}({arg})")
    return lines


def resolver_headers(ops: tuple[OpUse, ...]) -> list[str]:
    """The kernel headers that declare the int8-only registrations ``resolver_calls`` uses."""
    headers = {
        f"tensorflow/lite/micro/kernels/{RESOLVER[u.name].header}"
        for u in ops
        if u.int8_only and u.name in RESOLVER and RESOLVER[u.name].header
    }
    return sorted(headers)


def c_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def io_descriptor(t: IoTensor, data_expr: str) -> str:
    if t.dtype not in DTYPE_CODES:
        raise UnsupportedError(f"model input/output {t.name!r} has dtype {t.dtype}")
    if len(t.shape) > 6:
        raise UnsupportedError(f"model input/output {t.name!r} has more than 6 dimensions")
    shape = list(t.shape) + [0] * (6 - len(t.shape))
    return (
        f"  {{{c_string(t.name)}, {data_expr}, {t.nbytes}, {DTYPE_CODES[t.dtype]}, "
        f"{len(t.shape)}, {{{', '.join(map(str, shape))}}}, {t.scale!r}f, {t.zero_point}}}"
    )


def byte_array(data: bytes, per_line: int = 16) -> str:
    """The bytes as the body of a C array initializer."""
    hexes = [f"0x{b:02x}" for b in data]
    return "\n".join(
        "  " + ", ".join(hexes[i : i + per_line]) + "," for i in range(0, len(hexes), per_line)
    )
