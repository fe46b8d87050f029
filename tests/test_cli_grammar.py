"""Issue 15's command-line defects, one test each: calibration that cannot silently go wrong
(seeded draw, the quality gate, --min-sqnr, --eval-samples), one option grammar (-o, --debug
anywhere), inputs checked against the model, run / validate saying what they compared and
using stored expected outputs, estimate's terms and plot, usable board memory, TFLM fetches
that fail fast offline."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import INT8_TFLITE, REPO, model_path

from tinyc.cli import main

SINE = REPO / "examples" / "sine"
README = (REPO / "README.md").read_text()
HAVE_ARM = shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")
needs_arm = pytest.mark.skipif(
    not HAVE_ARM, reason="arm-none-eabi-gcc and qemu-system-arm are not installed"
)


def tinyc(*args: object, cwd: Path | None = None, env: dict | None = None):
    return subprocess.run(
        [sys.executable, "-m", "tinyc.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


def one_line_error(r: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinyc: error: "), r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def sine_project(tmp_path_factory) -> Path:
    """README quick start, command 1, with -o in a temporary directory."""
    out = tmp_path_factory.mktemp("sine") / "sine"
    r = tinyc(
        "compile", "examples/sine/sine.onnx", "--calibration", "examples/sine/calibration.npy",
        "--board", "nucleo-f746", "-o", out, "--json", cwd=REPO,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    (out.parent / "report.json").write_text(r.stdout)
    return out


def _report(project: Path) -> dict:
    return json.loads((project.parent / "report.json").read_text())


# -- calibration, the quality gate -------------------------------------------------------------


def test_readme_command_1_gives_the_sine_with_sqnr_at_least_30_db(sine_project):
    assert "tinyc compile examples/sine/sine.onnx --calibration examples/sine/calibration.npy " \
        "--board nucleo-f746 -o build/sine" in README  # fmt: skip
    q = _report(sine_project)["quantization"]
    (out,) = q["outputs"]
    assert out["sqnr_db"] >= 30.0, out
    assert q["quality"]["ok"] and q["quality"]["warning"] is None
    assert (q["calibration_samples"], q["eval_samples"]) == (100, 64)
    # the project remembers it, for tinyc run
    manifest = json.loads((sine_project / "tinyc.json").read_text())
    assert manifest["quantization"]["outputs"][0]["sqnr_db"] >= 30.0


def test_calibration_is_a_seeded_draw_not_file_order():
    from tinyc.frontend import load_model
    from tinyc.passes.calibration import load_calibration, split_samples

    g = load_model(SINE / "sine.onnx")
    data = load_calibration(SINE / "calibration.npy", g)  # sorted by x
    cal, held = split_samples(data, None, 64, 100)
    xs = np.array([float(s[0].reshape(-1)[0]) for s in cal])
    assert (len(cal), len(held)) == (100, 64)
    assert xs.min() < 0.5 and xs.max() > 5.5  # the whole period, not its first half
    again, _ = split_samples(data, None, 64, 100)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(cal, again, strict=True))
    ids = {id(s) for s in cal}
    assert not any(id(s) in ids for s in held)
    # a short file keeps a fifth apart
    assert [len(p) for p in split_samples(data[:50], None, 64, 100)] == [40, 10]


def test_file_order_calibration_is_caught_with_its_cause():
    """What the quick start did before: the first 100 samples of a sorted file."""
    from tinyc.frontend import load_model
    from tinyc.passes.calibration import load_calibration
    from tinyc.passes.quantize import QuantOptions, quantize
    from tinyc.quality import judge

    g = load_model(SINE / "sine.onnx")
    data = load_calibration(SINE / "calibration.npy", g)
    q, report = quantize(g, data[:100], QuantOptions(), data[100:164])
    verdict = report.quality
    assert not verdict.ok and verdict.shortfalls[0].metric == "sqnr_db"
    assert verdict.causes[0].kind == "range" and "input 'x'" in verdict.causes[0].text
    text = report.format_text()
    assert text.splitlines()[-3].startswith("WARNING: int8 quality below the gate")
    assert "likely cause: range not covered" in text
    assert judge(report, q, min_sqnr=30.0).errors


def test_compile_warns_prominently_and_json_carries_it(tmp_path, monkeypatch, capsys):
    import tinyc.quality as quality

    monkeypatch.setitem(quality.MIN_SQNR_DB, "regression", 60.0)  # the sine's 33 dB fails
    args = ["compile", str(SINE / "sine.onnx"), "--calibration", str(SINE / "calibration.npy"),
            "--board", "nucleo-f746"]  # fmt: skip
    assert main([*args, "-o", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-3].startswith("WARNING: int8 quality below the gate on 64 held-out samples")
    assert "< 60 dB" in out[-3] and out[-2].startswith("  likely cause: ")
    assert "layer 'dense" in out[-2]  # no range or sample problem: the layer is named
    assert main([*args, "-o", str(tmp_path / "b"), "--json"]) == 0
    cap = capsys.readouterr()
    quality_json = json.loads(cap.out)["quantization"]["quality"]
    assert not quality_json["ok"] and quality_json["warning"].startswith("int8 quality below")
    assert quality_json["causes"] and "WARNING" in cap.err


def test_min_sqnr_is_an_error_and_nothing_is_written(tmp_path):
    r = tinyc(
        "compile", SINE / "sine.onnx", "--calibration", SINE / "calibration.npy",
        "--board", "nucleo-f746", "-o", tmp_path / "p", "--min-sqnr", "60",
    )  # fmt: skip
    one_line_error(r, "--min-sqnr 60 dB", "output 'y' SQNR", "nothing written")
    assert not (tmp_path / "p").exists()


def test_eval_samples_sets_the_held_out_split(tmp_path):
    r = tinyc(
        "compile", SINE / "sine.onnx", "--calibration", SINE / "calibration.npy",
        "--board", "nucleo-f746", "-o", tmp_path / "p", "--eval-samples", "30", "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    q = json.loads(r.stdout)["quantization"]
    assert (q["calibration_samples"], q["eval_samples"]) == (100, 30)
    assert "--eval-samples" in README and "20 dB" in README and "90 %" in README


# -- one grammar -------------------------------------------------------------------------------


def test_o_is_the_output_directory_in_every_spelling(sine_project, tmp_path):
    for i, spelling in enumerate(("-o", "--output", "--output-dir")):
        r = tinyc("infer", sine_project, "-i", SINE / "x_1.npy", spelling, tmp_path / f"i{i}")
        assert r.returncode == 0, r.stderr
        assert (tmp_path / f"i{i}" / "output_0.npy").exists()
    r = tinyc(
        "compile", INT8_TFLITE_HELLO(), "--board", "nucleo-f746", "--output-dir", tmp_path / "c"
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "c" / "tinyc.json").exists()
    for cmd in ("compile", "run", "infer"):
        help_text = tinyc(cmd, "--help").stdout
        assert "-o, --output, --output-dir DIR" in help_text, cmd


def INT8_TFLITE_HELLO() -> Path:  # noqa: N802
    return model_path(INT8_TFLITE["hello_world_int8"])


def test_debug_is_accepted_after_the_subcommand():
    for args in (["--debug", "inspect", "/no/such.tflite"], ["inspect", "/no/such.tflite",
                                                              "--debug"]):  # fmt: skip
        r = tinyc(*args)
        assert r.returncode != 0 and "Traceback" in r.stderr and "no such file" in r.stderr
        assert "No such option" not in r.stderr


def test_run_of_a_missing_directory_says_so():
    line = one_line_error(tinyc("run", "/no/such/dir"), "/no/such/dir", "does not exist")
    assert "needs --board" not in line
    one_line_error(tinyc("run", SINE / "sine.onnx"), "--board")


@pytest.mark.parametrize(
    ("array", "needle"),
    [
        (np.zeros((1, 1, 1), np.float32), "float32[1, 1, 1]"),  # wrong rank, same size
        (np.zeros((1, 1), np.int16), "int16[1, 1]"),  # wrong dtype
        (np.zeros((2,), np.int8), "int8[2]"),
    ],
)
def test_run_and_infer_check_inputs_against_the_model(sine_project, tmp_path, array, needle):
    x = tmp_path / "x.npy"
    np.save(x, array)
    for cmd in (["run", sine_project, "-i", x], ["infer", sine_project, "-i", x, "-o", tmp_path]):
        line = one_line_error(tinyc(*cmd), "input 'x' takes int8[1, 1]", "the file holds", needle)
        assert "float32[1, 1], quantized" in line
    assert not (tmp_path / "output_0.npy").exists()


def test_factory_contract_is_in_the_readme():
    assert "file.py:factory" in README and "(module,\nexample_inputs)" in README
    assert "example_inputs` attribute" in README and "@weights.pt" in README


# -- run / validate say what they compared -------------------------------------------------------


@needs_arm
@pytest.mark.qemu
def test_run_says_what_it_compared(sine_project, tmp_path):
    np.save(tmp_path / "x.npy", np.array([[4.5]], np.float32))
    r = tinyc("run", sine_project, "-i", tmp_path / "x.npy")
    assert r.returncode == 0, r.stderr
    assert "firmware vs int8 reference interpreter: bit-exact (1 case)" in r.stdout
    assert re.search(r"int8 vs float model \(at compile time, on 64 held-out samples\): "
                     r"'y' SQNR \d\d\.\d dB", r.stdout)  # fmt: skip
    assert "float32 values quantized to int8" in r.stdout
    report = json.loads(tinyc("run", sine_project, "--json").stdout)
    assert [c["compared"] for c in report["compared"]] == [
        "firmware vs int8 reference",
        "int8 vs float model",
    ]


def _fake_project(sine_project: Path):
    from tinyc.manifest import read_manifest
    from tinyc.project import load_project_graph
    from tinyc.runner import EmulatedProject

    manifest = read_manifest(sine_project)
    return EmulatedProject(sine_project, load_project_graph(sine_project), manifest, Path("x"))


def test_stored_expected_outputs_exact_for_int8_tolerance_for_float(sine_project, tmp_path):
    from tinyc.runner import CaseResult, compare_expected

    ep = _fake_project(sine_project)
    got = np.array([[-121]], np.int8)
    case = CaseResult("c", True, 0, None, 0, [got])
    np.save(tmp_path / "output_0.npy", got)
    res = compare_expected(ep, [("c", case, [tmp_path / "output_0.npy"])])
    assert res["ok"] and res["outputs"][0]["tolerance"].startswith("exact")
    np.save(tmp_path / "output_0.npy", got + np.int8(1))  # one LSB off: int8 is exact
    res = compare_expected(ep, [("c", case, [tmp_path / "output_0.npy"])])
    assert not res["ok"] and res["outputs"][0]["mismatching_cases"] == ["c"]
    # float expected values (from the float model) of a model tinyc quantized: the gate
    real = float((-121 - ep.graph.tensors["y"].quant.zp) * ep.graph.tensors["y"].quant.s)
    np.save(tmp_path / "output_0.npy", np.array([[real * 1.01]], np.float32))
    res = compare_expected(ep, [("c", case, [tmp_path / "output_0.npy"])])
    assert res["ok"] and "SQNR >= 20 dB" in res["outputs"][0]["tolerance"]
    np.save(tmp_path / "output_0.npy", np.array([[-real]], np.float32))
    assert not compare_expected(ep, [("c", case, [tmp_path / "output_0.npy"])])["ok"]
    # a model that came quantized: one output step of tolerance
    del ep.manifest["quantization"]
    step = float(ep.graph.tensors["y"].quant.s)
    np.save(tmp_path / "output_0.npy", np.array([[real + 0.5 * step]], np.float32))
    res = compare_expected(ep, [("c", case, [tmp_path / "output_0.npy"])])
    assert res["ok"] and "one output step" in res["outputs"][0]["tolerance"]
    np.save(tmp_path / "output_0.npy", np.array([[real + 3 * step]], np.float32))
    assert not compare_expected(ep, [("c", case, [tmp_path / "output_0.npy"])])["ok"]


@needs_arm
@pytest.mark.qemu
def test_validate_compares_with_stored_outputs(tmp_path):
    model = INT8_TFLITE_HELLO()
    cases = tmp_path / "cases"
    shutil.copytree(model.parent / "reference_io" / model.stem, cases)
    r = tinyc("validate", model, "--board", "nucleo-f746", "--inputs", cases)
    assert r.returncode == 0, r.stderr
    assert "firmware vs stored expected output_<i>.npy (4 cases)" in r.stdout
    assert "ok, bit-exact (tolerance: exact (integer outputs))" in r.stdout
    bad = sorted(cases.iterdir())[1]
    y = np.load(bad / "output_0.npy")
    np.save(bad / "output_0.npy", (y.astype(np.int16) + 3).clip(-128, 127).astype(np.int8))
    r = tinyc("validate", model, "--board", "nucleo-f746", "--inputs", cases, "--json")
    assert r.returncode == 1
    report = json.loads(r.stdout)
    assert report["bit_exact"] and not report["ok"]  # the firmware equals the reference
    stored = report["compared"][-1]
    assert stored["outputs"][0]["mismatching_cases"] == [bad.name]


# -- estimate, boards ---------------------------------------------------------------------------


def test_estimate_uses_one_set_of_terms(tmp_path):
    r = tinyc("estimate", model_path(INT8_TFLITE["kws_ref_model"]), "--board", "nucleo-f746")
    text = r.stdout
    j = json.loads(
        tinyc(
            "estimate", model_path(INT8_TFLITE["kws_ref_model"]), "--board", "nucleo-f746",
            "--json",
        ).stdout
    )  # fmt: skip
    flash_totals = re.findall(r"flash: ([\d,]+) B", text)
    assert flash_totals == [f"{j['flash_bytes']:,}"]
    assert "its firmware" not in text and "inside)" not in text
    assert f"RAM:   {j['ram_bytes']:,} B = arena {j['arena_bytes']:,}" in text
    assert f"kernel scratch: at most {j['parts']['scratch']:,} at one time" in text
    assert j["parts"]["scratch"] <= j["arena_bytes"]
    assert max(x["scratch_bytes"] for x in j["layers"]) == j["parts"]["scratch"]
    assert "live B: arena bytes in use while the layer runs" in text


def test_plot_says_where_it_wrote_and_explains_itself(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from tinyc.estimate import estimate_model
    from tinyc.estimate.plot import plot_estimate

    png = tmp_path / "kws.png"
    r = tinyc("estimate", model_path(INT8_TFLITE["kws_ref_model"]), "--board", "nucleo-f746",
              "--plot", png)  # fmt: skip
    assert r.returncode == 0 and f"plot: wrote {png}" in r.stdout and png.stat().st_size > 0
    figs = []
    monkeypatch.setattr(plt, "close", lambda fig=None: figs.append(fig))
    plot_estimate(estimate_model(str(model_path(INT8_TFLITE["kws_ref_model"])), "nucleo-f746"),
                  tmp_path / "again.png")  # fmt: skip
    top, bottom = figs[0].axes
    assert not top.texts  # no labels inside the boxes to overlap
    labels = [t.get_text() for t in top.get_legend().get_texts()]
    assert "kernel scratch" in labels and any(s.startswith("peak: layer") for s in labels)
    assert any(s.startswith("tensor, coloured by the op") for s in labels)
    assert [t.get_text() for t in bottom.get_legend().get_texts()][:1] == ["CONV_2D"]


def test_boards_show_usable_memory():
    r = tinyc("boards")
    row = next(ln for ln in r.stdout.splitlines() if ln.startswith("disco-f746ng"))
    assert re.search(r"216 MHz\s+1 MB\s+336 KB\s+qspi 16 MB, sdram 8 MB", row), row
    disco = next(b for b in json.loads(tinyc("boards", "--json").stdout)["boards"]
                 if b["name"] == "disco-f746ng")  # fmt: skip
    assert disco["usable_flash_bytes"] == 1 << 20


# -- TFLM / CMSIS-NN sources -----------------------------------------------------------------


def test_readme_says_how_to_point_at_tflm_and_cmsis_nn():
    for var in ("TFLM_DIR", "CMSIS_NN_DIR", "FLATBUFFERS_DIR", "GEMMLOWP_DIR", "RUY_DIR"):
        assert var in README, var
    assert "qemu-system-arm make gcc g++ cmake" in README
    assert "make gcc g++ cmake" in (REPO / ".ci" / "run").read_text()


def test_build_errors_name_the_cmake_message_and_no_temporary_path(tmp_path):
    from tinyc.emulate.build import _first_error

    log = (
        "-- Detecting CXX compile features - done\n"
        "CMake Error at cmake/tflm.cmake:32 (message):\n"
        "  tinyc: cannot fetch tflite_micro: https://github.com is not reachable\n"
        '  ("Couldn\'t resolve host name"); set TFLM_DIR to a local copy\n'
        "Call Stack (most recent call first):\n"
        '-- Configuring incomplete, errors occurred!\nSee also "/tmp/x/CMakeError.log".\n'
    )
    assert _first_error(log) == (
        "cannot fetch tflite_micro: https://github.com is not reachable "
        '("Couldn\'t resolve host name"); set TFLM_DIR to a local copy'
    )


@pytest.mark.skipif(not shutil.which("cmake") or not shutil.which("g++"), reason="needs cmake")
def test_tflm_fetch_fails_fast_offline_naming_the_variable(tmp_path, monkeypatch):
    """No TFLM_DIR and no network (a proxy that refuses): one line within seconds, not
    FetchContent's 90 s of retries."""
    from tinyc.compiler import CompileOptions, compile_model
    from tinyc.emulate.build import BuildError, build_firmware

    project = tmp_path / "p"
    compile_model(str(INT8_TFLITE_HELLO()), CompileOptions("nucleo-f746", backend="tflm"),
                  project, log=lambda m: None)  # fmt: skip
    text = (project / "cmake" / "tflm.cmake").read_text()
    assert "tinyc_check_reachable" in text and "FETCHCONTENT_QUIET OFF" in text
    for k in [k for k in os.environ if k.endswith("_DIR") or k.endswith("_LIB")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    t0 = time.monotonic()
    with pytest.raises(BuildError) as e:
        build_firmware(project, "host", label="the project of hello_world_int8")
    assert time.monotonic() - t0 < 30
    msg = str(e.value)
    assert msg.startswith("the host build of the project of hello_world_int8 failed: ")
    assert "set TFLM_DIR to a local copy" in msg and str(tmp_path) not in msg
    # the failed configure leaves no cache behind: setting TFLM_DIR afterwards takes effect
    assert not (project / "build" / "cmake-host" / "CMakeCache.txt").exists()


@pytest.mark.skipif(not shutil.which("cmake") or not shutil.which("gcc"), reason="needs cmake")
def test_cmsis_nn_fetch_fails_fast_offline_naming_the_variable(tmp_path, monkeypatch):
    from tinyc.compiler import CompileOptions, compile_model

    project = tmp_path / "p"
    compile_model(str(INT8_TFLITE_HELLO()), CompileOptions("nucleo-f746", kernels="cmsis-nn"),
                  project, log=lambda m: None)  # fmt: skip
    monkeypatch.delenv("CMSIS_NN_DIR", raising=False)
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    t0 = time.monotonic()
    r = subprocess.run(
        ["cmake", "-S", str(project), "-B", str(tmp_path / "b"), "-DTINYC_TARGET=host"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode != 0 and time.monotonic() - t0 < 30
    from tinyc.emulate.build import _first_error

    msg = _first_error(r.stdout + r.stderr)
    assert "cannot fetch CMSIS-NN" in msg and "set CMSIS_NN_DIR" in msg, msg
