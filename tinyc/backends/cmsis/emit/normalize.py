"""L2_NORMALIZATION and LOG_SOFTMAX emitters (norm_s8.c); LOG_SOFTMAX's per-difference
exps and rescaled differences are tabulated from the op definition."""

from __future__ import annotations

import numpy as np

from tinyc.backends.cmsis.emit.base import Emitter, emitter, require_int8
from tinyc.ir import fixedpoint as fp
from tinyc.ir.ops import get_op


def _rows(node, g) -> tuple[int, int]:
    x = g.inp(node, 0)
    assert x is not None
    depth = x.shape[-1] if x.shape else 1
    return x.size // max(depth, 1), depth


@emitter
class L2NormEmitter(Emitter):
    kinds = ("L2_NORMALIZATION",)

    def emit(self, node, g, c):
        require_int8(node, g)
        x = g.inp(node, 0)
        assert x is not None and x.quant is not None
        rows, depth = _rows(node, g)
        c.need("norm_s8.c")
        c.call(
            f"tinyc_l2norm_s8({rows}, {depth}, {x.quant.zp}, {c.ptr(node.inputs[0])}, "
            f"{c.ptr(node.outputs[0])});"
        )


def log_softmax_tables(p) -> tuple[np.ndarray, np.ndarray]:
    """(Q12 exp, Q5 difference) for differences -d, d in [0, 255], as TFLM computes them."""
    diff = -np.arange(256, dtype=np.int64)
    q5 = fp.multiply_by_quantized_multiplier(diff, p.input_multiplier, p.input_left_shift)
    exps = fp.rounding_divide_by_pot(fp.exp_on_negative_values(q5, 5), 12)
    exps = np.where(diff >= p.diff_min, exps, 0)
    return exps.astype(np.int32), fp.wrap32(q5).astype(np.int32)


@emitter
class LogSoftmaxEmitter(Emitter):
    kinds = ("LOG_SOFTMAX",)

    def emit(self, node, g, c):
        require_int8(node, g)
        p = get_op(node.op).log_softmax_params(node, g)  # type: ignore[attr-defined]
        exps, q5 = log_softmax_tables(p)
        esym = c.const_array(f"lsm_exp_{node.name}", exps, "int32_t")
        dsym = c.const_array(f"lsm_diff_{node.name}", q5, "int32_t")
        ps = c.const_struct(
            f"lsm_{node.name}",
            "tinyc_log_softmax_t",
            f"{esym}, {dsym}, {p.diff_min}, {p.reverse_multiplier}, {p.reverse_shift}",
        )
        rows, depth = _rows(node, g)
        c.need("norm_s8.c")
        c.call(
            f"tinyc_log_softmax_s8({rows}, {depth}, &{ps}, {c.ptr(node.inputs[0])}, "
            f"{c.ptr(node.outputs[0])});"
        )
