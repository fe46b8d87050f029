"""Learned state-update skipping (tinyc.torch.SkipGRU / SkipLSTM -> SKIP_GATE_LEARNED): the
float graph follows PyTorch's eval frame by frame, skipped frames included; the int8 step
graph's C equals the interpreter bit for bit (host and QEMU) over a stream with skipped
frames, which hold state and output; a gate that never closes is the plain layer."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from c_host import build_host
from test_skip import HOST_STREAM_MAIN

torch = pytest.importorskip("torch")

from tinyc.backends.cmsis.codegen import generate_model  # noqa: E402
from tinyc.errors import UnsupportedError  # noqa: E402
from tinyc.frontend.torch.loader import export_module  # noqa: E402
from tinyc.interpreter import State  # noqa: E402
from tinyc.interpreter import run as run_graph  # noqa: E402
from tinyc.ir.graph import Graph  # noqa: E402
from tinyc.ir.ops.skip import guard_of  # noqa: E402
from tinyc.ir.verify import require_supported  # noqa: E402
from tinyc.passes.quantize import QuantOptions, quantize  # noqa: E402
from tinyc.passes.streaming import to_streaming  # noqa: E402
from tinyc.torch import SkipGRU, SkipLSTM  # noqa: E402

torch.set_num_threads(1)
needs_arm = pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="arm-none-eabi-gcc and qemu-system-arm are not installed",
)
FEATURES, HIDDEN, STEPS = 5, 8, 12
FLOAT_ATOL = 1e-5  # float32 interpreter vs PyTorch (observed: ~3e-8)


class Net(torch.nn.Module):
    """A skip layer and a linear read-out per frame: y [1, T, 3]."""

    def __init__(self, kind: str, gate_bias: float, seed: int, gate_std: float = 0.3) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.rnn = (SkipLSTM if kind == "lstm" else SkipGRU)(FEATURES, HIDDEN, gate_bias)
        torch.nn.init.normal_(self.rnn.cell.gate.weight, std=gate_std)
        self.out = torch.nn.Linear(HIDDEN, 3)

    def forward(self, x):
        return self.out(self.rnn(x)[0])


def frames(seed: int, n: int = STEPS) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, n, FEATURES)).astype(np.float32)


def torch_eval(net: Net, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        net.eval()
        y = net(torch.from_numpy(x)).numpy()
        _, _, u = net.rnn(torch.from_numpy(x))
    return y, u.numpy()[0]


def graph_of(net: Net) -> Graph:
    return export_module(net, (torch.from_numpy(frames(0)),), "skipnet")


def gate_of(g: Graph) -> str:
    return next(guard_of(n) for n in g.nodes if guard_of(n))


def rec_states(g: Graph) -> list[str]:
    """The recurrent layer's own states (not the gate's q and decision)."""
    gate = next(n for n in g.nodes if n.op == "SKIP_GATE_LEARNED")
    return [t.name for t in g.states() if t.name not in gate.inputs[3:]]


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_float_follows_pytorch_frame_by_frame(kind: str) -> None:
    net = Net(kind, gate_bias=-1.5, seed=1)
    g = graph_of(net)
    ops = [n.op for n in g.nodes]
    assert ops[:2] == ["SKIP_GATE_LEARNED", kind.upper()]
    x = frames(3)
    want, updates = torch_eval(net, x)
    assert 0 < updates.sum() < STEPS  # the gate closes on some frames and opens on others
    np.testing.assert_allclose(run_graph(g, [x])[g.outputs[0]], want, rtol=0, atol=FLOAT_ATOL)
    step = to_streaming(g).step
    state = State(step)
    for t in range(STEPS):
        values = run_graph(step, [x[:, t : t + 1]], keep_all=True, state=state)
        assert int(values[gate_of(step)][0]) == int(updates[t]), t
        got = values[step.outputs[0]]
        np.testing.assert_allclose(got, want[:, t : t + 1], rtol=0, atol=FLOAT_ATOL)


def _int8_step(net: Net) -> tuple[Graph, Graph]:
    g = graph_of(net)
    q, _ = quantize(g, [[frames(100 + k)] for k in range(6)], QuantOptions())
    return q, to_streaming(q).step


def _int8_stream(q: Graph, x: np.ndarray) -> list[np.ndarray]:
    t = q.tensors[q.inputs[0]]
    assert t.quant is not None
    xq = np.clip(np.round(x / float(t.quant.s)) + t.quant.zp, -128, 127).astype(np.int8)
    return [xq[:, k : k + 1] for k in range(xq.shape[1])]


@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("target", ["plain", "dsp"])
def test_int8_host_c_equals_interpreter_skipped_frames_hold(
    kind: str, target: str, tmp_path: Path
) -> None:
    net = Net(kind, gate_bias=-1.5, seed=2)
    q, step = _int8_step(net)
    stream = _int8_stream(q, frames(7, 30))
    gate, rec = gate_of(step), next(n for n in step.nodes if guard_of(n))
    # the interpreter: a closed gate leaves the layer's state and output as they were
    state, outs, opened = State(step), [], []
    held = None
    for xs in stream:
        before = {n: state.values[n].copy() for n in rec_states(step)}
        values = run_graph(step, [xs], keep_all=True, state=state)
        opened.append(int(values[gate][0]))
        if not opened[-1]:
            for n, v in before.items():
                assert state.values[n].tobytes() == v.tobytes()
            assert values[rec.outputs[0]].tobytes() == held
        held = values[rec.outputs[0]].tobytes()
        outs.append(values[step.outputs[0]].tobytes())
    assert 5 < sum(opened) < len(stream) - 5, opened
    # the generated C on the host, one tinyc_invoke() per frame
    gen = generate_model(step, "skipnet", target)
    assert "tinyc_sigmoid16(v" in gen.files["model/model.c"]
    exe = build_host(gen, tmp_path, main_source=HOST_STREAM_MAIN)
    (tmp_path / "in.bin").write_bytes(b"".join(x.tobytes() for x in stream))
    r = subprocess.run([str(exe), str(len(stream)), str(tmp_path / "in.bin"),
                        str(tmp_path / "out.bin")], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "out.bin").read_bytes() == b"".join(outs)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_gate_that_never_closes_is_the_plain_layer(kind: str) -> None:
    """Gate bias 20, weights 0: p stays ~1, every frame updates; float equals the plain
    nn.GRU / nn.LSTM, int8 equals the plain layer's int8 graph bit for bit."""
    net = Net(kind, gate_bias=20.0, seed=4, gate_std=0.0)
    cell = net.rnn.cell.cell
    plain_rnn = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(
        FEATURES, HIDDEN, batch_first=True
    )
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(plain_rnn, f"{name}_l0").data.copy_(getattr(cell, name).data)

    class Plain(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn, self.out = plain_rnn, net.out

        def forward(self, x):
            return self.out(self.rnn(x)[0])

    x = frames(5)
    want, updates = torch_eval(net, x)
    assert updates.all()
    with torch.no_grad():
        plain_y = Plain().eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(want, plain_y, rtol=0, atol=1e-6)
    g, gp = graph_of(net), export_module(Plain(), (torch.from_numpy(frames(0)),), "plain")
    np.testing.assert_allclose(run_graph(g, [x])[g.outputs[0]], plain_y, rtol=0, atol=FLOAT_ATOL)
    cal = [[frames(100 + k)] for k in range(6)]
    q, _ = quantize(g, cal, QuantOptions())
    qp, _ = quantize(gp, cal, QuantOptions())
    xs = _int8_stream(q, x)
    step, pstep = to_streaming(q).step, to_streaming(qp).step
    s, ps = State(step), State(pstep)
    for k, xk in enumerate(xs):
        got, ref = run_graph(step, [xk], state=s), run_graph(pstep, [xk], state=ps)
        assert got[step.outputs[0]].tobytes() == ref[pstep.outputs[0]].tobytes(), k


def test_refusals_are_plain() -> None:
    """Batch > 1 and a compiled p / updates output are refused; the C backend needs the
    streaming form."""
    net = Net("gru", gate_bias=-1.5, seed=1)
    with pytest.raises(UnsupportedError, match="batch 1"):
        require_supported(export_module(net, (torch.zeros(2, 4, FEATURES),), "b2"))

    class Updates(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = net.rnn

        def forward(self, x):
            return self.rnn(x)[2]

    with pytest.raises(UnsupportedError, match="updates"):
        require_supported(export_module(Updates(), (torch.from_numpy(frames(0)),), "u"))
    q, _ = _int8_step(net)
    with pytest.raises(UnsupportedError, match="--stream"):
        generate_model(q, "whole", "plain")


@needs_arm
@pytest.mark.qemu
@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_learned_skip_firmware_in_qemu(kind: str, tmp_path: Path) -> None:
    """--stream firmware on the M7 twin, one invocation per frame: bit exact with the
    interpreter over a stream where the gate closes on some frames, and fewer
    instructions than the same layer whose gate never closes."""
    from tinyc.compiler import CalibrationOptions, CompileOptions, compile_model
    from tinyc.runner import EmulatedProject

    cal = tmp_path / "cal.npy"
    np.save(cal, np.concatenate([frames(100 + k, 20) for k in range(4)]))
    seq = frames(9, 20)
    counts = {}
    for name, bias, std in (("skip", -1.5, 0.3), ("open", 20.0, 0.0)):
        net = Net(kind, gate_bias=bias, seed=6, gate_std=std)
        g = export_module(net, (torch.from_numpy(seq),), name)
        _, updates = torch_eval(net, seq)
        project = tmp_path / name
        opts = CompileOptions(
            board="nucleo-f746", stream=True, calibration=CalibrationOptions(path=str(cal))
        )
        compile_model(g, opts, project, log=lambda m: None)
        ep = EmulatedProject.build(project)
        r = ep.run_case("stream", [np.concatenate(_int8_stream(ep.graph, seq), axis=1)])
        assert r.bit_exact, r.mismatches
        counts[name] = (r.instructions, int(updates.sum()))
    (skip_i, skip_n), (open_i, open_n) = counts["skip"], counts["open"]
    assert open_n == 20 and 0 < skip_n < 20
    assert skip_i < open_i


def test_compile_and_estimate_report_the_learned_skip_rate(tmp_path: Path) -> None:
    """compile --stream: the skip rate of the learned gate on the calibration stream, the
    MACs mean below the worst case and what skipping costs against always updating; the
    estimate without a stream states the worst case, with one the mean latency."""
    from tinyc.compiler import CalibrationOptions, CompileOptions, compile_model
    from tinyc.passes.skip_state import estimate_streaming

    cal = tmp_path / "cal.npy"
    np.save(cal, np.concatenate([frames(100 + k) for k in range(4)]))
    g = graph_of(Net("gru", gate_bias=-1.5, seed=1))
    opts = CompileOptions(
        board="nucleo-f746", stream=True, calibration=CalibrationOptions(path=str(cal))
    )
    report = compile_model(g, opts, tmp_path / "p", log=lambda m: None)
    skip = json.loads((tmp_path / "p" / "tinyc.json").read_text())["streaming"]["skip"]
    assert skip["learned"] and skip["steps"] == 4 * STEPS and 0.2 < skip["skip_rate"] < 0.9
    assert skip["macs_per_step_mean"] < skip["macs_per_step_worst"]
    assert skip["max_output_diff"] > 0  # skipping changes the outputs; the report says by how much
    assert any(n.startswith("skip: learned gate, 48 steps") for n in report.notes)
    est, info = estimate_streaming(g, "nucleo-f746", "cmsis", None, None)
    assert info is not None and info["learned"] and any("learned gate" in n for n in est.notes)
    est, info = estimate_streaming(g, "nucleo-f746", "cmsis", None, str(cal))
    assert info is not None and info["latency_ms_mean"] < info["latency_ms_worst"]


def test_export_routes(tmp_path: Path) -> None:
    """torch.export (with or without no_grad) keeps the layer as one tinyc::skip_gru node, a
    saved .pt2 loads back to the same graph; eval calls that need gradients still run the
    Python loop (the custom operator has no backward) with the same numbers."""
    from tinyc.frontend.torch.loader import load_exported_program

    net = Net("gru", gate_bias=-1.5, seed=1).eval()
    x = torch.from_numpy(frames(3))
    ep = torch.export.export(net, (x,))  # autograd on: still the operator
    targets = [str(n.target) for n in ep.graph.nodes if n.op == "call_function"]
    assert "tinyc.skip_gru.default" in targets
    torch.export.save(ep, str(tmp_path / "m.pt2"))
    g = load_exported_program(tmp_path / "m.pt2")
    assert [n.op for n in g.nodes][:2] == ["SKIP_GATE_LEARNED", "GRU"]
    want, _ = torch_eval(net, x.numpy())
    np.testing.assert_allclose(run_graph(g, [x.numpy()])[g.outputs[0]], want, atol=FLOAT_ATOL)
    xg = x.clone().requires_grad_(True)
    y = net(xg)
    y.sum().backward()
    assert xg.grad is not None
    np.testing.assert_array_equal(y.detach().numpy(), want)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_onnx_export_compiles_the_same(kind: str, tmp_path: Path) -> None:
    """torch.onnx.export with tinyc.torch.onnx_translation_table(): one tinyc.SkipGRU /
    SkipLSTM node, which the ONNX frontend compiles to the same guarded layer; the float
    interpreter follows PyTorch and the gate decides as PyTorch's, frame by frame."""
    pytest.importorskip("onnxscript")
    import warnings

    from tinyc.frontend import load_model
    from tinyc.torch import onnx_translation_table

    net = Net(kind, gate_bias=-1.5, seed=1).eval()
    x = frames(3)
    path = tmp_path / "skip.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(
            net, (torch.from_numpy(x),), dynamo=True, verbose=False,
            custom_translation_table=onnx_translation_table(),
        )  # fmt: skip
    prog.save(str(path))
    g = load_model(str(path))
    assert [n.op for n in g.nodes][:2] == ["SKIP_GATE_LEARNED", kind.upper()]
    want, updates = torch_eval(net, x)
    np.testing.assert_allclose(run_graph(g, [x])[g.outputs[0]], want, rtol=0, atol=FLOAT_ATOL)
    step, state = to_streaming(g).step, None
    state = State(step)
    for t in range(STEPS):
        values = run_graph(step, [x[:, t : t + 1]], keep_all=True, state=state)
        assert int(values[gate_of(step)][0]) == int(updates[t]), t


def test_updates_computed_but_not_returned_compile() -> None:
    """A forward that reads the updates without returning them (dead code that export
    keeps) compiles: the frontend converts only what the outputs depend on."""

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = SkipGRU(5, 8)
            self.fc = torch.nn.Linear(8, 3)

        def forward(self, x):
            y, _, u = self.rnn(x)
            torch.stack([u, u])  # computed, never used
            return self.fc(y)

    torch.manual_seed(0)
    g = export_module(Net().eval(), (torch.zeros(1, 6, 5),))
    assert [n.op for n in g.nodes] == ["SKIP_GATE_LEARNED", "GRU", "FULLY_CONNECTED"]
