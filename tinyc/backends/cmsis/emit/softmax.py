"""SOFTMAX and MEAN emitters."""

from __future__ import annotations

import numpy as np

from tinyc.backends.cmsis.emit.base import Emitter, emitter, require_int8
from tinyc.errors import UnsupportedError
from tinyc.ir import fixedpoint as fp
from tinyc.ir.ops import get_op


@emitter
class SoftmaxEmitter(Emitter):
    kinds = ("SOFTMAX",)

    def emit(self, node, g, c):
        x = g.inp(node, 0)
        if x is None or x.dtype != "int8" or g.out(node).dtype not in ("int8", "int16"):
            require_int8(node, g)
        p = get_op("SOFTMAX").softmax_params(node, g)
        diff = -np.arange(256, dtype=np.int64)
        rescaled = fp.multiply_by_quantized_multiplier(diff, p.input_multiplier, p.input_left_shift)
        exp = fp.exp_on_negative_values(rescaled, 5)
        table = np.where(diff >= p.diff_min, exp, 0).astype(np.int32)
        sym = c.const_array(f"exp_{node.name}", table, "int32_t")
        y = g.out(node)
        depth = y.shape[-1]
        c.need("softmax_s8.c")
        fn = "tinyc_softmax_s8_s16" if y.dtype == "int16" else "tinyc_softmax_s8"
        c.call(
            f"{fn}({y.size // depth}, {depth}, {sym}, {c.ptr(node.inputs[0])}, "
            f"{c.ptr(node.outputs[0])});"
        )


@emitter
class MeanEmitter(Emitter):
    kinds = ("MEAN",)

    def emit(self, node, g, c):
        require_int8(node, g)
        op = get_op("MEAN")
        x = g.inp(node, 0)
        assert x is not None
        axes = op.axes(node, g)
        # Axes must form one contiguous block once size-1 dimensions are ignored.
        real = [a for a in range(len(x.shape)) if x.shape[a] > 1]
        kept = [a for a in real if a not in axes]
        red = [a for a in real if a in axes]
        if red and kept and any(min(red) < k < max(red) for k in kept):
            raise UnsupportedError(f"node {node.name!r}: MEAN over non-adjacent axes {list(axes)}")
        first = min(red) if red else len(x.shape)
        outer = int(np.prod([x.shape[a] for a in kept if a < first], dtype=np.int64))
        reduce = int(np.prod([x.shape[a] for a in red], dtype=np.int64))
        inner = int(np.prod([x.shape[a] for a in kept if a > first], dtype=np.int64))
        p = op.mean_params(node, g)
        ps = c.const_struct(
            f"mean_{node.name}",
            "tinyc_mean_t",
            f"{outer}, {reduce}, {inner}, {p.input_zp}, {p.output_zp}, {p.multiplier}, {p.shift}",
        )
        c.need("mean_s8.c")
        c.call(f"tinyc_mean_s8(&{ps}, {c.ptr(node.inputs[0])}, {c.ptr(node.outputs[0])});")
