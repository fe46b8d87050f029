"""A quantized graph's float tail (DEQUANTIZE -> SOFTMAX -> output, as QDQ exports leave it)
runs in int8 for the C backend: tinyc.passes.int8_tail."""

from __future__ import annotations

import shutil
from pathlib import Path

import graphs
import numpy as np
import pytest
from conftest import ONNX_CNN, model_path

from tinyc.compiler import CompileOptions, compile_model
from tinyc.frontend import load_model
from tinyc.interpreter import run
from tinyc.ir.graph import Node
from tinyc.ir.tensor import Tensor
from tinyc.ir.verify import verify
from tinyc.modelio import random_inputs
from tinyc.passes.int8_tail import quantize_float_tail

QDQ_KWS = ONNX_CNN["kws_ref_model_qdq"]


def test_qdq_softmax_runs_in_int8_within_half_a_quantum():
    g = load_model(str(model_path(QDQ_KWS)))
    q, notes = quantize_float_tail(g)
    verify(q)
    assert len(notes) == 1 and "SOFTMAX" in notes[0] and "Softmax" in notes[0]
    # only the boundary converts: every op but the last DEQUANTIZE computes in int8
    floats = [n.op for n in q.nodes if q.out(n).dtype == "float32"]
    assert floats == ["DEQUANTIZE"] and q.nodes[-1].op == "DEQUANTIZE"
    assert q.tensors[q.outputs[0]].dtype == "float32" and q.outputs == g.outputs
    soft = q.nodes[-2]
    assert soft.op == "SOFTMAX" and q.out(soft).quant.zero_point[0] == -128
    assert [n.op for n in g.nodes][-2:] == ["DEQUANTIZE", "SOFTMAX"]  # g is unchanged
    worst = 0.0
    for seed in range(10):
        xs = random_inputs(g, seed)
        a, b = run(g, xs)[g.outputs[0]], run(q, xs)[q.outputs[0]]
        worst = max(worst, float(np.abs(a - b).max()))
    assert 0 < worst <= 0.5 / 256  # the int8 softmax rounds to its 1/256 grid


def test_ops_needing_calibration_stay_float():
    """A float FULLY_CONNECTED after the DEQUANTIZE would need ranges: left alone (the
    backend then names it), and a float graph passes through."""
    g = graphs.fully_connected(7, 1, 16, 8)
    y = g.outputs[0]
    g.add_tensor(Tensor("yf", g.tensors[y].shape, "float32"))
    g.add_tensor(Tensor("w2", (4, 8), "float32", data=np.ones((4, 8), np.float32)))
    g.add_tensor(Tensor("z", (1, 4), "float32"))
    g.nodes += [
        Node("DEQUANTIZE", "deq", [y], ["yf"]),
        Node("FULLY_CONNECTED", "fc2", ["yf", "w2", ""], ["z"], {"activation": "NONE"}),
    ]
    g.outputs = ["z"]
    verify(g)
    q, notes = quantize_float_tail(g)
    assert notes == [] and [n.op for n in q.nodes] == [n.op for n in g.nodes]
    f = load_model(str(model_path("onnx_mnist8/mnist-8.onnx")))
    assert quantize_float_tail(f) == (f, [])


@pytest.mark.qemu
@pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="arm-none-eabi-gcc and qemu-system-arm are needed",
)
def test_qdq_model_compiles_and_runs_bit_exact_in_qemu(tmp_path: Path):
    from tinyc.runner import EmulatedProject

    report = compile_model(
        str(model_path(QDQ_KWS)), CompileOptions(board="nucleo-f746"), tmp_path / "p",
        log=lambda m: None,
    )  # fmt: skip
    assert any("SOFTMAX" in n for n in report.notes)
    ep = EmulatedProject.build(tmp_path / "p")
    results = [ep.run_case(str(s), random_inputs(ep.graph, s)) for s in range(2)]
    assert all(r.bit_exact for r in results), [r.mismatches for r in results]
