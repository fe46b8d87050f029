"""Resizing and rearranging NCHW images: upsample_nearest2d (and nearest-exact) as one
GATHER per resized axis with PyTorch's own float32 source indices (exact), upsample_bilinear2d
as RESIZE_BILINEAR (align_corners, or half-pixel centres otherwise, as PyTorch computes
them), pixel_shuffle / pixel_unshuffle in NHWC, adaptive_avg_pool2d (AVERAGE_POOL_2D when
the sizes divide, otherwise PyTorch's uneven windows as slices averaged per axis)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from tinyc.errors import UnsupportedError
from tinyc.frontend.torch.registry import handles, target_name
from tinyc.frontend.torch.values import NHWC, Act, Value, pair
from tinyc.ir.tensor import Tensor

if TYPE_CHECKING:
    from tinyc.frontend.torch.converter import Converter

F32 = np.float32


def _out_hw(node: Any) -> tuple[int, int]:
    shape = node.meta["val"].shape
    return int(shape[2]), int(shape[3])


def _scales(a: dict[str, Value]) -> tuple[float | None, float | None]:
    sf = a.get("scale_factors")
    if sf is not None:
        return float(sf[0]), float(sf[1])
    return a.get("scales_h"), a.get("scales_w")


def _ratio(n_in: int, n_out: int, scale: float | None) -> np.float32:
    """compute_scales_value: 1 / scale when given, else in / out (float32)."""
    if scale is not None and scale > 0:
        return F32(1.0 / scale)
    return F32(n_in) / F32(n_out)


def nearest_index(n_in: int, n_out: int, scale: float | None, exact: bool) -> np.ndarray:
    """PyTorch's nearest (or nearest-exact) source index per output position."""
    if n_out == n_in:
        return np.arange(n_out)
    if n_out == 2 * n_in and not exact:
        return np.arange(n_out) >> 1
    r = _ratio(n_in, n_out, scale)
    pos = np.arange(n_out).astype(F32) + (F32(0.5) if exact else F32(0))
    return np.minimum(np.floor(pos * r).astype(np.int64), n_in - 1)


@handles("upsample_nearest2d", "_upsample_nearest_exact2d")
def _upsample_nearest(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    x = c.nhwc(a["input"] if "input" in a else a["self"], "upsample_nearest2d")
    _, h, w, _ = c.g.tensors[x.name].shape
    oh, ow = _out_hw(node)
    sh, sw = _scales(a)
    exact = target_name(node) == "_upsample_nearest_exact2d"
    cur = x.name
    for axis, n_in, n_out, s in ((1, h, oh, sh), (2, w, ow, sw)):
        idx = nearest_index(n_in, n_out, s, exact)
        if np.array_equal(idx, np.arange(n_in)):
            continue
        pos = c.g.unique_name(f"{node.name}_rows{axis}")
        c.g.add_tensor(Tensor(pos, idx.shape, "int32", idx.astype(np.int32)))
        cur = c.emit("GATHER", [cur, pos], node.name, {"axis": axis})
    return c.act_from(cur, NHWC)


@handles("upsample_bilinear2d")
def _upsample_bilinear(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    x = c.nhwc(a["input"] if "input" in a else a["self"], "upsample_bilinear2d")
    _, h, w, _ = c.g.tensors[x.name].shape
    oh, ow = _out_hw(node)
    align = bool(a.get("align_corners", False))
    if not align:
        for n_in, n_out, s in zip((h, w), (oh, ow), _scales(a), strict=True):
            if _ratio(n_in, n_out, s) != F32(n_in) / F32(n_out):
                raise UnsupportedError(
                    f"bilinear resizing {n_in} -> {n_out} with scale factor {s:g} (the output "
                    "size must be the input size times the scale factor)"
                )
    attrs = {"size": (oh, ow), "align_corners": align, "half_pixel_centers": not align}
    return c.act_from(c.emit("RESIZE_BILINEAR", [x.name], node.name, attrs), NHWC)


def _chain(c: Converter, node: Any, x: Act, steps: list[tuple[str, dict]]) -> Act:
    cur = x.name
    for i, (kind, attrs) in enumerate(steps):
        cur = c.emit(kind, [cur], node.name if i == len(steps) - 1 else f"{node.name}_{i}", attrs)
    return c.act_from(cur, NHWC)


@handles("pixel_shuffle")
def _pixel_shuffle(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    """out[c, h*r + i, w*r + j] = in[c*r*r + i*r + j, h, w] (ONNX DepthToSpace CRD)."""
    x = c.nhwc(a["self"], "pixel_shuffle")
    r = int(a["upscale_factor"])
    n, h, w, ch = c.g.tensors[x.name].shape
    co = ch // (r * r)
    steps = [
        ("RESHAPE", {"shape": (n, h, w, co, r, r)}),
        ("TRANSPOSE", {"perm": (0, 1, 4, 2, 5, 3)}),
        ("RESHAPE", {"shape": (n, h * r, w * r, co)}),
    ]
    return _chain(c, node, x, steps)


@handles("pixel_unshuffle")
def _pixel_unshuffle(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    x = c.nhwc(a["self"], "pixel_unshuffle")
    r = int(a["downscale_factor"])
    n, h, w, ch = c.g.tensors[x.name].shape
    steps = [
        ("RESHAPE", {"shape": (n, h // r, r, w // r, r, ch)}),
        ("TRANSPOSE", {"perm": (0, 1, 3, 5, 2, 4)}),
        ("RESHAPE", {"shape": (n, h // r, w // r, ch * r * r)}),
    ]
    return _chain(c, node, x, steps)


def adaptive_windows(n_in: int, n_out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive pooling windows: [floor(i * in / out), ceil((i + 1) * in / out))."""
    return [((i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)) for i in range(n_out)]


@handles("adaptive_avg_pool2d", "_adaptive_avg_pool2d")
def _adaptive_avg_pool(c: Converter, node: Any, a: dict[str, Value]) -> Value:
    x = c.nhwc(a["self"], "adaptive_avg_pool2d")
    _, h, w, _ = c.g.tensors[x.name].shape
    oh, ow = pair(a["output_size"])
    if h % oh == 0 and w % ow == 0:
        k = (h // oh, w // ow)
        attrs = {"filter": k, "stride": k, "pads": (0, 0, 0, 0)}
        return c.act_from(c.emit("AVERAGE_POOL_2D", [x.name], node.name, attrs), NHWC)
    cur = x.name
    for axis, n_in, n_out in ((1, h, oh), (2, w, ow)):
        if n_in == n_out:
            continue
        parts = []
        for i, (start, end) in enumerate(adaptive_windows(n_in, n_out)):
            shape = c.g.tensors[cur].shape
            begin = [0] * 4
            stop = list(shape)
            begin[axis], stop[axis] = start, end
            attrs = {"begin": tuple(begin), "end": tuple(stop), "strides": (1, 1, 1, 1)}
            part = cur
            if (start, end) != (0, n_in):
                part = c.emit("STRIDED_SLICE", [cur], f"{node.name}_window{axis}_{i}", attrs)
            parts.append(
                c.emit(
                    "MEAN",
                    [part],
                    f"{node.name}_mean{axis}_{i}",
                    {"axes": (axis,), "keep_dims": True},
                )
            )
        cur = c.emit("CONCATENATION", parts, f"{node.name}_axis{axis}", {"axis": axis})
    return c.act_from(cur, NHWC)
