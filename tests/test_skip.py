"""State-update skipping (--skip-threshold): a closed gate holds the recurrent layer's state
and output bit for bit, T <= 0 (or a stream that always changes) is no skipping, and the
generated C (host and QEMU) equals the interpreter over a stream with skipped frames."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rnn_graphs
from c_host import build_host

from tinyc.backends.cmsis.codegen import generate_model
from tinyc.compiler import CalibrationOptions, CompileOptions, compile_model
from tinyc.errors import TinycError
from tinyc.interpreter import State
from tinyc.interpreter import run as run_graph
from tinyc.ir.graph import Graph
from tinyc.ir.ops.skip import guard_of
from tinyc.modelio import random_inputs
from tinyc.passes.skip_state import add_skip_gates, skip_stats
from tinyc.passes.streaming import split_steps, to_streaming

needs_arm = pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="arm-none-eabi-gcc and qemu-system-arm are not installed",
)
LSTM = rnn_graphs.Case("LSTM", time=12, input=8, hidden=10, final_state=True, seed=7)
GRU = rnn_graphs.Case("GRU", time=12, input=8, hidden=12, final_state=True, seed=21)
T = 0.3  # real units of the layer's input: a few int8 steps for these cases


def slow_stream(g: Graph, n: int, seed: int) -> list[list[np.ndarray]]:
    """``n`` steps of the step graph's int8 input: every other step jumps, the ones in
    between move by at most one int8 step (under T: skipped)."""
    t = g.tensors[g.inputs[0]]
    rng = np.random.default_rng(seed)
    frame = rng.integers(-100, 100, t.shape)
    out = []
    for k in range(n):
        if k % 2 == 0 or k % 5 == 1:
            frame = rng.integers(-100, 100, t.shape)
        else:
            frame = np.clip(frame + rng.integers(-1, 2, t.shape), -128, 127)
        out.append([frame.astype(np.int8)])
    return out


def step_graph(case: rnn_graphs.Case) -> Graph:
    return to_streaming(rnn_graphs.int8_graph(case)).step


def recurrent_states(g: Graph) -> list[str]:
    """The recurrent layers' own states (not the gates' frames and flags)."""
    gate_states = {n.inputs[1] for n in g.nodes if n.op == "SKIP_GATE"}
    gate_states |= {n.outputs[0] for n in g.nodes if n.op == "SKIP_GATE"}
    return [t.name for t in g.states() if t.name not in gate_states]


@pytest.mark.parametrize("case", [LSTM, GRU], ids=["lstm", "gru"])
def test_no_skip_is_bit_identical(case: rnn_graphs.Case) -> None:
    """T <= 0 adds no gate; a gate that never closes (every frame moves) changes nothing."""
    step = step_graph(case)
    assert add_skip_gates(step, 0.0) is step and add_skip_gates(step, -1.0) is step
    gated = add_skip_gates(step, 1e-6)  # one int8 step: closes only on an identical frame
    assert [n.op for n in gated.nodes][:2] == ["SKIP_GATE", case.op]
    stream = split_steps(step, random_inputs(rnn_graphs.int8_graph(case), 3))
    assert skip_stats(gated, [stream]).skip_rate == 0
    s0, s1 = State(step), State(gated)
    for xs in stream:
        a, b = run_graph(step, xs, state=s0), run_graph(gated, xs, state=s1)
        for name in step.outputs:
            assert a[name].tobytes() == b[name].tobytes()
        for name in recurrent_states(step):
            assert s0.values[name].tobytes() == s1.values[name].tobytes()


@pytest.mark.parametrize("case", [LSTM, GRU], ids=["lstm", "gru"])
def test_skipped_frame_holds_state_and_output(case: rnn_graphs.Case) -> None:
    """A closed gate: the layer's outputs are the previous step's, its state is untouched,
    bit for bit; equal to running the ungated layer on the open steps only and holding."""
    step = step_graph(case)
    gated = add_skip_gates(step, T)
    rec = next(n for n in gated.nodes if guard_of(n))
    stream = slow_stream(step, 24, 1)
    stats = skip_stats(gated, [stream])
    assert 0.2 < stats.skip_rate < 0.8 and stats.macs_mean < stats.macs_total
    s_gated, s_hold = State(gated), State(step)
    held: dict[str, np.ndarray] | None = None
    skipped = 0
    for xs in stream:
        before = {n: s_gated.values[n].copy() for n in recurrent_states(gated)}
        values = run_graph(gated, xs, keep_all=True, state=s_gated)
        opened = bool(values[guard_of(rec)][0])
        if opened:
            held = run_graph(step, xs, state=s_hold)  # the reference runs only open steps
        else:
            skipped += 1
            for n, v in before.items():
                assert s_gated.values[n].tobytes() == v.tobytes()
        assert held is not None
        for name in step.outputs:
            assert values[name].tobytes() == held[name].tobytes()
        for name in recurrent_states(step):
            assert s_gated.values[name].tobytes() == s_hold.values[name].tobytes()
        # the one-step output is the hidden state (what a closed gate holds)
        h = s_gated.values[rec.inputs[get_state_slot(rec)]]
        assert values[rec.outputs[0]].tobytes() == h.tobytes()
    assert skipped == round(stats.skip_rate * len(stream))


def get_state_slot(node) -> int:
    from tinyc.ir.ops import get_op

    return get_op(node.op).state_slots[0]


HOST_STREAM_MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
#include "model.h"
/* usage: host_stream STEPS inputs.bin outputs.bin: one tinyc_invoke() per step */
int main(int argc, char **argv) {
  int n, t, i;
  FILE *fi, *fo;
  if (argc != 4) return 2;
  n = atoi(argv[1]);
  fi = fopen(argv[2], "rb");
  fo = fopen(argv[3], "wb");
  if (!fi || !fo) return 3;
  for (t = 0; t < n; ++t) {
    for (i = 0; i < TINYC_NUM_INPUTS; ++i)
      if (fread(tinyc_inputs[i].data, 1, tinyc_inputs[i].bytes, fi) != tinyc_inputs[i].bytes)
        return 3;
    tinyc_invoke();
    for (i = 0; i < TINYC_NUM_OUTPUTS; ++i)
      fwrite(tinyc_outputs[i].data, 1, tinyc_outputs[i].bytes, fo);
  }
  fclose(fi);
  fclose(fo);
  return 0;
}
"""


@pytest.mark.parametrize("case", [LSTM, GRU], ids=["lstm", "gru"])
@pytest.mark.parametrize("target", ["plain", "dsp"])
def test_host_c_equals_interpreter_with_skipped_frames(
    case: rnn_graphs.Case, target: str, tmp_path: Path
) -> None:
    gated = add_skip_gates(step_graph(case), T)
    gen = generate_model(gated, "skip", target)
    body = gen.files["model/model.c"]
    assert "if (((int8_t *)(tinyc_state + " in body  # the kernel call really is branched around
    exe = build_host(gen, tmp_path, main_source=HOST_STREAM_MAIN)
    g = gen.graph
    stream = slow_stream(gated, 30, 2)
    assert skip_stats(gated, [stream]).skip_rate > 0.2
    with open(tmp_path / "in.bin", "wb") as f:
        for xs in stream:
            for x in xs:
                f.write(np.ascontiguousarray(x).tobytes())
    r = subprocess.run([str(exe), str(len(stream)), str(tmp_path / "in.bin"),
                        str(tmp_path / "out.bin")], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    raw = (tmp_path / "out.bin").read_bytes()
    state, at = State(gated), 0
    for xs in stream:
        want = run_graph(gated, xs, state=state)
        for name in g.outputs:
            n = g.tensors[name].nbytes
            assert raw[at : at + n] == want[name].tobytes()
            at += n
    assert at == len(raw)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tinyc.cli", *args], capture_output=True, text=True
    )


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    from conftest import model_path

    lstm = str(model_path("tflm_mnist_lstm/trained_lstm_int8.tflite"))
    sine = str(model_path("tflm_hello_world_sine/hello_world_int8.tflite"))
    for args in (
        ["compile", lstm, "-b", "nucleo-f746", "-o", str(tmp_path / "a"), "--skip-threshold", "1"],
        ["compile", sine, "-b", "nucleo-f746", "-o", str(tmp_path / "b"), "--stream",
         "--skip-threshold", "1"],
        ["estimate", lstm, "-b", "nucleo-f746", "--skip-threshold", "1"],
    ):  # fmt: skip
        r = _cli(*args)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("tinyc: error:"), r.stderr


def test_compile_reports_skip_rate(tmp_path: Path) -> None:
    g = rnn_graphs.int8_graph(GRU)
    seq = np.concatenate([xs[0] for xs in slow_stream(step_graph(GRU), GRU.time, 3)], axis=1)
    x = tmp_path / "x.npy"
    np.save(x, seq)
    logs: list[str] = []
    cal = CalibrationOptions(path=str(x))  # the calibration stream: one sequence
    opts = CompileOptions(board="nucleo-f746", stream=True, skip_threshold=T, calibration=cal)
    report = compile_model(g, opts, tmp_path / "p", log=logs.append)
    skip = json.loads((tmp_path / "p" / "tinyc.json").read_text())["streaming"]["skip"]
    assert skip["steps"] == GRU.time and 0 < skip["skip_rate"] < 1
    assert skip["macs_per_step_mean"] < skip["macs_per_step_worst"]
    assert skip["max_output_diff"] >= 0  # what skipping costs, in the same report
    assert any(n.startswith("skip: threshold") for n in report.notes)
    with pytest.raises(TinycError, match="needs --stream"):
        compile_model(g, CompileOptions(board="nucleo-f746", skip_threshold=T), tmp_path / "q")


@needs_arm
@pytest.mark.qemu
def test_skip_firmware_in_qemu(tmp_path: Path) -> None:
    """One firmware run on the M7 twin, one invocation per step, some steps skipped: bit
    exact with the interpreter, and fewer instructions than without skipping."""
    from tinyc.runner import EmulatedProject

    g = rnn_graphs.int8_graph(GRU)
    seq = np.concatenate([xs[0] for xs in slow_stream(step_graph(GRU), GRU.time, 4)], axis=1)
    counts = {}
    for t in (0.0, T):
        project = tmp_path / f"p{t}"
        opts = CompileOptions(board="nucleo-f746", stream=True, skip_threshold=t)
        compile_model(g, opts, project, log=lambda m: None)
        r = EmulatedProject.build(project).run_case("stream", [seq])
        assert r.bit_exact, r.mismatches
        counts[t] = r.instructions
    assert counts[T] < counts[0.0]


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_learned_skip_cells(kind: str) -> None:
    """Skip-LSTM / Skip-GRU: always updating equals the plain cell; a closed gate in eval
    copies the state bit for bit without running the cell; the gate learns (straight
    through) and the budget penalty reaches it."""
    torch = pytest.importorskip("torch")
    from tinyc.torch import SkipGRU, SkipLSTM, budget_penalty, skip_rate

    torch.manual_seed(0)
    layer = (SkipLSTM if kind == "lstm" else SkipGRU)(6, 8, gate_bias=1.0)
    x = torch.randn(1, 7, 6)
    # p starts at 1 and the first step opens; with the gate's weights at 0 and a large bias
    # every step opens: the plain cell's result
    torch.nn.init.zeros_(layer.cell.gate.weight)
    torch.nn.init.constant_(layer.cell.gate.bias, 20.0)
    y, _, u = layer(x)
    assert skip_rate(u) == 0
    state = None
    for t in range(x.shape[1]):
        if kind == "lstm":
            state = layer.cell.cell(x[:, t], state)
            h = state[0]
        else:
            state = h = layer.cell.cell(x[:, t], state)
        torch.testing.assert_close(y[:, t], h, rtol=0, atol=0)
    # a closed gate in eval: nothing computed, the state held
    layer.eval()
    rec = layer.cell.initial_state(1)[:-1]
    rec = tuple(torch.randn_like(r) for r in rec)
    calls = []
    hook = layer.cell.cell.register_forward_hook(lambda *a: calls.append(1))
    h, new, u = layer.cell(x[:, 0], (*rec, torch.zeros(1, 1)))
    hook.remove()
    assert not calls and float(u) == 0
    for a, b in zip(new[:-1], rec, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(h, rec[0])
    # training: the gate gets gradients through round() and the budget penalty
    layer.train()
    torch.nn.init.normal_(layer.cell.gate.weight)
    torch.nn.init.constant_(layer.cell.gate.bias, 0.0)
    y, _, u = layer(x)
    (y.sum() + budget_penalty(u, 1.0)).backward()
    assert layer.cell.gate.weight.grad is not None and layer.cell.gate.weight.grad.abs().sum() > 0


def test_infer_and_estimate_cli(tmp_path: Path) -> None:
    """infer --stream --skip-threshold reports the skip rate and its difference from not
    skipping; estimate --stream --skip-threshold --stream-input gives mean < worst."""
    pytest.importorskip("torch")
    from conftest import REPO

    kws = f"{REPO / 'tests' / 'models' / 'kws_rnn.py'}:kws_gru"
    rng = np.random.default_rng(0)
    seq = np.repeat(rng.standard_normal((2, 7, 10)), 7, axis=1)[:, :49].astype(np.float32)
    np.save(tmp_path / "one.npy", seq[:1])
    np.save(tmp_path / "two.npy", seq)
    r = _cli("infer", kws, "-i", str(tmp_path / "one.npy"), "-o", str(tmp_path / "out"),
             "--stream", "--skip-threshold", "0.25", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)["stream"]
    assert info["skip"]["steps"] == 49 and info["skip"]["skip_rate"] > 0.5
    assert info["skip_max_abs_diff"] >= 0
    r = _cli("estimate", kws, "-b", "nucleo-f746", "--stream", "--skip-threshold", "0.25",
             "--stream-input", str(tmp_path / "two.npy"), "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    skip = json.loads(r.stdout)["skip"]
    assert skip["steps"] == 98 and skip["skip_rate"] > 0.5
    assert skip["latency_ms_mean"] < skip["latency_ms_worst"]
