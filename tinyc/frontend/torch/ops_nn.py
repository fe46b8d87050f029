"""Layers with weights and windows: convolution, linear / matrix products (BATCH_MATMUL when
both operands are run-time tensors), batch norm, layer norm, pooling, softmax."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from tinyc.errors import UnsupportedError
from tinyc.frontend.torch.ops_math import binary_const
from tinyc.frontend.torch.registry import handles, target_name
from tinyc.frontend.torch.values import NHWC, Act, Value, View, is_tensor, pair
from tinyc.ir.ops import get_op

if TYPE_CHECKING:
    from tinyc.frontend.torch.converter import Converter


def _conv_pads(padding: Any, k: tuple[int, int], d: tuple[int, int]) -> tuple[int, int, int, int]:
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            th, tw = d[0] * (k[0] - 1), d[1] * (k[1] - 1)
            return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
        raise UnsupportedError(f"padding {padding!r}")
    ph, pw = pair(padding)
    return (ph, ph, pw, pw)


@handles("conv2d", "conv1d", "convolution", "_convolution")
def _conv(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    x, w, b = a["input"], a["weight"], a.get("bias")
    if not isinstance(w, np.ndarray) or (b is not None and not isinstance(b, np.ndarray)):
        raise UnsupportedError("convolution weights and bias must be constants")
    if a.get("transposed"):
        raise UnsupportedError("transposed convolution is not supported")
    if any(int(p) for p in np.atleast_1d(a.get("output_padding") or 0)):
        raise UnsupportedError("output_padding is not supported")
    groups = int(a.get("groups", 1))
    one_d = w.ndim == 3
    stride, dilation, padding = a["stride"], a["dilation"], a["padding"]
    if one_d:  # Conv1d: an [N, 1, L, C] CONV_2D
        w = w[:, :, None, :]
        s1, d1 = pair(stride)[0], pair(dilation)[0]
        stride, dilation = (1, s1), (1, d1)
        padding = padding if isinstance(padding, str) else (0, pair(padding)[0])
        src = c.layout(x, (0, 2, 1))
        n, length, ch = c.g.tensors[src.name].shape
        xin = c.emit("RESHAPE", [src.name], f"{src.name}_4d", {"shape": (n, 1, length, ch)})
    else:
        xin = c.nhwc(x, "conv2d").name
    k = (w.shape[2], w.shape[3])
    s, d = pair(stride), pair(dilation)
    attrs = {"stride": s, "dilation": d, "pads": _conv_pads(padding, k, d)}
    cin = c.g.tensors[xin].shape[3]
    bias = b if b is not None else np.zeros(w.shape[0], np.float32)
    base = node.name
    if groups == 1:
        wt = c.const(np.ascontiguousarray(w.transpose(0, 2, 3, 1)), f"{base}_weight")
        kind = "CONV_2D"
    elif groups == cin and w.shape[1] == 1:
        wt = c.const(np.ascontiguousarray(w.transpose(1, 2, 3, 0)), f"{base}_weight")
        kind = "DEPTHWISE_CONV_2D"
        attrs["depth_multiplier"] = w.shape[0] // cin
    else:
        # Grouped: TFLM's CONV_2D takes filters with cin / groups input channels as they are
        # (one SPLIT_V + CONCATENATION per group would exceed TFLM's 10 concat inputs).
        wt = c.const(np.ascontiguousarray(w.transpose(0, 2, 3, 1)), f"{base}_weight")
        kind = "CONV_2D"
    bt = c.const(np.asarray(bias, np.float32), f"{base}_bias")
    out = c.emit(kind, [xin, wt, bt], base, attrs)
    return _conv_result(c, out, base, one_d)


def _conv_result(c: Converter, out: str, base: str, one_d: bool) -> Act:
    if one_d:
        n, _, length, ch = c.g.tensors[out].shape
        conv = c.producer[out]
        out = c.emit("RESHAPE", [out], f"{base}_3d", {"shape": (n, length, ch)})
        c.producer[out] = conv  # BatchNorm1d folds through the reshape (channels stay last)
        return c.act_from(out, (0, 2, 1))
    return c.act_from(out, NHWC)


def _fc(c: Converter, node: Any, x: Value, w: np.ndarray, b: np.ndarray | None) -> Act:
    src = c.layout(x, tuple(range(len(x.shape))))
    bias = b if b is not None else np.zeros(w.shape[0], np.float32)
    wt = c.const(np.ascontiguousarray(w), f"{node.name}_weight")
    bt = c.const(np.asarray(bias, np.float32), f"{node.name}_bias")
    attrs = {"keep_num_dims": len(src.shape) > 2}
    out = c.emit("FULLY_CONNECTED", [src.name, wt, bt], node.name, attrs)
    return c.act_from(out, tuple(range(len(c.g.tensors[out].shape))))


@handles("linear")
def _linear(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    w, b = a["weight"], a.get("bias")
    if not isinstance(w, np.ndarray) or (b is not None and not isinstance(b, np.ndarray)):
        raise UnsupportedError("linear weights and bias must be constants")
    return _fc(c, node, a["input"], w, b)


@handles("addmm")
def _addmm(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    b, x, wt = a["self"], a["mat1"], a["mat2"]
    if not isinstance(wt, np.ndarray) or not isinstance(b, np.ndarray):
        raise UnsupportedError("addmm needs constant weights and bias")
    beta, alpha = float(a.get("beta", 1)), float(a.get("alpha", 1))
    return _fc(c, node, x, wt.T * alpha, np.broadcast_to(b * beta, (wt.shape[1],)))


@handles("mm", "matmul")
def _mm(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    """A constant 2-D right operand: FULLY_CONNECTED; otherwise BATCH_MATMUL."""
    x, w = a["self"], a.get("mat2", a.get("other"))
    if isinstance(w, np.ndarray) and w.ndim == 2 and is_tensor(x) and len(x.shape) >= 2:
        return _fc(c, node, x, w.T, None)
    return batch_matmul(c, node, x, w)


@handles("bmm")
def _bmm(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    """A batch of products with one constant matrix (a decomposed layer's input
    projection over all time steps) is one FULLY_CONNECTED; anything else BATCH_MATMUL."""
    x, w = a["self"], a["mat2"]
    if isinstance(w, np.ndarray) and w.ndim == 3 and np.all(w == w[:1]) and is_tensor(x):
        return _fc(c, node, x, w[0].T, None)
    return batch_matmul(c, node, x, w)


def _bmm_operand(c: Converter, node: Any, v: Value, pos: int) -> tuple[str, bool, int]:
    """(IR tensor, adj flag, PyTorch rank) of a matmul operand: a layout that only swaps
    the last two dims is read as it is (the flag says so); 1-D operands get the unit dim
    matmul gives them (leading for the left, trailing for the right)."""
    if not is_tensor(v):
        arr = np.asarray(v, np.float32)
        rank = arr.ndim
        if rank == 1:
            arr = arr[None, :] if pos == 0 else arr[:, None]
        return c.const(np.ascontiguousarray(arr), f"{node.name}_operand{pos}"), False, rank
    x = c.materialize(v, tuple(range(len(v.shape))))
    rank = len(x.shape)
    if rank == 1:
        x = c.to_perm(x, (0,))
        shape = (1, x.shape[0]) if pos == 0 else (x.shape[0], 1)
        out = c.emit("RESHAPE", [x.name], f"{node.name}_as2d{pos}", {"shape": shape})
        return out, False, 1
    ident = tuple(range(rank))
    if x.perm == ident[:-2] + (rank - 1, rank - 2):
        return x.name, True, rank
    return c.to_perm(x, ident).name, False, rank


def batch_matmul(c: Converter, node: Any, x: Value, w: Value) -> Act:
    lhs, adj_x, rx = _bmm_operand(c, node, x, 0)
    rhs, adj_y, ry = _bmm_operand(c, node, w, 1)
    want = tuple(int(d) for d in node.meta["val"].shape)
    attrs = {"adj_x": adj_x, "adj_y": adj_y}
    squeeze = rx == 1 or ry == 1
    out = c.emit("BATCH_MATMUL", [lhs, rhs], f"{node.name}_bmm" if squeeze else node.name, attrs)
    if squeeze:
        out = c.emit("RESHAPE", [out], node.name, {"shape": want})
    return c.act_from(out, tuple(range(len(want))))


@handles("layer_norm", "native_layer_norm")
def _layer_norm(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    """(x - mean) / sqrt(var + eps) * weight + bias over the trailing normalized_shape
    dims, in the input's storage layout (float; IR ops MEAN, SUB, MUL, ADD, SQRT, DIV)."""
    x = c.materialize(a["input"])
    w, b = a.get("weight"), a.get("bias")
    for v in (w, b):
        if v is not None and not isinstance(v, np.ndarray):
            raise UnsupportedError("layer_norm weight and bias must be constants")
    k = len(a["normalized_shape"])
    rank = len(x.shape)
    dims = range(rank - k, rank)
    axes = tuple(sorted(x.perm.index(d) for d in dims))
    base = node.name
    attrs = {"axes": axes, "keep_dims": True}
    ones = (1,) * rank
    eps = c.const(np.full(ones, float(a["eps"]), np.float32), f"{base}_eps")
    mean = c.emit("MEAN", [x.name], f"{base}_mean", attrs)
    d = c.emit("SUB", [x.name, mean], f"{base}_centered")
    var = c.emit("MEAN", [c.emit("MUL", [d, d], f"{base}_squared")], f"{base}_var", attrs)
    std = c.emit("SQRT", [c.emit("ADD", [var, eps], f"{base}_var_eps")], f"{base}_std")
    y: Value = c.act_from(c.emit("DIV", [d, std], f"{base}_normalized"), x.perm)
    if w is not None:
        y = binary_const(c, node, "MUL", y, w, "weight")
    if b is not None:
        y = binary_const(c, node, "ADD", y, b, "bias")
    if target_name(node) == "native_layer_norm":
        return (y, None, None)
    return y


def _bn_affine(a: dict[str, Value], channels: int) -> tuple[np.ndarray, np.ndarray]:
    w, b = a.get("weight"), a.get("bias")
    mean, var = a.get("running_mean"), a.get("running_var")
    if mean is None or var is None:
        raise UnsupportedError("batch norm without running statistics")
    for v in (w, b, mean, var):
        if v is not None and not isinstance(v, np.ndarray):
            raise UnsupportedError("batch norm parameters must be constants")
    inv = 1.0 / np.sqrt(var.astype(np.float64) + float(a["eps"]))
    scale = inv * (w.astype(np.float64) if w is not None else 1.0)
    shift = (b.astype(np.float64) if b is not None else 0.0) - mean * scale
    return np.broadcast_to(scale, (channels,)), np.broadcast_to(shift, (channels,))


def _fold_into_producer(c: Converter, x: Act, scale: np.ndarray, shift: np.ndarray) -> bool:
    """Fold a per-channel affine into the conv / FC that alone reads into ``x``."""
    node = c.producer.get(x.name)
    if node is None or c.fx_users.get(x.name) != 1 or x.name in c.g.outputs:
        return False
    op = get_op(node.op)
    if op.weight_input is None or node.attrs.get("activation", "NONE") != "NONE":
        return False
    if len(x.shape) < 2 or x.perm[-1] != 1:  # the channel (dim 1) must be the last axis
        return False
    w = c.g.tensors[node.inputs[op.weight_input]]
    b = c.g.tensors[node.inputs[op.bias_input]]
    shape = [1] * w.data.ndim
    shape[op.weight_axis] = -1
    w.data = (w.data * scale.reshape(shape)).astype(np.float32)
    b.data = (b.data * scale + shift).astype(np.float32)
    return True


def _is_subband_split(v: View) -> bool:
    """``[N, C, F, T]`` viewed as ``[N, C*S, F/S, T]``: SubSpectralNorm's sub-bands."""
    if len(v.shape) != 4 or len(v.src.shape) != 4:
        return False
    n, ch, f, t = v.src.shape
    if v.shape[1] % ch or v.shape[0] != n or v.shape[3] != t:
        return False
    s = v.shape[1] // ch
    return s > 1 and f % s == 0 and v.shape[2] == f // s


def _subband_affine(c: Converter, node: Any, v: View, scale: np.ndarray, shift: np.ndarray) -> View:
    """A per-(channel, sub-band) affine as one per-channel DEPTHWISE_CONV_2D 1x1.

    The NHWC storage [N, F, T, C] regroups to [N, 1, F/S*T, S*C] (reshape, transpose of the
    sub-band axis next to the channels, reshape), so each (sub-band, channel) pair becomes a
    channel whose int8 weight gets its own per-channel scale: exact in float, and far more
    precise in int8 than a MUL by a per-tensor quantized [F, C] constant.
    """
    n, ch, f, t = v.src.shape
    s = v.shape[1] // ch
    fb = f // s
    x = c.to_perm(v.src, NHWC)
    base = node.name
    y = c.emit("RESHAPE", [x.name], f"{base}_bands", {"shape": (n, s, fb * t, ch)})
    y = c.emit("TRANSPOSE", [y], f"{base}_bands_last", {"perm": (0, 2, 1, 3)})
    y = c.emit("RESHAPE", [y], f"{base}_as_channels", {"shape": (n, 1, fb * t, s * ch)})
    # view channel c*S + s  ->  regrouped channel s*C + c
    k = np.asarray(scale, np.float32).reshape(ch, s).T.reshape(1, 1, 1, s * ch)
    b = np.asarray(shift, np.float32).reshape(ch, s).T.reshape(s * ch)
    w_name, b_name = c.const(k, f"{base}_weight"), c.const(b, f"{base}_bias")
    attrs = {"depth_multiplier": 1}
    y = c.emit("DEPTHWISE_CONV_2D", [y, w_name, b_name], base, attrs)
    y = c.emit("RESHAPE", [y], f"{base}_bands_split", {"shape": (n, fb * t, s, ch)})
    y = c.emit("TRANSPOSE", [y], f"{base}_bands_first", {"perm": (0, 2, 1, 3)})
    y = c.emit("RESHAPE", [y], f"{base}_out", {"shape": (n, f, t, ch)})
    return View(c.act_from(y, NHWC), v.shape)


@handles("batch_norm", "_native_batch_norm_legit_no_training", "native_batch_norm")
def _batch_norm(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    if a.get("training") is True:
        raise UnsupportedError("batch norm in training mode (call module.eval())")
    x = a["input"]
    shape = x.shape
    scale, shift = _bn_affine(a, shape[1])
    result: Value
    if isinstance(x, Act) and _fold_into_producer(c, x, scale, shift):
        result = x
    elif isinstance(x, View) and _is_subband_split(x):
        result = _subband_affine(c, node, x, scale, shift)
    else:
        bshape = (1, shape[1]) + (1,) * (len(shape) - 2)
        y = binary_const(c, node, "MUL", x, scale.reshape(bshape), "scale")
        result = binary_const(c, node, "ADD", y, shift.reshape(bshape), "shift")
    if target_name(node) != "batch_norm":
        return (result, None, None)  # the legit variants return (out, mean, rstd)
    return result


def _pool_geometry(
    c: Converter, x: Act, a: dict[str, Value], what: str
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int, int, int]]:
    k = pair(a["kernel_size"])
    stride = a.get("stride")
    s = k if not stride else pair(stride)
    ph, pw = pair(a.get("padding", 0))
    pads = [ph, ph, pw, pw]
    if a.get("ceil_mode"):
        _, h, w, _ = c.g.tensors[x.name].shape
        for i, (size, kk, ss) in enumerate(((h, k[0], s[0]), (w, k[1], s[1]))):
            p = pads[2 * i]
            out = -(-(size + 2 * p - kk) // ss) + 1
            if (out - 1) * ss >= size + p:
                out -= 1
            pads[2 * i + 1] += max(0, (out - 1) * ss + kk - (size + 2 * p))
    return k, s, (pads[0], pads[1], pads[2], pads[3])


@handles("max_pool2d", "max_pool2d_with_indices")
def _max_pool(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    x = c.nhwc(a["self"], "max_pool2d")
    if pair(a.get("dilation", 1)) != (1, 1):
        raise UnsupportedError("dilated max pooling")
    k, s, pads = _pool_geometry(c, x, a, "max_pool2d")
    out = c.emit("MAX_POOL_2D", [x.name], node.name, {"filter": k, "stride": s, "pads": pads})
    res = c.act_from(out, NHWC)
    return (res, None) if target_name(node) == "max_pool2d_with_indices" else res


@handles("avg_pool2d")
def _avg_pool(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    x = c.nhwc(a["self"], "avg_pool2d")
    if a.get("divisor_override") is not None:
        raise UnsupportedError("avg_pool2d with divisor_override")
    k, s, pads = _pool_geometry(c, x, a, "avg_pool2d")
    if any(pads) and a.get("count_include_pad", True):
        if a.get("ceil_mode"):
            raise UnsupportedError("avg_pool2d with ceil_mode and count_include_pad")
        t, b, l, r = pads
        paddings = ((0, 0), (t, b), (l, r), (0, 0))
        padded = c.emit("PAD", [x.name], f"{node.name}_pad", {"paddings": paddings, "value": 0})
        x, pads = c.act_from(padded, NHWC), (0, 0, 0, 0)
    attrs = {"filter": k, "stride": s, "pads": pads}
    return c.act_from(c.emit("AVERAGE_POOL_2D", [x.name], node.name, attrs), NHWC)


@handles("softmax", "_softmax")
def _softmax(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    x = c.materialize(a["self"])
    dim = int(a["dim"]) % len(x.shape)
    if x.perm[-1] != dim:
        order = tuple(d for d in x.perm if d != dim) + (dim,)
        x = c.to_perm(x, order)
    return c.act_from(c.emit("SOFTMAX", [x.name], node.name, {"beta": 1.0}), x.perm)
