"""Conv, pooling, BatchNormalization, Gemm and MatMul (FULLY_CONNECTED or BATCH_MATMUL).

Convolutions and pools run channel-last (NHWC); 1-D ones (NCW) run as 2-D with H = 1.
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from tinyc.frontend.onnx import layout as L
from tinyc.frontend.onnx.builder import Builder, QConst
from tinyc.frontend.onnx.ops_math import align, float_value
from tinyc.frontend.onnx.registry import inputs, onnx_op
from tinyc.ir.tensor import QuantParams

NHWC = L.channel_last(4)


def _pads(b: Builder, a: dict, in_hw, kernel, strides, dilations) -> tuple[int, int, int, int]:
    """ONNX pads / auto_pad as explicit (top, bottom, left, right)."""
    auto = a.get("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        p = list(a.get("pads", [0] * 4))
        if len(p) != 4 or min(p) < 0:
            raise b.unsupported(f"pads {p} (need 4 non-negative values)")
        return (p[0], p[2], p[1], p[3])
    if auto == "VALID":
        return (0, 0, 0, 0)
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise b.unsupported(f"auto_pad {auto!r}")
    res = []
    for size, k, s, d in zip(in_hw, kernel, strides, dilations, strict=True):
        out = -(-size // s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
        small, big = total // 2, total - total // 2
        res += [small, big] if auto == "SAME_UPPER" else [big, small]
    return (res[0], res[1], res[2], res[3])


def _spatial_input(b: Builder, name: str) -> tuple[str, tuple[int, ...], bool]:
    """A 3-D (NCW) or 4-D (NCHW) value as an NHWC IR tensor; ``True`` when it was 1-D."""
    shape = b.shape(name)
    if len(shape) == 4:
        return b.as_layout(name, NHWC), shape, False
    if len(shape) == 3:
        nwc = b.as_layout(name, L.channel_last(3))
        t = b.g.tensors[nwc]
        ir = b.emit(
            "RESHAPE",
            [nwc],
            {"shape": (shape[0], 1, shape[2], shape[1])},
            f"{name}#2d",
            t.dtype,
            "as_2d",
            t.quant,
        )
        return ir, (shape[0], shape[1], 1, shape[2]), True
    raise b.unsupported(f"input of rank {len(shape)} (1-D or 2-D spatial inputs only)")


def _out(name: str, one_d: bool) -> str:
    """The IR name of a spatial op's output: 1-D ops keep the ONNX name for the 3-D view."""
    return f"{name}#2d" if one_d else name


def _bind_spatial(b: Builder, out_name: str, ir: str, one_d: bool) -> None:
    if not one_d:
        b.bind(out_name, ir, NHWC)
        return
    t = b.g.tensors[ir]
    n, _, w, c = t.shape
    ir3 = b.emit("RESHAPE", [ir], {"shape": (n, w, c)}, out_name, t.dtype, "as_1d", t.quant)
    b.bind(out_name, ir3, L.channel_last(3))


def _window_attrs(b: Builder, a: dict, in_hw, kernel, one_d: bool, dilated: bool = True):
    n = len(kernel)
    strides = list(a.get("strides", [1] * n))
    dil = list(a.get("dilations", [1] * n))
    if one_d:
        kernel, strides, dil = [1, *kernel], [1, *strides], [1, *dil]
        a = dict(a)
        if "pads" in a:
            a["pads"] = [0, a["pads"][0], 0, a["pads"][1]]
    if not dilated and any(d != 1 for d in dil):
        raise b.unsupported(f"dilations {dil}")
    pads = _pads(b, a, in_hw, kernel, strides, dil)
    return tuple(kernel), tuple(strides), tuple(dil), pads


@onnx_op("Conv")
def conv(b: Builder, node: onnx.NodeProto) -> None:
    a = b.attrs(node)
    x, w, bias = node.input[0], node.input[1], inputs(node, 2)
    if not b.is_const(w) or (bias and not b.is_const(bias)):
        raise b.unsupported("weights and bias must be constants")
    xin, xs, one_d = _spatial_input(b, x)
    ws = b.shape(w)
    if one_d:  # (O, I, K) weights run as (O, I, 1, K)
        ws = (ws[0], ws[1], 1, ws[2])
    group = int(a.get("group", 1))
    cin, cout = xs[1], ws[0]
    k, s, d, pads = _window_attrs(b, a, xs[2:], list(ws[2:]) if not one_d else [ws[3]], one_d)
    attrs = {"stride": s, "dilation": d, "pads": pads}
    wperm_conv, wperm_dw = (0, 2, 3, 1), (1, 2, 3, 0)  # OIHW -> OHWI, OIHW (I = 1) -> 1HWO

    def weights(perm, rows=None) -> str:
        return b.operand(_weights_1d(b, w) if one_d else w, perm, rows=rows)

    def bias_operand(rows=None) -> list[str]:
        return [b.operand(bias, (0,), rows=rows)] if bias else []

    if cin % group or cout % group or ws[1] * group != cin:
        raise b.unsupported(f"group {group} does not divide {cin} input / {cout} output channels")
    if group == cin and ws[1] == 1 and group > 1:
        attrs["depth_multiplier"] = cout // cin
        ins = [xin, weights(wperm_dw), *bias_operand()]
        out = b.emit("DEPTHWISE_CONV_2D", ins, attrs, _out(node.output[0], one_d))
    else:
        # CONV_2D is grouped when its filter has fewer input channels than the input
        ins = [xin, weights(wperm_conv), *bias_operand()]
        out = b.emit("CONV_2D", ins, attrs, _out(node.output[0], one_d))
    _bind_spatial(b, node.output[0], out, one_d)


def _weights_1d(b: Builder, name: str) -> str:
    """The constant (O, I, K) 1-D conv weights ``name`` as (O, I, 1, K); returns its name."""
    key = f"{name}#4d"
    if key not in b.consts and key not in b.qconsts:
        if name in b.qconsts:
            qc = b.qconsts[name]
            axis = qc.quant.axis
            quant = QuantParams(qc.quant.scale, qc.quant.zero_point, None)
            if axis is not None:
                quant.axis = axis + 1 if axis >= 2 else axis
            b.qconsts[key] = QConst(qc.q[:, :, None, :], quant)
        else:
            b.consts[key] = b.const(name, "weights")[:, :, None, :]
    return key


def _pool(b: Builder, node: onnx.NodeProto, kind: str) -> None:
    a = b.attrs(node)
    if len(node.output) > 1 and node.output[1]:
        raise b.unsupported("the Indices output of MaxPool is not supported")
    xin, xs, one_d = _spatial_input(b, node.input[0])
    kernel = list(a["kernel_shape"])
    k, s, d, pads = _window_attrs(b, a, xs[2:], kernel, one_d, dilated=False)
    if a.get("ceil_mode", 0):
        pads = _ceil_pads(xs[2:], k, s, pads)
    t = b.g.tensors[xin]
    global_window = kind == "AVERAGE_POOL_2D" and tuple(k) == tuple(xs[2:]) and pads == (0, 0, 0, 0)
    if global_window:
        out = b.emit(
            "MEAN", [xin], {"axes": (1, 2), "keep_dims": True}, _out(node.output[0], one_d)
        )
    else:
        if kind == "AVERAGE_POOL_2D" and a.get("count_include_pad", 0) and any(pads):
            paddings = ((0, 0), (pads[0], pads[1]), (pads[2], pads[3]), (0, 0))
            xin = b.emit(
                "PAD",
                [xin],
                {"paddings": paddings, "value": None},
                f"{node.output[0]}#pad",
                t.dtype,
                "pad",
                t.quant,
            )
            pads = (0, 0, 0, 0)
        attrs = {"filter": k, "stride": s, "pads": pads}
        quant = t.quant if kind == "MAX_POOL_2D" else None  # an int8 max pool keeps its input's
        out = b.emit(kind, [xin], attrs, _out(node.output[0], one_d), t.dtype, quant=quant)
    _bind_spatial(b, node.output[0], out, one_d)


def _ceil_pads(in_hw, k, s, pads) -> tuple[int, int, int, int]:
    """Extra end padding so floor-mode output sizes equal ONNX's ceil_mode sizes (a last
    window must still start inside the input or its begin padding)."""
    res = list(pads)
    for i, (size, kk, ss) in enumerate(zip(in_hw, k, s, strict=True)):
        begin, end = pads[2 * i], pads[2 * i + 1]
        span = size + begin + end - kk
        out = math.ceil(span / ss) + 1
        if (out - 1) * ss >= size + begin:
            out -= 1
        res[2 * i + 1] = max(end, (out - 1) * ss + kk - size - begin)
    return (res[0], res[1], res[2], res[3])


@onnx_op("MaxPool")
def max_pool(b: Builder, node: onnx.NodeProto) -> None:
    _pool(b, node, "MAX_POOL_2D")


@onnx_op("AveragePool")
def average_pool(b: Builder, node: onnx.NodeProto) -> None:
    _pool(b, node, "AVERAGE_POOL_2D")


@onnx_op("GlobalAveragePool", "GlobalMaxPool")
def global_pool(b: Builder, node: onnx.NodeProto) -> None:
    xin, xs, one_d = _spatial_input(b, node.input[0])
    name = _out(node.output[0], one_d)
    if node.op_type == "GlobalAveragePool":
        out = b.emit("MEAN", [xin], {"axes": (1, 2), "keep_dims": True}, name)
    else:
        t = b.g.tensors[xin]
        attrs = {"filter": tuple(xs[2:]), "stride": (1, 1), "pads": (0, 0, 0, 0)}
        out = b.emit("MAX_POOL_2D", [xin], attrs, name, t.dtype, quant=t.quant)
    _bind_spatial(b, node.output[0], out, one_d)


@onnx_op("BatchNormalization")
def batch_norm(b: Builder, node: onnx.NodeProto) -> None:
    """y = x * a + c per channel (axis 1); the fold_affine pass merges it into a producing
    convolution or fully connected layer."""
    a = b.attrs(node)
    if not a.get("spatial", 1):
        raise b.unsupported("spatial=0 (per-element statistics) is not supported")
    if a.get("training_mode", 0) or any(o for o in node.output[1:]):
        raise b.unsupported("training mode (extra outputs) is not supported")
    x = node.input[0]
    scale, bias, mean, var = (
        np.asarray(b.const(n, what), np.float64)
        for n, what in zip(node.input[1:5], ("scale", "bias", "mean", "variance"), strict=True)
    )
    eps = float(a.get("epsilon", 1e-5))
    mul = scale / np.sqrt(var + eps)
    add = bias - mean * mul
    rank = b.rank(x)
    shape = (1, -1) + (1,) * (rank - 2)
    _affine(b, node, x, mul.reshape(shape), add.reshape(shape))


def _affine(b: Builder, node: onnx.NodeProto, x: str, mul: np.ndarray, add: np.ndarray) -> None:
    v = b.value(x)
    m = b.const_tensor(np.transpose(mul.astype(np.float32), v.perm), f"{node.output[0]}#scale")
    c = b.const_tensor(np.transpose(add.astype(np.float32), v.perm), f"{node.output[0]}#shift")
    y = b.emit("MUL", [v.ir, m], {}, f"{node.output[0]}#scaled", suffix="scale")
    out = b.emit("ADD", [y, c], {}, node.output[0])
    b.bind(node.output[0], out, v.perm)


@onnx_op("Gemm")
def gemm(b: Builder, node: onnx.NodeProto) -> None:
    """A run-time A times a constant B is a FULLY_CONNECTED (alpha folded into the
    weights, a vector C into the bias); two run-time operands give a BATCH_MATMUL. Other
    forms of C (a matrix, a run-time tensor, any beta) are added after the product."""
    a = b.attrs(node)
    x, w, c = node.input[0], node.input[1], inputs(node, 2)
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    trans_a, trans_b = bool(a.get("transA", 0)), bool(a.get("transB", 0))
    if b.is_const(x) and b.is_const(w):
        raise b.unsupported("constant A and B (nothing to compute)")
    extra = c or None
    out_name = node.output[0] if not c else f"{node.output[0]}#mm"
    if b.is_const(w) and not b.is_const(x) and not _offset_weights(b, w):
        xin = b.as_layout(x, (1, 0) if trans_a else (0, 1))
        wt = b.operand(w, (0, 1) if trans_b else (1, 0), scale=alpha)
        n_out = b.g.tensors[wt].shape[0]
        ins = [xin, wt]
        cs = b.shape(c) if c else ()
        if (
            c
            and b.is_const(c)
            and all(d == 1 for d in cs[:-1])
            and (not cs or cs[-1] in (1, n_out))
        ):
            if c in b.qconsts and cs == (n_out,) and beta == 1.0:
                ins.append(b.operand(c, (0,)))  # a quantized bias stays quantized
            else:
                ins.append(_bias_vector(b, c, n_out, beta))
            extra, out_name = None, node.output[0]
        out = b.emit("FULLY_CONNECTED", ins, {}, out_name)
    else:
        lhs, adj_x = _matmul_operand(b, x, trans_a)
        rhs, adj_y = _matmul_operand(b, w, trans_b)
        attrs = {"adj_x": adj_x, "adj_y": adj_y}
        product = out_name if alpha == 1.0 else f"{node.output[0]}#product"
        out = b.emit("BATCH_MATMUL", [lhs, rhs], attrs, product)
        if alpha != 1.0:
            k = b.const_tensor(np.full((1, 1), alpha, np.float32), f"{node.output[0]}#alpha")
            out = b.emit("MUL", [out, k], {}, out_name, suffix="alpha")
    b.bind(out_name, out, (0, 1))
    if extra is None:
        return
    if b.is_const(extra):
        scaled = f"{extra}#beta{beta:g}"
        b.consts[scaled] = (np.asarray(b.const(extra, "C"), np.float64) * beta).astype(np.float32)
        extra = scaled
    elif beta != 1.0:
        v = float_value(b, extra)
        k = b.const_tensor(np.full((1,) * len(v.perm), beta, np.float32), f"{extra}#beta")
        scaled = f"{extra}#beta{beta:g}"
        b.bind(scaled, b.emit("MUL", [v.ir, k], {}, scaled, suffix="beta"), v.perm)
        extra = scaled
    ir, perm = align(b, [out_name, extra])
    b.bind(node.output[0], b.emit("ADD", ir, {}, node.output[0], suffix="bias"), perm)


def _offset_weights(b: Builder, w: str) -> bool:
    """Stored per-tensor weights with a zero point (a quantizer that took a constant for an
    activation): FULLY_CONNECTED's int8 weights are symmetric, BATCH_MATMUL's may be not."""
    qc = b.qconsts.get(w)
    return qc is not None and not qc.quant.per_channel and qc.quant.zp != 0


def _bias_vector(b: Builder, c: str, n: int, beta: float) -> str:
    data = np.asarray(b.const(c, "C"), np.float64).reshape(-1)
    vec = np.broadcast_to(data * beta, (n,)).astype(np.float32)
    return b.const_tensor(np.ascontiguousarray(vec), f"{c}#bias")


def _matmul_operand(b: Builder, name: str, trans: bool) -> tuple[str, bool]:
    """An operand of rank >= 2 for BATCH_MATMUL and its adj flag: a run-time value whose
    layout only swaps the last two axes is read as it is (the swap becomes the flag);
    other layouts are brought to ONNX order."""
    rank = b.rank(name)
    ident = L.identity(rank)
    if b.is_const(name):
        return b.operand(name, ident), trans
    v = b.value(name)
    swapped = ident[:-2] + (rank - 1, rank - 2)
    if v.perm == swapped:
        return v.ir, not trans
    return b.as_layout(name, ident), trans


@onnx_op("MatMul")
def matmul(b: Builder, node: onnx.NodeProto) -> None:
    """A run-time A times a constant 2-D B is a FULLY_CONNECTED; any other pair (both at
    run time, a constant A, a batched constant B, stored B with a zero point) is a
    BATCH_MATMUL, 1-D operands as ONNX says (a leading / trailing 1 added, then removed)."""
    x, w = node.input[0], node.input[1]
    if b.is_const(x) and b.is_const(w):
        raise b.unsupported("constant operands (nothing to compute)")
    if b.is_const(w) and len(b.shape(w)) == 2 and b.rank(x) >= 2 and not _offset_weights(b, w):
        rank = b.rank(x)
        v = b.value(x)
        perm = v.perm if v.perm[-1] == rank - 1 else L.identity(rank)
        xin = b.as_layout(x, perm)
        wt = b.operand(w, (1, 0))
        out = b.emit("FULLY_CONNECTED", [xin, wt], {"keep_num_dims": rank > 2}, node.output[0])
        b.bind(node.output[0], out, perm)
        return
    names = []
    for i, (n, pos) in enumerate(((x, 0), (w, -1))):
        if b.rank(n) != 1:
            names.append(n)
            continue
        alias = f"{n}#as2d_{i}"
        if b.is_const(n):
            data = np.asarray(b.const(n, "operand"))
            b.consts[alias] = data[None, :] if pos == 0 else data[:, None]
        else:
            t = b.ir_tensor(n)
            shape = (1, t.shape[0]) if pos == 0 else (t.shape[0], 1)
            b.bind(
                alias,
                b.emit(
                    "RESHAPE", [b.value(n).ir], {"shape": shape}, alias, t.dtype, "as_2d", t.quant
                ),
                (0, 1),
            )
        names.append(alias)
    lhs, adj_x = _matmul_operand(b, names[0], False)
    rhs, adj_y = _matmul_operand(b, names[1], False)
    attrs = {"adj_x": adj_x, "adj_y": adj_y}
    want = b.om.infos.get(node.output[0])
    squeeze = b.rank(x) == 1 or b.rank(w) == 1
    name = f"{node.output[0]}#bmm" if squeeze else node.output[0]
    out = b.emit("BATCH_MATMUL", [lhs, rhs], attrs, name)
    shape = b.g.tensors[out].shape
    if squeeze:
        if b.rank(x) == 1:
            shape = shape[:-2] + shape[-1:]
        if b.rank(w) == 1:
            shape = shape[:-1]
        if want is not None and want.shape is not None:
            shape = want.shape
        out = b.emit("RESHAPE", [out], {"shape": tuple(shape)}, node.output[0], suffix="squeeze")
    b.bind(node.output[0], out, L.identity(len(b.g.tensors[out].shape)))
