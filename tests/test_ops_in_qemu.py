"""The kernels of GATHER, STRIDED_SLICE, DYNAMIC_UPDATE_SLICE, PRELU, DIV, SQRT and
TRANSPOSE_CONV in firmware on the QEMU twins of an ARMv6-M and a Helium core, against the
interpreter, bit for bit (the host tests cover each op in detail; this is their code built
by arm-none-eabi-gcc for the cores that differ most)."""

from __future__ import annotations

import numpy as np
import pytest
from graphs import Builder
from test_cmsis_backend import BOARDS, _validate, needs_arm

from tinyc.ir.graph import Graph
from tinyc.ir.tensor import Tensor


def every_new_op() -> Graph:
    """One int8 graph, one branch per op, all reading the same input."""
    b = Builder("new_ops", 11)
    x = b.act("x", (1, 4, 6, 8), 0.05, 3)
    d = b.act("d", (1, 1, 1, 8), 0.03, -60)
    u = b.act("u", (1, 2, 6, 8), 0.05, 3)
    outs = []

    def out(name: str, scale=None, zp=None) -> str:
        outs.append(b.act(name, (1,), scale, zp))
        return name

    b.node("PRELU", [x, b.const_int8("alpha", (1, 1, 1, 8))], [out("prelu")])
    b.node("SQRT", [x], [out("sqrt", 0.01, -128)])
    sx, sd = 0.05, 0.03
    b.node("DIV", [x, d], [out("div", sx / (sd * 100), 0)])
    w, bias = b.weights("w", (6, 3, 4, 4), 0), b.bias("b", 6)
    b.node("TRANSPOSE_CONV", [x, w, bias], [out("tconv")], stride=(1, 2), pads=(1, 1, 2, 1))
    b.g.add_tensor(Tensor("pos", (2, 3), "int32", np.array([[5, 0, 1], [2, 3, 3]], np.int32)))
    b.node("GATHER", [x, "pos"], [out("gather", 0.05, 3)], axis=2)
    b.node("STRIDED_SLICE", [x], [out("slice", 0.05, 3)], begin=(0, 3, 0, 1), end=(1, -1, 6, 8),
           strides=(1, -2, 2, 3))  # fmt: skip
    b.node("DYNAMIC_UPDATE_SLICE", [x, u], [out("update", 0.05, 3)], start=(0, 1, 0, 0))
    return b.finish([x, d, u], outs)


@needs_arm
@pytest.mark.qemu
@pytest.mark.parametrize("core", ["M0+", "M55"])
def test_new_ops_in_qemu(core, tmp_path):
    _, results = _validate(every_new_op(), BOARDS[core], tmp_path, cases=2)
    assert all(r.bit_exact for r in results), [r.mismatches for r in results]
