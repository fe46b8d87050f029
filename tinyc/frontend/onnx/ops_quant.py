"""QuantizeLinear / DequantizeLinear -> QUANTIZE / DEQUANTIZE nodes and quantized constants.

uint8 tensors become int8 ones (values and zero point shifted by -128), which dequantize to
the same reals. The ``fuse_qdq`` pass later turns the float ops between these nodes into
int8 ops.
"""

from __future__ import annotations

import numpy as np
import onnx

from tinyc.errors import TinycError
from tinyc.frontend.onnx.builder import Builder, QConst
from tinyc.frontend.onnx.reader import DTYPES
from tinyc.frontend.onnx.registry import inputs, onnx_op
from tinyc.ir.tensor import QuantParams

_NP_IR = {np.dtype(np.int8): "int8", np.dtype(np.uint8): "uint8", np.dtype(np.int32): "int32"}


def _params(b: Builder, node: onnx.NodeProto, rank: int) -> tuple[QuantParams, str]:
    """Scale, zero point and axis of a Q/DQ node; the integer dtype it uses."""
    a = b.attrs(node)
    if a.get("block_size", 0):
        raise b.unsupported("blocked quantization (block_size) is not supported")
    scale = np.asarray(b.const(node.input[1], "the scale"), dtype=np.float32).reshape(-1)
    zp_name = inputs(node, 2)
    if zp_name:
        zp_arr = np.asarray(b.const(zp_name, "the zero point"))
        dtype = _NP_IR.get(zp_arr.dtype)
        zp = zp_arr.astype(np.int64).reshape(-1)
    else:
        zp = np.zeros(1, np.int64)
        dtype = None
    if dtype is None:
        if node.op_type == "QuantizeLinear":
            code = a.get("output_dtype", 0) or onnx.TensorProto.UINT8
            dtype = DTYPES.get(code, f"code {code}")
        else:
            dtype = "int8"
    if dtype not in ("int8", "uint8", "int32"):
        raise b.unsupported(f"{dtype} quantization is not supported (int8, uint8, int32 bias)")
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise TinycError(f"{b.where()}: quantization scales must be positive and finite")
    if zp.size not in (1, scale.size):
        raise TinycError(f"{b.where()}: {scale.size} scales but {zp.size} zero points")
    axis = None
    if scale.size > 1:
        axis = int(a.get("axis", 1))
        if not -rank <= axis < rank:
            raise TinycError(f"{b.where()}: axis {axis} out of range for rank {rank}")
        axis %= rank
    if dtype == "uint8":
        zp = zp - 128
    return QuantParams(scale, zp, axis), dtype


def qconst_from_node(b: Builder, node: onnx.NodeProto) -> QConst:
    """DequantizeLinear of a stored constant: keep the integers, not the dequantized floats."""
    x = np.asarray(b.const(node.input[0], "the quantized data"))
    quant, dtype = _params(b, node, x.ndim)
    if _NP_IR.get(x.dtype) != dtype and not (dtype == "int8" and x.dtype == np.int8):
        raise TinycError(f"{b.where()}: data is {x.dtype}, zero point says {dtype}")
    if quant.axis is not None and x.shape[quant.axis] != quant.scale.size:
        raise TinycError(
            f"{b.where()}: {quant.scale.size} scales for axis {quant.axis} of shape {list(x.shape)}"
        )
    if dtype == "uint8":
        x = (x.astype(np.int16) - 128).astype(np.int8)
    return QConst(x, quant)


@onnx_op("QuantizeLinear")
def quantize_linear(b: Builder, node: onnx.NodeProto) -> None:
    x = b.value(node.input[0])
    if b.ir_tensor(node.input[0]).dtype != "float32":
        raise b.unsupported("QuantizeLinear of a non-float tensor")
    quant, dtype = _params(b, node, b.rank(node.input[0]))
    if quant.per_channel:
        raise b.unsupported("per-axis quantization of a run-time tensor is not supported")
    if dtype == "int32":
        raise b.unsupported("int32 quantization of a run-time tensor is not supported")
    out = b.emit("QUANTIZE", [x.ir], {}, node.output[0], "int8", quant=quant)
    b.bind(node.output[0], out, x.perm)


@onnx_op("DequantizeLinear")
def dequantize_linear(b: Builder, node: onnx.NodeProto) -> None:
    x = b.value(node.input[0])
    t = b.ir_tensor(node.input[0])
    quant, dtype = _params(b, node, b.rank(node.input[0]))
    if quant.per_channel:
        raise b.unsupported("per-axis dequantization of a run-time tensor is not supported")
    src = x.ir
    if t.dtype not in ("int8", "uint8") or dtype == "int32":
        raise b.unsupported(f"dequantizing a run-time {t.dtype} tensor is not supported")
    if t.quant is None:
        # An integer graph input: the DequantizeLinear tells what it means.
        if t.dtype == "uint8":
            t.quant = QuantParams(quant.scale, quant.zero_point + 128)
            src = b.emit("QUANTIZE", [x.ir], {}, f"{node.input[0]}#int8", "int8", quant=quant)
        else:
            t.quant = quant
    elif not t.quant.same_as(quant):
        raise b.unsupported(
            "its parameters differ from those its input was quantized with (requantization "
            "through a Q/DQ mismatch is not supported)"
        )
    out = b.emit("DEQUANTIZE", [src], {}, node.output[0], "float32")
    b.bind(node.output[0], out, x.perm)
