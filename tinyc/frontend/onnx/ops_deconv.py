"""ConvTranspose (1-D and 2-D, grouped, dilated).

Stride 1 is an ordinary convolution with the kernel flipped and the padding mirrored
(``dilation * (kernel - 1) - pad``): it becomes CONV_2D or DEPTHWISE_CONV_2D through the
Conv translator. Larger strides become TRANSPOSE_CONV (OHWI filter, dilation spelled out
as zero taps).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from tinyc.frontend.onnx.builder import Builder
from tinyc.frontend.onnx.ops_nn import _bind_spatial, _out, _spatial_input, conv
from tinyc.frontend.onnx.registry import inputs, onnx_op


def _geometry(b: Builder, node: onnx.NodeProto, n: int) -> dict[str, list[int]]:
    """strides, dilations, pads (begin..., end...) and output_padding of an n-D node."""
    a = b.attrs(node)
    if a.get("auto_pad", "NOTSET") not in ("NOTSET", "", "VALID"):
        raise b.unsupported(f"auto_pad {a['auto_pad']!r} (explicit pads only)")
    if a.get("output_shape"):
        raise b.unsupported("output_shape (give pads and output_padding instead)")
    geo = {
        "strides": list(a.get("strides", [1] * n)),
        "dilations": list(a.get("dilations", [1] * n)),
        "pads": list(a.get("pads", [0] * 2 * n)),
        "output_padding": list(a.get("output_padding", [0] * n)),
    }
    if a.get("auto_pad") == "VALID":
        geo["pads"] = [0] * 2 * n
    if any(len(v) != (2 * n if k == "pads" else n) for k, v in geo.items()):
        raise b.unsupported(f"attributes for {n} spatial axes expected")
    if min(geo["pads"]) < 0 or min(geo["strides"] + geo["dilations"]) < 1:
        raise b.unsupported("negative pads or non-positive strides")
    return geo


def _float_weights(b: Builder, name: str) -> np.ndarray:
    if name in b.qconsts:
        raise b.unsupported("quantized (DequantizeLinear) ConvTranspose weights")
    return np.asarray(b.const(name, "weights"), np.float32)


def conv_weights(w: np.ndarray, group: int) -> np.ndarray:
    """ConvTranspose weights (Cin, Cout/g, k...) as the equivalent Conv's (Cout, Cin/g, k...)
    with every spatial axis flipped."""
    cin, og = w.shape[0], w.shape[1]
    cg = cin // group
    k = w.shape[2:]
    grouped = w.reshape(group, cg, og, *k)
    out = np.swapaxes(grouped, 1, 2).reshape(group * og, cg, *k)
    return np.ascontiguousarray(np.flip(out, axis=tuple(range(2, 2 + len(k)))))


def ohwi_weights(w: np.ndarray, group: int, dilation: tuple[int, int]) -> np.ndarray:
    """ConvTranspose weights (Cin, Cout/g, kh, kw) as TRANSPOSE_CONV's (Cout, KH, KW, Cin/g)
    with zero taps between the dilated ones."""
    cin, og, kh, kw = w.shape
    cg = cin // group
    dh, dw = dilation
    full = np.zeros((cin, og, (kh - 1) * dh + 1, (kw - 1) * dw + 1), np.float32)
    full[:, :, ::dh, ::dw] = w
    grouped = full.reshape(group, cg, og, *full.shape[2:])
    ohwi = np.transpose(grouped, (0, 2, 3, 4, 1))  # (g, og, KH, KW, cg)
    return np.ascontiguousarray(ohwi.reshape(group * og, *full.shape[2:], cg))


@onnx_op("ConvTranspose")
def conv_transpose(b: Builder, node: onnx.NodeProto) -> None:
    x, w, bias = node.input[0], node.input[1], inputs(node, 2)
    if not b.is_const(w) or (bias and not b.is_const(bias)):
        raise b.unsupported("weights and bias must be constants")
    wt = _float_weights(b, w)
    n = wt.ndim - 2
    if n not in (1, 2):
        raise b.unsupported(f"{n}-D ConvTranspose (1-D and 2-D only)")
    group = int(b.attrs(node).get("group", 1))
    cin = b.shape(x)[1]
    if cin != wt.shape[0] or cin % group:
        raise b.unsupported(f"weights {list(wt.shape)} for {cin} channels in {group} groups")
    geo = _geometry(b, node, n)
    k = list(wt.shape[2:])
    d, pads, extra = geo["dilations"], geo["pads"], geo["output_padding"]
    mirrored = [d[i] * (k[i] - 1) - pads[i] for i in range(n)] + [
        d[i] * (k[i] - 1) - pads[n + i] + extra[i] for i in range(n)
    ]
    if all(s == 1 for s in geo["strides"]) and min(mirrored) >= 0:
        _as_conv(b, node, wt, group, geo, mirrored)
    else:
        _as_transpose_conv(b, node, wt, group, geo)


def _as_conv(b: Builder, node: onnx.NodeProto, wt: np.ndarray, group: int, geo, pads) -> None:
    name = f"{node.input[1]}#conv"
    b.consts[name] = conv_weights(wt, group)
    n = wt.ndim - 2
    ins = [node.input[0], name] + ([node.input[2]] if inputs(node, 2) else [])
    synthetic = helper.make_node(
        "Conv",
        ins,
        [node.output[0]],
        group=group,
        kernel_shape=list(wt.shape[2:]),
        strides=[1] * n,
        dilations=geo["dilations"],
        pads=pads,
    )
    conv(b, synthetic)


def _as_transpose_conv(b: Builder, node: onnx.NodeProto, wt: np.ndarray, group: int, geo):
    xin, _, one_d = _spatial_input(b, node.input[0])
    n = wt.ndim - 2
    if one_d:  # (Cin, og, K) runs as (Cin, og, 1, K)
        wt = wt[:, :, None, :]
        geo = {
            "strides": [1, *geo["strides"]],
            "dilations": [1, *geo["dilations"]],
            "pads": [0, geo["pads"][0], 0, geo["pads"][1]],
            "output_padding": [0, *geo["output_padding"]],
        }
    elif n != 2:
        raise b.unsupported(f"{n}-D ConvTranspose")
    p, extra = geo["pads"], geo["output_padding"]
    weights = b.const_tensor(
        ohwi_weights(wt, group, tuple(geo["dilations"])), f"{node.input[1]}#ohwi"
    )
    ins = [xin, weights]
    bias = inputs(node, 2)
    if bias:
        ins.append(b.operand(bias, (0,)))
    attrs = {
        "stride": tuple(geo["strides"]),
        "pads": (p[0], p[2] - extra[0], p[1], p[3] - extra[1]),
    }
    out = b.emit("TRANSPOSE_CONV", ins, attrs, _out(node.output[0], one_d))
    _bind_spatial(b, node.output[0], out, one_d)
