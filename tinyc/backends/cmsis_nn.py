"""CMSIS-NN, the library, as tinyc's backends use it: the release tinyc pins, how its s8
wrappers pick a kernel, and the scratch ("ctx") buffer each asks for.

Shared by the C backend (``--kernels cmsis-nn``, which calls CMSIS-NN directly and plans its
buffers into the arena) and the TFLM backend (whose arena holds them). The size functions
mirror CMSIS-NN's ``*_get_buffer_size`` functions for one build ``variant``:

* ``"plain"``: neither ARM_MATH_DSP nor ARM_MATH_MVEI (Cortex-M0+, and any host build),
* ``"dsp"``: ARM_MATH_DSP (Cortex-M4, M7, M33),
* ``"mve"``: ARM_MATH_MVEI (Cortex-M55, M85; ARM_MATH_DSP is defined too, MVE wins).

CMSIS-NN derives both macros from the compiler (``__ARM_FEATURE_DSP``, ``__ARM_FEATURE_MVE``
in arm_nn_math_types.h), so the variant follows the -mcpu flags. Sizes are those of a GCC
build (two CMSIS-NN buffers depend on the compiler: the 1x1 fast convolution asks for
``4 * C_IN`` bytes only under armclang, and the depthwise-to-convolution rewrite on MVE
applies from 1 output channel under GCC, 8 under armclang). Checked against CMSIS-NN's C
functions in tests/test_cmsisnn_kernels.py and tests/test_tflm_backend.py.
"""

from __future__ import annotations

from dataclasses import dataclass

#: CMSIS-NN commit tinyc builds against: the one TFLM 90b983c2 pins (see the TFLM backend);
#: the sizes below were checked against it
COMMIT = "4ab83cc3cc98fb85ed6dafb55e8ca02f1628dcae"
URL = f"https://github.com/ARM-software/CMSIS-NN/archive/{COMMIT}.zip"
#: the archive's MD5, as TFLM's cmsis_nn_download.sh checks it
URL_MD5 = "c960031e7d10cf31c477fb34ef460106"

VARIANTS = ("plain", "dsp", "mve")
#: CH_IN_BLOCK_MVE: channels the MVE depthwise kernel handles per pass
CH_IN_BLOCK_MVE = 124
#: CONVERT_DW_CONV_WITH_ONE_INPUT_CH_AND_OUTPUT_CH_ABOVE_THRESHOLD under GCC
DW_TO_CONV_THRESHOLD = 1


@dataclass(frozen=True)
class Dims:
    """cmsis_nn_dims."""

    n: int
    h: int
    w: int
    c: int


@dataclass(frozen=True)
class ConvParams:
    """The geometry fields of cmsis_nn_conv_params / cmsis_nn_dw_conv_params, as (h, w):
    ``padding`` is the top and left padding (CMSIS-NN infers the rest from the output)."""

    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int] = (1, 1)


def _check(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown CMSIS-NN variant {variant!r} (one of {', '.join(VARIANTS)})")


def _round_up(n: int, m: int) -> int:
    return (n + m - 1) // m * m


# -- the s8 convolution wrapper's dispatch (arm_nnsupportfunctions.h) ----------------------


def is_convolve_1x1(p: ConvParams, inp: Dims, f: Dims) -> bool:
    """arm_nn_is_convolve_1x1: the wrapper runs arm_convolve_1x1_s8(_fast)."""
    return p.padding == (0, 0) and (f.h, f.w) == (1, 1) and p.dilation == (1, 1) and inp.c == f.c


def is_convolve_1x1_fast(p: ConvParams) -> bool:
    """arm_nn_is_convolve_1x1_fast: unit stride (after is_convolve_1x1)."""
    return p.stride == (1, 1)


def is_convolve_1_x_n(p: ConvParams, inp: Dims, f: Dims) -> bool:
    """arm_nn_is_convolve_1_x_n: the wrapper runs arm_convolve_1_x_n_s8."""
    return (
        inp.h == 1
        and p.dilation[1] == 1
        and f.h == 1
        and (p.stride[1] * inp.c) % 4 == 0
        and inp.c == f.c
    )


# -- buffer sizes ---------------------------------------------------------------------------


def convolve_s8(variant: str, inp: Dims, f: Dims) -> int:
    """arm_convolve_s8_get_buffer_size: im2col columns (4 on MVE, 2 as int16 elsewhere)."""
    _check(variant)
    cols = inp.c * f.w * f.h
    if variant == "mve":
        return 4 * _round_up(cols, 16)
    return 2 * _round_up(cols, 4) * 2


def convolve_1_x_n_s8(variant: str, p: ConvParams, inp: Dims, f: Dims, out: Dims) -> int:
    """arm_convolve_1_x_n_s8_get_buffer_size: the padded edge columns on MVE."""
    if variant != "mve":
        return convolve_s8(variant, inp, f)
    pad, stride = p.padding[1], p.stride[1]
    total = (out.w - 1) * stride + f.w - inp.w
    asym = _c_mod(total, 2)
    right = max(1, _c_div(pad + asym + stride - 1, stride)) if pad + asym != 0 else 0
    left = max(1, _c_div(pad + stride - 1, stride)) if pad != 0 else 0
    middle = max(out.w - (right + left), 0)
    if right + middle + left != out.w:
        return convolve_s8("mve", inp, f)
    pad_left = pad * inp.c
    pad_right = right * inp.c if asym else pad_left
    elems_left = f.w * inp.c
    return max(elems_left + pad_left, elems_left - inp.c + pad_right)


def convolve_wrapper_s8(variant: str, p: ConvParams, inp: Dims, f: Dims, out: Dims) -> int:
    """arm_convolve_wrapper_s8_get_buffer_size (GCC build)."""
    _check(variant)
    if is_convolve_1x1(p, inp, f):
        return 0  # the fast path's buffer is non-zero only under armclang; strided needs none
    if is_convolve_1_x_n(p, inp, f):
        return convolve_1_x_n_s8(variant, p, inp, f, out)
    return convolve_s8(variant, inp, f)


def depthwise_conv_s8_opt(variant: str, inp: Dims, f: Dims) -> int:
    """arm_depthwise_conv_s8_opt_get_buffer_size."""
    _check(variant)
    if variant == "mve":
        return 4 * CH_IN_BLOCK_MVE * f.w * f.h
    if variant == "dsp":
        return inp.c * f.w * f.h * 2
    return 0


def depthwise_to_conv(inp: Dims, out: Dims) -> bool:
    """On MVE the depthwise wrapper runs a one-channel input as an ordinary convolution."""
    return inp.c == 1 and out.c > DW_TO_CONV_THRESHOLD


def depthwise_as_conv_filter(f: Dims) -> Dims:
    """The filter dimensions of that convolution ([1, H, W, C_OUT] -> [C_OUT, H, W, 1])."""
    return Dims(f.c, f.h, f.w, f.n)


def is_depthwise_3x3(p: ConvParams, inp: Dims, f: Dims, out: Dims) -> bool:
    """The wrapper runs arm_depthwise_conv_3x3_s8 (not on MVE)."""
    return (
        is_depthwise_opt(p, inp, out)
        and (f.h, f.w) == (3, 3)
        and p.padding[0] <= 1
        and p.padding[1] <= 1
    )


def is_depthwise_opt(p: ConvParams, inp: Dims, out: Dims) -> bool:
    """The wrapper runs arm_depthwise_conv_s8_opt (or the 3x3 kernel off MVE)."""
    return inp.c == out.c and inp.n == 1 and p.dilation == (1, 1)


def depthwise_conv_wrapper_s8(variant: str, p: ConvParams, inp: Dims, f: Dims, out: Dims) -> int:
    """arm_depthwise_conv_wrapper_s8_get_buffer_size as built for ``variant`` (GCC). (Its
    host-callable ``_mve`` twin returns the same: the two cases exclude each other.)"""
    _check(variant)
    if variant == "mve" and depthwise_to_conv(inp, out):
        conv_f = depthwise_as_conv_filter(f)
        return convolve_wrapper_s8("mve", p, inp, conv_f, out) + f.n * f.h * f.w * f.c
    if is_depthwise_opt(p, inp, out):
        if variant != "mve" and is_depthwise_3x3(p, inp, f, out):
            return 0
        return depthwise_conv_s8_opt(variant, inp, f)
    return 0


def fully_connected_s8(variant: str, f: Dims) -> int:
    """arm_fully_connected_s8_get_buffer_size: MVE's kernel sums (int32 per output)."""
    _check(variant)
    return f.c * 4 if variant == "mve" else 0


def avgpool_s8(variant: str, out_w: int, channels: int) -> int:
    """arm_avgpool_s8_get_buffer_size: one int32 accumulator per channel with DSP."""
    _check(variant)
    return channels * 4 if variant == "dsp" else 0


def _c_div(a: int, b: int) -> int:
    """C's integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _c_mod(a: int, b: int) -> int:
    """C's remainder (the sign of the dividend)."""
    return a - b * _c_div(a, b)
