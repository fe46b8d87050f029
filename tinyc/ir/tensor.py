"""Tensors and their quantization parameters (TFLite int8 spec)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DTYPES: dict[str, np.dtype] = {
    "float32": np.dtype(np.float32),
    "int8": np.dtype(np.int8),
    "uint8": np.dtype(np.uint8),
    "int16": np.dtype(np.int16),
    "int32": np.dtype(np.int32),
    "int64": np.dtype(np.int64),
    "bool": np.dtype(np.bool_),
    # STORAGE_ONLY_DTYPES: read so that a model can be shown whole; verify names their nodes
    "uint16": np.dtype(np.uint16),
    "uint32": np.dtype(np.uint32),
    "uint64": np.dtype(np.uint64),
    "float16": np.dtype(np.float16),
    "float64": np.dtype(np.float64),
}

QUANTIZED_DTYPES = ("int8", "int16", "uint8")

#: Tensor.meta key: float tensors with the same value share one set of int8 parameters
#: (tinyc.passes.quantize ties them; e.g. one role of every step of an unrolled cell)
QUANT_TIE = "quant_tie"

#: dtypes a model file may hold that no op computes: read so that the model can be shown
STORAGE_ONLY_DTYPES = ("uint16", "uint32", "uint64", "float16", "float64")


def np_dtype(dtype: str) -> np.dtype:
    return DTYPES[dtype]


def dtype_range(dtype: str) -> tuple[int, int]:
    info = np.iinfo(DTYPES[dtype])
    return int(info.min), int(info.max)


@dataclass
class QuantParams:
    """Affine quantization: real = scale * (q - zero_point).

    ``scale`` and ``zero_point`` have one entry (per tensor) or one per slice along ``axis``
    (per channel). Scales are kept as float32 because TFLM computes its multipliers from the
    float32 values stored in the model file.
    """

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None = None

    def __post_init__(self) -> None:
        self.scale = np.atleast_1d(np.asarray(self.scale, dtype=np.float32))
        self.zero_point = np.atleast_1d(np.asarray(self.zero_point, dtype=np.int64))
        if self.zero_point.size == 1 and self.scale.size > 1:
            self.zero_point = np.full(self.scale.shape, int(self.zero_point[0]), np.int64)
        if self.scale.size == 1:
            self.axis = None

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1

    @property
    def s(self) -> np.float32:
        """The per-tensor scale (float32)."""
        return np.float32(self.scale[0])

    @property
    def zp(self) -> int:
        """The per-tensor zero point."""
        return int(self.zero_point[0])

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        if self.axis is None:
            return ((q.astype(np.float64) - self.zp) * float(self.s)).astype(np.float32)
        shape = [1] * q.ndim
        shape[self.axis] = -1
        zp = self.zero_point.reshape(shape)
        sc = self.scale.astype(np.float64).reshape(shape)
        return ((q.astype(np.float64) - zp) * sc).astype(np.float32)

    def same_as(self, other: QuantParams | None) -> bool:
        return (
            other is not None
            and self.axis == other.axis
            and np.array_equal(self.scale, other.scale)
            and np.array_equal(self.zero_point, other.zero_point)
        )


@dataclass
class Tensor:
    """A value in the graph: an activation (``data is None``), a constant, or a state.

    A state (``variable``) is a run-time value that outlives one invocation: a recurrent
    layer's hidden or cell state, read at the start of an invocation and updated in place
    by the op that owns it (TFLite's variable tensors). It starts at zero and goes back to
    zero on a reset; it lives in its own persistent RAM, never in the activation arena.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    data: np.ndarray | None = None
    quant: QuantParams | None = None
    meta: dict = field(default_factory=dict)
    variable: bool = False

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"unsupported dtype {self.dtype!r}")
        self.shape = tuple(int(d) for d in self.shape)
        if self.variable and self.data is not None:
            raise ValueError(f"state tensor {self.name!r} cannot hold constant data")
        if self.data is not None:
            self.data = np.ascontiguousarray(self.data, dtype=DTYPES[self.dtype]).reshape(
                self.shape
            )

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def itemsize(self) -> int:
        return DTYPES[self.dtype].itemsize

    @property
    def nbytes(self) -> int:
        return self.size * self.itemsize

    @property
    def is_quantized(self) -> bool:
        return self.quant is not None and self.dtype in QUANTIZED_DTYPES
