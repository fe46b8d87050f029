"""The PyTorch keyword-spotting models of tests/models/kws_rnn.py (a 2-layer nn.LSTM and a
2-layer nn.GRU, 64 units, 49 MFCC frames) end to end: loaded from ``file.py:factory`` and
from their ``torch.onnx.export`` file (the two give the same float graph), quantized by
tinyc on seeded calibration data, and the firmware bit-exact with the interpreter in QEMU.
Weights and data are random: this checks the compiler, not the models' accuracy."""

from __future__ import annotations

import io
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

torch = pytest.importorskip("torch")

from tinyc import interpreter  # noqa: E402
from tinyc.compiler import CalibrationOptions, CompileOptions, compile_model  # noqa: E402
from tinyc.frontend import load_model  # noqa: E402
from tinyc.modelio import random_inputs  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:The tensor attributes:UserWarning")

KWS = REPO / "tests" / "models" / "kws_rnn.py"
FACTORIES = {"kws_lstm": "LSTM", "kws_gru": "GRU"}
needs_arm = pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="arm-none-eabi-gcc and qemu-system-arm are not installed",
)


def _onnx_file(factory: str, tmp_path: Path) -> Path:
    """The factory's module through torch.onnx.export (TorchScript exporter, as most
    published recurrent ONNX files were made)."""
    from models import kws_rnn

    module, example = getattr(kws_rnn, factory)()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, buf, dynamo=False)
    path = tmp_path / f"{factory}.onnx"
    path.write_bytes(buf.getvalue())
    return path


def _source(factory: str, source: str, tmp_path: Path) -> str:
    return f"{KWS}:{factory}" if source == "factory" else str(_onnx_file(factory, tmp_path))


@pytest.mark.parametrize("factory", list(FACTORIES))
def test_export_and_factory_give_the_same_model(factory: str, tmp_path: Path) -> None:
    a = load_model(f"{KWS}:{factory}")
    b = load_model(str(_onnx_file(factory, tmp_path)))
    kind = FACTORIES[factory]
    for g in (a, b):
        assert [n.op for n in g.nodes].count(kind) == 2
    x = np.random.default_rng(5).standard_normal(a.tensors[a.inputs[0]].shape)
    x = x.astype(np.float32)
    ya = interpreter.run(a, [x])[a.outputs[0]]
    yb = interpreter.run(b, [x])[b.outputs[0]]
    np.testing.assert_allclose(ya, yb, rtol=1e-5, atol=1e-5)


@needs_arm
@pytest.mark.qemu
@pytest.mark.parametrize("source", ["factory", "onnx"])
@pytest.mark.parametrize("factory", list(FACTORIES))
def test_kws_quantizes_and_runs_bit_exact(factory: str, source: str, tmp_path: Path) -> None:
    from tinyc.runner import EmulatedProject

    calibration = tmp_path / "calibration.npy"
    rng = np.random.default_rng(11)
    np.save(calibration, rng.standard_normal((24, 1, 49, 10)).astype(np.float32))
    project = tmp_path / "project"
    options = CompileOptions(
        board="nucleo-f746", calibration=CalibrationOptions(path=str(calibration))
    )
    compile_model(_source(factory, source, tmp_path), options, project, log=lambda m: None)
    ep = EmulatedProject.build(project)
    assert [n.op for n in ep.graph.nodes].count(FACTORIES[factory]) == 2
    assert ep.graph.is_quantized
    for seed in range(2):
        r = ep.run_case(str(seed), random_inputs(ep.graph, seed))
        assert r.bit_exact, r.mismatches
