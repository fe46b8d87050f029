"""The kernels of the TFLite builtins of tests/test_ops_builtins.py (resizing, reductions,
comparisons, normalizations, rearrangements, the table ops ...) in firmware on the QEMU
twins of a Cortex-M7 and a Cortex-M55, against the interpreter, bit for bit: the host tests
cover each op in detail; this is their code built by arm-none-eabi-gcc."""

from __future__ import annotations

import pytest
from test_cmsis_backend import BOARDS, _validate, needs_arm
from test_ops_builtins import c_bundle


@needs_arm
@pytest.mark.qemu
@pytest.mark.parametrize("core", ["M7", "M55"])
def test_builtins_in_qemu(core, tmp_path):
    _, results = _validate(c_bundle(), BOARDS[core], tmp_path, cases=2)
    assert all(r.bit_exact for r in results), [r.mismatches for r in results]
