"""TRANSPOSE_CONV (NHWC input, OHWI filter), with TFLM's int8 arithmetic.

Each input pixel scatters ``input * filter`` into a window of the output that starts at
``(y * stride - pad_top, x * stride - pad_left)``; taps outside the output are dropped.
The output size is ``(in - 1) * stride + kernel - pad_before - pad_after``: ``pads`` are
(top, bottom, left, right), and a negative bottom/right adds rows/columns at the end
(ONNX's ``output_padding``).

Grouped when the filter has fewer input channels than the input (groups = input channels
/ filter input channels; output channel o reads group o // (out channels / groups)). TFLM
runs groups == 1 only; a grouped node computes each group exactly as TFLM would on the
group's channels.
"""

from __future__ import annotations

import numpy as np

from tinyc.errors import TinycError
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops.base import OpDef, Spec, activation_float, attr, register
from tinyc.ir.ops.conv import Requant, _bias, _check_quant, per_channel_requant


@register
class TransposeConv(OpDef):
    kind = "TRANSPOSE_CONV"
    weight_input = 1
    weight_axis = 0
    bias_input = 2
    attrs = {"stride": (1, 1), "pads": (0, 0, 0, 0), "activation": "NONE"}

    def groups(self, node: Node, g: Graph) -> int:
        x, w = g.inp(node, 0), g.inp(node, 1)
        assert x is not None and w is not None
        cin, cg, cout = x.shape[3], w.shape[3], w.shape[0]
        if cg <= 0 or cin % cg or cout % (cin // cg):
            raise TinycError(
                f"node {node.name!r}: TRANSPOSE_CONV filter {list(w.shape)} does not fit "
                f"{cin} input channels"
            )
        return cin // cg

    def out_hw(self, node: Node, g: Graph) -> tuple[int, int]:
        x, w = g.inp(node, 0), g.inp(node, 1)
        assert x is not None and w is not None
        sh, sw = attr(node, "stride")
        top, bottom, left, right = attr(node, "pads")
        oh = (x.shape[1] - 1) * sh + w.shape[1] - top - bottom
        ow = (x.shape[2] - 1) * sw + w.shape[2] - left - right
        if min(sh, sw) <= 0 or min(top, left) < 0 or oh <= 0 or ow <= 0:
            raise TinycError(
                f"node {node.name!r}: TRANSPOSE_CONV stride {[sh, sw]} pads "
                f"{[top, bottom, left, right]} do not fit input {list(x.shape)}"
            )
        return oh, ow

    def infer(self, node: Node, g: Graph) -> list[Spec]:
        x, w = g.inp(node, 0), g.inp(node, 1)
        if x is None or w is None or len(x.shape) != 4 or len(w.shape) != 4:
            raise TinycError(f"node {node.name!r} (TRANSPOSE_CONV) needs 4-D input and filter")
        self.groups(node, g)
        oh, ow = self.out_hw(node, g)
        return [((x.shape[0], oh, ow, w.shape[0]), g.out(node).dtype)]

    def check(self, node: Node, g: Graph) -> None:
        _check_quant(node, g)

    def _acc(self, node: Node, g: Graph, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        """float64 sums (N, OH, OW, O); exact for int8 operands while |sum| < 2^53."""
        n, h, wd, c = x.shape
        o, kh, kw, cg = w.shape
        groups = self.groups(node, g)
        sh, sw = attr(node, "stride")
        top, _, left, _ = attr(node, "pads")
        oh, ow = self.out_hw(node, g)
        full = np.zeros(
            (n, max((h - 1) * sh + kh, top + oh), max((wd - 1) * sw + kw, left + ow), o)
        )
        xg = x.astype(np.float64).reshape(n, h, wd, groups, cg)
        wg = w.astype(np.float64).reshape(groups, o // groups, kh, kw, cg)
        for fy in range(kh):
            for fx in range(kw):
                part = np.einsum("nhwgc,goc->nhwgo", xg, wg[:, :, fy, fx, :])
                rows = slice(fy, fy + (h - 1) * sh + 1, sh)
                cols = slice(fx, fx + (wd - 1) * sw + 1, sw)
                full[:, rows, cols, :] += part.reshape(n, h, wd, o)
        return full[:, top : top + oh, left : left + ow, :]

    def requant(self, node: Node, g: Graph) -> Requant:
        w = g.inp(node, 1)
        assert w is not None
        return per_channel_requant(node, g, w.shape[0])

    def eval_quant(self, node, g, xs):
        rq = self.requant(node, g)
        acc = self._acc(node, g, xs[0].astype(np.float64) - rq.input_zp, xs[1])
        acc = acc.astype(np.int64) + _bias(node, xs, xs[1].shape[0])
        return [rq.apply(acc, g.out(node).dtype)]

    def eval_float(self, node, g, xs):
        acc = self._acc(node, g, xs[0], xs[1])
        if len(xs) > 2 and xs[2] is not None:
            acc = acc + xs[2]
        return [activation_float(acc, attr(node, "activation")).astype(np.float32)]

    def macs(self, node: Node, g: Graph) -> int:
        x, w = g.inp(node, 0), g.inp(node, 1)
        assert x is not None and w is not None
        return x.size * w.shape[1] * w.shape[2] * (w.shape[0] // self.groups(node, g))
