"""Recurrent layers: TFLM's integer LSTM bit for bit, tinyc's int8 GRU/RNN, PTQ into those
schemes, the C kernels against the interpreter (host and QEMU), persistent state."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rnn_graphs
from c_host import build_host, run_host
from conftest import model_path, reference_cases

from tinyc import interpreter
from tinyc.backends.cmsis.codegen import generate_model
from tinyc.frontend.tflite import load_tflite
from tinyc.ir import fixedpoint as fp
from tinyc.modelio import random_inputs
from tinyc.tools import sigmoid_table

tflm = pytest.importorskip("tflite_micro").runtime

LSTM_INT8 = "tflm_mnist_lstm/trained_lstm_int8.tflite"
LSTM_FLOAT = "tflm_mnist_lstm/trained_lstm.tflite"
BOARDS = {"M0+": "rpi-pico", "M4": "nucleo-l4r5zi", "M7": "nucleo-f746", "M55": "corstone-300"}
needs_arm = pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="arm-none-eabi-gcc and qemu-system-arm are not installed",
)


def _tflm(path: Path, preserve: bool = False):
    kw = {"intrepreter_config": tflm.InterpreterConfig.kPreserveAllTensors} if preserve else {}
    return tflm.Interpreter.from_bytes(path.read_bytes(), arena_size=1 << 20, **kw)


# -- TFLM's int16 sigmoid / tanh ------------------------------------------------------------


def test_sigmoid_table_is_what_tflm_uses() -> None:
    np.testing.assert_array_equal(sigmoid_table.measure_table(), fp.sigmoid_table_q16())


@pytest.mark.parametrize(("op", "scale_power"), [("LOGISTIC", -12), ("TANH", -12), ("TANH", -11)])
def test_int16_activations_match_tflm_on_every_input(op: str, scale_power: int) -> None:
    """TFLM's int16 LOGISTIC/TANH kernels (the LSTM's gate activations) on all 65536
    inputs of a power-of-two scale, against tinyc's helpers."""
    from tinyc.tools.sigmoid_table import _tanh_int16_model

    x = np.arange(-32768, 32768, dtype=np.int16)
    data = _tanh_int16_model(x.size, 2.0**scale_power)
    if op == "LOGISTIC":  # the same model with LOGISTIC as its one operator
        from tinyc.tflite_schema import builtin_codes, schema

        m = schema().ModelT.InitFromPackedBuf(bytearray(data), 0)
        code = builtin_codes()["LOGISTIC"]
        m.operatorCodes[0].builtinCode = m.operatorCodes[0].deprecatedBuiltinCode = code
        import flatbuffers

        b = flatbuffers.Builder(1024)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        data = bytes(b.Output())
    it = tflm.Interpreter.from_bytes(data, arena_size=1 << 20)
    it.set_input(x, 0)
    it.invoke()
    want = it.get_output(0).astype(np.int64)
    # power-of-two scales whose shift is 0 (or 1 for TANH) take the kernels' "3 << shift"
    # path, the one TFLM's LSTM uses
    shift = 15 - 3 + scale_power
    got = fp.sigmoid_int16(x, 0, shift) if op == "LOGISTIC" else fp.tanh_int16(x, 0, shift)
    np.testing.assert_array_equal(got, want)


# -- the TFLite LSTM against TFLM ---------------------------------------------------------


def _lstm_inputs(rel: str) -> list[np.ndarray]:
    cases = [np.load(c / "input_0.npy") for c in reference_cases(rel)]
    rng = np.random.default_rng(0)
    cases += [rng.integers(-128, 128, (1, 28, 28)).astype(np.int8) for _ in range(20)]
    return cases


def test_int8_lstm_matches_tflm_every_tensor() -> None:
    path = model_path(LSTM_INT8)
    g = load_tflite(path)
    it = _tflm(path, preserve=True)
    for x in _lstm_inputs(LSTM_INT8):
        it.reset()
        it.set_input(x, 0)
        it.invoke()
        values = interpreter.run(g, [x], keep_all=True)
        for t in g.tensors.values():
            if t.is_const or t.variable or t.name not in values:
                continue
            ref = it.GetTensor(t.meta["tflite_index"], 0)["tensor_data"]
            np.testing.assert_array_equal(values[t.name], ref.reshape(t.shape), err_msg=t.name)


def test_int8_lstm_state_persists_like_tflm() -> None:
    """Without a reset, TFLM's variable tensors carry the state to the next invocation;
    tinyc's interpreter does the same with a State, and resets it the same way."""
    path = model_path(LSTM_INT8)
    g = load_tflite(path)
    it = _tflm(path)
    state = interpreter.State(g)
    xs = _lstm_inputs(LSTM_INT8)[:6]
    for k, x in enumerate(xs):
        if k == 3:
            it.reset()
            state.reset()
        it.set_input(x, 0)
        it.invoke()
        ours = interpreter.run(g, [x], state=state)[g.outputs[0]]
        np.testing.assert_array_equal(ours, it.get_output(0))


def test_float_lstm_matches_tflm() -> None:
    path = model_path(LSTM_FLOAT)
    g = load_tflite(path)
    it = _tflm(path)
    rng = np.random.default_rng(1)
    cases = [np.load(c / "input_0.npy") for c in reference_cases(LSTM_FLOAT)]
    cases += [rng.random((1, 28, 28), dtype=np.float32) for _ in range(10)]
    for x in cases:
        it.reset()
        it.set_input(x, 0)
        it.invoke()
        ours = interpreter.run(g, [x])[g.outputs[0]]
        np.testing.assert_allclose(ours, it.get_output(0), rtol=1e-4, atol=1e-6)


# -- PTQ into the integer schemes ----------------------------------------------------------


@pytest.mark.parametrize("case", rnn_graphs.CASES, ids=[c.name for c in rnn_graphs.CASES])
def test_int8_recurrent_agrees_with_float(case: rnn_graphs.Case) -> None:
    f = rnn_graphs.float_graph(case)
    q = rnn_graphs.int8_graph(case)
    errs = []
    for xs in rnn_graphs.samples(f, 8, 123):
        want = interpreter.run(f, xs)
        got = interpreter.run(
            q, [_quantize(x, q.tensors[n]) for n, x in zip(q.inputs, xs, strict=True)]
        )
        for name in f.outputs:
            t = q.tensors[name]
            deq = t.quant.dequantize(got[name])
            errs.append(np.abs(deq - want[name]).max() / (np.abs(want[name]).max() + 1e-6))
    # int8 states, 5-6 steps: within a few percent of the float layer's range
    assert max(errs) < 0.12, errs


def _quantize(x: np.ndarray, t) -> np.ndarray:
    from tinyc.ir.ops.quant import quantize_array

    return quantize_array(x, t.quant.s, t.quant.zp, t.dtype)


def test_quantized_lstm_keeps_tflm_constraints() -> None:
    q = rnn_graphs.int8_graph(rnn_graphs.CASES[0])
    (node,) = q.nodes
    c = q.inp(node, 19)
    assert c is not None and c.dtype == "int16" and c.quant.zp == 0
    assert np.log2(float(c.quant.s)) == int(np.log2(float(c.quant.s)))
    for slot in range(1, 9):
        w = q.inp(node, slot)
        assert w is not None and w.dtype == "int8" and not w.quant.per_channel
    for slot in range(12, 16):
        b = q.inp(node, slot)
        assert b is not None and b.dtype == "int32"


def test_float_lstm_model_quantizes() -> None:
    """The float TFLite LSTM through tinyc's PTQ: states become int8 / int16 states."""
    from tinyc.passes.quantize import quantize

    g = load_tflite(model_path(LSTM_FLOAT))
    rng = np.random.default_rng(0)
    data = [[rng.random((1, 28, 28), dtype=np.float32)] for _ in range(40)]
    q, report = quantize(g, data[:32], None, data[32:])
    states = sorted((t.dtype, t.variable) for t in q.states())
    assert states == [("int16", True), ("int8", True)]
    assert report.outputs[0].sqnr_db > 20


# -- the C kernels -------------------------------------------------------------------------


def _host_bit_exact(g, tmp: Path, target: str, inputs) -> None:
    gen = generate_model(g, g.name, target)
    exe = build_host(gen, tmp)
    for case in inputs:
        ref = interpreter.run(g, case)
        for name, got in zip(g.outputs, run_host(exe, gen, case), strict=True):
            np.testing.assert_array_equal(got, ref[name].reshape(got.shape), err_msg=name)


@pytest.mark.parametrize("target", ["dsp", "mve", "plain"])
@pytest.mark.parametrize("case", rnn_graphs.CASES, ids=[c.name for c in rnn_graphs.CASES])
def test_recurrent_c_on_host_bit_exact(case, target: str, tmp_path: Path) -> None:
    g = rnn_graphs.int8_graph(case)
    _host_bit_exact(g, tmp_path, target, [random_inputs(g, s) for s in range(3)])


@pytest.mark.parametrize("target", ["dsp", "mve", "plain"])
def test_tflite_lstm_c_on_host_bit_exact(target: str, tmp_path: Path) -> None:
    g = load_tflite(model_path(LSTM_INT8))
    _host_bit_exact(g, tmp_path, target, [[x] for x in _lstm_inputs(LSTM_INT8)[:6]])


def test_state_lives_outside_the_arena() -> None:
    g = load_tflite(model_path(LSTM_INT8))
    gen = generate_model(g, g.name, "dsp")
    states = {t.name for t in g.states()}
    assert set(gen.plan.state_offsets) == states and gen.plan.state_bytes == 20 + 40
    assert not states & set(gen.plan.offsets)
    src = gen.files["model/model.c"]
    assert "void tinyc_reset_state(void)" in src and "tinyc_state[TINYC_STATE_BYTES]" in src
    assert "void tinyc_reset_state(void);" in gen.files["model/model.h"]


@needs_arm
@pytest.mark.qemu
@pytest.mark.parametrize("core", list(BOARDS))
def test_recurrent_in_qemu_bit_exact(core: str, tmp_path: Path) -> None:
    """The TFLite LSTM and one layer of each kind on the core's own code paths."""
    from tinyc.compiler import CompileOptions, compile_model
    from tinyc.runner import EmulatedProject

    # every configuration on the vector paths (Helium, DSP), a few on the others
    wide = core in ("M55", "M7")
    graphs = [str(model_path(LSTM_INT8))] + [
        rnn_graphs.int8_graph(c) for c in rnn_graphs.CASES if wide or c.seed in (1, 6, 7, 10)
    ]
    failures = []
    for k, model in enumerate(graphs):
        project = tmp_path / f"p{k}"
        compile_model(model, CompileOptions(board=BOARDS[core]), project, log=lambda m: None)
        ep = EmulatedProject.build(project)
        for s in range(2):
            r = ep.run_case(str(s), random_inputs(ep.graph, s))
            if not r.bit_exact:
                failures.append(f"{ep.graph.name}: {r.mismatches}")
    assert not failures, failures
