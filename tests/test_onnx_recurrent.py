"""ONNX LSTM, GRU and RNN, and the graph idioms exporters put around them.

Oracles: the ONNX conformance tests' shipped outputs (including layout=1, which
onnxruntime refuses), onnxruntime for everything it runs, and onnx.reference where
onnxruntime cannot (layout=1 with constant weights).
"""

from __future__ import annotations

import io
import itertools
import warnings

import numpy as np
import onnx
import pytest
from conftest import model_path, reference_cases
from onnx import TensorProto, helper, numpy_helper
from test_onnx_frontend import _assert_close, _ours, _session, make_model

from tinyc.cli import main as cli_main
from tinyc.errors import UnsupportedError
from tinyc.frontend.onnx import load_onnx
from tinyc.ir.ops.recurrent import ACTIVATION_NAMES

CONFORMANCE = "onnx_node_tests_rnn_qdq_if"
RNN_TESTS = [
    "test_gru_batchwise",
    "test_gru_defaults",
    "test_gru_seq_length",
    "test_gru_with_initial_bias",
    "test_lstm_batchwise",
    "test_lstm_defaults",
    "test_lstm_with_initial_bias",
    "test_lstm_with_peepholes",
    "test_rnn_seq_length",
    "test_simple_rnn_batchwise",
    "test_simple_rnn_defaults",
    "test_simple_rnn_with_initial_bias",
]
RECURRENT = ("LSTM", "GRU", "RNN")


def _load_strict(model):
    """Load and refuse what tinyc cannot run, as compile and infer do."""
    from tinyc.ir.verify import require_supported

    g = load_onnx(model)
    require_supported(g)
    return g


# -- helpers ------------------------------------------------------------------------------


def _pb(path) -> tuple[str, np.ndarray]:
    t = onnx.TensorProto()
    t.ParseFromString(path.read_bytes())
    return t.name, numpy_helper.to_array(t)


def _conformance(name: str) -> tuple[onnx.ModelProto, dict, list[np.ndarray]]:
    """A conformance test's model, its input tensors by name and its expected outputs."""
    path = model_path(f"{CONFORMANCE}/{name}/model.onnx")
    data = path.parent / "test_data_set_0"
    feeds = dict(_pb(p) for p in sorted(data.glob("input_*.pb")))
    outs = [_pb(p)[1] for p in sorted(data.glob("output_*.pb"))]
    return onnx.load(str(path)), feeds, outs


def _freeze(model: onnx.ModelProto, values: dict[str, np.ndarray]) -> bytes:
    """The model with some graph inputs turned into initializers."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    kept = [i for i in m.graph.input if i.name not in values]
    del m.graph.input[:]
    m.graph.input.extend(kept)
    m.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in values.items())
    return m.SerializeToString()


def _check_shipped(model, feeds: dict, expected: list[np.ndarray]) -> object:
    g = load_onnx(model)
    ours = _ours(g, {n: feeds[n] for n in g.inputs})
    assert len(g.outputs) == len(expected)
    for name, ref in zip(g.outputs, expected, strict=True):
        np.testing.assert_allclose(ours[name], ref, rtol=1e-4, atol=1e-6)
    return g


def _check_ort(model: bytes, seeds=range(2)) -> object:
    """tinyc's interpreter against onnxruntime on random inputs; the graph."""
    g = load_onnx(model)
    sess = _session(model)
    names = [o.name for o in sess.get_outputs()]
    for seed in seeds:
        rng = np.random.default_rng(seed)
        feeds = {i.name: rng.standard_normal(i.shape).astype(np.float32) for i in sess.get_inputs()}
        ours = _ours(g, feeds)
        for n, ref in zip(names, sess.run(None, feeds), strict=True):
            _assert_close(ours[n], ref)
    return g


def _ops(g) -> list[str]:
    return [n.op for n in g.nodes]


def _rand(*shape, seed=0, scale=0.5) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def _rnn_model(
    op: str,
    x_shape: list,
    hidden: int,
    dirs: int = 1,
    inputs: tuple[str, ...] = ("X", "W", "R", "B"),
    outputs: tuple[str, ...] = ("Y", "Y_h"),
    inits: dict | None = None,
    opset: int = 14,
    **attrs,
) -> bytes:
    """One recurrent node with constant W, R, B (and whatever ``inits`` adds)."""
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    feat = x_shape[2]
    weights = {
        "W": _rand(dirs, gates * hidden, feat, seed=1),
        "R": _rand(dirs, gates * hidden, hidden, seed=2),
        "B": _rand(dirs, 2 * gates * hidden, seed=3),
    }
    weights.update(inits or {})
    node = helper.make_node(
        op, list(inputs), list(outputs), name="rec", hidden_size=hidden, **attrs
    )
    used = {n: v for n, v in weights.items() if n in inputs}
    return make_model([node], {"X": x_shape}, [o for o in outputs if o], used, opset=opset)


# -- the ONNX conformance tests -----------------------------------------------------------


@pytest.mark.parametrize("name", RNN_TESTS)
def test_conformance_runtime_weights(name):
    """W, R, B (and P, initial states) are graph inputs, as shipped; sequence_lens, which
    tinyc needs constant, is frozen to its shipped value (the sequence length)."""
    model, feeds, expected = _conformance(name)
    frozen = {k: v for k, v in feeds.items() if k == "sequence_lens"}
    g = _check_shipped(_freeze(model, frozen), feeds, expected)
    assert sum(op in RECURRENT for op in _ops(g)) == 1


@pytest.mark.parametrize("name", RNN_TESTS)
def test_conformance_constant_weights(name):
    """The same tests with every input but X constant: weights cut and biases folded at
    compile time."""
    model, feeds, expected = _conformance(name)
    g = _check_shipped(
        _freeze(model, {k: v for k, v in feeds.items() if k != "X"}), feeds, expected
    )
    assert set(_ops(g)) <= {*RECURRENT, "RESHAPE", "PACK"}


def test_conformance_through_cli_infer(tmp_path):
    model, feeds, expected = _conformance("test_lstm_batchwise")
    path = model_path(f"{CONFORMANCE}/test_lstm_batchwise/model.onnx")
    args = ["infer", str(path), "-o", str(tmp_path / "out")]
    for inp in model.graph.input:
        np.save(tmp_path / f"{inp.name}.npy", feeds[inp.name])
        args += ["-i", str(tmp_path / f"{inp.name}.npy")]
    assert cli_main(args) == 0
    for i, ref in enumerate(expected):
        np.testing.assert_allclose(np.load(tmp_path / "out" / f"output_{i}.npy"), ref, rtol=1e-4)


def test_run_time_sequence_lens_is_refused():
    path = model_path(f"{CONFORMANCE}/test_lstm_with_peepholes/model.onnx")
    with pytest.raises(UnsupportedError, match=r"sequence_lens of node '.*' \(LSTM\)"):
        _load_strict(path)


def test_run_time_if_condition_is_refused():
    path = model_path(f"{CONFORMANCE}/test_if/model.onnx")
    with pytest.raises(UnsupportedError, match=r"condition of node .* \(If\).*fold to a constant"):
        _load_strict(path)


def test_gtcrn_matches_reference_io():
    """A real export: GTCRN (grouped GRUs, bidirectional ones among them, in a streaming
    speech enhancer) against the shipped onnxruntime outputs."""
    rel = "onnx_gtcrn_simple/gtcrn_simple.onnx"
    g = load_onnx(model_path(rel))
    assert _ops(g).count("GRU") >= 14
    cases = reference_cases(rel)
    assert cases
    for case in cases:
        feeds = {n: np.load(case / f"input_{i}.npy") for i, n in enumerate(g.inputs)}
        with np.errstate(over="ignore"):  # exp overflow in sigmoids of large inputs
            ours = _ours(g, feeds)
        for i, name in enumerate(g.outputs):
            _assert_close(ours[name], np.load(case / f"output_{i}.npy"))


# -- translation details against onnxruntime ------------------------------------------------


@pytest.mark.parametrize("op", RECURRENT)
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_directions_and_initial_states(op, direction):
    dirs = 2 if direction == "bidirectional" else 1
    states = {"initial_h": _rand(dirs, 2, 5, seed=4), "initial_c": _rand(dirs, 2, 5, seed=5)}
    ins = ("X", "W", "R", "B", "", "initial_h") + (("initial_c",) if op == "LSTM" else ())
    outs = ("Y", "Y_h", "Y_c") if op == "LSTM" else ("Y", "Y_h")
    extra = {"linear_before_reset": 1} if op == "GRU" else {}
    model = _rnn_model(op, [6, 2, 3], 5, dirs, ins, outs, states, direction=direction, **extra)
    g = _check_ort(model)
    assert _ops(g).count(op) == dirs
    assert "TRANSPOSE" not in _ops(g)


def test_initial_state_as_graph_input():
    node = helper.make_node(
        "GRU",
        ["X", "W", "R", "B", "", "h0"],
        ["Y", "Y_h"],
        hidden_size=4,
        direction="bidirectional",
    )
    inits = {"W": _rand(2, 12, 3, seed=1), "R": _rand(2, 12, 4, seed=2), "B": _rand(2, 24)}
    _check_ort(make_model([node], {"X": [5, 2, 3], "h0": [2, 2, 4]}, ["Y", "Y_h"], inits))


def test_lstm_peepholes_and_only_the_final_state():
    p = _rand(1, 15, seed=6)
    model = _rnn_model(
        "LSTM", [4, 1, 3], 5, 1, ("X", "W", "R", "B", "", "", "", "P"), ("", "Y_h"), {"P": p}
    )
    g = _check_ort(model)
    assert _ops(g) == ["LSTM", "RESHAPE"]


def test_constant_biases_are_folded_where_int8_wants_them():
    """GRU: recurrent z and r biases (and h without linear_before_reset) folded into the
    input biases; RNN: Rb into Wb; LSTM: Wb + Rb per gate."""
    for lbr in (0, 1):
        g = _check_ort(_rnn_model("GRU", [3, 1, 2], 4, linear_before_reset=lbr))
        (gru,) = [n for n in g.nodes if n.op == "GRU"]
        slots = [*gru.inputs, *[""] * 14][:14]
        assert all(slots[7:10]) and not slots[10] and not slots[11]
        assert bool(slots[12]) == bool(lbr)
    g = _check_ort(_rnn_model("RNN", [3, 1, 2], 4))
    (rnn,) = [n for n in g.nodes if n.op == "RNN"]
    assert rnn.inputs[3] and (len(rnn.inputs) < 5 or not rnn.inputs[4])
    g = _check_ort(_rnn_model("LSTM", [3, 1, 2], 4))
    (lstm,) = [n for n in g.nodes if n.op == "LSTM"]
    assert all(lstm.inputs[12:16]) and not any(lstm.inputs[9:12])
    assert "ADD" not in _ops(g)


@pytest.mark.parametrize("act", ACTIVATION_NAMES)
def test_every_activation(act):
    """Each activation in each position, with alpha and beta where it takes them."""
    alpha, beta = [0.7, 0.3, 0.2], [0.4, 0.1, 0.6]
    kw = {"activation_alpha": alpha, "activation_beta": beta}
    _check_ort(_rnn_model("RNN", [4, 2, 3], 4, activations=[act], **kw))
    _check_ort(_rnn_model("LSTM", [4, 2, 3], 4, activations=[act, "Tanh", act], **kw))
    _check_ort(_rnn_model("GRU", [4, 2, 3], 4, activations=["Sigmoid", act], **kw))


def test_activations_per_direction():
    """alpha and beta go to the activations that take them, in order (onnxruntime's
    reading): here HardSigmoid (0.25, 0.45), LeakyRelu 0.3 and Affine (2.0, 0.5)."""
    acts = ["HardSigmoid", "Tanh", "Tanh", "Sigmoid", "LeakyRelu", "Affine"]
    model = _rnn_model(
        "LSTM",
        [5, 2, 3],
        4,
        2,
        direction="bidirectional",
        activations=acts,
        activation_alpha=[0.25, 0.3, 2.0],
        activation_beta=[0.45, 0.5],
    )
    g = _check_ort(model)
    fw, bw = [n for n in g.nodes if n.op == "LSTM"]
    assert fw.attrs["activations"] == tuple(acts[:3])
    assert bw.attrs["activation_alpha"] == pytest.approx((0.0, 0.3, 2.0))
    assert bw.attrs["activation_beta"] == pytest.approx((0.0, 0.0, 0.5))


@pytest.mark.parametrize("op,clip", [("GRU", 0.3), ("RNN", 0.3), ("LSTM", 1.5)])
def test_clip(op, clip):
    """clip bounds every activation's input. onnxruntime does not clip the LSTM cell state
    before h (onnxruntime issue 27224; tinyc follows the ONNX spec), so the LSTM case keeps
    the cell state inside the bound."""
    g = _check_ort(_rnn_model(op, [5, 2, 3], 4, 2, direction="bidirectional", clip=clip))
    assert all(n.attrs["clip"] == pytest.approx(clip) for n in g.nodes if n.op == op)


@pytest.mark.parametrize("op", RECURRENT)
def test_layout_1_against_onnx_reference(op):
    """layout=1 ([B, T, .] tensors), bidirectional, with initial states: onnxruntime refuses
    layout=1, onnx.reference runs it."""
    from onnx.reference import ReferenceEvaluator

    states = {"initial_h": _rand(2, 2, 4, seed=4), "initial_c": _rand(2, 2, 4, seed=5)}
    ins = ("X", "W", "R", "B", "", "initial_h") + (("initial_c",) if op == "LSTM" else ())
    outs = ("Y", "Y_h", "Y_c") if op == "LSTM" else ("Y", "Y_h")
    model = _rnn_model(op, [2, 5, 3], 4, 2, ins, outs, states, direction="bidirectional", layout=1)
    x = _rand(2, 5, 3, seed=9, scale=1.0)
    ref = ReferenceEvaluator(onnx.load_model_from_string(model)).run(None, {"X": x})
    g = load_onnx(model)
    ours = _ours(g, {"X": x})
    for name, r in zip(outs, ref, strict=True):
        _assert_close(ours[name], r)
    assert "TRANSPOSE" not in _ops(g)


def test_qdq_weights_and_input():
    """A QDQ export: the input through QuantizeLinear/DequantizeLinear, W and R stored as
    int8 with per-tensor scales."""
    w, r = _rand(1, 16, 3, seed=1), _rand(1, 16, 4, seed=2)
    ws, rs = np.float32(np.abs(w).max() / 127), np.float32(np.abs(r).max() / 127)
    inits = {
        "Wq": np.round(w / ws).astype(np.int8),
        "Rq": np.round(r / rs).astype(np.int8),
        "ws": ws,
        "rs": rs,
        "xs": np.float32(0.02),
        "xz": np.int8(0),
        "B": _rand(1, 32, seed=3),
    }
    nodes = [
        helper.make_node("QuantizeLinear", ["X", "xs", "xz"], ["Xq"]),
        helper.make_node("DequantizeLinear", ["Xq", "xs", "xz"], ["Xd"]),
        helper.make_node("DequantizeLinear", ["Wq", "ws"], ["W"]),
        helper.make_node("DequantizeLinear", ["Rq", "rs"], ["R"]),
        helper.make_node("LSTM", ["Xd", "W", "R", "B"], ["Y"], hidden_size=4, name="qlstm"),
    ]
    g = _check_ort(make_model(nodes, {"X": [5, 1, 3]}, ["Y"], inits))
    assert _ops(g).count("LSTM") == 1


# -- the idioms around recurrent layers ----------------------------------------------------


def test_zero_state_from_shape_subgraph_folds():
    """Shape -> Gather -> Unsqueeze -> Concat -> ConstantOfShape as the initial state."""
    nodes = [
        helper.make_node("Shape", ["X"], ["sh"]),
        helper.make_node("Gather", ["sh", "one"], ["batch"], axis=0),
        helper.make_node("Unsqueeze", ["batch", "ax0"], ["batch1"]),
        helper.make_node("Concat", ["dirs", "batch1", "hid"], ["hshape"], axis=0),
        helper.make_node(
            "ConstantOfShape",
            ["hshape"],
            ["h0"],
            value=numpy_helper.from_array(np.zeros(1, np.float32)),
        ),
        helper.make_node(
            "LSTM", ["X", "W", "R", "B", "", "h0", "h0"], ["Y"], hidden_size=5, name="lstm"
        ),
        helper.make_node("Squeeze", ["Y", "ax1"], ["y"]),
    ]
    inits = {
        "W": _rand(1, 20, 3, seed=1),
        "R": _rand(1, 20, 5, seed=2),
        "B": _rand(1, 40),
        "one": np.array(1, np.int64),
        "ax0": np.array([0], np.int64),
        "ax1": np.array([1], np.int64),
        "dirs": np.array([1], np.int64),
        "hid": np.array([5], np.int64),
    }
    g = _check_ort(make_model(nodes, {"X": [6, 2, 3]}, ["y"], inits))
    assert _ops(g) == ["LSTM"]


@pytest.mark.parametrize("how", ["gather", "slice"])
def test_last_step_of_a_batch_first_gru(how):
    """``y[:, -1, :]`` after a batch-first GRU (Transpose in, Transpose out)."""
    last = [
        helper.make_node("Gather", ["yb", "minus1"], ["y"], axis=1)
        if how == "gather"
        else helper.make_node("Slice", ["yb", "minus1", "big", "ax1"], ["ys"]),
    ]
    if how == "slice":
        last.append(helper.make_node("Squeeze", ["ys", "ax1"], ["y"]))
    nodes = [
        helper.make_node("Transpose", ["X"], ["xt"], perm=[1, 0, 2]),
        helper.make_node("GRU", ["xt", "W", "R", "B"], ["Y"], hidden_size=4, name="gru"),
        helper.make_node("Squeeze", ["Y", "ax1"], ["ysq"]),
        helper.make_node("Transpose", ["ysq"], ["yb"], perm=[1, 0, 2]),
        *last,
    ]
    inits = {
        "W": _rand(1, 12, 3, seed=1),
        "R": _rand(1, 12, 4, seed=2),
        "B": _rand(1, 24),
        "minus1": np.array(-1 if how == "gather" else [-1], np.int64),
        "big": np.array([2**62], np.int64),
        "ax1": np.array([1], np.int64),
    }
    g = _check_ort(make_model(nodes, {"X": [2, 6, 3]}, ["y"], inits))
    assert _ops(g)[0] == "GRU" and len(_ops(g)) <= 3 and "TRANSPOSE" not in _ops(g)


def test_conv1d_then_gru_reads_the_channel_last_layout():
    """A CRNN: Conv1d (held [N, W, C]) -> Transpose to [W, N, C] -> GRU -> last step ->
    Gemm. The GRU reads the conv output as it is stored (batch-major): no transpose."""
    nodes = [
        helper.make_node("Conv", ["x", "wc"], ["c"], pads=[1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Transpose", ["r"], ["seq"], perm=[2, 0, 1]),
        helper.make_node("GRU", ["seq", "W", "R", "B"], ["Y"], hidden_size=5, name="gru"),
        helper.make_node("Gather", ["Y", "last"], ["yl"], axis=0),
        helper.make_node("Squeeze", ["yl", "ax0"], ["h"]),
        helper.make_node("Gemm", ["h", "wf"], ["y"], transB=1),
    ]
    inits = {
        "wc": _rand(6, 2, 3),
        "W": _rand(1, 15, 6, seed=1),
        "R": _rand(1, 15, 5, seed=2),
        "B": _rand(1, 30, seed=3),
        "last": np.array(-1, np.int64),
        "ax0": np.array([0], np.int64),
        "wf": _rand(3, 5, seed=4),
    }
    g = _check_ort(make_model(nodes, {"x": [1, 2, 9]}, ["y"], inits))
    (gru,) = [n for n in g.nodes if n.op == "GRU"]
    assert gru.attrs["time_major"] is False and "TRANSPOSE" not in _ops(g)


GATHER_CASES = [
    (0, 1),
    (1, -1),
    (3, np.array([3, 0, 1])),
    (2, np.array([[0, 2], [2, 1]])),
    (1, np.array([0, 1, 2, 3])),  # the whole axis
]


@pytest.mark.parametrize("axis,indices", GATHER_CASES)
def test_gather_on_run_time_tensor(axis, indices):
    """On a conv output (held NHWC): scalar, negative, scattered, 2-D and full indices."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"]),
        helper.make_node("Gather", ["c", "idx"], ["y"], axis=axis),
    ]
    inits = {"w": _rand(4, 2, 1, 1), "idx": np.asarray(indices, np.int64)}
    _check_ort(make_model(nodes, {"x": [2, 2, 3, 5]}, ["y"], inits))


SLICE_CASES = [
    ([1], [3], [1], [1]),
    ([0, -2], [2**62, 5], [3, 2], [2, 1]),
    ([-1], [-(2**62)], [2], [-1]),  # reversed
    ([4, 0], [0, 2], [3, 1], [-2, 1]),
]


@pytest.mark.parametrize("starts,ends,axes,steps", SLICE_CASES)
def test_slice_on_run_time_tensor(starts, ends, axes, steps):
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"]),
        helper.make_node("Slice", ["c", "s", "e", "a", "st"], ["y"]),
    ]
    inits = {
        "w": _rand(4, 2, 1, 1),
        "s": np.array(starts, np.int64),
        "e": np.array(ends, np.int64),
        "a": np.array(axes, np.int64),
        "st": np.array(steps, np.int64),
    }
    _check_ort(make_model(nodes, {"x": [1, 2, 3, 5]}, ["y"], inits))


@pytest.mark.parametrize(
    "perm,target,moves",
    [([1, 0, 2], [6, 40], True), ([1, 0, 2], [2, 3, 4, 10], False), ([2, 0, 1], [10, 24], False)],
)
def test_reshape_after_transpose(perm, target, moves):
    """A reshape that merges or splits axes the layout keeps whole and in order needs no
    transpose (the first case merges axes that are apart in memory)."""
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=perm),
        helper.make_node("Reshape", ["t", "shape"], ["r"]),
        helper.make_node("Relu", ["r"], ["y"]),
    ]
    inits = {"shape": np.array(target, np.int64)}
    g = _check_ort(make_model(nodes, {"x": [4, 6, 10]}, ["y"], inits))
    assert ("TRANSPOSE" in _ops(g)) == moves


@pytest.mark.parametrize("taken", [True, False])
def test_if_with_a_constant_condition_is_inlined(taken):
    """The condition folds (a shape comparison); the branches read an outer-scope value."""
    then_g = helper.make_graph(
        [helper.make_node("Relu", ["a"], ["t_out"])],
        "then",
        [],
        [helper.make_tensor_value_info("t_out", TensorProto.FLOAT, [1, 4])],
    )
    else_g = helper.make_graph(
        [helper.make_node("Mul", ["a", "two"], ["e_out"])],
        "else",
        [],
        [helper.make_tensor_value_info("e_out", TensorProto.FLOAT, [1, 4])],
    )
    nodes = [
        helper.make_node("Tanh", ["x"], ["a"]),
        helper.make_node("Shape", ["x"], ["sh"]),
        helper.make_node("Gather", ["sh", "one"], ["width"], axis=0),
        helper.make_node("Equal", ["width", "four" if taken else "five"], ["cond"]),
        helper.make_node("If", ["cond"], ["y"], then_branch=then_g, else_branch=else_g),
    ]
    inits = {
        "one": np.array(1, np.int64),
        "four": np.array(4, np.int64),
        "five": np.array(5, np.int64),
        "two": np.array(2.0, np.float32),
    }
    g = _check_ort(make_model(nodes, {"x": [1, 4]}, {"y": [1, 4]}, inits))
    assert _ops(g) == ["TANH", "RELU"] if taken else ["TANH", "MUL"]


# -- exporters ------------------------------------------------------------------------------


def _net(cell: str, layers: int, batch_first: bool, bidirectional: bool, init: bool):
    """An nn.LSTM / GRU / RNN returning its sequence and final state(s)."""
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            cls = getattr(torch.nn, cell)
            self.rnn = cls(3, 5, layers, batch_first=batch_first, bidirectional=bidirectional)

        def forward(self, x, *state):
            if init:
                y, h = self.rnn(x, state[0] if len(state) == 1 else tuple(state))
            else:
                y, h = self.rnn(x)
            return (y, *h) if isinstance(h, tuple) else (y, h)

    torch.manual_seed(0)
    return Net().eval()


def _export(cell, layers, batch_first, bi, init, dynamo: bool, tmp_path) -> bytes:
    import torch

    net = _net(cell, layers, batch_first, bi, init)
    x = torch.randn(2, 6, 3) if batch_first else torch.randn(6, 2, 3)
    states = ()
    if init:
        h = torch.randn(layers * (2 if bi else 1), 2, 5)
        states = (h, torch.randn_like(h)) if cell == "LSTM" else (h,)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not dynamo:
            buf = io.BytesIO()
            torch.onnx.export(net, (x, *states), buf, dynamo=False)
            return buf.getvalue()
        pytest.importorskip("onnxscript")
        path = tmp_path / "model.onnx"
        torch.onnx.export(net, (x, *states), str(path), dynamo=True, external_data=False)
        return path.read_bytes()


CONFIGS = list(itertools.product(RECURRENT, (1, 2), (False, True), (False, True), (False, True)))
#: (cell, layers, batch_first, bidirectional, initial state) run by default
FAST_TORCHSCRIPT = [
    c for c in CONFIGS if c[1:] in [(1, False, False, False), (2, True, True, True)]
] + [("LSTM", 1, True, False, True), ("GRU", 2, False, True, False)]
FAST_DYNAMO = [("LSTM", 2, True, True, True), ("GRU", 1, False, False, False)]
FAST_DYNAMO += [("RNN", 1, True, False, False)]


def _cases(fast):
    return [c if c in fast else pytest.param(*c, marks=pytest.mark.slow) for c in CONFIGS]


def _check_export(model: bytes, cell: str, layers: int, bi: bool) -> None:
    g = _check_ort(model, seeds=[0])
    ops = _ops(g)
    if cell in ops:  # the dynamo exporter unrolls nn.RNN into per-step MatMuls
        assert ops.count(cell) == layers * (2 if bi else 1)
    assert "TRANSPOSE" not in ops


@pytest.mark.parametrize("cell,layers,batch_first,bi,init", _cases(FAST_TORCHSCRIPT))
def test_torchscript_export(cell, layers, batch_first, bi, init, tmp_path):
    model = _export(cell, layers, batch_first, bi, init, False, tmp_path)
    _check_export(model, cell, layers, bi)


@pytest.mark.parametrize("cell,layers,batch_first,bi,init", _cases(FAST_DYNAMO))
def test_dynamo_export(cell, layers, batch_first, bi, init, tmp_path):
    """torch 2.13's dynamo exporter emits ONNX LSTM / GRU nodes (opset 20) but unrolls
    nn.RNN into MatMul / Add / Tanh per step, with Slice / Squeeze / Concat around them."""
    model = _export(cell, layers, batch_first, bi, init, True, tmp_path)
    ops = {n.op_type for n in onnx.load_model_from_string(model).graph.node}
    assert (cell in ops) == (cell != "RNN")
    _check_export(model, cell, layers, bi)


# -- bad input ------------------------------------------------------------------------------


def test_dynamic_sequence_length_is_an_error():
    with pytest.raises(UnsupportedError, match=r"node 'rec' \(LSTM\): its sequence length .*'T'"):
        _load_strict(_rnn_model("LSTM", ["T", 1, 3], 4))
    # batch first, through a Transpose: axis 1 of the input
    nodes = [
        helper.make_node("Transpose", ["X"], ["xt"], perm=[1, 0, 2]),
        helper.make_node("GRU", ["xt", "W", "R"], ["Y"], hidden_size=4, name="g1"),
    ]
    inits = {"W": _rand(1, 12, 3), "R": _rand(1, 12, 4)}
    model = make_model(nodes, {"X": ["N", "T", 3]}, ["Y"], inits)
    with pytest.raises(UnsupportedError, match=r"node 'g1' \(GRU\): .*axis 1 of input 'X'"):
        _load_strict(model)


def test_unsupported_activation_names_the_node():
    with pytest.raises(UnsupportedError, match=r"node 'rec' \(RNN\): activation 'Gelu'"):
        _load_strict(_rnn_model("RNN", [3, 1, 2], 4, activations=["Gelu"]))
    with pytest.raises(UnsupportedError, match=r"node 'rec' \(GRU\): 2 activations for 2 dir"):
        _load_strict(
            _rnn_model(
                "GRU", [3, 1, 2], 4, 2, direction="bidirectional", activations=["Sigmoid", "Tanh"]
            )
        )


def test_sequence_lens_must_be_the_sequence_length():
    ins = ("X", "W", "R", "B", "lens")
    ok = _rnn_model("RNN", [3, 2, 2], 4, 1, ins, inits={"lens": np.array([3, 3], np.int32)})
    _check_ort(ok)
    bad = _rnn_model("RNN", [3, 2, 2], 4, 1, ins, inits={"lens": np.array([3, 2], np.int32)})
    with pytest.raises(UnsupportedError, match=r"node 'rec' \(RNN\): sequence_lens \[3, 2\]"):
        _load_strict(bad)


def test_input_forget_is_refused():
    with pytest.raises(UnsupportedError, match=r"node 'rec' \(LSTM\): input_forget=1"):
        _load_strict(_rnn_model("LSTM", [3, 1, 2], 4, input_forget=1))


def test_mismatched_hidden_size_is_an_error():
    inits = {"W": _rand(1, 12, 2), "R": _rand(1, 12, 4), "B": _rand(1, 24)}
    model = _rnn_model("GRU", [3, 1, 2], 3, inits=inits)  # hidden_size 3, weights for 4
    with pytest.raises(UnsupportedError, match=r"node 'rec' \(GRU\): hidden_size 3 but W"):
        _load_strict(model)
