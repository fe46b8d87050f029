"""Post-training int8 quantization: observers, calibration data, the int8 graph's rules,
agreement with float on real data, bit-exactness across interpreter / TFLM / generated C,
and the project graph format."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import FLOAT_TFLITE, INT8_TFLITE, ONNX_CNN, model_path, reference_cases

from tinyc import interpreter
from tinyc.errors import TinycError
from tinyc.frontend import load_model
from tinyc.frontend.tflite import load_tflite
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import get_op
from tinyc.ir.tensor import Tensor
from tinyc.ir.verify import verify
from tinyc.modelio import random_inputs, to_external, to_internal
from tinyc.passes.calibration import SHUFFLE_SEED, load_calibration, synthetic_calibration
from tinyc.passes.observers import Histogram, minmax_range, mse_range, percentile_range
from tinyc.passes.quantize import QuantOptions, affine_params, quantize
from tinyc.project import load_project_graph, save_project_graph
from tinyc.quant_report import int8_inputs

# -- helpers ----------------------------------------------------------------------------------


def _digits_28() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 handwritten digits, upsampled to 28x28 (digit in the centre
    20x20 box, as MNIST), values 0..255, NCHW."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    out = np.zeros((len(d.images), 1, 28, 28), np.float32)
    for i, im in enumerate(d.images):
        small = Image.fromarray((im * (255.0 / 16.0)).astype(np.uint8))
        out[i, 0, 4:24, 4:24] = np.asarray(small.resize((20, 20), Image.BILINEAR), np.float32)
    return out, d.target


def _samples(g: Graph, xs: np.ndarray) -> list[list[np.ndarray]]:
    return [[to_internal(g, g.inputs[0], x[None])] for x in xs]


def _quant_mse(x: np.ndarray, lo: float, hi: float) -> float:
    """The actual error of quantizing ``x`` to int8 over [lo, hi] and back."""
    q = affine_params(lo, hi)
    y = np.clip(np.round(x / q.s) + q.zp, -128, 127)
    return float(np.mean((x - (y - q.zp) * q.s) ** 2))


def _assert_tflm_and_c_match(q: Graph, tmp_path, seeds: int = 3) -> None:
    """The interpreter, TFLM (through tinyc's .tflite writer) and the generated C, bit for
    bit on every output."""
    from c_host import build_host, run_host

    from tinyc.backends.cmsis.codegen import generate_model
    from tinyc.backends.tflm import host
    from tinyc.backends.tflm.writer import write_tflite

    data = write_tflite(q)
    cases = []
    for seed in range(seeds):
        xs = random_inputs(q, seed)
        ref = interpreter.run(q, xs)
        ext = [to_external(q, n, x) for n, x in zip(q.inputs, xs, strict=True)]
        want = [to_external(q, n, ref[n]) for n in q.outputs]
        for got, w in zip(host.run(data, ext), want, strict=True):
            np.testing.assert_array_equal(got.reshape(w.shape), w, err_msg=f"TFLM seed {seed}")
        cases.append((ext, want))
    gen = generate_model(q, "model")
    exe = build_host(gen, tmp_path, sanitize=False)
    for ext, want in cases:
        for got, w in zip(run_host(exe, gen, ext), want, strict=True):
            np.testing.assert_array_equal(got.reshape(w.shape), w, err_msg="generated C")


# -- observers ----------------------------------------------------------------------------------


def test_histogram_widens_without_losing_counts():
    rng = np.random.default_rng(0)
    h = Histogram()
    parts = [rng.normal(0, s, 5000) for s in (0.1, 1.0, 10.0)]
    for p in parts:
        h.update(p)
    allv = np.concatenate(parts)
    assert h.counts.sum() == allv.size
    assert (h.min, h.max) == (allv.min(), allv.max())
    assert minmax_range(h) == (min(allv.min(), 0.0), max(allv.max(), 0.0))


def test_percentile_clips_outliers():
    rng = np.random.default_rng(1)
    h = Histogram()
    h.update(np.concatenate([rng.normal(0, 1, 100_000), [80.0, -60.0]]))
    lo, hi = percentile_range(h, 99.99)
    assert -6 < lo < -3 and 3 < hi < 6


@pytest.mark.parametrize("dist", ["laplace", "outliers", "relu"])
def test_mse_range_has_the_least_real_quantization_error(dist):
    rng = np.random.default_rng(2)
    x = {
        "laplace": rng.laplace(0.5, 1.0, 50_000),
        "outliers": np.concatenate([rng.normal(0, 1, 50_000), [30.0, -25.0]]),
        "relu": np.maximum(rng.standard_t(3, 50_000), 0),
    }[dist]
    h = Histogram()
    for part in np.array_split(x, 5):
        h.update(part)
    err = {
        "mse": _quant_mse(x, *mse_range(h)),
        "minmax": _quant_mse(x, *minmax_range(h)),
        "percentile": _quant_mse(x, *percentile_range(h, 99.9)),
    }
    assert err["mse"] <= 1.02 * min(err["minmax"], err["percentile"]), err
    assert err["mse"] < err["minmax"], err


def test_affine_params_contain_zero_exactly():
    for lo, hi in [(0.0, 6.0), (-3.2, 1.7), (0.5, 4.0), (-2.0, -1.0)]:
        q = affine_params(lo, hi)
        assert -128 <= q.zp <= 127
        # the grid covers the range up to the half step the zero-point nudge moves it
        assert q.s * (127 - q.zp) >= max(hi, 0) - q.s * 0.501
        assert q.s * (-128 - q.zp) <= min(lo, 0) + q.s * 0.501
        assert abs(q.s * 255 - (max(hi, 0) - min(lo, 0))) < 1e-6 * q.s * 255


# -- the int8 graph -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet_int8():
    g = load_tflite(model_path(FLOAT_TFLITE["pretrainedResnet"]))
    cal = [[np.clip(x * 60 + 120, 0, 255)] for x in random_inputs_n(g, 16)]
    return g, *quantize(g, cal, QuantOptions())


def random_inputs_n(g: Graph, n: int) -> list[np.ndarray]:
    return [random_inputs(g, s)[0] for s in range(n)]


def test_int8_graph_follows_the_tflite_spec(resnet_int8):
    f, q, _ = resnet_int8
    verify(q)
    assert [n.op for n in q.nodes] == [n.op for n in f.nodes]
    for node in q.nodes:
        op = get_op(node.op)
        if op.weight_input is not None:
            x, w = q.inp(node, 0), q.inp(node, op.weight_input)
            assert w.dtype == "int8" and w.quant.axis == op.weight_axis
            assert np.all(w.quant.zero_point == 0) and w.data.min() >= -127
            assert w.quant.scale.size == w.shape[op.weight_axis]
            b = q.inp(node, op.bias_input)
            assert b.dtype == "int32" and np.all(b.quant.zero_point == 0)
            np.testing.assert_array_equal(b.quant.scale, np.float32(x.quant.s) * w.quant.scale)
        if op.output_quant == "same_as_input":
            assert q.inp(node, 0).quant.same_as(q.out(node).quant), node.name
        if isinstance(op.output_quant, tuple):
            assert q.out(node).quant.zp == op.output_quant[1]
    for name in q.inputs + q.outputs:
        assert q.tensors[name].dtype == "int8"


def test_report_lists_layers_worst_first_and_serializes(resnet_int8):
    _, q, report = resnet_int8
    sq = [l.sqnr_db for l in report.layers if l.sqnr_db is not None]
    assert sq == sorted(sq) and len(report.layers) == len(q.nodes)
    (out,) = report.outputs
    assert out.task == "classifier" and 0.0 <= out.top1_agreement <= 1.0
    json.dumps(report.to_dict(), allow_nan=False)
    text = report.format_text()
    assert "top-1" in text and "SQNR" in text and report.layers[0].node in text


def test_float_io_puts_quantize_and_dequantize_at_the_boundary():
    g = load_tflite(model_path(FLOAT_TFLITE["hello_world_float"]))
    cal = [[np.array([[v]], np.float32)] for v in np.linspace(0, 2 * np.pi, 50)]
    q, report = quantize(g, cal, QuantOptions(io_dtype="float32"))
    assert q.nodes[0].op == "QUANTIZE" and q.nodes[-1].op == "DEQUANTIZE"
    assert q.inputs == g.inputs and q.outputs == g.outputs
    assert all(q.tensors[n].dtype == "float32" for n in q.inputs + q.outputs)
    x = np.array([[1.0]], np.float32)
    y = interpreter.run(q, [x])[q.outputs[0]]
    assert abs(float(y.reshape(-1)[0]) - np.sin(1.0)) < 0.1
    assert report.outputs[0].task == "regression" and report.outputs[0].sqnr_db > 20


def _concat_graph(second: str) -> Graph:
    """x -> conv -> (softmax | tanh | conv) -> concat with another branch."""
    rng = np.random.default_rng(0)
    g = Graph(name="concat")
    g.add_tensor(Tensor("x", (1, 4, 4, 3), "float32"))
    g.inputs = ["x"]
    for i in range(2):
        g.add_tensor(Tensor(f"w{i}", (3, 1, 1, 3), "float32", rng.normal(size=(3, 1, 1, 3))))
        g.add_tensor(Tensor(f"b{i}", (3,), "float32", rng.normal(size=3)))
        g.add_tensor(Tensor(f"c{i}", (1, 4, 4, 3), "float32"))
        g.nodes.append(Node("CONV_2D", f"c{i}", ["x", f"w{i}", f"b{i}"], [f"c{i}"]))
    g.add_tensor(Tensor("s0", (1, 4, 4, 3), "float32"))
    g.add_tensor(Tensor("s1", (1, 4, 4, 3), "float32"))
    g.nodes.append(Node("SOFTMAX", "s0", ["c0"], ["s0"]))
    g.nodes.append(Node(second, "s1", ["c1"], ["s1"]))
    g.add_tensor(Tensor("y", (1, 4, 4, 6), "float32"))
    g.nodes.append(Node("CONCATENATION", "y", ["s0", "s1"], ["y"], {"axis": 3}))
    g.outputs = ["y"]
    verify(g)
    return g


def test_concatenation_shares_parameters_or_requantizes():
    g = _concat_graph("RELU")
    cal = [random_inputs(g, s) for s in range(8)]
    q, rep = quantize(g, cal)
    y = q.tensors["y"].quant
    assert all(q.tensors[i].quant.same_as(y) for i in q.nodes[-1].inputs)
    assert rep.requantizations == 0 and "QUANTIZE" not in [n.op for n in q.nodes]
    # softmax (1/256, -128) and tanh (1/128, 0) cannot share: both are requantized to
    # the concatenation's own range, which covers both
    g = _concat_graph("TANH")
    q, rep = quantize(g, cal)
    assert rep.requantizations == 2 and [n.op for n in q.nodes].count("QUANTIZE") == 2
    verify(q)
    for x in cal:
        ref = interpreter.run(g, x)["y"]
        got = q.tensors["y"].quant.dequantize(interpreter.run(q, int8_inputs(q, x))["y"])
        assert np.abs(got - ref).max() < 0.05  # int8 steps of ~2/255 here


def test_pad_value_becomes_the_zero_point():
    g = Graph(name="pad")
    g.add_tensor(Tensor("x", (1, 2, 2, 1), "float32"))
    g.add_tensor(Tensor("p", (1, 4, 4, 1), "float32"))
    g.add_tensor(Tensor("y", (1, 4, 4, 1), "float32"))
    g.inputs, g.outputs = ["x"], ["y"]
    g.nodes = [
        Node("PAD", "p", ["x"], ["p"], {"paddings": ((0, 0), (1, 1), (1, 1), (0, 0))}),
        Node("LOGISTIC", "y", ["p"], ["y"]),
    ]
    cal = [[np.full((1, 2, 2, 1), v, np.float32)] for v in (1.0, 2.0, 3.0)]
    q, _ = quantize(g, cal)
    xq = int8_inputs(q, [np.full((1, 2, 2, 1), 2.0, np.float32)])
    pq = interpreter.run(q, xq, keep_all=True)["p"]
    assert q.tensors["p"].quant.dequantize(pq)[0, 0, 0, 0] == 0.0


def test_refuses_quantized_models_and_empty_calibration():
    g = load_tflite(model_path(INT8_TFLITE["ad01_int8"]))
    with pytest.raises(TinycError, match="already quantized"):
        quantize(g, [[np.zeros((1, 640), np.float32)]])
    f = load_tflite(model_path(FLOAT_TFLITE["ad01_fp32"]))
    with pytest.raises(TinycError, match="calibration sample"):
        quantize(f, [])
    with pytest.raises(TinycError, match="observer"):
        quantize(f, synthetic_calibration(f, 1), QuantOptions(observer="best"))


# -- quality on real data -----------------------------------------------------------------------


def test_mnist8_keeps_99_percent_top1_on_digits_it_was_not_calibrated_on():
    g = load_model(model_path(ONNX_CNN["mnist-8"]))
    xs, _ = _digits_28()
    cal, held_out = _samples(g, xs[:150]), _samples(g, xs[150:550])
    q, report = quantize(g, cal, QuantOptions(), eval_samples=held_out)
    (out,) = report.outputs
    assert report.eval_source == "held-out samples" and report.eval_samples == 400
    assert out.task == "classifier" and out.top1_agreement >= 0.99, report.format_text()


def test_ad01_int8_agrees_with_float_at_least_as_well_as_the_converter():
    """The shipped ToyCar clip: calibrate on slices 0-99, evaluate on 100-199."""
    f = load_tflite(model_path(FLOAT_TFLITE["ad01_fp32"]))
    official = load_tflite(model_path(INT8_TFLITE["ad01_int8"]))
    clip_path = model_path(
        "mlperf_tiny_ad_fc_autoencoder/test_input/normal_id_01_00000000_hist_librosa.bin"
    )
    clip = np.fromfile(clip_path, "<f4").reshape(200, 128)
    windows = np.stack([clip[i : i + 5].reshape(1, 640) for i in range(196)])
    cal, ev = [[w] for w in windows[:96]], [[w] for w in windows[100:]]
    q, report = quantize(f, cal, QuantOptions(), eval_samples=ev)
    official_report = _evaluate(f, official, ev)
    assert report.outputs[0].sqnr_db >= official_report.outputs[0].sqnr_db


def _evaluate(f, q, samples):
    from tinyc.quant_report import evaluate

    return evaluate(f, q, samples)


# -- bit-exact across interpreter, TFLM and C ---------------------------------------------------


@pytest.mark.parametrize("model", ["mnist-8", "model_vww"])
def test_onnx_cnn_int8_bit_exact_across_backends(model, tmp_path):
    g = load_model(model_path(ONNX_CNN[model]))
    q, _ = quantize(g, synthetic_calibration(g, 8))
    _assert_tflm_and_c_match(q, tmp_path)


def test_float_tflite_int8_bit_exact_across_backends(resnet_int8, tmp_path):
    _assert_tflm_and_c_match(resnet_int8[1], tmp_path)


# -- calibration files --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist():
    return load_model(model_path(ONNX_CNN["mnist-8"]))


def test_calibration_npz_by_name_index_or_single_key(mnist, tmp_path):
    xs = np.random.default_rng(0).random((5, 1, 1, 28, 28), np.float32)
    name = mnist.inputs[0]
    for key in (name, "input_0", "anything"):
        np.savez(tmp_path / f"{key}.npz", **{key: xs})
        samples = load_calibration(tmp_path / f"{key}.npz", mnist, n=3)
        assert len(samples) == 3  # a seeded draw, not the first three of the file
        drawn = np.random.default_rng(SHUFFLE_SEED).permutation(5)[:3]
        for got, i in zip(samples, drawn, strict=True):
            np.testing.assert_array_equal(got[0], to_internal(mnist, name, xs[i]))
    np.savez(tmp_path / "flat.npz", x=xs.reshape(5, 1, 28, 28))  # batch axis dropped
    assert len(load_calibration(tmp_path / "flat.npz", mnist)) == 5
    np.savez(tmp_path / "bad.npz", x=np.zeros((5, 3, 3)))
    with pytest.raises(TinycError, match="neither one sample"):
        load_calibration(tmp_path / "bad.npz", mnist)


def test_calibration_folder_of_npy_and_reference_io(mnist, tmp_path):
    d = tmp_path / "npy"
    d.mkdir()
    np.save(d / "a.npy", np.zeros((1, 1, 28, 28), np.float32))
    np.save(d / "b.npy", np.ones((4, 1, 1, 28, 28), np.float32))
    assert len(load_calibration(d, mnist)) == 5
    cases = reference_cases(ONNX_CNN["mnist-8"])
    samples = load_calibration(cases[0].parent, mnist)
    assert len(samples) == len(cases)
    with pytest.raises(TinycError, match="no such calibration"):
        load_calibration(tmp_path / "missing.npz", mnist)


# -- project graph ------------------------------------------------------------------------------


def test_project_graph_round_trips_exactly(resnet_int8, tmp_path):
    _, q, _ = resnet_int8
    save_project_graph(q, tmp_path)
    back = load_project_graph(tmp_path)
    assert back.inputs == q.inputs and back.outputs == q.outputs
    assert back.external_perm == q.external_perm
    for a, b in zip(q.nodes, back.nodes, strict=True):
        assert (a.op, a.name, a.inputs, a.outputs, a.attrs) == (
            b.op,
            b.name,
            b.inputs,
            b.outputs,
            b.attrs,
        )
    for name, t in q.tensors.items():
        u = back.tensors[name]
        assert (t.shape, t.dtype, t.meta) == (u.shape, u.dtype, u.meta)
        assert (t.quant is None and u.quant is None) or t.quant.same_as(u.quant)
        if t.data is not None:
            assert u.data.dtype == t.data.dtype and np.array_equal(t.data, u.data)
    x = random_inputs(q, 0)
    np.testing.assert_array_equal(
        interpreter.run(q, x)[q.outputs[0]], interpreter.run(back, x)[q.outputs[0]]
    )
    again = tmp_path / "again"
    again.mkdir()
    save_project_graph(back, again)
    for f in ("graph.json", "graph.npz"):
        assert (tmp_path / f).read_bytes() == (again / f).read_bytes()
    assert load_model(tmp_path).name == q.name


def test_project_graph_rejects_other_versions(resnet_int8, tmp_path):
    save_project_graph(resnet_int8[1], tmp_path)
    m = json.loads((tmp_path / "graph.json").read_text())
    m["version"] = 99
    (tmp_path / "graph.json").write_text(json.dumps(m))
    with pytest.raises(TinycError, match="version 99"):
        load_project_graph(tmp_path)
    with pytest.raises(TinycError, match="not a tinyc project"):
        load_project_graph(tmp_path / "nowhere")


def test_compile_flow_refuses_without_data_and_warns_when_synthetic(tmp_path):
    from tinyc.passes.quantize import SYNTHETIC_WARNING, quantize_with_data

    g = load_tflite(model_path(FLOAT_TFLITE["hello_world_float"]))
    with pytest.raises(TinycError, match="--calibration"):
        quantize_with_data(g, None)
    q, report = quantize_with_data(g, None, synthetic=True, show_progress=False)
    assert report.warnings[0] == SYNTHETIC_WARNING
    assert "WARNING: SYNTHETIC" in report.format_text()
    xs = np.linspace(0, 6, 30, dtype=np.float32).reshape(30, 1, 1)
    np.savez(tmp_path / "cal.npz", xs)
    q, report = quantize_with_data(g, str(tmp_path / "cal.npz"), samples=20, show_progress=False)
    assert (report.calibration_samples, report.eval_samples) == (20, 10)
    assert report.eval_source == "held-out samples" and not report.warnings


def test_infer_runs_the_graph_stored_in_a_project_directory(resnet_int8, tmp_path):
    from tinyc.cli import main

    _, q, _ = resnet_int8
    project = tmp_path / "project"
    project.mkdir()
    save_project_graph(q, project)
    x = random_inputs(q, 3)[0]
    np.save(tmp_path / "x.npy", to_external(q, q.inputs[0], x))
    assert (
        main(["infer", str(project), "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / "o")]) == 0
    )
    want = to_external(q, q.outputs[0], interpreter.run(q, [x])[q.outputs[0]])
    np.testing.assert_array_equal(np.load(tmp_path / "o" / "output_0.npy"), want)


def test_grouped_conv2d_int8_is_bit_exact_with_tflm(tmp_path):
    """CONV_2D with fewer filter input channels than input channels: TFLM's grouped kernel."""
    rng = np.random.default_rng(3)
    g = Graph(name="grouped")
    g.add_tensor(Tensor("x", (1, 6, 6, 6), "float32"))
    g.add_tensor(Tensor("w", (9, 3, 3, 2), "float32", rng.normal(size=(9, 3, 3, 2))))
    g.add_tensor(Tensor("b", (9,), "float32", rng.normal(size=9)))
    g.add_tensor(Tensor("y", (1, 6, 6, 9), "float32"))
    g.inputs, g.outputs = ["x"], ["y"]
    g.nodes = [Node("CONV_2D", "y", ["x", "w", "b"], ["y"], {"pads": (1, 1, 1, 1)})]
    verify(g)
    assert get_op("CONV_2D").groups(g.nodes[0], g) == 3
    x = rng.normal(size=(1, 6, 6, 6)).astype(np.float32)
    ref = np.concatenate(
        [interpreter.run(_one_group(g, k), [x[..., 2 * k : 2 * k + 2]])["y"] for k in range(3)],
        axis=3,
    )
    np.testing.assert_allclose(interpreter.run(g, [x])["y"], ref, rtol=1e-5, atol=1e-5)
    q, _ = quantize(g, [[x]] + synthetic_calibration(g, 4))
    _assert_tflm_and_c_match(q, tmp_path)


def _one_group(g: Graph, k: int) -> Graph:
    h = Graph(name="one")
    h.add_tensor(Tensor("x", (1, 6, 6, 2), "float32"))
    h.add_tensor(Tensor("w", (3, 3, 3, 2), "float32", g.tensors["w"].data[3 * k : 3 * k + 3]))
    h.add_tensor(Tensor("b", (3,), "float32", g.tensors["b"].data[3 * k : 3 * k + 3]))
    h.add_tensor(Tensor("y", (1, 6, 6, 3), "float32"))
    h.inputs, h.outputs = ["x"], ["y"]
    h.nodes = [Node("CONV_2D", "y", ["x", "w", "b"], ["y"], {"pads": (1, 1, 1, 1)})]
    return h
