"""Resize and Upsample.

Nearest: the source index of every output row / column follows onnxruntime's arithmetic
(float32 coordinates, each coordinate_transformation_mode and nearest_mode, clamped), and
each resized axis becomes one GATHER of those indices: exact for every mode, float and
int8 alike. Linear on the two spatial axes of an NCHW input: RESIZE_BILINEAR, whose
align_corners / half_pixel_centers cover ONNX's align_corners, asymmetric, half_pixel and
pytorch_half_pixel (outputs larger than one) when the output size is the input size times
the scale. Cubic, tf_crop_and_resize and antialiased downsampling are refused.
"""

from __future__ import annotations

import numpy as np
import onnx

from tinyc.frontend.onnx import layout as L
from tinyc.frontend.onnx.builder import Builder
from tinyc.frontend.onnx.registry import inputs, onnx_op
from tinyc.ir.fixedpoint import round_half_away

F32 = np.float32


def _floats(b: Builder, name: str, what: str) -> list[float] | None:
    if not name:
        return None
    data = np.asarray(b.const(name, what))
    return [float(v) for v in data.reshape(-1)] if data.size else None


def _sizes_and_scales(b: Builder, node: onnx.NodeProto) -> tuple[list[int], list[float], bool]:
    """Per ONNX axis: the output size and the scale onnxruntime computes with; True when
    the file gives sizes (the scales are then output / input)."""
    shape = b.shape(node.input[0])
    rank = len(shape)
    a = b.attrs(node)
    if node.op_type == "Upsample" or b.opset < 11:
        scales = a.get("scales") if b.opset < 9 else _floats(b, inputs(node, 1), "scales")
        sizes = None
    else:
        scales = _floats(b, inputs(node, 2), "scales")
        sname = inputs(node, 3)
        sizes = [int(v) for v in np.asarray(b.const(sname, "sizes")).reshape(-1)] if sname else None
    axes = list(range(rank))
    if b.opset >= 18 and "axes" in a:
        axes = [int(i) % rank for i in a["axes"]]
    if sizes is not None:
        if a.get("keep_aspect_ratio_policy", "stretch") != "stretch":
            raise b.unsupported(f"keep_aspect_ratio_policy {a['keep_aspect_ratio_policy']!r}")
        if len(sizes) != len(axes):
            raise b.unsupported(f"{len(sizes)} sizes for {len(axes)} axes")
        out = list(shape)
        for ax, s in zip(axes, sizes, strict=True):
            out[ax] = s
        return out, [float(F32(o) / F32(i)) for o, i in zip(out, shape, strict=True)], True
    if scales is None or len(scales) != len(axes):
        raise b.unsupported("neither scales nor sizes for every axis")
    full = [1.0] * rank
    for ax, s in zip(axes, scales, strict=True):
        full[ax] = float(F32(s))
    if min(full) <= 0:
        raise b.unsupported(f"scales {full}")
    out = [int(F32(s) * F32(d)) for s, d in zip(full, shape, strict=True)]
    return out, full, False


def _coordinate(b: Builder, mode: str, x: np.ndarray, scale: float, n_in: int, n_out: int):
    """onnxruntime's original coordinate (float32) of output positions ``x``."""
    s, xf = F32(scale), x.astype(F32)
    if mode == "half_pixel":
        return (xf + F32(0.5)) / s - F32(0.5)
    if mode == "pytorch_half_pixel":
        return (xf + F32(0.5)) / s - F32(0.5) if n_out > 1 else np.zeros_like(xf)
    if mode == "align_corners":
        if n_out == 1:
            return np.zeros_like(xf)
        return xf * F32(n_in - 1) / F32(n_out - 1)
    if mode == "asymmetric":
        return xf / s
    if mode == "tf_half_pixel_for_nn":
        return (xf + F32(0.5)) / s
    if mode == "half_pixel_symmetric":
        adjustment = F32(n_out) / (s * F32(n_in))
        offset = F32(n_in) / F32(2) * (F32(1) - adjustment)
        return offset + (xf + F32(0.5)) / s - F32(0.5)
    raise b.unsupported(f"coordinate_transformation_mode {mode!r}")


def _nearest(b: Builder, mode: str, c: np.ndarray, downsample: bool) -> np.ndarray:
    if mode == "simple":  # Resize before opset 11, Upsample
        return np.ceil(c) if downsample else np.trunc(c)
    if mode == "round_prefer_floor":
        return np.where(c == np.trunc(c) + F32(0.5), np.floor(c), round_half_away(c))
    if mode == "round_prefer_ceil":
        return round_half_away(c)
    if mode == "floor":
        return np.floor(c)
    if mode == "ceil":
        return np.ceil(c)
    raise b.unsupported(f"nearest_mode {mode!r}")


@onnx_op("Resize", "Upsample")
def resize(b: Builder, node: onnx.NodeProto) -> None:
    a = b.attrs(node)
    x = node.input[0]
    if b.is_const(x):
        raise b.unsupported("a constant input (nothing to compute)")
    shape = b.shape(x)
    out, scales, sized = _sizes_and_scales(b, node)
    legacy = node.op_type == "Upsample" or b.opset < 11
    coord = "asymmetric" if legacy else a.get("coordinate_transformation_mode", "half_pixel")
    mode = a.get("mode", "nearest")
    if a.get("antialias", 0) and any(o < i for o, i in zip(out, shape, strict=True)):
        raise b.unsupported("antialiased downsampling")
    if out == list(shape):
        b.values[node.output[0]] = b.value(x)
        return
    if mode == "nearest":
        nearest = "simple" if legacy else a.get("nearest_mode", "round_prefer_floor")
        _resize_nearest(b, node, out, scales, coord, nearest)
    elif mode in ("linear", "bilinear"):
        _resize_bilinear(b, node, out, None if sized else scales, coord)
    else:
        raise b.unsupported(f"mode {mode!r} (nearest and linear only)")


def _resize_nearest(b: Builder, node, out, scales, coord: str, nearest: str) -> None:
    x = node.input[0]
    shape = b.shape(x)
    v = b.value(x)
    cur = v.ir
    t = b.g.tensors[cur]
    changed = [ax for ax in range(len(shape)) if out[ax] != shape[ax] or scales[ax] != 1.0]
    for k, ax in enumerate(changed):
        n_in, n_out = shape[ax], out[ax]
        c = _coordinate(b, coord, np.arange(n_out), scales[ax], n_in, n_out)
        idx = _nearest(b, nearest, c, scales[ax] < 1.0).astype(np.int64)
        idx = np.clip(idx, 0, n_in - 1).astype(np.int32)
        if np.array_equal(idx, np.arange(n_in)):
            continue
        last = k == len(changed) - 1
        name = node.output[0] if last else f"{node.output[0]}#axis{ax}"
        pos = b.const_tensor(idx, f"{node.output[0]}#rows{ax}")
        cur = b.emit(
            "GATHER", [cur, pos], {"axis": v.perm.index(ax)}, name, t.dtype, "gather", t.quant
        )
    b.bind(node.output[0], cur, v.perm)


def _resize_bilinear(b: Builder, node, out, scales, coord: str) -> None:
    x = node.input[0]
    shape = b.shape(x)
    if len(shape) != 4 or out[:2] != list(shape[:2]):
        raise b.unsupported("linear resizing of other than the two spatial axes of NCHW")
    if coord == "pytorch_half_pixel" and min(out[2:]) > 1:
        coord = "half_pixel"
    flags = {
        "align_corners": (True, False),
        "asymmetric": (False, False),
        "half_pixel": (False, True),
    }.get(coord)
    if flags is None:
        raise b.unsupported(f"linear resizing with coordinate_transformation_mode {coord!r}")
    if coord != "align_corners" and scales is not None:  # given sizes: in / out as TFLite
        for ax in (2, 3):
            if F32(scales[ax]) * F32(shape[ax]) != F32(out[ax]):
                raise b.unsupported(
                    f"linear resizing {shape[ax]} -> {out[ax]} with scale {scales[ax]:g} "
                    "(the output size must be the input size times the scale)"
                )
    xin = b.as_layout(x, L.channel_last(4))
    t = b.g.tensors[xin]
    attrs = {"size": (out[2], out[3]), "align_corners": flags[0], "half_pixel_centers": flags[1]}
    y = b.emit("RESIZE_BILINEAR", [xin], attrs, node.output[0], t.dtype, None, t.quant)
    b.bind(node.output[0], y, L.channel_last(4))
