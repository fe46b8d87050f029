"""Sliding-window geometry shared by convolutions and pooling (NHWC)."""

from __future__ import annotations

import numpy as np

from tinyc.errors import TinycError


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TFLite SAME padding: (before, after); the odd extra pixel goes after."""
    eff = (kernel - 1) * dilation + 1
    out = (size + stride - 1) // stride
    total = max(0, (out - 1) * stride + eff - size)
    return total // 2, total - total // 2


def out_size(size: int, kernel: int, stride: int, dilation: int, before: int, after: int) -> int:
    eff = (kernel - 1) * dilation + 1
    n = (size + before + after - eff) // stride + 1
    return n


def window_out_shape(
    name: str,
    in_hw: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    pads: tuple[int, int, int, int],
) -> tuple[int, int]:
    """Output (H, W) for explicit ``pads`` = (top, bottom, left, right)."""
    oh = out_size(in_hw[0], kernel[0], stride[0], dilation[0], pads[0], pads[1])
    ow = out_size(in_hw[1], kernel[1], stride[1], dilation[1], pads[2], pads[3])
    if oh <= 0 or ow <= 0 or min(stride) <= 0 or min(dilation) <= 0:
        raise TinycError(
            f"node {name!r}: window {list(kernel)} stride {list(stride)} does not fit input "
            f"{list(in_hw)}"
        )
    return oh, ow


def patches(
    x: np.ndarray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    pads: tuple[int, int, int, int],
    out_hw: tuple[int, int],
    pad_value: float | int = 0,
) -> np.ndarray:
    """im2col: (N, OH, OW, KH, KW, C) windows of NHWC ``x`` padded with ``pad_value``."""
    n, h, w, c = x.shape
    kh, kw = kernel
    sh, sw = stride
    dh, dw = dilation
    oh, ow = out_hw
    need_h = (oh - 1) * sh + (kh - 1) * dh + 1
    need_w = (ow - 1) * sw + (kw - 1) * dw + 1
    top, left = pads[0], pads[2]
    bottom = max(0, need_h - h - top)
    right = max(0, need_w - w - left)
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=pad_value)
    out = np.empty((n, oh, ow, kh, kw, c), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            y0, x0 = i * dh, j * dw
            out[:, :, :, i, j, :] = xp[
                :, y0 : y0 + (oh - 1) * sh + 1 : sh, x0 : x0 + (ow - 1) * sw + 1 : sw, :
            ]
    return out


def valid_mask(
    hw: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pads: tuple[int, int, int, int],
    out_hw: tuple[int, int],
) -> np.ndarray:
    """(1, OH, OW, KH, KW, 1) booleans: which window taps fall inside the input."""
    ones = np.ones((1, hw[0], hw[1], 1), dtype=np.int8)
    return patches(ones, kernel, stride, (1, 1), pads, out_hw, 0).astype(bool)
