"""The streaming form: a sequence fed one time step at a time, state carried in state
tensors, equals the whole-sequence result (bit for bit in int8), in the interpreter and in
firmware that runs one step per invocation."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rnn_graphs
from conftest import REPO, model_path

from tinyc import interpreter
from tinyc.compiler import CompileOptions, compile_model
from tinyc.errors import TinycError, UnsupportedError
from tinyc.frontend import load_model
from tinyc.frontend.tflite import load_tflite
from tinyc.modelio import random_inputs
from tinyc.passes.streaming import run_streaming, split_steps, to_streaming

LSTM_INT8 = "tflm_mnist_lstm/trained_lstm_int8.tflite"
KWS = REPO / "tests" / "models" / "kws_rnn.py"
needs_arm = pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="arm-none-eabi-gcc and qemu-system-arm are not installed",
)


def test_tflite_lstm_streams_bit_exact() -> None:
    """The LSTM runs per step; the flatten + classifier after it once per sequence."""
    g = load_tflite(model_path(LSTM_INT8))
    plan = to_streaming(g)
    assert [n.op for n in plan.step.nodes] == ["LSTM"] and plan.tail is not None
    assert plan.tail_node == "model/sequential/flatten/Reshape" and plan.steps == 28
    assert len(list(plan.step.states())) == 2
    for seed in range(5):
        xs = random_inputs(g, seed)
        want = interpreter.run(g, xs)
        got = run_streaming(plan, xs)
        for name in g.outputs:
            np.testing.assert_array_equal(got[name], want[name])


@pytest.mark.parametrize("case", rnn_graphs.CASES, ids=[c.name for c in rnn_graphs.CASES])
def test_recurrent_layers_stream(case: rnn_graphs.Case) -> None:
    for g in (rnn_graphs.float_graph(case), rnn_graphs.int8_graph(case)):
        if case.reverse:
            with pytest.raises(UnsupportedError, match="backwards in time"):
                to_streaming(g)
            return
        if case.state_input:
            with pytest.raises(UnsupportedError, match="initial state from"):
                to_streaming(g)
            return
        plan = to_streaming(g)
        assert plan.tail is None
        xs = random_inputs(g, 1) if g.is_quantized else rnn_graphs.samples(g, 1, 2)[0]
        want, got = interpreter.run(g, xs), run_streaming(plan, xs)
        for name in g.outputs:
            if g.is_quantized:
                np.testing.assert_array_equal(got[name], want[name])
            else:
                np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("factory", ["kws_lstm", "kws_gru"])
def test_last_step_classifier_streams_per_step(factory: str) -> None:
    """y[:, -1] + a classifier: per step the classifier reads the current hidden state, so
    the whole model streams and its last step gives the sequence's answer."""
    pytest.importorskip("torch")
    g = load_model(f"{KWS}:{factory}")
    plan = to_streaming(g)
    assert plan.tail is None and plan.time_axis == {g.inputs[0]: 1}
    x = np.random.default_rng(0).standard_normal(g.tensors[g.inputs[0]].shape).astype(np.float32)
    want, got = interpreter.run(g, [x]), run_streaming(plan, [x])
    np.testing.assert_allclose(got[g.outputs[0]], want[g.outputs[0]], rtol=1e-5, atol=1e-6)


def test_no_recurrent_layer_is_a_clear_error() -> None:
    g = load_tflite(model_path("tflm_hello_world_sine/hello_world_int8.tflite"))
    with pytest.raises(TinycError, match="no recurrent layer"):
        to_streaming(g)


def test_compile_stream_refuses_a_tail(tmp_path: Path) -> None:
    with pytest.raises(TinycError, match="mixes time steps"):
        compile_model(
            str(model_path(LSTM_INT8)),
            CompileOptions(board="nucleo-f746", stream=True),
            tmp_path / "p",
            log=lambda m: None,
        )


def test_split_steps_cuts_whole_sequences() -> None:
    g = rnn_graphs.int8_graph(rnn_graphs.CASES[0])
    step = to_streaming(g).step
    xs = random_inputs(g, 0)
    steps = split_steps(step, xs)
    assert len(steps) == 5 and steps[0][0].shape == step.tensors[step.inputs[0]].shape
    assert len(split_steps(step, steps[2])) == 1


def test_infer_stream_cli(tmp_path: Path) -> None:
    rel = LSTM_INT8
    x = tmp_path / "x.npy"
    np.save(x, random_inputs(load_tflite(model_path(rel)), 3)[0])
    r = subprocess.run(
        [sys.executable, "-m", "tinyc.cli", "infer", str(model_path(rel)), "-i", str(x),
         "-o", str(tmp_path / "out"), "--stream", "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["stream"]["steps"] == 28 and info["stream"]["max_abs_diff"] == 0


@needs_arm
@pytest.mark.qemu
@pytest.mark.parametrize("board", ["nucleo-f746", "corstone-300"])
def test_streaming_firmware_runs_a_sequence_bit_exact(board: str, tmp_path: Path) -> None:
    """One firmware run, one invocation per step, state in persistent RAM: the per-step
    outputs (and the last one) equal the interpreter's, and the whole-sequence model's."""
    from tinyc.runner import EmulatedProject

    case = rnn_graphs.Case("GRU", time=6, input=8, hidden=12, final_state=True, seed=21)
    g = rnn_graphs.int8_graph(case)
    project = tmp_path / "p"
    compile_model(g, CompileOptions(board=board, stream=True), project, log=lambda m: None)
    manifest = json.loads((project / "tinyc.json").read_text())
    assert manifest["streaming"]["steps"] == 6 and manifest["memory_plan"]["state_bytes"] > 0
    ep = EmulatedProject.build(project)
    xs = random_inputs(g, 4)
    r = ep.run_case("sequence", xs)
    assert r.bit_exact, r.mismatches
    whole = interpreter.run(g, xs)
    for got, name in zip(r.outputs, g.outputs, strict=True):
        np.testing.assert_array_equal(got.reshape(whole[name].shape), whole[name])
