"""TFLite WHILE loops with a compile-time trip count, unrolled at import: a recurrent cell
over the steps of a sequence (the shape converters give unfused Keras RNNs) matches TFLM."""

from __future__ import annotations

import numpy as np
import pytest
from builtin_checks import compare_file, options, pack_subgraphs, raw_tflite
from test_tflite_variables import _op, _tensor

from tinyc.frontend.tflite import load_tflite
from tinyc.tflite_schema import schema

TYPES_EXTRA = {"int32": 2, "bool": 6}


def _t(S, buffers, name, dtype, shape, data=None):
    if dtype in TYPES_EXTRA:
        t = _tensor(S, buffers, name, "float32", shape, data)
        t.type = TYPES_EXTRA[dtype]
        return t
    return _tensor(S, buffers, name, dtype, shape, data)


def rnn_loop(steps: int = 5, limit: int | None = None, runtime_limit: bool = False) -> bytes:
    """h_t = tanh(W x_t + b + U h_(t-1)) over ``steps`` steps of seq [1, steps, 3], as a WHILE
    loop: counter t from 0 while t < limit (``steps``), x_t = GATHER(seq, t, axis 1)."""
    S = schema()
    O = S.BuiltinOptions
    rng = np.random.default_rng(3)
    buffers = [S.BufferT()]
    codes: list[str] = []
    limit = steps if limit is None else limit
    main = S.SubGraphT()
    main.tensors = [
        _t(S, buffers, "seq", "float32", [1, steps, 3]),
        _t(S, buffers, "t0", "int32", [], np.array(0, np.int32)),
        _t(S, buffers, "h0", "float32", [1, 4], np.zeros((1, 4), np.float32)),
        _t(S, buffers, "t_out", "int32", []),
        _t(S, buffers, "h_out", "float32", [1, 4]),
        _t(S, buffers, "seq_out", "float32", [1, steps, 3]),
        # the limit: a constant, or a model input (then the trip count is not known)
        _t(S, buffers, "n", "int32", [], None if runtime_limit else np.array(limit, np.int32)),
        _t(S, buffers, "n_out", "int32", []),
    ]
    main.operators = [
        _op(S, codes, "WHILE", [1, 2, 0, 6], [3, 4, 5, 7],
            options("WhileOptionsT", condSubgraphIndex=1, bodySubgraphIndex=2), O.WhileOptions),
    ]  # fmt: skip
    main.inputs, main.outputs = ([0, 6] if runtime_limit else [0]), [4]
    cond = S.SubGraphT()
    cond.tensors = [
        _t(S, buffers, "t", "int32", []),
        _t(S, buffers, "h", "float32", [1, 4]),
        _t(S, buffers, "s", "float32", [1, steps, 3]),
        _t(S, buffers, "n", "int32", []),
        _t(S, buffers, "go", "bool", []),
    ]
    cond.operators = [_op(S, codes, "LESS", [0, 3], [4])]
    cond.inputs, cond.outputs = [0, 1, 2, 3], [4]
    body = S.SubGraphT()
    body.tensors = [
        _t(S, buffers, "t", "int32", []),
        _t(S, buffers, "h", "float32", [1, 4]),
        _t(S, buffers, "s", "float32", [1, steps, 3]),
        _t(S, buffers, "one", "int32", [], np.array(1, np.int32)),
        _t(S, buffers, "t_next", "int32", []),
        _t(S, buffers, "x", "float32", [1, 3]),
        _t(S, buffers, "W", "float32", [4, 3], rng.standard_normal((4, 3)).astype(np.float32)),
        _t(S, buffers, "U", "float32", [4, 4], rng.standard_normal((4, 4)).astype(np.float32) / 2),
        _t(S, buffers, "b", "float32", [4], rng.standard_normal(4).astype(np.float32)),
        _t(S, buffers, "wx", "float32", [1, 4]),
        _t(S, buffers, "uh", "float32", [1, 4]),
        _t(S, buffers, "pre", "float32", [1, 4]),
        _t(S, buffers, "h_next", "float32", [1, 4]),
        _t(S, buffers, "n", "int32", []),
    ]
    fc = options("FullyConnectedOptionsT")
    body.operators = [
        _op(S, codes, "ADD", [0, 3], [4], options("AddOptionsT"), O.AddOptions),
        _op(S, codes, "GATHER", [2, 0], [5], options("GatherOptionsT", axis=1), O.GatherOptions),
        _op(S, codes, "FULLY_CONNECTED", [5, 6, 8], [9], fc, O.FullyConnectedOptions),
        _op(S, codes, "FULLY_CONNECTED", [1, 7, -1], [10], fc, O.FullyConnectedOptions),
        _op(S, codes, "ADD", [9, 10], [11], options("AddOptionsT"), O.AddOptions),
        _op(S, codes, "TANH", [11], [12]),
    ]
    body.inputs, body.outputs = [0, 1, 2, 13], [4, 12, 2, 13]
    return pack_subgraphs(codes, [main, cond, body], buffers)


def test_an_rnn_loop_unrolls_and_matches_tflm():
    rng = np.random.default_rng(0)
    cases = [[rng.standard_normal((1, 5, 3)).astype(np.float32)] for _ in range(3)]
    g = compare_file(rnn_loop(5), "rnn_loop", cases, tol=1e-5)
    ops = [n.op for n in g.nodes]
    # 5 steps of (GATHER, FC, FC, ADD, TANH), minus the first step's FC of the zero state
    # (folded); the counter and the condition leave no node
    assert ops.count("TANH") == 5 and ops.count("GATHER") == 5
    assert "LESS" not in ops and all(n.op != "UNSUPPORTED" for n in g.nodes)
    assert g.outputs == ["h_out"]  # the model's own output name survives the unrolling


def test_zero_iterations_give_the_initial_values():
    rng = np.random.default_rng(1)
    g = compare_file(rnn_loop(5, limit=0), "rnn_loop0", [[rng.standard_normal((1, 5, 3))
                     .astype(np.float32)]], tol=1e-6)  # fmt: skip
    assert not any(n.op == "TANH" for n in g.nodes)


def test_a_run_time_trip_count_is_refused_by_name():
    g = load_tflite(rnn_loop(5, runtime_limit=True), "loop_n")
    bad = [n for n in g.nodes if n.op == "UNSUPPORTED"]
    assert len(bad) == 1 and bad[0].attrs["op"] == "WHILE"
    assert "the loop condition depends on run-time values" in bad[0].attrs["reason"]


def if_model(cond: bool | None) -> bytes:
    """y = IF(c, x): then x * 2, else x + 1; ``c`` a constant, or (None) a model input."""
    S = schema()
    O = S.BuiltinOptions
    buffers = [S.BufferT()]
    codes: list[str] = []
    main = S.SubGraphT()
    c = None if cond is None else np.array(cond, np.bool_)
    main.tensors = [
        _t(S, buffers, "x", "float32", [1, 4]),
        _t(S, buffers, "c", "bool", [], c),
        _t(S, buffers, "y", "float32", [1, 4]),
    ]
    main.operators = [
        _op(S, codes, "IF", [1, 0], [2],
            options("IfOptionsT", thenSubgraphIndex=1, elseSubgraphIndex=2), O.IfOptions),
    ]  # fmt: skip
    main.inputs, main.outputs = ([0] if cond is not None else [0, 1]), [2]
    branches = []
    for kind, k in (("MUL", 2.0), ("ADD", 1.0)):
        sg = S.SubGraphT()
        sg.tensors = [
            _t(S, buffers, "x", "float32", [1, 4]),
            _t(S, buffers, "k", "float32", [1], np.array([k], np.float32)),
            _t(S, buffers, "y", "float32", [1, 4]),
        ]
        opts = options(f"{kind.capitalize()}OptionsT")
        sg.operators = [
            _op(S, codes, kind, [0, 1], [2], opts, getattr(O, f"{kind.capitalize()}Options"))
        ]
        sg.inputs, sg.outputs = [0], [2]
        branches.append(sg)
    return pack_subgraphs(codes, [main, *branches], buffers)


def test_an_if_with_a_constant_condition_is_inlined():
    x = [[np.array([[1.0, -2.0, 0.5, 3.0]], np.float32)]]
    for cond, op in ((True, "MUL"), (False, "ADD")):
        g = compare_file(if_model(cond), "if", x, ops=[op])
        assert g.outputs == ["y"]
    bad = [n for n in load_tflite(if_model(None), "if_rt").nodes if n.op == "UNSUPPORTED"]
    assert len(bad) == 1 and "the condition is known only at run time" in bad[0].attrs["reason"]


@pytest.mark.parametrize("kind", ["ADD", "SUB", "MUL"])
def test_int32_arithmetic_matches_tflm(kind):
    """Index arithmetic (a loop counter, a shape) on int32 tensors, as TFLM's int32 kernels."""
    from tinyc.ir.tensor import Tensor

    ts = [Tensor("a", (2, 3), "int32"), Tensor("b", (3,), "int32"), Tensor("y", (2, 3), "int32")]
    opts = options(f"{kind.capitalize()}OptionsT")
    data = raw_tflite(kind, ts, ["a", "b"], ["y"], opts)
    rng = np.random.default_rng(2)
    cases = [[rng.integers(-1000, 1000, (2, 3)).astype(np.int32),
              rng.integers(-1000, 1000, 3).astype(np.int32)] for _ in range(3)]  # fmt: skip
    compare_file(data, kind.lower(), cases, ops=[kind])


def test_int32_arithmetic_is_refused_by_the_c_backend(tmp_path):
    from tinyc.backends.cmsis.codegen import generate_model
    from tinyc.errors import UnsupportedError
    from tinyc.ir.tensor import Tensor

    ts = [Tensor("a", (4,), "int32"), Tensor("b", (4,), "int32"), Tensor("y", (4,), "int32")]
    g = load_tflite(raw_tflite("ADD", ts, ["a", "b"], ["y"], options("AddOptionsT")), "add32")
    with pytest.raises(UnsupportedError, match="the C backend runs int8 graphs"):
        generate_model(g, "add32", "dsp")
