"""Graph -> .tflite bytes, through the TFLite schema's object API (no TensorFlow).

Constant data is 16-byte aligned inside the file (Cortex-M faults on misaligned
LDRD/LDM; TFLM and CMSIS-NN read weights in place), identical constants share one
buffer, and tinyc's own memory plan can travel as ``OfflineMemoryAllocation`` metadata.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import flatbuffers
import numpy as np

from tinyc.backends.tflm.emitters import Consts, OpRecord, emit, variable_handle
from tinyc.backends.tflm.lower import lower_for_tflite
from tinyc.backends.tflm.versions import op_version
from tinyc.errors import TinycError
from tinyc.frontend.tflite_variables import RESOURCE_TYPE
from tinyc.ir.graph import Graph
from tinyc.ir.tensor import Tensor
from tinyc.tflite_schema import TENSOR_TYPES, builtin_codes, schema

ALIGNMENT = 16
"""Byte alignment of every constant buffer inside the written file."""

OFFLINE_PLAN_KEY = "OfflineMemoryAllocation"
_TYPE_CODES = {v: k for k, v in TENSOR_TYPES.items()}
_PLACEHOLDER_FOR_GREATER_OP_CODES = 127


def _aligned_buffer_class() -> type:
    class AlignedBufferT(schema().BufferT):  # type: ignore[misc, name-defined]
        """A BufferT whose data vector starts on an ALIGNMENT boundary of the file."""

        def Pack(self, builder: flatbuffers.Builder) -> int:  # noqa: N802 (schema API)
            if self.data is not None:
                # Align the end of the data (the builder writes back to front) so that its
                # start lands on a boundary; Finish pads the whole file to minalign.
                builder.Prep(ALIGNMENT, len(self.data))
            return super().Pack(builder)

    return AlignedBufferT


@dataclass
class TfliteModel:
    """What ``build_model`` produced: the packed bytes and where each tensor went."""

    data: bytes
    tensor_index: dict[str, int]
    operators: list[OpRecord]
    versions: dict[str, int] = field(default_factory=dict)
    #: what lowering did that ``compile`` should say (e.g. a GRU unrolled)
    notes: list[str] = field(default_factory=list)


class _Buffers:
    def __init__(self) -> None:
        self.cls = _aligned_buffer_class()
        self.items: list[Any] = [self.cls()]  # buffer 0: the empty sentinel
        self._by_content: dict[bytes, int] = {}

    def add(self, raw: bytes, share: bool = True) -> int:
        if share and raw in self._by_content:
            return self._by_content[raw]
        b = self.cls()
        b.data = np.frombuffer(raw, np.uint8)
        self.items.append(b)
        if share:
            self._by_content[raw] = len(self.items) - 1
        return len(self.items) - 1


def _quant(t: Tensor) -> Any:
    if t.quant is None:
        return None
    q = schema().QuantizationParametersT()
    q.scale = [float(s) for s in t.quant.scale]
    q.zeroPoint = [int(z) for z in t.quant.zero_point]
    q.quantizedDimension = int(t.quant.axis or 0)
    return q


def _tensor(t: Tensor, buffers: _Buffers) -> Any:
    if t.dtype not in _TYPE_CODES:
        raise TinycError(f"tensor {t.name!r}: dtype {t.dtype} cannot be written to .tflite")
    tt = schema().TensorT()
    tt.name = t.name
    tt.shape = [int(d) for d in t.shape]
    tt.hasRank = True
    tt.type = _TYPE_CODES[t.dtype]
    tt.quantization = _quant(t)
    tt.isVariable = t.variable  # a state: TFLM keeps it between invocations, no buffer data
    if t.data is not None:
        raw = np.ascontiguousarray(t.data).astype(t.data.dtype.newbyteorder("<")).tobytes()
        tt.buffer = buffers.add(raw)
    return tt


def _options(cls: str, **fields: Any) -> Any:
    o = getattr(schema(), cls)()
    for k, v in fields.items():
        setattr(o, k, v)
    return o


def _var_handle_options(state: Tensor) -> Any:
    return _options("VarHandleOptionsT", container="", sharedName=state.name)


def _resource_tensor(name: str) -> Any:
    tt = schema().TensorT()
    tt.name, tt.shape, tt.type = name, [], RESOURCE_TYPE
    return tt


def _init_subgraph(variables: list[Tensor], buffers: _Buffers, opcode_of: dict[str, int]) -> Any:
    """The subgraph CALL_ONCE runs on the first invocation: each variable := real 0 (its
    zero point), what tinyc's state starts from and TFLM's Reset() writes back."""
    S = schema()
    sg = S.SubGraphT()
    sg.name = "init_variables"
    sg.tensors, sg.operators, sg.inputs, sg.outputs = [], [], [], []
    for t in variables:
        zero = t.quant.zp if t.quant is not None and t.dtype != "float32" else 0
        first = Tensor(
            f"{t.name}/first", t.shape, t.dtype, np.full(t.shape, zero, t.dtype), t.quant
        )
        sg.tensors += [_resource_tensor(variable_handle(t.name)), _tensor(first, buffers)]
        h, v = len(sg.tensors) - 2, len(sg.tensors) - 1
        for kind, ins, outs, opts in (
            ("VAR_HANDLE", [], [h], _var_handle_options(t)),
            ("ASSIGN_VARIABLE", [h, v], [], None),
        ):
            op = S.OperatorT()
            op.opcodeIndex, op.inputs, op.outputs = opcode_of[kind], ins, outs
            op.builtinOptionsType, op.builtinOptions = _options_type(opts), opts
            sg.operators.append(op)
    return sg


def _opcode(builtin: str, version: int) -> Any:
    code = builtin_codes()[builtin]
    oc = schema().OperatorCodeT()
    oc.builtinCode = code
    oc.deprecatedBuiltinCode = min(code, _PLACEHOLDER_FOR_GREATER_OP_CODES)
    oc.version = version
    return oc


def _options_type(options: Any) -> int:
    if options is None:
        return 0
    return getattr(schema().BuiltinOptions, type(options).__name__.removesuffix("T"))


def _offline_plan(offsets: Mapping[str, int], order: list[str], g: Graph, buffers: _Buffers) -> Any:
    """OfflineMemoryAllocation: [version 0, subgraph 0, tensor count, offset per tensor];
    -1 leaves a tensor to TFLM's own planner."""
    unknown = sorted(set(offsets) - set(g.tensors))
    if unknown:
        raise TinycError(f"memory plan names tensors the graph does not have: {unknown[:5]}")
    values = [0, 0, len(order)]
    for name in order:
        off = offsets.get(name, -1)
        if off >= 0 and g.tensors[name].is_const:
            raise TinycError(f"memory plan places constant tensor {name!r} in the arena")
        values.append(int(off))
    md = schema().MetadataT()
    md.name = OFFLINE_PLAN_KEY
    md.buffer = buffers.add(np.asarray(values, "<i4").tobytes(), share=False)
    return md


def build_model(
    g: Graph,
    offline_offsets: Mapping[str, int] | None = None,
    file_layout: bool = True,
    description: str = "tinyc",
) -> TfliteModel:
    """Lower ``g`` for TFLite and pack it (see ``write_tflite``)."""
    S = schema()
    notes: list[str] = []
    lowered = lower_for_tflite(g, file_layout=file_layout, notes=notes)
    consts = Consts(lowered)
    records = [emit(node, lowered, consts) for node in lowered.nodes]
    variables = [t for t in lowered.states() if any(
        n.op in ("READ_VARIABLE", "ASSIGN_VARIABLE") and t.name in n.inputs for n in lowered.nodes
    )]  # fmt: skip
    handles = {variable_handle(t.name): t for t in variables}
    if variables:  # their handles first, and the first values from the init subgraph
        records = [
            OpRecord("CALL_ONCE", [], [], _options("CallOnceOptionsT", initSubgraphIndex=1)),
            *(OpRecord("VAR_HANDLE", [], [h], _var_handle_options(t)) for h, t in handles.items()),
            *records,
        ]

    order: list[str] = []
    index: dict[str, int] = {}

    def idx(name: str | None) -> int:
        if not name:
            return -1
        if name not in index:
            index[name] = len(order)
            order.append(name)
        return index[name]

    for name in lowered.inputs:
        idx(name)
    versions: dict[str, int] = {}
    if variables:
        versions.update(VAR_HANDLE=1, ASSIGN_VARIABLE=1)
    for r in records:
        versions[r.builtin] = max(versions.get(r.builtin, 1), op_version(r, lowered))
    opcode_of = {b: i for i, b in enumerate(versions)}
    operators = []
    for r in records:
        op = S.OperatorT()
        op.opcodeIndex = opcode_of[r.builtin]
        op.inputs = [idx(i) for i in r.inputs]
        op.outputs = [idx(o) for o in r.outputs]
        if r.intermediates:
            op.intermediates = [idx(i) for i in r.intermediates]
        op.builtinOptionsType = _options_type(r.options)
        op.builtinOptions = r.options
        operators.append(op)
    for name in lowered.outputs:
        idx(name)

    buffers = _Buffers()
    sg = S.SubGraphT()
    sg.name = "main"
    sg.tensors = [
        _resource_tensor(n) if n in handles else _tensor(lowered.tensors[n], buffers) for n in order
    ]
    sg.inputs = [index[n] for n in lowered.inputs]
    sg.outputs = [index[n] for n in lowered.outputs]
    sg.operators = operators

    model = S.ModelT()
    model.version = 3
    model.description = description
    model.operatorCodes = [_opcode(b, v) for b, v in versions.items()]
    model.subgraphs = [sg]
    if variables:
        model.subgraphs.append(_init_subgraph(variables, buffers, opcode_of))
    if offline_offsets is not None:
        model.metadata = [_offline_plan(offline_offsets, order, lowered, buffers)]
    model.buffers = buffers.items

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return TfliteModel(bytes(builder.Output()), index, records, versions, notes)


def write_tflite(
    g: Graph, offline_offsets: Mapping[str, int] | None = None, file_layout: bool = True
) -> bytes:
    """The .tflite bytes of ``g``.

    ``offline_offsets`` (tensor name -> byte offset in the arena) is written as the
    ``OfflineMemoryAllocation`` metadata TFLM's planner honours; tensors it omits are
    planned by TFLM. With ``file_layout`` the graph's inputs and outputs keep the layout
    of the model file it came from (see ``lower_for_tflite``).
    """
    return build_model(g, offline_offsets, file_layout).data
