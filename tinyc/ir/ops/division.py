"""DIV with numpy broadcasting and TFLM's int8 kernel (a fixed-point reciprocal per
divisor value, then one requantization)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyc.errors import TinycError
from tinyc.ir import fixedpoint as fp
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops.base import activation_range_quant, attr, clamp_cast, register
from tinyc.ir.ops.elementwise import _Binary

#: the largest output shift for which every int8 quotient ends in a right shift (the
#: dividend's headroom is at least 23 bits)
MAX_OUTPUT_SHIFT = 23
#: right shifts past 31 bits are undefined in TFLM's C; tinyc rounds exactly (to 0 for any
#: int32 value), and numpy's int64 shifts stay defined up to 62
MAX_EXPONENT = 62


@dataclass
class DivParams:
    input1_zp: int
    input2_zp: int
    output_zp: int
    multiplier: int
    shift: int
    act_min: int
    act_max: int


def divisor_reciprocal(v2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Q0.31 reciprocal, its exponent) of positive divisors, as GetReciprocal(v, 31)."""
    return fp.get_reciprocal(v2, 31)


@register
class Div(_Binary):
    """DIV. int8 follows TFLM's reference kernel (DivElementwise): signs moved to the
    dividend, reciprocal of the divisor by GetReciprocal, the dividend shifted to full
    headroom, two rounding high multiplies.

    Where TFLM is undefined tinyc defines: a zero divisor (the divisor's zero point)
    divides by one quantum instead (the result then saturates for any sizeable dividend),
    and a final right shift of more than 31 bits rounds exactly (giving 0)."""

    kind = "DIV"

    @staticmethod
    def float_fn(a, b):
        return a / b

    def div_params(self, node: Node, g: Graph) -> DivParams:
        """CalculateOpDataDiv: the ratio of the float32 scales, taken in double as the
        PyPI tflite-micro (8f6596d) does; TFLM 90b983c2's source takes it in float32, which
        changes the multiplier's last bits and, near ties, the result by one."""
        a, b, y = g.inp(node, 0), g.inp(node, 1), g.out(node)
        assert a and b and a.quant and b.quant and y.quant
        real = float(a.quant.s) / (float(b.quant.s) * float(y.quant.s))
        m, s = fp.quantize_multiplier(real)
        lo, hi = activation_range_quant(attr(node, "activation"), y)
        return DivParams(a.quant.zp, b.quant.zp, y.quant.zp, m, s, lo, hi)

    def check(self, node: Node, g: Graph) -> None:
        super().check(node, g)
        if g.out(node).is_quantized and self.div_params(node, g).shift > MAX_OUTPUT_SHIFT:
            raise TinycError(
                f"node {node.name!r} (DIV): output scale too small for the input scales "
                f"(multiplier exponent above {MAX_OUTPUT_SHIFT})"
            )

    def eval_quant(self, node, g, xs):
        p = self.div_params(node, g)
        v1 = xs[0].astype(np.int64) - p.input1_zp
        v2 = xs[1].astype(np.int64) - p.input2_zp
        v1, v2 = np.broadcast_arrays(v1, v2)
        v2 = np.where(v2 == 0, 1, v2)
        v1 = np.where(v2 < 0, -v1, v1)
        v2 = np.abs(v2)
        inv, recip_shift = divisor_reciprocal(v2)
        headroom = fp.count_leading_sign_bits(v1)
        unscaled = fp.saturating_rounding_doubling_high_mul(v1 << headroom, inv)
        total_shift = p.shift - recip_shift - headroom
        # TFLM's shift is undefined past 31 bits; an exact rounding gives 0 there
        q = fp.rounding_divide_by_pot(
            fp.saturating_rounding_doubling_high_mul(unscaled, p.multiplier),
            np.minimum(-total_shift, MAX_EXPONENT),
        )
        return [clamp_cast(q + p.output_zp, p.act_min, p.act_max, g.out(node).dtype)]
