"""tinyc's numpy interpreter against TFLite Micro's own kernels (PyPI tflite-micro).

Every output and every intermediate tensor must be bit-identical for int8 models; float
models must agree within 1e-4 relative.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FAST_INT8, FLOAT_TFLITE, INT8_TFLITE, model_path, reference_cases

from tinyc import interpreter
from tinyc.frontend.tflite import load_tflite
from tinyc.ir.verify import verify
from tinyc.modelio import random_inputs

tflm = pytest.importorskip("tflite_micro").runtime


def _tflm(path, inputs):
    it = tflm.Interpreter.from_bytes(
        path.read_bytes(),
        arena_size=32 << 20,
        intrepreter_config=tflm.InterpreterConfig.kPreserveAllTensors,
    )
    for i, x in enumerate(inputs):
        it.set_input(x, i)
    it.invoke()
    return it


def _compare_all_tensors(g, path, inputs, float_tol=None):
    it = _tflm(path, inputs)
    values = interpreter.run(g, inputs, keep_all=True)
    for node in g.nodes:
        for name in node.outputs:
            t = g.tensors[name]
            ref = it.GetTensor(t.meta["tflite_index"], 0)["tensor_data"].reshape(t.shape)
            ours = values[name]
            if float_tol is None:
                diff = np.flatnonzero(ours != ref)
                assert diff.size == 0, (
                    f"{node.op} {node.name!r}: {diff.size}/{ours.size} elements differ, first at "
                    f"{diff[0]}: tinyc {ours.flat[diff[0]]} vs TFLM {ref.flat[diff[0]]}"
                )
            else:
                np.testing.assert_allclose(
                    ours,
                    ref,
                    rtol=float_tol,
                    atol=float_tol * 1e-1,
                    err_msg=f"{node.op} {node.name!r}",
                )


@pytest.mark.parametrize("model", FAST_INT8)
def test_int8_reference_io_bit_exact(model):
    rel = INT8_TFLITE[model]
    g = load_tflite(model_path(rel))
    verify(g)
    for case in reference_cases(rel):
        n = len(g.inputs)
        inputs = [np.load(case / f"input_{i}.npy") for i in range(n)]
        outs = interpreter.run(g, inputs)
        for i, name in enumerate(g.outputs):
            expected = np.load(case / f"output_{i}.npy")
            np.testing.assert_array_equal(
                outs[name],
                expected.reshape(outs[name].shape),
                err_msg=f"{model} {case.name} output {i}",
            )


@pytest.mark.parametrize("model", FAST_INT8)
def test_int8_every_tensor_bit_exact_on_random_inputs(model):
    path = model_path(INT8_TFLITE[model])
    g = load_tflite(path)
    for seed in range(20):
        _compare_all_tensors(g, path, random_inputs(g, seed))


@pytest.mark.slow
def test_mobilenet_v2_bit_exact():
    rel = INT8_TFLITE["mobilenet_v2_quantized_1x3x224x224"]
    path = model_path(rel)
    g = load_tflite(path)
    for case in reference_cases(rel):
        x = np.load(case / "input_0.npy")
        out = interpreter.run(g, [x])[g.outputs[0]]
        np.testing.assert_array_equal(out, np.load(case / "output_0.npy").reshape(out.shape))
    for seed in range(20):
        _compare_all_tensors(g, path, random_inputs(g, seed))


@pytest.mark.parametrize("model", list(FLOAT_TFLITE))
def test_float_models_match_tflm(model):
    rel = FLOAT_TFLITE[model]
    path = model_path(rel)
    g = load_tflite(path)
    verify(g)
    for case in reference_cases(rel):
        inputs = [np.load(case / f"input_{i}.npy") for i in range(len(g.inputs))]
        outs = interpreter.run(g, inputs)
        for i, name in enumerate(g.outputs):
            expected = np.load(case / f"output_{i}.npy").reshape(outs[name].shape)
            np.testing.assert_allclose(outs[name], expected, rtol=1e-4, atol=1e-5)
    for seed in range(3):
        _compare_all_tensors(g, path, random_inputs(g, seed), float_tol=1e-4)
