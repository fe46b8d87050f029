"""Bias correction, cross-layer equalization and AdaRound (tinyc.passes.bias_correction,
equalize, adaround): each does what it claims on small seeded models and the real ones, and
the int8 graph after them is still bit-exact between the reference interpreter and TFLM."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FLOAT_TFLITE, ONNX_CNN, model_path

from tinyc import interpreter
from tinyc.frontend import load_model
from tinyc.ir.graph import Graph, Node
from tinyc.ir.ops import get_op
from tinyc.ir.tensor import Tensor
from tinyc.ir.verify import verify
from tinyc.modelio import random_inputs, to_external, to_internal
from tinyc.passes._layers import (
    acc,
    bias_of,
    dequantized_weights,
    each_layer_input,
    fake_quant,
    weight_layers,
    weight_quant,
)
from tinyc.passes.adaround import AdaRoundOptions, adaround, layer_grams
from tinyc.passes.bias_correction import correct_biases, input_means
from tinyc.passes.calibration import observe
from tinyc.passes.equalize import equalize, find_pairs
from tinyc.passes.quantize import QuantOptions, _choose_ranges, _plan, prepare, quantize
from tinyc.quant_report import int8_inputs

# -- a small float model with badly spread channel ranges ------------------------------------


def _float_model(seed: int = 0, act: str = "RELU", h: int = 10) -> Graph:
    """conv 3x3 (3 -> 8) + act -> depthwise 3x3 + act -> conv 1x1 (8 -> 6) -> FC (6*h*h -> 5).

    Output channels of the first two layers are scaled by factors from 0.03 to 30, as in
    networks trained with batch norm folded in, so per-tensor (and depthwise) int8 weights
    lose most of the small channels."""
    rng = np.random.default_rng(seed)
    g = Graph(name="small", source_format="test")

    def const(name, data):
        data = np.asarray(data, np.float32)
        g.add_tensor(Tensor(name, data.shape, "float32", data))
        return name

    def act_t(name, shape):
        g.add_tensor(Tensor(name, tuple(shape), "float32"))
        return name

    spread = 10.0 ** rng.uniform(-1.5, 1.5, size=8)
    w1 = rng.normal(0, 0.3, (8, 3, 3, 3)) * spread[:, None, None, None]
    w2 = rng.normal(0, 0.3, (1, 3, 3, 8)) * 10.0 ** rng.uniform(-1.0, 1.0, size=8)
    w3 = rng.normal(0, 0.3, (6, 1, 1, 8))
    w4 = rng.normal(0, 0.1, (5, 6 * h * h))
    x = act_t("x", (1, h, h, 3))
    a = act_t("a", (1, h, h, 8))
    b = act_t("b", (1, h, h, 8))
    c = act_t("c", (1, h, h, 6))
    c2 = act_t("c_flat", (1, 6 * h * h))
    y = act_t("y", (1, 5))
    window = {"stride": (1, 1), "dilation": (1, 1), "pads": (1, 1, 1, 1)}
    g.nodes = [
        Node(
            "CONV_2D",
            "conv1",
            [x, const("w1", w1), const("b1", rng.normal(0, 0.2, 8) * spread)],
            [a],
            {**window, "activation": act},
        ),
        Node(
            "DEPTHWISE_CONV_2D",
            "dw",
            [a, const("w2", w2), const("b2", rng.normal(0, 0.2, 8))],
            [b],
            {**window, "activation": act, "depth_multiplier": 1},
        ),
        Node(
            "CONV_2D",
            "conv2",
            [b, const("w3", w3), const("b3", rng.normal(0, 0.1, 6))],
            [c],
            {"stride": (1, 1), "dilation": (1, 1), "pads": (0, 0, 0, 0), "activation": "NONE"},
        ),
        Node("RESHAPE", "flat", [c], [c2], {"shape": (1, 6 * h * h)}),
        Node(
            "FULLY_CONNECTED",
            "fc",
            [c2, const("w4", w4), const("b4", rng.normal(0, 0.1, 5))],
            [y],
            {"activation": "NONE"},
        ),
    ]
    g.inputs, g.outputs = [x], [y]
    for n in g.nodes:
        for name, (shape, _) in zip(n.outputs, get_op(n.op).infer(n, g), strict=True):
            g.tensors[name].shape = shape
    verify(g)
    return g


def _data(g: Graph, n: int, seed: int) -> list[list[np.ndarray]]:
    """Inputs with a non-zero mean (as images have), so weight rounding shifts means."""
    rng = np.random.default_rng(seed)
    t = g.tensors[g.inputs[0]]
    return [[rng.uniform(0.0, 1.0, t.shape).astype(np.float32)] for _ in range(n)]


def _ranges(g: Graph, samples):
    """prepare + calibrate as ``quantize`` does: the prepared graph and activation params."""
    p = prepare(g)
    hists = observe(p, samples)
    params, _ = _choose_ranges(p, hists, _plan(p), QuantOptions())
    return p, params


def _outputs(g: Graph, samples) -> np.ndarray:
    return np.stack([interpreter.run(g, s)[g.outputs[0]].astype(np.float64) for s in samples])


def _int8_outputs(q: Graph, samples) -> np.ndarray:
    name = q.outputs[0]
    t = q.tensors[name]
    out = [interpreter.run(q, int8_inputs(q, s))[name] for s in samples]
    return np.stack([t.quant.dequantize(o).astype(np.float64) for o in out])


def _int8_weights(q: Graph, layer: str) -> tuple[np.ndarray, np.ndarray]:
    node = next(n for n in q.nodes if n.name == layer)
    w = q.tensors[node.inputs[1]]
    return w.data.astype(np.int64), w.quant.scale


# -- cross-layer equalization ----------------------------------------------------------------


def test_cle_keeps_the_float_function_and_equalizes_ranges():
    g = prepare(_float_model())
    e = g.copy()
    pairs = equalize(e)
    assert ("conv1", "dw") in pairs and ("dw", "conv2") in pairs
    samples = _data(g, 4, 1)
    ref, got = _outputs(g, samples), _outputs(e, samples)
    assert np.max(np.abs(got - ref)) <= 1e-5 * np.max(np.abs(ref))
    # after equalization each junction's channel ranges match on both sides
    w1 = e.tensors[e.nodes[0].inputs[1]].data
    w2 = e.tensors[e.nodes[1].inputs[1]].data
    w3 = e.tensors[e.nodes[2].inputs[1]].data
    r1 = np.abs(w1).max(axis=(1, 2, 3))
    r2 = np.abs(w2).max(axis=(0, 1, 2))
    r3 = np.abs(w3).max(axis=(0, 1, 2))
    np.testing.assert_allclose(r1, r2, rtol=2e-3)
    np.testing.assert_allclose(r2, r3, rtol=2e-3)
    spread = lambda r: r.max() / r.min()  # noqa: E731
    before = g.tensors[g.nodes[0].inputs[1]].data
    assert spread(r1) < spread(np.abs(before).max(axis=(1, 2, 3))) / 10


def test_cle_leaves_relu6_junctions_alone():
    g = prepare(_float_model(act="RELU6"))
    assert find_pairs(g) == []  # relu6(x / s) != relu6(x) / s
    assert equalize(g) == []


def test_cle_lowers_per_tensor_weight_rounding_error():
    """Per-tensor int8 weights: the small channels of conv1 and of the depthwise layer
    lose far less to rounding once ranges are equalized."""
    from tinyc.passes._layers import scale_shape
    from tinyc.passes.quantize import _weight_params

    def channel_error(g: Graph, layer: str) -> float:
        node = next(n for n in g.nodes if n.name == layer)
        w = g.tensors[node.inputs[1]].data.astype(np.float64)
        axis = get_op(node.op).weight_axis
        q = _weight_params(w, axis, False, None, np.float32(1.0))
        err = w - np.clip(np.round(w / scale_shape(w, q)), -127, 127) * scale_shape(w, q)
        other = tuple(i for i in range(w.ndim) if i != axis)
        return float(np.mean(np.sqrt((err**2).sum(other) / (w**2).sum(other))))

    g = prepare(_float_model())
    e = g.copy()
    equalize(e)
    for layer in ("conv1", "dw"):
        assert channel_error(e, layer) < channel_error(g, layer) / 2, layer


@pytest.mark.parametrize(
    "key,rel", [("model_vww", ONNX_CNN["model_vww"]), ("ad01_fp32", FLOAT_TFLITE["ad01_fp32"])]
)
def test_cle_on_real_models_keeps_the_float_function(key, rel):
    g = prepare(load_model(model_path(rel)))
    e = g.copy()
    assert len(equalize(e)) >= 5
    samples = [random_inputs(g, seed) for seed in range(2)]
    for s in samples:
        s[0] = np.abs(s[0]).astype(np.float32)
    ref, got = _outputs(g, samples), _outputs(e, samples)
    assert np.max(np.abs(got - ref)) <= 1e-5 * max(1.0, np.max(np.abs(ref)))


# -- bias correction ---------------------------------------------------------------------------


def test_bias_correction_zeroes_the_mean_error_of_each_channel():
    """After correction, per output channel of every layer, the mean pre-activation of the
    int8-rounded layer (weights as build_int8 rounds them, input on its int8 grid) equals
    the float layer's mean over the calibration samples."""
    cal = _data(_float_model(), 16, 4)
    g, params = _ranges(_float_model(), cal)
    c = g.copy()
    inputs: dict[str, list] = {n.name: [] for n in weight_layers(g)}
    each_layer_input(g, cal, weight_layers(g), lambda n, x: inputs[n.name].append(x))
    assert correct_biases(c, input_means(g, cal, params), params, per_channel=False)
    for node, new in zip(weight_layers(g), weight_layers(c), strict=True):
        xs = inputs[node.name]
        w = g.tensors[node.inputs[1]].data
        n = bias_of(node, g).size
        ref = np.mean([acc(node, g, x, w).reshape(-1, n) for x in xs], axis=(0, 1))
        ref += bias_of(node, g)
        wq = dequantized_weights(w, weight_quant(new, c, params, False))
        xq = params[node.inputs[0]]
        got = np.mean([acc(node, g, fake_quant(x, xq), wq).reshape(-1, n) for x in xs], (0, 1))
        got += bias_of(new, c)
        before = np.mean(
            [acc(node, g, fake_quant(x, xq), wq).reshape(-1, n) for x in xs], (0, 1)
        ) + bias_of(node, g)
        scale = np.abs(ref).max() + 1e-12
        assert np.max(np.abs(got - ref)) <= 1e-5 * scale, node.name
        assert np.max(np.abs(before - ref)) > 1e-4 * scale, node.name  # there was a shift


def test_bias_correction_removes_the_mean_output_error_of_an_int8_layer():
    """One FC layer, per-tensor weights: the int8 output's mean error per channel on the
    calibration data drops to the output's rounding."""
    rng = np.random.default_rng(5)
    g = Graph(name="fc", source_format="test")
    w = rng.normal(0, 0.05, (16, 64)) * 10.0 ** rng.uniform(-1.5, 1.5, (16, 1))
    w[0, 0] = 8.0  # one large weight: a coarse per-tensor step for everyone else
    g.add_tensor(Tensor("x", (1, 64), "float32"))
    g.add_tensor(Tensor("w", (16, 64), "float32", w.astype(np.float32)))
    g.add_tensor(Tensor("b", (16,), "float32", np.zeros(16, np.float32)))
    g.add_tensor(Tensor("y", (1, 16), "float32"))
    g.nodes = [Node("FULLY_CONNECTED", "fc", ["x", "w", "b"], ["y"], {"activation": "NONE"})]
    g.inputs, g.outputs = ["x"], ["y"]
    cal = _data(g, 64, 6)
    ref = _outputs(g, cal)

    def mean_err(opts):
        q, _ = quantize(g, cal, opts, eval_samples=[])
        step = float(q.tensors["y"].quant.s)
        return np.abs((_int8_outputs(q, cal) - ref).mean(axis=0)).reshape(-1) / step

    before = mean_err(QuantOptions(per_channel=False, bias_correction=False))
    after = mean_err(QuantOptions(per_channel=False, bias_correction=True))
    assert before.max() > 1.0  # more than one output step of systematic error
    # left: at most the output's own rounding (a near-constant channel keeps up to half a step)
    assert after.max() < 0.55 and after.mean() < before.mean() / 3


# -- AdaRound ------------------------------------------------------------------------------------


def test_adaround_lowers_layer_error_and_stays_within_one_step():
    base = _float_model()
    cal = _data(base, 16, 7)
    g, params = _ranges(base, cal)
    a = g.copy()
    results = adaround(a, layer_grams(g, cal, params), params, True, AdaRoundOptions(300))
    assert {r.node for r in results} == {"conv1", "dw", "conv2", "fc"}
    for r in results:
        assert r.mse_adaround <= r.mse_nearest, r
    assert sum(r.mse_adaround < 0.9 * r.mse_nearest for r in results) >= 2
    assert sum(r.changed for r in results) > 0
    # the int8 graphs: same scales, every weight at most one step from nearest rounding
    q_near, _ = quantize(base, cal, QuantOptions(), eval_samples=[])
    q_ada, _ = quantize(base, cal, QuantOptions(adaround=True), eval_samples=[])
    moved = 0
    for layer in ("conv1", "dw", "conv2", "fc"):
        wn, sn = _int8_weights(q_near, layer)
        wa, sa = _int8_weights(q_ada, layer)
        np.testing.assert_allclose(sa, sn, rtol=1e-6)
        assert np.max(np.abs(wa - wn)) <= 1, layer
        moved += int(np.count_nonzero(wa != wn))
    assert moved > 0


def test_adaround_is_deterministic():
    base = _float_model()
    cal = _data(base, 8, 8)
    opts = QuantOptions(adaround=True, adaround_iterations=100)
    q1, _ = quantize(base, cal, opts, eval_samples=[])
    q2, _ = quantize(base, cal, opts, eval_samples=[])
    for layer in ("conv1", "dw", "conv2", "fc"):
        np.testing.assert_array_equal(_int8_weights(q1, layer)[0], _int8_weights(q2, layer)[0])


def test_adaround_lowers_layer_error_on_mnist8():
    from test_quantize import _digits_28

    f = load_model(model_path(ONNX_CNN["mnist-8"]))
    xs, _ = _digits_28()
    cal = [[to_internal(f, f.inputs[0], x[None])] for x in xs[:32]]
    g, params = _ranges(f, cal)
    grams = layer_grams(g, cal, params)
    results = adaround(g.copy(), grams, params, True, AdaRoundOptions(iterations=300))
    assert len(results) == 3
    assert all(r.mse_adaround <= r.mse_nearest for r in results)
    assert sum(r.mse_adaround < r.mse_nearest for r in results) >= 2


# -- the int8 graph stays a plain TFLite-scheme graph ---------------------------------------


def _assert_tflm_matches(q: Graph, seeds: int = 3) -> None:
    from tinyc.backends.tflm import host
    from tinyc.backends.tflm.writer import write_tflite

    data = write_tflite(q)
    for seed in range(seeds):
        xs = random_inputs(q, seed)
        ref = interpreter.run(q, xs)
        ext = [to_external(q, n, x) for n, x in zip(q.inputs, xs, strict=True)]
        want = [to_external(q, n, ref[n]) for n in q.outputs]
        for got, w in zip(host.run(data, ext), want, strict=True):
            np.testing.assert_array_equal(got.reshape(w.shape), w, err_msg=f"TFLM seed {seed}")


@pytest.mark.parametrize(
    "opts",
    [
        QuantOptions(equalize=True),
        QuantOptions(bias_correction=True),
        QuantOptions(adaround=True, adaround_iterations=100),
        QuantOptions(equalize=True, bias_correction=True, adaround=True, adaround_iterations=100),
        QuantOptions(per_channel=False, equalize=True, bias_correction=True),
    ],
    ids=["cle", "bias-corr", "adaround", "all", "per-tensor"],
)
def test_int8_after_each_technique_is_bit_exact_with_tflm(opts):
    g = _float_model()
    q, _ = quantize(g, _data(g, 16, 9), opts, eval_samples=[])
    for t in q.tensors.values():
        if t.is_const and t.dtype == "int8":
            assert t.quant is not None and np.all(t.quant.zero_point == 0)
    _assert_tflm_matches(q)


def test_mnist8_int8_with_every_technique_is_bit_exact_with_tflm():
    from test_quantize import _digits_28

    f = load_model(model_path(ONNX_CNN["mnist-8"]))
    xs, _ = _digits_28()
    cal = [[to_internal(f, f.inputs[0], x[None])] for x in xs[:32]]
    opts = QuantOptions(equalize=True, bias_correction=True, adaround=True, adaround_iterations=200)
    q, _ = quantize(f, cal, opts, eval_samples=[])
    _assert_tflm_matches(q, seeds=2)


# -- the bench's mnist-8 figure --------------------------------------------------------------


@pytest.mark.slow
def test_mnist8_default_agrees_with_float_on_99_3_percent_of_held_out_digits():
    """The bench split: a seeded shuffle of sklearn's 1797 digits, 100 calibrate, the other
    1697 are held out."""
    from test_quantize import _digits_28

    f = load_model(model_path(ONNX_CNN["mnist-8"]))
    xs, _ = _digits_28()
    xs = xs[np.random.default_rng(0).permutation(len(xs))]
    cal = [[to_internal(f, f.inputs[0], x[None])] for x in xs[:100]]
    held = [[to_internal(f, f.inputs[0], x[None])] for x in xs[100:]]
    q, report = quantize(f, cal, QuantOptions(), eval_samples=held)
    assert report.outputs[0].top1_agreement >= 0.993, report.format_text()


# -- the command line ------------------------------------------------------------------------


def test_cli_flags_reach_the_quantizer_options():
    from click.testing import CliRunner

    from tinyc.cli import _options, cli

    cal = _options("rpi-pico").calibration
    assert QuantOptions(**cal.quant) == QuantOptions()  # bias correction on, the rest off
    flags = {"per_tensor": True, "bias_correction": False, "equalize": True, "adaround": True}
    opts = QuantOptions(**_options("rpi-pico", **flags).calibration.quant)
    assert not opts.per_channel and not opts.bias_correction and opts.equalize and opts.adaround
    for cmd in ("compile", "run", "validate"):
        text = CliRunner().invoke(cli, [cmd, "--help"]).output
        for flag in ("--per-tensor", "--bias-correction / --no-bias-correction", "--equalize"):
            assert flag in text, (cmd, flag)
        assert "--adaround" in text
