"""Operator versions, following the rules the TFLite converter applies (op_version.cc).

TFLM resolves kernels by builtin code and ignores the version, but LiteRT and other
readers refuse versions they do not know, so the file states what the converter would.
Only the types tinyc writes (float32, int8, int16, int32) are distinguished.
"""

from __future__ import annotations

from collections.abc import Callable

from tinyc.backends.tflm.emitters import OpRecord
from tinyc.ir.graph import Graph
from tinyc.ir.tensor import Tensor

Rule = Callable[[OpRecord, list[Tensor | None], list[Tensor]], int]


def _by_input_type(int8: int, int16: int | None = None, at: int = 0) -> Rule:
    """Version ``int8`` for int8 input ``at``, ``int16`` for int16, else 1."""

    def rule(op: OpRecord, ins: list[Tensor | None], outs: list[Tensor]) -> int:
        t = ins[at]
        if t is not None and t.dtype == "int16" and int16 is not None:
            return int16
        return int8 if t is not None and t.dtype in ("int8", "uint8") else 1

    return rule


def _conv(op: OpRecord, ins: list[Tensor | None], outs: list[Tensor]) -> int:
    x, w = ins[0], ins[1]
    assert x is not None and w is not None
    if x.dtype == "int16":
        return 4
    if x.dtype == "int8" and w.dtype == "int8":
        return 3
    if x.dtype == "float32" and w.dtype == "int8":
        return 5 if w.quant is not None and w.quant.per_channel else 2
    return 1


def _depthwise(op: OpRecord, ins: list[Tensor | None], outs: list[Tensor]) -> int:
    x, w = ins[0], ins[1]
    assert x is not None and w is not None
    if x.dtype == "int16":
        return 5
    if x.dtype == "int8" and w.dtype == "int8":
        return 3
    if op.options.dilationHFactor != 1 or op.options.dilationWFactor != 1:
        return 2
    return 1


def _fully_connected(op: OpRecord, ins: list[Tensor | None], outs: list[Tensor]) -> int:
    x, w = ins[0], ins[1]
    assert x is not None and w is not None
    if x.dtype == "int16":
        return 7
    if len(ins) < 3 or ins[2] is None:
        return 6
    if op.options.keepNumDims:
        return 5
    if x.dtype == "int8" and w.dtype == "int8":
        return 4
    if x.dtype == "float32" and w.dtype == "int8":
        return 3
    return 1


def _mul(op: OpRecord, ins: list[Tensor | None], outs: list[Tensor]) -> int:
    a, b, y = ins[0], ins[1], outs[0]
    assert a is not None and b is not None
    if a.dtype == "int16":
        return 4
    if (
        a.quant
        and b.quant
        and y.quant
        and float(a.quant.s) * float(b.quant.s) / float(y.quant.s) >= 1.0
    ):
        return 3
    return 2 if a.dtype == "int8" else 1


def _rank_limited(int8: int, int16: int, big_rank: int, limit: int) -> Rule:
    """PAD / TRANSPOSE: a higher version once the input rank exceeds ``limit``."""

    def rule(op: OpRecord, ins: list[Tensor | None], outs: list[Tensor]) -> int:
        x = ins[0]
        assert x is not None
        if len(x.shape) > limit:
            return big_rank
        return _by_input_type(int8, int16)(op, ins, outs)

    return rule


def _quantize(op: OpRecord, ins: list[Tensor | None], outs: list[Tensor]) -> int:
    y = outs[0]
    if y.quant is not None and y.quant.per_channel:
        return 3
    return 2 if y.dtype == "int16" else 1


def _dequantize(op: OpRecord, ins: list[Tensor | None], outs: list[Tensor]) -> int:
    x = ins[0]
    assert x is not None
    if x.dtype == "int16":
        return 3
    if x.dtype == "int8":
        return 5 if x.quant is not None and x.quant.per_channel else 2
    return 1


def _lstm(op: OpRecord, ins: list[Tensor | None], outs: list[Tensor]) -> int:
    x, w = ins[0], ins[2]
    assert x is not None and w is not None
    if x.dtype == "int16" and w.dtype == "int8":
        return 5
    if op.options.diagonalRecurrentTensors:
        return 4
    if x.dtype == "float32" and w.dtype == "int8":  # hybrid
        return 3 if op.options.asymmetricQuantizeInputs else 2
    return 1


RULES: dict[str, Rule] = {
    "UNIDIRECTIONAL_SEQUENCE_LSTM": _lstm,
    "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": _depthwise,
    "FULLY_CONNECTED": _fully_connected,
    "AVERAGE_POOL_2D": _by_input_type(2, 3),
    "MAX_POOL_2D": _by_input_type(2, 3),
    "ADD": _by_input_type(2, 3),
    "SUB": _by_input_type(2, 5),
    "MUL": _mul,
    "LOGISTIC": _by_input_type(2, 3),
    "TANH": _by_input_type(2, 3),
    "RELU": _by_input_type(2, 3),
    "RELU6": _by_input_type(2, 3),
    "SOFTMAX": _by_input_type(2, 3),
    "MEAN": _by_input_type(2, 3),
    "CONCATENATION": _by_input_type(2, 3),
    "PACK": _by_input_type(2, 3),
    "UNPACK": _by_input_type(2, 4),
    "SPLIT": _by_input_type(2, 4, at=1),
    "SPLIT_V": _by_input_type(2),
    "PAD": _rank_limited(2, 3, 4, limit=4),
    "PADV2": _rank_limited(2, 3, 4, limit=4),
    "TRANSPOSE": _rank_limited(2, 5, 4, limit=4),
    "QUANTIZE": _quantize,
    "DEQUANTIZE": _dequantize,
}


def op_version(op: OpRecord, g: Graph) -> int:
    rule = RULES.get(op.builtin)
    if rule is None:
        return 1
    ins = [g.tensors[i] if i else None for i in op.inputs]
    outs = [g.tensors[o] for o in op.outputs]
    return rule(op, ins, outs)


RULES.update(
    {
        kind: _by_input_type(2)
        for kind in (
            "RESIZE_NEAREST_NEIGHBOR",
            "RESIZE_BILINEAR",
            "LEAKY_RELU",
            "MAXIMUM",
            "MINIMUM",
            "SUM",
            "REDUCE_MAX",
            "REDUCE_MIN",
            "ARG_MAX",
            "ARG_MIN",
            "L2_NORMALIZATION",
            "SQUARED_DIFFERENCE",
            "RSQRT",
            "ABS",
            "ELU",
            "LOG_SOFTMAX",
            "BATCH_TO_SPACE_ND",
            "SPACE_TO_BATCH_ND",
            "DEPTH_TO_SPACE",
            "SPACE_TO_DEPTH",
            "GATHER_ND",
            "EQUAL",
            "NOT_EQUAL",
            "GREATER",
            "GREATER_EQUAL",
            "LESS",
            "LESS_EQUAL",
            "SELECT_V2",
            "ADD_N",
            "MIRROR_PAD",
            "REVERSE_V2",
        )
    }
)
