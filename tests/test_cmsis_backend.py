"""The C backend: generated code against the reference interpreter, bit for bit.

On the host (gcc with ASan and UBSan, -Wall -Wextra -Werror) and in QEMU on Cortex-M4,
M7 and M55 twins of real boards, for every op configuration in tests/graphs.py and for
every int8 model of the shared set.
"""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

import graphs
import numpy as np
import pytest
from c_host import build_host, run_host
from conftest import FAST_INT8, INT8_TFLITE, model_path, reference_cases

from tinyc import interpreter
from tinyc.backends.cmsis.codegen import generate_model
from tinyc.compiler import CompileOptions, compile_model
from tinyc.errors import TinycError
from tinyc.frontend.tflite import load_tflite
from tinyc.ir.graph import Graph, Node
from tinyc.ir.tensor import QuantParams, Tensor
from tinyc.modelio import random_inputs

CASES = graphs.all_cases()
BOARDS = {"M0+": "rpi-pico", "M4": "nucleo-l4r5zi", "M7": "nucleo-f746", "M55": "corstone-300"}
HAVE_ARM = shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")
needs_arm = pytest.mark.skipif(
    not HAVE_ARM, reason="arm-none-eabi-gcc and qemu-system-arm are not installed"
)


def _host_check(g: Graph, tmp: Path, inputs: list[list[np.ndarray]], target: str = "dsp") -> None:
    gen = generate_model(g, g.name, target)
    exe = build_host(gen, tmp)
    for case in inputs:
        ref = interpreter.run(g, case)
        outs = run_host(exe, gen, case)
        for name, got in zip(g.outputs, outs, strict=True):
            np.testing.assert_array_equal(got, ref[name].reshape(got.shape), err_msg=name)


@pytest.mark.parametrize("target", ["dsp", "mve", "plain"])
@pytest.mark.parametrize("g", CASES, ids=[g.name for g in CASES])
def test_op_on_host_bit_exact(g: Graph, target: str, tmp_path: Path) -> None:
    """Every target's layouts through the portable C paths (the host build of a project)."""
    _host_check(g, tmp_path, [random_inputs(g, s) for s in range(4)], target)


@pytest.mark.parametrize("model", FAST_INT8)
def test_model_on_host_bit_exact(model: str, tmp_path: Path) -> None:
    rel = INT8_TFLITE[model]
    g = load_tflite(model_path(rel))
    cases = [
        [np.load(c / f"input_{i}.npy") for i in range(len(g.inputs))] for c in reference_cases(rel)
    ]
    _host_check(g, tmp_path, cases + [random_inputs(g, s) for s in range(3)])


def _validate(model, board: str, tmp: Path, inputs_dir: Path | None = None, cases: int = 3):
    from tinyc.runner import EmulatedProject

    project = tmp / "project"
    compile_model(model, CompileOptions(board=board), project, log=lambda m: None)
    ep = EmulatedProject.build(project)
    todo = []
    if inputs_dir is not None:
        for c in sorted(p for p in inputs_dir.iterdir() if (p / "input_0.npy").exists()):
            todo.append([np.load(c / f"input_{i}.npy") for i in range(len(ep.graph.inputs))])
    todo += [random_inputs(ep.graph, s) for s in range(cases)]
    results = [ep.run_case(str(i), xs) for i, xs in enumerate(todo)]
    return ep, results


@needs_arm
@pytest.mark.qemu
@pytest.mark.parametrize("core", list(BOARDS))
def test_ops_in_qemu_bit_exact(core: str, tmp_path: Path) -> None:
    """Every op configuration on the core's DSP code paths (assembly included)."""
    failures = []
    for g in CASES:
        d = tmp_path / g.name
        d.mkdir()
        _, results = _validate(g, BOARDS[core], d, cases=2)
        failures += [f"{g.name}: {r.mismatches} values" for r in results if not r.bit_exact]
    assert not failures, failures


@needs_arm
@pytest.mark.qemu
@pytest.mark.parametrize("core", list(BOARDS))
@pytest.mark.parametrize("model", FAST_INT8)
def test_model_in_qemu_bit_exact(model: str, core: str, tmp_path: Path) -> None:
    rel = INT8_TFLITE[model]
    path = model_path(rel)
    ep, results = _validate(
        str(path), BOARDS[core], tmp_path, path.parent / "reference_io" / path.stem
    )
    assert all(r.bit_exact for r in results), [r.mismatches for r in results]
    counts = {r.instructions for r in results}
    assert all(c and c > 0 for c in counts)
    report = ep.report(results)
    assert report["bit_exact"] and report["flash_bytes"] > 0 and report["ram_bytes"] > 0


@needs_arm
@pytest.mark.qemu
@pytest.mark.slow
def test_mobilenet_v2_in_qemu(tmp_path: Path) -> None:
    rel = INT8_TFLITE["mobilenet_v2_quantized_1x3x224x224"]
    path = model_path(rel)
    _, results = _validate(
        str(path), "mps2-an500", tmp_path, path.parent / "reference_io" / path.stem, cases=1
    )
    assert all(r.bit_exact for r in results)


def _files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_compile_is_deterministic(tmp_path: Path) -> None:
    model = str(model_path(INT8_TFLITE["kws_ref_model"]))
    a, b = tmp_path / "a", tmp_path / "b"
    compile_model(model, CompileOptions(board="nucleo-f746"), a, log=lambda m: None)
    compile_model(model, CompileOptions(board="nucleo-f746"), b, log=lambda m: None)
    assert _files(a) == _files(b)
    for rel in _files(a):
        assert filecmp.cmp(a / rel, b / rel, shallow=False), rel


def test_existing_output_needs_force(tmp_path: Path) -> None:
    model = str(model_path(INT8_TFLITE["hello_world_int8"]))
    out = tmp_path / "p"
    compile_model(model, CompileOptions(board="nucleo-f746"), out, log=lambda m: None)
    stamp = (out / "tinyc.json").stat().st_mtime_ns
    with pytest.raises(TinycError, match="--force"):
        compile_model(model, CompileOptions(board="nucleo-f746"), out, log=lambda m: None)
    assert (out / "tinyc.json").stat().st_mtime_ns == stamp
    compile_model(model, CompileOptions(board="nucleo-f746", force=True), out, log=lambda m: None)


def test_weights_too_big_for_flash(tmp_path: Path) -> None:
    model = str(model_path(INT8_TFLITE["mobilenet_v2_quantized_1x3x224x224"]))
    out = tmp_path / "p"
    with pytest.raises(TinycError) as e:
        compile_model(model, CompileOptions(board="nucleo-f746"), out, log=lambda m: None)
    msg = str(e.value)
    assert "nucleo-f746" in msg and "flash" in msg and "bytes short" in msg
    assert "largest tensors" in msg
    assert not out.exists()


def test_arena_too_big_for_ram(tmp_path: Path) -> None:
    b = graphs.Builder("huge", 0)
    b.act("x", (1, 160, 160, 8))
    b.g.add_tensor(Tensor("y", (1, 160, 160, 8), "int8", None, QuantParams([0.05], [0])))
    b.g.nodes.append(Node("RELU", "relu", ["x"], ["y"]))
    g = b.finish(["x"], ["y"])
    out = tmp_path / "p"
    with pytest.raises(TinycError) as e:
        compile_model(g, CompileOptions(board="stm32f4-discovery"), out, log=lambda m: None)
    assert "arena" in str(e.value) and "bytes" in str(e.value)
    assert not out.exists()
