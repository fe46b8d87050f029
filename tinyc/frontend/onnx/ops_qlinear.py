"""The ONNX QOperator form (what onnxruntime's quantize_static writes with
QuantFormat.QOperator): QLinearConv, QLinearMatMul and, in the com.microsoft domain,
QGemm, QLinearAdd, QLinearMul, QLinearSigmoid, QLinearLeakyRelu, QLinearSoftmax,
QLinearConcat, QLinearAveragePool, QLinearGlobalAveragePool and QLinearReduceMean.

Each is translated as the QDQ form it stands for: its quantized inputs dequantized
(DequantizeLinear semantics: run-time tensors get DEQUANTIZE nodes, stored weights and
int32 biases become quantized constants), the float op's own translator, and a
QuantizeLinear of the result with the output parameters. The ``fuse_qdq`` pass then turns
every such island into the int8 IR op, exactly as for QDQ files. uint8 tensors become int8
ones with the zero point moved by -128 (see ``builder.QConst``).

The int8 arithmetic is TFLM's (what tinyc's ops define), not onnxruntime's: TFLM
requantizes with integer multipliers and rounds twice (MultiplyByQuantizedMultiplier,
ADD's rescaled inputs), some ops have fixed output parameters (LOGISTIC and SOFTMAX at
1/256, then a requantization to the file's parameters). Results can therefore differ from
onnxruntime's by one quantum per op. QLinearAveragePool with output parameters of its own
becomes an int8 DEPTHWISE_CONV_2D of ones (see there).
"""

from __future__ import annotations

import contextlib

import numpy as np
import onnx
from onnx import helper

from tinyc.frontend.onnx.builder import Builder, QConst
from tinyc.frontend.onnx.ops_quant import qconst_from_node
from tinyc.frontend.onnx.registry import OPS, inputs, onnx_op
from tinyc.ir.tensor import QuantParams

MS = "com.microsoft."


def _fake(op_type: str, ins: list[str], outs: list[str], attrs=None, **kw) -> onnx.NodeProto:
    node = helper.make_node(op_type, ins, outs, **kw)
    if attrs:
        node.attribute.extend(attrs)
    return node


def _attrs(node: onnx.NodeProto, drop: tuple[str, ...] = ()) -> list[onnx.AttributeProto]:
    return [a for a in node.attribute if a.name not in drop]


@contextlib.contextmanager
def _opset(b: Builder, version: int):
    """Translate with another default-domain opset (an attribute-era float op)."""
    saved = b.opset
    b.opset = version
    try:
        yield
    finally:
        b.opset = saved


def dequantized(b: Builder, name: str, scale: str, zp: str, axis: int | None = None) -> str:
    """The ONNX name of ``name`` dequantized with (scale, zp): a DEQUANTIZE of a run-time
    tensor, or a quantized constant (per axis ``axis`` when the scale has several values)."""
    alias = f"{name}#dq"
    if alias in b.values or alias in b.qconsts:
        return alias
    kw = {} if axis is None else {"axis": axis}
    fake = _fake("DequantizeLinear", [name, scale, zp], [alias], **kw)
    if b.is_const(name):
        if name in b.qconsts:
            raise b.unsupported(f"{name!r} is already dequantized")
        b.qconsts[alias] = qconst_from_node(b, fake)
    else:
        OPS["DequantizeLinear"](b, fake)
    return alias


def quantized(b: Builder, name: str, out: str, scale: str, zp: str) -> None:
    """Bind ONNX ``out`` to float value ``name`` quantized with (scale, zp)."""
    OPS["QuantizeLinear"](b, _fake("QuantizeLinear", [name, scale, zp], [out]))


def _scale(b: Builder, name: str) -> np.ndarray:
    return np.asarray(b.const(name, "the scale"), np.float32).reshape(-1)


def int32_bias(b: Builder, name: str, scale: np.ndarray, axis: int | None) -> str:
    """An int32 bias (zero point 0) with the given scale, as a quantized constant."""
    alias = f"{name}#dq"
    if alias not in b.qconsts:
        q = np.asarray(b.const(name, "the bias"))
        if q.dtype != np.int32:
            raise b.unsupported(f"a {q.dtype} bias (int32 expected)")
        scale = scale.astype(np.float32)
        ax = axis if scale.size > 1 else None
        b.qconsts[alias] = QConst(q, QuantParams(scale, np.zeros(scale.size, np.int64), ax))
    return alias


def _float_name(node: onnx.NodeProto) -> str:
    return f"{node.output[0]}#float"


@onnx_op("QLinearConv")
def qlinear_conv(b: Builder, node: onnx.NodeProto) -> None:
    x, xs, xz, w, ws, wz, ys, yz = node.input[:8]
    bias = inputs(node, 8)
    if not b.is_const(w) or (bias and not b.is_const(bias)):
        raise b.unsupported("weights and bias must be constants")
    xf = dequantized(b, x, xs, xz)
    wf = dequantized(b, w, ws, wz, axis=0)
    ins = [xf, wf]
    if bias:
        ins.append(int32_bias(b, bias, _scale(b, xs) * _scale(b, ws), 0))
    OPS["Conv"](b, _fake("Conv", ins, [_float_name(node)], _attrs(node)))
    quantized(b, _float_name(node), node.output[0], ys, yz)


@onnx_op("QLinearMatMul")
def qlinear_matmul(b: Builder, node: onnx.NodeProto) -> None:
    a, a_s, a_z, m, m_s, m_z, ys, yz = node.input[:8]
    af = dequantized(b, a, a_s, a_z)
    mf = dequantized(b, m, m_s, m_z, axis=-1 if b.is_const(m) else None)
    OPS["MatMul"](b, _fake("MatMul", [af, mf], [_float_name(node)]))
    quantized(b, _float_name(node), node.output[0], ys, yz)


@onnx_op(MS + "QGemm")
def qgemm(b: Builder, node: onnx.NodeProto) -> None:
    """alpha * A' B' + C with C int32 at scale alpha * a_scale * b_scale; a float output
    when y_scale is absent."""
    a, a_s, a_z, m, m_s, m_z = node.input[:6]
    c, ys, yz = inputs(node, 6), inputs(node, 7), inputs(node, 8)
    attrs = b.attrs(node)
    alpha = float(attrs.get("alpha", 1.0))
    trans_b = bool(attrs.get("transB", 0))
    af = dequantized(b, a, a_s, a_z)
    mf = dequantized(b, m, m_s, m_z, axis=(0 if trans_b else 1) if b.is_const(m) else None)
    ins = [af, mf]
    if c:
        if not b.is_const(c):
            raise b.unsupported("a run-time C")
        ins.append(int32_bias(b, c, _scale(b, a_s) * _scale(b, m_s) * np.float32(alpha), 0))
    out = _float_name(node) if ys else node.output[0]
    OPS["Gemm"](b, _fake("Gemm", ins, [out], _attrs(node)))
    if ys:
        quantized(b, out, node.output[0], ys, yz)


def _binary(b: Builder, node: onnx.NodeProto, op: str) -> None:
    a, a_s, a_z, c, c_s, c_z, ys = node.input[:7]
    yz = inputs(node, 7)
    ins = [dequantized(b, a, a_s, a_z), dequantized(b, c, c_s, c_z)]
    OPS[op](b, _fake(op, ins, [_float_name(node)]))
    quantized(b, _float_name(node), node.output[0], ys, yz)


@onnx_op(MS + "QLinearAdd")
def qlinear_add(b: Builder, node: onnx.NodeProto) -> None:
    _binary(b, node, "Add")


@onnx_op(MS + "QLinearMul")
def qlinear_mul(b: Builder, node: onnx.NodeProto) -> None:
    _binary(b, node, "Mul")


def _unary(b: Builder, node: onnx.NodeProto, op: str, drop: tuple[str, ...] = ()) -> None:
    x, xs, xz, ys = node.input[:4]
    yz = inputs(node, 4)
    xf = dequantized(b, x, xs, xz)
    OPS[op](b, _fake(op, [xf], [_float_name(node)], _attrs(node, drop)))
    quantized(b, _float_name(node), node.output[0], ys, yz)


@onnx_op(MS + "QLinearSigmoid")
def qlinear_sigmoid(b: Builder, node: onnx.NodeProto) -> None:
    _unary(b, node, "Sigmoid")


@onnx_op(MS + "QLinearLeakyRelu")
def qlinear_leaky_relu(b: Builder, node: onnx.NodeProto) -> None:
    _unary(b, node, "LeakyRelu")


@onnx_op(MS + "QLinearSoftmax")
def qlinear_softmax(b: Builder, node: onnx.NodeProto) -> None:
    version = int(b.attrs(node).get("opset", 13))
    with _opset(b, version):
        _unary(b, node, "Softmax", drop=("opset",))


def _channels_first(b: Builder, node: onnx.NodeProto) -> None:
    if b.attrs(node).get("channels_last", 0):
        raise b.unsupported("channels_last=1 (NHWC tensors in the file)")


@onnx_op(MS + "QLinearGlobalAveragePool")
def qlinear_global_average_pool(b: Builder, node: onnx.NodeProto) -> None:
    _channels_first(b, node)
    _unary(b, node, "GlobalAveragePool", drop=("channels_last",))


@onnx_op(MS + "QLinearAveragePool")
def qlinear_average_pool(b: Builder, node: onnx.NodeProto) -> None:
    """TFLM's int8 AVERAGE_POOL_2D keeps its input's parameters: with the output's own
    parameters it would round twice (the average, then a requantization), which can miss
    by more than a quantum where the output scale is finer. Unless the parameters agree,
    the average is a DEPTHWISE_CONV_2D with every weight 1 at scale 1 / window (one
    rounding; padding counts as zero, so only without padding or with count_include_pad)."""
    _channels_first(b, node)
    x, xs, xz, ys = node.input[:4]
    yz = inputs(node, 4)
    a = b.attrs(node)
    same = np.array_equal(_scale(b, xs), _scale(b, ys)) and (
        np.asarray(b.const(xz, "zero point")).tolist()
        == np.asarray(b.const(yz, "zero point")).tolist()
        if xz and yz
        else xz == yz
    )
    padded = any(a.get("pads", [])) or a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID", "")
    as_conv = (
        not same and not a.get("ceil_mode", 0) and (not padded or a.get("count_include_pad", 0))
    )
    xf = dequantized(b, x, xs, xz)
    attrs = _attrs(node, ("channels_last", "count_include_pad", "ceil_mode"))
    if not as_conv:
        attrs = _attrs(node, ("channels_last",))
        OPS["AveragePool"](b, _fake("AveragePool", [xf], [_float_name(node)], attrs))
    else:
        kernel = [int(k) for k in a["kernel_shape"]]
        channels = b.shape(x)[1]
        w = f"{node.output[0]}#window"
        ones = np.ones((channels, 1, *kernel), np.int8)
        b.qconsts[w] = QConst(ones, QuantParams(np.float32(1.0 / np.prod(kernel)), 0))
        attrs = [a_ for a_ in attrs if a_.name != "kernel_shape"]
        fake = _fake("Conv", [xf, w], [_float_name(node)], attrs, group=channels)
        OPS["Conv"](b, fake)
    quantized(b, _float_name(node), node.output[0], ys, yz)


@onnx_op(MS + "QLinearReduceMean")
def qlinear_reduce_mean(b: Builder, node: onnx.NodeProto) -> None:
    with _opset(b, 13):  # axes as an attribute
        _unary(b, node, "ReduceMean")


@onnx_op(MS + "QLinearConcat")
def qlinear_concat(b: Builder, node: onnx.NodeProto) -> None:
    ys, yz = node.input[0], node.input[1]
    rest = list(node.input[2:])
    if len(rest) % 3:
        raise b.unsupported(f"{len(rest)} inputs after the output parameters (triples expected)")
    ins = [dequantized(b, *rest[i : i + 3]) for i in range(0, len(rest), 3)]
    OPS["Concat"](b, _fake("Concat", ins, [_float_name(node)], _attrs(node)))
    quantized(b, _float_name(node), node.output[0], ys, yz)
