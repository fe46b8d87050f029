"""CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED (TFLite layouts: OHWI, 1HWC, [out, in])."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyc.errors import TinycError
from tinyc.ir.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops.base import (
    OpDef,
    Spec,
    activation_float,
    activation_range_quant,
    attr,
    clamp_cast,
    register,
)
from tinyc.ir.ops.window import patches, window_out_shape


@dataclass
class Requant:
    """Integer requantization of an accumulator: per output channel multiplier and shift,
    the input/output zero points and the fused-activation clamp."""

    multiplier: np.ndarray  # int64, one per output channel
    shift: np.ndarray  # int64
    input_zp: int
    output_zp: int
    act_min: int
    act_max: int

    def apply(self, acc: np.ndarray, dtype: str) -> np.ndarray:
        y = multiply_by_quantized_multiplier(acc, self.multiplier, self.shift) + self.output_zp
        return clamp_cast(y, self.act_min, self.act_max, dtype)


def per_channel_requant(node: Node, g: Graph, channels: int) -> Requant:
    """Multipliers as TFLM's PopulateConvolutionQuantizationParams computes them:
    double(input_scale) * double(filter_scale[c]) / double(output_scale)."""
    x, w, y = g.inp(node, 0), g.inp(node, 1), g.out(node)
    assert x and w and x.quant and w.quant and y.quant
    scales = w.quant.scale if w.quant.per_channel else np.repeat(w.quant.scale, channels)
    mult, shift = zip(
        *(
            quantize_multiplier(float(x.quant.s) * float(s) / float(y.quant.s))
            for s in scales.tolist()
        ),
        strict=True,
    )
    lo, hi = activation_range_quant(attr(node, "activation"), y)
    return Requant(
        np.array(mult, np.int64), np.array(shift, np.int64), x.quant.zp, y.quant.zp, lo, hi
    )


def _bias(node: Node, xs: list[np.ndarray | None], channels: int) -> np.ndarray:
    b = xs[2] if len(xs) > 2 else None
    return np.zeros(channels, np.int64) if b is None else b.astype(np.int64)


def _check_quant(node: Node, g: Graph) -> None:
    x, w, y = g.inp(node, 0), g.inp(node, 1), g.out(node)
    if x is None or w is None:
        raise TinycError(f"node {node.name!r} ({node.op}) needs an input and a weight tensor")
    if y.is_quantized:
        if x.dtype != "int8" or w.dtype != "int8" or y.dtype != "int8":
            raise TinycError(
                f"node {node.name!r} ({node.op}): {x.dtype} input with {w.dtype} weights "
                f"and {y.dtype} output is not supported (int8 or float32 only)"
            )
        if not (x.quant and w.quant):
            raise TinycError(f"node {node.name!r} ({node.op}): missing quantization parameters")
        b = g.inp(node, 2)
        if b is not None and b.dtype != "int32":
            raise TinycError(f"node {node.name!r} ({node.op}): bias must be int32, not {b.dtype}")
    elif x.dtype != "float32" or w.dtype != "float32":
        raise TinycError(
            f"node {node.name!r} ({node.op}): {x.dtype} input with {w.dtype} weights is not "
            "supported (hybrid models: dequantize the weights first)"
        )


class _Window(OpDef):
    weight_input = 1
    bias_input = 2
    attrs = {
        "stride": (1, 1),
        "dilation": (1, 1),
        "pads": (0, 0, 0, 0),
        "activation": "NONE",
    }

    def geometry(self, node: Node, g: Graph) -> tuple[tuple[int, int], ...]:
        kh, kw = self.kernel(node, g)
        return (
            (kh, kw),
            tuple(attr(node, "stride")),
            tuple(attr(node, "dilation")),
            tuple(attr(node, "pads")),
        )

    def kernel(self, node: Node, g: Graph) -> tuple[int, int]:
        w = g.inp(node, 1)
        assert w is not None
        return w.shape[1], w.shape[2]

    def out_channels(self, node: Node, g: Graph) -> int:
        raise NotImplementedError

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        x = g.inp(node, 0)
        assert x is not None
        if len(x.shape) != 4:
            raise TinycError(f"node {node.name!r} ({node.op}) needs a 4-D NHWC input")
        k, s, d, p = self.geometry(node, g)
        oh, ow = window_out_shape(node.name, x.shape[1:3], k, s, d, p)
        return [((x.shape[0], oh, ow, self.out_channels(node, g)), g.out(node).dtype)]

    def check(self, node: Node, g: Graph) -> None:
        _check_quant(node, g)

    def macs(self, node: Node, g: Graph) -> int:
        w = g.inp(node, 1)
        assert w is not None
        y = g.out(node)
        per_output = w.size // self.out_channels(node, g)
        return int(np.prod(y.shape)) * per_output


@register
class Conv2D(_Window):
    """CONV_2D; grouped when the filter has fewer input channels than the input (as in
    TFLM's reference kernel: groups = input channels / filter input channels)."""

    kind = "CONV_2D"

    def out_channels(self, node: Node, g: Graph) -> int:
        w = g.inp(node, 1)
        assert w is not None
        return w.shape[0]

    def groups(self, node: Node, g: Graph) -> int:
        x, w = g.inp(node, 0), g.inp(node, 1)
        assert x is not None and w is not None
        cin, cg, cout = x.shape[3], w.shape[3], w.shape[0]
        if cg <= 0 or cin % cg or cout % (cin // cg):
            raise TinycError(
                f"node {node.name!r}: CONV_2D filter {list(w.shape)} does not fit "
                f"{cin} input channels"
            )
        return cin // cg

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        specs = super().infer(node, g)
        self.groups(node, g)
        return specs

    def _acc(self, node: Node, g: Graph, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        """float64 accumulators (N*OH*OW, O); exact for int8 operands while |acc| < 2^53."""
        k, s, d, p = self.geometry(node, g)
        cols = patches(x, k, s, d, p, g.out(node).shape[1:3], 0.0)
        groups = self.groups(node, g)
        if groups == 1:
            cols = cols.reshape(-1, k[0] * k[1] * x.shape[3])
            return cols @ w.reshape(w.shape[0], -1).astype(np.float64).T
        cg = w.shape[3]
        cols = cols.reshape(-1, k[0] * k[1], groups, cg)
        wg = w.astype(np.float64).reshape(groups, w.shape[0] // groups, k[0] * k[1], cg)
        return np.einsum("mkgc,gokc->mgo", cols, wg).reshape(cols.shape[0], w.shape[0])

    def requant(self, node: Node, g: Graph) -> Requant:
        return per_channel_requant(node, g, self.out_channels(node, g))

    def eval_quant(self, node, g, xs):
        x, w = xs[0], xs[1]
        rq = self.requant(node, g)
        acc = self._acc(node, g, x.astype(np.float64) - rq.input_zp, w).astype(np.int64)
        acc = acc + _bias(node, xs, w.shape[0])
        y = g.out(node)
        return [rq.apply(acc, y.dtype).reshape(y.shape)]

    def eval_float(self, node, g, xs):
        x, w = xs[0], xs[1]
        acc = self._acc(node, g, x.astype(np.float64), w)
        if len(xs) > 2 and xs[2] is not None:
            acc = acc + xs[2]
        y = g.out(node)
        return [activation_float(acc, attr(node, "activation")).astype(np.float32).reshape(y.shape)]


@register
class DepthwiseConv2D(_Window):
    kind = "DEPTHWISE_CONV_2D"
    weight_axis = 3
    attrs = {**_Window.attrs, "depth_multiplier": 1}

    def out_channels(self, node: Node, g: Graph) -> int:
        w = g.inp(node, 1)
        assert w is not None
        return w.shape[3]

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        x, w = g.inp(node, 0), g.inp(node, 1)
        assert x is not None and w is not None
        if w.shape[3] != x.shape[3] * attr(node, "depth_multiplier"):
            raise TinycError(
                f"node {node.name!r}: depthwise filter has {w.shape[3]} channels for "
                f"{x.shape[3]} input channels x multiplier {attr(node, 'depth_multiplier')}"
            )
        return super().infer(node, g)

    def requant(self, node: Node, g: Graph) -> Requant:
        return per_channel_requant(node, g, self.out_channels(node, g))

    def _acc(self, node: Node, g: Graph, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        k, s, d, p = self.geometry(node, g)
        m = attr(node, "depth_multiplier")
        if m > 1:
            x = np.repeat(x, m, axis=3)
        cols = patches(x, k, s, d, p, g.out(node).shape[1:3], 0.0)
        return np.einsum("nhwijc,ijc->nhwc", cols, w[0].astype(np.float64))

    def eval_quant(self, node, g, xs):
        rq = self.requant(node, g)
        acc = self._acc(node, g, xs[0].astype(np.float64) - rq.input_zp, xs[1])
        acc = acc.astype(np.int64) + _bias(node, xs, xs[1].shape[3])
        return [rq.apply(acc, g.out(node).dtype)]

    def eval_float(self, node, g, xs):
        acc = self._acc(node, g, xs[0].astype(np.float64), xs[1])
        if len(xs) > 2 and xs[2] is not None:
            acc = acc + xs[2]
        return [activation_float(acc, attr(node, "activation")).astype(np.float32)]


@register
class FullyConnected(OpDef):
    kind = "FULLY_CONNECTED"
    weight_input = 1
    bias_input = 2
    attrs = {"activation": "NONE", "keep_num_dims": False}

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        x, w = g.inp(node, 0), g.inp(node, 1)
        assert x is not None and w is not None
        if len(w.shape) != 2 or x.size % w.shape[1] != 0:
            raise TinycError(
                f"node {node.name!r}: FULLY_CONNECTED weights {list(w.shape)} do not fit input "
                f"{list(x.shape)}"
            )
        if attr(node, "keep_num_dims"):
            shape = (*x.shape[:-1], w.shape[0])
        else:
            shape = (x.size // w.shape[1], w.shape[0])
        return [(shape, g.out(node).dtype)]

    def check(self, node: Node, g: Graph) -> None:
        _check_quant(node, g)

    def requant(self, node: Node, g: Graph) -> Requant:
        x, w, y = g.inp(node, 0), g.inp(node, 1), g.out(node)
        assert x and w and x.quant and w.quant and y.quant
        if w.quant.per_channel:
            return per_channel_requant(node, g, w.shape[0])
        # Per-tensor: TFLM multiplies the two float32 scales in float32 first.
        m, s = quantize_multiplier(float(np.float32(x.quant.s * w.quant.s)) / float(y.quant.s))
        lo, hi = activation_range_quant(attr(node, "activation"), y)
        n = w.shape[0]
        return Requant(
            np.full(n, m, np.int64), np.full(n, s, np.int64), x.quant.zp, y.quant.zp, lo, hi
        )

    def eval_quant(self, node, g, xs):
        x, w = xs[0], xs[1]
        rq = self.requant(node, g)
        xm = x.reshape(-1, w.shape[1]).astype(np.float64) - rq.input_zp
        acc = (xm @ w.astype(np.float64).T).astype(np.int64) + _bias(node, xs, w.shape[0])
        y = g.out(node)
        return [rq.apply(acc, y.dtype).reshape(y.shape)]

    def eval_float(self, node, g, xs):
        x, w = xs[0], xs[1]
        acc = x.reshape(-1, w.shape[1]).astype(np.float64) @ w.astype(np.float64).T
        if len(xs) > 2 and xs[2] is not None:
            acc = acc + xs[2]
        y = g.out(node)
        return [activation_float(acc, attr(node, "activation")).astype(np.float32).reshape(y.shape)]

    def macs(self, node: Node, g: Graph) -> int:
        w = g.inp(node, 1)
        assert w is not None
        return g.out(node).size // w.shape[0] * w.size
