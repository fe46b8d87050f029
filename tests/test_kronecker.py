"""KRONECKER_FC: W = sum_r A_r (x) B_r applied as sum_r A_r X B_r^T, never forming W.

Float: the op equals the dense product of the expanded matrix. int8: the C kernel (host,
every target's variant; QEMU on M0+, M4, M7, M55) equals the interpreter's int8 definition
bit for bit; the quantizer's rule keeps int8 close to float."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from c_host import build_host, run_host
from graphs import Builder

from tinyc import interpreter
from tinyc.backends.cmsis.codegen import generate_model
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import get_op
from tinyc.ir.ops.kronecker import expand, inner_max_for
from tinyc.ir.tensor import Tensor
from tinyc.modelio import random_inputs

# (rows, R, p, q, s, t, activation)
SHAPES = [
    (1, 1, 4, 5, 3, 6, "NONE"),
    (1, 2, 8, 8, 16, 16, "RELU"),
    (3, 2, 3, 7, 5, 4, "NONE"),
    (2, 3, 16, 9, 8, 13, "RELU"),
    (1, 2, 32, 4, 4, 32, "NONE"),
]
IDS = [f"r{s[0]}_R{s[1]}_{s[2]}x{s[3]}_{s[4]}x{s[5]}" for s in SHAPES]


def float_graph(rows, rank, p, q, s, t, act="NONE", seed=0, bias=True) -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph(name=f"kron_{seed}", source_format="test")
    g.add_tensor(Tensor("x", (rows, q * t), "float32"))
    g.add_tensor(Tensor("a", (rank, p, q), "float32", rng.normal(size=(rank, p, q)).astype("f4")))
    g.add_tensor(Tensor("b", (rank, s, t), "float32", rng.normal(size=(rank, s, t)).astype("f4")))
    ins = ["x", "a", "b"]
    if bias:
        g.add_tensor(Tensor("bias", (p * s,), "float32", rng.normal(size=p * s).astype("f4")))
        ins.append("bias")
    g.add_tensor(Tensor("y", (rows, p * s), "float32"))
    g.nodes.append(Node("KRONECKER_FC", "kron", ins, ["y"], {"activation": act}))
    g.inputs, g.outputs = ["x"], ["y"]
    return g


def int8_graph(rows, rank, p, q, s, t, act="NONE", seed=0) -> Graph:
    """Random int8 factors and parameters, the output scale set from the accumulator's
    spread so that the outputs use the int8 range."""
    bld = Builder(f"kron_q{seed}", seed)
    x = bld.act("x", (rows, q * t))
    a = bld.weights("a", (rank, p, q), 0)
    b = bld.weights("b", (rank, s, t), 0)
    bias = bld.bias("bias", p * s)
    y = bld.act("y", (rows, p * s))
    g = bld.g
    sx = float(g.tensors[x].quant.s)
    floor = float((sx * g.tensors[a].quant.scale * g.tensors[b].quant.scale).max())
    inner = float(np.float32(floor * bld.rng.uniform(1.0, 300.0)))
    bld.node(
        "KRONECKER_FC",
        [x, a, b, bias],
        [y],
        activation=act,
        inner_scale=inner,
        inner_max=inner_max_for(rank, q),
    )
    g = bld.finish([x], [y])
    # output scale: the accumulator of a random row spans ~ +-4 sigma
    node = g.nodes[0]
    xq = random_inputs(g, 99)[0]
    z = get_op("KRONECKER_FC").inner_int8(node, g, xq, g.tensors[b].data)
    acc = np.einsum("rij,nrjk->nik", g.tensors[a].data.astype(np.int64), z)
    g.tensors[y].quant.scale[:] = np.float32(max(4 * acc.std(), 1.0) * inner / 127)
    return g


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_float_equals_expanded_dense_product(shape) -> None:
    rows, rank, p, q, s, t, act = shape
    g = float_graph(rows, rank, p, q, s, t, act, seed=rank + p)
    x = np.random.default_rng(1).normal(size=(rows, q * t)).astype(np.float32)
    got = interpreter.run(g, [x])["y"]
    w = expand(g.tensors["a"].data, g.tensors["b"].data)
    assert w.shape == (p * s, q * t)
    ref = x.astype(np.float64) @ w.T + g.tensors["bias"].data
    ref = np.maximum(ref, 0) if act == "RELU" else ref
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_expand_is_the_kronecker_product() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(1, 2, 3)), rng.normal(size=(1, 4, 5))
    w = expand(a, b)
    assert w[1 * 4 + 2, 2 * 5 + 3] == pytest.approx(a[0, 1, 2] * b[0, 2, 3])


def test_macs_are_the_two_stage_product() -> None:
    g = float_graph(3, 2, 8, 4, 16, 32)
    assert get_op("KRONECKER_FC").macs(g.nodes[0], g) == 3 * 2 * (4 * 32 * 16 + 8 * 4 * 16)


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_int8_reference_is_the_expanded_product_before_rounding(shape) -> None:
    """Z_r rounds once; with m1 = 1 (inner_scale at its floor) nothing rounds before the
    second product: the accumulator is the expanded int8 matrix times x - zx."""
    rows, rank, p, q, s, t, act = shape
    g = int8_graph(rows, rank, p, q, s, t, act, seed=7)
    node = g.nodes[0]
    a, b = g.tensors["a"], g.tensors["b"]
    sx = float(g.tensors["x"].quant.s)
    # one scale for every factor pair: sx * sa_r * sb_r == S for all r, m1 == 1 exactly
    a.quant.scale[:] = np.float32(0.5)
    b.quant.scale[:] = np.float32(0.25)
    node.attrs["inner_scale"] = float(np.float32(sx * 0.5 * 0.25))
    node.attrs["inner_max"] = 32767
    qp = get_op("KRONECKER_FC").quant_params(node, g)
    assert (qp.mult1 == 1 << 30).all() and (qp.shift1 == 1).all()
    x = random_inputs(g, 5)[0]
    z = get_op("KRONECKER_FC").inner_int8(node, g, x, b.data)
    xm = (x.astype(np.int64) - qp.input_zp).reshape(rows, q, t)
    acc1 = np.einsum("njl,rkl->nrjk", xm, b.data.astype(np.int64))
    np.testing.assert_array_equal(z, np.clip(acc1, -32767, 32767))
    if np.abs(acc1).max() <= 32767:
        w = expand(a.data.astype(np.int64), b.data.astype(np.int64)).astype(np.int64)
        acc = np.einsum("rij,nrjk->nik", a.data.astype(np.int64), z).reshape(rows, -1)
        np.testing.assert_array_equal(acc, xm.reshape(rows, -1) @ w.T)


def _host_check(g: Graph, target: str, tmp_path: Path, seeds=3) -> None:
    gen = generate_model(g, g.name, target)
    assert "tinyc_kron_fc_s8(" in gen.files["model/model.c"]
    exe = build_host(gen, tmp_path)
    for seed in range(seeds):
        case = random_inputs(g, seed)
        ref = interpreter.run(g, case)[g.outputs[0]]
        (got,) = run_host(exe, gen, case)
        np.testing.assert_array_equal(got, ref.reshape(got.shape))


@pytest.mark.parametrize("target", ["dsp", "mve", "plain"])
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_on_host_bit_exact(shape, target: str, tmp_path: Path) -> None:
    g = int8_graph(*shape, seed=len(target) + shape[2])
    out = interpreter.run(g, random_inputs(g, 0))["y"]
    assert len(np.unique(out)) > 4  # the case exercises the int8 range
    _host_check(g, target, tmp_path)


def test_quantized_float_graph_tracks_float(tmp_path: Path) -> None:
    """The quantizer's rule: per-factor int8 scales, calibrated intermediate; int8 follows
    float and the C matches the interpreter."""
    from tinyc.passes.quantize import QuantOptions, quantize

    g = float_graph(1, 2, 8, 8, 16, 16, "NONE", seed=4)
    rng = np.random.default_rng(0)
    samples = [[rng.normal(size=(1, 128)).astype(np.float32)] for _ in range(16)]
    q, report = quantize(g, samples, QuantOptions(), samples[:4])
    (node,) = [n for n in q.nodes if n.op == "KRONECKER_FC"]
    assert q.tensors[node.inputs[1]].quant.scale.size == 2  # one scale per factor
    assert node.attrs["inner_scale"] > 0
    from tinyc.ir.ops.quant import quantize_array

    xq = q.tensors["x"].quant
    ref = interpreter.run(g, samples[0])["y"]
    yq = interpreter.run(q, [quantize_array(samples[0][0], xq.s, xq.zp, "int8")])["y"]
    got = q.tensors["y"].quant.dequantize(yq)
    sqnr = 10 * np.log10((ref**2).sum() / ((ref - got) ** 2).sum())
    assert sqnr > 30, sqnr
    _host_check(q, "dsp", tmp_path, seeds=2)


BOARDS = {"M0+": "rpi-pico", "M4": "nucleo-l4r5zi", "M7": "nucleo-f746", "M55": "corstone-300"}
needs_arm = pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="arm-none-eabi-gcc and qemu-system-arm are not installed",
)


@needs_arm
@pytest.mark.qemu
@pytest.mark.parametrize("core", list(BOARDS))
def test_in_qemu_bit_exact(core: str, tmp_path: Path) -> None:
    from tinyc.compiler import CompileOptions, compile_model
    from tinyc.runner import EmulatedProject

    failures = []
    for k, shape in enumerate(SHAPES[1:4]):
        g = int8_graph(*shape, seed=40 + k)
        project = tmp_path / g.name
        compile_model(g, CompileOptions(board=BOARDS[core]), project, log=lambda m: None)
        ep = EmulatedProject.build(project)
        for seed in range(2):
            r = ep.run_case(str(seed), random_inputs(ep.graph, seed))
            if not r.bit_exact:
                failures.append(f"{g.name}: {r.mismatches} values")
    assert not failures, failures


# -- the post-training pass (tinyc.passes.kronecker) -------------------------------------


def test_spec_parsing() -> None:
    from tinyc.passes.kronecker import parse_spec

    assert parse_spec("2").rank("anything") == 2
    spec = parse_spec("fc*=1,fc_out=0,dense=3")
    assert (spec.rank("fc1"), spec.rank("fc_out"), spec.rank("dense"), spec.rank("x")) == (
        1,
        0,
        3,
        0,
    )
    with pytest.raises(Exception, match="RANK"):
        parse_spec("fc=two")


@pytest.mark.parametrize("rank", [1, 2])
def test_exact_kronecker_sum_is_recovered(rank: int) -> None:
    """Van Loan-Pitsianis: a matrix that is a sum of R Kronecker products comes back
    exactly (error 0) with its own factor shapes, and the search finds a zero-error shape."""
    from tinyc.passes.kronecker import candidates, nearest_kronecker

    rng = np.random.default_rng(rank)
    a, b = rng.normal(size=(rank, 4, 6)), rng.normal(size=(rank, 8, 8))
    w = expand(a, b)
    fa, fb = nearest_kronecker(w, 4, 6, rank)
    np.testing.assert_allclose(expand(fa, fb), w, atol=1e-9)
    by_shape = {(c.p, c.q): c for c in candidates(w, rank)}
    assert by_shape[(4, 6)].rel_error < 1e-6
    assert by_shape[(4, 6)].params == rank * (4 * 6 + 8 * 8)


def test_truncation_error_is_the_svd_tail() -> None:
    from tinyc.passes.kronecker import candidates, nearest_kronecker

    w = np.random.default_rng(0).normal(size=(12, 20))
    for c in candidates(w, 2):
        fa, fb = nearest_kronecker(w, c.p, c.q, 2)
        err = np.linalg.norm(w - expand(fa, fb)) / np.linalg.norm(w)
        assert err == pytest.approx(c.rel_error, abs=1e-6)


def _mlp() -> Graph:
    rng = np.random.default_rng(0)
    g = Graph(name="mlp", source_format="test")
    g.add_tensor(Tensor("x", (1, 64), "float32"))
    prev, sizes = "x", [64, 48, 32]
    for i, (k, oc) in enumerate(zip(sizes, sizes[1:], strict=False)):
        # a sum of two Kronecker products plus a little noise
        w = expand(rng.normal(size=(2, 8, 8)), rng.normal(size=(2, oc // 8, k // 8)))
        w = w + 0.05 * rng.normal(size=w.shape)
        g.add_tensor(Tensor(f"w{i}", w.shape, "float32", w.astype(np.float32)))
        g.add_tensor(Tensor(f"b{i}", (oc,), "float32", rng.normal(size=oc).astype(np.float32)))
        g.add_tensor(Tensor(f"h{i}", (1, oc), "float32"))
        attrs = {"activation": "RELU" if i == 0 else "NONE"}
        g.nodes.append(
            Node("FULLY_CONNECTED", f"fc{i}", [prev, f"w{i}", f"b{i}"], [f"h{i}"], attrs)
        )
        prev = f"h{i}"
    g.inputs, g.outputs = ["x"], [prev]
    return g


def test_pass_replaces_fully_connected_and_reports(tmp_path: Path) -> None:
    from tinyc.passes.kronecker import WARNING, kronecker_pass

    g = _mlp()
    rng = np.random.default_rng(1)
    samples = [[rng.normal(size=(1, 64)).astype(np.float32)] for _ in range(8)]
    f, report = kronecker_pass(g, "fc*=2,fc1=0", samples)
    assert [n.op for n in f.nodes] == ["KRONECKER_FC", "FULLY_CONNECTED"]
    (layer,) = report.layers
    assert layer.node == "fc0" and layer.compression > 2 and layer.choice.rel_error < 0.1
    assert report.output_sqnr["h1"] > 15
    text = report.format_text()
    assert WARNING in text and "fc0" in text and "SQNR" in text
    assert report.to_dict()["layers"][0]["rank"] == 2
    # the factored float graph quantizes and compiles to bit-exact C
    from tinyc.passes.quantize import quantize

    q, _ = quantize(f, samples)
    _host_check(q, "dsp", tmp_path, seeds=2)


# -- the cost model (tinyc estimate; bench/estimate_calibrate.py families kron, kron_check) --

#: QEMU instruction counts of the node function of int8_graph(*SHAPES[k], seed=60 + k), held
#: out of the calibration: bench/estimate_calibrate.py's measure() on each core's calibration
#: board (emulated twin, its kernel variant), arm-none-eabi-gcc 13.2
HELD_OUT_QEMU = {
    "cortex-m0plus": [4446, 86749, 36849, 178487, 37901],
    "cortex-m4": [2229, 33678, 17460, 70110, 14454],
    "cortex-m7": [2255, 33834, 17542, 70473, 14682],
    "cortex-m55+mve": [1949, 24194, 16099, 51856, 11882],
}
CAL_BOARDS = {
    "cortex-m0plus": "rpi-pico",
    "cortex-m4": "nucleo-l4r5zi",
    "cortex-m7": "nucleo-f746",
    "cortex-m55+mve": "corstone-300",
}


@pytest.mark.parametrize("core", list(HELD_OUT_QEMU))
def test_estimate_within_10_percent_of_qemu_on_held_out_shapes(core: str) -> None:
    from tinyc.backends.cmsis.codegen import target_for
    from tinyc.boards import load_board
    from tinyc.estimate.calibration import core_calibration
    from tinyc.estimate.costmodel import node_cost
    from tinyc.estimate.csource import read_model_c

    board = load_board(CAL_BOARDS[core])
    cal = core_calibration(board)
    assert cal.key == core and cal.kernel("tinyc_kron_fc_s8") is not None
    for k, shape in enumerate(SHAPES):
        g = int8_graph(*shape, seed=60 + k)
        gen = generate_model(g, g.name, target_for(board))
        src = read_model_c(gen.files["model/model.c"])
        calls = src.kernels(0)
        assert dict(calls) == {"tinyc_kron_fc_s8": 1}
        cost = node_cost(cal, calls, gen.graph.nodes[0], gen.graph,
                         {c: src.call_args(0, c) for c in calls})  # fmt: skip
        assert not cost.uncalibrated
        measured = HELD_OUT_QEMU[core][k]
        assert abs(cost.instructions - measured) <= 0.10 * measured, (shape, cost, measured)


def test_every_core_is_calibrated_with_held_out_checks() -> None:
    """Every core of the calibration file has the kernel's fit, and its held-out check
    layers (family kron_check, measured in QEMU at calibration time) are within 10 %."""
    from tinyc.estimate.calibration import load_data

    for core, data in load_data()["cores"].items():
        assert "tinyc_kron_fc_s8" in data["kernels"], core
        check = data["checks"]["kron_check"]
        assert check["layers"] >= 6 and check["max_abs_rel_err"] <= 0.10, (core, check)


def test_estimate_counts_the_kernel() -> None:
    from tinyc.estimate import estimate_model
    from tinyc.passes.quantize import quantize

    g = _mlp()
    rng = np.random.default_rng(1)
    samples = [[rng.normal(size=(1, 64)).astype(np.float32)] for _ in range(4)]
    from tinyc.passes.kronecker import factorize

    f, _ = factorize(g, "2")
    q, _ = quantize(f, samples)
    est = estimate_model(q, "nucleo-f746")
    assert not [n for n in est.notes if "no calibration" in n], est.notes
    kron = [layer for layer in est.layers if layer.op == "KRONECKER_FC"]
    assert kron and all(layer.instructions > 0 for layer in kron)


# -- tinyc.torch.KroneckerLinear: trained in factored form, recognised by both frontends -----

try:
    import torch
except ImportError:  # the PyTorch tests below skip
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


@needs_torch
def test_kronecker_linear_shapes_and_product() -> None:
    from tinyc.torch import KroneckerLinear, kronecker_shapes

    assert kronecker_shapes(64, 48) == ((6, 8), (8, 8))
    assert kronecker_shapes(13, 10) == ((2, 1), (5, 13))  # a prime: 1 x 13
    layer = KroneckerLinear(64, 48, rank=2)
    assert tuple(layer.a.shape) == (2, 6, 8) and tuple(layer.b.shape) == (2, 8, 8)
    with pytest.raises(ValueError, match="48x64"):
        KroneckerLinear(64, 48, shapes=((4, 8), (8, 8)))
    x = torch.randn(2, 5, 64)
    with torch.no_grad():
        ref = x @ layer.weight().T + layer.bias
        np.testing.assert_allclose(layer(x).numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)
    # the initialisation gives W nn.Linear's spread
    w = KroneckerLinear(256, 256, rank=2).weight().detach()
    assert 0.5 < float(w.std()) * np.sqrt(3 * 256) < 2.0


def _trained_kron_mlp() -> tuple:
    """A KroneckerLinear MLP trained a few steps from scratch on random data."""
    from tinyc.torch import KroneckerLinear

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        KroneckerLinear(64, 48, rank=2),
        torch.nn.ReLU(),
        KroneckerLinear(48, 10, rank=1, bias=False),
    )
    xs, ys = torch.randn(64, 64), torch.randint(0, 10, (64,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(model(xs), ys)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]  # the factors train from scratch
    return model.eval(), xs


def _export(model, x, via: str) -> Graph:
    if via == "torch":
        from tinyc.frontend.torch import export_module

        return export_module(model, (x,), "kron_mlp")
    import io

    from tinyc.frontend.onnx import load_onnx

    if via == "onnx_dynamo":  # the torch.export-based exporter (torch.onnx.export's default)
        program = torch.onnx.export(model, (x,), dynamo=True, verbose=False)
        return load_onnx(program.model_proto.SerializeToString(), "kron_mlp")
    buf = io.BytesIO()
    torch.onnx.export(model, (x,), buf, dynamo=False)  # TorchScript exporter
    return load_onnx(buf.getvalue(), "kron_mlp")


@needs_torch
@pytest.mark.parametrize("via", ["torch", "onnx"])
def test_kronecker_linear_exports_to_kronecker_fc(via: str, tmp_path: Path) -> None:
    model, xs = _trained_kron_mlp()
    x = xs[:1]
    g = _export(model, x, via)
    assert [n.op for n in g.nodes] == ["KRONECKER_FC", "KRONECKER_FC"]
    first = g.nodes[0]
    assert first.attrs["activation"] == "RELU" and len(first.inputs) == 4
    np.testing.assert_array_equal(g.tensors[first.inputs[1]].data, model[0].a.detach().numpy())
    with torch.no_grad():
        for k in range(4):
            ref = model(xs[k : k + 1]).numpy()
            got = interpreter.run(g, [xs[k : k + 1].numpy()])[g.outputs[0]]
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    from tinyc.passes.quantize import quantize

    samples = [[xs[k : k + 1].numpy()] for k in range(16)]
    q, _ = quantize(g, samples)
    assert [n.op for n in q.nodes if n.op != "QUANTIZE"][:2] == ["KRONECKER_FC"] * 2
    _host_check(q, "dsp", tmp_path, seeds=2)


@needs_torch
def test_kronecker_linear_over_rows_and_time() -> None:
    """[batch, time, features] inputs: rows of the kernel, the output shape kept."""
    from tinyc.torch import KroneckerLinear

    torch.manual_seed(1)
    layer = KroneckerLinear(24, 20, rank=3).eval()
    x = torch.randn(2, 3, 24)
    for via in ("torch", "onnx", "onnx_dynamo"):
        g = _export(layer, x, via)
        assert [n.op for n in g.nodes if n.op != "RESHAPE"] == ["KRONECKER_FC"], via
        got = interpreter.run(g, [x.numpy()])[g.outputs[0]]
        with torch.no_grad():
            ref = layer(x).numpy()
        np.testing.assert_allclose(got.reshape(ref.shape), ref, rtol=1e-5, atol=1e-6)


@needs_torch
def test_tflm_backend_refuses_kronecker_fc(tmp_path: Path, capsys) -> None:
    """TFLM has no Kronecker op: one error line naming the C backend, exit 2, before int8."""
    from tinyc.cli import main

    model, xs = _trained_kron_mlp()
    path = tmp_path / "kron.onnx"
    torch.onnx.export(model, (xs[:1],), str(path), dynamo=False)
    capsys.readouterr()
    rc = main(["compile", str(path), "-b", "nucleo-f746", "--backend", "tflm",
               "--synthetic-calibration", "-o", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith("tinyc: error:") and "KRONECKER_FC" in err[0]
    assert "--backend cmsis" in err[0]
    assert not (tmp_path / "out").exists()


class _KronRnnNet(torch.nn.Module if torch is not None else object):
    def __init__(self, kind: str):
        from tinyc.torch import KroneckerGRU, KroneckerLSTM

        super().__init__()
        cls = KroneckerLSTM if kind == "lstm" else KroneckerGRU
        self.rnn = cls(16, 32, rank=2)
        self.fc = torch.nn.Linear(32, 5)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(y[:, -1])


@needs_torch
def test_kronecker_cells_match_pytorch_cells() -> None:
    """With the expanded matrices copied into nn.LSTMCell / nn.GRUCell, the outputs agree."""
    from tinyc.torch import KroneckerGRUCell, KroneckerLSTMCell

    torch.manual_seed(2)
    x, h, c = torch.randn(3, 16), torch.randn(3, 32), torch.randn(3, 32)
    for kron, dense in (
        (KroneckerLSTMCell, torch.nn.LSTMCell),
        (KroneckerGRUCell, torch.nn.GRUCell),
    ):
        k, d = kron(16, 32, rank=2), dense(16, 32)
        with torch.no_grad():
            d.weight_ih.copy_(k.ih.weight())
            d.weight_hh.copy_(k.hh.weight())
            d.bias_ih.copy_(k.ih.bias)
            d.bias_hh.copy_(k.hh.bias)
            got = k(x, (h, c)) if kron is KroneckerLSTMCell else (k(x, h),)
            ref = d(x, (h, c)) if kron is KroneckerLSTMCell else (d(x, h),)
        for a, b in zip(got, ref, strict=True):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


@needs_torch
@pytest.mark.parametrize("via", ["torch", "onnx"])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_kronecker_recurrent_exports_to_kronecker_fc(kind: str, via: str, tmp_path: Path) -> None:
    """Trained a few steps, exported unrolled: every gate matmul is a KRONECKER_FC (the first
    step's recurrent one folds away: its state is zero), float within 1e-5 of PyTorch, int8
    C bit-exact with the interpreter."""
    torch.manual_seed(3)
    model = _KronRnnNet(kind)
    xs, ys = torch.randn(32, 4, 16), torch.randint(0, 5, (32,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(model(xs), ys)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    g = _export(model, xs[:1], via)
    ops = [n.op for n in g.nodes]
    assert ops.count("KRONECKER_FC") == 2 * 4 - 1 and ops.count("FULLY_CONNECTED") == 1
    assert "BATCH_MATMUL" not in ops
    with torch.no_grad():
        for k in range(3):
            ref = model(xs[k : k + 1]).numpy()
            got = interpreter.run(g, [xs[k : k + 1].numpy()])[g.outputs[0]]
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    from tinyc.passes.quantize import quantize

    q, _ = quantize(g, [[xs[k : k + 1].numpy()] for k in range(16)])
    _host_check(q, "dsp", tmp_path, seeds=2)


def test_project_manifest_keeps_the_kronecker_report(tmp_path: Path) -> None:
    """tinyc.json records what --kronecker did, as it does for --prune."""
    import json

    from click.testing import CliRunner
    from conftest import FLOAT_TFLITE, model_path

    from tinyc.cli import cli
    from tinyc.manifest import MANIFEST

    ad01 = model_path(FLOAT_TFLITE["ad01_fp32"])
    cal = ad01.parent / "reference_io" / ad01.stem
    out = tmp_path / "p"
    r = CliRunner().invoke(cli, ["compile", str(ad01), "--calibration", str(cal), "--kronecker",
                                 "2", "--board", "nucleo-f746", "-o", str(out)])  # fmt: skip
    assert r.exit_code == 0, r.output
    kron = json.loads((out / MANIFEST).read_text())["kronecker"]
    assert len(kron["layers"]) == 10 and all(x["rank"] == 2 for x in kron["layers"])


class _RnnNet(torch.nn.Module if torch is not None else object):
    def __init__(self, kind: str):
        super().__init__()
        cls = torch.nn.LSTM if kind == "lstm" else torch.nn.GRU
        self.rnn = cls(16, 32, batch_first=True)
        self.fc = torch.nn.Linear(32, 5)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(y[:, -1])


@needs_torch
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_pass_factors_fused_recurrent_gate_matrices(kind: str, tmp_path: Path) -> None:
    """--kronecker on an nn.LSTM / nn.GRU: the layer is lowered to its cell's ops, its
    stacked gate matrices factored once for every step (the report names them); gate
    matrices that are exact Kronecker sums come back exactly (float equals the dense
    model), and the factored model runs bit-exact in C after int8."""
    from tinyc.frontend.torch import export_module
    from tinyc.passes.kronecker import factorize
    from tinyc.passes.quantize import quantize

    torch.manual_seed(4)
    model = _RnnNet(kind).eval()
    rng = np.random.default_rng(4)
    if kind == "lstm":  # stacked [4H, I] and [4H, H] matrices that are sums of 2 products
        with torch.no_grad():
            for name, (p, q, s, t) in (("weight_ih_l0", (8, 4, 16, 4)),
                                       ("weight_hh_l0", (8, 4, 16, 8))):  # fmt: skip
                w = sum(np.kron(rng.standard_normal((p, q)), rng.standard_normal((s, t)))
                        for _ in range(2)) * 0.1  # fmt: skip
                getattr(model.rnn, name).copy_(torch.tensor(w, dtype=torch.float32))
    x = torch.randn(1, 6, 16)
    g = export_module(model, (x,))
    fact, report = factorize(g, f"{kind}*=2")
    labels = [r.node for r in report.layers]
    assert any(lbl.endswith("(input matrix)") for lbl in labels), labels
    assert any(lbl.endswith("(recurrent matrix)") for lbl in labels), labels
    assert not any(n.op in ("LSTM", "GRU") for n in fact.nodes)
    kfc = [n for n in fact.nodes if n.op == "KRONECKER_FC"]
    assert len(kfc) >= 2 * 6 and len({n.inputs[1] for n in kfc}) == len(report.layers)
    if kind == "lstm":
        assert all(r.choice.rel_error < 1e-5 for r in report.layers)
        for k in range(3):
            xs = [np.random.default_rng(k).standard_normal((1, 6, 16)).astype(np.float32)]
            ref = interpreter.run(g, xs)[g.outputs[0]]
            got = interpreter.run(fact, xs)[fact.outputs[0]]
            np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    samples = [[np.random.default_rng(10 + k).standard_normal((1, 6, 16)).astype(np.float32)]
               for k in range(16)]  # fmt: skip
    q, _ = quantize(fact, samples)
    luts = [n for n in q.nodes if n.op == "LOGISTIC"]
    assert len({q.tensors[n.outputs[0]].quant.scale.tobytes() for n in luts}) <= 3  # tied
    _host_check(q, "dsp", tmp_path, seeds=2)


def test_cli_estimate_takes_kronecker(capsys) -> None:
    """``tinyc estimate --kronecker`` (the option list shared with compile)."""
    from conftest import FLOAT_TFLITE, model_path

    from tinyc.cli import main

    path = str(model_path(FLOAT_TFLITE["ad01_fp32"]))
    assert main(["estimate", path, "--board", "nucleo-f746", "--kronecker", "2"]) == 0
    assert "KRONECKER_FC" in capsys.readouterr().out
