"""tinyc estimate: report, JSON, plot, CLI, errors and timing (fast), and the accuracy claims
against real ``tinyc validate`` runs in QEMU (``qemu`` marker)."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import INT8_TFLITE, MODELS, model_path
from graphs import all_cases

from tinyc.backends.cmsis.codegen import generate_model, prepare_graph
from tinyc.boards import list_boards, load_board
from tinyc.cli import main
from tinyc.estimate import estimate_model
from tinyc.estimate.calibration import core_calibration, load_data
from tinyc.estimate.csource import read_model_c
from tinyc.estimate.features import ALIASES, KERNELS
from tinyc.frontend import load_model
from tinyc.manifest import total_macs

KWS = INT8_TFLITE["kws_ref_model"]
JSON_KEYS = {"sram_bytes", "flash_bytes", "macs", "instructions", "cycles", "latency_ms", "layers"}


@pytest.fixture(scope="module")
def kws():
    return estimate_model(str(model_path(KWS)), "nucleo-f746")


def test_json_report_is_consistent(kws):
    j = kws.to_json()
    assert set(j) >= JSON_KEYS
    g = load_model(str(model_path(KWS)))
    assert j["macs"] == total_macs(g)
    assert j["macs"] == 2_656_768  # the shared models' README figure
    assert len(j["layers"]) == len(prepare_graph(g).nodes)
    assert j["instructions"] == pytest.approx(
        sum(x["instructions"] for x in j["layers"]), abs=len(j["layers"]) + 100
    )
    assert j["latency_ms"] == pytest.approx(1e3 * j["cycles"] / 216e6, rel=1e-3)
    elf = j["elf"]
    ram = elf["data"] + elf["bss"] + elf["arena"] + elf["stack"]
    assert j["sram_bytes"] == j["ram_bytes"] == ram
    assert j["flash_bytes"] == elf["text"] + elf["rodata"] + elf["data"]
    # the arena is the memory planner's own, the constants what model.c declares
    gen = generate_model(g, g.name)
    assert j["arena_bytes"] == gen.plan.arena_bytes
    assert j["parts"]["constants"] >= gen.const_bytes
    assert max(x["live_bytes"] for x in j["layers"]) <= j["arena_bytes"]
    assert all(x["instructions"] > 0 for x in j["layers"] if x["kernel"])
    assert {r["region"] for r in j["budget"]} == {"flash", "dtcm", "sram1"}


def test_text_report(kws):
    text = kws.format_text()
    for word in ("CONV_2D", "DEPTHWISE_CONV_2D", "total:", "flash:", "RAM:", "budget", "sram1"):
        assert word in text


def test_right_shift_rule_matches_the_op_definition():
    """The estimate's vectorized right_only test agrees with the op's own requant()."""
    import numpy as np

    from tinyc.estimate.features import right_shifts_only
    from tinyc.ir.ops import get_op

    checked = 0
    for name in ("kws_ref_model", "vww_96_int8", "ad01_int8", "pretrainedResnet_quant"):
        g = load_model(str(model_path(INT8_TFLITE[name])))
        for n in g.nodes:
            if n.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
                want = bool(np.all(get_op(n.op).requant(n, g).shift <= -1))
                assert right_shifts_only(n, g) == want, n.name
                checked += 1
    assert checked > 50


def test_every_board_and_core_is_calibrated():
    data = load_data()
    for b in list_boards():
        core = core_calibration(b)
        assert b.name in data["boards"], f"{b.name}: run bench/estimate_calibrate.py"
        assert core.note == "", core.note


def test_every_kernel_of_the_backend_has_features_and_a_calibration():
    """Guards the cost model against new kernels: every function the C backend calls for the
    test graphs and shared models must have features and coefficients on every core."""
    graphs = list(all_cases())
    for rel in INT8_TFLITE.values():
        if (MODELS / rel).exists() and "mobilenet" not in rel:
            graphs.append(load_model(str(MODELS / rel)))
    seen: set[str] = set()
    for g in graphs:
        for kernels in ("plain", "dsp", "mve"):
            src = read_model_c(generate_model(g, g.name, kernels).files["model/model.c"])
            seen.update(k for i in src.calls for k in src.kernels(i))
    assert seen, "no kernel calls found"
    missing = sorted(k for k in seen if k not in KERNELS)
    assert not missing, f"kernels without features: {missing}"
    for name, core in load_data()["cores"].items():
        uncal = sorted(k for k in seen if ALIASES.get(k, k) not in core["kernels"])
        assert not uncal, f"{name}: kernels without calibration: {uncal}"


def test_budget_over_flash_and_float_model():
    big = model_path(INT8_TFLITE["mobilenet_v2_quantized_1x3x224x224"])
    est = estimate_model(str(big), "nucleo-f746")
    flash = next(r for r in est.budget if r.name == "flash")
    assert not flash.to_json()["fits"] and flash.percent > 300
    assert "OVER" in est.format_text()
    f = estimate_model(str(model_path("mlperf_tiny_vww_mobilenetv1/vww_96_float.tflite")),
                       "nucleo-l4r5zi")  # fmt: skip
    i = estimate_model(str(model_path(INT8_TFLITE["vww_96_int8"])), "nucleo-l4r5zi")
    assert any("float model" in n for n in f.notes)
    assert f.macs == i.macs
    assert f.sizes["arena"] == pytest.approx(i.sizes["arena"], rel=0.05)


def test_cli_text_json_and_plot(tmp_path, capsys):
    png = tmp_path / "kws.png"
    rc = main(["estimate", str(model_path(KWS)), "--board", "nucleo-l4r5zi", "--json",
               "--plot", str(png)])  # fmt: skip
    assert rc == 0
    j = json.loads(capsys.readouterr().out)
    assert set(j) >= JSON_KEYS and j["board"] == "nucleo-l4r5zi" and j["core"] == "cortex-m4"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    rc = main(["estimate", str(model_path(KWS)), "-b", "rpi-pico"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "cortex-m0plus" in out and "plain kernels" in out


def test_cli_errors(tmp_path, capsys):
    pt = model_path("pytorch_bcresnet_sc2/model-sc-2.pt")
    rc = main(["estimate", str(pt), "--board", "nucleo-f746"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tinyc: error:") and "\n" not in err
    assert "unknown model format '.pt'" in err
    assert main(["estimate", str(model_path(KWS)), "--board", "no-such-board"]) == 2
    assert "unknown board" in capsys.readouterr().err
    bad = tmp_path / "x.png"
    bad.mkdir()
    assert main(["estimate", str(model_path(KWS)), "-b", "nucleo-f746", "--plot", str(bad)]) == 2


def test_tflm_backend_estimate():
    est = estimate_model(str(model_path(KWS)), "nucleo-f746", "tflm")
    c = estimate_model(str(model_path(KWS)), "nucleo-f746")
    j = est.to_json()
    assert set(j) >= JSON_KEYS and j["backend"] == "tflm"
    assert j["instructions"] > c.instructions  # the interpreter and CMSIS-NN cost more here
    assert j["flash_bytes"] > c.sizes["flash"]
    assert any("TFLM" in a or "TFLite Micro" in a for a in est.assumptions + est.notes)


def test_npu_board_takes_vela_figures_for_the_npu_layers():
    """corstone-300 with --backend tflm: the layers Vela puts on the Ethos-U55 carry Vela's
    cycles (no CPU instructions), the total is Vela's, the model in flash is Vela's."""
    from tinyc.backends.tflm.vela import estimate_npu

    board = load_board("corstone-300")
    g = load_model(str(model_path(KWS)))
    vela = estimate_npu(g, board)
    j = estimate_model(g, board, "tflm").to_json()
    assert j["npu"]["cycles_total"] == vela.cycles_total
    npu_layers = [x for x in j["layers"] if x["kernel"] == "ethos-u"]
    assert len(npu_layers) == vela.npu_operators == len(j["layers"])  # kws: all of it
    assert all(x["instructions"] == 0 for x in npu_layers)
    assert sum(x["cycles"] for x in npu_layers) > 0.9 * vela.cycles_total
    npu_cycles = vela.cycles_total + j["instructions"] * load_data_tflm_cpi(j["core"])
    assert j["cycles"] == pytest.approx(npu_cycles, rel=1e-3)
    assert j["latency_ms"] == pytest.approx(1e3 * j["cycles"] / board.clock_hz, rel=1e-3)
    assert j["parts"]["constants"] >= vela.off_chip_flash_bytes
    assert any("ethos-u55" in n for n in j["notes"])
    # the C backend does not use the NPU: a CPU estimate
    c = estimate_model(g, board).to_json()
    assert c["npu"] is None and c["instructions"] > 100_000


def load_data_tflm_cpi(core: str) -> float:
    from tinyc.estimate.tflm import load_tflm_data

    return float(load_tflm_data()["cores"][core]["cpi"])


def test_every_shared_model_gets_an_estimate_or_a_one_line_error():
    """Every model file of ../shared/models: an estimate or a clean error (exit 2). How long
    it takes is a benchmark's business (bench/estimate_accuracy.py), not a test's."""
    files = sorted(p for ext in ("*.tflite", "*.onnx", "*.pt", "*.pt2") for p in MODELS.rglob(ext)
                   if "onnx_node_tests" not in str(p))  # fmt: skip
    if not files:
        pytest.skip(f"no shared models under {MODELS}")
    for p in files:
        rc = main(["estimate", str(p), "--board", "nucleo-f746", "--json"])
        assert rc in (0, 2), p


# -- accuracy against real builds and QEMU runs -------------------------------------------------

HAVE_ARM = shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")


@pytest.mark.qemu
@pytest.mark.skipif(not HAVE_ARM, reason="arm-none-eabi-gcc and qemu-system-arm are needed")
@pytest.mark.parametrize("board", ["nucleo-l4r5zi", "nucleo-f746"])
@pytest.mark.parametrize("model", ["kws_ref_model", "ad01_int8", "hello_world_int8"])
def test_estimate_matches_validate(model, board):
    from tinyc.compiler import CompileOptions
    from tinyc.runner import validate_model

    path = str(model_path(INT8_TFLITE[model]))
    est = estimate_model(path, board).to_json()
    meas = validate_model(path, board, None, 1, CompileOptions(board=board))
    assert est["flash_bytes"] == pytest.approx(meas["flash_bytes"], rel=0.03)
    assert est["ram_bytes"] == pytest.approx(meas["ram_bytes"], rel=0.03)
    assert est["instructions"] == pytest.approx(meas["instructions_per_inference"], rel=0.15)
    assert est["stack_used_bytes"] == pytest.approx(meas["stack_used_bytes"], rel=0.25)
    assert load_board(board).core == est["core"]
