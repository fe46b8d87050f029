"""The command line as users meet it: outputs, JSON, exit statuses, one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import INT8_TFLITE, ONNX_CNN, REPO, model_path, reference_cases

SINE = REPO / "examples" / "sine"
HAVE_ARM = shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")
needs_arm = pytest.mark.skipif(
    not HAVE_ARM, reason="arm-none-eabi-gcc and qemu-system-arm are not installed"
)


def tinyc(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tinyc.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


def assert_clean_error(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinyc: error: "), r.stderr
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_version_and_help() -> None:
    r = tinyc("--version")
    assert r.returncode == 0 and "tinyc, version" in r.stdout
    r = tinyc("--help")
    for cmd in ("compile", "run", "validate", "inspect", "infer", "boards"):
        assert cmd in r.stdout


def test_inspect_tflite_and_onnx_json() -> None:
    r = tinyc("inspect", model_path(INT8_TFLITE["kws_ref_model"]), "--json")
    info = json.loads(r.stdout)
    assert info["totals"]["macs"] == 2_656_768 and info["totals"]["nodes"] == 13
    r = tinyc("inspect", model_path(ONNX_CNN["mnist-8"]))
    assert r.returncode == 0 and "CONV_2D" in r.stdout and "786,560 MACs" in r.stdout
    # the ONNX input keeps the file's NCHW shape at the boundary
    info = json.loads(tinyc("inspect", model_path(ONNX_CNN["mnist-8"]), "--json").stdout)
    assert info["inputs"][0]["shape"] == [1, 1, 28, 28]


def test_infer_writes_outputs_in_the_files_layout(tmp_path: Path) -> None:
    rel = ONNX_CNN["model_vww"]
    case = reference_cases(rel)[0]
    out = tmp_path / "out"
    r = tinyc("infer", model_path(rel), "-i", case / "input_0.npy", "-o", out, "--json")
    assert r.returncode == 0, r.stderr
    listing = json.loads(r.stdout)["outputs"]
    y = np.load(out / "output_0.npy")
    assert list(y.shape) == listing[0]["shape"]
    np.testing.assert_allclose(y, np.load(case / "output_0.npy"), rtol=1e-4, atol=1e-5)
    # an existing directory is never overwritten without --force
    assert_clean_error(
        tinyc("infer", model_path(rel), "-i", case / "input_0.npy", "-o", out), "--force"
    )


@pytest.mark.parametrize(
    "args, needles",
    [
        (["inspect", "/nonexistent/model.tflite"], ["no such file"]),
        (["compile", "x.tflite", "--board", "no-such-board", "-o", "p"], []),
        (["run", "."], ["not a tinyc project"]),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path: Path, args, needles) -> None:
    (tmp_path / "x.tflite").write_bytes(b"\x00" * 64)
    assert_clean_error(tinyc(*args, cwd=tmp_path), *needles)


def test_damaged_and_unsupported_models(tmp_path: Path) -> None:
    data = model_path(INT8_TFLITE["kws_ref_model"]).read_bytes()
    bad = tmp_path / "cut.tflite"
    bad.write_bytes(data[: len(data) // 3])
    assert_clean_error(tinyc("inspect", bad), "cut.tflite")
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Celu", ["x"], ["y"], name="celu_1")]  # no translation
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    odd = tmp_path / "odd.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), odd)
    r = tinyc("compile", odd, "--board", "nucleo-f746", "-o", tmp_path / "g")
    assert_clean_error(r, "unsupported operator", "Celu (celu_1)")
    assert not (tmp_path / "g").exists()


def test_float_model_needs_calibration(tmp_path: Path) -> None:
    r = tinyc("compile", SINE / "sine.onnx", "--board", "nucleo-f746", "-o", tmp_path / "p")
    assert_clean_error(r, "--calibration")
    assert not (tmp_path / "p").exists()


def test_compile_float_onnx_with_calibration_and_infer_the_project(tmp_path: Path) -> None:
    p = tmp_path / "sine"
    r = tinyc(
        "compile",
        SINE / "sine.onnx",
        "--calibration",
        SINE / "calibration.npy",
        "--board",
        "nucleo-f746",
        "-o",
        p,
        "--json",
    )
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["quantization"]["outputs"] and report["arena_bytes"] > 0
    for f in (
        "model/model.c",
        "model/model.h",
        "Makefile",
        "CMakeLists.txt",
        "tinyc.json",
        "graph.json",
        "renode",
        ".github/workflows",
    ):
        assert (p / f).exists(), f
    # the int8 graph of the project answers like the float model, within quantization error
    out = tmp_path / "o"
    assert tinyc("infer", p, "-i", SINE / "x_1.npy", "-o", out).returncode == 0
    y = np.load(out / "output_0.npy")
    manifest = json.loads((p / "tinyc.json").read_text())
    scale, zp = manifest["outputs"][0]["scale"], manifest["outputs"][0]["zero_point"]
    assert abs((float(y.reshape(-1)[0]) - zp) * scale - np.sin(1.0)) < 0.1


@needs_arm
@pytest.mark.qemu
def test_run_and_validate_report_the_issue_keys(tmp_path: Path) -> None:
    p = tmp_path / "sine"
    assert (
        tinyc(
            "compile",
            SINE / "sine.onnx",
            "--calibration",
            SINE / "calibration.npy",
            "--board",
            "nucleo-l4r5zi",
            "-o",
            p,
        ).returncode
        == 0
    )
    r = tinyc("run", p, "-i", SINE / "x_1.npy", "-o", tmp_path / "out", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["bit_exact"] and report["machine"] == "mps2-an386"
    assert (tmp_path / "out" / "output_0.npy").exists()
    rel = INT8_TFLITE["kws_ref_model"]
    cases = model_path(rel).parent / "reference_io" / model_path(rel).stem
    r = tinyc("validate", model_path(rel), "--board", "nucleo-f746", "--inputs", cases, "--json")
    assert r.returncode == 0, r.stderr
    v = json.loads(r.stdout)
    for key in (
        "bit_exact",
        "mismatches",
        "cases",
        "instructions_per_inference",
        "macs",
        "arena_bytes",
        "flash_bytes",
        "ram_bytes",
    ):
        assert key in v
    assert v["bit_exact"] and v["mismatches"] == 0 and len(v["cases"]) == 2
    assert v["instructions_per_inference"] > 1_000_000 and v["macs"] == 2_656_768
