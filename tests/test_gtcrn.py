"""GTCRN (streaming speech enhancement, ONNX opset 11): float against onnxruntime, int8 C
against the interpreter on the host and in QEMU.

The model reads one STFT frame and three caches and returns the enhanced frame and the
updated caches; streaming = feeding the caches back.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import model_path, reference_cases
from op_checks import c_vs_interpreter
from test_onnx_frontend import _ours, _session

from tinyc.frontend.onnx import load_onnx

REL = "onnx_gtcrn_simple/gtcrn_simple.onnx"
RTOL, ATOL = 1e-3, 1e-4


@pytest.fixture(scope="module")
def gtcrn():
    return load_onnx(model_path(REL))


def _feeds(g, case) -> dict[str, np.ndarray]:
    return {n: np.load(case / f"input_{i}.npy") for i, n in enumerate(g.inputs)}


def test_float_matches_reference_io(gtcrn):
    ops = {n.op for n in gtcrn.nodes}
    assert {"DYNAMIC_UPDATE_SLICE", "GATHER", "STRIDED_SLICE", "PRELU", "TRANSPOSE_CONV"} <= ops
    for case in reference_cases(REL):
        ours = _ours(gtcrn, _feeds(gtcrn, case))
        for i, name in enumerate(gtcrn.outputs):
            ref = np.load(case / f"output_{i}.npy")
            np.testing.assert_allclose(ours[name], ref, rtol=RTOL, atol=ATOL, err_msg=name)


def test_float_streams_like_onnxruntime(gtcrn):
    """Four frames with the caches fed back (non-zero caches from the second frame on)."""
    sess = _session(str(model_path(REL)))
    names = [i.name for i in sess.get_inputs()]
    rng = np.random.default_rng(7)
    caches = [np.zeros(i.shape, np.float32) for i in sess.get_inputs()[1:]]
    for _ in range(4):
        mix = (0.1 * rng.standard_normal(sess.get_inputs()[0].shape)).astype(np.float32)
        feeds = dict(zip(names, [mix, *caches], strict=True))
        refs = sess.run(None, feeds)
        ours = _ours(gtcrn, feeds)
        for name, ref in zip(gtcrn.outputs, refs, strict=True):
            np.testing.assert_allclose(ours[name], ref, rtol=RTOL, atol=ATOL, err_msg=name)
        caches = refs[1:]


def _calibration_dir():
    return model_path(REL).parent / "reference_io" / "gtcrn_simple"


@pytest.mark.slow
def test_int8_c_on_host_bit_exact(gtcrn, tmp_path):
    from tinyc.passes.quantize import quantize_with_data

    q, _ = quantize_with_data(gtcrn, str(_calibration_dir()), show_progress=False)
    c_vs_interpreter(q, tmp_path, seeds=range(2))


@pytest.mark.slow
@pytest.mark.qemu
@pytest.mark.skipif(not shutil.which("qemu-system-arm"), reason="qemu-system-arm not installed")
def test_int8_in_qemu_bit_exact(tmp_path):
    """What ``tinyc compile --calibration reference_io/... --board nucleo-f746`` then
    ``tinyc run`` do."""
    from tinyc.compiler import CalibrationOptions, CompileOptions, compile_model
    from tinyc.ir.ops.quant import quantize_array
    from tinyc.modelio import random_inputs, to_internal
    from tinyc.runner import EmulatedProject

    project = tmp_path / "gtcrn"
    calibration = CalibrationOptions(path=str(_calibration_dir()))
    opts = CompileOptions(board="nucleo-f746", calibration=calibration)
    compile_model(str(model_path(REL)), opts, project, log=lambda m: None)
    ep = EmulatedProject.build(project)
    g = ep.graph
    cases = [random_inputs(g, 0)]
    for case in reference_cases(REL):  # the reference frames, quantized
        xs = [to_internal(g, n, np.load(case / f"input_{i}.npy")) for i, n in enumerate(g.inputs)]
        cases.append([quantize_array(x, g.tensors[n].quant.s, g.tensors[n].quant.zp, "int8")
                      for n, x in zip(g.inputs, xs, strict=True)])  # fmt: skip
    results = [ep.run_case(str(k), xs) for k, xs in enumerate(cases)]
    assert all(r.bit_exact for r in results), [r.mismatches for r in results]
