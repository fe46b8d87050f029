"""Access to the TFLite flatbuffer schema (the generated object API that tflite-micro ships)."""

from __future__ import annotations

import functools
from types import ModuleType


@functools.cache
def schema() -> ModuleType:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


@functools.cache
def builtin_names() -> dict[int, str]:
    """BuiltinOperator code -> name, e.g. 3 -> "CONV_2D"."""
    ops = schema().BuiltinOperator
    return {v: k for k, v in vars(ops).items() if not k.startswith("_") and isinstance(v, int)}


@functools.cache
def builtin_codes() -> dict[str, int]:
    return {v: k for k, v in builtin_names().items()}


TENSOR_TYPES: dict[int, str] = {
    0: "float32",
    1: "float16",
    2: "int32",
    3: "uint8",
    4: "int64",
    6: "bool",
    7: "int16",
    9: "int8",
    10: "float64",
    12: "uint64",
    15: "uint32",
    16: "uint16",
}
"""TensorType codes tinyc handles, mapped to IR dtype names."""

TENSOR_TYPE_NAMES = {
    1: "float16",
    5: "string",
    8: "complex64",
    10: "float64",
    11: "complex128",
    12: "uint64",
    13: "resource",
    14: "variant",
    15: "uint32",
    16: "uint16",
    17: "int4",
    18: "bfloat16",
}

ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}
