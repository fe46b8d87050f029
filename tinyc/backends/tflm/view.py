"""A read-only view of a .tflite (subgraph 0) with what the TFLM backend asks of any file,
its own or Vela's: operator kinds, tensor sizes and kinds, graph I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tinyc.tflite_schema import TENSOR_TYPES, builtin_names, schema

_ITEMSIZE = {"int8": 1, "uint8": 1, "bool": 1, "int16": 2, "int64": 8}


def _text(s: Any) -> str:
    return s.decode("utf-8", "replace") if isinstance(s, bytes) else str(s or "")


@dataclass(frozen=True)
class TensorView:
    name: str
    shape: tuple[int, ...]
    dtype: str  # "unknown" for types tinyc does not handle
    bytes: int
    const: bool  # has data in a buffer
    variable: bool
    scale: tuple[float, ...]
    zero_point: tuple[int, ...]

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1


@dataclass(frozen=True)
class OpView:
    kind: str  # builtin name, or "CUSTOM:<code>"
    inputs: tuple[int, ...]  # -1: absent optional input
    outputs: tuple[int, ...]
    options: Any


@dataclass(frozen=True)
class ModelView:
    tensors: tuple[TensorView, ...]
    ops: tuple[OpView, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    @classmethod
    def read(cls, data: bytes) -> ModelView:
        m = schema().ModelT.InitFromPackedBuf(bytearray(data), 0)
        sg = m.subgraphs[0]
        tensors = []
        for t in sg.tensors or []:
            shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
            dtype = TENSOR_TYPES.get(t.type, "unknown")
            buf = m.buffers[t.buffer] if t.buffer else None
            q = t.quantization
            scale = tuple(
                float(s) for s in (q.scale if q is not None and q.scale is not None else [])
            )
            zps = q.zeroPoint if q is not None and q.zeroPoint is not None else [0] * len(scale)
            tensors.append(
                TensorView(
                    name=_text(t.name),
                    shape=shape,
                    dtype=dtype,
                    bytes=math.prod(shape) * _ITEMSIZE.get(dtype, 4),
                    const=buf is not None and buf.data is not None and len(buf.data) > 0,
                    variable=bool(t.isVariable),
                    scale=scale,
                    zero_point=tuple(int(z) for z in zps),
                )
            )
        ops = []
        for op in sg.operators or []:
            oc = m.operatorCodes[op.opcodeIndex]
            kind = builtin_names().get(max(oc.builtinCode, oc.deprecatedBuiltinCode), "?")
            if kind == "CUSTOM":
                kind = f"CUSTOM:{_text(oc.customCode)}"
            ins = tuple(int(i) for i in (op.inputs if op.inputs is not None else []))
            outs = tuple(int(o) for o in (op.outputs if op.outputs is not None else []))
            ops.append(OpView(kind, ins, outs, op.builtinOptions))
        io = [tuple(int(i) for i in (v if v is not None else [])) for v in (sg.inputs, sg.outputs)]
        return cls(tuple(tensors), tuple(ops), io[0], io[1])

    def planned(self, index: int) -> bool:
        """Whether TFLM's planner gives this tensor arena space."""
        t = self.tensors[index]
        return not t.const and not t.variable and t.bytes > 0
