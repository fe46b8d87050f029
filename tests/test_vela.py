"""Ethos-U: Vela on what tinyc writes, the report read from Vela's own outputs, CPU fallback.

Vela (``ethos-u-vela``) is the reference: every figure in the report is checked against a
second output of Vela (its printed summary) or against the model files themselves.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import FAST_INT8, INT8_TFLITE, model_path
from test_tflite_writer import Builder

from tinyc.backends.tflm.cpp import model_facts
from tinyc.backends.tflm.vela import (
    VelaConfig,
    estimate_npu,
    parse_fallback_reasons,
    run_vela,
)
from tinyc.backends.tflm.writer import write_tflite
from tinyc.boards import load_board
from tinyc.errors import TinycError
from tinyc.frontend.tflite import load_tflite
from tinyc.ir.graph import Node
from tinyc.ir.tensor import Tensor
from tinyc.tflite_schema import schema

pytest.importorskip("ethosu.vela")

CORSTONE = load_board("corstone-300")


def _printed_kib(log: str, what: str) -> float:
    m = re.search(rf"^Total {what} used\s+([\d.]+) KiB", log, re.MULTILINE)
    assert m, f"Vela printed no 'Total {what} used' line"
    return float(m.group(1))


def _dequantize_graph():
    """An int8 conv whose output is dequantized to float: Vela cannot place DEQUANTIZE."""
    b = Builder(True, seed=3)
    g = b.g
    x = b.input("x", (1, 8, 8, 4))
    w = b.weights("w", (4, 3, 3, 4), 0)
    c = b.op("CONV_2D", [x, w, b.bias("b", x, w, 4)], {"pads": (1, 1, 1, 1)})
    g.add_tensor(Tensor("yf", (1, 8, 8, 4), "float32"))
    g.nodes.append(Node("DEQUANTIZE", "deq", [c], ["yf"]))
    return b.finish("yf")


def _check_report(data: bytes, result, name: str) -> None:
    r = result.report
    log = result.log
    assert r.cycles_npu > 0 and r.cycles_total >= r.cycles_npu, name
    assert r.npu_clock_hz == 500e6  # Ethos_U55_High_End_Embedded's core clock
    assert r.inference_time_s == pytest.approx(r.cycles_total / r.npu_clock_hz, rel=1e-3)
    assert r.inference_time_board_s == pytest.approx(r.cycles_total / CORSTONE.clock_hz)
    # memory figures agree with what Vela printed (2 decimals of KiB)
    assert r.sram_bytes / 1024 == pytest.approx(_printed_kib(log, "SRAM"), abs=0.006)
    assert r.off_chip_flash_bytes / 1024 == pytest.approx(
        _printed_kib(log, "Off-chip Flash"), abs=0.006
    )
    # the split is counted on the operators of the file tinyc wrote
    written = schema().ModelT.InitFromPackedBuf(bytearray(data), 0).subgraphs[0].operators
    assert r.operators == len(written)
    assert r.npu_operators + len(r.cpu_operators) == r.operators
    kinds = [u.name for u in model_facts(result.model).ops]
    assert "CUSTOM:ethos-u" in kinds
    assert sorted(k for k in kinds if k != "CUSTOM:ethos-u") == sorted(
        c.op for c in r.cpu_operators
    )


@pytest.mark.parametrize("model", FAST_INT8)
def test_every_int8_model_compiles_for_the_npu(model):
    g = load_tflite(model_path(INT8_TFLITE[model]))
    data = write_tflite(g)
    result = run_vela(
        data, VelaConfig.for_npu(CORSTONE.npu.name), model, board_clock_hz=CORSTONE.clock_hz
    )
    _check_report(data, result, model)
    assert result.report.operators == len(g.nodes)
    assert result.report.macs > 0


@pytest.mark.slow
def test_mobilenet_v2_compiles_for_the_npu():
    model = "mobilenet_v2_quantized_1x3x224x224"
    data = write_tflite(load_tflite(model_path(INT8_TFLITE[model])))
    result = run_vela(
        data, VelaConfig.for_npu(CORSTONE.npu.name), model, board_clock_hz=CORSTONE.clock_hz
    )
    _check_report(data, result, model)


def test_unsupported_operator_falls_back_to_the_cpu_with_vela_s_reason():
    g = _dequantize_graph()
    data = write_tflite(g)
    result = run_vela(data, VelaConfig.for_npu("ethos-u55-128"), "deq", CORSTONE.clock_hz)
    r = result.report
    assert r.operators == 2 and r.npu_operators == 1
    assert [(c.op, c.name) for c in r.cpu_operators] == [("DEQUANTIZE", "yf")]
    assert r.cpu_operators[0].reasons and "Unsupported" in r.cpu_operators[0].reasons[0]
    assert "CPU fallback: DEQUANTIZE 'yf'" in r.format()


def test_fallback_reasons_parser():
    log = (
        "Warning (supported operators) operator: TANH, ofm: 'a b'\n"
        "Reason: first\nReason: second\n\n"
        "Network summary for x\n"
        "Warning (supported operators) operator: DEQUANTIZE, ofm: 'y'\n"
        "Reason: Unsupported opType\n"
    )
    assert parse_fallback_reasons(log) == {"a b": ["first", "second"], "y": ["Unsupported opType"]}


def test_npu_configurations():
    assert VelaConfig.for_npu("ethos-u55-128").system_config == "Ethos_U55_High_End_Embedded"
    assert VelaConfig.for_npu("ethos-u65-256").memory_mode == "Dedicated_Sram"
    assert VelaConfig.for_npu("ethos-u85-256", memory_mode="Sram_Only").memory_mode == "Sram_Only"
    with pytest.raises(TinycError, match="unknown NPU"):
        VelaConfig.for_npu("hexagon-v68")


def test_vela_failure_is_one_clear_error():
    with pytest.raises(TinycError, match="Vela failed"):
        run_vela(b"\x00" * 64 + b"TFL3" + b"\x00" * 64, VelaConfig.for_npu("ethos-u55-128"))


def test_estimate_uses_vela_for_the_npu_part():
    g = load_tflite(model_path(INT8_TFLITE["kws_ref_model"]))
    r = estimate_npu(g, CORSTONE)
    assert r.accelerator == "ethos-u55-128" and r.npu_operators == len(g.nodes)
    with pytest.raises(TinycError, match="no NPU"):
        estimate_npu(g, load_board("mps2-an386"))


def test_compile_for_corstone_300_reports_the_npu_part(tmp_path):
    from tinyc.compiler import CompileOptions, compile_model

    g = _dequantize_graph()
    g.name = "deq"
    out = tmp_path / "p"
    report = compile_model(g, CompileOptions(board="corstone-300", backend="tflm"), out)
    text = report.format_text()
    assert "1 of 2 on the NPU, 1 on the CPU" in text
    assert "CPU fallback: DEQUANTIZE 'yf'" in text
    assert "cycles:" in text and "SRAM" in text and "off-chip flash" in text
    manifest = json.loads((out / "tinyc.json").read_text())
    assert manifest["vela"]["npu_operators"] == 1
    assert manifest["npu_operators"] == ["CUSTOM:ethos-u", "DEQUANTIZE"]
    vela_model = (out / "model" / "model_vela.tflite").read_bytes()
    model_cc = (out / "model" / "model.cc").read_text()
    assert "AddEthosU()" in model_cc and "AddDequantize()" in model_cc
    # the board build embeds Vela's model, the QEMU twin and host builds tinyc's own
    data_cc = (out / "model" / "model_data.cc").read_text()
    first = data_cc.split("#if defined(TINYC_NPU)")[1].split("#else")[0]
    body = re.findall(r"0x([0-9a-f]{2})", first)
    assert bytes(int(h, 16) for h in body) == vela_model
    assert np.array_equal(
        np.frombuffer((out / "model" / "model.tflite").read_bytes(), np.uint8),
        np.frombuffer(write_tflite(g), np.uint8),
    )
