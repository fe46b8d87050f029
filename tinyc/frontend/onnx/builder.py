"""The state of one ONNX -> IR translation: values and their layouts, constants, emitters."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import helper

from tinyc.errors import TinycError, UnsupportedError
from tinyc.frontend.onnx import layout as L
from tinyc.frontend.onnx.reader import (
    ACTIVATION_DTYPES,
    VALUE_DTYPES,
    OnnxModel,
    dtype_name,
    ir_dtype,
)
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import get_op
from tinyc.ir.tensor import QuantParams, Tensor
from tinyc.passes._edit import rename_tensor

_NP_TO_IR = {
    np.dtype(np.float32): "float32",
    np.dtype(np.int8): "int8",
    np.dtype(np.uint8): "uint8",
    np.dtype(np.int16): "int16",
    np.dtype(np.int32): "int32",
    np.dtype(np.int64): "int64",
    np.dtype(np.bool_): "bool",
}


#: ONNX ops whose input 0 is channel-first (N, C, spatial...)
CHANNEL_FIRST_OPS = (
    "Conv",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "BatchNormalization",
)


@dataclass
class Value:
    """A run-time ONNX tensor: the IR tensor holding it and its layout (see ``layout``)."""

    ir: str
    perm: L.Perm


@dataclass
class QConst:
    """A DequantizeLinear of a constant: stored integers and parameters (ONNX axis numbering).

    uint8 data is kept as int8 (value - 128, zero point - 128), which dequantizes the same.
    """

    q: np.ndarray
    quant: QuantParams

    def dequantized(self) -> np.ndarray:
        return self.quant.dequantize(self.q)


class Builder:
    """Collects the IR graph while the converter walks the ONNX nodes in order."""

    def __init__(self, om: OnnxModel, name: str):
        self.om = om
        self.opset = om.opset
        self.g = Graph(name=name, source_format="onnx")
        self.values: dict[str, Value] = {}
        self.consts: dict[str, np.ndarray] = {}
        self.qconsts: dict[str, QConst] = {}
        self._cache: dict[tuple[Any, ...], str] = {}
        self._node_names: set[str] = set()
        self.node: onnx.NodeProto | None = None
        self.node_name = ""

    # -- the node being translated --------------------------------------------------------
    def start(self, node: onnx.NodeProto) -> None:
        self.node = node
        self.node_name = node.name or (node.output[0] if node.output else node.op_type)

    def where(self) -> str:
        assert self.node is not None
        return f"node {self.node_name!r} ({self.node.op_type})"

    def unsupported(self, what: str) -> UnsupportedError:
        return UnsupportedError(f"{self.where()}: {what}")

    def attrs(self, node: onnx.NodeProto) -> dict[str, Any]:
        out = {}
        for a in node.attribute:
            v = helper.get_attribute_value(a)
            out[a.name] = v.decode() if isinstance(v, bytes) else v
        return out

    # -- queries --------------------------------------------------------------------------
    def is_const(self, name: str) -> bool:
        return name in self.consts or name in self.qconsts

    def const(self, name: str, what: str) -> np.ndarray:
        """The value of a constant input (dequantized when it is a DequantizeLinear)."""
        if name in self.consts:
            return self.consts[name]
        if name in self.qconsts:
            return self.qconsts[name].dequantized()
        raise self.unsupported(f"{what} ({name!r}) must be a constant")

    def value(self, name: str) -> Value:
        if name not in self.values:
            raise TinycError(f"{self.where()} reads {name!r}, which nothing computes")
        return self.values[name]

    def shape(self, name: str) -> tuple[int, ...]:
        """The ONNX shape of a value or constant."""
        if name in self.consts:
            return tuple(self.consts[name].shape)
        if name in self.qconsts:
            return tuple(self.qconsts[name].q.shape)
        v = self.value(name)
        ir_shape = self.g.tensors[v.ir].shape
        return L.permute(ir_shape, L.inverse(v.perm))

    def rank(self, name: str) -> int:
        return len(self.shape(name))

    def ir_tensor(self, name: str) -> Tensor:
        return self.g.tensors[self.value(name).ir]

    # -- emitting -------------------------------------------------------------------------
    def fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self.g.tensors:
            name = f"{base}_{i}"
            i += 1
        return name

    def emit_multi(
        self,
        kind: str,
        inputs: list[str],
        attrs: dict[str, Any],
        outs: list[str],
        dtype: str = "float32",
        suffix: str | None = None,
        quant: QuantParams | None = None,
    ) -> list[str]:
        """Append an IR node; its output shapes come from the op definition."""
        base = self.node_name if suffix is None else f"{self.node_name}/{suffix}"
        name, i = base, 1
        while name in self._node_names:
            name = f"{base}_{i}"
            i += 1
        self._node_names.add(name)
        out_names = [self.fresh(o) for o in outs]
        for o in out_names:
            self.g.add_tensor(Tensor(o, (), dtype, quant=copy.deepcopy(quant)))
        node = Node(kind, name, list(inputs), out_names, dict(attrs))
        self.g.nodes.append(node)
        try:
            specs = get_op(kind).infer(node, self.g)
        except TinycError as e:
            raise TinycError(f"{self.where()}: {e}") from None
        except (ValueError, IndexError, TypeError, KeyError, ZeroDivisionError) as e:
            raise TinycError(f"{self.where()}: cannot be mapped to {kind} ({e})") from None
        for o, (shape, _) in zip(out_names, specs, strict=True):
            self.g.tensors[o].shape = shape
        return out_names

    def emit(
        self,
        kind: str,
        inputs: list[str],
        attrs: dict[str, Any] | None = None,
        out: str | None = None,
        dtype: str = "float32",
        suffix: str | None = None,
        quant: QuantParams | None = None,
    ) -> str:
        base = out or f"{self.node_name}/{suffix or kind.lower()}"
        return self.emit_multi(kind, inputs, attrs or {}, [base], dtype, suffix, quant)[0]

    def bind(self, onnx_name: str, ir: str, perm: L.Perm) -> None:
        self.values[onnx_name] = Value(ir, tuple(perm))

    def const_tensor(self, data: np.ndarray, hint: str, quant: QuantParams | None = None) -> str:
        dtype = _NP_TO_IR.get(data.dtype)
        if dtype is None:
            raise self.unsupported(f"constant {hint!r} has unsupported dtype {data.dtype}")
        name = self.fresh(hint)
        self.g.add_tensor(Tensor(name, data.shape, dtype, data=data, quant=quant))
        return name

    # -- layouts --------------------------------------------------------------------------
    def as_layout(self, name: str, perm: L.Perm) -> str:
        """An IR tensor holding ONNX value/constant ``name`` in layout ``perm``.

        A transpose that only moves size-1 axes becomes a RESHAPE.
        """
        perm = tuple(perm)
        if self.is_const(name):
            return self.operand(name, perm)
        v = self.value(name)
        if v.perm == perm:
            return v.ir
        key = ("layout", name, perm)
        if key not in self._cache:
            src = self.g.tensors[v.ir]
            r = L.between(v.perm, perm)
            tag = "".join(str(p) for p in perm)
            q = src.quant
            if L.moves_data(src.shape, r):
                out = self.emit(
                    "TRANSPOSE", [v.ir], {"perm": r}, f"{name}#t{tag}", src.dtype, "transpose", q
                )
            else:
                shape = L.permute(src.shape, r)
                out = self.emit(
                    "RESHAPE", [v.ir], {"shape": shape}, f"{name}#r{tag}", src.dtype, "reshape", q
                )
            self._cache[key] = out
        return self._cache[key]

    def with_rank(self, name: str, rank: int) -> str:
        """ONNX value ``name`` broadcast-ready at ``rank`` (leading size-1 axes added).

        Returns the ONNX-level name of the (possibly synthetic) value.
        """
        r = self.rank(name)
        if r >= rank or self.is_const(name):
            return name
        k = rank - r
        alias = f"{name}#rank{rank}"
        if alias not in self.values:
            v = self.value(name)
            src = self.g.tensors[v.ir]
            out = self.emit(
                "RESHAPE",
                [v.ir],
                {"shape": (1,) * k + src.shape},
                alias,
                src.dtype,
                "expand_rank",
                src.quant,
            )
            self.bind(alias, out, tuple(range(k)) + tuple(p + k for p in v.perm))
        return alias

    def operand(
        self,
        name: str,
        perm: L.Perm,
        rank: int | None = None,
        rows: tuple[int, int] | None = None,
        scale: float = 1.0,
    ) -> str:
        """A constant as a float IR operand: optionally rows ``rows`` of ONNX axis 0, times
        ``scale``, raised to ``rank`` with leading 1s, then laid out by ``perm``.

        A quantized constant (DequantizeLinear of stored integers) becomes an integer
        constant with its parameters plus a DEQUANTIZE node, so later passes can run the
        consumer in int8.
        """
        key = ("const", name, tuple(perm), rank, rows, scale)
        if key in self._cache:
            return self._cache[key]
        if name in self.qconsts:
            out = self._qoperand(self.qconsts[name], name, perm, rank, rows, scale)
        else:
            data = np.asarray(self.const(name, "operand"))
            if data.dtype.kind == "f":
                data = data.astype(np.float32)
            if rows is not None:
                data = data[rows[0] : rows[1]]
            if scale != 1.0:
                data = (data.astype(np.float64) * scale).astype(np.float32)
            if rank is not None and data.ndim < rank:
                data = data.reshape((1,) * (rank - data.ndim) + data.shape)
            out = self.const_tensor(np.ascontiguousarray(np.transpose(data, perm)), name)
        self._cache[key] = out
        return out

    def _qoperand(self, qc: QConst, name: str, perm, rank, rows, scale) -> str:
        q, quant = qc.q, qc.quant
        qscale, zp, axis = quant.scale.copy(), quant.zero_point.copy(), quant.axis
        if rows is not None:
            q = q[rows[0] : rows[1]]
            if axis == 0:
                qscale, zp = qscale[rows[0] : rows[1]], zp[rows[0] : rows[1]]
        if scale != 1.0:
            if scale <= 0:
                raise self.unsupported("a non-positive scale factor on quantized weights")
            qscale = (qscale.astype(np.float64) * scale).astype(np.float32)
        if rank is not None and q.ndim < rank:
            k = rank - q.ndim
            q = q.reshape((1,) * k + q.shape)
            axis = None if axis is None else axis + k
        if axis is not None:
            axis = L.ir_axis(perm, axis)
        qp = QuantParams(qscale, zp, axis)
        q = np.ascontiguousarray(np.transpose(q, perm))
        if q.dtype == np.int32:
            # No int32 DEQUANTIZE op: a float constant that remembers its stored integers
            # (``meta["int32"]``), which fuse_qdq uses as an int8 op's bias.
            out = self.const_tensor(qp.dequantize(q), name)
            self.g.tensors[out].meta["int32"] = (q, qp)
            return out
        stored = self.const_tensor(q, name, qp)
        return self.emit("DEQUANTIZE", [stored], {}, f"{name}#dq", "float32", "dequantize_weights")

    # -- graph boundary -------------------------------------------------------------------
    def add_inputs(self) -> None:
        """4-D inputs (and 3-D ones read by a 1-D conv or pool) are held channel-last."""
        spatial_inputs = {
            n.input[0] for n in self.om.graph.node if n.op_type in CHANNEL_FIRST_OPS and n.input
        }
        for inp in self.om.real_inputs():
            tt = inp.type.tensor_type
            dtype = ir_dtype(tt.elem_type, f"{self.om.what}: input {inp.name!r}")
            if dtype not in ACTIVATION_DTYPES:
                raise UnsupportedError(
                    f"{self.om.what}: input {inp.name!r} has dtype {dtype_name(tt.elem_type)} "
                    "(tinyc reads float32, int8 or uint8 inputs)"
                )
            shape = tuple(int(d.dim_value) for d in tt.shape.dim)
            spatial = len(shape) == 4 or (len(shape) == 3 and inp.name in spatial_inputs)
            perm = L.channel_last(len(shape)) if spatial else L.identity(len(shape))
            self.g.add_tensor(Tensor(inp.name, L.permute(shape, perm), dtype))
            self.g.inputs.append(inp.name)
            self.bind(inp.name, inp.name, perm)
            if perm != L.identity(len(shape)):
                self.g.external_perm[inp.name] = L.inverse(perm)

    def add_outputs(self) -> None:
        claimed: set[str] = set()
        for out in self.om.graph.output:
            name = out.name
            if self.is_const(name) or name not in self.values:
                raise UnsupportedError(
                    f"{self.om.what}: output {name!r} is a constant; tinyc compiles models whose "
                    "outputs depend on their inputs"
                )
            v = self.values[name]
            ir = v.ir
            t = self.g.tensors[ir]
            info = self.om.infos.get(name)
            if info is not None and info.dtype == onnx.TensorProto.UINT8 and t.dtype == "int8":
                ir = self._to_uint8(name, ir)
            if ir != name:
                if name in self.g.tensors:  # an internal tensor took the name: move it
                    self._rename(name, self.fresh(f"{name}#internal"))
                    ir = self.values[name].ir
                t = self.g.tensors[ir]
                if ir in self.g.inputs or ir in claimed:
                    self.node_name = f"{name}/copy"
                    ir = self.emit(
                        "RESHAPE", [ir], {"shape": t.shape}, name, t.dtype, None, t.quant
                    )
                else:
                    self._rename(ir, name)
                    ir = name
            if self.g.tensors[ir].dtype not in VALUE_DTYPES:
                raise UnsupportedError(
                    f"{self.om.what}: output {name!r} has unsupported dtype "
                    f"{self.g.tensors[ir].dtype}"
                )
            claimed.add(ir)
            self.g.outputs.append(ir)
            if v.perm != L.identity(len(v.perm)):
                self.g.external_perm[ir] = L.inverse(v.perm)

    def _to_uint8(self, name: str, ir: str) -> str:
        """A uint8 graph output: requantize tinyc's int8 tensor (zero point + 128)."""
        t = self.g.tensors[ir]
        assert t.quant is not None
        quant = QuantParams(t.quant.scale, t.quant.zero_point + 128)
        if name in self.g.tensors:
            self._rename(name, self.fresh(f"{name}#int8"))
            ir = self.values[name].ir
        self.node_name = f"{name}/to_uint8"
        return self.emit("QUANTIZE", [ir], {}, name, "uint8", None, quant)

    def _rename(self, old: str, new: str) -> None:
        rename_tensor(self.g, old, new)
        for v in self.values.values():
            if v.ir == old:
                v.ir = new
