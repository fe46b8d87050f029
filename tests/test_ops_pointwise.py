"""PRelu, Pow, Sqrt and Div: PRELU, MUL(x, x), SQRT and DIV.

Float: tinyc against onnxruntime. int8: PRELU and DIV against TFLite Micro bit for bit;
SQRT (no int8 kernel in TFLM) against its definition, the table of tinyc.ir.ops.table; the
C kernels against the interpreter on the host.
"""

from __future__ import annotations

import numpy as np
import pytest
from graphs import Builder
from onnx import helper
from op_checks import c_vs_interpreter, float_vs_ort, int8_vs_tflm
from test_onnx_frontend import make_model

from tinyc import interpreter
from tinyc.errors import TinycError, UnsupportedError
from tinyc.frontend.onnx import load_onnx
from tinyc.ir.fixedpoint import count_leading_sign_bits
from tinyc.ir.graph import Graph
from tinyc.ir.ops import get_op
from tinyc.ir.tensor import Tensor
from tinyc.ir.verify import require_supported
from tinyc.modelio import random_inputs

pytest.importorskip("tflite_micro")


def _ops(g: Graph) -> list[str]:
    return [n.op for n in g.nodes]


# -- float against onnxruntime ------------------------------------------------------------


@pytest.mark.parametrize(
    "slope", [np.array([[[0.25]]]), np.linspace(-0.5, 0.5, 4).reshape(4, 1, 1), np.array(0.1)]
)
def test_prelu_float(slope):
    """Scalar and per-channel slopes after a Conv (NHWC inside tinyc)."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"]),
        helper.make_node("PRelu", ["c", "s"], ["y"]),
    ]
    inits = {"w": np.eye(4, dtype=np.float32)[:, :, None, None], "s": slope.astype(np.float32)}
    g = float_vs_ort(make_model(nodes, {"x": [1, 4, 3, 5]}, ["y"], inits))
    assert _ops(g) == ["CONV_2D", "PRELU"]


def test_pow_sqrt_div_float():
    """The normalisation idiom: (x - mean) / sqrt(mean((x - mean) ** 2) + eps)."""
    axes = {"axes": [-2, -1]}
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["m"], **axes),
        helper.make_node("Sub", ["x", "m"], ["d"]),
        helper.make_node("Pow", ["d", "two"], ["d2"]),
        helper.make_node("ReduceMean", ["d2"], ["v"], **axes),
        helper.make_node("Add", ["v", "eps"], ["ve"]),
        helper.make_node("Sqrt", ["ve"], ["s"]),
        helper.make_node("Div", ["d", "s"], ["y"]),
    ]
    inits = {"two": np.array(2.0, np.float32), "eps": np.array(1e-8, np.float32)}
    g = float_vs_ort(make_model(nodes, {"x": [1, 1, 6, 4]}, ["y"], inits, opset=11))
    assert {"MUL", "SQRT", "DIV"} <= set(_ops(g))


@pytest.mark.parametrize("exponent,op", [(2.0, "MUL"), (0.5, "SQRT"), (1.0, None)])
def test_pow_float(exponent, op):
    nodes = [helper.make_node("Pow", ["x", "p"], ["y"])]
    inits = {"p": np.array([exponent], np.float32)}
    g = float_vs_ort(make_model(nodes, {"x": [2, 5]}, ["y"], inits), positive=("x",))
    assert op is None or _ops(g) == [op]


def test_pow_other_exponents_refused():
    nodes = [helper.make_node("Pow", ["x", "p"], ["y"])]
    with pytest.raises(UnsupportedError, match="exponent 3"):
        require_supported(
            load_onnx(make_model(nodes, {"x": [2, 5]}, ["y"], {"p": np.array(3.0, np.float32)}))
        )


def test_div_broadcast_float():
    nodes = [helper.make_node("Div", ["a", "b"], ["y"])]
    model = make_model(nodes, {"a": [2, 3, 4], "b": [3, 1]}, ["y"])
    assert "DIV" in _ops(float_vs_ort(model, positive=("b",)))


# -- int8 ---------------------------------------------------------------------------------


def prelu_graph(seed: int, shape, alpha_shape) -> Graph:
    b = Builder(f"prelu_{seed}", seed)
    x = b.act("x", shape)
    alpha = b.const_int8("alpha", alpha_shape)
    b.act("y", (1,))
    b.node("PRELU", [x, alpha], ["y"])
    return b.finish([x], ["y"])


def div_graph(seed: int, shape_a, shape_b, multiplier: float = 100.0) -> Graph:
    """DIV with an output scale of s_a / (s_b * multiplier): multipliers >= 64 keep every
    int8 quotient inside what TFLM's C defines (final shifts of at most 31 bits)."""
    b = Builder(f"div_{seed}", seed)
    a = b.act("a", shape_a)
    d = b.act("b", shape_b)
    sa, sb = (float(b.g.tensors[n].quant.s) for n in (a, d))
    b.act("y", (1,), sa / (sb * multiplier))
    b.node("DIV", [a, d], ["y"])
    return b.finish([a, d], ["y"])


def _every_value(g: Graph, seeds=range(3)) -> list[list[np.ndarray]]:
    """Random inputs, then one that holds every int8 value (repeated to fill the shape)."""
    x = g.tensors[g.inputs[0]]
    full = np.resize(np.arange(-128, 128, dtype=np.int8), x.size).reshape(x.shape)
    return [random_inputs(g, s) for s in seeds] + [[full]]


def _nonzero_divisors(g: Graph, seeds=range(5)) -> list[list[np.ndarray]]:
    """Random inputs whose divisors avoid the zero point (undefined in TFLM)."""
    zp = g.tensors["b"].quant.zp
    cases = []
    for s in seeds:
        a, d = random_inputs(g, s)
        cases.append([a, np.where(d == zp, np.int8(zp + 1 if zp < 127 else zp - 1), d)])
    return cases


PRELU = [
    prelu_graph(1, (1, 3, 4, 5), (1, 1, 1, 1)),  # one slope (a table in C)
    prelu_graph(2, (1, 3, 4, 6), (1, 1, 1, 6)),  # per channel
    prelu_graph(3, (2, 5, 7), (5, 1)),  # broadcast along a middle axis
]
DIV = [
    div_graph(4, (1, 3, 4, 5), (1, 3, 4, 5)),
    div_graph(5, (1, 3, 4, 5), (1, 1, 1, 1)),  # a per-tensor norm
    div_graph(6, (2, 3, 8), (3, 1), multiplier=500.0),
]


@pytest.mark.parametrize("g", PRELU + DIV, ids=[g.name for g in PRELU + DIV])
def test_int8_matches_tflm(g):
    int8_vs_tflm(g, _nonzero_divisors(g) if g.nodes[0].op == "DIV" else _every_value(g))


@pytest.mark.parametrize("g", PRELU + DIV, ids=[g.name for g in PRELU + DIV])
def test_c_matches_interpreter(g, tmp_path):
    c_vs_interpreter(g, tmp_path)


def test_div_where_tflm_is_undefined(tmp_path):
    """Zero divisors and final shifts past 31 bits (a small multiplier): tinyc's own
    definitions, the same in C and in the interpreter."""
    g = div_graph(7, (3, 64), (3, 64), multiplier=0.01)
    zp = g.tensors["b"].quant.zp  # in [-20, 20): zp + 1 is one quantum above zero
    a = np.tile(np.arange(-128, 128, 4, dtype=np.int8), (3, 1))
    d = np.stack([np.full(64, zp), np.full(64, zp + 1), np.arange(-128, 128, 4)]).astype(np.int8)
    c_vs_interpreter(g, tmp_path, [[a, d]])
    y = interpreter.run(g, [a, d])["y"]
    np.testing.assert_array_equal(y[0], y[1])  # a zero divisor divides by one quantum
    assert get_op("DIV").div_params(g.nodes[0], g).shift < 0  # final shifts past 31 bits


def test_div_checks_the_output_shift():
    g = div_graph(8, (2, 3), (2, 3))
    g.tensors["y"].quant.scale[:] = g.tensors["y"].quant.scale * np.float32(1e-6)
    with pytest.raises(TinycError, match="multiplier exponent"):
        get_op("DIV").check(g.nodes[0], g)


def test_count_leading_sign_bits():
    x = np.array([0, 1, -1, 255, -255, 2**30, -(2**31)])
    assert count_leading_sign_bits(x).tolist() == [31, 30, 31, 23, 23, 0, 0]


def sqrt_graph(seed: int, shape) -> Graph:
    b = Builder(f"sqrt_{seed}", seed)
    x = b.act("x", shape, 0.03, -100)
    b.act("y", shape, 0.02, -128)
    b.node("SQRT", [x], ["y"])
    return b.finish([x], ["y"])


def test_sqrt_int8_is_its_table(tmp_path):
    """round(sqrt(max(real, 0)) / s_out) + zp_out for every int8 input."""
    g = sqrt_graph(9, (4, 64))
    x = np.arange(256, dtype=np.uint8).view(np.int8).reshape(4, 64)
    y = interpreter.run(g, [x])["y"].astype(np.int64)
    real = np.maximum((x.astype(np.float64) + 100) * np.float64(np.float32(0.03)), 0)
    want = np.clip(np.floor(np.sqrt(real) / np.float64(np.float32(0.02)) + 0.5) - 128, -128, 127)
    np.testing.assert_array_equal(y, want)
    c_vs_interpreter(g, tmp_path, [[x]])


def test_sqrt_float_in_tflm():
    """TFLM runs SQRT in float only; the writer refuses an int8 one."""
    b = Builder("sqrt_f", 0)
    b.g.add_tensor(Tensor("x", (2, 5), "float32"))
    b.g.add_tensor(Tensor("y", (2, 5), "float32"))
    b.node("SQRT", ["x"], ["y"])
    g = b.finish(["x"], ["y"])
    from tinyc.backends.tflm import host
    from tinyc.backends.tflm.writer import build_model

    x = np.abs(np.random.default_rng(0).standard_normal((2, 5))).astype(np.float32)
    np.testing.assert_allclose(host.run(build_model(g).data, [x])[0], np.sqrt(x), rtol=1e-6)
    with pytest.raises(UnsupportedError, match="int8 SQRT"):
        build_model(sqrt_graph(10, (2, 5)))
