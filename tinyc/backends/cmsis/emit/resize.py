"""RESIZE_NEAREST_NEIGHBOR and RESIZE_BILINEAR emitters: the op definition's index and
weight tables (TFLM's arithmetic, evaluated at compile time) as constants (resize.c)."""

from __future__ import annotations

import numpy as np

from tinyc.backends.cmsis.emit.base import Emitter, emitter, require_int8
from tinyc.ir.ops import get_op


@emitter
class ResizeNearestEmitter(Emitter):
    kinds = ("RESIZE_NEAREST_NEIGHBOR",)

    def emit(self, node, g, c):
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None
        ys, xs = get_op(node.op).indices(node, g)  # type: ignore[attr-defined]
        ysym = c.const_array(f"rows_{node.name}", ys.astype(np.int32), "int32_t")
        xsym = c.const_array(f"cols_{node.name}", xs.astype(np.int32), "int32_t")
        n, h, w, ch = x.shape
        c.need("resize.c")
        c.call(
            f"tinyc_resize_nearest({n}, {h}, {w}, {y.shape[1]}, {y.shape[2]}, "
            f"{ch * x.itemsize}, {ysym}, {xsym}, {c.ptr(node.inputs[0])}, "
            f"{c.ptr(node.outputs[0])});"
        )


@emitter
class ResizeBilinearEmitter(Emitter):
    kinds = ("RESIZE_BILINEAR",)

    def emit(self, node, g, c):
        require_int8(node, g)
        x, y = g.inp(node, 0), g.out(node)
        assert x is not None
        ay, ax = get_op(node.op).axes_q10(node, g)  # type: ignore[attr-defined]

        def table(a) -> np.ndarray:
            return np.stack([a.lo, a.hi, a.frac], axis=1).astype(np.int32)

        ysym = c.const_array(f"rows_{node.name}", table(ay), "int32_t")
        xsym = c.const_array(f"cols_{node.name}", table(ax), "int32_t")
        n, h, w, ch = x.shape
        c.need("resize.c")
        c.call(
            f"tinyc_resize_bilinear_s8({n}, {h}, {w}, {y.shape[1]}, {y.shape[2]}, {ch}, "
            f"{ysym}, {xsym}, {c.ptr(node.inputs[0])}, {c.ptr(node.outputs[0])});"
        )
